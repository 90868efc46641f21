"""Importing a model converted by SpikingJelly 2.0 (`spikingjelly.activation_based.ann2snn`) as an evsim network.

`ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=..., mode="99.9%"), device="cpu").convert(model)`
returns a `torch.fx.GraphModule` in which every ReLU of the ANN has become
three modules: a scaler (`VoltageScaler`, or per channel
`ChannelVoltageScaler`) by `a`, an IF neuron of threshold `theta` and reset
by subtraction (`IFNode(v_reset=None)`, or `HalfThresholdIFNode`: the same
neuron starting at `theta / 2`), and a scaler by `b` (SpikingJelly sets
`a = theta / s`, `b = s`, `s` the layer's calibrated activation). Its
conv / linear layers, average pools and flattens are the ANN's (batch norms
already fused into the convs). At every step the graph is run once on the
analog input and the output layer's value is summed over the steps.

The same network in evsim, exactly (docs/export.md, "Importing a
SpikingJelly model"):

- every conv / linear layer followed by scaler-IF-scaler becomes an `if`
  population of threshold 1, reset by subtraction (v_init 0, or 1/2 for
  `HalfThresholdIFNode`): its membrane is SpikingJelly's divided by `theta`,
  so its weights are `W[o, i] * a[o] / theta * b_source[i]` and its bias
  `bias[o] * a[o] / theta` (`b_source` the spike value of the layer it reads,
  1 for the input; `a` and `b` scalars or one value per channel);
- average pools are folded into the conv / linear layer after them
  (`trace.fold_pools`, exact);
- the output layer (a conv / linear layer with no neuron after it) becomes
  a readout in `potential` mode with weights `W * b_source` and its bias, so
  its potential after step t is SpikingJelly's summed output, output_scale 1.

Anything else (max pools, residual sums, hard reset, other neuron models, a
scaler or neuron anywhere but right after a conv / linear layer) is an
`ExportError` naming the node and what it is. torch (and spikingjelly) are
imported only inside the functions.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from evsim import kinds
from evsim.errors import ExportError
from evsim.network import AnnInfo, Network
from evsim.weights_io.export import (
    Build,
    _predict,
    _samples,
    ann_macs,
    architecture_string,
    build_network,
)
from evsim.weights_io.methods import Scaling
from evsim.weights_io.trace import (
    RELU,
    Layer,
    _affine_layer,
    _avgpool_layer,
    _record_shapes,
    fold_pools,
    run_layers,
    torch_module,
)

__all__ = ["convert_spikingjelly", "from_spikingjelly"]

SUPPORTED = ("Conv2d, Linear, AvgPool2d, Flatten (module, torch.flatten, .flatten/.view/.reshape), Dropout, "
             "Identity, and after each hidden Conv2d/Linear: VoltageScaler or ChannelVoltageScaler, IFNode "
             "(v_reset=None) or HalfThresholdIFNode, VoltageScaler or ChannelVoltageScaler")


@dataclass
class _Neurons:
    """The scaler-IF-scaler that replaced a layer's ReLU: what reaches the neuron, its threshold and what it emits."""

    into: np.ndarray  # `a`: scalar () or one per channel / neuron
    scaler_in: str
    theta: float = 1.0
    v_init_fraction: float = 0.0  # HalfThresholdIFNode: 1/2
    neuron: str = ""
    node: str = ""
    spike: Optional[np.ndarray] = None  # `b`: what one spike stands for (1 without a scaler after the neuron)
    scaler_out: str = ""


def _spikingjelly():
    try:
        from spikingjelly.activation_based import layer, neuron
        from spikingjelly.activation_based.ann2snn import modules
        from spikingjelly.activation_based.ann2snn.recipes.step_mode_adapters import _StepModeTensorOp
    except ImportError as exc:
        raise ExportError("importing a SpikingJelly model needs spikingjelly 2.0: "
                          "pip install --no-deps spikingjelly==2.0.0 loguru requests") from exc
    return layer, neuron, modules, _StepModeTensorOp


