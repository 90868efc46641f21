"""examples/reproduce_bsnn.py on its reduced setting (tiny training, 16 samples, short runs), so it cannot rot."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

pytest.importorskip("torch")
pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import reproduce_bsnn as rb

    out = tmp_path_factory.mktemp("bsnn")
    summary = rb.run(out, rb.QUICK, cache=out / "cache", log=lambda *args: None, version_1=True)
    return rb, out, summary


def runs_of(summary, experiment):
    return {run["name"]: run for run in summary["experiments"][experiment]["runs"]}


def test_files_and_tables(quick):
    rb, out, summary = quick
    assert json.loads((out / "summary.json").read_text())["experiments"].keys() == {"cnn", "resnet", "ablation", "control"}
    for experiment, runs in (("cnn", rb.CNN_RUNS), ("resnet", rb.RESNET_RUNS), ("control", rb.CONTROL_RUNS)):
        folder = out / experiment
        for name in ("table.txt", "table.csv", "accuracy.png", "accuracy_vs_events.png", "agreement.png"):
            assert (folder / name).stat().st_size > 0, folder / name
        table = json.loads((folder / "table.json").read_text())
        assert [run["name"] for run in table["runs"]] == list(runs)
        assert table["n_samples"] == rb.QUICK.n_samples
        assert list(runs_of(summary, experiment)) == list(runs)
    png = out / "output_difference.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 100_000
    tables = (out / "tables.md").read_text()
    for name in list(rb.CNN_RUNS) + list(rb.RESNET_RUNS):
        assert f"| {name} |" in tables
    curves = rb.read_curves(out / "output_difference.csv")
    assert {name: len(c) for name, c in curves["cnn"].items()} == {name: rb.QUICK.cnn_timesteps for name in rb.CNN_RUNS}
    assert {name: len(c) for name, c in curves["resnet"].items()} == {name: rb.QUICK.resnet_timesteps
                                                                    for name in rb.RESNET_RUNS}


def test_numbers_are_in_range(quick):
    rb, out, summary = quick
    for experiment in ("cnn", "resnet", "ablation", "control"):
        for run in summary["experiments"][experiment]["runs"]:
            assert all(0 <= v <= 1 for v in run["agreement"].values())
            assert 0 <= run["ann_accuracy"] <= 1 and 0 <= run["final_accuracy"] <= run["best_accuracy"] <= 1
            assert all(v is None or 0 <= v <= 1 for v in run["accuracy"].values())
            assert [latency["tolerance"] for latency in run["latency"]] == [0.01, 0.001, 0.0]
            first = run["first_reach"]
            assert first is None or 1 <= first <= summary["experiments"][experiment]["timesteps"]
            if first is not None:
                assert run["first_reach_spent"]["events"] <= run["per_sample"]["events"]
            assert run["per_sample"]["events"] > 0 and run["per_sample"]["synaptic_ops"] > 0
            differences = list(run["mean_abs_difference"].values())
            assert differences and all(np.isfinite(d) and d >= 0 for d in differences)
            assert run["max_abs_difference_at_T"] >= run["p99_abs_difference_at_T"] >= 0


def test_conversions_are_what_the_readme_says(quick):
    rb, out, summary = quick
    cnn = runs_of(summary, "cnn")
    kinds = {name: set(run["populations"].values()) for name, run in cnn.items()}
    assert kinds["rate"] == kinds["phase"] == {"input", "if", "relay", "readout"}  # max pools -> relays (spiking max gate)
    assert kinds["BSNN"] == {"input", "bif", "relay", "readout"}                   # every hidden layer a bif pair
    assert cnn["rate"]["resolved"]["input_encoding"] == "analog" and cnn["rate"]["resolved"]["percentile"] == 99.9
    assert cnn["phase"]["resolved"]["percentile"] == 100 and cnn["phase p99.9"]["resolved"]["percentile"] == 99.9
    for name in ("phase", "BSNN"):
        assert cnn[name]["resolved"]["phase_period"] == 8 and cnn[name]["resolved"]["input_encoding"] == "phase"
    assert cnn["BSNN"]["resolved"]["percentile"] == 99.9
    # analog input costs MACs every step; the phase encoder's input is events (ACs)
    assert cnn["rate"]["per_sample"]["input_macs"] > 0 and cnn["BSNN"]["per_sample"]["input_macs"] == 0
    # a bif neuron is two units, each integrating the (halved) bias every step; the 10 readout neurons are not bif
    readout = 10 * rb.QUICK.cnn_timesteps
    assert cnn["BSNN"]["per_sample"]["bias_ops"] == 2 * (cnn["phase"]["per_sample"]["bias_ops"] - readout) + readout
    assert cnn["BSNN"]["pipeline_depth"] == 2 and cnn["rate"]["pipeline_depth"] == 0  # conv1, conv2 (relays: none)


def test_synchronous_neurons_on_and_off(quick):
    rb, out, summary = quick
    resnet = runs_of(summary, "resnet")
    with_sn, without = resnet["BSNN w/ SN"], resnet["BSNN w/o SN"]
    assert without["sync_populations"] == [] and len(with_sn["sync_populations"]) == 3  # one per basic block
    added = set(with_sn["populations"]) - set(without["populations"])
    assert added == set(with_sn["sync_populations"]) and all(name.endswith("_sync") for name in added)
    assert set(without["populations"]) < set(with_sn["populations"])
    assert {with_sn["populations"][name] for name in added} == {"bif"}
    assert with_sn["resolved"]["sync_neurons"] is True and without["resolved"]["sync_neurons"] is False
    # the synchronous neurons sit beside a block's first conv: the longest path is not longer
    assert with_sn["pipeline_depth"] == without["pipeline_depth"] == 8
    # more bif units to update every step
    assert with_sn["per_sample"]["neuron_updates"] > without["per_sample"]["neuron_updates"]
    assert "bif" not in set(resnet["rate"]["populations"].values())


def test_diagnostics(quick):
    rb, out, summary = quick
    # the bias ablation: same weights, every bias 0 in the converted network; the trained one has biases
    ablation, resnet = runs_of(summary, "ablation"), runs_of(summary, "resnet")
    assert list(ablation) == list(rb.ABLATION_RUNS)
    assert all(run["max_abs_bias"] == 0 for run in ablation.values())
    assert all(run["max_abs_bias"] > 0 for run in resnet.values())
    assert ablation["BSNN w/ SN"]["populations"] == resnet["BSNN w/ SN"]["populations"]
    # the readout that skips the pipeline fill: t0 = bif depth x K
    windowed = runs_of(summary, "cnn")["BSNN"]["windowed"]
    assert windowed["t0"] == 2 * 8 and windowed["accuracy"]
    assert all(0 <= v <= 1 for v in windowed["accuracy"].values())
    assert "windowed" not in runs_of(summary, "cnn")["rate"]
    assert "Diagnostic: the ResNet's BSNN with and without its biases" in (out / "tables.md").read_text()
