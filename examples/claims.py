"""The seeds' claims checked over cross-validation folds: cached paired runs, verdict rows, the verdict page.

Shared by the reproduction scripts' `--claims` mode (issue 13). The method (folds, pairing, intervals,
verdicts) is `evsim.analysis.stats`' and docs/results/README.md's "Method"; this module runs it:

- `run_experiment`: per fold of `mnist_nets.cross_validation`, every conversion of the fold's ANN is exported
  (calibrated on the fold's training images) and simulated on the fold's test images; the per-image arrays
  the claims need (`Measured`) are concatenated over the folds in fold order, so that two conversions of one
  experiment are paired by image. Every simulation's arrays are cached on disk (`<cache>/simulations/`,
  git-ignored), keyed by the network's digest, the images, T and what was recorded: a re-run costs nothing.
- `Row` / `judge`: one claim, its interval and its verdict, as one row of the verdict page.
- `write_claims` writes a paper's `claims.json` / `claims.md`; `write_verdict_page` rebuilds the table of
  docs/results/README.md from every paper's `claims.json` (between its two markers): the page's numbers are
  the scripts' outputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import mnist_nets as nets
from evsim import Simulator
from evsim.analysis import stats
from evsim.counters import AC_OPS, SCALED_OPS, SIN_EVENTS
from evsim.kinds import emitting
from evsim.weights_io.export import convert_model

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
PAGE = RESULTS / "README.md"
BEGIN, END = "<!-- verdicts: begin (written by the reproduction scripts) -->", "<!-- verdicts: end -->"


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much a claims run simulates: which folds, how many test images per fold, how the ANNs are trained."""

    folds: tuple = tuple(range(nets.N_FOLDS))
    n_test: Optional[int] = None        # per fold (None: its 1,000)
    n_calibration: Optional[int] = None  # training images the normalisations are measured on (None: all 4,000)
    training: nets.Training = nets.Training()
    threads: int = 2

    def describe(self) -> str:
        images = "all 1,000" if self.n_test is None else f"the first {self.n_test}"
        return (f"folds {', '.join(map(str, self.folds))} of {nets.N_FOLDS} ({images} test images of each); "
                f"ANNs trained {self.training.epochs} epochs on {self.training.n_train} images")


QUICK = Scale(folds=(0,), n_test=24, n_calibration=256, training=nets.Training(epochs=1, n_train=500), threads=1)


@dataclasses.dataclass(frozen=True)
class Conversion:
    """One conversion of an experiment's ANN: exporter method and options, and an optional change to the
    converted network (random initial potentials, a threshold removed, ...)."""

    method: str
    options: dict = dataclasses.field(default_factory=dict)
    transform: Optional[Callable] = None  # (network, fold index) -> network
    sin: bool = False                     # count spikes of inactivated neurons (the ANN's signs at run time)
    fill: Optional[Callable] = None       # network -> the pipeline fill t0 (steps), for the windowed readout


@dataclasses.dataclass
class Measured:
    """One conversion over the folds, per image in fold order (every array's first axis the images)."""

    name: str
    semantics: str
    folds: np.ndarray        # [n] fold of each image
    correct: np.ndarray      # [n, T] prediction right after every step
    ann_correct: np.ndarray  # [n] the ANN right
    agree: np.ndarray        # [n, T] prediction equals the ANN's
    events: np.ndarray       # [n] events over T (spiking populations)
    synaptic_ops: np.ndarray  # [n]
    sin_events: np.ndarray   # [n] spikes of inactivated neurons over T (0 unless counted)
    events_steps: np.ndarray  # [T] cumulative events per image (mean over the images)
    ops_steps: np.ndarray     # [T] cumulative synaptic operations per image (mean over the images)
    sin_steps: np.ndarray    # [T, P] spikes of inactivated neurons per population and step (mean per image)
    populations: list        # the P population names
    abs_difference: np.ndarray  # [n, T] mean |estimate - ANN output| after every step
    difference_from_1: Optional[np.ndarray]    # [n] the same at T, estimated from t = 1 (when a fill is given)
    windowed_difference: Optional[np.ndarray]  # [n] the same at T, estimated from the pipeline fill t0 on
    fill: Optional[int]
    seconds: float           # the simulations' wall time, when first run (before they were cached)
    trained: dict = dataclasses.field(default_factory=dict)  # ANN cache key -> its training wall time (s)

    @property
    def timesteps(self) -> int:
        return self.correct.shape[1]


