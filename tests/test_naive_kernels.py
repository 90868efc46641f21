"""Every engine kernel, called directly, against its naive oracle (tests/naive.py).

The kernels run on the records and pools of a real plan (`build_plan` of a
tiny network with the projection under test behind a decoy projection, so
that its data do not start at offset 0), in the engine's internal
(channels-last) order, with sentinels around everything they may touch.
Weights, values and potentials are dyadic (multiples of 2^-5 and of S_k), so
every sum is exact and results are compared with exact equality.

The adapters (network -> plan -> kernel call -> C-major result) are the
`run_*` functions below, one per kernel family: a change of the kernels'
signatures touches only them.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numba
import numpy as np
import pytest

import naive
from evsim.counters import PROJECTION_COUNTERS, TAG_A, TAG_B, TAG_NONE
from evsim.engine import delivery, neurons, scheduler
from evsim.engine import plan as plan_fields
from evsim.engine.plan import build_plan, chw_of_internal, internal_of_chw
from evsim.network import Network, Population, Projection
from netgen import dyadic

torch = pytest.importorskip("torch")

DTYPES = [np.float64, np.float32]
KERNELS = {"dense": delivery.push_dense, "conv2d": delivery.push_conv, "avgpool2d": delivery.push_avgpool,
           "sparse": delivery.push_sparse, "identity": delivery.push_identity}
SPIKING = ("if", "bif", "readout")


# -- tiny networks -----------------------------------------------------------------------------

def population(name, kind, shape, **fields):
    if kind in SPIKING:
        fields.setdefault("theta_pos", np.ones(()))
    return Population(name=name, kind=kind, shape=tuple(int(s) for s in shape), order=0, **fields)


def one_projection(kind, source, target, **fields) -> Network:
    """`source -> target` by one projection of `kind`, after an input and a decoy conv (so that the tested
    projection's record points into the middle of the int and float pools, and its populations' state does
    not start at 0)."""
    decoy = Projection("decoy", "conv2d", "in", "decoy", weight=np.full((2, 1, 1, 1), 0.5))
    tested = Projection("tested", kind, source.name, target.name, **fields)
    pops = (population("in", "input", (1, 2, 2)), population("decoy", "if", (2, 2, 2)), source, target)
    pops = tuple(dataclasses.replace(p, order=i) for i, p in enumerate(pops))
    return Network(pops, (decoy, tested), output=target.name)


_LAST_PLAN: list = [None, None, None]  # network, dtype, its plan


def plan_of(network: Network, dtype=np.float64):
    """`build_plan`, once for consecutive calls on one network and dtype (many single events go through one)."""
    if _LAST_PLAN[0] is not network or _LAST_PLAN[1] != np.dtype(dtype):
        _LAST_PLAN[:] = network, np.dtype(dtype), build_plan(network, dtype)
    return _LAST_PLAN[2]


class PopulationRecord(NamedTuple):
    """A population's fields in the plan: the adapters' one view of the plan's population table."""

    size: int
    units: int
    noff: int      # first neuron in per-neuron arrays
    soff: int      # first unit in the state (A units, then B units)
    phase: int
    period: int
    max_coeff: int
    has_neg: int
    bias_neurons: int
    bias_onset: int
    gated: int
    fire_gt: int
    reset_value: int


def population_record(plan, p) -> PopulationRecord:
    rec = plan.pop_rec[p]
    return PopulationRecord(*(int(rec[getattr(plan_fields, f"P_{name.upper()}")]) for name in PopulationRecord._fields))


def n_units(plan) -> int:
    return int(sum(population_record(plan, p).size * population_record(plan, p).units for p in range(len(plan.pop_rec))))


def n_neurons(plan) -> int:
    return int(sum(population_record(plan, p).size for p in range(len(plan.pop_rec))))


def under_test(network: Network):
    """The projection under test, its source and target."""
    proj = network.projections[-1]
    return proj, network.population(proj.source), network.population(proj.target)


def state_vector(plan, rng, dtype):
    """Every unit of the plan, filled with dyadic sentinels (a kernel must leave those it does not own alone)."""
    return dyadic(rng, n_units(plan), 2**-5, -4, 4).astype(dtype)


def event_buffers(rng, n_slots, dtype):
    """Event buffers (idx, coef, tag, val) full of junk."""
    return (rng.integers(0, 2**20, n_slots).astype(np.int64), rng.integers(-9, 10, n_slots).astype(np.int64),
            rng.integers(0, 3, n_slots).astype(np.int64), dyadic(rng, n_slots, 2**-5, -9, 9).astype(dtype))


def copies(arrays):
    return tuple(np.array(a) for a in arrays)


def counters(counts) -> dict:
    return dict(zip(PROJECTION_COUNTERS, counts.tolist()))


# -- adapters: one per kernel family -----------------------------------------------------------

def run_push(network: Network, events, v, t=0, dtype=np.float64, via_push=False, lead=3, seed=0):
    """Deliver step t's `events` (naive.Event, C-major source indices) through the network's tested projection
    into its target's membrane `v [units, N]` (C-major). Returns (v after, C-major float64; counts dict)."""
    proj, src, tgt = under_test(network)
    plan = plan_of(network, dtype)
    rng = np.random.default_rng(seed)
    r = network.populations.index(tgt)
    pr = population_record(plan, r)
    size, soff = pr.size, pr.soff
    state = state_vector(plan, rng, dtype)
    to_internal = chw_of_internal(tgt.shape)
    for u in range(tgt.units):
        state[soff + u * size:soff + (u + 1) * size] = np.asarray(v[u])[to_internal]
    before = state.copy()
    # the events at lead .. lead + n, junk around them
    n = len(events)
    ev = event_buffers(rng, lead + n + 2, dtype)
    src_internal = internal_of_chw(src.shape)
    for e, event in enumerate(events):
        ev[0][lead + e] = src_internal[event.i]
        ev[1][lead + e], ev[2][lead + e], ev[3][lead + e] = event.c, event.tag, event.value
    ev_before = copies(ev)
    counts = np.zeros(len(PROJECTION_COUNTERS), dtype=np.int64)
    kernel = delivery.push if via_push else KERNELS[proj.kind]
    rec = plan.proj_rec[network.projections.index(proj)]
    # the target's routing at step t, as the scheduler's `deliver` makes it
    integrating, _ = neurons.integrating_units(2, pr.gated, pr.period, t)
    route = delivery.route_of(soff, size, tgt.kind == "bif", pr.gated == 1, integrating)
    kernel(rec, plan.ints, plan.floats, ev, lead, lead + n, state, size, route, counts)
    own = np.zeros(state.size, dtype=bool)
    own[soff:soff + size * tgt.units] = True
    assert np.array_equal(state[~own], before[~own]), "wrote outside its target's units"
    assert all(np.array_equal(a, b) for a, b in zip(ev, ev_before)), "changed the event buffers"
    back = internal_of_chw(tgt.shape)
    out = np.stack([state[soff + u * size:soff + (u + 1) * size][back] for u in range(tgt.units)])
    got = counters(counts)
    assert got["input_macs"] == got["input_macs_dense"] == 0
    return out.astype(np.float64), {k: got[k] for k in ("ac_ops", "scaled_ops", "pool_ops")}


