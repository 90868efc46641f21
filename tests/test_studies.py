"""The worked studies under examples/, run on a reduced setting so they cannot rot (the full runs are on demand)."""
import json
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_rate_norm_study(tmp_path):
    import study_rate_norm as study

    table = study.run_study(tmp_path, n_samples=16, timesteps=32, n_calibration=256)
    assert [run["name"] for run in table["runs"]] == list(study.VARIANTS)
    assert json.loads((tmp_path / "table.json").read_text()) == table
    for name in ("table.txt", "table.csv", "accuracy.png", "accuracy_vs_events.png", "agreement.png"):
        assert (tmp_path / name).stat().st_size > 0
    events = {run["name"]: run["per_sample"]["events"] for run in table["runs"]}
    # the 99.9th percentile is below the maximum: larger normalised weights, so more events
    assert events["p99.9, v0=0"] > events["max, v0=0"]
    assert events["p99.9, v0=theta/2"] > events["max, v0=theta/2"]
    # v0 = theta/2 starts every neuron half way to its threshold: spikes come earlier
    first = {run["name"]: run["accuracy"]["8"] for run in table["runs"]}
    assert first["max, v0=theta/2"] > first["max, v0=0"]


def test_memory_energy_study(tmp_path):
    """The quick setting of the memory study: counts, prices and SpikingJelly's estimate, all written out."""
    import study_memory_energy as study

    data = study.run_study(tmp_path, n_samples=16, timesteps=32, n_calibration=256, n_lemaire=4, quick=True)
    for name in ("README.md", "results.json", "lemaire_prices.json", "breakdown_cmos45-sram.png",
                 "over_t_neuromorphic-sram.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = {(r["conversion"], r["profile"]): r for r in data["at_latency"]}
    assert len(rows) == len(study.CONVERSIONS) * len(study.MEMORY_PROFILES)
    for row in rows.values():
        # memory accesses cost more than the operations they serve, for the SNN and for the ANN
        assert row["snn"]["total"] > 3 * row["snn"]["compute"] and row["ann"]["total"] > 3 * row["ann"]["compute"]
        assert row["quantised_bits"] == study.quantised_bits(row["t"])
        assert row["ann_zero_skip"]["total"] < row["ann"]["total"]
    # pools folded into the next conv multiply its synapses by the window area: more energy per sample
    folded, populated = (rows[(name, "cmos45-sram")]["snn"]["total"] for name in
                         ("rate-norm, v0=theta/2", "rate-norm, v0=theta/2, pool populations"))
    assert populated < folded
    # SpikingJelly's counts are Lemaire's formulas applied to the very spike trains evsim simulated
    lemaire = data["lemaire"]
    redone, theirs = lemaire["lemaire_formulas_on_evsim_events"], lemaire["spikingjelly"]["counts"]
    for key, value in redone.items():
        assert abs(value - theirs[key]) <= 1e-9 * max(1.0, theirs[key]), key
    assert lemaire["evsim"]["accesses"]["spike_writes"] == theirs["write_out_bytes"]
    assert lemaire["evsim"]["per_sample"]["input_macs_dense"] == theirs["mac"]
