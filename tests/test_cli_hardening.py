"""Issue 14, case by case through the CLI (click's CliRunner; a real process for the compile notice): every output
checked before the work, no traceback on any input, nothing silent."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import evsim.cli.main as cli
from evsim.errors import ExportError
from evsim.simulate import simulate
from evsim.weights_io import read_network

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "mnist_cnn.h5")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def small(conformance_dir):
    return str(conformance_dir / "foundation_cnn.h5")  # input [2, 4, 6], 10 outputs, 2 samples


def assert_clean_error(outcome, *fragments, code=1):
    assert outcome.exit_code == code, outcome.output
    assert "Traceback" not in outcome.output and isinstance(outcome.exception, SystemExit), outcome.output
    for fragment in fragments:
        assert fragment in outcome.output, outcome.output


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if anything is simulated (or compiled)."""
    def refuse(*args, **kwargs):
        raise AssertionError("simulated before the outputs were checked")
    monkeypatch.setattr(cli, "Simulator", refuse)
    monkeypatch.setattr(cli, "run_to_file", refuse)
    monkeypatch.setattr(cli, "run_comparison", refuse)


# -- 1. outputs checked before the work ---------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--json", "--csv", "-o"])
def test_an_output_that_cannot_be_written_fails_before_the_run(runner, small, tmp_path, option, no_simulation):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    outcome = runner.invoke(cli.main, ["run", small, "-T", "2", option, str(blocker / "r.out")])
    assert_clean_error(outcome, f"{blocker / 'r.out'}: cannot create the folder {blocker}")


def test_a_plot_folder_that_cannot_be_made_fails_before_the_run(runner, small, tmp_path, no_simulation):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_clean_error(runner.invoke(cli.main, ["run", small, "-T", "2", "--plot", str(blocker / "figs")]),
                       "cannot create the folder")
    assert_clean_error(runner.invoke(cli.main, ["run", small, "-T", "2", "--json", str(tmp_path)]), "is a directory",
                       code=2)  # click's own check of the argument


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_compare_outputs_are_checked_before_the_runs(runner, small, tmp_path, option, no_simulation):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    outcome = runner.invoke(cli.main, ["compare", small, small, "--names", "a,b", option, str(blocker / "t.out")])
    assert_clean_error(outcome, "cannot create the folder")


def test_missing_folders_are_created_and_written(runner, small, tmp_path):
    out = tmp_path / "new" / "deeper"
    outcome = runner.invoke(cli.main, ["run", small, "-T", "2", "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
                                       "--plot", str(out / "figs")])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads((out / "r.json").read_text())["run"]["timesteps"] == 2 and (out / "r.csv").read_text()
    assert (out / "figs" / "accuracy.png").exists()
    table = tmp_path / "cmp" / "t.json"
    outcome = runner.invoke(cli.main, ["compare", small, small, "--names", "a,b", "-T", "2", "--json", str(table),
                                       "--csv", str(tmp_path / "cmp2" / "t.csv")])
    assert outcome.exit_code == 0, outcome.output
    assert len(json.loads(table.read_text())["runs"]) == 2 and (tmp_path / "cmp2" / "t.csv").exists()


# -- 2. bad inputs ---------------------------------------------------------------------------------------------


def inputs_file(tmp_path, name="in.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("arrays, message", [
    ({"inputs": np.zeros((0, 2, 4, 6), np.float32)}, "inputs hold no samples (shape (0, 2, 4, 6))"),
    ({"inputs": np.zeros((2, 2, 4, 6), np.complex64)}, "inputs must be real numbers (integer or floating point), not complex64"),
    ({"inputs": np.zeros((3, 2, 4, 6)), "labels": np.array([10, 11, 19])}, "labels must be class indices in [0, 10)"),
    ({"inputs": np.zeros((2, 2, 4, 6)), "labels": np.array([0, -1])}, "label 1 is -1"),
    ({"inputs": np.zeros(5)}, "inputs have shape (5,); they must be [n, *input shape]"),
])
def test_bad_inputs_are_one_clean_error_naming_the_file(runner, small, tmp_path, arrays, message):
    path = inputs_file(tmp_path, **arrays)
    assert_clean_error(runner.invoke(cli.main, ["run", small, "-T", "2", "--inputs", path]), path, message)


