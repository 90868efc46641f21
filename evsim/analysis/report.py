"""Reports of a run: a JSON-able summary and a per-step table (the CLI prints and writes these)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import numpy as np

from evsim.analysis.compare import default_steps
from evsim.counters import (
    AC_OPS,
    EVENTS,
    INPUT_MACS,
    POPULATION_COUNTERS,
    POPULATION_VALUES,
    PROJECTION_COUNTERS,
    SCALED_OPS,
    SIN_EVENTS,
    SIN_VALUE,
)
from evsim.analysis.energy import EnergyProfile, load_profile
from evsim.analysis.memory import BREAKDOWN
from evsim.result import SimulationResult

#: Version of the JSON layout written by `summary` (docs/cli.md documents it).
REPORT_SCHEMA = 1


def accuracy_ladder(timesteps: int) -> list[int]:
    """Steps at which accuracy is printed: powers of two up to T, and T."""
    ladder = [t for t in (2**k for k in range(32)) if t < timesteps]
    return ladder + [timesteps]


def summary(result: SimulationResult, source: Optional[str] = None, profile: Optional[EnergyProfile] = None) -> dict:
    """Everything about a run, as plain JSON types; energy with `profile` (default: cmos45-fp32)."""
    from evsim import __version__

    per_step_pops = {
        pop: {**{counter: result.pop_counts_per_step[:, p, c].tolist() for c, counter in enumerate(POPULATION_COUNTERS)},
              **{name: result.pop_values_per_step[:, p, c].tolist() for c, name in enumerate(POPULATION_VALUES)}}
        for p, pop in enumerate(result.populations)}
    per_step_projs = {
        proj: {counter: result.proj_counts_per_step[:, q, c].tolist() for c, counter in enumerate(PROJECTION_COUNTERS)}
        for q, proj in enumerate(result.projections)}
    totals = result.totals()
    decision = result.decision_times()
    return {
        "schema": REPORT_SCHEMA,
        "evsim_version": __version__,
        "file": source,
        "run": {"timesteps": result.timesteps, "encoder": result.encoder, "seed": result.seed,
                "threads": result.threads, "dtype": result.dtype, "n_samples": result.n_samples,
                "wall_time_s": result.wall_time, "startup_time_s": result.startup_time},
        "ann": {"accuracy": result.ann_accuracy, "macs_per_sample": result.ann_macs},
        "accuracy": None if result.labels is None else result.accuracy().tolist(),
        "totals": totals,
        "per_sample": result.per_sample(),
        "synaptic_ops_per_ann_mac": _ratio(totals["synaptic_ops"] / result.n_samples, result.ann_macs),
        "ann_accuracy_on_samples": result.ann_accuracy_on_samples(),
        "sin_populations": result.sin_populations,
        "latency": result.latency(),
        "decision_time": {"mean": float(decision.mean()), "median": float(np.median(decision))},
        "agreement": None if result.cosine is None else {
            "cosine": result.cosine.mean(axis=0).tolist(),
            "abs_difference": result.abs_difference.mean(axis=0).tolist()},
        "energy": result.energy(profile or load_profile()),
        "populations": {pop: {"kind": kind, "per_step": per_step_pops[pop]}
                        for pop, kind in zip(result.populations, result.population_kinds)},
        "projections": {proj: {"kind": kind, "per_step": per_step_projs[proj]}
                        for proj, kind in zip(result.projections, result.projection_kinds)},
    }


def _ratio(value, reference):
    return None if not reference else value / reference


def write_json(result: SimulationResult, path, source=None, profile: Optional[EnergyProfile] = None) -> None:
    Path(path).write_text(json.dumps(summary(result, source, profile), indent=1))


def write_csv(result: SimulationResult, path) -> None:
    """One row per step t = 1..T: accuracy, then every counter of every population and projection (summed over samples)."""
    header = ["t", "accuracy"]
    columns = [np.arange(1, result.timesteps + 1),
               result.accuracy() if result.labels is not None else np.full(result.timesteps, np.nan)]
    for p, pop in enumerate(result.populations):
        for c, counter in enumerate(POPULATION_COUNTERS):
            header.append(f"pop.{pop}.{counter}")
            columns.append(result.pop_counts_per_step[:, p, c])
        for c, name in enumerate(POPULATION_VALUES):
            header.append(f"pop.{pop}.{name}")
            columns.append(result.pop_values_per_step[:, p, c])
    for q, proj in enumerate(result.projections):
        for c, counter in enumerate(PROJECTION_COUNTERS):
            header.append(f"proj.{proj}.{counter}")
            columns.append(result.proj_counts_per_step[:, q, c])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in zip(*columns):
            writer.writerow([f"{x:.6g}" if isinstance(x, (float, np.floating)) else int(x) for x in row])


def format_text(result: SimulationResult, profile: Optional[EnergyProfile] = None) -> str:
    """The human report printed by `evsim run` (energy with `profile`, default cmos45-fp32): one screen for a
    network of a few layers."""
    lines = [f"{result.n_samples} samples, T = {result.timesteps}, encoder {result.encoder}, "
             f"{result.threads} thread(s), {result.dtype}, {result.wall_time:.2f} s "
             f"({1000 * result.wall_time / max(result.n_samples, 1):.2f} ms/sample; "
             f"startup {result.startup_time:.2f} s)"]
    lines += _accuracy_lines(result) + _layer_lines(result) + _total_lines(result)
    lines += _sin_lines(result) + _latency_lines(result) + _agreement_lines(result) + _energy_lines(result, profile or load_profile())
    return "\n".join(lines)


def _accuracy_lines(result: SimulationResult) -> list[str]:
    """The ANN's accuracy (on these samples: the one to compare with; and the exporter's), the SNN's after steps
    1, 2, 4, ... T, as rows of a table."""
    on_samples, exported = result.ann_accuracy_on_samples(), result.ann_accuracy
    ann = []
    if on_samples is not None:
        ann.append(f"{100 * on_samples:.2f}% on these {result.n_samples} samples")
    if exported is not None:
        ann.append(f"{100 * exported:.2f}% on the exporter's evaluation set")
    lines = [f"ANN accuracy: {ann[0]}" + (f" ({ann[1]})" if len(ann) > 1 else "")] if ann else []
    if result.labels is None:
        return lines + ["SNN accuracy: no labels"]
    acc = result.accuracy()
    ladder = accuracy_ladder(result.timesteps)
    lines.append("SNN accuracy after t steps:")
    for start in range(0, len(ladder), _LADDER_ROW):
        steps = ladder[start:start + _LADDER_ROW]
        lines.append("  t  " + "".join(f"{t:>8}" for t in steps))
        lines.append("  %  " + "".join(f"{100 * acc[t - 1]:>8.2f}" for t in steps))
    return lines


_LADDER_ROW = 10  # steps per row of the accuracy table


def layer_table(result: SimulationResult) -> list[dict]:
    """Per population, per sample over all steps: its events, its firing rate (events per neuron per step), and
    the synaptic ops (and input MACs) its incoming projections cost, as Sinabs' SNNAnalyzer and snntoolbox show
    them. The ops of a projection are counted at its target, where they are spent (0 in results saved before
    format version 3, which do not say where projections go)."""
    n = result.n_samples
    events = result.pop_counts_per_sample[:, :, EVENTS].sum(axis=0) / n
    proj_ops = result.proj_counts_per_sample.sum(axis=0) / n
    targets = result.projection_targets or [None] * len(result.projections)  # unknown in results before version 3
    rows = []
    for p, (name, kind) in enumerate(zip(result.populations, result.population_kinds)):
        size = result.population_sizes[p] if result.population_sizes else None
        incoming = [q for q, target in enumerate(targets) if target == name]
        rows.append({
            "population": name, "kind": kind, "neurons": size, "events": float(events[p]),
            "firing_rate": None if not size else float(events[p] / (size * result.timesteps)),
            "synaptic_ops": float(sum(proj_ops[q, AC_OPS] + proj_ops[q, SCALED_OPS] for q in incoming)),
            "input_macs": float(sum(proj_ops[q, INPUT_MACS] for q in incoming)),
        })
    return rows


def _layer_lines(result: SimulationResult) -> list[str]:
    rows = layer_table(result)
    with_macs = any(row["input_macs"] for row in rows)
    width = max(len(row["population"]) for row in rows)
    header = f"  {'layer':<{width}}  {'kind':<8}{'neurons':>9}{'events':>12}{'rate/step':>11}{'synaptic ops':>15}"
    lines = [f"Per layer, per sample over all {result.timesteps} steps (rate: events per neuron per step; "
             "ops of the projections into it):", header + (f"{'input MACs':>13}" if with_macs else "")]
    for row in rows:
        neurons = "" if row["neurons"] is None else f"{row['neurons']:,}"
        rate = "" if row["firing_rate"] is None else f"{row['firing_rate']:.4f}"
        line = (f"  {row['population']:<{width}}  {row['kind']:<8}{neurons:>9}{row['events']:>12,.0f}{rate:>11}"
                f"{row['synaptic_ops']:>15,.0f}")
        lines.append(line + (f"{row['input_macs']:>13,.0f}" if with_macs else ""))
    return lines


#: The totals the report shows, with what a newcomer needs to read them.
_TOTALS = (("events", "spikes of the network's own neurons (input and relays apart)"),
           ("mass", "sum of |spike coefficient| over events: events, for binary spikes"),
           ("input_events", "spikes of a spiking input encoder"),
           ("relayed_events", "spikes a max-pool relay passes on"),
           ("ac_ops", "synaptic accumulates (binary spikes)"), ("scaled_ops", "synaptic multiply-accumulates"),
           ("pool_ops", "pooling adds and compares"), ("input_macs", "analog input x first-layer weights"),
           ("bias_ops", "bias additions"), ("neuron_updates", "membrane updates"))


def _total_lines(result: SimulationResult) -> list[str]:
    per = result.per_sample()
    zero = [name for name, _ in _TOTALS if not per[name]]
    lines = ["Totals per sample (all steps" + (f"; zero: {', '.join(zero)}" if zero else "") + "):"]
    lines += [f"  {name:<15}{per[name]:>16,.1f}  {meaning}" for name, meaning in _TOTALS if per[name]]
    if result.ann_macs:
        lines.append(f"  synaptic ops (ac + scaled) per ANN MAC: {per['synaptic_ops'] / result.ann_macs:.3f} "
                     f"(ANN: {result.ann_macs:,} MACs per sample)")
    return lines


def _sin_lines(result: SimulationResult) -> list[str]:
    """Spikes of inactivated neurons per population, when the run was given the ANN's activations."""
    if not result.sin_populations:
        return []
    lines = ["Spikes of inactivated neurons (events the ANN's activation sign contradicts), per sample:"]
    for name in result.sin_populations:
        p = result.populations.index(name)
        events = result.pop_counts_per_sample[:, p, EVENTS].mean()
        sin = result.pop_counts_per_sample[:, p, SIN_EVENTS].mean()
        value = result.pop_values_per_sample[:, p, SIN_VALUE].mean()
        share = f"{100 * sin / events:.1f}% of its events" if events else "no events"
        lines.append(f"  {name:<15} {sin:>12,.1f} ({share}), value {value:,.3f}")
    return lines


