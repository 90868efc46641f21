"""Conversion methods: from the traced, folded layers (and calibration statistics) to neuron parameters.

A method decides two numbers per conv / dense layer, a `Scaling`:

- `spike`: the ANN activation that one spike of coefficient 1 stands for;
- `potential`: the ANN pre-activation that one unit of membrane potential
  stands for.

Everything else follows from them, the same way for every method
(`weight_scale` and `thresholds` here; export.build_network applies them,
and divides biases by the potential): a neuron integrates
u / potential per step (u = W z_source + b, the source's spikes worth
spike_source each), so its weights are W * spike_source / potential and its
bias b / potential; a positive spike must take away what it stands for,
theta_pos * potential = spike / alpha+ with alpha+ = 1 (every supported
activation has slope 1 above zero), and a negative spike likewise on the
negative slope, theta_neg * potential = -spike / negative_slope (no negative
threshold when that slope is 0: ReLU, clip). The readout integrates
u / potential, so its `output_scale` is its potential. The input's spike is
1 (inputs are ANN values as given); an average pool is linear, so its spike
and potential are its source's spike (threshold 1, and -1 when the source
can be negative).

| method     | spike of layer l        | potential of layer l    | max_coeff |
|------------|-------------------------|-------------------------|-----------|
| rate-norm  | lambda_l                | lambda_l                | 1         |
| termapping | P_l                     | P_(l-1) (source spike)  | 1         |
| augmapping | 1                       | 1                       | m_aug     |
| clip       | theta_l (clip bound)    | 1                       | 1         |

A new method (phase, bsnn, ...) is one more `Method`: its options, the
activations it converts, whether it has negative thresholds, an optional
calibration statistic and its per-layer `Scaling`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from evsim.errors import ExportError
from evsim.weights_io.trace import Layer, non_negative


@dataclass(frozen=True)
class Scaling:
    """What one spike and one unit of membrane potential of a layer stand for, in ANN units."""

    spike: float
    potential: float
    record: dict = field(default_factory=dict)  # the method's own per-layer facts, for /meta


@dataclass(frozen=True)
class Method:
    """A conversion method, selected by `name` (`convert_model(method=...)`)."""

    name: str
    defaults: dict  # the options it takes, with their defaults
    activations: tuple[str, ...]  # hidden-layer activations it converts
    signed: bool  # negative thresholds: a layer may read a source whose outputs can be negative
    scale: Callable  # (layer, source spike, its measured statistic, options) -> Scaling
    measure: Optional[Callable] = None  # (batches of weighted-layer outputs, options) -> {layer: statistic}
    max_coeff: Callable = lambda options: 1  # binary / ternary unless augmented
    formulas: dict = field(default_factory=dict)  # what /meta says about the method


# ----------------------------------------------------------------------------- the shared rules


def weight_scale(scaling: Scaling, source: Scaling) -> float:
    return source.spike / scaling.potential


def thresholds(scaling: Scaling, negative_slope: float) -> tuple[float, Optional[float]]:
    """(theta_pos, theta_neg): theta_pos = spike / (potential alpha+), theta_neg = -spike / (potential alpha-)."""
    theta_pos = scaling.spike / scaling.potential
    theta_neg = -theta_pos / negative_slope if negative_slope > 0 else None
    return theta_pos, theta_neg


def layer_scalings(method: Method, layers: list[Layer], batches: Iterable[dict], options: dict) -> dict:
    """{layer name: Scaling} for every layer, in topological order; `batches` is read only if the method measures."""
    measured = method.measure(batches, options) if method.measure else {}
    scalings = {}
    for layer in layers:
        if layer.op == "input":
            scalings[layer.name] = Scaling(1.0, 1.0)
        elif layer.op == "avgpool2d":
            spike = scalings[layer.source].spike
            scalings[layer.name] = Scaling(spike, spike)
        else:
            scalings[layer.name] = method.scale(layer, scalings[layer.source].spike, measured.get(layer.name), options)
    return scalings


def check_layers(method: Method, layers: list[Layer]) -> None:
    """The activations the method converts, and no negative values into single-threshold neurons."""
    by_name = {layer.name: layer for layer in layers}
    for layer in layers[1:]:
        kind = layer.activation.kind
        if kind != "none" and kind not in method.activations:
            raise ExportError(f"layer {layer.name!r}: method {method.name!r} cannot convert {layer.activation} "
                              f"(it converts {', '.join(method.activations)}; {_converters(kind)})")
        source = by_name[layer.source]
        if not method.signed and source.op != "input" and not non_negative(source, by_name):
            raise ExportError(f"node {layer.name!r} reads {source.name!r}, whose outputs can be negative (no ReLU "
                              f"or clip): method {method.name!r} has single-threshold neurons, which cannot carry "
                              "negative activations (termapping and augmapping can)")


def _converters(kind: str) -> str:
    names = [m.name for m in METHODS.values() if kind in m.activations]
    return f"{kind} needs method {' or '.join(names)}"


def resolve_options(method: Method, given: dict) -> dict:
    """The method's options: its defaults updated by the given ones (None = not given), checked."""
    for name, value in given.items():
        if value is not None and name not in method.defaults:
            raise ExportError(f"option {name}={value!r} does not apply to method {method.name!r} "
                              f"(its options: {', '.join(sorted(method.defaults))})")
    options = {**method.defaults, **{k: v for k, v in given.items() if v is not None and k in method.defaults}}
    _check_option_values(options)
    return options


