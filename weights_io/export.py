"""The PyTorch exporter: a trained ReLU ANN -> a rate-coded evsim `Network` (and file).

Conversion ("rate-norm": Diehl et al. 2015, Rueckauer et al. 2017, BSNN eq. 6-7):

1. The model is traced with `torch.fx.symbolic_trace` (never by walking its
   module list): layers join by graph edges, so residual graphs will need a
   new node kind (the add), not a rewrite.
   Supported nodes: `Conv2d` (stride, padding, dilation, groups, bias),
   `Linear`, `BatchNorm2d` / `BatchNorm1d` right after a conv / linear
   (folded into it, BSNN eq. 7), `ReLU` (module, `F.relu`, `torch.relu`,
   `.relu()`), `AvgPool2d` (module; `count_include_pad=True`, no ceil mode),
   flatten (`nn.Flatten`, `torch.flatten`, `.flatten/.view/.reshape` to
   `[batch, features]`: no layer, the dense projection reads its source in
   C-major order), `Dropout` and `Identity` (ignored). Anything else raises
   `ExportError` naming the node and its type.
2. The folded ANN is run on the calibration set. For every ReLU layer,
   lambda_l is the `percentile` (100 = the maximum) of its positive
   activations over all neurons and calibration samples (zeros are left out,
   as in Rueckauer's SNN toolbox, so sparsity does not pull the percentile
   down); a layer that never activates gets lambda 1. lambda_0 = 1 for the
   input: inputs are taken as they are (analog current, any sign; the
   bernoulli encoder needs them in [-1, 1], phase in [0, 1], and the
   exporter checks that). An average pool is linear, so its lambda is its source's.
   The last layer (no ReLU) gets the same statistic of its positive outputs.
3. BSNN eq. 6: W_l <- W_l * lambda_src / lambda_l, b_l <- b_l / lambda_l, so
   every hidden activation is at most ~1 = one spike per step; thresholds
   theta_pos = 1, v_init = v_init_fraction * theta (0.5: the optimal
   v(0) = theta/2 of the "optimized potential initialization" seed).
4. Every ReLU layer becomes an `if` population (rate coding, max_coeff 1,
   its bias per channel / neuron). An `AvgPool2d` becomes an `avgpool2d`
   projection into its own `if` population (threshold 1, lambda unchanged):
   the pool of spikes is re-encoded as spikes, as semantics.md describes
   (the alternative, folding the pool into the next linear layer, is not
   done; /meta says so). The output layer becomes a `readout` population in
   `potential` mode with `output_scale` = its lambda, so that the readout
   rate (potential / T) times `output_scale` approximates the ANN's output.

torch is imported only inside the functions, so this module (and
`evsim.weights_io`) imports without it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from evsim.errors import ExportError
from evsim.network import ENCODERS, AnnInfo, Network, Population, Projection, Samples, conv_output_hw
from evsim.plan import axis_hits

THETA = 1.0
POOL_HANDLING = "avgpool2d projection into an if population (theta 1, lambda of its source)"


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - CI installs torch
        raise ExportError("exporting needs PyTorch: pip install 'evsim[export]'") from exc
    return torch


@dataclass
class Layer:
    """One node of the folded ANN: the input, a conv2d / dense map, or an average pool.

    `shape` is the output shape without the batch; `weight` / `bias` are
    float64, batch norm already folded in; `relu` says a ReLU follows.
    """

    name: str
    op: str  # "input", "conv2d", "dense", "avgpool2d"
    shape: tuple[int, ...]
    source: Optional[str] = None
    weight: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)  # pools only
    relu: bool = False


# ----------------------------------------------------------------------------- tracing


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)


def _node_op(node, modules) -> str:
    """What a traced node does: conv2d, dense, batchnorm, relu, avgpool2d, reshape or identity."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    if node.op == "call_module":
        module = modules[node.target]
        for types, op in (
            (nn.Conv2d, "conv2d"), (nn.Linear, "dense"), ((nn.BatchNorm2d, nn.BatchNorm1d), "batchnorm"),
            (nn.ReLU, "relu"), (nn.AvgPool2d, "avgpool2d"), (nn.Flatten, "reshape"),
            ((nn.Dropout, nn.Identity), "identity"),
        ):
            # exact types: a subclass may override forward with anything
            if type(module) in (types if isinstance(types, tuple) else (types,)):
                return op
        raise ExportError(
            f"node {node.name!r}: module {node.target!r} of type {type(module).__name__} is not supported "
            "(supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, AvgPool2d, Flatten, Dropout, Identity)"
        )
    ops = {
        "call_function": {F.relu: "relu", torch.relu: "relu", torch.flatten: "reshape", F.dropout: "identity"},
        "call_method": {"relu": "relu", "flatten": "reshape", "view": "reshape", "reshape": "reshape",
                        "contiguous": "identity"},
    }.get(node.op, {})
    if node.target in ops:
        return ops[node.target]
    target = getattr(node.target, "__name__", node.target)
    raise ExportError(f"node {node.name!r}: {node.op} {target!r} is not supported by the exporter")


