"""The exporter's version-2 networks (issue "Faithful to the papers", item 3), by hand and by simulation.

- bsnn: gated drive on its bif pairs (no halving), value-ranked max pools,
  and a bias onset on every population with a bias: K times the bif
  populations strictly upstream of it on the shortest path from the input;
  phase: value-ranked max pools;
- average pools folded into the next conv / dense layer (exact; refused
  where it would not be);
- a spiking readout for termapping and augmapping;
- the options that bring each version-1 rule back, and that together give
  exactly the network the version-1 exporter wrote.
"""
import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from evsim.errors import ExportError  # noqa: E402
from evsim.simulate import simulate  # noqa: E402
from evsim.weights_io import read_network  # noqa: E402
from evsim.weights_io.export import convert_model, export_model, run_layers, trace_model  # noqa: E402
from evsim.weights_io.trace import fold_pools  # noqa: E402
from torch_models import (  # noqa: E402
    TinyResNet,
    dense_net,
    dyadic,
    images,
    maxpool_net,
    pool_conv_net,
    scalar,
    version_1,
)

W1 = np.array([[1.0, -0.5, 0.25], [0.5, 1.0, -1.0], [-0.25, 0.75, 0.5], [1.0, 0.5, 0.5]])
B1 = np.array([0.25, 0.0, -0.125, 0.5])
W2 = np.array([[0.5, -1.0, 0.25, 1.0], [1.0, 0.5, -0.5, 0.25], [-0.5, 0.25, 1.0, 0.5]])
B2 = np.array([0.125, -0.25, 0.0])
W3 = np.array([[1.0, -0.5, 0.75], [-0.25, 1.0, 0.5]])
B3 = np.array([0.0, 0.25])


def _dense():
    return dense_net(nn.ReLU, (W1, W2, W3), (B1, B2, B3))


def _grid(x, step=1 / 16):
    """Inputs on a dyadic grid: the folded ANN computes exactly in float32 on them."""
    return torch.round(torch.as_tensor(x, dtype=torch.float32) / step) * step


def _onsets(net):
    return {p.name: p.bias_onset for p in net.populations if p.kind != "input" and p.kind != "relay"}


def _meta_onsets(net):
    return {entry["layer"]: entry["onset"] for entry in net.meta["layers"]}


# ----------------------------------------------------------------------------- bsnn: onsets, drive, rank


@pytest.mark.parametrize("period", [8, 4])
def test_bsnn_mlp_onsets_gated_drive_and_no_halving(period):
    x = _grid(np.random.default_rng(1).random((64, 3)))
    net = convert_model(_dense(), calibration=x, method="bsnn", phase_period=period)
    old = convert_model(_dense(), calibration=x, method="bsnn", phase_period=period, **version_1("bsnn"))
    inp, h1, h2, out = net.populations
    # input -> h1 (bif) -> h2 (bif) -> readout: one period K per bif population upstream
    assert _onsets(net) == {h1.name: 0, h2.name: period, out.name: 2 * period}
    assert _meta_onsets(net) == _onsets(net)
    assert (h1.drive, h2.drive) == ("gated", "gated") and out.mode == "potential"
    # gated: the input's events and the bias reach only the integrating unit, in full; version 1 halved them
    p1, p2, p3 = net.projections
    o1, o2, o3 = old.projections
    np.testing.assert_array_equal(p1.weight, o1.weight * 2)
    np.testing.assert_array_equal(h1.bias, old.populations[1].bias * 2)
    np.testing.assert_array_equal(h2.bias, old.populations[2].bias * 2)
    np.testing.assert_array_equal(p2.weight, o2.weight)  # tagged: in full in both
    np.testing.assert_array_equal(p3.weight, o3.weight)
    np.testing.assert_array_equal(out.bias, old.populations[3].bias)
    assert all(p.bias_onset == 0 and p.drive == "split" for p in old.populations)
    meta = net.meta
    assert (meta["drive"], meta["rank"], meta["bias_onset"], meta["pool"]) == ("gated", "value", "auto", "fold")
    assert meta["neurons"] == {"kind": "bif", "coding": "phase", "phase_period": period, "drive": "gated"}
    assert "bif_halving" not in meta["layers"][0] and old.meta["layers"][0]["bif_halving"] == 0.5


