"""Input validation shared by the library: clear errors that say what was expected.

Besides the checks, two helpers every config dataclass calls in ``__post_init__``:
:func:`plain_fields` turns NumPy scalars and 0-d tensors into plain Python numbers (so a config
saved in a checkpoint loads with ``weights_only=True``), and :func:`check_size` refuses sizes
whose memory no machine has, before they reach an allocator that would kill the interpreter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

MAX_ELEMENTS = 2**31  # the most parameters (or tensor elements) a config or call may ask for
MAX_BYTES = 16 * 2**30  # ... and the most memory (16 GiB)


def check_positive(name: str, value: Any, *, integer: bool = True, allow_zero: bool = False) -> None:
    """Raise TypeError/ValueError unless ``value`` is a positive (or non-negative) number."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        hint = f"; use {'int' if integer else 'float'}(...)" if isinstance(value, (np.generic, torch.Tensor)) else ""
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} ({value!r}){hint}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:  # noqa: PLR0124 (NaN)
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def check_probability(name: str, value: Any, *, open_low: bool = False, open_high: bool = False) -> None:
    """Raise unless ``value`` is a float in [0, 1] (ends open as asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (low_ok and high_ok):
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise ValueError(f"{name} must be in {lo}0, 1{hi}, got {value!r}")


def check_tensor(
    name: str,
    x: Any,
    *,
    shape: Sequence[int | None] | None = None,
    floating: bool | None = None,
    finite: bool = False,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Validate a tensor argument. ``None`` in ``shape`` matches any size (e.g. the batch).

    Returns the tensor so it can be used inline.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=False)):
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if floating is False and x.is_floating_point():
        raise TypeError(f"{name} must be an integer tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if value_range is not None and x.is_floating_point():
        lo, hi = value_range
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo or xmax > hi:
            raise ValueError(f"{name} must lie in [{lo}, {hi}], got values in [{xmin:.3g}, {xmax:.3g}]")
    return x


def check_images(name: str, x: Any, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images batch (B, C, H, W) of the given (C, H, W), float, finite, in [0, 1]."""
    return check_tensor(name, x, shape=(None, *shape), floating=True, finite=True, value_range=(0.0, 1.0))


def check_generator(name: str, generator: Any, device: Any = None) -> None:
    """``None`` or a ``torch.Generator`` (on ``device``'s type when given)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
            f"got {type(generator).__name__}"
        )
    if device is not None and torch.device(device).type not in ("cpu", generator.device.type):
        raise ValueError(f"{name} lives on {generator.device}, but the draw is on {device}; use a CPU generator")


def check_finite_number(name: str, value: Any, *, positive: bool = False, allow_zero: bool = True) -> float:
    """A real number (not bool), finite; optionally > 0 (or >= 0). Returns it as a Python float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124 (NaN)
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad:
        return value.item()
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return type(value)(items) if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def plain_fields(cfg: Any) -> None:
    """Replace NumPy scalars and 0-d tensors in a (frozen) config dataclass by Python numbers.

    ``VAEConfig(beta=np.float64(0.5))`` would pass validation (np.float64 subclasses float) and
    then be refused by ``torch.load(weights_only=True)`` in every checkpoint that stores it;
    ``VAEConfig(z_dim=np.int64(8))`` would be refused as not an int. Each config calls this first.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        plain = _plain(value)
        if plain is not value:
            object.__setattr__(cfg, f.name, plain)


def check_size(what: str, count: int, *, bytes_each: int = 4, unit: str = "parameters") -> None:
    """Refuse ``count`` elements of ``bytes_each`` bytes beyond :data:`MAX_ELEMENTS` or :data:`MAX_BYTES`.

    An absurd width or vocabulary (10^9 latents, a 2^40 vocabulary) then fails with the memory it
    would need instead of dying in the allocator (or aborting the interpreter in native code).
    """
    count = int(count)
    need = count * bytes_each
    if count > MAX_ELEMENTS or need > MAX_BYTES:
        raise ValueError(
            f"{what} would need {count:,} {unit} (about {_gib(need)} of memory); the library allows at most "
            f"{MAX_ELEMENTS:,} {unit} and {_gib(MAX_BYTES)}: choose smaller sizes"
        )


def _gib(n: float) -> str:
    gib = n / 2**30
    return f"{gib:,.0f} GiB" if gib >= 100 else f"{gib:.3g} GiB"


def check_class_ids(name: str, y: Any, n_classes: int, n: int | None = None) -> torch.Tensor:
    """Class labels (n,) in [0, n_classes), as int64: uint8/int16/int32 ids are converted (the
    obvious intent); floats, bools and out-of-range ids are refused (one host sync)."""
    check_tensor(name, y, shape=(n,), floating=False)
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must be an integer tensor of class ids, got dtype {y.dtype}")
    lo, hi = (int(v) for v in torch.aminmax(y))
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name} must lie in [0, {n_classes}), got values in [{lo}, {hi}]")
    return y if y.dtype == torch.long else y.long()


def check_finite_tensor(name: str, x: torch.Tensor) -> torch.Tensor:
    """A floating tensor with no NaN or inf (one host sync); returns it."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ValueError(f"{name} contains {bad} values; it must be finite")
    return x


def as_dtype_of(name: str, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A floating tensor cast to the dtype and device of ``like`` (a model's weights): float64 or
    half-precision images/latents given to a float32 model are converted, the obvious intent."""
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x.to(device=like.device, dtype=like.dtype)
