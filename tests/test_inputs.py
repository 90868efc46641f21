"""Loading user inputs: formats, names, and hostile files refused before any large allocation."""
import io
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest

from evsim.errors import SimulationInputError
from evsim.weights_io.inputs import load_inputs


def test_npz_and_h5_inputs(tmp_path):
    x, y = np.random.default_rng(0).random((4, 1, 3, 3)).astype(np.float32), np.arange(4)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["samples/inputs"], f["samples/labels"] = x, y
    for name in ("a.npz", "b.h5"):
        got_x, got_y = load_inputs(tmp_path / name)
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_array_equal(got_y, y)
    np.savez(tmp_path / "c.npz", inputs=x)
    assert load_inputs(tmp_path / "c.npz")[1] is None


def test_npz_claiming_a_huge_array_is_refused_before_reading(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("inputs.npy", header.getvalue())
    tracemalloc.start()
    with pytest.raises(SimulationInputError, match=r"huge.npz: inputs.npy: array of shape \(1048576, 1048576\) is too large"):
        load_inputs(tmp_path / "huge.npz")
    assert tracemalloc.get_traced_memory()[1] < 50e6
    tracemalloc.stop()


@pytest.mark.parametrize("content,message", [
    (b"not a zip", "cannot read inputs"),
])
def test_unreadable_inputs(tmp_path, content, message):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(SimulationInputError, match=message):
        load_inputs(tmp_path / "bad.npz")


def test_bad_labels_and_suffix(tmp_path):
    np.savez(tmp_path / "l.npz", inputs=np.zeros((3, 2)), labels=np.zeros(3))
    with pytest.raises(SimulationInputError, match="labels must be integers"):
        load_inputs(tmp_path / "l.npz")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(SimulationInputError, match="must be an .npz or .h5"):
        load_inputs(tmp_path / "x.txt")