def _digest(*parts) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.tobytes() if isinstance(part, np.ndarray) else str(part).encode())
    return hasher.hexdigest()[:20]


def cached(cache: Path, parts: tuple, compute: Callable[[], dict]) -> dict:
    """Arrays keyed by everything that determines them (`parts`), from `<cache>/simulations/` or computed and stored."""
    path = Path(cache) / "simulations" / f"{_digest(*parts)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npz")  # atomic: runs of several folds may share a cache
    np.savez_compressed(partial, **arrays)
    os.replace(partial, path)
    return arrays


def _samples_key(network) -> tuple:
    samples = network.samples
    return network.digest(), np.ascontiguousarray(samples.inputs, dtype=np.float32), np.asarray(samples.labels)


def simulate_cached(network, model, conversion: Conversion, timesteps: int, cache: Path, threads: int) -> dict:
    """The per-image arrays of one simulation of the network's own samples, from the cache or simulated now."""
    fill = conversion.fill(network) if conversion.fill else None
    return cached(cache, ("v3", *_samples_key(network), timesteps, conversion.sin, fill),
                  lambda: _simulate(network, model, conversion, timesteps, threads, fill))


def negative_spikes(network, timesteps: int, n: int, cache: Path, threads: int) -> dict:
    """Per hidden population, the events and the negative events per image on the network's first n samples
    (spike trains recorded: kept small), cached."""
    def compute():
        samples = network.samples
        result = Simulator(network, threads=threads).run(samples.inputs[:n], samples.labels[:n], timesteps=timesteps,
                                                         record_spikes=True)
        names, events, negative = [], [], []
        for (population, _tag), (coef, _value) in result.spikes.items():
            if population in (network.input.name, network.output):
                continue
            names.append(population)
            events.append(np.count_nonzero(coef) / n)
            negative.append(np.count_nonzero(np.asarray(coef) < 0) / n)
        return {"populations": np.array(names), "events": np.array(events), "negative": np.array(negative)}

    return cached(cache, ("negative", *_samples_key(network), timesteps, n), compute)


def _simulate(network, model, conversion: Conversion, timesteps: int, threads: int, fill: Optional[int]) -> dict:
    signs = None
    if conversion.sin:
        from evsim.weights_io import ann_signs
        signs = ann_signs(model, network)
    started = time.perf_counter()
    result = Simulator(network, threads=threads).run(timesteps=timesteps, ann_signs=signs,
                                                     record_trace=fill is not None)
    spiking = emitting(result.population_kinds)
    n = result.n_samples
    arrays = {
        "correct": stats.correct(result), "ann_correct": stats.ann_correct(result),
        "agree": result.pred == result.ann_outputs.argmax(axis=1)[:, None],
        "events": stats.events_per_sample(result), "synaptic_ops": stats.synaptic_ops_per_sample(result),
        "sin_events": result.pop_counts_per_sample[:, spiking, SIN_EVENTS].sum(axis=1),
        "events_steps": np.cumsum(result.pop_counts_per_step[:, spiking, 0].sum(axis=1)) / n,
        "ops_steps": np.cumsum(result.proj_counts_per_step[:, :, [AC_OPS, SCALED_OPS]].sum(axis=(1, 2))) / n,
        "sin_steps": result.pop_counts_per_step[:, :, SIN_EVENTS] / n,
        "populations": np.array(result.populations),
        "abs_difference": result.abs_difference.astype(np.float32),
        "seconds": np.array(time.perf_counter() - started),
    }
    if fill is not None:
        arrays["difference_from_1"] = windowed_difference(result, network, 0)
        arrays["windowed_difference"] = windowed_difference(result, network, fill)
        arrays["fill"] = np.array(fill)
    return arrays


