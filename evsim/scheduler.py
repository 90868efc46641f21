"""The jitted event-driven scheduler: one sample, T steps, every population in topological order.

Per step and population (docs/semantics.md): the events its sources emitted
this step were already pushed into its membrane when those sources fired
(push model, zero delay); it then adds its analog input current and bias,
compares and fires, and pushes its own events through its outgoing
projections. Only nonzero events are delivered, so a silent neuron costs
nothing in delivery. Counters are incremented where the work happens.

Three layers, as in STUMPY: small kernels (evsim/kernels.py), `run_sample`
(serial, one sample), `run_batch` (prange over samples, each writing its own
output slices: deterministic on any number of threads).
"""
from __future__ import annotations

import numba
import numpy as np

from evsim.counters import (AC_OPS, BIAS_OPS, EVENTS, EVENTS_A, EVENTS_B, INPUT_MACS, INPUT_MACS_DENSE, MASS,
                            MASS_A, MASS_B, NEURON_UPDATES, POOL_OPS, SCALED_OPS, TAG_A, TAG_B, TAG_NONE)
from evsim.jit import kernel, parallel_kernel
from evsim.kernels import (bernoulli_uniform, deliver_avgpool, deliver_conv, deliver_dense, deliver_sparse, fire,
                           maxpool_winner, phase_bit, step_weight, window_hits)
from evsim.plan import (ANALOG, AVGPOOL2D, BERNOULLI, BIF, CONV2D, DENSE, G_CIN, G_HOUT, G_KH, G_KW, G_PH, G_PW,
                        G_SH, G_SW, G_WIN, G_WOUT, IDENTITY, INPUT, MAXPOOL2D, RELAY, SPARSE)


@kernel
def deliver_one(kind, weights, woff, n_out, g, fixed_w, sparse_ptr, sparse_idx, sparse_w, roff,
                i, value, v, vbase, rows, row_taps, cols, col_taps):
    """Deliver one event (internal source index `i`) into the units at `vbase`; return its fan-out."""
    if kind == DENSE:
        return deliver_dense(weights, woff, n_out, i, value, v, vbase)
    if kind == CONV2D:
        return deliver_conv(weights, woff, g, i, value, v, vbase, rows, row_taps, cols, col_taps)
    if kind == AVGPOOL2D:
        return deliver_avgpool(fixed_w, g, i, value, v, vbase, rows, row_taps, cols, col_taps)
    if kind == SPARSE:
        return deliver_sparse(sparse_ptr, sparse_idx, sparse_w, roff, i, value, v, vbase)
    if kind == IDENTITY:
        v[vbase + i] += fixed_w * value
        return 1
    return 0


@kernel
def push(kind, weights, woff, n_out, g, fixed_w, sparse_ptr, sparse_idx, sparse_w, roff,
         ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base, bif_target,
         rows, row_taps, cols, col_taps, counts):
    """Deliver events `start..stop` through one projection, adding unit updates to `counts[t, q]`.

    Wiring: a bif target's A units (at `a_base`) take B events, its B units
    (at `b_base`) take A events, and untagged events reach both. Any other
    target has one unit. Updates are pool_ops for pools, scaled_ops for
    |c| > 1 and ac_ops otherwise.
    """
    for e in range(start, stop):
        i, value, tag = ev_idx[e], ev_val[e], ev_tag[e]
        base = b_base if bif_target and tag == TAG_A else a_base
        ops = deliver_one(kind, weights, woff, n_out, g, fixed_w, sparse_ptr, sparse_idx, sparse_w, roff,
                          i, value, v, base, rows, row_taps, cols, col_taps)
        if bif_target and tag == TAG_NONE:
            ops += deliver_one(kind, weights, woff, n_out, g, fixed_w, sparse_ptr, sparse_idx, sparse_w, roff,
                               i, value, v, b_base, rows, row_taps, cols, col_taps)
        if kind == AVGPOOL2D:
            counts[POOL_OPS] += ops
        elif abs(ev_coef[e]) > 1:
            counts[SCALED_OPS] += ops
        else:
            counts[AC_OPS] += ops


