"""Runs spread over a Dask cluster: one task per chunk of samples, merged as a streamed run's chunks are.

The client checks the run, sends each network to the cluster once and
submits one task per chunk of samples (its inputs, labels, the ANN's
outputs and its samples' indices, which key their Bernoulli streams).
A worker keeps one `Simulator` per network, dtype and thread count, so
each worker process lowers the network and compiles the engine (or loads
it from Numba's disk cache) once, on its first task, whatever the number
of tasks it runs. Chunks are merged in sample order by
`evsim.result.merge_results`, as a local streamed run's are, so the
result is the local run's whatever the number of workers, the chunk size
and the order tasks finish in.

A worker that dies mid-task: the scheduler runs its task again elsewhere
(up to `distributed.scheduler.allowed-failures` times, default 3); a task
that raises is retried `RETRIES` times. Each chunk is taken once, by its
first sample, so nothing is lost or counted twice.

The network travels as the argument of a task (`_hold`) that returns it:
the scheduler keeps the task, so if every worker holding the network dies
it is recomputed, where scattered data would be lost with its worker.
Dask (the `distributed` extra) is imported only here, and only when used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import pickle
import threading
import time
import uuid
from collections import OrderedDict
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from evsim.errors import EvsimError, SimulationInputError
from evsim.network import Network
from evsim.result import SimulationResult, merge_results
from evsim.runs import DEFAULT_CHUNK
from evsim.simulate import RunOptions, RunSamples, Simulator, check_dtype, check_run

#: Times a task that raised is run again (a dead worker's task is rerun by the scheduler anyway).
RETRIES = 2
#: Tasks kept submitted per worker thread (counted as each task finishes, so workers that join get work):
#: enough to keep every worker busy, few enough to bound memory.
TASKS_PER_THREAD = 2
#: How long a client waits for a scheduler to answer.
CONNECT_TIMEOUT = "10s"
#: Simulators a worker process keeps (least recently used dropped): enough for a comparison's networks.
KEPT_SIMULATORS = 8


class ClusterError(EvsimError):
    """The cluster could not be reached, or failed a chunk of samples."""


class Job(NamedTuple):
    """One network's run: its samples, their indices in the data set (None: 0..n-1) and the ANN's signs."""

    network: Network
    samples: RunSamples
    sample_ids: Optional[np.ndarray] = None
    ann_signs: object = None
    name: str = "the run"  # in errors


class Chunk(NamedTuple):
    """A task: rows `rows` of job `job`."""

    job: int
    rows: np.ndarray


def require_distributed():
    """The `distributed` module, or a clear error saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise EvsimError("running on a Dask cluster needs the distributed extra: pip install 'evsim[distributed]'") from None
    return distributed


@contextlib.contextmanager
def connect(address: str):
    """A client of the scheduler at `address` (`tcp://host:port`), or of a new local cluster (`local:N` workers).

    A local cluster is N worker processes of one thread each, bound to 127.0.0.1, closed on exit.
    """
    distributed = require_distributed()
    if address.startswith("local:"):
        try:
            workers = int(address[len("local:"):])
            if workers < 1:
                raise ValueError
        except ValueError:
            raise ClusterError(f"--dask {address}: local:N needs a number of workers N >= 1") from None
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"--dask {address}: no Dask scheduler answers there ({err})") from None
    with client:
        yield client


def run_all(client, jobs: Sequence[Job], options: RunOptions, *, dtype: str = "float32", threads: Optional[int] = None,
            chunk_size: Optional[int] = None, progress: bool = False) -> list[SimulationResult]:
    """Each job's result, its chunks run on the cluster side by side (a comparison's networks x chunks).

    `wall_time` is the whole run's elapsed time, `threads` the cluster's threads, `startup_time` the
    workers' compile (or cache load) times added.
    """
    started = time.perf_counter()
    chunk_size = chunk_size or DEFAULT_CHUNK
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise SimulationInputError(f"chunk_size must be an integer >= 1, not {chunk_size!r}")
    for job in jobs:
        if len(job.samples.inputs) == 0:
            raise SimulationInputError(f"{job.name}: no samples to run")
    chunks = [Chunk(j, np.arange(start, min(start + chunk_size, len(job.samples.inputs))))
              for j, job in enumerate(jobs) for start in range(0, len(job.samples.inputs), chunk_size)]
    parts = [{} for _ in jobs]
    for chunk, part in finished_chunks(client, jobs, chunks, options, dtype=dtype, threads=threads, progress=progress):
        parts[chunk.job][int(chunk.rows[0])] = part
    elapsed, cluster_threads = time.perf_counter() - started, sum(client.nthreads().values())
    return [dataclasses.replace(merge_results([part[start] for start in sorted(part)]), wall_time=elapsed,
                                threads=cluster_threads) for part in parts]