def _latency_lines(result: SimulationResult) -> list[str]:
    rows = result.latency()
    if not rows:
        return []
    lines = [f"Latency to the ANN's accuracy on these samples ({100 * rows[0]['reference_accuracy']:.2f}%), "
             "and what was spent per sample to get there:"]
    for row in rows:
        within = f"  {_tolerance_words(row['tolerance']) + ':':<19}"
        if row["t"] is None:
            lines.append(f"{within}not reached by t = {result.timesteps}")
        else:
            lines.append(f"{within}t = {row['t']:>5}  events {row['events']:,.0f}  synaptic ops {row['synaptic_ops']:,.0f}")
    times = result.decision_times()
    lines.append(f"Decision time per sample (prediction stable from): mean {times.mean():.1f}, median {np.median(times):g}")
    return lines


def _tolerance_words(tolerance: float) -> str:
    """0.01 -> "within 1 point", 0.001 -> "within 0.1 points", 0 -> "matching it"."""
    points = 100 * tolerance
    if points == 0:
        return "matching it"
    return f"within {points:g} point" + ("" if points == 1 else "s")


def _agreement_lines(result: SimulationResult) -> list[str]:
    if result.cosine is None:
        return []
    cosine, diff = result.cosine.mean(axis=0), result.abs_difference.mean(axis=0)
    steps = default_steps(result.timesteps)
    lines = ["Agreement with the ANN's outputs (readout rates x output_scale), after t steps:"]
    for start in range(0, len(steps), _LADDER_ROW):
        row = steps[start:start + _LADDER_ROW]
        lines += ["  t              " + "".join(f"{t:>8}" for t in row),
                  "  cosine         " + "".join(f"{cosine[t - 1]:>8.4f}" for t in row),
                  "  mean |diff.|   " + "".join(f"{diff[t - 1]:>8.4f}" for t in row)]
    return lines


