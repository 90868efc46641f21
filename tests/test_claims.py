"""The claims mode of the reproduction scripts (examples/claims.py, `--claims`): quick runs end to end, the verdict
page written from the scripts' files, the pieces the claims rely on (random v(0), the negative threshold removed,
clip on residual sums, synchronous neurons under rate coding)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlxtend")

EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

from evsim.analysis.stats import NOT_TESTABLE, VERDICTS  # noqa: E402


def _quiet(*_):
    pass


def _quick(tmp_path_factory, module: str, **kwargs):
    import claims

    study = __import__(module)
    out = tmp_path_factory.mktemp(module)
    rows = study.check_claims(out, claims.QUICK, cache=out / "cache", quick=True, command=f"{module} --quick",
                              log=_quiet, **kwargs)
    return study, out, rows, json.loads((out / "claims.json").read_text())


@pytest.fixture(scope="module")
def bsnn(tmp_path_factory):
    return _quick(tmp_path_factory, "reproduce_bsnn", resnet_folds=1)


@pytest.fixture(scope="module")
def double_threshold(tmp_path_factory):
    return _quick(tmp_path_factory, "reproduce_double_threshold")


@pytest.fixture(scope="module")
def potential_init(tmp_path_factory):
    return _quick(tmp_path_factory, "reproduce_potential_init")


def _check_record(record, rows):
    assert record["quick"] is True and record["rows"] and len(record["rows"]) == len(rows)
    for row in record["rows"]:
        assert row["verdict"] in VERDICTS and row["reason"] and row["here"]
        assert row["semantics"]
        if row["verdict"] != NOT_TESTABLE:
            assert row["interval"]["low"] <= row["interval"]["high"] or np.isnan(row["interval"]["low"])
            assert row["interval"]["n"] == 24  # the quick scale: fold 0, 24 images


def test_bsnn_claims(bsnn):
    study, out, rows, record = bsnn
    _check_record(record, rows)
    claims_text = {row["claim"]: row for row in record["rows"]}
    scoped = [row for claim, row in claims_text.items() if claim.startswith("1/4-1/10")]
    assert scoped and scoped[0]["verdict"] == NOT_TESTABLE and "CIFAR" in scoped[0]["reason"]
    assert any("Table III" in claim for claim in claims_text) and any("rate coding" in claim for claim in claims_text)
    assert any("pipeline fill" in claim for claim in claims_text)
    page = (out / "claims.md").read_text()
    for heading in ("Spikes of inactivated neurons per layer", "Fig. 5", "Ablations"):
        assert heading in page
    for rule in ("BSNN v1 drive", "BSNN v1 bias_onset", "BSNN v1 rank", "BSNN v1 (all rules)"):
        assert rule in page
    assert "drive: split" in page and "drive: gated" in page  # the ablation's semantics differ from version 2's
    assert any("synaptic operations" in claim for claim in claims_text)
    pools = page.split("## Ablation of the pool rule on the ResNet", 1)[1]
    assert pools.count("| Table III") == 2
    resnet = {line.split(" | ")[1]: line for line in page.splitlines() if line.startswith("| ResNet | ")}
    assert "pools: population" in resnet["BSNN w/ SN v1 pool"] and "pools: fold" in resnet["BSNN w/ SN"]  # v1 pool ran
    assert "## Synchronous neurons under rate coding" in page and "(image, step) pairs" in page


def _measured(name, correct, events, ops, seconds=0.0, trained=None):
    """A claims.Measured of two folds with the given correctness [n, T] and per-step costs [T]."""
    import claims

    n, T = correct.shape
    return claims.Measured(
        name=name, semantics="-", folds=np.repeat([0, 1], n // 2), correct=correct, ann_correct=np.ones(n, bool),
        agree=correct, events=np.zeros(n), synaptic_ops=np.zeros(n), sin_events=np.zeros(n),
        events_steps=np.cumsum(events), ops_steps=np.cumsum(ops), sin_steps=np.zeros((T, 1)), populations=["p"],
        abs_difference=np.zeros((n, T)), difference_from_1=None, windowed_difference=None, fill=None,
        seconds=seconds, trained=trained or {})


def test_latency_reports_events_and_synaptic_ops_to_it():
    """The cost to a latency, in events and in synaptic ops, is the cumulative cost at the measured latency."""
    import claims

    n, T = 40, 6
    correct_a = np.zeros((n, T), dtype=bool)
    correct_a[:, 3:] = True          # A right from step 4
    correct_b = np.ones((n, T), dtype=bool)
    correct_b[:, 0] = False          # B right from step 2
    a = _measured("A", correct_a, np.full(T, 10.0), np.full(T, 100.0))
    b = _measured("B", correct_b, np.full(T, 30.0), np.full(T, 50.0))
    out = claims.latency(a, b, tolerance=0.0)
    assert (out["ratio"].a, out["ratio"].b) == (4, 2)
    assert out["cost_ratio"].estimate == pytest.approx(60.0 / 40.0)   # 2 x 30 events against 4 x 10
    assert out["ops_ratio"].estimate == pytest.approx(100.0 / 400.0)  # 2 x 50 ops against 4 x 100
    assert out["ops_ratio"].low == out["ops_ratio"].high == pytest.approx(0.25)  # every resample's latencies agree


def test_double_threshold_claims(double_threshold):
    study, out, rows, record = double_threshold
    _check_record(record, rows)
    claim_texts = [row["claim"] for row in record["rows"]]
    for readout in study.READOUTS:
        assert sum(f"[readout: {readout}]" in claim for claim in claim_texts) >= 10
    for slope in study.SLOPES:
        assert any(f"LeakyReLU({slope:g})" in claim and "Table II" in claim for claim in claim_texts)
    assert any("readout: spikes" in row["semantics"] for row in record["rows"])
    page = (out / "claims.md").read_text()
    assert "Negative spikes" in page and "no negative threshold" in page
    negative = {}  # (net title, conversion) -> negative events per image, from the page's table
    for line in page.split("## Negative spikes", 1)[1].splitlines():
        if line.startswith("| Net"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            negative[cells[0], cells[1]] = float(cells[3].replace(",", ""))
    ablations = [row for row in record["rows"] if row["claim"].startswith("Sec. III-E") and "threshold" in row["claim"]]
    assert len(ablations) == 2 * len(study.ABLATION_SLOPES) * 2 * len(study.READOUTS)  # nets x slopes x methods x readouts
    for row in ablations:
        net = next(title for title in study.NET_TITLES.values() if f"Sec. III-E, {title}:" in row["claim"])
        method = "TerMapping" if "TerMapping SNN" in row["claim"] else "AugMapping"
        slope = next(s for s in study.ABLATION_SLOPES if f"LeakyReLU({s:g}) ANN" in row["claim"])
        count = negative[net, f"{method} / LeakyReLU({slope:g}) (potential)"]
        assert (row["verdict"] == NOT_TESTABLE) == (count == 0), row["claim"]  # nothing to remove when none fire


def test_potential_init_claims(potential_init):
    study, out, rows, record = potential_init
    _check_record(record, rows)
    claim_texts = [row["claim"] for row in record["rows"]]
    assert any("uniform" in claim for claim in claim_texts) and any("Gaussian" in claim for claim in claim_texts)
    assert any("Theorem 1" in claim for claim in claim_texts) and any("clip_resnet" in claim for claim in claim_texts)
    best = [row for row in record["rows"] if "best constant" in row["claim"]]
    assert best and all(0.0 <= row["interval"]["low"] <= row["interval"]["high"] <= 1.0 for row in best)


def test_a_second_run_is_read_from_the_cache(potential_init, tmp_path):
    import claims

    study, out, _, record = potential_init
    stored = sorted((out / "cache" / "simulations").glob("*.npz"))
    rows = study.check_claims(tmp_path, claims.QUICK, cache=out / "cache", quick=True, command="again", log=_quiet)
    assert sorted((out / "cache" / "simulations").glob("*.npz")) == stored  # nothing simulated again
    assert [r.here for r in rows] == [r["here"] for r in record["rows"]]


def test_first_run_counts_a_shared_ann_once():
    import claims

    correct = np.ones((4, 3), dtype=bool)
    cost = np.ones(3)
    one = {"x": _measured("x", correct, cost, cost, seconds=5.0, trained={"ann-f0": 30.0, "ann-f1": 20.0})}
    two = {"y": _measured("y", correct, cost, cost, seconds=7.0, trained={"ann-f0": 30.0}),   # the same fold-0 ANN
           "z": _measured("z", correct, cost, cost, seconds=1.0, trained={"other-f0": 4.0})}
    assert claims.first_run(one, two) == {"training": 54.0, "simulations": 13.0}


def test_verdict_page_is_written_from_the_claims_files(tmp_path):
    import claims

    page = tmp_path / "README.md"
    page.write_text(f"# Verdicts\n\n{claims.BEGIN}\nSTALE ROW\n{claims.END}\n\n## Method\nkept\n")
    row = claims.Row("Paper A", "A beats B", "2x", "1.5 [1.2, 1.8]", "held", "lies in", "format v2; ...")
    for name, quick in (("a", False), ("b", True)):
        (tmp_path / name).mkdir()
        claims.write_claims(tmp_path / name, f"Paper {name}", [row], "tables", scale=claims.QUICK, command=f"run {name}",
                            seconds=120, quick=quick, first={"training": 600.0, "simulations": 1800.0})
    text = claims.write_verdict_page(tmp_path).read_text()
    assert "STALE ROW" not in text and "## Method\nkept" in text
    assert "[Paper a](a/claims.md)" in text and "`run a`" in text
    assert "| 40 min from scratch (training 10, simulations 30 on 1 thread); 2 min from the cache |" in text
    assert "Paper b" not in text  # a quick run is not a result
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        claims.write_verdict_page(tmp_path)


# ----------------------------------------------------------------------------- the pieces


def _small_clip_network(method_options=None):
    import torch

    import mnist_nets
    from evsim.weights_io.export import convert_model

    torch.manual_seed(0)
    model = mnist_nets.build("clip_cnn").eval()
    x = torch.rand(4, 1, 28, 28)
    return convert_model(model, calibration=x, method="clip", samples=x, labels=torch.zeros(4, dtype=torch.long),
                         **(method_options or {}))


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_random_initial_potentials_per_neuron(distribution):
    import reproduce_potential_init as study

    network = _small_clip_network()
    drawn = study.random_v_init(distribution, 1)(network, 0)
    again = study.random_v_init(distribution, 1)(network, 0)
    other_fold = study.random_v_init(distribution, 1)(network, 1)
    hidden = [(p, q, r) for p, q, r in zip(drawn.populations, again.populations, other_fold.populations) if p.kind == "if"]
    assert hidden
    for p, q, r in hidden:
        theta = np.broadcast_to(study._per_neuron(p.theta_pos, p.shape), p.shape)
        assert p.v_init.shape == p.shape and (p.v_init >= 0).all() and (p.v_init < theta).all()
        assert np.array_equal(p.v_init, q.v_init) and not np.array_equal(p.v_init, r.v_init)
        fraction = p.v_init / theta
        assert np.unique(fraction).size > p.v_init.size // 2  # drawn per neuron
        if distribution == "gaussian":
            assert abs(np.median(fraction) - 0.5) < 0.05
    assert [p.v_init.shape for p in drawn.populations if p.kind != "if"] == \
        [p.v_init.shape for p in network.populations if p.kind != "if"]


def test_without_negative_threshold():
    import torch

    import mnist_nets
    import reproduce_double_threshold as study
    from evsim.weights_io.export import convert_model

    torch.manual_seed(0)
    model = mnist_nets.build("net1", "leaky_relu", 0.1).eval()
    x = torch.rand(4, 1, 28, 28)
    network = convert_model(model, calibration=x, method="termapping")
    assert any(p.theta_neg is not None for p in network.populations if p.kind == "if")
    cut = study.without_negative_threshold(network)
    assert all(p.theta_neg is None for p in cut.populations if p.kind == "if")
    assert [p.theta_pos for p in cut.populations] == [p.theta_pos for p in network.populations]
    zeroed = study.relu_copy(model)
    assert torch.equal(zeroed(x), torch.relu(zeroed.fc2(torch.relu(zeroed.fc1(x.flatten(1))))) @ zeroed.fc3.weight.T)


def test_clip_converts_residual_sums():
    import torch

    import mnist_nets
    from evsim import Simulator
    from evsim.weights_io.export import convert_model
    from evsim.weights_io.layers import TrainableClip

    torch.manual_seed(0)
    model = mnist_nets.build("clip_resnet").eval()
    with torch.no_grad():  # bounds other than 1, so that the shortcut's scale is visible
        for i, module in enumerate(m for m in model.modules() if isinstance(m, TrainableClip)):
            module.theta.fill_(0.6 + 0.1 * i)
    x = torch.rand(4, 1, 28, 28)
    network = convert_model(model, calibration=x, method="clip", v_init_fraction=0.5, samples=x,
                            labels=torch.zeros(4, dtype=torch.long))
    thetas = {p.name: float(np.max(p.theta_pos)) for p in network.populations if p.kind == "if"}
    shortcuts = [q for q in network.projections if q.kind == "identity"]
    assert len(shortcuts) == 2  # the identity shortcuts of blocks 1 and 3 (block 2's is a 1x1 conv)
    for q in shortcuts:
        assert q.scale == pytest.approx(thetas[q.source])  # a spike of the shortcut's source carries its theta
    result = Simulator(network, threads=1).run(timesteps=256)
    difference = result.abs_difference.mean(axis=0)
    assert difference[-1] < 0.05 * np.abs(result.ann_outputs).mean() and difference[-1] < difference[15]


def test_rate_norm_takes_synchronous_neurons():
    import torch

    import mnist_nets
    from evsim.weights_io.export import convert_model

    torch.manual_seed(0)
    model = mnist_nets.build("resnet").eval()
    x = torch.rand(4, 1, 28, 28)
    plain = convert_model(model, calibration=x, method="rate-norm")
    synced = convert_model(model, calibration=x, method="rate-norm", sync_neurons=True)
    assert not plain.meta.get("sync_populations")
    names = synced.meta["sync_populations"]
    assert len(names) == 3  # one per block: every shortcut is one population shorter than its conv path
    assert all(p.kind == "if" for p in synced.populations if p.name in names)
    assert len(synced.populations) == len(plain.populations) + 3
