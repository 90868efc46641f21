"""The in-memory converted network: populations joined by projections.

A `Network` is what the HDF5 reader returns, what the exporter builds and
what the engines consume. It is immutable and validated on construction by
the reader (weights_io); this module only holds the data and the small,
shared geometry helpers (output shapes, parameter broadcasting).

Shapes are PyTorch's: `[N]` or `[C, H, W]`, flattened in C-major order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

POPULATION_KINDS = ("input", "if", "bif", "relay", "readout")
PROJECTION_KINDS = ("dense", "conv2d", "avgpool2d", "maxpool2d", "identity", "sparse")
CODINGS = ("rate", "phase")
ENCODERS = ("analog", "bernoulli", "phase")
READOUT_MODES = ("potential", "spikes")
NEURON_PARAMETERS = ("theta_pos", "theta_neg", "v_init", "bias")


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
    coding: str = "rate"
    phase_period: int = 1
    max_coeff: int = 1
    theta_pos: Optional[np.ndarray] = None
    theta_neg: Optional[np.ndarray] = None
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(()))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(()))
    mode: str = "potential"  # readout populations only
    encoding: str = "analog"  # input populations only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def units(self) -> int:
        """State units per neuron: a bif neuron is an A and a B unit."""
        return 2 if self.kind == "bif" else 1

    @property
    def fires(self) -> bool:
        """Whether the population compares against a threshold."""
        return self.kind in ("if", "bif") or (self.kind == "readout" and self.mode == "spikes")

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

    @property
    def kernel_size(self) -> tuple[int, int]:
        if self.kind == "conv2d":
            return tuple(int(k) for k in self.weight.shape[2:])
        return self.kernel


def conv_output_hw(hw_in: tuple[int, int], kernel: tuple[int, int], stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    """Output height and width of a convolution or pool (PyTorch, no ceil mode)."""
    return tuple(
        (hw_in[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def projection_output_shape(proj: Projection, source_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The target shape a projection implies for its source shape (dense and sparse: None)."""
    if proj.kind == "identity":
        return tuple(source_shape)
    if proj.kind in ("conv2d", "avgpool2d", "maxpool2d"):
        channels = proj.weight.shape[0] if proj.kind == "conv2d" else source_shape[0]
        dilation = proj.dilation if proj.kind == "conv2d" else (1, 1)
        return (channels, *conv_output_hw(source_shape[1:], proj.kernel_size, proj.stride, proj.padding, dilation))
    return None


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
        return next(p for p in self.populations if p.kind == "input")

    @property
    def output_population(self) -> Population:
        return self.population(self.output)

    def incoming(self, name: str) -> list[Projection]:
        return [q for q in self.projections if q.target == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [q for q in self.projections if q.source == name]

    def replace(self, **changes: Any) -> "Network":
        return dataclasses.replace(self, **changes)
