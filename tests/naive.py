"""Naive oracles: a slow, obvious NumPy version of every engine kernel, straight from the docs.

STUMPY's tests/naive.py practice: each function here restates one rule of
docs/semantics.md and docs/accounting.md in the plainest NumPy, in PyTorch's
terms (C-major indices, `[C, H, W]` maps, weights `[Cout, Cin/groups, kh, kw]`),
and knows nothing of the engine's plan, layout or window tables. The kernel
tests (tests/test_naive_kernels.py) hold every jitted kernel to these.

Everything is float64. With dyadic weights and values every sum is exact, so
a kernel must agree bit for bit whatever order it adds in.

An event is `(i, c, tag, value)`: C-major source neuron `i`, signed integer
coefficient `c`, tag (evsim.counters.TAG_NONE, TAG_A, TAG_B) and value
`c * S_k` of its emitter. A membrane `v` is `[units, N]` in C-major order
(units = 2 for a bif target: row 0 holds the A units, row 1 the B units).
Populations and projections are `evsim.network` objects, read for their
fields only (kind, shape, coding, phase period, drive, bias and onset;
weights, geometry, scale, rank).
Counts are dicts with the projection counters `ac_ops`, `scaled_ops` and
`pool_ops`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from evsim.counters import TAG_A, TAG_B

A, B = 0, 1  # the units of a bif pair


class Event(NamedTuple):
    i: int
    c: int
    tag: int
    value: float


# -- geometry (PyTorch's formula, no ceil mode) -------------------------------------------------

def output_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# -- the linear maps of each projection kind, in the forward (gather) direction -----------------

def conv2d(x: np.ndarray, weight: np.ndarray, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1) -> np.ndarray:
    """PyTorch's conv2d of one map `x [Cin, H, W]` (no bias): every output reads its window of the zero-padded input.

    out[co, yo, xo] = sum over ci in co's group, ky, kx of
        weight[co, ci - g Cin/groups, ky, kx] * x_padded[ci, yo sh + ky dh, xo sw + kx dw].
    """
    cin, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    assert cin == cin_g * groups and cout % groups == 0
    cout_g = cout // groups
    hout = output_size(h, kh, stride[0], padding[0], dilation[0])
    wout = output_size(w, kw, stride[1], padding[1], dilation[1])
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    out = np.zeros((cout, hout, wout))
    for g in range(groups):
        outs, ins = slice(g * cout_g, (g + 1) * cout_g), slice(g * cin_g, (g + 1) * cin_g)
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dilation[0], kx * dilation[1]
                patch = xp[ins, y0:y0 + stride[0] * (hout - 1) + 1:stride[0], x0:x0 + stride[1] * (wout - 1) + 1:stride[1]]
                out[outs] += np.einsum("oc,chw->ohw", weight[outs, :, ky, kx], patch)
    return out


def avg_pool2d(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """PyTorch's avg_pool2d with count_include_pad=True: every window's sum over the zero-padded input / (kh kw)."""
    c = x.shape[0]
    ones = np.zeros((c, 1, *kernel))
    ones[:] = 1.0
    return conv2d(x, ones, stride, padding, groups=c) / (kernel[0] * kernel[1])


def window_counts(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """How many in-bounds members of each pool window are set in `x` (a sum pool of `x`)."""
    c = x.shape[0]
    return conv2d(x, np.ones((c, 1, *kernel)), stride, padding, groups=c)


def target_shape(proj, source_shape) -> tuple[int, ...]:
    """The target shape a conv or pool implies (PyTorch's formula); the given shape for the others."""
    if proj.kind == "conv2d":
        cout, _, kh, kw = np.shape(proj.weight)
        _, h, w = source_shape
        return (cout, output_size(h, kh, proj.stride[0], proj.padding[0], proj.dilation[0]),
                output_size(w, kw, proj.stride[1], proj.padding[1], proj.dilation[1]))
    if proj.kind in ("avgpool2d", "maxpool2d"):
        c, h, w = source_shape
        return (c, output_size(h, proj.kernel[0], proj.stride[0], proj.padding[0]),
                output_size(w, proj.kernel[1], proj.stride[1], proj.padding[1]))
    raise ValueError(proj.kind)


def apply(proj, x: np.ndarray, source_shape, n_target: int, *, structural=False) -> np.ndarray:
    """The projection's map of a C-major source vector `x` to a C-major target vector (scale included).

    `structural`: every weight 1 and no scale, so the result counts synapses (zero weights count).
    """
    x = np.asarray(x, dtype=np.float64)
    scale = 1.0 if structural else proj.scale
    if proj.kind == "dense":
        weight = np.ones(np.shape(proj.weight)) if structural else np.asarray(proj.weight, dtype=np.float64)
        return scale * (weight @ x)
    if proj.kind == "identity":
        return scale * x
    if proj.kind == "sparse":
        weight = np.ones(len(proj.indices)) if structural else np.asarray(proj.weight, dtype=np.float64)
        source = np.repeat(np.arange(len(proj.indptr) - 1), np.diff(proj.indptr))
        y = np.zeros(n_target)
        np.add.at(y, np.asarray(proj.indices), weight * x[source])  # repeated pairs add twice
        return scale * y
    image = x.reshape(source_shape)
    if proj.kind == "conv2d":
        weight = np.ones(np.shape(proj.weight)) if structural else np.asarray(proj.weight, dtype=np.float64)
        return scale * conv2d(image, weight, proj.stride, proj.padding, proj.dilation, proj.groups).reshape(-1)
    if proj.kind == "avgpool2d":
        if structural:
            return window_counts(image, proj.kernel, proj.stride, proj.padding).reshape(-1)
        return scale * avg_pool2d(image, proj.kernel, proj.stride, proj.padding).reshape(-1)
    raise ValueError(proj.kind)


def fan_out(proj, source_shape, n_target: int, i: int) -> int:
    """Structural synapses of C-major source neuron `i`: the structural map of its one-hot input, summed."""
    one_hot = np.zeros(int(np.prod(source_shape)))
    one_hot[i] = 1.0
    return int(round(apply(proj, one_hot, source_shape, n_target, structural=True).sum()))


# -- delivery --------------------------------------------------------------------------------------

def integrating_units(population, t: int) -> tuple[int, ...]:
    """The units of `population` that take step t's untagged events, analog current and bias: every unit, but
    for a bif pair under `gated` drive only the one in its non-spike phase (A when t // K is even, else B)."""
    if population.kind != "bif":
        return (0,)
    if population.drive == "gated":
        return (A,) if (t // population.phase_period) % 2 == 0 else (B,)
    return (A, B)


def units_reached(tag: int, target, t: int) -> tuple[int, ...]:
    """The wiring rule: a bif target's A units take B events, its B units A events, untagged events its
    integrating units (both under split drive); any other target has one unit and takes every event."""
    if target.kind != "bif":
        return (0,)
    return {TAG_A: (B,), TAG_B: (A,)}.get(tag, integrating_units(target, t))


def deliver(proj, source, target, events, v: np.ndarray, t: int = 0):
    """Deliver step t's `events` through `proj` from population `source` into the membrane `v [units, N]` (C-major)
    of population `target`. Returns (new v, counts).

    Each unit receives the projection's map of the events that reach it. A
    delivered event costs fan-out x units-reached unit updates: pool_ops for a
    pool, scaled_ops when |c| > 1, else ac_ops.
    """
    v = np.array(v, dtype=np.float64)
    assert v.shape == (target.units, target.size)
    received = np.zeros((target.units, source.size))
    counts = {"ac_ops": 0, "scaled_ops": 0, "pool_ops": 0}
    for ev in map(Event._make, events):
        units = units_reached(ev.tag, target, t)
        for u in units:
            received[u, ev.i] += ev.value
        ops = fan_out(proj, source.shape, target.size, ev.i) * len(units)
        if proj.kind in ("avgpool2d", "maxpool2d"):
            counts["pool_ops"] += ops
        elif abs(ev.c) > 1:
            counts["scaled_ops"] += ops
        else:
            counts["ac_ops"] += ops
    for u in range(target.units):
        v[u] += apply(proj, received[u], source.shape, target.size)
    return v, counts


# -- the spiking max gate --------------------------------------------------------------------------

def pool_windows(source_shape, kernel, stride, padding) -> dict:
    """For every C-major relay neuron, its window's in-bounds source neurons (C-major) in row-major order."""
    c, h, w = source_shape
    hout, wout = output_size(h, kernel[0], stride[0], padding[0]), output_size(w, kernel[1], stride[1], padding[1])
    windows = {}
    for ch in range(c):
        for yo in range(hout):
            for xo in range(wout):
                members = []
                for ky in range(kernel[0]):
                    for kx in range(kernel[1]):
                        y, x = yo * stride[0] - padding[0] + ky, xo * stride[1] - padding[1] + kx
                        if 0 <= y < h and 0 <= x < w:  # padding is no member: it never wins
                            members.append((ch * h + y) * w + x)
                windows[(ch * hout + yo) * wout + xo] = members
    return windows


def rank(events, n: int, by: str = "mass") -> list:
    """Each of n neurons' rank from the events it emitted (A and B alike): the sum of |c| (`mass`) or of the
    signed values c S_k (`value`)."""
    score = [0.0] * n
    for ev in map(Event._make, events):
        score[ev.i] += abs(ev.c) if by == "mass" else ev.value
    return score


def max_gate(proj, source_shape, events, earlier=()):
    """The events a spiking max-pool passes into its relay at one step, and its pool_ops.

    `earlier`: the source's events of the steps before. In each window the
    winner is ranked highest (`proj.rank`: mass or value) by what it emitted
    up to and including this step, ties going to the first member in
    row-major order; each event passes, value and tag kept, into every
    window it wins, and costs one compare per window holding it. Returns
    (sorted list of relayed events with C-major relay indices, pool_ops).
    """
    score = rank([*earlier, *events], int(np.prod(source_shape)), proj.rank)
    windows = pool_windows(source_shape, proj.kernel, proj.stride, proj.padding)
    relayed, pool_ops = [], 0
    for ev in map(Event._make, events):
        for out, members in windows.items():
            if ev.i in members:
                pool_ops += 1
                best = max(score[m] for m in members)
                winner = next(m for m in members if score[m] == best)  # the first of equal maxima
                if winner == ev.i:
                    relayed.append(Event(out, ev.c, ev.tag, ev.value))
    return sorted(relayed), pool_ops


# -- neurons ---------------------------------------------------------------------------------------

def step_weight(coding: str, period: int, t: int) -> float:
    """S_k = 2^-(1 + t mod K) under phase coding, 1 under rate coding."""
    return 2.0 ** -(1 + t % period) if coding == "phase" else 1.0


def firing_unit(t: int, period: int) -> tuple[int, int]:
    """The unit of a bif pair that compares at step t and its events' tag: A when t // K is odd, else B."""
    return (A, TAG_A) if (t // period) % 2 == 1 else (B, TAG_B)


def integrate(population, v: np.ndarray, t: int, current: Optional[np.ndarray] = None) -> np.ndarray:
    """Step t's analog current (per unit, if any) and bias, both weighted by S_k, into the integrating units;
    the bias only from the population's bias_onset on."""
    v = np.array(v, dtype=np.float64)
    sk = step_weight(population.coding, population.phase_period, t)
    for u in integrating_units(population, t):
        if current is not None:
            v[u] += sk * np.asarray(current[u], dtype=np.float64)
        if t >= population.bias_onset:
            v[u] += sk * population.expand("bias")
    return v


def coefficient(excess: float, threshold: float, max_coeff: int, strict: bool = False) -> int:
    """The largest c >= 1 with c * threshold <= excess (strict: < excess; the product in float64), capped at
    max_coeff > 0; 1 if it is 1.

    Found by counting up, so no division can round it wrong. `excess >= threshold > 0` (strict: `>`).
    """
    if max_coeff == 1:
        return 1
    c = 1
    below = (lambda a, b: a < b) if strict else (lambda a, b: a <= b)
    while (max_coeff == 0 or c < max_coeff) and below(float(c + 1) * threshold, excess):
        c += 1
    return c


class Fired(NamedTuple):
    v: np.ndarray           # [N] after the resets
    discharged: np.ndarray  # [N] what the resets took, accumulated
    events: list            # Event(i, c, tag, c * S_k) in neuron order


def fire(v, theta_pos, theta_neg, max_coeff: int, sk: float, tag: int, discharged=None, dtype=np.float64,
         strict: bool = False, v_reset=None) -> Fired:
    """The fire rule of one unit per neuron (C-major [N]): compare with S_k theta, emit c, reset.

    If v >= th_p = S_k theta_pos (strict, version 3's `gt`: v > th_p): emit +c
    and v -= c th_p; else if theta_neg is set and v <= th_n = S_k theta_neg
    (strict: <): emit -c and v -= c th_n; c is `coefficient` of the excess.
    With `v_reset` (version 3's `reset = value`), v becomes v_reset after an
    event instead, and the discharge grows by what that took, v - v_reset.
    The thresholds are the state's `dtype` (theta S_k is a halving: exact);
    the reset is rounded once to it.
    """
    v = np.asarray(v, dtype=np.float64).copy()
    n = v.size
    discharged = np.zeros(n) if discharged is None else np.asarray(discharged, dtype=np.float64).copy()
    th_pos = np.asarray(theta_pos, dtype=dtype).astype(np.float64) * sk
    th_neg = None if theta_neg is None else np.asarray(theta_neg, dtype=dtype).astype(np.float64) * sk
    events = []
    rest = None if v_reset is None else np.asarray(v_reset, dtype=dtype).astype(np.float64)
    for j in range(n):
        if v[j] > th_pos[j] or (v[j] == th_pos[j] and not strict):
            c = coefficient(v[j], th_pos[j], max_coeff, strict)
            took = c * th_pos[j]
        elif th_neg is not None and (v[j] < th_neg[j] or (v[j] == th_neg[j] and not strict)):
            c = -coefficient(-v[j], -th_neg[j], max_coeff, strict)
            took = -c * th_neg[j]
        else:
            continue
        if rest is not None:
            took = v[j] - rest[j]
            v[j] = rest[j]
        else:
            v[j] = np.float64(dtype(v[j] - took))
        discharged[j] += took
        events.append(Event(j, c, tag, c * sk))
    return Fired(v, discharged, events)
