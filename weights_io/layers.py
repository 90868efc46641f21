"""Layers to build ANNs that the exporter converts (they need PyTorch; the exporter itself does not).

`TrainableClip` is the clip layer of the "optimized potential initialization"
seed (Algorithm 1, line 2: ReLU(x) replaced by clip(x; 0, theta^l) with a
trainable upper bound). Export such a model with `method="clip"`: theta^l
becomes the layer's firing threshold.
"""
from __future__ import annotations

import torch
from torch import nn


class TrainableClip(nn.Module):
    """clip(x, 0, theta) with theta a trainable scalar (one per layer, as in the paper).

    The gradient reaches x where 0 <= x <= theta and theta where x > theta
    (d clip / d theta = 1 there): what trains the bound, and so the SNN's
    threshold, on the data. The exporter traces it as one leaf node.
    """

    def __init__(self, theta_init: float = 1.0):
        super().__init__()
        if not theta_init > 0:
            raise ValueError(f"theta_init must be > 0, got {theta_init}")
        self.theta = nn.Parameter(torch.tensor(float(theta_init)))

    def forward(self, x):
        return torch.clamp(x, torch.zeros_like(self.theta), self.theta)

    def extra_repr(self) -> str:
        return f"theta={float(self.theta.detach()):.4g}"