def _record_shapes(graph_module, example) -> dict:
    """Run the traced graph once; the per-node output shape, or None for non-tensors (x.size(0), ...)."""
    torch = _torch()
    shapes = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            shapes[node] = tuple(result.shape) if isinstance(result, torch.Tensor) else None
            return result

    with torch.no_grad():
        Recorder(graph_module).run(example)
    return shapes


def _affine_layer(node, module, op, source: Layer, shape) -> Layer:
    weight = module.weight.detach().double().numpy().copy()
    bias = module.bias.detach().double().numpy().copy() if module.bias is not None else np.zeros(weight.shape[0])
    layer = Layer(node.name, op, shape, source.name, weight, bias)
    if op == "conv2d":
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise ExportError(f"node {node.name!r}: Conv2d padding {module.padding!r} / padding_mode "
                              f"{module.padding_mode!r}: only explicit zero padding is supported")
        layer.stride, layer.padding = _pair(module.stride), _pair(module.padding)
        layer.dilation, layer.groups = _pair(module.dilation), int(module.groups)
    return layer


def _pool_layer(node, module, source: Layer, shape) -> Layer:
    if module.ceil_mode or not module.count_include_pad or module.divisor_override is not None:
        raise ExportError(f"node {node.name!r}: AvgPool2d needs ceil_mode=False, count_include_pad=True "
                          "and no divisor_override")
    stride = module.stride if module.stride is not None else module.kernel_size
    return Layer(node.name, "avgpool2d", shape, source.name, kernel=_pair(module.kernel_size),
                 stride=_pair(stride), padding=_pair(module.padding))


def _fold_batchnorm(layer: Layer, bn, node) -> None:
    """BSNN eq. 7: BN(Wx + b) = (gamma/sigma) W x + (gamma/sigma)(b - mu) + beta."""
    torch = _torch()
    expected = torch.nn.BatchNorm2d if layer.op == "conv2d" else torch.nn.BatchNorm1d
    if type(bn) is not expected:
        raise ExportError(f"node {node.name!r}: {type(bn).__name__} cannot follow a {layer.op} layer")
    if bn.running_mean is None:
        raise ExportError(f"node {node.name!r}: batch norm without running statistics cannot be folded")
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones_like(mean)
    beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    layer.weight = layer.weight * scale.reshape(-1, *[1] * (layer.weight.ndim - 1))
    layer.bias = (layer.bias - mean) * scale + beta


def _non_negative(layer: Layer, layers: dict) -> bool:
    """Whether a layer's output is >= 0, so rate-coded IF neurons can carry it."""
    if layer.op == "avgpool2d":
        return _non_negative(layers[layer.source], layers)
    return layer.relu


def trace_model(model, example) -> list[Layer]:
    """Trace `model` (eval mode) with torch.fx into folded layers, in topological order.

    `example` is a small input batch `[n, *input shape]` (n >= 2 lets the
    flatten check tell a batch dimension from a fixed one).
    """
    torch = _torch()
    try:
        graph_module = torch.fx.symbolic_trace(model)
    except Exception as exc:
        raise ExportError(f"torch.fx cannot trace {type(model).__name__}: {exc}") from exc
    graph = _Graph(_record_shapes(graph_module, example), dict(graph_module.named_modules()))
    for node in graph_module.graph.nodes:
        graph.read(node)
    output = graph.value.get(graph.output) if isinstance(graph.output, torch.fx.Node) else None
    last = graph.layers.get(output)
    if last is None or last.op not in ("conv2d", "dense") or last.relu:
        raise ExportError("the model must return the output of a Conv2d/Linear layer without ReLU "
                          "(it becomes the readout population)")
    return _ancestors(list(graph.layers.values()), last)


