"""Conversion methods: from the traced, folded layers (and calibration statistics) to neuron parameters.

A method decides two numbers per conv / dense layer (and per residual sum),
a `Scaling`:

- `spike`: the ANN activation that one spike of coefficient 1 stands for;
- `potential`: the ANN pre-activation that one unit of membrane potential
  stands for.

Everything else follows from them, the same way for every method
(`weight_scale`, `thresholds` and `reach` here; export.build_network
applies them, and divides biases by the potential): a neuron integrates
u / potential per step (u = W z_source + b, the source's spikes worth
spike_source each), so its weights are W * spike_source / potential and its
bias b / potential; a positive spike must take away what it stands for,
theta_pos * potential = spike / alpha+ with alpha+ = 1 (every supported
activation has slope 1 above zero), and a negative spike likewise on the
negative slope, theta_neg * potential = -spike / negative_slope (no negative
threshold when that slope is 0: ReLU, clip). The readout integrates
u / potential, so its `output_scale` is its potential (a spiking readout's
thresholds follow the hidden rule with the identity's slope 1). The input's
spike is 1 (inputs are ANN values as given); a pool (average or max) and the
synchronous neurons of a residual shortcut pass values on unchanged in
scale, so their spike and potential are their source's spike (threshold 1);
an average pool folded into the next layer (option `pool`, trace.fold_pools)
has no population and no scaling at all. A residual sum has its own
scaling; each of its terms reaches it like a layer's input: a merged conv /
dense term through W * spike_source / potential, an identity term through
the scale spike_source / potential (BSNN eq. 16: lambda_in / lambda_out).
Into a bif pair under `split` drive, whatever reaches both units (an
untagged source's events or current, the bias) is halved (`reach`); under
`gated` drive it reaches one unit and nothing is halved. Under bsnn a
population's bias starts when the first event can reach it
(`bif_crossings`: K per bif population upstream).

| method     | spike of layer l        | potential of layer l    | max_coeff | neurons          |
|------------|-------------------------|-------------------------|-----------|------------------|
| rate-norm  | lambda_l                | lambda_l                | 1         | if, rate         |
| termapping | P_l                     | P_(l-1) (source spike)  | 1         | if, rate         |
| augmapping | 1                       | 1                       | m_aug     | if, rate         |
| clip       | theta_l (clip bound)    | 1                       | 1         | if, rate         |
| phase      | lambda_l                | lambda_l                | 1         | if, phase K      |
| bsnn       | lambda_l                | lambda_l                | 1         | bif, phase K     |

A method is a scaling rule x a neuron model x declared options, one
`Method`: its `ScalingRule` (the activations it converts, whether it takes
signed sources and residual sums, an optional calibration statistic, the
per-layer `Scaling`), its `Neurons` (population kind, coding, period, bif drive), its
`Option`s (name, default, check; `resolve_options` checks them all), what
/meta says about it, its `max_coeff`, the input encoder it defaults to, and
an optional rewrite of the layers (bsnn: synchronous neurons on shortcuts).
phase is rate-norm with phase-coded neurons, bsnn phase with bif pairs
(`dataclasses.replace`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Optional

import numpy as np

from evsim import kinds
from evsim.errors import ExportError
from evsim.weights_io.trace import PASS_THROUGH_OPS, Layer, non_negative


@dataclass(frozen=True)
class Scaling:
    """What one spike and one unit of membrane potential of a layer stand for, in ANN units."""

    spike: float
    potential: float
    record: dict = field(default_factory=dict)  # the method's own per-layer facts, for /meta


@dataclass(frozen=True)
class ScalingRule:
    """How a method scales the ANN: per conv / dense layer and residual sum, a `Scaling`."""

    activations: tuple[str, ...]  # hidden-layer activations it converts
    signed: bool  # negative thresholds: a layer may read a source whose outputs can be negative
    scale: Callable  # (layer, source spike (None for a sum), its measured statistic, options) -> Scaling
    measure: Optional[Callable] = None  # (batches of measured layer outputs, options) -> {layer: statistic}
    residual: bool = False  # converts residual sums (a scaling that does not depend on one source)


@dataclass(frozen=True)
class Neurons:
    """A neuron model: the hidden populations' kind, coding and phase period (the input, relays and the
    readout take the same coding and period)."""

    kind: kinds.PopulationKind
    coding: str = kinds.RATE
    phase_period: int = 1
    drive: Optional[str] = None  # bif pairs: which units take untagged input and bias (kinds.SPLIT, kinds.GATED)

    def record(self) -> dict:
        """What /meta says about them."""
        return {"kind": self.kind.name, "coding": self.coding, "phase_period": self.phase_period,
                **({"drive": self.drive} if self.drive is not None else {})}


RATE_IF = Neurons(kinds.IF)
PHASE_IF = Neurons(kinds.IF, kinds.PHASE)  # Kim et al.'s weighted spikes
PHASE_BIF = Neurons(kinds.BIF, kinds.PHASE)  # BSNN's bistable pairs


@dataclass(frozen=True)
class Option:
    """A method option: a `convert_model` keyword, its default (already in checked form), and `check`, which
    validates one given value and returns it normalised (or raises ExportError)."""

    name: str
    default: Any
    check: Callable[[Any], Any]
    meaning: str = ""  # one line for `evsim convert --help`


@dataclass(frozen=True)
class Method:
    """A conversion method, selected by `name` (`convert_model(method=...)`)."""

    name: str
    scaling: ScalingRule
    neurons: Neurons  # the phase period is the phase_period option's under phase coding (`neurons_for`)
    options: tuple[Option, ...]  # in the order /meta records them
    formulas: dict = field(default_factory=dict)  # what /meta says about the method
    max_coeff: Callable = lambda options: 1  # binary / ternary unless augmented
    input_encoding: str = kinds.ANALOG  # the input population's default encoder
    rewrite: Optional[Callable] = None  # (layers, options) -> layers, before anything is measured

    def neurons_for(self, options: dict) -> Neurons:
        """The method's neurons; phase coding takes its period K from the options, bif pairs their drive."""
        neurons = self.neurons
        if neurons.coding == kinds.PHASE:
            neurons = replace(neurons, phase_period=options["phase_period"])
        if neurons.kind is kinds.BIF:
            neurons = replace(neurons, drive=options.get("drive", kinds.SPLIT))
        return neurons


