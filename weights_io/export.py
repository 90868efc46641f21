"""The PyTorch exporter: a trained ANN -> a rate-coded evsim `Network` (and file), by a named method.

Conversion (docs/export.md has the formulas of every method):

1. The model is traced with torch.fx and its batch norms folded
   (`weights_io.trace`: the supported nodes are listed there).
2. The method (`weights_io.methods`: "rate-norm", "termapping",
   "augmapping", "clip") checks that it can convert the layers' activations,
   measures what it needs on the calibration set, and gives every conv /
   dense layer a `Scaling`: what one spike and one unit of membrane
   potential stand for in ANN units. Weights, biases, thresholds and the
   readout's `output_scale` follow from it by one set of rules, the same for
   every method (`methods.weight_scale`, `methods.thresholds`).
3. Every hidden conv / dense layer becomes an `if` population (rate coding,
   the method's `max_coeff`, its bias per channel / neuron, v_init =
   v_init_fraction * theta_pos). An `AvgPool2d` becomes an `avgpool2d`
   projection into its own `if` population (threshold 1 in units of its
   source's spikes, -1 as well when the source can be negative): the pool of
   spikes is re-encoded as spikes, as semantics.md describes (the
   alternative, folding the pool into the next linear layer, is not done;
   /meta says so). The output layer becomes a `readout` population in
   `potential` mode, whose rate (potential / T) times `output_scale`
   approximates the ANN's output.
4. `/ann` (MACs, accuracy, the ANN's outputs on the samples, and per
   population what one spike stands for: lambda under rate-norm), `/samples`
   and `/meta` (method, options, per-layer scalings and thresholds) are
   filled in.

Factors are computed in float64 (activations are measured in the model's
own float32); weights and parameters are stored as float32. torch is
imported only inside the functions, so this module (and `evsim.weights_io`)
imports without it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional

import numpy as np

from evsim.errors import ExportError
from evsim.network import ENCODERS, AnnInfo, Network, Population, Projection, Samples, conv_output_hw
from evsim.plan import axis_hits
from evsim.weights_io.methods import (
    Scaling,
    check_layers,
    get_method,
    layer_scalings,
    resolve_options,
    thresholds,
    weight_scale,
)
from evsim.weights_io.trace import (
    Layer,
    non_negative,
    run_layers,
    torch_module,
    trace_model,
    weighted_layer_outputs,
)

__all__ = ["ann_macs", "architecture_string", "build_network", "convert_model", "export_model", "run_layers",
           "trace_model"]

POOL_HANDLING = ("avgpool2d projection into an if population (theta_pos 1 in units of its source's spikes, "
                 "theta_neg -1 when the source can be negative; not folded into the next layer)")


# ----------------------------------------------------------------------------- the ANN's cost


def ann_macs(layers: list[Layer]) -> dict:
    """MACs per sample and layer (accounting.md): dense in*out, conv Cout*Hout*Wout*Cin/g*kh*kw,
    average pool one add per (input element, window holding it)."""
    shapes = {layer.name: layer.shape for layer in layers}
    macs = {}
    for layer in layers:
        if layer.op in ("conv2d", "dense"):
            macs[layer.name] = int(np.prod(layer.shape)) * int(np.prod(layer.weight.shape[1:]))
        elif layer.op == "avgpool2d":
            channels, *hw_in = shapes[layer.source]
            rows, cols = (_window_taps(hw_in[i], layer.kernel[i], layer.stride[i], layer.padding[i]) for i in range(2))
            macs[layer.name] = channels * rows * cols
    return macs


def _window_taps(size: int, kernel: int, stride: int, padding: int) -> int:
    """Along one axis: the number of (output position, in-bounds input position) pairs of a pool."""
    outputs = conv_output_hw((size, 1), (kernel, 1), (stride, 1), (padding, 0))[0]
    return int(axis_hits(size, padding, kernel, 1, stride, outputs)[:, 0].sum())


# ----------------------------------------------------------------------------- the network


def _bias_parameter(bias: np.ndarray) -> np.ndarray:
    """A scalar 0 when there is no bias, else one value per channel / neuron."""
    return np.zeros((), np.float32) if not np.any(bias) else bias.astype(np.float32)


def build_network(layers: list[Layer], scalings: dict, *, max_coeff: int = 1, v_init_fraction: float = 0.0,
                  input_encoding: str = "analog") -> tuple[list[Population], list[Projection], list[dict]]:
    """Populations and projections for the layers' `Scaling`s (methods.py), in topological order,
    and a per-layer summary of what was set (for /meta)."""
    by_name = {layer.name: layer for layer in layers}
    populations, projections, summary = [], [], []
    for order, layer in enumerate(layers):
        if layer.op == "input":
            populations.append(Population(layer.name, "input", layer.shape, order, encoding=input_encoding))
            continue
        readout = order == len(layers) - 1
        scaling = scalings[layer.name]
        if layer.op == "avgpool2d":
            projections.append(Projection(layer.name, "avgpool2d", layer.source, layer.name, kernel=layer.kernel,
                                          stride=layer.stride, padding=layer.padding))
            bias, factor = np.zeros(()), None
            # a pool is linear: it carries negative values exactly when its source has them
            negative_slope = 0.0 if non_negative(by_name[layer.source], by_name) else 1.0
        else:
            factor = weight_scale(scaling, scalings[layer.source])
            projections.append(Projection(
                layer.name, layer.op, layer.source, layer.name, weight=(layer.weight * factor).astype(np.float32),
                stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
            ))
            bias, negative_slope = layer.bias / scaling.potential, layer.activation.negative_slope
        theta_pos, theta_neg = thresholds(scaling, 0.0 if readout else negative_slope)  # a readout never fires
        v_init = 0.0 if readout else v_init_fraction * theta_pos
        populations.append(Population(
            layer.name, "readout" if readout else "if", layer.shape, order, max_coeff=1 if readout else max_coeff,
            theta_pos=np.array(theta_pos, np.float32),
            theta_neg=None if theta_neg is None else np.array(theta_neg, np.float32),
            v_init=np.array(v_init, np.float32), bias=_bias_parameter(bias), mode="potential",
        ))
        summary.append(_layer_summary(layer, scaling, factor, theta_pos, theta_neg, v_init, readout))
    return populations, projections, summary


def _layer_summary(layer: Layer, scaling: Scaling, factor, theta_pos, theta_neg, v_init, readout) -> dict:
    entry = {"layer": layer.name, "op": layer.op, "population": "readout" if readout else "if"}
    if layer.weighted:
        entry.update(activation=str(layer.activation), weight_scale=factor, bias_scale=1.0 / scaling.potential)
    entry.update(spike=scaling.spike, potential=scaling.potential, theta_pos=theta_pos, theta_neg=theta_neg,
                 v_init=v_init, **scaling.record)
    if readout:
        entry["output_scale"] = scaling.potential
    return entry


def architecture_string(layers: list[Layer]) -> str:
    """The papers' notation, e.g. 12c5-p2-64c5-p2-10."""
    parts = []
    for layer in layers:
        if layer.op == "conv2d":
            stride = f"s{layer.stride[0]}" if layer.stride != (1, 1) else ""
            parts.append(f"{layer.shape[0]}c{layer.weight.shape[2]}{stride}")
        elif layer.op == "avgpool2d":
            parts.append(f"p{layer.kernel[0]}")
        elif layer.op == "dense":
            parts.append(str(layer.shape[0]))
    return "-".join(parts)


