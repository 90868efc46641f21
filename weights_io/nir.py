"""NIR (the Neuromorphic Intermediate Representation, `pip install nir`, 1.0.x) import and export (docs/nir.md).

`from_nir(graph_or_path, path)` reads a NIR graph as an evsim network and
writes it as an evsim file; `to_nir(network_or_path, path)` writes an
evsim network as a NIR graph. Both raise `NirError` naming the node (or
population) and the problem for anything the other side cannot hold.

How NIR's continuous-time equations are read as evsim's steps (docs/nir.md):
one evsim step is one time step `dt` of forward Euler, so a neuron with
resistance `R` adds `dt * R * I(t)` per step, where `I(t) = W x(t) + b` is
what its incoming linear nodes compute from the spikes (or the input
values) of this step. `dt * R` is folded into the incoming weights and
biases. NIR's `IF` fires when `v > v_threshold` and then sets `v = v_reset`:
evsim's `fire_when = gt` and `reset = value` (format version 3). `I` is a
potential readout.

Import, in three steps: the graph's nodes in topological order (a cycle is
a recurrent edge: refused), the populations (one per Input, IF and I node),
then one projection per path of linear nodes from one population to the
next. A path with at most one weighted node (Affine, Linear, Conv2d,
AvgPool2d, SumPool2d; Flatten and uniform Scale nodes anywhere on it)
becomes that node's own evsim kind; any other path (a pool then a
convolution, a resistance that varies within a channel) is composed
exactly into one `sparse` projection. Biases are summed over every path
that carries them, as NIR sums every edge into a node.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp

from evsim.errors import NirError
from evsim.geometry import conv_output_hw
from evsim.kinds import GT, POTENTIAL, SUBTRACT, TO_VALUE
from evsim.network import Network, Population, Projection
from evsim.weights_io.hdf5 import read_network, write_network

#: What an evsim-made graph records in a node's metadata (under this key) to restore evsim's rules on import.
EVSIM_KEY = "evsim"
#: NIR node types evsim has no model for, and why (the error names the node, its type and this reason).
_UNSUPPORTED = {
    "LIF": "a leaky neuron: evsim's neurons do not leak",
    "CubaLIF": "a current-based leaky neuron: evsim's neurons have no synaptic current and do not leak",
    "LI": "a leaky integrator: evsim's readout does not leak",
    "CubaLI": "a current-based leaky integrator: evsim's readout does not leak",
    "Delay": "a delay: evsim delivers every event in the step it is emitted",
    "Threshold": "a threshold without a membrane",
    "Conv1d": "a 1-d convolution: evsim's convolutions are 2-d",
    "NIRGraph": "a subgraph (snnTorch's recurrent layers export as one): evsim reads flat graphs",
}
_LINEAR = ("Affine", "Linear", "Conv2d", "AvgPool2d", "SumPool2d", "Flatten", "Scale")
_WEIGHTED = ("Affine", "Linear", "Conv2d", "AvgPool2d", "SumPool2d")
_NEURONS = ("IF", "I")
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _nir():
    try:
        import nir
    except ImportError as exc:  # an optional extra
        raise NirError("NIR support needs the nir package: pip install 'evsim[nir]'") from exc
    return nir


# -- import ------------------------------------------------------------------------


def from_nir(graph_or_path, path=None, *, dt: float = 1.0) -> Network:
    """Read a NIR graph (a `nir.NIRGraph` or a .nir file) as an evsim network; write it to `path` if given.

    `dt` is the time step one evsim step stands for (docs/nir.md). Returns the Network.
    """
    nir = _nir()
    if isinstance(graph_or_path, (str, Path)):
        source = Path(graph_or_path)
        if not source.exists():
            raise NirError(f"{source}: no such file")
        try:
            graph = nir.read(source)
        except Exception as exc:  # nir raises anything from KeyError to h5py's OSError
            raise NirError(f"{source}: not a NIR graph nir {nir.version} reads ({type(exc).__name__}: {exc})") from exc
    else:
        graph = graph_or_path
    if not dt > 0:
        raise NirError(f"dt must be > 0, not {dt}")
    if not isinstance(graph, nir.NIRGraph):
        raise NirError(f"from_nir reads a nir.NIRGraph or a .nir file, not a {type(graph).__name__}")
    try:
        network = _Importer(graph, float(dt)).network()
    except NirError:
        raise
    except Exception as exc:  # a node whose fields are not what nir's constructors make
        raise NirError(f"the graph cannot be read ({type(exc).__name__}: {exc})") from exc
    if path is not None:
        write_network(path, network)
    return network


@dataclass
class _Path:
    """A chain of linear nodes from a population node to a neuron node (node names, source to target)."""

    source: str
    nodes: list[str]
    target: str


@dataclass
class _Importer:
    graph: object
    dt: float
    shapes: dict = field(default_factory=dict)  # node name -> the shape of its output
    names: dict = field(default_factory=dict)  # population node name -> evsim population name

    def network(self) -> Network:
        order = self.topological_order()
        for name in order:
            self.check_supported(name)
        inputs = [n for n in order if self.type(n) == "Input"]
        if len(inputs) != 1:
            raise NirError(f"a graph evsim imports has exactly one Input node; found {len(inputs)} ({', '.join(inputs)})")
        for name in order:
            self.shapes[name] = self.output_shape(name)
        by_node = {node: self.population(node, i) for i, node in enumerate(n for n in order if self.stateful(n))}
        projections, biases = [], {}
        for node, pop in by_node.items():
            if pop.kind == "input":
                continue
            gain = self.gain(node)
            for path in self.paths_into(node):
                projections.append(self.projection(path, by_node, gain))
            biases[node] = self.bias_into(node) * gain
        pops = [pop if node not in biases else _with_bias(pop, biases[node]) for node, pop in by_node.items()]
        _unique_names(projections)
        output = self.output(by_node)
        return Network(populations=tuple(pops), projections=tuple(projections), output=output,
                       output_scale=self.output_scale(), meta={"method": "nir", "dt": self.dt,
                                                               "nir_metadata": _jsonable(getattr(self.graph, "metadata", {}))},
                       producer="evsim.weights_io.nir")

    # -- the graph ------------------------------------------------------------

    def type(self, name: str) -> str:
        return type(self.graph.nodes[name]).__name__

    def node(self, name: str):
        return self.graph.nodes[name]

    def stateful(self, name: str) -> bool:
        return self.type(name) in ("Input", *_NEURONS)

    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.graph.edges if b == name]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.graph.edges if a == name]

    def topological_order(self) -> list[str]:
        """Kahn's order of the nodes; what is left is a cycle: a recurrent edge, which evsim has no delay for."""
        nodes = list(self.graph.nodes)
        for a, b in self.graph.edges:
            for end in (a, b):
                if end not in self.graph.nodes:
                    raise NirError(f"edge ({a!r}, {b!r}) names {end!r}, which is not a node of the graph")
        indegree = {n: 0 for n in nodes}
        for _, b in self.graph.edges:
            indegree[b] += 1
        ready, order = [n for n in nodes if indegree[n] == 0], []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for succ in self.successors(name):
                indegree[succ] -= 1
                if indegree[succ] == 0:
                    ready.append(succ)
        if len(order) < len(nodes):
            left = [n for n in nodes if n not in order]
            cycle = [n for n in left if self.reaches(n, n)]
            raise NirError(f"recurrent edge: nodes {', '.join(cycle)} form a cycle; evsim delivers every event in the "
                           "step it is emitted and has no recurrent connections")
        return order

    def reaches(self, start: str, goal: str) -> bool:
        seen, todo = set(), self.successors(start)
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(self.successors(node))
        return False

    def check_supported(self, name: str) -> None:
        kind = self.type(name)
        if kind in _UNSUPPORTED:
            raise NirError(f"node {name!r} is a {kind}, {_UNSUPPORTED[kind]}; evsim imports Input, Output, Affine, "
                           "Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, uniform Scale, IF and I")
        if kind not in ("Input", "Output", *_LINEAR, *_NEURONS):
            raise NirError(f"node {name!r} is a {kind}, a node type evsim does not import")
        if kind == "Scale":
            scale = np.asarray(self.node(name).scale, dtype=np.float64)
            if scale.size and not np.all(scale == scale.reshape(-1)[0]):
                raise NirError(f"node {name!r} is a Scale with per-element factors (from {scale.min()} to "
                               f"{scale.max()}); evsim imports a Scale only where it is uniform")
        if kind == "Conv2d" and isinstance(self.node(name).padding, str) and self.node(name).padding == "same":
            if any(k % 2 == 0 for k in np.asarray(self.node(name).weight).shape[2:]):
                raise NirError(f"node {name!r} is a Conv2d with padding 'same' and an even kernel, which pads unevenly")
        if kind == "Output" and len(self.predecessors(name)) != 1:
            raise NirError(f"node {name!r} (Output) has {len(self.predecessors(name))} incoming edges; evsim reads one")

    # -- shapes ----------------------------------------------------------------

    def input_shape(self, name: str) -> tuple[int, ...]:
        shapes = {self.shapes[p] for p in self.predecessors(name)}
        if len(shapes) != 1:
            raise NirError(f"node {name!r} ({self.type(name)}) receives inputs of shapes {sorted(shapes)}; they must agree")
        return shapes.pop()

    def output_shape(self, name: str) -> tuple[int, ...]:
        node, kind = self.node(name), self.type(name)
        if kind == "Input":
            return _shape(node.input_type["input"], name)
        shape = self.input_shape(name)
        if kind in ("Affine", "Linear"):
            weight = np.asarray(node.weight)
            if weight.ndim != 2 or math.prod(shape) != weight.shape[1]:
                raise NirError(f"node {name!r} ({kind}) has weight of shape {list(weight.shape)}; it must be [out, in] "
                               f"with in = {math.prod(shape)}, the size of its input {list(shape)}")
            return (weight.shape[0],)
        if kind == "Flatten":
            return (math.prod(shape),)
        if kind == "Scale":
            return shape
        if kind in ("Conv2d", "AvgPool2d", "SumPool2d"):
            if len(shape) != 3:
                raise NirError(f"node {name!r} ({kind}) needs a [C, H, W] input; it receives {list(shape)}")
            geometry = self.geometry(name, shape)
            if kind != "Conv2d":
                return (shape[0], *conv_output_hw(shape[1:], geometry["kernel"], geometry["stride"], geometry["padding"]))
            weight = np.asarray(node.weight)
            if weight.ndim != 4 or weight.shape[1] * int(node.groups) != shape[0]:
                raise NirError(f"node {name!r} (Conv2d) has weight of shape {list(weight.shape)} and groups {node.groups}, "
                               f"which do not fit its input's {shape[0]} channels")
            return (weight.shape[0], *conv_output_hw(shape[1:], weight.shape[2:], geometry["stride"],
                                                     geometry["padding"], geometry["dilation"]))
        if kind in _NEURONS:
            return self.neuron_shape(name, shape)
        return shape  # Output

    def geometry(self, name: str, shape) -> dict:
        node, kind = self.node(name), self.type(name)
        if kind == "Conv2d":
            kernel = tuple(np.asarray(node.weight).shape[2:])
            dilation = _pair(node.dilation)
            padding = node.padding
            if isinstance(padding, str):
                padding = (0, 0) if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
            return {"stride": _pair(node.stride), "padding": _pair(padding), "dilation": dilation, "groups": int(node.groups)}
        kernel = _pair(node.kernel_size)
        stride = _pair(node.stride) if node.stride is not None else kernel
        return {"kernel": kernel, "stride": stride, "padding": _pair(node.padding)}

    def neuron_shape(self, name: str, incoming: tuple[int, ...]) -> tuple[int, ...]:
        """The population's shape: its parameters' (r), or what it receives when r is a scalar or flat."""
        r_shape = tuple(int(n) for n in np.shape(self.node(name).r))
        size = math.prod(incoming)
        if math.prod(r_shape) not in (1, size):
            raise NirError(f"node {name!r} ({self.type(name)}) has parameters of shape {list(r_shape)}, but receives "
                           f"{list(incoming)} ({size} values)")
        return r_shape if len(r_shape) in (1, 3) and math.prod(r_shape) == size and len(incoming) != 3 else incoming

    # -- populations -------------------------------------------------------------

    def population(self, name: str, order: int) -> Population:
        kind, node = self.type(name), self.node(name)
        shape = self.shapes[name]
        pop_name = _sanitised(name, self.names.values())
        self.names[name] = pop_name
        if kind == "Input":
            return Population(pop_name, "input", shape, order)
        rules = _evsim_metadata(node)
        if kind == "I":
            kept = rules.get("theta_pos")
            theta = None if kept is None else np.asarray(kept, dtype=np.float64)
            return Population(pop_name, "readout", shape, order, mode=POTENTIAL,
                              theta_pos=None if theta is None else (theta.reshape(()) if theta.size == 1 else theta))
        threshold = self.parameter(name, "v_threshold", shape)
        if not np.all(threshold > 0):
            raise NirError(f"node {name!r} (IF) has v_threshold <= 0 (found {threshold.min()}); evsim's thresholds are > 0")
        reset = rules.get("reset", TO_VALUE)
        v_reset = self.parameter(name, "v_reset", shape) if node.v_reset is not None else np.zeros(())
        fields = {"reset": reset, "fire_when": rules.get("fire_when", GT)}
        if reset == TO_VALUE:
            fields["v_reset"] = None if not np.any(v_reset) else v_reset
        if rules.get("kind") == "readout":  # an evsim spikes readout, exported with its rule recorded
            return Population(pop_name, "readout", shape, order, mode="spikes", theta_pos=threshold,
                              rank=rules.get("rank", "mass"))
        return Population(pop_name, "if", shape, order, theta_pos=threshold, **fields)

    def parameter(self, name: str, attr: str, shape) -> np.ndarray:
        """A neuron parameter in evsim's compact form (scalar, [C] or full), checked finite."""
        value = np.asarray(getattr(self.node(name), attr), dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise NirError(f"node {name!r} ({self.type(name)}) has a non-finite {attr}")
        return _compact(np.broadcast_to(value.reshape(-1) if value.size > 1 else value.reshape(()),
                                        (math.prod(shape),)).reshape(shape), shape)

    def gain(self, name: str) -> np.ndarray:
        """dt * R per target neuron, flat (C-major): what one unit of input current adds to v in one step."""
        shape = self.shapes[name]
        r = np.asarray(self.node(name).r, dtype=np.float64)
        if not np.all(np.isfinite(r)):
            raise NirError(f"node {name!r} ({self.type(name)}) has a non-finite r")
        return self.dt * np.broadcast_to(r.reshape(-1) if r.size > 1 else r.reshape(()), (math.prod(shape),))

    def output(self, by_node: dict) -> str:
        outputs = [n for n in self.graph.nodes if self.type(n) == "Output"]
        if len(outputs) != 1:
            raise NirError(f"a graph evsim imports has exactly one Output node; found {len(outputs)} ({', '.join(outputs)})")
        source = self.predecessors(outputs[0])[0]
        if not self.stateful(source) or self.type(source) == "Input":
            raise NirError(f"node {outputs[0]!r} (Output) is fed by {source!r} ({self.type(source)}); evsim reads its "
                           "output from a population: end the graph with an IF or I node")
        return by_node[source].name

    def output_scale(self) -> Optional[np.ndarray]:
        out = next(n for n in self.graph.nodes if self.type(n) == "Output")
        meta = _evsim_metadata(self.node(out))
        if "output_scale" not in meta:
            return None
        scale = np.asarray(meta["output_scale"], dtype=np.float64)
        return scale.reshape(()) if scale.size == 1 else scale

    # -- projections --------------------------------------------------------------

    def paths_into(self, name: str) -> list[_Path]:
        """Every chain of linear nodes from a population node into neuron node `name`."""
        paths = []

        def walk(node: str, chain: list[str]) -> None:
            for pred in self.predecessors(node):
                if self.stateful(pred):
                    paths.append(_Path(pred, chain[::-1], name))
                elif self.type(pred) in _LINEAR:
                    walk(pred, chain + [pred])
                else:
                    raise NirError(f"node {pred!r} ({self.type(pred)}) feeds {node!r}; only linear nodes may lie "
                                   "between populations")
        walk(name, [])
        return paths

    def projection(self, path: _Path, by_node: dict, gain: np.ndarray) -> Projection:
        source, target = by_node[path.source], by_node[path.target]
        native = self.native(path, source, target, gain)
        if native is not None:
            return native
        matrix = sp.diags(gain) @ self.matrix(path)
        fan_out = sp.csr_matrix(matrix.T)  # CSR over source neurons: the format's fan-out lists
        fan_out.sort_indices()
        return Projection(self.projection_name(path), "sparse", source.name, target.name, weight=fan_out.data.astype(np.float64),
                          indptr=fan_out.indptr.astype(np.int64), indices=fan_out.indices.astype(np.int64))

    def projection_name(self, path: _Path) -> str:
        """The name an evsim export recorded on the path's node, else its weighted node's, else source_to_target."""
        for name in path.nodes:
            recorded = _evsim_metadata(self.node(name)).get("projection")
            if recorded:
                return str(recorded)
        weighted = [n for n in path.nodes if self.type(n) in _WEIGHTED]
        return _NAME.sub("_", weighted[-1] if weighted else f"{path.source}_to_{path.target}")

    def native(self, path: _Path, source: Population, target: Population, gain: np.ndarray) -> Optional[Projection]:
        """The path as one projection of its weighted node's own kind, if it has at most one and the gain folds in."""
        weighted = [n for n in path.nodes if self.type(n) in _WEIGHTED]
        if len(weighted) > 1:
            return None
        scale = math.prod(float(np.asarray(self.node(n).scale).reshape(-1)[0]) for n in path.nodes if self.type(n) == "Scale")
        name, ends = self.projection_name(path), {"source": source.name, "target": target.name}
        uniform = bool(np.all(gain == gain[0]))
        if not weighted:
            if source.shape != target.shape or not uniform:
                return None
            return Projection(name, "identity", scale=float(scale * gain[0]), **ends)
        node, kind = self.node(weighted[0]), self.type(weighted[0])
        if kind in ("Affine", "Linear"):
            weight = np.asarray(node.weight, dtype=np.float64) * scale * gain[:, None]
            return Projection(name, "dense", weight=weight, **ends)
        if len(source.shape) != 3 or len(target.shape) != 3 or self.shapes[weighted[0]] != target.shape:
            return None  # a Flatten after the convolution or pool: the composed matrix holds it
        geometry = self.geometry(weighted[0], source.shape)
        per_channel = gain.reshape(target.shape[0], -1)
        if kind == "Conv2d" and np.all(per_channel == per_channel[:, :1]):
            weight = np.asarray(node.weight, dtype=np.float64) * scale * per_channel[:, 0, None, None, None]
            return Projection(name, "conv2d", weight=weight, **geometry, **ends)
        if kind in ("AvgPool2d", "SumPool2d") and uniform:
            area = geometry["kernel"][0] * geometry["kernel"][1] if kind == "SumPool2d" else 1
            return Projection(name, "avgpool2d", scale=float(scale * area * gain[0]), **geometry, **ends)
        return None

    def matrix(self, path: _Path) -> sp.csr_matrix:
        """The path's linear map as one sparse matrix (target x source, flat C-major), exact in float64."""
        shape = self.shapes[path.source]
        matrix = sp.identity(math.prod(shape), format="csr")
        for name in path.nodes:
            matrix = self.operator(name, shape) @ matrix
            shape = self.shapes[name]
        return matrix.tocsr()

    def operator(self, name: str, shape) -> sp.csr_matrix:
        """One linear node's matrix on its flat input of `shape`."""
        node, kind = self.node(name), self.type(name)
        size = math.prod(shape)
        if kind in ("Affine", "Linear"):
            return sp.csr_matrix(np.asarray(node.weight, dtype=np.float64))
        if kind == "Flatten":
            return sp.identity(size, format="csr")
        if kind == "Scale":
            return sp.identity(size, format="csr") * float(np.asarray(node.scale).reshape(-1)[0])
        geometry = self.geometry(name, shape)
        if kind == "Conv2d":
            return _conv_matrix(np.asarray(node.weight, dtype=np.float64), shape, geometry["stride"], geometry["padding"],
                                geometry["dilation"], geometry["groups"])
        kh, kw = geometry["kernel"]
        value = 1.0 / (kh * kw) if kind == "AvgPool2d" else 1.0
        depthwise = np.full((shape[0], 1, kh, kw), value)
        return _conv_matrix(depthwise, shape, geometry["stride"], geometry["padding"], (1, 1), shape[0])

    def bias_into(self, name: str) -> np.ndarray:
        """The bias current reaching neuron node `name`: every linear node's bias, carried along every path to it."""
        memo: dict[str, np.ndarray] = {}

        def out(node: str) -> np.ndarray:  # the bias part of a linear node's output, flat
            if node not in memo:
                incoming = sum((out(p) for p in self.predecessors(node) if not self.stateful(p)),
                               np.zeros(math.prod(self.input_shape(node))))
                memo[node] = self.operator(node, self.input_shape(node)) @ incoming + self.own_bias(node)
            return memo[node]
        return sum((out(p) for p in self.predecessors(name) if not self.stateful(p)), np.zeros(math.prod(self.shapes[name])))

    def own_bias(self, name: str) -> np.ndarray:
        node, kind = self.node(name), self.type(name)
        shape = self.shapes[name]
        if kind not in ("Affine", "Conv2d") or getattr(node, "bias", None) is None:
            return np.zeros(math.prod(shape))
        bias = np.asarray(node.bias, dtype=np.float64).reshape(-1)
        if kind == "Conv2d":
            return np.repeat(bias, shape[1] * shape[2]) if bias.size == shape[0] else np.broadcast_to(bias, (math.prod(shape),))
        return bias


def _evsim_metadata(node) -> dict:
    """What an evsim export recorded in a node's metadata (empty for any other producer's node)."""
    meta = getattr(node, "metadata", None)
    found = meta.get(EVSIM_KEY) if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else {}


def _conv_matrix(weight: np.ndarray, shape, stride, padding, dilation, groups: int) -> sp.csr_matrix:
    """A 2-d convolution (PyTorch's cross-correlation, zero padding) as a sparse matrix on flat C-major arrays."""
    cin, h, w = shape
    cout, cin_g, kh, kw = weight.shape
    ho, wo = conv_output_hw((h, w), (kh, kw), stride, padding, dilation)
    rows, cols, vals = [], [], []
    oc = np.arange(cout)[:, None, None]
    oy = np.arange(ho)[None, :, None]
    ox = np.arange(wo)[None, None, :]
    for ic in range(cin_g):
        for ky in range(kh):
            for kx in range(kw):
                y = oy * stride[0] - padding[0] + ky * dilation[0]
                x = ox * stride[1] - padding[1] + kx * dilation[1]
                c = (oc // (cout // groups)) * cin_g + ic
                inside = np.broadcast_to((y >= 0) & (y < h) & (x >= 0) & (x < w), (cout, ho, wo))
                out_index = np.broadcast_to((oc * ho + oy) * wo + ox, (cout, ho, wo))
                in_index = np.broadcast_to((c * h + np.clip(y, 0, h - 1)) * w + np.clip(x, 0, w - 1), (cout, ho, wo))
                value = np.broadcast_to(weight[:, ic, ky, kx][:, None, None], (cout, ho, wo))
                rows.append(out_index[inside])
                cols.append(in_index[inside])
                vals.append(value[inside])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(cout * ho * wo, cin * h * w))


def _with_bias(pop: Population, bias: np.ndarray) -> Population:
    return dataclasses.replace(pop, bias=_compact(bias.reshape(pop.shape), pop.shape))


def _compact(value: np.ndarray, shape) -> np.ndarray:
    """A per-neuron parameter in the format's compact form: a scalar when uniform, [C] when per channel."""
    flat = value.reshape(-1)
    if flat.size == 0 or np.all(flat == flat[0]):
        return np.array(flat[0] if flat.size else 0.0, dtype=np.float64)
    if len(shape) == 3:
        per_channel = value.reshape(shape[0], -1)
        if np.all(per_channel == per_channel[:, :1]):
            return per_channel[:, 0].astype(np.float64)
    return value.astype(np.float64).reshape(shape)


def _shape(value, name: str) -> tuple[int, ...]:
    shape = tuple(int(n) for n in np.asarray(value).reshape(-1))
    if len(shape) not in (1, 3) or min(shape, default=0) < 1:
        raise NirError(f"node {name!r} (Input) has shape {list(shape)}; evsim's populations are [N] or [C, H, W]")
    return shape


def _pair(value) -> tuple[int, int]:
    value = np.asarray(value).reshape(-1)
    return (int(value[0]), int(value[-1]))


def _sanitised(name: str, taken) -> str:
    base = _NAME.sub("_", str(name)) or "node"
    candidate, i = base, 1
    while candidate in taken:
        candidate, i = f"{base}_{i}", i + 1
    return candidate


def _unique_names(projections: list) -> None:
    seen: dict[str, int] = {}
    for i, proj in enumerate(projections):
        if proj.name in seen:
            seen[proj.name] += 1
            projections[i] = dataclasses.replace(proj, name=f"{proj.name}_{seen[proj.name]}")
        else:
            seen[proj.name] = 0


def _jsonable(meta) -> dict:
    """The graph's own metadata, kept where it is plain JSON (evsim's /meta is JSON)."""
    try:
        return json.loads(json.dumps(meta, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    except (TypeError, ValueError):
        return {}


# -- export ------------------------------------------------------------------------


def to_nir(network_or_path: Union[Network, str, Path], path=None, *, reset_to_zero: bool = False):
    """Write an evsim network (or file) as a NIR graph; return the `nir.NIRGraph`.

    NIR's IF resets to `v_reset`; evsim's reset by subtraction has no NIR
    form, so a network that uses it is refused unless `reset_to_zero`: the
    receiving tool then resets to zero (`v_reset = 0`), and each IF node's
    metadata records evsim's rule (`{"evsim": {"reset": "subtract", ...}}`),
    which `from_nir` restores.
    """
    nir = _nir()
    network = network_or_path if isinstance(network_or_path, Network) else read_network(network_or_path)
    graph = _Exporter(network, reset_to_zero, nir).graph()
    if path is not None:
        nir.write(path, graph)
    return graph


@dataclass
class _Exporter:
    net: Network
    reset_to_zero: bool
    nir: object
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)

    def graph(self):
        for proj in self.net.projections:
            if proj.spec.gate:
                raise NirError(f"projection {proj.name!r} is a {proj.kind}: a spiking max-pool has no NIR form")
        for pop in self.net.populations:
            self.check(pop)
        carried = self.bias_carriers()
        for pop in self.net.populations:
            self.nodes[pop.name] = self.population(pop)
        for proj in self.net.projections:
            self.projection(proj, carried.get(proj.name))
        meta = {}
        if self.net.output_scale is not None:
            # at least 1-d: nir compresses every array, and HDF5 cannot compress a scalar
            meta[EVSIM_KEY] = {"output_scale": np.atleast_1d(np.asarray(self.net.output_scale, dtype=np.float64))}
        shape = np.array(self.net.output_population.shape)
        self.nodes["output"] = self.nir.Output(output_type={"output": shape}, metadata=meta)
        self.edges.append((self.net.output, "output"))
        return self.nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata={"producer": "evsim", "dt": 1.0})

    def check(self, pop: Population) -> None:
        """Refuse, by population and feature, what NIR cannot express."""
        def refuse(feature: str):
            raise NirError(f"population {pop.name!r} uses {feature}, which NIR cannot express")
        if pop.kind in ("bif", "relay"):
            refuse(f"the {pop.kind} model" + (" (BSNN's bistable pairs)" if pop.kind == "bif" else ""))
        if pop.coding != "rate":
            refuse(f"{pop.coding} coding")
        if pop.kind == "input":
            if pop.encoding != "analog":
                refuse(f"the {pop.encoding} input encoder (NIR's Input feeds values)")
            return
        if pop.theta_neg is not None:
            refuse("a negative threshold theta_neg (signed spikes)")
        if pop.max_coeff != 1:
            refuse(f"augmented coefficients (max_coeff {pop.max_coeff})")
        if np.any(pop.v_init):
            refuse("a nonzero v_init (NIR's neurons start at 0)")
        if pop.bias_onset:
            refuse(f"a bias onset ({pop.bias_onset})")
        if pop.fires and pop.reset == SUBTRACT and not self.reset_to_zero:
            raise NirError(f"population {pop.name!r} resets by subtraction, which NIR cannot express (its IF resets to "
                           "v_reset); export it with reset_to_zero (--reset-to-zero) if the receiving tool may reset to zero")

    def population(self, pop: Population):
        shape = pop.shape
        if pop.kind == "input":
            return self.nir.Input(input_type={"input": np.array(shape)})
        ones = np.ones(shape)
        if not pop.fires:  # a potential readout; a threshold it holds (it never fires) is kept for from_nir
            kept = {} if pop.theta_pos is None else {EVSIM_KEY: {"theta_pos": np.atleast_1d(pop.theta_pos)}}
            return self.nir.I(r=ones, metadata=kept)
        rules = {"reset": pop.reset, "fire_when": pop.fire_when}
        if pop.kind == "readout":
            rules.update(kind="readout", rank=pop.rank)
        v_reset = pop.expand("v_reset").reshape(shape) if pop.reset == TO_VALUE else np.zeros(shape)
        metadata = {} if rules == {"reset": TO_VALUE, "fire_when": GT} else {EVSIM_KEY: rules}
        return self.nir.IF(r=ones, v_threshold=pop.expand("theta_pos").reshape(shape), v_reset=v_reset, metadata=metadata)

    def bias_carriers(self) -> dict[str, np.ndarray]:
        """Projection name -> the bias it carries: a population's bias goes on one incoming Affine or Conv2d node."""
        carried = {}
        for pop in self.net.populations:
            if pop.kind == "input" or not np.any(pop.bias):
                continue
            bias = pop.expand("bias")
            carriers = [q for q in self.net.incoming(pop.name) if q.kind in ("dense", "sparse", "conv2d")]
            for q in carriers:
                if q.kind != "conv2d":
                    carried[q.name] = bias
                    break
                per_channel = bias.reshape(pop.shape[0], -1)
                if np.all(per_channel == per_channel[:, :1]):
                    carried[q.name] = per_channel[:, 0]
                    break
            else:
                raise NirError(f"population {pop.name!r} has a bias that no incoming projection can carry in NIR (Affine "
                               "nodes carry one per neuron, Conv2d nodes one per channel)")
        return carried

    def projection(self, proj: Projection, bias: Optional[np.ndarray]) -> None:
        source = self.net.population(proj.source)
        start = proj.source
        if proj.kind in ("dense", "sparse") and len(source.shape) == 3:
            start = self.add(proj, self.nir.Flatten(input_type={"input": np.array(source.shape)}, start_dim=0, end_dim=-1),
                             start, suffix=".flatten")
        if proj.kind in ("dense", "sparse"):
            weight = proj.scale * (proj.weight if proj.kind == "dense" else _dense(proj, source.size,
                                                                                   self.net.population(proj.target).size))
            node = (self.nir.Linear(weight=weight) if bias is None else self.nir.Affine(weight=weight, bias=bias))
            end = self.add(proj, node, start)
        elif proj.kind == "conv2d":
            weight = proj.scale * proj.weight
            node = self.nir.Conv2d(input_shape=tuple(source.shape[1:]), weight=weight, stride=proj.stride,
                                   padding=proj.padding, dilation=proj.dilation, groups=proj.groups,
                                   bias=np.zeros(weight.shape[0]) if bias is None else bias)
            end = self.add(proj, node, start)
        elif proj.kind == "avgpool2d":
            end = self.add(proj, self.nir.AvgPool2d(kernel_size=np.array(proj.kernel), stride=np.array(proj.stride),
                                                    padding=np.array(proj.padding)), start)
            if proj.scale != 1:
                end = self.add(proj, self.scale(proj), end, suffix=".scale")
        else:  # identity: a Scale node, of 1 too, which carries the projection's name
            end = self.add(proj, self.scale(proj), start)
        self.edges.append((end, proj.target))

    def scale(self, proj: Projection):
        return self.nir.Scale(scale=np.full(self.net.population(proj.target).shape, float(proj.scale)))

    def add(self, proj: Projection, node, start: str, suffix: str = "") -> str:
        """Add a projection's node, keyed apart from the populations' (NIR has one namespace, evsim two), with the
        projection's name (and kind) in its metadata so that from_nir gives both back."""
        name = f"{proj.name}.{proj.kind}{suffix}"
        node.metadata = {EVSIM_KEY: {"projection": proj.name, "kind": proj.kind}}
        self.nodes[name] = node
        self.edges.append((start, name))
        return name


def _dense(proj: Projection, n_source: int, n_target: int) -> np.ndarray:
    """A sparse projection's weights as a dense [target, source] matrix (repeated pairs summed)."""
    sources = np.repeat(np.arange(n_source), np.diff(proj.indptr))
    weight = np.zeros((n_target, n_source))
    np.add.at(weight, (proj.indices, sources), proj.weight)
    return weight


__all__ = ["from_nir", "to_nir", "EVSIM_KEY"]