# ----------------------------------------------------------------------------- the shared rules


def weight_scale(scaling: Scaling, source: Scaling) -> float:
    return source.spike / scaling.potential


def thresholds(scaling: Scaling, negative_slope: float) -> tuple[float, Optional[float]]:
    """(theta_pos, theta_neg): theta_pos = spike / (potential alpha+), theta_neg = -spike / (potential alpha-)."""
    theta_pos = scaling.spike / scaling.potential
    theta_neg = -theta_pos / negative_slope if negative_slope > 0 else None
    return theta_pos, theta_neg


def reach(target: kinds.PopulationKind, tagged: bool, drive: Optional[str] = kinds.SPLIT) -> float:
    """The factor on a projection (`tagged`: its source's events carry A/B tags) or a bias (never tagged) into
    a `target` population. Under `split` drive (format version 1) an untagged source's events or current and
    the bias reach both units of a bif pair, and each unit integrates them over two periods and fires once: 1/2
    of it per unit makes one period's worth. Under `gated` drive (version 2) they reach only the unit in its
    non-spike phase, for one period: 1. A tagged source reaches one unit of each pair: 1. Any other target: 1."""
    return 0.5 if target is kinds.BIF and not tagged and drive == kinds.SPLIT else 1.0


def bif_crossings(layers: list[Layer], is_bif: Callable[[Layer], bool]) -> dict:
    """Per layer with a population, the bif populations strictly upstream of it on the shortest path from the
    input (`is_bif`: whether a layer's population is a bif pair). A relay adds none (it passes spikes in the
    same step); a conv / dense term merged into a sum reaches the sum from its own source. Each bif population
    delays a value by one period K (it integrates for a period, then emits), so K times this is the first step
    at which an event can reach the population: its `bias_onset` under bsnn."""
    by_name = {layer.name: layer for layer in layers}
    upstream: dict[str, int] = {}

    def through(name: str) -> int:  # the bif populations an event from `name` has crossed, `name` included
        layer = by_name[name]
        if layer.merged_into is not None:
            return upstream[name]
        return upstream[name] + (1 if is_bif(layer) else 0)

    for layer in layers:
        upstream[layer.name] = 0 if layer.op == "input" else min(through(name) for name in layer.sources)
    return {name: count for name, count in upstream.items() if by_name[name].has_population}


