"""Result object: tidy tables, and save / load giving back every field."""
import dataclasses

import numpy as np
import pytest

from evsim.counters import POPULATION_COUNTERS, POPULATION_VALUES, PROJECTION_COUNTERS
from evsim.errors import EvsimError
from evsim.result import load_result
from evsim.simulate import simulate
from evsim.weights_io import read_network


@pytest.fixture(scope="module")
def result(conformance_dir):
    network = read_network(conformance_dir / "later_bsnn.h5")
    return simulate(network, timesteps=16, record_spikes=True, record_trace=True, record_counts=True,
                    ann_outputs=np.ones((2, 10)))


def assert_equal_results(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name == "spikes":
            assert x.keys() == y.keys()
            for key in x:
                np.testing.assert_array_equal(x[key][0], y[key][0])
                np.testing.assert_array_equal(x[key][1], y[key][1])
        else:
            assert x == y, f.name


def test_save_and_load_round_trip(result, tmp_path):
    result.save(tmp_path / "r.h5")
    loaded = load_result(tmp_path / "r.h5")
    assert_equal_results(result, loaded)
    np.testing.assert_array_equal(loaded.accuracy(), result.accuracy())
    assert loaded.totals() == result.totals()


def test_load_rejects_other_files(tmp_path, conformance_dir):
    with pytest.raises(EvsimError, match="not an evsim result file"):
        load_result(conformance_dir / "later_bsnn.h5")
    (tmp_path / "x.h5").write_text("nope")
    with pytest.raises(EvsimError, match="not an HDF5 file"):
        load_result(tmp_path / "x.h5")


def test_frames_are_tidy_and_add_up(result):
    frames = result.frames()
    steps, counts, samples = frames["steps"], frames["counts"], frames["samples"]
    assert list(steps["t"]) == list(range(1, 17))
    np.testing.assert_allclose(steps["accuracy"], result.accuracy())
    np.testing.assert_allclose(steps["cosine"], result.cosine.mean(axis=0))
    per_population = len(POPULATION_COUNTERS) + len(POPULATION_VALUES)
    assert len(counts) == 16 * (per_population * len(result.populations) + len(PROJECTION_COUNTERS) * len(result.projections))
    ac = counts[(counts.counter == "ac_ops")].value.sum()
    assert ac == result.totals()["ac_ops"]
    events = counts[(counts.counter == "events") & (counts.kind.isin(["if", "bif"]))].value.sum()
    assert events == result.totals()["events"] == samples.events.sum()
    assert steps["cumulative_events"].iloc[-1] * result.n_samples == pytest.approx(events)
    assert list(samples.columns[:3]) == ["sample", "prediction", "decision_time"]
