"""The dense clock-driven reference engine: docs/semantics.md in plain NumPy, written for reading.

Independent of the event-driven engine on purpose: every projection is
materialised as a dense matrix `[target, source]` built in the forward
direction (from each output neuron to the inputs it reads), together with a
structural matrix counting the synapses of each (target, source) pair; every
step multiplies whole value vectors, silent neurons included; counts are
computed from the emitted spike trains and those structural matrices alone.
Everything is C-major and float64. Only for small networks (tests).

`run_reference` returns a dict of arrays keyed like the conformance files:
`pred`, `readout_v`, `readout_mass`, `pop/<name>/<counter>`,
`proj/<name>/<counter>`, `spikes/<pop>/<tag>/{coef,value}`.
"""
from __future__ import annotations

import numpy as np

from evsim.counters import POPULATION_COUNTERS, POPULATION_VALUES, PROJECTION_COUNTERS
from evsim.kinds import (ANALOG, AVGPOOL2D, BERNOULLI, BIF, CONV2D, DENSE, GATED, GT, IDENTITY, INPUT, MAXPOOL2D, PHASE,
                         PHASE_ENCODER, READOUT, RELAY, SPARSE, TO_VALUE, VALUE)
from evsim.engine.encoders import bernoulli_uniform
from evsim.network import Network, Population, Projection


def projection_matrices(proj: Projection, src: Population, tgt: Population):
    """Dense effective weights W[target, source] (scale included) and synapse counts S[target, source]."""
    n_out, n_in = tgt.size, src.size
    W = np.zeros((n_out, n_in))
    S = np.zeros((n_out, n_in), dtype=np.int64)
    if proj.kind == DENSE.name:
        W[:] = proj.weight
        S[:] = 1
    elif proj.kind == IDENTITY.name:
        W[:] = np.eye(n_out)
        S[:] = np.eye(n_out, dtype=np.int64)
    elif proj.kind == SPARSE.name:
        for s in range(n_in):
            for k in range(proj.indptr[s], proj.indptr[s + 1]):
                W[proj.indices[k], s] += proj.weight[k]
                S[proj.indices[k], s] += 1
    elif proj.kind in (CONV2D.name, AVGPOOL2D.name, MAXPOOL2D.name):
        for out, inp, w in _window_taps(proj, src.shape, tgt.shape):
            W[out, inp] += w
            S[out, inp] += 1
    return W * proj.scale, S


