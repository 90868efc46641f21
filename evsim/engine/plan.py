"""Lower a `Network` to a flat plan: integer kind codes, one record per projection, two pools of data.

The jitted scheduler sees only this plan. Two layout decisions make event
delivery a contiguous vector add:

* Populations of shape `[C, H, W]` are stored channels-last (`H, W, C`)
  internally, so the `Cout` targets of one kernel tap are adjacent.
* Weights are stored source-major: a dense weight as `W.T` (one row per source
  neuron), a conv weight as `[Cin, kh, kw, Cout/groups]` (and, for a conv that
  gathers output by output, also `[kh, kw, Cin, Cout]`: `_gathers`), a sparse
  projection as CSR rows in internal source order.

A projection is one record, a row of `proj_rec`: its kind code, source and
target populations, and where its data start in the one integer pool
(`ints`) and the one float pool (`floats`). What lies there depends on the
kind's entry in the kind table (evsim/kinds.py): windowed kinds (conv and
pools) put a geometry header and their window tables in `ints`; a sparse
projection its row pointers and target indices; `floats` holds the weights
in the layout the entry names ("rows", "taps", "csr") or the one weight of a
"fixed" kind (identity: scale; average pool: scale / (kh * kw)). The
projection `scale` is folded into the stored weights, so delivering an
event is `v += w * value`.

Everything that crosses back to the user (spike records, readout values) is
converted to PyTorch's C-major order by `Plan` consumers via `chw_of_internal`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from evsim import kinds
from evsim.geometry import axis_hits
from evsim.network import Network, Population, Projection

# Fields of a population record (a row of Plan.pop_rec): kind code, neurons, state units per neuron (2 for
# bif), offsets into per-neuron arrays and per-unit state (A units, then B units), phase coded?, period K (a
# bif's gating period too), max_coeff (1 binary/ternary, M > 1 bounded, 0 unbounded), a negative threshold?,
# compares against thresholds?, neurons with a nonzero bias, the bias onset, gated drive (bif)?, a spikes
# readout ranking by value?, fed by an input projection?, resets to v_reset (not by subtraction)?, fires only
# beyond the threshold (>, not >=)?, and its outgoing projections (out_proj[P_OUT:P_OUT_END]).
(P_KIND, P_SIZE, P_UNITS, P_NOFF, P_SOFF, P_PHASE, P_PERIOD, P_MAX_COEFF, P_HAS_NEG, P_FIRES, P_BIAS_NEURONS,
 P_BIAS_ONSET, P_GATED, P_RANK_VALUE, P_FED_BY_INPUT, P_RESET_VALUE, P_FIRE_GT, P_OUT, P_OUT_END) = range(19)
POPULATION_FIELDS = 19
# Fields of a projection record (a row of Plan.proj_rec). REC_RANK: a max gate ranks by value (1) or mass (0).
REC_KIND, REC_SRC, REC_TGT, REC_INTS, REC_FLOATS, REC_RANK = range(6)
RECORD_FIELDS = 6
# The geometry header of a windowed projection, at its REC_INTS offset: input and output [C, H, W]
# (vectors as [N, 1, 1]), kernel, stride, padding, dilation, groups, the absolute offsets in `ints`
# of its row and column hit tables (evsim.geometry.axis_hits), whether its columns are runs (`_runs`), and
# where its weights in gather order start (`_gathers`; relative to REC_FLOATS, -1 when it has none).
(G_CIN, G_HIN, G_WIN, G_COUT, G_HOUT, G_WOUT, G_KH, G_KW, G_SH, G_SW, G_PH, G_PW, G_DH, G_DW, G_GROUPS,
 G_ROWS, G_COLS, G_RUNS, G_GATHER) = range(19)
GEOMETRY_FIELDS = 19
#: A conv that gathers (`_gathers`) sums GATHER_BLOCK output channels at a time in registers (32 float32: two
#: 512-bit registers) and keeps one event slice per kernel row, for at most GATHER_MAX_KH rows.
GATHER_BLOCK, GATHER_MAX_KH = 64, 16


class Plan(NamedTuple):
    """Flat arrays the scheduler runs on. Index `p` is a population in topological order, `q` a projection."""

    # populations
    pop_rec: np.ndarray       # [P, POPULATION_FIELDS]
    out_proj: np.ndarray      # projection ids, grouped by source population
    # neurons (internal order)
    theta_pos: np.ndarray
    theta_neg: np.ndarray
    v_init: np.ndarray
    bias: np.ndarray
    v_reset: np.ndarray       # the potential after an event under reset = value
    # projections
    proj_rec: np.ndarray      # [Q, RECORD_FIELDS]
    ints: np.ndarray          # int64 pool: geometry headers, window tables, CSR pointers and indices
    floats: np.ndarray        # float pool (the run's dtype): weights, scale folded in
    # input and output
    input_chw: np.ndarray     # [input size] C-major index of each internal input neuron
    output_pop: int
    output_internal: np.ndarray  # [output size] internal index of each C-major output neuron


class Workspace(NamedTuple):
    """The scratch state of one sample, allocated once per worker thread (`workspace`) and reset by
    `run_sample`: the jitted engine allocates nothing (each NumPy allocation it called compiled one more
    function, the largest part of its cold start)."""

    v: np.ndarray             # [units] membrane potentials (A units, then B units)
    current: np.ndarray       # [units] the analog input's constant current
    discharged: np.ndarray    # [units] what the resets took (float64), for the readout drive
    mass: np.ndarray          # [neurons] sum of |c| emitted so far
    value: np.ndarray         # [neurons] sum of the emitted values c * S_k so far (float64; dyadic: exact)
    ev_idx: np.ndarray        # [2 neurons] event buffers: 2 slots per neuron (a bif pair, or a relay fed
    ev_coef: np.ndarray       # by one, can pass A and B), a population's events at 2 * its neuron offset
    ev_tag: np.ndarray
    ev_val: np.ndarray
    ev_n: np.ndarray          # [P] events of each population this step
    input_ops: np.ndarray     # [Q, 2] per-step input MACs of each projection (nonzero pixels, all pixels)
    pixels: np.ndarray        # [input size] the input pixels, nonzero ones first (analog current)
    ops: np.ndarray           # [2, 3] scratch counters of the analog current


def workspace(plan: Plan) -> Workspace:
    pops = plan.pop_rec
    units = int((pops[:, P_SIZE] * pops[:, P_UNITS]).sum())
    neurons = int(pops[:, P_SIZE].sum())
    dtype = plan.floats.dtype
    return Workspace(
        v=np.zeros(units, dtype), current=np.zeros(units, dtype), discharged=np.zeros(units),
        mass=np.zeros(neurons, np.int64), value=np.zeros(neurons),
        ev_idx=np.zeros(2 * neurons, np.int64), ev_coef=np.zeros(2 * neurons, np.int64),
        ev_tag=np.zeros(2 * neurons, np.int64), ev_val=np.zeros(2 * neurons, dtype),
        ev_n=np.zeros(len(pops), np.int64), input_ops=np.zeros((plan.proj_rec.shape[0], 2), np.int64),
        pixels=np.zeros(plan.input_chw.size, np.int64), ops=np.zeros((2, 3), np.int64))


def chw_of_internal(shape: tuple[int, ...]) -> np.ndarray:
    """For each internal (channels-last) position, the C-major flat index it holds."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)), dtype=np.int64)
    c, h, w = shape
    return np.arange(c * h * w, dtype=np.int64).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def internal_of_chw(shape: tuple[int, ...]) -> np.ndarray:
    return np.argsort(chw_of_internal(shape)).astype(np.int64)


