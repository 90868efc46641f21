"""Event delivery: one small jitted kernel per projection kind, and the spiking max gate.

A delivery kernel takes a projection's record (evsim/engine/plan.py: where
its data lie in the int pool `ints` and the float pool `floats`), the event
slice `start..stop` of the event buffers `ev = (idx, coef, tag, val)`, and
the target: its state vector `v` and its `route` (`route_of`: where the
units that take A, B and untagged events start). It adds
`w * value` of each event to every unit the event reaches and counts, where
the work happens, the unit updates it costs (fan-out x units reached).
Indices are internal (channels-last) positions.

A kernel is dispatched once per projection and step, never per event: a
per-event dispatch over all kinds cost ~200 ns of call overhead per event.
"""
from __future__ import annotations

import numpy as np

from evsim import kinds
from evsim.counters import AC_OPS, POOL_OPS, SCALED_OPS, TAG_A, TAG_B
from evsim.engine.jit import inline_kernel, kernel, stack_array
from evsim.engine.plan import (G_CIN, G_COLS, G_COUT, G_GATHER, G_GROUPS, G_HIN, G_HOUT, G_KH, G_KW, G_PH, G_PW, G_ROWS,
                               G_RUNS, G_SH, G_SW, G_WIN, G_WOUT, GATHER_BLOCK, GATHER_MAX_KH, REC_FLOATS, REC_INTS,
                               REC_KIND, REC_RANK)

DENSE, CONV2D, AVGPOOL2D, IDENTITY, SPARSE = (kinds.DENSE.code, kinds.CONV2D.code, kinds.AVGPOOL2D.code,
                                              kinds.IDENTITY.code, kinds.SPARSE.code)


@inline_kernel
def add_run(v, vo, w, wo, n, value):
    """v[vo:vo+n] += w[wo:wo+n] * value: the one inner loop of delivery.

    Unsigned offsets let LLVM drop Numba's negative-index check and
    vectorise; `value` is already in the state's dtype, so float32 runs stay
    in float32.
    """
    vo, wo = np.uint64(vo), np.uint64(wo)
    for o in range(np.uint64(n)):
        v[vo + o] += w[wo + o] * value


@inline_kernel
def add_scattered(v, base, targets, to, w, wo, n, value):
    """v[base + targets[to + k]] += w[wo + k] * value for k < n: a sparse row (unsigned offsets, as add_run)."""
    base, to, wo = np.uint64(base), np.uint64(to), np.uint64(wo)
    for k in range(np.uint64(n)):
        v[base + np.uint64(targets[to + k])] += w[wo + k] * value


@inline_kernel
def route_of(unit_base, size, bif, gated, integrating):
    """Where a target's events go, by the A/B wiring rule: (A events, B events, untagged, untagged also or -1).

    A bif target's A units (at `unit_base`) take B events, its B units (at
    `unit_base + size`) take A events; untagged events reach both units
    under `split` drive, and only the `integrating` unit (0 = A, 1 = B)
    under `gated` drive. Any other target has one unit, which takes all.
    """
    if not bif:
        return unit_base, unit_base, unit_base, -1
    a_base, b_base = unit_base, unit_base + size
    if gated:
        return b_base, a_base, a_base + integrating * size, -1
    return b_base, a_base, a_base, b_base


@inline_kernel
def target_bases(tag, route):
    """Where an event's units start: (first, second or -1), from its tag and the target's `route_of`."""
    if tag == TAG_A:
        return route[0], -1
    if tag == TAG_B:
        return route[1], -1
    return route[2], route[3]


@inline_kernel
def count_ops(counts, pool, coef, ops):
    """Charge `ops` unit updates: pool_ops for pools, scaled_ops for |c| > 1, else ac_ops."""
    if pool:
        counts[POOL_OPS] += ops
    elif abs(coef) > 1:
        counts[SCALED_OPS] += ops
    else:
        counts[AC_OPS] += ops


@inline_kernel
def window_entries(i, ints, g, col_width):
    """Channel of internal source index i, and where its row and column entries start in `ints`.

    `g` is the offset of the projection's geometry header in `ints`; a row
    entry is `[hits, (out, tap) x kh]`, a column entry `col_width` wide.
    Two unsigned divisions (no floor corrections, no sign tests): they were
    a third of a conv event's instructions.
    """
    cin, win = np.uint64(ints[g + G_CIN]), np.uint64(ints[g + G_WIN])
    at = np.uint64(i) // cin
    y = at // win
    c, x = np.int64(np.uint64(i) - at * cin), np.int64(at - y * win)
    rb = ints[g + G_ROWS] + np.int64(y) * (1 + 2 * ints[g + G_KH])
    return c, rb, ints[g + G_COLS] + x * col_width


