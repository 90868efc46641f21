"""A PyTorch model -> its folded layers (torch.fx tracing, batch-norm folding), and running them.

The model is traced with torch.fx (never by walking its module list): layers
join by graph edges, so a residual block is one more node kind (the sum), not
a rewrite. Supported nodes: `Conv2d` (stride, padding, dilation, groups,
bias), `Linear`, `BatchNorm2d` / `BatchNorm1d` right after a conv / linear
(folded into it, BSNN eq. 7), activations right after a conv / linear (or its
batch norm) or a sum: `ReLU` (module, `F.relu`, `torch.relu`, `.relu()`),
`LeakyReLU` (module, `F.leaky_relu`) and the clip layer
`evsim.weights_io.layers.TrainableClip` (traced as a leaf); `AvgPool2d`
(module; `count_include_pad=True`, no ceil mode), `MaxPool2d` (module,
`F.max_pool2d`, `torch.max_pool2d`; no dilation, no ceil mode, no indices),
the sum of two tensors of one shape (`a + b`, `+=`, `torch.add`, `.add()`:
a residual block's output, to be followed directly by a ReLU), flatten
(`nn.Flatten`, `torch.flatten`, `.flatten/.view/.reshape` to
`[batch, features]`: no layer, the dense projection reads its source in
C-major order), `Dropout` and `Identity` (ignored). Anything else raises
`ExportError` naming the node and its type.

A sum is a layer with several `sources`. A conv / linear term of a sum whose
output has no activation and no other use (the block's second conv + BN, or
a 1x1-conv shortcut + BN) is *merged into* the sum: it gets no population of
its own but becomes a projection into the sum's population, and its bias
joins the sum's. Any other term (the block's input: an identity shortcut) is
read as it is.

torch is imported only inside the functions, so this module imports without it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np

from evsim.errors import ExportError


def torch_module():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - CI installs torch
        raise ExportError("exporting needs PyTorch: pip install 'evsim[export]'") from exc
    return torch


@dataclass(frozen=True)
class Activation:
    """The activation after a conv / dense layer, in the terms of the double-threshold paper (eq. 6).

    For a pre-activation u: z = u when u >= 0 (slope alpha+ = 1 for every
    supported activation), z = negative_slope * u when u < 0, and z is at most
    `ceiling` when there is one (the clip). kind "none" is the identity
    (negative_slope 1): the readout, or a hidden linear layer.
    """

    kind: str = "none"  # "none", "relu", "leaky_relu", "clip"
    negative_slope: float = 1.0
    ceiling: Optional[float] = None

    @property
    def non_negative(self) -> bool:
        return self.negative_slope == 0

    def __str__(self) -> str:
        if self.kind == "leaky_relu":
            return f"leaky_relu(negative_slope={self.negative_slope:g})"
        if self.kind == "clip":
            return f"clip(0, {self.ceiling:g})"
        return self.kind


IDENTITY = Activation()
RELU = Activation("relu", 0.0)


@dataclass
class Layer:
    """One node of the folded ANN: the input, a conv2d / dense map, a pool, a sum, or synchronous neurons.

    `shape` is the output shape without the batch; `weight` / `bias` are
    float64, batch norm already folded in; `activation` is what follows.
    `sources` are the layers it reads: one, or the terms of a sum.
    `merged_into` names the sum a conv / dense term is merged into (it then
    has no population of its own). `folded` names the average pools folded
    into a conv / dense layer (`fold_pools`): its weight and geometry are
    then over the first pool's input, `unfolded_weight` the ANN's own. op
    "sync" is the synchronous neurons of
    the bsnn method on a residual shortcut (BSNN III-E): the identity in the
    ANN (a ReLU of a non-negative value), a population in the SNN.
    """

    name: str
    op: str  # "input", "conv2d", "dense", "avgpool2d", "maxpool2d", "add", "sync"
    shape: tuple[int, ...]
    sources: tuple[str, ...] = ()
    weight: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)  # pools only
    activation: Activation = IDENTITY
    merged_into: Optional[str] = None  # conv / dense terms of a sum only
    folded: tuple[str, ...] = ()  # the average pools folded into this conv / dense layer (`fold_pools`)
    unfolded_weight: Optional[np.ndarray] = None  # the ANN layer's own weight, when pools are folded into it

    @property
    def ann_weight(self) -> Optional[np.ndarray]:
        """The weight of the ANN's layer (before any average pool was folded into it)."""
        return self.weight if self.unfolded_weight is None else self.unfolded_weight

    @property
    def source(self) -> Optional[str]:
        """The one layer this layer reads (None for the input); a sum reads several: use `sources`."""
        if len(self.sources) > 1:
            raise ValueError(f"layer {self.name!r} ({self.op}) reads {len(self.sources)} layers: use .sources")
        return self.sources[0] if self.sources else None

    @property
    def weighted(self) -> bool:
        return self.op in ("conv2d", "dense")

    @property
    def has_population(self) -> bool:
        """Every layer but a conv / dense term merged into a sum becomes a population."""
        return self.merged_into is None

    @property
    def measured(self) -> bool:
        """Whether its outputs are measured for the scaling: a weighted layer with a population, or a sum."""
        return (self.weighted and self.merged_into is None) or self.op == "add"


