"""`simulate`: the one way to run a network (the CLI calls it too).

Plain Python: validates the run, lowers the network to a plan, feeds the
jitted driver samples in chunks (bounded memory, a progress bar), and reduces
each chunk's counts into per-step and per-sample totals.
"""
from __future__ import annotations

import contextlib
import time
from typing import Optional

import numba
import numpy as np

from evsim.counters import POPULATION_COUNTERS, PROJECTION_COUNTERS
from evsim.errors import SimulationInputError
from evsim.metrics import cosine_similarity, mean_abs_difference, readout_estimates, step_weights
from evsim.kinds import ENCODERS
from evsim.network import Network
from evsim.plan import ENCODER_CODE, Plan, build_plan, chw_of_internal
from evsim.result import SimulationResult
from evsim.scheduler import run_batch

#: A run of more steps than this is refused as a likely typo (memory grows with T).
MAX_TIMESTEPS = 1 << 20


def simulate(network: Network, inputs: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None, *,
             timesteps: int, encoder: Optional[str] = None, seed: int = 0, threads: Optional[int] = None,
             batch_size: Optional[int] = None, dtype: str = "float32", record_spikes: bool = False,
             record_trace: bool = False, record_counts: bool = False, progress: bool = False,
             ann_outputs: Optional[np.ndarray] = None, sample_ids: Optional[np.ndarray] = None) -> SimulationResult:
    """Simulate `network` on `inputs` (default: the file's own samples) for `timesteps` steps.

    encoder: `analog`, `bernoulli` or `phase` (default: the input population's `encoding`).
    seed: the Bernoulli stream's seed; each sample's stream is keyed by (seed, sample index).
    threads: worker threads (default: all cores); results do not depend on it.
    record_spikes / record_trace / record_counts: keep spike trains, the readout after every step,
    and the full per-sample per-step counts (memory grows with samples x steps: small runs only).
    ann_outputs: the ANN's outputs on `inputs` [n, N], for the agreement measures (default: the
    file's /ann/outputs when running its own samples).
    sample_ids: each input's index in its data set (default 0..n-1): it keys the sample's Bernoulli
    stream, so a subset run (a chunk, a resumed run) gives each sample the spikes of the whole run.
    """
    if inputs is None and ann_outputs is None and network.ann is not None:
        ann_outputs = network.ann.outputs
    inputs, labels = _resolve_samples(network, inputs, labels)
    if ann_outputs is not None and np.shape(ann_outputs) != (len(inputs), network.output_population.size):
        raise SimulationInputError(f"ann_outputs have shape {np.shape(ann_outputs)}; expected "
                                   f"[{len(inputs)}, {network.output_population.size}]")
    encoder = encoder or network.input.encoding
    _check_run(network, inputs, timesteps, encoder, seed, threads, dtype)
    plan = build_plan(network, dtype=np.dtype(dtype))
    flat = inputs.reshape(inputs.shape[0], -1).astype(np.float64)[:, plan.input_chw]
    threads = threads or numba.config.NUMBA_NUM_THREADS
    ids = np.arange(len(flat), dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
    batch_size = batch_size or max(4 * threads, 16)

    acc = _Accumulator(network, plan, len(flat), timesteps, record_spikes, record_trace, record_counts, ann_outputs)
    started = time.perf_counter()
    # An empty batch compiles the driver (or loads it from the disk cache) outside the timed run.
    run_batch(plan, flat[:0], np.zeros(0, np.int64), seed, ENCODER_CODE[encoder], timesteps, *acc.allocate(0))
    startup, started = time.perf_counter() - started, time.perf_counter()
    with _numba_threads(threads), _progress_bar(len(flat), progress) as bar:
        for start in range(0, len(flat), batch_size):
            chunk = np.arange(start, min(start + batch_size, len(flat)))
            outputs = acc.allocate(len(chunk))
            run_batch(plan, flat[chunk], ids[chunk], seed, ENCODER_CODE[encoder], timesteps, *outputs)
            acc.add(chunk, outputs)
            bar.update(len(chunk))
    return acc.result(network, labels, encoder, seed, time.perf_counter() - started, startup, threads, dtype)


def _resolve_samples(network, inputs, labels):
    if inputs is None:
        if network.samples is None:
            raise SimulationInputError("the network carries no /samples: give inputs")
        inputs = network.samples.inputs
        labels = network.samples.labels if labels is None else labels
    inputs = np.asarray(inputs)
    if labels is not None:
        labels = np.asarray(labels)
    return inputs, labels


def _check_run(network, inputs, timesteps, encoder, seed, threads, dtype):
    shape = network.input.shape
    if inputs.ndim != len(shape) + 1 or tuple(inputs.shape[1:]) != tuple(shape):
        raise SimulationInputError(f"inputs have shape {inputs.shape}; the network's input needs [n, {', '.join(map(str, shape))}]")
    if not np.issubdtype(inputs.dtype, np.number) or not np.isfinite(inputs).all():
        raise SimulationInputError("inputs must be finite numbers")
    if encoder not in ENCODERS:
        raise SimulationInputError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    if encoder == "bernoulli" and np.abs(inputs).max(initial=0) > 1:
        raise SimulationInputError("the bernoulli encoder needs |x| <= 1 (x is a firing probability)")
    if encoder == "phase" and (inputs.min(initial=0) < 0 or inputs.max(initial=0) > 1):
        raise SimulationInputError("the phase encoder needs 0 <= x <= 1")
    if not (isinstance(timesteps, (int, np.integer)) and 1 <= timesteps <= MAX_TIMESTEPS):
        raise SimulationInputError(f"timesteps must be an integer from 1 to {MAX_TIMESTEPS}, not {timesteps!r}")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**63):
        raise SimulationInputError(f"seed must be an integer from 0 to 2**63 - 1, not {seed!r}")
    if threads is not None and not (1 <= threads <= numba.config.NUMBA_NUM_THREADS):
        raise SimulationInputError(f"threads must be from 1 to {numba.config.NUMBA_NUM_THREADS}, not {threads}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise SimulationInputError(f"dtype must be float32 or float64, not {dtype}")


@contextlib.contextmanager
def _numba_threads(threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="sample", disable=not enabled, leave=False) as bar:
        yield bar


class _Accumulator:
    """Allocates each chunk's outputs and folds them into bounded-memory totals."""

    def __init__(self, network: Network, plan: Plan, n: int, timesteps: int,
                 record_spikes: bool, record_trace: bool, record_counts: bool, ann_outputs=None):
        self.plan, self.n, self.T = plan, n, timesteps
        out = network.output_population
        self.step_weights = step_weights(timesteps, out.coding, out.phase_period)
        self.output_scale = network.output_scale
        self.ann_outputs = None if ann_outputs is None else np.asarray(ann_outputs, dtype=np.float64)
        self.estimate = np.zeros((n, out.size))
        self.cosine = np.zeros((n, timesteps)) if ann_outputs is not None else None
        self.abs_difference = np.zeros((n, timesteps)) if ann_outputs is not None else None
        self.P, self.Q = len(network.populations), len(network.projections)
        self.N = network.output_population.size
        self.record_spikes, self.record_trace, self.record_counts = record_spikes, record_trace, record_counts
        self.n_slots = 2 * int(plan.pop_size.sum())
        self.float_dtype = plan.weights.dtype
        self.pred = np.zeros((n, timesteps), dtype=np.int32)
        self.pop_step = np.zeros((timesteps, self.P, len(POPULATION_COUNTERS)), dtype=np.int64)
        self.proj_step = np.zeros((timesteps, self.Q, len(PROJECTION_COUNTERS)), dtype=np.int64)
        self.pop_sample = np.zeros((n, self.P, len(POPULATION_COUNTERS)), dtype=np.int64)
        self.proj_sample = np.zeros((n, self.Q, len(PROJECTION_COUNTERS)), dtype=np.int64)
        rows = timesteps if record_trace else 1
        self.readout_v = np.zeros((n, rows, self.N), dtype=np.float64)
        self.readout_mass = np.zeros((n, rows, self.N), dtype=np.int64)
        self.pop_full = np.zeros((n, timesteps, self.P, len(POPULATION_COUNTERS)), np.int64) if record_counts else None
        self.proj_full = np.zeros((n, timesteps, self.Q, len(PROJECTION_COUNTERS)), np.int64) if record_counts else None
        self.spike_coef = np.zeros((n, timesteps, self.n_slots), np.int64) if record_spikes else None
        self.spike_val = np.zeros((n, timesteps, self.n_slots), np.float64) if record_spikes else None

    def allocate(self, b):
        rows = self.T if self.record_trace else 1
        spike_rows, spike_slots = (self.T, self.n_slots) if self.record_spikes else (1, 0)
        return (np.zeros((b, self.T), np.int64),
                np.zeros((b, self.T, self.P, len(POPULATION_COUNTERS)), np.int64),
                np.zeros((b, self.T, self.Q, len(PROJECTION_COUNTERS)), np.int64),
                np.zeros((b, rows, self.N), self.float_dtype),
                np.zeros((b, rows, self.N), np.int64),
                np.zeros((b, self.T, self.N), np.float64),
                np.zeros((b, spike_rows, spike_slots), np.int64),
                np.zeros((b, spike_rows, spike_slots), np.float64))

    def add(self, chunk, outputs):
        pred, pop_counts, proj_counts, readout_v, readout_mass, drive, spike_coef, spike_val = outputs
        estimates = readout_estimates(drive, self.step_weights, self.output_scale)
        self.estimate[chunk] = estimates[:, -1]
        if self.ann_outputs is not None:
            self.cosine[chunk] = cosine_similarity(estimates, self.ann_outputs[chunk])
            self.abs_difference[chunk] = mean_abs_difference(estimates, self.ann_outputs[chunk])
        self.pred[chunk] = pred
        self.pop_step += pop_counts.sum(axis=0)
        self.proj_step += proj_counts.sum(axis=0)
        self.pop_sample[chunk] = pop_counts.sum(axis=1)
        self.proj_sample[chunk] = proj_counts.sum(axis=1)
        self.readout_v[chunk] = readout_v
        self.readout_mass[chunk] = readout_mass
        if self.record_counts:
            self.pop_full[chunk] = pop_counts
            self.proj_full[chunk] = proj_counts
        if self.record_spikes:
            self.spike_coef[chunk] = spike_coef
            self.spike_val[chunk] = spike_val

    def result(self, network, labels, encoder, seed, wall_time, startup, threads, dtype) -> SimulationResult:
        return SimulationResult(
            populations=[p.name for p in network.populations],
            projections=[q.name for q in network.projections],
            population_kinds=[p.kind for p in network.populations],
            population_sizes=[p.size for p in network.populations],
            projection_kinds=[q.kind for q in network.projections],
            timesteps=self.T, encoder=encoder, seed=int(seed), pred=self.pred, labels=labels,
            readout_v=self.readout_v[:, -1], readout_mass=self.readout_mass[:, -1], readout_estimate=self.estimate,
            ann_outputs=self.ann_outputs, cosine=self.cosine, abs_difference=self.abs_difference,
            pop_counts_per_step=self.pop_step, proj_counts_per_step=self.proj_step,
            pop_counts_per_sample=self.pop_sample, proj_counts_per_sample=self.proj_sample,
            ann_macs=network.ann.macs if network.ann else None,
            ann_accuracy=network.ann.accuracy if network.ann else None,
            wall_time=wall_time, startup_time=startup, threads=threads, dtype=str(np.dtype(dtype)),
            pop_counts=self.pop_full, proj_counts=self.proj_full,
            readout_trace=self.readout_v if self.record_trace else None,
            readout_mass_trace=self.readout_mass if self.record_trace else None,
            spikes=self._spike_trains(network) if self.record_spikes else {},
        )

    def _spike_trains(self, network):
        """Spike records per (population, tag) in C-major shape: `out`, or `A`/`B` for bif pairs and their relays."""
        trains = {}
        tagged = _tagged_populations(network)
        for p, pop in enumerate(network.populations):
            if pop.kind == "readout" and not pop.fires:
                continue
            base, size = 2 * int(self.plan.pop_noff[p]), pop.size
            internal = np.argsort(chw_of_internal(pop.shape))
            halves = {"A": base, "B": base + size} if pop.name in tagged else {"out": base}
            for tag, start in halves.items():
                slots = start + internal
                shape = (self.n, self.T, *pop.shape)
                trains[(pop.name, tag)] = (self.spike_coef[:, :, slots].reshape(shape),
                                           self.spike_val[:, :, slots].reshape(shape))
        return trains


def _tagged_populations(network: Network) -> set[str]:
    """bif populations and the relays they feed: their events carry A/B tags."""
    tagged = set()
    for pop in network.populations:  # topological order: a relay's source is settled before it
        if pop.kind == "bif" or (pop.kind == "relay" and network.incoming(pop.name)[0].source in tagged):
            tagged.add(pop.name)
    return tagged