def run_fire(network: Network, name, v, unit=0, sk=1.0, tag=TAG_NONE, discharged=None, dtype=np.float64,
             ebase=5, n_before=2, seed=0):
    """Fire unit `unit` of population `name` (membrane `v [units, N]`, C-major). Returns (v after [units, N],
    discharged [units, N], events sorted by C-major neuron)."""
    plan = plan_of(network, dtype)
    rng = np.random.default_rng(seed)
    pop = network.population(name)
    p = network.populations.index(pop)
    pr = population_record(plan, p)
    size, soff, noff = pr.size, pr.soff, pr.noff
    to_internal, back = chw_of_internal(pop.shape), internal_of_chw(pop.shape)
    state = state_vector(plan, rng, dtype)
    dis = dyadic(rng, state.size, 2**-5, -4, 4)
    discharged = np.zeros((pop.units, size)) if discharged is None else np.asarray(discharged)
    for u in range(pop.units):
        state[soff + u * size:soff + (u + 1) * size] = np.asarray(v[u])[to_internal]
        dis[soff + u * size:soff + (u + 1) * size] = discharged[u][to_internal]
    before, dis_before = state.copy(), dis.copy()
    ev = event_buffers(rng, ebase + n_before + size + 3, dtype)
    ev_before = copies(ev)
    start = ebase + n_before
    n = neurons.fire(state, dis, soff + unit * size, plan.theta_pos, plan.theta_neg, plan.v_reset, noff, size,
                     pr.has_neg, pr.max_coeff, pr.fire_gt == 1, pr.reset_value == 1, sk, tag, ev, ebase, n_before)
    fired = np.zeros(state.size, dtype=bool)
    fired[soff + unit * size:soff + (unit + 1) * size] = True
    assert np.array_equal(state[~fired], before[~fired]) and np.array_equal(dis[~fired], dis_before[~fired])
    assert n >= n_before and all(np.array_equal(a[:start], b[:start]) and np.array_equal(a[n + ebase:], b[n + ebase:])
                                 for a, b in zip(ev, ev_before)), "wrote events outside its slots"
    events = sorted(naive.Event(int(to_internal[ev[0][e]]), int(ev[1][e]), int(ev[2][e]), float(ev[3][e]))
                    for e in range(start, ebase + n))
    v_out = np.stack([state[soff + u * size:soff + (u + 1) * size][back] for u in range(pop.units)])
    d_out = np.stack([dis[soff + u * size:soff + (u + 1) * size][back] for u in range(pop.units)])
    return v_out.astype(np.float64), d_out, events


def run_gate(network: Network, events, earlier=(), relay_n=1, lead=2, seed=0):
    """Pass `events` (C-major source indices) through the tested max-pool, the source having emitted `earlier`
    before (its spike mass and value sums so far include both). Returns (relayed events sorted, C-major relay
    indices; pool_ops)."""
    proj, src, relay = under_test(network)
    plan = plan_of(network)
    rng = np.random.default_rng(seed)
    s = network.populations.index(src)
    noff = population_record(plan, s).noff
    # other populations' mass and value: sentinels
    mass, value = rng.integers(0, 50, n_neurons(plan)).astype(np.int64), dyadic(rng, n_neurons(plan), 2**-3, -50, 50)
    mass[noff:noff + src.size] = value[noff:noff + src.size] = 0
    to_internal = internal_of_chw(src.shape)
    for ev in [*earlier, *events]:
        mass[noff + to_internal[ev.i]] += abs(ev.c)
        value[noff + to_internal[ev.i]] += ev.value
    mass_before, value_before = mass.copy(), value.copy()
    n = len(events)
    relay_base = lead + n + 3
    ev = event_buffers(rng, relay_base + relay_n + 4 * n + 2, np.float64)
    for e, event in enumerate(events):
        ev[0][lead + e] = to_internal[event.i]
        ev[1][lead + e], ev[2][lead + e], ev[3][lead + e] = event.c, event.tag, event.value
    ev_before = copies(ev)
    counts = np.zeros(len(PROJECTION_COUNTERS), dtype=np.int64)
    rec = plan.proj_rec[network.projections.index(proj)]
    stop = delivery.gate_maxpool(rec, plan.ints, ev, lead, lead + n, mass, value, noff, relay_base, relay_n, counts)
    assert np.array_equal(mass, mass_before) and np.array_equal(value, value_before), "changed the ranks"
    end = relay_base + stop
    assert stop >= relay_n and all(np.array_equal(a[:relay_base + relay_n], b[:relay_base + relay_n]) and
                                   np.array_equal(a[end:], b[end:]) for a, b in zip(ev, ev_before))
    to_c = chw_of_internal(relay.shape)
    relayed = sorted(naive.Event(int(to_c[ev[0][e]]), int(ev[1][e]), int(ev[2][e]), float(ev[3][e]))
                     for e in range(relay_base + relay_n, end))
    got = counters(counts)
    assert got["ac_ops"] == got["scaled_ops"] == got["input_macs"] == 0
    return relayed, got["pool_ops"]