def _node_kinds():
    """{module type: what evsim reads it as}, exact types (SpikingJelly's step-mode layers and torch's own)."""
    torch = torch_module()
    nn = torch.nn
    layer, neuron, modules, tensor_op = _spikingjelly()
    return {
        nn.Conv2d: "conv2d", layer.Conv2d: "conv2d", nn.Linear: "dense", layer.Linear: "dense",
        nn.AvgPool2d: "avgpool2d", layer.AvgPool2d: "avgpool2d", nn.Flatten: "reshape", layer.Flatten: "reshape",
        nn.Dropout: "identity", layer.Dropout: "identity", nn.Identity: "identity",
        modules.VoltageScaler: "scaler", modules.ChannelVoltageScaler: "scaler",
        neuron.IFNode: "if", neuron.HalfThresholdIFNode: "if", tensor_op: "tensor_op",
    }


class _Reader:
    """The evsim layers of a SpikingJelly graph, node by node (topological order)."""

    def __init__(self, graph_module, shapes: dict):
        self.modules = dict(graph_module.named_modules())
        self.shapes = shapes
        self.kinds = _node_kinds()
        self.layers: dict[str, Layer] = {}
        self.neurons: dict[str, _Neurons] = {}  # layer name -> its neurons (complete once `spike` is set)
        self.value: dict = {}  # fx node -> name of the layer whose value it holds
        self.stage: dict = {}  # fx node -> "scaled" (after the first scaler) or "spiked" (after the IF neuron)
        self.head: dict = {}  # layer name -> the node holding its latest value
        self.output = None

    def read(self, node) -> None:
        if node.op == "placeholder":
            if self.layers:
                raise ExportError(f"node {node.name!r}: the model must take exactly one input")
            self.add(node, Layer("input", "input", self.shapes[node][1:]))
            return
        if node.op == "output":
            self.output = node.args[0]
            return
        if self.shapes[node] is None:  # shape arithmetic such as x.size(0): no data
            return
        op, module = self.op(node)
        source_node = node.args[0]
        source = self.layers[self.value[source_node]]
        if op == "scaler":
            self.scaler(node, module, source)
        elif op == "if":
            self.neuron(node, module, source)
        else:
            self.complete(node, source)
            if op in ("conv2d", "dense"):
                self.add(node, _affine_layer(node, module, op, source, self.shapes[node][1:]))
            elif op == "avgpool2d":
                self.add(node, _avgpool_layer(node, module, source, self.shapes[node][1:]))
            elif op == "reshape":
                self.flatten(node, source)
            else:  # identity
                self.value[node], self.stage[node] = source.name, self.stage.get(source_node)

    def op(self, node):
        """(what the node does, its module or None)."""
        if node.op == "call_module":
            module = self.modules[node.target]
            op = self.kinds.get(type(module))
            if op == "tensor_op":
                op = "reshape" if module.op_name in ("flatten", "reshape") else None
            if op is None:
                raise ExportError(f"node {node.name!r}: module {node.target!r} of type {type(module).__name__} "
                                  f"cannot be imported ({_refusal(module)}supported: {SUPPORTED})")
            return op, module
        torch = torch_module()
        ops = {"call_function": {torch.flatten: "reshape", torch.nn.functional.dropout: "identity"},
               "call_method": {"flatten": "reshape", "view": "reshape", "reshape": "reshape", "contiguous": "identity"}}
        op = ops.get(node.op, {}).get(node.target)
        if op is None:
            target = getattr(node.target, "__name__", node.target)
            raise ExportError(f"node {node.name!r}: {node.op} {target!r} cannot be imported (supported: {SUPPORTED})")
        return op, None

    def add(self, node, layer: Layer) -> None:
        self.layers[layer.name] = layer
        self.value[node], self.head[layer.name] = layer.name, node

    def complete(self, node, source: Layer) -> None:
        """Before anything but the second scaler reads a layer, its neurons must be whole (or absent)."""
        neurons = self.neurons.get(source.name)
        stage = self.stage.get(node.args[0])
        if stage == "scaled":
            raise ExportError(f"node {node.name!r} reads {node.args[0].name!r}, a scaler not followed by an IF neuron")
        if neurons is not None and neurons.spike is None:
            neurons.spike = np.ones(())  # the IF neuron's spikes are read as they are
        if source.weighted and neurons is None:
            raise ExportError(f"node {node.name!r} reads the Conv2d/Linear layer {source.name!r} directly: only the "
                              "output layer may have no IF neuron after it (a hidden linear layer has no spiking "
                              "equivalent here)")

    def scaler(self, node, module, source: Layer) -> None:
        scale = module.scale.detach().double().numpy().copy()
        if type(module).__name__ == "ChannelVoltageScaler" and scale.ndim == 1:
            dims = len(self.shapes[node])
            if module.channel_dim not in (1, 1 - dims):
                raise ExportError(f"node {node.name!r}: ChannelVoltageScaler {node.target!r} scales dimension "
                                  f"{module.channel_dim} of a {dims}-dimensional tensor; only channels (dimension 1) "
                                  "map to evsim's per-channel weights")
            if len(scale) != self.shapes[node][1]:
                raise ExportError(f"node {node.name!r}: {len(scale)} scales for {self.shapes[node][1]} channels")
        if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
            raise ExportError(f"node {node.name!r}: scaler {node.target!r} must scale by finite values > 0")
        previous = node.args[0]
        neurons = self.neurons.get(source.name)
        if self.stage.get(previous) == "spiked" and neurons.spike is None:
            neurons.spike, neurons.scaler_out = scale, node.target
            self.value[node], self.head[source.name] = source.name, node
            return
        if not source.weighted or neurons is not None or self.head[source.name] is not previous \
                or len(previous.users) != 1:
            raise ExportError(f"node {node.name!r}: a scaler must directly follow a Conv2d/Linear layer whose output "
                              f"has no other use (then an IF neuron), or follow that neuron; it follows "
                              f"{previous.name!r}")
        self.neurons[source.name] = _Neurons(into=scale, scaler_in=node.target)
        self.value[node], self.stage[node] = source.name, "scaled"

    def neuron(self, node, module, source: Layer) -> None:
        previous = node.args[0]
        neurons = self.neurons.get(source.name)
        if self.stage.get(previous) != "scaled" or len(previous.users) != 1:
            raise ExportError(f"node {node.name!r}: an IF neuron must directly follow the scaler after a "
                              f"Conv2d/Linear layer; it follows {previous.name!r}")
        half = type(module).__name__ == "HalfThresholdIFNode"
        if module.v_reset is not None:
            raise ExportError(f"node {node.name!r}: IFNode {node.target!r} resets to v_reset={module.v_reset} (hard "
                              "reset); only reset by subtraction (v_reset=None, as ann2snn makes it) is imported")
        theta = float(module.v_threshold)
        if not np.isfinite(theta) or theta <= 0:
            raise ExportError(f"node {node.name!r}: IF threshold {theta} must be finite and > 0")
        neurons.theta, neurons.v_init_fraction = theta, 0.5 if half else 0.0
        neurons.neuron, neurons.node = type(module).__name__, node.target
        source.activation = RELU  # the ANN's: the rate of the neurons follows a ReLU
        self.value[node], self.stage[node], self.head[source.name] = source.name, "spiked", node

    def flatten(self, node, source: Layer) -> None:
        if self.shapes[node] != (self.shapes[node.args[0]][0], int(np.prod(source.shape))):
            raise ExportError(f"node {node.name!r}: reshape to {list(self.shapes[node])} is not a flatten to "
                              "[batch, features]")
        self.value[node], self.stage[node] = source.name, self.stage.get(node.args[0])

    def finish(self) -> list[Layer]:
        torch = torch_module()
        if not isinstance(self.output, torch.fx.Node) or self.output not in self.value:
            raise ExportError("the model must return one tensor: the output of its last Conv2d/Linear layer")
        last = self.layers[self.value[self.output]]
        if not last.weighted or last.name in self.neurons or self.head[last.name] is not self.output:
            raise ExportError("the model must return the output of a Conv2d/Linear layer with no neuron after it: "
                              "it becomes the readout population")
        for neurons in self.neurons.values():
            if neurons.spike is None:
                neurons.spike = np.ones(())
        return list(self.layers.values())