def _energy_lines(result: SimulationResult, profile: EnergyProfile) -> list[str]:
    energy = result.energy(profile)
    snn = energy["snn_pj_per_sample"]
    lines = [f"Energy per sample, profile {profile.name} (docs/metrics.md):",
             "  pJ per op: " + ", ".join(f"{k} {v:g}" for k, v in profile.per_operation.items()) + f"; ANN MAC {profile.ann_mac:g}"]
    lines.append(f"  SNN {snn['total'] / 1e6:,.3f} uJ (" + ", ".join(
        f"{k} {v / 1e6:,.3f}" for k, v in snn.items() if k != "total" and v) + ")")
    if energy["ann_pj_per_sample"]:
        lines.append(f"  ANN {energy['ann_pj_per_sample'] / 1e6:,.3f} uJ; SNN / ANN = {energy['snn_over_ann']:.3f}")
    return lines + _memory_lines(energy["memory"])


def _memory_lines(memory) -> list[str]:
    """Energy with memory accesses: per model, each access's count x price = energy, then the breakdown."""
    if memory is None:
        return []
    lines = [f"Energy per sample with memory accesses ({memory['dataflow']} dataflow; count x pJ per access = pJ):"]
    for key, label in (("snn", "SNN"), ("ann", "ANN"), ("quantised_ann", "quantised ANN")):
        model = memory[key]
        if model is None:
            continue
        bits = f", {model['activation_bits']}-bit activations" if "activation_bits" in model else ""
        breakdown = model["breakdown_pj"]
        lines.append(f"  {label}{bits}: {breakdown['total'] / 1e6:,.3f} uJ (" + ", ".join(
            f"{k} {breakdown[k] / 1e6:,.3f}" for k in BREAKDOWN) + ")")
        lines += [f"    {access:<17} {count:>16,.1f} x {model['pj_per_access'][access]:g} = {pj / 1e6:,.3f} uJ"
                  for (access, count), pj in zip(model["accesses"].items(), model["energy_pj"].values())]
    if memory["ann"] is not None:
        lines.append(f"  SNN / ANN = {memory['snn_over_ann']:.3f}; SNN / quantised ANN = {memory['snn_over_quantised_ann']:.3f}")
    if memory.get("break_even_rate") is not None:
        lines.append(f"  firing rate {memory['firing_rate']:.4f} events / neuron / step; the SNN matches the quantised "
                     f"ANN at {memory['break_even_rate']:.4f}")
    return lines


