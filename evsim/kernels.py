"""Small, pure jitted kernels: event delivery per projection kind, the fire rule, input encoders.

The delivery kernels (`push_*`) add `w * value` of each event of a source to
the target's state vector `v` and count, where the work happens, the unit
updates (fan-out x units reached) each event costs. Indices are internal
(channels-last) positions; see evsim/plan.py for the layouts.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from evsim.counters import AC_OPS, POOL_OPS, SCALED_OPS, TAG_A, TAG_B
from evsim.jit import kernel
from evsim.plan import (G_CIN, G_COUT, G_GROUPS, G_HIN, G_KH, G_KW, G_PH, G_PW, G_SH,
                        G_SW, G_WIN, G_WOUT)


@kernel
def add_scaled(target, source, value):
    """target += source * value, elementwise over equal-length slices.

    Indexing slices by `range` (never `base + o`) lets LLVM drop Numba's
    negative-index check and vectorise; `value` is cast to the state's dtype
    so float32 runs stay in float32 (together, 4x faster delivery).
    """
    value = target.dtype.type(value)
    for o in range(target.size):
        target[o] += source[o] * value


@kernel
def target_bases(tag, bif_target, a_base, b_base):
    """Where an event's units start: (first, second or -1), by the A/B wiring rule.

    A bif target's A units (at `a_base`) take B events, its B units (at
    `b_base`) take A events, and untagged events reach both. Any other target
    has one unit.
    """
    if not bif_target:
        return a_base, -1
    if tag == TAG_A:
        return b_base, -1
    if tag == TAG_B:
        return a_base, -1
    return a_base, b_base


@kernel
def count_ops(counts, pool, coef, ops):
    """Charge `ops` unit updates: pool_ops for pools, scaled_ops for |c| > 1, else ac_ops."""
    if pool:
        counts[POOL_OPS] += ops
    elif abs(coef) > 1:
        counts[SCALED_OPS] += ops
    else:
        counts[AC_OPS] += ops


@kernel
def window_entries(i, g, rows, cols):
    """Channel of internal source index i, and where its row and column hit entries start in the table."""
    cin, win = g[G_CIN], g[G_WIN]
    rb = rows + (i // (cin * win)) * (1 + 2 * g[G_KH])
    cb = cols + ((i // cin) % win) * (1 + 2 * g[G_KW])
    return i % cin, rb, cb


# The push_* kernels deliver the events `start..stop` of one population through
# one projection (one kernel per projection kind, dispatched once per projection
# and step, never per event: a per-event dispatch over all kinds cost ~200 ns
# of call overhead per event). Each adds its unit updates to `counts` and
# follows the wiring rule of `target_bases`.

@kernel
def push_dense(weights, woff, n_out, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base,
               bif_target, counts):
    for e in range(start, stop):
        row = woff + ev_idx[e] * n_out
        first, second = target_bases(ev_tag[e], bif_target, a_base, b_base)
        add_scaled(v[first:first + n_out], weights[row:row + n_out], ev_val[e])
        if second >= 0:
            add_scaled(v[second:second + n_out], weights[row:row + n_out], ev_val[e])
        count_ops(counts, False, ev_coef[e], n_out * (2 if second >= 0 else 1))


@kernel
def push_conv(weights, woff, g, table, rows, cols, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v,
              a_base, b_base, bif_target, counts):
    """Conv2d from the kernel (weight sharing): per event and tap, a contiguous Cout/groups add.

    `rows`/`cols` are the offsets of the projection's hit tables in `table`
    (evsim.plan.axis_hits): the outputs each input row / column reaches.
    """
    cout = g[G_COUT]
    cout_g = cout // g[G_GROUPS]
    cin_g = g[G_CIN] // g[G_GROUPS]
    for e in range(start, stop):
        c, rb, cb = window_entries(ev_idx[e], g, rows, cols)
        first, second = target_bases(ev_tag[e], bif_target, a_base, b_base)
        shift = (c // cin_g) * cout_g
        taps = 0
        for a in range(table[rb]):
            out_row, tap_row = table[rb + 1 + 2 * a], table[rb + 2 + 2 * a]
            for b in range(table[cb]):
                out = (out_row * g[G_WOUT] + table[cb + 1 + 2 * b]) * cout + shift
                wb = woff + ((c * g[G_KH] + tap_row) * g[G_KW] + table[cb + 2 + 2 * b]) * cout_g
                add_scaled(v[first + out:first + out + cout_g], weights[wb:wb + cout_g], ev_val[e])
                if second >= 0:
                    add_scaled(v[second + out:second + out + cout_g], weights[wb:wb + cout_g], ev_val[e])
                taps += 1
        count_ops(counts, False, ev_coef[e], taps * cout_g * (2 if second >= 0 else 1))


@kernel
def push_avgpool(pool_w, g, table, rows, cols, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base,
                 bif_target, counts):
    """Average pool: `pool_w * value` into every pooled neuron (same channel) whose window holds the event."""
    cin = g[G_CIN]
    for e in range(start, stop):
        c, rb, cb = window_entries(ev_idx[e], g, rows, cols)
        first, second = target_bases(ev_tag[e], bif_target, a_base, b_base)
        add = pool_w * ev_val[e]
        for a in range(table[rb]):
            for b in range(table[cb]):
                out = (table[rb + 1 + 2 * a] * g[G_WOUT] + table[cb + 1 + 2 * b]) * cin + c
                v[first + out] += add
                if second >= 0:
                    v[second + out] += add
        count_ops(counts, True, ev_coef[e], table[rb] * table[cb] * (2 if second >= 0 else 1))


@kernel
def push_sparse(sparse_ptr, sparse_idx, sparse_w, roff, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v,
                a_base, b_base, bif_target, counts):
    for e in range(start, stop):
        lo, hi = sparse_ptr[roff + ev_idx[e]], sparse_ptr[roff + ev_idx[e] + 1]
        first, second = target_bases(ev_tag[e], bif_target, a_base, b_base)
        for k in range(lo, hi):
            v[first + sparse_idx[k]] += sparse_w[k] * ev_val[e]
            if second >= 0:
                v[second + sparse_idx[k]] += sparse_w[k] * ev_val[e]
        count_ops(counts, False, ev_coef[e], (hi - lo) * (2 if second >= 0 else 1))


@kernel
def push_identity(scale, ev_idx, ev_coef, ev_tag, ev_val, start, stop, v, a_base, b_base, bif_target, counts):
    for e in range(start, stop):
        first, second = target_bases(ev_tag[e], bif_target, a_base, b_base)
        v[first + ev_idx[e]] += scale * ev_val[e]
        if second >= 0:
            v[second + ev_idx[e]] += scale * ev_val[e]
        count_ops(counts, False, ev_coef[e], 2 if second >= 0 else 1)


@kernel
def maxpool_winner(mass, mbase, g, c, yo, xo):
    """Internal source index of the window's neuron with the most spike mass so far (ties: first in row-major)."""
    cin, hin, win = g[G_CIN], g[G_HIN], g[G_WIN]
    best, best_mass = -1, -1
    for ty in range(g[G_KH]):
        y = yo * g[G_SH] - g[G_PH] + ty
        if y < 0 or y >= hin:
            continue  # padding never wins
        for tx in range(g[G_KW]):
            x = xo * g[G_SW] - g[G_PW] + tx
            if x < 0 or x >= win:
                continue
            j = (y * win + x) * cin + c
            if mass[mbase + j] > best_mass:
                best, best_mass = j, mass[mbase + j]
    return best


