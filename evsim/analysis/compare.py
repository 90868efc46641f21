"""Side by side: several conversions of one ANN run on the same samples (the core of an energy study).

`run_comparison` simulates networks (beside saved results) on one set of
samples; `compare` reduces them to one row per run: accuracy at
chosen steps, early-decision latency at each tolerance with what was spent to
get there, events, operations and energy per sample, and every figure's ratio
to the first run. `evsim compare` prints, and writes, that table.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from evsim.analysis.energy import EnergyProfile, load_profile
from evsim.analysis.memory import BREAKDOWN, price_run
from evsim.analysis.metrics import DEFAULT_TOLERANCES
from evsim.errors import EvsimError, SimulationInputError
from evsim.network import Network
from evsim.result import SimulationResult
from evsim.simulate import RunOptions, RunSamples, Simulator, resolve_samples

#: Version of the JSON layout written by `write_comparison_json` (docs/cli.md documents it).
COMPARISON_SCHEMA = 1

#: Per-sample totals shown for every run (accounting.md names).
COMPARED_COUNTS = ("events", "synaptic_ops", "ac_ops", "scaled_ops", "pool_ops", "input_macs", "bias_ops",
                   "neuron_updates")


def run_comparison(runs: Sequence[Union[Network, SimulationResult]], inputs: Optional[np.ndarray] = None,
                   labels: Optional[np.ndarray] = None, *, names: Optional[Sequence[str]] = None,
                   n_samples: Optional[int] = None, dtype: str = "float32", threads: Optional[int] = None,
                   progress: bool = False, client=None, chunk_size: Optional[int] = None,
                   report: Optional[Callable[[str], None]] = None,
                   **options) -> list[SimulationResult]:
    """One result per run, all on the same samples.

    A `Network` is simulated (`options`: the fields of `RunOptions`); a saved
    `SimulationResult` is used as it is. The samples are `inputs` / `labels`,
    or else the first network's own samples (its first `n_samples`). Each
    network is given its own `/ann/outputs` when it runs its own samples, for
    the agreement measures. `names` (default: run 1, run 2, ...) name the runs
    in errors; `report` is told before the engine compiles (`Simulator`). With a Dask `client`, every network's
    chunks of `chunk_size` samples are tasks on its cluster at once (evsim/distributed.py); the results are the
    local runs'.
    """
    names = list(names) if names is not None else [f"run {i + 1}" for i in range(len(runs))]
    options["timesteps"] = _common_timesteps(runs, names, options.get("timesteps"))
    networks = [run for run in runs if isinstance(run, Network)]
    if networks:
        first = names[runs.index(networks[0])]
        try:
            inputs, labels, _ = resolve_samples(networks[0], inputs, labels, n_samples)
        except SimulationInputError as err:
            raise EvsimError(f"{first}: {err}") from None
    elif inputs is not None and n_samples is not None:
        inputs, labels = inputs[:n_samples], None if labels is None else labels[:n_samples]
    run_options = RunOptions(**options)
    simulated = {i: RunSamples(inputs, labels, _own_ann_outputs(run, inputs)) for i, run in enumerate(runs)
                 if isinstance(run, Network)}
    if client is not None:
        from evsim import distributed

        jobs = [distributed.Job(runs[i], samples, name=names[i]) for i, samples in simulated.items()]
        done = dict(zip(simulated, distributed.run_all(client, jobs, run_options, dtype=dtype, threads=threads,
                                                       chunk_size=chunk_size, progress=progress)))
    else:
        done = {i: Simulator(runs[i], dtype=dtype, threads=threads, report=report).run_options(
                    samples, run_options, progress=progress)
                for i, samples in simulated.items()}
    results = [done.get(i, run) for i, run in enumerate(runs)]
    _check_same_samples(results, names)
    return results


#: The steps networks are simulated for when neither `timesteps` nor a saved result says.
DEFAULT_TIMESTEPS = 256


def _common_timesteps(runs, names, timesteps: Optional[int]) -> int:
    """The one T of a comparison: `timesteps` if given, else the saved results' T (else 256).

    Runs of different T are not comparable (events, energy and latency all grow with T): a saved result of
    another T than the others, or than `timesteps`, is an error naming each run's T.
    """
    saved = [(name, run.timesteps) for run, name in zip(runs, names) if isinstance(run, SimulationResult)]
    if timesteps is None:
        timesteps = saved[0][1] if saved else DEFAULT_TIMESTEPS
    if any(t != timesteps for _, t in saved):
        each = [f"{name}: T = {run.timesteps}" if isinstance(run, SimulationResult) else f"{name}: T = {timesteps} (simulated)"
                for run, name in zip(runs, names)]
        raise EvsimError(f"the runs have different T ({'; '.join(each)}); compare runs of one T (give -T to simulate "
                         "the networks at the saved results' T)")
    return timesteps


def _own_ann_outputs(network, inputs) -> Optional[np.ndarray]:
    """The network's /ann/outputs restricted to `inputs`, if `inputs` are the first of its own samples."""
    if network.ann is None or network.ann.outputs is None or network.samples is None:
        return None
    own = network.samples.inputs
    if len(inputs) > len(own) or not np.array_equal(own[:len(inputs)], inputs):
        return None
    return network.ann.outputs[:len(inputs)]


