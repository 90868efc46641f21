"""The file format, versions 1 to 3 (docs/format.md): conformance files, round trip,
the writer's version, the saved example files, and one hostile file per rule the reader enforces."""
import dataclasses
import re
import shutil
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hdf5_edits import delete, put

from evsim.errors import FormatError
from evsim.kinds import POPULATION_ATTRIBUTES, POPULATION_KINDS, PROJECTION_ATTRIBUTES, PROJECTION_KINDS
from evsim.network import AnnInfo, Network, Population, Projection, Samples
from evsim.weights_io import FORMAT_NAME, FORMAT_VERSION, FormatLimits, read_network, write_network

EXAMPLE_V1 = Path(__file__).parent / "data" / "example_v1.h5"
EXAMPLE_V2 = Path(__file__).parent / "data" / "example_v2.h5"
EXAMPLE_V3 = Path(__file__).parent / "data" / "example_v3.h5"
V2_ATTRIBUTES = ("rank", "drive", "bias_onset")
V3_NAMES = ("reset", "fire_when", "v_reset")  # two attributes and a dataset


def assert_same(a, b, where="network"):
    """Field-by-field equality of networks (dataclasses holding arrays)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert (a.shape, a.dtype) == (b.shape, b.dtype), where
        assert np.array_equal(a, b), where
    elif isinstance(a, tuple):
        assert len(a) == len(b), where
        if where.endswith(".projections"):  # HDF5 keeps no member order: compare by name
            a, b = (sorted(x, key=lambda q: q.name) for x in (a, b))
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def round_trip(net: Network, path: Path) -> Network:
    write_network(path, net)
    return read_network(path)


# -- conformance files -------------------------------------------------------


def test_all_conformance_files_are_there(conformance_dir):
    stems = {f.stem for f in conformance_dir.glob("*.h5")}
    v1 = {f"{group}_{net}" for group in ("foundation", "later") for net in ("cnn", "mlp", "random", "residual")}
    v1 |= {"later_bsnn", "later_maxpool"}
    v2 = {f"v2_{net}" for net in ("bsnn_gated_analog", "bsnn_gated_phase", "maxpool_value", "random",
                                   "readout_signed", "residual")}
    v3 = {f"v3_{net}" for net in ("fire_gt", "random", "reset_value")}
    assert stems == v1 | v2 | v3
    for stem in stems:  # each with its expected outputs, and in the format version its name says
        assert (conformance_dir / f"{stem}.expected.npz").exists()
        with h5py.File(conformance_dir / f"{stem}.h5", "r") as f:
            assert int(f.attrs["format_version"]) == (int(stem[1]) if stem.startswith("v") else 1)


def test_reads_conformance_file(conformance_file):
    net = read_network(conformance_file)
    assert [p.order for p in net.populations] == list(range(len(net.populations)))
    assert net.input.order == 0
    assert net.samples.inputs.dtype == np.float32
    assert net.samples.inputs.shape[1:] == net.input.shape
    assert net.samples.labels.dtype == np.int64
    assert net.meta["generator"] == "independent conformance generator"
    for proj in net.projections:
        for array in (proj.weight, proj.indptr, proj.indices):
            assert array is None or array.dtype in (np.float64, np.int64)
    for pop in net.populations:
        for name in ("theta_pos", "theta_neg", "v_init", "bias", "v_reset"):
            value = getattr(pop, name)
            assert value is None or (value.dtype == np.float64 and value.shape in ((), (pop.shape[0],), pop.shape))


def test_conformance_decoded_values(conformance_dir):
    residual = read_network(conformance_dir / "foundation_residual.h5")
    p3 = next(q for q in residual.projections if q.name == "p3_conv2d")  # no geometry attributes at all
    assert (p3.stride, p3.padding, p3.dilation, p3.groups, p3.scale) == ((1, 1), (0, 0), (1, 1), 1, 1.5)
    assert residual.population("if1").theta_pos.shape == ()  # stored as (1,)
    assert residual.population("if1").theta_pos == 0.75
    assert residual.output == "readout6"  # no /readout: the single readout population
    assert residual.output_scale is None
    mlp = read_network(conformance_dir / "foundation_mlp.h5")
    assert mlp.output == "readout4" and mlp.output_scale == 0.5
    assert mlp.population("readout4").mode == "potential"  # default
    assert mlp.population("if1").max_coeff == 1  # default
    assert mlp.population("input0").encoding == "analog"
    cnn = read_network(conformance_dir / "foundation_cnn.h5")
    pool = next(q for q in cnn.projections if q.name == "p1_avgpool2d")
    assert (pool.kernel, pool.stride, pool.padding, pool.scale) == ((1, 4), (2, 1), (0, 1), 0.75)
    bsnn = read_network(conformance_dir / "later_bsnn.h5")
    assert bsnn.population("bif3").max_coeff == 1 and bsnn.population("bif3").coding == "phase"
    maxpool = next(q for q in bsnn.projections if q.kind == "maxpool2d")
    assert bsnn.population(maxpool.target).kind == "relay" and maxpool.scale == 1.0
    reset = read_network(conformance_dir / "v3_reset_value.h5")
    if1, if3, if4 = (reset.population(n) for n in ("if1", "if3", "if4"))
    assert (if1.reset, if1.fire_when, if1.v_reset.shape) == ("value", "ge", (3,))
    assert (if3.reset, if3.v_reset) == ("value", None)  # no dataset: reset to 0
    assert (if4.reset, if4.v_reset) == ("subtract", None)  # written explicitly at its default
    gt = read_network(conformance_dir / "v3_fire_gt.h5")
    assert [p.fire_when for p in gt.populations if p.kind == "if"] == ["gt", "gt", "gt", "ge"]
    later_cnn = read_network(conformance_dir / "later_cnn.h5")
    assert later_cnn.input.encoding == "phase" and later_cnn.input.phase_period == 3
    assert later_cnn.population("if1").theta_neg.shape == (4,)


def test_conformance_round_trip(conformance_file, tmp_path):
    net = read_network(conformance_file)
    assert_same(round_trip(net, tmp_path / "copy.h5"), net)


# -- writer --------------------------------------------------------------------


def test_writer_stores_float32_when_exact_else_float64(tmp_path):
    net = small_network()
    c1 = net.population("c1")
    pops = tuple(dataclasses.replace(p, v_init=np.array([0.1, 0.25])) if p is c1 else p for p in net.populations)
    net = net.replace(populations=pops)
    write_network(tmp_path / "net.h5", net)
    with h5py.File(tmp_path / "net.h5") as f:
        assert f.attrs["format"] == FORMAT_NAME and f.attrs["format_version"] == 1  # no version-2 attribute used
        assert f["/populations/c1/v_init"].dtype == np.float64  # 0.1 is not a float32
        assert f["/populations/c1/theta_pos"].dtype == np.float32
        assert f["/populations/c1/theta_neg"].shape == ()  # compact form kept
        assert f["/projections/conv/weight"].dtype == np.float32
        assert f["/projections/sp/indptr"].dtype == np.int64
    assert_same(read_network(tmp_path / "net.h5"), net)


def test_small_network_round_trip(tmp_path):
    assert_same(round_trip(small_network(), tmp_path / "net.h5"), small_network())


# -- the saved version-1 example -----------------------------------------------


def ramp(*shape):
    return ((np.arange(np.prod(shape)) % 7 - 3) / 8).reshape(shape)


def test_reads_saved_version_1_example():
    net = read_network(EXAMPLE_V1)
    assert net.producer == "evsim tests/data/make_example_v1.py"
    assert [(p.name, p.kind, p.shape) for p in net.populations] == [
        ("in", "input", (1, 6, 6)), ("c1", "if", (2, 4, 4)), ("p1", "if", (2, 2, 2)),
        ("h", "if", (5,)), ("h2", "if", (5,)), ("out", "readout", (3,)),
    ]
    c1, p1, h, out = (net.population(n) for n in ("c1", "p1", "h", "out"))
    assert c1.theta_pos.tolist() == [1.0, 0.5] and c1.theta_neg == -1.0 and c1.v_init == 0.5
    assert (p1.max_coeff, p1.theta_pos, p1.bias.tolist()) == (0, 0.75, [0.0, 0.125])
    assert h.max_coeff == 3 and h.theta_pos.tolist() == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert out.mode == "potential" and out.theta_pos is None and out.bias.tolist() == [0.0, 0.0625, -0.0625]
    # data-flow order: by source order, then target order, then name
    assert [q.name for q in net.projections] == ["conv", "pool", "fc", "skip", "sp"]
    conv, fc, pool, skip, sp = (next(q for q in net.projections if q.name == n) for n in ("conv", "fc", "pool", "skip", "sp"))
    assert (conv.kind, conv.source, conv.target, conv.stride, conv.padding, conv.groups) == (
        "conv2d", "in", "c1", (1, 1), (0, 0), 1)
    assert np.array_equal(conv.weight, ramp(2, 1, 3, 3)) and np.array_equal(fc.weight, ramp(5, 8))
    assert (pool.kind, pool.kernel, pool.stride, pool.padding) == ("avgpool2d", (2, 2), (2, 2), (0, 0))
    assert (skip.kind, skip.scale) == ("identity", 0.5)
    assert sp.indptr.tolist() == [0, 2, 3, 3, 5, 6] and sp.indices.tolist() == [0, 2, 1, 0, 1, 2]
    assert np.array_equal(sp.weight, ramp(6))
    assert net.output == "out" and net.output_scale == 2.0
    assert net.samples.inputs.shape == (4, 1, 6, 6) and net.samples.labels.tolist() == [0, 2, 1, 0]
    assert np.array_equal(net.samples.inputs.reshape(-1), (np.arange(144) % 17) / 16)
    assert (net.ann.macs, net.ann.accuracy) == (366, 0.75)
    assert net.ann.layer_macs == {"conv": 288, "pool": 32, "fc": 40, "sp": 6}
    assert net.ann.lambdas.tolist() == [1.0, 2.0, 4.0] and np.array_equal(net.ann.outputs, ramp(4, 3))
    assert net.meta == {"method": "rate-norm", "percentile": 99.9, "dataset": "synthetic",
                        "note": "evsim format version 1 example file"}


# -- the saved version-2 example -----------------------------------------------


def test_reads_saved_version_2_example():
    with h5py.File(EXAMPLE_V2) as f:
        assert f.attrs["format_version"] == 2
    net = read_network(EXAMPLE_V2)
    assert net.producer == "evsim tests/data/make_example_v2.py"
    assert [(p.name, p.kind, p.shape) for p in net.populations] == [
        ("in", "input", (1, 4, 4)), ("b1", "bif", (2, 4, 4)), ("r", "relay", (2, 2, 2)), ("h", "if", (4,)),
        ("out", "readout", (3,)),
    ]
    b1, h, out = (net.population(n) for n in ("b1", "h", "out"))
    # every version-2 attribute, each with a value other than its default
    assert (b1.drive, b1.bias_onset, h.bias_onset) == ("gated", 2, 4)
    assert (out.mode, out.rank, out.bias_onset, out.max_coeff) == ("spikes", "value", 6, 2)
    mp = next(q for q in net.projections if q.name == "mp")
    assert (mp.kind, mp.rank, mp.kernel, mp.stride) == ("maxpool2d", "value", (2, 2), (2, 2))
    # where an attribute is not written, the reader gives its default
    assert (h.drive, net.population("in").bias_onset, net.population("r").bias_onset) == ("split", 0, 0)
    assert all(q.rank == "mass" for q in net.projections if q.name != "mp")
    # and the version-1 fields around them
    assert (b1.coding, b1.phase_period, b1.theta_pos.tolist(), b1.bias.tolist()) == ("phase", 2, [1.0, 0.5], [0.125, -0.125])
    assert (h.theta_pos, h.theta_neg, h.bias) == (1.0, -1.0, 0.0625)
    assert out.theta_pos == 0.5 and out.bias.tolist() == [0.0, 0.0625, -0.0625]
    assert [q.name for q in net.projections] == ["conv", "mp", "fc", "fc2"]
    conv, fc, fc2 = (next(q for q in net.projections if q.name == n) for n in ("conv", "fc", "fc2"))
    assert conv.padding == (1, 1) and np.array_equal(conv.weight, ramp(2, 1, 3, 3))
    assert np.array_equal(fc.weight, ramp(4, 8)) and np.array_equal(fc2.weight, ramp(3, 4))
    assert net.output == "out" and net.output_scale is None and net.ann is None
    assert np.array_equal(net.samples.inputs.reshape(-1), (np.arange(48) % 17) / 16)
    assert net.samples.labels.tolist() == [2, 0, 1]
    assert net.meta == {"method": "bsnn", "K": 2, "dataset": "synthetic", "note": "evsim format version 2 example file"}


def contents(path: Path) -> dict:
    """What a file holds: every object's attributes (stored type and value) and every dataset's type, shape and data."""
    found = {}

    def record(name, obj):
        attrs = {key: (str(obj.attrs.get_id(key).dtype), np.asarray(obj.attrs[key]).tolist()) for key in obj.attrs}
        data = (str(obj.dtype), obj.shape, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
        found[name] = (attrs, data)

    with h5py.File(path) as f:
        record("/", f)
        f.visititems(record)
    return found


# -- the saved version-3 example -----------------------------------------------


def test_reads_saved_version_3_example():
    with h5py.File(EXAMPLE_V3) as f:
        assert f.attrs["format_version"] == 3
    net = read_network(EXAMPLE_V3)
    assert net.producer == "evsim tests/data/make_example_v3.py"
    assert [(p.name, p.kind, p.shape) for p in net.populations] == [
        ("in", "input", (1, 4, 4)), ("c1", "if", (2, 2, 2)), ("h", "if", (4,)), ("g", "if", (4,)), ("out", "readout", (3,)),
    ]
    c1, h, g, out = (net.population(n) for n in ("c1", "h", "g", "out"))
    # every version-3 field with a value other than its default: reset to a per-channel value, fire only beyond
    assert (c1.reset, c1.fire_when, c1.v_reset.tolist()) == ("value", "gt", [0.25, -0.125])
    assert (h.reset, h.fire_when, h.v_reset) == ("value", "ge", None)  # reset to 0: no dataset
    assert (g.reset, g.fire_when, g.v_reset) == ("subtract", "gt", None)
    # a version-2 attribute and the version-1 fields around them
    assert (h.bias_onset, h.max_coeff, h.theta_neg) == (2, 0, -1.0)
    assert c1.theta_pos.tolist() == [1.0, 0.5] and g.theta_pos == 0.5 and out.bias.tolist() == [0.0, 0.0625, -0.0625]
    assert [q.name for q in net.projections] == ["conv", "fc", "fc2", "fc3"]
    conv, fc, fc2, fc3 = net.projections
    assert (conv.stride, conv.padding) == ((2, 2), (1, 1)) and np.array_equal(conv.weight, ramp(2, 1, 3, 3))
    assert np.array_equal(fc.weight, ramp(4, 8)) and np.array_equal(fc2.weight, ramp(4, 4))
    assert np.array_equal(fc3.weight, ramp(3, 4))
    assert net.output == "out" and net.samples.labels.tolist() == [1, 0, 2]
    assert np.array_equal(net.samples.inputs.reshape(-1), (np.arange(48) % 13) / 8 - 0.75)
    assert net.meta == {"method": "nir", "dataset": "synthetic", "note": "evsim format version 3 example file"}


@pytest.mark.parametrize("example", [EXAMPLE_V1, EXAMPLE_V2, EXAMPLE_V3], ids=["v1", "v2", "v3"])
def test_rewriting_a_saved_example_gives_the_same_file(example, tmp_path):
    """The writer writes the lowest version that holds a network, so a version-1 network is still written as the
    version-1 file it was (same attributes, same types, same data), and the version-2 example as itself."""
    write_network(tmp_path / "copy.h5", read_network(example))
    assert contents(tmp_path / "copy.h5") == contents(example)


# -- version 2: what the writer writes, what the reader accepts ------------------


def changed(net: Network, name: str, **fields) -> Network:
    """`net` with the population or projection `name` given `fields`."""
    def edit(element):
        return dataclasses.replace(element, **fields) if element.name == name else element
    return net.replace(populations=tuple(map(edit, net.populations)), projections=tuple(map(edit, net.projections)))


SPIKES_OUT = {"mode": "spikes", "theta_pos": np.array(1.0)}
#: Each version-2 attribute with a value other than its default, on an element of small_network that has it
V2_SETTINGS = [
    ("mp", {"rank": "value"}),
    ("out", {**SPIKES_OUT, "rank": "value"}),
    ("h", {"drive": "gated"}),
    ("h", {"bias_onset": 2}),
    ("c1", {"bias_onset": 2**40}),  # past any T: no bias at all, still a valid onset
    ("out", {"bias_onset": 5}),
]


def file_attributes(path: Path) -> set[tuple[str, str]]:
    """(HDF5 path, attribute name) of every version-2 attribute in the file."""
    with h5py.File(path) as f:
        return {(obj.name, key) for group in ("populations", "projections") for obj in f[group].values()
                for key in obj.attrs if key in V2_ATTRIBUTES}


def written_version(path: Path) -> int:
    with h5py.File(path) as f:
        return int(f.attrs["format_version"])


def test_kind_table_versions_are_ones_this_module_reads_and_writes():
    for spec in (*POPULATION_KINDS.values(), *PROJECTION_KINDS.values()):
        for attr in POPULATION_ATTRIBUTES + PROJECTION_ATTRIBUTES + spec.attributes + getattr(spec, "parameters", ()):
            assert 1 <= attr.since <= FORMAT_VERSION, (spec.name, attr.name)
            assert attr.when is None or attr.meaning, (spec.name, attr.name)  # the error message names the condition


def test_network_using_no_version_2_attribute_is_written_as_version_1(tmp_path):
    write_network(tmp_path / "net.h5", small_network())
    assert written_version(tmp_path / "net.h5") == 1 and file_attributes(tmp_path / "net.h5") == set()


def test_network_using_every_version_2_attribute_round_trips_as_version_2(tmp_path):
    net = small_network()
    for name, fields in V2_SETTINGS:
        net = changed(net, name, **fields)
    assert_same(round_trip(net, tmp_path / "net.h5"), net)
    assert written_version(tmp_path / "net.h5") == 2
    # only the values other than their defaults are written: out has rank but no drive, mp has rank, h both
    assert file_attributes(tmp_path / "net.h5") == {
        ("/projections/mp", "rank"), ("/populations/out", "rank"), ("/populations/h", "drive"),
        ("/populations/h", "bias_onset"), ("/populations/c1", "bias_onset"), ("/populations/out", "bias_onset")}


@pytest.mark.parametrize("name, fields", V2_SETTINGS, ids=[f"{n}.{list(f)[-1]}" for n, f in V2_SETTINGS])
def test_one_version_2_attribute_makes_a_version_2_file(tmp_path, name, fields):
    net = changed(small_network(), name, **fields)
    assert_same(round_trip(net, tmp_path / "net.h5"), net)
    assert written_version(tmp_path / "net.h5") == 2
    h5path = f"/{'projections' if name == 'mp' else 'populations'}/{name}"
    assert file_attributes(tmp_path / "net.h5") == {(h5path, list(fields)[-1])}


def test_version_2_defaults_keep_a_network_at_version_1(tmp_path):
    """Version-2 fields at their defaults (rank = mass on a spikes readout too) are not written."""
    net = changed(small_network(), "out", **SPIKES_OUT, rank="mass", bias_onset=0)
    net = changed(changed(net, "h", drive="split", bias_onset=0), "mp", rank="mass")
    assert_same(round_trip(net, tmp_path / "net.h5"), net)
    assert written_version(tmp_path / "net.h5") == 1 and file_attributes(tmp_path / "net.h5") == set()


def test_field_where_the_format_does_not_define_it_is_not_written(tmp_path):
    """rank on a potential readout means nothing (no engine reads it) and the reader would refuse it: the writer
    leaves it out, as it leaves out a threshold given to an input, and the file stays version 1."""
    net = changed(small_network(), "out", rank="value")
    assert round_trip(net, tmp_path / "net.h5").population("out").rank == "mass"
    assert written_version(tmp_path / "net.h5") == 1 and file_attributes(tmp_path / "net.h5") == set()


def version_2(*mutations):
    """Declare the file version 2, then mutate it."""
    return each(set_attr("/", "format_version", 2), *mutations)


def spikes_readout(h5path):
    return each(set_attr(h5path, "mode", "spikes"), put(f"{h5path}/theta_pos", 1.0))


def test_version_2_reader_accepts_explicit_defaults(valid_file):
    explicit = [set_attr("/projections/mp", "rank", "mass"), set_attr("/populations/h", "drive", "split")]
    explicit += [set_attr(f"/populations/{name}", "bias_onset", 0) for name in ("c1", "a", "h", "h2", "out")]
    assert_same(read_network(mutated(valid_file, version_2(*explicit))), small_network())


def test_version_2_reader_reads_rank_on_a_spikes_readout(valid_file):
    path = mutated(valid_file, version_2(spikes_readout("/populations/out"), set_attr("/populations/out", "rank", "value")))
    out = read_network(path).population("out")
    assert (out.mode, out.rank) == ("spikes", "value")


@pytest.mark.parametrize("onset", [np.uint8(3), np.int32(7), np.int64(2**62), np.uint64(2**63 - 1), np.array([9])],
                         ids=["uint8", "int32", "2^62", "int64 max as uint64", "shape (1,)"])
def test_bias_onset_is_any_integer_at_least_0(valid_file, onset):
    """Any integer type, of any width, that fits int64; an onset past any T is valid (it means no bias)."""
    path = mutated(valid_file, version_2(set_attr("/populations/h", "bias_onset", onset)))
    assert read_network(path).population("h").bias_onset == int(np.asarray(onset).reshape(-1)[0])


# -- version 3: what the writer writes, what the reader accepts ------------------

#: Each version-3 setting other than the default, on an if population of small_network; and what it writes
V3_SETTINGS = [
    ("c1", {"reset": "value"}, {"reset"}),  # to 0: no dataset
    ("c1", {"reset": "value", "v_reset": np.array([0.25, -0.5])}, {"reset", "v_reset"}),
    ("h2", {"reset": "value", "v_reset": np.array(0.125)}, {"reset", "v_reset"}),
    ("a", {"fire_when": "gt"}, {"fire_when"}),
]


def version_3_names(path: Path) -> set[tuple[str, str]]:
    """(HDF5 path, name) of every version-3 attribute and dataset in the file."""
    with h5py.File(path) as f:
        return {(obj.name, key) for obj in f["populations"].values() for key in (*obj.attrs, *obj) if key in V3_NAMES}


@pytest.mark.parametrize("name, fields, written", V3_SETTINGS, ids=["reset to 0", "per-channel v_reset", "scalar v_reset",
                                                                     "fire_when gt"])
def test_one_version_3_setting_makes_a_version_3_file(tmp_path, name, fields, written):
    net = changed(small_network(), name, **fields)
    assert_same(round_trip(net, tmp_path / "net.h5"), net)
    assert written_version(tmp_path / "net.h5") == 3
    assert version_3_names(tmp_path / "net.h5") == {(f"/populations/{name}", key) for key in written}


def test_version_3_defaults_keep_a_network_at_its_version(tmp_path):
    """reset = subtract and fire_when = ge are not written; nor is a v_reset under reset by subtraction, where it means
    nothing (the reader would refuse it). With a version-2 attribute the file is version 2, not 3."""
    net = changed(small_network(), "c1", reset="subtract", fire_when="ge", v_reset=np.array(0.5))
    assert round_trip(net, tmp_path / "net.h5").population("c1").v_reset is None
    assert written_version(tmp_path / "net.h5") == 1 and version_3_names(tmp_path / "net.h5") == set()
    write_network(tmp_path / "v2.h5", changed(net, "h", drive="gated"))
    assert written_version(tmp_path / "v2.h5") == 2


def version_3(*mutations):
    return each(set_attr("/", "format_version", 3), *mutations)


def test_version_3_reader_accepts_explicit_defaults(valid_file):
    explicit = [set_attr(f"/populations/{name}", key, value) for name in ("c1", "a", "h2")
                for key, value in (("reset", "subtract"), ("fire_when", "ge"))]
    assert_same(read_network(mutated(valid_file, version_3(*explicit))), small_network())


@pytest.mark.parametrize("v_reset", [np.float16(0.5), np.array([0.5]), np.array([0.5, -2.0]), np.full((2, 4, 4), 3.0)],
                         ids=["float16 scalar", "shape (1,)", "per channel", "per neuron"])
def test_v_reset_is_any_neuron_parameter_of_any_sign_and_size(valid_file, v_reset):
    """A v_reset at or beyond a threshold is legal (the neuron fires again at its next comparison)."""
    path = mutated(valid_file, version_3(set_attr(f"{P}/c1", "reset", "value"), put(f"{P}/c1/v_reset", v_reset)))
    c1 = read_network(path).population("c1")
    expected = np.asarray(v_reset, np.float64)
    assert c1.reset == "value" and c1.v_reset.dtype == np.float64
    assert np.array_equal(c1.v_reset, expected.reshape(()) if expected.size == 1 else expected)


# -- hostile files: one per rule ---------------------------------------------------


def small_network() -> Network:
    """A valid network using every element kind, the base of every hostile file."""
    w = lambda *shape: ((np.arange(np.prod(shape)) % 5 - 2) / 4).reshape(shape)  # noqa: E731
    populations = (
        Population("in", "input", (1, 6, 6), 0),
        Population("c1", "if", (2, 4, 4), 1, theta_pos=np.array([1.0, 0.5]), theta_neg=np.array(-1.0)),
        Population("r", "relay", (2, 2, 2), 2),
        Population("a", "if", (2, 1, 1), 3, theta_pos=np.array(1.0)),
        Population("h", "bif", (4,), 4, coding="phase", phase_period=2, theta_pos=np.array(1.0)),
        Population("h2", "if", (4,), 5, theta_pos=np.full(4, 0.5)),
        Population("out", "readout", (3,), 6, bias=np.array([0.0, 0.25, 0.5])),
    )
    projections = (  # sorted by name, the order the reader checks them in
        Projection("conv", "conv2d", "in", "c1", weight=w(2, 1, 3, 3)),
        Projection("fc", "dense", "a", "h", weight=w(4, 2)),
        Projection("mp", "maxpool2d", "c1", "r", kernel=(2, 2), stride=(2, 2)),
        Projection("pool", "avgpool2d", "r", "a", kernel=(2, 2), stride=(2, 2)),
        Projection("skip", "identity", "h", "h2", scale=0.5),
        Projection("sp", "sparse", "h2", "out", indptr=np.array([0, 2, 3, 3, 5]),
                   indices=np.array([0, 2, 1, 0, 1]), weight=w(5)),
    )
    samples = Samples(inputs=(np.arange(72) / 128).reshape(2, 1, 6, 6).astype(np.float32), labels=np.array([0, 2]))
    ann = AnnInfo(macs=1000, accuracy=0.5, layer_macs={"conv": 288}, lambdas=np.array([1.0, 2.0]),
                  outputs=np.zeros((2, 3)))
    return Network(populations, projections, output="out", output_scale=np.array(2.0), ann=ann,
                   samples=samples, meta={"method": "rate-norm"}, producer="test")


def set_attr(h5path, name, value):
    def mutate(f):
        f[h5path].attrs[name] = value
    return mutate


def del_attr(h5path, name):
    def mutate(f):
        del f[h5path].attrs[name]
    return mutate




def add_group(h5path, **attrs):
    def mutate(f):
        f.create_group(h5path).attrs.update(attrs)
    return mutate


def each(*mutations):
    def mutate(f):
        for m in mutations:
            m(f)
    return mutate


def move(old, new):
    return lambda f: f.move(old, new)


def external_storage(f):
    raw = Path(f.filename).with_name("raw.bin")
    np.zeros(8, np.float32).tofile(raw)
    del f["/projections/fc/weight"]
    f.create_dataset("/projections/fc/weight", shape=(4, 2), dtype=np.float32, external=[(str(raw), 0, 32)])


def virtual_dataset(f):
    layout = h5py.VirtualLayout(shape=(4, 2), dtype=np.float32)
    layout[:] = h5py.VirtualSource("other.h5", "w", shape=(4, 2))
    del f["/projections/fc/weight"]
    f.create_virtual_dataset("/projections/fc/weight", layout)


def references(f):
    put("/projections/fc/weight", np.array([[f.ref] * 2] * 4, dtype=h5py.ref_dtype))(f)


def shift_orders_and_add_first_population(f):
    for name in f["/populations"]:
        f[f"/populations/{name}"].attrs["order"] += 1
    add_group("/populations/b", kind="if", shape=[1], order=0)(f)
    f["/populations/b/theta_pos"] = 1.0


def fc_weight_with(value):
    weight = np.ones((4, 2), np.float32)
    weight[1, 0] = value
    return put("/projections/fc/weight", weight)


P, Q = "/populations", "/projections"
RULES = [
    # root: format and version
    ("format missing", del_attr("/", "format"), "/", r"not an evsim file"),
    ("format other", set_attr("/", "format", "anndata"), "/", r"not an evsim file \(attribute format is 'anndata'"),
    ("version missing", del_attr("/", "format_version"), "/", r"missing attribute 'format_version'"),
    ("version not integer", set_attr("/", "format_version", 1.0), "/", r"'format_version' must be an integer"),
    ("version newer", set_attr("/", "format_version", FORMAT_VERSION + 1), "/",
     rf"format_version {FORMAT_VERSION + 1} is newer than this evsim reads \({FORMAT_VERSION}\); upgrade evsim"),
    ("version unknown", set_attr("/", "format_version", 0), "/", r"not a version that ever existed"),
    ("version a 1-element array", set_attr("/", "format_version", np.array([1], np.int64)), "/",
     r"'format_version' must be a scalar integer; found an array of shape \(1,\)"),
    ("unknown root attribute", set_attr("/", "creator", "x"), "/", r"unknown attribute 'creator'"),
    ("unknown root member", put("/extra", [1.0]), "/extra", r"unknown member"),
    ("attribute on a dataset", set_attr(f"{Q}/fc/weight", "units", "mV"), f"{Q}/fc/weight",
     r"unknown attribute 'units' \(allowed here: none\)"),
    # structure
    ("populations missing", delete(P), P, r"missing group"),
    ("populations not a group", each(delete(P), put(P, [1.0])), P, r"must be a group"),
    ("projections missing", delete(Q), Q, r"missing group"),
    ("member not a group", put(f"{Q}/x", [1.0]), f"{Q}/x", r"must be a group"),
    ("bad name", move(f"{Q}/fc", f"{Q}/f c"), f"{Q}/f c", r"names must match"),
    # links and references
    ("external link", put(f"{Q}/fc/weight", h5py.ExternalLink("other.h5", "/w")), f"{Q}/fc/weight",
     r"external link to other.h5:/w; links or references leaving the file"),
    ("external link group", put("/samples", h5py.ExternalLink("other.h5", "/s")), "/samples",
     r"links or references leaving the file"),
    ("soft link", put(f"{Q}/fc/weight", h5py.SoftLink(f"{Q}/conv/weight")), f"{Q}/fc/weight",
     r"soft links are not allowed"),
    ("external storage", external_storage, f"{Q}/fc/weight", r"external storage: links or references leaving"),
    ("virtual dataset", virtual_dataset, f"{Q}/fc/weight", r"virtual dataset: links or references leaving"),
    ("object references", references, f"{Q}/fc/weight", r"references: links or references leaving the file"),
    # populations
    ("kind missing", del_attr(f"{P}/h2", "kind"), f"{P}/h2", r"missing attribute 'kind'"),
    ("unknown population kind", set_attr(f"{P}/h2", "kind", "lif"), f"{P}/h2", r"unknown kind 'lif'"),
    ("unknown coding", set_attr(f"{P}/h2", "coding", "burst"), f"{P}/h2", r"unknown coding 'burst'"),
    ("unknown encoding", set_attr(f"{P}/in", "encoding", "poisson"), f"{P}/in", r"unknown encoding 'poisson'"),
    ("unknown mode", set_attr(f"{P}/out", "mode", "rates"), f"{P}/out", r"unknown mode 'rates'"),
    ("unknown population attribute", set_attr(f"{P}/c1", "max_coef", 2), f"{P}/c1", r"unknown attribute 'max_coef'"),
    ("mode on an if population", set_attr(f"{P}/c1", "mode", "spikes"), f"{P}/c1", r"unknown attribute 'mode'"),
    ("phase_period 0", set_attr(f"{P}/h", "phase_period", 0), f"{P}/h", r"'phase_period' is \[0\]; .* >= 1"),
    ("phase_period not integer", set_attr(f"{P}/h", "phase_period", 2.0), f"{P}/h",
     r"'phase_period' must be an integer"),
    ("bif without phase_period", del_attr(f"{P}/h", "phase_period"), f"{P}/h",
     r"missing attribute 'phase_period' \(required for .*bif"),
    ("phase-coded if without phase_period", each(set_attr(f"{P}/h2", "coding", "phase"), del_attr(f"{P}/h2", "phase_period")),
     f"{P}/h2", r"missing attribute 'phase_period' \(required for a phase-coded population"),
    ("phase-encoding input without phase_period", each(set_attr(f"{P}/in", "encoding", "phase"),
                                                        del_attr(f"{P}/in", "phase_period")),
     f"{P}/in", r"missing attribute 'phase_period' \(required for .*phase-encoding input"),
    ("calibration_range not a pair", set_attr("/meta", "conversion", '{"calibration_range": [0, 1, 2]}'), "/meta",
     r"calibration_range must be \[min, max\]"),
    ("calibration_range reversed", set_attr("/meta", "conversion", '{"calibration_range": [1, 0]}'), "/meta",
     r"min <= max; found \[1, 0\]"),
    ("max_coeff negative", set_attr(f"{P}/h", "max_coeff", -1), f"{P}/h", r"'max_coeff' is \[-1\]; .* >= 0"),
    ("shape rank 2", set_attr(f"{P}/c1", "shape", [2, 16]), f"{P}/c1",
     r"'shape' must be an integer array of length 1 or 3"),
    ("shape entry 0", set_attr(f"{P}/c1", "shape", [0, 4, 4]), f"{P}/c1", r"'shape' is \[0, 4, 4\]; .* >= 1"),
    ("shape not integer", set_attr(f"{P}/c1", "shape", [2.0, 4.0, 4.0]), f"{P}/c1",
     r"'shape' must be an integer array"),
    ("order missing", del_attr(f"{P}/c1", "order"), f"{P}/c1", r"missing attribute 'order'"),
    ("order not integer", set_attr(f"{P}/c1", "order", 1.5), f"{P}/c1", r"'order' must be an integer"),
    ("duplicate order", set_attr(f"{P}/h2", "order", 4), P, r"order 4 is used by h, h2; orders must be unique"),
    ("order gap", set_attr(f"{P}/out", "order", 9), P, r"orders must be 0..6 without gaps"),
    ("non-topological order", each(set_attr(f"{P}/h", "order", 5), set_attr(f"{P}/h2", "order", 4)), f"{Q}/skip",
     r"goes from h \(order 5\) to h2 \(order 4\); orders must be topological"),
    ("theta_pos missing", delete(f"{P}/h2/theta_pos"), f"{P}/h2/theta_pos", r"missing dataset \(required"),
    ("theta_pos zero", put(f"{P}/h2/theta_pos", [0.5, 0.0, 0.5, 0.5]), f"{P}/h2/theta_pos",
     r"must be > 0 everywhere; found 0.0 at index \[1\]"),
    ("theta_pos negative", put(f"{P}/h2/theta_pos", -1.0), f"{P}/h2/theta_pos", r"must be > 0 everywhere; found -1.0"),
    ("theta_neg zero", put(f"{P}/c1/theta_neg", 0.0), f"{P}/c1/theta_neg", r"must be < 0 everywhere; found 0.0"),
    ("theta_neg positive", put(f"{P}/c1/theta_neg", [0.5, -1.0]), f"{P}/c1/theta_neg", r"must be < 0 everywhere"),
    ("parameter shape", put(f"{P}/c1/theta_pos", [1.0, 1.0, 1.0]), f"{P}/c1/theta_pos",
     r"shape \(3,\) fits neither a scalar, a per-channel \[C\] nor the population's shape \[2, 4, 4\]"),
    ("parameter nan", put(f"{P}/h2/v_init", [0.0, np.nan, 0.0, 0.0]), f"{P}/h2/v_init", r"must be finite; found nan"),
    ("parameter integers", put(f"{P}/h2/theta_pos", np.ones(4, np.int64)), f"{P}/h2/theta_pos",
     r"must be float16, float32 or float64, not int64"),
    ("parameter is a group", each(delete(f"{P}/h2/bias"), add_group(f"{P}/h2/bias")), f"{P}/h2/bias",
     r"must be a dataset"),
    ("input with thresholds", put(f"{P}/in/theta_pos", 1.0), f"{P}/in/theta_pos", r"unknown member"),
    ("spikes readout without theta_pos", set_attr(f"{P}/out", "mode", "spikes"), f"{P}/out/theta_pos",
     r"missing dataset"),
    ("two inputs", add_group(f"{P}/in2", kind="input", shape=[1], order=7), P,
     r"exactly one input population; found 2 \(in, in2\)"),
    ("no input", each(set_attr(f"{P}/in", "kind", "if"), del_attr(f"{P}/in", "encoding"),
                      put(f"{P}/in/theta_pos", 1.0)), P,
     r"exactly one input population; found 0"),
    ("input not first", shift_orders_and_add_first_population, f"{P}/in",
     r"input population must have order 0, not 1"),
    ("relay fed by an avgpool", set_attr(f"{Q}/mp", "kind", "avgpool2d"), f"{P}/r",
     r"a relay has exactly one incoming projection, a maxpool2d; found mp \(avgpool2d\)"),
    ("maxpool into an if", each(set_attr(f"{P}/r", "kind", "if"), put(f"{P}/r/theta_pos", 1.0)), f"{Q}/mp",
     r"a maxpool2d must target a relay; r is if"),
    ("maxpool scale", set_attr(f"{Q}/mp", "scale", 2.0), f"{Q}/mp",
     r"scale is 2.0; it must be > 0, and 1 for a maxpool2d"),
    # projections
    ("unknown projection kind", set_attr(f"{Q}/fc", "kind", "lstm"), f"{Q}/fc", r"unknown kind 'lstm'"),
    ("unknown projection attribute", set_attr(f"{Q}/fc", "stride", 2), f"{Q}/fc", r"unknown attribute 'stride'"),
    ("source not a population", set_attr(f"{Q}/fc", "source", "nope"), f"{Q}/fc",
     r"source 'nope' is not a population"),
    ("target missing", del_attr(f"{Q}/fc", "target"), f"{Q}/fc", r"missing attribute 'target'"),
    ("scale zero", set_attr(f"{Q}/skip", "scale", 0.0), f"{Q}/skip", r"scale is 0.0; it must be > 0"),
    ("scale nan", set_attr(f"{Q}/skip", "scale", np.nan), f"{Q}/skip", r"'scale' is nan; it must be finite"),
    ("scale text", set_attr(f"{Q}/skip", "scale", "0.5"), f"{Q}/skip", r"'scale' must be a real number"),
    ("missing weight", delete(f"{Q}/fc/weight"), f"{Q}/fc/weight", r"missing dataset"),
    ("nan weight", fc_weight_with(np.nan), f"{Q}/fc/weight", r"must be finite; found nan at index \[1, 0\]"),
    ("inf weight", fc_weight_with(-np.inf), f"{Q}/fc/weight", r"must be finite; found -inf at index \[1, 0\]"),
    ("string weights", put(f"{Q}/fc/weight", np.full((4, 2), b"w")), f"{Q}/fc/weight",
     r"must be float16, float32 or float64, not \|S1"),
    ("dense weight rank", put(f"{Q}/fc/weight", np.ones((4, 2, 1))), f"{Q}/fc/weight",
     r"shape \(4, 2, 1\) does not match \[target size 4, source size 2\]"),
    ("dense weight shape", put(f"{Q}/fc/weight", np.ones((4, 3))), f"{Q}/fc/weight",
     r"shape \(4, 3\) does not match \[target size 4, source size 2\]"),
    ("conv output shape", set_attr(f"{Q}/conv", "stride", [2, 2]), f"{Q}/conv",
     r"implies target shape \[2, 2, 2\] from source shape \[1, 6, 6\], but c1 has shape \[2, 4, 4\]"),
    ("conv output channels", put(f"{Q}/conv/weight", np.ones((3, 1, 3, 3))), f"{Q}/conv",
     r"implies target shape \[3, 4, 4\]"),
    ("conv weight rank", put(f"{Q}/conv/weight", np.ones((2, 1, 9))), f"{Q}/conv/weight",
     r"is not \[Cout, Cin/groups, kh, kw\]"),
    ("conv groups", set_attr(f"{Q}/conv", "groups", 2), f"{Q}/conv/weight", r"does not fit source channels 1"),
    ("conv padding negative", set_attr(f"{Q}/conv", "padding", [-1, 0]), f"{Q}/conv", r"'padding' is \[-1, 0\]"),
    ("conv dilation 0", set_attr(f"{Q}/conv", "dilation", 0), f"{Q}/conv", r"'dilation' is \[0\]; .* >= 1"),
    ("conv stride triple", set_attr(f"{Q}/conv", "stride", [1, 1, 1]), f"{Q}/conv",
     r"'stride' must be an integer or a pair of integers"),
    ("conv on vectors", set_attr(f"{Q}/conv", "target", "h"), f"{Q}/conv", r"conv2d needs \[C, H, W\] populations"),
    ("pool kernel missing", del_attr(f"{Q}/pool", "kernel"), f"{Q}/pool", r"missing attribute 'kernel'"),
    ("pool stride 0", set_attr(f"{Q}/pool", "stride", [0, 2]), f"{Q}/pool", r"'stride' is \[0, 2\]"),
    ("pool padding past half kernel", set_attr(f"{Q}/pool", "padding", [2, 0]), f"{Q}/pool",
     r"padding \[2, 0\] is more than half the kernel \[2, 2\]"),
    ("pool output shape", set_attr(f"{Q}/pool", "padding", 1), f"{Q}/pool", r"implies target shape \[2, 2, 2\]"),
    ("identity shapes", each(set_attr(f"{P}/h2", "shape", [5]), put(f"{P}/h2/theta_pos", 0.5)), f"{Q}/skip",
     r"implies target shape \[4\] from source shape \[4\], but h2 has shape \[5\]"),
    ("sparse index out of range", put(f"{Q}/sp/indices", [0, 2, 3, 0, 1]), f"{Q}/sp/indices",
     r"must be in \[0, 3\); found 3 at index \[2\]"),
    ("sparse index negative", put(f"{Q}/sp/indices", [0, 2, -1, 0, 1]), f"{Q}/sp/indices", r"found -1 at index \[2\]"),
    ("sparse indptr decreasing", put(f"{Q}/sp/indptr", [0, 3, 2, 3, 5]), f"{Q}/sp/indptr",
     r"must be non-decreasing; entry 2 \(2\) is less than entry 1 \(3\)"),
    ("sparse indptr end", put(f"{Q}/sp/indptr", [0, 2, 3, 3, 4]), f"{Q}/sp/indptr", r"end at nnz = 5; found 0 .. 4"),
    ("sparse indptr length", put(f"{Q}/sp/indptr", [0, 2, 5]), f"{Q}/sp/indptr", r"\[source size \+ 1 = 5\]"),
    ("sparse float indices", put(f"{Q}/sp/indices", [0.0, 2.0, 1.0, 0.0, 1.0]), f"{Q}/sp/indices",
     r"must be an integer dataset, not float64"),
    ("sparse weight length", put(f"{Q}/sp/weight", np.ones(4)), f"{Q}/sp/weight", r"does not match \[nnz 5"),
    # readout, samples, ann, meta
    ("readout names no population", set_attr("/readout", "population", "nope"), "/readout",
     r"population 'nope' does not exist"),
    ("output ambiguous", each(delete("/readout"), add_group(f"{P}/out2", kind="readout", shape=[1], order=7)),
     "/readout", r"cannot tell the output population"),
    ("output_scale zero", put("/readout/output_scale", 0.0), "/readout/output_scale", r"must be > 0 everywhere"),
    ("output_scale shape", put("/readout/output_scale", [1.0, 2.0]), "/readout/output_scale", r"fits neither"),
    ("samples shape", put("/samples/inputs", np.zeros((2, 36), np.float32)), "/samples/inputs",
     r"shape \(2, 36\) is not \[n >= 1, \*input shape \[1, 6, 6\]\]"),
    ("samples nan", put("/samples/inputs", np.full((2, 1, 6, 6), np.nan, np.float32)), "/samples/inputs",
     r"must be finite"),
    ("labels float", put("/samples/labels", [0.0, 1.0]), "/samples/labels", r"must be an integer dataset"),
    ("labels out of range", put("/samples/labels", [0, 3]), "/samples/labels", r"must be in \[0, 3\); found 3"),
    ("labels length", put("/samples/labels", [0, 1, 2]), "/samples/labels", r"shape \(3,\) is not \[n = 2\]"),
    ("inputs missing", delete("/samples/inputs"), "/samples/inputs", r"missing dataset"),
    ("ann outputs shape", put("/ann/outputs", np.zeros((2, 4))), "/ann/outputs",
     r"shape \(2, 4\) is not \[n samples, output size\] = \[2, 3\]"),
    ("ann outputs without samples", delete("/samples"), "/ann/outputs", r"the file has no /samples"),
    ("ann accuracy percent", set_attr("/ann", "accuracy", 75.0), "/ann", r"accuracy 75.0 is not a fraction"),
    ("ann macs negative", set_attr("/ann", "macs", -1), "/ann", r"'macs' is \[-1\]"),
    ("ann layer_macs not JSON", set_attr("/ann", "layer_macs", "{conv: 1}"), "/ann", r"'layer_macs' is not valid JSON"),
    ("ann layer_macs values", set_attr("/ann", "layer_macs", '{"conv": 1.5}'), "/ann",
     r"layer_macs must map layer names to integers >= 0"),
    ("ann lambda rank", put("/ann/lambda", np.ones((2, 2))), "/ann/lambda", r"is not \[layers\]"),
    ("meta not JSON", set_attr("/meta", "conversion", "rate-norm"), "/meta", r"'conversion' is not valid JSON"),
    ("meta not an object", set_attr("/meta", "conversion", "[1, 2]"), "/meta", r"must be a JSON object, not list"),
    ("meta text not a string", set_attr("/meta", "conversion", 3), "/meta", r"'conversion' must be a string"),
    # version 2: a version-2 attribute in a version-1 file (the base file is version 1), even at its default
    ("rank in a version-1 file", set_attr(f"{Q}/mp", "rank", "value"), f"{Q}/mp",
     r"^attribute 'rank' is a version-2 attribute; this file declares format_version 1$"),
    ("drive in a version-1 file", set_attr(f"{P}/h", "drive", "gated"), f"{P}/h",
     r"^attribute 'drive' is a version-2 attribute; this file declares format_version 1$"),
    ("bias_onset in a version-1 file", set_attr(f"{P}/c1", "bias_onset", 0), f"{P}/c1",
     r"^attribute 'bias_onset' is a version-2 attribute; this file declares format_version 1$"),
    ("rank on a spikes readout in a version-1 file", each(spikes_readout(f"{P}/out"), set_attr(f"{P}/out", "rank", "value")),
     f"{P}/out", r"^attribute 'rank' is a version-2 attribute; this file declares format_version 1$"),
    # version 2: wrong type
    ("bias_onset real", version_2(set_attr(f"{P}/c1", "bias_onset", 1.5)), f"{P}/c1",
     r"attribute 'bias_onset' must be an integer; found float64 of shape \(\)"),
    ("bias_onset integral real", version_2(set_attr(f"{P}/c1", "bias_onset", 2.0)), f"{P}/c1",
     r"attribute 'bias_onset' must be an integer; found float64"),
    ("bias_onset string", version_2(set_attr(f"{P}/out", "bias_onset", "3")), f"{P}/out",
     r"attribute 'bias_onset' must be an integer; found string of shape \(\)"),
    ("bias_onset array", version_2(set_attr(f"{P}/h", "bias_onset", [1, 2])), f"{P}/h",
     r"attribute 'bias_onset' must be an integer; found int64 of shape \(2,\)"),
    ("bias_onset negative", version_2(set_attr(f"{P}/h", "bias_onset", -1)), f"{P}/h",
     r"attribute 'bias_onset' is \[-1\]; every entry must be >= 0"),
    ("rank number", version_2(set_attr(f"{Q}/mp", "rank", 1)), f"{Q}/mp", r"attribute 'rank' must be a string; found int64"),
    ("drive array", version_2(set_attr(f"{P}/h", "drive", ["split", "gated"])), f"{P}/h",
     r"attribute 'drive' must be a string; found string of shape \(2,\)"),
    # version 2: unknown value (strings are case-sensitive)
    ("rank capitalised", version_2(set_attr(f"{Q}/mp", "rank", "Value")), f"{Q}/mp",
     r"^unknown rank 'Value' \(version 2 knows mass, value; strings are case-sensitive\)$"),
    ("rank unknown", version_2(set_attr(f"{Q}/mp", "rank", "rate")), f"{Q}/mp",
     r"^unknown rank 'rate' \(version 2 knows mass, value\)$"),
    ("readout rank unknown", version_2(spikes_readout(f"{P}/out"), set_attr(f"{P}/out", "rank", "max")), f"{P}/out",
     r"^unknown rank 'max' \(version 2 knows mass, value\)$"),
    ("drive unknown", version_2(set_attr(f"{P}/h", "drive", "both")), f"{P}/h",
     r"^unknown drive 'both' \(version 2 knows split, gated\)$"),
    ("drive capitalised", version_2(set_attr(f"{P}/h", "drive", "GATED")), f"{P}/h", r"strings are case-sensitive"),
    # version 2: where the format does not define the attribute (its condition, or another kind)
    ("rank on a potential readout", version_2(set_attr(f"{P}/out", "rank", "value")), f"{P}/out",
     r"^attribute 'rank' is defined only for a readout in spikes mode, which out is not$"),
    ("rank mass on a potential readout", version_2(set_attr(f"{P}/out", "rank", "mass")), f"{P}/out",
     r"^attribute 'rank' is defined only for a readout in spikes mode"),
    ("rank on a readout without mode", version_2(del_attr(f"{P}/out", "mode"), set_attr(f"{P}/out", "rank", "value")),
     f"{P}/out", r"^attribute 'rank' is defined only for a readout in spikes mode"),
    ("rank on a dense projection", version_2(set_attr(f"{Q}/fc", "rank", "value")), f"{Q}/fc",
     r"^unknown attribute 'rank' \(allowed here: kind, source, target, scale\); rank is an attribute of readout "
     r"populations and maxpool2d projections, since format version 2$"),
    ("rank on an avgpool2d", version_2(set_attr(f"{Q}/pool", "rank", "value")), f"{Q}/pool", r"unknown attribute 'rank'"),
    ("rank on a bif population", version_2(set_attr(f"{P}/h", "rank", "value")), f"{P}/h", r"unknown attribute 'rank'"),
    ("drive on an if population", version_2(set_attr(f"{P}/c1", "drive", "gated")), f"{P}/c1",
     r"^unknown attribute 'drive' \(allowed here: kind, shape, order, coding, phase_period, max_coeff, bias_onset\); "
     r"drive is an attribute of bif populations, since format version 2$"),
    ("drive on a readout", version_2(set_attr(f"{P}/out", "drive", "split")), f"{P}/out", r"unknown attribute 'drive'"),
    ("bias_onset on an input", version_2(set_attr(f"{P}/in", "bias_onset", 1)), f"{P}/in",
     r"^unknown attribute 'bias_onset' \(allowed here: kind, shape, order, coding, phase_period, encoding\); "
     r"bias_onset is an attribute of if, bif and readout populations, since format version 2$"),
    ("bias_onset on a relay", version_2(set_attr(f"{P}/r", "bias_onset", 0)), f"{P}/r", r"unknown attribute 'bias_onset'"),
    ("bias_onset on a projection", version_2(set_attr(f"{Q}/fc", "bias_onset", 0)), f"{Q}/fc",
     r"unknown attribute 'bias_onset'"),
    ("version-2 attribute misspelled", version_2(set_attr(f"{P}/c1", "bias_onest", 1)), f"{P}/c1",
     r"^unknown attribute 'bias_onest' \(allowed here: [a-z_, ]*\)$"),
    # version 3: a version-3 attribute or dataset in a version-1 or version-2 file, even at its default
    ("reset in a version-1 file", set_attr(f"{P}/c1", "reset", "subtract"), f"{P}/c1",
     r"^attribute 'reset' is a version-3 attribute; this file declares format_version 1$"),
    ("fire_when in a version-2 file", version_2(set_attr(f"{P}/a", "fire_when", "gt")), f"{P}/a",
     r"^attribute 'fire_when' is a version-3 attribute; this file declares format_version 2$"),
    ("v_reset in a version-2 file", version_2(put(f"{P}/h2/v_reset", 0.0)), f"{P}/h2/v_reset",
     r"^dataset 'v_reset' is a version-3 dataset; this file declares format_version 2$"),
    ("v_reset in a version-1 file", put(f"{P}/h2/v_reset", 0.5), f"{P}/h2/v_reset",
     r"^dataset 'v_reset' is a version-3 dataset; this file declares format_version 1$"),
    ("v_reset and reset in a version-1 file", each(set_attr(f"{P}/h2", "reset", "value"), put(f"{P}/h2/v_reset", 0.5)),
     f"{P}/h2", r"^attribute 'reset' is a version-3 attribute; this file declares format_version 1$"),
    # version 3: wrong type, unknown value
    ("reset number", version_3(set_attr(f"{P}/c1", "reset", 0)), f"{P}/c1", r"attribute 'reset' must be a string; found int64"),
    ("reset unknown", version_3(set_attr(f"{P}/c1", "reset", "zero")), f"{P}/c1",
     r"^unknown reset 'zero' \(version 3 knows subtract, value\)$"),
    ("reset capitalised", version_3(set_attr(f"{P}/c1", "reset", "Value")), f"{P}/c1", r"strings are case-sensitive"),
    ("fire_when unknown", version_3(set_attr(f"{P}/c1", "fire_when", ">")), f"{P}/c1",
     r"^unknown fire_when '>' \(version 3 knows ge, gt\)$"),
    ("fire_when array", version_3(set_attr(f"{P}/c1", "fire_when", ["ge", "gt"])), f"{P}/c1",
     r"attribute 'fire_when' must be a string"),
    ("v_reset integers", version_3(set_attr(f"{P}/c1", "reset", "value"), put(f"{P}/c1/v_reset", np.zeros(2, np.int32))),
     f"{P}/c1/v_reset", r"must be float16, float32 or float64, not int32"),
    ("v_reset nan", version_3(set_attr(f"{P}/c1", "reset", "value"), put(f"{P}/c1/v_reset", [0.0, np.inf])),
     f"{P}/c1/v_reset", r"must be finite; found inf at index \[1\]"),
    ("v_reset shape", version_3(set_attr(f"{P}/c1", "reset", "value"), put(f"{P}/c1/v_reset", [0.0, 0.0, 0.0])),
     f"{P}/c1/v_reset", r"shape \(3,\) fits neither a scalar, a per-channel \[C\] nor the population's shape \[2, 4, 4\]"),
    ("v_reset a group", version_3(set_attr(f"{P}/c1", "reset", "value"), add_group(f"{P}/c1/v_reset")), f"{P}/c1/v_reset",
     r"must be a dataset"),
    # version 3: where the format does not define it (another kind, or v_reset without reset = value)
    ("v_reset without reset", version_3(put(f"{P}/c1/v_reset", 0.5)), f"{P}/c1/v_reset",
     r"^dataset 'v_reset' is defined only for an if population with reset = value, which c1 is not$"),
    ("v_reset with reset subtract", version_3(set_attr(f"{P}/c1", "reset", "subtract"), put(f"{P}/c1/v_reset", 0.5)),
     f"{P}/c1/v_reset", r"^dataset 'v_reset' is defined only for an if population with reset = value"),
    ("reset on a bif", version_3(set_attr(f"{P}/h", "reset", "value")), f"{P}/h",
     r"^unknown attribute 'reset' \(allowed here: [a-z_, ]*\); reset is an attribute of if populations, since format "
     r"version 3$"),
    ("fire_when on a readout", version_3(set_attr(f"{P}/out", "fire_when", "gt")), f"{P}/out",
     r"^unknown attribute 'fire_when' .*fire_when is an attribute of if populations, since format version 3$"),
    ("fire_when on a projection", version_3(set_attr(f"{Q}/fc", "fire_when", "gt")), f"{Q}/fc", r"unknown attribute 'fire_when'"),
    ("v_reset on a bif", version_3(put(f"{P}/h/v_reset", 0.0)), f"{P}/h/v_reset", r"unknown member \(allowed here: theta_pos, "
     r"theta_neg, v_init, bias\)"),
    ("v_reset on a readout", version_3(put(f"{P}/out/v_reset", 0.0)), f"{P}/out/v_reset", r"unknown member"),
    ("v_reset on an input", version_3(put(f"{P}/in/v_reset", 0.0)), f"{P}/in/v_reset", r"unknown member \(allowed here: none\)"),
    ("reset on an input", version_3(set_attr(f"{P}/in", "reset", "value")), f"{P}/in", r"unknown attribute 'reset'"),
    ("version-3 dataset misspelled", version_3(set_attr(f"{P}/c1", "reset", "value"), put(f"{P}/c1/vreset", 0.0)),
     f"{P}/c1/vreset", r"unknown member \(allowed here: theta_pos, theta_neg, v_init, bias, v_reset\)"),
]


@pytest.fixture(scope="module")
def written_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("written") / "net.h5"
    write_network(path, small_network())
    return path


@pytest.fixture
def valid_file(written_file, tmp_path) -> Path:
    """A fresh copy of small_network() as write_network wrote it, to mutate."""
    path = tmp_path / "net.h5"
    shutil.copyfile(written_file, path)
    return path


def mutated(path: Path, mutate) -> Path:
    with h5py.File(path, "r+") as f:
        mutate(f)
    return path


def read_error(path: Path, **kwargs) -> FormatError:
    with pytest.raises(FormatError) as info:
        read_network(path, **kwargs)
    err = info.value
    assert err.file == str(path)
    assert str(err) == f"{path}: {err.h5path}: {err.problem}"  # file, HDF5 path, problem
    return err


def test_base_file_is_valid(valid_file):
    assert_same(read_network(valid_file), small_network())


@pytest.mark.parametrize("mutate, h5path, problem", [pytest.param(*r[1:], id=r[0]) for r in RULES])
def test_rule(valid_file, mutate, h5path, problem):
    err = read_error(mutated(valid_file, mutate))
    assert err.h5path == h5path
    assert re.search(problem, err.problem), err.problem


def test_not_hdf5(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("population,kind\nin,input\n")
    err = read_error(path)
    assert err.h5path == "/" and "not an HDF5 file" in err.problem


def test_no_such_file(tmp_path):
    assert read_error(tmp_path / "absent.h5").problem == "no such file"


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file(valid_file, keep):
    data = valid_file.read_bytes()
    valid_file.write_bytes(data[: int(len(data) * keep)])
    read_error(valid_file)  # wherever it breaks, it names the file and a path


def test_unexpected_exception_names_the_path(valid_file, monkeypatch):
    def broken(self, key):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(h5py.Dataset, "__getitem__", broken)
    err = read_error(valid_file)
    assert err.h5path == "/populations/a/bias" and "RuntimeError: disk on fire" in err.problem


def peak_allocation(call) -> int:
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_shape_of_2_40_neurons_fails_fast(valid_file):
    mutated(valid_file, set_attr("/populations/c1", "shape", [2**14, 2**13, 2**13]))
    errors = []
    peak = peak_allocation(lambda: errors.append(read_error(valid_file)))
    assert errors[0].h5path == "/populations/c1"
    assert re.search(r"has 1099511627776 neurons, past the limit of 268435456 per population", errors[0].problem)
    assert peak < 50 * 2**20


def test_sparse_claiming_2_40_entries_fails_fast(valid_file):
    def huge(f):  # chunked and never written: a tiny file claiming a huge dataset
        for name in ("indices", "weight"):
            del f[f"/projections/sp/{name}"]
            f.create_dataset(f"/projections/sp/{name}", shape=(2**40,), dtype=np.float32, chunks=(1024,))
    mutated(valid_file, huge)
    errors = []
    peak = peak_allocation(lambda: errors.append(read_error(valid_file)))
    assert errors[0].h5path == "/projections/sp/indices"
    assert "past the limit of 2147483648 per projection" in errors[0].problem
    assert peak < 50 * 2**20


@pytest.mark.parametrize("limits, h5path, problem", [
    (FormatLimits(max_population_size=35), "/populations/in", r"past the limit of 35 per population"),
    (FormatLimits(max_total_neurons=60), "/populations/in", r"brings the network to 78 neurons, past the limit of 60"),
    (FormatLimits(max_projection_elements=17), "/projections/conv/weight", r"18 elements, past the limit of 17"),
    (FormatLimits(max_total_elements=40), "/projections/fc/weight", r"stored elements to 47, past the limit of 40"),
])
def test_limits(valid_file, limits, h5path, problem):
    err = read_error(valid_file, limits=limits)
    assert err.h5path == h5path and re.search(problem, err.problem), err
