"""Figures: the right files, valid PNGs, data series equal to counts by hand, and the CLI's `plot` and `run --plot`."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evsim.cli.main import main
from evsim.counters import EVENTS
from evsim.errors import EvsimError
from evsim.analysis.plots import (
    MISSING_MATPLOTLIB,
    cumulative_events,
    firing_rates,
    operations_per_step,
    plot_comparison,
    plot_result,
)
from evsim.simulate import simulate
from evsim.weights_io import read_network

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ONE_PANEL, TWO_PANELS = (504, 768), (672, 768)   # pixels: 6.4 x 4.2 and 6.4 x 5.6 inches at 120 dpi
EVERY_FIGURE = {"accuracy.png": ONE_PANEL, "accuracy_vs_events.png": ONE_PANEL, "activity.png": TWO_PANELS,
                "firing_rate.png": ONE_PANEL, "agreement.png": TWO_PANELS}


@pytest.fixture(scope="module")
def network():
    return read_network(EXAMPLE)


@pytest.fixture(scope="module")
def result(network):
    """8 samples with labels and the ANN's outputs: every figure can be drawn."""
    samples = network.samples
    return simulate(network, samples.inputs[:8], samples.labels[:8], ann_outputs=network.ann.outputs[:8],
                    timesteps=16, record_counts=True, threads=1)


@pytest.fixture(scope="module")
def bare_result(network):
    """Inputs only: no labels, no ANN outputs."""
    return simulate(network, network.samples.inputs[:4], timesteps=8, threads=1)


def assert_png(path: Path, shape):
    """A real PNG, of the expected size, that shows something (not one flat colour)."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    pixels = imread(path)
    assert pixels.shape[:2] == shape, path
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10, path
    assert path.stat().st_size < 100_000, path


def test_plot_result_writes_every_figure(result, tmp_path):
    paths = plot_result(result, tmp_path / "figures", title="mnist_cnn.h5")
    assert {p.name for p in paths} == set(EVERY_FIGURE)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(EVERY_FIGURE)
    for path in paths:
        assert_png(path, EVERY_FIGURE[path.name])


def test_figures_without_their_data_are_skipped(bare_result, result, tmp_path):
    assert [p.name for p in plot_result(bare_result, tmp_path / "bare")] == ["activity.png", "firing_rate.png"]
    older = dataclasses.replace(result, population_sizes=[])  # a result file from before population sizes
    assert "firing_rate.png" not in {p.name for p in plot_result(older, tmp_path / "older")}
    with pytest.raises(EvsimError, match="population sizes"):
        firing_rates(older)


def test_firing_rates_equal_counts_by_hand(result, network):
    n, T = result.n_samples, result.timesteps
    by_hand = {}
    for p, pop in enumerate(network.populations):
        if pop.kind == "if":  # the analog input and the potential readout never fire
            by_hand[pop.name] = result.pop_counts[:, :, p, EVENTS].sum() / (n * T * pop.size)
    rates = firing_rates(result)
    assert list(rates) == ["conv1", "conv2"]  # the example's average pools are folded: no pool populations
    assert rates == pytest.approx(by_hand, rel=1e-12)
    assert all(0 < rate < 1 for rate in rates.values())


def test_plotted_counts_add_up_to_the_totals(result):
    per_sample = result.per_sample()
    operations = operations_per_step(result)
    assert {kind for _, kind in operations} == {"synaptic ops", "input MACs"}  # folded pools: no pool ops
    assert sum(ops.sum() for ops in operations.values()) == pytest.approx(
        per_sample["synaptic_ops"] + per_sample["pool_ops"] + per_sample["input_macs"])
    events = cumulative_events(result)
    assert np.all(np.diff(events) >= 0) and events[-1] == pytest.approx(per_sample["events"])


def test_plot_comparison_overlays_runs(result, bare_result, tmp_path):
    paths = plot_comparison([result, bare_result], ["labelled", "bare"], tmp_path)
    assert [p.name for p in paths] == ["accuracy.png", "accuracy_vs_events.png", "accuracy_vs_synaptic_ops.png",
                                       "agreement.png"]
    for path in paths:
        assert_png(path, ONE_PANEL)
    assert plot_comparison([bare_result], ["bare"], tmp_path / "none") == []
    with pytest.raises(EvsimError, match="2 names for 1 results"):
        plot_comparison([result], ["a", "b"], tmp_path)


def test_cli_run_plot_and_plot_draw_the_same_figures(tmp_path):
    runner = CliRunner()
    saved, from_run, from_file = tmp_path / "r.h5", tmp_path / "run", tmp_path / "plot"
    ran = runner.invoke(main, ["run", str(EXAMPLE), "-n", "8", "-T", "16", "--threads", "1", "-o", str(saved),
                               "--plot", str(from_run)])
    assert ran.exit_code == 0, ran.output
    plotted = runner.invoke(main, ["plot", str(saved), "--out", str(from_file), "--title", EXAMPLE.name])
    assert plotted.exit_code == 0, plotted.output
    for name, shape in EVERY_FIGURE.items():
        assert f"wrote {from_run / name}" in ran.output and f"wrote {from_file / name}" in plotted.output
        assert_png(from_file / name, shape)
        # Same title, same result read back from disk: the same picture, byte for byte.
        assert (from_run / name).read_bytes() == (from_file / name).read_bytes(), name


@pytest.mark.parametrize("content", ["network", "garbage"])
def test_cli_plot_rejects_what_is_not_a_result(tmp_path, content):
    bad = EXAMPLE if content == "network" else tmp_path / "garbage.h5"
    if content == "garbage":
        bad.write_text("not hdf5")
    out = CliRunner().invoke(main, ["plot", str(bad), "--out", str(tmp_path / "figures")])
    assert out.exit_code == 1
    assert out.output.startswith(f"Error: {bad}:") and "Traceback" not in out.output
    assert not (tmp_path / "figures").exists()


def test_missing_matplotlib_is_a_clean_error(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # `from matplotlib.figure import ...` fails
    with pytest.raises(EvsimError, match="pip install 'evsim\\[analysis\\]'"):
        plot_result(result, tmp_path)
    runner = CliRunner()
    result.save(tmp_path / "r.h5")
    out = runner.invoke(main, ["plot", str(tmp_path / "r.h5"), "--out", str(tmp_path / "figures")])
    assert out.exit_code == 1 and out.output.strip() == f"Error: {MISSING_MATPLOTLIB}"
    # `run --plot` refuses at once, before simulating.
    out = runner.invoke(main, ["run", str(EXAMPLE), "-n", "1", "-T", "1", "--plot", str(tmp_path / "figures")])
    assert out.exit_code == 1 and out.output.strip() == f"Error: {MISSING_MATPLOTLIB}"
    assert not (tmp_path / "figures").exists()
