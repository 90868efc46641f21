"""The output-stationary conv kernel (`delivery.gather_conv`): against the naive oracle, against the event-by-event
kernel bit for bit (on weights that are not dyadic), and in whole runs against the dense reference.

It takes a conv with one group, no dilation and output channels in whole register blocks (`plan._gathers`), and a
population's own events (ascending, one tag): the geometries of tests/test_naive_kernels.py with
GATHER_BLOCK output channels, which those tests' small convs never have.
"""
from __future__ import annotations

import numpy as np
import pytest

import naive
from engines import assert_engine_equals_reference
from evsim.counters import TAG_A, TAG_B, TAG_NONE
from evsim.engine import delivery
from evsim.engine import plan as plan_fields
from evsim.engine.plan import GATHER_BLOCK, build_plan, chw_of_internal
from evsim.network import Network, Population, Projection
from netgen import dyadic
from test_naive_kernels import DTYPES, PHASES, check_delivery, one_projection, spatial_pair, under_test

GATHERS = {  # Cin, (H, W), kernel, stride, padding
    "3x3-pad1": (3, (6, 7), (3, 3), (1, 1), (1, 1)),
    "10x10-stride2 (pool folded)": (2, (14, 14), (10, 10), (2, 2), (0, 0)),
    "5x4-stride2-pad2": (2, (9, 8), (5, 4), (2, 1), (2, 2)),
    "1x1": (3, (3, 4), (1, 1), (1, 1), (0, 0)),
    "kernel=map": (1, (4, 4), (4, 4), (1, 1), (0, 0)),
    "stride>kernel": (1, (7, 8), (2, 2), (3, 3), (0, 1)),
    "padding>kernel": (1, (3, 4), (1, 1), (1, 1), (2, 1)),
}


def gathering_conv(rng, case, target_kind, weight=None, blocks=1):
    cin, hw, k, stride, padding = GATHERS[case]
    cout = GATHER_BLOCK * blocks
    weight = dyadic(rng, (cout, cin, *k), 2**-5, -1, 1) if weight is None else weight(rng, (cout, cin, *k))
    proj = Projection("x", "conv2d", "src", "tgt", weight=weight, stride=stride, padding=padding)
    shape = naive.target_shape(proj, (cin, *hw))
    network = one_projection("conv2d", *spatial_pair((cin, *hw), target_kind, shape), weight=weight, stride=stride,
                             padding=padding, scale=0.75)
    plan = build_plan(network)
    rec = plan.proj_rec[network.projections.index(under_test(network)[0])]
    assert plan.ints[rec[plan_fields.REC_INTS] + plan_fields.G_GATHER] >= 0, "this conv does not gather"
    return network


def ascending_events(rng, src, fraction, tag, coefs=(-3, -2, -1, 1, 2, 3)):
    """Events of a random fraction of the source's neurons in ascending internal order (as `fire` emits them),
    one tag; C-major indices, as the oracle takes them."""
    internal = np.flatnonzero(rng.random(src.size) < fraction)
    chw = chw_of_internal(src.shape)[internal]
    return [naive.Event(int(i), int(c), tag, float(c * rng.choice(PHASES))) for i, c in zip(chw, rng.choice(coefs, chw.size))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["if", "bif", "bif-gated"])
