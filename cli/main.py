"""The `evsim` command line: parses, calls the Python API, prints. Domain errors become clean messages."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import warnings
from pathlib import Path

import click
import numba
from click.core import ParameterSource

from evsim import EvsimError, SimulationInputError, __version__
from evsim.analysis.compare import compare as compare_runs
from evsim.analysis.compare import (
    format_comparison,
    run_comparison,
    write_comparison_csv,
    write_comparison_json,
)
from evsim.analysis.energy import DEFAULT_PROFILE, available_profiles, load_profile
from evsim.kinds import ENCODER_ALIASES, ENCODERS, PHASE
from evsim.analysis.plots import plot_comparison, plot_result, require_matplotlib
from evsim.analysis.report import describe_network, format_text, write_csv, write_json
from evsim.result import is_result_file, load_result
from evsim.runs import DEFAULT_CHUNK, run_to_file
from evsim.simulate import MAX_TIMESTEPS, RunOptions, Simulator, check_run, resolve_samples
from evsim.weights_io import read_network
from evsim.weights_io.inputs import load_inputs
from evsim.weights_io.methods import METHODS, declared_options

NETWORK_FILE = click.Path(exists=True, dir_okay=False, readable=True)


def domain_errors(command):
    """Turn evsim's own errors into `click.ClickException` (exit 1, one clean line), and warnings into one
    `Warning: ...` line on stderr (Python's own format quotes a source line)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        shown = set()  # each message once per command (the samples are checked early, and again by the run)

        def show(message, category, filename, lineno, file=None, line=None):
            if str(message) not in shown:
                shown.add(str(message))
                click.echo(f"Warning: {message}", err=True)

        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            try:
                return command(*args, **kwargs)
            except EvsimError as err:
                raise click.ClickException(str(err)) from None
    return wrapper


def prepare_output(path, *, folder: bool = False) -> None:
    """Before any work: make sure an output can be written (its folder created, no folder in a file's place),
    so that a run never ends by losing its results."""
    path = Path(path)
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.ClickException(f"{path}: cannot create the folder {where} ({err.strerror or err})") from None
    if not folder and path.is_dir():
        raise click.ClickException(f"{path} is a folder; give a file name")
    if not os.access(where, os.W_OK):
        raise click.ClickException(f"{path}: the folder {where} is not writable")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evsim")
def main():
    """evsim: event-driven simulation of spiking networks converted from trained ANNs."""


def simulation_options(command):
    """The options of `run` and `compare` that say what to simulate, and how, and how to report energy."""
    options = [
        click.option("--timesteps", "-T", type=click.IntRange(1, MAX_TIMESTEPS), default=256, show_default=True,
                     help="Steps to simulate each sample."),
        click.option("--inputs", type=click.Path(exists=True, dir_okay=False),
                     help=".npz or .h5 with `inputs` [n, *shape] and optional `labels` [n] "
                          "(default: the file's /samples)."),
        click.option("--encoder", type=click.Choice([*ENCODERS, *ENCODER_ALIASES]),
                     help="Input encoder (default: the input population's); poisson is bernoulli's other name."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
                     help="Seed of the Bernoulli encoder (per-sample streams)."),
        click.option("--samples", "-n", "n_samples", type=click.IntRange(1), help="Run only the first N samples."),
        click.option("--threads", type=click.IntRange(1, numba.config.NUMBA_NUM_THREADS),
                     help="Worker threads (default: all cores). Results do not depend on it."),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
                     help="Precision of membrane potentials and weights."),
        click.option("--energy", "energy_profile", default=DEFAULT_PROFILE, show_default=True,
                     help=f"Energy profile: one of {', '.join(available_profiles())}, or a .json file "
                          "(docs/metrics.md)."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
        click.option("--dask", "dask_address", metavar="ADDRESS|local:N",
                     help="Run on a Dask cluster: the scheduler's tcp://host:port, or local:N for N local worker "
                          "processes (needs evsim[distributed]; docs/distributed.md)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("file", type=NETWORK_FILE)
@simulation_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the full report as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Write per-step counts as CSV.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False),
              help="Write the whole result (HDF5) here, streaming finished samples as the run goes.")
@click.option("--resume", is_flag=True, help="Finish an interrupted --output run, keeping its finished samples.")
@click.option("--chunk-size", type=click.IntRange(1), default=DEFAULT_CHUNK, show_default=True,
              help="Samples per saved chunk with --output, and per task with --dask.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Draw the run's figures (PNG) into this folder (needs matplotlib; docs/plots.md).")
@domain_errors
def run(file, timesteps, inputs, encoder, seed, n_samples, threads, dtype, json_path, csv_path, energy_profile,
        output, resume, chunk_size, progress, dask_address, plot_dir):
    """Simulate FILE and report accuracy at every step and exact event and operation counts."""
    profile = load_profile(energy_profile)
    if plot_dir:
        require_matplotlib()  # before the run, not after it
    for path in (json_path, csv_path, output):
        if path:
            prepare_output(path)
    if plot_dir:
        prepare_output(plot_dir, folder=True)
    network = read_network(file)
    if not inputs and network.samples is None:
        raise click.UsageError(f"{file} carries no /samples: give --inputs")
    data, labels = load_inputs(inputs) if inputs else (None, None)
    options = RunOptions(timesteps=timesteps, encoder=encoder, seed=seed)
    if resume and not output:
        raise click.UsageError("--resume needs --output")
    with _blaming(inputs or file):
        samples = resolve_samples(network, data, labels, n_samples)
        check_run(network, samples, options)
    try:
        with _cluster(dask_address) as client:
            result = _simulate(network, samples, options, output=output, resume=resume, chunk_size=chunk_size,
                               dtype=dtype, threads=threads, progress=_show_progress(progress), client=client)
    except KeyboardInterrupt as interrupt:
        click.echo(f"\n{interrupt}" if str(interrupt) else "\ninterrupted", err=True)
        sys.exit(130)
    click.echo(format_text(result, profile))
    if json_path:
        write_json(result, json_path, source=str(file), profile=profile)
        click.echo(f"wrote {json_path}")
    if csv_path:
        write_csv(result, csv_path)
        click.echo(f"wrote {csv_path}")
    if output:
        click.echo(f"wrote {output}")
    if plot_dir:
        _write_plots(result, plot_dir, title=Path(file).name)



@contextlib.contextmanager
def _blaming(path):
    """Name the file the samples come from in an error about them."""
    try:
        yield
    except SimulationInputError as err:
        raise EvsimError(f"{path}: {err}") from None


def _steps(ctx, param, value):
    """`--steps 8,64,256` -> [8, 64, 256]."""
    if value is None:
        return None
    try:
        steps = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of steps") from None
    if not steps or steps[0] < 1:
        raise click.BadParameter(f"{value!r}: steps are integers >= 1")
    return steps


def _tolerances(ctx, param, value):
    """`--tolerances 1,0.1,0` (accuracy points) -> (0.01, 0.001, 0.0)."""
    try:
        points = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of accuracy points") from None
    if not points or any(not 0 <= p <= 100 for p in points):
        raise click.BadParameter(f"{value!r}: tolerances are accuracy points in [0, 100]")
    return tuple(p / 100 for p in points)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, readable=True))
