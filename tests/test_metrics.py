"""genai_lib.metrics: closed forms, sanity checks, cross-checks with torchmetrics, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from genai_lib.data import toy_2d
from genai_lib.metrics import (
    classifier_features,
    conditional_accuracy,
    frechet_distance,
    image_quality,
    kid,
    precision_recall,
    ring_metrics,
)
from genai_lib.models.classifier import ClassifierConfig, ImageClassifier
from genai_lib.recipes.classifier import mnist_classifier


def _white(n: int, d: int, seed: int) -> torch.Tensor:
    """n points in d dims whose sample mean is exactly 0 and sample covariance exactly I."""
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    w = torch.linalg.cholesky(torch.cov(z.T))
    return torch.linalg.solve_triangular(w, z.T, upper=False).T


def _clf():
    return ImageClassifier(ClassifierConfig())


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x + 1.0) == pytest.approx(6.0, rel=1e-8)  # a shift adds ||mu_a - mu_b||^2 only


def test_fid_closed_form_for_two_gaussians():
    """Diagonal covariances: FID = ||mu1 - mu2||^2 + sum_j (s1_j - s2_j)^2 (s = standard deviations)."""
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    a = mu1 + _white(500, 3, 0) * s1
    b = mu2 + _white(400, 3, 1) * s2
    want = float((mu1 - mu2).square().sum() + (s1 - s2).square().sum())  # 5 + 4 + 1 = 10
    assert want == 10.0
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


def test_fid_matches_scipy_sqrtm_for_full_covariances():
    from scipy.linalg import sqrtm

    g = torch.Generator().manual_seed(3)
    a = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    b = (
        torch.randn(250, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
        + 0.5
    )
    sa, sb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    want = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + np.trace(sa + sb - 2 * sqrtm(sa @ sb).real)
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-7)


def test_fid_and_kid_agree_with_torchmetrics():
    """The hand-written metrics equal torchmetrics' (FID from custom features; KID's MMD kernel)."""
    pytest.importorskip("torchmetrics")
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import poly_mmd

    from genai_lib.metrics import _poly_mmd2

    class Passthrough(nn.Module):
        num_features = 4

        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 4, generator=g, dtype=torch.float64)
    b = 0.7 * torch.randn(200, 4, generator=g, dtype=torch.float64) + 0.3
    fid = FrechetInceptionDistance(feature=Passthrough())
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert frechet_distance(a, b) == pytest.approx(float(fid.compute()), rel=1e-6)
    assert _poly_mmd2(a[:100], b[:100]) == pytest.approx(float(poly_mmd(a[:100], b[:100])), rel=1e-9)


def test_kid_is_unbiased_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    # 60 independent pairs of samples of one distribution: the estimates scatter around 0
    vals = torch.tensor(
        [
            kid(
                torch.randn(60, 8, generator=g),
                torch.randn(60, 8, generator=g),
                subset_size=60,
                n_subsets=1,
                generator=g,
            )[0]
            for _ in range(60)
        ]
    )
    assert abs(vals.mean()) < 3 * vals.std() / math.sqrt(60)
    assert (vals < 0).any()  # a biased (V-statistic) estimate would never go negative
    a, b = torch.randn(1000, 8, generator=g), torch.randn(1000, 8, generator=g) + 0.5
    far, far_std = kid(a, b, subset_size=200, n_subsets=20, generator=g)
    assert far > 10 * vals.std() and far_std > 0
    # same generator -> same subsets -> same numbers
    r1 = kid(a, b, subset_size=50, n_subsets=5, generator=torch.Generator().manual_seed(7))
    r2 = kid(a, b, subset_size=50, n_subsets=5, generator=torch.Generator().manual_seed(7))
    assert r1 == r2


def test_precision_recall_sanity():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 2, generator=g)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    far_p, far_r = precision_recall(real, real + 100.0)
    assert far_p == 0.0 and far_r == 0.0
    # mode dropping: fakes cover only the right half of the real data -> high precision, ~half recall
    half = real[real[:, 0] > 0]
    p, r = precision_recall(real, half + 0.01 * torch.randn(half.shape, generator=g), k=3)
    assert p > 0.95 and 0.4 < r < 0.7


def test_ring_metrics():
    x, _ = toy_2d("ring", 4000, generator=torch.Generator().manual_seed(0))
    good = ring_metrics(x)
    assert good["modes"] == 8 and good["n"] == 4000
    assert good["hq"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(|N(0, s^2 I_2)| < 3s)
    collapsed = ring_metrics(torch.tensor([[2.0, 0.0]]).repeat(100, 1))
    assert collapsed["modes"] == 1 and collapsed["hq"] == 1.0 and collapsed["counts"][0] == 100
    assert ring_metrics(torch.zeros(50, 2)) == {"modes": 0, "hq": 0.0, "counts": [0] * 8, "n": 50}


class _ByBrightness(nn.Module):
    """A fake classifier: class = 9 if the mean pixel > 0.5 else 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        bright = (x.mean(dim=(1, 2, 3)) > 0.5).long()
        return nn.functional.one_hot(bright * 9, 10).float() + self.w