def windowed_difference(result, network, t0: int) -> np.ndarray:
    """Per image, mean |estimate - ANN output| at T of a readout that starts counting after step t0:
    (v(T) - v(t0)) / (W(T) - W(t0)) x output scale, W the step weights from t = 1. t0 = 0: the estimate
    measured from t = 1 (the run's own estimate counts W from the readout's bias onset, docs/metrics.md)."""
    from evsim.analysis.metrics import step_weights

    out = network.output_population
    weights = step_weights(result.timesteps, out.coding, out.phase_period)
    trace = result.readout_trace
    t0 = min(t0, result.timesteps - 1)
    before = trace[:, t0 - 1, :] if t0 > 0 else 0.0
    scale = 1.0 if network.output_scale is None else np.asarray(network.output_scale, dtype=np.float64)
    estimate = (trace[:, -1, :] - before) / (weights[-1] - (weights[t0 - 1] if t0 > 0 else 0.0)) * scale
    return np.abs(estimate - result.ann_outputs).mean(axis=1)


def run_experiment(architecture: str, conversions: dict, timesteps: int, scale: Scale, *, cache: Path,
                   activation: str = "relu", negative_slope: float = 0.01, model_transform: Optional[Callable] = None,
                   on_network: Optional[Callable] = None, on_fold: Optional[Callable] = None, log=print) -> dict:
    """{conversion name: Measured} of every conversion of the architecture's fold ANNs, over the scale's folds.

    `model_transform(model)`: a change to every fold's trained ANN before conversion (biases removed, ...);
    `on_network(name, fold index, network)` and `on_fold(fold, model)`: called with every converted network and
    every fold, for measures beside the simulation's (negative spikes, the ANN changed, ...).
    """
    parts: dict = {name: [] for name in conversions}
    semantics: dict = {}
    for fold in nets.cross_validation(architecture, activation, negative_slope=negative_slope,
                                      training=scale.training, n_calibration=scale.n_calibration,
                                      n_test=scale.n_test, only=scale.folds, cache=cache, log=log):
        model = fold.model if model_transform is None else model_transform(fold.model)
        if on_fold is not None:
            on_fold(fold, model)
        for name, conversion in conversions.items():
            network = convert_model(model, calibration=fold.calibration, method=conversion.method,
                                    samples=fold.images, labels=fold.labels, **conversion.options)
            if conversion.transform is not None:
                network = conversion.transform(network, fold.index)
            semantics.setdefault(name, stats.format_semantics(network))
            if on_network is not None:
                on_network(name, fold.index, network)
            arrays = simulate_cached(network, model, conversion, timesteps, cache, scale.threads)
            arrays["fold"] = np.full(len(arrays["correct"]), fold.index)
            arrays["trained"] = (fold.info["key"], fold.info["train_seconds"])
            parts[name].append(arrays)
            log(f"{architecture} fold {fold.index} {name}: accuracy at T = {timesteps} "
                f"{arrays['correct'][:, -1].mean():.4f} (ANN {arrays['ann_correct'].mean():.4f}), "
                f"{float(arrays['seconds']):.0f} s simulated")
    return {name: _concatenate(name, semantics[name], runs) for name, runs in parts.items()}


def _concatenate(name: str, semantics: str, runs: list[dict]) -> Measured:
    def cat(key):
        return np.concatenate([run[key] for run in runs])

    sizes = np.array([len(run["correct"]) for run in runs], dtype=float)
    weights = sizes / sizes.sum()
    fill = runs[0].get("fill")
    return Measured(
        name=name, semantics=semantics, folds=cat("fold"), correct=cat("correct"), ann_correct=cat("ann_correct"),
        agree=cat("agree"), events=cat("events"), synaptic_ops=cat("synaptic_ops"), sin_events=cat("sin_events"),
        events_steps=sum(w * run["events_steps"] for w, run in zip(weights, runs)),
        ops_steps=sum(w * run["ops_steps"] for w, run in zip(weights, runs)),
        sin_steps=sum(w * run["sin_steps"] for w, run in zip(weights, runs)),
        populations=[str(p) for p in runs[0]["populations"]], abs_difference=cat("abs_difference"),
        difference_from_1=cat("difference_from_1") if fill is not None else None,
        windowed_difference=cat("windowed_difference") if fill is not None else None,
        fill=None if fill is None else int(fill),
        seconds=float(sum(float(run["seconds"]) for run in runs)), trained=dict(run["trained"] for run in runs))


