"""The in-memory converted network: populations joined by projections.

A `Network` is what the HDF5 reader returns, what the exporter builds and
what the engines consume. It is immutable and validated on construction by
the reader (weights_io); this module only holds the data and the small,
shared geometry helpers (output shapes, parameter broadcasting).

Shapes are PyTorch's: `[N]` or `[C, H, W]`, flattened in C-major order.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from evsim import kinds
from evsim.kinds import ANALOG, GE, INPUT, MASS, POTENTIAL, RATE, SPLIT, SUBTRACT

@dataclass(frozen=True)
class Population:
    """A group of neurons of one model.

    Neuron parameters are stored as given in the file: a scalar array
    (shape `()`), a per-channel vector `[C]`, or the full shape; use
    `expand` to get one value per neuron. `theta_neg is None` means a
    single (positive) threshold.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    order: int
    coding: str = RATE
    phase_period: int = 1
    max_coeff: int = 1
    theta_pos: Optional[np.ndarray] = None
    theta_neg: Optional[np.ndarray] = None
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(()))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(()))
    mode: str = POTENTIAL  # readout populations only
    encoding: str = ANALOG  # input populations only
    rank: str = MASS  # spikes readouts: what ranks the output neurons (version 2)
    drive: str = SPLIT  # bif populations: which units take untagged input and bias (version 2)
    bias_onset: int = 0  # if, bif, readout: the first step whose bias is added (version 2)
    reset: str = SUBTRACT  # if: by subtraction, or to v_reset (version 3)
    fire_when: str = GE  # if: fire at the threshold (>=) or only beyond it (>) (version 3)
    v_reset: Optional[np.ndarray] = None  # if with reset = value: the potential after an event (default 0)

    @property
    def spec(self) -> kinds.PopulationKind:
        """The kind's entry in the kind table (evsim/kinds.py)."""
        return kinds.POPULATION_KINDS[self.kind]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def units(self) -> int:
        """State units per neuron: a bif neuron is an A and a B unit."""
        return self.spec.units

    @property
    def fires(self) -> bool:
        """Whether the population compares against a threshold."""
        return self.spec.fires(self.mode)

    def expand(self, name: str) -> np.ndarray:
        """One float64 value per neuron, in C-major order, for parameter `name`."""
        return expand_parameter(getattr(self, name), self.shape)


def expand_parameter(value: Optional[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a scalar, per-channel `[C]` or full-shape parameter to `shape`, flattened."""
    size = int(np.prod(shape))
    if value is None:
        return np.zeros(size)
    value = np.asarray(value, dtype=np.float64)
    if value.size == 1:
        return np.full(size, value.reshape(()).item())
    if value.shape == tuple(shape):
        return value.reshape(-1).copy()
    if len(shape) == 3 and value.shape == (shape[0],):
        return np.repeat(value, shape[1] * shape[2])
    raise ValueError(f"parameter of shape {value.shape} does not fit a population of shape {tuple(shape)}")


@dataclass(frozen=True)
class Projection:
    """Connectivity from `source` to `target` (population names).

    Geometry attributes are PyTorch's (pairs are (height, width)); `weight`
    is `[out, in]` for dense, `[Cout, Cin/groups, kh, kw]` for conv2d and
    `[nnz]` for sparse, None for pools and identity.
    """

    name: str
    kind: str
    source: str
    target: str
    scale: float = 1.0
    weight: Optional[np.ndarray] = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)  # pools only
    indptr: Optional[np.ndarray] = None  # sparse only
    indices: Optional[np.ndarray] = None  # sparse only
    rank: str = MASS  # maxpool2d: what ranks a window's neurons (version 2)

    @property
    def spec(self) -> kinds.ProjectionKind:
        """The kind's entry in the kind table (evsim/kinds.py)."""
        return kinds.PROJECTION_KINDS[self.kind]

    @property
    def kernel_size(self) -> tuple[int, int]:
        """The window: a conv's from its weight, a pool's attribute (1 x 1 for the others)."""
        if self.spec.weights == "taps":
            return tuple(int(k) for k in self.weight.shape[2:])
        return self.kernel

    def output_shape(self, source_shape: tuple[int, ...]) -> Optional[tuple[int, ...]]:
        """The target shape this projection implies for `source_shape` (None: any, as for dense and sparse)."""
        return self.spec.output_shape(self, source_shape)


@dataclass(frozen=True)
class AnnInfo:
    """What the ANN the network came from was and did (the file's `/ann`)."""

    macs: Optional[int] = None
    accuracy: Optional[float] = None
    layer_macs: dict = field(default_factory=dict)
    lambdas: Optional[np.ndarray] = None
    outputs: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Samples:
    inputs: np.ndarray
    labels: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Network:
    """A converted spiking network: populations in topological order, projections."""

    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    output: str
    output_scale: Optional[np.ndarray] = None
    ann: Optional[AnnInfo] = None
    samples: Optional[Samples] = None
    meta: dict = field(default_factory=dict)
    producer: str = ""

    def population(self, name: str) -> Population:
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise KeyError(name)

    @property
    def input(self) -> Population:
        return next(p for p in self.populations if p.kind == INPUT.name)

    @property
    def output_population(self) -> Population:
        return self.population(self.output)

    def incoming(self, name: str) -> list[Projection]:
        return [q for q in self.projections if q.target == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [q for q in self.projections if q.source == name]

    def replace(self, **changes: Any) -> "Network":
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """SHA-256 of what the network simulates: its populations, projections, output and output scale
        (not its samples, ANN facts or metadata), so that two equal networks have the same digest."""
        hasher = hashlib.sha256()
        for element in (*self.populations, *self.projections):
            for fld in dataclasses.fields(element):
                value = getattr(element, fld.name)
                if fld.default is not dataclasses.MISSING and _same(value, fld.default):
                    continue  # a field at its default, as one added by a later version: the digest stays the same
                _hash_value(hasher, fld.name, value)
        _hash_value(hasher, "output", self.output)
        _hash_value(hasher, "output_scale", self.output_scale)
        return hasher.hexdigest()


def _same(value, default) -> bool:
    return value is None if default is None else (not isinstance(value, np.ndarray) and value == default)


def _hash_value(hasher, name: str, value) -> None:
    if isinstance(value, np.ndarray):  # by value: float32 and float64 copies of the same numbers hash alike
        value = np.ascontiguousarray(value, dtype=np.float64 if value.dtype.kind == "f" else np.int64)
        hasher.update(f"{name}:{value.dtype.str}{value.shape}:".encode())
        hasher.update(value.tobytes())
    else:
        hasher.update(f"{name}={value!r};".encode())
