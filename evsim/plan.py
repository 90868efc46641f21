"""Lower a `Network` to a flat plan: integer kind codes and contiguous arrays.

The jitted scheduler sees only this plan. Two layout decisions make event
delivery a contiguous vector add:

* Populations of shape `[C, H, W]` are stored channels-last (`H, W, C`)
  internally, so the `Cout` targets of one kernel tap are adjacent.
* Weights are stored source-major: a dense weight as `W.T` (one row per source
  neuron), a conv weight as `[Cin, kh, kw, Cout/groups]`, a sparse projection
  as CSR rows in internal source order.

The projection `scale` is folded into the stored weights (for pools, into the
pool weight `scale / (kh * kw)`), so delivering an event is `v += w * value`.
Everything that crosses back to the user (spike records, readout values) is
converted to PyTorch's C-major order by `Plan` consumers via `chw_of`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from evsim.geometry import axis_hits
from evsim.network import Network, Population, Projection

# Population kinds.
INPUT, IF, BIF, RELAY, READOUT = range(5)
POP_CODE = {"input": INPUT, "if": IF, "bif": BIF, "relay": RELAY, "readout": READOUT}
# Projection kinds.
DENSE, CONV2D, AVGPOOL2D, MAXPOOL2D, IDENTITY, SPARSE = range(6)
PROJ_CODE = {"dense": DENSE, "conv2d": CONV2D, "avgpool2d": AVGPOOL2D,
             "maxpool2d": MAXPOOL2D, "identity": IDENTITY, "sparse": SPARSE}
# Encoders.
ANALOG, BERNOULLI, PHASE = range(3)
ENCODER_CODE = {"analog": ANALOG, "bernoulli": BERNOULLI, "phase": PHASE}
# Geometry row of a conv or pool projection.
G_CIN, G_HIN, G_WIN, G_COUT, G_HOUT, G_WOUT, G_KH, G_KW, G_SH, G_SW, G_PH, G_PW, G_DH, G_DW, G_GROUPS = range(15)
GEOMETRY_FIELDS = 15


class Plan(NamedTuple):
    """Flat arrays the scheduler runs on. Index `p` is a population in topological order, `q` a projection."""

    # populations
    pop_kind: np.ndarray      # [P] kind code
    pop_size: np.ndarray      # [P] neurons
    pop_units: np.ndarray     # [P] state units per neuron (2 for bif)
    pop_noff: np.ndarray      # [P] offset into per-neuron arrays
    pop_soff: np.ndarray      # [P] offset into per-unit state (A units, then B units)
    pop_phase: np.ndarray     # [P] 1 if phase coded
    pop_period: np.ndarray    # [P] phase period K (bif gating period too)
    pop_max_coeff: np.ndarray  # [P] 1 binary/ternary, M > 1 bounded, 0 unbounded
    pop_has_neg: np.ndarray   # [P] 1 if a negative threshold is set
    pop_fires: np.ndarray     # [P] 1 if the population compares against thresholds
    pop_bias_units: np.ndarray  # [P] units with a nonzero bias (bias_ops per step)
    pop_fed_by_input: np.ndarray  # [P] 1 if an input projection targets it
    out_ptr: np.ndarray       # [P + 1] CSR of outgoing projections
    out_proj: np.ndarray      # projection ids
    # neurons (internal order)
    theta_pos: np.ndarray
    theta_neg: np.ndarray
    v_init: np.ndarray
    bias: np.ndarray
    # projections
    proj_kind: np.ndarray     # [Q]
    proj_src: np.ndarray      # [Q]
    proj_tgt: np.ndarray      # [Q]
    proj_geom: np.ndarray     # [Q, GEOMETRY_FIELDS]
    proj_woff: np.ndarray     # [Q] offset into weights
    proj_roff: np.ndarray     # [Q] offset into sparse row pointers
    proj_rows: np.ndarray     # [Q] offset of the projection's row table in window_table (conv and pools)
    proj_cols: np.ndarray     # [Q] offset of its column table
    window_table: np.ndarray  # per input row / column: [hits, (out, tap) x hits, padding] (see axis_hits)
    proj_fixed_w: np.ndarray  # [Q] weight of weightless projections: scale / (kh * kw) for avgpool, scale for identity
    weights: np.ndarray       # dense and conv weights, source-major, scale folded in
    sparse_ptr: np.ndarray    # CSR row pointers, absolute offsets into sparse_idx / sparse_w
    sparse_idx: np.ndarray    # CSR target indices (internal order)
    sparse_w: np.ndarray      # CSR weights, scale folded in
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
               for name in ("theta_pos", "theta_neg", "v_init", "bias")}
    bias_units = np.array([np.count_nonzero(p.expand("bias")) * p.units for p in pops], dtype=np.int64)

    projections = network.projections
    weights, sparse_ptr, sparse_idx, sparse_w = [], [], [], []
    woff, roff, fixed_w = [], [], []
    tables, rows_off, cols_off = [], [], []
    n_table = 0
    geom = np.zeros((len(projections), GEOMETRY_FIELDS), dtype=np.int64)
    n_weights = n_rows = n_entries = 0
    for q, proj in enumerate(projections):
        src, tgt = pops[index[proj.source]], pops[index[proj.target]]
        geom[q] = _geometry(proj, src, tgt)
        woff.append(n_weights)
        roff.append(n_rows)
        for offsets, table in zip((rows_off, cols_off), _window_tables(geom[q])):
            offsets.append(n_table)
            tables.append(table.reshape(-1))
            n_table += table.size
        fixed_w.append(proj.scale / (proj.kernel[0] * proj.kernel[1]) if proj.kind == "avgpool2d" else proj.scale)
        if proj.kind == "sparse":
            ptr, idx, w = _sparse_rows(proj, order[index[proj.source]], order[index[proj.target]])
            sparse_ptr.append(ptr + n_entries)  # absolute offsets into sparse_idx / sparse_w
            sparse_idx.append(idx)
            sparse_w.append(w)
            n_rows += ptr.size
            n_entries += idx.size
        else:
            w = _source_major(proj, order[index[proj.source]], order[index[proj.target]])
            weights.append(w)
            n_weights += w.size

    src_of = np.array([index[q.source] for q in projections], dtype=np.int64)
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
        pop_kind=ints([POP_CODE[p.kind] for p in pops]),
        pop_size=sizes,
        pop_units=units,
        pop_noff=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        pop_soff=np.concatenate([[0], np.cumsum(sizes * units)[:-1]]).astype(np.int64),
        pop_phase=ints([p.coding == "phase" for p in pops]),
        pop_period=ints([p.phase_period for p in pops]),
        pop_max_coeff=ints([p.max_coeff for p in pops]),
        pop_has_neg=ints([p.theta_neg is not None for p in pops]),
        pop_fires=ints([p.fires for p in pops]),
        pop_bias_units=bias_units,
        pop_fed_by_input=fed,
        out_ptr=out_ptr,
        out_proj=out_proj,
        theta_pos=neurons["theta_pos"].astype(dtype),
        theta_neg=neurons["theta_neg"].astype(dtype),
        v_init=neurons["v_init"].astype(dtype),
        bias=neurons["bias"].astype(dtype),
        proj_kind=ints([PROJ_CODE[q.kind] for q in projections]),
        proj_src=src_of,
        proj_tgt=ints([index[q.target] for q in projections]),
        proj_geom=geom,
        proj_woff=ints(woff),
        proj_roff=ints(roff),
        proj_rows=ints(rows_off),
        proj_cols=ints(cols_off),
        window_table=_concat(tables, np.int64),
        proj_fixed_w=np.asarray(fixed_w, dtype=dtype),
        weights=_concat(weights, dtype),
        sparse_ptr=_concat(sparse_ptr, np.int64),
        sparse_idx=_concat(sparse_idx, np.int64),
        sparse_w=_concat(sparse_w, dtype),
        input_chw=order[input_index],
        output_pop=index[out_pop.name],
        output_internal=internal_of_chw(out_pop.shape),
    )


def _geometry(proj: Projection, src: Population, tgt: Population) -> np.ndarray:
    """Geometry row: input and output [C, H, W] as 3-D (vectors as [N, 1, 1]), kernel, stride, padding, dilation, groups."""
    row = np.zeros(GEOMETRY_FIELDS, dtype=np.int64)
    cin, hin, win = _as_chw(src.shape)
    cout, hout, wout = _as_chw(tgt.shape)
    kh, kw = proj.kernel_size if proj.kind in ("conv2d", "avgpool2d", "maxpool2d") else (1, 1)
    dil = proj.dilation if proj.kind == "conv2d" else (1, 1)
    groups = proj.groups if proj.kind == "conv2d" else 1
    row[:] = (cin, hin, win, cout, hout, wout, kh, kw, proj.stride[0], proj.stride[1],
              proj.padding[0], proj.padding[1], dil[0], dil[1], groups)
    return row


def _window_tables(g: np.ndarray):
    """Row and column hit tables of a conv or pool geometry (a dense or sparse projection gets trivial ones)."""
    rows = axis_hits(g[G_HIN], g[G_PH], g[G_KH], g[G_DH], g[G_SH], g[G_HOUT])
    cols = axis_hits(g[G_WIN], g[G_PW], g[G_KW], g[G_DW], g[G_SW], g[G_WOUT])
    return rows, cols


def _as_chw(shape):
    return tuple(shape) if len(shape) == 3 else (int(shape[0]), 1, 1)


def _concat(parts, dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _source_major(proj: Projection, src_chw, tgt_chw) -> np.ndarray:
    """Dense or conv weights laid out per source neuron (internal order), scale folded in."""
    if proj.kind == "dense":
        w = np.asarray(proj.weight, dtype=np.float64)[np.ix_(tgt_chw, src_chw)].T
        return np.ascontiguousarray(w * proj.scale).reshape(-1)
    if proj.kind == "conv2d":
        w = np.asarray(proj.weight, dtype=np.float64)  # [Cout, Cin/g, kh, kw]
        cout, cin_g, kh, kw = w.shape
        cout_g = cout // proj.groups
        # [g, cout_g, cin_g, kh, kw] -> [g, cin_g, kh, kw, cout_g], i.e. [Cin, kh, kw, cout_g]
        w = w.reshape(proj.groups, cout_g, cin_g, kh, kw).transpose(0, 2, 3, 4, 1)
        return np.ascontiguousarray(w * proj.scale).reshape(-1)
    return np.zeros(0)


def _sparse_rows(proj: Projection, src_chw, tgt_chw):
    """CSR rows in internal source order, targets in internal order, scale folded into the weights."""
    indptr = np.asarray(proj.indptr, dtype=np.int64)
    counts = indptr[1:] - indptr[:-1]
    starts = indptr[:-1][src_chw]
    lengths = counts[src_chw]
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    entries = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1])
    idx = np.argsort(tgt_chw)[np.asarray(proj.indices, dtype=np.int64)[entries]]
    return ptr, idx, np.asarray(proj.weight, dtype=np.float64)[entries] * proj.scale
