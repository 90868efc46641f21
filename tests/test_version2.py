"""Version 2 by hand (semantics.md, "Version 2"), and the counts of spikes of inactivated neurons (SIN).

Every case runs both engines (the event-driven one and the dense reference)
and checks them against trains worked out by hand in the comments.
"""
import numpy as np
import pytest

from engines import assert_engine_equals_reference
from evsim.counters import EVENTS, SIN_EVENTS, SIN_MASS, SIN_VALUE
from evsim.network import Network, Population, Projection
from evsim.simulate import simulate
from netgen import random_inputs, random_network


def both(network, inputs, T, encoder="analog", **options):
    """The event-driven engine's arrays, checked equal to the reference's, and the result."""
    result = assert_engine_equals_reference(network, inputs, T, encoder, dtypes=("float64",), **options)[0]
    return result, result.as_arrays()


def scalar(x):
    return np.array(x, dtype=np.float64)


# -- rank: mass or value -------------------------------------------------------------


def maxpool_net(rank):
    """Two phase-coded pixels (K = 3) in one 1x2 max-pool window, into a relay, into a potential readout."""
    pops = (Population("in", "input", (1, 1, 2), 0, coding="phase", phase_period=3, encoding="phase"),
            Population("pool", "relay", (1, 1, 1), 1, coding="phase", phase_period=3),
            Population("out", "readout", (1,), 2, coding="phase", phase_period=3, theta_pos=scalar(1)))
    projs = (Projection("gate", "maxpool2d", "in", "pool", kernel=(1, 2), stride=(1, 2), rank=rank),
             Projection("read", "dense", "pool", "out", weight=np.ones((1, 1))))
    return Network(pops, projs, "out")


@pytest.mark.parametrize("rank", ["mass", "value"])
def test_max_pool_by_mass_and_by_value_pick_different_winners(rank):
    """x = (0.5, 0.375) = (100b, 011b): B emits 1/2 at k = 0; C emits 1/4, 1/8 at k = 1, 2.

    t:          0     1     2     3     4     5
    B emits    1/2    .     .    1/2    .     .
    C emits     .    1/4   1/8    .    1/4   1/8
    mass B, C  1,0   1,1   1,2   2,2   2,3   2,4    (ties: B, the first in the window)
    value B, C .5,0  .5,.25 .5,.375 1,.375 1,.625 1,.75
    by mass the winner's events pass: B at 0 and 3 (tie), C at 2, 4, 5; by value only B's.
    """
    network = maxpool_net(rank)
    _, arrays = both(network, np.array([[[[0.5, 0.375]]]], np.float32), 6, "phase")
    passed = arrays["spikes/pool/out/value"][0, :, 0, 0, 0]
    want = [0.5, 0, 0.125, 0.5, 0.25, 0.125] if rank == "mass" else [0.5, 0, 0, 0.5, 0, 0]
    assert passed.tolist() == want
    assert arrays["proj/gate/pool_ops"][0].tolist() == [1, 1, 1, 1, 1, 1]  # every source event, winner or not


def signed_readout(rank):
    """A ternary spikes readout: neuron 0 driven by -0.5 per step, neuron 1 by +0.25 (analog input 1)."""
    pops = (Population("in", "input", (1,), 0),
            Population("out", "readout", (2,), 1, theta_pos=scalar(1), theta_neg=scalar(-1), mode="spikes",
                       rank=rank))
    projs = (Projection("w", "dense", "in", "out", weight=np.array([[-0.5], [0.25]])),)
    return Network(pops, projs, "out")


@pytest.mark.parametrize("rank", ["mass", "value"])
def test_signed_spikes_readout_decides_by_mass_or_by_value(rank):
    """Neuron 0 emits -1 at t = 1, 3, 5, 7; neuron 1 emits +1 at t = 3, 7.

    From t = 1 neuron 0 has the larger mass (1 vs 0, 2 vs 1, ...) but the smaller value (-1 vs 0, ...): by mass
    it is predicted; by value neuron 1 (before any event, both at 0: larger v, neuron 1 at +0.25 t vs -0.5 t).
    """
    result, arrays = both(signed_readout(rank), np.ones((1, 1), np.float32), 8)
    assert arrays["spikes/out/out/coef"][0, :, 0].tolist() == [0, -1, 0, -1, 0, -1, 0, -1]
    assert arrays["spikes/out/out/coef"][0, :, 1].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    want = [1] + [0] * 7 if rank == "mass" else [1] * 8
    assert result.pred[0].tolist() == want
    assert arrays["readout_mass"][0, -1].tolist() == [4, 2]  # the recorded mass stays the sum of |c|


