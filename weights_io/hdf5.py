"""The converted-network file (HDF5), format versions 1 to 3: reader, validator and writer.

docs/format.md is the contract this module implements. The reader checks
every rule stated there while it reads, and every violation is a
`FormatError` naming the file, the HDF5 path and the problem. Sizes are
checked from HDF5 metadata (attribute values, dataset shapes) before any
data is read, so a hostile file cannot make the reader allocate memory.

What a population or projection may hold comes from the kind table
(evsim/kinds.py): the common attributes (`POPULATION_ATTRIBUTES`,
`PROJECTION_ATTRIBUTES`) and each kind's own, read and written by their
format type, with their defaults, minimums and choices, and only those of
the file's version (`Attribute.since`) and, for an attribute with a
condition (`Attribute.when`), only where it holds; each kind's datasets; its shape
rule, whether it is spatial, a gate, or bound to one target kind. This
module names no kind except where one kind's rule is checked (an input,
a relay fed by a maxpool2d, the readout), and then by its entry. The rules
an attribute declaration cannot state (a conv weight against groups, a
pool's padding against its kernel, a dense weight's shape, sparse lists)
are small methods in `_KIND_RULES`, keyed by the kind's entry.

Layout of the reader: `_Reader` holds the file name, the limits, the
file's format version and the running size totals. The few methods that
touch h5py (`check_attrs`, `numbers`, `text`, `members`, `link`, `child`,
`floats`, `ints`) guard every call, so no h5py or NumPy exception escapes;
the methods above them read one element each (population, projection,
readout, samples, ann, meta) and only validate. The writer is
`write_network` and `_layout`; it writes the lowest format version that
holds the network (`_version`).
"""
from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NoReturn, Optional

import h5py
import numpy as np

from evsim.errors import FormatError
from evsim.kinds import (
    AVGPOOL2D,
    CONV2D,
    DENSE,
    INPUT,
    MAXPOOL2D,
    POPULATION_ATTRIBUTES,
    POPULATION_KINDS,
    PROJECTION_ATTRIBUTES,
    PROJECTION_KINDS,
    READOUT,
    PopulationKind,
    RELAY,
    REQUIRED,
    SPARSE,
    Attribute,
)
from evsim.network import AnnInfo, Network, Population, Projection, Samples

FORMAT_NAME = "evsim"
FORMAT_VERSION = 3  # the newest version this module reads; it writes the lowest one that holds a network


@dataclass(frozen=True)
class FormatLimits:
    """Size bounds the reader enforces from metadata, before reading data.

    The defaults bound a float64 copy of one population's parameter to
    2 GiB and of one projection's weights to 16 GiB: far past any network
    evsim can simulate, far below what a hostile size would ask for.
    """

    max_population_size: int = 2**28  # neurons in one population
    max_total_neurons: int = 2**28  # neurons in all populations
    max_projection_elements: int = 2**31  # weights (or sparse entries) of one projection
    max_total_elements: int = 2**32  # elements of all datasets of one file


DEFAULT_LIMITS = FormatLimits()

# What the format allows where (populations and projections: the kind table).
# Anything else is an error, so that a misspelled optional name cannot
# silently fall back to its default.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_ROOT_ATTRS = ("format", "format_version", "producer")
_ROOT_MEMBERS = ("populations", "projections", "readout", "ann", "samples", "meta")
_SIGN_RULES = {  # parameter name -> (test every entry must pass, its wording)
    "theta_pos": (np.greater, "> 0"),
    "theta_neg": (np.less, "< 0"),
    "output_scale": (np.greater, "> 0"),
}
_ENDPOINTS = ("source", "target")  # the projection attributes naming populations, checked as they are read
_INT64_MAX = 2**63 - 1


