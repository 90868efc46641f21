"""Figures of one run or of several runs, written as PNG files (docs/plots.md).

matplotlib is an optional extra (`pip install 'evsim[analysis]'`), imported
only here and only when a figure is drawn. Every figure is its own
`matplotlib.figure.Figure` (no pyplot): no global state, nothing to close,
safe in threads and on machines without a display.

The data series are plain NumPy functions of a `SimulationResult`
(`firing_rates`, `events_per_step`, ...), so they can be tested apart from
the drawing. A figure whose data a result lacks (labels, the ANN's outputs,
population sizes) is skipped, not drawn empty.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import numpy as np

from evsim.counters import AC_OPS, EVENTS, INPUT_MACS, POOL_OPS, SCALED_OPS, SIN_EVENTS
from evsim.errors import EvsimError
from evsim.kinds import POPULATION_KINDS, emitting

FIGSIZE = (6.4, 4.2)
TALL_FIGSIZE = (6.4, 5.6)   # two stacked panels
DPI = 120
ANN_STYLE = dict(color="black", linestyle="--", linewidth=1)
MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'evsim[analysis]'"

#: What a projection's operations are, by counter: drawn as one line per projection, named by its kind.
OPERATION_KINDS = {"synaptic ops": (AC_OPS, SCALED_OPS), "pool ops": (POOL_OPS,), "input MACs": (INPUT_MACS,)}
#: Line styles of those kinds in the activity figure.
OPERATION_STYLES = {"synaptic ops": "-", "pool ops": "--", "input MACs": ":"}


def require_matplotlib():
    """The `Figure` class, or an `EvsimError` saying how to install matplotlib (checked before long runs)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EvsimError(MISSING_MATPLOTLIB) from None
    return Figure


# -- data series ------------------------------------------------------------------


def steps(result) -> np.ndarray:
    return np.arange(1, result.timesteps + 1)


def reference_accuracy(result) -> Optional[float]:
    """The ANN's accuracy on these samples, else the file's /ann/accuracy, else None (as `latency` uses)."""
    return result.reference_accuracy()


def _spiking(result) -> np.ndarray:
    """Populations whose events `totals()["events"]` counts: not the input, not relays (the same spikes again)."""
    return np.array(emitting(result.population_kinds))


def cumulative_events(result) -> np.ndarray:
    """Events of the spiking populations per sample (mean) over steps 1..t, shape [T]."""
    per_step = result.pop_counts_per_step[:, _spiking(result), EVENTS].sum(axis=1)
    return per_step.cumsum() / result.n_samples


def cumulative_synaptic_ops(result) -> np.ndarray:
    """Synaptic ops (AC + scaled) per sample (mean) over steps 1..t, shape [T]."""
    per_step = result.proj_counts_per_step[:, :, [AC_OPS, SCALED_OPS]].sum(axis=(1, 2))
    return per_step.cumsum() / result.n_samples


def events_per_step(result) -> dict[str, np.ndarray]:
    """Per population that emitted any event: its events at each step per sample (mean), shape [T]."""
    events = result.pop_counts_per_step[:, :, EVENTS] / result.n_samples
    return {name: events[:, p] for p, name in enumerate(result.populations) if events[:, p].any()}


def operations_per_step(result) -> dict[tuple[str, str], np.ndarray]:
    """Per (projection, kind of operation) that occurred: operations at each step per sample (mean).

    Kinds are `OPERATION_KINDS`; they cost differently (docs/accounting.md),
    so they are never summed into one series.
    """
    series = {}
    for q, name in enumerate(result.projections):
        for kind, counters in OPERATION_KINDS.items():
            ops = result.proj_counts_per_step[:, q, list(counters)].sum(axis=1) / result.n_samples
            if ops.any():
                series[(name, kind)] = ops
    return series


