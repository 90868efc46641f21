"""The jitted event-driven scheduler: one sample, T steps, every population in topological order.

`run_sample` reads like docs/semantics.md. Each step, every population in
order runs its slots:

1. **integrate**: the events its sources emitted this step were already
   added when those sources delivered them (push model, zero delay); it
   adds its analog input current and bias (`neurons.integrate`);
2. **fire**: compare with this step's thresholds, emit, reset by
   subtraction (`neurons.fire`); an input population encodes instead
   (`encoders.encode`), a relay's events were placed by its max gate;
3. **record**: count the emitted events, add their mass, keep them if asked;
4. **deliver**: push them through every outgoing projection (`deliver`).

After the last population, the readout is recorded and the prediction made.
Only nonzero events are delivered, so a silent neuron costs nothing in
delivery; counters are incremented where the work happens.

Three layers, as in STUMPY: small kernels (delivery, neurons, encoders),
`run_sample` (serial, one sample), `run_batch` (prange over samples, each
writing its own output slices: deterministic on any number of threads).
"""
from __future__ import annotations

import numba
import numpy as np

from evsim import kinds
from evsim.counters import (BIAS_OPS, EVENTS, EVENTS_A, EVENTS_B, INPUT_MACS, INPUT_MACS_DENSE, MASS, MASS_A,
                            MASS_B, NEURON_UPDATES, NOT_COUNTED, SIN_EVENTS, SIN_MASS, SIN_VALUE, TAG_A, TAG_B,
                            TAG_NONE)
from evsim.engine.delivery import gate_maxpool, push, route_of
from evsim.engine.encoders import analog_current, encode
from evsim.engine.jit import kernel, parallel_kernel
from evsim.engine.neurons import fire, integrate, integrating_units, step_weight
from evsim.engine.plan import REC_KIND, REC_TGT

INPUT, BIF, RELAY = kinds.INPUT.code, kinds.BIF.code, kinds.RELAY.code
MAXPOOL2D = kinds.MAXPOOL2D.code
ANALOG, PHASE_ENCODER = kinds.ENCODER_CODES[kinds.ANALOG], kinds.ENCODER_CODES[kinds.PHASE_ENCODER]


