"""Energy from counts: named profiles are data files (evsim/analysis/energy_profiles/*.json), not code.

A profile gives an energy per operation for each counted category
(docs/accounting.md) and one for an ANN MAC. Energy = sum over categories of
count x energy per operation; reports always show the profile used and the
counts, so the arithmetic can be redone by hand. A profile may also have a
`memory` section (evsim.analysis.memory: the dataflow priced, the memory
levels and where each datum lives); without one, operations only are priced.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

from evsim.analysis.memory import MemoryModel, parse_memory
from evsim.errors import EvsimError

#: The categories a profile prices, in report order.
ENERGY_CATEGORIES = ("ac_ops", "scaled_ops", "pool_ops", "input_macs", "bias_ops", "neuron_updates")
DEFAULT_PROFILE = "cmos45-fp32"
#: The keys a profile file may have.
PROFILE_KEYS = ("name", "description", "source", "unit", "per_operation", "ann_mac", "memory")


class EnergyProfileError(EvsimError):
    """An energy profile that cannot be found or does not have the required form."""


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    description: str
    source: str
    per_operation: dict  # category -> pJ per operation
    ann_mac: float       # pJ per ANN multiply-accumulate
    memory: Optional[MemoryModel] = None  # what accesses cost, and where data live (None: operations only)

    def snn_energy(self, counts: dict) -> dict:
        """pJ per category and `total`, from counts keyed by category (missing categories count 0)."""
        energy = {c: counts.get(c, 0) * self.per_operation[c] for c in ENERGY_CATEGORIES}
        energy["total"] = sum(energy.values())
        return energy

    def ann_energy(self, macs) -> float:
        return macs * self.ann_mac

    def to_dict(self) -> dict:
        out = {"name": self.name, "description": self.description, "source": self.source, "unit": "pJ",
               "per_operation": dict(self.per_operation), "ann_mac": self.ann_mac}
        if self.memory is not None:
            out["memory"] = self.memory.to_dict()
        return out


def available_profiles() -> list[str]:
    """Names of the profiles shipped with evsim."""
    folder = resources.files("evsim.analysis") / "energy_profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(name_or_path: str = DEFAULT_PROFILE) -> EnergyProfile:
    """A shipped profile by name, or a user's JSON file of the same form (see docs/energy.md)."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        where, text = str(path), path.read_text()
    elif name_or_path in available_profiles():
        where = f"energy profile {name_or_path}"
        text = (resources.files("evsim.analysis") / "energy_profiles" / f"{name_or_path}.json").read_text()
    else:
        raise EnergyProfileError(f"no energy profile {name_or_path!r}: give a .json file or one of "
                                 f"{', '.join(available_profiles())}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise EnergyProfileError(f"{where}: not valid JSON: {err}") from None
    return _parse(where, data)


def _parse(where: str, data) -> EnergyProfile:
    if not isinstance(data, dict) or not isinstance(data.get("per_operation"), dict):
        raise EnergyProfileError(f"{where}: needs an object with a 'per_operation' object")
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown:
        raise EnergyProfileError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(PROFILE_KEYS)})")
    if data.get("unit", "pJ") != "pJ":
        raise EnergyProfileError(f"{where}: unit must be pJ, not {data.get('unit')!r}")
    per_op = data["per_operation"]
    unknown = sorted(set(per_op) - set(ENERGY_CATEGORIES))
    missing = [c for c in ENERGY_CATEGORIES if c not in per_op]
    if unknown or missing:
        raise EnergyProfileError(f"{where}: per_operation must price exactly {', '.join(ENERGY_CATEGORIES)}"
                                 + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                                 + (f"; missing: {', '.join(missing)}" if missing else ""))
    values = {**{f"per_operation.{c}": per_op[c] for c in ENERGY_CATEGORIES}, "ann_mac": data.get("ann_mac")}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise EnergyProfileError(f"{where}: {key} must be a finite number >= 0 (pJ), not {value!r}")
    try:
        memory = None if "memory" not in data else parse_memory(data["memory"])
    except ValueError as err:
        raise EnergyProfileError(f"{where}: {err}") from None
    return EnergyProfile(name=str(data.get("name", where)), description=str(data.get("description", "")),
                         source=str(data.get("source", "")),
                         per_operation={c: float(per_op[c]) for c in ENERGY_CATEGORIES},
                         ann_mac=float(data["ann_mac"]), memory=memory)