def firing_rates(result) -> dict[str, float]:
    """Per firing population: events per neuron per step, averaged over samples and steps.

    if and bif populations always; the input and the readout only if they
    emitted events (an analog input and a potential readout never do);
    relays never (their events are their source's, forwarded). A bif
    neuron's A and B events both count, so its rate can exceed 1.
    """
    if not result.population_sizes:
        raise EvsimError("the result does not record population sizes (written by an older evsim): "
                         "firing rates are unknown")
    events = result.pop_counts_per_step[:, :, EVENTS].sum(axis=0)
    rates = {}
    for p, (name, kind, size) in enumerate(zip(result.populations, result.population_kinds, result.population_sizes)):
        spec = POPULATION_KINDS[kind]
        if spec.emits != "relayed" and (spec.always_fires or events[p] > 0):
            rates[name] = float(events[p]) / (size * result.timesteps * result.n_samples)
    return rates


def sin_per_step(result) -> dict[str, np.ndarray]:
    """Per population the SIN counts cover: its spikes of inactivated neurons at each step per sample (mean)."""
    sin = result.pop_counts_per_step[:, :, SIN_EVENTS] / result.n_samples
    return {name: sin[:, result.populations.index(name)] for name in result.sin_populations}


def sin_share(result) -> dict[str, float]:
    """Per population the SIN counts cover: the fraction of its events that are spikes of inactivated neurons."""
    totals = result.pop_counts_per_step.sum(axis=0)
    shares = {}
    for name in result.sin_populations:
        events, sin = totals[result.populations.index(name), [EVENTS, SIN_EVENTS]]
        shares[name] = float(sin / events) if events else 0.0
    return shares


def latency_within(result, points: float = 1.0) -> Optional[int]:
    """The first step from which accuracy stays within `points` of the ANN's (None if it never does)."""
    rows = result.latency(tolerances=(points / 100,))
    return rows[0]["t"] if rows else None


# -- drawing helpers ----------------------------------------------------------------


def _figure(title: str, rows: int = 1, subtitle: Optional[str] = None, sharex: bool = True):
    """A new figure with `rows` stacked axes sharing x (a list), and its title."""
    Figure = require_matplotlib()
    fig = Figure(figsize=FIGSIZE if rows == 1 else TALL_FIGSIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    fig.suptitle(title if not subtitle else f"{title}\n{subtitle}", fontsize="medium")
    return fig, list(axes)


@contextlib.contextmanager
def _output_folder(out_dir):
    """The folder, created; a file system error (no permission, a file in the way) becomes one clean EvsimError."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        yield out_dir
    except OSError as err:
        raise EvsimError(f"{out_dir}: cannot write the figures ({err})") from None


def save_png(fig, path) -> Path:
    """Write `fig` as a 256-colour PNG: it looks the same and is about 3 times smaller (the docs embed these)."""
    from io import BytesIO

    from PIL import Image  # a dependency of matplotlib

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    fig.clear()  # frees the artists now; the figure itself is unreferenced once we return
    path = Path(path)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def _save(fig, out_dir: Path, name: str) -> Path:
    return save_png(fig, out_dir / name)


def _line(ax, x, y, **style):
    """A line; with dots when short, so that a run of a few steps still shows its points."""
    if len(x) <= 32:
        style.setdefault("marker", ".")
    return ax.plot(x, y, **style)


def _step_axis(ax, last_step: int) -> None:
    """x = step t on a log2 scale (1, 2, 4, ...): early steps matter as much as late ones."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xlim(2**-0.1, max(last_step, 2) * 2**0.1)  # a margin, so the dots at t = 1 and t = T are not cut
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("step t")


def _log_axis(ax, axis: str = "y", plain_labels: bool = False) -> None:
    """A log scale on which zeros (steps before a layer's first event) are left out, not drawn at the bottom.

    plain_labels: 0.2, 30, 1,000 rather than 2x10^-1, 3x10^1, 10^3 (on an axis spanning a decade or two,
    matplotlib labels minor ticks too, and a column of 4x10^0, 3x10^0, 2x10^0 is hard to read).
    """
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log", nonpositive="mask")
    if plain_labels:
        from matplotlib.ticker import LogFormatter

        class PlainLogFormatter(LogFormatter):
            def __call__(self, x, pos=None):
                if not super().__call__(x, pos):  # keep the default's choice of which ticks to label
                    return ""
                return f"{x:,.0f}" if x >= 1 else f"{x:g}"

        target = ax.yaxis if axis == "y" else ax.xaxis
        target.set_major_formatter(PlainLogFormatter())
        target.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _accuracy_axis(ax) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(-2, 102)  # a margin, so that lines at 0% or 100% stay visible beside the frame
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)


