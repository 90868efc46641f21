"""Runs on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1) equal local runs bit for bit.

Faults are made deterministic by hooks the tests install in the workers' `Simulator.run_options`
(`client.run`): a task that kills its own worker process on the cluster's first attempt, tasks that
finish in reverse order, tasks that wait until the test releases them.
"""
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import distributed
import numpy as np
import pytest
from click.testing import CliRunner

from evsim import Simulator
from evsim import distributed as evsim_distributed
from evsim.analysis.compare import run_comparison
from evsim.cli.main import main
from evsim.errors import EvsimError
from evsim.result import load_result
from evsim.runs import run_to_file
from evsim.simulate import RunOptions, resolve_samples
from evsim.weights_io import read_network, write_network

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hooks travel to the workers by value

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.h5"
N, T, SEED = 30, 12, 5
OPTIONS = dict(timesteps=T, encoder="bernoulli", seed=SEED)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def network():
    return read_network(EXAMPLE)


@pytest.fixture(scope="module")
def simulator(network):
    return Simulator(network, threads=1)


RECORD = dict(record_counts=True, record_trace=True)  # spike trains too, but on fewer samples: they are large


@pytest.fixture(scope="module")
def local(simulator):
    """The run in one piece, here: no tasks, no chunks, no merging."""
    return simulator.run(**OPTIONS, **RECORD, **_first(simulator.network))


def _first(network, n=N):
    samples = resolve_samples(network, n=n)
    return dict(inputs=samples.inputs, labels=samples.labels, ann_outputs=samples.ann_outputs)


