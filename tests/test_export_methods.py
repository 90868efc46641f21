"""Exporter methods (weights_io/methods.py): termapping, augmapping and clip, by hand and by simulation.

Expected values are the papers' formulas computed here, on tiny ANNs with
chosen weights: the double-threshold paper (Algorithm 1, eq. 1-15) and the
optimized-potential-initialization paper (Algorithm 1).
"""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from evsim.errors import ExportError  # noqa: E402
from evsim.simulate import simulate  # noqa: E402
from evsim.weights_io.export import convert_model, export_model, trace_model  # noqa: E402
from evsim.weights_io.layers import TrainableClip  # noqa: E402
from torch_models import dense_net, pool_conv_net, scalar, version_1  # noqa: E402

# A 4-3-2 ANN whose numbers are easy to follow; on X its hidden pre-activations are
# [[-1, 2, 0.5], [1.5, -1, -1.75], [-2.5, 1, 0]].
W1 = np.array([[1.0, -3.0, 0.5, 0.0], [0.5, 1.0, -1.0, 1.5], [-1.0, 0.25, 1.0, 0.5]])
B1 = np.array([0.5, 0.0, -0.25])
W2 = np.array([[1.0, -0.5, 2.0], [-3.0, 1.0, 0.5]])
B2 = np.array([0.25, -0.5])
X = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, -1.0], [0.0, 1.0, 0.0, 0.0]])
SLOPE = 0.25


def _dense(activation, weights=(W1, W2), biases=(B1, B2)):
    return dense_net(activation, weights, biases)


def _leaky(u, slope=SLOPE):
    return np.where(u >= 0, u, slope * u)


def _calibration(x=X):
    return torch.tensor(x, dtype=torch.float32)


# ----------------------------------------------------------------------------- the formulas, by hand


def test_termapping_follows_algorithm_1():
    net = convert_model(_dense(lambda: nn.LeakyReLU(SLOPE)), calibration=_calibration(), method="termapping")
    z1 = _leaky(X @ W1.T + B1)
    z2 = z1 @ W2.T + B2
    # Algorithm 1: post_factor = max(max|w_i|, max|z_i|), lambda_i = post_factor / pre_factor
    p1 = max(np.abs(W1).max(), np.abs(z1).max())
    p2 = max(np.abs(W2).max(), np.abs(z2).max())
    assert (p1, p2) == (3.0, 5.46875)  # the weights decide layer 1, the activations layer 2
    lam1, lam2 = p1 / 1.0, p2 / p1
    _, hidden, readout = net.populations
    first, second = net.projections
    np.testing.assert_array_equal(first.weight, W1.astype(np.float32))  # weights copied: thresholds are scaled
    np.testing.assert_array_equal(second.weight, W2.astype(np.float32))
    assert scalar(hidden.theta_pos) == lam1
    assert scalar(hidden.theta_neg) == -lam1 / SLOPE  # the LeakyReLU's negative slope (docs/export.md)
    assert scalar(readout.theta_pos) == pytest.approx(lam2, rel=1e-7)
    np.testing.assert_array_equal(hidden.bias, B1.astype(np.float32))  # b / P_0, P_0 = 1
    np.testing.assert_allclose(readout.bias, B2 / p1, rtol=1e-7)  # b / P_1: rates stay z / P
    assert hidden.max_coeff == 1 and readout.theta_neg is None
    assert scalar(net.output_scale) == p1
    np.testing.assert_allclose(net.ann.lambdas, [1.0, p1, p2], rtol=1e-7)
    recorded = net.meta["layers"]
    assert recorded[0]["max_abs_weight"] == 3.0 and recorded[0]["max_abs_output"] == 2.0
    assert recorded[0]["lambda"] == lam1 and recorded[1]["lambda"] == pytest.approx(lam2)
    assert recorded[0]["theta_neg"] == -12.0 and recorded[1]["output_scale"] == p1


