"""Running a network: `Simulator` (lowered and compiled once, run as often as needed) and `simulate`.

Plain Python: validates a run, feeds the jitted driver samples in chunks
(bounded memory, a progress bar), and reduces each chunk's counts into
per-step and per-sample totals. What one run is (steps, encoder, seed,
batching, recordings) is one frozen `RunOptions`; which samples it runs is
`resolve_samples`. The CLI, streamed runs (evsim/runs.py) and comparisons
(evsim/analysis/compare.py) all go through these.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numba
import numpy as np

from evsim import kinds
from evsim.analysis.metrics import cosine_similarity, mean_abs_difference, readout_estimates, step_weights
from evsim.counters import NOT_COUNTED, POPULATION_COUNTERS, POPULATION_VALUES, PROJECTION_COUNTERS
from evsim.engine.plan import P_NOFF, P_SIZE, Workspace, build_plan, chw_of_internal, workspace
from evsim.engine.jit import is_ready
from evsim.engine.scheduler import run_batch
from evsim.errors import SimulationInputError
from evsim.network import Network
from evsim.result import SimulationResult

#: Said (through `report`) before the engine compiles: the first run of a dtype, or after evsim changed.
COMPILE_NOTICE = "compiling the engine, first run only, ~15-30 s (later runs load it from Numba's cache)"
#: A run of more steps than this is refused as a likely typo (memory grows with T).
MAX_TIMESTEPS = 1 << 20


@dataclass(frozen=True)
class RunOptions:
    """What one run is, apart from its samples: the fields a resumable run's manifest records.

    encoder: `analog`, `bernoulli` (alias `poisson`) or `phase` (None: the input population's `encoding`).
    seed: the Bernoulli stream's seed; each sample's stream is keyed by (seed, sample index).
    batch_size: samples per call of the parallel driver (default: 4 per thread, at least 16).
    record_spikes / record_trace / record_counts: keep spike trains, the readout after every step,
    and the full per-sample per-step counts (memory grows with samples x steps: small runs only).
    """

    timesteps: int
    encoder: Optional[str] = None
    seed: int = 0
    batch_size: Optional[int] = None
    record_spikes: bool = False
    record_trace: bool = False
    record_counts: bool = False

    def for_network(self, network: Network) -> "RunOptions":
        """These options with the encoder settled (the input population's by default), checked."""
        encoder = kinds.ENCODER_ALIASES.get(self.encoder, self.encoder) or network.input.encoding
        options = dataclasses.replace(self, encoder=encoder)
        options.check()
        return options

    def check(self) -> None:
        if self.encoder is not None and self.encoder not in kinds.ENCODERS and self.encoder not in kinds.ENCODER_ALIASES:
            names = ", ".join([*kinds.ENCODERS, *(f"{a} (= {e})" for a, e in kinds.ENCODER_ALIASES.items())])
            raise SimulationInputError(f"unknown encoder {self.encoder!r}; choose one of {names}")
        if not (_is_int(self.timesteps) and 1 <= self.timesteps <= MAX_TIMESTEPS):
            raise SimulationInputError(f"timesteps must be an integer from 1 to {MAX_TIMESTEPS}, not {self.timesteps!r}")
        if not (_is_int(self.seed) and 0 <= self.seed < 2**63):
            raise SimulationInputError(f"seed must be an integer from 0 to 2**63 - 1, not {self.seed!r}")
        if self.batch_size is not None and not (_is_int(self.batch_size) and self.batch_size >= 1):
            raise SimulationInputError(f"batch_size must be an integer >= 1, not {self.batch_size!r}")

    def manifest(self) -> dict:
        """The options as plain JSON types (batch size left out: it changes no result)."""
        fields = dataclasses.asdict(self)
        fields.pop("batch_size")
        return {k: (int(v) if _is_int(v) and not isinstance(v, bool) else v) for k, v in fields.items()}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class RunSamples(NamedTuple):
    """The samples of a run: inputs [n, *input shape], labels [n] or None, the ANN's outputs [n, N] or None."""

    inputs: np.ndarray
    labels: Optional[np.ndarray]
    ann_outputs: Optional[np.ndarray]

    def take(self, rows: np.ndarray) -> "RunSamples":
        """These samples' rows `rows`."""
        return RunSamples(*(None if array is None else array[rows] for array in self))


def resolve_samples(network: Network, inputs=None, labels=None, n: Optional[int] = None,
                    ann_outputs=None) -> RunSamples:
    """The samples a run uses: `inputs`/`labels` as given, else the network's own `/samples` (with its
    `/ann/outputs`); only the first `n` when `n` is given."""
    if inputs is None:
        if network.samples is None:
            raise SimulationInputError("the network carries no /samples: give inputs")
        inputs, labels = network.samples.inputs, network.samples.labels if labels is None else labels
        if ann_outputs is None and network.ann is not None:
            ann_outputs = network.ann.outputs
    inputs = np.asarray(inputs)
    labels = None if labels is None else np.asarray(labels)
    if n is not None:
        if inputs.ndim and n > len(inputs):  # running fewer samples than asked would go unnoticed
            raise SimulationInputError(f"{n} samples asked for; the inputs hold only {len(inputs)}")
        inputs, labels = inputs[:n], None if labels is None else labels[:n]
        ann_outputs = None if ann_outputs is None else ann_outputs[:n]
    return RunSamples(inputs, labels, ann_outputs)


class Simulator:
    """A network lowered and compiled once, to run on any samples as often as needed.

    dtype: float32 or float64, the precision of membrane potentials and weights.
    threads: worker threads (default: all cores); results do not depend on it.
    report: told `COMPILE_NOTICE` before the engine compiles (not when it loads from Numba's cache).

    Streaming one sample per call costs the simulation and little more: the
    plan is built and the engine compiled (or loaded from Numba's disk cache)
    here, once.
    """

    def __init__(self, network: Network, *, dtype: str = "float32", threads: Optional[int] = None,
                 report: Optional[Callable[[str], None]] = None):
        check_dtype(dtype)
        if threads is not None and not (1 <= threads <= numba.config.NUMBA_NUM_THREADS):
            raise SimulationInputError(f"threads must be from 1 to {numba.config.NUMBA_NUM_THREADS}, not {threads}")
        self.network = network
        self.dtype = str(np.dtype(dtype))
        self.threads = threads or numba.config.NUMBA_NUM_THREADS
        self._pool = None  # worker threads, started by the first run that uses more than one
        self._local = threading.local()  # each thread's Workspace
        started = time.perf_counter()
        self.plan = build_plan(network, dtype=np.dtype(dtype))
        # An empty batch compiles the driver (or loads it from the disk cache) before any timed run.
        options = RunOptions(timesteps=1).for_network(network)
        args = (self.plan, self._workspace(), np.zeros((0, network.input.size)), np.zeros((0, 0), np.int8),
                np.zeros(0, np.int64), 0, kinds.ENCODER_CODES[options.encoder], 1,
                *_Accumulator(self, 0, options, None).allocate(0))
        if report is not None and not is_ready(run_batch, args):
            report(COMPILE_NOTICE)
        run_batch(*args)
        self._startup = time.perf_counter() - started  # reported by the first run

    def run(self, inputs: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None, *, timesteps: int,
            encoder: Optional[str] = None, seed: int = 0, batch_size: Optional[int] = None,
            record_spikes: bool = False, record_trace: bool = False, record_counts: bool = False,
            progress: bool = False, ann_outputs: Optional[np.ndarray] = None,
            sample_ids: Optional[np.ndarray] = None, ann_signs=None, client=None,
            chunk_size: Optional[int] = None) -> SimulationResult:
        """Simulate `inputs` (default: the network's own samples) for `timesteps` steps (`RunOptions` says
        what the other options mean).

        ann_outputs: the ANN's outputs on `inputs` [n, N], for the agreement measures (default: the
        file's /ann/outputs when running its own samples).
        sample_ids: each input's index in its data set (default 0..n-1): it keys the sample's Bernoulli
        stream, so a subset run (a chunk, a resumed run) gives each sample the spikes of the whole run.
        ann_signs: the ANN's activations (or their signs) of the hidden populations, for the counts of
        spikes of inactivated neurons (docs/accounting.md): a mapping {population: [n, *shape]}, or a
        function of a batch of inputs [b, *input shape] returning such a mapping for it (so that they
        are computed batch by batch, in bounded memory: `evsim.weights_io.ann_signs`).
        client: a `distributed.Client`: the run is spread over its cluster, one task per `chunk_size`
        samples (default 64), and merged as a streamed run's chunks are (evsim/distributed.py); the
        result is the local run's.
        """
        options = RunOptions(timesteps=timesteps, encoder=encoder, seed=seed, batch_size=batch_size,
                             record_spikes=record_spikes, record_trace=record_trace, record_counts=record_counts)
        return self.run_options(resolve_samples(self.network, inputs, labels, ann_outputs=ann_outputs), options,
                                progress=progress, sample_ids=sample_ids, ann_signs=ann_signs, client=client,
                                chunk_size=chunk_size)

    def run_options(self, samples: RunSamples, options: RunOptions, *, progress: bool = False,
                    sample_ids: Optional[np.ndarray] = None, ann_signs=None, client=None,
                    chunk_size: Optional[int] = None) -> SimulationResult:
        """`run`, with the samples and options already gathered."""
        network = self.network
        options = check_run(network, samples, options)
        if client is not None:
            from evsim import distributed

            return distributed.run_all(client, [distributed.Job(network, samples, sample_ids, ann_signs)], options,
                                       dtype=self.dtype, threads=None, chunk_size=chunk_size, progress=progress)[0]
        inputs, labels, ann_outputs = samples
        started = time.perf_counter()
        flat = inputs.reshape(inputs.shape[0], -1).astype(np.float64)[:, self.plan.input_chw]
        ids = np.arange(len(flat), dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
        batch_size = options.batch_size or max(4 * self.threads, 16)
        signs = _SignSource(self, ann_signs, inputs) if ann_signs is not None else None
        acc = _Accumulator(self, len(flat), options, ann_outputs)
        encoder = kinds.ENCODER_CODES[options.encoder]
        startup, self._startup = self._startup + time.perf_counter() - started, 0.0
        started = time.perf_counter()
        with _progress_bar(len(flat), progress) as bar:
            for start in range(0, len(flat), batch_size):
                chunk = np.arange(start, min(start + batch_size, len(flat)))
                outputs = acc.allocate(len(chunk))
                chunk_signs = signs.chunk(chunk) if signs else np.zeros((len(chunk), 0), np.int8)
                self._run_chunk((flat[chunk], chunk_signs, ids[chunk]), options.seed, encoder, options.timesteps,
                                outputs)
                acc.add(chunk, outputs)
                bar.update(len(chunk))
        return acc.result(labels, time.perf_counter() - started, startup, signs.populations if signs else [])

    def _run_chunk(self, inputs: tuple, seed: int, encoder: int, timesteps: int, outputs: tuple) -> None:
        """Run a chunk of samples into `outputs`: in this thread, or sample by sample over the worker threads.

        The jitted driver releases the GIL, so threads run samples side by side; each sample writes only
        its own rows, so the result does not depend on how they are shared out.
        """
        n = len(inputs[0])
        if self.threads == 1 or n == 1:
            run_batch(self.plan, self._workspace(), *inputs, seed, encoder, timesteps, *outputs)
            return

        def one(b):
            rows = slice(b, b + 1)
            run_batch(self.plan, self._workspace(), *(x[rows] for x in inputs), seed, encoder, timesteps,
                      *(o[rows] for o in outputs))

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="evsim")
        list(self._pool.map(one, range(n)))  # list(): wait, and raise what a worker raised

    def _workspace(self) -> Workspace:
        """This thread's scratch state for the engine (allocated on its first sample)."""
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = workspace(self.plan)
        return work


def simulate(network: Network, inputs: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None, *,
             timesteps: int, threads: Optional[int] = None, dtype: str = "float32", **options) -> SimulationResult:
    """Simulate `network` once: `Simulator(network, dtype=..., threads=...).run(inputs, labels, ...)`.

    To run the same network several times (sample by sample, chunk by chunk),
    keep a `Simulator`: it lowers and compiles once.
    """
    return Simulator(network, dtype=dtype, threads=threads).run(inputs, labels, timesteps=timesteps, **options)


def check_dtype(dtype) -> None:
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise SimulationInputError(f"dtype must be float32 or float64, not {dtype}")


def check_run(network: Network, samples: RunSamples, options: RunOptions) -> RunOptions:
    """The options with the encoder settled, once the samples are checked against the network and the options
    (shape, type, range, labels, the ANN's outputs, the encoder's range), before any work; warns
    (`InputRangeWarning`) when the inputs fall outside the range the network was calibrated on."""
    options = options.for_network(network)
    inputs, labels, ann_outputs = samples
    if ann_outputs is not None and np.shape(ann_outputs) != (len(inputs), network.output_population.size):
        raise SimulationInputError(f"ann_outputs have shape {np.shape(ann_outputs)}; expected "
                                   f"[{len(inputs)}, {network.output_population.size}]")
    _check_inputs(network, inputs, options.encoder)
    _check_labels(network, inputs, labels)
    _warn_outside_calibration(network, inputs)
    return options


def _check_inputs(network, inputs, encoder):
    shape = network.input.shape
    if inputs.ndim != len(shape) + 1 or tuple(inputs.shape[1:]) != tuple(shape):
        raise SimulationInputError(f"inputs have shape {inputs.shape}; the network's input needs [n, {', '.join(map(str, shape))}]")
    if len(inputs) == 0:
        raise SimulationInputError(f"inputs hold no samples (shape {inputs.shape})")
    if not (np.issubdtype(inputs.dtype, np.integer) or np.issubdtype(inputs.dtype, np.floating)):
        raise SimulationInputError(f"inputs must be real numbers (integer or floating point), not {inputs.dtype}")
    if not np.isfinite(inputs).all():
        raise SimulationInputError("inputs must be finite numbers")
    low, high = kinds.ENCODER_RANGES[encoder]
    if inputs.min(initial=0) < low or inputs.max(initial=0) > high:
        raise SimulationInputError(f"the {encoder} encoder needs {_RANGE_WORDING[encoder]}; the inputs span "
                                   f"[{inputs.min():g}, {inputs.max():g}]")


def _check_labels(network, inputs, labels):
    """Labels are class indices of the readout: integers in [0, outputs), one per sample (as /samples/labels)."""
    if labels is None:
        return
    classes = network.output_population.size
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(inputs),):
        raise SimulationInputError(f"labels must be integers of shape [{len(inputs)}], not {labels.dtype} {labels.shape}")
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        i = int(np.argmax(outside))
        raise SimulationInputError(f"labels must be class indices in [0, {classes}) (the readout has {classes} "
                                   f"outputs); label {i} is {labels[i]} ({int(outside.sum())} of {len(labels)} outside)")


class InputRangeWarning(UserWarning):
    """Inputs outside the range the network was calibrated on (its /meta `calibration_range`)."""


def calibration_range(network: Network) -> Optional[tuple[float, float]]:
    """(min, max) of the inputs the exporter calibrated the network on, from /meta; None when not recorded."""
    value = (network.meta or {}).get("calibration_range")
    return None if value is None else (float(value[0]), float(value[1]))


def _warn_outside_calibration(network, inputs):
    """Inputs on another scale than the calibration's (0..255 pixels for a [0, 1] network) run, but mean little."""
    expected = calibration_range(network)
    if expected is None:
        return
    low, high = float(inputs.min()), float(inputs.max())
    span = expected[1] - expected[0]
    tolerance = 1e-6 * max(span, abs(expected[0]), abs(expected[1]), 1.0)
    if low < expected[0] - tolerance or high > expected[1] + tolerance:
        warnings.warn(f"the inputs span [{low:g}, {high:g}], outside the range the network was calibrated on "
                      f"[{expected[0]:g}, {expected[1]:g}] (/meta calibration_range): results may mean little",
                      InputRangeWarning, stacklevel=3)


_RANGE_WORDING = {kinds.BERNOULLI: "|x| <= 1 (x is a firing probability)", kinds.PHASE_ENCODER: "0 <= x <= 1"}


class _NoBar:
    def update(self, n):
        pass


@contextlib.contextmanager
def _progress_bar(total, enabled):
    if not enabled:  # a disabled tqdm still costs a quarter of a millisecond: too much for one-sample calls
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="sample", leave=False) as bar:
        yield bar


