"""What a run returns: predictions at every step, readout values and the exact counts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from evsim.counters import AC_OPS, EVENTS, POPULATION_COUNTERS, POPULATION_VALUES, PROJECTION_COUNTERS, SCALED_OPS
from evsim.kinds import emitting
from evsim.analysis.energy import EnergyProfile
from evsim.analysis.memory import price_run
from evsim.analysis.metrics import DEFAULT_TOLERANCES, accuracy_curve, decision_times, early_decision_latency


@dataclass
class SimulationResult:
    """Results of simulating `n` samples for `T` steps.

    Counts are kept two ways so memory stays bounded on long runs: per step
    summed over samples (`*_per_step`, shape `[T, ...]`) and per sample summed
    over steps (`*_per_sample`, shape `[n, ...]`). The full `[n, T, ...]`
    arrays, the readout trace and spike trains exist only when recorded.
    """

    populations: list[str]
    projections: list[str]
    timesteps: int
    encoder: str
    seed: int
    pred: np.ndarray                      # [n, T] prediction after steps 1..T
    labels: Optional[np.ndarray]          # [n]
    readout_v: np.ndarray                 # [n, N] output potentials after the last step
    readout_mass: np.ndarray              # [n, N] output spike mass after the last step
    readout_estimate: np.ndarray          # [n, N] ANN outputs estimated after the last step (metrics.readout_estimates)
    pop_counts_per_step: np.ndarray       # [T, P, len(POPULATION_COUNTERS)]
    proj_counts_per_step: np.ndarray      # [T, Q, len(PROJECTION_COUNTERS)]
    pop_counts_per_sample: np.ndarray     # [n, P, len(POPULATION_COUNTERS)]
    proj_counts_per_sample: np.ndarray    # [n, Q, len(PROJECTION_COUNTERS)]
    ann_outputs: Optional[np.ndarray] = None     # [n, N] the ANN's outputs on these samples
    cosine: Optional[np.ndarray] = None          # [n, T] cos(estimate after t steps, ANN output)
    abs_difference: Optional[np.ndarray] = None  # [n, T] mean |estimate - ANN output|
    population_kinds: list[str] = field(default_factory=list)
    projection_kinds: list[str] = field(default_factory=list)
    projection_targets: list[str] = field(default_factory=list)  # each projection's target (empty in older files)
    population_sizes: list[int] = field(default_factory=list)  # neurons per population (empty in older result files)
    # The structure the memory-access model derives its counts from (evsim.analysis.memory; empty in older files):
    population_units: list[int] = field(default_factory=list)   # state units per neuron (a bif pair is two)
    population_biased: list[int] = field(default_factory=list)  # neurons with a nonzero bias
    projection_sources: list[str] = field(default_factory=list)  # each projection's source population
    ann_macs: Optional[int] = None
    ann_accuracy: Optional[float] = None
    wall_time: float = 0.0                # seconds simulating (compilation excluded)
    startup_time: float = 0.0             # seconds compiling, or loading the compiled engine from cache
    threads: int = 1
    dtype: str = "float32"
    pop_counts: Optional[np.ndarray] = None    # [n, T, P, C] when recorded
    proj_counts: Optional[np.ndarray] = None   # [n, T, Q, C] when recorded
    readout_trace: Optional[np.ndarray] = None       # [n, T, N] potentials after every step
    readout_mass_trace: Optional[np.ndarray] = None  # [n, T, N] cumulative spike mass
    spikes: dict = field(default_factory=dict)  # (population, tag) -> (coef [n, T, *shape], value)
    pop_values_per_step: Optional[np.ndarray] = None    # [T, P, len(POPULATION_VALUES)] (float64)
    pop_values_per_sample: Optional[np.ndarray] = None  # [n, P, len(POPULATION_VALUES)]
    pop_values: Optional[np.ndarray] = None              # [n, T, P, V] when counts are recorded
    sin_populations: list[str] = field(default_factory=list)  # where the SIN counters count (empty: not measured)
    manifest: dict = field(default_factory=dict)  # what the run was, when streamed to a file (evsim.runs): resumable

    @property
    def n_samples(self) -> int:
        return self.pred.shape[0]

    def accuracy(self) -> np.ndarray:
        """Accuracy after every step t = 1..T (entry t-1)."""
        if self.labels is None:
            raise ValueError("no labels: accuracy is undefined")
        return accuracy_curve(self.pred, self.labels)

    def ann_accuracy_on_samples(self) -> Optional[float]:
        """The ANN's accuracy on these very samples (from its outputs); None without outputs or labels."""
        if self.ann_outputs is None or self.labels is None:
            return None
        return float((self.ann_outputs.argmax(axis=1) == self.labels).mean())

    def reference_accuracy(self) -> Optional[float]:
        """The ANN's accuracy on these samples, else the file's /ann/accuracy, else None."""
        on_samples = self.ann_accuracy_on_samples()
        return on_samples if on_samples is not None else self.ann_accuracy

    def decision_times(self) -> np.ndarray:
        """Per sample, the first step from which its prediction no longer changes."""
        return decision_times(self.pred)

    def latency(self, tolerances=DEFAULT_TOLERANCES) -> list[dict]:
        """Early-decision latency at each tolerance, with what was spent per sample up to it.

        The reference is the ANN's accuracy on these samples (or the file's
        /ann/accuracy when the ANN's outputs are not known).
        """
        reference = self.reference_accuracy()
        if reference is None or self.labels is None:
            return []
        accuracy = self.accuracy()
        rows = []
        for tolerance in tolerances:
            t = early_decision_latency(accuracy, reference, tolerance)
            row = {"tolerance": tolerance, "reference_accuracy": reference, "t": t}
            if t is not None:
                row.update(accuracy=float(accuracy[t - 1]), **self.spent_until(t))
            rows.append(row)
        return rows

    def spent_until(self, t: int) -> dict:
        """Per-sample means of every total over steps 1..t."""
        pops = self.pop_counts_per_step[:t].sum(axis=0)
        projs = self.proj_counts_per_step[:t].sum(axis=0)
        values = self.pop_values_per_step[:t].sum(axis=0)
        return {name: value / self.n_samples for name, value in self._totals(pops, projs, values).items()}

    def energy(self, profile: EnergyProfile) -> dict:
        """Energy per sample (pJ) by category and in total, the ANN's, and their ratio (operations only);
        with a profile's memory section also `memory`: accesses, prices and the breakdown of the SNN, the ANN
        and the quantised ANN of equal capacity (`evsim.analysis.memory.price_run`), else None."""
        snn = profile.snn_energy(self.per_sample())
        ann = profile.ann_energy(self.ann_macs) if self.ann_macs else None
        return {"profile": profile.to_dict(), "snn_pj_per_sample": snn, "ann_pj_per_sample": ann,
                "snn_over_ann": None if not ann else snn["total"] / ann, "memory": price_run(self, profile)}

    def population_count(self, population: str, counter: str) -> np.ndarray:
        """Per-step total over samples of one population counter, shape [T]."""
        return self.pop_counts_per_step[:, self.populations.index(population), POPULATION_COUNTERS.index(counter)]

    def projection_count(self, projection: str, counter: str) -> np.ndarray:
        return self.proj_counts_per_step[:, self.projections.index(projection), PROJECTION_COUNTERS.index(counter)]

    def totals(self) -> dict[str, int]:
        """Every count summed over populations (or projections), steps and samples.

        `events` and `mass` exclude the relayed events of relay populations
        (the same spikes, forwarded) and the input's events, reported apart.
        """
        return self._totals(self.pop_counts_per_step.sum(axis=0), self.proj_counts_per_step.sum(axis=0),
                            self.pop_values_per_step.sum(axis=0))

    def _totals(self, pops: np.ndarray, projs: np.ndarray, values: np.ndarray) -> dict[str, int]:
        """Totals from counts summed over steps: pops [P, C], projs [Q, C], values [P, V]."""
        spiking = emitting(self.population_kinds)
        out = {name: int(pops[spiking, i].sum()) for i, name in enumerate(POPULATION_COUNTERS)}
        out.update({name: float(values[spiking, i].sum()) for i, name in enumerate(POPULATION_VALUES)})
        out["input_events"] = int(pops[emitting(self.population_kinds, "encoded"), EVENTS].sum())
        out["relayed_events"] = int(pops[emitting(self.population_kinds, "relayed"), EVENTS].sum())
        out.update({name: int(projs[:, i].sum()) for i, name in enumerate(PROJECTION_COUNTERS)})
        out["synaptic_ops"] = out["ac_ops"] + out["scaled_ops"]
        return out

    def per_sample(self) -> dict[str, float]:
        """Mean per sample of every total."""
        return {name: value / self.n_samples for name, value in self.totals().items()}

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Everything recorded, keyed as in the conformance files (`pop/<name>/<counter>`, `spikes/<pop>/<tag>/coef`, ...).

        Per-step per-sample counts need `record_counts=True`; the readout trace
        `record_trace=True`; spike trains `record_spikes=True`.
        """
        arrays = {"pred": self.pred}
        if self.readout_trace is not None:
            arrays["readout_v"] = self.readout_trace
            arrays["readout_mass"] = self.readout_mass_trace
        if self.pop_counts is not None:
            for p, pop in enumerate(self.populations):
                for c, counter in enumerate(POPULATION_COUNTERS):
                    arrays[f"pop/{pop}/{counter}"] = self.pop_counts[:, :, p, c]
                for c, name in enumerate(POPULATION_VALUES):
                    arrays[f"pop/{pop}/{name}"] = self.pop_values[:, :, p, c]
            for q, proj in enumerate(self.projections):
                for c, counter in enumerate(PROJECTION_COUNTERS):
                    arrays[f"proj/{proj}/{counter}"] = self.proj_counts[:, :, q, c]
        for (pop, tag), (coef, value) in self.spikes.items():
            arrays[f"spikes/{pop}/{tag}/coef"] = coef
            arrays[f"spikes/{pop}/{tag}/value"] = value
        return arrays

    # -- tables and files ---------------------------------------------------------

    def frames(self) -> dict:
        """Tidy pandas DataFrames: `steps` (one row per t), `counts` (t x layer x counter), `samples`.

        Counts in `counts` are summed over samples; `steps` gives per-sample
        means, cumulative up to t, of events and synaptic ops.
        """
        import pandas as pd

        t = np.arange(1, self.timesteps + 1)
        steps = {"t": t}
        if self.labels is not None:
            steps["accuracy"] = self.accuracy()
        if self.cosine is not None:
            steps["cosine"] = self.cosine.mean(axis=0)
            steps["abs_difference"] = self.abs_difference.mean(axis=0)
        spiking = emitting(self.population_kinds)
        synaptic = [AC_OPS, SCALED_OPS]
        steps["cumulative_events"] = self.pop_counts_per_step[:, spiking, EVENTS].sum(axis=1).cumsum() / self.n_samples
        steps["cumulative_synaptic_ops"] = self.proj_counts_per_step[:, :, synaptic].sum(axis=(1, 2)).cumsum() / self.n_samples
        rows = []
        for names, kinds, counts, counters, layer in (
                (self.populations, self.population_kinds, self.pop_counts_per_step, POPULATION_COUNTERS, "population"),
                (self.populations, self.population_kinds, self.pop_values_per_step, POPULATION_VALUES, "population"),
                (self.projections, self.projection_kinds, self.proj_counts_per_step, PROJECTION_COUNTERS, "projection")):
            for i, (name, kind) in enumerate(zip(names, kinds)):
                for c, counter in enumerate(counters):
                    rows.append(pd.DataFrame({"t": t, "layer": name, "layer_type": layer, "kind": kind,
                                              "counter": counter, "value": counts[:, i, c]}))
        samples = {"sample": np.arange(self.n_samples), "prediction": self.pred[:, -1],
                   "decision_time": self.decision_times()}
        if self.labels is not None:
            samples.update(label=self.labels, correct=self.pred[:, -1] == self.labels)
        spiking_events = self.pop_counts_per_sample[:, spiking, EVENTS].sum(axis=1)
        samples.update(events=spiking_events, synaptic_ops=self.proj_counts_per_sample[:, :, synaptic].sum(axis=(1, 2)))
        return {"steps": pd.DataFrame(steps), "counts": pd.concat(rows, ignore_index=True),
                "samples": pd.DataFrame(samples)}

    def save(self, path) -> None:
        """Write the whole result to an HDF5 file (docs/result_format.md; `load_result` reads it back, equal in every
        field)."""
        from evsim.result_file import write_result

        write_result(self, path)


def merge_results(parts: list) -> SimulationResult:
    """One result from results of consecutive sample ranges (in order): equal to a single run over all.

    Per-sample arrays are concatenated, per-step sums added (integers: exact),
    times added; recordings are concatenated too.
    """
    import dataclasses

    first = parts[0]
    merged = {}
    for fld in dataclasses.fields(SimulationResult):
        values = [getattr(p, fld.name) for p in parts]
        if fld.name in ("pop_counts_per_step", "proj_counts_per_step", "pop_values_per_step"):
            merged[fld.name] = np.sum(values, axis=0)
        elif fld.name in ("wall_time", "startup_time"):
            merged[fld.name] = float(sum(values))
        elif fld.name == "spikes":
            merged[fld.name] = {key: tuple(np.concatenate([v[key][i] for v in values]) for i in range(2))
                                for key in values[0]}
        elif isinstance(values[0], np.ndarray):
            merged[fld.name] = np.concatenate(values)
        else:
            merged[fld.name] = getattr(first, fld.name)
    return SimulationResult(**merged)


# The file format's reader lives beside its writer; imported here, where callers have always found it.
from evsim.result_file import RESULT_FORMAT, RESULT_VERSION, is_result_file, load_result  # noqa: E402

__all__ = ["RESULT_FORMAT", "RESULT_VERSION", "SimulationResult", "is_result_file", "load_result", "merge_results"]
