"""Hostile result files (docs/result_format.md): each rule broken once, through `load_result`, `evsim plot` and
`evsim compare`; each gives one error naming the file, the HDF5 path and the problem, never a traceback."""
import json
import re
import shutil
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hdf5_edits import delete, put
from click.testing import CliRunner

from evsim.cli.main import main
from evsim.result import load_result
from evsim.result_file import RESULT_VERSION, ResultFormatError
from evsim.simulate import simulate
from evsim.weights_io import read_network


@pytest.fixture(scope="module")
def saved(conformance_dir, tmp_path_factory) -> Path:
    """A result with every optional part recorded (labels, ANN outputs, traces, full counts, spike trains)."""
    network = read_network(conformance_dir / "later_bsnn.h5")
    result = simulate(network, timesteps=6, record_spikes=True, record_trace=True, record_counts=True,
                      ann_outputs=np.ones((2, 10)))
    result.manifest = {"network_sha256": "x", "timesteps": 6}
    path = tmp_path_factory.mktemp("saved") / "base.h5"
    result.save(path)
    return path


@pytest.fixture
def result_file(saved, tmp_path) -> Path:
    path = tmp_path / "shared.h5"
    shutil.copyfile(saved, path)
    return path


def fields_with(**changes):
    def mutate(f):
        fields = json.loads(f.attrs["fields"])
        for name, value in changes.items():
            if value is DROP:
                fields.pop(name)
            else:
                fields[name] = value
        f.attrs["fields"] = json.dumps(fields)
    return mutate


DROP = object()


def set_attr(name, value):
    def mutate(f):
        f.attrs[name] = value
    return mutate


def del_attr(name):
    def mutate(f):
        del f.attrs[name]
    return mutate




def transformed(h5path, change):
    """Replace a dataset by a function of its value."""
    def mutate(f):
        value = f[h5path][()]
        del f[h5path]
        f[h5path] = change(value)
    return mutate


def each(*mutations):
    def mutate(f):
        for m in mutations:
            m(f)
    return mutate


def with_negative_entry(value):
    value = value.copy()
    value.flat[3] = -1
    return value


def external_storage(f):
    raw = Path(f.filename).with_name("raw.bin")
    shape = f["readout_v"].shape
    np.zeros(shape, np.float64).tofile(raw)
    del f["readout_v"]
    f.create_dataset("readout_v", shape=shape, dtype=np.float64, external=[(str(raw), 0, 8 * int(np.prod(shape)))])


def huge_spike_train(f):
    """Chunked and never written: a tiny file claiming a 2^40-entry dataset, of consistent shape."""
    fields_with(population_sizes=DROP)(f)
    pop = next(iter(f["spikes"]))
    tag = next(iter(f["spikes"][pop]))
    for name in ("coef", "value"):
        del f[f"spikes/{pop}/{tag}/{name}"]
        f.create_dataset(f"spikes/{pop}/{tag}/{name}", shape=(2, 6, 2**37), dtype=np.int64 if name == "coef" else np.float64,
                         chunks=(1, 1, 1024))


