"""Worked study: energy that counts data movement. The bundled CNN and the seeds' conversions, priced by operations
only and with memory accesses, against the ANN and the quantised ANN of equal capacity.

The bundled CNN (examples/mnist_cnn.h5: rate-norm, v(0) = 0) and three
conversions of its trained ANN (mnist_cnn.pt): rate-norm with v(0) = theta/2
(potential-initialization paper), AugMapping (double-threshold paper) and
BSNN (bistable pairs, phase coding) run on the same test images. Every run is
priced with the operations-only profile `cmos45-fp32` and with the memory
profiles `cmos45-sram` (Horowitz 2014, SRAM by size) and `neuromorphic-sram`
(on-core SRAM), at each conversion's latency (within 1 point of the ANN)
and over every T, beside the ANN (8-bit activations; every MAC, and only
those over nonzero inputs) and the quantised ANN of equal capacity
(ceil(log2(T + 1))-bit activations, Yan et al.). From evsim's counts: the
firing rate at which each SNN stops winning at matched T (T = 5..10 as Yan et
al., and T = 256, the 9-bit ANN). Last, evsim's exact counts beside
SpikingJelly 2.0's analytical Lemaire estimate (`op_counter`) on the same
rate-coded net. Tables (numbers written by this script), JSON and plots go to
docs/results/memory_energy/.

    pip install -e '.[examples,analysis]'   # and spikingjelly for the last part
    python examples/study_memory_energy.py          # 500 images, T = 256
    python examples/study_memory_energy.py --quick  # the reduced setting the tests run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the training script defines the model and the data split

from train_mnist_cnn import N_SAMPLES, MnistCnn, load_data  # noqa: E402

from evsim.analysis.compare import run_comparison  # noqa: E402
from evsim.analysis.energy import load_profile  # noqa: E402
from evsim.analysis.metrics import early_decision_latency  # noqa: E402
from evsim.analysis.memory import BREAKDOWN, price_run, quantised_bits  # noqa: E402
from evsim.analysis.plots import save_png  # noqa: E402
from evsim.weights_io import read_network  # noqa: E402
from evsim.weights_io.export import convert_model  # noqa: E402

#: name -> the exporter's options (None: the bundled file itself).
CONVERSIONS = {
    "bundled (rate-norm, v0=0)": None,
    "rate-norm, v0=theta/2": dict(method="rate-norm", percentile=99.9, v_init_fraction=0.5),
    "rate-norm, v0=theta/2, pool populations": dict(method="rate-norm", percentile=99.9, v_init_fraction=0.5,
                                                     pool="population"),
    "AugMapping": dict(method="augmapping"),
    "BSNN": dict(method="bsnn"),
}
OPERATIONS_ONLY = "cmos45-fp32"
MEMORY_PROFILES = ("cmos45-sram", "neuromorphic-sram")
YAN_STEPS = tuple(range(5, 11))
COLOURS = {"compute": "#4c72b0", "weights": "#dd8452", "potentials": "#55a868", "spikes": "#c44e52",
           "activations": "#8172b3"}


def trained_model() -> MnistCnn:
    model = MnistCnn()
    model.load_state_dict(torch.load(HERE / "mnist_cnn.pt", weights_only=True))
    return model.eval()


def networks(model, x_train, n_calibration: int) -> list:
    out = []
    for name, options in CONVERSIONS.items():
        if options is None:
            out.append(read_network(HERE / "mnist_cnn.h5"))
        else:
            out.append(convert_model(model, calibration=x_train[:n_calibration], meta={"study": name}, **options))
    return out


def nonzero_macs(model, x) -> float:
    """The ANN's MACs per sample over nonzero inputs only (zero-skipping), pools counted in full as /ann does."""
    counted = []

    def hook(module, inputs, output):
        active = (inputs[0] != 0).to(torch.float32)
        if isinstance(module, torch.nn.Linear):
            counted.append(float(active.sum()) * module.out_features)
        elif isinstance(module, torch.nn.Conv2d):
            ones = torch.ones_like(module.weight)
            counted.append(float(F.conv2d(active, ones, stride=module.stride, padding=module.padding,
                                          dilation=module.dilation, groups=module.groups).sum()))
        else:  # a pool: one add per input of each window, as in /ann/macs
            counted.append(float(output.numel() * np.prod(module.kernel_size)))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.AvgPool2d))]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return sum(counted) / len(x)