# -- drive: split or gated ---------------------------------------------------------------


def bif_net(drive, period, bias=0.0, onset=0):
    """One rate-coded bif neuron fed 0.75 per step as analog current (theta 1), into a potential readout."""
    pops = (Population("in", "input", (1,), 0),
            Population("pair", "bif", (1,), 1, phase_period=period, theta_pos=scalar(1), bias=scalar(bias),
                       drive=drive, bias_onset=onset),
            Population("out", "readout", (1,), 2, theta_pos=scalar(1)))
    projs = (Projection("w", "dense", "in", "pair", weight=np.array([[0.75]])),
             Projection("read", "dense", "pair", "out", weight=np.ones((1, 1))))
    return Network(pops, projs, "out")


# Gated, K = 2: the non-spiking unit integrates (A while t // 2 is even: t = 0, 1, 4, 5; B at t = 2, 3, 6, 7).
#   t=0,1: A 0.75, 1.5; B (spike phase) 0, no event.   t=2: A fires (1.5 -> 0.5); B 0.75.   t=3: A 0.5 no; B 1.5.
#   t=4: B fires (1.5 -> 0.5); A 1.25.   t=5: B 0.5 no; A 2.0.   t=6: A fires (2.0 -> 1.0); B 1.25.   t=7: A fires -> 0;
#   B 2.0.   t=8: B fires (2.0 -> 1.0); A 0.75.
# Gated, K = 3 (A integrates at t = 0..2, 6..8; B at 3..5):
#   t=0..2: A 2.25; B none.   t=3: A fires (-> 1.25); B .75.   t=4: A fires (-> .25); B 1.5.   t=5: A no; B 2.25.
#   t=6: B fires (-> 1.25); A 1.0.   t=7: B fires (-> .25); A 1.75.   t=8: B no; A 2.5.
GATED_TRAINS = {
    2: {"A": [0, 0, 1, 0, 0, 0, 1, 1, 0], "B": [0, 0, 0, 0, 1, 0, 0, 0, 1]},
    3: {"A": [0, 0, 0, 1, 1, 0, 0, 0, 0], "B": [0, 0, 0, 0, 0, 0, 1, 1, 0]},
}


@pytest.mark.parametrize("period", [2, 3])
def test_gated_bif_integrates_untagged_input_in_its_non_spike_phase_only(period):
    _, arrays = both(bif_net("gated", period), np.ones((1, 1), np.float32), 9)
    for unit, train in GATED_TRAINS[period].items():
        assert arrays[f"spikes/pair/{unit}/coef"][0, :, 0].tolist() == train, unit
    # the analog current is one MAC per step, gated or not; the pair's events reach the readout's one unit
    assert arrays["proj/w/input_macs"][0].tolist() == [1] * 9


def test_split_bif_gives_both_units_the_input():
    """Split, K = 2: both units take 0.75 each step. B: t=1 fires (1.5 -> .5), A: t=2 (2.25 -> 1.25), t=3 (2.0 -> 1.0)."""
    _, arrays = both(bif_net("split", 2), np.ones((1, 1), np.float32), 4)
    assert arrays["spikes/pair/A/coef"][0, :, 0].tolist() == [0, 0, 1, 1]
    assert arrays["spikes/pair/B/coef"][0, :, 0].tolist() == [0, 1, 0, 0]


def test_untagged_events_into_a_gated_pair_reach_one_unit_and_cost_one_op_each():
    """An if layer firing every step (current 1, theta 1) feeds the pair with weight 0.75: the same trains as
    the analog current above, and every event costs one synaptic op, not two."""
    pops = (Population("in", "input", (1,), 0),
            Population("relay_if", "if", (1,), 1, theta_pos=scalar(1)),
            Population("pair", "bif", (1,), 2, phase_period=2, theta_pos=scalar(1), drive="gated"),
            Population("out", "readout", (1,), 3, theta_pos=scalar(1)))
    projs = (Projection("drive", "dense", "in", "relay_if", weight=np.ones((1, 1))),
             Projection("w", "dense", "relay_if", "pair", weight=np.array([[0.75]])),
             Projection("read", "dense", "pair", "out", weight=np.ones((1, 1))))
    _, arrays = both(Network(pops, projs, "out"), np.ones((1, 1), np.float32), 9)
    assert arrays["spikes/pair/A/coef"][0, :, 0].tolist() == GATED_TRAINS[2]["A"]
    assert arrays["proj/w/ac_ops"][0].tolist() == [1] * 9
    split = Network(tuple(p if p.kind != "bif" else Population(**{**p.__dict__, "drive": "split"}) for p in pops),
                    projs, "out")
    _, arrays = both(split, np.ones((1, 1), np.float32), 9)
    assert arrays["proj/w/ac_ops"][0].tolist() == [2] * 9


