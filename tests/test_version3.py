"""Version 3 by hand (semantics.md, "Version 3"): reset to a value and the strict threshold, in both engines."""
import dataclasses

import numpy as np
import pytest

from evsim.network import Network, Population, Projection
from evsim.reference import run_reference
from evsim.simulate import simulate
from netgen import random_inputs, random_network


def both(network, inputs, T, encoder="analog"):
    """The event-driven engine's arrays, checked equal to the reference's, and the result."""
    result = simulate(network, inputs, timesteps=T, encoder=encoder, record_spikes=True, record_trace=True,
                      record_counts=True, dtype="float64")
    arrays = result.as_arrays()
    reference = run_reference(network, inputs, T, encoder)
    differ = [k for k in reference if not np.array_equal(arrays[k], reference[k])]
    assert not differ, f"engines differ in {differ[:6]}"
    return result, arrays


def scalar(x):
    return np.array(x, dtype=np.float64)


def one_neuron(current, coding="rate", **neuron):
    """An if neuron (theta 1, and -1 when `theta_neg`) driven by `current` per step, as its network's output."""
    pops = (Population("in", "input", (1,), 0, coding=coding, phase_period=2),
            Population("h", "if", (1,), 1, coding=coding, phase_period=2, theta_pos=scalar(1), **neuron))
    return Network(pops, (Projection("w", "dense", "in", "h", weight=np.array([[current]])),), "h")


def train(network, T, encoder="analog"):
    _, arrays = both(network, np.ones((1, 1), np.float32), T, encoder)
    return arrays["spikes/h/out/coef"][0, :, 0].tolist(), arrays["readout_v"][0, :, 0].tolist()


def test_fire_when_gt_waits_for_the_potential_to_pass_the_threshold():
    """0.25 per step: v = 1 exactly at t = 3. ge fires there (v -> 0); gt waits to t = 4 (1.25 -> 0.25)."""
    assert train(one_neuron(0.25), 6) == ([0, 0, 0, 1, 0, 0], [0.25, 0.5, 0.75, 0.0, 0.25, 0.5])
    assert train(one_neuron(0.25, fire_when="gt"), 6) == ([0, 0, 0, 0, 1, 0], [0.25, 0.5, 0.75, 1.0, 0.25, 0.5])


def test_gt_coefficient_at_an_exact_multiple_is_one_less():
    """Unbounded augmented, 2.0 per step: ge emits c = 2 (v = 2 -> 0); gt the largest c with c < v: c = 1 at
    t = 0 (v 2 -> 1, exactly the threshold), then v = 3: c = 2 (-> 1) every step after."""
    assert train(one_neuron(2.0, max_coeff=0), 3) == ([2, 2, 2], [0.0, 0.0, 0.0])
    assert train(one_neuron(2.0, max_coeff=0, fire_when="gt"), 3) == ([1, 2, 2], [1.0, 1.0, 1.0])


def test_reset_to_value_loses_what_lay_above():
    """0.75 per step, v_reset 0.25: v 0.75, 1.5 (fire -> 0.25), 1.0 (fire -> 0.25), 1.0 (fire), ...; by subtraction
    v would be 0.75, 1.5 -> 0.5, 1.25 -> 0.25, 1.0 -> 0."""
    assert train(one_neuron(0.75, reset="value", v_reset=scalar(0.25)), 4) == ([0, 1, 1, 1], [0.75, 0.25, 0.25, 0.25])
    assert train(one_neuron(0.75), 4) == ([0, 1, 1, 1], [0.75, 0.5, 0.25, 0.0])
    # no v_reset: to 0, and a capped augmented rest is lost too (max_coeff 2, 3.0 per step: 3 -> c = 2 -> 0)
    assert train(one_neuron(0.75, reset="value"), 2) == ([0, 1], [0.75, 0.0])
    assert train(one_neuron(3.0, reset="value", max_coeff=2), 2) == ([2, 2], [0.0, 0.0])


def test_a_negative_event_resets_to_the_value_too():
    """-0.75 per step, theta_neg -1, v_reset 0.5: v -0.75, then -1.5 (fire -1, v -> 0.5), then -0.25."""
    spikes, v = train(one_neuron(-0.75, theta_neg=scalar(-1), reset="value", v_reset=scalar(0.5)), 3)
    assert spikes == [0, -1, 0] and v == [-0.75, 0.5, -0.25]


def test_v_reset_is_a_potential_not_weighted_by_the_phase():
    """Phase coding, K = 2 (thresholds 1/2, 1/4; current weighted S_k): with current 1, v = 0.5 at t = 0 fires
    (>= 1/2) and resets to v_reset = 0.125 itself, not to 0.125 * S_k."""
    network = one_neuron(1.0, coding="phase", reset="value", v_reset=scalar(0.125))
    spikes, v = train(network, 2)
    assert spikes[0] == 1 and v[0] == 0.125


def test_the_readout_drive_counts_what_a_reset_to_value_removed():
    """The estimate is the input integrated: 0.75 per step whatever the reset lost."""
    result = simulate(one_neuron(0.75, reset="value", v_reset=scalar(0.25)), np.ones((1, 1), np.float32),
                      timesteps=4)
    assert result.readout_estimate[0, 0] == pytest.approx(0.75)


def test_random_version_3_networks_depend_on_their_version_3_rules():
    """The equivalence test (test_equivalence, configs v3-*) means something only if reset and fire_when change
    spike trains there: switch every if population back to version 1's rules and see trains differ."""
    changed = 0
    for seed in range(12):
        network = random_network(seed, coding="rate", version3=True)
        inputs = random_inputs(seed, network, 2, "analog")
        old = dataclasses.replace(network, populations=tuple(
            dataclasses.replace(p, reset="subtract", fire_when="ge", v_reset=None) for p in network.populations))
        a = simulate(network, inputs, timesteps=12, record_spikes=True)
        b = simulate(old, inputs, timesteps=12, record_spikes=True)
        changed += any(not np.array_equal(a.spikes[k][0], b.spikes[k][0]) for k in a.spikes)
    assert changed >= 6
