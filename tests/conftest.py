"""Shared test fixtures."""
from pathlib import Path

import pytest


def _conformance_dir() -> Path:
    """The conformance files: tests/conformance once copied in, else the shared originals."""
    local = Path(__file__).resolve().parent / "conformance"
    return local if local.is_dir() else Path(__file__).resolve().parents[2] / "shared" / "conformance"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return _conformance_dir()


def pytest_generate_tests(metafunc):
    """Parametrize any test taking `conformance_file` over every conformance *.h5."""
    if "conformance_file" in metafunc.fixturenames:
        files = sorted(_conformance_dir().glob("*.h5"))
        metafunc.parametrize("conformance_file", files, ids=[f.stem for f in files])
