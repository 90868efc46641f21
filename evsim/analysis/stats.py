"""Paired comparisons of two conversions: bootstrap intervals stratified by fold, McNemar's exact test, verdicts.

Pure NumPy / SciPy. The method of docs/results/README.md ("Method"), defined here:

**Pairing.** A comparison is of two conversions A and B of the same ANN run
on the same images: per-sample arrays `a` and `b` (shape `[n, ...]`, the same
image in the same row) and `folds` (`[n]`), the cross-validation fold of
each image (`fold_ids`; one fold for a single train / test split). Every
difference is B - A, every ratio B / A.

**Stratified paired bootstrap.** One resample draws, in every fold
independently, as many images as the fold has, uniformly with replacement
from that fold's images, and indexes A and B with the *same* draws: a
resample keeps every fold's size and the pairing. `resample_indices` draws
all resamples at once (`[n_resamples, n]`, seeded with `numpy.random.default_rng(seed)`; row
r at position i holds an image of position i's fold), and every function of
this module given the same folds, `n_resamples` and `seed` uses those same
resamples. Statistics that are means over images (accuracy at a step,
accuracy curves, events, synaptic ops) are computed from the resample counts
`w` (`[n_resamples, n]`, how often each image was drawn): a resample's mean is
`w @ x / n`, exact for counts.

**Interval.** The percentile interval: the (1 - level) / 2 and (1 + level) / 2
quantiles of the resampled statistic (NumPy's linear interpolation), level
0.95 by default, 2,000 resamples by default. `estimate` is the statistic on
the images as measured. No BCa correction: the statistics here are
discrete (images, steps), where its jackknife acceleration is unstable.

**Latency.** The early-decision latency (`metrics.early_decision_latency`):
the first step t from which the accuracy stays >= reference - tolerance until
T (`kept=True`), or the first step at which it is reached (`kept=False`).
It is a function of the accuracy curve, so it is recomputed on each
resample's curve, against the reference recomputed on the same resample
(the ANN's accuracy on the resampled images, when the ANN's per-image
correctness is given). **Not reached by T counts as T + 1**: a lower
bound of the latency, so a difference or ratio involving it is a bound too;
`extra["reached_a"]` / `["reached_b"]` give the fraction of resamples in
which each latency was reached, and the interval carries a note when it
is below 1.

**McNemar's exact test**, the p-value beside an accuracy difference: with
b images that A classifies right and B wrong and c the reverse, under no
difference b ~ Binomial(b + c, 1/2); p = min(1, 2 P(X <= min(b, c))), 1 when
b + c = 0.

**Verdicts.** A `Claim` is the paper's effect as a region of the compared
statistic, `statistic op bound` (op one of <, <=, >, >=), with `null` the
value of no effect (0 for a difference, 1 for a ratio; default the bound).
A *directional* claim has bound = null ("B's accuracy >= A's": `>= 0`;
"B spends fewer events": ratio `< 1`); a claim with an *effect size* has
its bound at the claimed size ("B's latency is at most 1/4 of A's": ratio
`<= 0.25`, null 1; "TerMapping gains at least 0.2 point": difference
`>= 0.002`, null 0). With I = [low, high] the interval:

- **held**: every value of I satisfies the claim (I lies in the region of
  the paper's effect: past the claimed size, or on the paper's side of
  zero, excluding it, for a strict directional claim);
- **did not hold**: no value of I satisfies it (I excludes the paper's
  effect: entirely on the other side of no effect, or short of the claimed
  size);
- **not resolvable at this size**: I holds values that satisfy the claim and
  values that do not (it straddles the bound: it covers both the paper's
  effect and no effect, or, for a sized claim, the effect is there but its
  size is undecided); more images would be needed;
- **not testable here**: given by the caller (`not_testable="reason"`) when
  the claim is about something MNIST-scale networks cannot show.

A non-strict directional claim (`>= 0`: "lossless", "at least as accurate")
holds only if I lies at or above 0, which a noisy zero difference never
does; to test "loses at most m", give the margin: `>= -m`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from evsim.counters import AC_OPS, EVENTS, SCALED_OPS
from evsim.kinds import emitting

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95

HELD = "held"
DID_NOT_HOLD = "did not hold"
NOT_RESOLVABLE = "not resolvable at this size"
NOT_TESTABLE = "not testable here"
VERDICTS = (HELD, DID_NOT_HOLD, NOT_RESOLVABLE, NOT_TESTABLE)


@dataclass(frozen=True)
class PairedInterval:
    """A statistic of B against A, as measured (`estimate`), with its bootstrap interval [low, high]."""

    statistic: str                 # what it is, e.g. "accuracy at t=16, B - A"
    estimate: float
    low: float
    high: float
    level: float
    n_resamples: int
    n: int                         # images
    n_folds: int
    a: Optional[float] = None      # the statistic's two sides as measured (A's accuracy, B's latency, ...)
    b: Optional[float] = None
    p_value: Optional[float] = None  # McNemar's exact test (accuracy differences)
    extra: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()    # caveats a verdict repeats (a latency not always reached, ...)
    samples: Optional[np.ndarray] = field(default=None, repr=False, compare=False)  # the resampled statistic

    def to_dict(self) -> dict:
        """Plain values for JSON (the resampled values left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "samples"}

    def format(self, scale: float = 1.0, digits: int = 2, unit: str = "", signed: bool = True) -> str:
        """e.g. "+0.3 pt [-0.4, +1.0] (McNemar p = 0.41)" with scale=100, digits=1, unit=" pt"."""
        spec = f"{'+' if signed else ''}.{digits}f"
        text = f"{self.estimate * scale:{spec}}{unit} [{self.low * scale:{spec}}, {self.high * scale:{spec}}]"
        return text + ("" if self.p_value is None else f" (McNemar p = {self.p_value:.2g})")


