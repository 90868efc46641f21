"""Loading user inputs for a run: an .npz or .h5 file of `inputs` [n, *input shape] and optional `labels` [n]."""
from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np

from evsim.errors import SimulationInputError

#: Names tried, in order, for the input and label arrays.
INPUT_NAMES = ("inputs", "samples/inputs", "x")
LABEL_NAMES = ("labels", "samples/labels", "y")
#: Refuse input files whose arrays would take more than this (bytes) once read.
MAX_INPUT_BYTES = 8 << 30


def load_inputs(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read `(inputs, labels)` from an .npz or HDF5 file; labels are None when absent."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            _check_npz_sizes(path)
            with np.load(path, allow_pickle=False) as data:
                return _pick(path, {k: data[k] for k in data.files})
        if suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                found = {name: f[name] for name in INPUT_NAMES + LABEL_NAMES if isinstance(f.get(name), h5py.Dataset)}
                for name, dataset in found.items():
                    if dataset.size * dataset.dtype.itemsize > MAX_INPUT_BYTES:
                        raise SimulationInputError(f"{path}: /{name}: {dataset.shape} is too large to load")
                return _pick(path, {name: dataset[()] for name, dataset in found.items()})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise SimulationInputError(f"{path}: cannot read inputs: {err}") from None
    raise SimulationInputError(f"{path}: inputs must be an .npz or .h5 file")


def _pick(path, arrays: dict) -> tuple[np.ndarray, np.ndarray | None]:
    inputs = next((arrays[n] for n in INPUT_NAMES if n in arrays), None)
    if inputs is None:
        raise SimulationInputError(f"{path}: no inputs array (looked for {', '.join(INPUT_NAMES)})")
    labels = next((arrays[n] for n in LABEL_NAMES if n in arrays), None)
    if not np.issubdtype(inputs.dtype, np.number):
        raise SimulationInputError(f"{path}: inputs must be numeric, not {inputs.dtype}")
    if labels is not None:
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != inputs.shape[:1]:
            raise SimulationInputError(f"{path}: labels must be integers of shape [{inputs.shape[0]}], "
                                       f"not {labels.dtype} {labels.shape}")
    return inputs, labels


def _check_npz_sizes(path) -> None:
    """Read each member's .npy header (shape, dtype) and refuse oversized arrays before loading any."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise SimulationInputError(f"{path}: {member}: unsupported .npy version {version}")
                shape, _, dtype = read_header(handle)
            if int(np.prod(shape, dtype=object)) * dtype.itemsize > MAX_INPUT_BYTES:
                raise SimulationInputError(f"{path}: {member}: array of shape {shape} is too large to load")
