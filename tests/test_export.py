"""The PyTorch exporter (weights_io/export.py): tracing, BN folding, normalisation, MACs, file."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from evsim.errors import ExportError  # noqa: E402
from evsim.weights_io.export import ann_macs, convert_model, export_model, run_layers, trace_model  # noqa: E402
from torch_models import FAR_FROM_IDENTITY, bn_conv_net, dense_net, randomise_batchnorm, version_1  # noqa: E402


def test_batchnorm_folding_equals_the_unfolded_model():
    model = randomise_batchnorm(bn_conv_net(), FAR_FROM_IDENTITY).eval()
    x = torch.rand(16, 1, 6, 6)
    layers = trace_model(model, x[:2])
    assert [layer.op for layer in layers] == ["input", "conv2d", "avgpool2d", "dense", "dense"]
    with torch.no_grad():
        folded = run_layers(layers, x)[layers[-1].name]
        torch.testing.assert_close(folded, model(x), rtol=1e-5, atol=1e-5)


def _tiny_dense():
    model = dense_net(nn.ReLU, ([[1.0, 2.0], [-1.0, 1.0]], [[1.0, -1.0]]), ([0.0, 0.5], [0.25]))
    # hidden activations: [1, 0], [2, 1.5], [3, 0.5]; outputs: 1.25, 0.75, 2.75
    return model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("percentile, lam1, lam2", [(100.0, 3.0, 2.75), (50.0, 1.5, 1.25)])
def test_normalised_weights_follow_eq6_by_hand(percentile, lam1, lam2):
    model, calibration = _tiny_dense()
    net = convert_model(model, calibration=calibration, percentile=percentile, v_init_fraction=0.5)
    hidden, out = net.projections
    np.testing.assert_allclose(hidden.weight, [[1 / lam1, 2 / lam1], [-1 / lam1, 1 / lam1]], rtol=1e-6)
    np.testing.assert_allclose(out.weight, [[lam1 / lam2, -lam1 / lam2]], rtol=1e-6)
    pops = {p.name: p for p in net.populations}
    np.testing.assert_allclose(pops[hidden.target].bias, [0.0, 0.5 / lam1], rtol=1e-6)
    np.testing.assert_allclose(pops[out.target].bias, [0.25 / lam2], rtol=1e-6)
    np.testing.assert_allclose(net.ann.lambdas, [1.0, lam1, lam2])
    assert float(net.output_scale) == pytest.approx(lam2)
    assert [p.kind for p in net.populations] == ["input", "if", "readout"]
    assert float(pops[hidden.target].theta_pos) == 1.0
    assert float(pops[hidden.target].v_init) == 0.5 and float(pops[out.target].v_init) == 0.0


@pytest.mark.parametrize("percentile", [100.0, 99.0])
def test_lambda_is_the_percentile_of_positive_activations(percentile):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(300, 4)
    net = convert_model(model, calibration=x, percentile=percentile, batch_size=64)  # several batches
    with torch.no_grad():
        hidden = torch.relu(model[0](x)).numpy()
    positive = hidden[hidden > 0]
    assert net.ann.lambdas[1] == pytest.approx(np.percentile(positive, percentile), rel=1e-6)
    if percentile == 100.0:
        assert net.ann.lambdas[1] == pytest.approx(hidden.max(), rel=1e-6)


class _TorchSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.sigmoid(x))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


@pytest.mark.parametrize("model, shape, pattern", [
    (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), (4,), r"'1'.*Sigmoid"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)),
     (1, 4, 4), r"'2'.*AdaptiveAvgPool2d"),
    (_TorchSigmoid(), (4,), r"'sigmoid'.*call_function 'sigmoid'"),
    (_Residual(), (4,), r"node 'fc2' reads the sum 'add' directly: a sum \(residual add\) must be followed "
                        r"directly by a ReLU"),
    (nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), (4,), r"'fc2' reads 'fc1', whose outputs can be negative"),
    (nn.Sequential(nn.Linear(4, 2), nn.ReLU()), (4,), r"without activation"),
])
def test_unsupported_models_raise_a_clear_error(model, shape, pattern):
    with pytest.raises(ExportError, match=pattern):
        convert_model(model, calibration=torch.rand(4, *shape))


@pytest.mark.parametrize("encoding, low, high", [("bernoulli", -1.5, 1.0), ("phase", -0.1, 1.0)])
def test_spike_encoders_need_inputs_in_their_range(encoding, low, high):
    model, _ = _tiny_dense()
    with pytest.raises(ExportError, match=f"{encoding} input"):
        convert_model(model, calibration=torch.tensor([[low, 0.0], [0.0, high]]), input_encoding=encoding)


class _Flattening(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(16 if how == "bad" else 32, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if self.how == "torch.flatten":
            h = torch.flatten(h, 1)
        elif self.how == "view":
            h = h.view(h.size(0), -1)
        elif self.how == "method":
            h = h.flatten(1)
        elif self.how == "bad":
            h = h.view(h.size(0), 2, -1)  # [n, 2, 16]: runs, but is no flatten
        return self.fc(h)


@pytest.mark.parametrize("how", ["torch.flatten", "view", "method"])
def test_flatten_in_any_spelling_is_no_layer(how):
    torch.manual_seed(0)
    model = _Flattening(how)
    x = torch.rand(5, 1, 6, 6)
    net = convert_model(model, calibration=x)
    assert [q.kind for q in net.projections] == ["conv2d", "dense"]
    assert net.projections[1].source == net.projections[0].target
    assert net.projections[1].weight.shape == (3, 32)
    reference = convert_model(nn.Sequential(model.conv, nn.ReLU(), nn.Flatten(), model.fc), calibration=x)
    np.testing.assert_array_equal(net.projections[1].weight, reference.projections[1].weight)


def test_a_reshape_that_is_not_a_flatten_is_refused():
    with pytest.raises(ExportError, match="not a flatten"):
        convert_model(_Flattening("bad"), calibration=torch.rand(3, 1, 6, 6))


def test_ann_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),  # 2*6*6 outputs x 1*3*3 = 648
        nn.AvgPool2d(2),  # 2*3*3 windows x 4 inputs = 72
        nn.Conv2d(2, 4, 3, stride=2, groups=2), nn.ReLU(),  # 4*1*1 outputs x (2/2)*3*3 = 36
        nn.Flatten(), nn.Linear(4, 3),  # 4*3 = 12
    )
    net = convert_model(model, calibration=torch.rand(3, 1, 6, 6))
    assert net.ann.layer_macs == {"conv1": 648, "pool1": 72, "conv2": 36, "fc1": 12}
    assert net.ann.macs == 768


def test_padded_pool_counts_only_inputs_inside_the_image():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten(),
                          nn.Linear(4, 2))
    layers = trace_model(model.eval(), torch.rand(2, 1, 4, 4))
    # 2x2 windows over a 4x4 image padded by 1: in-bounds taps 2*2 + 2*3 + 3*2 + 3*3
    assert ann_macs(layers)["pool1"] == 25


def test_samples_outputs_accuracy_and_meta():
    model = randomise_batchnorm(bn_conv_net(), FAR_FROM_IDENTITY).train()
    x, labels = torch.rand(12, 1, 6, 6), np.arange(12) % 3
    net = convert_model(model, calibration=x, samples=x[:6], labels=labels[:6], ann_eval=(x, labels),
                        percentile=99.9, dataset="random", seeds={"torch": 0})
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        expected = model(x)
    np.testing.assert_allclose(net.ann.outputs, expected[:6].numpy(), rtol=1e-6)
    assert net.ann.accuracy == pytest.approx(float((expected.argmax(1).numpy() == labels).mean()))
    assert net.samples.inputs.dtype == np.float32 and net.samples.inputs.shape == (6, 1, 6, 6)
    conversion = net.meta
    assert conversion["method"] == "rate-norm" and conversion["percentile"] == 99.9
    assert conversion["architecture"] == "4c3-p2-5-3" and conversion["dataset"] == "random"
    assert net.output == net.populations[-1].name and net.output_population.kind == "readout"


def test_the_written_file_reads_back(tmp_path):
    hdf5 = pytest.importorskip("evsim.weights_io.hdf5")
    model = randomise_batchnorm(bn_conv_net(), FAR_FROM_IDENTITY).eval()
    x = torch.rand(8, 1, 6, 6)
    written = export_model(model, tmp_path / "net.h5", calibration=x, samples=x[:4], labels=[0, 1, 2, 0],
                           **version_1("rate-norm"))
    net = hdf5.read_network(tmp_path / "net.h5")
    assert [(p.name, p.kind, tuple(p.shape)) for p in net.populations] == [
        ("input", "input", (1, 6, 6)), ("conv1", "if", (4, 6, 6)), ("pool1", "if", (4, 3, 3)),
        ("fc1", "if", (5,)), ("fc2", "readout", (3,)),
    ]
    read_back = {q.name: q for q in net.projections}
    for want in written.projections:
        got = read_back[want.name]
        assert (got.kind, got.source, got.target) == (want.kind, want.source, want.target)
        if want.weight is not None:
            np.testing.assert_array_equal(got.weight, want.weight)
    assert np.asarray(net.population("conv1").bias).shape == (4,)
    assert net.samples.inputs.shape == (4, 1, 6, 6)
    np.testing.assert_array_equal(net.samples.labels, [0, 1, 2, 0])
    assert net.ann.macs == written.ann.macs
    np.testing.assert_allclose(net.ann.outputs, written.ann.outputs)
    assert float(np.asarray(net.output_scale)) == pytest.approx(float(written.output_scale))
    assert net.meta == written.meta and net.meta["method"] == "rate-norm"


def test_importing_the_exporter_does_not_import_torch():
    code = "import sys, evsim.weights_io.export; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