#: Layers whose spike stands for their source's spike: pools, and the identity of synchronous neurons.
PASS_THROUGH_OPS = ("avgpool2d", "maxpool2d", "sync")


def non_negative(layer: Layer, layers: dict) -> bool:
    """Whether a layer's output is >= 0 (single-threshold neurons can carry it). The input may be signed."""
    if layer.op in PASS_THROUGH_OPS:  # a pool, or the identity, of non-negative values is non-negative
        return non_negative(layers[layer.source], layers)
    return layer.op != "input" and layer.activation.non_negative


# ----------------------------------------------------------------------------- tracing

ACTIVATION_OPS = ("relu", "leaky_relu", "clip")


def _name(node) -> str:
    """A traced node's readable name (`name_nodes`), fx's own for nodes named before that."""
    return node.meta.get("evsim_name", node.name)


#: Words for the layers of an `nn.Sequential`, numbered in order: conv1, conv2, pool1, fc1 (not fx's `_0`, `_3`).
_SEQUENTIAL_WORDS = {"Conv2d": "conv", "Linear": "fc", "AvgPool2d": "pool", "MaxPool2d": "pool", "BatchNorm2d": "bn",
                     "BatchNorm1d": "bn", "TrainableClip": "clip", "ReLU": "relu", "LeakyReLU": "relu",
                     "Flatten": "flatten", "Dropout": "dropout"}


def name_nodes(graph_module) -> None:
    """Give every module node the name of its module path (`conv1`, `layer3.conv` -> `layer3_conv`); a module of
    a Sequential, whose path ends in its index, a word for its type numbered in order within its parent
    (`features.0` -> `features_conv1`, a top-level Sequential's `0` -> `conv1`). Names stay unique, and never
    `input` (the input population's)."""
    counts: dict = {}
    taken = {"input"}
    modules = dict(graph_module.named_modules())
    for node in graph_module.graph.nodes:
        name = node.name
        if node.op == "call_module":
            *parents, last = str(node.target).split(".")
            if last.isdigit():
                kind = type(modules[node.target]).__name__
                word = _SEQUENTIAL_WORDS.get(kind, kind.lower())
                prefix = "_".join(parents)
                counts[prefix, word] = counts.get((prefix, word), 0) + 1
                name = f"{prefix}_{word}{counts[prefix, word]}" if prefix else f"{word}{counts[prefix, word]}"
            else:
                name = str(node.target).replace(".", "_")
        unique, k = name, 1
        while unique in taken:
            k += 1
            unique = f"{name}_{k}"
        taken.add(unique)
        node.meta["evsim_name"] = unique


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)


