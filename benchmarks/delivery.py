"""Micro-benchmark of event delivery: G AC/s per core, net of the fixed per-step cost, and the bundled CNN.

    python benchmarks/delivery.py                     # every case, 5 interleaved rounds, medians
    python benchmarks/delivery.py --cases conv --rounds 9
    python benchmarks/delivery.py --bare                # the delivery kernel alone, on synthetic steps

Cases: `dense` (Bernoulli 1000 -> 2000, p = 0.1) and `conv` ([32, 16, 16] -> 3x3 pad 1 -> [64, 16, 16],
p = 0.1), the networks of benchmarks/networks.py `delivery_network`, each also run `silent` (every pixel
2^-60: hashed every step like an active one, never spiking) and `zero` (all pixels 0: nothing hashed, the
fixed cost benchmarks/run_benchmarks.py subtracts): net throughput = AC / (active - silent time), by wall
time and by this thread's CPU time (`_cpu`: what load from other processes disturbs least); `cnn`:
examples/mnist_cnn.h5 (pools folded: a 10x10 stride 2 conv and a 4096 -> 10 dense), analog input, ms per
sample. One thread, float32, one `Simulator` per case (compiled once). Rounds go round-robin over the cases
(and their silent runs), so load from other processes hits them alike; medians are reported.

`--callgrind`: run under `valgrind --tool=callgrind --instr-atstart=no` (docs/performance.md gives the command):
instrumentation is switched on (callgrind_control) around each timed run only, and each run is dumped apart
(`callgrind_annotate <out>.N` prints its instruction count; the dump's trigger names the case and configuration).
Valgrind emulates no AVX-512: its counts are those of an AVX2 build, comparable with each other, not with time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import networks  # noqa: E402  (benchmarks/networks.py)

ACTIVITY = 0.1
#: The silent run's input: the Bernoulli encoder hashes every nonzero pixel every step whether it spikes or not,
#: so the silent run hashes as many (a pixel of 2^-60 spikes only on a hash of exactly 0: never, in practice)
#: and the difference of the two runs is the cost of the events alone.
SILENT = 2.0 ** -60


def _callgrind(*options: str) -> None:
    for option in options:
        subprocess.run(["callgrind_control", option, str(os.getpid())], check=True, capture_output=True)


def cases(names, samples, steps):
    """name -> (simulator, {config: inputs}, timesteps)."""
    from evsim.simulate import Simulator

    out = {}
    for kind in ("dense", "conv"):
        if kind in names:
            network, shape = networks.delivery_network(kind)
            configs = {"zero": np.zeros((samples, *shape)), "silent": np.full((samples, *shape), SILENT),
                       "active": np.full((samples, *shape), ACTIVITY)}
            out[kind] = (Simulator(network, threads=1), configs, steps, "bernoulli")
    if "cnn" in names:
        network, _ = networks.cnn()
        out["cnn"] = (Simulator(network, threads=1), {"active": network.samples.inputs[:samples]}, 2 * steps, None)
    return out


#: Bare-kernel probes (`--bare`): kind, source shape, target shape, conv kernel / stride / padding, activity.
BARE = {
    "dense": ("dense", (1000,), (2000,), None, 0.1),           # W.T 8 MB: from L3
    "dense-l2": ("dense", (100,), (2000,), None, 0.5),         # W.T 800 KB: from L2
    "conv": ("conv2d", (32, 16, 16), (64, 16, 16), ((3, 3), (1, 1), (1, 1)), 0.1),
    "cnn-conv2": ("conv2d", (12, 24, 24), (64, 8, 8), ((10, 10), (2, 2), (0, 0)), 0.03),
}


def bare_kernel(name, calls=20, reps=30):
    """`delivery.push` alone on synthetic steps (ascending random events, as a population emits them): the best
    of `reps` repetitions of `calls` calls, in G AC/s. No encoder, bookkeeping or readout: the kernel's roofline."""
    from evsim.engine import delivery
    from evsim.engine.plan import P_SIZE, P_SOFF, REC_TGT, build_plan, workspace
    from evsim.network import Network, Population, Projection

    kind, source, target, window, p = BARE[name]
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, (target[0], source[0], *(window[0] if window else ()))).astype(np.float32)
    geometry = dict(stride=window[1], padding=window[2]) if window else {}
    network = Network((Population("input", "input", source, 0), Population("target", "readout", target, 1)),
                      (Projection("p", kind, "input", "target", weight=weight, **geometry),), output="target")
    plan = build_plan(network)
    work = workspace(plan)
    rec = plan.proj_rec[0]
    tgt = plan.pop_rec[rec[REC_TGT]]
    route = (int(tgt[P_SOFF]), int(tgt[P_SOFF]), int(tgt[P_SOFF]), -1)
    ev = (work.ev_idx, work.ev_coef, work.ev_tag, work.ev_val)
    work.ev_coef[:], work.ev_val[:], work.ev_tag[:] = 1, 1, 0
    steps = [np.flatnonzero(rng.random(int(np.prod(source))) < p) for _ in range(calls)]
    counts = np.zeros(8, np.int64)
    best = np.inf
    for _ in range(reps):
        counts[:], spent = 0, 0.0
        for idx in steps:
            work.ev_idx[:idx.size] = idx
            started = time.perf_counter()
            delivery.push(rec, plan.ints, plan.floats, ev, 0, idx.size, work.v, int(tgt[P_SIZE]), route, counts)
            spent += time.perf_counter() - started
        best = min(best, spent)
    return dict(ac_per_call=int(counts.sum()) / calls, gac_per_s=int(counts.sum()) / best / 1e9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="dense,conv,cnn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=128, help="steps per sample (the CNN runs twice as many)")
    parser.add_argument("--callgrind", action="store_true", help="toggle callgrind instrumentation around the runs")
    parser.add_argument("--only", choices=("zero", "silent", "active"), help="run only this configuration")
    parser.add_argument("--bare", action="store_true", help=f"time the kernel alone instead: {', '.join(BARE)}")
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps({name: bare_kernel(name) for name in BARE}))
        return
    todo = cases(args.cases.split(","), args.samples, args.steps)
    walls, cpus, totals = {}, {}, {}
    for sim, configs, _, encoder in todo.values():  # warm-up
        for inputs in configs.values():
            sim.run(inputs[:1], timesteps=2, encoder=encoder)
    for _ in range(args.rounds):
        for name, (sim, configs, steps, encoder) in todo.items():
            for config, inputs in configs.items():
                if args.only and config != args.only:
                    continue
                if args.callgrind:
                    _callgrind("--zero", "--instr=on")
                cpu = time.thread_time()
                result = sim.run(inputs, timesteps=steps, encoder=encoder)
                cpus.setdefault((name, config), []).append(time.thread_time() - cpu)
                if args.callgrind:
                    _callgrind("--instr=off", f"--dump={name}-{config}")
                walls.setdefault((name, config), []).append(result.wall_time)
                totals[name, config] = result.totals()
    report = {}
    for name, (_, configs, steps, _) in todo.items():
        n = len(next(iter(configs.values())))
        row = report[name] = {}
        for config in configs:
            if (name, config) in walls:
                row[config] = dict(walls=walls[name, config], cpus=cpus[name, config],
                                   us_per_step=1e6 * statistics.median(walls[name, config]) / (n * steps),
                                   cpu_us_per_step=1e6 * statistics.median(cpus[name, config]) / (n * steps),
                                   ac_ops=int(totals[name, config]["ac_ops"] + totals[name, config]["scaled_ops"]))
        if "silent" in row and "active" in row:
            assert row["silent"]["ac_ops"] == 0, "a silent pixel spiked"
            ac = row["active"]["ac_ops"]
            for times, key in ((walls, ""), (cpus, "_cpu")):
                active = statistics.median(times[name, "active"])
                row["gac_per_s_net" + key] = ac / (active - statistics.median(times[name, "silent"])) / 1e9
                # benchmarks/run_benchmarks.py's method: net of an all-zero input (which hashes nothing)
                row["gac_per_s_net_of_zero" + key] = ac / (active - statistics.median(times[name, "zero"])) / 1e9
        if name == "cnn":
            row["ms_per_sample"] = 1e3 * statistics.median(walls[name, "active"]) / n
            row["cpu_ms_per_sample"] = 1e3 * statistics.median(cpus[name, "active"]) / n
            row["synaptic_ops_per_sample"] = row["active"]["ac_ops"] / n
    print(json.dumps(report))


if __name__ == "__main__":
    main()