def assert_same_result(a, b):
    """Every array and count equal; only the times and the thread count may differ."""
    for f in dataclasses.fields(a):
        if f.name in ("wall_time", "startup_time", "threads"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "manifest" and not (x and y):
            continue  # only a streamed run has one (an in-memory run's is empty)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
            assert x.dtype == y.dtype, f.name
        elif f.name == "spikes":
            assert x.keys() == y.keys()
            for key in x:
                for u, v in zip(x[key], y[key]):
                    np.testing.assert_array_equal(u, v, err_msg=str(key))
        else:
            assert x == y, f.name


# -- hooks run in the workers' processes -----------------------------------------------------------------

def _install_hook(hook, *args):
    from evsim.simulate import Simulator

    original = Simulator.__dict__.get("_unhooked", Simulator.run_options)
    Simulator._unhooked = original

    def run_options(self, samples, options, **kwargs):
        hook(kwargs["sample_ids"], *args)
        return original(self, samples, options, **kwargs)

    Simulator.run_options = run_options


def _remove_hook():
    from evsim.simulate import Simulator

    if "_unhooked" in Simulator.__dict__:
        Simulator.run_options = Simulator._unhooked
        del Simulator._unhooked


def _kill_on_first_attempt(ids, marker):
    """The first task anywhere on the cluster kills its own worker process; every later attempt runs."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _later_chunks_first(ids, n):
    time.sleep(0.1 * (n - ids[0]) / 5)


def _hold_from(ids, first_held, release):
    while ids[0] >= first_held and not os.path.exists(release):
        time.sleep(0.02)


@contextlib.contextmanager
def hooked(client, hook, *args):
    client.run(_install_hook, hook, *args)
    try:
        yield
    finally:
        client.run(_remove_hook)


# -- the tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [4, 64])
def test_a_run_on_the_cluster_is_the_local_run(client, simulator, local, chunk_size):
    result = simulator.run(**OPTIONS, **RECORD, client=client, chunk_size=chunk_size, **_first(simulator.network))
    assert_same_result(result, local)
    assert result.threads == 2


def _built_simulators():
    from evsim.distributed import _simulators

    return {key: id(simulator) for key, simulator in _simulators.items()}


def test_each_worker_builds_its_simulator_once(client, simulator, local):
    """The engine is compiled (or loaded from Numba's cache) and the network lowered once per worker process."""
    run = dict(**OPTIONS, **RECORD, client=client, chunk_size=3, **_first(simulator.network))
    assert_same_result(simulator.run(**run), local)
    before = client.run(_built_simulators)
    assert_same_result(simulator.run(**run), local)  # 10 more tasks
    after = client.run(_built_simulators)
    assert before == after and all(before.values())


def test_spike_trains_come_back_as_recorded_here(client, simulator):
    samples = _first(simulator.network, n=6)
    here = simulator.run(**OPTIONS, record_spikes=True, **samples)
    there = simulator.run(**OPTIONS, record_spikes=True, client=client, chunk_size=4, **samples)
    assert any(coef.any() for coef, _ in here.spikes.values())
    assert_same_result(there, here)


def _signs_of(inputs):
    """Stand-in ANN signs of conv1, one row per input and a function of that input only (so of no batching)."""
    phase = inputs.reshape(len(inputs), -1).sum(axis=1)[:, None] + 1
    return {"conv1": np.sign(np.sin(np.arange(12 * 24 * 24)[None] * phase)).reshape(-1, 12, 24, 24)}


def test_spikes_of_inactivated_neurons_count_alike_on_the_cluster(client, simulator):
    inputs = _first(simulator.network)
    here = simulator.run(**OPTIONS, **inputs, ann_signs=_signs_of)
    assert here.totals()["sin_events"] > 0
    for signs in (_signs_of, _signs_of(inputs["inputs"])):  # a function (sent once) or arrays (sliced per chunk)
        assert_same_result(simulator.run(**OPTIONS, **inputs, ann_signs=signs, client=client, chunk_size=7), here)


def test_chunks_finishing_in_reverse_order_merge_in_sample_order(client, network, local):
    samples, chunk = resolve_samples(network, n=N), 5
    jobs = [evsim_distributed.Job(network, samples)]
    chunks = [evsim_distributed.Chunk(0, np.arange(s, min(s + chunk, N))) for s in range(0, N, chunk)]
    with hooked(client, _later_chunks_first, N):
        finished = list(evsim_distributed.finished_chunks(client, jobs, chunks, RunOptions(**OPTIONS)))
    order = [int(c.rows[0]) for c, _ in finished]
    assert order != sorted(order) and sorted(order) == list(range(0, N, chunk))
    merged = evsim_distributed.run_all(client, jobs, RunOptions(**OPTIONS), chunk_size=chunk)[0]
    for name in ("pred", "pop_counts_per_sample", "pop_counts_per_step", "readout_v", "cosine"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(local, name), err_msg=name)


def test_a_worker_killed_mid_task_loses_and_doubles_nothing(client, simulator, local, tmp_path):
    marker = tmp_path / "killed"
    before = set(client.scheduler_info()["workers"])
    with hooked(client, _kill_on_first_attempt, str(marker)):
        result = simulator.run(**OPTIONS, **RECORD, client=client, chunk_size=6, **_first(simulator.network))
    assert marker.exists()
    client.wait_for_workers(2, timeout=60)
    assert set(client.scheduler_info()["workers"]) != before, "no worker died"
    assert_same_result(result, local)


@pytest.fixture(scope="module")
def variant(network, tmp_path_factory):
    """Another conversion of the bundled CNN: v(0) = theta/2 in every hidden population."""
    half = tuple(dataclasses.replace(p, v_init=np.array(0.5, np.float32)) if p.kind == "if" else p
                 for p in network.populations)
    path = tmp_path_factory.mktemp("distributed") / "half.h5"
    write_network(path, dataclasses.replace(network, populations=half))
    return path


def test_comparison_spreads_conversions_and_chunks(client, network, variant):
    runs = [network, read_network(variant)]
    here = run_comparison(runs, n_samples=N, **OPTIONS)
    there = run_comparison(runs, n_samples=N, **OPTIONS, client=client, chunk_size=7)
    assert not np.array_equal(here[0].pop_counts_per_step, here[1].pop_counts_per_step)  # two different runs
    for a, b in zip(here, there):
        assert_same_result(a, b)


def test_cli_compare_on_the_cluster_writes_the_local_table(client, variant, tmp_path):
    args = ["compare", str(EXAMPLE), str(variant), "-T", str(T), "-n", str(N), "--encoder", "bernoulli",
            "--seed", str(SEED), "--no-progress"]
    here = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "here.json")])
    there = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "there.json"), "--chunk-size", "4",
                                      "--dask", client.scheduler.address])
    assert here.exit_code == 0 and there.exit_code == 0, there.output
    assert here.output.replace("here.json", "") == there.output.replace("there.json", "")
    assert json.loads((tmp_path / "here.json").read_text()) == json.loads((tmp_path / "there.json").read_text())


