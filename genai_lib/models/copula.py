"""The Gaussian copula: the classical baseline for synthetic tables (chapter 14).

Sklar's theorem writes any joint distribution as its marginals joined by a copula. The Gaussian
copula (as in the Synthetic Data Vault, Patki et al. 2016) keeps each column's empirical
marginal F_j and joins them by the correlation R of their normal scores:

    fit:     z_ij = Phi^-1( rank_ij / (N + 1) ),   R = corr(z)          (N rows, D columns)
    sample:  z ~ N(0, R),  u_j = Phi(z_j),  x_j = F_j^-1(u_j)           (empirical quantile)

Columns with few distinct values (a 0/1 label) take the step quantile, so they keep their
values; continuous columns interpolate between order statistics. It reproduces every marginal
and every pairwise rank correlation of the training table, and nothing beyond that: no
non-linear or higher-order dependence.

Shape legend: N training rows, D columns, n samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import norm, rankdata

from genai_lib._checks import check_generator, check_positive
from genai_lib.models.tabular_vae import check_table
from genai_lib.utils import normal_noise

__all__ = ["GaussianCopula", "normal_scores"]

DISCRETE_MAX = 10  # a column with at most this many distinct values is sampled by the step quantile


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Phi^-1(rank / (N + 1)) of each column of x (N, D), ties given their average rank."""
    return ndtri(rankdata(x, axis=0) / (x.shape[0] + 1))


class GaussianCopula:
    """Fit on a table (N, D) with :meth:`fit`, then draw rows with :meth:`sample`."""

    def __init__(self) -> None:
        self.sorted_: np.ndarray | None = None  # (N, D) each column sorted
        self.corr_: np.ndarray | None = None  # (D, D) correlation of the normal scores
        self.discrete_: np.ndarray | None = None  # (D,) bool

    def fit(self, x: Any) -> GaussianCopula:
        """Estimate the marginals and the normal-score correlation; returns self."""
        t = check_table("x", x).double().numpy()
        std = t.std(0)
        for j in np.flatnonzero(std <= 1e-12 * np.maximum(1.0, np.abs(t.mean(0)))):
            raise ValueError(f"column {j} is constant (every value {t[0, j]:g}): a copula needs it to vary")
        z = normal_scores(t)
        corr = np.corrcoef(z, rowvar=False).reshape(t.shape[1], t.shape[1])
        self.corr_ = corr + 1e-6 * np.eye(len(corr))  # a tiny ridge keeps the Cholesky factor real
        self.sorted_ = np.sort(t, axis=0)
        self.discrete_ = np.array([len(np.unique(t[:, j])) <= DISCRETE_MAX for j in range(t.shape[1])])
        return self

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n rows (n, D) float32: correlated normals, mapped through each column's empirical quantile."""
        if self.sorted_ is None:
            raise ValueError("GaussianCopula.sample needs fit(x) first")
        check_positive("n", n)
        check_generator("generator", generator)
        d = self.corr_.shape[0]
        eps = normal_noise((n, d), generator=generator, dtype=torch.float64).numpy()
        u = norm.cdf(eps @ np.linalg.cholesky(self.corr_).T)  # (n, D) in (0, 1)
        out = np.empty_like(u)
        for j in range(d):
            method = "inverted_cdf" if self.discrete_[j] else "linear"
            out[:, j] = np.quantile(self.sorted_[:, j], u[:, j], method=method)
        return torch.from_numpy(out).float()
