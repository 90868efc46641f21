"""Bistable (bif) pairs, the A/B wiring, spiking max-pool ties and phase coding, checked by hand (issue 6).

Every network here is run by the event-driven engine (float64 and float32)
and by the dense reference, which must agree bit for bit (as in
test_equivalence). On top of that the tests hold the engine to
semantics.md from its recorded spike trains:

* gating: a bif unit fires only in its spike phase (A when `t // K` is odd,
  B when even), for every bif population and every relay that forwards its
  tagged events, including K = 1, T not a multiple of K and the first period;
* reception: `replay` re-simulates one population alone, in plain NumPy,
  from the recorded spikes of its sources and the wiring rule (a bif
  target's A units take B events, its B units A events, untagged events reach
  both, a non-bif target takes A and B alike); the engine's spikes must equal
  the replay, and the replays under wrong wirings must not;
* hand-worked spike trains for single neurons, the max-pool tie rule, the
  phase encoder's binary expansion and the counts (accounting.md).

Units are numbered 0 = A and 1 = B throughout.
"""
import dataclasses
import functools

import numpy as np
import pytest

from evsim.counters import POPULATION_COUNTERS, PROJECTION_COUNTERS
from evsim.network import Network, Population, Projection
from engines import assert_engine_equals_reference, assert_same_arrays
from evsim.reference import projection_matrices
from evsim.simulate import simulate
from evsim.weights_io import read_network, write_network
from netgen import dyadic, random_inputs, random_network

A, B = 0, 1
PARAMETERS = ("theta_pos", "theta_neg", "v_init", "bias")


# -- building small networks by hand -----------------------------------------------------------

def population(name, kind, shape, **fields):
    """A population; neuron parameters become float arrays (theta_pos 1 by default where there is a membrane)."""
    if kind in ("if", "bif", "readout"):
        fields.setdefault("theta_pos", 1.0)
    for key in PARAMETERS:
        if fields.get(key) is not None:
            fields[key] = np.asarray(fields[key], dtype=np.float64)
    return Population(name=name, kind=kind, shape=tuple(shape), order=0, **fields)


def projection(kind, source, target, **fields):
    if fields.get("weight") is not None:
        fields["weight"] = np.asarray(fields["weight"], dtype=np.float64)
    return Projection(name=f"{source}_{target}", kind=kind, source=source, target=target, **fields)


def network(pops, projs, output=None):
    """Populations in the given (topological) order; the output is the last one unless named."""
    pops = tuple(dataclasses.replace(p, order=i) for i, p in enumerate(pops))
    return Network(populations=pops, projections=tuple(projs), output=output or pops[-1].name)


def one(source, target):
    """A weight-1 dense projection between two one-neuron populations."""
    return projection("dense", source, target, weight=[[1.0]])


# -- running: engine == reference --------------------------------------------------------------

def run(net, inputs, T, encoder="analog"):
    """Run the engine in float64 and float32; both must equal the dense reference exactly. Returns the float64 run."""
    return assert_engine_equals_reference(net, inputs, T, encoder, 0, dtypes=("float64", "float32"), threads=1)[0]


def train(result, pop, tag="out"):
    """Spike coefficients of one population (and tag) as [n, T, neurons]."""
    coef = result.spikes[(pop, tag)][0]
    return coef.reshape(*coef.shape[:2], -1)


def steps(result, pop, tag="out", sample=0, neuron=0):
    """The steps at which one neuron emitted an event."""
    return np.flatnonzero(train(result, pop, tag)[sample, :, neuron]).tolist()


def pop_count(result, pop, counter):
    """[n, T] per-sample per-step count of one population."""
    return result.pop_counts[:, :, result.populations.index(pop), POPULATION_COUNTERS.index(counter)]


def proj_count(result, proj, counter):
    return result.proj_counts[:, :, result.projections.index(proj), PROJECTION_COUNTERS.index(counter)]


# -- gating, from the recorded spikes ----------------------------------------------------------

def gating_population(net, pop):
    """The bif population whose phase gates `pop`'s tagged events (itself, or the source behind its relays)."""
    while pop.kind == "relay":
        pop = net.population(net.incoming(pop.name)[0].source)
    return pop if pop.kind == "bif" else None


