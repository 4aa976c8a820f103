"""Small helpers every chapter uses: device choice, seeding, fast mode, the cache folder.

The library itself never picks a device or seeds global RNGs; these helpers are what a
*notebook* calls once at the top, explicitly.
"""

from __future__ import annotations

import inspect
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "fast_mode", "cache_dir", "show_source"]

_TRUE = {"1", "true", "yes", "on"}


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: ``cuda`` if present, else ``cpu``.

    ``prefer`` (or the environment variable ``GENAI_DEVICE``) forces one, e.g. ``"cpu"`` to
    compare speeds on a GPU machine. Asking for CUDA where there is none is an error, not a
    silent fallback.
    """
    name = prefer or os.environ.get("GENAI_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was requested but CUDA is not available here")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh ``torch.Generator``.

    Weight initialisation draws from torch's global RNG, so a notebook calls this once at the
    top to make its pictures reproducible; the returned generator is what it passes to
    loaders and ``sample(..., generator=...)``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fast_mode() -> bool:
    """True when ``GENAI_FAST`` is set to 1/true/yes: tiny data and few steps (tests, CI)."""
    return os.environ.get("GENAI_FAST", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """Folder for cached datasets and trained weights (created on first use).

    ``GENAI_CACHE_DIR`` overrides the default ``~/.cache/genai_lib``. Fast-mode artefacts go to
    a ``fast`` subfolder so they never mix with the full-quality ones.
    """
    path = cache_root() / "fast" if fast_mode() else cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_root() -> Path:
    """The cache folder shared by both modes (datasets): ``GENAI_CACHE_DIR`` or the default."""
    root = os.environ.get("GENAI_CACHE_DIR")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "genai_lib"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Source:
    """Source code that renders highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text}\n```"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<source of {self.name}: {len(self.text.splitlines())} lines>"


def show_source(obj: Any) -> _Source:
    """The source of a library function or class, for a notebook to display instead of retyping."""
    try:
        text = inspect.getsource(obj)
    except (TypeError, OSError) as exc:
        raise TypeError(f"show_source needs a Python function, class or module, got {obj!r}") from exc
    return _Source(getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj))), text.rstrip())
