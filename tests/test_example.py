"""End to end on the bundled real network: the SNN reaches its ANN's accuracy, through the API and the CLI."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from evsim.cli.main import main
from evsim.simulate import simulate
from evsim.weights_io import read_network

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5"


@pytest.fixture(scope="module")
def network():
    return read_network(EXAMPLE)


@pytest.fixture(scope="module")
def result(network):
    return simulate(network, timesteps=256)


def test_snn_reaches_ann_accuracy_within_one_point(network, result):
    samples = network.samples
    ann_accuracy = (network.ann.outputs.argmax(axis=1) == samples.labels).mean()  # ANN on the same images
    snn = result.accuracy()
    assert len(samples.labels) == 500 and ann_accuracy > 0.95
    assert snn[-1] >= ann_accuracy - 0.01
    assert snn[15] < snn[-1]  # accuracy builds up over time: after 16 steps it is lower than after 256


def test_ann_macs_match_the_architecture(network):
    # the ANN's MACs, average pools included, although the file folds them into the next layer
    # 12c5 on 28x28, 2x2 avgpool, 64c5 on 12x12, 2x2 avgpool, 1024 -> 10; pools: one add per pooled input element
    conv1, conv2, fc = 12 * 24 * 24 * 1 * 25, 64 * 8 * 8 * 12 * 25, 64 * 4 * 4 * 10
    pools = 12 * 24 * 24 + 64 * 8 * 8
    assert network.ann.macs == conv1 + conv2 + fc + pools


def test_counts_are_consistent_on_the_real_network(network, result):
    totals = result.totals()
    conv1_events = result.population_count("conv1", "events").sum()
    # the pools are folded: every conv1 event is delivered through conv2, a 10x10 kernel at stride 2 (pool1 folded
    # into the 5x5 conv), to 64 channels at 1 to 5 x 5 output positions, and there are no pool operations
    assert totals["pool_ops"] == 0
    assert 64 * conv1_events <= result.projection_count("conv2", "ac_ops").sum() <= 64 * 25 * conv1_events
    # analog input: every pixel's fan-out summed is the ANN's first layer (a valid 5x5 conv); MNIST's zero
    # background costs nothing
    per_step = totals["input_macs_dense"] / (result.n_samples * 256)
    assert per_step == 12 * 24 * 24 * 25
    assert 0 < totals["input_macs"] < 0.5 * totals["input_macs_dense"]
    assert totals["scaled_ops"] == 0 and totals["input_events"] == 0  # binary spikes, analog input
    assert 0 < totals["synaptic_ops"] / result.n_samples < 100 * network.ann.macs


def test_main_command_on_the_bundled_example():
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "--timesteps", "64", "--samples", "20"])
    assert result.exit_code == 0, result.output
    assert "ANN accuracy" in result.output and "  t  " + "".join(f"{t:>8}" for t in (1, 2, 4, 8, 16, 32, 64)) in result.output
    assert "synaptic ops (ac + scaled) per ANN MAC" in result.output
