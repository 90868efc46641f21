"""Small PyTorch models and helpers shared by the exporter tests (test_export*.py).

Import it after `pytest.importorskip("torch")`: it imports torch.
"""
import numpy as np
import torch

nn = torch.nn

#: Batch-norm statistics near the identity, as a trained network's: activations stay alive layer after layer.
NEAR_IDENTITY = {"running_mean": (-0.1, 0.1), "running_var": (0.75, 1.25), "weight": (0.75, 1.25), "bias": (-0.05, 0.15)}
#: Far from it, so that a folding error shows.
FAR_FROM_IDENTITY = {"running_mean": (-1.0, 1.0), "running_var": (0.5, 2.0), "weight": (0.5, 2.0), "bias": (-1.0, 1.0)}


def scalar(value):
    return float(np.asarray(value))


def randomise_batchnorm(model, ranges=NEAR_IDENTITY, seed=None):
    """Every batch norm's running statistics and affine parameters drawn uniformly from `ranges`, by a
    generator seeded with `seed` (None: torch's global one)."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                for name, (low, high) in ranges.items():
                    draw = torch.rand(module.num_features, generator=generator)
                    getattr(module, name).copy_(draw * (high - low) + low)
    return model


def images(n=32, seed=1):
    """n one-channel 8x8 images in [0, 1)."""
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def dense_net(activation, weights, biases):
    """Linear - activation - Linear - ... - Linear with the given weights and biases (eval mode)."""
    layers = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        linear = nn.Linear(len(w[0]), len(w))
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(w))
            linear.bias.copy_(torch.tensor(b))
        layers.append(linear)
        if i < len(weights) - 1:
            layers.append(activation())
    return nn.Sequential(*layers).eval()


def bn_conv_net(flatten=None):
    """conv - BN - ReLU - average pool - flatten - dropout - linear - BN - ReLU - linear, on 1x6x6 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
        flatten or nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 3 * 3, 5), nn.BatchNorm1d(5), nn.ReLU(),
        nn.Linear(5, 3),
    )


def pool_conv_net(activation):
    """conv - activation - average pool - linear - activation - linear, on 1x6x6 inputs (eval mode)."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), activation(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(27, 5), activation(), nn.Linear(5, 3)).eval()


def maxpool_net(seed=0):
    """Two conv - ReLU - max pool stages (the second pool of stride 1) and a linear readout, on 1x8x8 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.MaxPool2d(2, 1), nn.Flatten(), nn.Linear(6, 3)).eval()


class Block(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus an identity or 1x1-conv (+BN) shortcut, ReLU after the sum."""

    def __init__(self, cin, cout, stride=1, conv_shortcut=False):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if conv_shortcut else None
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        out += x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out)


class TinyResNet(nn.Module):
    """stem (conv-BN-ReLU) - block - block - average pool - fc, on 1x8x8 inputs (eval mode)."""

    def __init__(self, conv_shortcut=False, seed=3):
        super().__init__()
        torch.manual_seed(seed)
        self.stem, self.bn, self.relu = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.block1 = Block(4, 4)
        self.block2 = Block(4, 6, 2, conv_shortcut=True) if conv_shortcut else Block(4, 4)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2 if conv_shortcut else 4 * 4 * 4, 3)
        with torch.no_grad():
            self.fc.weight.mul_(4)  # outputs far enough apart to compare predictions
        randomise_batchnorm(self, seed=seed)
        self.eval()

    def forward(self, x):
        x = self.block2(self.block1(self.relu(self.bn(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


def dyadic(model, step=0.5):
    """Every weight and bias rounded to a multiple of `step` (a power of 2), every batch norm made exactly
    affine (eps 0, running variance 1, mean and affine parameters multiples of `step`), so that the folded
    ANN computes exactly in float32 on inputs that are multiples of a power of 2: its outputs, and so the
    exporter's factors, do not depend on the order of float sums (one machine or another)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.eps = 0.0
                module.running_var.fill_(1.0)
                module.running_mean.copy_(torch.round(module.running_mean / step) * step)
            for parameter in module.parameters(recurse=False):
                parameter.copy_(torch.round(parameter / step) * step)
        for module in model.modules():  # a batch norm's scale must not round to 0
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.copy_(torch.where(module.weight == 0, torch.full_like(module.weight, step), module.weight))
    return model.eval()


#: The exporter options that bring a method's version-1 network back (docs/export.md, "Options"): bif pairs
#: with split drive (the halving) and biases from t = 0, max pools ranked by spike mass, average pools as
#: populations, no sparse projections for pruned layers.
VERSION_1 = {"bsnn": {"drive": "split", "bias_onset": 0, "rank": "mass", "pool": "population", "sparse_below": 0},
             "phase": {"rank": "mass", "pool": "population", "sparse_below": 0}}


def version_1(method):
    """The options of `method` that give the network the exporter wrote before version 2 (format version 1)."""
    return dict(VERSION_1.get(method, {"pool": "population", "sparse_below": 0}))