def test_bsnn_cnn_with_max_pools_onsets_and_value_rank():
    model, x = maxpool_net(), images(16)
    net = convert_model(model, calibration=x, method="bsnn")
    # input -> conv1 (bif) -> pool1 relay -> conv2 (bif) -> pool2 relay -> fc1 readout: a relay passes spikes in the
    # same step
    assert _onsets(net) == {"conv1": 0, "conv2": 8, "fc1": 16}
    assert _meta_onsets(net) == {"conv1": 0, "pool1": 8, "conv2": 8, "pool2": 16, "fc1": 16}
    pools = [q for q in net.projections if q.kind == "maxpool2d"]
    assert [q.rank for q in pools] == ["value", "value"]
    assert [entry["rank"] for entry in net.meta["layers"] if entry["op"] == "maxpool2d"] == ["value", "value"]
    phase = convert_model(model, calibration=x, method="phase")
    assert [q.rank for q in phase.projections if q.kind == "maxpool2d"] == ["value", "value"]
    assert all(p.bias_onset == 0 for p in phase.populations)  # phase's if neurons respond at once: no onset
    mass = convert_model(model, calibration=x, method="phase", rank="mass")
    assert [q.rank for q in mass.projections if q.kind == "maxpool2d"] == ["mass", "mass"]
    rate = convert_model(model, calibration=x)  # rate coding, binary spikes: mass is the rate
    assert [q.rank for q in rate.projections if q.kind == "maxpool2d"] == ["mass", "mass"]


@pytest.mark.parametrize("pool", ["fold", "population"])
def test_bsnn_resnet_onsets_count_both_paths_the_same_with_sync_neurons(pool):
    model, x = TinyResNet(), images(8)
    extra = 8 if pool == "population" else 0  # the average pool's own bif population before fc
    with_sync = convert_model(model, calibration=x, method="bsnn", sync_neurons=True, pool=pool)
    # stem -> [add_sync on the shortcut | block1_conv1 (conv2 merged)] -> add -> [add_1_sync | block2_conv1] -> add_1
    # (-> pool) -> fc: both paths into a sum cross two bif populations, so the sums' onsets follow the conv path
    expected = {"stem": 0, "add_sync": 0, "block1_conv1": 8, "add": 16, "add_1_sync": 0, "block2_conv1": 24,
                "add_1": 32, "fc": 40 + extra}
    if pool == "population":
        expected["pool"] = 0  # no bias
    assert _onsets(with_sync) == expected
    assert _meta_onsets(with_sync)["add_sync"] == 8 and _meta_onsets(with_sync)["add_1_sync"] == 24
    # without synchronous neurons the shortcut is one bif population shorter: the first event arrives through it
    without = convert_model(model, calibration=x, method="bsnn", sync_neurons=False, pool=pool)
    expected = {"stem": 0, "block1_conv1": 8, "add": 8, "block2_conv1": 16, "add_1": 16, "fc": 24 + extra}
    if pool == "population":
        expected["pool"] = 0
    assert _onsets(without) == expected
    assert all(p.bias_onset == 0 for p in convert_model(model, calibration=x, method="bsnn", bias_onset=0).populations)