def read_network(path, limits: FormatLimits = DEFAULT_LIMITS) -> Network:
    """Read and validate a converted-network file (docs/format.md).

    Returns a `Network` with populations sorted by `order` and projections
    by (source order, target order, name). Raises `FormatError` (file, HDF5 path, problem) for anything
    that breaks the format, including files that are not HDF5 at all.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "/", "no such file")
    try:
        h5 = h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError, but says little more
        raise FormatError(path, "/", f"not an HDF5 file, or truncated or unreadable ({exc})") from exc
    with h5:
        reader = _Reader(path, limits)
        with reader.guard("/"):
            return reader.network(h5)


class _Reader:
    def __init__(self, file: Path, limits: FormatLimits):
        self.file = file
        self.limits = limits
        self.version: Optional[int] = None  # the file's format_version, once check_version has read it
        self.neurons = 0  # running totals, checked against the limits
        self.elements = 0

    def fail(self, h5path: str, problem: str) -> NoReturn:
        raise FormatError(self.file, h5path, problem)

    @contextmanager
    def guard(self, h5path: str) -> Iterator[None]:
        """Turn any unexpected exception (h5py, NumPy) into this reader's error at `h5path` (through `fail`)."""
        try:
            yield
        except FormatError:
            raise
        except Exception as exc:
            self.fail(h5path, f"cannot be read ({type(exc).__name__}: {exc})")

    # -- the file, element by element ------------------------------------

    def network(self, root: h5py.File) -> Network:
        self.check_version(root)  # first: a newer file may differ in anything else
        self.check_attrs(root, _ROOT_ATTRS)
        self.members(root, _ROOT_MEMBERS)
        pops = self.populations(self.child(root, "populations", h5py.Group))
        by_name = {p.name: p for p in pops}
        group = self.child(root, "projections", h5py.Group)
        projs = [self.element(group, name, self.projection, by_name) for name in sorted(self.members(group))]
        # HDF5 keeps no member order: list projections in data-flow order, which reports follow
        projs.sort(key=lambda q: (by_name[q.source].order, by_name[q.target].order, q.name))
        net = Network(populations=tuple(pops), projections=tuple(projs), output="")
        self.check_graph(net)
        output, output_scale = self.optional(root, "readout", self.readout, net) or (self.default_output(net), None)
        net = net.replace(output=output, output_scale=output_scale)
        net = net.replace(samples=self.optional(root, "samples", self.samples, net))
        return net.replace(
            ann=self.optional(root, "ann", self.ann, net),
            meta=self.optional(root, "meta", self.meta) or {},
            producer=self.text(root, "producer", default=""),
        )

    def element(self, parent: h5py.Group, name: str, read, *args):
        """Read member group `name` with `read`, blaming it for any unexpected exception."""
        group = self.child(parent, name, h5py.Group)
        with self.guard(group.name):
            return read(group, *args)

    def optional(self, parent: h5py.Group, name: str, read, *args):
        """Like `element`, for an optional group: None if absent."""
        return self.element(parent, name, read, *args) if self.link(parent, name) else None

    def check_version(self, root: h5py.File) -> None:
        name = self.text(root, "format", default=None)
        if name != FORMAT_NAME:
            self.fail("/", f"not an evsim file (attribute format is {name!r}, not {FORMAT_NAME!r})")
        version = self.scalar_integer(root, "format_version")
        if version > FORMAT_VERSION:
            self.fail("/", f"format_version {version} is newer than this evsim reads ({FORMAT_VERSION}); upgrade evsim")
        if version < 1:
            self.fail("/", f"format_version {version} is not a version that ever existed (versions start at 1)")
        self.version = version

    def populations(self, group: h5py.Group) -> list[Population]:
        pops = [self.element(group, name, self.population) for name in self.members(group)]
        orders = sorted(p.order for p in pops)
        for order in orders:
            if orders.count(order) > 1:
                names = sorted(p.name for p in pops if p.order == order)
                self.fail(group.name, f"order {order} is used by {', '.join(names)}; orders must be unique")
        if orders != list(range(len(pops))):
            self.fail(group.name, f"orders must be 0..{len(pops) - 1} without gaps, found {orders}")
        return sorted(pops, key=lambda p: p.order)

    def population(self, group: h5py.Group) -> Population:
        spec = POPULATION_KINDS[self.text(group, "kind", choices=tuple(POPULATION_KINDS))]
        attrs = self.kind_attributes(group, POPULATION_ATTRIBUTES + spec.attributes)
        fields = self.attributes(group, attrs, {"kind": spec.name})  # the kind: for `Attribute.required_when`
        for name in self.kind_datasets(group, spec, fields):
            fields[name] = self.parameter(group, name, fields["shape"])
        pop = Population(name=_basename(group), **fields)
        if pop.fires and pop.theta_pos is None:
            self.fail(_join(group.name, "theta_pos"), f"missing dataset (required: a {spec.name} population fires)")
        return pop

    def kind_datasets(self, group: h5py.Group, spec: PopulationKind, fields: dict) -> list[str]:
        """The datasets a population holds, each one its kind has in the file's version and where its condition
        (`Parameter.when`, on the attributes read into `fields`) holds. A later version's is named as such."""
        later = {p.name: p.since for p in spec.parameters if p.since > self.version}
        for name in self.members(group):
            if name in later:
                self.fail(_join(group.name, name), f"dataset {name!r} is a version-{later[name]} dataset; this file "
                          f"declares format_version {self.version}")
        present = self.members(group, tuple(name for name in spec.datasets if name not in later))
        for param in spec.parameters:
            if param.name in present and param.when is not None and not param.when(fields):
                self.fail(_join(group.name, param.name), f"dataset {param.name!r} is defined only for {param.meaning}, "
                          f"which {_basename(group)} is not")
        return present

    def shape(self, group: h5py.Group, name: str, default) -> tuple[int, ...]:
        what = "an integer array of length 1 or 3 ([N] or [C, H, W])"
        shape = self.integers(group, name, (1, 3), what, minimum=1, default=default)
        size = math.prod(shape)
        if size > self.limits.max_population_size:
            self.fail(group.name, f"shape {list(shape)} has {size} neurons, past the limit of "
                      f"{self.limits.max_population_size} per population")
        self.neurons += size
        if self.neurons > self.limits.max_total_neurons:
            self.fail(group.name, f"brings the network to {self.neurons} neurons, past the limit of "
                      f"{self.limits.max_total_neurons} in total")
        return shape

    def parameter(self, group: h5py.Group, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A per-population, per-channel or per-neuron value: float64, 0-d when scalar."""
        dset = self.child(group, name, h5py.Dataset)
        fits = [(), (1,), tuple(shape)] + ([(shape[0],)] if len(shape) == 3 else [])
        if dset.shape not in fits:
            self.fail(dset.name, f"shape {dset.shape} fits neither a scalar, a per-channel [C] nor the "
                      f"population's shape {list(shape)}")
        value = self.floats(dset)
        if name in _SIGN_RULES:
            test, wording = _SIGN_RULES[name]
            self.check_all(dset.name, test(value, 0), value, f"must be {wording} everywhere")
        return value.reshape(()) if value.shape == (1,) else value

    def projection(self, group: h5py.Group, pops: dict[str, Population]) -> Projection:
        spec = PROJECTION_KINDS[self.text(group, "kind", choices=tuple(PROJECTION_KINDS))]
        self.kind_attributes(group, PROJECTION_ATTRIBUTES + spec.attributes)
        common, own = self.known(PROJECTION_ATTRIBUTES), self.known(spec.attributes)
        self.members(group, spec.datasets)
        by_name = {attr.name: attr for attr in common}
        source, target = (self.endpoint(group, by_name[end], pops) for end in _ENDPOINTS)
        if source.order >= target.order:
            self.fail(group.name, f"goes from {source.name} (order {source.order}) to {target.name} "
                      f"(order {target.order}); orders must be topological, every projection from a lower "
                      "to a higher order")
        fields = self.attributes(group, tuple(attr for attr in common if attr.name not in _ENDPOINTS))
        scale = fields["scale"]
        if scale <= 0 or (spec.gate and scale != 1):  # a gate passes events on unweighted
            self.fail(group.name, f"scale is {scale}; it must be > 0, and 1 for a {MAXPOOL2D.name}")
        if spec.spatial and (len(source.shape), len(target.shape)) != (3, 3):
            self.fail(group.name, f"{spec.name} needs [C, H, W] populations; source {source.name} has shape "
                      f"{list(source.shape)}, target {target.name} {list(target.shape)}")
        if spec.target_kind is not None and target.spec is not spec.target_kind:
            self.fail(group.name, f"a {spec.name} must target a {spec.target_kind.name}; {target.name} is {target.kind}")
        self.attributes(group, own, fields)
        if spec in _KIND_RULES:
            fields.update(_KIND_RULES[spec](self, group, fields, source, target))
        proj = Projection(name=_basename(group), kind=spec.name, source=source.name, target=target.name, **fields)
        implied = proj.output_shape(source.shape)
        if implied is not None and implied != target.shape:
            self.fail(group.name, f"implies target shape {list(implied)} from source shape "
                      f"{list(source.shape)}, but {target.name} has shape {list(target.shape)}")
        return proj

    def endpoint(self, group: h5py.Group, attr: Attribute, pops: dict[str, Population]) -> Population:
        name = self.attribute(group, attr, {})
        if name not in pops:
            self.fail(group.name, f"{attr.name} {name!r} is not a population")
        return pops[name]

    # -- the rules of one kind that its attribute declarations cannot state ---
    # Each takes the projection's group, the fields read so far, its source and
    # target, and returns the fields it reads (its datasets); see _KIND_RULES.

    def dense(self, group: h5py.Group, fields: dict, source: Population, target: Population) -> dict:
        return {"weight": self.weights(self.child(group, "weight", h5py.Dataset), (target.size, source.size),
                                       f"target size {target.size}, source size {source.size}")}

    def convolution(self, group: h5py.Group, fields: dict, source: Population, target: Population) -> dict:
        dset = self.child(group, "weight", h5py.Dataset)
        groups, shape = fields["groups"], dset.shape
        if len(shape) != 4 or min(shape) < 1:
            self.fail(dset.name, f"shape {shape} is not [Cout, Cin/groups, kh, kw] with every entry >= 1")
        if shape[0] % groups or shape[1] * groups != source.shape[0]:
            self.fail(dset.name, f"shape {shape} with groups {groups} does not fit source channels "
                      f"{source.shape[0]} (Cin/groups * groups must equal them, groups must divide Cout)")
        return {"weight": self.weights(dset, shape, "Cout, Cin/groups, kh, kw")}

    def pool(self, group: h5py.Group, fields: dict, source: Population, target: Population) -> dict:
        """PyTorch's rule: padding at most half the kernel (the stride's default, the kernel, is the table's)."""
        padding, kernel = fields["padding"], fields["kernel"]
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            self.fail(group.name, f"padding {list(padding)} is more than half the kernel {list(kernel)}")
        return {}

    def weights(self, dset: h5py.Dataset, shape: tuple[int, ...], meaning: str) -> np.ndarray:
        """A weight dataset, which must have `shape` (described by `meaning`)."""
        if dset.shape != tuple(shape):
            self.fail(dset.name, f"shape {dset.shape} does not match [{meaning}]")
        self.check_projection_size(dset.name, math.prod(shape))
        return self.floats(dset)

    def sparse(self, group: h5py.Group, fields: dict, source: Population, target: Population) -> dict:
        indptr, indices, weight = (self.child(group, n, h5py.Dataset) for n in ("indptr", "indices", "weight"))
        if indptr.shape != (source.size + 1,):
            self.fail(indptr.name, f"shape {indptr.shape} does not match [source size + 1 = {source.size + 1}]")
        if len(indices.shape) != 1:
            self.fail(indices.name, f"shape {indices.shape} is not [nnz]")
        nnz = indices.shape[0]
        self.check_projection_size(indices.name, nnz)
        weight = self.weights(weight, (nnz,), f"nnz {nnz}, the length of indices")
        starts = self.ints(indptr, 0, nnz + 1)
        if starts[0] != 0 or starts[-1] != nnz:
            self.fail(indptr.name, f"must start at 0 and end at nnz = {nnz}; found {starts[0]} .. {starts[-1]}")
        drops = np.flatnonzero(np.diff(starts) < 0)
        if drops.size:
            i = int(drops[0])
            self.fail(indptr.name, f"must be non-decreasing; entry {i + 1} ({starts[i + 1]}) is less than "
                      f"entry {i} ({starts[i]})")
        return {"indptr": starts, "indices": self.ints(indices, 0, target.size), "weight": weight}

    def check_projection_size(self, h5path: str, size: int) -> None:
        if size > self.limits.max_projection_elements:
            self.fail(h5path, f"{size} elements, past the limit of {self.limits.max_projection_elements} "
                      "per projection")

    def check_graph(self, net: Network) -> None:
        """Rules over the whole graph. The input has no incoming projection: that
        follows from its order 0 and the topological order of projections."""
        inputs = [p.name for p in net.populations if p.spec is INPUT]
        if len(inputs) != 1:
            self.fail("/populations", f"a network has exactly one {INPUT.name} population; found {len(inputs)} "
                      f"({', '.join(inputs)})")
        if net.input.order != 0:
            self.fail(f"/populations/{net.input.name}",
                      f"the {INPUT.name} population must have order 0, not {net.input.order}")
        for relay in (p for p in net.populations if p.spec is RELAY):
            incoming = net.incoming(relay.name)
            if [q.spec for q in incoming] != [MAXPOOL2D]:
                found = ", ".join(f"{q.name} ({q.kind})" for q in incoming) or "none"
                self.fail(f"/populations/{relay.name}", f"a {RELAY.name} has exactly one incoming projection, a "
                          f"{MAXPOOL2D.name}; found {found}")

    def readout(self, group: h5py.Group, net: Network) -> tuple[str, Optional[np.ndarray]]:
        self.check_attrs(group, ("population",))
        self.members(group, ("output_scale",))
        name = self.text(group, "population", default=None) or self.default_output(net)
        if name not in {p.name for p in net.populations}:
            self.fail(group.name, f"population {name!r} does not exist")
        if not self.link(group, "output_scale"):
            return name, None
        return name, self.parameter(group, "output_scale", net.population(name).shape)

    def default_output(self, net: Network) -> str:
        """The single readout population, else the single one with no outgoing projection."""
        for candidates in ([p.name for p in net.populations if p.spec is READOUT],
                           [p.name for p in net.populations if not net.outgoing(p.name)]):
            if len(candidates) == 1:
                return candidates[0]
        self.fail("/readout", f"cannot tell the output population (not exactly one {READOUT.name} population, nor "
                  "exactly one without outgoing projections); name it in attribute population")

    def samples(self, group: h5py.Group, net: Network) -> Samples:
        self.check_attrs(group, ())
        self.members(group, ("inputs", "labels"))
        inputs = self.child(group, "inputs", h5py.Dataset)
        shape = net.input.shape
        if len(inputs.shape) != 1 + len(shape) or inputs.shape[1:] != shape or inputs.shape[0] < 1:
            self.fail(inputs.name, f"shape {inputs.shape} is not [n >= 1, *input shape {list(shape)}]")
        n = inputs.shape[0]
        labels = self.child(group, "labels", h5py.Dataset, required=False)
        if labels is not None and labels.shape != (n,):
            self.fail(labels.name, f"shape {labels.shape} is not [n = {n}]")
        size = net.output_population.size
        return Samples(inputs=self.floats(inputs, np.float32),
                       labels=None if labels is None else self.ints(labels, 0, size))

    def ann(self, group: h5py.Group, net: Network) -> AnnInfo:
        self.check_attrs(group, ("macs", "accuracy", "layer_macs"))
        self.members(group, ("lambda", "outputs"))
        accuracy = self.real(group, "accuracy", default=None)
        if accuracy is not None and not 0 <= accuracy <= 1:
            self.fail(group.name, f"accuracy {accuracy} is not a fraction in [0, 1]")
        layer_macs = self.json(group, "layer_macs")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in layer_macs.values()):
            self.fail(group.name, "attribute layer_macs must map layer names to integers >= 0")
        return AnnInfo(macs=self.integer(group, "macs", default=None, minimum=0), accuracy=accuracy,
                       layer_macs=layer_macs, lambdas=self.lambdas(group), outputs=self.outputs(group, net))

    def lambdas(self, group: h5py.Group) -> Optional[np.ndarray]:
        dset = self.child(group, "lambda", h5py.Dataset, required=False)
        if dset is not None and len(dset.shape) != 1:
            self.fail(dset.name, f"shape {dset.shape} is not [layers]")
        return None if dset is None else self.floats(dset)

    def outputs(self, group: h5py.Group, net: Network) -> Optional[np.ndarray]:
        dset = self.child(group, "outputs", h5py.Dataset, required=False)
        if dset is None:
            return None
        if net.samples is None:
            self.fail(dset.name, "outputs are the ANN's outputs on /samples, and the file has no /samples")
        expected = (net.samples.inputs.shape[0], net.output_population.size)
        if dset.shape != expected:
            self.fail(dset.name, f"shape {dset.shape} is not [n samples, output size] = {list(expected)}")
        return self.floats(dset)

    def meta(self, group: h5py.Group) -> dict:
        """Free JSON, but for the entries evsim reads back (`calibration_range`: a run checks its inputs against it)."""
        self.check_attrs(group, ("conversion",))
        self.members(group, ())
        meta = self.json(group, "conversion")
        if "calibration_range" in meta:
            value = meta["calibration_range"]
            numbers = isinstance(value, list) and len(value) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            if not numbers or value[0] > value[1]:
                self.fail(group.name, f"conversion entry calibration_range must be [min, max], two finite numbers with "
                          f"min <= max; found {json.dumps(value)[:60]}")
        return meta

    # -- attributes --------------------------------------------------------

    def known(self, attrs: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
        """The attributes the file's version has: a later one (`since`) is unknown there, its field the model's default."""
        return _in_version(attrs, self.version)

    def kind_attributes(self, group: h5py.Group, attrs: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
        """Check the attribute names of an element with kind-table attributes `attrs`; return those of the file's version.
        A later version's attribute is as unknown as a misspelled one, but it is not a typo: say so."""
        known = self.known(attrs)
        later = {attr.name: attr.since for attr in attrs if attr not in known}
        self.check_attrs(group, ("kind", *(attr.name for attr in known)), later)
        return known

    def attributes(self, obj, attrs: tuple[Attribute, ...], fields: Optional[dict] = None) -> dict:
        """Read attributes `attrs` of `obj` (kind-table entries) in order into `fields` (by field name), and return it."""
        fields = {} if fields is None else fields
        for attr in attrs:
            fields[attr.name] = self.attribute(obj, attr, fields)
        for attr in attrs:  # after all of them: the condition may read a later attribute (an input's encoding)
            if attr.required_when is not None and attr.required_when(fields):
                with self.guard(obj.name):
                    present = attr.name in obj.attrs
                if not present:
                    self.fail(obj.name, f"missing attribute {attr.name!r} (required for {attr.required_meaning}; "
                              f"its default {attr.default!r} would apply silently)")
        return fields

    def attribute(self, obj, attr: Attribute, fields: dict):
        """One attribute, read by its format type; a callable default is computed from `fields`, those read so far.
        Where its condition (`when`) is false the attribute does not exist: absent it is the default, present an error."""
        default = _default(attr, fields)
        if attr.when is not None and not attr.when(fields):
            with self.guard(obj.name):
                present = attr.name in obj.attrs
            if present:
                self.fail(obj.name, f"attribute {attr.name!r} is defined only for {attr.meaning}, which {_basename(obj)} "
                          "is not")
            return default
        minimum = -_INT64_MAX if attr.minimum is None else attr.minimum
        if attr.type == "string":
            return self.text(obj, attr.name, default, attr.choices or None)
        if attr.type == "real":
            return self.real(obj, attr.name, default)
        if attr.type == "integer":
            return self.integer(obj, attr.name, default, minimum)
        if attr.type == "pair":
            return self.pair(obj, attr.name, default, minimum)
        if attr.type == "shape":
            return self.shape(obj, attr.name, default)
        raise ValueError(f"attribute {attr.name!r} has type {attr.type!r}, which the format does not have")

    def check_attrs(self, obj, allowed: tuple[str, ...], later: Optional[dict[str, int]] = None) -> None:
        """Every attribute of `obj` must be in `allowed`; `later` maps the names of later versions' attributes
        to their version, which makes a clearer message than "unknown"."""
        with self.guard(obj.name):
            names = list(obj.attrs)
        for name in names:
            if name in allowed:
                continue
            if later and name in later:
                self.fail(obj.name, f"attribute {name!r} is a version-{later[name]} attribute; this file declares "
                          f"format_version {self.version}")
            where = f"; {_OWNERS[name]}" if name in _OWNERS else ""  # the right attribute in the wrong place
            self.fail(obj.name, f"unknown attribute {name!r} (allowed here: {', '.join(allowed) or 'none'}){where}")

    def numbers(self, obj, name: str, kinds: str, sizes: tuple[int, ...], what: str):
        """Attribute `name` as a NumPy array, or None if absent; its dtype kind
        and size are checked before its value is read."""
        with self.guard(obj.name):
            if name not in obj.attrs:
                return None
            attr = obj.attrs.get_id(name)
            dtype, shape = attr.dtype, attr.shape
            fits = shape is not None and len(shape) <= 1 and math.prod(shape) in sizes and dtype.kind in kinds
            value = np.asarray(obj.attrs[name]) if fits else None
        if value is None:
            self.fail(obj.name, f"attribute {name!r} must be {what}; found {_type_name(dtype)} of shape {shape}")
        return value

    def absent(self, obj, name: str, default):
        """The value of an absent attribute: its default, or an error if it is required."""
        if default is REQUIRED:
            self.fail(obj.name, f"missing attribute {name!r}")
        return default

    def integers(self, obj, name, sizes, what, minimum, default) -> tuple[int, ...]:
        value = self.numbers(obj, name, "iu", sizes, what)
        if value is None:
            return self.absent(obj, name, default)
        ints = tuple(int(v) for v in value.reshape(-1))
        if min(ints) < minimum or max(ints) > _INT64_MAX:
            self.fail(obj.name, f"attribute {name!r} is {list(ints)}; every entry must be >= {minimum} "
                      "and fit in int64")
        return ints

    def integer(self, obj, name: str, default=REQUIRED, minimum: int = -_INT64_MAX) -> Optional[int]:
        value = self.integers(obj, name, (1,), "an integer", minimum, None)
        return value[0] if value is not None else self.absent(obj, name, default)

    def scalar_integer(self, obj, name: str) -> int:
        """A required integer stored as a true scalar (shape ()): `format_version`, which every later version must
        read the same way, takes no one-element array."""
        with self.guard(obj.name):
            shape = obj.attrs.get_id(name).shape if name in obj.attrs else None
        if shape not in (None, ()):
            self.fail(obj.name, f"attribute {name!r} must be a scalar integer; found an array of shape {shape}")
        return self.integer(obj, name)

    def pair(self, obj, name: str, default=REQUIRED, minimum: int = 0) -> tuple[int, int]:
        """A (height, width) pair; a single integer stands for both."""
        value = self.integers(obj, name, (1, 2), "an integer or a pair of integers", minimum, default)
        return value * 2 if len(value) == 1 else value

    def real(self, obj, name: str, default=REQUIRED) -> Optional[float]:
        value = self.numbers(obj, name, "iuf", (1,), "a real number")
        if value is None:
            return self.absent(obj, name, default)
        value = float(value.reshape(-1)[0])
        if not math.isfinite(value):
            self.fail(obj.name, f"attribute {name!r} is {value}; it must be finite")
        return value

    def text(self, obj, name: str, default=REQUIRED, choices: Optional[tuple[str, ...]] = None) -> Optional[str]:
        with self.guard(obj.name):
            if name not in obj.attrs:
                return self.absent(obj, name, default)
            attr = obj.attrs.get_id(name)
            fits = h5py.check_string_dtype(attr.dtype) is not None and attr.shape in ((), (1,))
            value = np.asarray(obj.attrs[name]).reshape(-1)[0] if fits else None
        if value is None:
            self.fail(obj.name, f"attribute {name!r} must be a string; found {_type_name(attr.dtype)} of shape {attr.shape}")
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(obj.name, f"attribute {name!r} is not UTF-8 text")
        value = str(value)  # not NumPy's str_, which h5py would write back as fixed-width Unicode
        if choices is not None and value not in choices:
            case = "; strings are case-sensitive" if value.lower() in choices else ""
            self.fail(obj.name, f"unknown {name} {value!r} (version {self.version} knows {', '.join(choices)}{case})")
        return value

    def json(self, obj, name: str) -> dict:
        """A JSON object stored as a string attribute ({} when absent)."""
        text = self.text(obj, name, default=None)
        if text is None:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            self.fail(obj.name, f"attribute {name!r} is not valid JSON ({exc})")
        if not isinstance(value, dict):
            self.fail(obj.name, f"attribute {name!r} must be a JSON object, not {type(value).__name__}")
        return value

    # -- members and datasets ----------------------------------------------

    def members(self, group: h5py.Group, allowed: Optional[tuple[str, ...]] = None) -> list[str]:
        """The names of `group`'s members, each a hard link with a valid name,
        all in `allowed` (None: any name). A version-1 group holds nothing else."""
        with self.guard(group.name):
            names = list(group)
        for name in names:
            self.link(group, name)
            if not _NAME.fullmatch(name):
                self.fail(_join(group.name, name), "names must match [A-Za-z0-9_.-]+")
            if allowed is not None and name not in allowed:
                self.fail(_join(group.name, name), f"unknown member (allowed here: {', '.join(allowed) or 'none'})")
        return names

    def link(self, group: h5py.Group, name: str) -> bool:
        """Whether `name` exists in `group`; it must be a hard link (no link may leave the file)."""
        path = _join(group.name, name)
        with self.guard(path):
            link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            self.fail(path, f"external link to {link.filename}:{link.path}; links or references leaving the "
                      "file are not allowed")
        if isinstance(link, h5py.SoftLink):
            self.fail(path, f"soft link to {link.path}; soft links are not allowed")
        if link is not None and not isinstance(link, h5py.HardLink):
            self.fail(path, f"unsupported link type {type(link).__name__}")
        return link is not None

    def child(self, group: h5py.Group, name: str, cls, required: bool = True):
        """Member `name` of `group`, a `cls` (Group or Dataset); None if absent and optional."""
        path = _join(group.name, name)
        if not self.link(group, name):
            if required:
                self.fail(path, f"missing {'group' if cls is h5py.Group else 'dataset'}")
            return None
        with self.guard(path):
            obj = group[name]
        if not isinstance(obj, cls):
            self.fail(path, f"must be a {'group' if cls is h5py.Group else 'dataset'}")
        if cls is h5py.Dataset:
            self.check_dataset(obj)
        return obj

    def check_dataset(self, dset: h5py.Dataset) -> None:
        """Data must live in this file, be plain numbers, and carry no attributes."""
        self.check_attrs(dset, ())
        with self.guard(dset.name):
            virtual, external, dtype, shape = dset.is_virtual, dset.external, dset.dtype, dset.shape
        if virtual or external:
            self.fail(dset.name, f"{'virtual dataset' if virtual else 'external storage'}: links or references "
                      "leaving the file are not allowed")
        if h5py.check_dtype(ref=dtype) is not None:
            self.fail(dset.name, "object or region references: links or references leaving the file are not allowed")
        if shape is None:
            self.fail(dset.name, "empty dataspace (no data)")

    def take(self, dset: h5py.Dataset) -> None:
        """Count the dataset against the file's element budget before reading it."""
        self.elements += math.prod(dset.shape)
        if self.elements > self.limits.max_total_elements:
            self.fail(dset.name, f"brings the file's stored elements to {self.elements}, past the limit of "
                      f"{self.limits.max_total_elements}")

    def floats(self, dset: h5py.Dataset, dtype=np.float64) -> np.ndarray:
        """A floating-point dataset, finite everywhere, as `dtype`. Integers are
        refused: in a weight or parameter they mean a mixed-up dataset."""
        if dset.dtype.kind != "f" or dset.dtype.itemsize not in (2, 4, 8):
            self.fail(dset.name, f"must be float16, float32 or float64, not {dset.dtype}")
        self.take(dset)
        with self.guard(dset.name):
            value = np.asarray(dset[()], dtype=dtype)
        self.check_all(dset.name, np.isfinite(value), value, "must be finite")
        return value

    def ints(self, dset: h5py.Dataset, low: int, high: int) -> np.ndarray:
        """An integer dataset with every entry in [low, high), as int64."""
        if dset.dtype.kind not in "iu":
            self.fail(dset.name, f"must be an integer dataset, not {dset.dtype}")
        self.take(dset)
        with self.guard(dset.name):
            value = np.asarray(dset[()])
        self.check_all(dset.name, (value >= low) & (value < high), value, f"must be in [{low}, {high})")
        return value.astype(np.int64)

    def check_all(self, h5path: str, ok: np.ndarray, value: np.ndarray, rule: str) -> None:
        """Fail at the first entry (C order) where `ok` is False, quoting it."""
        if not ok.all():
            index = np.unravel_index(np.argmin(ok), ok.shape)
            where = f" at index {list(map(int, index))}" if ok.ndim else ""
            self.fail(h5path, f"{rule}; found {value[index]}{where}")


# The projection kinds with rules of their own (_Reader's methods of that section), keyed by their entry
_KIND_RULES = {
    DENSE: _Reader.dense,
    CONV2D: _Reader.convolution,
    AVGPOOL2D: _Reader.pool,
    MAXPOOL2D: _Reader.pool,
    SPARSE: _Reader.sparse,
}


def _in_version(attrs: tuple[Attribute, ...], version: int) -> tuple[Attribute, ...]:
    """The attributes a file of format version `version` has (each is in the versions from its `since` on)."""
    return tuple(attr for attr in attrs if attr.since <= version)


def _default(attr: Attribute, fields: dict):
    """An attribute's default; a callable one is computed from `fields` (a pool's stride from its kernel)."""
    return attr.default(fields) if callable(attr.default) else attr.default


def _owners() -> dict[str, str]:
    """Attribute name -> the kinds that have it, for the message on an attribute out of place
    ("drive is an attribute of bif populations, since format version 2")."""
    where: dict[str, dict[str, list[str]]] = {}  # name -> "populations" or "projections" -> kind names
    since: dict[str, int] = {}
    for element, table in (("populations", POPULATION_KINDS), ("projections", PROJECTION_KINDS)):
        for kind in table.values():
            for attr in kind.attributes:
                where.setdefault(attr.name, {}).setdefault(element, []).append(kind.name)
                since[attr.name] = min(attr.since, since.get(attr.name, attr.since))
    owners = {}
    for name, elements in where.items():
        kinds = " and ".join(f"{_series(names)} {element}" for element, names in elements.items())
        owners[name] = f"{name} is an attribute of {kinds}" + (f", since format version {since[name]}" if since[name] > 1 else "")
    return owners


def _series(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


_OWNERS = _owners()


def _type_name(dtype) -> str:
    """An attribute's type as a message names it: NumPy's name, but "string" for text (NumPy says "object")."""
    return "string" if h5py.check_string_dtype(dtype) is not None else str(dtype)


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _basename(obj) -> str:
    return obj.name.rsplit("/", 1)[-1]


# -- writer ------------------------------------------------------------------


def write_network(path, network: Network) -> None:
    """Write `network` in the lowest format version that holds it; `read_network` gives it back equal.

    That version is the newest that introduced an attribute whose value is
    not its default (`_version`): a network that uses no version-2
    attribute is written as the same version-1 file as before. Floats are
    stored as float32 when that is exact, else as float64; parameters keep
    their compact form (scalar, [C] or full shape). The writer does not
    validate: read the file back to check it.
    """
    with h5py.File(path, "w") as h5:
        for h5path, (attrs, datasets) in _layout(network).items():
            group = h5.require_group(h5path)
            for name, value in attrs.items():
                if value is not None:
                    group.attrs[name] = _attribute(value)
            for name, value in datasets.items():
                if value is not None:
                    group.create_dataset(name, data=_stored(value))


def _layout(net: Network) -> dict[str, tuple[dict, dict]]:
    """Every group of the file: its attributes and datasets (None: left out).

    The one place that decides what goes into a file; the root carries the
    format name and version, so no file can be written without them.
    """
    layout = {
        "/": ({"format": FORMAT_NAME, "format_version": _version(net), "producer": net.producer}, {}),
        "/populations": ({}, {}),
        "/projections": ({}, {}),
    }
    for pop in net.populations:
        layout[f"/populations/{pop.name}"] = (_kind_attributes(pop), _fields(pop, _parameters(pop)))
    for proj in net.projections:
        layout[f"/projections/{proj.name}"] = (_kind_attributes(proj), _fields(proj, proj.spec.datasets))
    layout["/readout"] = ({"population": net.output}, {"output_scale": net.output_scale})
    if net.samples is not None:
        inputs = np.asarray(net.samples.inputs, dtype=np.float32)  # the format's sample type
        layout["/samples"] = ({}, {"inputs": inputs, "labels": net.samples.labels})
    if net.ann is not None:
        ann = net.ann
        attrs = {
            "macs": ann.macs,
            "accuracy": None if ann.accuracy is None else float(ann.accuracy),
            "layer_macs": json.dumps(ann.layer_macs) if ann.layer_macs else None,
        }
        layout["/ann"] = (attrs, {"lambda": ann.lambdas, "outputs": ann.outputs})
    if net.meta:
        layout["/meta"] = ({"conversion": json.dumps(net.meta)}, {})
    return layout


def _kind_attributes(obj) -> dict:
    """A population's or projection's kind and the attributes it writes (`_written`)."""
    values = {"kind": obj.kind}
    for attr in _written(obj):
        value = getattr(obj, attr.name)
        values[attr.name] = float(value) if attr.type == "real" else value  # a real stays one when integral (scale 1)
    return values


def _written(obj) -> tuple[Attribute, ...]:
    """The kind-table attributes a population or projection writes, only where defined (`when`).

    Version 1's are all written, defaults included, as they always were. A
    later version's are written only when they differ from their default:
    an absent one reads as its default, and writing it would raise the
    file's version for nothing (`_version`).
    """
    common = POPULATION_ATTRIBUTES if isinstance(obj, Population) else PROJECTION_ATTRIBUTES
    fields = vars(obj)
    written = []
    for attr in common + obj.spec.attributes:
        if attr.when is not None and not attr.when(fields):
            continue  # not defined here (rank on a potential readout): the reader would refuse it
        if attr.since == 1 or fields[attr.name] != _default(attr, fields):
            written.append(attr)
    return tuple(written)


def _parameters(pop: Population) -> tuple[str, ...]:
    """The neuron-parameter datasets a population may write: its kind's, where defined (`Parameter.when`).
    A model field that means nothing there (v_reset under reset by subtraction) is left out."""
    fields = vars(pop)
    undefined = {p.name for p in pop.spec.parameters if p.when is not None and not p.when(fields)}
    return tuple(name for name in pop.spec.datasets if name not in undefined)


def _version(net: Network) -> int:
    """The lowest format version that holds `net`: the newest that introduced an attribute or a dataset it writes
    (1 if none)."""
    attributes = (attr.since for obj in (*net.populations, *net.projections) for attr in _written(obj))
    datasets = (param.since for pop in net.populations for param in pop.spec.parameters
                if param.name in _parameters(pop) and getattr(pop, param.name) is not None)
    return max((*attributes, *datasets), default=1)


def _fields(obj, names: tuple[str, ...]) -> dict:
    return {name: getattr(obj, name) for name in names}


def _attribute(value):
    """Python values as the format's attribute types: int64, float64, UTF-8 text."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (tuple, list)):
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    return np.float64(value)


def _stored(value) -> np.ndarray:
    """Floats as float32 when that is exact (the norm), else float64; integers as int64."""
    value = np.asarray(value)
    if value.dtype.kind in "iu":
        return value.astype(np.int64)
    if value.dtype.kind == "f" and value.dtype != np.float32:
        single = value.astype(np.float32)
        if np.array_equal(single, value, equal_nan=True):
            return single
    return value