def evsim_run(*args):
    return [sys.executable, "-c", "from evsim.cli.main import main; main()", "run", str(EXAMPLE), *args]


CLI_ARGS = ["-T", str(T), "-n", str(N), "--encoder", "bernoulli", "--seed", str(SEED), "--chunk-size", "5",
            "--no-progress"]


def test_a_killed_cluster_run_resumes_to_the_local_result(client, simulator, tmp_path):
    """The client process is killed while its later chunks are held on the workers; --resume finishes the run."""
    out, release = tmp_path / "run.h5", tmp_path / "release"
    partial = Path(f"{out}.partial")
    address = client.scheduler.address
    with hooked(client, _hold_from, 10, str(release)):
        proc = subprocess.Popen(evsim_run(*CLI_ARGS, "--dask", address, "-o", str(out)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while len(list(partial.glob("chunk-*.h5"))) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.kill()
        _, err = proc.communicate(timeout=60)
        release.touch()  # the held tasks finish; their client is gone, so nothing takes their results
    assert sorted(p.name for p in partial.glob("chunk-*.h5")) == ["chunk-000000000-000000005.h5",
                                                                   "chunk-000000005-000000010.h5"], err.decode()
    done = CliRunner().invoke(main, ["run", str(EXAMPLE), *CLI_ARGS, "--dask", address, "-o", str(out), "--resume"])
    assert done.exit_code == 0, done.output
    assert not partial.exists()
    expected = simulator.run(**OPTIONS, **_first(simulator.network))
    assert_same_result(load_result(out), expected)


def test_streamed_cluster_run_writes_what_a_local_streamed_run_writes(client, network, tmp_path):
    here = run_to_file(network, tmp_path / "here.h5", chunk_size=8, **_first(network), **OPTIONS)
    there = run_to_file(network, tmp_path / "there.h5", chunk_size=8, client=client, **_first(network), **OPTIONS)
    assert_same_result(load_result(tmp_path / "there.h5"), load_result(tmp_path / "here.h5"))
    assert_same_result(there, here)


def test_cli_prints_the_local_report(client):
    args = ["run", str(EXAMPLE), *CLI_ARGS]
    here, there = CliRunner().invoke(main, args), CliRunner().invoke(main, [*args, "--dask", client.scheduler.address])
    assert here.exit_code == 0 and there.exit_code == 0, there.output
    timing = ("thread(s)", "startup")  # the one line that differs: the run's time and threads
    assert [line for line in here.output.splitlines() if not any(t in line for t in timing)] == \
           [line for line in there.output.splitlines() if not any(t in line for t in timing)]


def test_bad_cluster_addresses_are_clear_errors(monkeypatch):
    monkeypatch.setattr(evsim_distributed, "CONNECT_TIMEOUT", "0.5s")
    for address, message in [("local:0", "local:N needs a number of workers"),
                             ("tcp://127.0.0.1:9", "no Dask scheduler answers there")]:
        result = CliRunner().invoke(main, ["run", str(EXAMPLE), "-T", "2", "-n", "2", "--dask", address])
        assert result.exit_code == 1 and message in result.output, result.output
        with pytest.raises(EvsimError, match=message):
            with evsim_distributed.connect(address):
                pass


def test_without_the_extra_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "-T", "2", "-n", "2", "--dask", "local:1"])
    assert result.exit_code == 1 and "pip install 'evsim[distributed]'" in result.output, result.output
