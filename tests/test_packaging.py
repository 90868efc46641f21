"""A built wheel holds every module and data file of the source tree (the package list in pyproject.toml is explicit)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folders and the package each installs as (pyproject.toml's package-dir).
PACKAGE_DIRS = {"evsim": "evsim", "cli": "evsim/cli", "weights_io": "evsim/weights_io"}


def expected_files() -> set[str]:
    files = set()
    for folder, package in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                files.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


def test_wheel_contains_every_module_and_energy_profile(tmp_path):
    # built from a clean copy: an in-tree build would reuse whatever an earlier build left in build/
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *PACKAGE_DIRS):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("evsim-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if not name.startswith("evsim-")}
    expected = expected_files()
    assert {"evsim/engine/scheduler.py", "evsim/analysis/energy_profiles/cmos45-fp32.json"} <= expected
    assert expected - names == set(), "missing from the wheel"
