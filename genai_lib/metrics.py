"""Sample-quality metrics that need no downloaded network (chapter 3 onwards).

FID and KID are usually computed on Inception-v3 features of ImageNet; a course that runs
offline cannot download that network, and Inception features say little about 28x28 digits
anyway. Here the feature extractor is a small CNN (:mod:`genai_lib.models.classifier`) trained
once on the MNIST training split (``genai_lib.recipes.classifier.mnist_classifier``, cached), so
the numbers are "classifier-FID": comparable with each other inside this course, **not** with
published Inception FIDs. Every number should state its sample count: FID is biased upwards at small N.

- Fréchet distance (Heusel et al. 2017): ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``
  between Gaussians fitted to two feature sets.
- KID (Bińkowski et al. 2018): unbiased MMD^2 with the kernel ``k(x, y) = (x.y / D + 1)^3``,
  averaged over random subsets.
- Precision / recall (Kynkäänniemi et al. 2019): the fraction of generated samples inside the
  k-NN balls of the real set (quality), and of real samples inside those of the generated set
  (coverage).
- ``conditional_accuracy``: how often the classifier agrees with the class a generator was asked for.
- ``ring_metrics``: modes covered and high-quality fraction on the 8-Gaussian ring (Srivastava et
  al. 2017's protocol).
- ``psnr``, ``ssim`` (Wang et al. 2004), ``sharpness``: per-image fidelity of a restored image to
  its truth, and how much fine detail it has (chapter 4: super-resolution and inpainting).

Shapes: images (N, 1, 28, 28) in [0, 1]; features (N, D); points (N, 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from genai_lib._checks import check_class_ids, check_generator, check_images, check_positive, check_tensor
from genai_lib.utils import eval_mode, model_device

__all__ = [
    "classifier_features",
    "frechet_distance",
    "kid",
    "precision_recall",
    "conditional_accuracy",
    "ring_metrics",
    "image_quality",
    "psnr",
    "ssim",
    "sharpness",
]


@torch.no_grad()
def classifier_features(classifier: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features (N, D) of ``images`` (N, 1, 28, 28) in [0, 1], float64 on the CPU."""
    check_images("images", images, (1, 28, 28))
    check_positive("batch_size", batch_size)
    device = model_device(classifier)
    with eval_mode(classifier):
        out = [
            classifier.features(images[i : i + batch_size].to(device)).double().cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(out)


def _as_tensor(name: str, x: Any) -> torch.Tensor:
    try:
        return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a tensor or array of features (N, D), got {type(x).__name__}") from exc


def _check_feature_pair(
    a: Any, b: Any, min_n: int, names: tuple[str, str] = ("feat_a", "feat_b"), why: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    na, nb = names
    a = check_tensor(na, _as_tensor(na, a), floating=True, finite=True)
    b = check_tensor(nb, _as_tensor(nb, b), floating=True, finite=True)
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"{na} and {nb} must be 2-D (N, D), got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {na} has D={a.shape[1]}, {nb} has D={b.shape[1]}")
    for name, t in ((na, a), (nb, b)):
        if t.shape[0] < min_n:
            raise ValueError(f"{name} has {t.shape[0]} samples; need at least {min_n}{why}")
    return a.double().cpu(), b.double().cpu()


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(feat_a: Any, feat_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    Computed in float64. ``Tr((S_a S_b)^{1/2})`` equals ``Tr((A S_b A)^{1/2})`` with
    ``A = S_a^{1/2}``; that matrix is symmetric positive semi-definite, so its square root
    comes from a symmetric eigendecomposition with no complex round-off. Needs at least 2
    samples per set (a covariance); with fewer samples than dimensions the covariance is
    singular and the estimate is biased upwards (a warning says so).
    """
    a, b = _check_feature_pair(feat_a, feat_b, min_n=2)
    if min(len(a), len(b)) <= a.shape[1]:
        import warnings

        warnings.warn(
            f"FID with {min(len(a), len(b))} samples in D={a.shape[1]} dimensions: singular covariance, "
            "the value is strongly biased upwards; use more samples than dimensions",
            stacklevel=2,
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    root = _sqrt_psd(s_a)
    middle = root @ s_b @ root
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + s_a.trace() + s_b.trace() - 2 * tr_sqrt
    return max(float(value), 0.0)


def _poly_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(u, v) = (u.v / D + 1)^3: diagonal terms left out of the within-set means."""
    d, m, n = x.shape[1], x.shape[0], y.shape[0]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(
    feat_a: Any, feat_b: Any, *, subset_size: int = 500, n_subsets: int = 50, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Kernel inception-style distance: mean and std of the unbiased polynomial MMD^2 over
    ``n_subsets`` random subsets of ``subset_size`` drawn (without replacement) from each set.

    Unlike FID it is unbiased: two samples of one distribution give values scattered around 0
    (a single estimate can be slightly negative).
    """
    check_positive("subset_size", subset_size)
    check_positive("n_subsets", n_subsets)
    check_generator("generator", generator)
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    why = f" (subset_size={subset_size}: pass a smaller subset_size for small sets)"
    a, b = _check_feature_pair(feat_a, feat_b, min_n=subset_size, why=why)
    vals = []
    for _ in range(n_subsets):
        ia = torch.randperm(len(a), generator=generator)[:subset_size]
        ib = torch.randperm(len(b), generator=generator)[:subset_size]
        vals.append(_poly_mmd2(a[ia], b[ib]))
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std())


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)  # (c, N); the point itself is at distance 0
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    out = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i : i + chunk], centres)  # (c, M)
        out.append((d <= radii[None]).any(dim=1))
    return torch.cat(out)


def precision_recall(real: Any, fake: Any, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on features (N, D).

    Each set's manifold is the union of balls around its points, each ball reaching that point's
    k-th nearest neighbour. Precision: the fraction of ``fake`` inside the real manifold.
    Recall: the fraction of ``real`` inside the fake manifold.
    """
    check_positive("k", k)
    a, b = _check_feature_pair(real, fake, min_n=k + 1, names=("real", "fake"), why=f" (k={k} neighbours)")
    precision = _inside(b, a, _kth_nn_radius(a, k)).double().mean()
    recall = _inside(a, b, _kth_nn_radius(b, k)).double().mean()
    return float(precision), float(recall)


@torch.no_grad()
def conditional_accuracy(classifier: nn.Module, images: torch.Tensor, labels: Any, batch_size: int = 256) -> float:
    """Fraction of ``images`` (N, 1, 28, 28) that ``classifier`` assigns to ``labels`` (N,)."""
    check_images("images", images, (1, 28, 28))
    check_positive("batch_size", batch_size)
    labels = torch.as_tensor(labels)
    device = model_device(classifier)
    with eval_mode(classifier):
        logits = [classifier(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    n_classes = logits[0].shape[1]
    labels = check_class_ids("labels", labels, n_classes, len(images))  # an id the classifier cannot output is a bug
    pred = torch.cat([lg.argmax(1) for lg in logits])
    return float((pred == labels.cpu()).double().mean())


def ring_metrics(
    samples: Any, *, n_modes: int = 8, radius: float = 2.0, std: float = 0.04, min_share: float = 0.1
) -> dict[str, Any]:
    """Mode coverage on the ring of ``genai_lib.data.toy_2d("ring")`` (8 Gaussians, radius 2, std 0.04).

    A sample is *high quality* when it lies within 3 std of its nearest mode centre. A mode is
    *covered* when it holds at least ``min_share`` of its fair share (``N / n_modes``) of the
    high-quality samples. Returns ``{"modes": int, "hq": float, "counts": list[int], "n": int}``.
    """
    x = check_tensor("samples", _as_tensor("samples", samples), shape=(None, 2), floating=True, finite=True).double()
    check_positive("n_modes", n_modes)
    check_positive("radius", radius, integer=False)
    check_positive("std", std, integer=False)
    check_positive("min_share", min_share, integer=False, allow_zero=True)
    angle = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (M, 2)
    dist, idx = torch.cdist(x, centres).min(dim=1)
    hq = dist <= 3 * std
    counts = torch.bincount(idx[hq], minlength=n_modes)
    covered = int((counts >= max(1.0, min_share * len(x) / n_modes)).sum())
    return {"modes": covered, "hq": float(hq.double().mean()), "counts": counts.tolist(), "n": len(x)}


def image_quality(
    classifier: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    n: int = 1000,
    generator: torch.Generator | None = None,
    kid_subset: int | None = None,
    k: int = 3,
) -> dict[str, float]:
    """FID, KID (mean, std), precision and recall of ``fake`` against ``real`` on ``n`` images each.

    ``n`` images are drawn at random (with ``generator``) from each set, which must hold at
    least ``n``. KID uses 50 subsets of ``kid_subset`` (default ``min(n, 500)``). The returned
    dict records ``n``: FID is biased at small n, so compare numbers only at the same n.
    """
    check_positive("n", n)
    check_positive("k", k)
    check_generator("generator", generator)
    if n < max(2, k + 1):
        raise ValueError(f"n must be at least {max(2, k + 1)} (a covariance and k={k} neighbours), got {n}")
    if kid_subset is not None:
        check_positive("kid_subset", kid_subset)
        if not 2 <= kid_subset <= n:
            raise ValueError(f"kid_subset must be in [2, n={n}], got {kid_subset}")
    for name, t in (("real", real), ("fake", fake)):
        check_images(name, t, (1, 28, 28))
        if len(t) < n:
            raise ValueError(f"{name} has {len(t)} images; need at least n={n}")
    ir = torch.randperm(len(real), generator=generator)[:n]
    jf = torch.randperm(len(fake), generator=generator)[:n]
    fr = classifier_features(classifier, real[ir])
    ff = classifier_features(classifier, fake[jf])
    subset = kid_subset if kid_subset is not None else min(n, 500)
    kid_mean, kid_std = kid(fr, ff, subset_size=subset, n_subsets=50, generator=generator)
    precision, recall = precision_recall(fr, ff, k=k)
    return {
        "fid": frechet_distance(fr, ff),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "n": n,
    }


# --------------------------------------------------------------------------- restoration (chapter 4)


def _check_image_pair(pred: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("pred", pred, floating=True, finite=True, value_range=(0.0, 1.0))
    check_tensor("target", target, floating=True, finite=True, value_range=(0.0, 1.0))
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be image batches (N, C, H, W) of one shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    return pred.detach().double().cpu(), target.detach().double().cpu()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (N,) in dB, for images in [0, 1]:
    ``10 log10(1 / MSE)``; a perfect image gets +inf. Average the dB values over a test set
    (the usual convention), not the MSEs."""
    p, t = _check_image_pair(pred, target)
    mse = (p - t).square().flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (N,) (Wang et al. 2004, eq. 13), images in [0, 1].

    Local means, variances and the covariance come from a Gaussian window (``window`` pixels,
    std ``sigma``; 7 rather than the paper's 11, which would leave an 18x18 map of a 28x28
    digit); ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with ``C1 = 0.01^2``, ``C2 = 0.03^2``, averaged over the valid (unpadded) positions and channels.
    """
    import torch.nn.functional as F

    p, t = _check_image_pair(pred, target)
    check_positive("window", window)
    check_positive("sigma", sigma, integer=False)
    if window > min(p.shape[-2:]):
        raise ValueError(f"window ({window}) must fit in the images ({tuple(p.shape[-2:])})")
    n, c, h, w = p.shape
    k = _gaussian_window(window, sigma)
    p, t = p.reshape(n * c, 1, h, w), t.reshape(n * c, 1, h, w)
    mu_p, mu_t = F.conv2d(p, k), F.conv2d(t, k)
    var_p = F.conv2d(p * p, k) - mu_p**2
    var_t = F.conv2d(t * t, k) - mu_t**2
    cov = F.conv2d(p * t, k) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return (num / den).reshape(n, c, -1).mean((1, 2))


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean squared image gradient per image (N,): ``mean (dI/dx)^2 + (dI/dy)^2`` with forward
    differences. Blur lowers it; compare a restored image's value with its truth's."""
    check_tensor("images", images, floating=True, finite=True)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    x = images.detach().double().cpu()
    dx = (x[..., :, 1:] - x[..., :, :-1]).square().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).square().flatten(1).mean(1)
    return dx + dy
