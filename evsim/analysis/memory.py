"""Memory accesses, derived from the exact counts for a modelled dataflow, and priced from a profile's memory section.

The accesses are not counted by the engines: every one follows from a
counter of docs/accounting.md (synaptic ops, pool ops, input MACs, events,
bias ops, neuron updates, per population or projection and step) and the
network's structure, for the hardware being priced (its *dataflow*):

- `event-driven`: an event-driven core. Per synaptic op (a unit update
  `v += w` or `v += w c`) one weight read and one read-modify-write of the
  target's potential; per input MAC the same plus one read of the input
  pixel; per pool op one read-modify-write of the target's state (an average
  pool's weight is a constant: no weight read); per event one spike write,
  and per (event, outgoing projection) one spike read (the routing lookup);
  per bias op one bias read and one read-modify-write of the potential; per
  neuron update (threshold comparison) one potential read and one write.
- `output-stationary`: each unit's potential is held in a register for the
  step: one potential read and one write per unit and step, for every
  population with a membrane, whether or not input arrived; per synaptic op
  one weight read and one read of the source spike (the target gathers its
  inputs; spikes that did not happen are skipped); per pool op one spike
  read; per input MAC one weight read and one pixel read; per event one
  spike write; per bias op one bias read.

In both, a convolution's shared weight is read once per synaptic op that
uses it (no reuse across the events of a step is modelled), and a bif pair's
A and B units are two neurons, each reading its own copy of a weight it is
reached through. The ANN (`ann_accesses`) is priced as an output-stationary
accelerator: per MAC one weight read and one input-activation read; per
output activation one write (accumulated in a register) and, if the neuron
has a bias, one bias read; zero activations are not skipped unless the MACs
given are the nonzero ones.

A profile's memory section (`MemoryModel`) says where each datum lives
(weights, potentials, spikes, activations: a memory level and a word width in
bits) and what an access costs at each level (pJ per word of the level's
width; a datum of b bits costs `b / word_bits` of a word: packed data, linear
in width). docs/energy.md gives the profiles, the formulas and a worked case.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from evsim.counters import (AC_OPS, BIAS_OPS, EVENTS, INPUT_MACS, NEURON_UPDATES, POOL_OPS, POPULATION_COUNTERS,
                            PROJECTION_COUNTERS, SCALED_OPS)
from evsim.errors import EvsimError
from evsim.kinds import POPULATION_KINDS

#: What lives in memory, in report order.
DATA = ("weights", "potentials", "spikes", "activations")
#: Every access the models count, and the datum it touches.
ACCESS_DATUM = {"weight_reads": "weights", "bias_reads": "weights",
                "potential_reads": "potentials", "potential_writes": "potentials",
                "spike_writes": "spikes", "spike_reads": "spikes",
                "input_reads": "activations", "activation_reads": "activations", "activation_writes": "activations"}
SNN_ACCESSES = ("weight_reads", "bias_reads", "potential_reads", "potential_writes", "spike_writes", "spike_reads",
                "input_reads")
ANN_ACCESSES = ("weight_reads", "bias_reads", "activation_reads", "activation_writes")
#: The breakdown every report shows: compute (the operations), then one entry per datum.
BREAKDOWN = ("compute",) + DATA
EVENT_DRIVEN, OUTPUT_STATIONARY = "event-driven", "output-stationary"
DATAFLOWS = (EVENT_DRIVEN, OUTPUT_STATIONARY)


# ----------------------------------------------------------------------------- the profile's memory section


@dataclass(frozen=True)
class MemoryLevel:
    word_bits: int
    pj_per_word: float

    def access_pj(self, bits: int) -> float:
        """One access to a datum of `bits` bits: its share of a word (packed)."""
        return self.pj_per_word * bits / self.word_bits


@dataclass(frozen=True)
class MemoryModel:
    """Where each datum lives and what its accesses cost (a profile's `memory` section)."""

    dataflow: str
    levels: dict         # name -> MemoryLevel
    placement: dict      # datum -> (level name, bits)
    multiply_pj_per_bit_product: float  # a b x w-bit integer multiply costs this x b x w (the quantised ANN's MAC)
    accumulate_pj: float                # and its accumulation this

    def access_pj(self, datum: str, bits: Optional[int] = None) -> float:
        level, placed_bits = self.placement[datum]
        return self.levels[level].access_pj(placed_bits if bits is None else bits)

    def bits(self, datum: str) -> int:
        return self.placement[datum][1]

    def quantised_mac_pj(self, activation_bits: int) -> float:
        return self.multiply_pj_per_bit_product * activation_bits * self.bits("weights") + self.accumulate_pj

    def to_dict(self) -> dict:
        return {"dataflow": self.dataflow,
                "levels": {name: {"word_bits": lv.word_bits, "pj_per_word": lv.pj_per_word}
                           for name, lv in self.levels.items()},
                "placement": {d: {"level": level, "bits": bits} for d, (level, bits) in self.placement.items()},
                "quantised_mac": {"multiply_pj_per_bit_product": self.multiply_pj_per_bit_product,
                                  "accumulate_pj": self.accumulate_pj}}


def parse_memory(data) -> MemoryModel:
    """A profile's `memory` object; ValueError naming the key (below `memory`) and the problem."""
    _object(data, "memory", ("dataflow", "levels", "placement", "quantised_mac", "note"))
    if data.get("dataflow") not in DATAFLOWS:
        raise ValueError(f"memory.dataflow must be one of {', '.join(DATAFLOWS)}, not {data.get('dataflow')!r}")
    levels = data.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise ValueError("memory.levels must be an object naming at least one memory level")
    parsed = {}
    for name, level in levels.items():
        _object(level, f"memory.levels.{name}", ("word_bits", "pj_per_word", "note"))
        parsed[name] = MemoryLevel(_bits(level.get("word_bits"), f"memory.levels.{name}.word_bits"),
                                   _picojoules(level.get("pj_per_word"), f"memory.levels.{name}.pj_per_word"))
    placement = data.get("placement")
    _object(placement, "memory.placement", DATA + ("note",))
    missing = [d for d in DATA if d not in placement]
    if missing:
        raise ValueError(f"memory.placement must place {', '.join(DATA)}; missing: {', '.join(missing)}")
    placed = {}
    for datum in DATA:
        where = f"memory.placement.{datum}"
        _object(placement[datum], where, ("level", "bits", "note"))
        level = placement[datum].get("level")
        if level not in parsed:
            raise ValueError(f"{where}.level must name a level of memory.levels ({', '.join(parsed)}), not {level!r}")
        placed[datum] = (level, _bits(placement[datum].get("bits"), f"{where}.bits"))
    mac = data.get("quantised_mac")
    _object(mac, "memory.quantised_mac", ("multiply_pj_per_bit_product", "accumulate_pj", "note"))
    return MemoryModel(data["dataflow"], parsed, placed,
                       _picojoules(mac.get("multiply_pj_per_bit_product"), "memory.quantised_mac.multiply_pj_per_bit_product"),
                       _picojoules(mac.get("accumulate_pj"), "memory.quantised_mac.accumulate_pj"))


def _object(value, where: str, allowed) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, not {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def _bits(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where} must be a whole number of bits >= 1, not {value!r}")
    return value


def _picojoules(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite number >= 0 (pJ), not {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- accesses from counts


@dataclass(frozen=True)
class Structure:
    """What the dataflows need of a network beyond its counts (kept on every result)."""

    population_kinds: list
    population_sizes: list
    population_units: list
    population_biased: list
    projection_kinds: list
    projection_sources: list  # each projection's source, as an index into the populations

    @classmethod
    def of(cls, result) -> "Structure":
        if not result.population_units or len(result.projection_sources) != len(result.projections):
            raise EvsimError("this result has no network structure (saved by an older evsim): run it again "
                             "to price its memory accesses")
        sources = [result.populations.index(name) for name in result.projection_sources]
        return cls(result.population_kinds, result.population_sizes, result.population_units,
                   result.population_biased, result.projection_kinds, sources)

    @property
    def membranes(self) -> np.ndarray:
        """Units with a membrane, per population (a bif pair's two units count)."""
        return np.array([size * units if POPULATION_KINDS[kind].membrane else 0 for kind, size, units
                         in zip(self.population_kinds, self.population_sizes, self.population_units)])

    def emits(self, origin: str) -> np.ndarray:
        return np.array([POPULATION_KINDS[kind].emits == origin for kind in self.population_kinds])


def snn_accesses(structure: Structure, dataflow: str, pops: np.ndarray, projs: np.ndarray, steps) -> dict:
    """Accesses per layer: access -> array [..., P + Q] (populations, then projections).

    `pops` [..., P, C] and `projs` [..., Q, C] are counts summed over `steps`
    steps (a number, or an array broadcasting against the leading axes): per
    step and sample (steps 1), per sample over a run (steps T), summed over
    n samples (steps n T), ...
    """
    pops, projs = np.asarray(pops, np.int64), np.asarray(projs, np.int64)
    lead, P, Q = pops.shape[:-2], pops.shape[-2], projs.shape[-2]
    out = {access: np.zeros(lead + (P + Q,), np.int64) for access in SNN_ACCESSES}
    synops = projs[..., AC_OPS] + projs[..., SCALED_OPS]
    macs, pool = projs[..., INPUT_MACS], projs[..., POOL_OPS]
    events = pops[..., EVENTS]
    written = structure.emits("own") | structure.emits("encoded")  # a relay forwards, it writes no spike
    out["spike_writes"][..., :P] = events * written
    out["bias_reads"][..., :P] = pops[..., BIAS_OPS]
    out["weight_reads"][..., P:] = synops + macs
    out["input_reads"][..., P:] = macs
    if dataflow == EVENT_DRIVEN:
        rmw_pops = pops[..., BIAS_OPS] + pops[..., NEURON_UPDATES]
        rmw_projs = synops + macs + pool
        out["spike_reads"][..., P:] = events[..., structure.projection_sources]
    elif dataflow == OUTPUT_STATIONARY:
        rmw_pops = np.broadcast_to(structure.membranes * np.expand_dims(np.asarray(steps, np.int64), -1), lead + (P,))
        rmw_projs = np.zeros_like(synops)
        out["spike_reads"][..., P:] = synops + pool
    else:
        raise ValueError(f"no dataflow {dataflow!r}: one of {', '.join(DATAFLOWS)}")
    for access in ("potential_reads", "potential_writes"):
        out[access][..., :P] = rmw_pops
        out[access][..., P:] = rmw_projs
    return out


def ann_accesses(structure: Structure, macs: float) -> dict:
    """The ANN's accesses per sample, output-stationary: per MAC a weight and an input read; per activation a write.

    `macs`: the ANN's MACs per sample (all of them, or only those over nonzero
    inputs for an ANN that skips zeros). Activations written: every neuron of
    every population but the input (a bif pair is one ANN neuron; a relay is a
    max-pool's output); bias reads: the neurons with a nonzero bias.
    """
    writes = sum(size for kind, size in zip(structure.population_kinds, structure.population_sizes)
                 if POPULATION_KINDS[kind].emits != "encoded")
    return {"weight_reads": macs, "bias_reads": sum(structure.population_biased), "activation_reads": macs,
            "activation_writes": writes}


def quantised_bits(timesteps: int) -> int:
    """The activation width of the ANN of equal capacity to a rate-coded SNN of T steps: ceil(log2(T + 1))."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


# ----------------------------------------------------------------------------- prices


def access_prices(memory: MemoryModel, accesses, activation_bits: Optional[int] = None) -> dict:
    """pJ per access of each kind (activations at `activation_bits`, default the placed width)."""
    return {access: memory.access_pj(ACCESS_DATUM[access], activation_bits if ACCESS_DATUM[access] == "activations"
                                     else None) for access in accesses}


def priced(accesses: dict, prices: dict, compute_pj) -> dict:
    """counts, pJ per access, pJ per access kind, and the breakdown (compute + one entry per datum, total)."""
    energy = {access: accesses[access] * prices[access] for access in accesses}
    breakdown = {"compute": compute_pj, **{d: sum(e for a, e in energy.items() if ACCESS_DATUM[a] == d) for d in DATA}}
    breakdown["total"] = sum(breakdown[k] for k in BREAKDOWN)
    return {"accesses": accesses, "pj_per_access": prices, "energy_pj": energy, "breakdown_pj": breakdown}


# ----------------------------------------------------------------------------- a run, priced


def layer_compute_pj(per_operation: dict, pops: np.ndarray, projs: np.ndarray) -> np.ndarray:
    """The operations-only energy of each layer [..., P + Q] (the categories of `EnergyProfile.per_operation`)."""
    pop_pj = sum(pops[..., POPULATION_COUNTERS.index(c)] * per_operation[c] for c in ("bias_ops", "neuron_updates"))
    proj_pj = sum(projs[..., PROJECTION_COUNTERS.index(c)] * per_operation[c]
                  for c in ("ac_ops", "scaled_ops", "pool_ops", "input_macs"))
    return np.concatenate([pop_pj, proj_pj], axis=-1)


def price_run(result, profile, *, until: Optional[int] = None, ann_macs: Optional[float] = None) -> Optional[dict]:
    """The SNN over steps 1..`until` (default T), the ANN and the quantised ANN of equal capacity, priced with memory.

    Per sample (means over samples). `ann_macs` (default the file's
    `/ann/macs`, every MAC) lets a caller price an ANN that skips zero
    activations. None when the profile has no memory section. The quantised
    ANN has `quantised_bits(until)`-bit activations, the ANN the profile's
    placed activation width; both read the profile's weight width.
    Also: the SNN's firing rate (its events per threshold comparison: per
    firing neuron and step; a potential readout does not count) and the rate
    at which its energy would equal the quantised ANN's (`break_even_rate`).
    """
    memory = profile.memory
    if memory is None:
        return None
    t = result.timesteps if until is None else until
    structure = Structure.of(result)
    pops = result.pop_counts_per_step[:t].sum(axis=0)
    projs = result.proj_counts_per_step[:t].sum(axis=0)
    n = result.n_samples
    layers = snn_accesses(structure, memory.dataflow, pops, projs, steps=n * t)
    accesses = {access: float(counts.sum()) / n for access, counts in layers.items()}
    compute = float(layer_compute_pj(profile.per_operation, pops, projs).sum()) / n
    snn = priced(accesses, access_prices(memory, SNN_ACCESSES), compute)
    out = {"dataflow": memory.dataflow, "timesteps": t, "snn": snn, "ann": None, "quantised_ann": None,
           "snn_over_ann": None, "snn_over_quantised_ann": None}
    own = structure.emits("own")
    comparisons = pops[own, NEURON_UPDATES].sum()  # neurons that can fire, times steps
    out["firing_rate"] = float(pops[own, EVENTS].sum() / comparisons) if comparisons else None
    macs = result.ann_macs if ann_macs is None else ann_macs
    if not macs:
        return out
    ann_counts = ann_accesses(structure, macs)
    out["ann"] = {"activation_bits": memory.bits("activations"),
                  **priced(ann_counts, access_prices(memory, ANN_ACCESSES), macs * profile.ann_mac)}
    bits = quantised_bits(t)
    out["quantised_ann"] = {"activation_bits": bits, **priced(ann_counts, access_prices(memory, ANN_ACCESSES, bits),
                                                              macs * memory.quantised_mac_pj(bits))}
    total = snn["breakdown_pj"]["total"]
    out["snn_over_ann"] = total / out["ann"]["breakdown_pj"]["total"]
    out["snn_over_quantised_ann"] = total / out["quantised_ann"]["breakdown_pj"]["total"]
    out["break_even_rate"] = _break_even_rate(structure, memory, profile, layers, pops, projs, n, out)
    return out


def _break_even_rate(structure, memory, profile, layers, pops, projs, n, out) -> Optional[float]:
    """The firing rate at which the SNN's energy equals the quantised ANN's, the event mix held as measured.

    The SNN's energy splits into a part proportional to its own events (the
    operations and accesses of projections out of spiking populations and
    relays, and the spike writes of spiking populations) and a fixed part
    (bias ops, neuron updates, the analog input's MACs, the input encoder's
    spikes, an output-stationary core's per-step potential accesses). Scaled
    linearly in the rate: r* = r x (E_quantised - E_fixed) / E_events;
    0 when the fixed part alone costs more.
    """
    rate = out["firing_rate"]
    if not rate:
        return None
    P = len(structure.population_kinds)
    prices = access_prices(memory, SNN_ACCESSES)
    energy = sum(layers[a] * prices[a] for a in SNN_ACCESSES) / n
    compute = layer_compute_pj(profile.per_operation, pops, projs) / n
    spiking = structure.emits("own") | structure.emits("relayed")
    variable_proj = spiking[structure.projection_sources]
    variable = (energy[P:] + compute[P:])[variable_proj].sum() + (layers["spike_writes"][:P] * prices["spike_writes"]
                                                                  )[structure.emits("own")].sum() / n
    fixed = out["snn"]["breakdown_pj"]["total"] - variable
    target = out["quantised_ann"]["breakdown_pj"]["total"]
    return max(0.0, rate * (target - fixed) / variable) if variable else None