def run_integrate(network: Network, name, v, t=0, current=None, dtype=np.float64, seed=0):
    """Step t's integrate slot of population `name` (membrane `v [units, N]`, analog current `current [units, N]`
    or None), with the arguments the scheduler's `run_sample` gives it."""
    plan = plan_of(network, dtype)
    rng = np.random.default_rng(seed)
    pop = network.population(name)
    p = network.populations.index(pop)
    pr = population_record(plan, p)
    size, soff, noff, units = pr.size, pr.soff, pr.noff, pr.units
    to_internal, back = chw_of_internal(pop.shape), internal_of_chw(pop.shape)
    state = state_vector(plan, rng, dtype)
    cur = state_vector(plan, rng, dtype)
    for u in range(units):
        state[soff + u * size:soff + (u + 1) * size] = np.asarray(v[u])[to_internal]
        if current is not None:
            cur[soff + u * size:soff + (u + 1) * size] = np.asarray(current[u])[to_internal]
    before = state.copy()
    first, count = neurons.integrating_units(units, pr.gated, pr.period, t)
    biased = pr.bias_neurons > 0 and t >= pr.bias_onset
    sk = neurons.step_weight(pr.phase, pr.period, t)
    neurons.integrate(state, cur, plan.bias, soff, noff, size, first, count, current is not None, biased, sk)
    own = np.zeros(state.size, dtype=bool)
    own[soff:soff + size * units] = True
    assert np.array_equal(state[~own], before[~own])
    return np.stack([state[soff + u * size:soff + (u + 1) * size][back] for u in range(units)]).astype(np.float64)


# -- random inputs -------------------------------------------------------------------------------

PHASES = (1.0, 0.5, 0.25, 0.125)  # S_k of rate coding and of phases 0, 1, 2


def random_events(rng, n_source, n, tags=(TAG_NONE,), coefs=(-3, -2, -1, 1, 2, 3)):
    """n events at random neurons (repeats allowed), with signed coefficients and values c S_k."""
    return [naive.Event(int(rng.integers(n_source)), int(c), int(rng.choice(tags)), float(c * rng.choice(PHASES)))
            for c in rng.choice(coefs, n)]


def membrane(rng, units, n):
    return dyadic(rng, (units, n), 2**-5, -2, 2)


ALL_TAGS = (TAG_NONE, TAG_A, TAG_B)  # untagged events, and a bif source's A and B events, into any target


#: Targets: one unit per neuron, or a bif pair whose untagged events reach both units (split drive) or only the
#: integrating one (gated drive, K = 2: A integrates at t = 0, 1, 4, 5, ..., B at t = 2, 3, 6, 7, ...).
TARGETS = {"if": ("if", {}), "bif": ("bif", {}), "bif-gated": ("bif", {"drive": "gated", "phase_period": 2}),
           "readout": ("readout", {})}


def target_population(target_kind, shape):
    kind, fields = TARGETS[target_kind]
    return population("tgt", kind, shape, **fields)


def check_delivery(network, events, rng, dtype=np.float64, t=None):
    """The kernel and the oracle deliver `events` at step t (drawn when None) into a random membrane alike."""
    proj, src, tgt = under_test(network)
    t = int(rng.integers(0, 8)) if t is None else t
    v = membrane(rng, tgt.units, tgt.size)
    got_v, got_counts = run_push(network, events, v, t, dtype)
    want_v, want_counts = naive.deliver(proj, src, tgt, events, v, t)
    assert got_counts == want_counts
    np.testing.assert_array_equal(got_v, want_v)
    return want_counts


def spatial_pair(source_shape, target_kind, target_shape, source_kind="if"):
    return population("src", source_kind, source_shape), target_population(target_kind, target_shape)


# == delivery kernels =================================================================================

