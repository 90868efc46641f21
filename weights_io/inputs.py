"""Loading user inputs for a run: an .npz or .h5 file of `inputs` [n, *input shape] and optional `labels` [n]."""
from __future__ import annotations

import math
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
    """Read `(inputs, labels)` from an .npz or HDF5 file; labels are None when absent.

    Every problem (not such a file, a truncated one, links leaving the file, arrays too large to load, empty, of
    the wrong rank or type) is one `SimulationInputError` naming the file and the array; whether the inputs fit
    the network, and the labels its classes, is the run's to check (`evsim.simulate`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise SimulationInputError(f"{path}: inputs must be an .npz or .h5 file")
    try:
        arrays = _read_npz(path) if suffix == ".npz" else _read_h5(path)
    except SimulationInputError:
        raise
    except Exception as err:  # zipfile, NumPy and h5py raise many types on damaged files: one clean message
        raise SimulationInputError(f"{path}: cannot read inputs ({type(err).__name__}: {err})") from None
    return _pick(path, arrays)


def _read_npz(path: Path) -> dict:
    _check_npz_sizes(path)
    with np.load(path, allow_pickle=False) as data:
        wanted = [k for k in data.files if k in INPUT_NAMES + LABEL_NAMES]
        return {k: data[k] for k in wanted}


def _read_h5(path: Path) -> dict:
    arrays = {}
    with h5py.File(path, "r") as f:
        for name in INPUT_NAMES + LABEL_NAMES:
            if not _hard_link(f, name):
                continue
            dataset = f[name]
            if not isinstance(dataset, h5py.Dataset):
                raise SimulationInputError(f"{path}: /{name} is a group, not an array")
            if dataset.shape is None:
                raise SimulationInputError(f"{path}: /{name}: empty dataspace (no data)")
            if dataset.is_virtual or dataset.external:
                raise SimulationInputError(f"{path}: /{name}: data stored outside the file is not read")
            if math.prod(dataset.shape) * dataset.dtype.itemsize > MAX_INPUT_BYTES:
                raise SimulationInputError(f"{path}: /{name}: {dataset.shape} is too large to load")
            if dataset.dtype.kind not in "iuf":
                raise SimulationInputError(f"{path}: /{name} must hold real numbers, not {dataset.dtype}")
            arrays[name] = dataset[()]
    return arrays


def _hard_link(f: h5py.File, name: str) -> bool:
    """Whether `name` exists in `f` with every step of its path a hard link (no link may lead out of the file)."""
    *folders, last = name.split("/")
    group = f
    for part in [*folders, last]:
        if not isinstance(group, h5py.Group):
            return False
        link = group.get(part, getlink=True)
        if link is None:
            return False
        if not isinstance(link, h5py.HardLink):
            raise SimulationInputError(f"{f.filename}: /{name}: {type(link).__name__}; links are not followed")
        group = group[part]
    return True


def _pick(path, arrays: dict) -> tuple[np.ndarray, np.ndarray | None]:
    inputs = next((arrays[n] for n in INPUT_NAMES if n in arrays), None)
    if inputs is None:
        raise SimulationInputError(f"{path}: no inputs array (looked for {', '.join(INPUT_NAMES)})")
    labels = next((arrays[n] for n in LABEL_NAMES if n in arrays), None)
    inputs, labels = np.asarray(inputs), None if labels is None else np.asarray(labels)
    if inputs.dtype.kind not in "iuf":
        raise SimulationInputError(f"{path}: inputs must be real numbers (integer or floating point), not {inputs.dtype}")
    if inputs.ndim < 2:
        raise SimulationInputError(f"{path}: inputs have shape {inputs.shape}; they must be [n, *input shape]")
    if len(inputs) == 0:
        raise SimulationInputError(f"{path}: inputs hold no samples (shape {inputs.shape})")
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != inputs.shape[:1]:
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
            if math.prod(shape) * dtype.itemsize > MAX_INPUT_BYTES:
                raise SimulationInputError(f"{path}: {member}: array of shape {shape} is too large to load")