def latency(result, reference: float) -> int:
    """Within 1 point of the ANN's accuracy on these samples (the bundled file's outputs: the ANN is the same), kept
    to T; T if never."""
    t = early_decision_latency(result.accuracy(), reference, 0.01)
    return result.timesteps if t is None else t


def at_latency(results, names, profiles, zero_skip_macs) -> list[dict]:
    """Per conversion and memory profile: operations-only and with-memory energy at its latency, and the baselines."""
    rows = []
    ops = load_profile(OPERATIONS_ONLY)
    reference = results[0].reference_accuracy()
    for result, name in zip(results, names):
        t = latency(result, reference)
        spent = result.spent_until(t)
        for profile in profiles:
            priced = price_run(result, profile, until=t)
            skipping = price_run(result, profile, until=t, ann_macs=zero_skip_macs)
            rows.append({
                "conversion": name, "profile": profile.name, "t": t,
                "accuracy": float(result.accuracy()[t - 1]),
                "ops_only_pj": {OPERATIONS_ONLY: ops.snn_energy(spent)["total"],
                                profile.name: profile.snn_energy(spent)["total"]},
                "ann_ops_only_pj": {OPERATIONS_ONLY: ops.ann_energy(result.ann_macs),
                                    profile.name: profile.ann_energy(result.ann_macs)},
                "snn": priced["snn"]["breakdown_pj"], "snn_accesses": priced["snn"]["accesses"],
                "ann": priced["ann"]["breakdown_pj"], "quantised_ann": priced["quantised_ann"]["breakdown_pj"],
                "ann_zero_skip": skipping["ann"]["breakdown_pj"],
                "quantised_ann_zero_skip": skipping["quantised_ann"]["breakdown_pj"],
                "quantised_bits": priced["quantised_ann"]["activation_bits"],
                "firing_rate": priced["firing_rate"], "break_even_rate": priced["break_even_rate"]})
    return rows


def over_t(results, names, profile) -> dict:
    """Per conversion, for t = 1..T: the SNN's energy with memory to step t and the quantised ANN's at bits(t)."""
    curves = {}
    for result, name in zip(results, names):
        priced = [price_run(result, profile, until=t) for t in range(1, result.timesteps + 1)]
        curves[name] = {"snn": [p["snn"]["breakdown_pj"]["total"] for p in priced],
                        "quantised_ann": [p["quantised_ann"]["breakdown_pj"]["total"] for p in priced],
                        "ann": priced[0]["ann"]["breakdown_pj"]["total"],
                        "firing_rate": [p["firing_rate"] for p in priced],
                        "break_even_rate": [p["break_even_rate"] for p in priced],
                        "accuracy": result.accuracy().tolist()}
    return curves


def break_even(curves, steps) -> list[dict]:
    return [{"conversion": name, "t": t, "bits": quantised_bits(t), "firing_rate": c["firing_rate"][t - 1],
             "break_even_rate": c["break_even_rate"][t - 1],
             "snn_over_quantised_ann": c["snn"][t - 1] / c["quantised_ann"][t - 1], "accuracy": c["accuracy"][t - 1]}
            for name, c in curves.items() for t in steps if t <= len(c["snn"])]


# ----------------------------------------------------------------------------- SpikingJelly's Lemaire estimate


def spikingjelly_net(network):
    """The bundled rate-coded net in SpikingJelly: its converted weights, IF neurons (soft reset, v(0) = 0)."""
    from spikingjelly.activation_based import functional, layer, neuron

    conv1, conv2, fc = network.projections
    pops = {p.name: p for p in network.populations}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = layer.Conv2d(1, 12, 5, bias=True)
            self.if1 = neuron.IFNode(v_threshold=1.0, v_reset=None)
            self.conv2 = layer.Conv2d(12, 64, 10, stride=2, bias=True)
            self.if2 = neuron.IFNode(v_threshold=1.0, v_reset=None)
            self.fc = layer.Linear(4096, 10, bias=True)

        def forward(self, x):
            x = self.if2(self.conv2(self.if1(self.conv1(x))))
            return self.fc(x.flatten(2))

    net = Net()
    with torch.no_grad():
        for module, proj in ((net.conv1, conv1), (net.conv2, conv2), (net.fc, fc)):
            module.weight.copy_(torch.from_numpy(np.asarray(proj.weight * proj.scale, np.float32)))
            target = pops[proj.target]  # a per-channel bias: the first neuron of each channel holds it
            bias = target.expand("bias").reshape(target.shape[0], -1)[:, 0]
            module.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    functional.set_step_mode(net, "m")
    return net.eval()