def _check_option_values(options: dict) -> None:
    if "percentile" in options:
        if not 0 < options["percentile"] <= 100:
            raise ExportError(f"percentile must be in (0, 100], got {options['percentile']}")
        options["percentile"] = float(options["percentile"])
    if not 0 <= options["v_init_fraction"] <= 1:
        raise ExportError(f"v_init_fraction must be in [0, 1], got {options['v_init_fraction']}")
    options["v_init_fraction"] = float(options["v_init_fraction"])
    if "m_aug" in options:
        m_aug = options["m_aug"]
        if isinstance(m_aug, bool) or not isinstance(m_aug, (int, np.integer)) or m_aug < 0:
            raise ExportError(f"m_aug must be an integer >= 1 (the bound M_aug, eq. 15) or 0 / None (unbounded), "
                              f"got {m_aug!r}")
        options["m_aug"] = int(m_aug)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExportError(f"method must be one of {list(METHODS)}, got {name!r}")
    return METHODS[name]


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


RATE_NORM = Method(
    "rate-norm", {"percentile": 100.0, "v_init_fraction": 0.0}, ("relu",), signed=False,
    scale=_rate_norm_scale, measure=_positive_percentiles,
    formulas={
        "normalisation": "data-based, per layer (BSNN eq. 6); lambda = percentile of positive activations",
        "lambda_input": 1.0,
        "theta": 1.0,
        "weights": "W * lambda_(l-1) / lambda_l, bias b / lambda_l, theta_pos 1, output_scale lambda_L",
    },
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
    max_weight = float(np.abs(layer.weight).max())
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

TERMAPPING = Method(
    "termapping", {"v_init_fraction": 0.0}, ("relu", "leaky_relu"), signed=True,
    scale=_termapping_scale, measure=_max_abs_outputs,
    formulas={
        "scaling": "Algorithm 1: P_0 = 1, P_l = max(max|W_l|, max|z_l|) over the calibration set, "
                   "lambda_l = P_l / P_(l-1); an average pool keeps P",
        "thresholds": "rescaled by lambda_l (eq. 2-3): theta_pos = lambda_l, theta_neg = -lambda_l / negative_slope",
        "weights": "W copied; bias b / P_(l-1) (the paper has no bias; this keeps rate_l = z_l / P_l); "
                   "output_scale P_(L-1)",
        "eq_12_13_reading": _NEGATIVE_SLOPE_READING,
    },
)


# ----------------------------------------------------------------------------- augmapping


def _augmapping_scale(layer: Layer, source_spike: float, measured, options: dict) -> Scaling:
    """eq. 12-13: firing rate = activation when alpha theta_P = 1; weights and biases copied."""
    return Scaling(1.0, 1.0)


AUGMAPPING = Method(
    "augmapping", {"v_init_fraction": 0.0, "m_aug": 0}, ("relu", "leaky_relu"), signed=True,
    scale=_augmapping_scale, max_coeff=lambda options: options["m_aug"],
    formulas={
        "thresholds": "eq. 12-13: theta_pos = 1/alpha+ = 1, theta_neg = -1/negative_slope",
        "weights": "W and b copied (eq. 6, 11); output_scale 1",
        "spikes": "augmented (eq. 4-5), coefficient bounded by m_aug (eq. 15; 0 = unbounded)",
        "eq_12_13_reading": _NEGATIVE_SLOPE_READING,
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
    "clip", {"v_init_fraction": 0.5}, ("clip",), signed=False, scale=_clip_scale,
    formulas={
        "thresholds": "Algorithm 1: V_th^l = theta^l (the trained clip bound), v(0) = v_init_fraction * V_th^l",
        "weights": "W^l * theta^(l-1) (W copied, the spike's postsynaptic value V_th^(l-1), eq. 4), b copied; "
                   "output_scale 1",
    },
)


METHODS = {method.name: method for method in (RATE_NORM, TERMAPPING, AUGMAPPING, CLIP)}
