"""Anomaly scores and their evaluation, for chapter 15 (quality control, predictive maintenance).

- :func:`vae_scores`: a trained VAE's per-image anomaly scores: the reconstruction error of the
  posterior mean (squared pixel error) and the negative ELBO (nats; the VAE's own bound on
  -log p(x), Kingma & Welling 2014), both higher for stranger parts.
- :func:`pca_scores`: the classical baseline, the squared error of reconstructing each image
  from its projection on the top ``k`` principal components of the good parts.
- :func:`one_class_scores`: a one-class SVM (Schoelkopf et al. 2001) fitted on the good parts.
- :func:`roc_auc`: the probability that a random defective part scores above a random good one.
- :func:`threshold_costs`: false alarms and misses at each threshold, priced.
- :func:`first_alarm`, :func:`lead_times`: predictive maintenance: the first cycle at which a
  smoothed score crosses the threshold, and how many cycles before failure that was.

Shapes: N images (N, 1, 28, 28) in [0, 1]; scores (N,).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive, check_tensor
from genai_lib.models.vae import VAE
from genai_lib.privacy_attacks import auc

__all__ = [
    "vae_scores",
    "fit_pca",
    "pca_scores",
    "fit_one_class",
    "one_class_scores",
    "roc_auc",
    "threshold_costs",
    "smooth",
    "first_alarm",
    "lead_times",
]


@torch.no_grad()
def vae_scores(model: VAE, x: torch.Tensor, *, generator: torch.Generator | None = None, batch: int = 500):
    """(reconstruction squared error (N,), negative ELBO (N,)) of images x under a trained VAE."""
    x = check_tensor("x", x, shape=(None, 1, 28, 28), floating=True)
    model.eval()
    errs, nelbo = [], []
    dev = next(model.parameters()).device
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(dev)
        errs.append((model.reconstruct(xb) - xb.cpu()).pow(2).flatten(1).sum(1))
        recon, kl = model.elbo_terms(xb, generator=generator)
        nelbo.append((recon + kl).cpu())
    return torch.cat(errs).numpy(), torch.cat(nelbo).numpy()


def _flat(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...), got shape {a.shape}")
    return a.reshape(len(a), -1)


def fit_pca(good: Any, *, k: int = 16) -> Callable[[Any], np.ndarray]:
    """The PCA detector of ``good``: a function x -> squared error of reconstructing x from its
    projection on the top-``k`` principal components of ``good`` (N,)."""
    g = _flat("good", good)
    check_positive("k", k)
    if k >= min(g.shape):
        raise ValueError(f"k must be < min(N, D) = {min(g.shape)}, got {k}")
    mean = g.mean(0)
    _, _, vt = np.linalg.svd(g - mean, full_matrices=False)
    basis = vt[:k]  # (k, D)

    def score(x: Any) -> np.ndarray:
        xx = _flat("x", x)
        if xx.shape[1] != g.shape[1]:
            raise ValueError(f"x has {xx.shape[1]} features, good has {g.shape[1]}")
        centred = xx - mean
        return ((centred - centred @ basis.T @ basis) ** 2).sum(1)

    return score


def pca_scores(good: Any, x: Any, *, k: int = 16) -> np.ndarray:
    """Squared error of reconstructing x from its top-``k`` principal components of ``good``."""
    return fit_pca(good, k=k)(x)


def fit_one_class(good: Any, *, nu: float = 0.1, max_train: int = 2000) -> Callable[[Any], np.ndarray]:
    """A one-class SVM (RBF kernel, ``gamma="scale"``) fitted on the first ``max_train`` good
    parts: a function x -> anomaly scores (N,), higher for stranger parts."""
    from sklearn.svm import OneClassSVM

    g = _flat("good", good)
    if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not 0 < nu <= 1:
        raise ValueError(f"nu must be in (0, 1], got {nu!r}")
    svm = OneClassSVM(nu=nu, gamma="scale").fit(g[:max_train])
    return lambda x: -svm.decision_function(_flat("x", x))


def one_class_scores(good: Any, x: Any, *, nu: float = 0.1, max_train: int = 2000) -> np.ndarray:
    """Anomaly scores of x under a one-class SVM fitted on ``good`` (see :func:`fit_one_class`)."""
    return fit_one_class(good, nu=nu, max_train=max_train)(x)


def roc_auc(anomaly_scores: Any, normal_scores: Any) -> float:
    """ROC AUC: P(score of an anomaly > score of a normal part) + half the ties."""
    return auc(anomaly_scores, normal_scores)


def threshold_costs(
    anomaly_scores: Any, normal_scores: Any, thresholds: Sequence[float], *, miss_cost: float, alarm_cost: float
) -> dict[str, np.ndarray]:
    """At each threshold (flag a part when its score >= t): the miss rate, the false-alarm rate
    and the cost per part ``miss_cost * P(miss, anomaly) + alarm_cost * P(alarm, normal)`` with
    the classes in the proportions given."""
    a, n = np.asarray(anomaly_scores, float), np.asarray(normal_scores, float)
    if a.size == 0 or n.size == 0:
        raise ValueError("anomaly_scores and normal_scores must both be non-empty")
    t = np.asarray(thresholds, float)[:, None]
    miss, alarm = (a[None] < t).mean(1), (n[None] >= t).mean(1)
    share = a.size / (a.size + n.size)
    cost = miss_cost * share * miss + alarm_cost * (1 - share) * alarm
    return {"miss": miss, "false_alarm": alarm, "cost": cost}


def smooth(scores: Any, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` steps (the first steps average what there is)."""
    s = np.asarray(scores, float)
    check_positive("window", window)
    c = np.cumsum(np.concatenate([[0.0], s]))
    idx = np.arange(1, len(s) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def first_alarm(scores: Any, threshold: float) -> int | None:
    """Index of the first score at or above ``threshold``, or None."""
    hit = np.nonzero(np.asarray(scores, float) >= threshold)[0]
    return int(hit[0]) if len(hit) else None


def lead_times(alarms: Sequence[int | None], life: Sequence[int]) -> np.ndarray:
    """Cycles between each unit's first alarm and its failure (NaN: never alarmed)."""
    if len(alarms) != len(life):
        raise ValueError(f"alarms and life must have one entry per unit, got {len(alarms)} and {len(life)}")
    return np.array([np.nan if a is None else float(n - a) for a, n in zip(alarms, life, strict=True)])