def _ann_line(ax, results) -> None:
    """The ANN's accuracy as a dashed line: one line when the runs agree on it, else one per value.

    The label says which accuracy it is: on these very samples, or the file's /ann/accuracy (another set).
    """
    references = {(reference_accuracy(r), r.ann_accuracy_on_samples() is not None) for r in results}
    for value, on_samples in sorted(references - {(None, False)}):
        where = "on these samples" if on_samples else "on its evaluation set"
        ax.axhline(100 * value, **ANN_STYLE, label=f"ANN {where} ({100 * value:.1f}%)")


def _run_description(result, title: Optional[str]) -> str:
    about = f"{result.n_samples} samples, T = {result.timesteps}, {result.encoder} input"
    return f"{title}: {about}" if title else about


def _positive(x, y):
    """Points with x > 0 only: a log-x axis cannot show the steps before the first event."""
    keep = x > 0
    return x[keep], y[keep]


# -- figures of one run -------------------------------------------------------------


def plot_result(result, out_dir, title: Optional[str] = None) -> list[Path]:
    """Write the figures of one run into `out_dir` (created); return their paths.

    accuracy.png and accuracy_vs_events.png need labels, agreement.png the
    ANN's outputs, firing_rate.png population sizes: each is skipped without.
    """
    require_matplotlib()
    subtitle = _run_description(result, title)
    figures = []
    with _output_folder(out_dir) as out_dir:
        if result.labels is not None:
            figures += [_accuracy_figure(result, subtitle, out_dir),
                        _accuracy_vs_events_figure(result, subtitle, out_dir)]
        figures.append(_activity_figure(result, subtitle, out_dir))
        if result.population_sizes:
            figures.append(_firing_rate_figure(result, subtitle, out_dir))
        if result.cosine is not None:
            figures.append(_agreement_figure(result, subtitle, out_dir))
        if result.sin_populations:
            figures.append(_sin_figure([(result, None)], out_dir, subtitle))
    return figures


def _sin_figure(runs, out_dir, subtitle=None) -> Path:
    """Spikes of inactivated neurons per step (top) and their share of each population's events (bottom)."""
    fig, (top, bottom) = _figure("Spikes of inactivated neurons (BSNN III-C), per sample (mean)", rows=2,
                                 subtitle=subtitle, sharex=False)
    names = list(dict.fromkeys(name for result, _ in runs for name in result.sin_populations))
    width = 0.8 / len(runs)
    dashes = ("-", "--", ":", "-.")  # a run keeps its colour in both panels; a population is a line style
    for i, (result, run) in enumerate(runs):
        colour = f"C{i}"
        for name, values in sin_per_step(result).items():
            label = name if run is None else f"{run}: {name}"
            _line(top, steps(result), values, label=label, linewidth=0.8, color=colour,
                  linestyle=dashes[names.index(name) % len(dashes)])
        shares = sin_share(result)
        bottom.bar(np.arange(len(names)) + i * width, [shares.get(name, np.nan) for name in names], width,
                   label=run or "share of events", color=colour)
    _log_axis(top, plain_labels=True)
    top.set_ylabel("SIN events per step")
    top.grid(True, alpha=0.3)
    if top.lines:
        top.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1, 0.5))
    _step_axis(top, max(result.timesteps for result, _ in runs))
    bottom.set_xticks(np.arange(len(names)) + width * (len(runs) - 1) / 2, names, fontsize="small")
    bottom.set_ylabel("share of the population's events")
    bottom.grid(True, axis="y", alpha=0.3)
    if len(runs) > 1:
        bottom.legend(fontsize="x-small")
    return _save(fig, out_dir, "sin.png")