def _check_same_samples(results: list[SimulationResult], names: Sequence[str]) -> None:
    first = results[0]
    for path, result in zip(names[1:], results[1:]):
        same_labels = (first.labels is None and result.labels is None) or (
            first.labels is not None and result.labels is not None and np.array_equal(first.labels, result.labels))
        if result.n_samples != first.n_samples or not same_labels:
            raise EvsimError(f"{path}: its run is not on the same samples as {names[0]}'s "
                             f"({result.n_samples} vs {first.n_samples} samples, or other labels)")
        if result.readout_v.shape[1] != first.readout_v.shape[1]:
            raise EvsimError(f"{path}: {result.readout_v.shape[1]} outputs, {names[0]} has "
                             f"{first.readout_v.shape[1]}: not conversions of one ANN")


def default_steps(timesteps: int) -> list[int]:
    """Steps at which accuracy is compared when none are chosen: 8, 16, 32, ... up to T, and T."""
    return sorted({t for t in (2**k for k in range(3, 32)) if t < timesteps} | {timesteps})


def compare(results: list[SimulationResult], names: Sequence[str], *, steps: Optional[Sequence[int]] = None,
            tolerances: Sequence[float] = DEFAULT_TOLERANCES, profile: Optional[EnergyProfile] = None) -> dict:
    """The comparison table as plain JSON types (schema in docs/cli.md); ratios are to the first run."""
    profile = profile or load_profile()
    steps = list(steps) if steps else default_steps(max(r.timesteps for r in results))
    rows = [_row(result, name, steps, tolerances, profile) for result, name in zip(results, names)]
    for row in rows:
        row["ratio_to_first"] = _ratios(row, rows[0])
    return {"schema": COMPARISON_SCHEMA, "profile": profile.to_dict(), "steps": steps,
            "tolerances": list(tolerances), "n_samples": results[0].n_samples, "runs": rows,
            "baselines": _baselines(results[0], profile)}


def _baselines(result: SimulationResult, profile: EnergyProfile) -> list[dict]:
    """The ANN and the quantised ANN of equal capacity to the first run (its T), priced with memory; [] without."""
    priced = price_run(result, profile)
    if priced is None or priced["ann"] is None:
        return []
    return [{"name": label, "activation_bits": priced[key]["activation_bits"], "accesses": priced[key]["accesses"],
             "breakdown_pj": priced[key]["breakdown_pj"]}
            for key, label in (("ann", "ANN"), ("quantised_ann", f"ANN {priced['quantised_ann']['activation_bits']}-bit"))]


