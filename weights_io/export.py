"""The PyTorch exporter: a trained ANN -> an evsim `Network` (and file), by a named method.

Conversion (docs/export.md has the formulas of every method):

1. The model is traced with torch.fx and its batch norms folded
   (`weights_io.trace`: the supported nodes are listed there; residual sums
   and max pools included).
2. The method (`weights_io.methods`: "rate-norm", "termapping",
   "augmapping", "clip", "phase", "bsnn") checks that it can convert the
   layers; average pools are folded into the conv / dense layer after them
   (`trace.fold_pools`, option `pool="fold"`, exact or refused); the method
   may rewrite the layers (bsnn: synchronous neurons on residual
   shortcuts), measures what it needs on the calibration set, and gives
   every conv / dense layer and every residual sum a `Scaling`: what one
   spike and one unit of membrane potential stand for in ANN units. Weights,
   biases, thresholds and the readout's `output_scale` follow from it by one
   set of rules, the same for every method (`methods.weight_scale`,
   `methods.thresholds`, and `methods.reach`: the bif halving, under
   `drive="split"` only).
3. Every hidden conv / dense layer becomes a population of the method's
   neurons (`if` with rate coding; `if` with phase coding under "phase";
   `bif` pairs with phase coding under "bsnn", gated drive, each bias from
   the first step an event can reach it), with the method's `max_coeff`,
   its bias per channel / neuron, v_init = v_init_fraction * theta_pos.
   With `pool="population"` an `AvgPool2d` becomes an `avgpool2d`
   projection into its own hidden population (threshold 1 in units of its
   source's spikes, -1 as well when the source can be negative): the pool of
   spikes is re-encoded as spikes. A `MaxPool2d` becomes a `maxpool2d`
   projection (the spiking max gate; ranked by value under phase and bsnn)
   into a `relay` population, which passes the winner's spikes unchanged. A
   residual sum becomes one hidden population fed by each of its terms: the
   merged conv path, and an identity shortcut of scale lambda_in / lambda_out
   (BSNN eq. 16) or a 1x1-conv shortcut. The output layer becomes a `readout`
   population in `potential` mode (or, termapping and augmapping with
   `readout="spikes"`, a spiking readout ranked by value), whose rate
   (drive / W(t), W(t) the sum of its step weights) times `output_scale`
   approximates the ANN's output.
4. `/ann` (MACs of the ANN as it is, pools included, accuracy, the ANN's
   outputs on the samples, and per population what one spike stands for:
   lambda under rate-norm), `/samples`
   and `/meta` (method, options, per-layer scalings and thresholds) are
   filled in.

Factors are computed in float64 (activations are measured in the model's
own float32); weights and parameters are stored as float32. torch is
imported only inside the functions, so this module (and `evsim.weights_io`)
imports without it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from evsim import kinds
from evsim.errors import ExportError
from evsim.geometry import window_pairs
from evsim.network import AnnInfo, Network, Population, Projection, Samples
from evsim.weights_io.methods import (
    RATE_IF,
    Neurons,
    Scaling,
    bif_crossings,
    check_layers,
    get_method,
    layer_scalings,
    reach,
    resolve_options,
    thresholds,
    weight_scale,
)
from evsim.weights_io.trace import (
    Layer,
    fold_pools,
    non_negative,
    run_layers,
    torch_module,
    trace_model,
    weighted_layer_outputs,
)

__all__ = ["Build", "ann_macs", "architecture_string", "build_network", "convert_model", "export_model", "run_layers",
           "trace_model"]

POOL_HANDLING = {
    "population": ("avgpool2d projection into a hidden population of the method's neurons (theta_pos 1 in units of "
                   "its source's spikes, theta_neg -1 when the source can be negative)"),
    "fold": ("folded into the one conv / dense layer that reads it (exact: that layer reads the pool's input, its "
             "weight spread over each pool window / (kh kw); a conv's kernel, stride and padding times the pool's "
             "stride); no population, no pool ops"),
}
MAXPOOL_HANDLING = ("maxpool2d projection (the spiking max gate: per window, the spikes of the neuron ranked first so "
                    "far pass: by the sum of its event values under rank 'value', by its spike count under 'mass') "
                    "into a relay population, lambda kept from its source; only of non-negative sources")
RESIDUAL_HANDLING = ("a sum (followed by its ReLU) is one hidden population: the conv path's last conv (+BN) is a "
                     "projection into it, normalised by the sum's lambda_out; an identity shortcut is an identity "
                     "projection of scale lambda_in / lambda_out (BSNN eq. 16), a 1x1-conv (+BN) shortcut a conv2d "
                     "projection normalised like any layer; its bias is the sum of both paths' biases / lambda_out")


# ----------------------------------------------------------------------------- the ANN's cost


def ann_macs(layers: list[Layer]) -> dict:
    """MACs per sample and layer (accounting.md): dense in*out, conv Cout*Hout*Wout*Cin/g*kh*kw,
    average and max pools one add / compare per (input element, window holding it), a sum one add per
    output element and extra term; synchronous neurons (the identity in the ANN) none."""
    shapes = {layer.name: layer.shape for layer in layers}
    macs = {}
    for layer in layers:
        if layer.op in ("conv2d", "dense"):
            macs[layer.name] = int(np.prod(layer.shape)) * int(np.prod(layer.weight.shape[1:]))
        elif layer.op in ("avgpool2d", "maxpool2d"):
            channels, *hw_in = shapes[layer.source]
            rows, cols = (window_pairs(hw_in[i], layer.kernel[i], layer.stride[i], layer.padding[i]) for i in range(2))
            macs[layer.name] = channels * rows * cols
        elif layer.op == "add":
            macs[layer.name] = (len(layer.sources) - 1) * int(np.prod(layer.shape))
    return macs


# ----------------------------------------------------------------------------- the network


def _bias_parameter(bias: np.ndarray) -> np.ndarray:
    """A scalar 0 when there is no bias, else one value per channel / neuron."""
    return np.zeros((), np.float32) if not np.any(bias) else bias.astype(np.float32)


#: The projection kind of a layer's own projection, by its op (a sum's identity shortcut is an identity too).
_PROJECTION_KIND = {"conv2d": kinds.CONV2D, "dense": kinds.DENSE, "avgpool2d": kinds.AVGPOOL2D,
                    "maxpool2d": kinds.MAXPOOL2D, "sync": kinds.IDENTITY}


@dataclass(frozen=True)
class Build:
    """How layers become populations, beyond their scalings: what every method shares, with its defaults the
    version-1 network (format version 1: binary spikes, potential readout, mass-ranked max pools, biases from
    t = 0)."""

    neurons: Neurons = RATE_IF  # the hidden populations' (the input, relays and the readout get its coding, period)
    max_coeff: int = 1
    v_init_fraction: float = 0.0
    input_encoding: str = kinds.ANALOG
    pool_rank: str = kinds.MASS  # rank of the maxpool2d projections
    readout: str = kinds.POTENTIAL  # the output population's mode; a spiking one is ranked by value
    bias_onset: bool = False  # a population's bias starts at the first step an event can reach it (bsnn)
    sparse_below: float = 0.0  # a dense layer with at most this fraction of nonzero weights becomes `sparse`

    @property
    def drive(self) -> Optional[str]:
        return self.neurons.drive


class _Builder:
    """Populations and projections, one layer at a time (topological order)."""

    def __init__(self, layers: list[Layer], scalings: dict, build: Build):
        self.layers, self.scalings, self.build = layers, scalings, build
        self.by_name = {layer.name: layer for layer in layers}
        self.populations: list[Population] = []
        self.projections: list[Projection] = []
        self.summary: list[dict] = []
        self.tagged: dict[str, bool] = {}  # population -> whether its events carry A/B tags
        bifs = bif_crossings(layers, lambda layer: self.population_kind(layer) is kinds.BIF)
        # the first step an event can reach each population (recorded under bif neurons; written as bias_onset)
        self.onsets = {name: count * build.neurons.phase_period for name, count in bifs.items()}

    def population_kind(self, layer: Layer) -> kinds.PopulationKind:
        if layer.op == "input":
            return kinds.INPUT
        if layer is self.layers[-1]:
            return kinds.READOUT
        return kinds.RELAY if layer.op == "maxpool2d" else self.build.neurons.kind

    def reach(self, kind: kinds.PopulationKind, tagged: bool) -> float:
        return reach(kind, tagged, self.build.drive)

    def population(self, layer: Layer, kind: kinds.PopulationKind, **fields) -> None:
        """`layer`'s population, with the neurons' coding and period; whether its events carry A/B tags."""
        # a bif pair tags its own events, a relay passes its source's (kinds.py `tags`), others have none
        self.tagged[layer.name] = self.tagged[layer.source] if kind.tags == "source" else kind.tags == "own"
        if kind is kinds.BIF:
            fields["drive"] = self.build.drive
        neurons = self.build.neurons
        self.populations.append(Population(layer.name, kind.name, layer.shape, len(self.populations),
                                           coding=neurons.coding, phase_period=neurons.phase_period, **fields))

    def add(self, layer: Layer) -> None:
        build = self.build
        if layer.op == "input":
            self.population(layer, kinds.INPUT, encoding=build.input_encoding)
            return
        kind = self.population_kind(layer)
        scaling = self.scalings[layer.name]
        entry = {"layer": layer.name, "op": layer.op, "population": kind.name}
        onset = self.onsets[layer.name]
        if build.neurons.kind is kinds.BIF:
            entry["onset"] = onset
        if layer.op == "maxpool2d":
            self.project(layer, layer.name, kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                         rank=build.pool_rank)
            self.population(layer, kind)
            entry.update(rank=build.pool_rank, spike=scaling.spike, potential=scaling.potential)
            self.summary.append(entry)
            return
        bias, negative_slope = self.incoming(layer, kind, scaling, entry)
        bias_reach = self.reach(kind, tagged=False)  # a bias is never tagged
        readout = kind is kinds.READOUT
        fires = not readout or build.readout == kinds.SPIKES
        # a potential readout never fires (its theta_pos is only recorded); a spiking one has both thresholds
        theta_pos, theta_neg = thresholds(scaling, negative_slope if fires else 0.0)
        v_init = build.v_init_fraction * theta_pos if fires else 0.0
        bias = _bias_parameter(bias * bias_reach)
        bias_onset = onset if build.bias_onset and np.any(bias) else 0
        readout_fields = {"mode": build.readout, **({"rank": kinds.VALUE} if fires else {})} if readout else {}
        self.population(
            layer, kind, max_coeff=build.max_coeff if fires else 1, theta_pos=np.array(theta_pos, np.float32),
            theta_neg=None if theta_neg is None else np.array(theta_neg, np.float32),
            v_init=np.array(v_init, np.float32), bias=bias, bias_onset=bias_onset, **readout_fields,
        )
        if layer.weighted or layer.op == "add":
            entry["bias_scale"] = bias_reach / scaling.potential
        entry.update(spike=scaling.spike, potential=scaling.potential, theta_pos=theta_pos, theta_neg=theta_neg,
                     v_init=v_init, bias_onset=bias_onset, **scaling.record)
        if readout:
            entry.update(mode=build.readout, output_scale=scaling.potential, **({"rank": kinds.VALUE} if fires else {}))
        self.summary.append(entry)

    def incoming(self, layer: Layer, kind: kinds.PopulationKind, scaling: Scaling,
                 entry: dict) -> tuple[np.ndarray, float]:
        """The projections into `layer`'s population; its bias (in units of its potential, before the bif
        halving) and the negative slope its thresholds follow."""
        if layer.op == "avgpool2d":
            # a pool is linear: it carries negative values exactly when its source has them
            self.project(layer, layer.name, scale=self.reach(kind, self.tagged[layer.source]), kernel=layer.kernel,
                         stride=layer.stride, padding=layer.padding)
            return np.zeros(()), 0.0 if non_negative(self.by_name[layer.source], self.by_name) else 1.0
        if layer.op == "sync":  # synchronous neurons: the identity of a non-negative value, threshold 1
            self.project(layer, layer.name, scale=self.reach(kind, self.tagged[layer.source]))
            return np.zeros(()), 0.0
        if layer.op == "add":
            terms, bias = [], np.zeros(())
            for name in layer.sources:
                term = self.by_name[name]
                if term.merged_into == layer.name:
                    terms.append(self.weighted(term, layer.name, kind, scaling))
                    bias = bias + term.bias
                else:  # the shortcut: BSNN eq. 16, scale lambda_in / lambda_out
                    halving = self.reach(kind, self.tagged[name])
                    factor = weight_scale(scaling, self.scalings[name]) * halving
                    self.projections.append(Projection(f"{layer.name}.{name}", kinds.IDENTITY.name, name, layer.name,
                                                       scale=factor))
                    terms.append({"source": name, "projection": f"{layer.name}.{name}", "scale": factor,
                                  **({"bif_halving": halving} if halving != 1 else {})})
            entry.update(activation=str(layer.activation), terms=terms)
            return bias / scaling.potential, layer.activation.negative_slope
        entry.update(activation=str(layer.activation), **self.weighted(layer, layer.name, kind, scaling))
        return layer.bias / scaling.potential, layer.activation.negative_slope

    def weighted(self, layer: Layer, target: str, kind: kinds.PopulationKind, scaling: Scaling) -> dict:
        """A conv / dense projection from `layer`'s source into `target` (itself, or the sum it is merged into)."""
        halving = self.reach(kind, self.tagged[layer.source])
        factor = weight_scale(scaling, self.scalings[layer.source]) * halving
        weight = (layer.weight * factor).astype(np.float32)
        density = np.count_nonzero(weight) / weight.size
        folded = {}
        if layer.op == "dense" and self.build.sparse_below > 0 and density <= self.build.sparse_below:
            # pruned: only the kept weights are synapses, so zeros cost nothing in delivery or in the counts
            self.projections.append(Projection(layer.name, kinds.SPARSE.name, layer.source, target,
                                               **_source_major_csr(weight)))
            folded["sparse"] = {"density": density, "kept": int(np.count_nonzero(weight))}
        else:
            self.project(layer, target, weight=weight, stride=layer.stride, padding=layer.padding,
                         dilation=layer.dilation, groups=layer.groups)
        if layer.folded:  # average pools folded into it: a conv's geometry is then over the first pool's input
            folded["folded_pools"] = list(layer.folded)
            if layer.op == "conv2d":
                folded.update(kernel=list(layer.weight.shape[2:]), stride=list(layer.stride), padding=list(layer.padding))
        return {"source": layer.source, "projection": layer.name, "weight_scale": factor, **folded,
                **({"bif_halving": halving} if halving != 1 else {})}

    def project(self, layer: Layer, target: str, **fields) -> None:
        """`layer`'s own projection from its source into `target`, named after it, of the kind its op maps to."""
        kind = _PROJECTION_KIND[layer.op]
        self.projections.append(Projection(layer.name, kind.name, layer.source, target, **fields))