def _node_op(node, modules) -> str:
    """What a traced node does: conv2d, dense, batchnorm, an activation, a pool, add, reshape or identity."""
    torch = torch_module()
    nn, F = torch.nn, torch.nn.functional
    from evsim.weights_io.layers import TrainableClip

    if node.op == "call_module":
        module = modules[node.target]
        for types, op in (
            (nn.Conv2d, "conv2d"), (nn.Linear, "dense"), ((nn.BatchNorm2d, nn.BatchNorm1d), "batchnorm"),
            (nn.ReLU, "relu"), (nn.LeakyReLU, "leaky_relu"), (TrainableClip, "clip"), (nn.AvgPool2d, "avgpool2d"),
            (nn.MaxPool2d, "maxpool2d"), (nn.Flatten, "reshape"), ((nn.Dropout, nn.Identity), "identity"),
        ):
            # exact types: a subclass may override forward with anything
            if type(module) in (types if isinstance(types, tuple) else (types,)):
                return op
        raise ExportError(
            f"node {_name(node)!r}: module {node.target!r} of type {type(module).__name__} is not supported "
            "(supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, LeakyReLU, TrainableClip, AvgPool2d, MaxPool2d, "
            "Flatten, Dropout, Identity)"
        )
    ops = {
        "call_function": {F.relu: "relu", torch.relu: "relu", F.leaky_relu: "leaky_relu", torch.flatten: "reshape",
                          F.dropout: "identity", F.max_pool2d: "maxpool2d", torch.max_pool2d: "maxpool2d",
                          operator.add: "add", torch.add: "add"},
        "call_method": {"relu": "relu", "flatten": "reshape", "view": "reshape", "reshape": "reshape",
                        "contiguous": "identity", "add": "add"},
    }.get(node.op, {})
    if node.target in ops:
        return ops[node.target]
    target = getattr(node.target, "__name__", node.target)
    raise ExportError(f"node {_name(node)!r}: {node.op} {target!r} is not supported by the exporter")


def _activation(node, op: str, module) -> Activation:
    """The activation a relu / leaky_relu / clip node applies, its parameters checked."""
    if op == "relu":
        return RELU
    if op == "leaky_relu":
        # F.leaky_relu hands its call to fx with the slope by keyword, the default included
        slope = module.negative_slope if module is not None else node.kwargs["negative_slope"]
        if not slope >= 0:
            raise ExportError(f"node {_name(node)!r}: LeakyReLU negative_slope {slope} < 0 maps negative inputs to "
                              "positive outputs, which no threshold can follow")
        return Activation("leaky_relu", float(slope))
    theta = module.theta.detach()
    if theta.numel() != 1 or not float(theta) > 0:
        raise ExportError(f"node {_name(node)!r}: TrainableClip theta must be one value > 0, got "
                          f"{theta.double().numpy().tolist()}")
    return Activation("clip", 0.0, float(theta))


def _record_shapes(graph_module, example) -> dict:
    """Run the traced graph once; the per-node output shape, or None for non-tensors (x.size(0), ...)."""
    torch = torch_module()
    shapes = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            try:
                result = super().run_node(node)
            except Exception as exc:  # torch's message, with fx's frames: say which layer, and the likely cause
                raise ExportError(_failed_node(node, graph_module, exc)) from None
            shapes[node] = tuple(result.shape) if isinstance(result, torch.Tensor) else None
            if shapes[node] is not None:
                node.meta["evsim_shape"] = shapes[node]  # for the message when a later node fails on it
            return result

    with torch.no_grad():
        Recorder(graph_module).run(example)
    return shapes


def _failed_node(node, graph_module, exc) -> str:
    """Why running `node` on an example batch failed, in the model's terms."""
    torch = torch_module()
    modules = dict(graph_module.named_modules())
    module = modules.get(node.target) if node.op == "call_module" else None
    what = type(module).__name__ if module is not None else getattr(node.target, "__name__", str(node.target))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = f"node {_name(node)!r} ({what}) fails on the example inputs: {first}"
    inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
    if isinstance(module, torch.nn.Linear) and inputs and len(inputs[0].meta.get("evsim_shape", ())) > 2:
        message += (f"; its input has shape {list(inputs[0].meta['evsim_shape'])}: a Linear layer reads a flat "
                    "[batch, features] input, put nn.Flatten() (or x.flatten(1)) before it")
    return message


def _affine_layer(node, module, op, source: Layer, shape) -> Layer:
    weight = module.weight.detach().double().numpy().copy()
    bias = module.bias.detach().double().numpy().copy() if module.bias is not None else np.zeros(weight.shape[0])
    layer = Layer(_name(node), op, shape, (source.name,), weight, bias)
    if op == "conv2d":
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise ExportError(f"node {_name(node)!r}: Conv2d padding {module.padding!r} / padding_mode "
                              f"{module.padding_mode!r}: only explicit zero padding is supported")
        layer.stride, layer.padding = _pair(module.stride), _pair(module.padding)
        layer.dilation, layer.groups = _pair(module.dilation), int(module.groups)
    return layer


