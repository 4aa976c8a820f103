"""How good is a synthetic table? Utility, fidelity and privacy scores (chapter 14).

- Utility, train-synthetic-test-real (TSTR, Esteban, Hyland & Ratsch 2017): a logistic regression
  fitted on synthetic rows, its ROC AUC on real held-out rows, against the same model fitted on the
  real training rows (TRTR). :func:`logistic_auc` does either.
- Fidelity: per-column two-sample Kolmogorov-Smirnov statistics (:func:`marginal_ks`, 0 = the same
  marginal) and the mean absolute gap between the two correlation matrices
  (:func:`correlation_gap`, off the diagonal).
- Privacy: the distance from each synthetic row to its closest real training row
  (:func:`closest_record_distance`, in the training table's standardised units). A generator that
  copies records puts synthetic rows much closer than fresh real rows (the holdout) are.

Shape legend: N, M rows, D columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import ks_2samp

from genai_lib.models.tabular_vae import check_table

__all__ = ["logistic_auc", "marginal_ks", "correlation_gap", "closest_record_distance"]


def _labels(name: str, y: Any, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{name} must have one label per row ({n}), got {len(y)}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must be 0/1 labels, got values {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64)


def logistic_auc(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, c: float = 1.0) -> float:
    """ROC AUC on (test_x, test_y) of an L2 logistic regression (inverse strength ``c``) fitted on
    (train_x, train_y), features standardised by the training rows' mean and std."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    xtr = check_table("train_x", train_x).double().numpy()
    xte = check_table("test_x", test_x, xtr.shape[1]).double().numpy()
    ytr, yte = _labels("train_y", train_y, len(xtr)), _labels("test_y", test_y, len(xte))
    for name, y in (("train_y", ytr), ("test_y", yte)):
        if len(np.unique(y)) < 2:
            raise ValueError(f"{name} holds one class only: an AUC needs both")
    mean, std = xtr.mean(0), xtr.std(0) + 1e-8
    clf = LogisticRegression(C=c, max_iter=5000).fit((xtr - mean) / std, ytr)
    return float(roc_auc_score(yte, clf.decision_function((xte - mean) / std)))


def marginal_ks(real: Any, fake: Any) -> np.ndarray:
    """(D,) two-sample Kolmogorov-Smirnov statistic of each column: 0 identical, 1 disjoint."""
    r = check_table("real", real).numpy()
    f = check_table("fake", fake, r.shape[1]).numpy()
    return np.array([ks_2samp(r[:, j], f[:, j]).statistic for j in range(r.shape[1])])


def correlation_gap(real: Any, fake: Any) -> float:
    """Mean |corr_real - corr_fake| over the D (D - 1) off-diagonal Pearson correlations."""
    r = check_table("real", real).double().numpy()
    f = check_table("fake", fake, r.shape[1]).double().numpy()
    if r.shape[1] < 2:
        raise ValueError("correlation_gap needs at least 2 columns")
    cr, cf = np.corrcoef(r, rowvar=False), np.corrcoef(f, rowvar=False)
    off = ~np.eye(r.shape[1], dtype=bool)
    return float(np.nan_to_num(np.abs(cr - cf)[off], nan=1.0).mean())


def closest_record_distance(query: Any, reference: Any) -> torch.Tensor:
    """(M,) Euclidean distance from each query row to its nearest reference row, both standardised
    by the reference's column mean and std (so every feature counts alike)."""
    ref = check_table("reference", reference)
    q = check_table("query", query, ref.shape[1])
    mean, std = ref.mean(0), ref.std(0).clamp_min(1e-8)
    return torch.cdist((q - mean) / std, (ref - mean) / std).min(1).values