def a_phase(pop, T):
    """[T] True where the A units of bif `pop` may fire (period index t // K odd); B may fire elsewhere."""
    return (np.arange(T) // pop.phase_period) % 2 == 1


def assert_gated(net, result):
    """No A event outside an odd period, no B event outside an even one; returns (A events, B events) seen."""
    seen = np.zeros(2, dtype=np.int64)
    for pop in net.populations:
        gate = gating_population(net, pop)
        if gate is None:
            assert (pop.name, "A") not in result.spikes
            continue
        odd = a_phase(gate, result.timesteps)
        a, b = train(result, pop.name, "A") != 0, train(result, pop.name, "B") != 0
        bad_a = np.flatnonzero((a & ~odd[None, :, None]).any(axis=(0, 2)))
        assert not bad_a.size, f"{pop.name}: A events at steps {bad_a} of even periods"
        assert not b[:, odd].any(), f"{pop.name}: B event at an odd period"
        seen += a.sum(), b.sum()
    return seen


# -- reception: re-simulating one population from its sources' recorded spikes -------------------

#: Which units of a bif target an event of each tag reaches (semantics.md, BSNN eq. 15) ...
CROSSED = {"A": (B,), "B": (A,), "out": (A, B)}
#: ... and wrong rules, to show that the replay tells them apart.
STRAIGHT = {"A": (A,), "B": (B,), "out": (A, B)}
UNTAGGED_TO_A_ONLY = {"A": (B,), "B": (A,), "out": (A,)}
#: A non-bif target takes A and B events alike; the wrong rule drops B events.
PLAIN = {"A": (0,), "B": (0,), "out": (0,)}
A_EVENTS_ONLY = {"A": (0,), "B": (), "out": (0,)}


def step_weight(pop, t):
    return 0.5 ** (1 + t % pop.phase_period) if pop.coding == "phase" else 1.0


def fire_units(v, pop, sk):
    """The fire rule of semantics.md on potentials v [n, N] (updated in place): signed coefficients."""
    coef = np.zeros(v.shape, dtype=np.int64)
    rules = [(1, pop.expand("theta_pos") * sk)]
    if pop.theta_neg is not None:
        rules.append((-1, pop.expand("theta_neg") * sk))
    done = np.zeros(v.shape, dtype=bool)
    for sign, th in rules:
        th = np.broadcast_to(th, v.shape)
        hit = ~done & (sign * v >= sign * th)
        c = np.ones(v.shape, dtype=np.int64)
        if pop.max_coeff != 1:  # c th <= v < (c + 1) th, exactly
            c = np.maximum(np.floor(v / th), 1).astype(np.int64)
            c -= (c > 1) & (sign * c * th > sign * v)
            c += sign * (c + 1) * th <= sign * v
            if pop.max_coeff > 0:
                c = np.minimum(c, pop.max_coeff)
        v[hit] -= (c * th)[hit]
        coef[hit] = sign * c[hit]
        done |= hit
    return coef


def replay(net, pop, result, inputs, encoder, wiring=None):
    """Simulate population `pop` alone from the engine's recorded spikes of its sources.

    Returns ({tag: coefficients [n, T, N]}, potential of unit 0 [n, T, N]).
    `wiring` maps an event tag to the units it reaches (default: CROSSED
    for a bif target, PLAIN otherwise). The analog current and the bias,
    weighted by `pop`'s own S_k, reach every unit; a bif unit compares only
    in its spike phase.
    """
    n, T, N = len(inputs), result.timesteps, pop.size
    units = 2 if pop.kind == "bif" else 1
    wiring = wiring or (CROSSED if pop.kind == "bif" else PLAIN)
    x = np.asarray(inputs, dtype=np.float64).reshape(n, -1)
    v = np.tile(pop.expand("v_init"), (n, units, 1))
    out = {tag: np.zeros((n, T, N), dtype=np.int64) for tag in (("A", "B") if pop.kind == "bif" else ("out",))}
    trace = np.zeros((n, T, N))
    incoming = [(q.source, projection_matrices(q, net.population(q.source), pop)[0]) for q in net.incoming(pop.name)]
    for t in range(T):
        sk = step_weight(pop, t)
        for source, W in incoming:
            if source == net.input.name and encoder == "analog":
                v += (x @ W.T * sk)[:, None, :]
                continue
            for (name, tag), (_, value) in result.spikes.items():
                if name == source:
                    drive = value[:, t].reshape(n, -1) @ W.T
                    for u in wiring[tag]:
                        v[:, u] += drive
        v += pop.expand("bias") * sk
        if pop.fires:
            if pop.kind == "bif":
                unit, tag = (A, "A") if a_phase(pop, T)[t] else (B, "B")
            else:
                unit, tag = 0, "out"
            out[tag][:, t] = fire_units(v[:, unit], pop, sk)
        trace[:, t] = v[:, 0]
    return out, trace


def replay_relay(net, relay, result, by_tag=False, ties_to_last=False):
    """A relay's trains from its source's recorded trains by the max-pool rule of semantics.md.

    The winner of a window at step t has the most spike mass emitted up to
    and including t, A plus B for a bif source (`by_tag`: the mass of the
    tag firing at t, a wrong rule); ties go to the first in row-major window
    order (`ties_to_last`: a wrong rule).
    """
    proj = net.incoming(relay.name)[0]
    source = net.population(proj.source)
    windows = [np.flatnonzero(row) for row in projection_matrices(proj, source, relay)[1]]  # C-major = row-major
    coefs = {tag: train(result, source.name, tag) for (name, tag) in result.spikes if name == source.name}
    total = np.cumsum(sum(np.abs(c) for c in coefs.values()), axis=1)
    out = {}
    for tag, coef in coefs.items():
        mass = np.cumsum(np.abs(coef), axis=1) if by_tag else total
        winners = []
        for members in windows:
            m = mass[:, :, members]
            pick = m.shape[2] - 1 - np.argmax(m[:, :, ::-1], axis=2) if ties_to_last else np.argmax(m, axis=2)
            winners.append(members[pick])
        out[tag] = np.take_along_axis(coef, np.stack(winners, axis=2), axis=2)
    return out


def replay_matches(net, pop, result, inputs, encoder, wiring=None):
    """Whether `pop`'s recorded trains (and, for a potential readout output, its potentials) equal the replay."""
    if pop.kind == "relay":
        want = replay_relay(net, pop, result)
        return all(np.array_equal(train(result, pop.name, tag), c) for tag, c in want.items())
    trains, trace = replay(net, pop, result, inputs, encoder, wiring)
    same = all(np.array_equal(train(result, pop.name, tag), c) for tag, c in trains.items() if pop.fires)
    if pop.name == net.output and not pop.fires:
        same &= np.array_equal(result.readout_trace, trace)
    return same


def assert_received_by_wiring(net, result, inputs, encoder):
    """Every population's spikes equal its replay from its sources' spikes under the semantics' wiring."""
    for pop in net.populations:
        if pop.kind != "input" and (pop.fires or pop.kind == "relay" or pop.name == net.output):
            assert replay_matches(net, pop, result, inputs, encoder), f"{pop.name} did not receive by the wiring rule"


# == 1. Hand-worked single bif neurons: gating, the first period, K = 1, T not a multiple of K ==

# A bif neuron fed a constant current of 0.5 per step (theta 1, rate coding, binary, v_init 0).
# Both units integrate the current every step; A compares only in odd periods p = t // K, B in even.
#
# K = 3, T = 10: periods [0 1 2] B, [3 4 5] A, [6 7 8] B, [9] A (the last one cut short).
#   t   :  0   1   2   3   4   5   6   7   8   9
#   v_B : .5  1>0 .5   1  1.5  2  2.5>1.5 2>1 1.5>.5  1     B fires at 1, 6, 7, 8 (one spike a step: binary)
#   v_A : .5   1  1.5 2>1 1.5>.5 1>0 .5   1  1.5  2>1       A fires at 3, 4, 5, 9
# In the first period only B fires; A fires in the cut-short last period.
# K = 1, T = 6: A and B alternate every step (B at even t, A at odd t).
#   v_B : .5 (compares, < 1), 1, 1.5>.5, 1, 1.5>.5, 1     B fires at 2, 4
#   v_A : .5, 1>0 (compares), .5, 1>0, .5, 1>0            A fires at 1, 3, 5
SINGLE = {  # K, T, A steps, B steps
    "K3-T10": (3, 10, [3, 4, 5, 9], [1, 6, 7, 8]),
    "K1-T6": (1, 6, [1, 3, 5], [2, 4]),
}


def single_bif(K, x_weight=1.0, bias=0.0):
    """input (analog) -> dense -> bif z -> dense -> readout, one neuron each."""
    pops = [population("in", "input", (1,)), population("z", "bif", (1,), phase_period=K, bias=bias),
            population("out", "readout", (1,))]
    return network(pops, [projection("dense", "in", "z", weight=[[x_weight]]), one("z", "out")])


@pytest.mark.parametrize("current", ["input", "input-and-bias"])
@pytest.mark.parametrize("case", SINGLE)
def test_single_bif_neuron_by_hand(case, current):
    K, T, a_steps, b_steps = SINGLE[case]
    # the same 0.5 per step: all from the input, or half from the input and half from the bias
    bias = 0.0 if current == "input" else 0.25
    net = single_bif(K, x_weight=1.0 - 2 * bias, bias=bias)
    x = np.full((1, 1), 0.5, dtype=np.float32)
    result = run(net, x, T)
    assert steps(result, "z", "A") == a_steps
    assert steps(result, "z", "B") == b_steps
    assert_gated(net, result)
    # the readout integrates A and B events alike (value 1 each): its potential counts them
    events = np.zeros(T, dtype=np.int64)
    events[a_steps + b_steps] = 1
    np.testing.assert_array_equal(result.readout_trace[0, :, 0], np.cumsum(events))
    # counts: one comparison per neuron and step (only the unit in its spike phase compares), although
    # both units integrate; a bias is added to both units; the input MAC is shared by A and B
    np.testing.assert_array_equal(pop_count(result, "z", "neuron_updates")[0], np.ones(T))
    np.testing.assert_array_equal(pop_count(result, "z", "bias_ops")[0], np.full(T, 2 if bias else 0))
    np.testing.assert_array_equal(pop_count(result, "z", "events_A")[0], np.isin(np.arange(T), a_steps))
    np.testing.assert_array_equal(pop_count(result, "z", "events_B")[0], np.isin(np.arange(T), b_steps))
    np.testing.assert_array_equal(pop_count(result, "z", "events")[0], events)
    np.testing.assert_array_equal(proj_count(result, "in_z", "input_macs")[0], np.ones(T))
    np.testing.assert_array_equal(proj_count(result, "z_out", "ac_ops")[0], events)


# K is per population: the same bif neuron (current 0.75 a step, v_init 0.5, theta 1) with K = 1, 2, 3.
#   K = 1: B 1.25>.25 | A 2>1 | B 1.75>.75 | A 2.5>1.5 ...         B at even t, A at odd t: every step
#   K = 2: B 1.25>.25, 1>0 | A 2.75>1.75, 2.5>1.5 | B 2.25>1.25, 2>1 | A ... every step
#   K = 3: B 1.25>.25, 1>0, .75 (silent) | A 3.5>2.5, 3.25>2.25, 3>2 | B 3.75>2.75, 3.5>2.5, 3.25>2.25 |
#          A 5>4, 4.75>3.75                                          all but t = 2
GATED_BY_HAND = {1: ([1, 3, 5, 7, 9], [0, 2, 4, 6, 8, 10]), 2: ([2, 3, 6, 7, 10], [0, 1, 4, 5, 8, 9]),
                 3: ([3, 4, 5, 9, 10], [0, 1, 6, 7, 8])}


def test_gating_follows_each_population_period():
    pops = [population("in", "input", (1,))]
    projs = []
    for K in (1, 2, 3):
        pops.append(population(f"z{K}", "bif", (1,), phase_period=K, v_init=0.5))
        projs.append(one("in", f"z{K}"))
    pops.append(population("out", "readout", (3,)))
    projs += [projection("dense", f"z{K}", "out", weight=np.eye(3)[:, [K - 1]]) for K in (1, 2, 3)]
    net = network(pops, projs)
    result = run(net, np.full((1, 1), 0.75, dtype=np.float32), 11)
    assert_gated(net, result)
    for K, (a_steps, b_steps) in GATED_BY_HAND.items():
        assert (steps(result, f"z{K}", "A"), steps(result, f"z{K}", "B")) == (a_steps, b_steps), K
        np.testing.assert_array_equal(pop_count(result, f"z{K}", "neuron_updates")[0], np.ones(11))


# == 2. Crossed wiring and the mixed cases, by hand ============================================

# z: the K = 3 neuron above (A at 3 4 5 9, B at 1 6 7 8). h: an `if` neuron fed the same 0.5 (fires at 1 3 5 7 9).
# y (bif, K = 3) <- z: its A units take z's B events (1 6 7 8) and compare at 3 4 5 9; its B units take
#   z's A events (3 4 5 9) and compare at 0 1 2 6 7 8:
#     v_A: 1 at t1; 1>0 at t3; 1, 2, 3 at t6-8; 3>2 at t9      -> y fires A at 3, 9
#     v_B: 1, 2, 3 at t3-5; 3>2, 2>1, 1>0 at t6-8; 1 at t9     -> y fires B at 6, 7, 8
#   (straight wiring would give A at 3 4 5 9 and B at 1 6 7 8)
# u (bif, K = 3) <- h: untagged events reach both units:
#     v_B: 1>0 at t1; 1, 2 at t3, t5; 2>1, 2>1, 1>0 at t6-8   -> B at 1, 6, 7, 8
#     v_A: 1 at t1; 2>1 at t3; 1>0 at t4; 1>0 at t5; 1 at t7; 2>1 at t9 -> A at 3, 4, 5, 9
# w (if, theta 2) <- z: A and B events alike (at 1 3 4 5 6 7 8 9):
#     v: 1, 2>0, 1, 2>0, 1, 2>0, 1, 2>0                          -> w fires at 3, 5, 7, 9
#   (with A events only: 1 at t3, 2>0 at t4, 1 at t5, 2>0 at t9 -> 4, 9)
WIRING_BY_HAND = {("y", "A"): [3, 9], ("y", "B"): [6, 7, 8], ("u", "A"): [3, 4, 5, 9], ("u", "B"): [1, 6, 7, 8],
                  ("w", "out"): [3, 5, 7, 9], ("z", "A"): [3, 4, 5, 9], ("z", "B"): [1, 6, 7, 8],
                  ("h", "out"): [1, 3, 5, 7, 9]}


def wiring_network():
    pops = [population("in", "input", (1,)),
            population("z", "bif", (1,), phase_period=3), population("h", "if", (1,)),
            population("y", "bif", (1,), phase_period=3), population("u", "bif", (1,), phase_period=3),
            population("w", "if", (1,), theta_pos=2.0), population("out", "readout", (3,))]
    projs = [one("in", "z"), one("in", "h"), one("z", "y"), one("h", "u"), one("z", "w")]
    projs += [projection("dense", s, "out", weight=np.eye(3)[:, [i]]) for i, s in enumerate("yuw")]
    return network(pops, projs)


def test_wiring_by_hand():
    net = wiring_network()
    x = np.full((1, 1), 0.5, dtype=np.float32)
    result = run(net, x, 10)
    for (pop, tag), expected in WIRING_BY_HAND.items():
        assert steps(result, pop, tag) == expected, (pop, tag)
    assert_gated(net, result)
    # the replay reproduces the hand-worked trains under the semantics' wiring, and not under wrong ones
    assert_received_by_wiring(net, result, x, "analog")
    for pop, wrong in (("y", STRAIGHT), ("u", UNTAGGED_TO_A_ONLY), ("w", A_EVENTS_ONLY)):
        assert not replay_matches(net, net.population(pop), result, x, "analog", wrong), pop
    # counts: a tagged event reaches one unit of a bif target, an untagged one both, a non-bif target one
    def events(p, tag):
        return train(result, p, tag)[0, :, 0] != 0

    z_events = events("z", "A") | events("z", "B")
    np.testing.assert_array_equal(proj_count(result, "z_y", "ac_ops")[0], z_events)
    np.testing.assert_array_equal(proj_count(result, "h_u", "ac_ops")[0], 2 * events("h", "out"))
    np.testing.assert_array_equal(proj_count(result, "z_w", "ac_ops")[0], z_events)
    np.testing.assert_array_equal(proj_count(result, "in_z", "input_macs")[0], np.ones(10))
    # the readout counts y, u and w's events (weight 1, rate values 1)
    for i, p in enumerate("yuw"):
        tags = ("A", "B") if p != "w" else ("out",)
        np.testing.assert_array_equal(result.readout_trace[0, :, i],
                                      np.cumsum(sum(train(result, p, tag)[0, :, 0] for tag in tags)))


# == 3. Spiking max-pool: the tie rule and A/B tags through the relay, by hand =====================

# s (if, 1x2x2, theta 1) fed 0.5 per step at its two top pixels (the bottom ones get 0). One 2x2 window.
# "first leads": s0 starts at 0.5 and fires at even t, s1 at odd t. Spike mass up to and including t:
#   t0: 1:0 s0 wins, passes | t1: 1:1 tie -> s0, s1's event blocked | t2: 2:1 s0 passes | t3: 2:2 blocked ...
#   the relay fires at even t only.
# "second leads": s1 fires at even t, s0 at odd t:
#   t0: 0:1 s1 wins, passes | t1: 1:1 tie -> s0, its own event passes | t2: 1:2 s1 passes | t3: tie, s0 ...
#   the relay fires every step.
# Ties to the last neuron would swap the two answers; mass counted before t (excluding t) would block
# every event of "second leads".
TIES = {"first-leads": ([[0.5, 0.0], [0.0, 0.0]], [0, 2, 4]),
        "second-leads": ([[0.0, 0.5], [0.0, 0.0]], [0, 1, 2, 3, 4, 5])}


@pytest.mark.parametrize("case", TIES)
def test_maxpool_ties_go_to_the_first_neuron(case):
    v_init, expected = TIES[case]
    pops = [population("in", "input", (1, 2, 2)),
            population("s", "if", (1, 2, 2), v_init=np.array([v_init])),
            population("pool", "relay", (1, 1, 1)), population("out", "readout", (1,))]
    projs = [projection("identity", "in", "s"), projection("maxpool2d", "s", "pool", kernel=(2, 2), stride=(2, 2)),
             projection("dense", "pool", "out", weight=[[1.0]])]
    net = network(pops, projs)
    x = np.array([[[[0.5, 0.5], [0.0, 0.0]]]], dtype=np.float32)
    result = run(net, x, 6)
    assert steps(result, "pool") == expected
    assert steps(result, "s", neuron=0) + steps(result, "s", neuron=1) != []
    assert replay_matches(net, net.population("pool"), result, x, "analog")
    relay = train(result, "pool", "out")
    assert not np.array_equal(replay_relay(net, net.population("pool"), result, ties_to_last=True)["out"], relay)
    # one pool compare per (source event, window holding it), winner or not
    np.testing.assert_array_equal(proj_count(result, "s_pool", "pool_ops")[0], (train(result, "s")[0] != 0).sum(-1))


# A bif source (K = 1: B compares at even t, A at odd t; theta 1) with one 1x2 window [m0, m1], both fed
# 0.25 a step (both units of each), m1 starting at 0.5:
#   m0: v .25 .5 .75 | t3 A 1>0 | t4 B 1.25>.25 | ... | t7 A 1>0          -> A at 3, 7; B at 4
#   m1: v .75 | t1 A 1>0 | t2 B 1.25>.25 | ... | t5 A 1>0 | t6 B 1.25>.25  -> A at 1, 5; B at 2, 6
#   A + B mass up to and including t (m0:m1): t1 0:1 | t2 0:2 | t3 1:2 | t4 2:2 | t5 2:3 | t6 2:4 | t7 3:4
#   t1 m1's A passes | t2 m1's B passes | t3 m0's A blocked (m1 leads) | t4 tie -> m0, its B passes |
#   t5, t6 m1's A, B pass | t7 m0's A blocked.   Relay: A at 1, 5; B at 2, 4, 6, each event with its tag.
#   Ranking by the firing tag's own mass would pass m0's A at t3 and t7 (A mass 1:1, 2:2: ties to m0);
#   ties to the last would block m0's B at t4; mass before t would block m1's A at t1 (0:0, tie to m0).
BIF_POOL = {"A": [1, 5], "B": [2, 4, 6]}


def bif_pool_network():
    pops = [population("in", "input", (1, 1, 2)),
            population("s", "bif", (1, 1, 2), v_init=np.array([[[0.0, 0.5]]])),
            population("pool", "relay", (1, 1, 1)),
            population("y", "bif", (1,)), population("out", "readout", (2,))]
    projs = [projection("identity", "in", "s"), projection("maxpool2d", "s", "pool", kernel=(1, 2), stride=(1, 2)),
             projection("dense", "pool", "y", weight=[[1.0]]),
             projection("dense", "pool", "out", weight=[[1.0], [0.0]]),
             projection("dense", "y", "out", weight=[[0.0], [1.0]])]
    return network(pops, projs)


def test_maxpool_over_bif_ranks_by_a_plus_b_and_keeps_tags():
    net = bif_pool_network()
    x = np.full((1, 1, 1, 2), 0.25, dtype=np.float32)
    result = run(net, x, 8)
    assert steps(result, "s", "A", neuron=0) == [3, 7] and steps(result, "s", "B", neuron=0) == [4]
    assert steps(result, "s", "A", neuron=1) == [1, 5] and steps(result, "s", "B", neuron=1) == [2, 6]
    for tag, expected in BIF_POOL.items():
        assert steps(result, "pool", tag) == expected, tag
    assert_gated(net, result)  # the relay's tagged events keep their source's phases
    assert_received_by_wiring(net, result, x, "analog")  # y's A units take the relay's B events, and so on
    relay = {tag: train(result, "pool", tag) for tag in "AB"}
    for wrong_rule in ({"by_tag": True}, {"ties_to_last": True}):
        wrong = replay_relay(net, net.population("pool"), result, **wrong_rule)
        assert not all(np.array_equal(wrong[tag], relay[tag]) for tag in "AB"), wrong_rule
    np.testing.assert_array_equal(pop_count(result, "pool", "events_A")[0], np.isin(np.arange(8), BIF_POOL["A"]))
    np.testing.assert_array_equal(pop_count(result, "pool", "events_B")[0], np.isin(np.arange(8), BIF_POOL["B"]))
    np.testing.assert_array_equal(pop_count(result, "pool", "neuron_updates")[0], np.zeros(8))
    # y (bif, K = 1, theta 1): its B unit takes the relay's A events (1, 5) and fires at the next even
    # step (2, 6); its A unit takes the B events (2, 4, 6) and fires at the next odd step (3, 5, 7).
    # Straight wiring would fire A at 1, 5 and B at 2, 4, 6, at once.
    assert (steps(result, "y", "A"), steps(result, "y", "B")) == ([3, 5, 7], [2, 6])


# == 4. Phase coding: binary expansions, by hand ==================================================

# The phase encoder (K = 8) quantises x to q = min(floor(256 x), 255) and at phase k emits S_k = 2^-(k+1)
# when bit K-1-k of q is set: the spike train is x's binary expansion, most significant bit first.
#   x = 0.6875 = 0.1011b      -> q = 176 = 10110000b: spikes at phases 0, 2, 3
#   x = 0.7    = 0.10110011|0011...b (non-dyadic: truncated) -> q = 179 = 10110011b: phases 0, 2, 3, 6, 7
#   x = 1.0                   -> q = 256 clamped to 255: every phase;  x = 0: none
# h: an `if` neuron (phase coded, K = 8, theta 1, v_init 0) behind a weight-1 projection. At phase k it
#   receives S_k exactly when the bit is set and compares with S_k theta = S_k: it fires then, back to 0,
#   so h repeats the expansion in every period, and a readout behind it holds q/256 per period.
# z, y: bif pairs (same coding) in a chain input -> z -> y. z's B units compare in period 0 and fire the
#   same bits (the input reaches both units). y's A units take z's B events: they accumulate q/256 in
#   period 0 without comparing, then in period 1 release it greedily, v - S_k >= 0 at each set bit:
#     x = 0.6875: v = .6875 >= .5 -> .1875 < .25 -> .1875 >= .125 -> .0625 >= .0625 -> 0
#   the same bits, one period later (BSNN's accumulate-then-release). y's B units take z's A events,
#   which come only in period 1, so y's B units are silent in period 0.
#   z's A units integrated the input during period 0 as well (0.6875) and receive it again in period 1
#   while comparing: they hold at least .37 at every phase and fire at all 8 (x > 0).
PHASE_BITS = {0.6875: [0, 2, 3], 0.7: [0, 2, 3, 6, 7], 1.0: list(range(8)), 0.0: []}


def phase_network(K=8):
    pops = [population("in", "input", (4,), coding="phase", phase_period=K, encoding="phase"),
            population("h", "if", (4,), coding="phase", phase_period=K),
            population("z", "bif", (4,), coding="phase", phase_period=K),
            population("y", "bif", (4,), coding="phase", phase_period=K),
            population("out", "readout", (8,), coding="phase", phase_period=K)]
    eye = np.eye(4)
    projs = [projection("dense", "in", "h", weight=eye), projection("dense", "in", "z", weight=eye),
             projection("dense", "z", "y", weight=eye), projection("dense", "h", "out", weight=np.eye(8)[:, :4]),
             projection("dense", "y", "out", weight=np.eye(8)[:, 4:])]
    return network(pops, projs)


def test_phase_encoder_and_if_neuron_reproduce_the_binary_expansion():
    K, T = 8, 16
    net = phase_network(K)
    xs = list(PHASE_BITS)
    x = np.array([xs], dtype=np.float32)
    result = run(net, x, T, encoder="phase")
    assert_gated(net, result)
    assert_received_by_wiring(net, result, x, "phase")
    for i, value in enumerate(xs):
        bits = PHASE_BITS[value]
        both_periods = bits + [K + k for k in bits]
        assert steps(result, "in", neuron=i) == both_periods, value
        assert steps(result, "h", neuron=i) == both_periods, value
        assert steps(result, "z", "B", neuron=i) == bits, value
        assert steps(result, "z", "A", neuron=i) == (list(range(K, T)) if value else []), value
        assert steps(result, "y", "A", neuron=i) == [K + k for k in bits], value
        assert steps(result, "y", "B", neuron=i) == [], value
        # events carry S_k = 2^-(1 + k)
        val = result.spikes[("in", "out")][1][0, :, i]
        np.testing.assert_array_equal(val[both_periods], [2.0 ** -(1 + t % K) for t in both_periods])
        # the readout holds the quantised value q / 2^K per period: h's after each, y's after period 1
        q = min(int(np.floor(np.float32(value) * 2**K)), 2**K - 1) / 2**K
        assert result.readout_trace[0, K - 1, i] == q and result.readout_trace[0, T - 1, i] == 2 * q
        assert result.readout_trace[0, K - 1, 4 + i] == 0 and result.readout_trace[0, T - 1, 4 + i] == q
    # counts: phase spikes have mass 1 (value S_k); one comparison per neuron and step in h, z and y
    assert pop_count(result, "in", "mass")[0].sum() == 2 * sum(len(b) for b in PHASE_BITS.values())
    for p in ("h", "z", "y"):
        np.testing.assert_array_equal(pop_count(result, p, "neuron_updates")[0], np.full(T, 4))


def test_phase_encoder_weighs_its_bits_even_into_a_rate_coded_input():
    """semantics: the phase encoder emits S_k for bit k, whatever the input population's coding;
    a rate-coded readout fed through weight 1 then holds q / 2^K after one period."""
    K = 4
    pops = [population("in", "input", (2,), phase_period=K), population("out", "readout", (2,))]
    net = network(pops, [projection("dense", "in", "out", weight=np.eye(2))])
    result = run(net, np.array([[0.6875, 0.3]], dtype=np.float32), K, encoder="phase")
    np.testing.assert_array_equal(result.readout_trace[0, -1], [11 / 16, 4 / 16])  # 1011b, 0100b
    np.testing.assert_array_equal(result.spikes[("in", "out")][1][0, :, 0], [0.5, 0, 0.125, 0.0625])


# An analog current under phase coding is weighted by the target's S_k too (semantics.md: "the bias term
# and analog input current are weighted by S_k"): at phase k the neuron gets x S_k, so a period delivers
# x (1 - 2^-K), spread over the period, and a plain `if` neuron does NOT spell out x's bits. x = 0.75,
# K = 4 (thresholds .5 .25 .125 .0625, currents .375 .1875 .09375 .046875):
#   period 0: .375 < .5 | .5625 -> .3125 | .40625 -> .28125 | .328125 -> .265625   spikes 0 1 1 1 (lags)
#   period 1: .640625 -> .140625 | .328125 -> .078125 | .171875 -> .046875 | .09375 -> .03125   1 1 1 1 (leads)
# The readout (phase coded, S_k-weighted events) sums 7/16 after period 0 and 22/16 after period 1, and
# 22/16 + .03125 left in v = 2 x 0.75 (1 - 1/16): nothing is lost. A bias is weighted the same way.
@pytest.mark.parametrize("drive", ["analog", "bias"])
def test_phase_coded_analog_current_is_weighted_by_s_k(drive):
    K = 4
    pops = [population("in", "input", (1,)),
            population("h", "if", (1,), coding="phase", phase_period=K, bias=0.75 if drive == "bias" else 0.0),
            population("out", "readout", (1,), coding="phase", phase_period=K)]
    weight = [[1.0]] if drive == "analog" else [[0.0]]
    net = network(pops, [projection("dense", "in", "h", weight=weight), one("h", "out")])
    result = run(net, np.full((1, 1), 0.75, dtype=np.float32), 2 * K)
    assert steps(result, "h") == [1, 2, 3, 4, 5, 6, 7]
    assert result.readout_trace[0, K - 1, 0] == 7 / 16 and result.readout_trace[0, 2 * K - 1, 0] == 22 / 16
    # what stays in v: the replay (same rule, plain NumPy) ends at .03125 too
    v_h = replay(net, net.population("h"), result, np.full((1, 1), 0.75), "analog")[1]
    assert v_h[0, -1, 0] == 0.03125


# == 5. Equivalence and the wiring on hand-built networks of every bif-related model and projection ==

def chain(K, coding):
    """input (analog) -> dense -> bif -> dense -> bif -> dense -> readout, dyadic weights, per-neuron v_init."""
    rng = np.random.default_rng(10 + K)
    common = dict(coding=coding, phase_period=K)
    pops = [population("in", "input", (4,)),
            population("b1", "bif", (6,), v_init=dyadic(rng, (6,), 2**-4, 0, 0.5),
                       bias=dyadic(rng, (6,), 2**-6, -0.0625, 0.0625), **common),
            population("b2", "bif", (5,), theta_pos=0.75, theta_neg=-0.75, **common),
            population("out", "readout", (3,), **common)]
    projs = [projection("dense", "in", "b1", weight=dyadic(rng, (6, 4), 2**-5, -0.25, 0.5)),
             projection("dense", "b1", "b2", weight=dyadic(rng, (5, 6), 2**-5, -0.25, 0.5), scale=0.75),
             projection("dense", "b2", "out", weight=dyadic(rng, (3, 5), 2**-5, -0.25, 0.25))]
    return network(pops, projs)


def mixed(K, coding):
    """Every wiring case: untagged into bif, bif into if, if into bif, bif into bif (sparse), bif into a spikes readout;
    augmented bif spikes; the phase encoder's events."""
    rng = np.random.default_rng(20 + K)
    common = dict(coding=coding, phase_period=K)
    pops = [population("in", "input", (4,), encoding="phase", **common),
            population("b1", "bif", (5,), v_init=0.25, **common),
            population("h", "if", (4,), theta_pos=0.5, **common),
            population("b2", "bif", (3,), max_coeff=0, theta_pos=0.25, **common),
            population("b3", "bif", (3,), max_coeff=2, theta_pos=0.375, **common),
            population("out", "readout", (2,), mode="spikes", theta_pos=0.25, **common)]
    indptr = np.array([0, 2, 3, 5])
    projs = [projection("dense", "in", "b1", weight=dyadic(rng, (5, 4), 2**-5, 0, 0.5)),
             projection("dense", "b1", "h", weight=dyadic(rng, (4, 5), 2**-5, -0.125, 0.5)),
             projection("dense", "h", "b2", weight=dyadic(rng, (3, 4), 2**-5, -0.125, 0.5)),
             projection("sparse", "b2", "b3", indptr=indptr, indices=np.array([0, 0, 2, 1, 2]),
                        weight=dyadic(rng, (5,), 2**-5, 0, 0.5)),
             projection("dense", "b3", "out", weight=dyadic(rng, (2, 3), 2**-5, 0, 0.5)),
             projection("dense", "b1", "out", weight=dyadic(rng, (2, 5), 2**-5, 0, 0.25))]
    return network(pops, projs)


def pooled(K, coding):
    """conv -> bif -> overlapping spiking max-pool -> relay -> (avgpool -> bif) and dense -> bif output."""
    rng = np.random.default_rng(30 + K)
    common = dict(coding=coding, phase_period=K)
    pops = [population("in", "input", (1, 4, 4)),
            population("c", "bif", (2, 4, 4), v_init=0.5, **common),
            population("pool", "relay", (2, 3, 3)),
            population("avg", "bif", (2, 1, 1), theta_pos=0.5, **common),
            population("y", "bif", (3,), theta_pos=0.5, **common)]
    projs = [projection("conv2d", "in", "c", weight=dyadic(rng, (2, 1, 3, 3), 2**-5, 0, 0.25), padding=(1, 1)),
             projection("maxpool2d", "c", "pool", kernel=(2, 2), stride=(1, 1)),
             projection("avgpool2d", "pool", "avg", kernel=(2, 2), stride=(2, 2)),
             projection("dense", "pool", "y", weight=dyadic(rng, (3, 18), 2**-5, -0.0625, 0.25)),
             projection("dense", "avg", "y", weight=dyadic(rng, (3, 2), 2**-5, 0, 0.25))]
    return network(pops, projs)  # the output is the bif y: read through its A units


def residual(K, coding):
    """A residual block: conv path into y, and a shortcut through synchronous bif neurons s with scale 1/2."""
    rng = np.random.default_rng(40 + K)
    common = dict(coding=coding, phase_period=K)
    pops = [population("in", "input", (1, 4, 4)),
            population("x", "bif", (2, 4, 4), v_init=0.5, **common),
            population("s", "bif", (2, 4, 4), **common),
            population("y", "bif", (2, 4, 4), v_init=0.25, **common),
            population("out", "readout", (3,), **common)]
    projs = [projection("conv2d", "in", "x", weight=dyadic(rng, (2, 1, 3, 3), 2**-5, 0, 0.25), padding=(1, 1)),
             projection("identity", "x", "s"),
             projection("conv2d", "x", "y", weight=dyadic(rng, (2, 2, 3, 3), 2**-5, -0.125, 0.125), padding=(1, 1)),
             projection("identity", "s", "y", scale=0.5),
             projection("dense", "y", "out", weight=dyadic(rng, (3, 32), 2**-5, -0.125, 0.25))]
    return network(pops, projs)


BUILDERS = {"chain": chain, "mixed": mixed, "pooled": pooled, "residual": residual}
PERIODS = {"K1-T8": (1, 8), "K3-T10": (3, 10), "K2-T9": (2, 9)}


def hand_inputs(net, n=2):
    rng = np.random.default_rng(net.input.size)
    return dyadic(rng, (n, *net.input.shape), 2**-4, 0.25, 1.0).astype(np.float32)


@pytest.mark.parametrize("coding", ["rate", "phase"])
@pytest.mark.parametrize("periods", PERIODS)
@pytest.mark.parametrize("builder", BUILDERS)
def test_hand_built_bif_networks(builder, periods, coding):
    K, T = PERIODS[periods]
    net = BUILDERS[builder](K, coding)
    encoder = net.input.encoding
    x = hand_inputs(net)
    result = run(net, x, T, encoder)  # engine == reference, float64 and float32
    a_events, b_events = assert_gated(net, result)
    assert a_events > 0 and b_events > 0, "the network must exercise both units"
    assert_received_by_wiring(net, result, x, encoder)
    # the first period: only B units may fire, and they do somewhere
    first = [train(result, p.name, "B")[:, :K].any() for p in net.populations if gating_population(net, p)]
    assert any(first)
    # neuron_updates counts comparisons: the A units compare at odd periods, the B units at even ones, so a
    # bif population of N pairs (2N units) makes N a step, not 2N
    for pop in net.populations:
        if pop.kind == "bif":
            odd = a_phase(pop, T)
            compared = np.where(odd, pop.size, 0) + np.where(~odd, pop.size, 0)
            np.testing.assert_array_equal(pop_count(result, pop.name, "neuron_updates"), np.tile(compared, (len(x), 1)))


def test_hand_built_networks_are_valid_files(tmp_path):
    """The networks above are legal version-1 files (the reader validates), and read back they run the same."""
    for name, build in BUILDERS.items():
        net = build(2, "phase")
        write_network(tmp_path / f"{name}.h5", net)
        back = read_network(tmp_path / f"{name}.h5")
        x = hand_inputs(net)
        a = simulate(net, x, timesteps=5, encoder=net.input.encoding, threads=1, record_spikes=True).as_arrays()
        b = simulate(back, x, timesteps=5, encoder=net.input.encoding, threads=1, record_spikes=True).as_arrays()
        assert_same_arrays(b, a, what=name)
    for net in (wiring_network(), bif_pool_network(), phase_network(), single_bif(3)):
        write_network(tmp_path / "n.h5", net)
        read_network(tmp_path / "n.h5")


# == 6. Random bif networks: gating and reception from the recorded spikes ============================

RANDOM = {  # coding, encoder
    "rate-analog": ("rate", "analog"),
    "phase-analog": ("phase", "analog"),
    "mixed-phase-encoder": ("mixed", "phase"),
    "rate-bernoulli": ("rate", "bernoulli"),
}
# Seeds whose networks have K = 1, 2 and 3, bif-to-bif projections, synchronous shortcuts with a scale,
# spiking max-pools over bif populations and relays into bif populations (and a few plain draws).
SEEDS = (0, 3, 6, 11, 16, 18, 20, 21, 47, 50, 57, 59)
T_RANDOM = 13  # a prime: not a multiple of any drawn period > 1


@functools.lru_cache(maxsize=None)
def random_run(config, seed):
    coding, encoder = RANDOM[config]
    net = random_network(seed, coding=coding, bif=True)
    x = random_inputs(seed, net, 2, encoder)
    result = simulate(net, x, timesteps=T_RANDOM, encoder=encoder, dtype="float64", threads=1, record_spikes=True,
                      record_trace=True)
    return net, x, encoder, result


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("config", RANDOM)
def test_random_bif_networks_gate_and_wire(config, seed):
    net, x, encoder, result = random_run(config, seed)
    assert_gated(net, result)
    assert_received_by_wiring(net, result, x, encoder)


WRONG_POOL_RULES = {"pool ranked by tag": {"by_tag": True}, "pool ties to last": {"ties_to_last": True}}


def test_random_bif_networks_are_tested_where_it_matters():
    """Over the random networks above, both units fire, and a wrong wiring or max-pool rule would be caught."""
    seen = np.zeros(2, dtype=np.int64)
    caught = {"straight": 0, "untagged to A only": 0, "pool ranked by tag": 0, "pool ties to last": 0}
    for config in RANDOM:
        for seed in SEEDS:
            net, x, encoder, result = random_run(config, seed)
            seen += assert_gated(net, result)
            for pop in net.populations:
                if pop.kind == "bif":
                    caught["straight"] += not replay_matches(net, pop, result, x, encoder, STRAIGHT)
                    caught["untagged to A only"] += not replay_matches(net, pop, result, x, encoder, UNTAGGED_TO_A_ONLY)
                if pop.kind == "relay" and gating_population(net, pop):
                    for rule, wrong in WRONG_POOL_RULES.items():
                        trains = replay_relay(net, pop, result, **wrong)
                        caught[rule] += not all(np.array_equal(train(result, pop.name, t), c)
                                                for t, c in trains.items())
    assert seen.min() > 1000, seen
    assert min(caught.values()) > 0, caught