def test_bsnn_conv_shortcut_and_shortcut_from_the_input_onsets():
    net = convert_model(TinyResNet(conv_shortcut=True), calibration=images(8), method="bsnn")
    onsets = _onsets(net)
    # the 1x1-conv shortcut is merged into add_1 and read from add_1_sync: both paths cross add and one more pair
    assert (onsets["add"], onsets["block2_conv1"], onsets["add_1"], onsets["fc"]) == (16, 24, 32, 40)

    class FromInput(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1, self.conv2 = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)
            self.fc = nn.Linear(64, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x))) + x).flatten(1))

    for sync, add in ((False, 0), (True, 8)):  # without: the input reaches the sum at once
        net = convert_model(FromInput().eval(), calibration=images(8), method="bsnn", sync_neurons=sync)
        assert _onsets(net)["add"] == add and _onsets(net)["fc"] == add + 8
        # gated: the input's shortcut (untagged) reaches the sum (or its synchronous neurons) in full
        first = next(q for q in net.projections if q.source == "input" and q.kind == "identity")
        assert first.scale == (1.0 if sync else pytest.approx(1 / net.ann.lambdas[2]))


def test_the_written_version_2_file_reads_back(tmp_path):
    model, x = maxpool_net(), images(8)
    written = export_model(model, tmp_path / "net.h5", calibration=x, method="bsnn", samples=x[:4])
    net = read_network(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5") as f:
        assert f.attrs["format_version"] == 2
    for got, want in zip(net.populations, written.populations):
        assert (got.name, got.drive, got.bias_onset, got.rank) == (want.name, want.drive, want.bias_onset, want.rank)
    assert [q.rank for q in net.projections] == [q.rank for q in written.projections]
    assert net.meta == written.meta
    export_model(model, tmp_path / "v1.h5", calibration=x, method="bsnn", **version_1("bsnn"))
    with h5py.File(tmp_path / "v1.h5") as f:  # every version-2 attribute at its version-1 default
        assert f.attrs["format_version"] == 1


# ----------------------------------------------------------------------------- version 1, exactly

#: Digests (Network.digest: populations, projections, output, by value) of the networks the version-1 exporter
#: (main before version 2) wrote for these dyadic models; computed in float32 exactly, so on any machine.
VERSION_1_DIGESTS = {
    "bsnn dense": "4ba940bf6d3ff8f216c81d7a25e2c44ad36fa4fb6854c84f9b45b86653c6192c",
    "bsnn maxpool": "bcdafb8b31da82ece219ff3dd53e1af76e1b5e53392901c706f912465e249c89",
    "bsnn resnet": "b3bf9626f1f4c79ba586c2891d6b2f604a2fd924f4bf1dbc8399015bb5333a08",
    "phase maxpool": "73597cda33877af93d170f1aefb6644877a7b37a8deba57fed13ced9cb32e208",
    "rate-norm pool": "d418df09fbbadf91497393e39f90b9b492e77da314c9434cebc25169da4a87c5",
}


def _version_1_cases():
    return {
        "bsnn dense": (_dense(), _grid(np.random.default_rng(1).random((64, 3))), "bsnn"),
        "bsnn maxpool": (dyadic(maxpool_net()), _grid(images(16)), "bsnn"),
        "bsnn resnet": (dyadic(TinyResNet(conv_shortcut=True)), _grid(images(16)), "bsnn"),
        "phase maxpool": (dyadic(maxpool_net()), _grid(images(16)), "phase"),
        "rate-norm pool": (dyadic(pool_conv_net(nn.ReLU)), _grid(images(16)[:, :, :6, :6] * 2 - 1), "rate-norm"),
    }


@pytest.mark.parametrize("case", list(VERSION_1_DIGESTS))
def test_the_version_1_options_give_the_version_1_network_bit_for_bit(case, monkeypatch):
    # the version-1 exporter named layers as torch.fx does (`_0`, `_3`): with fx's names, the same network
    monkeypatch.setattr("evsim.weights_io.trace.name_nodes", lambda graph_module: None)
    model, x, method = _version_1_cases()[case]
    layers = trace_model(model, x[:2])
    with torch.no_grad():  # the ANN is exact in float32 here, so the digest holds on any machine
        exact, wide = run_layers(layers, x), run_layers(layers, x.double())
    assert all(torch.equal(exact[name].double(), wide[name]) for name in exact)
    net = convert_model(model, calibration=x, method=method, **version_1(method))
    assert net.digest() == VERSION_1_DIGESTS[case]
    assert convert_model(model, calibration=x, method=method).digest() != VERSION_1_DIGESTS[case]


# ----------------------------------------------------------------------------- folding average pools


class _PoolThen(nn.Module):
    """relu(conv0(x)) -> avg pool -> conv or dense (-> ... -> dense): the pool's reader under test."""

    def __init__(self, size, pool, reader, seed=0, channels=3):
        super().__init__()
        torch.manual_seed(seed)
        self.conv0 = nn.Conv2d(1, channels, 3, padding=1)
        self.pool = nn.AvgPool2d(*pool)
        pooled = [(size - k) // s + 1 for k, s in zip(*(np.broadcast_to(v, 2) for v in (pool[0], pool[-1])))]
        if reader[0] == "conv":
            _, kernel, stride, padding, *rest = reader
            groups = rest[0] if rest else 1
            self.reader = nn.Conv2d(channels, 6, kernel, stride, padding, groups=groups)
            hw = [(p + 2 * padding - kernel) // stride + 1 for p in pooled]
            self.fc = nn.Linear(6 * hw[0] * hw[1], 4)
        else:
            self.reader = None
            self.fc = nn.Linear(channels * pooled[0] * pooled[1], 4)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv0(x)))
        if self.reader is not None:
            h = torch.relu(self.reader(h))
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("size, pool, reader", [
    (8, (2,), ("conv", 3, 1, 0)),
    (9, (2,), ("conv", 3, 1, 0)),  # a row and a column the pool never reads; the conv does not pad
    (8, (2,), ("conv", 3, 1, 1)),  # padding, sizes divisible by the stride
    (12, (3,), ("conv", 3, 2, 1)),
    (9, (2,), ("conv", 3, 2, 1)),  # padding and a remainder, but the strided conv never reaches past the edge
    (10, ((2, 1),), ("conv", 3, 1, 1)),  # a non-square pool
    (8, (2,), ("conv", 2, 2, 0, 3)),  # a depthwise conv (groups)
    (8, (2,), ("dense",)),
    (7, (2,), ("dense",)),  # the last row and column of the pool's input get weight 0
    (12, (3,), ("dense",)),
])
def test_a_folded_pool_computes_what_the_ann_computes(size, pool, reader):
    model = _PoolThen(size, pool, reader).eval()
    x = torch.rand(16, 1, size, size)
    layers = trace_model(model, x[:2])
    folded = fold_pools(layers)
    assert [layer.op for layer in folded].count("avgpool2d") == 0 and len(folded) == len(layers) - 1
    reader_layer = folded[2]
    assert reader_layer.folded == ("pool",) and reader_layer.source == "conv0"
    with torch.no_grad():
        want, got = run_layers(layers, x.double()), run_layers(folded, x.double())
        for layer in folded:  # every remaining layer's output equals the ANN's, up to float rounding
            torch.testing.assert_close(got[layer.name], want[layer.name], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[folded[-1].name].float(), model(x), rtol=1e-5, atol=1e-5)
    if reader[0] == "conv":
        k = np.broadcast_to(pool[0], 2)
        assert reader_layer.weight.shape[2:] == tuple(reader[1] * k)  # (kc - 1) * s + k with k = s
        assert reader_layer.stride == tuple(reader[2] * k) and reader_layer.padding == tuple(reader[3] * k)
    np.testing.assert_array_equal(reader_layer.ann_weight, layers[3].weight)  # the ANN's own weight is kept


def test_pools_fold_in_chains_and_from_the_input():
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.AvgPool2d(2), nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).eval()
    x = torch.rand(8, 1, 16, 16)
    layers = trace_model(model, x[:2])
    folded = fold_pools(layers)
    assert [(layer.name, layer.op, layer.folded) for layer in folded] == [
        ("input", "input", ()), ("conv1", "conv2d", ("pool1",)), ("conv2", "conv2d", ("pool2", "pool3")), ("fc1", "dense", ())]
    assert folded[2].weight.shape[2:] == (4, 4) and folded[2].stride == (4, 4)
    with torch.no_grad():
        torch.testing.assert_close(run_layers(folded, x.double())["fc1"], run_layers(layers, x.double())["fc1"])