def test_more_samples_than_there_are_is_an_error(runner, small):
    assert_clean_error(runner.invoke(cli.main, ["run", small, "-T", "2", "-n", "999999"]),
                       "999999 samples asked for; the inputs hold only 2")


def test_inputs_outside_the_calibration_range_warn_naming_both(runner, small, tmp_path):
    pixels = np.full((2, 1, 28, 28), 255, np.uint8)
    outcome = runner.invoke(cli.main, ["run", EXAMPLE, "-T", "2", "--inputs", inputs_file(tmp_path, inputs=pixels)])
    assert outcome.exit_code == 0, outcome.output
    assert ("Warning: the inputs span [255, 255], outside the range the network was calibrated on [0, 1] "
            "(/meta calibration_range)") in outcome.output
    assert outcome.output.count("Warning:") == 1
    quiet = runner.invoke(cli.main, ["run", small, "-T", "2", "--inputs",  # no calibration_range: no warning
                                     inputs_file(tmp_path, "big.npz", inputs=np.full((2, 2, 4, 6), 255.0))])
    assert quiet.exit_code == 0 and "Warning" not in quiet.output


# -- 3. the format reader ------------------------------------------------------------------------------------


def test_inspect_refuses_an_array_version_and_a_bif_without_phase_period(runner, conformance_dir, tmp_path):
    for name, mutate, message in (
            ("version.h5", lambda f: f.attrs.__setitem__("format_version", np.array([1])), "must be a scalar integer"),
            ("period.h5", lambda f: [f[f"populations/{p}"].attrs.__delitem__("phase_period") for p in f["populations"]
                                     if "phase_period" in f[f"populations/{p}"].attrs], "missing attribute 'phase_period'")):
        path = tmp_path / name
        path.write_bytes((conformance_dir / "later_bsnn.h5").read_bytes())
        with h5py.File(path, "r+") as f:
            mutate(f)
        assert_clean_error(runner.invoke(cli.main, ["inspect", str(path)]), str(path), message)


# -- 4. compare refuses mixed T --------------------------------------------------------------------------------


def test_compare_refuses_runs_of_different_t(runner, small, tmp_path):
    saved = tmp_path / "t4.h5"
    simulate(read_network(small), timesteps=4).save(saved)
    assert_clean_error(runner.invoke(cli.main, ["compare", small, str(saved), "-T", "8"]),
                       "the runs have different T", "T = 8 (simulated)", f"{saved}: T = 4")
    other = tmp_path / "t6.h5"
    simulate(read_network(small), timesteps=6).save(other)
    assert_clean_error(runner.invoke(cli.main, ["compare", str(saved), str(other)]), "T = 4", "T = 6")
    same = runner.invoke(cli.main, ["compare", small, str(saved)])  # no -T: the saved result's
    assert same.exit_code == 0, same.output


# -- 6. the first compile is announced -----------------------------------------------------------------------