def _source_major_csr(weight: np.ndarray) -> dict:
    """A dense weight [out, in] as a sparse projection's CSR rows, one per source neuron, nonzero entries only."""
    targets, sources = np.nonzero(weight)
    order = np.lexsort((targets, sources))  # by source, then target
    sources, targets = sources[order], targets[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(sources, minlength=weight.shape[1]))]).astype(np.int64)
    return {"indptr": indptr, "indices": targets.astype(np.int64), "weight": weight[targets, sources]}


def kept_macs(layers: list[Layer]) -> dict:
    """The ANN's MACs over its nonzero weights (a pruned model's real work): dense nnz, conv Hout x Wout x nnz."""
    return {layer.name: int(np.count_nonzero(layer.weight)) * (int(np.prod(layer.shape[1:])) if layer.op == "conv2d"
                                                                 else 1)
            for layer in layers if layer.op in ("conv2d", "dense")}


def build_network(layers: list[Layer], scalings: dict,
                  build: Build = Build()) -> tuple[list[Population], list[Projection], list[dict]]:
    """Populations and projections for the layers' `Scaling`s (methods.py), in topological order,
    and a per-layer summary of what was set (for /meta).

    Into a `bif` population under `split` drive, whatever reaches both units of a pair (an untagged source's
    events or current, the bias) is halved (`methods.reach`); under `gated` drive nothing is. With
    `build.bias_onset`, a population's bias starts at K times the bif populations upstream of it
    (`methods.bif_crossings`).
    """
    builder = _Builder(layers, scalings, build)
    for layer in layers:
        if layer.has_population:
            builder.add(layer)
    return builder.populations, builder.projections, builder.summary


