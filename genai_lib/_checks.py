"""Input validation shared by the library: clear errors that say what was expected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def check_positive(name: str, value: Any, *, integer: bool = True, allow_zero: bool = False) -> None:
    """Raise TypeError/ValueError unless ``value`` is a positive (or non-negative) number."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} ({value!r})")
    if value < 0 or (value == 0 and not allow_zero) or value != value:  # noqa: PLR0124 (NaN)
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


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
