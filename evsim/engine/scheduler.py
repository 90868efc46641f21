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
`run_sample` (one sample), `run_batch` (a run of samples, each writing its
own output slices: the caller runs batches in threads, deterministic on any
number of them).
"""
from __future__ import annotations

import numpy as np

from evsim import kinds
from evsim.counters import (BIAS_OPS, EVENTS, EVENTS_A, EVENTS_B, INPUT_MACS, INPUT_MACS_DENSE, MASS, MASS_A,
                            MASS_B, NEURON_UPDATES, NOT_COUNTED, SIN_EVENTS, SIN_MASS, SIN_VALUE, TAG_A, TAG_B,
                            TAG_NONE)
from evsim.engine.delivery import gate_maxpool, push, route_of
from evsim.engine.encoders import analog_current, encode
from evsim.engine.jit import inline_kernel, kernel
from evsim.engine.neurons import fire, integrate, integrating_units, step_weight
from evsim.engine.plan import (P_BIAS_NEURONS, P_BIAS_ONSET, P_FED_BY_INPUT, P_FIRE_GT, P_FIRES, P_GATED, P_HAS_NEG,
                               P_KIND, P_MAX_COEFF, P_NOFF, P_OUT, P_OUT_END, P_PERIOD, P_PHASE, P_RANK_VALUE,
                               P_RESET_VALUE, P_SIZE, P_SOFF, P_UNITS, REC_KIND, REC_TGT)

INPUT, BIF, RELAY = kinds.INPUT.code, kinds.BIF.code, kinds.RELAY.code
MAXPOOL2D = kinds.MAXPOOL2D.code
ANALOG, PHASE_ENCODER = kinds.ENCODER_CODES[kinds.ANALOG], kinds.ENCODER_CODES[kinds.PHASE_ENCODER]


@inline_kernel
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


@inline_kernel
def deliver(p, t, pop_rec, out_proj, proj_rec, ints, floats, ev, ev_n, v, mass, value, proj_counts):
    """Push population p's events of this step through each of its outgoing projections.

    A max-pool passes the winners' events on into its relay's event slots
    (the relay fires them in its own turn); every other kind adds them to
    its target's membrane, by the target's A/B wiring (`route_of`).
    """
    src = pop_rec[p]
    start = 2 * src[P_NOFF]
    stop = start + ev_n[p]
    for o in range(src[P_OUT], src[P_OUT_END]):
        q = out_proj[o]
        rec = proj_rec[q]
        r = rec[REC_TGT]
        tgt = pop_rec[r]
        if rec[REC_KIND] == MAXPOOL2D:
            ev_n[r] = gate_maxpool(rec, ints, ev, start, stop, mass, value, src[P_NOFF], 2 * tgt[P_NOFF], ev_n[r],
                                   proj_counts[q])
        else:
            integrating, _ = integrating_units(2, tgt[P_GATED], tgt[P_PERIOD], t)
            route = route_of(tgt[P_SOFF], tgt[P_SIZE], tgt[P_KIND] == BIF, tgt[P_GATED] == 1, integrating)
            push(rec, ints, floats, ev, start, stop, v, tgt[P_SIZE], route, proj_counts[q])


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


@inline_kernel
def run_sample(plan, work, x, ann_sign, sample, seed, encoder, timesteps, pred, pop_counts, pop_values, proj_counts,
               readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Simulate one sample for `timesteps` steps, writing into this sample's output slices.

    `work` is the scratch state (evsim/engine/plan.py, `Workspace`), reset here.
    `ann_sign` holds the ANN's activation sign of every neuron (internal
    order; NOT_COUNTED where none), or nothing: it is what the SIN counters
    compare with. `readout_v`/`readout_mass` have T rows (full trace) or 1 row (final state
    only); `readout_drive` T rows (the agreement with the ANN is measured at every step) or 1 (the
    final estimate only); `spike_coef`/`spike_val` are [T, slots] when spikes
    are recorded, else [1, 0].
    Only this function reads `plan` in the loop: the kernels it calls take the
    arrays and scalars they need, because passing the whole plan to a call
    costs a reference-count update per array, per call (it dominated small
    networks).
    """
    pops = plan.pop_rec
    n_pops = pops.shape[0]
    v, current, discharged, mass, value = work.v, work.current, work.discharged, work.mass, work.value
    ev, ev_n, input_ops = (work.ev_idx, work.ev_coef, work.ev_tag, work.ev_val), work.ev_n, work.input_ops
    for p in range(n_pops):  # element loops, not slice assignment: no shape-error path to compile
        pop = pops[p]
        for u in range(pop[P_UNITS]):
            base = pop[P_SOFF] + u * pop[P_SIZE]
            for n in range(pop[P_SIZE]):
                v[base + n] = plan.v_init[pop[P_NOFF] + n]
                current[base + n] = 0
                discharged[base + n] = 0
        for n in range(pop[P_NOFF], pop[P_NOFF] + pop[P_SIZE]):
            mass[n] = 0
            value[n] = 0
    for q in range(input_ops.shape[0]):
        input_ops[q, 0] = input_ops[q, 1] = 0
    analog = encoder == ANALOG
    if analog:
        analog_current(plan, x, current, input_ops, work.pixels, ev, work.ops)
    record_spikes = spike_coef.shape[1] > 0
    out = pops[plan.output_pop]
    order = plan.output_internal
    trace = readout_v.shape[0] == timesteps
    drive_trace = readout_drive.shape[0] == timesteps

    for t in range(timesteps):
        for p in range(n_pops):
            ev_n[p] = 0
        for q in range(input_ops.shape[0]):
            proj_counts[t, q, INPUT_MACS] = input_ops[q, 0]
            proj_counts[t, q, INPUT_MACS_DENSE] = input_ops[q, 1]
        for p in range(n_pops):
            pop = pops[p]
            kind, size, soff, noff = pop[P_KIND], pop[P_SIZE], pop[P_SOFF], pop[P_NOFF]
            sk = step_weight(pop[P_PHASE], pop[P_PERIOD], t)
            ebase = 2 * noff
            if kind == INPUT:
                if not analog:
                    # phase encoder events weigh S_k whatever the input population's coding (semantics)
                    weight = step_weight(True, pop[P_PERIOD], t) if encoder == PHASE_ENCODER else sk
                    ev_n[p] = encode(encoder, x, plan.input_chw, pop[P_PERIOD], sample, seed, t, weight, ev, ebase)
            elif kind != RELAY:  # a relay's events were placed by its max-pool gate
                # 1. integrate (a gated bif pair: its non-spiking unit only); the bias from its onset
                first, count = integrating_units(pop[P_UNITS], pop[P_GATED], pop[P_PERIOD], t)
                biased = pop[P_BIAS_NEURONS] > 0 and t >= pop[P_BIAS_ONSET]
                integrate(v, current, plan.bias, soff, noff, size, first, count, analog and pop[P_FED_BY_INPUT] == 1,
                          biased, sk)
                pop_counts[t, p, BIAS_OPS] = pop[P_BIAS_NEURONS] * count if biased else 0
                # 2. fire and reset: a bif unit outside its spike phase integrates but neither compares nor resets
                if pop[P_FIRES]:
                    unit, tag = firing_unit(kind, pop[P_PERIOD], t)
                    ev_n[p] = fire(v, discharged, soff + unit * size, plan.theta_pos, plan.theta_neg, plan.v_reset, noff,
                                   size, pop[P_HAS_NEG], pop[P_MAX_COEFF], pop[P_FIRE_GT] == 1, pop[P_RESET_VALUE] == 1,
                                   sk, tag, ev, ebase, 0)
                    pop_counts[t, p, NEURON_UPDATES] = size
            # 3. record
            record_events(ev, ebase, ebase + ev_n[p], mass, value, noff, size, pop_counts[t, p], pop_values[t, p],
                          record_spikes, spike_coef[t if record_spikes else 0], spike_val[t if record_spikes else 0],
                          ann_sign)
            # 4. deliver
            deliver(p, t, pops, plan.out_proj, plan.proj_rec, plan.ints, plan.floats, ev, ev_n, v, mass, value,
                    proj_counts[t])
        row = t if trace else 0
        record_readout(v, discharged, plan.v_init, mass, out[P_SOFF], out[P_NOFF], order, readout_v[row],
                       readout_mass[row], readout_drive[t if drive_trace else 0])
        pred[t] = predict(v, mass, value, out[P_SOFF], out[P_NOFF], order, out[P_FIRES] == 1, out[P_RANK_VALUE] == 1)


@kernel
def run_batch(plan, work, inputs, ann_signs, samples, seed, encoder, timesteps, pred, pop_counts, pop_values,
              proj_counts, readout_v, readout_mass, readout_drive, spike_coef, spike_val):
    """Run a batch of samples one after the other; sample b writes only its own slice of every output.

    It releases the GIL (nogil), so threads run batches side by side (evsim/simulate.py splits a chunk
    of samples over them): no parallel loop to compile, and a one-sample call wakes no thread.
    """
    for b in range(inputs.shape[0]):
        run_sample(plan, work, inputs[b], ann_signs[b], samples[b], seed, encoder, timesteps, pred[b], pop_counts[b],
                   pop_values[b], proj_counts[b], readout_v[b], readout_mass[b], readout_drive[b], spike_coef[b],
                   spike_val[b])