def _as_tensor(array, name: str, shape=None):
    torch = torch_module()
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))
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


#: The input range each encoder reads (semantics.md); lambda_0 = 1, so inputs are used as given.
_ENCODER_RANGE = {"analog": (-np.inf, np.inf), "bernoulli": (-1.0, 1.0), "phase": (0.0, 1.0)}


def _check_input_range(inputs, name: str, encoding: str) -> None:
    low, high = _ENCODER_RANGE[encoding]
    if float(inputs.min()) < low or float(inputs.max()) > high:
        raise ExportError(f"{name}: {encoding} input needs values in [{low}, {high}], got "
                          f"[{float(inputs.min())}, {float(inputs.max())}]; scale the inputs")


def _check_encoding(input_encoding: str) -> None:
    if input_encoding not in ENCODERS:
        raise ExportError(f"input_encoding must be one of {ENCODERS}, got {input_encoding!r}")


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
    input_encoding: str = "analog",
    ann_eval: Optional[tuple] = None,
    dataset: str = "",
    architecture: Optional[str] = None,
    seeds: Any = None,
    meta: Optional[dict] = None,
    producer: Optional[str] = None,
    batch_size: int = 256,
) -> Network:
    """Convert a trained ANN (PyTorch) into a rate-coded evsim `Network` by `method`.

    - `calibration`: inputs `[n, *input shape]` (tensor or array); the input
      shape is taken from it; rate-norm and termapping measure their factors
      on it (augmapping and clip need it only for the shapes).
    - `method`: "rate-norm" (ReLU ANNs, BSNN eq. 6), "termapping" and
      "augmapping" (ReLU / LeakyReLU ANNs, double-threshold paper),
      "clip" (ANNs with `weights_io.layers.TrainableClip`, potential-
      initialization paper). docs/export.md gives each one's formulas.
    - Method options (None = the method's default; an option the method does
      not take is an `ExportError`):
      `percentile` (rate-norm: 100 = max normalisation; e.g. 99.9),
      `v_init_fraction` (all: v(0) = fraction * theta_pos; 0, clip 0.5),
      `m_aug` (augmapping: the coefficient bound M_aug of eq. 15; 0 = unbounded).
    - `samples`, `labels`: embedded as `/samples`; the ANN's outputs on them
      go to `/ann/outputs`.
    - `input_encoding`: the input population's default encoder.
    - `ann_eval`: `(inputs, labels)` for `/ann/accuracy`; without it the
      accuracy is measured on `samples` when `labels` are given.
    - `dataset`, `architecture` (default: derived, e.g. "12c5-p2-64c5-p2-10"),
      `seeds`, `meta` (extra entries): recorded in the `/meta` conversion JSON.

    The model is put in eval mode for the conversion (and its mode restored).
    `AnnInfo.lambdas[i]` is what one spike of `populations[i]` stands for in
    ANN units (rate-norm: lambda; 1 for the input).
    """
    torch = torch_module()
    chosen = get_method(method)
    options = resolve_options(chosen, {"percentile": percentile, "v_init_fraction": v_init_fraction, "m_aug": m_aug})
    _check_encoding(input_encoding)
    calibration = _as_tensor(calibration, "calibration")
    _check_input_range(calibration, "calibration", input_encoding)
    shape = tuple(calibration.shape[1:])
    sample_set = None if samples is None else _samples(samples, labels, shape, input_encoding)
    if ann_eval is None and sample_set is not None and sample_set.labels is not None:
        ann_eval = (sample_set.inputs, sample_set.labels)
    with _eval_mode(model):
        layers = trace_model(model, calibration[:2])
        check_layers(chosen, layers)
        scalings = layer_scalings(chosen, layers, weighted_layer_outputs(layers, calibration, batch_size), options)
        outputs = None if sample_set is None else _predict(model, sample_set.inputs, batch_size)
        accuracy = None if ann_eval is None else _accuracy(model, ann_eval, shape, batch_size)
    max_coeff = chosen.max_coeff(options)
    populations, projections, summary = build_network(
        layers, scalings, max_coeff=max_coeff, v_init_fraction=options["v_init_fraction"],
        input_encoding=input_encoding)
    macs = ann_macs(layers)
    output = layers[-1]
    conversion = {
        "method": chosen.name,
        **options,
        "max_coeff": max_coeff,
        **chosen.formulas,
        "layers": summary,
        "calibration_size": len(calibration),
        "batchnorm": "folded into the preceding conv/linear (BSNN eq. 7)",
        "avgpool": POOL_HANDLING,
        "input_encoding": input_encoding,
        "dataset": dataset,
        "architecture": architecture or architecture_string(layers),
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
    """Convert `model` (keyword arguments: those of `convert_model`), write it to `path`, return it."""
    from evsim.weights_io.hdf5 import write_network

    network = convert_model(model, **options)
    write_network(path, network)
    return network