@pytest.mark.parametrize("case", GATHERS)
def test_gather_kernel_against_the_oracle(case, target_kind, dtype):
    rng = np.random.default_rng(7)
    network = gathering_conv(rng, case, target_kind, blocks=2 if case == "3x3-pad1" else 1)
    src = under_test(network)[1]
    for fraction, tag in ((0.3, TAG_NONE), (1.0, TAG_A), (0.05, TAG_B), (0.5, TAG_NONE)):
        counts = check_delivery(network, ascending_events(rng, src, fraction, tag), rng, dtype)
        assert counts["pool_ops"] == 0
    single = ascending_events(rng, src, 1.0, TAG_NONE)
    for event in (single[0], single[-1], single[len(single) // 2]):  # corners and the middle, alone
        check_delivery(network, [event], rng, dtype)


@pytest.mark.parametrize("case", ["3x3-pad1", "10x10-stride2 (pool folded)", "5x4-stride2-pad2"])
def test_gather_adds_like_the_event_kernel_bit_for_bit(case):
    """On weights and values that are not dyadic (float32 sums round), the gather adds each output's events in
    the order the event-by-event kernel does: the same bits, the same counts."""
    rng = np.random.default_rng(3)
    network = gathering_conv(rng, case, "if", weight=lambda r, shape: r.normal(0, 0.1, shape))
    proj, src, tgt = under_test(network)
    plan = build_plan(network, np.float32)
    rec = plan.proj_rec[network.projections.index(proj)]
    event_by_event = plan.ints.copy()
    event_by_event[rec[plan_fields.REC_INTS] + plan_fields.G_GATHER] = -1
    n = src.size
    idx = np.flatnonzero(rng.random(n) < 0.4).astype(np.int64)
    ev = (idx, rng.choice([-2, -1, 1, 3], idx.size).astype(np.int64), np.zeros(idx.size, np.int64),
          (rng.random(idx.size) * 1.7).astype(np.float32))
    p = network.populations.index(tgt)
    soff, size = int(plan.pop_rec[p, plan_fields.P_SOFF]), int(plan.pop_rec[p, plan_fields.P_SIZE])
    route = (soff, soff, soff, -1)
    start = rng.normal(0, 1, int(plan.v_init.size)).astype(np.float32)
    results = []
    for ints in (plan.ints, event_by_event):
        v, counts = start.copy(), np.zeros(8, np.int64)
        delivery.push_conv(rec, ints, plan.floats, ev, 0, idx.size, v, size, route, counts)
        results.append((v, counts))
    (gathered, gather_counts), (pushed, push_counts) = results
    assert not np.array_equal(gathered, start)
    assert np.array_equal(gathered.view(np.uint32), pushed.view(np.uint32))
    assert np.array_equal(gather_counts, push_counts) and gather_counts.sum() > 0


def cnn_like(rng) -> Network:
    """Input -> 64-channel conv -> if -> (pool folded) 10x10 stride 2 conv of 64 channels -> if -> dense readout."""
    pops = (Population("in", "input", (1, 12, 12), 0), Population("c1", "if", (64, 12, 12), 1, theta_pos=np.array(1.0)),
            Population("c2", "if", (64, 2, 2), 2, theta_pos=np.array(2.0)),
            Population("out", "readout", (4,), 3, theta_pos=np.array(1.0)))
    projs = (Projection("p1", "conv2d", "in", "c1", weight=dyadic(rng, (64, 1, 3, 3), 2**-4, -1, 2), padding=(1, 1)),
             Projection("p2", "conv2d", "c1", "c2", weight=dyadic(rng, (64, 64, 10, 10), 2**-8, -1, 1.5),
                        stride=(2, 2)),
             Projection("p3", "dense", "c2", "out", weight=dyadic(rng, (4, 256), 2**-5, -1, 1)))
    return Network(pops, projs, output="out")


@pytest.mark.parametrize("encoder", ["analog", "bernoulli"])
def test_gathering_network_equals_the_reference(encoder):
    rng = np.random.default_rng(11)
    network = cnn_like(rng)
    inputs = dyadic(rng, (2, 1, 12, 12), 2**-4, 0, 1)
    plan = build_plan(network)
    assert plan.ints[plan.proj_rec[1, plan_fields.REC_INTS] + plan_fields.G_GATHER] >= 0  # p2 gathers
    arrays = assert_engine_equals_reference(network, inputs, 6, encoder, seed=2)[0].as_arrays()
    assert arrays["proj/p2/ac_ops"].sum() + arrays["proj/p2/scaled_ops"].sum() > 0  # c1 spiked into it
