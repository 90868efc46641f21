"""Counts equal an independent count from the recorded spike trains and the connectivity alone.

Fan-outs come from torch's own conv2d applied to one-hot inputs with unit
weights (so borders, stride, padding, dilation and groups follow PyTorch,
not evsim's window code); counts are then sums over the spike trains.
"""
import numpy as np
import pytest

from evsim.counters import (AC_OPS, BIAS_OPS, EVENTS, EVENTS_A, EVENTS_B, INPUT_MACS, INPUT_MACS_DENSE, MASS, MASS_A,
                            MASS_B, NEURON_UPDATES, POOL_OPS, POPULATION_COUNTERS, PROJECTION_COUNTERS, SCALED_OPS)
from evsim.simulate import simulate
from netgen import random_inputs, random_network

torch = pytest.importorskip("torch")
T = 10


def fan_out(proj, src, tgt) -> np.ndarray:
    """Structural synapses of every source neuron (C-major), from PyTorch's conv on one-hot inputs."""
    if proj.kind == "dense":
        return np.full(src.size, tgt.size)
    if proj.kind == "identity":
        return np.ones(src.size, dtype=np.int64)
    if proj.kind == "sparse":
        return np.diff(proj.indptr)
    basis = torch.eye(src.size, dtype=torch.float64).reshape(src.size, *src.shape)
    if proj.kind == "conv2d":
        ones = torch.ones(proj.weight.shape, dtype=torch.float64)
        out = torch.nn.functional.conv2d(basis, ones, stride=proj.stride, padding=proj.padding,
                                         dilation=proj.dilation, groups=proj.groups)
    else:  # a pool window is a depthwise conv with unit weights
        c = src.shape[0]
        ones = torch.ones((c, 1, *proj.kernel), dtype=torch.float64)
        out = torch.nn.functional.conv2d(basis, ones, stride=proj.stride, padding=proj.padding, groups=c)
    assert tuple(out.shape[1:]) == tgt.shape
    return out.sum(dim=(1, 2, 3)).round().numpy().astype(np.int64)


def independent_counts(network, result, inputs, encoder):
    """Every counter per sample and step, from spike trains and fan-outs only."""
    n = len(inputs)
    trains = {}
    for (pop, tag), (coef, _) in result.spikes.items():
        trains.setdefault(pop, {})[tag] = coef.reshape(n, T, -1)
    pops = np.zeros((n, T, len(network.populations), len(POPULATION_COUNTERS)), dtype=np.int64)
    for p, pop in enumerate(network.populations):
        for tag, coef in trains.get(pop.name, {}).items():
            events, mass = (coef != 0).sum(-1), np.abs(coef).sum(-1)
            pops[:, :, p, EVENTS] += events
            pops[:, :, p, MASS] += mass
            if tag in ("A", "B"):
                pops[:, :, p, EVENTS_A if tag == "A" else EVENTS_B] += events
                pops[:, :, p, MASS_A if tag == "A" else MASS_B] += mass
        if pop.kind not in ("input", "relay"):
            receiving = 1 if pop.kind == "bif" and pop.drive == "gated" else pop.units  # gated: the integrating unit
            pops[:, pop.bias_onset:, p, BIAS_OPS] = np.count_nonzero(pop.expand("bias")) * receiving
            pops[:, :, p, NEURON_UPDATES] = pop.size if pop.fires else 0
    projs = np.zeros((n, T, len(network.projections), len(PROJECTION_COUNTERS)), dtype=np.int64)
    for q, proj in enumerate(network.projections):
        src, tgt = network.population(proj.source), network.population(proj.target)
        f = fan_out(proj, src, tgt)
        if src.kind == "input" and encoder == "analog":
            flat = inputs.reshape(n, -1)
            projs[:, :, q, INPUT_MACS] = ((flat != 0) * f).sum(-1)[:, None]
            projs[:, :, q, INPUT_MACS_DENSE] = f.sum()
            continue
        for tag, coef in trains[src.name].items():
            split = tgt.kind == "bif" and tgt.drive != "gated"  # an untagged event reaches both units only when split
            units = 2 if split and tag == "out" and proj.kind != "maxpool2d" else 1
            if proj.kind in ("avgpool2d", "maxpool2d"):
                projs[:, :, q, POOL_OPS] += ((coef != 0) * f).sum(-1) * units
            else:
                projs[:, :, q, AC_OPS] += ((np.abs(coef) == 1) * f).sum(-1) * units
                projs[:, :, q, SCALED_OPS] += ((np.abs(coef) > 1) * f).sum(-1) * units
    return pops, projs


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("coding,bif,encoder", [("rate", False, "analog"), ("rate", False, "bernoulli"),
                                                 ("mixed", True, "phase"), ("phase", True, "analog")])
@pytest.mark.parametrize("version2", [False, True], ids=["v1", "v2"])
def test_counts_match_spike_trains(seed, coding, bif, encoder, version2):
    network = random_network(100 + seed, coding=coding, bif=bif, version2=version2)
    inputs = random_inputs(seed, network, 2, encoder)
    result = simulate(network, inputs, timesteps=T, encoder=encoder, seed=seed, record_spikes=True, record_counts=True)
    pops, projs = independent_counts(network, result, inputs, encoder)
    np.testing.assert_array_equal(result.pop_counts, pops)
    np.testing.assert_array_equal(result.proj_counts, projs)
    # the bounded-memory totals are the same numbers summed
    np.testing.assert_array_equal(result.pop_counts_per_step, pops.sum(axis=0))
    np.testing.assert_array_equal(result.proj_counts_per_sample, projs.sum(axis=1))


def test_conv_fan_out_is_border_exact():
    """A 5x5 stride-2 padded conv: corner pixels reach fewer outputs than central ones, exactly as PyTorch says."""
    from evsim.network import Network, Population, Projection

    weight = np.ones((3, 1, 5, 5)) / 32
    pops = (Population("in", "input", (1, 9, 9), 0, encoding="bernoulli"),
            Population("out", "readout", (3, 5, 5), 1))
    proj = Projection("conv", "conv2d", "in", "out", weight=weight, stride=(2, 2), padding=(2, 2))
    network = Network(pops, (proj,), "out")
    inputs = np.ones((1, 1, 9, 9), dtype=np.float32)  # every pixel spikes every step
    result = simulate(network, inputs, timesteps=2, encoder="bernoulli", record_counts=True)
    f = fan_out(proj, pops[0], pops[1])
    assert f.reshape(9, 9)[0, 0] == 3 * 2 * 2 and f.reshape(9, 9)[4, 4] == 3 * 3 * 3
    assert result.proj_counts[0, :, 0, AC_OPS].tolist() == [f.sum()] * 2
