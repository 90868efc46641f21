"""Write tests/data/example_v1.h5, the saved example of format version 1.

Run once, when version 1 was defined; the file is committed and
tests/test_format.py reads it in every run and checks it against constants,
so a reader change that stops reading version-1 files fails the tests.
Never regenerate it to make a test pass: a new format version gets a new
example file (example_v2.h5) beside this one.

Every value is dyadic (a multiple of 1/16), so float32 stores it exactly.
"""
from pathlib import Path

import numpy as np

from evsim.network import AnnInfo, Network, Population, Projection, Samples
from evsim.weights_io import write_network


def ramp(*shape: int) -> np.ndarray:
    """Weights -3/8 .. 3/8 in a fixed pattern (the test rebuilds them the same way)."""
    return ((np.arange(np.prod(shape)) % 7 - 3) / 8).reshape(shape)


def example_network() -> Network:
    populations = (
        Population("in", "input", (1, 6, 6), 0, encoding="analog"),
        Population("c1", "if", (2, 4, 4), 1, theta_pos=np.array([1.0, 0.5]), theta_neg=np.array(-1.0),
                   v_init=np.array(0.5)),
        Population("p1", "if", (2, 2, 2), 2, max_coeff=0, theta_pos=np.array(0.75), bias=np.array([0.0, 0.125])),
        Population("h", "if", (5,), 3, max_coeff=3, theta_pos=np.array([1.0, 1.0, 0.5, 0.5, 0.25])),
        Population("h2", "if", (5,), 4, theta_pos=np.array(1.0)),
        Population("out", "readout", (3,), 5, mode="potential", bias=np.array([0.0, 0.0625, -0.0625])),
    )
    projections = (
        Projection("conv", "conv2d", "in", "c1", weight=ramp(2, 1, 3, 3)),
        Projection("pool", "avgpool2d", "c1", "p1", kernel=(2, 2), stride=(2, 2)),
        Projection("fc", "dense", "p1", "h", weight=ramp(5, 8)),
        Projection("skip", "identity", "h", "h2", scale=0.5),
        Projection("sp", "sparse", "h2", "out", indptr=np.array([0, 2, 3, 3, 5, 6]),
                   indices=np.array([0, 2, 1, 0, 1, 2]), weight=ramp(6)),
    )
    pixels = (np.arange(4 * 36) % 17) / 16
    samples = Samples(inputs=pixels.reshape(4, 1, 6, 6).astype(np.float32), labels=np.array([0, 2, 1, 0]))
    ann = AnnInfo(macs=366, accuracy=0.75, layer_macs={"conv": 288, "pool": 32, "fc": 40, "sp": 6},
                  lambdas=np.array([1.0, 2.0, 4.0]), outputs=ramp(4, 3))
    meta = {"method": "rate-norm", "percentile": 99.9, "dataset": "synthetic",
            "note": "evsim format version 1 example file"}
    return Network(populations, projections, output="out", output_scale=np.array(2.0), ann=ann,
                   samples=samples, meta=meta, producer="evsim tests/data/make_example_v1.py")


if __name__ == "__main__":
    write_network(Path(__file__).with_name("example_v1.h5"), example_network())
