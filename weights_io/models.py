"""Loading the trained PyTorch model `evsim convert` converts (docs/export.md, "From the command line").

MODEL is either `module:factory` (an importable callable returning the
`nn.Module`; the current directory is importable), whose weights come from
a state dict (`weights`), or a file holding a whole pickled module
(`torch.save(model)`), loaded only with `trust_pickle`: unpickling runs code
from the file. A TorchScript file is refused: torch.fx, which the exporter
traces with, cannot trace a ScriptModule.
"""
from __future__ import annotations

import importlib
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from evsim.errors import ExportError
from evsim.weights_io.trace import torch_module


def load_model(spec: str, weights: Optional[str] = None, trust_pickle: bool = False):
    """The `nn.Module` that `spec` names (see the module docstring), in eval mode."""
    torch = torch_module()
    with _cwd_importable():
        if ":" in spec and not Path(spec).exists():
            model = _from_factory(spec)
            if weights is not None:
                _load_weights(model, Path(weights), torch)
        else:
            if weights is not None:
                raise ExportError(f"--weights goes with MODEL as module:factory; {spec} is a file holding a whole model")
            model = _from_pickle(Path(spec), trust_pickle, torch)
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{spec} gives a {type(model).__name__}, not a torch.nn.Module")
    if isinstance(model, torch.jit.ScriptModule):
        raise ExportError(f"{spec} is a TorchScript module, which torch.fx cannot trace; give the Python module "
                          "(module:factory with --weights)")
    return model.eval()


@contextmanager
def _cwd_importable():
    """The current directory on sys.path while the model loads (as `python -m` has it): a factory's module, or the
    classes a pickled module names, may live there."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def _from_factory(spec: str):
    module_name, _, factory_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises on import
        raise ExportError(f"cannot import module {module_name!r} of MODEL {spec} ({type(exc).__name__}: {exc})") from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ExportError(f"module {module_name!r} has no callable {factory_name!r} (MODEL {spec})")
    try:
        return factory()
    except Exception as exc:
        raise ExportError(f"{spec}() failed ({type(exc).__name__}: {exc})") from exc


def _load_weights(model, path: Path, torch) -> None:
    if not path.exists():
        raise ExportError(f"{path}: no such weights file")
    if _is_torchscript(path):
        raise ExportError(f"{path} is a TorchScript file, not a state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except Exception as exc:
        raise ExportError(f"{path}: not a state dict torch.load reads without unpickling code ({exc})") from exc
    if not isinstance(state, dict):
        raise ExportError(f"{path} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except Exception as exc:  # missing or unexpected keys, shape mismatches
        raise ExportError(f"{path} does not fit the model {type(model).__name__}: {exc}") from exc


def _from_pickle(path: Path, trust_pickle: bool, torch):
    if not path.exists():
        raise ExportError(f"{path}: no such file, and not module:factory")
    if _is_torchscript(path):
        raise ExportError(f"{path} is a TorchScript file, which torch.fx cannot trace; give the Python module "
                          "(module:factory with --weights)")
    if not trust_pickle:
        raise ExportError(f"{path} would be loaded by unpickling, which runs code from the file; pass --trust-pickle "
                          "if you trust it, or give module:factory with --weights state_dict.pt")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ExportError(f"{path}: torch.load failed ({type(exc).__name__}: {exc})") from exc
    if isinstance(model, dict):
        raise ExportError(f"{path} is a state dict, not a whole model: give module:factory with --weights {path}")
    return model


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold the module's code (`<name>/code/...`); torch.save archives do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())