def architecture_string(layers: list[Layer]) -> str:
    """The papers' notation, e.g. 12c5-p2-64c5-p2-10 (mp2: a max pool; res: a residual sum)."""
    parts = []
    for layer in layers:
        if layer.op == "conv2d":
            stride = f"s{layer.stride[0]}" if layer.stride != (1, 1) else ""
            parts.append(f"{layer.shape[0]}c{layer.weight.shape[2]}{stride}")
        elif layer.op in ("avgpool2d", "maxpool2d"):
            parts.append(f"{'m' if layer.op == 'maxpool2d' else ''}p{layer.kernel[0]}")
        elif layer.op == "dense":
            parts.append(str(layer.shape[0]))
        elif layer.op == "add":
            parts.append("res")
    return "-".join(parts)


def _calibration_tensor(calibration):
    """The calibration inputs as one batch: a tensor or array as it is, or every batch of an iterable such as a
    `torch.utils.data.DataLoader` (its batches `x` or `(x, y, ...)`), concatenated."""
    torch = torch_module()
    if isinstance(calibration, (torch.Tensor, np.ndarray)) or not hasattr(calibration, "__iter__"):
        return _as_tensor(calibration, "calibration")
    batches = []
    for i, batch in enumerate(calibration):
        inputs = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
        if not isinstance(inputs, (torch.Tensor, np.ndarray)):
            raise ExportError(f"calibration: batch {i} of the {type(calibration).__name__} holds a "
                              f"{type(inputs).__name__}, not a tensor of inputs (or an (inputs, labels) pair)")
        batches.append(_as_tensor(inputs, f"calibration batch {i}", None if not batches else batches[0].shape[1:]))
    if not batches:
        raise ExportError(f"calibration: the {type(calibration).__name__} gave no batches")
    return torch.cat(batches)


