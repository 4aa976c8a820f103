"""Small helpers every layer uses: devices, noise, batches, eval mode, seeding, fast mode,
the cache folder, atomic file writes, a lock for filling one cache entry once, and the set-up
call at the top of every notebook.

The library itself never picks a device or seeds global RNGs: :func:`get_device`,
:func:`seed_everything` and :func:`setup_notebook` are what a *notebook* calls once at the top.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "get_device",
    "seed_everything",
    "fast_mode",
    "cache_dir",
    "cache_root",
    "show_source",
    "setup_notebook",
    "model_device",
    "to_device",
    "split_batch",
    "eval_mode",
    "normal_noise",
    "uniform_noise",
    "atomic_write",
    "fill_lock",
]

_TRUE = {"1", "true", "yes", "on"}


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: ``cuda`` if present, else ``cpu``.

    ``prefer`` (or the environment variable ``GENAI_DEVICE``) forces one, e.g. ``"cpu"`` to
    compare speeds on a GPU machine. Asking for CUDA where there is none is an error, not a
    silent fallback.
    """
    name = prefer or os.environ.get("GENAI_DEVICE")
    if name:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError, ValueError) as exc:
            where = "prefer" if prefer else "GENAI_DEVICE"
            raise ValueError(f"{where} must name a device such as 'cpu', 'cuda' or 'cuda:0', got {name!r}") from exc
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


# --------------------------------------------------------------------------- devices, batches, noise


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for an empty module)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, tensors nested in tuples/lists/dicts, or an object with its own ``.to(device)``
    (a graph batch, say) to ``device``; anything else is returned unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if callable(getattr(batch, "to", None)):
        return batch.to(device)
    return batch


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``x`` or ``(x, labels, ...)`` -> ``(x, labels or None)``: how every model reads its batch."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("batch is an empty tuple; expected x or (x, labels)")
        if isinstance(batch[0], torch.Tensor):
            y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
            return batch[0], y
    raise TypeError(f"batch must be a tensor or an (x, labels) tuple of tensors, got {type(batch).__name__}")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block in eval mode (dropout off, batch-norm statistics frozen) and restore the
    model's train/eval mode afterwards, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _noise(draw: Callable[..., torch.Tensor], shape: Sequence[int], generator: Any, device: Any, dtype: Any):
    from genai_lib._checks import check_generator, check_positive, check_size

    check_generator("generator", generator)
    if isinstance(shape, int) or not isinstance(shape, (Sequence, torch.Size)):
        raise TypeError(f"shape must be a tuple of ints such as (B, Z), got {shape!r}")
    for i, s in enumerate(shape):
        check_positive(f"shape[{i}]", s, allow_zero=True)
    check_size(f"noise of shape {tuple(shape)}", math.prod(shape), unit="values")
    device = torch.device(device) if device is not None else torch.device("cpu")
    src = generator.device if generator is not None else device
    return draw(tuple(shape), generator=generator, device=src, dtype=dtype).to(device)


def normal_noise(
    shape: Sequence[int], *, generator: torch.Generator | None = None, device: Any = None, dtype: Any = None
) -> torch.Tensor:
    """N(0, 1) noise of ``shape`` on ``device``, drawn on the generator's device (CPU by default)
    and moved: a seeded generator gives the same numbers on every device."""
    return _noise(torch.randn, shape, generator, device, dtype)


def uniform_noise(
    shape: Sequence[int], *, generator: torch.Generator | None = None, device: Any = None, dtype: Any = None
) -> torch.Tensor:
    """U[0, 1) noise of ``shape`` on ``device``, drawn like :func:`normal_noise`."""
    return _noise(torch.rand, shape, generator, device, dtype)


# --------------------------------------------------------------------------- files


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Write a file so that no reader ever sees half of it: ``write(fh)`` fills a uniquely named
    temporary file in the same folder, which is then renamed over ``path`` (atomic on POSIX and
    Windows). Two processes filling the same path both succeed; the last rename wins, and each
    wrote a complete file. The old file survives any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_HELD: dict[str, int] = {}  # lock files this process holds, with their nesting depth


@contextmanager
def fill_lock(path: str | os.PathLike, *, wait_s: float = 3600.0, poll_s: float = 0.5) -> Iterator[bool]:
    """Hold the lock for *filling* ``path`` (training or computing what it will hold), so that two
    processes that need the same entry at once (two notebooks of a parallel book build) fill it
    once: the second waits, then finds the entry written. Yields whether the lock was taken.

    The lock is ``fcntl.flock`` on the hidden file ``.<name>.lock`` beside ``path``; the kernel
    releases it when its holder exits, however it exits. It is re-entrant within a process. After
    ``wait_s`` seconds of waiting (or where ``fcntl`` does not exist, as on Windows) the caller
    goes on without it: :func:`atomic_write` keeps that safe, at the cost of filling twice.
    """
    if wait_s < 0 or poll_s <= 0:
        raise ValueError(f"wait_s must be >= 0 and poll_s > 0, got {wait_s!r} and {poll_s!r}")
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield False
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = str(path.with_name(f".{path.name}.lock"))
    if _HELD.get(lock):
        _HELD[lock] += 1
        try:
            yield True
        finally:
            _HELD[lock] -= 1
        return
    with open(lock, "a+b") as fh:
        deadline, told, got = time.monotonic() + wait_s, False, False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    msg = f"{path.name}: waited {wait_s:.0f} s for another process; filling it here too"
                    print(msg, file=sys.stderr)
                    break
                if not told:
                    print(f"{path.name}: another process is filling this entry; waiting for it", file=sys.stderr)
                    told = True
                time.sleep(poll_s)
        if not got:
            yield False
            return
        _HELD[lock] = 1
        try:
            yield True
        finally:
            del _HELD[lock]
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- notebooks


def setup_notebook(seed: int = 0, *, quiet: bool = False) -> tuple[bool, torch.Generator, torch.device]:
    """What the first code cell of every chapter does: seed everything, pick the device, make
    each figure show once (as its cell's result, an image with alt text), and say so. Returns
    ``(FAST, generator, device)``.

    ``FAST`` is :func:`fast_mode`; the generator comes from :func:`seed_everything`.
    """
    import matplotlib.pyplot as plt

    from genai_lib.display import install_figure_alt_text

    fast = fast_mode()
    gen = seed_everything(seed)
    device = get_device()
    plt.close(plt.figure())  # start the inline backend now, then turn off automatic drawing:
    plt.ioff()  # each figure is shown once, as the result of its cell
    install_figure_alt_text()  # ... as an <img> with alt text (genai_lib.display)
    if not quiet:
        from genai_lib import __version__

        where = Path(__file__).resolve().parent.parent
        print(
            f"genai_lib {__version__} ({where}); device {device}; fast mode {fast}; seed {seed}; cache {cache_root()}"
        )
    return fast, gen, device