def _window_taps(proj: Projection, src_shape, tgt_shape):
    """Every (output index, input index, weight) of a conv or pool, walking each output's window."""
    cin, hin, win = src_shape
    cout, hout, wout = tgt_shape
    kh, kw = proj.kernel_size
    if proj.kind == CONV2D.name:
        dh, dw = proj.dilation
        cin_g, cout_g = cin // proj.groups, cout // proj.groups
    else:
        dh = dw = 1
        cin_g = cout_g = 1
    for co in range(cout):
        for yo in range(hout):
            for xo in range(wout):
                out = (co * hout + yo) * wout + xo
                for j in range(cin_g):
                    ci = (co // cout_g) * cin_g + j
                    for ky in range(kh):
                        for kx in range(kw):
                            yi = yo * proj.stride[0] - proj.padding[0] + ky * dh
                            xi = xo * proj.stride[1] - proj.padding[1] + kx * dw
                            if 0 <= yi < hin and 0 <= xi < win:
                                w = proj.weight[co, j, ky, kx] if proj.kind == CONV2D.name else 1.0 / (kh * kw)
                                yield out, (ci * hin + yi) * win + xi, w


def step_weight(pop: Population, t: int) -> float:
    return 2.0 ** -(1 + t % pop.phase_period) if pop.coding == PHASE else 1.0


def exact_coefficient(excess, threshold, max_coeff, strict=False):
    """The largest c >= 1 with c * th <= excess (strict: c * th < excess), capped at max_coeff > 0 (arrays)."""
    if max_coeff == 1:
        return np.ones_like(excess, dtype=np.int64)
    below = np.less if strict else np.less_equal  # c * th must stay below (or at) the excess
    c = np.maximum(np.floor(excess / threshold), 1)
    c = np.where((c > 1) & ~below(c * threshold, excess), c - 1, c)
    c = np.where(below((c + 1) * threshold, excess), c + 1, c)
    if max_coeff > 0:
        c = np.minimum(c, max_coeff)
    return c.astype(np.int64)


def fire(v, pop: Population, sk):
    """The fire rule on one unit's potentials: returns signed coefficients, updates v (the reset).

    Fires at the threshold (`fire_when = ge`) or only beyond it (`gt`); resets by subtraction, or to
    `v_reset` (not weighted by S_k: it is a potential, like v_init) under `reset = value`.
    """
    strict = pop.fire_when == GT
    beyond = np.greater if strict else np.greater_equal
    th_pos = pop.expand("theta_pos") * sk
    coef = np.zeros(pop.size, dtype=np.int64)
    up = beyond(v, th_pos)
    coef[up] = exact_coefficient(v[up], th_pos[up], pop.max_coeff, strict)
    if pop.theta_neg is not None:
        th_neg = pop.expand("theta_neg") * sk
        down = ~up & beyond(-v, -th_neg)
        coef[down] = -exact_coefficient(-v[down], -th_neg[down], pop.max_coeff, strict)
    fired = coef != 0
    if pop.reset == TO_VALUE:
        v[fired] = pop.expand("v_reset")[fired]
    else:
        v[up] -= coef[up] * th_pos[up]
        if pop.theta_neg is not None:
            v[down] -= -coef[down] * th_neg[down]
    return coef


def run_reference(network: Network, inputs, timesteps: int, encoder: str = ANALOG, seed: int = 0,
                  ann_signs: dict | None = None) -> dict:
    """Simulate every sample of `inputs` densely; returns the conformance-style arrays.

    `ann_signs` ({population: the ANN's activations [n, *shape]}) turns on the counts of spikes of
    inactivated neurons, taken from the emitted coefficients: an event whose sign is not its neuron's.
    """
    matrices = {q.name: projection_matrices(q, network.population(q.source), network.population(q.target))
                for q in network.projections}
    samples = []
    for s, x in enumerate(inputs):
        signs = {name: np.sign(np.asarray(a[s], np.float64)).reshape(-1) for name, a in (ann_signs or {}).items()}
        samples.append(_run_one(network, matrices, np.asarray(x, np.float64).reshape(-1), timesteps, encoder, seed,
                                s, signs))
    return {key: np.stack([s[key] for s in samples]) for key in samples[0]}


def _run_one(network, matrices, x, T, encoder, seed, sample, signs):
    pops = network.populations
    out = {}

    def record(key, t, value):
        out.setdefault(key, np.zeros((T, *np.shape(value)), dtype=np.asarray(value).dtype))[t] = value

    v = {p.name: np.tile(p.expand("v_init"), (p.units, 1)) for p in pops}  # [units, size]
    mass = {p.name: np.zeros(p.size, dtype=np.int64) for p in pops}  # sum of |c| so far
    worth = {p.name: np.zeros(p.size) for p in pops}  # sum of the events' values c * S_k so far (rank = value)
    analog = encoder == ANALOG
    for t in range(T):
        coef = {}  # population -> tag -> signed coefficients [size]
        value = {}
        for pop in pops:
            sk = step_weight(pop, t)
            counts = dict.fromkeys(POPULATION_COUNTERS, 0)
            counts.update(dict.fromkeys(POPULATION_VALUES, 0.0))
            if pop.kind == INPUT.name:
                c = _encode(x, pop, encoder, seed, sample, t)
                # the phase encoder's bit k weighs S_k even when the input population is rate coded
                weight = 2.0 ** -(1 + t % pop.phase_period) if encoder == PHASE_ENCODER else sk
                coef[pop.name], value[pop.name] = {"out": c}, {"out": c * weight}
            elif pop.kind == RELAY.name:
                coef[pop.name], value[pop.name] = _max_gate(network, pop, matrices, coef, value, mass, worth)
            else:
                receiving = _receiving_units(pop, t)
                _integrate(network, pop, matrices, v, value, x if analog else None, sk, t, receiving)
                counts["bias_ops"] = np.count_nonzero(pop.expand("bias")) * len(receiving) if t >= pop.bias_onset else 0
                coef[pop.name], value[pop.name] = _fire(pop, v[pop.name], sk, t)
                counts["neuron_updates"] = pop.size if pop.fires else 0
            for tag, c in coef[pop.name].items():
                n, m = np.count_nonzero(c), int(np.abs(c).sum())
                counts["events"] += n
                counts["mass"] += m
                if tag in ("A", "B"):
                    counts[f"events_{tag}"] += n
                    counts[f"mass_{tag}"] += m
                mass[pop.name] += np.abs(c)
                worth[pop.name] += value[pop.name][tag]
                if pop.name in signs:  # spikes of inactivated neurons: events against the ANN's sign
                    against = (c != 0) & (np.sign(c) != signs[pop.name])
                    counts["sin_events"] += int(against.sum())
                    counts["sin_mass"] += int(np.abs(c[against]).sum())
                    counts["sin_value"] += float(np.abs(value[pop.name][tag][against]).sum())
                if pop.kind != READOUT.name or pop.fires:
                    record(f"spikes/{pop.name}/{tag}/coef", t, c.reshape(pop.shape))
                    record(f"spikes/{pop.name}/{tag}/value", t, value[pop.name][tag].reshape(pop.shape))
            for name, count in counts.items():
                record(f"pop/{pop.name}/{name}", t, count)
        for q in network.projections:
            for name, count in _projection_counts(network, q, matrices[q.name][1], coef, x if analog else None).items():
                record(f"proj/{q.name}/{name}", t, count)
        output = network.output_population
        record("readout_v", t, v[output.name][0].copy())
        record("readout_mass", t, mass[output.name].copy())
        rank = worth[output.name] if output.rank == VALUE else mass[output.name]
        record("pred", t, _predict(output, v[output.name][0], rank))
    return out


def _encode(x, pop, encoder, seed, sample, t):
    if encoder == ANALOG:
        return np.zeros(pop.size, dtype=np.int64)
    if encoder == BERNOULLI:
        with np.errstate(over="ignore"):
            u = bernoulli_uniform(np.uint64(seed), np.uint64(sample), np.uint64(t), np.arange(pop.size, dtype=np.uint64))
        return np.where(u < np.abs(x), np.sign(x), 0).astype(np.int64)
    K = pop.phase_period
    q = np.minimum(np.floor(x * 2**K), 2**K - 1).astype(np.int64)
    return (q >> (K - 1 - t % K)) & 1


def _receiving_units(pop, t) -> list[int]:
    """The units untagged input, analog current and bias reach at step t: all of them, but for a bif pair
    under gated drive only the one in its non-spike phase (A = 0 in even periods t // K, B = 1 in odd)."""
    if pop.kind == BIF.name and pop.drive == GATED:
        return [(t // pop.phase_period) % 2]
    return list(range(pop.units))


def _integrate(network, pop, matrices, v, value, x, sk, t, receiving):
    """v += incoming events (by the A/B wiring rule) + analog current + bias (from its onset), all this step's."""
    for q in network.incoming(pop.name):
        W = matrices[q.name][0]
        src_values = value[q.source]
        if q.source == network.input.name and x is not None:  # analog input: current W x, weighted by S_k
            for u in receiving:
                v[pop.name][u] += W @ x * sk
            continue
        if pop.kind == BIF.name:
            silent = np.zeros(W.shape[1])
            plain = src_values.get("out", silent)
            v[pop.name][0] += W @ (src_values.get("B", silent) + (plain if 0 in receiving else silent))  # A takes B
            v[pop.name][1] += W @ (src_values.get("A", silent) + (plain if 1 in receiving else silent))  # B takes A
        else:
            v[pop.name][0] += W @ sum(src_values.values())
    if t >= pop.bias_onset:
        for u in receiving:
            v[pop.name][u] += pop.expand("bias") * sk


def _fire(pop, v, sk, t):
    if not pop.fires:
        return {"out": np.zeros(pop.size, dtype=np.int64)}, {"out": np.zeros(pop.size)}
    if pop.kind == BIF.name:
        a_phase = (t // pop.phase_period) % 2 == 1
        firing = "A" if a_phase else "B"
        coefs = {"A": np.zeros(pop.size, dtype=np.int64), "B": np.zeros(pop.size, dtype=np.int64)}
        coefs[firing] = fire(v[0 if a_phase else 1], pop, sk)
    else:
        coefs = {"out": fire(v[0], pop, sk)}
    return coefs, {tag: c * sk for tag, c in coefs.items()}


def _max_gate(network, relay, matrices, coef, value, mass, worth):
    """Each window passes its winner's events of this step (winner: most spike mass so far, or largest sum of
    event values under rank = value; first on ties).

    A window's members are the nonzero entries of the max-pool's synapse-count row.
    """
    proj = network.incoming(relay.name)[0]
    src = network.population(proj.source)
    windows = matrices[proj.name][1] > 0
    rank = worth[src.name] if proj.rank == VALUE else mass[src.name]
    winners = [np.flatnonzero(row)[np.argmax(rank[np.flatnonzero(row)])] for row in windows]
    return ({tag: c[winners] for tag, c in coef[src.name].items()},
            {tag: val[winners] for tag, val in value[src.name].items()})


def _projection_counts(network, q, S, coef, x):
    """Counts of projection q this step, from the emitted coefficients and the synapse counts alone."""
    counts = dict.fromkeys(PROJECTION_COUNTERS, 0)
    fan_out = S.sum(axis=0)  # synapses of each source neuron
    target = network.population(q.target)
    if q.source == network.input.name and x is not None:
        counts["input_macs"] = int(fan_out[x != 0].sum())
        counts["input_macs_dense"] = int(fan_out.sum())
        return counts
    for tag, c in coef[q.source].items():
        units = 2 if target.kind == BIF.name and target.drive != GATED and tag == "out" else 1
        if q.kind in (AVGPOOL2D.name, MAXPOOL2D.name):
            counts["pool_ops"] += int(fan_out[c != 0].sum()) * (1 if q.kind == MAXPOOL2D.name else units)
        else:
            counts["ac_ops"] += int(fan_out[np.abs(c) == 1].sum()) * units
            counts["scaled_ops"] += int(fan_out[np.abs(c) > 1].sum()) * units
    return counts


def _predict(output, v, rank):
    if not output.fires:
        return int(np.argmax(v))
    order = np.lexsort((np.arange(output.size), -v, -rank))  # rank (mass or value), then larger v, then lower index
    return int(order[0])