def test_the_compile_notice_comes_before_the_progress_bar_and_only_when_compiling(tmp_path, small):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # an empty cache: the engine compiles
    command = [sys.executable, "-m", "evsim", "run", small, "-T", "2", "--progress"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    notice = "compiling the engine, first run only, ~15-30 s"
    assert notice in first.stderr and "Traceback" not in first.stderr
    bar = first.stderr.find("sample")  # tqdm's unit
    assert bar == -1 or first.stderr.index(notice) < bar
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and notice not in second.stderr, second.stderr


# -- 7. the report reads at a glance -------------------------------------------------------------------------


def test_the_example_report_fits_one_screen_with_the_layer_table(runner):
    outcome = runner.invoke(cli.main, ["run", EXAMPLE, "-n", "20"])
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 120, "\n".join(lines)
    text = outcome.output
    assert "ANN accuracy: " in text and "on these 20 samples" in text and "on the exporter's evaluation set" in text
    assert "within 1 point:" in text and "matching it:" in text and "points:" not in text.replace("0.1 points:", "")
    assert "zero: input_events, relayed_events, scaled_ops, pool_ops" in text and "scaled_ops      " not in text
    assert "sum of |spike coefficient|" in text  # mass explained
    header = next(i for i, line in enumerate(lines) if line.startswith("Per layer"))
    table = lines[header + 2:header + 6]
    assert [row.split()[:2] for row in table] == [["input", "input"], ["conv1", "if"], ["conv2", "if"], ["fc", "readout"]]


def test_inspect_shows_the_readout_and_the_whole_conversion(runner):
    outcome = runner.invoke(cli.main, ["inspect", EXAMPLE])
    assert outcome.exit_code == 0, outcome.output
    meta = read_network(EXAMPLE).meta
    assert "Readout: fc (readout, mode potential), output_scale 21.7" in outcome.output
    assert f"  residual_sums: {meta['residual_sums']}" in outcome.output  # whole, not cut at 400 characters
    assert "calibration_range" in outcome.output


# -- 8. what newcomers look for --------------------------------------------------------------------------------


def test_python_dash_m_evsim():
    done = subprocess.run([sys.executable, "-m", "evsim", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: evsim" in done.stdout and "compare" in done.stdout


def test_poisson_is_bernoulli_by_another_name(runner, small, tmp_path):
    out = tmp_path / "r.json"
    outcome = runner.invoke(cli.main, ["run", small, "-T", "4", "--encoder", "poisson", "--json", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert "encoder bernoulli" in outcome.output and json.loads(out.read_text())["run"]["encoder"] == "bernoulli"
    network = read_network(small)
    a, b = simulate(network, timesteps=4, encoder="poisson", seed=2), simulate(network, timesteps=4, encoder="bernoulli", seed=2)
    assert a.encoder == "bernoulli" and np.array_equal(a.pred, b.pred)
    assert np.array_equal(a.pop_counts_per_sample, b.pop_counts_per_sample)


def test_the_readme_says_what_the_extras_need_and_what_the_model_is():
    readme = " ".join((ROOT / "README.md").read_text().split())  # wrapped lines read as one
    for fragment in ("evsim[analysis]", "evsim[export]", "torch==2.13.0", "reset by subtraction", "no leak",
                     "inference only", "python -m evsim"):
        assert fragment in readme, fragment


# -- 10. the exporter's errors ---------------------------------------------------------------------------------


def _cnn(flatten=True):
    nn = torch.nn
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 2, 3), nn.ReLU()] + ([nn.Flatten()] if flatten else []) + [nn.Linear(2 * 4 * 4, 3)]
    return nn.Sequential(*layers)


def test_a_dataloader_is_calibration_like_its_tensor():
    from evsim.weights_io.export import convert_model

    x = torch.rand(20, 1, 6, 6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(20)), batch_size=6)
    from_loader, from_tensor = convert_model(_cnn(), calibration=loader), convert_model(_cnn(), calibration=x)
    assert from_loader.digest() == from_tensor.digest()
    assert from_loader.meta["calibration_range"] == [float(x.min()), float(x.max())]
    assert [p.name for p in from_loader.populations] == ["input", "conv1", "fc1"]  # not fx's _0, _3


def test_a_linear_without_flatten_is_an_export_error_saying_so():
    from evsim.weights_io.export import convert_model

    with pytest.raises(ExportError, match=r"node 'fc1' \(Linear\) fails on the example inputs: .*input has shape "
                                          r"\[2, 2, 4, 4\]: a Linear layer reads a flat .*nn.Flatten\(\)"):
        convert_model(_cnn(flatten=False), calibration=torch.rand(4, 1, 6, 6))


def test_exporting_into_a_missing_folder_is_an_export_error(tmp_path):
    from evsim.weights_io.export import export_model

    with pytest.raises(ExportError, match=r"the folder .*missing does not exist"):
        export_model(_cnn(), tmp_path / "missing" / "net.h5", calibration=torch.rand(4, 1, 6, 6))
