"""Neuron kernels: this step's weight S_k, the integrate slot (analog current and bias) and the fire rule.

docs/semantics.md defines them; `fire` implements the coefficient and the
reset by subtraction of every `if`-like unit (single or double threshold,
binary, ternary or augmented, bounded or not).
"""
from __future__ import annotations

import numpy as np

from evsim.engine.delivery import add_run
from evsim.engine.jit import inline_kernel, kernel

#: The largest coefficient an unbounded augmented spike may carry (a quotient past it means a threshold that
#: underflowed to almost nothing: no network of the seeds comes near it).
MAX_COEFFICIENT = 1 << 40


@inline_kernel
def step_weight(phase, period, t):
    """S_k = 2^-(1 + t mod K) under phase coding, 1 under rate coding (exact: halvings of 1)."""
    s = 1.0
    if phase:
        for _ in range(t % period + 1):
            s *= 0.5
    return s


@inline_kernel
def integrating_units(units, gated, period, t):
    """The units that take this step's untagged input and bias: (first, count).

    Every unit, but for a bif pair under gated drive only the one in its
    non-spike phase: A when t // K is even, B when it is odd.
    """
    if gated:
        return (t // period) % 2, 1
    return 0, units


@kernel
def integrate(v, current, bias, soff, noff, size, first, count, analog, biased, sk):
    """Add this step's analog current and bias, weighted by S_k, to units first..first+count-1 (A = 0, B = 1)."""
    weight = v.dtype.type(sk)
    for u in range(first, first + count):
        base = soff + u * size
        if analog:
            add_run(v, base, current, base, size, weight)
        if biased:
            add_run(v, base, bias, noff, size, weight)


@inline_kernel
def coefficient(excess, threshold, max_coeff, strict=False):
    """The spike coefficient: the largest c >= 1 with c * threshold <= excess (`strict`: < excess), capped at
    max_coeff > 0.

    Exact whatever the float division rounds to; `excess >= threshold > 0` (strict: `excess > threshold`).
    """
    if max_coeff == 1:
        return 1
    # Products in float64 (as the reference computes them), whatever the state's dtype; a quotient past the cap
    # (or past any sensible coefficient: a threshold that underflowed) is settled before counting.
    q = np.float64(excess) / np.float64(threshold)
    ceiling = max_coeff if max_coeff > 0 else MAX_COEFFICIENT
    if not q < ceiling + 1:
        return ceiling
    c = max(int(q), 1)
    if strict:
        while c > 1 and np.float64(c) * threshold >= excess:
            c -= 1
        while np.float64(c + 1) * threshold < excess:
            c += 1
    else:
        while c > 1 and np.float64(c) * threshold > excess:
            c -= 1
        while np.float64(c + 1) * threshold <= excess:
            c += 1
    return min(c, ceiling)


@kernel
def fire(v, discharged, sbase, theta_pos, theta_neg, v_reset, noff, size, has_neg, max_coeff, strict, to_value,
         step_weight, tag, ev, ebase, n_events):
    """Compare every unit with this step's thresholds, emit events, reset.

    Fire at `v >= th_p` (resp. `v <= th_n`), or only beyond it under `strict`
    (format version 3's `fire_when = gt`); reset by subtraction of c x th, or
    under `to_value` to the unit's `v_reset` (version 3's `reset = value`).
    Appends to the event buffers `ev` at `ebase + n_events` and returns the new
    count. `discharged` accumulates what the resets took, so that potential -
    v_init + discharged is the input a unit integrated.
    """
    ev_idx, ev_coef, ev_tag, ev_val = ev
    units = v[sbase:sbase + size]
    out = discharged[sbase:sbase + size]
    pos = theta_pos[noff:noff + size]
    neg = theta_neg[noff:noff + size]
    rest = v_reset[noff:noff + size]
    sk = units.dtype.type(step_weight)
    for n in range(size):
        vv = units[n]
        th_pos = pos[n] * sk
        c, removed = 0, sk * 0  # removed: what a reset by subtraction takes, c x th
        if vv > th_pos or (vv == th_pos and not strict):
            c = coefficient(vv, th_pos, max_coeff, strict)
            removed = c * th_pos
        elif has_neg:
            th_neg = neg[n] * sk
            if vv < th_neg or (vv == th_neg and not strict):
                k = coefficient(-vv, -th_neg, max_coeff, strict)
                c, removed = -k, k * th_neg
        if c != 0:
            if to_value:  # to v_reset: whatever lay beyond is lost; the drive keeps what the reset removed
                units[n] = rest[n]
                out[n] += np.float64(vv) - np.float64(rest[n])
            else:
                units[n] = vv - removed
                out[n] += removed
            e = ebase + n_events
            ev_idx[e] = n
            ev_coef[e] = c
            ev_tag[e] = tag
            ev_val[e] = c * step_weight
            n_events += 1
    return n_events