RULES = [
    # root
    ("format other", set_attr("format", "evsim"), "/", r"not an evsim result file \(attribute format is 'evsim'"),
    ("version missing", del_attr("format_version"), "/", r"missing attribute 'format_version'"),
    ("version a 1-element array", set_attr("format_version", np.array([RESULT_VERSION])), "/",
     r"'format_version' must be a scalar integer"),
    ("version unknown", set_attr("format_version", 1), "/", r"result format version 1 is not one this evsim reads"),
    ("version newer", set_attr("format_version", RESULT_VERSION + 1), "/", rf"version {RESULT_VERSION + 1} is not one"),
    ("unknown root attribute", set_attr("creator", "me"), "/", r"unknown attribute 'creator'"),
    ("unknown member", put("extra", np.zeros(3)), "/extra", r"unknown member"),
    # the fields JSON
    ("fields missing", del_attr("fields"), "/", r"missing attribute 'fields'"),
    ("fields not JSON", set_attr("fields", "{populations: ["), "/", r"'fields' is not valid JSON"),
    ("fields a list", set_attr("fields", "[1, 2]"), "/", r"'fields' must be a JSON object, not list"),
    ("fields unknown entry", fields_with(colour="red"), "/", r"unknown entry 'colour'"),
    ("fields missing entry", fields_with(timesteps=DROP), "/", r"missing entry 'timesteps'"),
    ("timesteps not an integer", fields_with(timesteps="6"), "/", r"timesteps must be an integer >= 1; found \"6\""),
    ("encoder unknown", fields_with(encoder="gaussian"), "/", r"encoder must be one of analog, bernoulli, phase"),
    ("populations not names", fields_with(populations=[1, 2]), "/", r"populations must be a list of population names"),
    ("kinds of another length", fields_with(population_kinds=["input"]), "/", r"population_kinds has 1 entries for"),
    ("population list shorter than the counts", lambda f: each(
        fields_with(populations=json.loads(f.attrs["fields"])["populations"][:-1],
                    population_kinds=json.loads(f.attrs["fields"])["population_kinds"][:-1],
                    population_sizes=json.loads(f.attrs["fields"])["population_sizes"][:-1],
                    population_units=json.loads(f.attrs["fields"])["population_units"][:-1],
                    population_biased=json.loads(f.attrs["fields"])["population_biased"][:-1],
                    sin_populations=[], projection_targets=DROP, projection_sources=DROP))(f),
     "/pop_counts_per_step", r"shape \(6, \d+, 10\) is not \[T = 6, P = \d+, C = 10\]"),
    ("sin population unknown", fields_with(sin_populations=["nobody"]), "/", r"sin_populations names nobody"),
    ("units of another length", fields_with(population_units=[1]), "/", r"population_units has 1 entries for"),
    ("units not 1 or 2", lambda f: each(fields_with(population_units=[3] * len(json.loads(f.attrs["fields"])["populations"])))(f),
     "/", r"population_units must be a list of 1 \(one unit per neuron\) or 2"),
    ("biased beyond the size", lambda f: each(fields_with(population_biased=[
        n + 1 for n in json.loads(f.attrs["fields"])["population_sizes"]]))(f), "/", r"population_biased counts more biased"),
    ("source unknown", lambda f: each(fields_with(projection_sources=[
        "nobody"] * len(json.loads(f.attrs["fields"])["projections"])))(f), "/", r"projection_sources names nobody"),
    ("ann accuracy NaN", fields_with(ann_accuracy=float("nan")), "/", r"ann_accuracy must be a fraction in \[0, 1\]"),
    ("manifest in a version-2 file", set_attr("format_version", 2), "/",
     r"unknown entry '(manifest|projection_targets)' \(a version-3 field\)"),
    # sizes
    ("pred missing", delete("pred"), "/pred", r"missing dataset"),
    ("pred rank 1", transformed("pred", lambda v: v[:, 0]), "/pred", r"shape \(2,\) is not \[n, T\]"),
    ("pred float with NaN", transformed("pred", lambda v: np.full(v.shape, np.nan)), "/pred",
     r"must be an integer dataset, not float64"),
    ("pred out of the class range", transformed("pred", lambda v: v + 10), "/pred", r"must be in \[0, 10\); found 1\d"),
    ("timesteps disagree with pred", fields_with(timesteps=7), "/pred", r"has 6 steps; attribute 'fields' says timesteps 7"),
    ("readout of other samples", transformed("readout_v", lambda v: v[:1]), "/readout_v", r"is not \[n = 2, N = 10\]"),
    ("labels out of the class range", transformed("labels", lambda v: v - 1 - v.max()), "/labels", r"must be in \[0, 10\)"),
    ("labels of another shape", transformed("labels", lambda v: v[:1]), "/labels", r"is not \[n = 2\]"),
    ("counts of the wrong rank", transformed("pop_counts_per_step", lambda v: v.sum(axis=0)), "/pop_counts_per_step",
     r"\(rank 3\)"),
    ("counts negative", transformed("proj_counts_per_sample", with_negative_entry), "/proj_counts_per_sample",
     r"must be >= 0; found -1"),
    ("counts float", transformed("pop_counts_per_sample", lambda v: v.astype(np.float64)), "/pop_counts_per_sample",
     r"must be an integer dataset"),
    ("values NaN", transformed("pop_values_per_step", lambda v: np.full(v.shape, np.nan)), "/pop_values_per_step",
     r"must be finite"),
    ("cosine without abs_difference", delete("abs_difference"), "/abs_difference", r"comes with /cosine"),
    ("spike train of an unknown tag", lambda f: f.move(f"spikes/{next(iter(f['spikes']))}/"
                                                       f"{next(iter(f['spikes'][next(iter(f['spikes']))]))}",
                                                       f"spikes/{next(iter(f['spikes']))}/C"),
     None, r"unknown member \(allowed here: out, A, B\)"),
    ("spike train of another shape", lambda f: transformed(
        f"spikes/{next(iter(f['spikes']))}/{next(iter(f['spikes'][next(iter(f['spikes']))]))}/coef",
        lambda v: v[:, :3])(f), None, r"are not one \[n = 2, T = 6, \*population shape\]"),
    ("dataset claiming 2^40 entries", huge_spike_train, None, r"past the limit of 4294967296"),
    # links and storage
    ("soft link", put("labels", h5py.SoftLink("/pred")), "/labels", r"soft links are not allowed"),
    ("external link", put("labels", h5py.ExternalLink("other.h5", "/labels")), "/labels",
     r"external link to other.h5:/labels"),
    ("external storage", external_storage, "/readout_v", r"external storage: links or references leaving"),
    ("attribute on a dataset", lambda f: f["pred"].attrs.__setitem__("units", "class"), "/pred", r"unknown attribute 'units'"),
]