@simulation_options
@click.option("--names", help="Comma-separated names of the runs (default: the file names).")
@click.option("--steps", callback=_steps, help="Steps at which to show accuracy, e.g. 8,64,256 "
                                               "(default: 8, 16, 32, ... and T).")
@click.option("--tolerances", default="1,0.1,0", show_default=True, callback=_tolerances,
              help="Accuracy losses (points) of the early-decision latency.")
@click.option("--chunk-size", type=click.IntRange(1), default=DEFAULT_CHUNK, show_default=True,
              help="Samples per task with --dask.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the table as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Write one row per run as CSV.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Draw the runs' figures, overlaid (PNG), into this folder (needs matplotlib; docs/plots.md).")
@domain_errors
def compare(files, timesteps, inputs, encoder, seed, n_samples, threads, dtype, energy_profile, progress, dask_address,
            names, steps, tolerances, chunk_size, json_path, csv_path, plot_dir):
    """Run several conversions of one ANN on the same samples and show them side by side.

    FILES are network files (simulated on the first network file's /samples, or --inputs) or
    results saved by `evsim run -o` (used as they are). Ratios are to the first.
    """
    if len(files) < 2:
        raise click.UsageError("compare needs at least two files")
    names = names.split(",") if names else _default_names(files)
    if len(names) != len(files):
        raise click.UsageError(f"--names gives {len(names)} names for {len(files)} files")
    profile = load_profile(energy_profile)
    if plot_dir:
        require_matplotlib()  # before the runs, not after them
    for path in (json_path, csv_path):
        if path:
            prepare_output(path)
    if plot_dir:
        prepare_output(plot_dir, folder=True)
    data, labels = load_inputs(inputs) if inputs else (None, None)
    runs = [load_result(f) if is_result_file(f) else read_network(f) for f in files]
    given = click.get_current_context().get_parameter_source("timesteps") is not ParameterSource.DEFAULT
    with _cluster(dask_address) as client, _blaming(inputs) if inputs else contextlib.nullcontext():
        results = run_comparison(runs, data, labels, names=[str(f) for f in files], n_samples=n_samples,
                                 timesteps=timesteps if given else None, encoder=encoder, seed=seed, threads=threads,
                                 dtype=dtype, progress=_show_progress(progress), client=client, chunk_size=chunk_size,
                                 report=_tell)
    table = compare_runs(results, names, steps=steps, tolerances=tolerances, profile=profile)
    click.echo(format_comparison(table))
    if json_path:
        write_comparison_json(table, json_path)
        click.echo(f"wrote {json_path}")
    if csv_path:
        write_comparison_csv(table, csv_path)
        click.echo(f"wrote {csv_path}")
    if plot_dir:
        for path in plot_comparison(results, names, plot_dir):
            click.echo(f"wrote {path}")


