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
                        G_SH, G_SW, G_WIN, G_WOUT, IDENTITY, INPUT, MAXPOOL2D, READOUT, RELAY, SPARSE)


@kernel
def deliver(plan, q, i, value, v, vbase, rows, row_taps, cols, col_taps):
    """Deliver one event (internal source index `i`) through projection `q`; return its fan-out."""
    kind = plan.proj_kind[q]
    if kind == DENSE:
        return deliver_dense(plan.weights, plan.proj_woff[q], plan.pop_size[plan.proj_tgt[q]], i, value, v, vbase)
    if kind == CONV2D:
        return deliver_conv(plan.weights, plan.proj_woff[q], plan.proj_geom[q], i, value, v, vbase,
                            rows, row_taps, cols, col_taps)
    if kind == AVGPOOL2D:
        return deliver_avgpool(plan.proj_pool_w[q], plan.proj_geom[q], i, value, v, vbase,
                               rows, row_taps, cols, col_taps)
    if kind == SPARSE:
        return deliver_sparse(plan.sparse_ptr, plan.sparse_idx, plan.sparse_w, plan.proj_roff[q], i, value, v, vbase)
    if kind == IDENTITY:
        v[vbase + i] += plan.proj_pool_w[q] * value
        return 1
    return 0


@kernel
def deliver_to_units(plan, q, i, value, tag, v, rows, row_taps, cols, col_taps):
    """Deliver to the target's units by the A/B wiring rule; return unit updates (fan-out x units reached).

    A bif target's A units take B events, its B units take A events, and
    untagged events reach both units. Any other target has one unit.
    """
    r = plan.proj_tgt[q]
    base = plan.pop_soff[r]
    if plan.pop_kind[r] != BIF:
        return deliver(plan, q, i, value, v, base, rows, row_taps, cols, col_taps)
    b_units = base + plan.pop_size[r]
    if tag == TAG_A:
        return deliver(plan, q, i, value, v, b_units, rows, row_taps, cols, col_taps)
    if tag == TAG_B:
        return deliver(plan, q, i, value, v, base, rows, row_taps, cols, col_taps)
    return (deliver(plan, q, i, value, v, base, rows, row_taps, cols, col_taps)
            + deliver(plan, q, i, value, v, b_units, rows, row_taps, cols, col_taps))


