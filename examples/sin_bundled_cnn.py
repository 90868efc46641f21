"""Spikes of inactivated neurons (SIN, BSNN III-C) of the bundled CNN under rate, phase and BSNN conversion.

The bundled ANN (examples/mnist_cnn.pt) is converted three ways with evsim's
exporter defaults (rate-norm, phase, bsnn), each network is simulated on the
same test images with the ANN's activations given at run time
(`evsim.weights_io.ann_signs`, computed batch by batch), and the SIN counts
are printed per hidden population: events of neurons whose ANN activation is
<= 0, their share of the population's events, and the value they carry
(sum of |c * S_k|), over the whole run and over its first periods.

    pip install -e '.[examples,analysis]'
    python examples/sin_bundled_cnn.py                # 200 images, T = 256: ~1 min on 2 cores
    python examples/sin_bundled_cnn.py --quick        # 16 images, T = 32 (what the tests run)
    python examples/sin_bundled_cnn.py --plot figures/  # also the overlaid SIN figure (sin.png)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the training script defines the model and the data split

from train_mnist_cnn import MnistCnn, load_data  # noqa: E402

from evsim.counters import EVENTS, SIN_EVENTS, SIN_VALUE  # noqa: E402
from evsim.simulate import Simulator  # noqa: E402
from evsim.weights_io import ann_signs  # noqa: E402
from evsim.weights_io.export import convert_model  # noqa: E402

METHODS = ("rate-norm", "phase", "bsnn")


def trained_model() -> MnistCnn:
    model = MnistCnn()
    model.load_state_dict(torch.load(HERE / "mnist_cnn.pt", weights_only=True))
    return model.eval()


def sin_table(n_samples: int, timesteps: int, n_calibration: int = 1000, plot_dir=None) -> list[dict]:
    """One row per (method, hidden population): events, SIN events and value per sample, SIN share."""
    torch.set_num_threads(1)
    (x_train, _), (x_test, y_test) = load_data()
    model = trained_model()
    rows, results = [], []
    for method in METHODS:
        network = convert_model(model, method=method, calibration=x_train[:n_calibration])
        result = Simulator(network).run(x_test[:n_samples], y_test[:n_samples], timesteps=timesteps,
                                        ann_signs=ann_signs(model, network))
        results.append(result)
        for name in result.sin_populations:
            p = result.populations.index(name)
            events = result.pop_counts_per_sample[:, p, EVENTS].mean()
            sin = result.pop_counts_per_sample[:, p, SIN_EVENTS].mean()
            rows.append({"method": method, "population": name, "events": float(events), "sin_events": float(sin),
                         "sin_share": float(sin / events) if events else 0.0,
                         "sin_value": float(result.pop_values_per_sample[:, p, SIN_VALUE].mean()),
                         "accuracy_at_T": float(result.accuracy()[-1])})
    if plot_dir is not None:
        from evsim.analysis.plots import plot_comparison

        plot_comparison(results, list(METHODS), plot_dir)
    return rows


def format_rows(rows: list[dict], n_samples: int, timesteps: int) -> str:
    lines = [f"Spikes of inactivated neurons, bundled CNN, {n_samples} test images, T = {timesteps} "
             "(per sample, whole run)",
             f"{'method':<10} {'population':<10} {'events':>10} {'SIN events':>11} {'SIN share':>9} "
             f"{'SIN value':>10} {'accuracy':>8}"]
    for r in rows:
        lines.append(f"{r['method']:<10} {r['population']:<10} {r['events']:>10,.1f} {r['sin_events']:>11,.1f} "
                     f"{100 * r['sin_share']:>8.2f}% {r['sin_value']:>10,.3f} {100 * r['accuracy_at_T']:>7.2f}%")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 images, T = 32")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--plot", help="write the overlaid SIN figure (and the others) into this folder")
    args = parser.parse_args(argv)
    n, T = (16, 32) if args.quick else (args.samples, args.timesteps)
    rows = sin_table(n, T, n_calibration=200 if args.quick else 1000, plot_dir=args.plot)
    print(format_rows(rows, n, T))


if __name__ == "__main__":
    main()