def spikingjelly_lemaire(network, inputs, timesteps: int, batch: int = 1) -> dict:
    """SpikingJelly 2.0's Lemaire report, mean per sample (counts in words of 4 bytes, energy in pJ).

    `batch` samples per call: its buffer capacities, and so its prices per
    byte, are computed from tensor sizes that include the batch dimension
    (analytical_energy.py: `potential_capacity = output_bytes // T`), so one
    sample per call is the per-inference figure.
    """
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.op_counter import estimate_lemaire_energy

    net = spikingjelly_net(network)
    x = torch.from_numpy(np.asarray(inputs, np.float32))
    counts, energy, total = {}, {}, 0.0
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        report = estimate_lemaire_energy(net, chunk.unsqueeze(0).repeat(timesteps, 1, 1, 1, 1))
        functional.reset_net(net)
        for key, value in report.counts.items():
            counts[key] = counts.get(key, 0) + value
        for key, value in report.breakdown_pj.items():
            energy[key] = energy.get(key, 0.0) + value
        total += report.total_pj
    n = len(inputs)
    return {"counts": {k: v / n / (4 if k.endswith("_bytes") else 1) for k, v in counts.items()},
            "breakdown_pj": {k: v / n for k, v in energy.items()}, "total_pj": total / n, "batch": batch,
            "buffers_bytes": report.buffer_sizes_bytes, "model": report.model_info.model_id}


def lemaire_profile(sj: dict, path: Path):
    """A user profile with SpikingJelly's Lemaire prices (32-bit words; its effective pJ per access by datum)."""
    counts, energy = sj["counts"], sj["breakdown_pj"]

    def per_word(pj, words):
        return pj / words if words else 0.0

    inout = per_word(energy["inout_pj"], counts["read_in_bytes"] + counts["write_out_bytes"])
    levels = {"params": per_word(energy["params_pj"], counts["read_params_bytes"]),
              "potential": per_word(energy["potential_pj"], counts["read_potential_bytes"] + counts["write_potential_bytes"]),
              "inout": inout}
    data = {"name": "lemaire-like", "unit": "pJ", "ann_mac": 3.2,
            "description": "SpikingJelly 2.0's Lemaire prices: 32-bit integer add 0.1 pJ, multiply 3.1 pJ; every datum "
                           "a 32-bit word at the effective price per access of its SpikingJelly report on this net",
            "source": "spikingjelly.activation_based.op_counter.analytical_energy (LemaireEnergyCostConfig)",
            "per_operation": {"ac_ops": 0.1, "scaled_ops": 3.2, "pool_ops": 0.1, "input_macs": 3.2, "bias_ops": 0.1,
                              "neuron_updates": 0.1},
            "memory": {"dataflow": "event-driven",
                       "levels": {name: {"word_bits": 32, "pj_per_word": pj} for name, pj in levels.items()},
                       "placement": {"weights": {"level": "params", "bits": 32},
                                     "potentials": {"level": "potential", "bits": 32},
                                     "spikes": {"level": "inout", "bits": 32}, "activations": {"level": "inout", "bits": 32}},
                       "quantised_mac": {"multiply_pj_per_bit_product": 3.1 / 1024, "accumulate_pj": 0.1}}}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return load_profile(str(path))