def test_gated_bias_reaches_the_integrating_unit_from_its_onset():
    """Gated, K = 2, no input, bias 0.5 from t = 2: B integrates at t = 2, 3 (1.0) and fires at t = 4 (its
    phase); A integrates at t = 4, 5 and fires at t = 6. bias_ops: one unit per step from the onset."""
    network = bif_net("gated", 2, bias=0.5, onset=2)
    _, arrays = both(network, np.zeros((1, 1), np.float32), 8)
    assert arrays["spikes/pair/B/coef"][0, :, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert arrays["spikes/pair/A/coef"][0, :, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    assert arrays["pop/pair/bias_ops"][0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


# -- bias_onset --------------------------------------------------------------------------


@pytest.mark.parametrize("onset,first_spike", [(0, 3), (3, 6), (1000, None)])
def test_bias_starts_at_its_onset(onset, first_spike):
    """An if neuron with bias 0.25 and no input reaches theta 1 after four biased steps."""
    pops = (Population("in", "input", (1,), 0),
            Population("h", "if", (1,), 1, theta_pos=scalar(1), bias=scalar(0.25), bias_onset=onset),
            Population("out", "readout", (1,), 2, theta_pos=scalar(1)))
    projs = (Projection("w", "dense", "in", "h", weight=np.ones((1, 1))),
             Projection("read", "dense", "h", "out", weight=np.ones((1, 1))))
    _, arrays = both(Network(pops, projs, "out"), np.zeros((1, 1), np.float32), 8)
    spikes = arrays["spikes/h/out/coef"][0, :, 0]
    assert (np.flatnonzero(spikes)[:1].tolist() or [None]) == [first_spike]
    assert arrays["pop/h/bias_ops"][0].tolist() == [int(t >= onset) for t in range(8)]


# -- spikes of inactivated neurons -------------------------------------------------------------


def sin_net(coding="rate"):
    """Two double-threshold neurons driven by +0.5 and -0.5 per step: +1 and -1 events every other step."""
    pops = (Population("in", "input", (2,), 0),
            Population("h", "if", (2,), 1, coding=coding, phase_period=2, theta_pos=scalar(1),
                       theta_neg=scalar(-1)),
            Population("out", "readout", (1,), 2, theta_pos=scalar(1)))
    projs = (Projection("w", "identity", "in", "h", scale=0.5),
             Projection("read", "dense", "h", "out", weight=np.ones((1, 2))))
    return Network(pops, projs, "out")


@pytest.mark.parametrize("signs,sin", [((1, -1), (0, 0)), ((-1, -1), (2, 0)), ((0, 0), (2, 2)), ((0.3, 2.5), (0, 2))])
def test_sin_counts_the_events_whose_sign_the_ann_contradicts(signs, sin):
    """Rate coding, T = 4: neuron 0 emits +1 at t = 1, 3; neuron 1 emits -1 at t = 1, 3. With the ANN's
    activations `signs`, an event is a SIN where its sign differs from the activation's (0: any event)."""
    network = sin_net()
    ann = {"h": np.array([signs], dtype=np.float64)}
    result, arrays = both(network, np.array([[1, -1]], np.float32), 4, ann_signs=ann)
    assert arrays["spikes/h/out/coef"][0].tolist() == [[0, 0], [1, -1], [0, 0], [1, -1]]
    assert int(arrays["pop/h/sin_events"].sum()) == sum(sin)
    assert arrays["pop/h/sin_events"][0].tolist() == [0, int(sin[0] > 0) + int(sin[1] > 0), 0,
                                                      int(sin[0] > 0) + int(sin[1] > 0)]
    assert result.sin_populations == ["h"]
    assert result.totals()["sin_value"] == sum(sin)  # binary rate-coded spikes carry 1 each


def test_sin_value_weighs_phase_coded_events():
    """Phase coding, K = 2: thresholds S_k (1/2, 1/4); current 0.5 S_k per step. Neuron 0 (+) fires at t = 1 (v 0.25 +
    0.125 = 0.375 >= 0.25) and t = 3; its events carry S_1 = 1/4 each. All of them contradict an ANN sign of 0."""
    network = sin_net("phase")
    result, arrays = both(network, np.array([[1, 0]], np.float32), 4, ann_signs={"h": np.zeros((1, 2))})
    coef = arrays["spikes/h/out/coef"][0, :, 0]
    values = arrays["spikes/h/out/value"][0, :, 0]
    assert arrays["pop/h/sin_events"].sum() == np.count_nonzero(coef) > 0
    assert result.totals()["sin_value"] == np.abs(values).sum() < np.count_nonzero(coef)  # values S_k < 1


def test_without_ann_signs_nothing_is_counted():
    result, arrays = both(sin_net(), np.array([[1, -1]], np.float32), 4)
    assert arrays["pop/h/sin_events"].sum() == 0 and result.sin_populations == []


def test_ann_signs_must_fit_the_network():
    from evsim.errors import SimulationInputError

    network, x = sin_net(), np.array([[1, -1]], np.float32)
    for signs, problem in (({"nope": np.zeros((1, 2))}, "not a population"), ({"out": np.zeros((1, 1))}, "hidden"),
                           ({"h": np.zeros((1, 3))}, "shape"), ({"h": np.full((1, 2), np.nan)}, "finite")):
        with pytest.raises(SimulationInputError, match=problem):
            simulate(network, x, timesteps=2, ann_signs=signs)


def test_sin_equals_a_count_from_the_spike_trains_on_random_networks():
    """Engine = reference (both()), and both = the count from recorded trains against random ANN signs."""
    counted = sum(_check_sin_from_trains(seed) for seed in range(6))
    assert counted > 50  # the checks had something to count


def _check_sin_from_trains(seed) -> int:
    network = random_network(300 + seed, coding="mixed", bif=True, version2=True)
    inputs = random_inputs(seed, network, 2, "phase")
    rng = np.random.default_rng(seed)
    hidden = [p for p in network.populations if p.spec.membrane and p.name != network.output]
    ann = {p.name: rng.integers(-1, 2, size=(2, *p.shape)).astype(np.float64) for p in hidden}
    result, arrays = both(network, inputs, 8, "phase", ann_signs=ann)
    for pop in hidden:
        p = network.populations.index(pop)
        want_events = np.zeros((2, 8), np.int64)
        want_mass = np.zeros((2, 8), np.int64)
        want_value = np.zeros((2, 8))
        for (name, _tag), (coef, value) in result.spikes.items():
            if name != pop.name:
                continue
            sign = np.sign(ann[name])[:, None]
            against = (coef != 0) & (np.sign(coef) != sign)
            axes = tuple(range(2, coef.ndim))
            want_events += against.sum(axis=axes)
            want_mass += (np.abs(coef) * against).sum(axis=axes)
            want_value += (np.abs(value) * against).sum(axis=axes)
        np.testing.assert_array_equal(result.pop_counts[:, :, p, SIN_EVENTS], want_events)
        np.testing.assert_array_equal(result.pop_counts[:, :, p, SIN_MASS], want_mass)
        np.testing.assert_array_equal(result.pop_values[:, :, p, SIN_VALUE], want_value)
    assert (result.pop_counts[..., EVENTS] >= result.pop_counts[..., SIN_EVENTS]).all()
    return int(result.pop_counts[..., SIN_EVENTS].sum())


def test_ann_signs_in_a_function_batch_by_batch_equal_the_arrays_at_once():
    network = random_network(7, coding="rate", bif=True, version2=True)
    inputs = random_inputs(7, network, 5, "analog")
    hidden = [p for p in network.populations if p.spec.membrane and p.name != network.output]
    rng = np.random.default_rng(1)
    ann = {p.name: rng.normal(size=(5, *p.shape)) for p in hidden}
    at_once = simulate(network, inputs, timesteps=6, ann_signs=ann, batch_size=5)
    rows = iter([slice(0, 2), slice(2, 4), slice(4, 5)])

    def batches(x):
        chunk = next(rows)
        assert np.array_equal(x, inputs[chunk])
        return {name: a[chunk] for name, a in ann.items()}

    chunked = simulate(network, inputs, timesteps=6, ann_signs=batches, batch_size=2)
    np.testing.assert_array_equal(chunked.pop_counts_per_sample, at_once.pop_counts_per_sample)
    np.testing.assert_array_equal(chunked.pop_values_per_step, at_once.pop_values_per_step)
    assert chunked.sin_populations == at_once.sin_populations == [p.name for p in hidden]
