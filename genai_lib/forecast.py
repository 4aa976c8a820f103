"""Scores of probabilistic multi-step scenarios against what happened (chapter 15).

- :func:`energy_score` (Gneiting & Raftery 2007, eq. 22): for scenarios X_1..X_m of a
  vector outcome y, ES = mean_i ||X_i - y|| - 1/(2 m^2) sum_ij ||X_i - X_j||; a proper score
  (lower is better), which rewards both a right centre and a right spread, jointly over all
  series and steps.
- :func:`interval_coverage`: the fraction of outcomes inside the central ``level`` interval of
  the scenarios, per value; a calibrated 95% interval covers about 95%.
- :func:`marginal_gap`, :func:`correlation_gap`: how far the scenarios' means and standard
  deviations, and the cross-correlations between series, are from the outcomes'.

Shapes: W windows, m scenarios each, H steps, D series: samples (W, m, H, D), outcomes (W, H, D).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["energy_score", "interval_coverage", "marginal_gap", "correlation_gap"]


def _pair(samples: Any, outcomes: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(samples, np.float64), np.asarray(outcomes, np.float64)
    if s.ndim != 4 or y.ndim != 3 or s.shape[0] != y.shape[0] or s.shape[2:] != y.shape[1:]:
        raise ValueError(f"samples must be (W, m, H, D) and outcomes (W, H, D), got {s.shape} and {y.shape}")
    if s.shape[0] == 0 or s.shape[1] < 2:
        raise ValueError(f"need at least one window and two scenarios each, got {s.shape}")
    return s, y


def energy_score(samples: Any, outcomes: Any, *, scale: Any = None) -> float:
    """Mean energy score over windows (each window's H x D values as one vector; lower is better).

    ``scale`` (D,) divides each series first, so that series in different units weigh alike.
    """
    s, y = _pair(samples, outcomes)
    if scale is not None:
        sc = np.asarray(scale, np.float64)
        s, y = s / sc, y / sc
    flat, yy = s.reshape(s.shape[0], s.shape[1], -1), y.reshape(y.shape[0], -1)
    term1 = np.linalg.norm(flat - yy[:, None], axis=-1).mean(1)
    diff = np.linalg.norm(flat[:, :, None] - flat[:, None, :], axis=-1)
    term2 = diff.mean((1, 2)) / 2
    return float((term1 - term2).mean())


def interval_coverage(samples: Any, outcomes: Any, *, level: float = 0.95) -> float:
    """Fraction of outcome values inside the scenarios' central ``level`` interval (per value)."""
    s, y = _pair(samples, outcomes)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], axis=1)
    return float(((y >= lo) & (y <= hi)).mean())


def marginal_gap(samples: Any, outcomes: Any) -> dict[str, float]:
    """Mean absolute gap, over series, between scenario and outcome means and standard deviations
    (in units of the outcomes' standard deviation)."""
    s, y = _pair(samples, outcomes)
    sd = y.reshape(-1, y.shape[-1]).std(0) + 1e-9
    sf, yf = s.reshape(-1, s.shape[-1]), y.reshape(-1, y.shape[-1])
    return {
        "mean": float((np.abs(sf.mean(0) - yf.mean(0)) / sd).mean()),
        "std": float((np.abs(sf.std(0) - yf.std(0)) / sd).mean()),
    }


def correlation_gap(samples: Any, outcomes: Any) -> float:
    """Mean absolute gap between the D x D cross-correlation matrices (off the diagonal) of the
    scenario values and of the outcome values."""
    s, y = _pair(samples, outcomes)
    d = y.shape[-1]
    cs = np.corrcoef(s.reshape(-1, d).T)
    cy = np.corrcoef(y.reshape(-1, d).T)
    off = ~np.eye(d, dtype=bool)
    return float(np.abs(cs - cy)[off].mean())