@pytest.mark.parametrize("m_aug, max_coeff", [(None, 0), (0, 0), (3, 3), (1, 1)])
def test_augmapping_thresholds_from_the_slopes(m_aug, max_coeff):
    net = convert_model(_dense(lambda: nn.LeakyReLU(SLOPE)), calibration=_calibration(), method="augmapping",
                        m_aug=m_aug)
    _, hidden, readout = net.populations
    first, second = net.projections
    np.testing.assert_array_equal(first.weight, W1.astype(np.float32))  # eq. 12-13: weights and biases copied
    np.testing.assert_array_equal(second.weight, W2.astype(np.float32))
    np.testing.assert_array_equal(hidden.bias, B1.astype(np.float32))
    np.testing.assert_array_equal(readout.bias, B2.astype(np.float32))
    assert scalar(hidden.theta_pos) == 1.0  # 1 / alpha+, alpha+ = 1
    assert scalar(hidden.theta_neg) == -1.0 / SLOPE  # -1 / alpha-, alpha- = the negative slope
    assert hidden.max_coeff == max_coeff and scalar(hidden.v_init) == 0.0
    assert scalar(net.output_scale) == 1.0
    assert net.meta["m_aug"] == max_coeff and "negative_slope" in net.meta["eq_12_13_reading"]


@pytest.mark.parametrize("method", ["rate-norm", "termapping", "augmapping"])
def test_relu_layers_have_no_negative_threshold(method):
    net = convert_model(_dense(nn.ReLU), calibration=_calibration(), method=method)
    hidden = net.populations[1]
    assert hidden.theta_neg is None  # alpha- = 0: theta_N = -1/0 = -inf
    assert hidden.max_coeff == (0 if method == "augmapping" else 1)


@pytest.mark.parametrize("method", ["termapping", "augmapping"])
def test_a_hidden_layer_without_activation_gets_symmetric_thresholds(method):
    net = convert_model(_dense(nn.Identity), calibration=_calibration(), method=method)
    hidden = net.populations[1]
    assert scalar(hidden.theta_neg) == -scalar(hidden.theta_pos)  # the identity: alpha- = alpha+ = 1


def _clip_net(theta1=0.75, theta2=1.5):
    w_mid, b_mid = np.array([[0.5, -1.0, 1.0], [1.0, 0.25, -0.5], [0.0, 2.0, 1.0]]), np.array([0.125, -0.25, 0.0])
    w_out, b_out = np.array([[1.0, -1.0, 0.5], [0.25, 0.5, -2.0]]), B2
    model = _dense(nn.Identity, (W1, w_mid, w_out), (B1, b_mid, b_out))
    model[1], model[3] = TrainableClip(theta1), TrainableClip(theta2)
    return model, (W1, w_mid, w_out), (B1, b_mid, b_out)


@pytest.mark.parametrize("fraction", [None, 0.0, 0.25, 1.0])
def test_clip_follows_algorithm_1(fraction):
    model, weights, biases = _clip_net(0.75, 1.5)
    net = convert_model(model, calibration=_calibration(), method="clip", v_init_fraction=fraction)
    fraction = 0.5 if fraction is None else fraction  # the paper's v(0) = V_th / 2
    _, first, second, readout = net.populations
    # lines 18-20: W, b copied, V_th = theta; an evsim spike has value 1 where the paper's carries V_th (eq. 4)
    for projection, w, theta_source in zip(net.projections, weights, (1.0, 0.75, 1.5)):
        np.testing.assert_allclose(projection.weight, w * theta_source, rtol=1e-7)
    for population, b in zip((first, second, readout), biases):
        np.testing.assert_array_equal(population.bias, np.asarray(b, np.float32))
    assert [scalar(p.theta_pos) for p in (first, second)] == [0.75, 1.5]
    assert [scalar(p.v_init) for p in (first, second)] == [fraction * 0.75, fraction * 1.5]  # line 21
    assert first.theta_neg is None and first.max_coeff == 1
    assert scalar(net.output_scale) == 1.0
    assert net.meta["v_init_fraction"] == fraction and net.meta["layers"][1]["theta"] == 1.5


