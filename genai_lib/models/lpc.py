"""Linear prediction (LPC) as a probabilistic baseline for waveforms, scored in bits per sample.

Chapter 12 of the course. The classic speech coder's model (Atal & Hanauer 1971; Makhoul 1975):
predict each sample from the p before it,

    x_t = sum_{k=1..p} a_k x_{t-k} + e_t,    e_t ~ N(0, sigma^2)  (or Laplace(0, b))

with a fitted by least squares on training audio and sigma (b) from the residuals. To compare it
with WaveNet on the same footing, the density is turned into a distribution over the same 256
mu-law classes: class q gets the probability mass of its waveform interval
[edges[q], edges[q+1]) (``genai_lib.models.wavenet.mu_law_bin_edges``), mixed with a tiny
uniform floor so that no class has probability 0. Both models then report the cross-entropy of
the same class ids, in bits per sample.

Shape legend: N samples, p order, Q classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genai_lib._checks import check_positive, check_tensor, plain_fields
from genai_lib.models.wavenet import MU, mu_law_bin_edges, mu_law_decode

__all__ = ["LPCConfig", "LinearPredictor"]

NOISES = ("gaussian", "laplace")


@dataclass(frozen=True)
class LPCConfig:
    """Hyper-parameters of a :class:`LinearPredictor`."""

    order: int = 32  # p: past samples in the prediction
    noise: str = "laplace"  # residual density: "gaussian" or "laplace"
    floor: float = 1e-5  # weight of the uniform mixture that keeps every class possible

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("order", self.order)
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
        if not 0 < self.floor < 1:
            raise ValueError(f"floor must be in (0, 1), got {self.floor!r}")


class LinearPredictor:
    """Least-squares linear prediction with a fitted residual density. ``fit(q)`` then ``bits(q)``."""

    def __init__(self, cfg: LPCConfig) -> None:
        if not isinstance(cfg, LPCConfig):
            raise TypeError(f"LinearPredictor needs an LPCConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.coef: torch.Tensor | None = None  # (p,): a_1..a_p
        self.scale = 1.0

    def _lags(self, x: torch.Tensor) -> torch.Tensor:
        """x (W, T) -> the p previous samples of each position t >= p: (W, T - p, p), most recent first."""
        p = self.cfg.order
        cols = x.unfold(1, p, 1)[:, :-1]  # (W, T-p, p): x[t-p..t-1]
        return cols.flip(-1)

    def _values(self, q: torch.Tensor) -> torch.Tensor:
        if not isinstance(q, torch.Tensor) or q.dtype != torch.long or q.dim() not in (1, 2):
            raise TypeError("q must be a (N,) or (W, T) long tensor of mu-law class ids")
        if q.shape[-1] <= self.cfg.order:
            raise ValueError(f"q needs more than order={self.cfg.order} samples, got {q.shape[-1]}")
        return mu_law_decode(q.reshape(-1, q.shape[-1]), MU).double()

    def fit(self, q: torch.Tensor) -> LinearPredictor:
        """Fit a (least squares) and the residual scale on class ids q (N,) or (W, T)."""
        x = self._values(q)
        A = self._lags(x).reshape(-1, self.cfg.order)  # (M, p)
        y = x[:, self.cfg.order :].reshape(-1)  # (M,)
        ridge = 1e-6 * torch.eye(self.cfg.order, dtype=torch.float64)  # keeps silent stretches solvable
        self.coef = torch.linalg.solve(A.T @ A + ridge * len(y), A.T @ y)
        r = y - A @ self.coef
        self.scale = float(r.abs().mean()) if self.cfg.noise == "laplace" else float(r.pow(2).mean().sqrt())
        self.scale = max(self.scale, 1e-6)
        return self

    def predict(self, q: torch.Tensor) -> torch.Tensor:
        """The predicted waveform value of every position t >= p: (W, T - p) float64."""
        if self.coef is None:
            raise RuntimeError("call fit(...) before predict")
        return self._lags(self._values(q)) @ self.coef

    def _cdf(self, z: torch.Tensor) -> torch.Tensor:
        if self.cfg.noise == "gaussian":
            return 0.5 * (1 + torch.erf(z / math.sqrt(2)))
        return torch.where(z < 0, 0.5 * torch.exp(z.clamp(max=0)), 1 - 0.5 * torch.exp(-z.clamp(min=0)))

    def log_probs(self, q: torch.Tensor) -> torch.Tensor:
        """Natural-log probability of each class id at t >= p given the p before: (W, T - p)."""
        check_tensor("q", q)
        pred = self.predict(q)  # (W, T-p)
        target = q.reshape(-1, q.shape[-1])[:, self.cfg.order :]
        edges = mu_law_bin_edges(MU)
        lo, hi = edges[target], edges[target + 1]
        lo = torch.where(target == 0, torch.full_like(lo, -math.inf), lo)  # the end classes take the tails
        hi = torch.where(target == MU, torch.full_like(hi, math.inf), hi)
        mass = self._cdf((hi - pred) / self.scale) - self._cdf((lo - pred) / self.scale)
        f = self.cfg.floor
        return torch.log((1 - f) * mass.clamp(min=0) + f / (MU + 1))

    def bits(self, q: torch.Tensor, skip: int = 0) -> float:
        """Mean bits per sample of the class ids q, over positions t >= max(p, skip)."""
        lp = self.log_probs(q)[:, max(0, skip - self.cfg.order) :]
        return float(-lp.mean()) / math.log(2)
