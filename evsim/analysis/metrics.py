"""Derived measures of a run (docs/metrics.md): latency, decision time, agreement with the ANN, energy.

Pure functions of arrays, so each can be checked against a direct
computation; `SimulationResult` methods call them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from evsim.kinds import PHASE

#: Tolerances of the early-decision latency (accuracy loss allowed, in accuracy units: 0.01 = 1 point).
DEFAULT_TOLERANCES = (0.01, 0.001, 0.0)


def accuracy_curve(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Accuracy after every step: entry t-1 is the accuracy after t steps. pred [n, T], labels [n]."""
    return (pred == labels[:, None]).mean(axis=0)


def early_decision_latency(accuracy: np.ndarray, reference: float, tolerance: float) -> Optional[int]:
    """The first step t (1-based) from which accuracy stays >= reference - tolerance until T; None if never.

    As the augmented-spike paper's Table IV: the latency at which the SNN
    reaches, and keeps, the ANN's accuracy up to an allowed loss.
    """
    ok = accuracy >= reference - tolerance - 1e-12  # accuracies are ratios of integers: allow rounding
    if not ok[-1]:
        return None
    failing = np.flatnonzero(~ok)
    return int(failing[-1]) + 2 if failing.size else 1


def decision_times(pred: np.ndarray) -> np.ndarray:
    """Per sample, the first step t (1-based) from which its prediction no longer changes."""
    changed = pred[:, 1:] != pred[:, :-1]  # [n, T-1]: prediction after t+2 differs from after t+1
    last_change = np.where(changed.any(axis=1), changed.shape[1] - np.argmax(changed[:, ::-1], axis=1), 0)
    return last_change + 1


def step_weights(timesteps: int, coding: str, period: int, onset: int = 0) -> np.ndarray:
    """Cumulative step weight W(t) = sum of S_k over the steps from `onset` to t (entry t-1): t - onset under rate
    coding, 0 up to the onset. The onset is the readout's `bias_onset`, the first step an event can reach it
    (the pipeline fill before it carries no input), so that drive / W is a rate of what could arrive."""
    steps = np.arange(timesteps)
    weight = 2.0 ** -(1 + steps % period) if coding == PHASE else np.ones(timesteps)
    return np.cumsum(np.where(steps >= onset, weight, 0.0))


def readout_estimates(drive: np.ndarray, weights: np.ndarray, output_scale) -> np.ndarray:
    """The ANN outputs the readout estimates after every step: drive(t) / W(t) x output_scale.

    `drive` [n, T, N] is the input the output neurons integrated so far
    (potential - v_init + what their spikes discharged), so the estimate is a
    rate for potential and spiking readouts alike.
    """
    scale = 1.0 if output_scale is None else np.asarray(output_scale, dtype=np.float64)
    per_weight = np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0)  # 0 before the onset
    return drive * per_weight[None, :, None] * scale


def cosine_similarity(estimates: np.ndarray, ann_outputs: np.ndarray) -> np.ndarray:
    """Per sample and step, cos(estimate, ANN output) (double-threshold paper eq. 14); 0 where either is zero.

    estimates [n, T, N], ann_outputs [n, N] -> [n, T].
    """
    dot = np.einsum("ntj,nj->nt", estimates, ann_outputs)
    norms = np.linalg.norm(estimates, axis=2) * np.linalg.norm(ann_outputs, axis=1)[:, None]
    return np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)


def mean_abs_difference(estimates: np.ndarray, ann_outputs: np.ndarray) -> np.ndarray:
    """Per sample and step, mean over output neurons of |estimate - ANN output| (BSNN Fig. 5). -> [n, T]."""
    return np.abs(estimates - ann_outputs[:, None, :]).mean(axis=2)
