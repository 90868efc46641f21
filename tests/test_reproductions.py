"""The paper reproductions under examples/, run on their reduced setting (--quick) so they cannot rot.

Each script trains tiny ANNs (1 epoch on 500 images, into a temporary cache),
converts and simulates 16 test images for a few steps and writes its tables
and figures; these tests check that every output is there, well formed, and
that the numbers obey what the conversions guarantee whatever the training.
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

PNG_LIMIT = 100_000  # bytes: the docs embed these figures


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def double_threshold(tmp_path_factory):
    import reproduce_double_threshold as study

    out = tmp_path_factory.mktemp("double_threshold")
    summary = study.run(out, study.QUICK, cache=out / "cache", threads=1, log=_quiet)
    return study, out, summary


@pytest.fixture(scope="module")
def potential_init(tmp_path_factory):
    import reproduce_potential_init as study

    out = tmp_path_factory.mktemp("potential_init")
    summary = study.run(out, study.QUICK, cache=out / "cache", threads=1, log=_quiet)
    return study, out, summary


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- double threshold


def test_double_threshold_files(double_threshold):
    _, out, summary = double_threshold
    for name in ("tables.md", "summary.json", "table2.csv", "table3.csv", "table4.csv", "maug.csv",
                 "negative_spikes.csv"):
        assert (out / name).stat().st_size > 0, name
    for name in ("error_vs_steps.png", "error_vs_events.png", "maug.png", "net1/accuracy.png", "net1/agreement.png",
                 "net1/accuracy_vs_events.png", "net2/accuracy.png", "net2/agreement.png"):
        assert 0 < (out / name).stat().st_size < PNG_LIMIT, name
    for net in ("net1", "net2"):
        table = json.loads((out / net / "table.json").read_text())
        assert table["n_samples"] == 16 and len(table["runs"]) == len(summary["runs"][net]["results"])
    saved = json.loads((out / "summary.json").read_text())
    assert "runs" not in saved and saved["table3"] == json.loads(json.dumps(summary["table3"]))
    tables = (out / "tables.md").read_text()
    for heading in ("Table II", "Table III", "Table IV", "Fig. 7", "negative threshold"):
        assert heading in tables


def test_double_threshold_tables(double_threshold):
    study, out, summary = double_threshold
    s = study.QUICK
    # Table II: every conversion of each network, accuracies in range
    for net in ("net1", "net2"):
        rows = [r for r in summary["table2"] if r["net"] == net]
        assert [r["conversion"] for r in rows] == [v[0] for v in study.variants(net, s)]
        for r in rows:
            assert 0 <= r["snn_accuracy_T"] <= 1 and 0 <= r["ann_accuracy"] <= 1 and r["events_T"] > 0
            assert r["timesteps"] == s.timesteps[net] and 1 <= r["snn_best_t"] <= r["timesteps"]
            assert r["snn_best"] >= r["snn_accuracy_T"]
    # Table III: TerMapping then AugMapping per network; a latency is a step within T, with what it cost
    assert [(r["net"], r["method"]) for r in summary["table3"]] == [
        (net, method) for net in ("net1", "net2") for method in ("TerMapping", "AugMapping")]
    for r in summary["table3"]:
        if r["latency"] is not None:
            assert 1 <= r["latency"] <= r["timesteps"] and 0 <= r["events"] <= r["events_T"]
            assert r["snn_accuracy"] >= r["ann_accuracy"] - 1e-12
            assert r["first_t"] <= r["latency"]
    rows = list(_csv(out / "table3.csv"))
    assert len(rows) == 4 and {"latency", "events", "first_t"} <= set(rows[0])
    # Table IV: reductions are TerMapping / AugMapping of the same quantities
    for r in summary["table4"]:
        for label in ("<1%", "<0.1%", "0%"):
            ter, aug = r[f"ter t {label}"], r[f"aug t {label}"]
            assert r[f"latency {label}"] == (None if ter is None or aug is None else pytest.approx(ter / aug))


def test_double_threshold_conversions(double_threshold):
    """What the conversions guarantee: TerMapping of a ReLU ANN is DataNorm; ternary spikes carry coefficient 1."""
    study, _, summary = double_threshold
    net1 = summary["runs"]["net1"]
    datanorm, termapping = net1["results"]["DataNorm / ReLU"], net1["results"]["TerMapping / ReLU"]
    layers = net1["networks"]["TerMapping / ReLU"].meta["layers"]
    if all(layer.get("max_abs_output", 0) >= layer.get("max_abs_weight", 0) for layer in layers):
        # same thresholds relative to the weights: the same spikes up to float rounding
        np.testing.assert_array_equal(datanorm.accuracy(), termapping.accuracy())
        assert termapping.per_sample()["events"] == pytest.approx(datanorm.per_sample()["events"], rel=1e-3)
    for net, run in summary["runs"].items():
        for name, result in run["results"].items():
            totals = result.per_sample()
            if name.startswith(("TerMapping", "DataNorm")):
                assert totals["mass"] == totals["events"], (net, name)  # binary / ternary spikes
            else:
                assert totals["mass"] >= totals["events"], (net, name)  # augmented: |coefficient| >= 1
            assert np.all(np.abs(result.cosine) <= 1 + 1e-9)
    for r in summary["negative_spikes"]:
        assert 0 <= r["negative_share"] <= 1 and r["events"] > 0
        if r["conversion"].startswith("TerMapping"):
            assert r["mean_abs_coefficient"] == 1


def test_double_threshold_m_aug(double_threshold):
    study, out, summary = double_threshold
    rows = summary["m_aug"]
    for net in ("net1", "net2"):
        mine = [r for r in rows if r["net"] == net]
        assert [r["m_aug"] for r in mine] == ["unbounded", *study.QUICK.m_aug]
        assert mine[0]["fraction"] == 1.0  # the unbounded network is the reference
        for r in mine:
            assert 1 <= r["t_eval"] <= r["timesteps"] and 0 <= r["accuracy"] <= 1 and r["fraction"] >= 0
            if r["m_aug"] != "unbounded":
                assert 1 <= r["mean_coefficient"] <= r["m_aug"]  # no spike carries more than M_aug
        assert mine[1]["m_aug"] == 1 and mine[1]["mean_coefficient"] == 1  # M_aug = 1: ternary spikes
    assert len(_csv(out / "maug.csv")) == len(rows)


# ----------------------------------------------------------------------------- potential initialization


def test_potential_init_files(potential_init):
    study, out, summary = potential_init
    s = study.QUICK
    for name in ("tables.md", "summary.json", "table.txt", "table.json", "table.csv", "sweep.csv", "theorem1.csv",
                 "pools_at_zero.csv"):
        assert (out / name).stat().st_size > 0, name
    for name in ("accuracy.png", "accuracy_vs_events.png", "agreement.png", "v_init_sweep.png", "theorem1.png"):
        assert 0 < (out / name).stat().st_size < PNG_LIMIT, name
    table = json.loads((out / "table.json").read_text())
    assert [run["name"] for run in table["runs"]] == list(study.MAIN)
    assert len(summary["sweep"]) == len(s.fractions) * len(s.sweep_steps)
    assert [b["t"] for b in summary["best_fraction"]] == list(s.sweep_steps)
    assert len(_csv(out / "sweep.csv")) == len(summary["sweep"])


def test_potential_init_numbers(potential_init):
    study, _, summary = potential_init
    for r in summary["sweep"]:
        assert 0 <= r["accuracy"] <= 1 and r["abs_difference"] >= 0 and -1 <= r["cosine"] <= 1 + 1e-9
    # v(0) = theta/2 starts every neuron half way to its threshold: its first layer fires no later than with 0
    first = {r["v_init"]: r["first_step_with_output_events"]["conv1"] for r in summary["main"]}
    assert first["v(0) = theta/2"] <= first["v(0) = 0"]
    # with v(0) = 0 everywhere, keeping the pools at 0 changes nothing
    ablation = {(r["fraction"], r["t"]): r for r in summary["pools_at_zero"]}
    assert len(ablation) == len(study.QUICK.fractions) * len(study.QUICK.ablation_steps)
    for r in summary["sweep"]:
        if (r["fraction"], r["t"]) in ablation and r["fraction"] == 0:
            assert ablation[(0.0, r["t"])]["accuracy"] == r["accuracy"]
            assert ablation[(0.0, r["t"])]["abs_difference"] == pytest.approx(r["abs_difference"])
    # the sweep's runs at 0 and 0.5 are the main runs' first steps
    main = {r["v_init"]: r for r in summary["main"]}
    for r in summary["sweep"]:
        if r["fraction"] in (0.0, 0.5) and f"t{r['t']}" in main["v(0) = 0"]:
            name = "v(0) = 0" if r["fraction"] == 0 else "v(0) = theta/2"
            assert r["accuracy"] == main[name][f"t{r['t']}"]


def test_potential_init_theorem1(potential_init):
    """conv1 gets the image itself, so its rate is the quantised clip output of Theorem 1's analysis, exactly:
    with v(0) = 0 it rounds down (error >= 0), with v(0) = theta up (error <= 0), theta/2 is in between."""
    _, _, summary = potential_init
    conv1 = {(r["fraction"], r["t"]): r for r in summary["theorem1"] if r["population"] == "conv1"}
    for t in {t for _, t in conv1}:
        zero, half, full = conv1[(0.0, t)], conv1[(0.5, t)], conv1[(1.0, t)]
        assert zero["mean_error"] >= -1e-6 and full["mean_error"] <= 1e-6
        assert abs(half["mean_error"]) < min(abs(zero["mean_error"]), abs(full["mean_error"]))
        assert half["mse"] < min(zero["mse"], full["mse"])
        assert half["rmse_over_theta"] <= 0.5 / t + 1e-6  # rounding to the nearest multiple of theta / t
