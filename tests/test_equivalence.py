"""The event-driven engine against the dense reference on random dyadic networks: equal bit for bit."""
import numpy as np
import pytest

from engines import assert_engine_equals_reference, assert_same_arrays, engine_run
from evsim.counters import EVENTS
from evsim.simulate import simulate
from netgen import random_inputs, random_network

T = 12
CONFIGS = {  # coding, bif pairs, encoder, version-2 rules
    "rate-analog": ("rate", False, "analog", False),
    "rate-bernoulli": ("rate", False, "bernoulli", False),
    "phase-analog": ("phase", False, "analog", False),
    "mixed-bif-phase-encoder": ("mixed", True, "phase", False),
    "phase-bif-analog": ("phase", True, "analog", False),
    "rate-bif-bernoulli": ("rate", True, "bernoulli", False),
    "v2-phase-bif-analog": ("phase", True, "analog", True),
    "v2-mixed-bif-phase-encoder": ("mixed", True, "phase", True),
    "v2-rate-bernoulli": ("rate", True, "bernoulli", True),
    "v3-rate-analog": ("rate", False, "analog", 3),
    "v3-mixed-bif-phase-encoder": ("mixed", True, "phase", 3),
}


def engine_arrays(network, inputs, encoder, seed, **options):
    return engine_run(network, inputs, T, encoder, seed, **options).as_arrays()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("config", CONFIGS)
def test_engine_equals_reference(config, seed):
    coding, bif, encoder, version2 = CONFIGS[config]
    network = random_network(seed, coding=coding, bif=bif, version2=version2, version3=version2 == 3)
    inputs = random_inputs(seed, network, 3, encoder)
    dtypes = ("float64", "float32") if seed % 3 == 0 else ("float64",)
    assert_engine_equals_reference(network, inputs, T, encoder, seed, dtypes=dtypes)


def test_networks_are_active():
    """The equivalence above means something only if the random networks spike and reach every layer."""
    active = 0
    for seed in range(12):
        network = random_network(seed, coding="rate")
        arrays = engine_arrays(network, random_inputs(seed, network, 2, "analog"), "analog", seed)
        spiking = [p.name for p in network.populations if p.kind in ("if", "bif")]
        active += all(arrays[f"pop/{name}/events"].sum() > 0 for name in spiking)
    assert active >= 8


@pytest.mark.parametrize("config", ["rate-bernoulli", "mixed-bif-phase-encoder"])
def test_results_do_not_depend_on_threads_or_batching(config):
    coding, bif, encoder, version2 = CONFIGS[config]
    network = random_network(3, coding=coding, bif=bif, version2=version2)
    inputs = random_inputs(3, network, 9, encoder)
    one = engine_arrays(network, inputs, encoder, 5, threads=1, batch_size=9)
    assert_same_arrays(engine_arrays(network, inputs, encoder, 5, threads=2, batch_size=2), one)
    # a sample's Bernoulli stream is keyed by its index: running it alone gives the same spikes
    alone = simulate(network, inputs, timesteps=T, encoder=encoder, seed=5, record_spikes=True)
    assert np.array_equal(alone.pred, one["pred"])


def test_bernoulli_stream_follows_the_seed():
    network = random_network(1, coding="rate")
    inputs = np.full((2, *network.input.shape), 0.5, dtype=np.float32)
    a = simulate(network, inputs, timesteps=T, encoder="bernoulli", seed=1, record_counts=True)
    b = simulate(network, inputs, timesteps=T, encoder="bernoulli", seed=1, record_counts=True)
    c = simulate(network, inputs, timesteps=T, encoder="bernoulli", seed=2, record_counts=True)

    def events(result):  # the input population's events
        return result.pop_counts[:, :, result.populations.index(network.input.name), EVENTS]

    assert np.array_equal(events(a), events(b))
    assert not np.array_equal(events(a), events(c))
    # identical inputs in two samples still get independent streams
    assert not np.array_equal(events(a)[0], events(a)[1])
    # rate close to 0.5 per pixel per step
    assert abs(events(a).mean() / network.input.size - 0.5) < 0.05