def _row(result: SimulationResult, name: str, steps, tolerances, profile: EnergyProfile) -> dict:
    accuracy = result.accuracy() if result.labels is not None else None
    per_sample = result.per_sample()
    energy = result.energy(profile)
    latency = []
    for row in result.latency(tolerances):
        entry = {"tolerance": row["tolerance"], "t": row["t"]}
        if row["t"] is not None:  # the row carries what was spent per sample up to t (SimulationResult.latency)
            entry.update(events=row["events"], synaptic_ops=row["synaptic_ops"],
                         energy_pj=profile.snn_energy(row)["total"])
        latency.append(entry)
    return {
        "name": name,
        "timesteps": result.timesteps,
        "encoder": result.encoder,
        "ann_accuracy": result.reference_accuracy(),
        "accuracy": {str(t): (None if accuracy is None or t > result.timesteps else float(accuracy[t - 1]))
                     for t in steps},
        "latency": latency,
        "per_sample": {counter: per_sample[counter] for counter in COMPARED_COUNTS},
        "energy_pj_per_sample": energy["snn_pj_per_sample"]["total"],
        "snn_over_ann_energy": energy["snn_over_ann"],
        "mean_decision_time": float(result.decision_times().mean()),
        "memory": _memory_summary(price_run(result, profile)),
    }


def _memory_summary(priced: Optional[dict]) -> Optional[dict]:
    """A run's energy with memory (per sample): accesses, the breakdown, the ratios and the break-even rate."""
    if priced is None:
        return None
    return {"accesses": priced["snn"]["accesses"], "breakdown_pj": priced["snn"]["breakdown_pj"],
            **{key: priced.get(key) for key in ("snn_over_ann", "snn_over_quantised_ann", "firing_rate",
                                                 "break_even_rate")}}


def _ratios(row: dict, first: dict) -> dict:
    """This run's figure over the first run's (None where either is missing or the first is 0)."""
    ratios = {counter: _ratio(row["per_sample"][counter], first["per_sample"][counter])
              for counter in ("events", "synaptic_ops")}
    ratios["energy"] = _ratio(row["energy_pj_per_sample"], first["energy_pj_per_sample"])
    for mine, theirs in zip(row["latency"], first["latency"]):
        for key in ("t", "events", "energy_pj"):
            ratios[f"latency_{_tolerance_label(mine['tolerance'])}_{key}"] = _ratio(mine.get(key), theirs.get(key))
    return ratios


def _ratio(value, reference) -> Optional[float]:
    return None if value is None or not reference else value / reference


def _tolerance_label(tolerance: float) -> str:
    """0.01 -> '1pt', 0.001 -> '0.1pt', 0 -> '0pt' (accuracy points)."""
    return f"{100 * tolerance:g}pt"


# ----------------------------------------------------------------------------- output


def format_comparison(table: dict) -> str:
    """The side-by-side text table `evsim compare` prints: one column per run."""
    runs = table["runs"]
    rows: list[tuple[str, list[str]]] = [("run", [r["name"] for r in runs]), ("T", [str(r["timesteps"]) for r in runs])]
    rows.append(("ANN accuracy", [_percent(r["ann_accuracy"]) for r in runs]))
    rows += [(f"accuracy t={t}", [_percent(r["accuracy"][str(t)]) for r in runs]) for t in table["steps"]]
    for i, tolerance in enumerate(table["tolerances"]):
        label = f"within {100 * tolerance:g} pt"
        reached = [_latency_row(r, i) for r in runs]
        rows.append((f"latency {label}", [_number(row.get("t"), "{:d}") for row in reached]))
        rows.append(("  events to get there", [_number(row.get("events")) for row in reached]))
        rows.append(("  energy to get there (uJ)", [_number(_micro(row.get("energy_pj")), "{:,.3f}") for row in reached]))
    rows += [(f"{counter} / sample", [_number(r["per_sample"][counter]) for r in runs]) for counter in COMPARED_COUNTS]
    rows.append((f"energy / sample (uJ, {table['profile']['name']})",
                 [_number(_micro(r["energy_pj_per_sample"]), "{:,.3f}") for r in runs]))
    rows.append(("SNN / ANN energy", [_number(r["snn_over_ann_energy"], "{:.3f}") for r in runs]))
    rows.append(("mean decision time", [_number(r["mean_decision_time"], "{:.1f}") for r in runs]))
    for key, label in (("events", "events"), ("synaptic_ops", "synaptic ops"), ("energy", "energy")):
        rows.append((f"{label} / first", [_number(r["ratio_to_first"][key], "{:.3f}") for r in runs]))
    for tolerance in table["tolerances"]:
        key = f"latency_{_tolerance_label(tolerance)}_t"
        rows.append((f"latency {100 * tolerance:g} pt / first", [_number(r["ratio_to_first"].get(key), "{:.3f}")
                                                                for r in runs]))
    rows = _with_baselines(rows, table)
    head = max(len(label) for label, _ in rows)
    width = max(12, *(len(cell) for _, cells in rows for cell in cells))
    header = f"{table['n_samples']} samples; energy profile {table['profile']['name']}; ratios are to the first run"
    return "\n".join([header] + [f"{label:<{head}}  " + "  ".join(f"{c:>{width}}" for c in cells)
                                 for label, cells in rows])


