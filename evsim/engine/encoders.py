"""Input kernels: the Bernoulli and phase encoders' events, and the analog input's constant current.

The Bernoulli stream is a counter-based hash, a pure function of (seed,
sample, step, pixel), so results depend neither on threads nor on batching.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from evsim.counters import TAG_NONE
from evsim.engine.delivery import push, route_of
from evsim.engine.jit import inline_kernel, kernel
from evsim.engine.plan import P_KIND, P_SIZE, P_SOFF, P_UNITS, REC_SRC, REC_TGT
from evsim.kinds import BERNOULLI, BIF, ENCODER_CODES, INPUT

BERNOULLI_CODE = ENCODER_CODES[BERNOULLI]
INPUT_CODE, BIF_CODE = INPUT.code, BIF.code

# splitmix64's finaliser, chained over the four keys. Written with uint64
# operators only, so the same definition runs jitted and on NumPy arrays (the
# dense reference engine calls it on whole images).
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


@inline_kernel
def phase_bit(x, period, t):
    """Whether a pixel of value x in [0, 1] emits at step t under the phase encoder."""
    levels = 1 << period
    q = min(int(np.floor(x * levels)), levels - 1)
    return (q >> (period - 1 - t % period)) & 1


@kernel
def encode(encoder, x, input_chw, period, sample, seed, t, sk, ev, ebase):
    """Input events of step t: Bernoulli (|x| as probability, value sign(x)) or phase (bits of x)."""
    ev_idx, ev_coef, ev_tag, ev_val = ev
    n = 0
    for i in range(x.size):
        xi = x[i]
        c = 0
        if encoder == BERNOULLI_CODE:
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


@inline_kernel
def analog_current(plan, x, current, input_ops, order, ev, ops):
    """Deliver the analog input once per sample: the constant current of every input projection's targets.

    Pixels are pushed as events of value x (nonzero ones first, in the
    scratch `order` and event buffers `ev`), so the current is built by the
    same kernels as spikes. `input_ops[q]` receives the per-step input MACs
    of each input projection (nonzero pixels, and all pixels), which the
    semantics charge every step. A MAC is one product w * x: the A and B
    units of a bif target share it. Called once per sample, so it may read
    `plan`.
    """
    n = x.size
    ev_idx, ev_coef, ev_tag, ev_val = ev
    n_nonzero = 0
    for i in range(n):  # nonzero pixels first, then the zero ones (plain loops: no NumPy calls to compile)
        if x[i] != 0:
            order[n_nonzero] = i
            n_nonzero += 1
    zero = n_nonzero
    for i in range(n):
        if x[i] == 0:
            order[zero] = i
            zero += 1
    for e in range(n):
        ev_idx[e], ev_coef[e], ev_tag[e], ev_val[e] = order[e], 1, TAG_NONE, x[order[e]]
    pops = plan.pop_rec
    for q in range(plan.proj_rec.shape[0]):
        rec = plan.proj_rec[q]
        tgt = pops[rec[REC_TGT]]
        if pops[rec[REC_SRC], P_KIND] != INPUT_CODE:
            continue
        for part in range(2):  # nonzero pixels, zero pixels; ac / scaled / pool slots
            ops[part, 0] = ops[part, 1] = ops[part, 2] = 0
            start = part * n_nonzero  # (0, n_nonzero), then (n_nonzero, n); never a literal: push would compile twice
            stop = n_nonzero + part * (n - n_nonzero)
            # the current of both units of a bif pair (a gated pair integrates one at a time: neurons.integrate)
            route = route_of(tgt[P_SOFF], tgt[P_SIZE], tgt[P_KIND] == BIF_CODE, False, 0)
            push(rec, plan.ints, plan.floats, ev, start, stop, current, tgt[P_SIZE], route, ops[part])
        input_ops[q, 0] = (ops[0, 0] + ops[0, 1] + ops[0, 2]) // tgt[P_UNITS]
        input_ops[q, 1] = (ops[0, 0] + ops[0, 1] + ops[0, 2] + ops[1, 0] + ops[1, 1] + ops[1, 2]) // tgt[P_UNITS]
