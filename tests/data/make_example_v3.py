"""Write tests/data/example_v3.h5, the saved example of format version 3.

Run once, when version 3 was defined; the file is committed and
tests/test_format.py reads it in every run and checks it against constants,
so a reader change that stops reading version-3 files fails the tests.
Never regenerate it to make a test pass: a new format version gets a new
example file (example_v4.h5) beside this one.

The network is small and gives every version-3 field a value other than
its default: `reset = value` with a per-channel `v_reset`, `reset = value`
without one (reset to 0), `fire_when = gt` with either reset; and one
version-2 attribute (`bias_onset`). The writer writes the lowest version
that holds a network, so this one is written as version 3. Every value is
dyadic, so float32 stores it exactly.
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
        Population("in", "input", (1, 4, 4), 0),
        Population("c1", "if", (2, 2, 2), 1, theta_pos=np.array([1.0, 0.5]), reset="value", fire_when="gt",
                   v_reset=np.array([0.25, -0.125])),
        Population("h", "if", (4,), 2, theta_pos=np.array(1.0), theta_neg=np.array(-1.0), max_coeff=0, reset="value",
                   bias=np.array(0.0625), bias_onset=2),
        Population("g", "if", (4,), 3, theta_pos=np.array(0.5), fire_when="gt"),
        Population("out", "readout", (3,), 4, bias=np.array([0.0, 0.0625, -0.0625])),
    )
    projections = (
        Projection("conv", "conv2d", "in", "c1", weight=ramp(2, 1, 3, 3), stride=(2, 2), padding=(1, 1)),
        Projection("fc", "dense", "c1", "h", weight=ramp(4, 8)),
        Projection("fc2", "dense", "h", "g", weight=ramp(4, 4)),
        Projection("fc3", "dense", "g", "out", weight=ramp(3, 4)),
    )
    pixels = (np.arange(3 * 16) % 13) / 8 - 0.75
    samples = Samples(inputs=pixels.reshape(3, 1, 4, 4).astype(np.float32), labels=np.array([1, 0, 2]))
    meta = {"method": "nir", "dataset": "synthetic", "note": "evsim format version 3 example file"}
    return Network(populations, projections, output="out", samples=samples, meta=meta,
                   producer="evsim tests/data/make_example_v3.py")


if __name__ == "__main__":
    write_network(Path(__file__).with_name("example_v3.h5"), example_network())
