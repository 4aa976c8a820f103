"""Scoring detectors and searching for copies (chapter 19).

- :func:`roc_auc` and :func:`tpr_at_fpr`: how well a score separates positives (generated,
  watermarked) from negatives (real, unwatermarked). The AUC is the probability that a random
  positive scores above a random negative, ties counting one half (the Mann-Whitney U statistic
  divided by n_pos n_neg); the true-positive rate at a false-positive rate alpha uses the
  threshold that at most a fraction alpha of the negatives exceed.
- :func:`nearest_neighbours` and :func:`near_copies`: for each generated sample, its closest
  training example in Euclidean distance, in pixel space or in the features of a classifier
  (:func:`genai_lib.metrics.classifier_features`); a sample is a near-copy when it lies closer
  to the training set than almost every *held-out* real image does (Carlini et al. 2023 and
  Somepalli et al. 2023 search diffusion models' samples for training images the same way).

Shapes: scores (N,); samples (N, ...) flattened to (N, D); references (M, D).
"""

from __future__ import annotations

from typing import Any

import torch

from genai_lib._checks import check_positive, check_probability

__all__ = ["roc_auc", "roc_curve", "tpr_at_fpr", "nearest_neighbours", "near_copies"]


def _scores(name: str, x: Any) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{name} must hold at least one score, got none")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite scores, got NaN or inf")
    return t


def roc_auc(positives: Any, negatives: Any) -> float:
    """P(score of a positive > score of a negative) + 1/2 P(equal): the area under the ROC curve."""
    pos, neg = _scores("positives", positives), _scores("negatives", negatives)
    both = torch.cat([pos, neg])
    # average ranks (1-based) with ties sharing their mean rank
    values, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = mean_rank[inverse]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2  # Mann-Whitney U of the positives
    return float(u / (len(pos) * len(neg)))


def roc_curve(positives: Any, negatives: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(false-positive rates, true-positive rates), both (K,), for every threshold, from (0, 0)
    (nothing flagged) to (1, 1) (everything flagged): a sample is flagged when its score >= t."""
    pos, neg = _scores("positives", positives), _scores("negatives", negatives)
    thresholds = torch.unique(torch.cat([pos, neg])).flip(0)
    fpr = (neg[None, :] >= thresholds[:, None]).double().mean(1)
    tpr = (pos[None, :] >= thresholds[:, None]).double().mean(1)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fpr]), torch.cat([zero, tpr])


def tpr_at_fpr(positives: Any, negatives: Any, fpr: float = 0.01) -> float:
    """The fraction of positives flagged when the threshold lets at most ``fpr`` of the negatives
    through (flagged: score strictly above the threshold)."""
    check_probability("fpr", fpr)
    pos, neg = _scores("positives", positives), _scores("negatives", negatives)
    allowed = int(fpr * len(neg))  # negatives that may score above the threshold
    ordered = neg.sort(descending=True).values
    threshold = ordered[allowed] if allowed < len(neg) else ordered[-1] - 1
    return float((pos > threshold).double().mean())


def _flat(name: str, x: Any) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < 2 or len(t) == 0:
        raise ValueError(f"{name} must be (N, ...) with N >= 1, got shape {tuple(t.shape)}")
    return t.reshape(len(t), -1).float()


def nearest_neighbours(queries: Any, reference: Any, *, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query (N, ...), the Euclidean distance to its nearest row of ``reference`` (M, ...)
    and that row's index: (distances (N,), indices (N,)). Both are flattened; sizes must match."""
    q, r = _flat("queries", queries), _flat("reference", reference)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and reference must have the same size per item, got {q.shape[1]} and {r.shape[1]}")
    check_positive("chunk", chunk)
    r = r.to(q.device)
    r2 = (r * r).sum(1)
    dists, idx = [], []
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        d2 = (block * block).sum(1, keepdim=True) - 2 * block @ r.T + r2[None, :]  # (b, M)
        best = d2.min(1)
        dists.append(best.values.clamp(min=0).sqrt())
        idx.append(best.indices)
    return torch.cat(dists).cpu(), torch.cat(idx).cpu()


def near_copies(samples: Any, train: Any, held_out: Any, *, quantile: float = 0.01, chunk: int = 512) -> dict[str, Any]:
    """How many samples sit closer to the training set than held-out real data does.

    The threshold is the ``quantile`` of the held-out images' nearest-training-neighbour
    distances: a new digit written by a person is that close to a training digit only a
    fraction ``quantile`` of the time. Returns ``{"threshold", "fraction", "distances" (N,),
    "indices" (N,), "held_out_distances" (K,)}``."""
    check_probability("quantile", quantile)
    d, i = nearest_neighbours(samples, train, chunk=chunk)
    d_ref, _ = nearest_neighbours(held_out, train, chunk=chunk)
    threshold = float(torch.quantile(d_ref.double(), quantile))
    return {
        "threshold": threshold,
        "fraction": float((d < threshold).double().mean()),
        "distances": d,
        "indices": i,
        "held_out_distances": d_ref,
    }
