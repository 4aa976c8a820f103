"""Data for chapter 15 (industry and finance): defective parts, a degradation simulator, macro windows.

- :func:`add_defects`: synthetic, seeded defects on digit images ("parts"): a *scratch* (a thin
  bright line across the part), a *blot* (a filled disc of ink) or a *missing stroke* (a square
  of the inked region erased).
- :func:`simulate_degradation`: a documented run-to-failure simulator. Unit ``i`` runs for
  ``life_i ~ U(200, 300)`` cycles; wear starts at ``onset_i = life_i - d_i`` with
  ``d_i ~ U(40, 90)`` and grows as ``f(t) = ((t - onset) / d)^2`` to 1 at failure. Four sensors
  are observed each cycle (``load`` is the operating condition, a slow random walk, the others
  respond to it and to the wear):

      temperature = 0.5 sin(2 pi t / 50 + phase) + 0.6 load + 1.0 f + N(0, 0.1^2)
      pressure    = 0.4 load - 0.8 f + N(0, 0.1^2)
      vibration   = (0.2 + 0.8 f) N(0, 1)
      load        = random walk, step N(0, 0.05^2), clipped to [-1, 1]

- :func:`macro_series` and :func:`scenario_windows`: four quarterly US series from statsmodels'
  ``macrodata`` (1959Q1-2009Q3; shipped with statsmodels): real-GDP growth (annualised, % per
  year, ``400 * diff(log realgdp)``), inflation (``infl``), unemployment (``unemp``) and the 3-month
  T-bill rate (``tbilrate``). Windows pair ``context`` past quarters with the next ``horizon``
  quarters; a training window's targets all end before the test period starts, so nothing of
  the test period is seen in training.

Shapes: B images (B, 1, 28, 28) in [0, 1]; U units, T cycles, C = 4 sensors; N quarters, D = 4
series, W windows, Tc context, H horizon.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_generator, check_positive, check_tensor

__all__ = [
    "DEFECTS",
    "add_defects",
    "SENSORS",
    "simulate_degradation",
    "MACRO_SERIES",
    "macro_series",
    "scenario_windows",
]

DEFECTS = ("scratch", "blot", "missing")
SENSORS = ("temperature", "pressure", "vibration", "load")
MACRO_SERIES = ("gdp_growth", "inflation", "unemployment", "tbill")


def _uniform(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def add_defects(x: torch.Tensor, kind: str, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A defective copy of each image: (B, 1, 28, 28) in [0, 1] -> same shape, one defect each."""
    x = check_tensor("x", x, shape=(None, 1, 28, 28), floating=True)
    if kind not in DEFECTS:
        raise ValueError(f"kind must be one of {DEFECTS}, got {kind!r}")
    check_generator("generator", generator)
    x = x.detach().cpu().float().clone()
    b = x.shape[0]
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")  # (28, 28)
    u = _uniform(generator, b, 4)
    if kind == "scratch":  # the line through (r0, c0) at angle a, 1 pixel wide
        r0, c0, a = 6 + 16 * u[:, 0], 6 + 16 * u[:, 1], math.pi * u[:, 2]
        dist = (rows - r0[:, None, None]) * torch.cos(a)[:, None, None] - (cols - c0[:, None, None]) * torch.sin(a)[
            :, None, None
        ]
        x[:, 0] = torch.maximum(x[:, 0], (dist.abs() < 0.6).float())
    elif kind == "blot":  # a disc of radius 2.5-4 somewhere on the part
        r0, c0, rad = 7 + 14 * u[:, 0], 7 + 14 * u[:, 1], 2.5 + 1.5 * u[:, 2]
        d2 = (rows - r0[:, None, None]) ** 2 + (cols - c0[:, None, None]) ** 2
        x[:, 0] = torch.maximum(x[:, 0], (d2 <= rad[:, None, None] ** 2).float())
    else:  # missing stroke: erase a 7x7 square centred on an inked pixel
        for i in range(b):
            ink = torch.nonzero(x[i, 0] > 0.5)
            if len(ink) == 0:
                continue
            r, c = ink[int(u[i, 3] * len(ink)) % len(ink)].tolist()
            x[i, 0, max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = 0.0
    return x


def simulate_degradation(n_units: int, *, seed: int = 0) -> dict[str, Any]:
    """Run ``n_units`` machines to failure (see the module docstring for the equations).

    Returns ``signals`` (a list of (T_i, 4) float32 arrays, one per unit, T_i = its life),
    ``life`` (cycles to failure), ``onset`` (first cycle of wear) and ``sensors`` (column names).
    """
    check_positive("n_units", n_units)
    if n_units > 10_000:
        raise ValueError(f"n_units must be <= 10000, got {n_units}")
    check_positive("seed", seed, allow_zero=True)
    rng = np.random.default_rng(seed)
    signals, lives, onsets = [], [], []
    for _ in range(n_units):
        life = int(rng.integers(200, 301))
        d = int(rng.integers(40, 91))
        onset = life - d
        t = np.arange(life)
        f = np.clip((t - onset) / d, 0, None) ** 2
        load = np.clip(np.cumsum(rng.normal(0, 0.05, life)), -1, 1)
        phase = rng.uniform(0, 2 * math.pi)
        temp = 0.5 * np.sin(2 * math.pi * t / 50 + phase) + 0.6 * load + f + rng.normal(0, 0.1, life)
        pres = 0.4 * load - 0.8 * f + rng.normal(0, 0.1, life)
        vib = (0.2 + 0.8 * f) * rng.normal(0, 1, life)
        signals.append(np.stack([temp, pres, vib, load], 1).astype(np.float32))
        lives.append(life)
        onsets.append(onset)
    return {"signals": signals, "life": np.array(lives), "onset": np.array(onsets), "sensors": SENSORS}


def macro_series() -> dict[str, Any]:
    """The four quarterly series (N = 202 quarters, 1959Q2-2009Q3) as a (N, 4) float32 array.

    Returns ``values`` (N, 4), ``dates`` (N floats, year + (quarter - 1) / 4) and ``names``.
    """
    from statsmodels.datasets import macrodata

    d = macrodata.load_pandas().data
    gdp = 400 * np.diff(np.log(d["realgdp"].to_numpy()))  # % per year
    cols = [gdp, d["infl"].to_numpy()[1:], d["unemp"].to_numpy()[1:], d["tbilrate"].to_numpy()[1:]]
    dates = (d["year"] + (d["quarter"] - 1) / 4).to_numpy()[1:]
    return {"values": np.stack(cols, 1).astype(np.float32), "dates": dates, "names": MACRO_SERIES}


def scenario_windows(values: Any, *, context: int, horizon: int, test_start: int) -> dict[str, np.ndarray]:
    """(context, horizon) windows of a (N, D) series, split at row ``test_start`` without leaks.

    Training windows: every start ``s`` whose targets ``s + context .. s + context + horizon - 1``
    all lie before ``test_start``. Test windows: every start whose first target is at or after
    ``test_start`` (their context may reach back before it: that past is known when forecasting).
    Returns ``train_ctx`` (W, Tc, D), ``train_y`` (W, H, D), ``test_ctx``, ``test_y`` and the
    first target row of each window (``train_t``, ``test_t``).
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"values must be a non-empty (N, D) array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    check_positive("context", context)
    check_positive("horizon", horizon)
    n = v.shape[0]
    if context + horizon > n:
        raise ValueError(f"a window of context + horizon = {context + horizon} is longer than the series ({n} rows)")
    if isinstance(test_start, bool) or not isinstance(test_start, int) or not context + horizon <= test_start < n:
        raise ValueError(f"test_start must be an int in [{context + horizon}, {n - 1}], got {test_start!r}")
    starts = np.arange(n - context - horizon + 1)
    first_target = starts + context
    train = starts[first_target + horizon <= test_start]
    test = starts[first_target >= test_start]

    def cut(ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ctx = np.stack([v[s : s + context] for s in ss]) if len(ss) else np.zeros((0, context, v.shape[1]), np.float32)
        y = (
            np.stack([v[s + context : s + context + horizon] for s in ss])
            if len(ss)
            else np.zeros((0, horizon, v.shape[1]), np.float32)
        )
        return ctx, y

    (tc, ty), (sc, sy) = cut(train), cut(test)
    return {"train_ctx": tc, "train_y": ty, "train_t": train + context, "test_ctx": sc, "test_y": sy,
            "test_t": test + context}  # fmt: skip