def _refusal(module) -> str:
    """Why a module SpikingJelly may emit has no evsim equivalent (empty when it is just unknown)."""
    name = type(module).__name__
    if "MaxPool" in name:
        return ("a max pool over spikes passes, per window, every spike of this step (their maximum), while evsim's "
                "spiking max gate passes the spikes of the one neuron that has fired most so far; ")
    if name.endswith("Node"):
        return "only IFNode and HalfThresholdIFNode (reset by subtraction) are imported; "
    if "BatchNorm" in name:
        return "a batch norm SpikingJelly did not fuse into a Conv2d cannot be imported; "
    return ""


def _source_spike(layer: Layer, layers: dict, neurons: dict) -> np.ndarray:
    """What one spike of each input feature of `layer` stands for, broadcast over the input's shape."""
    source = layers[layer.source]
    while source.op == "avgpool2d":  # a pool passes values on per channel, unchanged in scale
        source = layers[source.source]
    spike = neurons[source.name].spike if source.name in neurons else np.ones(())
    shape = layers[layer.source].shape
    if spike.ndim == 0:
        return np.full(shape, float(spike))
    return np.broadcast_to(spike.reshape(-1, *[1] * (len(shape) - 1)), shape)


def _scaled(layer: Layer, layers: dict, neurons: dict) -> Layer:
    """`layer` with weights and bias in units of its evsim membrane (threshold 1): rows times a / theta (1 for the
    readout), columns times the source's spike value."""
    spike = _source_spike(layer, layers, neurons)
    own = neurons.get(layer.name)
    rows = np.ones(len(layer.weight)) if own is None else np.broadcast_to(own.into / own.theta, (len(layer.weight),))
    if layer.op == "dense":
        weight = layer.weight * rows[:, None] * spike.reshape(1, -1)
    else:  # conv2d: input channel j of output o's group
        cout, per_group = layer.weight.shape[:2]
        group = np.arange(cout) // (cout // layer.groups)
        channels = group[:, None] * per_group + np.arange(per_group)[None, :]
        columns = spike[:, 0, 0] if spike.ndim == 3 else spike.reshape(-1)
        weight = layer.weight * rows[:, None, None, None] * columns[channels][:, :, None, None]
    return replace(layer, weight=weight, bias=layer.bias * rows, unfolded_weight=None)