class _SignSource:
    """The ANN's activation signs of a run, batch by batch, as the engine takes them: int8 per neuron (internal
    order), NOT_COUNTED in the populations the ANN gives none for."""

    def __init__(self, simulator: Simulator, ann_signs, inputs: np.ndarray):
        self.simulator, self.source, self.inputs = simulator, ann_signs, inputs
        self.populations = None if callable(ann_signs) else list(ann_signs)  # a function's: known from its first batch
        if not callable(ann_signs):
            self._check(ann_signs, len(inputs))

    def _check(self, signs: dict, n: int) -> None:
        network = self.simulator.network
        for name, array in signs.items():
            try:
                pop = network.population(name)
            except KeyError:
                raise SimulationInputError(f"ann_signs: {name!r} is not a population of the network") from None
            if not pop.spec.membrane or name == network.output:
                raise SimulationInputError(f"ann_signs: {name!r} is not a hidden population with a membrane")
            if np.shape(array) != (n, *pop.shape):
                raise SimulationInputError(f"ann_signs: {name!r} has shape {np.shape(array)}; expected "
                                           f"[{n}, {', '.join(map(str, pop.shape))}]")
            if not np.isfinite(np.asarray(array, dtype=np.float64)).all():
                raise SimulationInputError(f"ann_signs: {name!r} must be finite")

    def chunk(self, rows: np.ndarray) -> np.ndarray:
        """Signs [len(rows), neurons] for these rows of the run's inputs."""
        plan, network = self.simulator.plan, self.simulator.network
        if callable(self.source):
            signs = self.source(self.inputs[rows])
            self._check(signs, len(rows))
            if self.populations is None:
                self.populations = list(signs)
            elif list(signs) != self.populations:
                raise SimulationInputError("ann_signs: the function gave other populations for another batch")
        else:
            signs = {name: np.asarray(array)[rows] for name, array in self.source.items()}
        out = np.full((len(rows), int(plan.pop_rec[:, P_SIZE].sum())), NOT_COUNTED, dtype=np.int8)
        for p, pop in enumerate(network.populations):
            if pop.name in signs:
                values = np.sign(np.asarray(signs[pop.name], dtype=np.float64).reshape(len(rows), -1))
                start = int(plan.pop_rec[p, P_NOFF])
                out[:, start:start + pop.size] = values[:, chw_of_internal(pop.shape)].astype(np.int8)
        return out