def test_a_folded_network_keeps_the_ann_macs_and_has_no_pool_population():
    model, x = pool_conv_net(nn.ReLU), torch.rand(16, 1, 6, 6)
    folded = convert_model(model, calibration=x)
    unfolded = convert_model(model, calibration=x, pool="population")
    assert [p.kind for p in folded.populations] == ["input", "if", "if", "readout"]
    assert [p.kind for p in unfolded.populations] == ["input", "if", "if", "if", "readout"]
    assert folded.ann.macs == unfolded.ann.macs and folded.ann.layer_macs == unfolded.ann.layer_macs
    assert "pool1" in folded.ann.layer_macs  # the pool's adds are the ANN's
    dense = folded.projections[1]
    assert (dense.source, dense.weight.shape) == ("conv1", (5, 3 * 6 * 6))
    entry = folded.meta["layers"][1]
    assert entry["folded_pools"] == ["pool1"] and entry["source"] == "conv1"
    assert "folded into" in folded.meta["avgpool"] and "population" in unfolded.meta["avgpool"]
    assert folded.meta["architecture"] == unfolded.meta["architecture"] == "3c3-p2-5-3"
    with torch.no_grad():  # the lambdas are the ANN's either way
        np.testing.assert_allclose(folded.ann.lambdas[[0, 1, 2, 3]], unfolded.ann.lambdas[[0, 1, 3, 4]], rtol=1e-6)


