"""Side-by-side comparison: every figure against a direct computation from the runs' arrays."""
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from evsim.analysis.compare import compare, comparison_rows, format_comparison, run_comparison, write_comparison_csv
from evsim.analysis.energy import load_profile
from evsim.counters import AC_OPS, EVENTS, SCALED_OPS
from evsim.errors import EvsimError
from evsim.result import load_result
from evsim.weights_io import read_network, write_network

EXAMPLE = Path(__file__).parent.parent / "examples" / "mnist_cnn.h5"
N, T = 24, 48


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bundled network, and a variant of it with v(0) = theta/2 in every hidden population."""
    network = read_network(EXAMPLE)
    half = tuple(dataclasses.replace(p, v_init=np.array(0.5, np.float32)) if p.kind == "if" else p
                 for p in network.populations)
    variant = tmp_path_factory.mktemp("compare") / "half.h5"
    write_network(variant, dataclasses.replace(network, populations=half))
    return [EXAMPLE, variant]


@pytest.fixture(scope="module")
def results(files):
    return run_comparison([read_network(f) for f in files], n_samples=N, timesteps=T)


def test_runs_share_samples_and_each_gets_its_ann_outputs(results):
    a, b = results
    assert a.n_samples == b.n_samples == N
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.ann_outputs is not None and np.array_equal(a.ann_outputs, b.ann_outputs)
    assert not np.array_equal(a.pred, b.pred)  # v_init changed the runs: the comparison has something to show


def spent(result, t):
    """Per-sample events and synaptic ops over steps 1..t, straight from the per-step count arrays."""
    spiking = [k not in ("input", "relay") for k in result.population_kinds]
    events = result.pop_counts_per_step[:t, spiking, EVENTS].sum()
    ops = result.proj_counts_per_step[:t, :, AC_OPS].sum() + result.proj_counts_per_step[:t, :, SCALED_OPS].sum()
    return events / result.n_samples, ops / result.n_samples


def test_table_matches_a_direct_computation(results):
    profile = load_profile("cmos45-int8")
    table = compare(results, ["max", "half"], steps=[1, 8, T], tolerances=(0.02, 0.0), profile=profile)
    assert table["steps"] == [1, 8, T] and table["n_samples"] == N and table["profile"]["name"] == "cmos45-int8"
    for result, row in zip(results, table["runs"]):
        correct = result.pred == result.labels[:, None]
        for t in (1, 8, T):
            assert row["accuracy"][str(t)] == correct[:, t - 1].mean()
        reference = (result.ann_outputs.argmax(1) == result.labels).mean()
        assert row["ann_accuracy"] == reference
        for entry, tolerance in zip(row["latency"], (0.02, 0.0)):
            ok = correct.mean(axis=0) >= reference - tolerance - 1e-12
            want = next((t + 1 for t in range(T) if ok[t:].all()), None)
            assert entry["t"] == want
            if want is not None:
                events, ops = spent(result, want)
                assert entry["events"] == pytest.approx(events) and entry["synaptic_ops"] == pytest.approx(ops)
        events, ops = spent(result, T)
        assert row["per_sample"]["events"] == pytest.approx(events)
        assert row["per_sample"]["synaptic_ops"] == pytest.approx(ops)
        prices = profile.per_operation
        energy = sum(row["per_sample"][name] * prices[name] for name in prices)
        assert row["energy_pj_per_sample"] == pytest.approx(energy)
        assert row["snn_over_ann_energy"] == pytest.approx(energy / (result.ann_macs * profile.ann_mac))
    first, second = table["runs"]
    assert all(value == 1.0 for value in first["ratio_to_first"].values() if value is not None)
    assert second["ratio_to_first"]["events"] == pytest.approx(
        second["per_sample"]["events"] / first["per_sample"]["events"])
    assert second["ratio_to_first"]["energy"] == pytest.approx(
        second["energy_pj_per_sample"] / first["energy_pj_per_sample"])
    if first["latency"][1]["t"] and second["latency"][1]["t"]:
        assert second["ratio_to_first"]["latency_0pt_t"] == second["latency"][1]["t"] / first["latency"][1]["t"]


def test_text_json_and_csv_carry_the_same_numbers(results, tmp_path):
    table = compare(results, ["max", "half"], steps=[16, T])
    text = format_comparison(table)
    assert "max" in text and "half" in text and "accuracy t=16" in text and "energy / first" in text
    assert f"{100 * table['runs'][1]['accuracy'][str(T)]:.2f}%" in text
    json.loads(json.dumps(table))  # plain JSON types only
    path = tmp_path / "compare.csv"
    write_comparison_csv(table, path)
    rows = list(csv.DictReader(path.open()))
    assert [r["name"] for r in rows] == ["max", "half"]
    for row, run in zip(rows, table["runs"]):
        assert float(row[f"accuracy.{T}"]) == run["accuracy"][str(T)]
        assert float(row["per_sample.events"]) == pytest.approx(run["per_sample"]["events"])
        assert row["latency.1pt.t"] == ("" if run["latency"][0]["t"] is None else str(run["latency"][0]["t"]))
    assert set(comparison_rows(table)[0]) == set(rows[0])


def test_saved_results_compare_like_fresh_runs(files, results, tmp_path):
    saved = tmp_path / "max.h5"
    results[0].save(saved)
    mixed = run_comparison([load_result(saved), read_network(files[1])], n_samples=N, timesteps=T)
    # the saved run gives no samples: the first network file's are used, and they are the same ones
    fresh, loaded = compare(results, ["a", "b"]), compare(mixed, ["a", "b"])
    for row in (fresh, loaded):
        for run in row["runs"]:
            run.pop("name")
    assert fresh["runs"] == loaded["runs"]


def test_runs_on_other_samples_are_refused(files, results, tmp_path):
    saved = tmp_path / "few.h5"
    results[0].save(saved)
    with pytest.raises(EvsimError, match="not on the same samples"):
        run_comparison([load_result(saved), read_network(files[1])], n_samples=N - 1, timesteps=T)


def test_cli_compare_prints_and_writes(files, tmp_path):
    from click.testing import CliRunner

    from evsim.cli.main import main

    out_json, out_csv = tmp_path / "c.json", tmp_path / "c.csv"
    args = ["compare", *map(str, files), "-n", "8", "-T", "16", "--names", "max,half", "--steps", "16,4",
            "--tolerances", "1,0", "--energy", "cmos45-int8", "--json", str(out_json), "--csv", str(out_csv),
            "--plot", str(tmp_path / "plots")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    table = json.loads(out_json.read_text())
    assert table["schema"] == 1 and table["steps"] == [4, 16] and table["tolerances"] == [0.01, 0.0]
    assert [run["name"] for run in table["runs"]] == ["max", "half"] and table["n_samples"] == 8
    assert set(table["runs"][0]) == {"name", "timesteps", "encoder", "ann_accuracy", "accuracy", "latency",
                                     "per_sample", "energy_pj_per_sample", "snn_over_ann_energy",
                                     "mean_decision_time", "ratio_to_first", "memory"}
    assert table["runs"][0]["memory"] is None and table["baselines"] == []  # cmos45-int8 prices operations only
    assert "cmos45-int8" in result.output and "accuracy t=4" in result.output
    assert [row["name"] for row in csv.DictReader(out_csv.open())] == ["max", "half"]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["accuracy.png", "accuracy_vs_events.png", "accuracy_vs_synaptic_ops.png", "agreement.png"]
    assert all((tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for name in pngs)
    # the same runs through the Python API give the same table
    api = compare(run_comparison([read_network(f) for f in files], n_samples=8, timesteps=16), ["max", "half"], steps=[4, 16],
                  tolerances=(0.01, 0.0), profile=load_profile("cmos45-int8"))
    assert api["runs"] == table["runs"]


@pytest.mark.parametrize("extra, message", [
    ([], "at least two files"),
    (["--names", "a,b,c"], "3 names for 2 files"),
    (["--steps", "0,4"], "steps are integers >= 1"),
    (["--steps", "x"], "not a comma-separated list"),
    (["--tolerances", "150"], "accuracy points in [0, 100]"),
])
def test_cli_compare_rejects_bad_arguments(files, extra, message):
    from click.testing import CliRunner

    from evsim.cli.main import main

    paths = [str(files[0])] if message == "at least two files" else [str(f) for f in files]
    result = CliRunner().invoke(main, ["compare", *paths, "-T", "4", "-n", "2", *extra])
    assert result.exit_code == 2 and message in result.output


def test_cli_compare_names_a_file_that_is_not_evsim(files, tmp_path):
    from click.testing import CliRunner

    from evsim.cli.main import main

    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    result = CliRunner().invoke(main, ["compare", str(files[0]), str(bogus), "-T", "4", "-n", "2"])
    assert result.exit_code == 1 and "bogus.h5" in result.output and "Traceback" not in result.output