def _example(model, samples, input_shape):
    """A batch of two zero inputs in the model's dtype, and the input shape."""
    torch = torch_module()
    if samples is not None:
        shape = tuple(np.asarray(samples).shape[1:])
    elif input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
    else:
        raise ExportError("from_spikingjelly needs samples or input_shape (the input shape without the batch)")
    if input_shape is not None and tuple(int(s) for s in input_shape) != shape:
        raise ExportError(f"input_shape {list(input_shape)} differs from the samples' shape {list(shape)}")
    parameter = next(model.parameters(), None)
    return torch.zeros((2, *shape), dtype=torch.float32 if parameter is None else parameter.dtype), shape


def _single_step_copy(model):
    """A copy in single-step mode, its neurons at rest: reading shapes must not disturb the caller's model."""
    torch = torch_module()
    if not isinstance(model, torch.fx.GraphModule):
        raise ExportError(f"expected the torch.fx.GraphModule that ann2snn.Converter.convert returns, got "
                          f"{type(model).__name__}")
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "step_mode"):
            module.step_mode = "s"
        if hasattr(module, "reset") and callable(module.reset) and hasattr(module, "_memories"):
            module.reset()
    return model


def convert_spikingjelly(model, *, samples=None, labels=None, input_shape=None) -> Network:
    """The evsim `Network` of a SpikingJelly-converted model (module docstring); `samples` / `labels` embedded
    as `/samples`, with the ANN's outputs on them (the graph with every scaler-IF-scaler a ReLU again)."""
    torch = torch_module()
    graph_module = _single_step_copy(model)
    example, shape = _example(graph_module, samples, input_shape)
    try:
        shapes = _record_shapes(graph_module, example)
    except Exception as exc:
        raise ExportError(f"the model does not run on inputs of shape {list(shape)}: {exc}") from exc
    reader = _Reader(graph_module, shapes)
    for node in graph_module.graph.nodes:
        reader.read(node)
    ann_layers = reader.finish()
    by_name, neurons = {layer.name: layer for layer in ann_layers}, reader.neurons
    scaled = [_scaled(layer, by_name, neurons) if layer.weighted else layer for layer in ann_layers]
    layers = fold_pools(scaled)
    scalings = {layer.name: Scaling(1.0, 1.0) for layer in layers}  # weights are in units of the membrane already
    populations, projections, summary = build_network(layers, scalings, Build())
    populations = [replace(p, v_init=np.array(neurons[p.name].v_init_fraction, np.float32))
                   if p.name in neurons and neurons[p.name].v_init_fraction else p for p in populations]
    sample_set = outputs = accuracy = None
    if samples is not None:
        sample_set = _samples(samples, labels, shape, kinds.ANALOG)
        ann = _AnnOf(ann_layers)
        outputs = _predict(ann, sample_set.inputs, 256)
        if sample_set.labels is not None:
            accuracy = float(np.mean(outputs.argmax(1) == sample_set.labels))
    lambdas = None
    if all(n.spike.ndim == 0 for n in neurons.values()):
        lambdas = np.array([float(neurons[p.name].spike) if p.name in neurons else 1.0 for p in populations])
    macs = ann_macs(ann_layers)
    meta = {
        "method": "spikingjelly",
        "source": "spikingjelly.activation_based.ann2snn (FX graph): scaler a - IF(theta) - scaler b per ReLU",
        "rules": "if population per Conv2d/Linear + IF: theta 1, reset by subtraction, weights W a/theta "
                 "(rows) x b of the source (columns), bias b a/theta; HalfThresholdIFNode: v_init 1/2; average "
                 "pools folded into the next layer; output layer a potential readout (weights W x b of the source)",
        "avgpool": "folded into the one conv / dense layer that reads it",
        "layers": summary,
        "neurons": {name: {"scaler_in": n.scaler_in, "a": n.into.tolist(), "neuron": n.neuron, "node": n.node,
                           "theta": n.theta, "v_init_fraction": n.v_init_fraction, "scaler_out": n.scaler_out,
                           "b": n.spike.tolist()} for name, n in neurons.items()},
        "architecture": architecture_string(ann_layers),
        "torch_version": torch.__version__,
        "spikingjelly_version": _version(),
    }
    return Network(
        populations=tuple(populations), projections=tuple(projections), output=layers[-1].name,
        output_scale=np.array(1.0, np.float32),
        ann=AnnInfo(macs=sum(macs.values()), accuracy=accuracy, layer_macs=macs, lambdas=lambdas, outputs=outputs),
        samples=sample_set, meta=meta, producer=_producer(torch),
    )


class _AnnOf:
    """The ANN a SpikingJelly graph converted (its layers, ReLU where the neurons are), callable on a batch."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    def __call__(self, x):
        return run_layers(self.layers, x)[self.layers[-1].name]


def _version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("spikingjelly")
    except Exception:  # pragma: no cover - the version is only recorded
        return None


def _producer(torch) -> str:
    from evsim import __version__

    return f"evsim {__version__} weights_io.spikingjelly (spikingjelly {_version()}, torch {torch.__version__})"


def from_spikingjelly(model, path, *, samples=None, labels=None, input_shape=None) -> Network:
    """Import a model converted by SpikingJelly 2.0's ann2snn (`Converter(...).convert(ann)`, a torch.fx
    GraphModule), write it to `path` as an evsim file, return the network.

    - `samples` `[n, *input shape]` (and `labels`): embedded as `/samples`, with the ANN's outputs on them;
    - `input_shape`: the input shape without the batch, when there are no samples.
    """
    from evsim.weights_io.hdf5 import write_network

    network = convert_spikingjelly(model, samples=samples, labels=labels, input_shape=input_shape)
    write_network(path, network)
    return network