@pytest.mark.parametrize("method, activation, theta_neg, max_coeff", [
    ("termapping", lambda: nn.LeakyReLU(SLOPE), -1.0, 1),
    ("augmapping", lambda: nn.LeakyReLU(SLOPE), -1.0, 4),
    ("augmapping", nn.ReLU, None, 4),
    ("rate-norm", nn.ReLU, None, 1),
    ("clip", lambda: TrainableClip(0.5), None, 1),
])
def test_a_pool_population_carries_its_sources_spikes(method, activation, theta_neg, max_coeff):
    model = pool_conv_net(activation)
    options = {"m_aug": 4} if method == "augmapping" else {}
    net = convert_model(model, calibration=torch.randn(16, 1, 6, 6), method=method, **options, **version_1(method))
    conv, pool = net.populations[1:3]
    # a pool is linear: threshold 1 in units of its source's spikes (so its spike is worth the same),
    # -1 as well when the source can be negative, the method's coefficients
    assert scalar(pool.theta_pos) == 1.0 and scalar(pool.bias) == 0.0
    assert (pool.theta_neg is None) == (theta_neg is None)
    if theta_neg is not None:
        assert scalar(pool.theta_neg) == theta_neg
    assert pool.max_coeff == conv.max_coeff == max_coeff
    assert net.ann.lambdas[2] == net.ann.lambdas[1]  # what a pool spike stands for = its source's spike
    dense = net.projections[2]
    expected = model[4].weight.detach().double().numpy() * net.ann.lambdas[1] / net.meta["layers"][2]["potential"]
    np.testing.assert_allclose(dense.weight, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- the SNN approaches the ANN


def _estimate_errors(net, inputs, outputs, timesteps):
    """|readout estimate - ANN output| [n, N] after each number of steps."""
    return {T: np.abs(simulate(net, inputs, timesteps=T, threads=1).readout_estimate - outputs) for T in timesteps}


@pytest.mark.parametrize("method, activation, fraction", [
    ("termapping", lambda: nn.LeakyReLU(SLOPE), None),
    ("augmapping", lambda: nn.LeakyReLU(SLOPE), None),
    ("clip", lambda: TrainableClip(0.75), None),
    ("clip", lambda: TrainableClip(0.75), 0.0),
])
def test_one_hidden_layer_meets_the_quantisation_bound(method, activation, fraction):
    """With analog input a hidden neuron integrates a constant u per step, so after T steps its spike count
    is floor(T u / theta + v_init / theta) (each side, no saturation on the calibration set): its rate is
    off by at most max(f, 1 - f) / T spikes (f = v_init / theta). The readout error is bounded by
    sum_j |W2_ij| * spike value * max(f, 1 - f) / T."""
    torch.manual_seed(5)
    x = torch.rand(64, 4) * 4 - 2
    model = _dense(activation)
    net = convert_model(model, calibration=x, method=method, v_init_fraction=fraction)
    with torch.no_grad():
        outputs = model(x).numpy()
    f = net.meta["v_init_fraction"]
    spike = net.ann.lambdas[1]  # what one hidden spike stands for: P_1, 1, theta
    bound = np.abs(W2).sum(axis=1) * spike * max(f, 1 - f)
    errors = _estimate_errors(net, x.numpy(), outputs, (8, 64, 256))
    for T, error in errors.items():
        assert np.all(error <= bound / T + 1e-4), (T, error.max(), bound / T)
    assert errors[256].mean() < errors[8].mean() / 8


@pytest.mark.parametrize("method, activation, options", [
    ("termapping", lambda: nn.LeakyReLU(SLOPE), {}),
    ("augmapping", lambda: nn.LeakyReLU(SLOPE), {}),
    ("augmapping", lambda: nn.LeakyReLU(SLOPE), {"m_aug": 1}),  # the cap binds here (unbounded, c reaches 2)
    ("clip", lambda: TrainableClip(0.5), {}),
])
def test_conv_net_with_pool_approaches_the_ann(method, activation, options):
    """Two weighted layers and a pool between them: no closed-form bound, so the error must shrink 8-fold
    from T = 8 to T = 256 and end below 2% of the ANN's mean output."""
    model = pool_conv_net(activation)
    x = torch.rand(32, 1, 6, 6) * 2 - 1
    net = convert_model(model, calibration=x, method=method, **options)
    with torch.no_grad():
        outputs = model(x).numpy()
    errors = {T: e.mean() for T, e in _estimate_errors(net, x.numpy(), outputs, (8, 256)).items()}
    assert errors[256] < errors[8] / 8
    assert errors[256] < 0.02 * np.abs(outputs).mean()


# ----------------------------------------------------------------------------- augmented spikes


def _probe(net):
    """The exported hidden population as the output (a spiking readout), so a run reports its v(T) and mass."""
    hidden = net.populations[1]
    probe = dataclasses.replace(hidden, kind="readout", mode="spikes")
    return net.replace(populations=(net.input, probe), projections=net.projections[:1], output=hidden.name,
                       output_scale=None, ann=None)


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_a_bounded_coefficient_keeps_the_rest_in_the_membrane(fraction):
    # one neuron, u = 12.5 x + 0.25 per step: 12.75 for x = 1, -12.25 for x = -1; M_aug = 2 discharges at most
    # 2 * theta_pos = 2 or 2 * |theta_neg| = 8 per step, so the cap binds every step on both sides
    model = _dense(lambda: nn.LeakyReLU(SLOPE), (np.array([[12.5]]), np.array([[1.0]])), (np.array([0.25]), [0.0]))
    x = np.array([[1.0], [-1.0]], np.float32)
    net = convert_model(model, calibration=x, method="augmapping", m_aug=2, v_init_fraction=fraction)
    T = 16
    result = simulate(_probe(net), x, timesteps=T, threads=1, record_spikes=True)
    coef = result.spikes[(net.populations[1].name, "out")][0][:, :, 0]  # [sample, step]
    np.testing.assert_array_equal(coef[0], 2)  # capped at M_aug every step
    np.testing.assert_array_equal(coef[1], -2)
    theta_pos, theta_neg = 1.0, -1.0 / SLOPE
    discharged = np.where(coef > 0, coef * theta_pos, -coef * theta_neg).sum(axis=1)
    u = np.array([12.75, -12.25])
    v_init = fraction * theta_pos
    # charge conservation (eq. 5 with eq. 15), exact with these dyadic numbers: nothing is lost
    np.testing.assert_array_equal(discharged + result.readout_v[:, 0] - v_init, T * u)
    assert result.readout_v[0, 0] > 2 * theta_pos and result.readout_v[1, 0] < 2 * theta_neg  # the rest waits


def _ternary_reference(weights, biases, x, slope, timesteps):
    """Double-threshold paper eq. 1-3, with AugMapping's thresholds theta_P = 1, theta_N = -1/slope.

    Returns per hidden layer the spike trains [n, T, size]; analog input (r^0 = z^0).
    """
    trains = [np.zeros((len(x), timesteps, len(b))) for b in biases[:-1]]
    for n, sample in enumerate(x):
        v = [np.zeros(len(b)) for b in biases[:-1]]
        for t in range(timesteps):
            o = sample
            for layer, (w, b) in enumerate(zip(weights[:-1], biases[:-1])):
                v[layer] += w @ o + b  # eq. 1
                o = np.where(v[layer] >= 1.0, 1, np.where(v[layer] <= -1.0 / slope, -1, 0))  # eq. 2
                v[layer] -= np.where(o > 0, 1.0, np.where(o < 0, -1.0 / slope, 0.0))  # eq. 3
                trains[layer][n, t] = o
    return trains


def test_m_aug_1_gives_exactly_ternary_spikes():
    # dyadic weights, biases and inputs: every sum is exact in float32 and float64
    weights = (np.array([[1.5, -2.0, 0.5, 1.0], [0.75, 1.25, -1.5, 0.5], [-1.0, 0.5, 2.0, -0.25]]),
               np.array([[1.0, -0.5, 1.5], [0.25, 2.0, -1.0], [-1.5, 0.5, 0.75]]),
               np.array([[1.0, 0.5, -1.0], [-0.5, 1.0, 0.25]]))
    biases = (np.array([0.25, -0.5, 0.0]), np.array([0.0, 0.125, -0.25]), np.array([0.0, 0.0]))
    rng = np.random.default_rng(0)
    x = (rng.integers(-8, 9, size=(6, 4)) / 4).astype(np.float32)
    model = _dense(lambda: nn.LeakyReLU(SLOPE), weights, biases)
    T = 24
    bounded = convert_model(model, calibration=x, method="augmapping", m_aug=1)
    unbounded = convert_model(model, calibration=x, method="augmapping")
    ternary = unbounded.replace(populations=tuple(
        dataclasses.replace(p, max_coeff=1) if p.kind == "if" else p for p in unbounded.populations))
    runs = {name: simulate(net, x, timesteps=T, threads=1, record_spikes=True).spikes
            for name, net in (("bounded", bounded), ("ternary", ternary), ("unbounded", unbounded))}
    reference = _ternary_reference(weights, biases, x.astype(np.float64), SLOPE, T)
    for layer, population in enumerate(bounded.populations[1:3]):
        coef = runs["bounded"][(population.name, "out")][0]
        np.testing.assert_array_equal(coef, runs["ternary"][(population.name, "out")][0])
        np.testing.assert_array_equal(coef, reference[layer])
    # not vacuous: unbounded, the same network emits coefficients above 1
    assert np.abs(runs["unbounded"][(bounded.populations[1].name, "out")][0]).max() > 1


# ----------------------------------------------------------------------------- tracing the new layers


class _Functional(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how, self.fc1, self.fc2 = how, nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        h = self.fc1(x)
        if self.how == "keyword":
            h = F.leaky_relu(h, negative_slope=0.125)
        elif self.how == "positional":
            h = F.leaky_relu(h, 0.125)
        else:
            h = F.leaky_relu(h)
        return self.fc2(h)


@pytest.mark.parametrize("how, slope", [("keyword", 0.125), ("positional", 0.125), ("default", 0.01)])
def test_functional_leaky_relu_is_traced_with_its_slope(how, slope):
    layers = trace_model(_Functional(how).eval(), torch.rand(2, 4))
    assert layers[1].activation.kind == "leaky_relu" and layers[1].activation.negative_slope == slope


def test_trainable_clip_is_a_leaf_with_a_trainable_bound():
    model, _, _ = _clip_net(0.75, 1.5)
    layers = trace_model(model, torch.rand(2, 4))
    assert [(layer.op, str(layer.activation)) for layer in layers] == [
        ("input", "none"), ("dense", "clip(0, 0.75)"), ("dense", "clip(0, 1.5)"), ("dense", "none")]
    clip = TrainableClip(1.0)
    x = torch.tensor([-1.0, 0.5, 2.0, 3.0], requires_grad=True)
    y = clip(x)
    y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0, 0.0])
    assert float(clip.theta.grad) == 2.0  # d clip / d theta = 1 where x > theta