def test_termapping_scales_a_folded_layer_by_the_ann_weight():
    model = pool_conv_net(lambda: nn.LeakyReLU(0.25))
    x = torch.rand(16, 1, 6, 6) * 2 - 1
    folded = convert_model(model, calibration=x, method="termapping")
    unfolded = convert_model(model, calibration=x, method="termapping", pool="population")
    # Algorithm 1's max|W_l| is the ANN's weight, not the folded one (which is W / 4 spread over the windows)
    dense_weight = model[4].weight.detach().double().abs().max().item()
    assert folded.meta["layers"][1]["max_abs_weight"] == pytest.approx(dense_weight)
    assert unfolded.meta["layers"][2]["max_abs_weight"] == pytest.approx(dense_weight)
    assert folded.meta["layers"][1]["post_factor"] == pytest.approx(unfolded.meta["layers"][2]["post_factor"])


class _Refused(nn.Module):
    def __init__(self, case):
        super().__init__()
        self.case = case
        self.conv0 = nn.Conv2d(1, 2, 3, padding=1)
        pools = {"padding": nn.AvgPool2d(2, padding=1), "overlap": nn.AvgPool2d(3, stride=2),
                 "gaps": nn.AvgPool2d(2, stride=3)}
        self.pool = pools.get(case, nn.AvgPool2d(2))
        self.conv = nn.Conv2d(2, 2, 3, padding=1, dilation=2 if case == "dilation" else 1)
        self.fc = nn.LazyLinear(2)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv0(x)))
        if self.case == "sum":
            h = torch.relu(self.conv(h) + h)
        elif self.case == "max pool":
            h = nn.functional.max_pool2d(h, 2)
        else:
            h = torch.relu(self.conv(h))
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("case, size, pattern", [
    ("padding", 8, r"average pool 'pool' cannot be folded into the next layer: it pads by \[1, 1\]"),
    ("overlap", 9, r"'pool' .*its kernel \[3, 3\] differs from its stride \[2, 2\] .*neither overlap nor leave gaps"),
    ("gaps", 8, r"'pool' .*its kernel \[2, 2\] differs from its stride \[3, 3\]"),
    ("dilation", 12, r"'pool' .*the conv 'conv' after it has dilation \[2, 2\]"),
    ("sum", 8, r"'pool' .*it is read by 'conv' \(conv2d\), 'add' \(a residual sum\); a fold needs exactly one reader"),
    ("max pool", 8, r"'pool' .*it is read by 'max_pool2d' \(maxpool2d\)"),
    ("padded conv", 9, r"'pool' .*the conv 'conv' pads by 1 and reads past the pooled map's bottom edge, where the "
                       r"pool's input \(9 rows, not a multiple of the pool's stride 2\) has 1 rows the pool never read"),
])
def test_a_pool_that_cannot_be_folded_exactly_is_refused(case, size, pattern):
    model = _Refused(case)
    x = torch.rand(4, 1, size, size)
    model(x)  # materialise the lazy linear layer
    with pytest.raises(ExportError, match=pattern + r".*use pool='population'"):
        convert_model(model.eval(), calibration=x)
    convert_model(model.eval(), calibration=x, pool="population")  # the same model converts with a pool population


