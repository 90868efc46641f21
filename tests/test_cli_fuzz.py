"""Fuzzing `evsim run --inputs`: random malformed .npz / .h5 inputs files (wrong rank, dtype, shape, NaN, empty,
huge claimed shapes, links, damaged files) give exit code 0 or 1 and one clean line, never a traceback."""
import io
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from evsim.cli.main import main

INPUT_SHAPE = (2, 4, 6)  # foundation_cnn's input; 10 classes
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int64", "bool", "complex64", "U3")
NAMES = ("inputs", "x", "samples/inputs", "other")


def random_shape(rng) -> tuple:
    """Often the right shape, else a wrong rank, a wrong size, or an empty axis."""
    choice = rng.integers(5)
    n = int(rng.choice([0, 1, 2, 3]))
    if choice == 0:
        return (n, *INPUT_SHAPE)
    if choice == 1:
        return tuple(int(v) for v in rng.integers(0, 4, size=rng.integers(0, 6)))
    if choice == 2:
        return (n, *(int(v) for v in rng.integers(1, 7, size=3)))
    if choice == 3:
        return (n, int(np.prod(INPUT_SHAPE)))
    return (max(n, 1), *INPUT_SHAPE)


def random_array(rng, shape, dtype):
    if dtype == "U3":
        return np.full(shape, "ab", dtype="U3")
    values = rng.normal(0.5, 1.0, size=shape) * rng.choice([1, 255])
    if rng.random() < 0.3 and values.size:
        values.flat[int(rng.integers(values.size))] = rng.choice([np.nan, np.inf, -np.inf])
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype) if dtype != "bool" else values > 0.5


def random_labels(rng, n):
    kind = rng.integers(6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.integers(0, 10, size=n)
    if kind == 2:
        return rng.integers(-20, 30, size=n)
    if kind == 3:
        return rng.integers(0, 10, size=n + 1)
    if kind == 4:
        return rng.random(n)
    return rng.integers(0, 10, size=(n, 2))


def write_random(path_stem, rng):
    """One random inputs file: its path."""
    shape = random_shape(rng)
    name = "inputs" if rng.random() < 0.6 else str(rng.choice(NAMES))
    arrays = {name: random_array(rng, shape, str(rng.choice(DTYPES)))}
    labels = random_labels(rng, shape[0] if shape else 1)
    if labels is not None:
        arrays[str(rng.choice(("labels", "y", "samples/labels")))] = labels
    if rng.random() < 0.5:
        path = path_stem.with_suffix(".npz")
        np.savez(path, **{k.replace("/", "_"): v for k, v in arrays.items()})  # an .npz has no folders: not found
    else:
        path = path_stem.with_suffix(".h5")
        with h5py.File(path, "w") as f:
            for name, value in arrays.items():
                f[name] = value.astype("S3") if value.dtype.kind == "U" else value
    if rng.random() < 0.15:  # damaged on disk
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * rng.uniform(0.1, 0.9))])
    return path


def huge_npz(path):
    """An .npz whose header claims 2^40 samples, holding a few bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, *INPUT_SHAPE)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inputs.npy", np.lib.format.magic(1, 0) + header.getvalue() + b"\0" * 64)
    return path


def huge_h5(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", shape=(2**40, *INPUT_SHAPE), dtype=np.float32, chunks=(1, *INPUT_SHAPE))
    return path


def empty_dataspace(path):
    with h5py.File(path, "w") as f:
        f["inputs"] = h5py.Empty("f4")
    return path


def linked(path):
    with h5py.File(path, "w") as f:
        f["real"] = np.zeros((2, *INPUT_SHAPE), np.float32)
        f["inputs"] = h5py.SoftLink("/real")
        f["labels"] = h5py.ExternalLink("elsewhere.h5", "/labels")
    return path


def group_not_array(path):
    with h5py.File(path, "w") as f:
        f.create_group("inputs")
    return path


def garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(300))
    return path


def npz_with_pickle(path):
    np.savez(path, inputs=np.array([{"a": 1}, None], dtype=object))
    return path


def npz_not_npy(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inputs.npy", b"not an npy file")
    return path


CRAFTED = {"huge.npz": huge_npz, "huge.h5": huge_h5, "empty.h5": empty_dataspace, "linked.h5": linked,
           "group.h5": group_not_array, "garbage.npz": garbage, "garbage.h5": garbage, "pickle.npz": npz_with_pickle,
           "notnpy.npz": npz_not_npy}


def assert_no_traceback(outcome, path):
    assert outcome.exit_code in (0, 1), (path, outcome.output)
    assert "Traceback" not in outcome.output, (path, outcome.output)
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (path, repr(outcome.exception))
    if outcome.exit_code == 1:
        errors = [line for line in outcome.output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and str(path) in errors[0], (path, outcome.output)
    else:
        assert "samples, T = 2" in outcome.output


@pytest.fixture(scope="module")
def network(conformance_dir):
    return str(conformance_dir / "foundation_cnn.h5")


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_hostile_inputs(network, tmp_path, name):
    path = CRAFTED[name](tmp_path / name)
    outcome = CliRunner().invoke(main, ["run", network, "-T", "2", "--inputs", str(path)])
    assert_no_traceback(outcome, path)
    assert outcome.exit_code == 1


def test_random_malformed_inputs_never_give_a_traceback(network, tmp_path):
    rng = np.random.default_rng(14)
    runner = CliRunner()
    codes = []
    for i in range(80):
        path = write_random(tmp_path / f"case{i}", rng)
        outcome = runner.invoke(main, ["run", network, "-T", "2", "--threads", "1", "--inputs", str(path)])
        assert_no_traceback(outcome, path)
        codes.append(outcome.exit_code)
    assert 0 in codes and 1 in codes  # the fuzzer reaches both valid and refused files
