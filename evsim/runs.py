"""Long runs that lose nothing: results streamed to disk chunk by chunk, and resumed after an interrupt.

While a run writes `OUTPUT`, finished chunks live in the folder
`OUTPUT.partial/`: a `manifest.json` that fixes what the run is (the
network's digest, hashes of the inputs, the `RunOptions`, the dtype) and
one result file per chunk of samples, written to a temporary name and
renamed, so a chunk file is either complete or absent whatever kills the
process. `resume=True` checks the manifest, keeps every finished chunk and
runs only the missing samples; the merged result equals an uninterrupted
run's (counts are integers; per-sample arrays are placed by sample index).
When all samples are done the result is written to `OUTPUT` and the folder
removed. With a Dask `client` the chunks run on its cluster (evsim/distributed.py)
and are written as they arrive, in any order.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from evsim import __version__
from evsim.errors import EvsimError
from evsim.network import Network
from evsim.result import SimulationResult, load_result, merge_results
from evsim.simulate import RunOptions, RunSamples, Simulator, resolve_samples

DEFAULT_CHUNK = 64


class ResumeError(EvsimError):
    """A partial run that cannot be resumed: mismatched, corrupt, or in the way."""


def run_to_file(network: Network, output, inputs: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None,
                *, ann_outputs: Optional[np.ndarray] = None, resume: bool = False, chunk_size: int = DEFAULT_CHUNK,
                progress: bool = False, dtype: str = "float32", threads: Optional[int] = None, client=None,
                report: Optional[Callable[[str], None]] = None, **options) -> SimulationResult:
    """Simulate `network`, streaming finished chunks to disk; return the whole result.

    `inputs`/`labels`/`ann_outputs` default to the network's own samples;
    `options` are the fields of `RunOptions` (timesteps, encoder, seed, ...);
    `client`: a Dask client whose cluster runs the chunks.
    The result carries the run's manifest (`SimulationResult.manifest`), so that `resume=True` on a finished
    `output` keeps it when it is the same run (network, inputs, options), without simulating, and refuses it
    otherwise. `report` is told, in a sentence, when a finished run is kept and before the engine compiles.
    """
    samples = resolve_samples(network, inputs, labels, ann_outputs=ann_outputs)
    run = RunOptions(**options).for_network(network)
    partial = Path(f"{output}.partial")
    manifest = {**_manifest(network, samples, run, dtype), "chunk_size": int(chunk_size)}
    if resume and not partial.exists() and Path(output).exists():
        kept = _finished_run(Path(output), manifest)
        if report:
            report(f"{output}: already finished with the same network, inputs and options; kept (nothing simulated)")
        return kept
    n = len(samples.inputs)
    done = _start_or_resume(partial, manifest, resume, n)
    missing = [np.arange(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size) if start not in done]
    try:
        from tqdm.auto import tqdm

        if client is None:  # the simulator before the bar: its compile notice comes first
            simulator = Simulator(network, dtype=dtype, threads=threads, report=report) if missing else None
            chunks = _local_chunks(simulator, samples, run, missing)
        else:
            chunks = _cluster_chunks(client, network, samples, run, missing, dtype, threads)
        with tqdm(total=n, initial=n - sum(len(ids) for ids in missing), unit="sample",
                  disable=not progress, leave=False) as bar, contextlib.closing(chunks):  # closing: cancels a cluster's tasks
            for ids, part in chunks:
                _write_atomically(part, partial / f"chunk-{ids[0]:09d}-{ids[-1] + 1:09d}.h5")
                done[int(ids[0])] = ids
                bar.update(len(ids))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted: {sum(len(i) for i in done.values())} of {n} samples are "
                                f"saved in {partial}; run the same command again with --resume (resume=True from "
                                "Python) to finish") from None
    result = merge_results([load_result(_chunk_path(partial, start)) for start in sorted(done)])
    result.manifest = manifest
    _write_atomically(result, Path(output))
    shutil.rmtree(partial)
    return result


def _local_chunks(simulator: Optional[Simulator], samples: RunSamples, run: RunOptions, missing: list):
    """Each missing chunk's sample indices and result, run here in order."""
    for ids in missing:
        yield ids, simulator.run_options(samples.take(ids), run, sample_ids=ids)


def _cluster_chunks(client, network, samples: RunSamples, run: RunOptions, missing: list, dtype, threads):
    """Each missing chunk's sample indices and result, run on the cluster, as they finish."""
    from evsim import distributed

    jobs = [distributed.Job(network, samples)]
    for chunk, part in distributed.finished_chunks(client, jobs, [distributed.Chunk(0, ids) for ids in missing], run,
                                                   dtype=dtype, threads=threads):
        yield chunk.rows, part


def _manifest(network: Network, samples: RunSamples, run: RunOptions, dtype: str) -> dict:
    def digest(array):
        return None if array is None else hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    return {"evsim": __version__, "network_sha256": network.digest(), "inputs_sha256": digest(samples.inputs),
            "labels_sha256": digest(samples.labels), "n_samples": int(len(samples.inputs)),
            **run.manifest(), "dtype": str(np.dtype(dtype))}


#: Manifest entries that change no result: a finished run made with another chunk size is the same run.
_RESULT_NEUTRAL = ("chunk_size",)


def _finished_run(output: Path, manifest: dict) -> SimulationResult:
    """The finished result in `output` when its manifest is this run's; a ResumeError naming what differs otherwise."""
    result = load_result(output)
    if not result.manifest:
        raise ResumeError(f"{output}: a finished result without a run manifest (saved by an older evsim, or not by a "
                          "streamed run): it cannot be told to be this run; delete it, or run without --resume")
    differ = _differences(result.manifest, manifest, ignore=_RESULT_NEUTRAL)
    if differ:
        raise ResumeError(f"{output}: a finished run with other {', '.join(differ)} than this one; --resume keeps "
                          "only the same run: run without --resume to replace it, or write elsewhere")
    return result


def _differences(saved: dict, manifest: dict, ignore=()) -> list[str]:
    return sorted(k for k in set(saved) | set(manifest) if k not in ignore and saved.get(k) != manifest.get(k))


def _start_or_resume(partial: Path, manifest: dict, resume: bool, n: int) -> dict:
    """Finished chunks by first sample index; creates the partial folder for a new run."""
    if partial.exists() and not resume:
        raise ResumeError(f"{partial} holds an interrupted run: resume it, or delete the folder to start again")
    if not partial.exists():
        partial.mkdir(parents=True)
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return {}
    try:
        saved = json.loads((partial / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResumeError(f"{partial}/manifest.json: unreadable ({err})") from None
    differ = _differences(saved, manifest)
    if differ:
        raise ResumeError(f"{partial}: the interrupted run differs from this one in {', '.join(differ)}; "
                          "resume it with the same file, inputs and options, or delete the folder")
    done = {}
    for path in sorted(partial.glob("chunk-*.h5")):
        try:
            start, stop = (int(x) for x in path.stem.split("-")[1:])
            part = load_result(path)
        except (ValueError, EvsimError) as err:
            raise ResumeError(f"{path}: corrupt partial result ({err}); delete it to recompute that chunk") from None
        if not (0 <= start < stop <= n) or part.n_samples != stop - start:
            raise ResumeError(f"{path}: holds {part.n_samples} samples, not samples {start}..{stop - 1} of {n}")
        done[start] = np.arange(start, stop)
    return done


def _chunk_path(partial: Path, start: int) -> Path:
    return next(partial.glob(f"chunk-{start:09d}-*.h5"))


def _write_atomically(result: SimulationResult, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    result.save(tmp)
    os.replace(tmp, path)