# ----------------------------------------------------------------------------- claims and verdicts


@dataclasses.dataclass
class Row:
    """One claim of the verdict page."""

    paper: str
    claim: str
    paper_figure: str
    here: str
    verdict: str
    reason: str
    semantics: str
    command: str = ""
    seconds: Optional[float] = None
    interval: Optional[dict] = None


def judge(paper: str, claim: str, paper_figure: str, interval: Optional[stats.PairedInterval],
          region: Optional[stats.Claim], semantics: str, *, here: str = "", not_testable: Optional[str] = None,
          scale: float = 1.0, unit: str = "", digits: int = 2, signed: Optional[bool] = None) -> Row:
    """A row: the claim's interval (formatted unless `here` is given; signed unless a ratio) and its verdict."""
    judged = stats.verdict(interval, region, not_testable=not_testable) if not_testable or interval else None
    if judged is None:
        raise ValueError(f"claim {claim!r}: an interval is needed")
    if interval is not None and not here:
        signed = not interval.statistic.endswith("B / A") if signed is None else signed
        here = interval.format(scale=scale, digits=digits, unit=unit, signed=signed)
    return Row(paper, claim, paper_figure, here or "-", judged.verdict, judged.reason, semantics,
               interval=None if interval is None else interval.to_dict())


def accuracy_gap(a: Measured, b: Measured, t: Optional[int] = None, **kwargs) -> stats.PairedInterval:
    """Accuracy of b minus a after step t (default T), paired by image, with McNemar's p."""
    t = t or a.timesteps
    return stats.accuracy_difference(a.correct[:, t - 1], b.correct[:, t - 1], a.folds,
                                     name=f"accuracy at t={t}, {b.name} - {a.name}", **kwargs)


def ann_gap(m: Measured, t: Optional[int] = None) -> stats.PairedInterval:
    """The SNN's accuracy after step t (default T) minus its ANN's, paired by image."""
    t = t or m.timesteps
    return stats.accuracy_difference(m.ann_correct, m.correct[:, t - 1], m.folds, name=f"{m.name} at t={t} - ANN")


def latency(a: Measured, b: Measured, tolerance: float = 0.01, *, against_ann: bool = True, kept: bool = True) -> dict:
    """Latency comparison of b against a (kept within `tolerance` of the ANN's accuracy, or of agreement 1 when
    `against_ann` is False: the SNN agreeing with the ANN's own predictions), with what was spent to it: events
    ("cost_difference", "cost_ratio") and synaptic operations ("ops_difference", "ops_ratio"), both at each
    resample's latency (the same resamples: one seed)."""
    curves = (a.correct, b.correct, a.folds, a.ann_correct) if against_ann else (a.agree, b.agree, a.folds, 1.0)
    name = "latency" if against_ann else "agreement latency"
    return stats.latency_comparison(*curves, tolerance, kept=kept, cost_a=a.events_steps, cost_b=b.events_steps,
                                    costs={"ops": (a.ops_steps, b.ops_steps)}, name=name)


def per_image(a: Measured, b: Measured, values_a, values_b, name: str) -> dict:
    return stats.mean_comparison(values_a, values_b, a.folds, name=name)


# ----------------------------------------------------------------------------- pages


def first_run(*experiments: dict) -> dict:
    """What experiments {name: Measured} cost when first run, before anything was cached: the ANNs' training
    (each counted once, however many experiments share it) and the simulations, in seconds of wall time."""
    trained = {key: seconds for experiment in experiments for m in experiment.values() for key, seconds in m.trained.items()}
    return {"training": sum(trained.values()),
            "simulations": sum(m.seconds for experiment in experiments for m in experiment.values())}


