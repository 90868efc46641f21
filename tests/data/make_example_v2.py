"""Write tests/data/example_v2.h5, the saved example of format version 2.

Run once, when version 2 was defined; the file is committed and
tests/test_format.py reads it in every run and checks it against constants,
so a reader change that stops reading version-2 files fails the tests.
Never regenerate it to make a test pass: a new format version gets a new
example file (example_v3.h5) beside this one.

The network is small and gives every version-2 attribute a value other
than its default, where the format allows it: `rank = value` on a
maxpool2d and on a spikes readout, `drive = gated` on a bif,
`bias_onset` on an if, a bif and a readout. The writer writes the lowest
version that holds a network, so this one is written as version 2.
Every value is dyadic (a multiple of 1/16), so float32 stores it exactly.
"""
from pathlib import Path

import numpy as np

from evsim.network import Network, Population, Projection, Samples
from evsim.weights_io import write_network


def ramp(*shape: int) -> np.ndarray:
    """Weights -3/8 .. 3/8 in a fixed pattern (the test rebuilds them the same way)."""
    return ((np.arange(np.prod(shape)) % 7 - 3) / 8).reshape(shape)


def example_network() -> Network:
    populations = (
        Population("in", "input", (1, 4, 4), 0, encoding="analog"),
        Population("b1", "bif", (2, 4, 4), 1, coding="phase", phase_period=2, theta_pos=np.array([1.0, 0.5]),
                   bias=np.array([0.125, -0.125]), drive="gated", bias_onset=2),
        Population("r", "relay", (2, 2, 2), 2),
        Population("h", "if", (4,), 3, theta_pos=np.array(1.0), theta_neg=np.array(-1.0), bias=np.array(0.0625),
                   bias_onset=4),
        Population("out", "readout", (3,), 4, mode="spikes", rank="value", max_coeff=2, theta_pos=np.array(0.5),
                   bias=np.array([0.0, 0.0625, -0.0625]), bias_onset=6),
    )
    projections = (
        Projection("conv", "conv2d", "in", "b1", weight=ramp(2, 1, 3, 3), padding=(1, 1)),
        Projection("mp", "maxpool2d", "b1", "r", kernel=(2, 2), stride=(2, 2), rank="value"),
        Projection("fc", "dense", "r", "h", weight=ramp(4, 8)),
        Projection("fc2", "dense", "h", "out", weight=ramp(3, 4)),
    )
    pixels = (np.arange(3 * 16) % 17) / 16
    samples = Samples(inputs=pixels.reshape(3, 1, 4, 4).astype(np.float32), labels=np.array([2, 0, 1]))
    meta = {"method": "bsnn", "K": 2, "dataset": "synthetic", "note": "evsim format version 2 example file"}
    return Network(populations, projections, output="out", samples=samples, meta=meta,
                   producer="evsim tests/data/make_example_v2.py")


if __name__ == "__main__":
    write_network(Path(__file__).with_name("example_v2.h5"), example_network())