def _with_baselines(rows: list, table: dict) -> list:
    """Rows of energy with memory (when the profile has a memory section), the ANN baselines as extra columns."""
    runs, baselines = table["runs"], table.get("baselines", [])
    if not any(r.get("memory") for r in runs):
        return rows
    blank = ["-"] * len(baselines)
    rows = [(label, cells + ([b["name"] for b in baselines] if label == "run" else blank)) for label, cells in rows]
    memory = [r["memory"] or {} for r in runs]
    dataflow = table["profile"]["memory"]["dataflow"]
    for key in ("total",) + BREAKDOWN:
        label = f"with memory / sample (uJ, {dataflow})" if key == "total" else f"  {key}"
        rows.append((label, [_number(_micro(m.get("breakdown_pj", {}).get(key)), "{:,.3f}") for m in memory]
                     + [_number(_micro(b["breakdown_pj"][key]), "{:,.3f}") for b in baselines]))
    rows.append(("activation bits", ["-"] * len(runs) + [str(b["activation_bits"]) for b in baselines]))
    accesses = list(dict.fromkeys(a for m in memory + baselines for a in m.get("accesses", {})))
    rows += [(f"{access} / sample", [_number(m.get("accesses", {}).get(access)) for m in memory + baselines])
             for access in accesses]
    for key, label in (("snn_over_ann", "SNN / ANN (with memory)"),
                       ("snn_over_quantised_ann", "SNN / quantised ANN (with memory)")):
        rows.append((label, [_number(m.get(key), "{:.3f}") for m in memory] + blank))
    rows.append(("firing rate (events / neuron / step)", [_number(m.get("firing_rate"), "{:.4f}") for m in memory] + blank))
    rows.append(("  break-even rate vs quantised ANN", [_number(m.get("break_even_rate"), "{:.4f}") for m in memory]
                 + blank))
    return rows


def _latency_row(run: dict, i: int) -> dict:
    """A run's latency at tolerance `i`; {} when it has none (no labels, or no ANN accuracy to reach)."""
    return run["latency"][i] if i < len(run["latency"]) else {}


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _number(value, spec: str = "{:,.0f}") -> str:
    return "-" if value is None else spec.format(value)


def _micro(picojoules):
    return None if picojoules is None else picojoules / 1e6


def write_comparison_json(table: dict, path) -> None:
    Path(path).write_text(json.dumps(table, indent=1))


def comparison_rows(table: dict) -> list[dict]:
    """One flat dict per run (the CSV rows): nested keys joined by '.'."""
    return [_flatten(run) for run in table["runs"]]


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):  # the latency list: keyed by tolerance
        return {k: v for item in value for k, v in
                _flatten({key: x for key, x in item.items() if key != "tolerance"},
                         f"{prefix}{_tolerance_label(item['tolerance'])}.").items()}
    return {prefix[:-1]: value}


def write_comparison_csv(table: dict, path) -> None:
    rows = comparison_rows(table)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