def build_plan(network: Network, dtype=np.float32) -> Plan:
    """Lower `network` to a `Plan` whose float arrays have `dtype`."""
    pops = network.populations
    index = {p.name: i for i, p in enumerate(pops)}
    sizes = np.array([p.size for p in pops], dtype=np.int64)
    units = np.array([p.units for p in pops], dtype=np.int64)
    order = [chw_of_internal(p.shape) for p in pops]

    neurons = {name: np.concatenate([p.expand(name)[chw] for p, chw in zip(pops, order)])
               for name in (*kinds.NEURON_PARAMETERS, "v_reset")}
    bias_neurons = np.array([np.count_nonzero(p.expand("bias")) for p in pops], dtype=np.int64)

    records = np.zeros((len(network.projections), RECORD_FIELDS), dtype=np.int64)
    int_pool, float_pool = _Pool(), _Pool()
    for q, proj in enumerate(network.projections):
        s, r = index[proj.source], index[proj.target]
        ints, floats = _lower(proj, pops[s], pops[r], order[s], order[r], len(int_pool))
        records[q] = (proj.spec.code, s, r, int_pool.add(ints), float_pool.add(floats), proj.rank == kinds.VALUE)

    src_of = records[:, REC_SRC]
    out_proj = np.argsort(src_of, kind="stable").astype(np.int64)
    out_ptr = np.concatenate([[0], np.cumsum(np.bincount(src_of, minlength=len(pops)))]).astype(np.int64)
    input_index = index[network.input.name]
    fed = np.zeros(len(pops), dtype=np.int64)
    for proj in network.outgoing(network.input.name):
        fed[index[proj.target]] = 1
    out_pop = network.output_population

    table = np.zeros((len(pops), POPULATION_FIELDS), dtype=np.int64)
    table[:, P_KIND] = [p.spec.code for p in pops]
    table[:, P_SIZE] = sizes
    table[:, P_UNITS] = units
    table[:, P_NOFF] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    table[:, P_SOFF] = np.concatenate([[0], np.cumsum(sizes * units)[:-1]])
    table[:, P_PHASE] = [p.coding == kinds.PHASE for p in pops]
    table[:, P_PERIOD] = [p.phase_period for p in pops]
    table[:, P_MAX_COEFF] = [p.max_coeff for p in pops]
    table[:, P_HAS_NEG] = [p.theta_neg is not None for p in pops]
    table[:, P_FIRES] = [p.fires for p in pops]
    table[:, P_BIAS_NEURONS] = bias_neurons
    table[:, P_BIAS_ONSET] = [p.bias_onset for p in pops]
    table[:, P_GATED] = [p.drive == kinds.GATED for p in pops]
    table[:, P_RANK_VALUE] = [p.rank == kinds.VALUE for p in pops]
    table[:, P_FED_BY_INPUT] = fed
    table[:, P_RESET_VALUE] = [p.reset == kinds.TO_VALUE for p in pops]
    table[:, P_FIRE_GT] = [p.fire_when == kinds.GT for p in pops]
    table[:, P_OUT], table[:, P_OUT_END] = out_ptr[:-1], out_ptr[1:]

    return Plan(
        pop_rec=table,
        out_proj=out_proj,
        theta_pos=neurons["theta_pos"].astype(dtype),
        theta_neg=neurons["theta_neg"].astype(dtype),
        v_init=neurons["v_init"].astype(dtype),
        bias=neurons["bias"].astype(dtype),
        v_reset=neurons["v_reset"].astype(dtype),
        proj_rec=records,
        ints=int_pool.array(np.int64),
        floats=float_pool.array(dtype),
        input_chw=order[input_index],
        output_pop=index[out_pop.name],
        output_internal=internal_of_chw(out_pop.shape),
    )