# ----------------------------------------------------------------------------- folds and resamples


def fold_ids(sizes: Sequence[int]) -> np.ndarray:
    """The fold of every image when the folds' images are concatenated in order: sizes [5, 3] -> [0]*5 + [1]*3."""
    return np.repeat(np.arange(len(sizes)), sizes)


def _draws(folds, n_resamples: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold (in sorted order): its members' positions [n_f] and the drawn members [n_resamples, n_f] (indices into them)."""
    folds = np.asarray(folds)
    if folds.ndim != 1 or folds.size == 0:
        raise ValueError(f"folds must be a non-empty 1-d array of fold ids, got shape {folds.shape}")
    rng = np.random.default_rng(seed)
    out = []
    for fold in np.unique(folds):
        members = np.flatnonzero(folds == fold)
        out.append((members, rng.integers(0, members.size, size=(n_resamples, members.size))))
    return out


def resample_indices(folds, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """[n_resamples, n] image indices: row r, position i, an image drawn with replacement from position i's fold.

    Index both conversions' per-sample arrays with the same row (the pairing); every fold keeps its size.
    """
    indices = np.empty((n_resamples, len(folds)), dtype=np.int64)
    for members, drawn in _draws(folds, n_resamples, seed):
        indices[:, members] = members[drawn]
    return indices


def resample_counts(folds, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """[n_resamples, n] float32: how often each image is drawn in each resample (the same draws as `resample_indices`)."""
    n = len(folds)
    counts = np.zeros((n_resamples, n), dtype=np.float32)
    rows = np.arange(n_resamples)[:, None]
    for members, drawn in _draws(folds, n_resamples, seed):
        per_fold = np.bincount((rows * members.size + drawn).ravel(), minlength=n_resamples * members.size)
        counts[:, members] = per_fold.reshape(n_resamples, members.size)
    return counts


def _means(counts: np.ndarray, x) -> np.ndarray:
    """Per resample, the weighted mean over images of x [n, ...] -> [n_resamples, ...].

    0/1 data in float32 (the sums are integers below 2^24: exact), anything else in float64.
    """
    x = np.asarray(x)
    dtype = np.float32 if x.dtype == bool else np.float64
    flat = x.reshape(x.shape[0], -1).astype(dtype)
    means = (counts.astype(dtype) @ flat).astype(np.float64) / x.shape[0]
    return means.reshape((counts.shape[0],) + x.shape[1:])


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of the resampled values."""
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _interval(statistic: str, estimate, samples, folds, level, **fields) -> PairedInterval:
    low, high = percentile_interval(samples, level)
    return PairedInterval(statistic=statistic, estimate=float(estimate), low=low, high=high, level=level,
                          n_resamples=len(samples), n=len(folds), n_folds=len(np.unique(folds)), samples=samples,
                          **fields)


# ----------------------------------------------------------------------------- the bootstrap


def paired_bootstrap(statistic: Callable, a, b, folds, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     level: float = DEFAULT_LEVEL, vectorized: bool = True, name: str = "statistic",
                     chunk_elements: int = 1 << 24) -> PairedInterval:
    """Any statistic of two paired per-sample arrays a, b [n, ...], with its stratified paired bootstrap interval.

    vectorized (default): `statistic(a, b)` receives arrays with a leading resample axis, [m, n, ...] (m resamples,
    in chunks of about `chunk_elements` values), and returns [m] values; the estimate is `statistic(a[None],
    b[None])[0]`. Otherwise it receives [n, ...] arrays and returns one number, called once per resample.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[0] != len(folds) or b.shape[0] != len(folds):
        raise ValueError(f"a, b and folds must have one entry per image: {a.shape[0]}, {b.shape[0]}, {len(folds)}")
    indices = resample_indices(folds, n_resamples, seed)
    if vectorized:
        estimate = np.asarray(statistic(a[None], b[None]), dtype=np.float64).reshape(-1)[0]
        per_chunk = max(1, chunk_elements // max(1, a[0].size * len(folds)))
        samples = np.concatenate([np.asarray(statistic(a[rows], b[rows]), dtype=np.float64).reshape(len(rows))
                                  for rows in np.array_split(indices, range(per_chunk, n_resamples, per_chunk))])
    else:
        estimate = float(statistic(a, b))
        samples = np.array([statistic(a[rows], b[rows]) for rows in indices], dtype=np.float64)
    return _interval(name, estimate, samples, folds, level)


def mcnemar_exact(correct_a, correct_b) -> tuple[float, int, int]:
    """McNemar's exact two-sided test on paired correctness [n]: (p, b, c), b = A right & B wrong, c = A wrong & B right."""
    from scipy.stats import binom

    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    b, c = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p = 1.0 if b + c == 0 else min(1.0, 2.0 * float(binom.cdf(min(b, c), b + c, 0.5)))
    return p, b, c


def accuracy_difference(correct_a, correct_b, folds, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        level: float = DEFAULT_LEVEL, name: str = "accuracy, B - A") -> PairedInterval:
    """Accuracy of B minus accuracy of A from per-image correctness [n] (at one step), with McNemar's p-value.

    `extra`: b (A right, B wrong) and c (A wrong, B right), the discordant pairs.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    means = _means(resample_counts(folds, n_resamples, seed), np.stack([correct_a, correct_b], axis=1))
    p, b, c = mcnemar_exact(correct_a, correct_b)
    return _interval(name, correct_b.mean() - correct_a.mean(), means[:, 1] - means[:, 0], folds, level,
                     a=float(correct_a.mean()), b=float(correct_b.mean()), p_value=p, extra={"b": b, "c": c})


def mean_comparison(a, b, folds, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL,
                    name: str = "mean per image") -> dict[str, PairedInterval]:
    """Per-image amounts [n] (events, synaptic ops, energy): {"difference": mean B - mean A, "ratio": mean B / mean A}.

    The ratio is of the resample's means (not a mean of per-image ratios); inf where A's mean is 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    means = _means(resample_counts(folds, n_resamples, seed), np.stack([a, b], axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means[:, 1] / means[:, 0]
        ratio = b.mean() / a.mean()
    sides = dict(a=float(a.mean()), b=float(b.mean()))
    return {"difference": _interval(f"{name}, B - A", b.mean() - a.mean(), means[:, 1] - means[:, 0], folds, level,
                                    **sides),
            "ratio": _interval(f"{name}, B / A", ratio, ratios, folds, level, **sides)}


def latencies(accuracy, reference, tolerance: float, kept: bool = True) -> np.ndarray:
    """Early-decision latencies of accuracy curves [m, T] (or [T]) against reference [m] (or a number): [m] ints.

    `kept`: the first step from which accuracy >= reference - tolerance holds until T (metrics.early_decision_latency);
    otherwise the first step at which it holds. Not reached: T + 1.
    """
    accuracy = np.atleast_2d(np.asarray(accuracy, dtype=np.float64))
    timesteps = accuracy.shape[1]
    ok = accuracy >= np.asarray(reference, dtype=np.float64).reshape(-1, 1) - tolerance - 1e-12  # as metrics
    if kept:
        failing = ~ok
        last_failing = np.where(failing.any(axis=1), timesteps - 1 - np.argmax(failing[:, ::-1], axis=1), -1)
        return last_failing + 2  # T + 1 when step T fails
    return np.where(ok.any(axis=1), np.argmax(ok, axis=1) + 1, timesteps + 1)


def latency_comparison(correct_a, correct_b, folds, reference, tolerance: float = 0.0, *, kept: bool = True,
                       cost_a=None, cost_b=None, costs: Optional[dict] = None, n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0, level: float = DEFAULT_LEVEL, name: str = "latency") -> dict[str, PairedInterval]:
    """Early-decision latencies of A and B, recomputed on every resample: {"difference": B - A, "ratio": B / A}.

    correct_a, correct_b: per-image correctness after every step, [n, T] (`correct(result)`). reference: the ANN's
    per-image correctness [n] (its accuracy is recomputed on each resample: `ann_correct(result)`) or one accuracy.
    Not reached by T counts as T + 1 (`extra["reached_a"]`, `["reached_b"]`: the fraction of resamples in which it
    was reached; `a`, `b`: the latencies as measured, None if not reached).

    cost_a, cost_b (optional): what was spent up to each step, cumulative, per image [n, T] (resampled) or as
    the mean per image [T] (fixed): adds "cost_difference" and "cost_ratio", the cost at each resample's latency
    (at T where not reached: a lower bound). costs (optional): more of them, {key: (cost_a, cost_b)}, each adding
    "<key>_difference" and "<key>_ratio" from the same resamples and latencies.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape or correct_a.ndim != 2 or correct_a.shape[0] != len(folds):
        raise ValueError(f"correct_a and correct_b must be [n, T] for n = {len(folds)} images: "
                         f"{correct_a.shape}, {correct_b.shape}")
    timesteps = correct_a.shape[1]
    counts = resample_counts(folds, n_resamples, seed)
    ones = np.ones((1, len(folds)), dtype=np.float32)
    costs = dict(costs or {})
    if cost_a is not None and cost_b is not None:
        costs = {"cost": (cost_a, cost_b), **costs}

    def measure(weights):
        ref = _means(weights, np.asarray(reference, dtype=bool)) if np.ndim(reference) else float(reference)
        lat_a = latencies(_means(weights, correct_a), ref, tolerance, kept)
        lat_b = latencies(_means(weights, correct_b), ref, tolerance, kept)
        spent = {key: (_spent(weights, ca, lat_a), _spent(weights, cb, lat_b)) for key, (ca, cb) in costs.items()}
        return lat_a, lat_b, spent

    (a0,), (b0,), spent0 = measure(ones)
    lat_a, lat_b, spent = measure(counts)
    reached = {"reached_a": float(np.mean(lat_a <= timesteps)), "reached_b": float(np.mean(lat_b <= timesteps)),
               "not_reached_as": timesteps + 1, "tolerance": tolerance, "kept": kept}
    notes = tuple(f"{side}'s latency not reached by T = {timesteps} {'as measured and ' * bool(measured > timesteps)}"
                  f"in {missed:,} of {n_resamples:,} resamples (counted as {timesteps + 1})"
                  for side, measured, missed in (("A", a0, int(np.sum(lat_a > timesteps))),
                                                 ("B", b0, int(np.sum(lat_b > timesteps))))
                  if missed or measured > timesteps)
    sides = dict(a=None if a0 > timesteps else int(a0), b=None if b0 > timesteps else int(b0), extra=reached, notes=notes)
    reading = "kept" if kept else "first reached"
    out = {"difference": _interval(f"{name} ({reading}, tolerance {tolerance:g}), B - A", b0 - a0, lat_b - lat_a,
                                   folds, level, **sides),
           "ratio": _interval(f"{name} ({reading}, tolerance {tolerance:g}), B / A", b0 / a0, lat_b / lat_a,
                              folds, level, **sides)}
    for key, (sa, sb) in spent.items():
        (a_cost,), (b_cost,) = spent0[key]
        sides = dict(a=float(a_cost), b=float(b_cost), extra=reached, notes=notes)
        label = f"cost to the {name}" if key == "cost" else f"{key} to the {name}"
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{key}_difference"] = _interval(f"{label}, B - A", b_cost - a_cost, sb - sa, folds, level, **sides)
            out[f"{key}_ratio"] = _interval(f"{label}, B / A", b_cost / a_cost, sb / sa, folds, level, **sides)
    return out


def _spent(weights, cost, latency) -> np.ndarray:
    """Cost per image up to each resample's latency (T where not reached): cost [n, T] resampled or [T] fixed."""
    cost = np.asarray(cost, dtype=np.float64)
    curves = _means(weights, cost) if cost.ndim == 2 else np.broadcast_to(cost, (len(latency), cost.size))
    steps = np.minimum(latency, curves.shape[1]) - 1
    return curves[np.arange(len(latency)), steps]


# ----------------------------------------------------------------------------- per-image arrays of a result


def correct(result, t: Optional[int] = None) -> np.ndarray:
    """Per image, whether the prediction is right: after every step [n, T], or after step t [n]."""
    right = result.pred == np.asarray(result.labels)[:, None]
    return right if t is None else right[:, t - 1]


def ann_correct(result) -> np.ndarray:
    """Per image, whether the ANN (its `/ann/outputs` on these images) is right: [n]."""
    if result.ann_outputs is None or result.labels is None:
        raise ValueError("the ANN's outputs and the labels are needed")
    return result.ann_outputs.argmax(axis=1) == result.labels


def events_per_sample(result) -> np.ndarray:
    """Events of the spiking populations per image over the run [n] (`totals()["events"]`: no input, no relayed events)."""
    spiking = emitting(result.population_kinds)
    return result.pop_counts_per_sample[:, spiking, EVENTS].sum(axis=1)


def synaptic_ops_per_sample(result) -> np.ndarray:
    """Synaptic operations (ac_ops + scaled_ops) per image over the run [n] (`totals()["synaptic_ops"]`)."""
    return result.proj_counts_per_sample[:, :, [AC_OPS, SCALED_OPS]].sum(axis=(1, 2))


# ----------------------------------------------------------------------------- verdicts


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


@dataclass(frozen=True)
class Claim:
    """The paper's effect: `statistic op bound` (see the module docstring); `null` is no effect (default: the bound)."""

    op: str
    bound: float
    null: Optional[float] = None
    text: str = ""

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {', '.join(_OPS)}, got {self.op!r}")

    @property
    def no_effect(self) -> float:
        return self.bound if self.null is None else self.null

    def holds(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.bound))

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of VERDICTS
    reason: str

    def __str__(self) -> str:
        return f"{self.verdict}: {self.reason}"


def verdict(interval: Optional[PairedInterval], claim: Claim, not_testable: Optional[str] = None) -> Verdict:
    """held / did not hold / not resolvable at this size (from the interval and the claim), or not testable here.

    The interval's ends decide: held if both satisfy the claim, did not hold if neither does (the region is a
    half-line, so then no value between them does either), not resolvable otherwise.
    """
    if not_testable is not None:
        return Verdict(NOT_TESTABLE, not_testable)
    if interval is None:
        raise ValueError("an interval is needed unless the claim is not testable here")
    low, high, null = interval.low, interval.high, claim.no_effect
    shown = f"{interval.level:.0%} interval [{low:.4g}, {high:.4g}]"
    if np.isnan(low) or np.isnan(high):
        return Verdict(NOT_RESOLVABLE, "; ".join((f"{shown} is undefined (a ratio to 0?)",) + interval.notes))
    covers_null = low <= null <= high
    low_ok, high_ok = claim.holds(low), claim.holds(high)
    if low_ok and high_ok:
        result, why = HELD, f"{shown} lies in the paper's effect ({claim})"
    elif not low_ok and not high_ok:
        if covers_null:
            side = f"consistent with no effect ({null:g})"
        elif low > null if claim.op.startswith("<") else high < null:
            side = f"on the other side of no effect ({null:g})"
        else:
            side = f"an effect in the paper's direction, short of the claimed size {claim.bound:g}"
        result, why = DID_NOT_HOLD, f"{shown} excludes the paper's effect ({claim}): {side}"
    elif covers_null:
        result, why = NOT_RESOLVABLE, f"{shown} covers both the paper's effect ({claim}) and no effect ({null:g})"
    else:
        result, why = NOT_RESOLVABLE, (f"{shown} excludes no effect ({null:g}) but straddles the claimed size "
                                       f"({claim})")
    return Verdict(result, "; ".join((why,) + interval.notes))


# ----------------------------------------------------------------------------- which semantics a table used


def semantics(network) -> dict:
    """The version-2 rules a network was built with: format version, rank, drive, bias onset, pool handling, readout.

    format_version: the version `write_network` gives it (the lowest that holds it); rank: of the max pools and of a
    spiking readout; drive: of the bif populations; bias_onset: the exporter's option and the populations' range;
    pool: the exporter's average-pool handling (`/meta` conversion "pool"); readout: the output population's mode.
    "-" where a rule does not apply (no max pool, no bif population, ...).
    """
    from evsim.weights_io.hdf5 import _version  # the version write_network writes

    pops, projs, meta = network.populations, network.projections, network.meta or {}
    out = network.output_population
    max_pools = sorted({q.rank for q in projs if q.kind == "maxpool2d"})
    spiking_readout = out.mode == "spikes"
    rank = ", ".join([f"max pools {'/'.join(max_pools)}"] * bool(max_pools) + [f"readout {out.rank}"] * spiking_readout)
    drives = sorted({p.drive for p in pops if p.kind == "bif"})
    onsets = [p.bias_onset for p in pops if p.kind in ("if", "bif", "readout")]
    span = "-" if not onsets else (f"{min(onsets)}" if min(onsets) == max(onsets) else f"{min(onsets)}-{max(onsets)}")
    option = meta.get("bias_onset")
    bias_onset = span if option is None or str(option) == span else f"{option} (steps {span})"
    pool = meta.get("pool") or ("population" if any(q.kind == "avgpool2d" for q in projs) else "-")
    return {"format_version": _version(network), "rank": rank or "-", "drive": "/".join(drives) or "-",
            "bias_onset": bias_onset, "pool": pool,
            "readout": f"{out.mode} ({out.rank}-ranked)" if spiking_readout else out.mode}


def format_semantics(network) -> str:
    """One line for a table's caption, e.g. "format v2; rank: max pools value; drive: gated; bias onset: auto (steps
    0-24); pools: fold; readout: potential"."""
    s = semantics(network)
    return (f"format v{s['format_version']}; rank: {s['rank']}; drive: {s['drive']}; bias onset: {s['bias_onset']}; "
            f"pools: {s['pool']}; readout: {s['readout']}")
