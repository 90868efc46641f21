"""Small, pure jitted kernels: event delivery per projection kind, the fire rule, input encoders.

Every delivery kernel adds `w * value` of ONE source event to a target state
vector `v` starting at `vbase` and returns its fan-out (structural synapses
reached), so the count is made exactly where the work happens. Indices are
internal (channels-last) positions; see evsim/plan.py for the layouts.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from evsim.jit import kernel
from evsim.plan import (G_CIN, G_COUT, G_DH, G_DW, G_GROUPS, G_HIN, G_HOUT, G_KH, G_KW, G_PH, G_PW, G_SH,
                        G_SW, G_WIN, G_WOUT)


@kernel
def window_hits(pos, pad, k, dilation, stride, n_out, outs, taps):
    """Along one axis, the outputs whose window holds input `pos`, and the kernel tap that reaches it.

    Fills `outs[:n]`, `taps[:n]` and returns `n`. Borders are exact: padding
    positions and outputs past the edge are never produced.
    """
    n = 0
    for tap in range(k):
        num = pos + pad - tap * dilation
        if num < 0:
            break  # later taps reach even earlier outputs
        if num % stride == 0 and num // stride < n_out:
            outs[n] = num // stride
            taps[n] = tap
            n += 1
    return n


@kernel
def deliver_dense(weights, woff, n_out, i, value, v, vbase):
    row = woff + i * n_out
    for o in range(n_out):
        v[vbase + o] += weights[row + o] * value
    return n_out


@kernel
def deliver_conv(weights, woff, g, i, value, v, vbase, rows, row_taps, cols, col_taps):
    """One event at internal position `i` of a conv2d source: per kernel tap, a contiguous Cout/groups add."""
    cin, win = g[G_CIN], g[G_WIN]
    c = i % cin
    x = (i // cin) % win
    y = i // (cin * win)
    n_rows = window_hits(y, g[G_PH], g[G_KH], g[G_DH], g[G_SH], g[G_HOUT], rows, row_taps)
    n_cols = window_hits(x, g[G_PW], g[G_KW], g[G_DW], g[G_SW], g[G_WOUT], cols, col_taps)
    cout = g[G_COUT]
    cout_g = cout // g[G_GROUPS]
    first_out = (c // (cin // g[G_GROUPS])) * cout_g
    for a in range(n_rows):
        for b in range(n_cols):
            vb = vbase + (rows[a] * g[G_WOUT] + cols[b]) * cout + first_out
            wb = woff + ((c * g[G_KH] + row_taps[a]) * g[G_KW] + col_taps[b]) * cout_g
            for o in range(cout_g):
                v[vb + o] += weights[wb + o] * value
    return n_rows * n_cols * cout_g


@kernel
def deliver_avgpool(pool_w, g, i, value, v, vbase, rows, row_taps, cols, col_taps):
    """One event into every pooled neuron whose window holds it (same channel)."""
    cin, win = g[G_CIN], g[G_WIN]
    c = i % cin
    x = (i // cin) % win
    y = i // (cin * win)
    n_rows = window_hits(y, g[G_PH], g[G_KH], 1, g[G_SH], g[G_HOUT], rows, row_taps)
    n_cols = window_hits(x, g[G_PW], g[G_KW], 1, g[G_SW], g[G_WOUT], cols, col_taps)
    for a in range(n_rows):
        for b in range(n_cols):
            v[vbase + (rows[a] * g[G_WOUT] + cols[b]) * cin + c] += pool_w * value
    return n_rows * n_cols


@kernel
def deliver_sparse(sparse_ptr, sparse_idx, sparse_w, roff, i, value, v, vbase):
    start, stop = sparse_ptr[roff + i], sparse_ptr[roff + i + 1]
    for e in range(start, stop):
        v[vbase + sparse_idx[e]] += sparse_w[e] * value
    return stop - start


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
def fire(v, sbase, theta_pos, theta_neg, noff, size, has_neg, max_coeff, step_weight, tag,
         ev_idx, ev_coef, ev_tag, ev_val, ebase, n_events):
    """Compare every unit with this step's thresholds, emit events, reset by subtraction.

    Appends to the event buffer at `ebase + n_events` and returns the new count.
    """
    for n in range(size):
        vv = v[sbase + n]
        th_pos = theta_pos[noff + n] * step_weight
        c = 0
        if vv >= th_pos:
            c = coefficient(vv, th_pos, max_coeff)
            v[sbase + n] = vv - c * th_pos
        elif has_neg:
            th_neg = theta_neg[noff + n] * step_weight
            if vv <= th_neg:
                k = coefficient(-vv, -th_neg, max_coeff)
                v[sbase + n] = vv - k * th_neg
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