@pytest.mark.parametrize("pool", ["fold", "population"])
def test_a_folded_snn_approaches_the_ann(pool):
    """rate-norm, conv - BN - ReLU - pool - dense: the mean readout error falls 8-fold from T = 8 to T = 256 and
    ends below 2% of the mean output, folded or not."""
    model = pool_conv_net(nn.ReLU)
    x = torch.rand(32, 1, 6, 6)
    with torch.no_grad():
        outputs = model(x).numpy()
    net = convert_model(model, calibration=x, pool=pool)
    errors = {T: np.abs(simulate(net, x.numpy(), timesteps=T, threads=1).readout_estimate - outputs).mean()
              for T in (8, 256)}
    assert errors[256] < errors[8] / 8 and errors[256] < 0.02 * np.abs(outputs).mean()


# ----------------------------------------------------------------------------- simulated: bsnn version 2


@pytest.mark.parametrize("conv_shortcut", [False, True])
def test_bsnn_version_2_resnets_approach_the_ann(conv_shortcut):
    """Tiny ResNets with synchronous neurons: counted from the readout's onset (5 periods of pipeline fill), the
    largest error at T = 1024 is below 0.5% of the largest output (version 1: 1.3-2%, tests/test_export_bsnn.py)."""
    model, x = TinyResNet(conv_shortcut), images(32)
    with torch.no_grad():
        outputs = model(x).numpy()
    net = convert_model(model, calibration=x, method="bsnn", percentile=100.0)
    result = simulate(net, x.numpy(), timesteps=1024, threads=1)
    error = np.abs(result.readout_estimate - outputs).max()  # a rate counted from the readout's onset (metrics.md)
    assert error < 0.005 * np.abs(outputs).max()
    assert np.mean(result.pred[:, -1] == outputs.argmax(1)) >= 0.95


@pytest.mark.parametrize("method", ["phase", "bsnn"])
def test_value_ranked_max_pools_approach_the_ann_under_phase_coding(method):
    """Ranked by value (sum of c * S_k) the max gate passes the largest neuron: the mean error falls from T = 32 to
    T = 1024 and ends below 0.5% of the mean output (ranked by mass it stays at 1.5-5%, docs/export.md)."""
    model, x = maxpool_net(), images(32)
    with torch.no_grad():
        outputs = model(x).numpy()
    net = convert_model(model, calibration=x, method=method)
    errors = {}
    for T in (32, 1024):
        result = simulate(net, x.numpy(), timesteps=T, threads=1)
        errors[T] = np.abs(result.readout_estimate - outputs).mean()
    assert errors[1024] < errors[32] and errors[1024] < 0.005 * np.abs(outputs).mean()


# ----------------------------------------------------------------------------- spiking readout


