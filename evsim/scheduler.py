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

from evsim.counters import (BIAS_OPS, EVENTS, EVENTS_A, EVENTS_B, INPUT_MACS, INPUT_MACS_DENSE, MASS,
                            MASS_A, MASS_B, NEURON_UPDATES, POOL_OPS, TAG_A, TAG_B, TAG_NONE)
from evsim.jit import kernel, parallel_kernel
from evsim.kernels import (add_scaled, bernoulli_uniform, fire, maxpool_winner, phase_bit, push_avgpool, push_conv,
                           push_dense, push_identity, push_sparse, step_weight, window_entries)
from evsim.plan import (ANALOG, AVGPOOL2D, BERNOULLI, BIF, CONV2D, DENSE, G_CIN, G_WOUT, IDENTITY, INPUT, MAXPOOL2D, PHASE,
                        RELAY, SPARSE)


@kernel
def push(kind, weights, woff, n_out, g, table, rows, cols, fixed_w, sparse_ptr, sparse_idx, sparse_w, roff,
         ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base, bif_target, counts):
    """Deliver events `start..stop` through one projection: a single dispatch on its kind."""
    if kind == DENSE:
        push_dense(weights, woff, n_out, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base,
                   bif_target, counts)
    elif kind == CONV2D:
        push_conv(weights, woff, g, table, rows, cols, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v,
                  a_base, b_base, bif_target, counts)
    elif kind == AVGPOOL2D:
        push_avgpool(fixed_w, g, table, rows, cols, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v,
                     a_base, b_base, bif_target, counts)
    elif kind == SPARSE:
        push_sparse(sparse_ptr, sparse_idx, sparse_w, roff, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v,
                    a_base, b_base, bif_target, counts)
    elif kind == IDENTITY:
        push_identity(fixed_w, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base, bif_target, counts)


@kernel
def gate_maxpool(g, table, rows, cols, mass, mbase, ev_idx, ev_coef, ev_tag, ev_val, start, stop,
                 relay_base, relay_n, counts):
    """Spiking max-pool: pass each event into every window it is in and wins (most spike mass so far).

    Appends passed events to the relay's buffer at `relay_base + relay_n` and
    returns the new relay count; counts one pool op per (event, window) pair,
    winner or not.
    """
    cin = g[G_CIN]
    for e in range(start, stop):
        i = ev_idx[e]
        c, rb, cb = window_entries(i, g, rows, cols)
        counts[POOL_OPS] += table[rb] * table[cb]
        for a in range(table[rb]):
            for b in range(table[cb]):
                out_row, out_col = table[rb + 1 + 2 * a], table[cb + 1 + 2 * b]
                if maxpool_winner(mass, mbase, g, c, out_row, out_col) == i:
                    r = relay_base + relay_n
                    ev_idx[r] = (out_row * g[G_WOUT] + out_col) * cin + c
                    ev_coef[r] = ev_coef[e]
                    ev_tag[r] = ev_tag[e]
                    ev_val[r] = ev_val[e]
                    relay_n += 1
    return relay_n


@kernel
def analog_current(plan, x, current, input_ops):
    """Deliver the analog input once per sample: the constant current of every input projection's targets.

    Pixels are pushed as events of value x (nonzero ones first), so the
    current is built by the same kernels as spikes. `input_ops[q]` receives
    the per-step input MACs of each input projection (nonzero pixels, and all
    pixels), which the semantics charge every step. A MAC is one product
    w * x: the A and B units of a bif target share it. Called once per
    sample, so it may read `plan`.
    """
    n = x.size
    order = np.concatenate((np.flatnonzero(x != 0), np.flatnonzero(x == 0)))
    n_nonzero = np.count_nonzero(x)
    ev_coef = np.ones(n, dtype=np.int64)
    ev_tag = np.zeros(n, dtype=np.int64)
    ev_val = np.empty(n, dtype=current.dtype)
    for e in range(n):
        ev_val[e] = x[order[e]]
    for q in range(plan.proj_kind.size):
        r = plan.proj_tgt[q]
        if plan.pop_kind[plan.proj_src[q]] != INPUT:
            continue
        ops = np.zeros((2, 3), dtype=np.int64)  # nonzero pixels, zero pixels; ac / scaled / pool slots
        for part in range(2):
            start, stop = (0, n_nonzero) if part == 0 else (n_nonzero, n)
            push(plan.proj_kind[q], plan.weights, plan.proj_woff[q], plan.pop_size[r], plan.proj_geom[q],
                 plan.window_table, plan.proj_rows[q], plan.proj_cols[q], plan.proj_fixed_w[q],
                 plan.sparse_ptr, plan.sparse_idx, plan.sparse_w, plan.proj_roff[q],
                 order, ev_coef, ev_tag, ev_val, start, stop, current, plan.pop_soff[r],
                 plan.pop_soff[r] + plan.pop_size[r], plan.pop_kind[r] == BIF, ops[part])
        units = plan.pop_units[r]
        input_ops[q, 0] = ops[0].sum() // units
        input_ops[q, 1] = ops.sum() // units