@kernel
def firing_unit(kind, period, t):
    """The unit that compares at step t and its events' tag: a bif pair's A in odd periods t // K, B in even."""
    if kind != BIF:
        return 0, TAG_NONE
    return (0, TAG_A) if (t // period) % 2 == 1 else (1, TAG_B)


@kernel
def record_events(ev, start, stop, mass, value, noff, size, counts, values, record, spike_coef, spike_val, ann_sign):
    """Count emitted events (A and B apart), add their mass and value to their neurons, record them if asked.

    With the ANN's activation signs (`ann_sign`, per neuron; empty when not given), an event whose sign
    differs from its neuron's is a spike of an inactivated neuron (SIN): counted, with its |c| and |value|.
    """
    ev_idx, ev_coef, ev_tag, ev_val = ev
    signs = ann_sign.size > 0
    for e in range(start, stop):
        i, m, tag = ev_idx[e], abs(ev_coef[e]), ev_tag[e]
        counts[EVENTS] += 1
        counts[MASS] += m
        if signs:
            s = ann_sign[noff + i]
            if s != NOT_COUNTED and (1 if ev_coef[e] > 0 else -1) != s:
                counts[SIN_EVENTS] += 1
                counts[SIN_MASS] += m
                values[SIN_VALUE] += abs(ev_val[e])
        if tag == TAG_A:
            counts[EVENTS_A] += 1
            counts[MASS_A] += m
        elif tag == TAG_B:
            counts[EVENTS_B] += 1
            counts[MASS_B] += m
        mass[noff + i] += m
        value[noff + i] += ev_val[e]
        if record:
            slot = 2 * noff + (size if tag == TAG_B else 0) + i
            spike_coef[slot] = ev_coef[e]
            spike_val[slot] = ev_val[e]


@kernel
def deliver(p, t, out_ptr, out_proj, proj_rec, ints, floats, pop_kind, size, soff, noff, gated, period, ev, ev_n, v,
            mass, value, proj_counts):
    """Push population p's events of this step through each of its outgoing projections.

    A max-pool passes the winners' events on into its relay's event slots
    (the relay fires them in its own turn); every other kind adds them to
    its target's membrane, by the target's A/B wiring (`route_of`).
    """
    start = 2 * noff[p]
    stop = start + ev_n[p]
    for o in range(out_ptr[p], out_ptr[p + 1]):
        q = out_proj[o]
        rec = proj_rec[q]
        r = rec[REC_TGT]
        if rec[REC_KIND] == MAXPOOL2D:
            ev_n[r] = gate_maxpool(rec, ints, ev, start, stop, mass, value, noff[p], 2 * noff[r], ev_n[r],
                                   proj_counts[q])
        else:
            integrating, _ = integrating_units(2, gated[r], period[r], t)
            route = route_of(soff[r], size[r], pop_kind[r] == BIF, gated[r] == 1, integrating)
            push(rec, ints, floats, ev, start, stop, v, size[r], route, proj_counts[q])


@kernel
def predict(v, mass, value, soff, noff, order, by_spikes, by_value):
    """argmax over the output (C-major `order`) of potential, or of spike mass (or value) then potential;
    ties: lower index."""
    best = 0
    for j in range(1, order.size):
        a, b = order[j], order[best]
        va, vb = v[soff + a], v[soff + b]
        if by_spikes:
            ra = value[noff + a] if by_value else np.float64(mass[noff + a])
            rb = value[noff + b] if by_value else np.float64(mass[noff + b])
            if ra > rb or (ra == rb and va > vb):
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
def run_sample(plan, x, ann_sign, sample, seed, encoder, timesteps, pred, pop_counts, pop_values, proj_counts,
               readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Simulate one sample for `timesteps` steps, writing into this sample's output slices.

    `ann_sign` holds the ANN's activation sign of every neuron (internal
    order; NOT_COUNTED where none), or nothing: it is what the SIN counters
    compare with. `readout_v`/`readout_mass` have T rows (full trace) or 1 row (final state
    only); `readout_drive` has T rows; `spike_coef`/`spike_val` are [T, slots] when spikes
    are recorded, else [1, 0].
    Only this function reads `plan` in the loop: the kernels it calls take the
    arrays and scalars they need, because passing the whole plan to a call
    costs a reference-count update per array, per call (it dominated small
    networks).
    """
    n_pops = plan.pop_kind.size
    kind, size, units, soff, noff = plan.pop_kind, plan.pop_size, plan.pop_units, plan.pop_soff, plan.pop_noff
    n_units = soff[n_pops - 1] + size[n_pops - 1] * units[n_pops - 1]
    n_neurons = noff[n_pops - 1] + size[n_pops - 1]
    v = np.empty(n_units, dtype=plan.floats.dtype)
    for p in range(n_pops):
        for u in range(units[p]):
            v[soff[p] + u * size[p]:soff[p] + (u + 1) * size[p]] = plan.v_init[noff[p]:noff[p] + size[p]]
    current = np.zeros(n_units, dtype=plan.floats.dtype)
    discharged = np.zeros(n_units, dtype=np.float64)
    mass = np.zeros(n_neurons, dtype=np.int64)
    value = np.zeros(n_neurons, dtype=np.float64)  # sum of the events' values c * S_k (dyadic: exact)
    # Event buffers: 2 slots per neuron (a bif pair, or a relay fed by one, can pass A and B).
    ev = (np.empty(2 * n_neurons, dtype=np.int64), np.empty(2 * n_neurons, dtype=np.int64),
          np.empty(2 * n_neurons, dtype=np.int64), np.empty(2 * n_neurons, dtype=plan.floats.dtype))
    ev_n = np.zeros(n_pops, dtype=np.int64)
    analog = encoder == ANALOG
    input_ops = np.zeros((plan.proj_rec.shape[0], 2), dtype=np.int64)
    if analog:
        analog_current(plan, x, current, input_ops)
    record_spikes = spike_coef.shape[1] > 0
    out, order = plan.output_pop, plan.output_internal
    trace = readout_v.shape[0] == timesteps

    for t in range(timesteps):
        ev_n[:] = 0
        proj_counts[t, :, INPUT_MACS] = input_ops[:, 0]
        proj_counts[t, :, INPUT_MACS_DENSE] = input_ops[:, 1]
        for p in range(n_pops):
            sk = step_weight(plan.pop_phase[p], plan.pop_period[p], t)
            ebase = 2 * noff[p]
            if kind[p] == INPUT:
                if not analog:
                    # phase encoder events weigh S_k whatever the input population's coding (semantics)
                    weight = step_weight(True, plan.pop_period[p], t) if encoder == PHASE_ENCODER else sk
                    ev_n[p] = encode(encoder, x, plan.input_chw, plan.pop_period[p], sample, seed, t, weight, ev, ebase)
            elif kind[p] != RELAY:  # a relay's events were placed by its max-pool gate
                # 1. integrate (a gated bif pair: its non-spiking unit only); the bias from its onset
                first, count = integrating_units(units[p], plan.pop_gated[p], plan.pop_period[p], t)
                biased = plan.pop_bias_neurons[p] > 0 and t >= plan.pop_bias_onset[p]
                integrate(v, current, plan.bias, soff[p], noff[p], size[p], first, count,
                          analog and plan.pop_fed_by_input[p] == 1, biased, sk)
                pop_counts[t, p, BIAS_OPS] = plan.pop_bias_neurons[p] * count if biased else 0
                # 2. fire and reset: a bif unit outside its spike phase integrates but neither compares nor resets
                if plan.pop_fires[p]:
                    unit, tag = firing_unit(kind[p], plan.pop_period[p], t)
                    ev_n[p] = fire(v, discharged, soff[p] + unit * size[p], plan.theta_pos, plan.theta_neg, noff[p],
                                   size[p], plan.pop_has_neg[p], plan.pop_max_coeff[p], sk, tag, ev, ebase, 0)
                    pop_counts[t, p, NEURON_UPDATES] = size[p]
            # 3. record
            record_events(ev, ebase, ebase + ev_n[p], mass, value, noff[p], size[p], pop_counts[t, p],
                          pop_values[t, p], record_spikes, spike_coef[t if record_spikes else 0],
                          spike_val[t if record_spikes else 0], ann_sign)
            # 4. deliver
            deliver(p, t, plan.out_ptr, plan.out_proj, plan.proj_rec, plan.ints, plan.floats, kind, size, soff, noff,
                    plan.pop_gated, plan.pop_period, ev, ev_n, v, mass, value, proj_counts[t])
        row = t if trace else 0
        record_readout(v, discharged, plan.v_init, mass, soff[out], noff[out], order, readout_v[row],
                       readout_mass[row], readout_drive[t])
        pred[t] = predict(v, mass, value, soff[out], noff[out], order, plan.pop_fires[out] == 1,
                          plan.pop_rank_value[out] == 1)


@parallel_kernel
def run_batch(plan, inputs, ann_signs, samples, seed, encoder, timesteps, pred, pop_counts, pop_values, proj_counts,
              readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Run a batch of samples in parallel; sample b writes only its own slice of every output."""
    for b in numba.prange(inputs.shape[0]):
        run_sample(plan, inputs[b], ann_signs[b], samples[b], seed, encoder, timesteps, pred[b], pop_counts[b],
                   pop_values[b], proj_counts[b], readout_v[b], readout_mass[b], readout_drive[b], spike_coef[b],
                   spike_val[b])
