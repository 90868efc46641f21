"""The one engine-versus-reference assertion of the tests, and the engine run it compares.

Every array the event-driven engine produces (`SimulationResult.as_arrays`:
`pred`, `readout_*`, `pop/<name>/<counter>`, `proj/<name>/<counter>`,
`spikes/...`) is held bit for bit to the same key of another run: the dense
reference (`evsim.reference.run_reference`), a conformance file's expected
arrays, or another engine run (other threads, batches, a file round trip).
"""
from __future__ import annotations

import numpy as np

from evsim.reference import run_reference
from evsim.simulate import simulate


def assert_same_arrays(got, want, keys=None, what: str = "") -> None:
    """Every array of `want` (or only those of `keys`) is in `got`, with the same shape and the same values.

    `got` and `want` map keys to arrays (dicts, or an `np.load`ed file for
    `want`); `what` names the comparison in the messages.
    """
    keys = list(want) if keys is None else list(keys)
    prefix = f"{what}: " if what else ""
    missing = sorted(k for k in keys if k not in got)
    assert not missing, f"{prefix}missing {missing[:5]}"
    wrong = [k for k in keys if got[k].shape != want[k].shape or not np.array_equal(got[k], want[k])]
    assert not wrong, f"{prefix}differ: {wrong[:8]}"


def engine_run(network, inputs, timesteps, encoder="analog", seed=0, **options):
    """The event-driven engine's run with everything recorded (spikes, readout trace, per-sample counts)."""
    return simulate(network, inputs, timesteps=timesteps, encoder=encoder, seed=seed, record_spikes=True,
                    record_trace=True, record_counts=True, **options)


def assert_engine_equals_reference(network, inputs, timesteps, encoder="analog", seed=0,
                                   dtypes=("float64", "float32"), ann_signs=None, **options) -> list:
    """Run the engine in each of `dtypes`: every array must equal the dense reference's exactly.

    `ann_signs` (the ANN's activations, for the SIN counts) go to both engines,
    `options` to the event-driven one (threads, batch size). Returns the
    engine's results, in the order of `dtypes`.
    """
    want = run_reference(network, inputs, timesteps, encoder, seed, ann_signs=ann_signs)
    results = []
    for dtype in dtypes:
        result = engine_run(network, inputs, timesteps, encoder, seed, dtype=dtype, ann_signs=ann_signs, **options)
        assert_same_arrays(result.as_arrays(), want, what=f"engine ({dtype}) vs reference")
        results.append(result)
    return results