def lemaire_formulas(network, result) -> dict:
    """SpikingJelly's Lemaire counts recomputed from evsim's events (its formulas, evsim's spike trains): what is
    left between the two columns is then the formulas, not the simulation. Per sample, in words."""
    T, n = result.timesteps, result.n_samples
    events = dict(zip(result.populations, result.pop_counts_per_step.sum(axis=0)[:, 0] / n))
    pops = {p.name: p for p in network.populations}
    counts = dict.fromkeys(("synop", "mac", "read_params_bytes", "read_potential_bytes", "write_out_bytes",
                            "read_in_bytes"), 0.0)
    for proj in network.projections:
        source, target = pops[proj.source], pops[proj.target]
        if proj.kind == "dense":
            per_event = memory_fanout = target.size
        else:  # conv2d: Cout/groups x prod(ceil(k / s)) synops, Cout/groups x prod(k) weight and potential accesses
            per_group = target.shape[0] // proj.groups
            per_event = per_group * int(np.prod([-(-k // s) for k, s in zip(proj.kernel_size, proj.stride)]))
            memory_fanout = per_group * int(np.prod(proj.kernel_size))
        counts["read_params_bytes"] += target.size * T  # a bias read per output and step
        if source.kind == "input":  # analog: dense MACs every step, each reading its input and weight
            dense = target.size * int(np.prod(proj.weight.shape[1:])) * T
            counts["mac"] += dense
            counts["read_params_bytes"] += dense
            counts["read_in_bytes"] += dense
            continue
        counts["synop"] += events[source.name] * per_event
        counts["read_params_bytes"] += events[source.name] * memory_fanout
        counts["read_potential_bytes"] += events[source.name] * memory_fanout
        counts["read_in_bytes"] += events[source.name]
    for pop in network.populations:
        if pop.kind == "if":  # the neuron rule: every potential read and written every step; spikes written
            counts["read_potential_bytes"] += pop.size * T
            counts["write_out_bytes"] += events[pop.name]
    counts["write_potential_bytes"] = counts["read_potential_bytes"]
    return counts


def lemaire_comparison(network, inputs, labels, timesteps, threads, out: Path) -> dict:
    sj = spikingjelly_lemaire(network, inputs, timesteps)
    batched = spikingjelly_lemaire(network, inputs, timesteps, batch=len(inputs))
    result = run_comparison([network], inputs, labels, timesteps=timesteps, threads=threads)[0]
    profile = lemaire_profile(sj, out / "lemaire_prices.json")
    priced = price_run(result, profile)
    per = result.per_sample()
    return {"spikingjelly": sj, "evsim": {"per_sample": per, "accesses": priced["snn"]["accesses"],
                                          "breakdown_pj": priced["snn"]["breakdown_pj"]},
            "lemaire_formulas_on_evsim_events": lemaire_formulas(network, result),
            "spikingjelly_whole_batch": {"batch": len(inputs), "total_pj": batched["total_pj"],
                                         "breakdown_pj": batched["breakdown_pj"]},
            "n_samples": len(inputs), "timesteps": timesteps}


# ----------------------------------------------------------------------------- plots and tables


def plot_breakdowns(rows, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for profile in MEMORY_PROFILES:
        chosen = [r for r in rows if r["profile"] == profile]
        bars = [(f"{r['conversion']}\n(t={r['t']})", r["snn"]) for r in chosen]
        bars += [("ANN (8-bit)", chosen[0]["ann"]), ("ANN, zero-skip", chosen[0]["ann_zero_skip"])]
        bars += [(f"quantised ANN {r['quantised_bits']}-bit\n(t={t})", q) for t, (r, q) in
                 sorted({r["t"]: (r, r["quantised_ann"]) for r in chosen}.items())]
        fig, ax = plt.subplots(figsize=(11, 4.8))
        bottom = np.zeros(len(bars))
        for key in BREAKDOWN:
            values = np.array([b[key] for _, b in bars]) / 1e6
            ax.bar(range(len(bars)), values, bottom=bottom, color=COLOURS[key], label=key)
            bottom += values
        ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("energy per sample (uJ)")
        ax.set_title(f"Energy with memory at each conversion's latency, profile {profile}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(save_png(fig, out / f"breakdown_{profile}.png"))
        plt.close(fig)
    return paths


def plot_over_t(curves, profile: str, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (name, c) in enumerate(curves.items()):
        t = np.arange(1, len(c["snn"]) + 1)
        colour = f"C{i}"
        left.plot(t, np.array(c["snn"]) / 1e6, color=colour, label=name)
        right.plot(t, c["firing_rate"], color=colour, label=f"{name}: measured")
        right.plot(t, c["break_even_rate"], color=colour, linestyle="--", label=f"{name}: break-even")
    first = next(iter(curves.values()))
    t = np.arange(1, len(first["snn"]) + 1)
    left.plot(t, np.array(first["quantised_ann"]) / 1e6, color="k", linestyle="--", label="quantised ANN, ceil(log2(t+1)) bits")
    left.axhline(first["ann"] / 1e6, color="k", linestyle=":", label="ANN, 8-bit")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps t")
    left.set_yscale("log")
    left.set_ylabel("energy per sample to step t (uJ)")
    right.set_ylabel("events per neuron and step")
    right.set_yscale("symlog", linthresh=1e-3)
    left.legend(fontsize=7)
    right.legend(fontsize=6)
    fig.suptitle(f"SNN with memory against the quantised ANN of equal capacity, profile {profile}")
    fig.tight_layout()
    path = save_png(fig, out / f"over_t_{profile}.png")
    plt.close(fig)
    return [path]


def _uj(pj) -> str:
    return f"{pj / 1e6:,.3f}"


def _rate(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def write_readme(out: Path, data: dict) -> None:
    rows, settings = data["at_latency"], data["settings"]
    lines = ["# Energy that counts data movement", "",
             "Written by `examples/study_memory_energy.py` "
             f"({settings['n_samples']} test images, T = {settings['timesteps']}; "
             f"{'quick mode' if settings['quick'] else 'full run'}). Every number below is computed by the script "
             "from evsim's exact counts and the profiles in `evsim/analysis/energy_profiles/`; "
             "`results.json` holds them all, with the accesses, so the arithmetic can be redone "
             "(docs/energy.md gives the formulas).", ""] + _summary(data) + [
             "## At each conversion's latency (within 1 point of the ANN; T if never)", ""]
    for profile in MEMORY_PROFILES:
        chosen = [r for r in rows if r["profile"] == profile]
        lines += [f"Profile `{profile}` (uJ per sample; the SNN to step t; the quantised ANN at ceil(log2(t+1)) bits):", "",
                  f"| conversion | t | accuracy | ops only ({OPERATIONS_ONLY}) | ops only ({profile}) | with memory | "
                  + " | ".join(BREAKDOWN[1:]) + " | ANN | ANN zero-skip | quantised ANN | SNN / quantised ANN |",
                  "|---|---|---|---|---|---|" + "---|" * (len(BREAKDOWN) - 1) + "---|---|---|---|"]
        for r in chosen:
            lines.append(f"| {r['conversion']} | {r['t']} | {100 * r['accuracy']:.1f}% | "
                         f"{_uj(r['ops_only_pj'][OPERATIONS_ONLY])} | {_uj(r['ops_only_pj'][profile])} | "
                         f"**{_uj(r['snn']['total'])}** | " + " | ".join(_uj(r["snn"][k]) for k in BREAKDOWN[1:])
                         + f" | {_uj(r['ann']['total'])} | {_uj(r['ann_zero_skip']['total'])} | "
                         f"{_uj(r['quantised_ann']['total'])} ({r['quantised_bits']}-bit) | "
                         f"{r['snn']['total'] / r['quantised_ann']['total']:.2f} |")
        ann = chosen[0]
        lines += ["", f"Operations only, the ANN costs {_uj(ann['ann_ops_only_pj'][OPERATIONS_ONLY])} uJ "
                  f"({OPERATIONS_ONLY}) and {_uj(ann['ann_ops_only_pj'][profile])} uJ ({profile}).",
                  "", f"![breakdown](breakdown_{profile}.png)", ""]
    lines += ["## The firing rate at which the SNN stops winning, at matched T", "",
              "The SNN's energy to step t splits into a part proportional to its own events (synaptic ops, pool ops, "
              "routing reads, spike writes: their operations and accesses) and a fixed part (bias adds, threshold "
              "comparisons, the analog input's MACs charged every step). Holding the measured event mix, the "
              "break-even rate r* = r x (E_quantised ANN - E_fixed) / E_events is the firing rate (events per "
              "neuron and step) at which the SNN's energy equals the quantised ANN's of equal capacity; 0 means the "
              "fixed part alone costs more. Yan et al. (arXiv 2409.08290) find ~6% (6.4% in v2 for T in [5, 10], "
              "5.7% in v4 for T = 5) on typical neuromorphic hardware.", ""]
    for profile in MEMORY_PROFILES:
        lines += [f"Profile `{profile}`:", "", "| conversion | t | bits | accuracy at t | measured rate | break-even rate "
                  "| SNN / quantised ANN |", "|---|---|---|---|---|---|---|"]
        for r in data["break_even"][profile]:
            lines.append(f"| {r['conversion']} | {r['t']} | {r['bits']} | {100 * r['accuracy']:.1f}% | "
                         f"{_rate(r['firing_rate'])} | {_rate(r['break_even_rate'])} | {r['snn_over_quantised_ann']:.2f} |")
        lines += ["", f"![over t](over_t_{profile}.png)", ""]
    lemaire = data.get("lemaire")
    if lemaire:
        lines += _lemaire_lines(lemaire)
    (out / "README.md").write_text("\n".join(lines) + "\n")


def _summary(data: dict) -> list[str]:
    """The findings, each number computed from the tables below."""
    lines = ["## Findings", ""]
    ops, last = OPERATIONS_ONLY, data["settings"]["timesteps"]
    for profile in MEMORY_PROFILES:
        rows = [r for r in data["at_latency"] if r["profile"] == profile]
        cheaper = [r["conversion"] for r in rows if r["ops_only_pj"][ops] < r["ann_ops_only_pj"][ops]]
        ratios = [r["snn"]["total"] / r["quantised_ann"]["total"] for r in rows]
        moved = [(r["snn"]["weights"] + r["snn"]["potentials"]) / r["snn"]["total"] for r in rows]
        lines.append(f"- `{profile}`, at each conversion's latency: by operations only ({ops}), "
                     f"{len(cheaper)} of {len(rows)} conversions spend less than the ANN; with memory, they cost "
                     f"{min(ratios):.2f} to {max(ratios):.2f} times the quantised ANN of equal capacity, "
                     f"{100 * min(moved):.0f}-{100 * max(moved):.0f}% of it in weight reads and potential "
                     "read-modify-writes (one of each per synaptic op).")
        small = [r for r in data["break_even"][profile] if r["t"] in YAN_STEPS and r["break_even_rate"] is not None]
        if small:
            best = max(small, key=lambda r: r["break_even_rate"])
            wins = [r for r in small if r["firing_rate"] < r["break_even_rate"]]
            lines.append(f"  At T = {YAN_STEPS[0]}..{YAN_STEPS[-1]} the break-even firing rate is at most "
                         f"{_rate(best['break_even_rate'])} ({best['conversion']}, T = {best['t']}; Yan et al.: ~6%); "
                         f"{len(wins)} of {len(small)} (conversion, T) pairs fire below it"
                         + (": " + ", ".join(f"{r['conversion']} at T = {r['t']} (accuracy {100 * r['accuracy']:.1f}%)"
                                             for r in wins) if wins else "")
                         + f". At T = {last} ({quantised_bits(last)}-bit ANN) no conversion's break-even rate is above "
                         f"{_rate(max(r['break_even_rate'] or 0 for r in data['break_even'][profile] if r['t'] == last))}.")
    lines += ["- Folding an average pool into the next convolution (the exporter's default, exact and faster to "
              "simulate) multiplies that convolution's synapses by the window area; with pools as spiking "
              "populations the same conversion moves fewer weights and potentials (rows `pool populations`).", ""]
    return lines


def _lemaire_lines(lemaire: dict) -> list[str]:
    sj, ev, redone = lemaire["spikingjelly"], lemaire["evsim"], lemaire["lemaire_formulas_on_evsim_events"]
    c, per, acc = sj["counts"], ev["per_sample"], ev["accesses"]
    rows = [("synaptic ops (ACs)", per["ac_ops"], "synop"),
            ("input MACs (evsim: nonzero pixels; dense in brackets)", per["input_macs"], "mac"),
            ("weight + bias reads (words)", acc["weight_reads"] + acc["bias_reads"], "read_params_bytes"),
            ("potential reads", acc["potential_reads"], "read_potential_bytes"),
            ("potential writes", acc["potential_writes"], "write_potential_bytes"),
            ("spike writes", acc["spike_writes"], "write_out_bytes"),
            ("spike + input reads", acc["spike_reads"] + acc["input_reads"], "read_in_bytes")]
    lines = ["## evsim beside SpikingJelly 2.0's Lemaire estimate", "",
             f"The bundled rate-coded net ({lemaire['n_samples']} images, T = {lemaire['timesteps']}) rebuilt in "
             "SpikingJelly (its converted weights, `IFNode(v_threshold=1, v_reset=None)`, multi-step) and measured by "
             f"`spikingjelly.activation_based.op_counter.estimate_lemaire_energy` ({sj['model']}); evsim's exact "
             "counts of the same net, priced with SpikingJelly's prices (`lemaire_prices.json`: a user profile, "
             "32-bit words at the effective price per access of each datum in SpikingJelly's report). Per sample:", "",
             "The third column applies SpikingJelly's formulas (analytical_energy.py) to evsim's own events: where it "
             "equals the second, the two simulations agree and what differs is the counting rule.", "",
             "| quantity | evsim (exact, event-driven) | SpikingJelly (Lemaire) | Lemaire's formulas on evsim's events "
             "| evsim / SpikingJelly |", "|---|---|---|---|---|"]
    for label, mine, key in rows:
        extra = f" ({per['input_macs_dense']:,.0f})" if label.startswith("input MACs") else ""
        theirs = c[key]
        lines.append(f"| {label} | {mine:,.0f}{extra} | {theirs:,.0f} | {redone[key]:,.0f} | "
                     f"{mine / theirs if theirs else float('nan'):.3f} |")
    b, e = sj["breakdown_pj"], ev["breakdown_pj"]
    lines += [f"| energy: memory, weights (uJ) | {_uj(e['weights'])} | {_uj(b['params_pj'])} | | |",
              f"| energy: memory, potentials (uJ) | {_uj(e['potentials'])} | {_uj(b['potential_pj'])} | | |",
              f"| energy: memory, spikes and inputs (uJ) | {_uj(e['spikes'] + e['activations'])} | {_uj(b['inout_pj'])} | | |",
              f"| energy: operations (uJ) | {_uj(e['compute'])} | {_uj(b['ops_pj'])} (+ addressing "
              f"{_uj(b['addressing_pj'])}) | | |",
              f"| energy: total (uJ) | **{_uj(e['total'])}** | **{_uj(sj['total_pj'])}** | | "
              f"{e['total'] / sj['total_pj']:.3f} |", "",
              "SpikingJelly was called one image at a time: its buffer capacities, hence its price per byte, are "
              "computed from tensor sizes that include the batch dimension, so the same images in one batch of "
              f"{lemaire['spikingjelly_whole_batch']['batch']} cost "
              f"{_uj(lemaire['spikingjelly_whole_batch']['total_pj'])} uJ per image instead.", ""]
    return lines


def run_study(out: Path, *, n_samples: int, timesteps: int, n_calibration: int, n_lemaire: int, quick: bool,
              threads=None) -> dict:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    (x_train, _), (x_test, _) = load_data()
    model = trained_model()
    nets = networks(model, x_train, n_calibration)
    names = list(CONVERSIONS)
    results = run_comparison(nets, names=names, n_samples=n_samples, timesteps=timesteps, threads=threads)
    inputs = nets[0].samples.inputs[:n_samples]
    zero_skip = nonzero_macs(model, torch.from_numpy(np.asarray(inputs, np.float32)))
    profiles = [load_profile(p) for p in MEMORY_PROFILES]
    data = {"settings": {"n_samples": n_samples, "timesteps": timesteps, "calibration": n_calibration, "quick": quick,
                         "ann_macs": results[0].ann_macs, "ann_macs_nonzero_inputs": zero_skip,
                         "profiles": {p.name: p.to_dict() for p in profiles}},
            "at_latency": at_latency(results, names, profiles, zero_skip), "break_even": {}, "over_t": {}}
    for profile in profiles:
        curves = over_t(results, names, profile)
        data["over_t"][profile.name] = curves
        data["break_even"][profile.name] = break_even(curves, YAN_STEPS + (timesteps,))
        plot_over_t(curves, profile.name, out)
    plot_breakdowns(data["at_latency"], out)
    if n_lemaire:
        data["lemaire"] = lemaire_comparison(nets[0], inputs[:n_lemaire], nets[0].samples.labels[:n_lemaire],
                                             timesteps, threads, out)
    (out / "results.json").write_text(json.dumps(data, indent=1, default=_plain) + "\n")
    write_readme(out, data)
    return data


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "memory_energy")
    parser.add_argument("--samples", type=int, default=N_SAMPLES)
    parser.add_argument("--timesteps", "-T", type=int, default=256)
    parser.add_argument("--calibration", type=int, default=4000, help="training images for the normalisation")
    parser.add_argument("--lemaire-samples", type=int, default=32, help="images for SpikingJelly's estimate (0: skip)")
    parser.add_argument("--quick", action="store_true", help="16 samples, T = 32, 256 calibration images, 4 for SpikingJelly")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.timesteps, args.calibration, args.lemaire_samples = 16, 32, 256, 4
    run_study(args.out, n_samples=args.samples, timesteps=args.timesteps, n_calibration=args.calibration,
              n_lemaire=args.lemaire_samples, quick=args.quick)
    print((args.out / "README.md").read_text())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