def layer_scalings(method: Method, layers: list[Layer], batches: Iterable[dict], options: dict) -> dict:
    """{layer name: Scaling} for every layer with a population, in topological order; `batches` is read only
    if the method measures. A conv / dense term merged into a sum has none: it reaches the sum's population
    through the sum's potential."""
    rule = method.scaling
    measured = rule.measure(batches, options) if rule.measure else {}
    scalings = {}
    for layer in layers:
        if layer.op == "input":
            scalings[layer.name] = Scaling(1.0, 1.0)
        elif layer.op in PASS_THROUGH_OPS:
            spike = scalings[layer.source].spike
            scalings[layer.name] = Scaling(spike, spike)
        elif layer.has_population:
            source_spike = None if layer.op == "add" else scalings[layer.source].spike
            scalings[layer.name] = rule.scale(layer, source_spike, measured.get(layer.name), options)
    return scalings


def check_layers(method: Method, layers: list[Layer]) -> None:
    """The activations the method converts, residual sums only where it can scale them, max pools only of
    non-negative values, and no negative values into single-threshold neurons."""
    rule = method.scaling
    by_name = {layer.name: layer for layer in layers}
    for layer in layers[1:]:
        kind = layer.activation.kind
        if kind != "none" and kind not in rule.activations:
            raise ExportError(f"layer {layer.name!r}: method {method.name!r} cannot convert {layer.activation} "
                              f"(it converts {', '.join(rule.activations)}; {_converters(kind)})")
        if layer.op == "add":
            if not rule.residual:
                names = " or ".join(m.name for m in METHODS.values() if m.scaling.residual)
                raise ExportError(f"node {layer.name!r} is a residual sum: method {method.name!r} does not convert "
                                  f"sums (use {names})")
            if kind == "none":
                raise ExportError(f"node {layer.name!r}: a residual sum must be followed by an activation the method "
                                  f"converts ({', '.join(rule.activations)})")
        if layer.op == "maxpool2d" and not non_negative(by_name[layer.source], by_name):
            raise ExportError(f"max pool {layer.name!r} reads {layer.source!r}, whose outputs can be negative (or "
                              "the input): the spiking max gate passes the spikes of the neuron with the most "
                              "spike mass, which stands for the maximum only of non-negative values (put a ReLU "
                              "before the pool)")
        for name in layer.sources:
            source = by_name[name]
            if source.merged_into == layer.name:
                continue  # a merged term is part of this layer's input; its own source is checked with it
            if not rule.signed and source.op != "input" and not non_negative(source, by_name):
                raise ExportError(f"node {layer.name!r} reads {source.name!r}, whose outputs can be negative (no "
                                  f"ReLU or clip): method {method.name!r} has single-threshold neurons, which "
                                  "cannot carry negative activations (termapping and augmapping can)")


def _converters(kind: str) -> str:
    names = [m.name for m in METHODS.values() if kind in m.scaling.activations]
    return f"{kind} needs method {' or '.join(names)}"


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExportError(f"method must be one of {list(METHODS)}, got {name!r}")
    return METHODS[name]


# ----------------------------------------------------------------------------- options


def resolve_options(method: Method, given: dict) -> dict:
    """The method's options, in its order: the given ones (None = not given) checked, in the order given,
    the others their defaults. An option the method does not declare is an ExportError."""
    declared = {option.name: option for option in method.options}
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in given.items():
        if name not in declared:
            raise ExportError(f"option {name}={value!r} does not apply to method {method.name!r} "
                              f"(its options: {', '.join(sorted(declared))})")
    checked = {name: declared[name].check(value) for name, value in given.items()}
    return {name: checked.get(name, option.default) for name, option in declared.items()}