class _Pool:
    """Parts appended one after the other; `add` returns where a part starts."""

    def __init__(self):
        self.parts, self.size = [], 0

    def __len__(self):
        return self.size

    def add(self, part: np.ndarray) -> int:
        start = self.size
        self.parts.append(np.asarray(part).reshape(-1))
        self.size += self.parts[-1].size
        return start

    def array(self, dtype) -> np.ndarray:
        return np.concatenate(self.parts).astype(dtype) if self.parts else np.zeros(0, dtype)


def _lower(proj: Projection, src: Population, tgt: Population, src_chw, tgt_chw, int_base: int):
    """The int and float parts of one projection's record, by its kind's lowering (evsim/kinds.py)."""
    spec = proj.spec
    ints = _geometry(proj, src, tgt, int_base) if spec.windows else np.zeros(0, np.int64)
    if spec.weights == "csr":
        ptr, idx, w = _sparse_rows(proj, src_chw, tgt_chw)
        return np.concatenate([[ptr.size - 1], ptr, idx]), w
    return ints, _WEIGHT_LAYOUTS[spec.weights](proj, src_chw, tgt_chw)


def _geometry(proj: Projection, src: Population, tgt: Population, int_base: int) -> np.ndarray:
    """Geometry header and window tables of a conv or pool, to be placed at `int_base` in the int pool."""
    cin, hin, win = _as_chw(src.shape)
    cout, hout, wout = _as_chw(tgt.shape)
    kh, kw = proj.kernel_size
    dil = proj.dilation if proj.spec.weights == "taps" else (1, 1)  # pools have no dilation
    groups = proj.groups if proj.spec.weights == "taps" else 1
    runs = _runs(proj)
    rows = axis_hits(hin, proj.padding[0], kh, dil[0], proj.stride[0], hout).reshape(-1)
    cols = (_column_runs if runs else axis_hits)(win, proj.padding[1], kw, dil[1], proj.stride[1], wout).reshape(-1)
    gather = proj.weight.size if _gathers(proj) else -1  # its gather-order weights follow the others (`_taps`)
    header = np.array([cin, hin, win, cout, hout, wout, kh, kw, proj.stride[0], proj.stride[1],
                       proj.padding[0], proj.padding[1], dil[0], dil[1], groups,
                       int_base + GEOMETRY_FIELDS, int_base + GEOMETRY_FIELDS + rows.size, runs, gather],
                      dtype=np.int64)
    return np.concatenate([header, rows, cols])


