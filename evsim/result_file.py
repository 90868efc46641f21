"""The result file (HDF5): what `SimulationResult.save` writes and `load_result` reads, strictly.

docs/result_format.md is the contract. Result files are inputs too (shared
between colleagues, read by `evsim plot` and `evsim compare`), so the reader
checks them as the network reader checks network files, on the same
primitives (`weights_io.hdf5._Reader`): links and storage leaving the file
refused, every dataset's type, rank and shape checked against the sizes the
file declares (samples n, steps T, populations P, projections Q, outputs N)
from metadata before any data is read, the total size bounded, and every
value's range. Every violation is one `ResultFormatError` naming the file,
the HDF5 path and the problem.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from evsim.counters import POPULATION_COUNTERS, POPULATION_VALUES, PROJECTION_COUNTERS
from evsim.errors import FormatError
from evsim.kinds import ENCODERS, POPULATION_KINDS, PROJECTION_KINDS
from evsim.result import SimulationResult

RESULT_FORMAT = "evsim-result"
#: 2: SIN counters and the pop_values family; 3: the run's manifest and the projections' targets (in `fields`).
RESULT_VERSION = 3
READ_VERSIONS = (2, 3)
#: Elements of all datasets of one result file, checked from their shapes before any is read (32 GiB as int64).
MAX_RESULT_ELEMENTS = 2**32
SPIKE_TAGS = ("out", "A", "B")


class ResultFormatError(FormatError):
    """A result file that breaks docs/result_format.md (file, HDF5 path, problem)."""


@dataclass(frozen=True)
class ArrayRule:
    """One dataset of a result file: its type ("int" or "float"), its dimensions by name, whether it must be
    there, and for integers the range of every entry, [minimum, below) (`below`: a dimension's name)."""

    name: str
    type: str
    dims: tuple[str, ...]
    required: bool = True
    minimum: Optional[int] = None
    below: Optional[str] = None


#: The datasets, in the order they are checked; `n` and `T` come from `pred`, `N` from `readout_v`,
#: P and Q from the population and projection lists, C, Cq and V are the numbers of counters.
ARRAYS = (
    ArrayRule("pred", "int", ("n", "T"), minimum=0, below="N"),
    ArrayRule("readout_v", "float", ("n", "N")),
    ArrayRule("labels", "int", ("n",), required=False, minimum=0, below="N"),
    ArrayRule("readout_mass", "int", ("n", "N"), minimum=0),
    ArrayRule("readout_estimate", "float", ("n", "N")),
    ArrayRule("pop_counts_per_step", "int", ("T", "P", "C"), minimum=0),
    ArrayRule("proj_counts_per_step", "int", ("T", "Q", "Cq"), minimum=0),
    ArrayRule("pop_counts_per_sample", "int", ("n", "P", "C"), minimum=0),
    ArrayRule("proj_counts_per_sample", "int", ("n", "Q", "Cq"), minimum=0),
    ArrayRule("pop_values_per_step", "float", ("T", "P", "V")),
    ArrayRule("pop_values_per_sample", "float", ("n", "P", "V")),
    ArrayRule("ann_outputs", "float", ("n", "N"), required=False),
    ArrayRule("cosine", "float", ("n", "T"), required=False),
    ArrayRule("abs_difference", "float", ("n", "T"), required=False),
    ArrayRule("pop_counts", "int", ("n", "T", "P", "C"), required=False, minimum=0),
    ArrayRule("proj_counts", "int", ("n", "T", "Q", "Cq"), required=False, minimum=0),
    ArrayRule("pop_values", "float", ("n", "T", "P", "V"), required=False),
    ArrayRule("readout_trace", "float", ("n", "T", "N"), required=False),
    ArrayRule("readout_mass_trace", "int", ("n", "T", "N"), required=False, minimum=0),
)
_ARRAYS = {rule.name: rule for rule in ARRAYS}
_TOGETHER = (("cosine", "abs_difference"), ("readout_trace", "readout_mass_trace"))  # present both or neither


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


#: The entries of the `fields` JSON object: (test, wording, required, since version).
FIELDS = {
    "populations": (_names, "a list of population names", True, 2),
    "projections": (_names, "a list of projection names", True, 2),
    "population_kinds": (lambda v: _names(v) and all(k in POPULATION_KINDS for k in v),
                         f"a list of population kinds ({', '.join(POPULATION_KINDS)})", True, 2),
    "projection_kinds": (lambda v: _names(v) and all(k in PROJECTION_KINDS for k in v),
                         f"a list of projection kinds ({', '.join(PROJECTION_KINDS)})", True, 2),
    "population_sizes": (lambda v: isinstance(v, list) and all(_integer(x) and x >= 1 for x in v),
                         "a list of integers >= 1", False, 2),
    "timesteps": (lambda v: _integer(v) and v >= 1, "an integer >= 1", True, 2),
    "encoder": (lambda v: v in ENCODERS, f"one of {', '.join(ENCODERS)}", True, 2),
    "seed": (lambda v: _integer(v) and 0 <= v < 2**63, "an integer from 0 to 2**63 - 1", True, 2),
    "ann_macs": (lambda v: _integer(v) and v >= 0, "an integer >= 0", False, 2),
    "ann_accuracy": (lambda v: _real(v) and 0 <= v <= 1, "a fraction in [0, 1]", False, 2),
    "wall_time": (lambda v: _real(v) and v >= 0, "a number of seconds >= 0", False, 2),
    "startup_time": (lambda v: _real(v) and v >= 0, "a number of seconds >= 0", False, 2),
    "threads": (lambda v: _integer(v) and v >= 1, "an integer >= 1", False, 2),
    "dtype": (lambda v: v in ("float32", "float64"), "float32 or float64", False, 2),
    "sin_populations": (_names, "a list of population names", False, 2),
    "projection_targets": (_names, "a list of population names", False, 3),
    "projection_sources": (_names, "a list of population names", False, 3),
    "population_units": (lambda v: isinstance(v, list) and all(_integer(x) and x in (1, 2) for x in v),
                         "a list of 1 (one unit per neuron) or 2 (a bif pair)", False, 3),
    "population_biased": (lambda v: isinstance(v, list) and all(_integer(x) and x >= 0 for x in v),
                          "a list of integers >= 0", False, 3),
    "manifest": (lambda v: isinstance(v, dict), "a JSON object", False, 3),
}


# -- writer ------------------------------------------------------------------------


def write_result(result: SimulationResult, path) -> None:
    """Write the whole result (`load_result` reads it back, equal in every field)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = RESULT_FORMAT, np.int64(RESULT_VERSION)
        scalars = {}
        for fld in dataclasses.fields(result):
            value = getattr(result, fld.name)
            if isinstance(value, np.ndarray):
                f.create_dataset(fld.name, data=value, compression="gzip")
            elif fld.name == "spikes":
                for (pop, tag), (coef, val) in value.items():
                    f.create_dataset(f"spikes/{pop}/{tag}/coef", data=coef, compression="gzip")
                    f.create_dataset(f"spikes/{pop}/{tag}/value", data=val, compression="gzip")
            elif value is not None:
                scalars[fld.name] = value
        f.attrs["fields"] = json.dumps(scalars)


# -- reader ------------------------------------------------------------------------


def is_result_file(path) -> bool:
    """Whether `path` says it is a result file (its root `format` attribute); `load_result` checks the rest."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("format")
    except Exception:  # not HDF5, unreadable: not a result file (the network reader says what it is)
        return False
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return isinstance(value, str) and value == RESULT_FORMAT


def load_result(path) -> SimulationResult:
    """Read and validate a result file (docs/result_format.md); any violation is a `ResultFormatError`."""
    from evsim.weights_io.hdf5 import FormatLimits

    path = Path(path)
    if not path.exists():
        raise ResultFormatError(path, "/", "no such file")
    try:
        h5 = h5py.File(path, "r")
    except Exception as exc:
        raise ResultFormatError(path, "/", f"not an HDF5 file, or truncated or unreadable ({exc})") from None
    with h5:
        reader = _result_reader()(path, FormatLimits(max_total_elements=MAX_RESULT_ELEMENTS))
        with reader.guard("/"):
            return reader.result(h5)


def _result_reader():
    """The reader class, built on the network reader's guarded primitives (imported late: weights_io imports evsim)."""
    from evsim.weights_io.hdf5 import _Reader

    class ResultReader(_Reader):
        def fail(self, h5path, problem):
            raise ResultFormatError(self.file, h5path, problem)

        def result(self, root: h5py.File) -> SimulationResult:
            name = self.text(root, "format", default=None)
            if name != RESULT_FORMAT:
                self.fail("/", f"not an evsim result file (attribute format is {name!r}, not {RESULT_FORMAT!r})")
            self.version = self.scalar_integer(root, "format_version")
            if self.version not in READ_VERSIONS:
                self.fail("/", f"result format version {self.version} is not one this evsim reads "
                          f"({', '.join(map(str, READ_VERSIONS))})")
            self.check_attrs(root, ("format", "format_version", "fields"))
            fields = self.fields(root)
            members = self.members(root, (*_ARRAYS, "spikes"))
            datasets = {name: self.child(root, name, h5py.Dataset) for name in members if name != "spikes"}
            dims = self.dimensions(fields, datasets)
            for rule in ARRAYS:
                if rule.name in datasets:
                    self.check_shape(datasets[rule.name], rule, dims)
                elif rule.required:
                    self.fail(f"/{rule.name}", "missing dataset")
            for pair in _TOGETHER:
                if (pair[0] in datasets) != (pair[1] in datasets):
                    present, absent = pair if pair[0] in datasets else pair[::-1]
                    self.fail(f"/{absent}", f"missing dataset (it comes with /{present}, which is there)")
            spikes = self.spike_datasets(root, fields, dims) if "spikes" in members else {}
            for dset in [*datasets.values(), *(d for pair in spikes.values() for d in pair)]:
                self.take(dset)  # every size is known: bound the total before reading anything
            for name, dset in datasets.items():
                fields[name] = self.array(dset, _ARRAYS[name], dims)
            fields["spikes"] = {key: (self.ints(coef, -2**62, 2**62), self.floats(value))
                                for key, (coef, value) in spikes.items()}
            return SimulationResult(**fields)

        def fields(self, root: h5py.File) -> dict:
            with self.guard("/"):
                present = "fields" in root.attrs
            if not present:
                self.fail("/", "missing attribute 'fields'")
            fields = self.json(root, "fields")
            known = {name: rule for name, rule in FIELDS.items() if rule[3] <= self.version}
            for name in fields:
                if name not in known:
                    later = f" (a version-{FIELDS[name][3]} field)" if name in FIELDS else ""
                    self.fail("/", f"attribute 'fields': unknown entry {name!r}{later}")
            for name, (test, wording, required, _) in known.items():
                if name not in fields:
                    if required:
                        self.fail("/", f"attribute 'fields': missing entry {name!r}")
                    continue
                if not test(fields[name]):
                    self.fail("/", f"attribute 'fields': {name} must be {wording}; found {_quote(fields[name])}")
            self.check_lists(fields)
            return fields

        def check_lists(self, fields: dict) -> None:
            """The population and projection lists and what is said about each, one length, unique names."""
            for names, kinds in (("populations", "population_kinds"), ("projections", "projection_kinds")):
                if len(set(fields[names])) != len(fields[names]):
                    self.fail("/", f"attribute 'fields': {names} repeats a name")
                if len(fields[kinds]) != len(fields[names]):
                    self.fail("/", f"attribute 'fields': {kinds} has {len(fields[kinds])} entries for "
                              f"{len(fields[names])} {names}")
            for entry, per in (("population_sizes", "populations"), ("population_units", "populations"),
                               ("population_biased", "populations"), ("projection_targets", "projections"),
                               ("projection_sources", "projections")):
                values = fields.get(entry, [])
                if values and len(values) != len(fields[per]):
                    self.fail("/", f"attribute 'fields': {entry} has {len(values)} entries for {len(fields[per])} {per}")
            for names in ("sin_populations", "projection_targets", "projection_sources"):
                unknown = sorted(set(fields.get(names, [])) - set(fields["populations"]))
                if unknown:
                    self.fail("/", f"attribute 'fields': {names} names {', '.join(unknown)}, not populations")
            biased, sizes = fields.get("population_biased", []), fields.get("population_sizes", [])
            if biased and sizes and any(b > n for b, n in zip(biased, sizes)):
                self.fail("/", "attribute 'fields': population_biased counts more biased neurons than a population has")

        def dimensions(self, fields: dict, datasets: dict) -> dict:
            """The sizes every dataset's shape is checked against: n and T from /pred, N from /readout_v."""
            dims = {"P": len(fields["populations"]), "Q": len(fields["projections"]),
                    "C": len(POPULATION_COUNTERS), "Cq": len(PROJECTION_COUNTERS), "V": len(POPULATION_VALUES)}
            for name, axes in (("pred", ("n", "T")), ("readout_v", ("n", "N"))):
                if name not in datasets:
                    self.fail(f"/{name}", "missing dataset")
                shape = datasets[name].shape
                if len(shape) != 2 or min(shape) < 1:
                    self.fail(f"/{name}", f"shape {shape} is not [{', '.join(axes)}] with every entry >= 1")
                for axis, size in zip(axes, shape):
                    dims.setdefault(axis, size)
            if dims["T"] != fields["timesteps"]:
                self.fail("/pred", f"shape {datasets['pred'].shape} has {dims['T']} steps; attribute 'fields' says "
                          f"timesteps {fields['timesteps']}")
            return dims

        def check_shape(self, dset: h5py.Dataset, rule: ArrayRule, dims: dict) -> None:
            expected = tuple(dims[d] for d in rule.dims)
            if dset.shape != expected:
                named = ", ".join(f"{d} = {dims[d]}" for d in rule.dims)
                self.fail(dset.name, f"shape {dset.shape} is not [{named}] (rank {len(rule.dims)})")
            kinds = "iu" if rule.type == "int" else "f"
            if dset.dtype.kind not in kinds:
                self.fail(dset.name, f"must be an {'integer' if rule.type == 'int' else 'floating-point'} dataset, "
                          f"not {dset.dtype}")

        def array(self, dset: h5py.Dataset, rule: ArrayRule, dims: dict) -> np.ndarray:
            if rule.type == "float":
                with self.guard(dset.name):
                    value = dset[()]
                self.check_all(dset.name, np.isfinite(value), value, "must be finite")
                return value
            high = dims[rule.below] if rule.below else 2**63 - 1
            with self.guard(dset.name):
                value = dset[()]
            self.check_all(dset.name, (value >= rule.minimum) & (value < high), value,
                           f"must be in [{rule.minimum}, {high})" if rule.below else f"must be >= {rule.minimum}")
            return value  # as stored: a round trip keeps every field's dtype (the writer stores what the run held)

        def spike_datasets(self, root: h5py.File, fields: dict, dims: dict) -> dict:
            """The recorded spike trains: /spikes/<population>/<tag>/{coef, value}, each [n, T, *shape]."""
            group = self.child(root, "spikes", h5py.Group)
            self.check_attrs(group, ())
            sizes = dict(zip(fields["populations"], fields.get("population_sizes", [])))
            trains = {}
            for pop in self.members(group, tuple(fields["populations"])):
                tags = self.child(group, pop, h5py.Group)
                self.check_attrs(tags, ())
                for tag in self.members(tags, SPIKE_TAGS):
                    train = self.child(tags, tag, h5py.Group)
                    self.check_attrs(train, ())
                    self.members(train, ("coef", "value"))
                    coef, value = (self.child(train, name, h5py.Dataset) for name in ("coef", "value"))
                    shape = coef.shape
                    if len(shape) < 3 or shape[:2] != (dims["n"], dims["T"]) or value.shape != shape:
                        self.fail(coef.name, f"shapes {coef.shape} (coef) and {value.shape} (value) are not one "
                                  f"[n = {dims['n']}, T = {dims['T']}, *population shape]")
                    if pop in sizes and math.prod(shape[2:]) != sizes[pop]:
                        self.fail(coef.name, f"shape {shape} holds {math.prod(shape[2:])} neurons per step; "
                                  f"{pop} has {sizes[pop]}")
                    for dset, kinds in ((coef, "iu"), (value, "f")):
                        if dset.dtype.kind not in kinds:
                            self.fail(dset.name, f"must be an {'integer' if kinds == 'iu' else 'floating-point'} "
                                      f"dataset, not {dset.dtype}")
                    trains[(pop, tag)] = (coef, value)
            return trains

    return ResultReader


def _quote(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."