@kernel
def coefficient(excess, threshold, max_coeff):
    """The spike coefficient c >= 1 with c * threshold <= excess < (c + 1) * threshold, capped at max_coeff > 0.

    Exact whatever the float division rounds to; `excess >= threshold > 0`.
    """
    if max_coeff == 1:
        return 1
    c = max(int(excess / threshold), 1)
    while c > 1 and c * threshold > excess:
        c -= 1
    while (c + 1) * threshold <= excess:
        c += 1
    if max_coeff > 0 and c > max_coeff:
        c = max_coeff
    return c


@kernel
def fire(v, discharged, sbase, theta_pos, theta_neg, noff, size, has_neg, max_coeff, step_weight, tag,
         ev_idx, ev_coef, ev_tag, ev_val, ebase, n_events):
    """Compare every unit with this step's thresholds, emit events, reset by subtraction.

    Appends to the event buffer at `ebase + n_events` and returns the new
    count. `discharged` accumulates what the resets took (c x threshold), so
    that potential - v_init + discharged is the input a unit integrated.
    """
    units = v[sbase:sbase + size]
    out = discharged[sbase:sbase + size]
    pos = theta_pos[noff:noff + size]
    neg = theta_neg[noff:noff + size]
    sk = units.dtype.type(step_weight)
    for n in range(size):
        vv = units[n]
        th_pos = pos[n] * sk
        c = 0
        if vv >= th_pos:
            c = coefficient(vv, th_pos, max_coeff)
            units[n] = vv - c * th_pos
            out[n] += c * th_pos
        elif has_neg:
            th_neg = neg[n] * sk
            if vv <= th_neg:
                k = coefficient(-vv, -th_neg, max_coeff)
                units[n] = vv - k * th_neg
                out[n] += k * th_neg
                c = -k
        if c != 0:
            e = ebase + n_events
            ev_idx[e] = n
            ev_coef[e] = c
            ev_tag[e] = tag
            ev_val[e] = c * step_weight
            n_events += 1
    return n_events


@kernel
def step_weight(phase, period, t):
    """S_k = 2^-(1 + t mod K) under phase coding, 1 under rate coding (exact: halvings of 1)."""
    s = 1.0
    if phase:
        for _ in range(t % period + 1):
            s *= 0.5
    return s


# Counter-based random stream for the Bernoulli encoder: a pure function of
# (seed, sample, step, pixel), so results depend neither on threads nor on
# batching. splitmix64's finaliser, chained over the four keys. Written with
# uint64 operators only, so the same definition runs jitted and on NumPy arrays
# (the dense reference engine calls it on whole images).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@register_jitable
def splitmix(h):
    h = h + _GOLDEN
    h = (h ^ (h >> _S30)) * _MIX1
    h = (h ^ (h >> _S27)) * _MIX2
    return h ^ (h >> _S31)


@register_jitable
def bernoulli_uniform(seed, sample, t, pixel):
    """Uniform in [0, 1) for one (seed, sample, step, C-major pixel); all arguments uint64 (scalars or arrays)."""
    h = splitmix(splitmix(splitmix(splitmix(seed) ^ sample) ^ t) ^ pixel)
    return (h >> _S11) * (1.0 / 9007199254740992.0)


@kernel
def phase_bit(x, period, t):
    """Whether a pixel of value x in [0, 1] emits at step t under the phase encoder."""
    levels = 1 << period
    q = min(int(np.floor(x * levels)), levels - 1)
    return (q >> (period - 1 - t % period)) & 1
