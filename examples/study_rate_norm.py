"""Worked study: one trained ANN, four rate-coded conversions, side by side.

The bundled CNN (examples/train_mnist_cnn.py, weights in mnist_cnn.pt) is
converted with data-based normalisation at the maximum activation
(Diehl et al. 2015) and at the 99.9th percentile (Rueckauer et al. 2017),
each with v(0) = 0 and with v(0) = theta/2 (the potential-initialization
paper), and the four SNNs are simulated on the same test images and compared:
accuracy at every step, latency to the ANN's accuracy, events, operations and
energy to get there. Tables and plots go to docs/results/rate_norm/.

    pip install -e '.[examples,analysis]'
    python examples/study_rate_norm.py            # 500 images, T = 256: ~3 min on 2 cores
    python examples/study_rate_norm.py --quick    # the reduced setting the tests run
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the training script defines the model and the data split

from train_mnist_cnn import N_SAMPLES, MnistCnn, load_data  # noqa: E402

from evsim.analysis.compare import compare, format_comparison, run_comparison, write_comparison_csv, write_comparison_json  # noqa: E402
from evsim.analysis.plots import plot_comparison  # noqa: E402
from evsim.weights_io import read_network  # noqa: E402
from evsim.weights_io.export import export_model  # noqa: E402

#: name -> (percentile, v_init_fraction); the first is the baseline of every ratio.
VARIANTS = {
    "max, v0=0": (100.0, 0.0),
    "p99.9, v0=0": (99.9, 0.0),
    "max, v0=theta/2": (100.0, 0.5),
    "p99.9, v0=theta/2": (99.9, 0.5),
}
STEPS = (8, 16, 32, 64, 128, 256)


def trained_model(weights: Path) -> MnistCnn:
    model = MnistCnn()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


def export_variants(model, folder: Path, calibration, samples, labels) -> list[Path]:
    paths = []
    for i, (name, (percentile, v_init_fraction)) in enumerate(VARIANTS.items()):
        path = folder / f"variant{i}.h5"
        export_model(model, path, calibration=calibration, samples=samples, labels=labels, percentile=percentile,
                     v_init_fraction=v_init_fraction, meta={"study": name})
        paths.append(path)
    return paths


def run_study(out: Path, *, n_samples: int, timesteps: int, n_calibration: int, threads=None) -> dict:
    """Export, simulate, compare; write table.txt/.json/.csv and the comparison plots to `out`."""
    torch.set_num_threads(1)
    (x_train, _), (x_test, y_test) = load_data()
    model = trained_model(HERE / "mnist_cnn.pt")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        paths = export_variants(model, Path(folder), x_train[:n_calibration], x_test[:n_samples], y_test[:n_samples])
        results = run_comparison([read_network(p) for p in paths], names=[str(p) for p in paths],
                                 timesteps=timesteps, threads=threads)
    names = list(VARIANTS)
    table = compare(results, names, steps=[t for t in STEPS if t <= timesteps])
    (out / "table.txt").write_text(format_comparison(table) + "\n")
    write_comparison_json(table, out / "table.json")
    write_comparison_csv(table, out / "table.csv")
    plot_comparison(results, names, out)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "rate_norm")
    parser.add_argument("--samples", type=int, default=N_SAMPLES)
    parser.add_argument("--timesteps", "-T", type=int, default=256)
    parser.add_argument("--calibration", type=int, default=4000, help="training images for the normalisation")
    parser.add_argument("--quick", action="store_true", help="16 samples, T = 32, 256 calibration images")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.timesteps, args.calibration = 16, 32, 256
    table = run_study(args.out, n_samples=args.samples, timesteps=args.timesteps, n_calibration=args.calibration)
    print(format_comparison(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