def _accuracy_figure(result, subtitle, out_dir) -> Path:
    fig, (ax,) = _figure("Accuracy after each step", subtitle=subtitle)
    accuracy = 100 * result.accuracy()
    _line(ax, steps(result), accuracy, label=f"SNN ({accuracy[-1]:.1f}% at t = {result.timesteps})")
    _ann_line(ax, [result])
    t = latency_within(result, 1.0)
    if t is not None:
        ax.axvline(t, color="grey", linestyle=":", label=f"within 1 point of the ANN from t = {t}")
    _step_axis(ax, result.timesteps)
    _accuracy_axis(ax)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, out_dir, "accuracy.png")


def _accuracy_vs_events_figure(result, subtitle, out_dir) -> Path:
    fig, (ax,) = _figure("Accuracy against the events spent", subtitle=subtitle)
    _line(ax, *_positive(cumulative_events(result), 100 * result.accuracy()), label="SNN")
    _ann_line(ax, [result])
    _log_axis(ax, "x")
    ax.set_xlabel("events per sample (cumulative, spiking populations)")
    _accuracy_axis(ax)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, out_dir, "accuracy_vs_events.png")


def _activity_figure(result, subtitle, out_dir) -> Path:
    from matplotlib import colormaps

    fig, (top, bottom) = _figure("Activity at each step, per sample (mean)", rows=2, subtitle=subtitle)
    # Another palette below: a projection is not the population of the same colour above.
    bottom.set_prop_cycle(color=colormaps["Dark2"].colors)
    for name, values in events_per_step(result).items():
        _line(top, steps(result), values, label=name, linewidth=0.8)
    for (name, kind), values in operations_per_step(result).items():
        _line(bottom, steps(result), values, label=f"{name} ({kind})", linestyle=OPERATION_STYLES[kind], linewidth=0.8)
    for panel, what in ((top, "events"), (bottom, "operations")):
        _log_axis(panel, plain_labels=True)
        panel.set_ylabel(f"{what} per step")
        panel.grid(True, alpha=0.3)
        if panel.lines:
            panel.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1, 0.5))
        else:
            panel.text(0.5, 0.5, f"no {what}", transform=panel.transAxes, ha="center", va="center", color="grey")
    top.set_title("events, per population", fontsize="small")
    bottom.set_title("operations, per projection", fontsize="small")
    _step_axis(bottom, result.timesteps)
    return _save(fig, out_dir, "activity.png")


def _firing_rate_figure(result, subtitle, out_dir) -> Path:
    fig, (ax,) = _figure("Firing rate per population", subtitle=subtitle)
    rates = firing_rates(result)
    names = list(rates)[::-1]   # network order, top to bottom
    kinds = dict(zip(result.populations, result.population_kinds))
    colours = ["tab:grey" if POPULATION_KINDS[kinds[name]].emits == "encoded" else "tab:blue"
               for name in names]  # the encoder's events are not a layer's
    bars = ax.barh(names, [rates[name] for name in names], color=colours)
    ax.bar_label(bars, fmt="%.3g", padding=3, fontsize="small")
    ax.set_xlim(0, 1.15 * max(rates.values(), default=0) or 1)  # room for the value labels
    ax.set_xlabel("events per neuron per step (mean over samples and steps)")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, out_dir, "firing_rate.png")