def test_conditional_accuracy_counts_agreement():
    x = torch.cat([torch.zeros(3, 1, 28, 28), torch.ones(1, 1, 28, 28)])
    assert conditional_accuracy(_ByBrightness(), x, torch.tensor([0, 0, 9, 9])) == 0.75
    assert conditional_accuracy(_ByBrightness(), x, [0, 0, 0, 9]) == 1.0


def test_classifier_features_and_image_quality_shapes():
    torch.manual_seed(0)
    clf = _clf()
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(60, 1, 28, 28, generator=g), torch.rand(70, 1, 28, 28, generator=g) ** 3
    f = classifier_features(clf, real, batch_size=16)
    assert f.shape == (60, 128) and f.dtype == torch.float64
    torch.testing.assert_close(f[:16], classifier_features(clf, real[:16]))
    with pytest.warns(UserWarning, match="singular covariance"):
        q = image_quality(clf, real, fake, n=50, generator=g, kid_subset=20)
    assert set(q) == {"fid", "kid", "kid_std", "precision", "recall", "n"} and q["n"] == 50
    assert q["fid"] > 0 and all(math.isfinite(v) for v in q.values())


def test_mnist_classifier_fast_mode_learns_and_is_cached(monkeypatch, tmp_path):
    """Fast mode (as in the test suite): a short training run, well above chance (not the 97% of full mode)."""
    monkeypatch.setenv("GENAI_FAST", "1")
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    state = torch.get_rng_state()
    clf = mnist_classifier()
    torch.testing.assert_close(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert clf.test_accuracy > 0.7
    again = mnist_classifier()
    torch.testing.assert_close(clf.state_dict(), again.state_dict())
    assert (tmp_path / "fast" / "mnist_classifier.pt").exists()


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: frechet_distance(torch.randn(10, 3), torch.randn(10, 4)), ValueError, "feature dimensions differ"),
        (
            lambda: frechet_distance(torch.randn(1, 3), torch.randn(10, 3)),
            ValueError,
            "feat_a has 1 samples; need at least 2",
        ),
        (lambda: frechet_distance(torch.randn(10), torch.randn(10)), ValueError, r"2-D \(N, D\)"),
        (lambda: frechet_distance(torch.tensor([[float("nan")] * 2] * 3), torch.randn(3, 2)), ValueError, "NaN"),
        (lambda: frechet_distance(torch.ones(3, 2, dtype=torch.long), torch.randn(3, 2)), TypeError, "floating-point"),
        (lambda: kid(torch.randn(10, 3), torch.randn(10, 3), subset_size=20), ValueError, "need at least 20"),
        (lambda: kid(torch.randn(10, 3), torch.randn(10, 3), subset_size=1), ValueError, "subset_size must be >= 2"),
        (lambda: precision_recall(torch.randn(10, 3), torch.randn(10, 3), k=0), ValueError, "k must be > 0"),
        (lambda: precision_recall(torch.randn(3, 3), torch.randn(10, 3), k=3), ValueError, "need at least 4"),
        (
            lambda: classifier_features(_clf(), torch.rand(2, 1, 32, 32)),
            ValueError,
            r"\(N, 1, 28, 28\)",
        ),
        (
            lambda: classifier_features(_clf(), torch.rand(2, 1, 28, 28) * 255),
            ValueError,
            r"\[0.0, 1.0\]",
        ),
        (
            lambda: conditional_accuracy(_clf(), torch.rand(2, 1, 28, 28), torch.tensor([1])),
            ValueError,
            r"\(2\)",
        ),
        (lambda: ring_metrics(torch.randn(5, 3)), ValueError, r"\(N, 2\)"),
        (
            lambda: image_quality(_clf(), torch.rand(5, 1, 28, 28), torch.rand(50, 1, 28, 28), n=10),
            ValueError,
            "real has 5 images; need at least n=10",
        ),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