def _is_integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_percentile(value) -> float:
    if not _is_real(value) or not 0 < value <= 100:
        raise ExportError(f"percentile must be a number in (0, 100], got {value!r}")
    return float(value)


def _check_v_init_fraction(value) -> float:
    if not _is_real(value) or not 0 <= value <= 1:
        raise ExportError(f"v_init_fraction must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_m_aug(value) -> int:
    if not _is_integer(value) or value < 0:
        raise ExportError(f"m_aug must be an integer >= 1 (the bound M_aug, eq. 15) or 0 / None (unbounded), "
                          f"got {value!r}")
    return int(value)


#: The largest phase period: the phase encoder quantises inputs to K bits (semantics.md).
MAX_PHASE_PERIOD = 32


def _check_phase_period(value) -> int:
    if not _is_integer(value) or not 1 <= value <= MAX_PHASE_PERIOD:
        raise ExportError(f"phase_period must be an integer K from 1 to {MAX_PHASE_PERIOD} (S_k = 2^-(1+k), "
                          f"k = t mod K), got {value!r}")
    return int(value)


def _check_sync_neurons(value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ExportError(f"sync_neurons must be True or False, got {value!r}")
    return bool(value)


def _check_density(value) -> float:
    if not _is_real(value) or not 0 <= value <= 1:
        raise ExportError(f"sparse_below must be a fraction of nonzero weights in [0, 1] (0: never sparse), got "
                          f"{value!r}")
    return float(value)


def _choice(name: str, choices: tuple, meaning: str) -> Callable[[Any], Any]:
    """A check that accepts one of `choices` (strings compared exactly; an integer choice matches an equal
    integer, not a bool)."""

    def check(value):
        for choice in choices:
            if (isinstance(choice, str) and isinstance(value, str) and value == choice) or \
                    (_is_integer(choice) and _is_integer(value) and value == choice):
                return choice
        raise ExportError(f"{name} must be one of {', '.join(repr(c) for c in choices)} ({meaning}), got {value!r}")

    return check


PERCENTILE = Option("percentile", 100.0, _check_percentile,
                    "the percentile of each layer's positive activations that is its lambda (100: max normalisation)")
V_INIT_FRACTION = Option("v_init_fraction", 0.0, _check_v_init_fraction, "v(0) = fraction * theta_pos, in [0, 1)")
M_AUG = Option("m_aug", 0, _check_m_aug, "augmapping's coefficient bound M (eq. 15); 0: unbounded")
PHASE_PERIOD = Option("phase_period", 8, _check_phase_period, "K, the phase period under phase coding")
SYNC_NEURONS = Option("sync_neurons", True, _check_sync_neurons, "synchronous neurons on residual shortcuts")
#: Each brings one version-1 behaviour back, for ablations (docs/export.md, "Options").
DRIVE = Option("drive", kinds.GATED, _choice(
    "drive", (kinds.GATED, kinds.SPLIT), "bif pairs: untagged input and bias to the integrating unit only, or "
    "halved to both units as in format version 1"), "gated or split: which units of a bif pair take untagged input and bias")
RANK = Option("rank", kinds.VALUE, _choice(
    "rank", (kinds.VALUE, kinds.MASS), "what ranks a spiking max-pool's window: the sum of its events' values "
    "c * S_k, BSNN's firing rate, or their count as in format version 1"), "value or mass: what ranks a max-pool window")
BIAS_ONSET = Option("bias_onset", "auto", _choice(
    "bias_onset", ("auto", 0), "auto: a population's bias starts at the first step an event can reach it; 0: "
    "from t = 0 as in format version 1"), "auto or 0: when a population's bias starts")
POOL = Option("pool", "fold", _choice(
    "pool", ("fold", "population"), "an average pool folded into the next conv / dense layer, or a spiking "
    "population of its own as before"), "fold or population: how average pools convert")
SPARSE_BELOW = Option("sparse_below", 0.15, _check_density,
                      "a Linear layer with a smaller fraction of nonzero weights becomes a sparse projection")
READOUT = Option("readout", kinds.POTENTIAL, _choice(
    "readout", (kinds.POTENTIAL, kinds.SPIKES), "the output layer integrates and never fires, or fires with "
    "both thresholds and decides by its signed firing rate"), "potential or spikes: the output layer")


# ----------------------------------------------------------------------------- rate-norm


def _positive_percentiles(batches: Iterable[dict], options: dict) -> dict:
    """Per layer, the `percentile` of its positive outputs over the calibration set; 1 if it never activates.

    Zeros are left out (as in Rueckauer's SNN toolbox) so that sparsity does
    not pull the percentile down.
    """
    percentile = options["percentile"]
    positives: dict[str, list] = {}
    for outputs in batches:
        for name, a in outputs.items():
            a = a.ravel()
            a = a[a > 0]
            # at the maximum only the running max is needed, not every activation
            positives.setdefault(name, []).append(a.max(keepdims=True) if percentile >= 100 and a.size else a)
    lambdas = {}
    for name, parts in positives.items():
        a = np.concatenate(parts)
        lambdas[name] = float(np.percentile(a, percentile)) if a.size else 1.0
    return lambdas


def _rate_norm_scale(layer: Layer, source_spike: float, lam: float, options: dict) -> Scaling:
    return Scaling(lam, lam, {"lambda": lam})


_RESIDUAL_FORMULA = ("sum of the conv path (merged: W lambda_(l-1) / lambda_out) and the shortcut: identity "
                     "projection, scale lambda_in / lambda_out (BSNN eq. 16), or a 1x1 conv (+BN) projection "
                     "normalised like any layer; bias: the sum of both paths' biases / lambda_out; lambda_out from "
                     "the sum's post-ReLU activations")

_DATA_NORM_FORMULAS = {
    "normalisation": "data-based, per layer (BSNN eq. 6); lambda = percentile of positive activations",
    "lambda_input": 1.0,
    "theta": 1.0,
}
_DATA_NORM_WEIGHTS = "W * lambda_(l-1) / lambda_l, bias b / lambda_l, theta_pos 1, output_scale lambda_L"

#: Data-norm (BSNN eq. 6): spike = potential = lambda_l; the scaling of rate-norm, phase and bsnn.
DATA_NORM = ScalingRule(("relu",), signed=False, scale=_rate_norm_scale, measure=_positive_percentiles, residual=True)

def _sync_rewrite(layers: list[Layer], options: dict) -> list[Layer]:
    """Synchronous neurons on residual shortcuts when the `sync_neurons` option asks for them."""
    return insert_sync_neurons(layers) if options["sync_neurons"] else layers


_SYNCHRONOUS_NEURONS = ("BSNN III-E: a population on each shortcut that is shorter than the conv path (one per missing "
                        "population), identity projection of scale 1 from the shortcut's source, so both paths reach "
                        "the sum after the same number of populations")

#: rate-norm takes `sync_neurons` too (default off): the BSNN journal version's check that synchronous neurons do not
#: help under rate coding, where no population delays a value by a period.
RATE_NORM = Method(
    "rate-norm", DATA_NORM, RATE_IF, (PERCENTILE, V_INIT_FRACTION, replace(SYNC_NEURONS, default=False), POOL,
                                      SPARSE_BELOW),
    rewrite=_sync_rewrite,
    formulas={**_DATA_NORM_FORMULAS, "weights": _DATA_NORM_WEIGHTS, "residual": _RESIDUAL_FORMULA,
              "synchronous_neurons": _SYNCHRONOUS_NEURONS + " (if neurons, rate coding; off by default)"},
)


# ----------------------------------------------------------------------------- termapping


def _max_abs_outputs(batches: Iterable[dict], options: dict) -> dict:
    """Per layer, max |z| over the calibration set (Algorithm 1, line 5: z_i.abs().max())."""
    maxima: dict[str, float] = {}
    for outputs in batches:
        for name, a in outputs.items():
            maxima[name] = max(maxima.get(name, 0.0), float(np.abs(a).max(initial=0.0)))
    return maxima


def _termapping_scale(layer: Layer, source_spike: float, max_output: float, options: dict) -> Scaling:
    """Algorithm 1: post_factor P_l = max(max|W_l|, max|z_l|), lambda_l = P_l / P_(l-1); thresholds lambda_l."""
    max_weight = float(np.abs(layer.ann_weight).max())  # the ANN's W_l, also when a pool is folded into it
    post_factor = max(max_weight, max_output) or 1.0  # all-zero weights and outputs: any factor will do
    return Scaling(post_factor, source_spike, {"max_abs_weight": max_weight, "max_abs_output": max_output,
                                               "post_factor": post_factor, "lambda": post_factor / source_spike})


_NEGATIVE_SLOPE_READING = (
    "eq. 6 and 12-13 use one slope alpha for both signs; a LeakyReLU has two (alpha+ = 1 for u >= 0, "
    "alpha- = negative_slope for u < 0), so each threshold follows its own side: theta_P = 1/alpha+, "
    "theta_N = -1/alpha- (the paper's theta_N = -1/alpha, alpha read as the negative side's slope). A neuron "
    "whose net input u keeps one sign then fires at the signed rate u (u > 0) or negative_slope * u (u < 0): "
    "the LeakyReLU itself. ReLU (alpha- = 0) gets no negative threshold (theta_N = -inf); a hidden layer "
    "without activation (alpha- = 1) gets theta_N = -theta_P."
)

_SPIKING_READOUT = (
    "readout='potential': the output layer integrates and never fires, prediction argmax v; readout='spikes': "
    "it fires by the hidden layers' rule with the output's identity activation (theta_neg = -theta_pos), the "
    "method's max_coeff, v_init = v_init_fraction * theta_pos, and predicts the neuron with the largest signed "
    "firing rate (rank = value: 'the unit that has the biggest firing rate', section III-A)"
)

TERMAPPING = Method(
    "termapping", ScalingRule(("relu", "leaky_relu"), signed=True, scale=_termapping_scale, measure=_max_abs_outputs),
    RATE_IF, (V_INIT_FRACTION, POOL, SPARSE_BELOW, READOUT),
    formulas={
        "scaling": "Algorithm 1: P_0 = 1, P_l = max(max|W_l|, max|z_l|) over the calibration set, "
                   "lambda_l = P_l / P_(l-1); an average pool keeps P",
        "thresholds": "rescaled by lambda_l (eq. 2-3): theta_pos = lambda_l, theta_neg = -lambda_l / negative_slope",
        "weights": "W copied; bias b / P_(l-1) (the paper has no bias; this keeps rate_l = z_l / P_l); "
                   "output_scale P_(L-1)",
        "eq_12_13_reading": _NEGATIVE_SLOPE_READING,
        "readout_rule": _SPIKING_READOUT,
    },
)


# ----------------------------------------------------------------------------- augmapping


def _augmapping_scale(layer: Layer, source_spike: float, measured, options: dict) -> Scaling:
    """eq. 12-13: firing rate = activation when alpha theta_P = 1; weights and biases copied."""
    return Scaling(1.0, 1.0)


AUGMAPPING = Method(
    "augmapping", ScalingRule(("relu", "leaky_relu"), signed=True, scale=_augmapping_scale),
    RATE_IF, (V_INIT_FRACTION, M_AUG, POOL, SPARSE_BELOW, READOUT), max_coeff=lambda options: options["m_aug"],
    formulas={
        "thresholds": "eq. 12-13: theta_pos = 1/alpha+ = 1, theta_neg = -1/negative_slope",
        "weights": "W and b copied (eq. 6, 11); output_scale 1",
        "spikes": "augmented (eq. 4-5), coefficient bounded by m_aug (eq. 15; 0 = unbounded)",
        "eq_12_13_reading": _NEGATIVE_SLOPE_READING,
        "readout_rule": _SPIKING_READOUT,
    },
)


# ----------------------------------------------------------------------------- clip


def _clip_scale(layer: Layer, source_spike: float, measured, options: dict) -> Scaling:
    """Algorithm 1, lines 18-21: W, b copied, V_th = theta; a spike carries V_th (eq. 4), so evsim's unit
    events reach the next layer through W * theta_(l-1)."""
    theta = layer.activation.ceiling
    if theta is None:  # the readout: no clip, never fires
        return Scaling(1.0, 1.0)
    return Scaling(theta, 1.0, {"theta": theta})


CLIP = Method(
    "clip", ScalingRule(("clip",), signed=False, scale=_clip_scale, residual=True),
    RATE_IF, (replace(V_INIT_FRACTION, default=0.5), POOL, SPARSE_BELOW),  # Theorem 1's optimum, v(0) = V_th / 2
    formulas={
        "thresholds": "Algorithm 1: V_th^l = theta^l (the trained clip bound), v(0) = v_init_fraction * V_th^l",
        "weights": "W^l * theta^(l-1) (W copied, the spike's postsynaptic value V_th^(l-1), eq. 4), b copied; "
                   "output_scale 1",
        "residual": "a residual sum followed by clip(0, theta): threshold theta; the conv path merged (W theta_(l-1)), "
                    "the shortcut an identity projection of scale theta_source (its spikes carry theta_source), or a "
                    "1x1 conv (+BN) weighted like any layer; bias: both paths' biases",
    },
)


# ----------------------------------------------------------------------------- phase (weighted spikes) and bsnn


_PHASE_CODING = ("phase coding (BSNN eq. 4-5, Kim et al. 2018): with k = t mod K, S_k = 2^-(1+k), threshold "
                 "S_k * theta, a spike at step t carries S_k; bias and analog input are weighted by S_k; one "
                 "period carries one unit of activation")

_RANK_FORMULA = ("value: a spiking max-pool's window passes the neuron with the largest sum of event values c * S_k so "
                 "far (BSNN III-B: 'the neuron with the largest firing rate', eq. 4); mass: the most events (format "
                 "version 1)")

#: rate-norm's scaling with phase-coded if neurons (weighted spikes), the input phase-encoded.
PHASE = replace(
    RATE_NORM, name="phase", neurons=PHASE_IF, rewrite=None,
    options=(PERCENTILE, PHASE_PERIOD, V_INIT_FRACTION, RANK, POOL, SPARSE_BELOW),
    input_encoding=kinds.PHASE_ENCODER,
    formulas={
        **_DATA_NORM_FORMULAS,
        "coding": _PHASE_CODING,
        "neuron_model": "if (plain integrate-and-fire, reset by subtraction), binary weighted spikes",
        "weights": _DATA_NORM_WEIGHTS,
        "rank_rule": _RANK_FORMULA,
        "residual": _RESIDUAL_FORMULA,
    },
)


def population_depths(layers: list[Layer]) -> dict:
    """Per layer, the populations an input value crosses to reach it: the input 0, a population one more
    than its deepest source (a sum: its terms'; a merged term stands at its source), a max-pool relay as
    deep as its source (it passes spikes in the same step). Under bsnn each bif population delays a value
    by one period K, so this counts periods."""
    depth: dict[str, int] = {}
    for layer in layers:
        if layer.op == "input":
            depth[layer.name] = 0
        elif layer.merged_into is not None or layer.op == "maxpool2d":
            depth[layer.name] = depth[layer.source]
        else:
            depth[layer.name] = 1 + max(depth[name] for name in layer.sources)
    return depth


def insert_sync_neurons(layers: list[Layer]) -> list[Layer]:
    """BSNN III-E: synchronous neurons on every residual shortcut shorter than the sum's conv path.

    A term of a sum reaches it after `depth` populations (`population_depths`;
    a merged conv term counts from its source). A shorter term (the shortcut,
    identity or 1x1 conv: one ReLU / bif pair fewer than the conv path) gets
    one synchronous population per missing population, at the head of the
    shortcut (the identity of its source in the ANN, "a ReLU at the head of
    the shortcut path"), so both paths reach the sum after the same number of
    periods. In a basic block that is one population (two BIF neurons per
    value, as the paper says).
    """
    depth = population_depths(layers)
    taken = {layer.name for layer in layers}
    by_name = {layer.name: layer for layer in layers}
    inserts: dict[str, list[Layer]] = {}  # feeding layer -> synchronous layers to place right after it
    renamed: dict[tuple[str, str], str] = {}  # (reader, old source) -> new source
    for layer in layers:
        if layer.op != "add":
            continue
        arrival = {name: depth[name] for name in layer.sources}
        top = max(arrival.values())
        for name in layer.sources:
            missing = top - arrival[name]
            if missing == 0:
                continue
            term = by_name[name]
            feed = term.source if term.merged_into is not None else name
            reader = name if term.merged_into is not None else layer.name
            chain, previous = [], feed
            for i in range(missing):
                sync_name = _unique(f"{layer.name}_sync" + (str(i) if missing > 1 else ""), taken)
                chain.append(Layer(sync_name, "sync", by_name[feed].shape, (previous,)))
                previous = sync_name
            inserts.setdefault(feed, []).extend(chain)
            renamed[(reader, feed)] = previous
    rewritten = []
    for layer in layers:
        sources = tuple(renamed.get((layer.name, name), name) for name in layer.sources)
        rewritten.append(layer if sources == layer.sources else replace(layer, sources=sources))
        rewritten.extend(inserts.get(layer.name, []))
    return rewritten


def _unique(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


#: phase with bif pairs, the p-max 0.999 of BSNN Table I, and synchronous neurons on shortcuts.
BSNN = replace(
    PHASE, name="bsnn", neurons=PHASE_BIF, rewrite=_sync_rewrite,
    options=(replace(PERCENTILE, default=99.9), PHASE_PERIOD, V_INIT_FRACTION, SYNC_NEURONS, DRIVE, RANK, BIAS_ONSET,
             POOL, SPARSE_BELOW),
    formulas={
        "algorithm": "BSNN Algorithm 1: BN folded (eq. 7), data-norm with lambda_l the percentile (p-max) of "
                     "layer l's positive activations (eq. 6), V_th = 1",
        "lambda_input": 1.0,
        "theta": 1.0,
        "coding": _PHASE_CODING,
        "neuron_model": "bif pairs (eq. 13-15): A fires in odd periods t // K, B in even ones; a bif target's A "
                        "units take its bif sources' B spikes and vice versa",
        "weights": _DATA_NORM_WEIGHTS + "; under drive='split' (format version 1), inputs that reach both units of a "
                   "bif pair (the input's, the bias) are halved: each unit integrates them over two periods and fires "
                   "once; under drive='gated' they reach only the unit in its non-spike phase, in full",
        "drive_rule": "gated: a bif pair's untagged input and bias reach only the unit in its non-spike phase (A when "
                 "t // K is even, B when odd); split: both units, halved (format version 1)",
        "bias_onset_rule": "auto: a population's bias starts at K times the number of bif populations strictly upstream "
                      "of it on the shortest path from the input (the first step an event can reach it: each bif "
                      "population delays a value by one period; a relay by none); 0: from t = 0 (format version 1)",
        "rank_rule": _RANK_FORMULA,
        "residual": _RESIDUAL_FORMULA,
        "synchronous_neurons": _SYNCHRONOUS_NEURONS + " (bif pairs: the same number of periods)",
    },
)


METHODS = {method.name: method for method in (RATE_NORM, TERMAPPING, AUGMAPPING, CLIP, PHASE, BSNN)}


def declared_options() -> dict[str, tuple[str, list[tuple[str, Any]]]]:
    """Every option of every method: name -> (its meaning, [(method, its default there)]), in declaration order
    (the CLI's `evsim convert` options and their help come from here)."""
    uses: dict[str, tuple[str, list[tuple[str, Any]]]] = {}
    for method in METHODS.values():
        for option in method.options:
            uses.setdefault(option.name, (option.meaning, []))[1].append((method.name, option.default))
    return uses
