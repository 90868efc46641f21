"""The command line through click's CliRunner: exit codes, messages, JSON and CSV outputs."""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from evsim import __version__
from evsim.cli.main import main
from evsim.analysis.report import REPORT_SCHEMA


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def network_file(conformance_dir):
    return str(conformance_dir / "foundation_cnn.h5")


def test_version_and_help(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(main, ["run", "--help"])
    assert result.exit_code == 0 and "--timesteps" in result.output and "--inputs" in result.output


def test_inspect_describes_the_file(runner, network_file):
    result = runner.invoke(main, ["inspect", network_file])
    assert result.exit_code == 0, result.output
    for name in ("input0", "if1", "readout5", "p0_conv2d", "p4_sparse", "valid evsim file"):
        assert name in result.output
    info = json.loads(runner.invoke(main, ["inspect", network_file, "--json"]).output)
    assert info["populations"]["if1"]["shape"] == [4, 2, 6]
    assert info["projections"]["p0_conv2d"]["groups"] == 2
    assert info["neurons"] == sum(p["size"] for p in info["populations"].values())


def test_run_prints_accuracy_ladder_and_counts(runner, network_file, tmp_path):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    result = runner.invoke(main, ["run", network_file, "-T", "16", "--json", str(out_json), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert "  t  " + "".join(f"{t:>8}" for t in (1, 2, 4, 8, 16)) in result.output  # the accuracy ladder
    assert "ac_ops" in result.output and "ms/sample" in result.output
    report = json.loads(out_json.read_text())
    assert report["schema"] == REPORT_SCHEMA
    assert set(report) >= {"run", "ann", "accuracy", "totals", "per_sample", "populations", "projections"}
    assert report["run"]["timesteps"] == 16 and report["run"]["n_samples"] == 2 and len(report["accuracy"]) == 16
    per_step = report["projections"]["p2_conv2d"]["per_step"]["ac_ops"]
    assert sum(per_step) + sum(report["projections"]["p3_dense"]["per_step"]["ac_ops"]) <= report["totals"]["ac_ops"]
    rows = list(csv.reader(out_csv.open()))
    assert rows[0][:2] == ["t", "accuracy"] and len(rows) == 17
    assert sum(int(r[rows[0].index("pop.if1.events")]) for r in rows[1:]) == sum(report["populations"]["if1"]["per_step"]["events"])


def test_run_with_inputs_file_and_sample_limit(runner, network_file, tmp_path, conformance_dir):
    from evsim.weights_io import read_network

    samples = read_network(network_file).samples
    npz = tmp_path / "inputs.npz"
    np.savez(npz, inputs=np.concatenate([samples.inputs] * 3), labels=np.concatenate([samples.labels] * 3))
    result = runner.invoke(main, ["run", network_file, "-T", "8", "--inputs", str(npz), "-n", "5", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("5 samples, T = 8")


@pytest.mark.parametrize("args,message", [
    (["-T", "0"], "timesteps"),
    (["--threads", "100000"], "threads"),
    (["--encoder", "gaussian"], "encoder"),
    (["--seed", "-1"], "seed"),
    (["--dtype", "float16"], "dtype"),
])
def test_bad_arguments_exit_2(runner, network_file, args, message):
    result = runner.invoke(main, ["run", network_file, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(main, ["run", str(tmp_path / "nope.h5")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_domain_errors_are_clean_messages(runner, tmp_path, network_file):
    not_hdf5 = tmp_path / "weights.h5"
    not_hdf5.write_text("hello")
    result = runner.invoke(main, ["run", str(not_hdf5)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "weights.h5" in result.output
    assert "Traceback" not in result.output

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, inputs=np.zeros((3, 5), np.float32))
    result = runner.invoke(main, ["run", network_file, "--inputs", str(wrong)])
    assert result.exit_code == 1 and "inputs have shape (3, 5)" in result.output

    loud = tmp_path / "loud.npz"
    np.savez(loud, inputs=np.full((1, 2, 4, 6), 3.0, np.float32))
    result = runner.invoke(main, ["run", network_file, "--inputs", str(loud), "--encoder", "bernoulli"])
    assert result.exit_code == 1 and "|x| <= 1" in result.output

    nan = tmp_path / "nan.npz"
    np.savez(nan, inputs=np.full((1, 2, 4, 6), np.nan, np.float32))
    result = runner.invoke(main, ["run", network_file, "--inputs", str(nan)])
    assert result.exit_code == 1 and "finite" in result.output

    no_inputs = tmp_path / "empty.npz"
    np.savez(no_inputs, other=np.zeros(3))
    result = runner.invoke(main, ["run", network_file, "--inputs", str(no_inputs)])
    assert result.exit_code == 1 and "no inputs array" in result.output


def test_run_reports_latency_agreement_and_energy(runner, tmp_path):
    from pathlib import Path

    example = str(Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5")
    out = tmp_path / "r.json"
    result = runner.invoke(main, ["run", example, "-T", "32", "-n", "40", "--energy", "cmos45-int8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Latency to the ANN's accuracy" in result.output and "cosine" in result.output
    assert "profile cmos45-int8" in result.output and "SNN / ANN" in result.output
    report = json.loads(out.read_text())
    assert report["energy"]["profile"]["name"] == "cmos45-int8"
    per = report["per_sample"]
    snn = report["energy"]["snn_pj_per_sample"]
    assert snn["ac_ops"] == pytest.approx(per["ac_ops"] * 0.1) and snn["input_macs"] == pytest.approx(per["input_macs"] * 0.3)
    assert report["energy"]["ann_pj_per_sample"] == pytest.approx(report["ann"]["macs_per_sample"] * 0.3)
    assert len(report["agreement"]["cosine"]) == 32 and [r["tolerance"] for r in report["latency"]] == [0.01, 0.001, 0.0]


def test_unknown_energy_profile_is_a_clean_error(runner, network_file):
    result = runner.invoke(main, ["run", network_file, "-T", "4", "--energy", "quantum"])
    assert result.exit_code == 1 and "no energy profile 'quantum'" in result.output