class _Accumulator:
    """Allocates each chunk's outputs and folds them into bounded-memory totals."""

    def __init__(self, simulator: Simulator, n: int, options: RunOptions, ann_outputs=None):
        network, plan = simulator.network, simulator.plan
        self.network, self.plan, self.options, self.n, self.T = network, plan, options, n, options.timesteps
        self.dtype, self.threads = simulator.dtype, simulator.threads
        out = network.output_population
        self.step_weights = step_weights(self.T, out.coding, out.phase_period, out.bias_onset)
        self.output_scale = network.output_scale
        self.ann_outputs = None if ann_outputs is None else np.asarray(ann_outputs, dtype=np.float64)
        self.estimate = np.zeros((n, out.size))
        self.cosine = np.zeros((n, self.T)) if ann_outputs is not None else None
        self.abs_difference = np.zeros((n, self.T)) if ann_outputs is not None else None
        self.P, self.Q = len(network.populations), len(network.projections)
        self.N = out.size
        self.n_slots = 2 * int(plan.pop_rec[:, P_SIZE].sum())
        self.pred = np.zeros((n, self.T), dtype=np.int32)
        self.pop_step = np.zeros((self.T, self.P, len(POPULATION_COUNTERS)), dtype=np.int64)
        self.proj_step = np.zeros((self.T, self.Q, len(PROJECTION_COUNTERS)), dtype=np.int64)
        self.pop_sample = np.zeros((n, self.P, len(POPULATION_COUNTERS)), dtype=np.int64)
        self.proj_sample = np.zeros((n, self.Q, len(PROJECTION_COUNTERS)), dtype=np.int64)
        self.values_step = np.zeros((self.T, self.P, len(POPULATION_VALUES)))
        self.values_sample = np.zeros((n, self.P, len(POPULATION_VALUES)))
        rows = self.T if options.record_trace else 1
        self.readout_v = np.zeros((n, rows, self.N), dtype=np.float64)
        self.readout_mass = np.zeros((n, rows, self.N), dtype=np.int64)
        full = options.record_counts
        self.pop_full = np.zeros((n, self.T, self.P, len(POPULATION_COUNTERS)), np.int64) if full else None
        self.proj_full = np.zeros((n, self.T, self.Q, len(PROJECTION_COUNTERS)), np.int64) if full else None
        self.values_full = np.zeros((n, self.T, self.P, len(POPULATION_VALUES))) if full else None
        spikes = options.record_spikes
        self.spike_coef = np.zeros((n, self.T, self.n_slots), np.int64) if spikes else None
        self.spike_val = np.zeros((n, self.T, self.n_slots), np.float64) if spikes else None

    def allocate(self, b):
        rows = self.T if self.options.record_trace else 1
        spike_rows, spike_slots = (self.T, self.n_slots) if self.options.record_spikes else (1, 0)
        return (np.zeros((b, self.T), np.int64),
                np.zeros((b, self.T, self.P, len(POPULATION_COUNTERS)), np.int64),
                np.zeros((b, self.T, self.P, len(POPULATION_VALUES)), np.float64),
                np.zeros((b, self.T, self.Q, len(PROJECTION_COUNTERS)), np.int64),
                np.zeros((b, rows, self.N), self.plan.floats.dtype),
                np.zeros((b, rows, self.N), np.int64),
                np.zeros((b, self.T if self.ann_outputs is not None else 1, self.N), np.float64),  # drive
                np.zeros((b, spike_rows, spike_slots), np.int64),
                np.zeros((b, spike_rows, spike_slots), np.float64))

    def add(self, chunk, outputs):
        pred, pop_counts, pop_values, proj_counts, readout_v, readout_mass, drive, spike_coef, spike_val = outputs
        estimates = readout_estimates(drive, self.step_weights[-drive.shape[1]:], self.output_scale)
        self.estimate[chunk] = estimates[:, -1]
        if self.ann_outputs is not None:
            self.cosine[chunk] = cosine_similarity(estimates, self.ann_outputs[chunk])
            self.abs_difference[chunk] = mean_abs_difference(estimates, self.ann_outputs[chunk])
        self.pred[chunk] = pred
        self.pop_step += pop_counts.sum(axis=0)
        self.proj_step += proj_counts.sum(axis=0)
        self.pop_sample[chunk] = pop_counts.sum(axis=1)
        self.proj_sample[chunk] = proj_counts.sum(axis=1)
        self.values_step += pop_values.sum(axis=0)
        self.values_sample[chunk] = pop_values.sum(axis=1)
        self.readout_v[chunk] = readout_v
        self.readout_mass[chunk] = readout_mass
        if self.options.record_counts:
            self.pop_full[chunk] = pop_counts
            self.proj_full[chunk] = proj_counts
            self.values_full[chunk] = pop_values
        if self.options.record_spikes:
            self.spike_coef[chunk] = spike_coef
            self.spike_val[chunk] = spike_val

    def result(self, labels, wall_time, startup, sin_populations) -> SimulationResult:
        network, options = self.network, self.options
        return SimulationResult(
            populations=[p.name for p in network.populations],
            projections=[q.name for q in network.projections],
            population_kinds=[p.kind for p in network.populations],
            population_sizes=[p.size for p in network.populations],
            population_units=[p.units for p in network.populations],
            population_biased=[int(np.count_nonzero(p.expand("bias"))) if p.spec.membrane else 0
                               for p in network.populations],
            projection_sources=[q.source for q in network.projections],
            projection_kinds=[q.kind for q in network.projections],
            projection_targets=[q.target for q in network.projections],
            timesteps=self.T, encoder=options.encoder, seed=int(options.seed), pred=self.pred, labels=labels,
            readout_v=self.readout_v[:, -1], readout_mass=self.readout_mass[:, -1], readout_estimate=self.estimate,
            ann_outputs=self.ann_outputs, cosine=self.cosine, abs_difference=self.abs_difference,
            pop_counts_per_step=self.pop_step, proj_counts_per_step=self.proj_step,
            pop_counts_per_sample=self.pop_sample, proj_counts_per_sample=self.proj_sample,
            pop_values_per_step=self.values_step, pop_values_per_sample=self.values_sample,
            sin_populations=list(sin_populations),
            ann_macs=network.ann.macs if network.ann else None,
            ann_accuracy=network.ann.accuracy if network.ann else None,
            wall_time=wall_time, startup_time=startup, threads=self.threads, dtype=self.dtype,
            pop_counts=self.pop_full, proj_counts=self.proj_full, pop_values=self.values_full,
            readout_trace=self.readout_v if options.record_trace else None,
            readout_mass_trace=self.readout_mass if options.record_trace else None,
            spikes=self._spike_trains() if options.record_spikes else {},
        )

    def _spike_trains(self):
        """Spike records per (population, tag) in C-major shape: `out`, or `A`/`B` for bif pairs and their relays."""
        trains = {}
        tagged = tagged_populations(self.network)
        for p, pop in enumerate(self.network.populations):
            if pop.spec.membrane and not pop.fires:
                continue  # a potential readout emits nothing
            base, size = 2 * int(self.plan.pop_rec[p, P_NOFF]), pop.size
            internal = np.argsort(chw_of_internal(pop.shape))
            halves = {"A": base, "B": base + size} if pop.name in tagged else {"out": base}
            for tag, start in halves.items():
                slots = start + internal
                shape = (self.n, self.T, *pop.shape)
                trains[(pop.name, tag)] = (self.spike_coef[:, :, slots].reshape(shape),
                                           self.spike_val[:, :, slots].reshape(shape))
        return trains


def tagged_populations(network: Network) -> set[str]:
    """Populations whose events carry A/B tags: bif pairs, and what passes their events on (relays)."""
    tagged = set()
    for pop in network.populations:  # topological order: a relay's source is settled before it
        tags = pop.spec.tags
        if tags == "own" or (tags == "source" and network.incoming(pop.name)[0].source in tagged):
            tagged.add(pop.name)
    return tagged
