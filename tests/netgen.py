"""Random small networks with dyadic weights and parameters, for engine-vs-reference equivalence.

Weights are multiples of 2^-5 and at most 1/4 in size, thresholds multiples
of 2^-3, biases of 2^-6, so every partial sum is exact in float32 and float64
and both engines must agree bit for bit whatever order they sum in.
Each network draws its structure (conv with stride / padding / dilation /
groups, pools, spiking max-pool into a relay, identity shortcuts with a
scale, sparse with repeated pairs, dense), its parameter granularity
(scalar, per channel, per neuron) and its neuron models from `rng`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from evsim.geometry import conv_output_hw
from evsim.network import Network, Population, Projection


def dyadic(rng, shape, grain, low, high):
    """Uniform multiples of `grain` in [low, high]."""
    return rng.integers(int(round(low / grain)), int(round(high / grain)) + 1, size=shape) * grain


class _Builder:
    def __init__(self, rng, coding, bif, augmented, period, v2_rng=None, v3_rng=None):
        self.rng, self.coding, self.bif, self.augmented, self.period = rng, coding, bif, augmented, period
        self.v2 = v2_rng  # draws the version-2 rules (a stream of its own: version-1 networks stay as they were)
        self.v3 = v3_rng  # and the version-3 ones (reset to a value, fire beyond the threshold)
        self.pops: list[Population] = []
        self.projs: list[Projection] = []

    def parameter(self, shape, grain, low, high, optional=False):
        """A scalar, per-channel or per-neuron parameter (or None when optional and not drawn)."""
        if optional and self.rng.random() < 0.4:
            return None
        choices = ["scalar", "neuron"] + (["channel"] if len(shape) == 3 else [])
        granularity = self.rng.choice(choices)
        param_shape = {"scalar": (), "channel": (shape[0],), "neuron": tuple(shape)}[granularity]
        return dyadic(self.rng, param_shape, grain, low, high).astype(np.float64)

    def add_population(self, kind, shape, **extra):
        rng = self.rng
        coding = self.coding if self.coding != "mixed" else rng.choice(["rate", "phase"])
        fields = dict(name=f"{kind}{len(self.pops)}", kind=kind, shape=tuple(int(s) for s in shape),
                      order=len(self.pops), coding=str(coding), phase_period=int(self.period))
        if kind in ("if", "bif", "readout"):
            theta_neg = self.parameter(shape, 2**-3, -1.5, -0.5, optional=True)
            v_init = self.parameter(shape, 2**-4, 0.0, 0.75, optional=True)
            bias = self.parameter(shape, 2**-6, -0.0625, 0.125, optional=True)
            fields.update(
                theta_pos=self.parameter(shape, 2**-3, 0.5, 1.5),
                theta_neg=theta_neg,
                v_init=np.zeros(()) if v_init is None else v_init,
                bias=np.zeros(()) if bias is None else bias,
                max_coeff=int(rng.choice([0, 1, 2, 3]) if self.augmented else 1),
            )
        fields.update(extra)
        if self.v2 is not None and kind in ("if", "bif", "readout"):
            fields["bias_onset"] = int(self.v2.choice([0, 0, 1, 3, 1000]))
            if kind == "bif":
                fields["drive"] = str(self.v2.choice(["split", "gated", "gated"]))
            if fields.get("mode") == "spikes":
                fields["rank"] = str(self.v2.choice(["mass", "value"]))
        if self.v3 is not None and kind == "if":
            if self.v3.random() < 0.5:
                fields["reset"] = "value"
                if self.v3.random() < 0.7:  # else no v_reset: reset to 0
                    shape_ = {"scalar": (), "channel": (shape[0],), "neuron": tuple(shape)}[
                        str(self.v3.choice(["scalar", "neuron"] + (["channel"] if len(shape) == 3 else [])))]
                    fields["v_reset"] = dyadic(self.v3, shape_, 2**-4, -0.5, 0.5).astype(np.float64)
            if self.v3.random() < 0.5:
                fields["fire_when"] = "gt"
        self.pops.append(Population(**fields))
        return self.pops[-1]

    def connect(self, kind, source, target, **extra):
        self.projs.append(Projection(name=f"p{len(self.projs)}_{kind}", kind=kind, source=source.name,
                                     target=target.name, **extra))

    def neuron_kind(self):
        return "bif" if self.bif and self.rng.random() < 0.6 else "if"

    def spatial_layer(self, src):
        """A conv2d, avgpool2d or max-pool (into a relay) from a [C, H, W] source; None if the draw does not fit."""
        rng = self.rng
        c, h, w = src.shape
        op = rng.choice(["conv2d", "conv2d", "avgpool2d"] + (["maxpool2d"] if src.kind != "input" else []))
        if op == "conv2d":
            k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
            cout = groups * int(rng.integers(1, 3))
            hw = conv_output_hw((h, w), k, stride, padding, dilation)
            if min(hw) < 1:
                return None
            weight = dyadic(rng, (cout, c // groups, *k), 2**-5, -0.25, 0.25)
            target = self.add_population(self.neuron_kind(), (cout, *hw))
            scale = float(rng.choice([1.0, 0.75, 1.25]))
            self.connect("conv2d", src, target, weight=weight, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, scale=scale)
            return target
        # avgpool weights are 1 / (kh * kw): power-of-two areas keep them dyadic (max-pool has no weight)
        sides = [1, 2, 4] if op == "avgpool2d" else [1, 2, 3]
        k = (int(rng.choice(sides)), int(rng.choice(sides)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        hw = conv_output_hw((h, w), k, stride, padding)
        if min(hw) < 1:
            return None
        if op == "avgpool2d":
            target = self.add_population(self.neuron_kind(), (c, *hw))
            self.connect("avgpool2d", src, target, kernel=k, stride=stride, padding=padding,
                         scale=float(rng.choice([1.0, 0.75])))
        else:
            target = self.add_population("relay", (c, *hw))
            rank = {} if self.v2 is None else {"rank": str(self.v2.choice(["mass", "value"]))}
            self.connect("maxpool2d", src, target, kernel=k, stride=stride, padding=padding, **rank)
        return target

    def shortcut(self, src, target):
        """A residual second input: a scaled identity, through a synchronous bif population when bif is on."""
        if src.kind == "input" or target.kind == "relay" or src.shape != target.shape:
            return
        scale = float(self.rng.choice([1.0, 0.5, 1.5]))
        if self.bif and self.rng.random() < 0.5:
            sync = self.add_population("bif", src.shape)
            self.pops.insert(self.pops.index(target), self.pops.pop())  # it must come before its target
            self.connect("identity", src, sync)
            src = sync
        self.connect("identity", src, target, scale=scale)

    def residual_block(self, src):
        """A shape-preserving conv (odd kernel, 'same' padding, stride 1) plus a shortcut from `src`."""
        c, h, w = src.shape
        k, d = int(self.rng.choice([1, 3])), int(self.rng.integers(1, 3))
        weight = dyadic(self.rng, (c, c, k, k), 2**-5, -0.25, 0.25)
        target = self.add_population(self.neuron_kind(), src.shape)
        pad = (k - 1) // 2 * d
        self.connect("conv2d", src, target, weight=weight, padding=(pad, pad), dilation=(d, d))
        self.shortcut(src, target)
        return target

    def flat_layer(self, src, size, readout_mode=None):
        rng = self.rng
        kind = "readout" if readout_mode else self.neuron_kind()
        extra = {"mode": readout_mode} if readout_mode else {}
        target = self.add_population(kind, (size,), **extra)
        if rng.random() < 0.6:
            self.connect("dense", src, target, weight=dyadic(rng, (size, src.size), 2**-5, -0.25, 0.25),
                         scale=float(rng.choice([1.0, 0.75])))
        else:
            rows = [rng.integers(0, size, size=int(rng.integers(0, 5))) for _ in range(src.size)]
            indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
            indices = np.concatenate(rows).astype(np.int64) if indptr[-1] else np.zeros(0, np.int64)
            self.connect("sparse", src, target, indptr=indptr, indices=indices,
                         weight=dyadic(rng, indices.shape, 2**-5, -0.25, 0.25))
        return target


def random_network(seed: int, *, coding="rate", bif=False, augmented=True, period=None,
                   readout_mode=None, version2=False, version3=False) -> Network:
    """A random valid network. coding: rate, phase or mixed; bif: use bistable pairs and synchronous shortcuts;
    version2: draw the version-2 rules too (drive, bias_onset, rank on max-pools and spikes readouts);
    version3: and the version-3 ones on if populations (reset to a value, with or without v_reset; fire_when gt)."""
    rng = np.random.default_rng(seed)
    v2_rng = np.random.default_rng(seed + 10**6) if version2 or version3 else None
    v3_rng = np.random.default_rng(seed + 2 * 10**6) if version3 else None
    b = _Builder(rng, coding, bif, augmented, period or int(rng.integers(1, 4)), v2_rng, v3_rng)
    shape = (int(rng.integers(1, 4)), int(rng.integers(4, 8)), int(rng.integers(4, 8)))
    current = b.add_population("input", shape, encoding="analog")
    for _ in range(int(rng.integers(1, 4))):
        if current.kind != "input" and rng.random() < 0.4:
            current = b.residual_block(current)
        else:
            current = b.spatial_layer(current) or current
    if rng.random() < 0.5:
        current = b.flat_layer(current, int(rng.integers(4, 16)))
    mode = readout_mode or str(rng.choice(["potential", "spikes"]))
    b.flat_layer(current, int(rng.integers(3, 8)), readout_mode=mode)
    pops = tuple(dataclasses.replace(p, order=i) for i, p in enumerate(b.pops))
    return Network(populations=pops, projections=tuple(b.projs), output=pops[-1].name)


def random_inputs(seed: int, network: Network, n: int, encoder: str) -> np.ndarray:
    """Dyadic inputs: signed in [-1, 1] for analog and bernoulli, [0, 1] for phase."""
    rng = np.random.default_rng(seed + 7919)
    low = 0.0 if encoder == "phase" else -1.0
    return dyadic(rng, (n, *network.input.shape), 2**-4, low, 1.0).astype(np.float32)