def describe_network(network) -> dict:
    """What `evsim inspect` shows: populations, projections, sizes, readout, ANN and conversion metadata."""
    def param(pop, name):
        value = getattr(pop, name)
        if value is None:
            return None
        value = np.asarray(value)
        if value.size == 1:
            return float(value.reshape(()))
        return {"shape": list(value.shape), "min": float(value.min()), "max": float(value.max())}

    def attribute(element, name):
        value = getattr(element, name)
        return list(value) if isinstance(value, tuple) else value

    pops = {}
    for pop in network.populations:
        spec = pop.spec
        entry = {"kind": pop.kind, "shape": list(pop.shape), "size": pop.size, "order": pop.order}
        if spec.emits != "encoded":  # an input's coding is its encoder's, shown as its encoding
            entry.update(coding=pop.coding, phase_period=pop.phase_period)
        entry.update({name: param(pop, name) for name in spec.datasets})
        entry.update({a.name: attribute(pop, a.name) for a in spec.attributes})
        pops[pop.name] = entry
    projs = {}
    for proj in network.projections:
        spec = proj.spec
        entry = {"kind": proj.kind, "source": proj.source, "target": proj.target, "scale": proj.scale,
                 "weights": 0 if proj.weight is None else int(np.asarray(proj.weight).size)}
        if spec.windows:
            entry["kernel"] = list(proj.kernel_size)
        entry.update({a.name: attribute(proj, a.name) for a in spec.attributes})
        projs[proj.name] = entry
    ann = network.ann
    return {
        "producer": network.producer,
        "populations": pops,
        "projections": projs,
        "neurons": sum(p.size for p in network.populations),
        "weights": sum(e["weights"] for e in projs.values()),
        "output": network.output,
        "readout": {"population": network.output, "kind": network.output_population.kind,
                    "mode": getattr(network.output_population, "mode", None),
                    "output_scale": None if network.output_scale is None else param(network, "output_scale")},
        "samples": None if network.samples is None else {
            "n": int(network.samples.inputs.shape[0]), "labels": network.samples.labels is not None},
        "ann": None if ann is None else {"macs": ann.macs, "accuracy": ann.accuracy,
                                         "outputs": ann.outputs is not None},
        "meta": network.meta,
    }