class _Graph:
    """The folded layers read so far from a traced graph, node by node (topological order)."""

    def __init__(self, shapes: dict, modules: dict):
        self.shapes, self.modules = shapes, modules
        self.layers: dict[str, Layer] = {}
        self.value: dict = {}  # fx node -> name of the layer whose output it is
        self.head: dict = {}  # layer name -> the node holding its latest value (after BN / ReLU)
        self.output = None

    def read(self, node) -> None:
        if node.op == "placeholder":
            if self.layers:
                raise ExportError(f"node {node.name!r}: the model must take exactly one input")
            self.add(node, Layer("input", "input", self.shapes[node][1:]))
        elif node.op == "output":
            self.output = node.args[0]
        elif self.shapes[node] is not None:  # else shape arithmetic such as x.size(0): no data
            op = _node_op(node, self.modules)
            source = self.layers[self.value[node.args[0]]]
            module = self.modules.get(node.target) if node.op == "call_module" else None
            if op in ("conv2d", "dense", "avgpool2d"):
                self.add_layer(node, op, module, source)
            elif op in ("batchnorm", "relu"):
                self.apply(node, op, module, source)
            elif op == "reshape":
                self.flatten(node, source)
            else:
                self.value[node] = source.name

    def add(self, node, layer: Layer) -> None:
        self.layers[layer.name] = layer
        self.value[node], self.head[layer.name] = layer.name, node

    def add_layer(self, node, op, module, source: Layer) -> None:
        if source.op != "input" and not _non_negative(source, self.layers):
            raise ExportError(f"node {node.name!r} reads {source.name!r}, which has no ReLU: rate-coded IF "
                              "neurons cannot carry negative activations")
        shape = self.shapes[node][1:]
        if op == "avgpool2d":
            self.add(node, _pool_layer(node, module, source, shape))
        else:
            self.add(node, _affine_layer(node, module, op, source, shape))

    def apply(self, node, op, module, source: Layer) -> None:
        """Fold a batch norm into, or put a ReLU on, the conv / linear layer just before."""
        if op == "relu" and _non_negative(source, self.layers):
            self.value[node] = source.name  # a ReLU of a non-negative value is the identity
            return
        previous = node.args[0]
        if source.op not in ("conv2d", "dense") or source.relu or self.head[source.name] is not previous \
                or len(previous.users) != 1:
            raise ExportError(f"node {node.name!r}: {op} must directly follow a Conv2d/Linear (or its batch "
                              f"norm) whose output has no other use; it follows {previous.name!r}")
        if op == "batchnorm":
            _fold_batchnorm(source, module, node)
        else:
            source.relu = True
        self.value[node], self.head[source.name] = source.name, node

    def flatten(self, node, source: Layer) -> None:
        if self.shapes[node] != (self.shapes[node.args[0]][0], int(np.prod(source.shape))):
            raise ExportError(f"node {node.name!r}: reshape to {list(self.shapes[node])} is not a flatten to "
                              "[batch, features]")
        self.value[node] = source.name  # flatten is no layer: dense reads its source in C-major order


def _ancestors(layers: list[Layer], last: Layer) -> list[Layer]:
    """The layers `last` depends on, itself included (traced but unused modules are dropped)."""
    keep = {last.name}
    for layer in reversed(layers):
        if layer.name in keep and layer.source is not None:
            keep.add(layer.source)
    return [layer for layer in layers if layer.name in keep]


# ----------------------------------------------------------------------------- the folded ANN


