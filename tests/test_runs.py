"""Long runs that lose nothing: a real process interrupted part-way, then resumed, equals an uninterrupted run."""
import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evsim.result import load_result
from evsim.runs import ResumeError, run_to_file
from evsim.weights_io import read_network

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5"
N, CHUNK = 384, 8  # 48 chunks: a margin for a loaded machine, where the watcher below wakes late
ARGS = ["-T", "128", "-n", str(N), "--chunk-size", str(CHUNK), "--encoder", "bernoulli", "--seed", "3", "--no-progress"]


def evsim(*args):
    return [sys.executable, "-c", "from evsim.cli.main import main; main()", "run", str(EXAMPLE), *args]


def assert_same_result(a, b):
    for f in dataclasses.fields(a):
        if f.name in ("wall_time", "startup_time", "threads", "manifest"):  # an in-memory run has no manifest
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@pytest.fixture(scope="module")
def uninterrupted():
    """The same run in one piece, in memory: no chunks, no files, no merging."""
    from evsim.simulate import simulate

    network = read_network(EXAMPLE)
    samples, n = network.samples, N
    return simulate(network, samples.inputs[:n], samples.labels[:n], ann_outputs=network.ann.outputs[:n],
                    timesteps=128, encoder="bernoulli", seed=3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, uninterrupted, sig):
    out = tmp_path / "run.h5"
    partial = Path(f"{out}.partial")
    proc = subprocess.Popen(evsim(*ARGS, "-o", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(partial.glob("chunk-*.h5"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"run the same command again with --resume" in err
        assert b"Traceback" not in err
    finished = len(list(partial.glob("chunk-*.h5")))
    assert 2 <= finished < N // CHUNK and not out.exists()
    done = subprocess.run(evsim(*ARGS, "-o", str(out), "--resume"), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert not partial.exists()
    saved = load_result(out)
    assert_same_result(saved, uninterrupted)
    assert (saved.manifest["timesteps"], saved.manifest["encoder"], saved.manifest["seed"]) == (128, "bernoulli", 3)


def test_resume_keeps_a_finished_run_and_refuses_another(tmp_path):
    """--resume on a finished output: the same run is kept (nothing simulated); one with other options refused."""
    out = tmp_path / "run.h5"
    args = ["-T", "4", "-n", "8", "--no-progress", "-o", str(out)]
    first = subprocess.run(evsim(*args), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    written = out.stat().st_mtime_ns
    again = subprocess.run(evsim(*args, "--resume", "--chunk-size", "3"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "already finished with the same network, inputs and options; kept (nothing simulated)" in again.stderr
    assert out.stat().st_mtime_ns == written and "8 samples, T = 4" in again.stdout
    other = subprocess.run(evsim(*args[:2], "-n", "8", "--encoder", "poisson", "--no-progress", "-o", str(out),
                                 "--resume"), capture_output=True, text=True)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert f"{out}: a finished run with other encoder than this one" in other.stderr
    assert out.stat().st_mtime_ns == written


def test_mismatched_or_corrupt_partial_runs_are_refused(tmp_path):
    out = tmp_path / "run.h5"
    partial = Path(f"{out}.partial")
    run_to_file(read_network(EXAMPLE), out, timesteps=4, chunk_size=100)  # complete: 500 samples, 5 chunks
    assert not partial.exists()
    # fake an interruption: a manifest and one chunk
    partial.mkdir()
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after_first_chunk(out)
    with pytest.raises(ResumeError, match="holds an interrupted run"):
        run_to_file(read_network(EXAMPLE), out, timesteps=4, chunk_size=100)
    with pytest.raises(ResumeError, match="differs from this one in timesteps"):
        run_to_file(read_network(EXAMPLE), out, timesteps=8, chunk_size=100, resume=True)
    with pytest.raises(ResumeError, match="differs from this one in seed"):
        run_to_file(read_network(EXAMPLE), out, timesteps=4, chunk_size=100, seed=9, resume=True)
    chunk = next(partial.glob("chunk-*.h5"))
    chunk.write_bytes(chunk.read_bytes()[:1000])  # truncated by a crash of the disk, say
    with pytest.raises(ResumeError, match="corrupt partial result"):
        run_to_file(read_network(EXAMPLE), out, timesteps=4, chunk_size=100, resume=True)


def _interrupt_after_first_chunk(out):
    """Run with a simulator that raises KeyboardInterrupt on its second chunk."""
    from evsim.simulate import Simulator

    real = Simulator.run_options
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    Simulator.run_options = flaky
    try:
        import shutil

        shutil.rmtree(f"{out}.partial")
        run_to_file(read_network(EXAMPLE), out, timesteps=4, chunk_size=100)
    finally:
        Simulator.run_options = real


def test_network_digest_is_by_value():
    """The resume manifest names a network by its digest: equal after a file round trip, changed by a weight."""
    import tempfile

    from evsim.weights_io import write_network

    network = read_network(EXAMPLE)
    with tempfile.TemporaryDirectory() as folder:
        write_network(Path(folder) / "copy.h5", network)
        assert read_network(Path(folder) / "copy.h5").digest() == network.digest()
    proj = network.projections[0]
    changed = network.replace(projections=(dataclasses.replace(proj, weight=proj.weight * 2), *network.projections[1:]))
    assert changed.digest() != network.digest()
