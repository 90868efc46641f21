"""Energy profiles: shipped data files, user files, and the arithmetic."""
import json

import pytest

from evsim.analysis.energy import ENERGY_CATEGORIES, EnergyProfileError, available_profiles, load_profile


def test_shipped_profiles_load_and_price_every_category():
    names = available_profiles()
    assert {"cmos45-fp32", "cmos45-int8", "neuromorphic-synop"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert set(profile.per_operation) == set(ENERGY_CATEGORIES) and profile.source


def test_horowitz_figures_and_arithmetic():
    fp32 = load_profile("cmos45-fp32")
    assert fp32.per_operation["ac_ops"] == 0.9 and fp32.per_operation["scaled_ops"] == 4.6 and fp32.ann_mac == 4.6
    counts = {"ac_ops": 1000, "scaled_ops": 10, "input_macs": 100, "neuron_updates": 50}
    energy = fp32.snn_energy(counts)
    assert energy["total"] == pytest.approx(1000 * 0.9 + 10 * 4.6 + 100 * 4.6 + 50 * 0.9)
    assert fp32.ann_energy(2000) == pytest.approx(9200)


def test_user_profile_file(tmp_path):
    data = {"name": "mine", "unit": "pJ", "ann_mac": 2.0, "per_operation": dict.fromkeys(ENERGY_CATEGORIES, 1.0)}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    assert load_profile(str(path)).snn_energy({"ac_ops": 3})["total"] == 3.0


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["per_operation"].pop("ac_ops"), "missing: ac_ops"),
    (lambda d: d["per_operation"].update(flops=1), "unknown: flops"),
    (lambda d: d["per_operation"].update(ac_ops=-1), "per_operation.ac_ops must be a finite number"),
    (lambda d: d["per_operation"].update(ac_ops="0.9"), "per_operation.ac_ops must be a finite number"),
    (lambda d: d.update(ann_mac=float("nan")), "ann_mac must be a finite number"),
    (lambda d: d.update(unit="nJ"), "unit must be pJ"),
])
def test_bad_user_profiles(tmp_path, mutate, message):
    data = {"unit": "pJ", "ann_mac": 2.0, "per_operation": dict.fromkeys(ENERGY_CATEGORIES, 1.0)}
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EnergyProfileError, match=message):
        load_profile(str(path))


def test_unknown_profile_and_bad_json(tmp_path):
    with pytest.raises(EnergyProfileError, match="no energy profile 'nope'"):
        load_profile("nope")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(EnergyProfileError, match="not valid JSON"):
        load_profile(str(tmp_path / "x.json"))