def write_claims(out: Path, paper: str, rows: list[Row], tables: str, *, scale: Scale, command: str,
                 seconds: float, quick: bool, first: Optional[dict] = None) -> None:
    """claims.json (the rows and what was run) and claims.md (the verdicts and the tables) in `out`.

    `seconds`: this run's wall time (from the cache, quick); `first`: `first_run`'s training and simulation
    times, what the command costs from scratch (conversions and bootstraps left out)."""
    out.mkdir(parents=True, exist_ok=True)
    first = first or {"training": 0.0, "simulations": 0.0}
    for row in rows:
        row.command, row.seconds = command, round(seconds)
    record = {"paper": paper, "scale": scale.describe(), "quick": quick, "seconds": round(seconds),
              "training_seconds": round(first["training"]), "simulated_seconds": round(first["simulations"]),
              "threads": scale.threads, "command": command, "rows": [dataclasses.asdict(row) for row in rows]}
    (out / "claims.json").write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    lines = [f"# {paper}: the claims, cross-validated", "",
             f"Written by `{command}` on a 2-core machine: {_minutes(record)}. Ran: {scale.describe()}"
             + (" (**quick mode**: not a result)" if quick else "") + ". Method: [../README.md](../README.md#method).", "",
             verdict_table(rows, with_paper=False), "", tables]
    (out / "claims.md").write_text("\n".join(lines).rstrip() + "\n")


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def verdict_table(rows: list[Row], with_paper: bool = True) -> str:
    head = ["paper"] * with_paper + ["claim", "paper's figure", "here (95% CI)", "verdict", "why", "semantics"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.paper] * with_paper + [row.claim, row.paper_figure, row.here, f"**{row.verdict}**", row.reason,
                                            row.semantics]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def write_verdict_page(results: Path = RESULTS) -> Path:
    """docs/results/README.md: the verdict table rebuilt from every `<paper>/claims.json` (quick runs left out)."""
    page = results / "README.md"
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page}: the markers {BEGIN!r} and {END!r} are missing")
    lines = ["| paper | claim | paper's figure | here (95% CI) | verdict | semantics | what ran | command | time (2 cores) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(results.glob("*/claims.json")):
        record = json.loads(path.read_text())
        if record.get("quick"):
            continue
        link = f"[{record['paper']}]({path.parent.name}/claims.md)"
        for row in record["rows"]:
            lines.append("| " + " | ".join(_cell(c) for c in (
                link, row["claim"], row["paper_figure"], row["here"], f"**{row['verdict']}**: {row['reason']}",
                row["semantics"], record["scale"], f"`{record['command']}`", _minutes(record))) + " |")
    head, rest = text.split(BEGIN, 1)
    page.write_text(head + BEGIN + "\n\n" + "\n".join(lines) + "\n\n" + END + rest.split(END, 1)[1])
    return page


def _minutes(record: dict) -> str:
    """The time column: from scratch (the ANNs' training and the simulations, when first run, on `threads`
    simulation threads), then the run that wrote the row (everything read from the cache)."""
    training, simulated = record.get("training_seconds", 0), record.get("simulated_seconds", 0)
    threads = record.get("threads", 2)
    return (f"{(training + simulated) / 60:.0f} min from scratch (training {training / 60:.0f}, simulations "
            f"{simulated / 60:.0f} on {threads} thread{'s' * (threads != 1)}); {record['seconds'] / 60:.0f} min "
            "from the cache")


def scale_from_arguments(args, full: Scale = Scale()) -> Scale:
    """--quick, --folds 0,1 and --images N (per fold) of a reproduction script's --claims run."""
    scale = QUICK if args.quick else full
    if getattr(args, "folds", None):
        scale = dataclasses.replace(scale, folds=tuple(int(k) for k in args.folds.split(",")))
    if getattr(args, "images", None):
        scale = dataclasses.replace(scale, n_test=args.images)
    if getattr(args, "threads", None):
        scale = dataclasses.replace(scale, threads=args.threads)
    return scale


def add_arguments(parser) -> None:
    parser.add_argument("--claims", action="store_true",
                        help="check the paper's claims over cross-validation folds (writes claims.md / claims.json "
                             "and the table of docs/results/README.md)")
    parser.add_argument("--folds", help="with --claims: the folds to run, e.g. 0,1 (default all 5)")
    parser.add_argument("--images", type=int, help="with --claims: test images per fold (default all 1,000)")


def fmt_steps(interval: stats.PairedInterval) -> str:
    a = "not reached" if interval.a is None else str(interval.a)
    b = "not reached" if interval.b is None else str(interval.b)
    return f"{b} vs {a} steps: {interval.format(digits=2, signed=False)}"
