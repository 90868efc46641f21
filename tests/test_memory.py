"""Memory accesses: derived counts against an independent count from spike trains and connectivity; a hand-worked
2-layer network priced by hand from a profile; the profile's memory section and its errors."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from evsim.analysis.energy import EnergyProfileError, load_profile
from evsim.errors import EvsimError
from evsim.analysis.memory import (EVENT_DRIVEN, OUTPUT_STATIONARY, SNN_ACCESSES, Structure, price_run,
                                   quantised_bits, snn_accesses)
from evsim.network import AnnInfo, Network, Population, Projection
from evsim.simulate import simulate
from netgen import random_inputs, random_network

torch = pytest.importorskip("torch")
from test_counts import T, fan_out  # noqa: E402  (torch's own conv geometry)


def independent_accesses(network, result, inputs, encoder, dataflow):
    """Every access per sample, step and layer (populations, then projections), from spike trains and fan-outs only."""
    n, P = len(inputs), len(network.populations)
    out = {access: np.zeros((n, T, P + len(network.projections)), np.int64) for access in SNN_ACCESSES}
    events = {}
    for (pop, _tag), (coef, _) in result.spikes.items():
        events[pop] = events.get(pop, 0) + (coef.reshape(n, T, -1) != 0).sum(-1)
    for p, pop in enumerate(network.populations):
        fired = events.get(pop.name, np.zeros((n, T), np.int64))
        if pop.kind != "relay":  # a relay forwards its source's spikes: nothing new is written
            out["spike_writes"][:, :, p] = fired
        if pop.spec.membrane:
            receiving = 1 if pop.kind == "bif" and pop.drive == "gated" else pop.units  # gated: the integrating unit
            bias = np.zeros(T, np.int64)
            bias[pop.bias_onset:] = np.count_nonzero(pop.expand("bias")) * receiving
            out["bias_reads"][:, :, p] = bias
            if dataflow == EVENT_DRIVEN:  # a read-modify-write per bias add and per threshold comparison
                rmw = bias + (pop.size if pop.fires else 0)
            else:  # the potential in a register for the step: read and written once per unit and step
                rmw = pop.size * pop.units
            out["potential_reads"][:, :, p] = out["potential_writes"][:, :, p] = rmw
    for q, proj in enumerate(network.projections):
        src, tgt = network.population(proj.source), network.population(proj.target)
        f = fan_out(proj, src, tgt)
        column = P + q
        if src.kind == "input" and encoder == "analog":
            macs = ((inputs.reshape(n, -1) != 0) * f).sum(-1)[:, None]
            out["weight_reads"][:, :, column] = out["input_reads"][:, :, column] = macs
            if dataflow == EVENT_DRIVEN:
                out["potential_reads"][:, :, column] = out["potential_writes"][:, :, column] = macs
            continue
        reached = np.zeros((n, T), np.int64)
        for (pop, tag), (coef, _) in result.spikes.items():
            if pop == src.name:
                split = tgt.kind == "bif" and tgt.drive != "gated"  # an untagged event reaches both units only when split
                units = 2 if split and tag == "out" and proj.kind != "maxpool2d" else 1
                reached += ((coef.reshape(n, T, -1) != 0) * f).sum(-1) * units
        if not proj.spec.pool:
            out["weight_reads"][:, :, column] = reached
        if dataflow == EVENT_DRIVEN:
            out["potential_reads"][:, :, column] = out["potential_writes"][:, :, column] = reached
            out["spike_reads"][:, :, column] = events.get(src.name, 0)  # one routing lookup per event and projection
        else:
            out["spike_reads"][:, :, column] = reached  # the target gathers each spike once per synapse
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("coding,bif,encoder", [("rate", False, "analog"), ("rate", False, "bernoulli"),
                                                 ("mixed", True, "phase"), ("phase", True, "analog")])
@pytest.mark.parametrize("version", [1, 3], ids=["v1", "v3"])  # v3 draws the version-2 rules (drive, onsets) too
def test_derived_accesses_match_spike_trains(seed, coding, bif, encoder, version):
    network = random_network(200 + seed, coding=coding, bif=bif, version3=version == 3)
    inputs = random_inputs(seed, network, 2, encoder)
    result = simulate(network, inputs, timesteps=T, encoder=encoder, seed=seed, record_spikes=True, record_counts=True)
    for dataflow in (EVENT_DRIVEN, OUTPUT_STATIONARY):
        derived = snn_accesses(Structure.of(result), dataflow, result.pop_counts, result.proj_counts, steps=1)
        expected = independent_accesses(network, result, inputs, encoder, dataflow)
        for access in SNN_ACCESSES:
            np.testing.assert_array_equal(derived[access], expected[access], err_msg=f"{dataflow} {access}")
        # the per-sample totals a report prices are the same numbers summed
        totals = snn_accesses(Structure.of(result), dataflow, result.pop_counts_per_step.sum(0),
                              result.proj_counts_per_step.sum(0), steps=len(inputs) * T)
        for access in SNN_ACCESSES:
            assert totals[access].sum() == expected[access].sum()


# ----------------------------------------------------------------------------- a network worked by hand

#: Round prices: weights 8 bits at 1 pJ/bit (8 pJ), potentials 16 bits at 2 pJ/bit (32 pJ), spikes 1 bit (1 pJ),
#: activations 4 bits at 2 pJ/bit (8 pJ; a 2-bit activation 4 pJ); a quantised MAC 0.5 pJ x bits x 8 + 100 pJ.
HAND_PROFILE = {
    "name": "hand", "unit": "pJ", "ann_mac": 3,
    "per_operation": {"ac_ops": 1, "scaled_ops": 2, "pool_ops": 1, "input_macs": 3, "bias_ops": 1, "neuron_updates": 1},
    "memory": {"dataflow": "event-driven",
               "levels": {"a": {"word_bits": 64, "pj_per_word": 64}, "b": {"word_bits": 8, "pj_per_word": 16}},
               "placement": {"weights": {"level": "a", "bits": 8}, "potentials": {"level": "b", "bits": 16},
                             "spikes": {"level": "a", "bits": 1}, "activations": {"level": "b", "bits": 4}},
               "quantised_mac": {"multiply_pj_per_bit_product": 0.5, "accumulate_pj": 100}},
}


def hand_network() -> Network:
    """input [2] -> dense -> if [2] -> dense -> readout [2] (potential), input (1, 0): hidden 0 gets 1 a step, 1 half."""
    pops = (Population("in", "input", (2,), 0),
            Population("h", "if", (2,), 1, theta_pos=np.ones(())),
            Population("out", "readout", (2,), 2, bias=np.array([0.25, 0.0])))
    projs = (Projection("w1", "dense", "in", "h", weight=np.array([[1.0, 0.25], [0.5, 0.25]])),
             Projection("w2", "dense", "h", "out", weight=np.full((2, 2), 0.125)))
    return Network(pops, projs, "out", ann=AnnInfo(macs=8))


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "hand.json"
    path.write_text(json.dumps(HAND_PROFILE))
    result = simulate(hand_network(), np.array([[1.0, 0.0]], np.float32), timesteps=2)
    return result, load_profile(str(path))


def test_hand_network_counts(hand_run):
    """h0 fires at steps 1 and 2, h1 at step 2: 3 events, each reaching 2 readout neurons."""
    totals = hand_run[0].totals()
    assert (totals["events"], totals["ac_ops"], totals["input_macs"], totals["bias_ops"],
            totals["neuron_updates"]) == (3, 6, 4, 2, 4)


def test_hand_network_event_driven_energy(hand_run):
    result, profile = hand_run
    memory = price_run(result, profile)
    snn = memory["snn"]
    # weights: 6 synaptic ops + 4 input MACs; potentials: those 10 + 2 bias adds + 4 comparisons, read and written
    assert snn["accesses"] == {"weight_reads": 10, "bias_reads": 2, "potential_reads": 16, "potential_writes": 16,
                               "spike_writes": 3, "spike_reads": 3, "input_reads": 4}
    compute = 6 * 1 + 4 * 3 + 2 * 1 + 4 * 1
    assert snn["breakdown_pj"] == {"compute": compute, "weights": 12 * 8, "potentials": 32 * 32, "spikes": 6 * 1,
                                   "activations": 4 * 8, "total": compute + 96 + 1024 + 6 + 32}
    ann, quantised = memory["ann"], memory["quantised_ann"]
    # 8 MACs: a weight and an input read each; 4 activations written; 1 neuron with a bias
    assert ann["breakdown_pj"] == {"compute": 8 * 3, "weights": 9 * 8, "potentials": 0, "spikes": 0,
                                   "activations": 12 * 8, "total": 24 + 72 + 96}
    assert quantised["activation_bits"] == 2 == quantised_bits(2)
    q_compute = 8 * (0.5 * 2 * 8 + 100)
    assert quantised["breakdown_pj"]["total"] == q_compute + 72 + 12 * 4
    assert memory["firing_rate"] == 3 / (2 * 2)
    # events' share: w2's weights (6 x 8), potentials (12 x 32), routing (3 x 1), adds (6 x 1), h's spike writes (3)
    variable = 48 + 384 + 3 + 6 + 3
    fixed = snn["breakdown_pj"]["total"] - variable
    assert memory["break_even_rate"] == pytest.approx(0.75 * (q_compute + 72 + 48 - fixed) / variable)


def test_hand_network_output_stationary_energy(hand_run):
    result, profile = hand_run
    os_profile = dataclass_replace_dataflow(profile, OUTPUT_STATIONARY)
    snn = price_run(result, os_profile)["snn"]
    # potentials: 4 units (h, out) read and written once per step; spikes: 6 gathered reads + 3 writes
    assert snn["accesses"]["potential_reads"] == snn["accesses"]["potential_writes"] == 8
    assert snn["breakdown_pj"]["total"] == 24 + 96 + 16 * 32 + 9 + 32


def dataclass_replace_dataflow(profile, dataflow):
    import dataclasses

    return dataclasses.replace(profile, memory=dataclasses.replace(profile.memory, dataflow=dataflow))


def test_operations_only_without_memory_section(hand_run):
    result, _ = hand_run
    energy = result.energy(load_profile("cmos45-fp32"))
    assert energy["memory"] is None and energy["snn_pj_per_sample"]["total"] == pytest.approx(6 * 0.9 + 4 * 4.6 + 6 * 0.9)


def test_shipped_memory_profiles():
    for name in ("cmos45-sram", "neuromorphic-sram"):
        memory = load_profile(name).memory
        assert memory.dataflow == EVENT_DRIVEN and set(memory.placement) == {"weights", "potentials", "spikes",
                                                                              "activations"}
    sram = load_profile("cmos45-sram").memory
    assert sram.access_pj("weights") == 100 * 8 / 64 and sram.access_pj("potentials") == 20 * 16 / 64
    assert math.isclose(sram.quantised_mac_pj(8), 0.3)  # Horowitz: 8-bit multiply 0.2 + 32-bit add 0.1


# ----------------------------------------------------------------------------- profile errors


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(dataflow="systolic"), "memory.dataflow must be one of event-driven, output-stationary"),
    (lambda m: m.update(levels={}), "memory.levels must be an object naming at least one memory level"),
    (lambda m: m["levels"]["a"].update(word_bits=0), r"memory.levels.a.word_bits must be a whole number of bits"),
    (lambda m: m["levels"]["b"].update(pj_per_word=-1), r"memory.levels.b.pj_per_word must be a finite number"),
    (lambda m: m["placement"].pop("spikes"), "memory.placement must place .*; missing: spikes"),
    (lambda m: m["placement"]["weights"].update(level="l2"), r"memory.placement.weights.level must name a level .*'l2'"),
    (lambda m: m["placement"]["potentials"].update(bits=2.5), "memory.placement.potentials.bits must be a whole number"),
    (lambda m: m.update(extra=1), r"memory: unknown key\(s\) extra"),
    (lambda m: m.pop("quantised_mac"), "memory.quantised_mac must be an object"),
])
def test_profile_memory_errors(tmp_path, change, message):
    data = json.loads(json.dumps(HAND_PROFILE))
    change(data["memory"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EnergyProfileError, match=f"{path}: {message}"):
        load_profile(str(path))


def test_profile_unknown_top_level_key(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({**HAND_PROFILE, "memroy": {}}))
    with pytest.raises(EnergyProfileError, match=r"typo.json: unknown key\(s\) memroy"):
        load_profile(str(path))


def test_result_without_structure_is_refused(hand_run):
    import dataclasses

    result, profile = hand_run
    with pytest.raises(EvsimError, match="no network structure"):
        price_run(dataclasses.replace(result, population_units=[]), profile)


def test_cli_reports_memory_energy(tmp_path):
    """`evsim run` and `evsim compare` with a memory profile: accesses x prices, the breakdown, the ANN columns."""
    from click.testing import CliRunner

    from evsim.cli.main import main

    bundled = str(Path(__file__).parent.parent / "examples" / "mnist_cnn.h5")
    run = CliRunner().invoke(main, ["run", bundled, "-T", "4", "-n", "2", "--energy", "neuromorphic-sram"])
    assert run.exit_code == 0, run.output
    assert "with memory accesses (event-driven dataflow" in run.output
    assert "weight_reads" in run.output and "quantised ANN, 3-bit activations" in run.output
    out = tmp_path / "table.json"
    compared = CliRunner().invoke(main, ["compare", bundled, bundled, "-T", "4", "-n", "2", "--names", "a,b",
                                         "--energy", "cmos45-sram", "--json", str(out)])
    assert compared.exit_code == 0, compared.output
    table = json.loads(out.read_text())
    assert [b["name"] for b in table["baselines"]] == ["ANN", "ANN 3-bit"]
    header = next(line for line in compared.output.splitlines() if line.startswith("run "))
    assert header.split()[-3:] == ["ANN", "ANN", "3-bit"]  # the baselines: two more columns
    assert table["runs"][0]["memory"]["breakdown_pj"]["total"] == pytest.approx(
        table["runs"][1]["memory"]["breakdown_pj"]["total"])