def _agreement_figure(result, subtitle, out_dir) -> Path:
    fig, (top, bottom) = _figure("Agreement of the readout with the ANN's outputs", rows=2, subtitle=subtitle)
    _line(top, steps(result), result.cosine.mean(axis=0))
    top.set_title("cosine similarity of the estimate and the ANN's output (mean over samples)", fontsize="small")
    top.set_ylabel("cosine similarity")
    top.set_ylim(min(0.0, float(result.cosine.mean(axis=0).min())), 1.02)
    _line(bottom, steps(result), result.abs_difference.mean(axis=0), color="tab:orange")
    _log_axis(bottom, plain_labels=True)
    bottom.set_title("|estimate - ANN output|, mean over output neurons and samples", fontsize="small")
    bottom.set_ylabel("mean |difference|")
    for panel in (top, bottom):
        panel.grid(True, alpha=0.3)
    _step_axis(bottom, result.timesteps)
    return _save(fig, out_dir, "agreement.png")


# -- figures comparing runs -----------------------------------------------------------


def plot_comparison(results: list, names: list[str], out_dir) -> list[Path]:
    """Overlay several runs (one line each, named by `names`) in `out_dir`; return the paths written.

    The accuracy figures show only the runs with labels (skipped if none has
    any); agreement.png only the runs with the ANN's outputs.
    """
    if len(results) != len(names):
        raise EvsimError(f"{len(names)} names for {len(results)} results")
    require_matplotlib()
    labelled = [(r, n) for r, n in zip(results, names) if r.labels is not None]
    agreeing = [(r, n) for r, n in zip(results, names) if r.cosine is not None]
    figures = []
    with _output_folder(out_dir) as out_dir:
        if labelled:
            figures += [_compare_accuracy(labelled, out_dir),
                        _compare_accuracy_vs(labelled, out_dir, cumulative_events, "accuracy_vs_events.png",
                                             "events", "events per sample (cumulative, spiking populations)"),
                        _compare_accuracy_vs(labelled, out_dir, cumulative_synaptic_ops,
                                             "accuracy_vs_synaptic_ops.png", "synaptic ops",
                                             "synaptic ops per sample (cumulative, AC + scaled)", mark_ann_macs=True)]
        if agreeing:
            figures.append(_compare_agreement(agreeing, out_dir))
        measured = [(r, n) for r, n in zip(results, names) if r.sin_populations]
        if measured:
            figures.append(_sin_figure(measured, out_dir))
    return figures


def _compare_accuracy(runs, out_dir) -> Path:
    fig, (ax,) = _figure("Accuracy after each step")
    for result, name in runs:
        _line(ax, steps(result), 100 * result.accuracy(), label=name)
    _ann_line(ax, [r for r, _ in runs])
    _step_axis(ax, max(r.timesteps for r, _ in runs))
    _accuracy_axis(ax)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, out_dir, "accuracy.png")


def _compare_accuracy_vs(runs, out_dir, cost, filename, what, xlabel, mark_ann_macs=False) -> Path:
    fig, (ax,) = _figure(f"Accuracy against the {what} spent")
    for result, name in runs:
        _line(ax, *_positive(cost(result), 100 * result.accuracy()), label=name)
    _ann_line(ax, [r for r, _ in runs])
    macs = {r.ann_macs for r, _ in runs if r.ann_macs}
    if mark_ann_macs and len(macs) == 1:
        # The ANN's MACs per sample: where the SNN's ops stop being cheaper than one ANN pass.
        ax.axvline(macs.pop(), color="grey", linestyle=":", label="ANN MACs per sample")
    _log_axis(ax, "x")
    ax.set_xlabel(xlabel)
    _accuracy_axis(ax)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, out_dir, filename)


def _compare_agreement(runs, out_dir) -> Path:
    fig, (ax,) = _figure("Agreement of the readout with the ANN's outputs")
    for result, name in runs:
        _line(ax, steps(result), result.cosine.mean(axis=0), label=name)
    _step_axis(ax, max(r.timesteps for r, _ in runs))
    ax.set_ylabel("cosine similarity (mean over samples)")
    ax.set_ylim(min([0.0] + [float(r.cosine.mean(axis=0).min()) for r, _ in runs]), 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, out_dir, "agreement.png")