def mutated(path: Path, mutate) -> Path:
    with h5py.File(path, "r+") as f:
        mutate(f)
    return path


def load_error(path: Path) -> ResultFormatError:
    with pytest.raises(ResultFormatError) as info:
        load_result(path)
    err = info.value
    assert err.file == str(path) and str(err) == f"{path}: {err.h5path}: {err.problem}"
    return err


def test_base_file_is_valid(saved):
    loaded = load_result(saved)
    assert loaded.timesteps == 6 and loaded.manifest == {"network_sha256": "x", "timesteps": 6} and loaded.spikes


@pytest.mark.parametrize("mutate, h5path, problem", [pytest.param(*r[1:], id=r[0]) for r in RULES])
def test_rule_through_load_result(result_file, mutate, h5path, problem):
    err = load_error(mutated(result_file, mutate))
    assert h5path is None or err.h5path == h5path, err
    assert re.search(problem, err.problem), err.problem


def assert_clean_failure(outcome, path: Path):
    assert outcome.exit_code == 1, outcome.output
    assert outcome.output.startswith("Error: ") and str(path) in outcome.output, outcome.output
    assert "Traceback" not in outcome.output and len(outcome.output.strip().splitlines()) == 1
    assert not isinstance(outcome.exception, Exception) or isinstance(outcome.exception, SystemExit)


@pytest.mark.parametrize("mutate", [pytest.param(r[1], id=r[0]) for r in RULES])
def test_rule_through_plot_and_compare(result_file, saved, mutate, tmp_path):
    mutated(result_file, mutate)
    runner = CliRunner()
    assert_clean_failure(runner.invoke(main, ["plot", str(result_file), "--out", str(tmp_path / "figs")]), result_file)
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())
    assert_clean_failure(runner.invoke(main, ["compare", str(saved), str(result_file)]), result_file)


def test_a_huge_claim_fails_before_reading(result_file):
    mutated(result_file, huge_spike_train)
    tracemalloc.start()
    try:
        err = load_error(result_file)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert "past the limit" in err.problem and peak < 50 * 2**20


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", None])
def test_not_a_result_file(tmp_path, content, saved):
    path = tmp_path / "r.h5"
    if content is None:  # truncated
        path.write_bytes(saved.read_bytes()[:2000])
    else:
        path.write_bytes(content)
    err = load_error(path)
    assert err.h5path == "/"
