"""Derived measures against small cases worked by hand or by plain NumPy."""
import numpy as np
import pytest

from evsim.analysis.metrics import (accuracy_curve, cosine_similarity, decision_times, early_decision_latency,
                           mean_abs_difference, readout_estimates, step_weights)


def test_accuracy_curve():
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    assert accuracy_curve(pred, np.array([1, 2])).tolist() == [0.5, 1.0, 0.5]


@pytest.mark.parametrize("tolerance,expected", [(0.0, 5), (0.05, 4), (0.1, 4), (0.15, 2), (0.5, 1)])
def test_early_decision_latency(tolerance, expected):
    acc = np.array([0.5, 0.9, 0.85, 0.95, 0.98, 0.98])  # ANN at 0.98
    assert early_decision_latency(acc, 0.98, tolerance) == expected


def test_latency_is_none_when_the_end_is_below():
    assert early_decision_latency(np.array([0.99, 0.97]), 0.98, 0.0) is None
    # an SNN above its ANN is within any tolerance
    assert early_decision_latency(np.array([0.99, 0.99]), 0.98, 0.0) == 1


def test_decision_times():
    pred = np.array([[3, 3, 3, 3],    # never changes: decided at 1
                     [1, 2, 2, 2],    # last change between t=1 and t=2: 2
                     [1, 2, 1, 2],    # changes up to the end: 4
                     [0, 0, 5, 5]])   # 3
    assert decision_times(pred).tolist() == [1, 2, 4, 3]


def test_step_weights_rate_and_phase():
    assert step_weights(3, "rate", 1).tolist() == [1, 2, 3]
    assert step_weights(4, "phase", 2).tolist() == [0.5, 0.75, 1.25, 1.5]


def test_estimates_cosine_and_difference_by_hand():
    drive = np.array([[[2.0, 0.0], [2.0, 2.0]]])          # one sample, T=2, N=2
    est = readout_estimates(drive, np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(est, [[[2.0, 0.0], [1.0, 3.0]]])
    ann = np.array([[1.0, 3.0]])
    cos = cosine_similarity(est, ann)
    np.testing.assert_allclose(cos, [[2.0 / (2.0 * np.sqrt(10.0)), 1.0]])
    np.testing.assert_allclose(mean_abs_difference(est, ann), [[(1.0 + 3.0) / 2, 0.0]])
    # a silent readout has no direction: cosine 0, not NaN
    assert cosine_similarity(np.zeros((1, 1, 2)), ann).tolist() == [[0.0]]


def test_readout_estimates_from_the_engine_match_spike_trains():
    """Spiking readouts: drive = potential - v_init + sum of c x threshold x S_k over its own spikes."""
    from evsim.simulate import simulate
    from netgen import random_inputs, random_network

    for seed, coding in [(2, "rate"), (5, "phase"), (9, "rate")]:
        network = random_network(seed, coding=coding, readout_mode="spikes")
        out = network.output_population
        inputs = random_inputs(seed, network, 2, "analog")
        result = simulate(network, inputs, timesteps=12, record_spikes=True, record_trace=True, dtype="float64")
        coef, value = result.spikes[(out.name, "out")]
        th_pos, th_neg = out.expand("theta_pos"), out.expand("theta_neg")
        sk = np.where(coef != 0, value / np.where(coef != 0, coef, 1), 0)  # S_k of each spike
        discharged = np.where(coef > 0, coef * th_pos, coef * -th_neg) * sk
        drive = result.readout_trace - out.expand("v_init") + discharged.cumsum(axis=1)
        weights = step_weights(12, out.coding, out.phase_period)
        np.testing.assert_allclose(result.readout_estimate, readout_estimates(drive, weights, None)[:, -1])
        assert np.abs(coef).sum() > 0  # the readout does spike, so the discharged part is exercised


def test_agreement_on_the_bundled_network():
    from pathlib import Path

    from evsim.simulate import simulate
    from evsim.weights_io import read_network

    network = read_network(Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5")
    result = simulate(network, timesteps=64)
    ann = network.ann.outputs
    assert result.cosine.shape == (500, 64) and result.abs_difference.shape == (500, 64)
    # potential readout: the estimate is (v - v_init) / t x output_scale, computed here by hand
    by_hand = result.readout_v / 64 * network.output_scale
    np.testing.assert_allclose(result.readout_estimate, by_hand, rtol=1e-6)
    cos_by_hand = (by_hand * ann).sum(1) / np.linalg.norm(by_hand, axis=1) / np.linalg.norm(ann, axis=1)
    np.testing.assert_allclose(result.cosine[:, -1], cos_by_hand, rtol=1e-9)
    curve = result.cosine.mean(axis=0)
    assert curve[-1] > 0.99 and curve[-1] > curve[3]  # agreement builds up over time
    assert result.abs_difference.mean(axis=0)[-1] < result.abs_difference.mean(axis=0)[3]


def test_step_weights_count_from_the_readout_onset():
    from evsim.analysis.metrics import readout_estimates, step_weights

    assert step_weights(5, "rate", 1, onset=2).tolist() == [0, 0, 1, 2, 3]
    assert step_weights(4, "phase", 2, onset=2).tolist() == [0, 0, 0.5, 0.75]
    drive = np.array([[[0.0], [0.0], [2.0], [4.0], [6.0]]])
    # before the onset nothing can have arrived: the estimate is 0, not a division by zero
    assert readout_estimates(drive, step_weights(5, "rate", 1, onset=2), 1.0)[0, :, 0].tolist() == [0, 0, 2, 2, 2]