def _runs(proj: Projection) -> bool:
    """Whether a conv's columns are delivered as runs: the kernel columns an input column reaches then hit
    consecutive output columns (the column dilation divides the column stride) and, with one group, the
    `hits x Cout` targets are contiguous in the channels-last state; `_run_order` lays the weights out to
    match, so one event adds one contiguous run per kernel row it reaches."""
    return proj.spec.weights == "taps" and proj.groups == 1 and proj.stride[1] % proj.dilation[1] == 0


def _gathers(proj: Projection) -> bool:
    """Whether a conv can also be delivered output by output (evsim/engine/delivery.py `gather_conv`): one group,
    no dilation, output channels in whole register blocks, at most GATHER_MAX_KH kernel rows. Its weights are
    then also stored `[kh, kw, Cin, Cout]`: the weights of the inputs of one kernel row, left to right and channel
    by channel, are the rows of one matrix, and an event at internal source index i reaches its row `i + shift`,
    `shift` fixed by the output position and the kernel row."""
    if proj.spec.weights != "taps":
        return False
    cout, _, kh, _ = np.shape(proj.weight)
    return proj.groups == 1 and tuple(proj.dilation) == (1, 1) and cout % GATHER_BLOCK == 0 and kh <= GATHER_MAX_KH


def _run_order(k: int, dilation: int, stride: int) -> np.ndarray:
    """Kernel columns in run order: grouped by the stride phase (kx * dilation) mod stride, descending in each
    group, so that the columns one input column reaches are consecutive, in ascending output column."""
    return np.array(sorted(range(k), key=lambda kx: ((kx * dilation) % stride, -kx)), dtype=np.int64)


def _column_runs(n_in: int, pad: int, k: int, dilation: int, stride: int, n_out: int) -> np.ndarray:
    """Per input column: `[hits, first output column, first kernel slot in run order]`."""
    slot = np.argsort(_run_order(k, dilation, stride))  # kernel column -> its place in run order
    hits = axis_hits(n_in, pad, k, dilation, stride, n_out)
    table = np.zeros((n_in, 3), dtype=np.int64)
    for x in range(n_in):
        n = hits[x, 0]
        if n == 0:
            continue
        outs, taps = hits[x, 1:1 + 2 * n:2], hits[x, 2:2 + 2 * n:2]
        ascending = np.argsort(outs)
        outs, slots = outs[ascending], slot[taps[ascending]]
        assert np.all(np.diff(outs) == 1) and np.all(np.diff(slots) == 1), "not a run"
        table[x] = n, outs[0], slots[0]
    return table


def _as_chw(shape):
    return tuple(shape) if len(shape) == 3 else (int(shape[0]), 1, 1)


def _rows(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """Dense weights, one row per source neuron (internal order), scale folded in."""
    w = np.asarray(proj.weight, dtype=np.float64)[np.ix_(tgt_chw, src_chw)].T
    return np.ascontiguousarray(w * proj.scale).reshape(-1)


def _taps(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """Conv weights [Cin, kh, kw, Cout/groups], scale folded in; kernel columns in run order (`_runs`); then,
    for a conv that gathers (`_gathers`), the same weights [kh, kw, Cin, Cout]."""
    w = np.asarray(proj.weight, dtype=np.float64)  # [Cout, Cin/g, kh, kw]
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // proj.groups
    # [g, cout_g, cin_g, kh, kw] -> [g, cin_g, kh, kw, cout_g], i.e. [Cin, kh, kw, cout_g]
    w = w.reshape(proj.groups, cout_g, cin_g, kh, kw).transpose(0, 2, 3, 4, 1)
    gather = [w[0].transpose(1, 2, 0, 3).reshape(-1)] if _gathers(proj) else []
    if _runs(proj):
        w = w[:, :, :, _run_order(kw, proj.dilation[1], proj.stride[1]), :]
    return np.concatenate([w.reshape(-1), *gather]) * proj.scale


def _fixed(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """The one weight of every synapse: scale, divided by the window area for a pool."""
    kh, kw = proj.kernel_size
    return np.array([proj.scale / (kh * kw)])


def _no_weights(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    return np.zeros(0)


_WEIGHT_LAYOUTS = {"rows": _rows, "taps": _taps, "fixed": _fixed, "none": _no_weights}


def _sparse_rows(proj: Projection, src_chw, tgt_chw):
    """CSR rows in internal source order (pointers relative to the projection's first entry), targets in
    internal order, scale folded into the weights."""
    indptr = np.asarray(proj.indptr, dtype=np.int64)
    counts = indptr[1:] - indptr[:-1]
    starts = indptr[:-1][src_chw]
    lengths = counts[src_chw]
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    entries = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1])
    idx = np.argsort(tgt_chw)[np.asarray(proj.indices, dtype=np.int64)[entries]]
    return ptr, idx, np.asarray(proj.weight, dtype=np.float64)[entries] * proj.scale
