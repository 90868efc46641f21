"""Scaling of a run on a local Dask cluster: 1 worker process vs 2 (docs/distributed.md).

Each cluster's workers are warmed first (a small run: each worker builds its
simulator, compiling or loading the engine from Numba's cache, once), then the
same run is timed `--repeats` times; the median elapsed time is reported with
the machine's load average and the CPU time the simulating processes got
(their user + system time over the elapsed time: the cores they actually
had, which on a shared machine may be far fewer than the workers). The run
here, in one thread, is the baseline; every result is checked equal to it.

    python benchmarks/distributed_scaling.py [--samples 128] [--timesteps 256] [--workers 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from evsim import Simulator
from evsim.distributed import Job, run_all
from evsim.simulate import RunOptions, resolve_samples
from evsim.weights_io import read_network

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist_cnn.h5"


def timed(run, cpu_time, repeats):
    """Median elapsed seconds, cores obtained (CPU seconds / elapsed seconds, over all repeats), the last result."""
    times, result = [], None
    cpu = cpu_time()
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), (cpu_time() - cpu) / sum(times), result


def _process_cpu_time():
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    network = read_network(EXAMPLE)
    samples = resolve_samples(network, n=args.samples)
    options = RunOptions(timesteps=args.timesteps)
    rows = []
    simulator = Simulator(network, threads=1)
    local_time, cores, local = timed(lambda: simulator.run_options(samples, options), _process_cpu_time, args.repeats)
    rows.append({"where": "here, 1 thread", "seconds": local_time, "cores": cores, "load": os.getloadavg()[0]})
    for workers in (int(w) for w in args.workers.split(",")):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            run_all(client, [Job(network, samples.take(np.arange(workers)))], options, chunk_size=1)  # warm each worker
            seconds, cores, result = timed(lambda: run_all(client, [Job(network, samples)], options,
                                                           chunk_size=args.chunk_size)[0],
                                           lambda: sum(client.run(_process_cpu_time).values()), args.repeats)
            assert np.array_equal(result.pred, local.pred) and np.array_equal(result.pop_counts_per_step,
                                                                              local.pop_counts_per_step)
            rows.append({"where": f"local cluster, {workers} worker(s) x 1 thread", "seconds": seconds,
                         "cores": cores, "load": os.getloadavg()[0]})
    report = {"samples": args.samples, "timesteps": args.timesteps, "chunk_size": args.chunk_size,
              "cores": os.cpu_count(), "rows": rows}
    for row in rows:
        print(f"{row['where']:<38} {row['seconds']:7.2f} s  {args.samples / row['seconds']:6.1f} samples/s  "
              f"cores obtained {row['cores']:.2f}  {args.samples / row['seconds'] / row['cores']:6.1f} samples/CPU-s  "
              f"load average {row['load']:.1f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