def _avgpool_layer(node, module, source: Layer, shape) -> Layer:
    if module.ceil_mode or not module.count_include_pad or module.divisor_override is not None:
        raise ExportError(f"node {_name(node)!r}: AvgPool2d needs ceil_mode=False, count_include_pad=True "
                          "and no divisor_override")
    stride = module.stride if module.stride is not None else module.kernel_size
    return Layer(_name(node), "avgpool2d", shape, (source.name,), kernel=_pair(module.kernel_size),
                 stride=_pair(stride), padding=_pair(module.padding))


#: The arguments of F.max_pool2d and torch.max_pool2d after the input, in order, with their defaults.
_MAXPOOL_ARGUMENTS = (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1),
                      ("ceil_mode", False), ("return_indices", False))


def _maxpool_layer(node, module, source: Layer, shape) -> Layer:
    """A max pool (module or function), PyTorch's defaults: stride = kernel; no dilation, ceil mode or indices."""
    if module is not None:
        given = {name: getattr(module, name) for name, _ in _MAXPOOL_ARGUMENTS}
    else:
        given = dict(_MAXPOOL_ARGUMENTS)
        given.update(zip((name for name, _ in _MAXPOOL_ARGUMENTS), node.args[1:]))
        given.update(node.kwargs)
    stride = given["stride"]
    if stride is None or (not np.isscalar(stride) and len(stride) == 0):  # torch.max_pool2d's default is []
        stride = given["kernel_size"]
    if _pair(given["dilation"]) != (1, 1) or given["ceil_mode"] or given["return_indices"]:
        raise ExportError(f"node {_name(node)!r}: max pool needs dilation 1, ceil_mode=False and "
                          "return_indices=False (the spiking max gate has none of them)")
    return Layer(_name(node), "maxpool2d", shape, (source.name,), kernel=_pair(given["kernel_size"]),
                 stride=_pair(stride), padding=_pair(given["padding"]))


def _fold_batchnorm(layer: Layer, bn, node) -> None:
    """BSNN eq. 7: BN(Wx + b) = (gamma/sigma) W x + (gamma/sigma)(b - mu) + beta."""
    torch = torch_module()
    expected = torch.nn.BatchNorm2d if layer.op == "conv2d" else torch.nn.BatchNorm1d
    if type(bn) is not expected:
        raise ExportError(f"node {_name(node)!r}: {type(bn).__name__} cannot follow a {layer.op} layer")
    if bn.running_mean is None:
        raise ExportError(f"node {_name(node)!r}: batch norm without running statistics cannot be folded")
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones_like(mean)
    beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    layer.weight = layer.weight * scale.reshape(-1, *[1] * (layer.weight.ndim - 1))
    layer.bias = (layer.bias - mean) * scale + beta


def _symbolic_trace(model):
    """torch.fx tracing with TrainableClip kept as one leaf node (fx would otherwise inline its clamp)."""
    torch = torch_module()
    from evsim.weights_io.layers import TrainableClip

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name):
            return type(module) is TrainableClip or super().is_leaf_module(module, qualified_name)

    tracer = Tracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


def trace_model(model, example) -> list[Layer]:
    """Trace `model` (eval mode) with torch.fx into folded layers, in topological order.

    `example` is a small input batch `[n, *input shape]` (n >= 2 lets the
    flatten check tell a batch dimension from a fixed one).
    """
    torch = torch_module()
    try:
        graph_module = _symbolic_trace(model)
    except Exception as exc:
        raise ExportError(f"torch.fx cannot trace {type(model).__name__}: {exc}") from exc
    name_nodes(graph_module)
    graph = _Graph(_record_shapes(graph_module, example), dict(graph_module.named_modules()))
    for node in graph_module.graph.nodes:
        graph.read(node)
    output = graph.value.get(graph.output) if isinstance(graph.output, torch.fx.Node) else None
    last = graph.layers.get(output)
    if last is None or not last.weighted or last.activation.kind != "none" or last.merged_into is not None:
        raise ExportError("the model must return the output of a Conv2d/Linear layer without activation "
                          "(ReLU, LeakyReLU, clip): it becomes the readout population")
    return _ancestors(list(graph.layers.values()), last)