CONVS = {  # Cin, (H, W), Cout, kernel, stride, padding, dilation, groups
    "3x3-pad1": (2, (5, 6), 3, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "stride>kernel": (1, (7, 8), 2, (2, 2), (3, 3), (0, 1), (1, 1), 1),
    "dilated": (2, (7, 7), 2, (3, 2), (1, 2), (2, 1), (2, 3), 1),
    "groups": (4, (5, 5), 6, (3, 3), (2, 1), (1, 1), (1, 1), 2),
    "depthwise": (3, (4, 5), 3, (2, 3), (1, 1), (0, 1), (1, 1), 3),
    "groups-dilated-strided": (6, (6, 7), 3, (3, 3), (2, 2), (2, 2), (2, 2), 3),
    "1x1-map": (2, (1, 1), 3, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "1x1-map-padded": (2, (1, 1), 2, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "padding>kernel": (1, (3, 4), 2, (1, 1), (1, 1), (2, 1), (1, 1), 1),
    "wide": (2, (2, 5), 2, (1, 5), (1, 2), (0, 2), (1, 1), 2),
    "kernel=map": (1, (4, 4), 2, (4, 4), (1, 1), (0, 0), (1, 1), 1),
    "stride>map": (1, (3, 3), 1, (2, 2), (4, 4), (1, 1), (1, 1), 1),
    "dilation-divides-stride": (2, (7, 8), 2, (3, 3), (2, 2), (1, 2), (2, 2), 1),
    "stride4-dilation2": (1, (6, 11), 3, (2, 3), (1, 4), (1, 2), (1, 2), 1),
}


def conv_network(rng, case, target_kind, scale=0.75):
    cin, hw, cout, k, stride, padding, dilation, groups = CONVS[case]
    weight = dyadic(rng, (cout, cin // groups, *k), 2**-5, -1, 1)
    proj = Projection("x", "conv2d", "src", "tgt", weight=weight, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, scale=scale)
    shape = naive.target_shape(proj, (cin, *hw))
    return one_projection("conv2d", *spatial_pair((cin, *hw), target_kind, shape), weight=weight,
                          stride=stride, padding=padding, dilation=dilation, groups=groups, scale=scale)


@pytest.mark.parametrize("case", CONVS)
def test_naive_conv_is_pytorchs(case):
    """The oracle's conv equals PyTorch's on random maps (a second opinion on the oracle itself)."""
    rng = np.random.default_rng(1)
    cin, hw, cout, k, stride, padding, dilation, groups = CONVS[case]
    x = dyadic(rng, (cin, *hw), 2**-5, -1, 1)
    w = dyadic(rng, (cout, cin // groups, *k), 2**-5, -1, 1)
    want = torch.nn.functional.conv2d(torch.tensor(x)[None], torch.tensor(w), stride=stride, padding=padding,
                                      dilation=dilation, groups=groups)[0].numpy()
    np.testing.assert_array_equal(naive.conv2d(x, w, stride, padding, dilation, groups), want)


def test_conv_cases_take_both_delivery_layouts():
    """The engine delivers a conv by contiguous column runs (one group, column dilation dividing the column
    stride) or tap by tap: the cases above must exercise both."""
    layouts = set()
    for case in CONVS:
        network = conv_network(np.random.default_rng(0), case, "if")
        plan = plan_of(network)
        rec = plan.proj_rec[network.projections.index(under_test(network)[0])]
        layouts.add(int(plan.ints[rec[plan_fields.REC_INTS] + plan_fields.G_RUNS]))
    assert layouts == {0, 1}


@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", CONVS)
def test_conv_kernel_every_source_position_alone(case, target_kind):
    """Each source neuron's event alone (borders, corners, dilation holes, groups): values and fan-out exact."""
    rng = np.random.default_rng(2)
    network = conv_network(rng, case, target_kind)
    src = under_test(network)[1]
    for i in range(src.size):
        c = int(rng.choice([-2, -1, 1, 3]))
        tag = int(rng.choice(ALL_TAGS))
        check_delivery(network, [naive.Event(i, c, tag, c * float(rng.choice(PHASES)))], rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", CONVS)
def test_conv_kernel_random_events(case, target_kind, dtype):
    rng = np.random.default_rng(3)
    network = conv_network(rng, case, target_kind, scale=1.25)
    src = under_test(network)[1]
    counts = check_delivery(network, random_events(rng, src.size, 25, ALL_TAGS), rng, dtype)
    assert counts["ac_ops"] + counts["scaled_ops"] > 0 and counts["pool_ops"] == 0


POOLS = {  # C, (H, W), kernel, stride, padding (areas are powers of two: the weight 1 / (kh kw) is dyadic)
    "2x2": (2, (4, 6), (2, 2), (2, 2), (0, 0)),
    "2x2-overlapping-padded": (2, (5, 5), (2, 2), (1, 1), (1, 1)),
    "4x4-padded-strided": (1, (7, 6), (4, 4), (2, 3), (2, 1)),
    "stride>kernel": (3, (7, 8), (2, 1), (3, 3), (0, 0)),
    "1x2": (2, (3, 5), (1, 2), (1, 2), (0, 1)),
    "1x1": (2, (3, 3), (1, 1), (1, 1), (0, 0)),
    "1x1-map": (3, (1, 1), (1, 1), (1, 1), (0, 0)),
    "1x1-map-padded": (1, (1, 1), (2, 2), (1, 1), (1, 1)),
    "kernel=map": (2, (2, 4), (2, 4), (1, 1), (0, 0)),
}


#: Max-pools have no weight: any window will do.
MAXPOOLS = {**POOLS, "3x3-strided-padded": (2, (5, 6), (3, 3), (2, 2), (1, 1)),
            "3x3-overlapping": (1, (5, 5), (3, 3), (1, 1), (1, 1)), "3x2-stride>kernel": (2, (7, 7), (3, 2), (4, 3), (1, 0))}


def pool_network(case, kind, target_kind, scale=0.75, source_kind="if", rank="mass"):
    c, hw, kernel, stride, padding = MAXPOOLS[case]
    proj = Projection("x", kind, "src", "tgt", kernel=kernel, stride=stride, padding=padding)
    target = "relay" if kind == "maxpool2d" else target_kind
    extra = {"rank": rank} if kind == "maxpool2d" else {"scale": scale}
    shape = naive.target_shape(proj, (c, *hw))
    pair = (population("src", source_kind, (c, *hw)),
            population("tgt", "relay", shape) if kind == "maxpool2d" else target_population(target, shape))
    return one_projection(kind, *pair, kernel=kernel, stride=stride, padding=padding, **extra)


@pytest.mark.parametrize("case", POOLS)
def test_naive_avgpool_is_pytorchs(case):
    c, hw, kernel, stride, padding = POOLS[case]
    x = dyadic(np.random.default_rng(4), (c, *hw), 2**-5, -1, 1)
    want = torch.nn.functional.avg_pool2d(torch.tensor(x)[None], kernel, stride, padding, count_include_pad=True)
    np.testing.assert_array_equal(naive.avg_pool2d(x, kernel, stride, padding), want[0].numpy())


@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", POOLS)
def test_avgpool_kernel_every_source_position_alone(case, target_kind):
    rng = np.random.default_rng(5)
    network = pool_network(case, "avgpool2d", target_kind)
    for i in range(under_test(network)[1].size):
        c = int(rng.choice([-2, -1, 1, 2]))
        check_delivery(network, [naive.Event(i, c, int(rng.choice(ALL_TAGS)), c * 0.5)], rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", POOLS)
def test_avgpool_kernel_random_events(case, target_kind, dtype):
    rng = np.random.default_rng(6)
    network = pool_network(case, "avgpool2d", target_kind, scale=1.5)
    counts = check_delivery(network, random_events(rng, under_test(network)[1].size, 20, ALL_TAGS), rng, dtype)
    # pools charge pool_ops whatever the coefficient, never synaptic ops
    assert counts["pool_ops"] > 0 and counts["ac_ops"] == counts["scaled_ops"] == 0


def test_avgpool_with_a_window_of_nine_is_close():
    """A 3x3 pool's weight 1/9 is not dyadic: the sums are rounded differently, so only closeness holds."""
    rng = np.random.default_rng(7)
    src, tgt = population("src", "if", (2, 5, 5)), population("tgt", "bif", (2, 3, 3))
    network = one_projection("avgpool2d", src, tgt, kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    events = random_events(rng, src.size, 30, ALL_TAGS)
    v = membrane(rng, 2, tgt.size)
    got_v, got_counts = run_push(network, events, v)
    want_v, want_counts = naive.deliver(under_test(network)[0], src, tgt, events, v)
    assert got_counts == want_counts
    np.testing.assert_allclose(got_v, want_v, rtol=0, atol=1e-12)


FLAT = {  # source shape, target shape: dense reads a [C, H, W] source in C-major order
    "vector": ((7,), (5,)),
    "map-to-vector": ((3, 2, 2), (4,)),
    "map-to-map": ((2, 2, 3), (2, 1, 3)),
    "one-to-one": ((1,), (1,)),
}


def dense_network(rng, case, target_kind, scale=0.75):
    source_shape, target_shape = FLAT[case]
    src, tgt = population("src", "if", source_shape), target_population(target_kind, target_shape)
    weight = dyadic(rng, (tgt.size, src.size), 2**-5, -1, 1)
    return one_projection("dense", src, tgt, weight=weight, scale=scale)


def sparse_network(rng, case, target_kind, scale=1.25):
    """CSR rows of 0 to 5 entries with repeated (source, target) pairs and empty rows."""
    source_shape, target_shape = FLAT[case]
    src, tgt = population("src", "if", source_shape), target_population(target_kind, target_shape)
    rows = [rng.integers(0, tgt.size, int(rng.integers(0, 6))) for _ in range(src.size)]
    rows[0] = np.array([0, 0, tgt.size - 1])  # a repeated pair
    if src.size > 1:
        rows[-1] = np.zeros(0, dtype=np.int64)  # an empty row
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64)
    return one_projection("sparse", src, tgt, indptr=indptr, indices=indices,
                          weight=dyadic(rng, indices.shape, 2**-5, -1, 1), scale=scale)


def identity_network(rng, case, target_kind, scale=1.5):
    shape = FLAT[case][0]
    return one_projection("identity", population("src", "if", shape), target_population(target_kind, shape), scale=scale)


FLAT_BUILDERS = {"dense": dense_network, "sparse": sparse_network, "identity": identity_network}


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("case", FLAT)
@pytest.mark.parametrize("kind", FLAT_BUILDERS)
def test_flat_kernels_every_source_neuron_alone(kind, case, target_kind):
    rng = np.random.default_rng(8)
    network = FLAT_BUILDERS[kind](rng, case, target_kind)
    for i in range(under_test(network)[1].size):
        for tag in ALL_TAGS:
            c = int(rng.choice([-3, -1, 1, 2]))
            check_delivery(network, [naive.Event(i, c, tag, c * float(rng.choice(PHASES)))], rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", FLAT)
@pytest.mark.parametrize("kind", FLAT_BUILDERS)
def test_flat_kernels_random_events(kind, case, target_kind, dtype):
    rng = np.random.default_rng(9)
    network = FLAT_BUILDERS[kind](rng, case, target_kind)
    check_delivery(network, random_events(rng, under_test(network)[1].size, 30, ALL_TAGS), rng, dtype)


def every_kind(rng, target_kind):
    yield dense_network(rng, "map-to-vector", target_kind)
    yield sparse_network(rng, "map-to-map", target_kind)
    yield identity_network(rng, "map-to-map", target_kind)
    yield conv_network(rng, "groups", target_kind)
    yield pool_network("2x2-overlapping-padded", "avgpool2d", target_kind)


@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
def test_push_dispatches_every_kind(target_kind):
    """`push` reaches each kind's kernel: the same result as the oracle."""
    rng = np.random.default_rng(10)
    for network in every_kind(rng, target_kind):
        proj, src, tgt = under_test(network)
        events = random_events(rng, src.size, 12, ALL_TAGS)
        v = membrane(rng, tgt.units, tgt.size)
        t = int(rng.integers(0, 8))
        got = run_push(network, events, v, t, via_push=True)
        want = naive.deliver(proj, src, tgt, events, v, t)
        assert got[1] == want[1], proj.kind
        np.testing.assert_array_equal(got[0], want[0], err_msg=proj.kind)


@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
def test_empty_event_slice_changes_nothing(target_kind):
    rng = np.random.default_rng(11)
    for network in every_kind(rng, target_kind):
        tgt = under_test(network)[2]
        v = membrane(rng, tgt.units, tgt.size)
        got_v, got_counts = run_push(network, [], v)
        assert got_counts == {"ac_ops": 0, "scaled_ops": 0, "pool_ops": 0}
        np.testing.assert_array_equal(got_v, v)


def test_wiring_and_op_counts_by_hand():
    """One event into a 4-neuron dense target: a tagged one reaches one unit of a bif pair (A events the B units,
    B events the A units), an untagged one both (8 unit updates) under split drive and only the integrating unit
    under gated drive (K = 2: A at t = 0, 1, B at t = 2, 3); a non-bif target takes every event once. |c| > 1 costs
    scaled_ops."""
    weight = np.array([[0.25], [0.5], [-0.75], [1.0]])
    reached = {  # target, t: units reached by untagged, A and B events
        ("bif", 0): {TAG_NONE: [0, 1], TAG_A: [1], TAG_B: [0]},
        ("bif-gated", 0): {TAG_NONE: [0], TAG_A: [1], TAG_B: [0]},
        ("bif-gated", 1): {TAG_NONE: [0], TAG_A: [1], TAG_B: [0]},
        ("bif-gated", 2): {TAG_NONE: [1], TAG_A: [1], TAG_B: [0]},
        ("bif-gated", 7): {TAG_NONE: [1], TAG_A: [1], TAG_B: [0]},
        ("if", 0): {TAG_NONE: [0], TAG_A: [0], TAG_B: [0]},
    }
    for (target_kind, t), cases in reached.items():
        network = one_projection("dense", population("src", "bif", (1,)), target_population(target_kind, (4,)),
                                 weight=weight)
        units = under_test(network)[2].units
        for tag, to in cases.items():
            for c, value, counter in ((1, 0.5, "ac_ops"), (-1, -0.25, "ac_ops"), (3, 0.375, "scaled_ops")):
                v, counts = run_push(network, [naive.Event(0, c, tag, value)], np.zeros((units, 4)), t)
                want = np.zeros((units, 4))
                want[to] = weight[:, 0] * value
                np.testing.assert_array_equal(v, want, err_msg=f"{target_kind} t={t} tag={tag}")
                assert counts == {"ac_ops": 0, "scaled_ops": 0, "pool_ops": 0, counter: 4 * len(to)}


# == the spiking max gate =======================================================================

def random_history(rng, n, tags, steps=3):
    """Events of a few earlier steps: each neuron fires with probability 1/2 per step, small signed coefficients
    and phase values (many ties in mass and in value)."""
    return [naive.Event(i, c, int(rng.choice(tags)), c * float(rng.choice(PHASES[1:3])))
            for _ in range(steps) for i in range(n) if rng.random() < 0.5 for c in [int(rng.choice([-2, -1, 1, 2]))]]


@pytest.mark.parametrize("rank", ["mass", "value"])
@pytest.mark.parametrize("bif_source", [False, True])
@pytest.mark.parametrize("case", MAXPOOLS)
def test_max_gate_random_history(case, bif_source, rank):
    """Random earlier events (ranks with many ties), this step's events at random neurons; A and B events from a
    bif source rank by their sum."""
    rng = np.random.default_rng(12)
    network = pool_network(case, "maxpool2d", None, source_kind="bif" if bif_source else "if", rank=rank)
    proj, src, _ = under_test(network)
    tags = (TAG_A, TAG_B) if bif_source else (TAG_NONE,)
    for trial in range(4):
        earlier = random_history(rng, src.size, tags)
        events = random_events(rng, src.size, 15, tags, coefs=(-2, -1, 1, 2))
        got = run_gate(network, events, earlier, seed=trial)
        assert got == naive.max_gate(proj, src.shape, events, earlier)


@pytest.mark.parametrize("case", MAXPOOLS)
def test_max_gate_every_source_neuron(case):
    """Every source neuron fires once: each passes into exactly the windows it wins; one compare per window
    holding it (stride > kernel leaves neurons in no window: no compare)."""
    rng = np.random.default_rng(13)
    network = pool_network(case, "maxpool2d", None)
    proj, src, _ = under_test(network)
    events = [naive.Event(i, int(rng.choice([1, 2, -1])), TAG_NONE, 1.0) for i in range(src.size)]
    earlier = random_history(rng, src.size, (TAG_NONE,))
    assert run_gate(network, events, earlier) == naive.max_gate(proj, src.shape, events, earlier)


@pytest.mark.parametrize("rank", ["mass", "value"])
def test_max_gate_ties_go_to_the_first_in_row_major_order(rank):
    """Equal ranks everywhere: each window passes the event of its first in-bounds member (padding never wins)."""
    network = pool_network("2x2-overlapping-padded", "maxpool2d", None, rank=rank)  # [2, 5, 5] -> [2, 6, 6], pad 1
    proj, src, relay = under_test(network)
    # one event per neuron (S_k = 1/2), the coefficient telling odd and even neurons apart in the relay; with an
    # earlier event of the even ones, every neuron has mass 2 and value 1
    events = [naive.Event(i, 1 + i % 2, TAG_NONE, (1 + i % 2) * 0.5) for i in range(src.size)]
    earlier = [naive.Event(i, 1, TAG_NONE, 0.5) for i in range(src.size) if i % 2 == 0]
    got = run_gate(network, events, earlier)
    assert got == naive.max_gate(proj, src.shape, events, earlier)
    # relay (c, yo, xo) reads rows yo - 1 .. yo and columns xo - 1 .. xo: its first in-bounds member wins
    want = []
    for out in range(relay.size):
        c, yo, xo = np.unravel_index(out, relay.shape)
        first = int(np.ravel_multi_index((c, max(yo - 1, 0), max(xo - 1, 0)), src.shape))
        want.append(naive.Event(out, events[first].c, TAG_NONE, events[first].value))
    assert got == (sorted(want), 4 * src.size)  # every neuron sits in 4 windows (2 x 2 overlaps, padded borders)


def test_max_gate_padding_never_wins():
    """A corner window [pad, pad; pad, n0]: n0 wins with any rank, and the neighbours its window would wrap to
    (ranked higher) do not."""
    for rank in ("mass", "value"):
        network = pool_network("2x2-overlapping-padded", "maxpool2d", None, rank=rank)
        proj, src, _ = under_test(network)
        earlier = [naive.Event(i, 3, TAG_B, 3.0) for i in range(1, src.size)]  # everybody but the corner ranks high
        events = [naive.Event(0, -1, TAG_A, -0.5)]  # the corner: mass 1, value -1/2
        got = run_gate(network, events, earlier)
        assert got == ([naive.Event(0, -1, TAG_A, -0.5)], 4)  # wins window (0, 0, 0) alone
        assert got == naive.max_gate(proj, src.shape, events, earlier)


def test_max_gate_rank_by_mass_or_by_value():
    """One 1x2 window over a bif source. m0 emitted +2 (A, value 1), m1 -1 then +1 (B, A; values -1/2, 1/4).
    By mass: m0 2, m1 2, a tie: m0 passes its events. By value: m0 1 > m1 -1/4: m0 again. With m1's earlier
    event +3 instead (mass 4, value 7/4), m1 wins either way and passes both its A and its B events, tags kept.
    By value a silent neuron (sum 0) beats a negative one."""
    src, relay = population("src", "bif", (1, 1, 2)), population("tgt", "relay", (1, 1, 1))
    now = [naive.Event(0, 2, TAG_A, 1.0), naive.Event(1, 1, TAG_A, 0.25)]
    for rank in ("mass", "value"):
        network = one_projection("maxpool2d", src, relay, kernel=(1, 2), stride=(1, 2), rank=rank)
        proj = under_test(network)[0]
        for earlier, want in (([naive.Event(1, -1, TAG_B, -0.5)], [naive.Event(0, 2, TAG_A, 1.0)]),
                              ([naive.Event(1, 3, TAG_B, 1.5)], [naive.Event(0, 1, TAG_A, 0.25)])):
            got = run_gate(network, now, earlier)
            assert got == naive.max_gate(proj, src.shape, now, earlier) == (sorted(want), 2), rank
        # m0 silent (0), m1 fires -1 (value -1/4): by value m0 wins and m1's event is blocked; by mass m1 passes
        event = [naive.Event(1, -1, TAG_B, -0.25)]
        want = ([], 1) if rank == "value" else ([naive.Event(0, -1, TAG_B, -0.25)], 1)
        assert run_gate(network, event) == naive.max_gate(proj, src.shape, event) == want, rank


def test_max_gate_empty_slice():
    network = pool_network("2x2", "maxpool2d", None)
    assert run_gate(network, [], random_history(np.random.default_rng(0), 24, (TAG_NONE,))) == ([], 0)


# == neurons: coefficient, fire, integrate, step weight ==============================================

def test_coefficient_equals_counting_up():
    """The kernel's division-and-correction equals the oracle's count from 1, on dyadic and on arbitrary floats."""
    rng = np.random.default_rng(14)
    for _ in range(3000):
        th = float(rng.uniform(0.01, 2.0)) if rng.random() < 0.5 else float(dyadic(rng, (), 2**-6, 2**-6, 2))
        excess = th * float(rng.uniform(1.0, 60.0))
        for max_coeff in (0, 1, 2, 7):
            assert neurons.coefficient(excess, th, max_coeff) == naive.coefficient(excess, th, max_coeff)


@pytest.mark.parametrize("dtype", DTYPES)
def test_coefficient_where_the_division_rounds_wrong(dtype):
    """At and a rounding away from c theta, where int(excess / theta) is off by one (both ways in float64)."""
    if dtype is np.float32 and numba.config.DISABLE_JIT:
        pytest.skip("uncompiled, c * theta is a float32 product (NumPy 2 promotion) and rounds; jitted it is float64")
    down, up = wrong_division_cases(np.random.default_rng(18), dtype)
    assert len(up) > 20 and (dtype is np.float32 or len(down) > 20), (len(down), len(up))
    for excess, th in down + up:
        for max_coeff in (0, 50):
            assert neurons.coefficient(excess, th, max_coeff) == naive.coefficient(float(excess), float(th), max_coeff)


def wrong_division_cases(rng, dtype, tries=4000):
    """(excess, threshold) pairs in `dtype` where int(excess / threshold) is not the coefficient: rounded up
    past it, or (float64 only: with products exact, as in float32, a correctly rounded division cannot fall
    below an integer the excess reaches) rounded down below it."""
    down, up = [], []
    for _ in range(tries):
        th = dtype(rng.uniform(0.01, 2.0))
        c = int(rng.integers(2, 40))
        excess = dtype(np.float64(th) * c)  # at, or a rounding away from, c th
        for e in (excess, np.nextafter(excess, dtype(0)), np.nextafter(excess, dtype(np.inf))):
            quotient = int(e / th)  # the division in the state's dtype, as the kernel does it
            exact = naive.coefficient(float(e), float(th), 0)
            if quotient != exact:
                (down if quotient < exact else up).append((e, th))
    return down, up


@pytest.mark.parametrize("dtype", DTYPES)
def test_fire_coefficient_is_exact_where_the_division_rounds_wrong(dtype):
    """Neurons whose v / theta rounds to the wrong integer: the coefficient, the reset and the discharge are
    still the exact ones."""
    if dtype is np.float32 and numba.config.DISABLE_JIT:
        pytest.skip("uncompiled, c * theta is a float32 product (NumPy 2 promotion) and rounds; jitted it is float64")
    rng = np.random.default_rng(15)
    down, up = wrong_division_cases(rng, dtype)
    assert len(up) > 20 and (dtype is np.float32 or len(down) > 20), (len(down), len(up))
    cases = down[:100] + up[:100]
    v = np.array([[e for e, _ in cases]], dtype=dtype)
    theta = np.array([th for _, th in cases], dtype=dtype)
    pop = population("h", "if", (len(cases),), theta_pos=theta.astype(np.float64), max_coeff=0)
    network = Network((population("in", "input", (1,)), dataclasses.replace(pop, order=1)), (), "h")
    got_v, got_d, got_events = run_fire(network, "h", v.astype(np.float64), dtype=dtype)
    want = naive.fire(v[0], theta, None, 0, 1.0, TAG_NONE, dtype=dtype)
    assert got_events == want.events
    np.testing.assert_array_equal(got_v[0], want.v)
    np.testing.assert_array_equal(got_d[0], want.discharged)


FIRE_CASES = {  # kind, max_coeff, double threshold, version-3 rules (of an if population)
    "binary": ("if", 1, False, {}),
    "ternary": ("if", 1, True, {}),
    "augmented-bounded": ("if", 3, True, {}),
    "augmented-bounded-2": ("readout", 2, False, {}),
    "augmented-unbounded": ("if", 0, True, {}),
    "bif-ternary": ("bif", 1, True, {}),
    "bif-augmented": ("bif", 0, False, {}),
    "gt-ternary": ("if", 1, True, {"fire_when": "gt"}),
    "gt-augmented": ("if", 0, True, {"fire_when": "gt"}),
    "reset-value": ("if", 3, True, {"reset": "value", "v_reset": "per neuron"}),
    "reset-zero-gt": ("if", 0, True, {"reset": "value", "fire_when": "gt"}),
}


def fire_network(rng, case, shape=(2, 3, 4)):
    kind, max_coeff, double, version3 = FIRE_CASES[case]
    extra = {"mode": "spikes"} if kind == "readout" else {}
    extra.update({k: (dyadic(rng, shape, 2**-4, -0.5, 0.5) if k == "v_reset" else v) for k, v in version3.items()})
    pop = population("h", kind, shape, max_coeff=max_coeff, theta_pos=dyadic(rng, shape, 2**-3, 0.25, 1.5),
                     theta_neg=dyadic(rng, (shape[0],), 2**-3, -1.5, -0.25) if double else None, **extra)
    return Network((population("in", "input", (1,)), dataclasses.replace(pop, order=1)), (), "h"), pop


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FIRE_CASES)
def test_fire_random(case, dtype):
    """Potentials far past both thresholds (coefficients up to ~25), phase values S_k, every tag, both units."""
    rng = np.random.default_rng(16)
    network, pop = fire_network(rng, case)
    theta_pos, theta_neg = pop.expand("theta_pos"), None if pop.theta_neg is None else pop.expand("theta_neg")
    for trial in range(6):
        sk = PHASES[trial % 4]
        v = dyadic(rng, (pop.units, pop.size), 2**-5, -12 * sk, 12 * sk)
        discharged = dyadic(rng, (pop.units, pop.size), 2**-5, -2, 2)
        units = (0, 1) if pop.kind == "bif" else (0,)
        for unit in units:
            tag = {"bif": (TAG_A, TAG_B)[unit]}.get(pop.kind, TAG_NONE)
            got_v, got_d, got_events = run_fire(network, "h", v, unit, sk, tag, discharged, dtype, seed=trial)
            v_reset = pop.expand("v_reset") if pop.reset == "value" else None
            want = naive.fire(v[unit], theta_pos, theta_neg, pop.max_coeff, sk, tag, discharged[unit], dtype,
                              pop.fire_when == "gt", v_reset)
            assert got_events == want.events
            np.testing.assert_array_equal(got_v[unit], want.v)
            np.testing.assert_array_equal(got_d[unit], want.discharged)
            other = 1 - unit
            if pop.units == 2:  # the other unit neither compares nor resets
                np.testing.assert_array_equal(got_v[other], v[other])
                np.testing.assert_array_equal(got_d[other], discharged[other])
            coefs = [e.c for e in want.events]
            assert len(coefs) > 5 and (pop.max_coeff == 1 or max(map(abs, coefs)) > 1)
            assert (pop.theta_neg is None) == (min(coefs) > 0)


def test_fire_edges_by_hand():
    """At the thresholds exactly, just inside them, at c theta exactly, and capped (the rest stays in v)."""
    theta = 0.5
    for max_coeff, v, want_c, want_v in [
        (1, 0.5, 1, 0.0), (1, 0.46875, 0, 0.46875), (1, -0.75, -1, 0.0), (1, -0.71875, 0, -0.71875),
        (1, 2.0, 1, 1.5), (0, 2.0, 4, 0.0), (0, 1.96875, 3, 0.46875), (0, -3.0, -4, 0.0),
        (3, 2.0, 3, 0.5), (3, -3.0, -3, -0.75), (2, 0.5, 1, 0.0),
    ]:
        pop = population("h", "if", (1,), max_coeff=max_coeff, theta_pos=theta, theta_neg=-0.75)
        network = Network((population("in", "input", (1,)), dataclasses.replace(pop, order=1)), (), "h")
        for sk in (1.0, 0.25):
            got_v, got_d, events = run_fire(network, "h", [[v * sk]], sk=sk, tag=TAG_NONE)
            assert [e.c for e in events] == ([want_c] if want_c else []), (max_coeff, v, sk)
            assert got_v[0, 0] == want_v * sk and got_d[0, 0] == v * sk - want_v * sk
            if want_c:
                assert events[0].value == want_c * sk
            want = naive.fire([v * sk], [theta], [-0.75], max_coeff, sk, TAG_NONE)
            assert (want.v[0], [e.c for e in want.events]) == (want_v * sk, [want_c] if want_c else [])


def test_fire_single_threshold_ignores_negative_potentials():
    pop = population("h", "if", (3,), max_coeff=0)
    network = Network((population("in", "input", (1,)), dataclasses.replace(pop, order=1)), (), "h")
    v = np.array([[-5.0, 0.0, 0.96875]])
    got_v, got_d, events = run_fire(network, "h", v)
    assert events == [] and np.array_equal(got_v, v) and not got_d.any()


INTEGRATING = {  # kind, fields
    "if": ("if", {}),
    "if-phase": ("if", {"coding": "phase", "phase_period": 3}),
    "bif-split": ("bif", {"phase_period": 2}),
    "bif-gated": ("bif", {"drive": "gated", "phase_period": 2}),
    "bif-gated-phase-K3": ("bif", {"drive": "gated", "coding": "phase", "phase_period": 3}),
    "readout-onset": ("readout", {"bias_onset": 3}),
    "bif-gated-onset": ("bif", {"drive": "gated", "phase_period": 1, "bias_onset": 2}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", INTEGRATING)
def test_integrate(case, dtype):
    """Step t's analog current per unit and bias (per tensor, channel or neuron; zero: not added), both weighted by
    S_k, into every unit, or under gated drive only the integrating one; the bias from its onset on."""
    rng = np.random.default_rng(17)
    kind, fields = INTEGRATING[case]
    shape = (2, 2, 3)
    for bias in (dyadic(rng, shape, 2**-6, -0.5, 0.5), dyadic(rng, (2,), 2**-6, -0.5, 0.5), np.zeros(())):
        pop = population("h", kind, shape, bias=bias, **fields)
        network = Network((population("in", "input", (1,)), dataclasses.replace(pop, order=1)), (), "h")
        for t in range(7):
            v = membrane(rng, pop.units, pop.size)
            current = dyadic(rng, (pop.units, pop.size), 2**-5, -1, 1)
            for analog in (current, None):
                got = run_integrate(network, "h", v, t, analog, dtype)
                np.testing.assert_array_equal(got, naive.integrate(pop, v, t, analog), err_msg=f"t={t}")


def test_integrating_units():
    for period in (1, 2, 3):
        for t in range(12):
            for drive in ("split", "gated"):
                pop = population("z", "bif", (1,), drive=drive, phase_period=period)
                first, count = neurons.integrating_units(2, drive == "gated", period, t)
                assert tuple(range(first, first + count)) == naive.integrating_units(pop, t)
            first, count = neurons.integrating_units(1, False, period, t)
            assert (first, count) == (0, 1) == (naive.integrating_units(population("h", "if", (1,)), t)[0], 1)


def test_step_weight():
    for t in range(70):
        for period in (1, 2, 3, 5, 8, 16, 33):
            assert neurons.step_weight(True, period, t) == naive.step_weight("phase", period, t)
            assert neurons.step_weight(False, period, t) == naive.step_weight("rate", period, t) == 1.0


def test_bif_firing_unit():
    bif, other = scheduler.BIF, scheduler.INPUT
    for t in range(30):
        for period in (1, 2, 3, 7):
            assert tuple(scheduler.firing_unit(bif, period, t)) == naive.firing_unit(t, period)
            assert tuple(scheduler.firing_unit(other, period, t)) == (0, TAG_NONE)