def test_a_leaky_relu_of_non_negative_values_is_the_identity():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.LeakyReLU(0.1), nn.Flatten(),
                          nn.Linear(2, 2)).eval()
    net = convert_model(model, calibration=torch.rand(4, 1, 4, 4), **version_1("rate-norm"))  # no leaky layer is left
    assert [p.kind for p in net.populations] == ["input", "if", "if", "readout"]


# ----------------------------------------------------------------------------- /meta


def test_meta_records_the_method_and_reads_back(tmp_path):
    hdf5 = pytest.importorskip("evsim.weights_io.hdf5")
    model = pool_conv_net(lambda: nn.LeakyReLU(SLOPE))
    x = torch.rand(8, 1, 6, 6)
    written = export_model(model, tmp_path / "net.h5", calibration=x, method="augmapping", m_aug=5,
                           v_init_fraction=0.25)
    net = hdf5.read_network(tmp_path / "net.h5")
    meta = net.meta
    assert meta == written.meta
    assert (meta["method"], meta["m_aug"], meta["v_init_fraction"], meta["max_coeff"]) == ("augmapping", 5, 0.25, 5)
    assert "percentile" not in meta and "theta_N = -1/alpha-" in meta["eq_12_13_reading"]
    assert [entry["layer"] for entry in meta["layers"]] == [p.name for p in net.populations[1:]]
    assert meta["layers"][0]["activation"] == "leaky_relu(negative_slope=0.25)"
    assert meta["layers"][0]["theta_neg"] == -4.0 and meta["layers"][-1]["output_scale"] == 1.0
    for got, want in zip(net.populations, written.populations):
        assert got.max_coeff == want.max_coeff
        assert (got.theta_neg is None) == (want.theta_neg is None)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("model, options, pattern", [
    (_dense(nn.ReLU), {"method": "burst"},
     r"method must be one of \['rate-norm', 'termapping', 'augmapping', 'clip', 'phase', 'bsnn'\], got 'burst'"),
    (_dense(nn.ReLU), {"method": "termapping", "percentile": 99.0},
     r"option percentile=99.0 does not apply to method 'termapping' \(its options: pool, readout, sparse_below, v_init_fraction\)"),
    (_dense(nn.ReLU), {"method": "augmapping", "percentile": 100}, r"percentile=100 does not apply to.*'augmapping'"),
    (_dense(nn.ReLU), {"m_aug": 4}, r"m_aug=4 does not apply to method 'rate-norm'"),
    (_dense(nn.ReLU), {"method": "termapping", "m_aug": 1}, r"m_aug=1 does not apply to method 'termapping'"),
    (_clip_net()[0], {"method": "clip", "percentile": 99.9}, r"percentile=99.9 does not apply to method 'clip'"),
    (_dense(nn.ReLU), {"method": "augmapping", "m_aug": -1}, r"m_aug must be an integer >= 1.*got -1"),
    (_dense(nn.ReLU), {"method": "augmapping", "m_aug": 2.5}, r"m_aug must be an integer.*got 2.5"),
    (_dense(nn.ReLU), {"method": "augmapping", "m_aug": True}, r"m_aug must be an integer.*got True"),
    (_dense(nn.ReLU), {"v_init_fraction": 1.5}, r"v_init_fraction must be a number in \[0, 1\], got 1.5"),
    (_dense(nn.ReLU), {"percentile": 0}, r"percentile must be a number in \(0, 100\], got 0"),
    (_dense(nn.ReLU), {"input_encoding": "morse"}, r"input_encoding must be one of .*'morse'"),
    (_dense(lambda: nn.LeakyReLU(0.1)), {},
     r"'fc1': method 'rate-norm' cannot convert leaky_relu\(negative_slope=0.1\) \(it converts relu; "
     r"leaky_relu needs method termapping or augmapping\)"),
    (_dense(lambda: nn.LeakyReLU(0.1)), {"method": "clip"}, r"method 'clip' cannot convert leaky_relu"),
    (_dense(nn.ReLU), {"method": "clip"}, r"method 'clip' cannot convert relu \(it converts clip; relu needs method "
                                          r"rate-norm or termapping or augmapping or phase or bsnn\)"),
    (_clip_net()[0], {"method": "termapping"},
     r"method 'termapping' cannot convert clip\(0, 0.75\).*needs method clip"),
    (_clip_net()[0], {"method": "augmapping"}, r"method 'augmapping' cannot convert clip"),
    (_clip_net()[0], {}, r"method 'rate-norm' cannot convert clip"),
    (_dense(nn.Identity), {"method": "clip"}, r"'fc2' reads 'fc1', whose outputs can be negative.*method 'clip'"),
    (_dense(lambda: nn.LeakyReLU(-0.5)), {"method": "augmapping"}, r"negative_slope -0.5 < 0"),
    (nn.Sequential(nn.Linear(4, 2), nn.LeakyReLU(0.1)), {"method": "augmapping"}, r"without activation"),
    (nn.Sequential(nn.Linear(4, 2), TrainableClip(1.0)), {"method": "clip"}, r"without activation"),
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.AvgPool1d(1)), {}, r"AvgPool1d"),
])
def test_what_cannot_be_converted_raises_a_clear_error(model, options, pattern):
    with pytest.raises(ExportError, match=pattern):
        convert_model(model, calibration=_calibration(), **options)


def test_a_clip_bound_must_be_positive():
    model, _, _ = _clip_net()
    with torch.no_grad():
        model[1].theta.fill_(-0.5)
    with pytest.raises(ExportError, match=r"node 'clip1': TrainableClip theta must be one value > 0, got -0.5"):
        convert_model(model, calibration=_calibration(), method="clip")
    with pytest.raises(ValueError, match="theta_init must be > 0"):
        TrainableClip(0.0)


def test_a_clip_must_follow_a_weighted_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), TrainableClip(1.0), nn.AvgPool2d(2), TrainableClip(0.5), nn.Flatten(),
                          nn.Linear(2, 2))
    with pytest.raises(ExportError, match=r"node 'clip2': clip must directly follow a Conv2d/Linear"):
        convert_model(model, calibration=torch.rand(2, 1, 4, 4), method="clip")