def _default_names(files) -> list[str]:
    """File names without extension; the whole path where two names would clash."""
    stems = [Path(f).stem for f in files]
    return stems if len(set(stems)) == len(stems) else [str(f) for f in files]


def _tell(line: str) -> None:
    """What the user waits for (the engine compiling, a finished run kept), on stderr."""
    click.echo(line, err=True)


def _cluster(address):
    """A Dask client for `--dask ADDRESS` (closed on exit), or None without the option."""
    if address is None:
        return contextlib.nullcontext()
    from evsim.distributed import connect

    return connect(address)


def _simulate(network, samples, options, *, output, resume, chunk_size, dtype, threads, progress, client):
    """`evsim run`'s run: streamed to OUTPUT, on a cluster (nothing compiles here: the workers do), or here."""
    if output:
        return run_to_file(network, output, samples.inputs, samples.labels, ann_outputs=samples.ann_outputs,
                           resume=resume, chunk_size=chunk_size, dtype=dtype, threads=threads, client=client,
                           progress=progress, report=_tell, **dataclasses.asdict(options))
    if client is not None:
        from evsim.distributed import Job, run_all

        return run_all(client, [Job(network, samples)], options, dtype=dtype, threads=threads, chunk_size=chunk_size,
                       progress=progress)[0]
    return Simulator(network, dtype=dtype, threads=threads, report=_tell).run_options(samples, options, progress=progress)


def _show_progress(progress) -> bool:
    return sys.stderr.isatty() if progress is None else progress