def _as_tensor(array, name: str, shape=None):
    torch = torch_module()
    try:
        tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))
    except (TypeError, ValueError) as err:
        raise ExportError(f"{name}: not an array of numbers [n, *input shape] ({err})") from None
    if tensor.ndim < 2 or len(tensor) == 0 or (shape is not None and tuple(tensor.shape[1:]) != tuple(shape)):
        raise ExportError(f"{name}: expected a non-empty batch [n, *input shape]"
                          + (f" with input shape {list(shape)}" if shape is not None else "")
                          + f", got {list(tensor.shape)}")
    return tensor


def _samples(inputs, labels, shape, encoding: str) -> Samples:
    inputs = _as_tensor(inputs, "samples", shape)
    _check_input_range(inputs, "samples", encoding)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(inputs):
            raise ExportError(f"labels: {len(labels)} labels for {len(inputs)} samples")
    return Samples(inputs.numpy(), labels)


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (batch norm running statistics, no dropout) for the conversion; the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _predict(model, inputs, batch_size: int) -> np.ndarray:
    """The model's outputs, float32 `[n, output size]`."""
    torch = torch_module()
    inputs = torch.as_tensor(inputs)
    with torch.no_grad():
        outputs = [model(inputs[s:s + batch_size]).numpy() for s in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs).reshape(len(inputs), -1).astype(np.float32)