@inline_kernel
def push_dense(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    """One contiguous row of W.T per event."""
    idx, coef, tag, val = ev
    woff = rec[REC_FLOATS]
    for e in range(start, stop):
        value = v.dtype.type(val[e])
        row = woff + idx[e] * n_out
        first, second = target_bases(tag[e], route)
        add_run(v, first, floats, row, n_out, value)
        if second >= 0:
            add_run(v, second, floats, row, n_out, value)
        count_ops(counts, False, coef[e], n_out * (2 if second >= 0 else 1))


@inline_kernel
def ascending_one_tag(idx, tag, start, stop):
    """Whether events start..stop have strictly ascending indices and one tag (a population's own events do:
    `fire` and the encoders emit them neuron by neuron; a max gate's relay need not)."""
    for e in range(start + 1, stop):
        if idx[e] <= idx[e - 1] or tag[e] != tag[start]:
            return False
    return True


@inline_kernel
def first_at_least(idx, lo, hi, key):
    """The first event of lo..hi (ascending indices) whose index is >= key, or hi: a binary search."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if idx[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def gather_conv(v, base, floats, wg, ints, g, idx, coef, val, start, stop):
    """Conv2d (`_gathers` in evsim/engine/plan.py) output by output: each output position's window events
    summed in registers, GATHER_BLOCK channels at a time, and its potentials written once.

    Events start..stop ascend (`ascending_one_tag`), so the events one
    kernel row of a window reads are a slice of the buffer: found by binary
    search once per output row, then slid along it (its ends only move
    forwards). With the weights `[kh, kw, Cin, Cout]` at `wg`, event i
    reads weight row `i + shift`: nothing to decode per event. Each output
    takes its events in ascending order, as `push_conv` adds them, so the
    sums are the same bit for bit. Returns the (event, output position)
    pairs, and those of events with |c| > 1.
    """
    cin, hin, win, cout = ints[g + G_CIN], ints[g + G_HIN], ints[g + G_WIN], ints[g + G_COUT]
    hout, wout, kh, kw = ints[g + G_HOUT], ints[g + G_WOUT], ints[g + G_KH], ints[g + G_KW]
    sh, sw, ph, pw = ints[g + G_SH], ints[g + G_SW], ints[g + G_PH], ints[g + G_PW]
    lo, hi, end = stack_array(GATHER_MAX_KH, idx), stack_array(GATHER_MAX_KH, idx), stack_array(GATHER_MAX_KH, idx)
    acc = stack_array(GATHER_BLOCK, v)
    scaled_events = False
    for e in range(start, stop):
        scaled_events |= abs(coef[e]) > 1
    pairs, scaled = 0, 0
    for oy in range(hout):
        for ky in range(kh):  # the slice of the input row each kernel row reads
            row = (oy * sh - ph + ky) * win
            if 0 <= row < hin * win:
                lo[ky] = first_at_least(idx, start, stop, row * cin)
                end[ky] = first_at_least(idx, lo[ky], stop, (row + win) * cin)
            else:
                lo[ky] = end[ky] = stop
            hi[ky] = lo[ky]
        for ox in range(wout):
            x0 = ox * sw - pw
            for b in range(0, cout, GATHER_BLOCK):
                out = np.uint64(base + (oy * wout + ox) * cout + b)
                for j in range(np.uint64(GATHER_BLOCK)):
                    acc[j] = v[out + j]
                for ky in range(kh):
                    row = (oy * sh - ph + ky) * win
                    if b == 0:  # slide this kernel row's slice to the window
                        while lo[ky] < end[ky] and idx[lo[ky]] < (row + max(x0, 0)) * cin:
                            lo[ky] += 1
                        hi[ky] = max(hi[ky], lo[ky])
                        while hi[ky] < end[ky] and idx[hi[ky]] < (row + min(x0 + kw, win)) * cin:
                            hi[ky] += 1
                        pairs += hi[ky] - lo[ky]
                        if scaled_events:
                            for e in range(lo[ky], hi[ky]):
                                scaled += abs(coef[e]) > 1
                    shift = (ky * kw - x0 - row) * cin
                    for e in range(np.uint64(lo[ky]), np.uint64(hi[ky])):
                        x = v.dtype.type(val[e])
                        w = np.uint64(wg + (idx[e] + shift) * cout + b)
                        for j in range(np.uint64(GATHER_BLOCK)):
                            acc[j] += floats[w + j] * x
                for j in range(np.uint64(GATHER_BLOCK)):
                    v[out + j] = acc[j]
    return pairs, scaled


@inline_kernel
def push_conv(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    """Conv2d from the kernel (weight sharing).

    A conv that gathers (`_gathers` in evsim/engine/plan.py) takes a
    population's events output by output (`gather_conv`). Otherwise, event
    by event: in the `runs` layout (groups 1, column dilation dividing the
    column stride) the kernel columns an input column reaches hit
    consecutive output columns and lie side by side in the weights, so one
    event adds, per kernel row it reaches, one contiguous run of
    `hits x Cout` weights. Otherwise it adds `Cout/groups` weights per tap.
    """
    idx, coef, tag, val = ev
    g, woff = rec[REC_INTS], rec[REC_FLOATS]
    cout = ints[g + G_COUT]
    if stop == start:
        return
    if ints[g + G_GATHER] >= 0 and ascending_one_tag(idx, tag, start, stop):
        pairs, scaled, targets = 0, 0, 0
        for unit in target_bases(tag[start], route):
            if unit >= 0:
                pairs, scaled = gather_conv(v, unit, floats, woff + ints[g + G_GATHER], ints, g, idx, coef, val,
                                            start, stop)
                targets += 1
        counts[AC_OPS] += (pairs - scaled) * cout * targets
        counts[SCALED_OPS] += scaled * cout * targets
        return
    cout_g = cout // ints[g + G_GROUPS]
    cin_g = ints[g + G_CIN] // ints[g + G_GROUPS]
    kh, kw, wout = ints[g + G_KH], ints[g + G_KW], ints[g + G_WOUT]
    runs = ints[g + G_RUNS] == 1
    col_width = 3 if runs else 1 + 2 * kw
    for e in range(start, stop):
        c, rb, cb = window_entries(idx[e], ints, g, col_width)
        first, second = target_bases(tag[e], route)
        value = v.dtype.type(val[e])
        if runs:
            hits, out_col, slot = ints[cb], ints[cb + 1], ints[cb + 2]
            length = hits * cout
            for a in range(ints[rb]):
                out = (ints[rb + 1 + 2 * a] * wout + out_col) * cout
                wb = woff + ((c * kh + ints[rb + 2 + 2 * a]) * kw + slot) * cout
                add_run(v, first + out, floats, wb, length, value)
                if second >= 0:
                    add_run(v, second + out, floats, wb, length, value)
            ops = ints[rb] * length
        else:
            shift = (c // cin_g) * cout_g
            for a in range(ints[rb]):
                out_row, tap_row = ints[rb + 1 + 2 * a], ints[rb + 2 + 2 * a]
                for b in range(ints[cb]):
                    out = (out_row * wout + ints[cb + 1 + 2 * b]) * cout + shift
                    wb = woff + ((c * kh + tap_row) * kw + ints[cb + 2 + 2 * b]) * cout_g
                    add_run(v, first + out, floats, wb, cout_g, value)
                    if second >= 0:
                        add_run(v, second + out, floats, wb, cout_g, value)
            ops = ints[rb] * ints[cb] * cout_g
        count_ops(counts, False, coef[e], ops * (2 if second >= 0 else 1))


@inline_kernel
def push_avgpool(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    """Average pool: `w * value` into every pooled neuron (same channel) whose window holds the event."""
    idx, coef, tag, val = ev
    g, pool_w = rec[REC_INTS], floats[rec[REC_FLOATS]]
    cin, wout, kw = ints[g + G_CIN], ints[g + G_WOUT], ints[g + G_KW]
    for e in range(start, stop):
        c, rb, cb = window_entries(idx[e], ints, g, 1 + 2 * kw)
        first, second = target_bases(tag[e], route)
        add = pool_w * v.dtype.type(val[e])
        for a in range(ints[rb]):
            for b in range(ints[cb]):
                out = (ints[rb + 1 + 2 * a] * wout + ints[cb + 1 + 2 * b]) * cin + c
                v[first + out] += add
                if second >= 0:
                    v[second + out] += add
        count_ops(counts, True, coef[e], ints[rb] * ints[cb] * (2 if second >= 0 else 1))


@inline_kernel
def push_sparse(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    """CSR rows. At REC_INTS: the number of source neurons, their row pointers (and one more), then the
    target indices; the pointers index the targets and the weights (at REC_FLOATS) alike."""
    idx, coef, tag, val = ev
    ptr, woff = rec[REC_INTS] + 1, rec[REC_FLOATS]
    targets = ptr + ints[rec[REC_INTS]] + 1
    for e in range(start, stop):
        lo, hi = ints[ptr + idx[e]], ints[ptr + idx[e] + 1]
        first, second = target_bases(tag[e], route)
        value = v.dtype.type(val[e])
        add_scattered(v, first, ints, targets + lo, floats, woff + lo, hi - lo, value)
        if second >= 0:
            add_scattered(v, second, ints, targets + lo, floats, woff + lo, hi - lo, value)
        count_ops(counts, False, coef[e], (hi - lo) * (2 if second >= 0 else 1))


@inline_kernel
def push_identity(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    idx, coef, tag, val = ev
    scale = floats[rec[REC_FLOATS]]
    for e in range(start, stop):
        first, second = target_bases(tag[e], route)
        add = scale * v.dtype.type(val[e])
        v[first + idx[e]] += add
        if second >= 0:
            v[second + idx[e]] += add
        count_ops(counts, False, coef[e], 2 if second >= 0 else 1)


@kernel
def push(rec, ints, floats, ev, start, stop, v, n_out, route, counts):
    """Deliver events `start..stop` through one projection into a membrane: a single dispatch on its kind."""
    kind = rec[REC_KIND]
    if kind == DENSE:
        push_dense(rec, ints, floats, ev, start, stop, v, n_out, route, counts)
    elif kind == CONV2D:
        push_conv(rec, ints, floats, ev, start, stop, v, n_out, route, counts)
    elif kind == AVGPOOL2D:
        push_avgpool(rec, ints, floats, ev, start, stop, v, n_out, route, counts)
    elif kind == SPARSE:
        push_sparse(rec, ints, floats, ev, start, stop, v, n_out, route, counts)
    elif kind == IDENTITY:
        push_identity(rec, ints, floats, ev, start, stop, v, n_out, route, counts)


# -- the spiking max gate ------------------------------------------------------------

@inline_kernel
def maxpool_winner(mass, value, by_value, mbase, ints, g, c, yo, xo):
    """Internal source index of the window's neuron ranked highest so far (ties: first in row-major):
    by spike mass, or by the sum of its events' values."""
    cin, hin, win = ints[g + G_CIN], ints[g + G_HIN], ints[g + G_WIN]
    best, best_score = -1, -np.inf
    for ty in range(ints[g + G_KH]):
        y = yo * ints[g + G_SH] - ints[g + G_PH] + ty
        if y < 0 or y >= hin:
            continue  # padding never wins
        for tx in range(ints[g + G_KW]):
            x = xo * ints[g + G_SW] - ints[g + G_PW] + tx
            if x < 0 or x >= win:
                continue
            j = (y * win + x) * cin + c
            score = value[mbase + j] if by_value else np.float64(mass[mbase + j])
            if score > best_score:
                best, best_score = j, score
    return best


@inline_kernel
def gate_maxpool(rec, ints, ev, start, stop, mass, value, mbase, relay_base, relay_n, counts):
    """Spiking max-pool: pass each event into every window it is in and wins (the largest rank so far:
    spike mass, or the sum of its events' values under rank = value).

    Appends passed events to the relay's buffer at `relay_base + relay_n` and
    returns the new relay count; counts one pool op per (event, window) pair,
    winner or not.
    """
    idx, coef, tag, val = ev
    g = rec[REC_INTS]
    cin, wout = ints[g + G_CIN], ints[g + G_WOUT]
    by_value = rec[REC_RANK] == 1
    for e in range(start, stop):
        i = idx[e]
        c, rb, cb = window_entries(i, ints, g, 1 + 2 * ints[g + G_KW])
        counts[POOL_OPS] += ints[rb] * ints[cb]
        for a in range(ints[rb]):
            for b in range(ints[cb]):
                out_row, out_col = ints[rb + 1 + 2 * a], ints[cb + 1 + 2 * b]
                if maxpool_winner(mass, value, by_value, mbase, ints, g, c, out_row, out_col) == i:
                    r = relay_base + relay_n
                    idx[r] = (out_row * wout + out_col) * cin + c
                    coef[r] = coef[e]
                    tag[r] = tag[e]
                    val[r] = val[e]
                    relay_n += 1
    return relay_n