@main.command()
@click.argument("result_file", metavar="RESULT", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the PNG files into (created if missing).")
@click.option("--title", help="Named in every figure's title (default: RESULT's file name).")
@domain_errors
def plot(result_file, out_dir, title):
    """Draw the figures of a run saved with `evsim run -o RESULT` (docs/plots.md)."""
    require_matplotlib()
    _write_plots(load_result(result_file), out_dir, title=title or Path(result_file).name)


def _write_plots(result, out_dir, title):
    for path in plot_result(result, out_dir, title=title):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("file", type=NETWORK_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@domain_errors
def inspect(file, as_json):
    """Validate FILE and describe its populations, projections, sizes and metadata."""
    info = describe_network(read_network(file))
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    click.echo(f"{file}: valid evsim file (producer: {info['producer'] or 'unknown'})")
    click.echo(f"{len(info['populations'])} populations, {info['neurons']:,} neurons; "
               f"{len(info['projections'])} projections, {info['weights']:,} weights; output {info['output']}")
    click.echo("Populations:")
    for name, p in info["populations"].items():
        params = ", ".join(f"{k}={_short(p[k])}" for k in ("theta_pos", "theta_neg", "v_init", "bias", "max_coeff", "v_reset")
                           if p.get(k) is not None)
        params += "".join(f", {k}={p[k]}" for k, default in (("reset", "subtract"), ("fire_when", "ge"))
                          if p.get(k, default) != default)
        extra = p.get("encoding") or f"{p.get('coding')}" + (f" K={p['phase_period']}" if p.get("coding") == PHASE else "")
        click.echo(f"  {p['order']:>2} {name:<14} {p['kind']:<8} {'x'.join(map(str, p['shape'])):<12} {extra:<10} {params}")
    click.echo("Projections:")
    for name, q in info["projections"].items():
        geometry = ", ".join(f"{k}={q[k]}" for k in ("kernel", "stride", "padding", "dilation", "groups") if k in q)
        click.echo(f"  {name:<14} {q['kind']:<9} {q['source']} -> {q['target']}  scale={q['scale']:g}  "
                   f"weights={q['weights']:,}  {geometry}")
    if info["samples"]:
        click.echo(f"Samples: {info['samples']['n']} (labels: {'yes' if info['samples']['labels'] else 'no'})")
    if info["ann"]:
        acc = info["ann"]["accuracy"]
        click.echo(f"ANN: {info['ann']['macs'] or 0:,} MACs per sample, accuracy "
                   f"{'unknown' if acc is None else f'{100 * acc:.2f}%'}")
    readout = info["readout"]
    scale = "none (rates are read as they are)" if readout["output_scale"] is None else _short(readout["output_scale"])
    click.echo(f"Readout: {readout['population']} ({readout['kind']}"
               + (f", mode {readout['mode']}" if readout["mode"] else "") + f"), output_scale {scale}")
    if info["meta"]:
        click.echo("Conversion:")
        for line in _conversion_lines(info["meta"]):
            click.echo(line)


def _conversion_lines(meta: dict) -> list[str]:
    """The conversion metadata's plain entries in full, one per line; the structured ones named (all of it: --json)."""
    plain = {k: v for k, v in meta.items() if not isinstance(v, (dict, list))}
    nested = [k for k in meta if k not in plain]
    lines = [f"  {key}: {value}" for key, value in plain.items()]
    if nested:
        lines.append(f"  (also {', '.join(nested)}: evsim inspect --json shows them)")
    return lines


# -- conversion and NIR --------------------------------------------------------------


def _option_value(text: str):
    """A method option from the command line: an integer, a real, or text (each option's check validates it)."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def method_options(command):
    """One --option per option any method declares (weights_io/methods.py), its help naming the methods and defaults."""
    for name, (meaning, uses) in reversed(list(declared_options().items())):
        flag = "--" + name.replace("_", "-")
        text = f"{meaning}. Methods and defaults: " + "; ".join(f"{method} {default!r}" for method, default in uses) + "."
        if all(isinstance(default, bool) for _, default in uses):
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=text)
        else:
            option = click.option(flag, name, default=None, metavar="VALUE", help=text)
        command = option(command)
    return command


@main.command()
@click.argument("model")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="The evsim file to write.")
@click.option("--method", type=click.Choice(list(METHODS)), default="rate-norm", show_default=True,
              help="Conversion method (docs/export.md).")
@click.option("--calibration", required=True, type=click.Path(exists=True, dir_okay=False),
              help=".npz or .h5 with `inputs` [n, *shape]: what the method measures activations on.")
@click.option("--test-data", type=click.Path(exists=True, dir_okay=False),
              help=".npz or .h5 with `inputs` and `labels`: embedded as the file's /samples, and the ANN's accuracy "
                   "measured on it.")
@click.option("--weights", type=click.Path(dir_okay=False), help="A state dict (torch.save(model.state_dict())) "
              "for MODEL given as module:factory.")
@click.option("--trust-pickle", is_flag=True, help="Load MODEL, a file holding a whole pickled module, by "
              "unpickling it: this runs code from the file.")
@click.option("--input-encoding", type=click.Choice(ENCODERS), help="The input population's default encoder "
              "(default: the method's).")
@click.option("--dataset", default="", help="Free text for /meta: what the data are.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Batch of the ANN passes.")
@method_options
@domain_errors
def convert(model, output, method, calibration, test_data, weights, trust_pickle, input_encoding, dataset, batch_size,
            **options):
    """Convert MODEL, a trained PyTorch model, into an evsim file.

    MODEL is module:factory (a callable returning the nn.Module; the current directory is importable), with
    --weights state_dict.pt, or a file holding a whole pickled module (torch.save(model)) with --trust-pickle.
    The method options below apply to the methods named in their help.
    """
    from evsim.weights_io.export import export_model
    from evsim.weights_io.models import load_model
    from evsim.weights_io.trace import torch_module

    torch = torch_module()
    # One thread, deterministic kernels: float sums in one fixed order, so the same command writes the same file on
    # every machine (as examples/train_mnist_cnn.py does for the bundled example)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    module = load_model(model, weights, trust_pickle)
    calibration_inputs, _ = load_inputs(calibration)
    given = {name: (_option_value(value) if isinstance(value, str) else value) for name, value in options.items()
             if value is not None}
    extra = {}
    if test_data is not None:
        inputs, labels = load_inputs(test_data)
        extra = {"samples": inputs, "labels": labels, "ann_eval": None if labels is None else (inputs, labels)}
    network = export_model(module, output, calibration=calibration_inputs, method=method, input_encoding=input_encoding,
                           dataset=dataset, batch_size=batch_size, **given, **extra)
    accuracy = "" if network.ann is None or network.ann.accuracy is None else f"; ANN accuracy {network.ann.accuracy:.4f}"
    click.echo(f"wrote {output}: {method}, {len(network.populations)} populations, "
               f"{len(network.projections)} projections{accuracy}")


@main.command("import-nir")
@click.argument("graph", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="The evsim file to write.")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="The time step one evsim step stands for (docs/nir.md).")
@domain_errors
def import_nir(graph, output, dt):
    """Read GRAPH, a NIR graph (.nir), and write it as an evsim file (docs/nir.md)."""
    from evsim.weights_io.nir import from_nir

    network = from_nir(graph, output, dt=dt)
    click.echo(f"wrote {output}: {len(network.populations)} populations, {len(network.projections)} projections")


@main.command("export-nir")
@click.argument("file", type=NETWORK_FILE)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="The NIR graph to write (.nir).")
@click.option("--reset-to-zero", is_flag=True, help="Export reset by subtraction as NIR's reset to v_reset = 0: the "
              "receiving tool will reset to zero (evsim's rule is kept in the node's metadata).")
@domain_errors
def export_nir(file, output, reset_to_zero):
    """Write FILE, an evsim network, as a NIR graph (docs/nir.md)."""
    from evsim.weights_io.nir import to_nir

    graph = to_nir(file, output, reset_to_zero=reset_to_zero)
    click.echo(f"wrote {output}: {len(graph.nodes)} NIR nodes, {len(graph.edges)} edges")


def _short(value):
    if isinstance(value, dict):
        return f"[{value['min']:.3g}..{value['max']:.3g}]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
