"""Tests for genai_lib.models.mixture: the Gaussian mixture density of chapter 1."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from genai_lib.data import make_loader, toy_2d
from genai_lib.models.mixture import GaussianMixture, MixtureConfig, fit_em, kmeans_plus_plus
from genai_lib.train import fit


def random_mixture(k: int = 3, d: int = 2, covariance: str = "full", seed: int = 0) -> GaussianMixture:
    """A mixture with random (non-trivial) weights, means and Cholesky factors."""
    torch.manual_seed(seed)
    model = GaussianMixture(MixtureConfig(k, d, covariance))
    with torch.no_grad():
        model.logits.copy_(torch.randn(k))
        model.means.copy_(2 * torch.randn(k, d))
        model.raw_diag.normal_(0, 0.5)
        if covariance == "full":
            model.raw_tril.normal_(0, 0.5)
    return model


def toy(n: int = 600, seed: int = 0) -> torch.Tensor:
    return toy_2d("mixture", n, generator=torch.Generator().manual_seed(seed))[0]


# ------------------------------------------------------------------ closed-form values


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_log_prob_matches_torch_distributions(covariance: str, d: int) -> None:
    model = random_mixture(4, d, covariance)
    x = 3 * torch.randn(50, d, generator=torch.Generator().manual_seed(1))
    ref = MixtureSameFamily(
        Categorical(logits=model.logits), MultivariateNormal(model.means, scale_tril=model.scale_tril())
    )
    torch.testing.assert_close(model.log_prob(x), ref.log_prob(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x), model.log_prob(x))


def test_pinned_standard_normal_value() -> None:
    model = GaussianMixture(MixtureConfig(1, 2, min_std=1e-3))
    with torch.no_grad():
        model.means.zero_()
    # diag(L) = softplus(raw) + min_std starts at exactly 1: a standard normal, log p(0) = -log(2 pi).
    torch.testing.assert_close(model.covariances()[0], torch.eye(2))
    assert model.log_prob(torch.zeros(1, 2)).item() == pytest.approx(-math.log(2 * math.pi), abs=1e-6)
    assert model.log_prob(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(-math.log(2 * math.pi) - 0.5, abs=1e-6)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_density_integrates_to_one(covariance: str) -> None:
    model = random_mixture(3, 2, covariance, seed=3)
    with torch.no_grad():
        model.means.clamp_(-2, 2)
    lim, res = 12.0, 601
    xs = torch.linspace(-lim, lim, res, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).float()
    with torch.no_grad():
        mass = model.log_prob(grid).double().exp().sum() * (xs[1] - xs[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=2e-3)


def test_num_free_parameters() -> None:
    assert GaussianMixture(MixtureConfig(3, 2, "full")).num_free_parameters() == 2 + 6 + 9
    assert GaussianMixture(MixtureConfig(3, 2, "diag")).num_free_parameters() == 2 + 6 + 6
    assert GaussianMixture(MixtureConfig(3, 2, "spherical")).num_free_parameters() == 2 + 6 + 3


def test_set_parameters_round_trip() -> None:
    model = GaussianMixture(MixtureConfig(2, 2))
    w = torch.tensor([0.25, 0.75])
    mu = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    cov = torch.tensor([[[2.0, 0.5], [0.5, 1.0]], [[0.3, -0.1], [-0.1, 0.2]]])
    model.set_parameters(w, mu, cov)
    torch.testing.assert_close(model.weights(), w)
    torch.testing.assert_close(model.means.detach(), mu)
    torch.testing.assert_close(model.covariances().detach(), cov, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ shapes, gradients, sampling


def test_shapes_and_responsibilities() -> None:
    model = random_mixture(4, 2)
    x = torch.randn(7, 2)
    assert model.log_prob(x).shape == (7,)
    assert model.component_log_prob(x).shape == (7, 4)
    r = model.responsibilities(x)
    assert r.shape == (7, 4)
    torch.testing.assert_close(r.sum(1), torch.ones(7))
    assert bool((r >= 0).all())
    samples, comps = model.sample(11, generator=torch.Generator().manual_seed(0), return_components=True)
    assert samples.shape == (11, 2) and comps.shape == (11,) and comps.dtype == torch.long
    assert int(comps.min()) >= 0 and int(comps.max()) < 4


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_loss_is_finite_with_gradient_on_every_parameter(covariance: str) -> None:
    model = random_mixture(3, 2, covariance)
    x, y = toy_2d("moons", 64, generator=torch.Generator().manual_seed(0))
    loss, logs = model.loss((x, y))  # a (points, labels) batch
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert logs["log_likelihood"].item() == pytest.approx(-loss.item())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_same_generator_same_samples() -> None:
    model = random_mixture()
    a = model.sample(100, generator=torch.Generator().manual_seed(5))
    b = model.sample(100, generator=torch.Generator().manual_seed(5))
    c = model.sample(100, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_samples_follow_the_model() -> None:
    model = random_mixture(3, 2, seed=4)
    x, comp = model.sample(40_000, generator=torch.Generator().manual_seed(0), return_components=True)
    freq = torch.bincount(comp, minlength=3).float() / len(comp)
    torch.testing.assert_close(freq, model.weights().detach(), atol=0.01, rtol=0)
    for k in range(3):
        xk = x[comp == k]
        torch.testing.assert_close(xk.mean(0), model.means[k].detach(), atol=0.08, rtol=0)
        torch.testing.assert_close(torch.cov(xk.T), model.covariances()[k].detach(), atol=0.1, rtol=0.05)


def test_kmeans_plus_plus_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    idx = kmeans_plus_plus(x, 3, generator=torch.Generator().manual_seed(1))
    assert sorted((idx // 50).tolist()) == [0, 1, 2]  # one seed in each cluster
    same = kmeans_plus_plus(x, 3, generator=torch.Generator().manual_seed(1))
    assert idx.tolist() == same.tolist()


# ------------------------------------------------------------------ learning


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_em_log_likelihood_increases_monotonically(covariance: str) -> None:
    x = toy()
    model, hist = fit_em(
        MixtureConfig(3, covariance=covariance), x, steps=40, generator=torch.Generator().manual_seed(0)
    )
    ll = torch.tensor(hist.logs["log_likelihood"])
    assert len(ll) == 41 and hist.step[-1] == 40
    assert bool((ll.diff() >= -1e-5).all()), ll.diff().min()
    assert ll[-1] > ll[0] + 0.3
    assert model.log_prob(x).mean().item() == pytest.approx(ll[-1].item(), abs=1e-4)


def test_em_recovers_the_true_mixture() -> None:
    x = toy(4000)
    model, _ = fit_em(MixtureConfig(3), x, steps=100, generator=torch.Generator().manual_seed(0))
    order = model.means[:, 1].argsort()  # true means (-2,-1), (2,-1), (0,2): sort by y then x
    means = model.means.detach()[order]
    low = means[:2][means[:2, 0].argsort()]
    torch.testing.assert_close(low, torch.tensor([[-2.0, -1.0], [2.0, -1.0]]), atol=0.1, rtol=0)
    torch.testing.assert_close(means[2], torch.tensor([0.0, 2.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(
        model.weights().detach()[order].sort().values, torch.tensor([0.3, 0.3, 0.4]), atol=0.03, rtol=0
    )


def test_em_with_one_component_is_the_closed_form_mle() -> None:
    x = toy(500)
    model, _ = fit_em(MixtureConfig(1), x, steps=1, reg=0.0)
    torch.testing.assert_close(model.means.detach()[0], x.mean(0), atol=1e-5, rtol=0)
    mle_cov = torch.cov(x.T, correction=0)  # the MLE divides by N, not N - 1
    torch.testing.assert_close(model.covariances().detach()[0], mle_cov, atol=1e-4, rtol=1e-4)


def test_em_tol_stops_early_and_starts_from_a_given_model() -> None:
    x = toy()
    model = GaussianMixture(MixtureConfig(3)).init_from_data(x, generator=torch.Generator().manual_seed(0))
    before = model.log_prob(x).mean().item()
    same, hist = fit_em(model, x, steps=500, tol=1e-6)
    assert same is model
    assert hist.logs["log_likelihood"][0] == pytest.approx(before, abs=1e-5)
    assert len(hist.step) < 501


def test_gradient_fit_lowers_nll() -> None:
    x = toy(512)
    torch.manual_seed(0)
    model = GaussianMixture(MixtureConfig(3))
    start = -model.log_prob(x).mean().item()
    hist = fit(
        model,
        make_loader(x, batch_size=128, generator=torch.Generator().manual_seed(0)),
        steps=300,
        lr=0.05,
        progress=False,
        log_every=50,
    )
    end = -model.log_prob(x).mean().item()
    assert end < start - 1.0, (start, end)
    assert hist.logs["log_likelihood"][-1] > hist.logs["log_likelihood"][0]
    assert end < 2.6  # the true density's entropy is about 2.3 nats


def test_overfit_one_batch() -> None:
    x = toy(32)
    model = GaussianMixture(MixtureConfig(3)).init_from_data(x, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = model.loss(x)[0].item()
    for _ in range(200):
        loss = model.loss(x)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.5


# ------------------------------------------------------------------ bad input


def _model() -> GaussianMixture:
    return GaussianMixture(MixtureConfig(2, 2))


BAD = [
    ("n_components=0", lambda: MixtureConfig(0), ValueError, "n_components must be > 0"),
    ("n_components float", lambda: MixtureConfig(2.5), TypeError, "n_components must be an int"),
    ("dim=-1", lambda: MixtureConfig(2, -1), ValueError, "dim must be > 0"),
    ("unknown covariance", lambda: MixtureConfig(2, covariance="tied"), ValueError, "covariance must be one of"),
    ("covariance not str", lambda: MixtureConfig(2, covariance=3), TypeError, "covariance must be a string"),
    ("min_std=0", lambda: MixtureConfig(2, min_std=0.0), ValueError, "min_std must be > 0"),
    ("cfg is a dict", lambda: GaussianMixture({"n_components": 2}), TypeError, "MixtureConfig"),
    ("points wrong width", lambda: _model().log_prob(torch.zeros(5, 3)), ValueError, r"shape \(N, 2\)"),
    ("points 1-D", lambda: _model().log_prob(torch.zeros(5)), ValueError, r"shape \(N, 2\)"),
    ("points int dtype", lambda: _model().loss(torch.zeros(5, 2, dtype=torch.long)), TypeError, "floating-point"),
    ("points NaN", lambda: _model().loss(torch.tensor([[0.0, float("nan")]])), ValueError, "NaN"),
    ("points empty", lambda: _model().log_prob(torch.zeros(0, 2)), ValueError, "empty"),
    ("points a list", lambda: _model().log_prob([[0.0, 1.0]]), TypeError, "torch.Tensor"),
    ("empty batch tuple", lambda: _model().loss(()), ValueError, "empty tuple"),
    ("sample n=0", lambda: _model().sample(0), ValueError, "n must be > 0"),
    ("sample n float", lambda: _model().sample(2.0), TypeError, "n must be an int"),
    ("EM steps=0", lambda: fit_em(MixtureConfig(2), toy(20), steps=0), ValueError, "steps must be > 0"),
    ("EM bad model", lambda: fit_em("gmm", toy(20)), TypeError, "GaussianMixture or MixtureConfig"),
    (
        "EM too few points",
        lambda: fit_em(GaussianMixture(MixtureConfig(5)), toy(3)),
        ValueError,
        "at least n_components",
    ),
    ("k-means++ k > N", lambda: kmeans_plus_plus(toy(3), 5), ValueError, "at least k=5"),
    ("unknown init", lambda: _model().init_from_data(toy(20), method="bogus"), ValueError, "kmeans\\+\\+"),
    (
        "non-PD covariance",
        lambda: _model().set_parameters(torch.ones(2), torch.zeros(2, 2), -torch.eye(2).expand(2, 2, 2)),
        ValueError,
        "positive definite",
    ),
    (
        "negative weight",
        lambda: _model().set_parameters(torch.tensor([-1.0, 2.0]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)),
        ValueError,
        "weights must all be > 0",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(case: str, call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    cpu = random_mixture(3, 2)
    gpu = random_mixture(3, 2).to("cuda")
    x = toy(256)
    torch.testing.assert_close(gpu.log_prob(x.cuda()).cpu(), cpu.log_prob(x), atol=1e-4, rtol=1e-4)
    a = cpu.sample(50, generator=torch.Generator().manual_seed(0))
    b = gpu.sample(50, generator=torch.Generator().manual_seed(0))  # a CPU generator drives a CUDA model
    assert b.device.type == "cuda"
    torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-4)
    model, hist = fit_em(MixtureConfig(3), x.cuda(), steps=20, generator=torch.Generator().manual_seed(0))
    assert model.means.device.type == "cuda" and hist.logs["log_likelihood"][-1] > hist.logs["log_likelihood"][0]