def _accuracy(model, ann_eval: tuple, shape, batch_size: int) -> float:
    inputs, labels = _as_tensor(ann_eval[0], "ann_eval inputs", shape), np.asarray(ann_eval[1]).reshape(-1)
    if len(labels) != len(inputs):
        raise ExportError(f"ann_eval: {len(labels)} labels for {len(inputs)} inputs")
    return float(np.mean(_predict(model, inputs, batch_size).argmax(1) == labels))


def _check_input_range(inputs, name: str, encoding: str) -> None:
    """The inputs within the range the encoder reads; lambda_0 = 1, so inputs are used as given."""
    low, high = kinds.ENCODER_RANGES[encoding]
    if float(inputs.min()) < low or float(inputs.max()) > high:
        raise ExportError(f"{name}: {encoding} input needs values in [{low}, {high}], got "
                          f"[{float(inputs.min())}, {float(inputs.max())}]; scale the inputs"
                          + ("" if encoding == kinds.ANALOG else f" or use input_encoding='{kinds.ANALOG}'"))


def _check_encoding(input_encoding: str) -> None:
    if input_encoding not in kinds.ENCODERS:
        raise ExportError(f"input_encoding must be one of {kinds.ENCODERS}, got {input_encoding!r}")


def convert_model(
    model,
    *,
    calibration,
    method: str = "rate-norm",
    samples=None,
    labels=None,
    percentile: Optional[float] = None,
    v_init_fraction: Optional[float] = None,
    m_aug: Optional[int] = None,
    phase_period: Optional[int] = None,
    sync_neurons: Optional[bool] = None,
    drive: Optional[str] = None,
    rank: Optional[str] = None,
    bias_onset=None,
    pool: Optional[str] = None,
    readout: Optional[str] = None,
    sparse_below: Optional[float] = None,
    input_encoding: Optional[str] = None,
    ann_eval: Optional[tuple] = None,
    dataset: str = "",
    architecture: Optional[str] = None,
    seeds: Any = None,
    meta: Optional[dict] = None,
    producer: Optional[str] = None,
    batch_size: int = 256,
) -> Network:
    """Convert a trained ANN (PyTorch) into an evsim `Network` by `method`.

    - `calibration`: inputs `[n, *input shape]` (tensor or array, or an iterable of
      batches such as a DataLoader: `x` or `(x, y)` each); their min and max go to
      /meta as `calibration_range`, which runs check their inputs against; the input
      shape is taken from it; rate-norm, termapping, phase and bsnn measure
      their factors on it (augmapping and clip need it only for the shapes).
    - `method`: "rate-norm" (ReLU ANNs, BSNN eq. 6), "termapping" and
      "augmapping" (ReLU / LeakyReLU ANNs, double-threshold paper),
      "clip" (ANNs with `weights_io.layers.TrainableClip`, potential-
      initialization paper), "phase" (ReLU ANNs, weighted spikes: phase
      coding with IF neurons, Kim et al. 2018 / BSNN eq. 4-5), "bsnn" (ReLU
      ANNs, bistable bif pairs, BSNN Algorithm 1). docs/export.md gives each
      one's formulas. Residual sums: rate-norm, phase, bsnn; max pools: all.
    - Method options (None = the method's default; an option the method does
      not take is an `ExportError`):
      `percentile` (rate-norm, phase: 100 = max normalisation; bsnn 99.9, the
      p-max 0.999 of BSNN Table I),
      `v_init_fraction` (all: v(0) = fraction * theta_pos; 0, clip 0.5),
      `m_aug` (augmapping: the coefficient bound M_aug of eq. 15; 0 = unbounded),
      `phase_period` (phase, bsnn: the period K, default 8),
      `sync_neurons` (bsnn, default True; rate-norm, default False: synchronous neurons on residual shortcuts),
      `drive` (bsnn: "gated", default: a bif pair's untagged input and bias reach only its integrating unit;
      "split": both units, halved, as in format version 1),
      `rank` (phase, bsnn: "value", default: a spiking max-pool ranks by the sum of event values, BSNN's
      firing rate; "mass": by spike count, version 1),
      `bias_onset` (bsnn: "auto", default: a population's bias starts at the first step an event can reach it,
      K per bif population upstream; 0: from t = 0, version 1),
      `pool` (all: "fold", default: an average pool is folded into the conv / dense layer after it, exactly,
      or refused with an ExportError; "population": a spiking population of its own, version 1),
      `readout` (termapping, augmapping: "potential", default: the output integrates and never fires;
      "spikes": it fires with both thresholds and predicts by its signed firing rate),
      `sparse_below` (all: 0.15, default: a Linear layer with at most that fraction of nonzero weights, a pruned
      one, becomes a `sparse` projection of its kept weights; 0: never).
    - `samples`, `labels`: embedded as `/samples`; the ANN's outputs on them
      go to `/ann/outputs`.
    - `input_encoding`: the input population's default encoder (default:
      the method's: "phase" for phase and bsnn, else "analog").
    - `ann_eval`: `(inputs, labels)` for `/ann/accuracy`; without it the
      accuracy is measured on `samples` when `labels` are given.
    - `dataset`, `architecture` (default: derived, e.g. "12c5-p2-64c5-p2-10"),
      `seeds`, `meta` (extra entries): recorded in the `/meta` conversion JSON.

    The model is put in eval mode for the conversion (and its mode restored).
    `AnnInfo.lambdas[i]` is what one spike of `populations[i]` stands for in
    ANN units (rate-norm, phase, bsnn: lambda; 1 for the input).
    """
    torch = torch_module()
    chosen = get_method(method)
    options = resolve_options(chosen, {"percentile": percentile, "v_init_fraction": v_init_fraction, "m_aug": m_aug,
                                       "phase_period": phase_period, "sync_neurons": sync_neurons, "drive": drive,
                                       "rank": rank, "bias_onset": bias_onset, "pool": pool, "readout": readout,
                                       "sparse_below": sparse_below})
    input_encoding = chosen.input_encoding if input_encoding is None else input_encoding
    _check_encoding(input_encoding)
    calibration = _calibration_tensor(calibration)
    _check_input_range(calibration, "calibration", input_encoding)
    shape = tuple(calibration.shape[1:])
    sample_set = None if samples is None else _samples(samples, labels, shape, input_encoding)
    evaluate_on_samples = ann_eval is None and sample_set is not None and sample_set.labels is not None
    if evaluate_on_samples:
        ann_eval = (sample_set.inputs, sample_set.labels)
    with _eval_mode(model):
        ann_layers = layers = trace_model(model, calibration[:2])
        check_layers(chosen, layers)
        if options["pool"] == "fold":
            layers = fold_pools(layers)
        if chosen.rewrite is not None:
            layers = chosen.rewrite(layers, options)
        scalings = layer_scalings(chosen, layers, weighted_layer_outputs(layers, calibration, batch_size), options)
        outputs = None if sample_set is None else _predict(model, sample_set.inputs, batch_size)
        if evaluate_on_samples:  # the outputs just computed: no second pass over the samples
            accuracy = float(np.mean(outputs.argmax(1) == sample_set.labels))
        else:
            accuracy = None if ann_eval is None else _accuracy(model, ann_eval, shape, batch_size)
    max_coeff = chosen.max_coeff(options)
    neurons = chosen.neurons_for(options)
    build = Build(neurons=neurons, max_coeff=max_coeff, v_init_fraction=options["v_init_fraction"],
                  input_encoding=input_encoding, pool_rank=options.get("rank", kinds.MASS),
                  readout=options.get("readout", kinds.POTENTIAL), bias_onset=options.get("bias_onset") == "auto",
                  sparse_below=options["sparse_below"])
    populations, projections, summary = build_network(layers, scalings, build)
    macs = ann_macs(ann_layers)  # the ANN's, whatever was folded
    kept = kept_macs(ann_layers)
    output = layers[-1]
    conversion = {
        "method": chosen.name,
        **options,
        **({"K": neurons.phase_period} if neurons.coding == kinds.PHASE else {}),
        "max_coeff": max_coeff,
        "neurons": neurons.record(),
        "sparse_rule": "a Linear layer with at most sparse_below of its weights nonzero becomes a sparse projection "
                       "of its kept weights (docs/export.md: the density at which a sparse row costs what a dense "
                       "one does, measured)",
        "ann_macs_kept": sum(kept.values()) + sum(v for k, v in macs.items() if k not in kept),
        "layer_macs_kept": kept,
        **chosen.formulas,
        "layers": summary,
        "calibration_size": len(calibration),
        # the inputs' scale the factors hold for; a run outside it warns (evsim.simulate.calibration_range)
        "calibration_range": [float(calibration.min()), float(calibration.max())],
        "batchnorm": "folded into the preceding conv/linear (BSNN eq. 7)",
        "avgpool": POOL_HANDLING[options["pool"]],
        "maxpool": MAXPOOL_HANDLING,
        "residual_sums": RESIDUAL_HANDLING,
        **({"sync_populations": [layer.name for layer in layers if layer.op == "sync"]}
           if "sync_neurons" in options else {}),
        "input_encoding": input_encoding,
        "dataset": dataset,
        "architecture": architecture or architecture_string(ann_layers),
        "ann_eval_size": None if ann_eval is None else len(ann_eval[1]),
        "seeds": seeds,
        "torch_version": torch.__version__,
        **(meta or {}),
    }
    return Network(
        populations=tuple(populations),
        projections=tuple(projections),
        output=output.name,
        output_scale=np.array(scalings[output.name].potential, np.float32),
        ann=AnnInfo(macs=sum(macs.values()), accuracy=accuracy, layer_macs=macs,
                    lambdas=np.array([scalings[p.name].spike for p in populations]), outputs=outputs),
        samples=sample_set,
        meta=conversion,  # the file's /meta conversion JSON
        producer=producer or _producer(torch),
    )


def _producer(torch) -> str:
    from evsim import __version__

    return f"evsim {__version__} weights_io.export (torch {torch.__version__})"


def export_model(model, path, **options) -> Network:
    """Convert `model` (keyword arguments: those of `convert_model`), write it to `path`, return it.
    `path`'s folder must exist (checked before the conversion)."""
    from pathlib import Path

    from evsim.weights_io.hdf5 import write_network

    folder = Path(path).parent
    if not folder.is_dir():
        raise ExportError(f"{path}: the folder {folder} does not exist; create it first")
    network = convert_model(model, **options)
    try:
        write_network(path, network)
    except OSError as err:
        raise ExportError(f"{path}: cannot write the network ({err})") from None
    return network
