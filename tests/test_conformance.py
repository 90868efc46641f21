"""The conformance networks (written independently of evsim): both engines reproduce every array exactly."""
import json

import numpy as np
import pytest

from engines import assert_same_arrays
from evsim.reference import run_reference
from evsim.simulate import simulate
from evsim.weights_io import read_network

# evsim's `input_macs` is the accounting's definition (nonzero pixels); the conformance files call it
# `input_macs_nonzero` and use `input_macs` for the all-pixels count that evsim names `input_macs_dense`.
RENAMED = {"input_macs": "input_macs_nonzero", "input_macs_dense": "input_macs"}


def conformance_key(key: str) -> str:
    parts = key.split("/")
    if parts[0] == "proj":
        parts[-1] = RENAMED.get(parts[-1], parts[-1])
    return "/".join(parts)


def assert_reproduces(arrays: dict, expected) -> None:
    got = {conformance_key(k): v for k, v in arrays.items()}
    checked = [k for k in expected.files if k.split("/")[0] in ("pred", "readout_v", "readout_mass", "pop", "proj", "spikes")]
    assert len(checked) > 20
    assert_same_arrays(got, expected, checked, what="conformance")


def load(conformance_file):
    expected = np.load(conformance_file.with_suffix(".expected.npz"))
    meta = json.loads(str(expected["meta"]))
    return read_network(conformance_file), expected, meta


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_event_engine_reproduces_conformance(conformance_file, dtype):
    network, expected, meta = load(conformance_file)
    result = simulate(network, timesteps=meta["T"], encoder=meta["encoder"], dtype=dtype,
                      record_spikes=True, record_trace=True, record_counts=True)
    assert_reproduces(result.as_arrays(), expected)
    np.testing.assert_array_equal(result.labels, expected["labels"])


def test_reference_reproduces_conformance(conformance_file):
    network, expected, meta = load(conformance_file)
    assert_reproduces(run_reference(network, network.samples.inputs, meta["T"], meta["encoder"]), expected)