def run_layers(layers: list[Layer], x) -> dict:
    """Run the folded ANN on a batch; {layer name: output tensor (after ReLU)}."""
    torch = _torch()
    F = torch.nn.functional
    acts = {}
    for layer in layers:
        if layer.op == "input":
            y = x
        elif layer.op == "avgpool2d":
            y = F.avg_pool2d(acts[layer.source], layer.kernel, layer.stride, layer.padding)
        else:
            w = torch.from_numpy(layer.weight).to(x.dtype)
            b = torch.from_numpy(layer.bias).to(x.dtype)
            src = acts[layer.source]
            if layer.op == "dense":
                y = F.linear(src.flatten(1), w, b)
            else:
                y = F.conv2d(src, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
        acts[layer.name] = F.relu(y) if layer.relu else y
    return acts


def compute_lambdas(layers: list[Layer], calibration, percentile: float = 100.0, batch_size: int = 256) -> dict:
    """lambda per layer: `percentile` of its positive activations on `calibration` (module docstring)."""
    torch = _torch()
    measured = [layer for layer in layers if layer.op in ("conv2d", "dense")]
    positives: dict[str, list] = {layer.name: [] for layer in measured}
    with torch.no_grad():
        for start in range(0, len(calibration), batch_size):
            acts = run_layers(layers, calibration[start:start + batch_size])
            for layer in measured:
                a = acts[layer.name].numpy().ravel()
                a = a[a > 0]
                # at the maximum only the running max is needed, not every activation
                positives[layer.name].append(a.max(keepdims=True) if percentile >= 100 and a.size else a)
    lambdas = {}
    for layer in layers:
        if layer.op == "input":
            lambdas[layer.name] = 1.0
        elif layer.op == "avgpool2d":
            lambdas[layer.name] = lambdas[layer.source]
        else:
            a = np.concatenate(positives[layer.name])
            lambdas[layer.name] = float(np.percentile(a, percentile)) if a.size else 1.0
    return lambdas


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


def build_network(layers: list[Layer], lambdas: dict, *, v_init_fraction: float = 0.0,
                  input_encoding: str = "analog") -> tuple[list[Population], list[Projection]]:
    """Populations and projections of the normalised network (BSNN eq. 6), in topological order."""
    populations, projections = [], []
    for order, layer in enumerate(layers):
        if layer.op == "input":
            populations.append(Population(layer.name, "input", layer.shape, order, encoding=input_encoding))
            continue
        readout = order == len(layers) - 1
        lam, lam_source = lambdas[layer.name], lambdas[layer.source]
        if layer.op == "avgpool2d":
            projections.append(Projection(layer.name, "avgpool2d", layer.source, layer.name, kernel=layer.kernel,
                                          stride=layer.stride, padding=layer.padding))
            bias = np.zeros(())
        else:
            projections.append(Projection(
                layer.name, layer.op, layer.source, layer.name,
                weight=(layer.weight * (lam_source / lam)).astype(np.float32),
                stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
            ))
            bias = layer.bias / lam
        populations.append(Population(
            layer.name, "readout" if readout else "if", layer.shape, order,
            theta_pos=np.array(THETA, np.float32),
            v_init=np.array(0.0 if readout else v_init_fraction * THETA, np.float32),
            bias=_bias_parameter(bias), mode="potential",
        ))
    return populations, projections


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
    torch = _torch()
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
    torch = _torch()
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


def _check_options(percentile: float, v_init_fraction: float, input_encoding: str) -> None:
    if not 0 < percentile <= 100:
        raise ExportError(f"percentile must be in (0, 100], got {percentile}")
    if not 0 <= v_init_fraction <= 1:
        raise ExportError(f"v_init_fraction must be in [0, 1], got {v_init_fraction}")
    if input_encoding not in ENCODERS:
        raise ExportError(f"input_encoding must be one of {ENCODERS}, got {input_encoding!r}")


def convert_model(
    model,
    *,
    calibration,
    samples=None,
    labels=None,
    percentile: float = 100.0,
    v_init_fraction: float = 0.0,
    input_encoding: str = "analog",
    ann_eval: Optional[tuple] = None,
    dataset: str = "",
    architecture: Optional[str] = None,
    seeds: Any = None,
    meta: Optional[dict] = None,
    producer: Optional[str] = None,
    batch_size: int = 256,
) -> Network:
    """Convert a trained ReLU ANN (PyTorch) into a rate-coded evsim `Network`.

    - `calibration`: inputs `[n, *input shape]` (tensor or array) for the
      normalisation factors; the input shape is taken from it.
    - `samples`, `labels`: embedded as `/samples`; the ANN's outputs on them
      go to `/ann/outputs`.
    - `percentile`: 100 = max normalisation; e.g. 99.9 (Rueckauer's p-norm).
    - `v_init_fraction`: v(0) = fraction * theta (0.5 = theta/2).
    - `input_encoding`: the input population's default encoder.
    - `ann_eval`: `(inputs, labels)` for `/ann/accuracy`; without it the
      accuracy is measured on `samples` when `labels` are given.
    - `dataset`, `architecture` (default: derived, e.g. "12c5-p2-64c5-p2-10"),
      `seeds`, `meta` (extra entries): recorded in the `/meta` conversion JSON.

    The model is put in eval mode for the conversion (and its mode restored).
    `AnnInfo.lambdas[i]` is the lambda of `populations[i]` (1 for the input).
    """
    torch = _torch()
    _check_options(percentile, v_init_fraction, input_encoding)
    calibration = _as_tensor(calibration, "calibration")
    _check_input_range(calibration, "calibration", input_encoding)
    shape = tuple(calibration.shape[1:])
    sample_set = None if samples is None else _samples(samples, labels, shape, input_encoding)
    if ann_eval is None and sample_set is not None and sample_set.labels is not None:
        ann_eval = (sample_set.inputs, sample_set.labels)
    with _eval_mode(model):
        layers = trace_model(model, calibration[:2])
        lambdas = compute_lambdas(layers, calibration, percentile, batch_size)
        outputs = None if sample_set is None else _predict(model, sample_set.inputs, batch_size)
        accuracy = None if ann_eval is None else _accuracy(model, ann_eval, shape, batch_size)
    populations, projections = build_network(layers, lambdas, v_init_fraction=v_init_fraction,
                                              input_encoding=input_encoding)
    macs = ann_macs(layers)
    output = layers[-1]
    conversion = {
        "method": "rate-norm",
        "normalisation": "data-based, per layer (BSNN eq. 6); lambda = percentile of positive activations",
        "percentile": float(percentile),
        "lambda_input": 1.0,
        "calibration_size": len(calibration),
        "theta": THETA,
        "v_init_fraction": float(v_init_fraction),
        "max_coeff": 1,
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
        output_scale=np.array(lambdas[output.name], np.float32),
        ann=AnnInfo(macs=sum(macs.values()), accuracy=accuracy, layer_macs=macs,
                    lambdas=np.array([lambdas[p.name] for p in populations]), outputs=outputs),
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