@kernel
def encode(encoder, x, input_chw, period, sample, seed, t, sk, ev_idx, ev_coef, ev_tag, ev_val, ebase):
    """Input events of step t: Bernoulli (|x| as probability, value sign(x)) or phase (bits of x)."""
    n = 0
    for i in range(x.size):
        xi = x[i]
        c = 0
        if encoder == BERNOULLI:
            if xi == 0:
                continue  # can never spike: skip the hash (results unchanged)
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
        add_scaled(v[soff:soff + size * units], current[soff:soff + size * units], sk)
    if biased:
        for u in range(units):
            add_scaled(v[soff + u * size:soff + (u + 1) * size], bias[noff:noff + size], sk)


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
def record_readout(v, discharged, v_init, mass, soff, noff, order, readout_v, readout_mass, readout_drive):
    """Output potentials (A units for a bif output), spike mass and drive, in C-major order.

    The drive is the input integrated so far: potential - v_init + what the
    resets discharged (docs/metrics.md).
    """
    for j in range(order.size):
        a = soff + order[j]
        readout_v[j] = v[a]
        readout_mass[j] = mass[noff + order[j]]
        readout_drive[j] = v[a] - v_init[noff + order[j]] + discharged[a]


@kernel
def run_sample(plan, x, sample, seed, encoder, timesteps, pred, pop_counts, proj_counts,
               readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Simulate one sample for `timesteps` steps, writing into this sample's output slices.

    `readout_v`/`readout_mass` have T rows (full trace) or 1 row (final state
    only); `readout_drive` has T rows; `spike_coef`/`spike_val` are [T, slots] when spikes
    are recorded, else [1, 0].
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
    discharged = np.zeros(n_units, dtype=np.float64)
    mass = np.zeros(n_neurons, dtype=np.int64)
    # Event buffers: 2 slots per neuron (a bif pair, or a relay fed by one, can pass A and B).
    ev_idx = np.empty(2 * n_neurons, dtype=np.int64)
    ev_coef = np.empty(2 * n_neurons, dtype=np.int64)
    ev_tag = np.empty(2 * n_neurons, dtype=np.int64)
    ev_val = np.empty(2 * n_neurons, dtype=plan.weights.dtype)
    ev_n = np.zeros(n_pops, dtype=np.int64)
    analog = encoder == ANALOG
    input_ops = np.zeros((plan.proj_kind.size, 2), dtype=np.int64)
    if analog:
        analog_current(plan, x, current, input_ops)
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
                    # phase encoder events weigh S_k whatever the input population's coding (semantics)
                    weight = step_weight(True, plan.pop_period[p], t) if encoder == PHASE else sk
                    ev_n[p] = encode(encoder, x, plan.input_chw, plan.pop_period[p], sample, seed, t, weight,
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
                    ev_n[p] = fire(v, discharged, soff[p] + unit * size[p], plan.theta_pos, plan.theta_neg, noff[p], size[p],
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
                    ev_n[r] = gate_maxpool(plan.proj_geom[q], plan.window_table, plan.proj_rows[q],
                                           plan.proj_cols[q], mass, noff[p], ev_idx, ev_coef, ev_tag, ev_val,
                                           ebase, stop, 2 * noff[r], ev_n[r], proj_counts[t, q])
                else:
                    push(plan.proj_kind[q], plan.weights, plan.proj_woff[q], size[r], plan.proj_geom[q],
                         plan.window_table, plan.proj_rows[q], plan.proj_cols[q], plan.proj_fixed_w[q],
                         plan.sparse_ptr, plan.sparse_idx, plan.sparse_w, plan.proj_roff[q],
                         ev_idx, ev_coef, ev_tag, ev_val, ebase, stop, v, soff[r], soff[r] + size[r],
                         plan.pop_kind[r] == BIF, proj_counts[t, q])
        row = t if trace else 0
        record_readout(v, discharged, plan.v_init, mass, soff[out], noff[out], order, readout_v[row],
                       readout_mass[row], readout_drive[t])
        pred[t] = predict(v, mass, soff[out], noff[out], order, plan.pop_fires[out] == 1)


@parallel_kernel
def run_batch(plan, inputs, samples, seed, encoder, timesteps, pred, pop_counts, proj_counts,
              readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Run a batch of samples in parallel; sample b writes only its own slice of every output."""
    for b in numba.prange(inputs.shape[0]):
        run_sample(plan, inputs[b], samples[b], seed, encoder, timesteps, pred[b], pop_counts[b], proj_counts[b],
                   readout_v[b], readout_mass[b], readout_drive[b], spike_coef[b], spike_val[b])
