"""Lower a `Network` to a flat plan: integer kind codes, one record per projection, two pools of data.

The jitted scheduler sees only this plan. Two layout decisions make event
delivery a contiguous vector add:

* Populations of shape `[C, H, W]` are stored channels-last (`H, W, C`)
  internally, so the `Cout` targets of one kernel tap are adjacent.
* Weights are stored source-major: a dense weight as `W.T` (one row per source
  neuron), a conv weight as `[Cin, kh, kw, Cout/groups]`, a sparse projection
  as CSR rows in internal source order.

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

# Fields of a projection record (a row of Plan.proj_rec). REC_RANK: a max gate ranks by value (1) or mass (0).
REC_KIND, REC_SRC, REC_TGT, REC_INTS, REC_FLOATS, REC_RANK = range(6)
RECORD_FIELDS = 6
# The geometry header of a windowed projection, at its REC_INTS offset: input and output [C, H, W]
# (vectors as [N, 1, 1]), kernel, stride, padding, dilation, groups, and the absolute offsets in `ints`
# of its row and column hit tables (evsim.geometry.axis_hits).
(G_CIN, G_HIN, G_WIN, G_COUT, G_HOUT, G_WOUT, G_KH, G_KW, G_SH, G_SW, G_PH, G_PW, G_DH, G_DW, G_GROUPS,
 G_ROWS, G_COLS) = range(17)
GEOMETRY_FIELDS = 17


class Plan(NamedTuple):
    """Flat arrays the scheduler runs on. Index `p` is a population in topological order, `q` a projection."""

    # populations
    pop_kind: np.ndarray      # [P] kind code (kinds.PopulationKind.code)
    pop_size: np.ndarray      # [P] neurons
    pop_units: np.ndarray     # [P] state units per neuron (2 for bif)
    pop_noff: np.ndarray      # [P] offset into per-neuron arrays
    pop_soff: np.ndarray      # [P] offset into per-unit state (A units, then B units)
    pop_phase: np.ndarray     # [P] 1 if phase coded
    pop_period: np.ndarray    # [P] phase period K (bif gating period too)
    pop_max_coeff: np.ndarray  # [P] 1 binary/ternary, M > 1 bounded, 0 unbounded
    pop_has_neg: np.ndarray   # [P] 1 if a negative threshold is set
    pop_fires: np.ndarray     # [P] 1 if the population compares against thresholds
    pop_bias_neurons: np.ndarray  # [P] neurons with a nonzero bias
    pop_bias_onset: np.ndarray  # [P] first step whose bias is added
    pop_gated: np.ndarray     # [P] 1 for a bif pair whose untagged input and bias reach only its integrating unit
    pop_rank_value: np.ndarray  # [P] 1 for a spikes readout that ranks by the values of its events
    pop_fed_by_input: np.ndarray  # [P] 1 if an input projection targets it
    out_ptr: np.ndarray       # [P + 1] CSR of outgoing projections
    out_proj: np.ndarray      # projection ids
    # neurons (internal order)
    theta_pos: np.ndarray
    theta_neg: np.ndarray
    v_init: np.ndarray
    bias: np.ndarray
    # projections
    proj_rec: np.ndarray      # [Q, RECORD_FIELDS]
    ints: np.ndarray          # int64 pool: geometry headers, window tables, CSR pointers and indices
    floats: np.ndarray        # float pool (the run's dtype): weights, scale folded in
    # input and output
    input_chw: np.ndarray     # [input size] C-major index of each internal input neuron
    output_pop: int
    output_internal: np.ndarray  # [output size] internal index of each C-major output neuron


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
               for name in kinds.NEURON_PARAMETERS}
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

    def ints(values):
        return np.asarray(values, dtype=np.int64)

    return Plan(
        pop_kind=ints([p.spec.code for p in pops]),
        pop_size=sizes,
        pop_units=units,
        pop_noff=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        pop_soff=np.concatenate([[0], np.cumsum(sizes * units)[:-1]]).astype(np.int64),
        pop_phase=ints([p.coding == kinds.PHASE for p in pops]),
        pop_period=ints([p.phase_period for p in pops]),
        pop_max_coeff=ints([p.max_coeff for p in pops]),
        pop_has_neg=ints([p.theta_neg is not None for p in pops]),
        pop_fires=ints([p.fires for p in pops]),
        pop_bias_neurons=bias_neurons,
        pop_bias_onset=ints([p.bias_onset for p in pops]),
        pop_gated=ints([p.drive == kinds.GATED for p in pops]),
        pop_rank_value=ints([p.rank == kinds.VALUE for p in pops]),
        pop_fed_by_input=fed,
        out_ptr=out_ptr,
        out_proj=out_proj,
        theta_pos=neurons["theta_pos"].astype(dtype),
        theta_neg=neurons["theta_neg"].astype(dtype),
        v_init=neurons["v_init"].astype(dtype),
        bias=neurons["bias"].astype(dtype),
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
    rows = axis_hits(hin, proj.padding[0], kh, dil[0], proj.stride[0], hout).reshape(-1)
    cols = axis_hits(win, proj.padding[1], kw, dil[1], proj.stride[1], wout).reshape(-1)
    header = np.array([cin, hin, win, cout, hout, wout, kh, kw, proj.stride[0], proj.stride[1],
                       proj.padding[0], proj.padding[1], dil[0], dil[1], groups,
                       int_base + GEOMETRY_FIELDS, int_base + GEOMETRY_FIELDS + rows.size], dtype=np.int64)
    return np.concatenate([header, rows, cols])


def _as_chw(shape):
    return tuple(shape) if len(shape) == 3 else (int(shape[0]), 1, 1)


def _rows(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """Dense weights, one row per source neuron (internal order), scale folded in."""
    w = np.asarray(proj.weight, dtype=np.float64)[np.ix_(tgt_chw, src_chw)].T
    return np.ascontiguousarray(w * proj.scale).reshape(-1)


def _taps(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """Conv weights [Cin, kh, kw, Cout/groups], scale folded in."""
    w = np.asarray(proj.weight, dtype=np.float64)  # [Cout, Cin/g, kh, kw]
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // proj.groups
    # [g, cout_g, cin_g, kh, kw] -> [g, cin_g, kh, kw, cout_g], i.e. [Cin, kh, kw, cout_g]
    w = w.reshape(proj.groups, cout_g, cin_g, kh, kw).transpose(0, 2, 3, 4, 1)
    return np.ascontiguousarray(w * proj.scale).reshape(-1)


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