@kernel
def gate_maxpool(plan, q, i, coef, tag, value, mass, ev_idx, ev_coef, ev_tag, ev_val, ev_n,
                 rows, row_taps, cols, col_taps):
    """Spiking max-pool: pass the event into each window it is in and wins (most spike mass so far).

    Appends the passed events to the target relay's buffer; returns the pool
    operations (one per window holding the event, winner or not).
    """
    g = plan.proj_geom[q]
    src, relay = plan.proj_src[q], plan.proj_tgt[q]
    cin, win = g[G_CIN], g[G_WIN]
    c = i % cin
    x = (i // cin) % win
    y = i // (cin * win)
    n_rows = window_hits(y, g[G_PH], g[G_KH], 1, g[G_SH], g[G_HOUT], rows, row_taps)
    n_cols = window_hits(x, g[G_PW], g[G_KW], 1, g[G_SW], g[G_WOUT], cols, col_taps)
    mbase = plan.pop_noff[src]
    for a in range(n_rows):
        for b in range(n_cols):
            if maxpool_winner(mass, mbase, g, c, rows[a], cols[b]) == i:
                e = 2 * plan.pop_noff[relay] + ev_n[relay]
                ev_idx[e] = (rows[a] * g[G_WOUT] + cols[b]) * cin + c
                ev_coef[e] = coef
                ev_tag[e] = tag
                ev_val[e] = value
                ev_n[relay] += 1
    return n_rows * n_cols


@kernel
def analog_current(plan, x, current, proj_const, rows, row_taps, cols, col_taps):
    """Deliver the analog input once per sample: its constant current per target unit.

    `proj_const[q]` receives the per-step input MACs of each input projection
    (nonzero pixels, and all pixels), which the semantics charge every step.
    A MAC is one product w * x: the A and B units of a bif target share it.
    """
    for q in range(plan.proj_kind.size):
        inp = plan.proj_src[q]
        if plan.pop_kind[inp] != INPUT:
            continue
        units = plan.pop_units[plan.proj_tgt[q]]
        for i in range(plan.pop_size[inp]):
            ops = deliver_to_units(plan, q, i, x[i], TAG_NONE, current, rows, row_taps, cols, col_taps) // units
            proj_const[q, 1] += ops
            if x[i] != 0:
                proj_const[q, 0] += ops


@kernel
def encode(plan, p, x, sample, seed, encoder, t, sk, ev_idx, ev_coef, ev_tag, ev_val):
    """Input events of step t: Bernoulli (|x| as probability, value sign(x)) or phase (bits of x)."""
    ebase = 2 * plan.pop_noff[p]
    n = 0
    for i in range(plan.pop_size[p]):
        xi = x[i]
        c = 0
        if encoder == BERNOULLI:
            u = bernoulli_uniform(np.uint64(seed), np.uint64(sample), np.uint64(t), np.uint64(plan.input_chw[i]))
            if u < abs(xi):
                c = 1 if xi > 0 else -1
        elif phase_bit(xi, plan.pop_period[p], t):
            c = 1
        if c != 0:
            ev_idx[ebase + n] = i
            ev_coef[ebase + n] = c
            ev_tag[ebase + n] = TAG_NONE
            ev_val[ebase + n] = c * sk
            n += 1
    return n


@kernel
def integrate_and_fire(plan, p, t, sk, analog, v, current, ev_idx, ev_coef, ev_tag, ev_val):
    """Add analog current and bias (weighted by S_k), then fire the units allowed to compare this step.

    Returns the number of events emitted. A bif unit outside its spike phase
    integrates but neither compares nor resets (A: odd periods, B: even).
    """
    size, units = plan.pop_size[p], plan.pop_units[p]
    soff, noff = plan.pop_soff[p], plan.pop_noff[p]
    if analog and plan.pop_fed_by_input[p]:
        for j in range(soff, soff + size * units):
            v[j] += current[j] * sk
    if plan.pop_bias_units[p] > 0:
        for u in range(units):
            for n in range(size):
                v[soff + u * size + n] += plan.bias[noff + n] * sk
    if not plan.pop_fires[p]:
        return 0
    unit, tag = 0, TAG_NONE
    if plan.pop_kind[p] == BIF:
        a_phase = (t // plan.pop_period[p]) % 2 == 1
        unit, tag = (0, TAG_A) if a_phase else (1, TAG_B)
    return fire(v, soff + unit * size, plan.theta_pos, plan.theta_neg, noff, size, plan.pop_has_neg[p],
                plan.pop_max_coeff[p], sk, tag, ev_idx, ev_coef, ev_tag, ev_val, 2 * noff, 0)


@kernel
def predict(plan, v, mass):
    """Prediction of the output population: argmax of potential, or of spike mass then potential."""
    p = plan.output_pop
    by_mass = plan.pop_fires[p] == 1
    best = 0
    for j in range(1, plan.output_internal.size):
        a = plan.output_internal[j]
        b = plan.output_internal[best]
        va, vb = v[plan.pop_soff[p] + a], v[plan.pop_soff[p] + b]
        if by_mass:
            ma, mb = mass[plan.pop_noff[p] + a], mass[plan.pop_noff[p] + b]
            if ma > mb or (ma == mb and va > vb):
                best = j
        elif va > vb:
            best = j
    return best


@kernel
def run_sample(plan, x, sample, seed, encoder, timesteps, pred, pop_counts, proj_counts,
               readout_v, readout_mass, spike_coef, spike_val):
    """Simulate one sample for `timesteps` steps, writing into this sample's output slices.

    `readout_v`/`readout_mass` have T rows (full trace) or 1 row (final state
    only); `spike_coef`/`spike_val` have T rows when spikes are recorded, else 0.
    """
    n_pops = plan.pop_kind.size
    last = n_pops - 1
    n_units = plan.pop_soff[last] + plan.pop_size[last] * plan.pop_units[last]
    n_neurons = plan.pop_noff[last] + plan.pop_size[last]
    v = np.empty(n_units, dtype=plan.weights.dtype)
    for p in range(n_pops):
        size = plan.pop_size[p]
        for u in range(plan.pop_units[p]):
            for n in range(size):
                v[plan.pop_soff[p] + u * size + n] = plan.v_init[plan.pop_noff[p] + n]
    current = np.zeros(n_units, dtype=plan.weights.dtype)
    mass = np.zeros(n_neurons, dtype=np.int64)
    # Event buffers: 2 slots per neuron (a bif pair, or a relay fed by one, can pass A and B).
    ev_idx = np.empty(2 * n_neurons, dtype=np.int64)
    ev_coef = np.empty(2 * n_neurons, dtype=np.int64)
    ev_tag = np.empty(2 * n_neurons, dtype=np.int64)
    ev_val = np.empty(2 * n_neurons, dtype=np.float64)
    ev_n = np.zeros(n_pops, dtype=np.int64)
    k = max(1, plan.proj_geom[:, G_KH].max(), plan.proj_geom[:, G_KW].max()) if plan.proj_kind.size else 1
    rows, row_taps = np.empty(k, np.int64), np.empty(k, np.int64)
    cols, col_taps = np.empty(k, np.int64), np.empty(k, np.int64)

    analog = encoder == ANALOG
    input_ops = np.zeros((plan.proj_kind.size, 2), dtype=np.int64)
    if analog:
        analog_current(plan, x, current, input_ops, rows, row_taps, cols, col_taps)
    record_spikes = spike_coef.shape[0] > 0

    for t in range(timesteps):
        ev_n[:] = 0
        proj_counts[t, :, INPUT_MACS] = input_ops[:, 0]
        proj_counts[t, :, INPUT_MACS_DENSE] = input_ops[:, 1]
        for p in range(n_pops):
            kind = plan.pop_kind[p]
            sk = step_weight(plan.pop_phase[p], plan.pop_period[p], t)
            if kind == INPUT:
                if not analog:
                    ev_n[p] = encode(plan, p, x, sample, seed, encoder, t, sk, ev_idx, ev_coef, ev_tag, ev_val)
            elif kind != RELAY:  # a relay's events were placed by its max-pool gate
                ev_n[p] = integrate_and_fire(plan, p, t, sk, analog, v, current, ev_idx, ev_coef, ev_tag, ev_val)
                pop_counts[t, p, BIAS_OPS] = plan.pop_bias_units[p]
                if plan.pop_fires[p]:
                    pop_counts[t, p, NEURON_UPDATES] = plan.pop_size[p]
            ebase = 2 * plan.pop_noff[p]
            for e in range(ebase, ebase + ev_n[p]):
                count_event(plan, p, t, ev_idx[e], ev_coef[e], ev_tag[e], ev_val[e], mass, pop_counts,
                            record_spikes, spike_coef, spike_val)
            for o in range(plan.out_ptr[p], plan.out_ptr[p + 1]):
                q = plan.out_proj[o]
                for e in range(ebase, ebase + ev_n[p]):
                    if plan.proj_kind[q] == MAXPOOL2D:
                        proj_counts[t, q, POOL_OPS] += gate_maxpool(
                            plan, q, ev_idx[e], ev_coef[e], ev_tag[e], ev_val[e], mass,
                            ev_idx, ev_coef, ev_tag, ev_val, ev_n, rows, row_taps, cols, col_taps)
                        continue
                    ops = deliver_to_units(plan, q, ev_idx[e], ev_val[e], ev_tag[e], v, rows, row_taps, cols, col_taps)
                    if plan.proj_kind[q] == AVGPOOL2D:
                        proj_counts[t, q, POOL_OPS] += ops
                    elif abs(ev_coef[e]) > 1:
                        proj_counts[t, q, SCALED_OPS] += ops
                    else:
                        proj_counts[t, q, AC_OPS] += ops
        record_readout(plan, t, v, mass, readout_v, readout_mass)
        pred[t] = predict(plan, v, mass)


@kernel
def count_event(plan, p, t, i, coef, tag, value, mass, pop_counts, record_spikes, spike_coef, spike_val):
    """Count one emitted event (A and B apart), add its mass to its neuron, and record it if asked."""
    m = abs(coef)
    pop_counts[t, p, EVENTS] += 1
    pop_counts[t, p, MASS] += m
    if tag == TAG_A:
        pop_counts[t, p, EVENTS_A] += 1
        pop_counts[t, p, MASS_A] += m
    elif tag == TAG_B:
        pop_counts[t, p, EVENTS_B] += 1
        pop_counts[t, p, MASS_B] += m
    mass[plan.pop_noff[p] + i] += m
    if record_spikes:
        slot = 2 * plan.pop_noff[p] + (plan.pop_size[p] if tag == TAG_B else 0) + i
        spike_coef[t, slot] = coef
        spike_val[t, slot] = value


@kernel
def record_readout(plan, t, v, mass, readout_v, readout_mass):
    """Output potentials (A units for a bif output) and spike mass, in C-major order."""
    row = t if readout_v.shape[0] > 1 else 0
    p = plan.output_pop
    for j in range(plan.output_internal.size):
        a = plan.output_internal[j]
        readout_v[row, j] = v[plan.pop_soff[p] + a]
        readout_mass[row, j] = mass[plan.pop_noff[p] + a]


@parallel_kernel
def run_batch(plan, inputs, samples, seed, encoder, timesteps, pred, pop_counts, proj_counts,
              readout_v, readout_mass, spike_coef, spike_val):
    """Run a batch of samples in parallel; sample b writes only its own slice of every output."""
    for b in numba.prange(inputs.shape[0]):
        run_sample(plan, inputs[b], samples[b], seed, encoder, timesteps, pred[b], pop_counts[b], proj_counts[b],
                   readout_v[b], readout_mass[b], spike_coef[b], spike_val[b])