@pytest.mark.parametrize("method, options", [("termapping", {}), ("augmapping", {}), ("augmapping", {"m_aug": 2})])
def test_a_spiking_readout_decides_by_its_signed_rate(method, options):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 12), nn.LeakyReLU(0.25), nn.Linear(12, 4)).eval()
    x = torch.rand(64, 6) * 2 - 1
    net = convert_model(model, calibration=x, method=method, readout="spikes", **options)
    potential = convert_model(model, calibration=x, method=method, **options)
    out, hidden = net.output_population, net.populations[1]
    assert (out.kind, out.mode, out.rank) == ("readout", "spikes", "value")
    assert scalar(out.theta_neg) == -scalar(out.theta_pos)  # the identity: both slopes 1
    assert scalar(out.theta_pos) == scalar(potential.output_population.theta_pos)  # the hidden rule (termapping: lambda_L)
    assert out.max_coeff == hidden.max_coeff == {"termapping": 1, "augmapping": options.get("m_aug", 0)}[method]
    assert scalar(out.v_init) == 0.0  # v_init_fraction (default 0) times theta_pos, as in the hidden layers
    assert potential.output_population.mode == "potential" and net.meta["readout"] == "spikes"
    assert net.meta["layers"][-1]["mode"] == "spikes" and net.meta["layers"][-1]["rank"] == "value"
    half = convert_model(model, calibration=x, method=method, readout="spikes", v_init_fraction=0.5, **options)
    assert scalar(half.output_population.v_init) == 0.5 * scalar(half.output_population.theta_pos)
    with torch.no_grad():
        ann = model(x).numpy().argmax(1)
    result = simulate(net, x.numpy(), timesteps=256, threads=1)
    agree = np.mean(result.pred == ann[:, None], axis=0)
    assert agree[255] >= 0.95 and agree[255] > agree[3]


def test_a_spiking_readout_file_reads_back(tmp_path):
    model = pool_conv_net(lambda: nn.LeakyReLU(0.1))
    x = torch.rand(8, 1, 6, 6)
    written = export_model(model, tmp_path / "net.h5", calibration=x, method="augmapping", readout="spikes")
    net = read_network(tmp_path / "net.h5")
    assert (net.output_population.mode, net.output_population.rank) == ("spikes", "value")
    assert net.meta == written.meta and net.output_population.max_coeff == written.output_population.max_coeff


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, pattern", [
    ({"method": "bsnn", "drive": "both"}, r"drive must be one of 'gated', 'split' \(bif pairs.*got 'both'"),
    ({"method": "phase", "drive": "split"}, r"option drive='split' does not apply to method 'phase'"),
    ({"method": "bsnn", "rank": "count"}, r"rank must be one of 'value', 'mass'.*got 'count'"),
    ({"method": "rate-norm", "rank": "value"}, r"option rank='value' does not apply to method 'rate-norm'"),
    ({"method": "termapping", "rank": "mass"}, r"option rank='mass' does not apply to method 'termapping'"),
    ({"method": "bsnn", "bias_onset": 8}, r"bias_onset must be one of 'auto', 0 \(auto: .*got 8"),
    ({"method": "bsnn", "bias_onset": False}, r"bias_onset must be one of 'auto', 0.*got False"),
    ({"method": "phase", "bias_onset": 0}, r"option bias_onset=0 does not apply to method 'phase'"),
    ({"method": "clip", "pool": "average"}, r"pool must be one of 'fold', 'population'.*got 'average'"),
    ({"method": "rate-norm", "readout": "spikes"}, r"option readout='spikes' does not apply to method 'rate-norm'"),
    ({"method": "bsnn", "readout": "spikes"}, r"option readout='spikes' does not apply to method 'bsnn'"),
    ({"method": "augmapping", "readout": "rate"}, r"readout must be one of 'potential', 'spikes'.*got 'rate'"),
])
def test_version_2_options_are_checked(options, pattern):
    with pytest.raises(ExportError, match=pattern):
        convert_model(_dense(), calibration=torch.rand(4, 3), **options)