class _Graph:
    """The folded layers read so far from a traced graph, node by node (topological order)."""

    def __init__(self, shapes: dict, modules: dict):
        self.shapes, self.modules = shapes, modules
        self.layers: dict[str, Layer] = {}
        self.value: dict = {}  # fx node -> name of the layer whose output it is
        self.head: dict = {}  # layer name -> the node holding its latest value (after BN / activation)
        self.output = None

    def read(self, node) -> None:
        if node.op == "placeholder":
            if self.layers:
                raise ExportError(f"node {_name(node)!r}: the model must take exactly one input")
            self.add(node, Layer("input", "input", self.shapes[node][1:]))
        elif node.op == "output":
            self.output = node.args[0]
        elif self.shapes[node] is not None:  # else shape arithmetic such as x.size(0): no data
            op = _node_op(node, self.modules)
            if op == "add":
                self.add_sum(node)
                return
            source = self.layers[self.value[node.args[0]]]
            module = self.modules.get(node.target) if node.op == "call_module" else None
            if op == "batchnorm" or op in ACTIVATION_OPS:
                self.apply(node, op, module, source)
                return
            if op != "identity":
                self.check_summed(node, source)
            if op in ("conv2d", "dense", "avgpool2d", "maxpool2d"):
                self.add_layer(node, op, module, source)
            elif op == "reshape":
                self.flatten(node, source)
            else:
                self.value[node] = source.name

    def add(self, node, layer: Layer) -> None:
        self.layers[layer.name] = layer
        self.value[node], self.head[layer.name] = layer.name, node

    def add_layer(self, node, op, module, source: Layer) -> None:
        shape = self.shapes[node][1:]
        if op == "avgpool2d":
            self.add(node, _avgpool_layer(node, module, source, shape))
        elif op == "maxpool2d":
            self.add(node, _maxpool_layer(node, module, source, shape))
        else:
            self.add(node, _affine_layer(node, module, op, source, shape))

    def check_summed(self, node, source: Layer) -> None:
        """A sum must be followed directly by its ReLU before anything reads it."""
        if source.op == "add" and source.activation.kind == "none":
            raise ExportError(f"node {_name(node)!r} reads the sum {source.name!r} directly: a sum (residual add) "
                              "must be followed directly by a ReLU, its only use")

    def add_sum(self, node) -> None:
        """A residual add of two tensors of one shape; conv / linear terms without activation merge into it."""
        alpha = node.kwargs.get("alpha", 1)
        terms = node.args
        torch = torch_module()
        if len(terms) != 2 or not all(isinstance(t, torch.fx.Node) and self.shapes.get(t) is not None
                                      for t in terms) or alpha != 1:
            raise ExportError(f"node {_name(node)!r}: only the sum of two tensors (a + b, alpha 1) is supported")
        if not self.shapes[terms[0]] == self.shapes[terms[1]] == self.shapes[node]:
            raise ExportError(f"node {_name(node)!r}: the terms of a sum must have one shape (no broadcasting), got "
                              f"{list(self.shapes[terms[0]])} and {list(self.shapes[terms[1]])}")
        layers = [self.layers[self.value[t]] for t in terms]
        if layers[0] is layers[1]:
            raise ExportError(f"node {_name(node)!r} adds {layers[0].name!r} to itself: scale it in a layer instead")
        for term, layer in zip(terms, layers):
            self.check_summed(node, layer)
            if layer.weighted and layer.activation.kind == "none":
                if self.head[layer.name] is not term or len(term.users) != 1:
                    raise ExportError(f"node {_name(node)!r}: the term {layer.name!r} (a Conv2d/Linear without "
                                      "activation) must be used only by the sum, which absorbs it")
                layer.merged_into = _name(node)
        self.add(node, Layer(_name(node), "add", self.shapes[node][1:], tuple(layer.name for layer in layers)))

    def apply(self, node, op, module, source: Layer) -> None:
        """Fold a batch norm into, or put an activation on, the conv / linear layer (or the sum) just before."""
        activation = None if op == "batchnorm" else _activation(node, op, module)
        if op in ("relu", "leaky_relu") and non_negative(source, self.layers):
            self.value[node] = source.name  # (leaky) ReLU of a non-negative value is the identity
            return
        previous = node.args[0]
        takes = source.weighted or (source.op == "add" and op != "batchnorm")
        if not takes or source.activation.kind != "none" or self.head[source.name] is not previous \
                or len(previous.users) != 1:
            raise ExportError(f"node {_name(node)!r}: {op} must directly follow a Conv2d/Linear (or its batch "
                              f"norm){' or a sum' if op != 'batchnorm' else ''} whose output has no other use; "
                              f"it follows {previous.name!r}")
        if op == "batchnorm":
            _fold_batchnorm(source, module, node)
        else:
            source.activation = activation
        self.value[node], self.head[source.name] = source.name, node

    def flatten(self, node, source: Layer) -> None:
        if self.shapes[node] != (self.shapes[node.args[0]][0], int(np.prod(source.shape))):
            raise ExportError(f"node {_name(node)!r}: reshape to {list(self.shapes[node])} is not a flatten to "
                              "[batch, features]")
        self.value[node] = source.name  # flatten is no layer: dense reads its source in C-major order


