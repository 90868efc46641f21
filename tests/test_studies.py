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