@kernel
def gate_maxpool(g, mass, mbase, ev_idx, ev_coef, ev_tag, ev_val, start, stop, relay_base, relay_n,
                 rows, row_taps, cols, col_taps, counts):
    """Spiking max-pool: pass each event into every window it is in and wins (most spike mass so far).

    Appends passed events to the relay's buffer at `relay_base + relay_n` and
    returns the new relay count; counts one pool op per (event, window) pair,
    winner or not.
    """
    cin, win = g[G_CIN], g[G_WIN]
    for e in range(start, stop):
        i = ev_idx[e]
        c = i % cin
        x = (i // cin) % win
        y = i // (cin * win)
        n_rows = window_hits(y, g[G_PH], g[G_KH], 1, g[G_SH], g[G_HOUT], rows, row_taps)
        n_cols = window_hits(x, g[G_PW], g[G_KW], 1, g[G_SW], g[G_WOUT], cols, col_taps)
        counts[POOL_OPS] += n_rows * n_cols
        for a in range(n_rows):
            for b in range(n_cols):
                if maxpool_winner(mass, mbase, g, c, rows[a], cols[b]) == i:
                    r = relay_base + relay_n
                    ev_idx[r] = (rows[a] * g[G_WOUT] + cols[b]) * cin + c
                    ev_coef[r] = ev_coef[e]
                    ev_tag[r] = ev_tag[e]
                    ev_val[r] = ev_val[e]
                    relay_n += 1
    return relay_n


@kernel
def analog_current(plan, x, current, input_ops, rows, row_taps, cols, col_taps):
    """Deliver the analog input once per sample: the constant current of every input projection's targets.

    `input_ops[q]` receives the per-step input MACs of each input projection
    (nonzero pixels, and all pixels), which the semantics charge every step.
    A MAC is one product w * x: the A and B units of a bif target share it.
    Called once per sample, so it may read `plan`.
    """
    for q in range(plan.proj_kind.size):
        inp, r = plan.proj_src[q], plan.proj_tgt[q]
        if plan.pop_kind[inp] != INPUT:
            continue
        for u in range(plan.pop_units[r]):
            base = plan.pop_soff[r] + u * plan.pop_size[r]
            for i in range(plan.pop_size[inp]):
                ops = deliver_one(plan.proj_kind[q], plan.weights, plan.proj_woff[q], plan.pop_size[r],
                                  plan.proj_geom[q], plan.proj_fixed_w[q], plan.sparse_ptr, plan.sparse_idx,
                                  plan.sparse_w, plan.proj_roff[q], i, x[i], current, base,
                                  rows, row_taps, cols, col_taps)
                if u == 0:
                    input_ops[q, 1] += ops
                    if x[i] != 0:
                        input_ops[q, 0] += ops


@kernel
def encode(encoder, x, input_chw, period, sample, seed, t, sk, ev_idx, ev_coef, ev_tag, ev_val, ebase):
    """Input events of step t: Bernoulli (|x| as probability, value sign(x)) or phase (bits of x)."""
    n = 0
    for i in range(x.size):
        xi = x[i]
        c = 0
        if encoder == BERNOULLI:
            u = bernoulli_uniform(np.uint64(seed), np.uint64(sample), np.uint64(t), np.uint64(input_chw[i]))
            if u < abs(xi):
                c = 1 if xi > 0 else -1
        elif phase_bit(xi, period, t):
            c = 1
        if c != 0:
            ev_idx[ebase + n] = i
            ev_coef[ebase + n] = c
            ev_tag[ebase + n] = TAG_NONE
            ev_val[ebase + n] = c * sk
            n += 1
    return n


@kernel
def integrate(v, current, bias, soff, noff, size, units, analog, biased, sk):
    """Add this step's analog current and bias, weighted by S_k, to every unit (A and B alike)."""
    if analog:
        for j in range(soff, soff + size * units):
            v[j] += current[j] * sk
    if biased:
        for u in range(units):
            for n in range(size):
                v[soff + u * size + n] += bias[noff + n] * sk


@kernel
def count_events(ev_idx, ev_coef, ev_tag, ev_val, start, stop, mass, noff, size, counts,
                 record, spike_coef, spike_val):
    """Count emitted events (A and B apart), add their mass to their neurons, record them if asked."""
    for e in range(start, stop):
        i, m, tag = ev_idx[e], abs(ev_coef[e]), ev_tag[e]
        counts[EVENTS] += 1
        counts[MASS] += m
        if tag == TAG_A:
            counts[EVENTS_A] += 1
            counts[MASS_A] += m
        elif tag == TAG_B:
            counts[EVENTS_B] += 1
            counts[MASS_B] += m
        mass[noff + i] += m
        if record:
            slot = 2 * noff + (size if tag == TAG_B else 0) + i
            spike_coef[slot] = ev_coef[e]
            spike_val[slot] = ev_val[e]


@kernel
def predict(v, mass, soff, noff, order, by_mass):
    """argmax over the output (C-major `order`) of potential, or of spike mass then potential; ties: lower index."""
    best = 0
    for j in range(1, order.size):
        a, b = order[j], order[best]
        va, vb = v[soff + a], v[soff + b]
        if by_mass:
            ma, mb = mass[noff + a], mass[noff + b]
            if ma > mb or (ma == mb and va > vb):
                best = j
        elif va > vb:
            best = j
    return best


@kernel
def record_readout(v, mass, soff, noff, order, readout_v, readout_mass):
    """Output potentials (A units for a bif output) and spike mass, in C-major order."""
    for j in range(order.size):
        readout_v[j] = v[soff + order[j]]
        readout_mass[j] = mass[noff + order[j]]


@kernel
def run_sample(plan, x, sample, seed, encoder, timesteps, pred, pop_counts, proj_counts,
               readout_v, readout_mass, spike_coef, spike_val):
    """Simulate one sample for `timesteps` steps, writing into this sample's output slices.

    `readout_v`/`readout_mass` have T rows (full trace) or 1 row (final state
    only); `spike_coef`/`spike_val` are [T, slots] when spikes are recorded, else [1, 0].
    Only this function reads `plan`: the kernels it calls take the arrays and
    scalars they need, because passing the whole plan to a call costs a
    reference-count update per array, per call (it dominated small networks).
    """
    n_pops = plan.pop_kind.size
    size, units, soff, noff = plan.pop_size, plan.pop_units, plan.pop_soff, plan.pop_noff
    n_units = soff[n_pops - 1] + size[n_pops - 1] * units[n_pops - 1]
    n_neurons = noff[n_pops - 1] + size[n_pops - 1]
    v = np.empty(n_units, dtype=plan.weights.dtype)
    for p in range(n_pops):
        for u in range(units[p]):
            v[soff[p] + u * size[p]:soff[p] + (u + 1) * size[p]] = plan.v_init[noff[p]:noff[p] + size[p]]
    current = np.zeros(n_units, dtype=plan.weights.dtype)
    mass = np.zeros(n_neurons, dtype=np.int64)
    # Event buffers: 2 slots per neuron (a bif pair, or a relay fed by one, can pass A and B).
    ev_idx = np.empty(2 * n_neurons, dtype=np.int64)
    ev_coef = np.empty(2 * n_neurons, dtype=np.int64)
    ev_tag = np.empty(2 * n_neurons, dtype=np.int64)
    ev_val = np.empty(2 * n_neurons, dtype=np.float64)
    ev_n = np.zeros(n_pops, dtype=np.int64)
    k = 1
    if plan.proj_kind.size:
        k = max(1, plan.proj_geom[:, G_KH].max(), plan.proj_geom[:, G_KW].max())
    rows, row_taps = np.empty(k, np.int64), np.empty(k, np.int64)
    cols, col_taps = np.empty(k, np.int64), np.empty(k, np.int64)

    analog = encoder == ANALOG
    input_ops = np.zeros((plan.proj_kind.size, 2), dtype=np.int64)
    if analog:
        analog_current(plan, x, current, input_ops, rows, row_taps, cols, col_taps)
    record_spikes = spike_coef.shape[1] > 0
    out, order = plan.output_pop, plan.output_internal
    trace = readout_v.shape[0] == timesteps

    for t in range(timesteps):
        ev_n[:] = 0
        for q in range(plan.proj_kind.size):
            proj_counts[t, q, INPUT_MACS] = input_ops[q, 0]
            proj_counts[t, q, INPUT_MACS_DENSE] = input_ops[q, 1]
        for p in range(n_pops):
            kind = plan.pop_kind[p]
            sk = step_weight(plan.pop_phase[p], plan.pop_period[p], t)
            ebase = 2 * noff[p]
            if kind == INPUT:
                if not analog:
                    ev_n[p] = encode(encoder, x, plan.input_chw, plan.pop_period[p], sample, seed, t, sk,
                                     ev_idx, ev_coef, ev_tag, ev_val, ebase)
            elif kind != RELAY:  # a relay's events were placed by its max-pool gate
                integrate(v, current, plan.bias, soff[p], noff[p], size[p], units[p],
                          analog and plan.pop_fed_by_input[p] == 1, plan.pop_bias_units[p] > 0, sk)
                pop_counts[t, p, BIAS_OPS] = plan.pop_bias_units[p]
                if plan.pop_fires[p]:
                    # A bif unit outside its spike phase integrates but neither compares nor resets
                    # (A: odd periods t // K, B: even).
                    unit, tag = 0, TAG_NONE
                    if kind == BIF:
                        unit, tag = (0, TAG_A) if (t // plan.pop_period[p]) % 2 == 1 else (1, TAG_B)
                    ev_n[p] = fire(v, soff[p] + unit * size[p], plan.theta_pos, plan.theta_neg, noff[p], size[p],
                                   plan.pop_has_neg[p], plan.pop_max_coeff[p], sk, tag,
                                   ev_idx, ev_coef, ev_tag, ev_val, ebase, 0)
                    pop_counts[t, p, NEURON_UPDATES] = size[p]
            stop = ebase + ev_n[p]
            count_events(ev_idx, ev_coef, ev_tag, ev_val, ebase, stop, mass, noff[p], size[p], pop_counts[t, p],
                         record_spikes, spike_coef[t if record_spikes else 0], spike_val[t if record_spikes else 0])
            for o in range(plan.out_ptr[p], plan.out_ptr[p + 1]):
                q = plan.out_proj[o]
                r = plan.proj_tgt[q]
                if plan.proj_kind[q] == MAXPOOL2D:
                    ev_n[r] = gate_maxpool(plan.proj_geom[q], mass, noff[p], ev_idx, ev_coef, ev_tag, ev_val,
                                           ebase, stop, 2 * noff[r], ev_n[r], rows, row_taps, cols, col_taps,
                                           proj_counts[t, q])
                else:
                    push(plan.proj_kind[q], plan.weights, plan.proj_woff[q], size[r], plan.proj_geom[q],
                         plan.proj_fixed_w[q], plan.sparse_ptr, plan.sparse_idx, plan.sparse_w, plan.proj_roff[q],
                         ev_idx, ev_coef, ev_tag, ev_val, ebase, stop, v, soff[r], soff[r] + size[r],
                         plan.pop_kind[r] == BIF, rows, row_taps, cols, col_taps, proj_counts[t, q])
        row = t if trace else 0
        record_readout(v, mass, soff[out], noff[out], order, readout_v[row], readout_mass[row])
        pred[t] = predict(v, mass, soff[out], noff[out], order, plan.pop_fires[out] == 1)


@parallel_kernel
def run_batch(plan, inputs, samples, seed, encoder, timesteps, pred, pop_counts, proj_counts,
              readout_v, readout_mass, spike_coef, spike_val):
    """Run a batch of samples in parallel; sample b writes only its own slice of every output."""
    for b in numba.prange(inputs.shape[0]):
        run_sample(plan, inputs[b], samples[b], seed, encoder, timesteps, pred[b], pop_counts[b], proj_counts[b],
                   readout_v[b], readout_mass[b], spike_coef[b], spike_val[b])