def _ancestors(layers: list[Layer], last: Layer) -> list[Layer]:
    """The layers `last` depends on, itself included (traced but unused modules are dropped)."""
    keep = {last.name}
    for layer in reversed(layers):
        if layer.name in keep:
            keep.update(layer.sources)
    return [layer for layer in layers if layer.name in keep]


# ----------------------------------------------------------------------------- folding average pools

_FOLD_HINT = "; use pool='population' to give the pool a spiking population of its own"


def fold_pools(layers: list[Layer]) -> list[Layer]:
    """Every average pool folded into the one conv / dense layer that reads it; the pool's layer is gone.

    A pool of kernel = stride (kh, kw), no padding, is linear, so the layer
    after it can read the pool's input directly (docs/export.md, "Average
    pools"):

    - a conv (kernel kc, stride sc, padding pc, dilation 1) becomes a conv of
      kernel kc * k (= (kc - 1) * s + k), stride sc * s and padding pc * s
      whose weight is W repeated over each pool window, / (kh kw);
    - a dense layer reads the pool's input [C, H, W]: weight
      W[o, c, y // kh, x // kw] / (kh kw), 0 on the rows and columns the
      pool never read (H, W not multiples of the stride).

    Exact (every output equals the ANN's up to float rounding) under the
    conditions checked here; anything else is an ExportError naming the pool
    and the reason. Pools are folded last first, so a pool feeding a pool
    feeding a conv folds twice into that conv.
    """
    layers = list(layers)
    for pool in [layer for layer in reversed(layers) if layer.op == "avgpool2d"]:
        by_name = {layer.name: layer for layer in layers}
        readers = [layer for layer in layers if pool.name in layer.sources]
        reader = _fold_reader(pool, readers)
        source_shape = by_name[pool.source].shape
        folded = _fold_conv(pool, reader, source_shape) if reader.op == "conv2d" else _fold_dense(pool, reader,
                                                                                                  source_shape)
        layers = [folded if layer is reader else layer for layer in layers if layer is not pool]
    return layers


def _fold_reader(pool: Layer, readers: list[Layer]) -> Layer:
    """The one conv / dense layer reading `pool`, if the pool's geometry folds exactly; else ExportError."""
    def refuse(why: str):
        raise ExportError(f"average pool {pool.name!r} cannot be folded into the next layer: {why}{_FOLD_HINT}")

    if pool.padding != (0, 0):
        refuse(f"it pads by {list(pool.padding)} (a fold is exact only for a pool without padding)")
    if pool.kernel != pool.stride:
        refuse(f"its kernel {list(pool.kernel)} differs from its stride {list(pool.stride)} (a fold needs windows "
               "that neither overlap nor leave gaps: kernel = stride)")
    if len(readers) != 1 or readers[0].op not in ("conv2d", "dense"):
        what = ", ".join(f"{r.name!r} ({'a residual sum' if r.op == 'add' else r.op})" for r in readers)
        refuse(f"it is read by {what}; a fold needs exactly one reader, a Conv2d or Linear layer")
    reader = readers[0]
    if reader.op == "conv2d" and reader.dilation != (1, 1):
        refuse(f"the conv {reader.name!r} after it has dilation {list(reader.dilation)} (a fold needs dilation 1)")
    return reader


