"""The kind table: one entry per population kind and per projection kind, the one place that names them.

An entry holds what the rest of evsim derives from it: the kind's name (as
the file spells it) and integer code (as the jitted engine dispatches on
it), the attributes and datasets the format allows for it (with defaults
and the format version that introduced each), its output-shape rule, and
how the plan lowers it (which weight layout, whether it needs window
tables). `network.py`, the engine's plan, the HDF5 reader and writer, and
the reports read these entries; no other module spells a kind's name.

The semantics of each kind live in docs/semantics.md and, twice and
independently, in the engines (evsim/engine for the event-driven one,
evsim/reference.py for the dense reference). docs/extending.md says what
to touch, in which order, to add a kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from evsim.geometry import conv_output_hw

REQUIRED: Any = object()  # the default of an attribute a file must give


@dataclass(frozen=True)
class Attribute:
    """One HDF5 attribute of a population or projection group; `name` is also the field's name in the model.

    `type` is the format's type (docs/format.md, Conventions): "integer",
    "pair", "real" or "string". `default` is used when the file leaves the
    attribute out (REQUIRED: it must be given; a callable: computed from
    the fields read so far, e.g. a pool's stride defaults to its kernel).
    `required_when` makes a defaulted attribute required where its default
    would silently mean something (K = 1 under phase coding).
    """

    name: str
    type: str
    default: Any = REQUIRED
    minimum: Optional[int] = None
    choices: tuple[str, ...] = ()
    since: int = 1  # the format version that introduced it
    when: Optional[Callable] = None  # (fields read so far) -> whether the attribute is defined there at all
    meaning: str = ""  # the condition `when` states, for error messages
    #: (all fields of the element, its kind included) -> whether a file must give the attribute there although it
    #: has a default elsewhere; `required_meaning` states the condition for error messages
    required_when: Optional[Callable] = None
    required_meaning: str = ""


@dataclass(frozen=True)
class Parameter:
    """A neuron-parameter dataset a kind has beyond NEURON_PARAMETERS (scalar, [C] or full shape, like them).

    `since` and `when` mean what they mean for an `Attribute`: the format
    version that introduced it, and where it is defined at all (a
    condition on the element's attributes, stated by `meaning`)."""

    name: str
    since: int = 1
    when: Optional[Callable] = None
    meaning: str = ""


# -- enumerations ------------------------------------------------------------------

#: Codings of a population (docs/semantics.md, Coding), and the codes the engine uses.
RATE, PHASE = "rate", "phase"
CODINGS = (RATE, PHASE)
#: Input encoders, in the order of their engine codes.
ANALOG, BERNOULLI, PHASE_ENCODER = "analog", "bernoulli", "phase"
ENCODERS = (ANALOG, BERNOULLI, PHASE_ENCODER)
ENCODER_CODES = {name: code for code, name in enumerate(ENCODERS)}
#: Names users know an encoder by, accepted by the API and the CLI and normalised there (results, manifests and
#: reports name the encoder itself); never a value of a file's `encoding` attribute.
ENCODER_ALIASES = {"poisson": BERNOULLI}
#: The input values each encoder reads, (low, high) inclusive (docs/semantics.md, Input encoders).
ENCODER_RANGES = {ANALOG: (-math.inf, math.inf), BERNOULLI: (-1.0, 1.0), PHASE_ENCODER: (0.0, 1.0)}
#: Readout modes.
POTENTIAL, SPIKES = "potential", "spikes"
READOUT_MODES = (POTENTIAL, SPIKES)
#: Version 2: how a spiking max-pool or a spikes readout ranks (sum of |c|, or of the signed values c * S_k),
#: and how a bif pair takes its untagged input and bias (both units, or the one in its non-spike phase).
MASS, VALUE = "mass", "value"
RANKS = (MASS, VALUE)
SPLIT, GATED = "split", "gated"
DRIVES = (SPLIT, GATED)
#: Version 3 (NIR's IF, reset-to-zero conversions): how an `if` neuron resets after an event (by subtraction,
#: or to the potential `v_reset`), and whether it fires at the threshold or only beyond it.
SUBTRACT, TO_VALUE = "subtract", "value"
RESETS = (SUBTRACT, TO_VALUE)
GE, GT = "ge", "gt"
FIRE_RULES = (GE, GT)
#: The neuron-parameter datasets of a population with a membrane.
NEURON_PARAMETERS = ("theta_pos", "theta_neg", "v_init", "bias")


# -- population kinds --------------------------------------------------------------

def _period_matters(fields) -> bool:
    """Where K changes what a population does: phase coding (S_k = 2^-(1 + t mod K)), a phase-encoding input,
    and every bif pair (its A/B gating period under either coding)."""
    bif = fields.get("kind") == BIF.name  # BIF: defined below, read at call time
    return bif or fields.get("coding") == PHASE or fields.get("encoding") == PHASE_ENCODER


#: Attributes every population has.
POPULATION_ATTRIBUTES = (
    Attribute("shape", "shape"),
    Attribute("order", "integer", minimum=0),
    Attribute("coding", "string", RATE, choices=CODINGS),
    Attribute("phase_period", "integer", 1, minimum=1, required_when=_period_matters,
              required_meaning="a phase-coded population, a phase-encoding input and every bif population"),
)
_MAX_COEFF = Attribute("max_coeff", "integer", 1, minimum=0)
_BIAS_ONSET = Attribute("bias_onset", "integer", 0, minimum=0, since=2)


def _spikes_mode(fields):
    return fields.get("mode") == SPIKES


def _resets_to_value(fields):
    return fields.get("reset") == TO_VALUE


@dataclass(frozen=True)
class PopulationKind:
    name: str
    code: int
    attributes: tuple[Attribute, ...]  # beyond POPULATION_ATTRIBUTES
    membrane: bool  # has a membrane and the NEURON_PARAMETERS datasets
    units: int = 1  # state units per neuron (a bif pair is two)
    tags: str = "none"  # events' A/B tags: "none", "own" (it is a pair) or "source" (passes its source's)
    fires_in_mode: Optional[tuple[str, ...]] = None  # None: fires always (membrane) or never; else the modes that fire
    emits: str = "own"  # whose events it emits: "own" (counted as events), "encoded" (input events), "relayed"
    description: str = ""
    parameters: tuple[Parameter, ...] = ()  # neuron-parameter datasets beyond NEURON_PARAMETERS (membrane kinds)

    def fires(self, mode: str) -> bool:
        """Whether a population of this kind (in readout `mode`) compares against thresholds."""
        if self.fires_in_mode is not None:
            return mode in self.fires_in_mode
        return self.membrane

    @property
    def always_fires(self) -> bool:
        return self.membrane and self.fires_in_mode is None

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset the kind may hold, in any version."""
        return (*NEURON_PARAMETERS, *(p.name for p in self.parameters)) if self.membrane else ()


INPUT = PopulationKind("input", 0, (Attribute("encoding", "string", ANALOG, choices=ENCODERS),), membrane=False,
                       emits="encoded", description="the source of a sample: emits what the encoder gives")
IF = PopulationKind("if", 1, (_MAX_COEFF, _BIAS_ONSET, Attribute("reset", "string", SUBTRACT, choices=RESETS, since=3),
                              Attribute("fire_when", "string", GE, choices=FIRE_RULES, since=3)), membrane=True,
                    parameters=(Parameter("v_reset", since=3, when=_resets_to_value,
                                          meaning="an if population with reset = value"),),
                    description="integrate-and-fire, reset by subtraction or to a value (single or double threshold, "
                                "augmented)")
BIF = PopulationKind("bif", 2, (_MAX_COEFF, _BIAS_ONSET, Attribute("drive", "string", SPLIT, choices=DRIVES, since=2)),
                     membrane=True, units=2, tags="own",
                     description="BSNN's bistable pair: A and B units, phase-gated")
RELAY = PopulationKind("relay", 3, (), membrane=False, tags="source", emits="relayed",
                       description="no membrane: passes the events a spiking max-pool lets through")
READOUT = PopulationKind("readout", 4, (_MAX_COEFF, Attribute("mode", "string", POTENTIAL, choices=READOUT_MODES),
                                       _BIAS_ONSET,
                                       Attribute("rank", "string", MASS, choices=RANKS, since=2, when=_spikes_mode,
                                                 meaning="a readout in spikes mode")),
                         membrane=True, fires_in_mode=(SPIKES,),
                         description="the output layer: integrates (potential mode) or fires (spikes mode)")

POPULATION_KINDS = {kind.name: kind for kind in (INPUT, IF, BIF, RELAY, READOUT)}


def emitting(population_kinds, emits: str = "own") -> list[bool]:
    """For a list of population kind names, whether each emits events of that origin (`PopulationKind.emits`):
    "own" are a network's events, "encoded" its input events, "relayed" the spikes a relay passes on."""
    return [POPULATION_KINDS[kind].emits == emits for kind in population_kinds]


# -- projection kinds --------------------------------------------------------------

#: Attributes every projection has.
PROJECTION_ATTRIBUTES = (
    Attribute("source", "string"),
    Attribute("target", "string"),
    Attribute("scale", "real", 1.0),
)


def _same_shape(proj, source_shape):
    return tuple(source_shape)


def _any_shape(proj, source_shape):
    return None


def _conv_shape(proj, source_shape):
    hw = conv_output_hw(source_shape[1:], proj.kernel_size, proj.stride, proj.padding, proj.dilation)
    return (int(proj.weight.shape[0]), *hw)


def _pool_shape(proj, source_shape):
    return (source_shape[0], *conv_output_hw(source_shape[1:], proj.kernel, proj.stride, proj.padding))


@dataclass(frozen=True)
class ProjectionKind:
    """A projection kind. `weights` names how the plan lays out its weights (evsim/engine/plan.py):
    "rows" (dense, one row per source neuron), "taps" (conv kernel, source-major), "csr" (sparse rows),
    "fixed" (one weight for every synapse: scale, divided by the window area for an average pool)
    or "none" (the max gate passes events unweighted). `windows`: the plan precomputes its window tables."""

    name: str
    code: int
    attributes: tuple[Attribute, ...]  # beyond PROJECTION_ATTRIBUTES
    datasets: tuple[str, ...]
    output_shape: Callable  # (projection, source shape) -> the target shape it implies, or None (any)
    weights: str
    windows: bool = False
    spatial: bool = False  # source and target must be [C, H, W]
    pool: bool = False  # its operations count as pool_ops, not synaptic ops
    gate: bool = False  # passes events on (into a relay) rather than adding them to a membrane
    target_kind: Optional[PopulationKind] = None  # the one kind it may target
    description: str = ""


def _pool_stride_default(fields):
    return fields["kernel"]


_POOL_ATTRIBUTES = (
    Attribute("kernel", "pair", minimum=1),
    Attribute("stride", "pair", _pool_stride_default, minimum=1),
    Attribute("padding", "pair", (0, 0), minimum=0),
)

DENSE = ProjectionKind("dense", 0, (), ("weight",), _any_shape, weights="rows",
                       description="weight[out, in]; the source read flat in C-major order")
CONV2D = ProjectionKind("conv2d", 1, (Attribute("stride", "pair", (1, 1), minimum=1),
                                      Attribute("padding", "pair", (0, 0), minimum=0),
                                      Attribute("dilation", "pair", (1, 1), minimum=1),
                                      Attribute("groups", "integer", 1, minimum=1)),
                        ("weight",), _conv_shape, weights="taps", windows=True, spatial=True,
                        description="weight[Cout, Cin/groups, kh, kw], delivered from the kernel")
AVGPOOL2D = ProjectionKind("avgpool2d", 2, _POOL_ATTRIBUTES, (), _pool_shape, weights="fixed", windows=True,
                           spatial=True, pool=True, description="average pool, weight 1 / (kh * kw)")
MAXPOOL2D = ProjectionKind("maxpool2d", 3, (*_POOL_ATTRIBUTES, Attribute("rank", "string", MASS, choices=RANKS, since=2)),
                           (), _pool_shape, weights="none", windows=True,
                           spatial=True, pool=True, gate=True, target_kind=RELAY,
                           description="the spiking max gate: each window passes its winner's events")
IDENTITY = ProjectionKind("identity", 4, (), (), _same_shape, weights="fixed",
                          description="one synapse per neuron, weight 1 (a residual shortcut with its scale)")
SPARSE = ProjectionKind("sparse", 5, (), ("indptr", "indices", "weight"), _any_shape, weights="csr",
                        description="CSR fan-out lists from source neuron to target neurons")

PROJECTION_KINDS = {kind.name: kind for kind in (DENSE, CONV2D, AVGPOOL2D, MAXPOOL2D, IDENTITY, SPARSE)}
