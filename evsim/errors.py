"""Domain errors. The CLI turns every `EvsimError` into a clean message and exit code."""
from __future__ import annotations


class EvsimError(Exception):
    """Base class of every error evsim raises on purpose."""


class FormatError(EvsimError):
    """A converted-network file breaks the format contract (docs/format.md).

    Carries the file, the HDF5 path of the offending object and the problem,
    so that a message always says where and what.
    """

    def __init__(self, file: str, h5path: str, problem: str):
        self.file = str(file)
        self.h5path = h5path
        self.problem = problem
        super().__init__(f"{self.file}: {h5path}: {problem}")


class SimulationInputError(EvsimError):
    """Inputs, labels or run options that do not fit the network."""


class ExportError(EvsimError):
    """A model the exporter cannot convert (unsupported layer, bad options)."""


class NirError(EvsimError):
    """A NIR graph evsim cannot import, or a network NIR cannot express (weights_io/nir.py, docs/nir.md)."""
