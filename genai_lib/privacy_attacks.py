"""Attacks that measure what a trained model leaks about its training data (chapter 16).

- **ROC of a membership test**: scores of members and non-members, higher = "member"; AUC and
  the true-positive rate at a low false-positive rate (Carlini et al. 2022 argue for TPR at 1%
  FPR: an attack that is confident about a few records matters more than average accuracy).
- **Loss threshold** (Yeom et al. 2018): score = -loss(x); members have lower loss.
- **Likelihood-ratio attack in miniature** (LiRA, Carlini et al. 2022): for each example,
  the logit-scaled confidence phi = log p_y - log(1 - p_y) under shadow models trained with (IN)
  and without (OUT) it, a Gaussian fitted to each, and score = log N(phi; IN) - log N(phi; OUT).
- **Canary exposure** (Carlini et al. 2019): a secret s inserted in the training data, ranked by
  the model's log-perplexity among all |R| candidate secrets: exposure = log2 |R| - log2 rank(s).
- **Gradient inversion** (Zhu, Liu & Han 2019, "deep leakage from gradients"): find an input and
  a soft label whose gradient matches a shared one.

Shape legend: N examples, K shadow models, C classes, R candidates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_finite_number, check_positive

__all__ = [
    "roc_curve",
    "auc",
    "tpr_at_fpr",
    "logit_confidence",
    "lira_scores",
    "exposure",
    "invert_gradient",
]


def _scores(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one score")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite scores")
    return arr


def roc_curve(member_scores: Any, nonmember_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) over every threshold, from (0, 0) to (1, 1)."""
    m, o = _scores("member_scores", member_scores), _scores("nonmember_scores", nonmember_scores)
    thresholds = np.unique(np.concatenate([m, o]))[::-1]  # predict "member" when score >= t
    tpr = np.concatenate([[0.0], (m[None, :] >= thresholds[:, None]).mean(1)])
    fpr = np.concatenate([[0.0], (o[None, :] >= thresholds[:, None]).mean(1)])
    return fpr, tpr


def auc(member_scores: Any, nonmember_scores: Any) -> float:
    """Area under the ROC: P(member score > non-member score) + 0.5 P(tie) (Mann-Whitney)."""
    m, o = _scores("member_scores", member_scores), _scores("nonmember_scores", nonmember_scores)
    greater = (m[:, None] > o[None, :]).mean()
    ties = (m[:, None] == o[None, :]).mean()
    return float(greater + 0.5 * ties)


def tpr_at_fpr(member_scores: Any, nonmember_scores: Any, fpr: float = 0.01) -> float:
    """The largest true-positive rate among thresholds whose false-positive rate is <= ``fpr``."""
    check_finite_number("fpr", fpr, positive=True, allow_zero=True)
    if fpr > 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    f, t = roc_curve(member_scores, nonmember_scores)
    return float(t[f <= fpr].max())


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """phi = log p_y - log(1 - p_y) for logits (N, C) and labels (N,), computed stably: (N,)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a (N, C) tensor, got {getattr(logits, 'shape', type(logits))}")
    logits = logits.float()
    labels = labels.to(logits.device).long()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).logsumexp(1)
    return true - others  # log p_y - log(sum_{j != y} p_j)


def lira_scores(target: Any, shadow: Any, shadow_in: Any, *, global_variance: bool = True) -> np.ndarray:
    """Per-example LiRA scores log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out).

    ``target`` (N,): phi under the attacked model; ``shadow`` (K, N): phi under K shadow models;
    ``shadow_in`` (K, N) bool: whether example n was in shadow model k's training set. With few
    shadows a variance shared by all examples is steadier (Carlini et al. 2022, section 4).
    """
    t = _scores("target", target)
    s = np.asarray(shadow.cpu() if isinstance(shadow, torch.Tensor) else shadow, dtype=np.float64)
    mask = np.asarray(shadow_in.cpu() if isinstance(shadow_in, torch.Tensor) else shadow_in, dtype=bool)
    if s.ndim != 2 or s.shape != mask.shape or s.shape[1] != t.size:
        raise ValueError(f"shadow and shadow_in must be (K, {t.size}), got {s.shape} and {mask.shape}")
    if not (mask.any(0).all() and (~mask).any(0).all()):
        raise ValueError("every example needs at least one IN and one OUT shadow model")
    out = []
    for inside in (mask, ~mask):
        cnt = inside.sum(0)
        mu = (s * inside).sum(0) / cnt
        var = ((s - mu) ** 2 * inside).sum(0) / np.maximum(cnt - 1, 1)
        if global_variance:
            var = np.full_like(var, ((s - mu) ** 2 * inside).sum() / max(inside.sum() - s.shape[1], 1))
        var = np.maximum(var, 1e-6)
        out.append(-0.5 * (t - mu) ** 2 / var - 0.5 * np.log(var))
    return out[0] - out[1]


def exposure(canary_nll: float, candidate_nlls: Any) -> float:
    """log2 |R| - log2 rank, rank = 1 + #candidates (the canary excluded) with a lower NLL."""
    check_finite_number("canary_nll", canary_nll)
    c = _scores("candidate_nlls", candidate_nlls)
    rank = 1 + int((c < canary_nll).sum())
    return math.log2(c.size + 1) - math.log2(rank)


def invert_gradient(
    model: nn.Module,
    target_grads: list[torch.Tensor],
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    steps: int = 300,
    lr: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """DLG: an image (1, *input_shape) and a label distribution (C,) whose cross-entropy gradient
    on ``model`` matches ``target_grads`` (one tensor per parameter, in ``model.parameters()``
    order), found with L-BFGS on the squared gradient distance. Returns (image, label, losses).
    """
    check_positive("steps", steps)
    check_positive("n_classes", n_classes)
    check_finite_number("lr", lr, positive=True, allow_zero=False)
    params = [p for p in model.parameters() if p.requires_grad]
    if len(target_grads) != len(params) or any(g.shape != p.shape for g, p in zip(target_grads, params, strict=False)):
        raise ValueError("target_grads must hold one gradient per trainable parameter, with its shape")
    device = params[0].device
    x = torch.rand((1, *input_shape), generator=generator).to(device).requires_grad_(True)
    y = torch.randn((1, n_classes), generator=generator).to(device).requires_grad_(True)
    opt = torch.optim.LBFGS([x, y], lr=lr, max_iter=20, history_size=50, line_search_fn="strong_wolfe")
    losses: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.sum(-F.softmax(y, -1) * F.log_softmax(model(x), -1))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dist = sum(((g - t) ** 2).sum() for g, t in zip(grads, target_grads, strict=True))
        dist.backward()
        return dist

    for _ in range(max(1, steps // 20)):
        losses.append(float(opt.step(closure).detach()))
    return x.detach().clamp(0, 1).cpu(), F.softmax(y.detach(), -1).squeeze(0).cpu(), losses
