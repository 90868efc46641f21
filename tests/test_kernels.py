"""Unit tests of the small jitted kernels against brute force."""
import numpy as np
import pytest

from evsim.engine.encoders import bernoulli_uniform, phase_bit
from evsim.engine.neurons import coefficient
from evsim.geometry import axis_hits
from evsim.network import Network, Population, Projection
from evsim.simulate import simulate


def test_coefficient_is_exact_whatever_division_rounds_to():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        th = rng.uniform(0.01, 2.0)
        excess = th * rng.uniform(1.0, 30.0)
        c = coefficient(excess, th, 0)
        assert c >= 1 and c * th <= excess < (c + 1) * th
    # 0.7 / 0.1 rounds to 6.999...; 7 * 0.1 > 0.7 in floats, so 6 is the exact answer
    assert coefficient(0.7, 0.1, 0) == 6
    # here the division rounds down to 14.999... although 15 * th <= excess: the answer is 15
    excess, th = 8.520201425883291, 0.5680134283922195
    assert int(excess / th) == 14 and 15 * th <= excess
    assert coefficient(excess, th, 0) == 15
    assert coefficient(5.0, 1.0, 3) == 3      # capped: the rest stays in the membrane
    assert coefficient(5.0, 1.0, 1) == 1      # binary / ternary
    assert coefficient(1.0, 1.0, 0) == 1


@pytest.mark.parametrize("k,dilation,stride,pad,n_in",
                         [(3, 1, 1, 1, 7), (5, 1, 2, 2, 9), (3, 2, 2, 2, 8), (2, 1, 2, 0, 6), (4, 2, 3, 1, 11)])
def test_window_tables_match_brute_force(k, dilation, stride, pad, n_in):
    n_out = (n_in + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    table = axis_hits(n_in, pad, k, dilation, stride, n_out)
    for pos in range(n_in):
        hits = table[pos, 0]
        got = set(zip(table[pos, 1:1 + 2 * hits:2].tolist(), table[pos, 2:2 + 2 * hits:2].tolist()))
        want = {(o, tap) for o in range(n_out) for tap in range(k) if o * stride - pad + tap * dilation == pos}
        assert got == want


def test_bernoulli_stream_is_one_definition_jitted_and_numpy():
    pixels = np.arange(50, dtype=np.uint64)
    with np.errstate(over="ignore"):
        vectorised = bernoulli_uniform(np.uint64(3), np.uint64(7), np.uint64(11), pixels)
    from numba import njit

    scalar = njit(lambda p: bernoulli_uniform(np.uint64(3), np.uint64(7), np.uint64(11), np.uint64(p)))
    assert np.array_equal(vectorised, [scalar(p) for p in range(50)])
    assert 0 <= vectorised.min() and vectorised.max() < 1


def test_phase_encoder_emits_the_binary_expansion():
    """x = 0.8125 = 0.1101b with K = 4: phases 0, 1, 3 emit, values S_k sum back to x each period."""
    assert [phase_bit(0.8125, 4, t) for t in range(8)] == [1, 1, 0, 1, 1, 1, 0, 1]
    assert [phase_bit(1.0, 2, t) for t in range(2)] == [1, 1]  # quantised to 2^K - 1
    pops = (Population("in", "input", (1,), 0, coding="phase", phase_period=4, encoding="phase"),
            Population("out", "readout", (1,), 1, coding="phase", phase_period=4))
    network = Network(pops, (Projection("w", "identity", "in", "out"),), "out")
    result = simulate(network, np.array([[0.8125]], np.float32), timesteps=8, record_spikes=True, record_trace=True)
    coef, value = result.spikes[("in", "out")]
    assert coef[0, :, 0].tolist() == [1, 1, 0, 1, 1, 1, 0, 1]
    assert value[0, :4, 0].sum() == 0.8125
    assert result.readout_trace[0, [3, 7], 0].tolist() == [0.8125, 1.625]


def test_stale_numba_cache_is_dropped_wherever_numba_keeps_it(tmp_path, monkeypatch):
    """A changed evsim source must invalidate every cached kernel, under NUMBA_CACHE_DIR too."""
    import hashlib
    from pathlib import Path

    import numba

    from evsim.engine import jit

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    here = Path(jit.__file__).parent  # evsim/engine, where the scheduler's source lives
    cache = tmp_path / f"{here.name}_{hashlib.sha1(str(here.resolve()).encode()).hexdigest()}"
    cache.mkdir()
    (cache / "evsim-sources.sha256").write_text("digest of older sources")
    stale = cache / "scheduler.run_batch-1.py311.nbi"
    stale.write_text("")
    jit._drop_stale_cache()
    assert not stale.exists()
    fresh = cache / "scheduler.run_batch-1.py311.nbc"
    fresh.write_text("")
    jit._drop_stale_cache()  # sources unchanged since: the cache is kept
    assert fresh.exists()


def test_a_change_anywhere_in_evsim_drops_the_cache_of_every_folder(tmp_path):
    """Kernels freeze constants of other modules (kind codes, counter slots): an edit to any source counts."""
    from evsim.engine import jit

    package = tmp_path / "evsim"
    (package / "engine" / "__pycache__").mkdir(parents=True)
    (package / "kinds.py").write_text("CODE = 1\n")
    (package / "engine" / "scheduler.py").write_text("pass\n")
    jit._drop_stale_cache(package)
    cached = package / "engine" / "__pycache__" / "scheduler.run_batch-1.py311.nbc"
    cached.write_text("")
    jit._drop_stale_cache(package)
    assert cached.exists()  # nothing changed: kept
    (package / "kinds.py").write_text("CODE = 2\n")  # a module the kernel's file does not contain
    jit._drop_stale_cache(package)
    assert not cached.exists()