def _fold_conv(pool: Layer, conv: Layer, source_shape) -> Layer:
    """conv(avgpool(x)) as one conv over x (kernel = stride = k, no padding: `_fold_reader`)."""
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel, conv.stride, conv.padding
    pooled = pool.shape[1:]
    for axis, (size, k, kc, s, p) in enumerate(zip(source_shape[1:], pool.kernel, conv.weight.shape[2:],
                                                   conv.stride, conv.padding)):
        out = (pooled[axis] + 2 * p - kc) // s + 1
        reaches_past = s * (out - 1) + kc - 1 - p >= pooled[axis]  # the conv reads its padding after the map's end
        if reaches_past and size % k:
            side = ("rows", "bottom") if axis == 0 else ("columns", "right")
            raise ExportError(
                f"average pool {pool.name!r} cannot be folded into the next layer: the conv {conv.name!r} pads by "
                f"{p} and reads past the pooled map's {side[1]} edge, where the pool's input ({size} {side[0]}, not a "
                f"multiple of the pool's stride {k}) has {size % k} {side[0]} the pool never read: folded, the conv "
                f"would read them instead of zero padding{_FOLD_HINT}")
    weight = np.repeat(np.repeat(conv.weight, kh, axis=2), kw, axis=3) / (kh * kw)
    return replace(conv, sources=(pool.source,), weight=weight, stride=(sh * kh, sw * kw), padding=(ph * kh, pw * kw),
                   folded=(pool.name, *conv.folded), unfolded_weight=conv.ann_weight)


def _fold_dense(pool: Layer, dense: Layer, source_shape) -> Layer:
    """dense(flatten(avgpool(x))) as one dense layer over flatten(x): W[o, c, y // kh, x // kw] / (kh kw)."""
    (kh, kw), (channels, rows, cols) = pool.kernel, pool.shape
    weight = dense.weight.reshape(len(dense.weight), channels, rows, cols)
    spread = np.zeros((len(weight), *source_shape))
    spread[:, :, :rows * kh, :cols * kw] = np.repeat(np.repeat(weight, kh, axis=2), kw, axis=3) / (kh * kw)
    return replace(dense, sources=(pool.source,), weight=spread.reshape(len(weight), -1),
                   folded=(pool.name, *dense.folded), unfolded_weight=dense.ann_weight)


# ----------------------------------------------------------------------------- the folded ANN


def _activate(y, activation: Activation):
    F = torch_module().nn.functional
    if activation.kind == "relu":
        return F.relu(y)
    if activation.kind == "leaky_relu":
        return F.leaky_relu(y, activation.negative_slope)
    if activation.kind == "clip":
        return y.clamp(0.0, activation.ceiling)
    return y


def run_layers(layers: list[Layer], x) -> dict:
    """Run the folded ANN on a batch; {layer name: output tensor (after its activation)}.

    A conv / dense term merged into a sum has its pre-activation output (no activation).
    """
    torch = torch_module()
    F = torch.nn.functional
    acts = {}
    for layer in layers:
        if layer.op == "input":
            y = x
        elif layer.op == "avgpool2d":
            y = F.avg_pool2d(acts[layer.source], layer.kernel, layer.stride, layer.padding)
        elif layer.op == "maxpool2d":
            y = F.max_pool2d(acts[layer.source], layer.kernel, layer.stride, layer.padding)
        elif layer.op == "sync":
            y = acts[layer.source]
        elif layer.op == "add":
            y = sum(acts[name] for name in layer.sources)
        else:
            w = torch.from_numpy(layer.weight).to(x.dtype)
            b = torch.from_numpy(layer.bias).to(x.dtype)
            src = acts[layer.source]
            if layer.op == "dense":
                y = F.linear(src.flatten(1), w, b)
            else:
                y = F.conv2d(src, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
        acts[layer.name] = _activate(y, layer.activation)
    return acts


def weighted_layer_outputs(layers: list[Layer], calibration, batch_size: int) -> Iterator[dict]:
    """{layer name: its outputs (after the activation), numpy} for every measured layer (conv / dense with a
    population, and sums), one calibration batch at a time.

    The ANN runs in the calibration's dtype (the model's own float32), as it
    ran in training; what a method computes from these is float64.
    """
    torch = torch_module()
    with torch.no_grad():
        for start in range(0, len(calibration), batch_size):
            acts = run_layers(layers, calibration[start:start + batch_size])
            yield {layer.name: acts[layer.name].numpy() for layer in layers if layer.measured}
