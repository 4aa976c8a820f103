"""Atomic, safe checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written to a
uniquely named temporary file in the same folder, read back with ``weights_only=True`` to prove
it loads, and only then moved into place with ``os.replace``: a crash, a full disk or a value
that ``weights_only`` would refuse (a NumPy scalar, say) never replaces a good file with a bad
one, and two processes writing the same path both succeed. Loading uses
``torch.load(weights_only=True)``, which refuses pickles that would run code.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genai_lib.utils import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "config_dict", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, unsafe, or for another model/config."""


def config_dict(cfg: Any) -> dict[str, Any]:
    """A model config dataclass as a plain dict (what checkpoints store and compare)."""
    if cfg is None:
        return {}
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        out = dataclasses.asdict(cfg)
    elif isinstance(cfg, dict):
        out = dict(cfg)
    else:
        raise TypeError(f"config must be a dataclass instance or a dict, got {type(cfg).__name__}")
    return {k: _plain(v) for k, v in out.items()}


def _plain(v: Any) -> Any:
    """Plain Python data: tuples become lists (a saved-and-loaded config compares equal to a fresh
    one) and NumPy scalars become Python numbers (``weights_only`` loading refuses NumPy types)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _refused(exc: BaseException) -> str:
    """What ``weights_only`` refused, in a learner's words (the class it would have had to import)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    name = found.group(1) if found else None
    if name and name.startswith("numpy"):
        return (
            f"NumPy values ({name}; e.g. np.float64 numbers or arrays), which weights_only loading refuses: "
            "store Python numbers (float(x), int(x)) or tensors (torch.as_tensor(a)) instead"
        )
    if name:
        return f"an object of class {name}, which could run code when unpickled"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"objects other than tensors and plain data, which could run code when unpickled ({first[:160]})"


def _check_device(map_location: Any) -> None:
    if callable(map_location) or isinstance(map_location, dict):
        return
    try:
        torch.device(map_location)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda', got {map_location!r}") from exc


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically; the old file survives any failure."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")

    def write(fh: Any) -> None:
        torch.save(state, fh)
        fh.flush()
        fh.seek(0)
        try:  # prove the file loads the way load_checkpoint will load it, before it replaces anything
            torch.load(fh, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise TypeError(
                f"the checkpoint holds {_refused(exc)}; torch.load(weights_only=True) allows only tensors, "
                "numbers, strings, lists, tuples and dicts, so nothing was written"
            ) from exc
        fh.seek(0, os.SEEK_END)

    return atomic_write(path, write)


def load_checkpoint(
    path: str | os.PathLike, *, expect_config: Any = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` (a ``ValueError``) if the file is missing, truncated or
    corrupt, would need to execute code to load, or (with ``expect_config``) was saved for a
    different model configuration.
    """
    _check_device(map_location)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its index sits at the end
        raise CheckpointError(f"{path} is corrupt or truncated: it is not a complete torch checkpoint archive")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refused to load {path} (with weights_only=True): it holds {_refused(exc)}") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, ImportError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be loaded: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dict (got {type(state).__name__})")
    if expect_config is not None:
        want, got = config_dict(expect_config), state.get("config")
        if got != want:
            diff = sorted(k for k in set(want) | set(got or {}) if (got or {}).get(k) != want.get(k))
            raise CheckpointError(
                f"{path} was saved for a different configuration (fields that differ: {diff}); "
                f"expected {want}, found {got}"
            )
    return state