def finished_chunks(client, jobs: Sequence[Job], chunks: Sequence[Chunk], options: RunOptions, *, dtype: str = "float32",
                    threads: Optional[int] = None, progress: bool = False) -> Iterator[tuple[Chunk, SimulationResult]]:
    """Run `chunks` of `jobs` on the cluster; yield each chunk with its result as it finishes (in any order).

    Closing the iterator early (an error, Ctrl-C) cancels the chunks not yet finished.
    """
    distributed = require_distributed()
    from tqdm.auto import tqdm

    check_dtype(dtype)
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise SimulationInputError(f"threads must be an integer >= 1, not {threads!r}")
    settled = [check_run(job.network, job.samples, options) for job in jobs]  # each network's default encoder
    held = [_send(client, job) for job in jobs]
    todo = enumerate(chunks)
    running = {}  # future key -> (future, chunk)

    def submit_next():
        position, chunk = next(todo, (None, None))
        if chunk is None:
            return None
        job, (network_key, network, signs) = jobs[chunk.job], held[chunk.job]
        ids = np.arange(len(job.samples.inputs)) if job.sample_ids is None else np.asarray(job.sample_ids)
        future = client.submit(run_chunk, network_key, network, dtype, threads, job.samples.take(chunk.rows),
                               ids[chunk.rows], settled[chunk.job], _rows_of_signs(signs, chunk.rows),
                               key=f"evsim-chunk-{uuid.uuid4().hex}", retries=RETRIES, pure=False,
                               priority=-position)  # in order (tasks submitted together would run in any order)
        running[future.key] = future, chunk
        return future

    def top_up():
        """Submit chunks until the cluster's threads have TASKS_PER_THREAD each (or none are left)."""
        window = TASKS_PER_THREAD * max(1, sum(client.nthreads().values()))
        while len(running) < window:
            future = submit_next()
            if future is None:
                return
            queue.add(future)

    queue = distributed.as_completed(loop=client.loop)
    try:
        top_up()
        with tqdm(total=sum(len(c.rows) for c in chunks), unit="sample", disable=not progress, leave=False) as bar:
            for future in queue:
                future, chunk = running.pop(future.key)
                part = _result(future, jobs[chunk.job], chunk)
                top_up()
                bar.update(len(chunk.rows))
                yield chunk, part
    finally:
        client.cancel([future for future, _ in running.values()])  # the networks are released with `held`


def _send(client, job: Job):
    """The job's network (without its samples: each task carries its own) and a signs function, sent once.

    The network's key is its content's hash, so that later runs of the same network find the workers'
    simulators of it built.
    """
    network = job.network.replace(samples=None)
    if network.ann is not None:
        network = network.replace(ann=dataclasses.replace(network.ann, outputs=None))
    key = f"evsim-network-{hashlib.sha256(pickle.dumps(network)).hexdigest()}"
    signs = job.ann_signs
    if callable(signs):
        signs = client.submit(_hold, signs, key=f"evsim-signs-{uuid.uuid4().hex}")
    return key, client.submit(_hold, network, key=key), signs


def _hold(value):
    return value


def _rows_of_signs(signs, rows: np.ndarray):
    """The chunk's part of the ANN's signs: a mapping's rows, or the function itself (it sees the chunk's inputs)."""
    if signs is None or not isinstance(signs, dict):
        return signs
    return {name: np.asarray(array)[rows] for name, array in signs.items()}


def _result(future, job: Job, chunk: Chunk) -> SimulationResult:
    """The chunk's result; the task's own error as it is, or the cluster's failure as a clear error."""
    try:
        return future.result()
    except EvsimError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the cluster raised, named with the samples it lost
        rows = chunk.rows
        raise ClusterError(f"{job.name}: the cluster failed samples {rows[0]}..{rows[-1]} "
                           f"({type(err).__name__}: {err})") from None


# -- on the workers ------------------------------------------------------------------

_simulators: "OrderedDict[tuple, Simulator]" = OrderedDict()  # this worker process's, most recently used last
_simulators_lock = threading.Lock()


def run_chunk(network_key: str, network: Network, dtype: str, threads: Optional[int], samples: RunSamples,
              ids: np.ndarray, options: RunOptions, ann_signs) -> SimulationResult:
    """A task: one chunk of samples on this worker's simulator of the network."""
    return _simulator(network_key, network, dtype, threads).run_options(samples, options, sample_ids=ids,
                                                                         ann_signs=ann_signs)


def _simulator(network_key: str, network: Network, dtype: str, threads: Optional[int]) -> Simulator:
    """This worker's simulator of the network, built (lowered, compiled or loaded from cache) on its first task.

    One thread per task unless told otherwise: a worker runs as many tasks side by side as it has threads.
    The lock makes a worker's concurrent first tasks build it once.
    """
    key = (network_key, dtype, threads)
    with _simulators_lock:
        if key not in _simulators:
            _simulators[key] = Simulator(network, dtype=dtype, threads=threads or 1)
            while len(_simulators) > KEPT_SIMULATORS:
                _simulators.popitem(last=False)
        _simulators.move_to_end(key)
        return _simulators[key]
