"""Chapter 16's DP-MERF: random features, the embedding's sensitivity, the Gaussian mechanism and
the generator's loss as a squared MMD (tiny sizes, seconds)."""

import math

import pytest
import torch

from genai_lib.models.merf import MERFConfig, MERFGenerator, RandomFeatures, label_embedding
from genai_lib.privacy import epsilon, gaussian_mechanism, noise_for_epsilon


def test_features_have_unit_norm_and_approximate_the_gaussian_kernel():
    torch.manual_seed(0)
    x = torch.rand(6, 20)
    ls = 2.0
    phi = RandomFeatures(20, 20_000, ls, seed=3)(x)
    assert torch.allclose(phi.norm(dim=1), torch.ones(6), atol=1e-5)  # ||phi(x)|| = 1 exactly
    approx = phi @ phi.T
    exact = torch.exp(-(torch.cdist(x, x) ** 2) / (2 * ls**2))
    assert (approx - exact).abs().max() < 0.03  # Monte Carlo error ~ 1/sqrt(F)
    assert exact.min() < 0.9  # the check is not a trivial one between near-identical points


def test_one_example_changes_the_embedding_by_norm_one():
    """The sensitivity the Gaussian mechanism is calibrated to: adding one digit adds one column
    entry phi(x) e_y^T, whose Frobenius norm is ||phi(x)|| = 1."""
    feats = RandomFeatures(30, 64, 1.5, seed=0)
    x, y = torch.rand(11, 30), torch.arange(11) % 4
    full = label_embedding(feats(x), y, 4)
    minus = label_embedding(feats(x[:-1]), y[:-1], 4)
    assert math.isclose(float((full - minus).norm()), 1.0, rel_tol=1e-5)
    assert torch.allclose(full[:, 3], feats(x[y == 3]).sum(0), atol=1e-6)


def test_gaussian_mechanism_spends_its_budget_with_the_right_noise():
    value = torch.zeros(200_000)
    noisy, sigma = gaussian_mechanism(value, sensitivity=2.0, epsilon_budget=3.0, delta=1e-5,
                                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert sigma == noise_for_epsilon(3.0, 1.0, 1, 1e-5)
    assert epsilon(1.0, sigma, 1, 1e-5) <= 3.0 < epsilon(1.0, sigma * 0.97, 1, 1e-5)
    assert abs(float(noisy.std()) / (2.0 * sigma) - 1) < 0.01
    assert sigma > noise_for_epsilon(8.0, 1.0, 1, 1e-5)  # less budget, more noise


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"sensitivity": 0.0}, ValueError, "sensitivity"),
        ({"epsilon_budget": 0.0}, ValueError, "target_epsilon"),
        ({"delta": 1.5}, ValueError, "delta"),
        ({"value": torch.zeros(3, dtype=torch.long)}, TypeError, "floating-point"),
    ],
)
def test_gaussian_mechanism_refuses_bad_arguments(kw, exc, match):
    args = {"value": torch.zeros(3), "sensitivity": 1.0, "epsilon_budget": 1.0, "delta": 1e-5, **kw}
    with pytest.raises(exc, match=match):
        gaussian_mechanism(args.pop("value"), **args)


def test_loss_is_the_squared_mmd_written_with_kernel_sums():
    """||S/n - S_g/m||^2 expands into the three kernel sums of the (class-matched) MMD^2."""
    cfg = MERFConfig(lengthscale=3.0, n_freq=50, z_dim=2, hidden=8, n_classes=3, dim=784)
    torch.manual_seed(0)
    gen = MERFGenerator(cfg)
    real, ry = torch.rand(9, 1, 28, 28), torch.tensor([0, 1, 2] * 3)
    gen.set_target(gen.embed(real, ry) / 9)
    labels = torch.tensor([0, 0, 1, 2, 2])
    g = torch.Generator().manual_seed(5)
    loss, _ = gen.loss(labels, generator=torch.Generator().manual_seed(5))
    z = torch.randn(5, 2, generator=g)
    fake = gen(z, labels)
    pr, pf = gen.features(real.flatten(1)), gen.features(fake.flatten(1))
    same = lambda a, b: (a[:, None] == b[None]).float()  # noqa: E731
    mmd2 = (
        (pr @ pr.T * same(ry, ry)).sum() / 81
        - 2 * (pr @ pf.T * same(ry, labels)).sum() / 45
        + (pf @ pf.T * same(labels, labels)).sum() / 25
    )
    assert torch.allclose(loss, mmd2, atol=1e-6)


def test_generator_learns_to_match_an_embedding():
    from genai_lib.data import make_loader
    from genai_lib.train import fit

    cfg = MERFConfig(lengthscale=5.0, n_freq=100, z_dim=2, hidden=32, n_classes=2)
    torch.manual_seed(0)
    gen = MERFGenerator(cfg)
    real = torch.zeros(40, 1, 28, 28)
    real[:20, :, :14] = 1.0  # class 0: top half lit; class 1: bottom half lit
    real[20:, :, 14:] = 1.0
    ry = torch.tensor([0] * 20 + [1] * 20)
    gen.set_target(gen.embed(real, ry) / 40)
    loader = make_loader(torch.arange(64) % 2, batch_size=32, generator=torch.Generator().manual_seed(0))
    h = fit(gen, loader, steps=150, lr=1e-2, generator=torch.Generator().manual_seed(0), progress=False)
    assert h.logs["loss"][-1] < 0.1 * h.logs["loss"][0]
    s = gen.sample(20, labels=torch.tensor([0, 1] * 10), generator=torch.Generator().manual_seed(1))
    top, bottom = s[:, 0, :14].mean((1, 2)), s[:, 0, 14:].mean((1, 2))
    assert ((top > bottom) == (torch.arange(20) % 2 == 0)).all()  # each class drawn on its own half


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: MERFConfig(lengthscale=0.0), ValueError, "lengthscale"),
        (lambda: MERFConfig(lengthscale=1.0, n_freq=0), ValueError, "n_freq"),
        (
            lambda: MERFGenerator(MERFConfig(lengthscale=1.0, n_freq=4)).set_target(torch.zeros(4, 10)),
            ValueError,
            "shape",
        ),
        (
            lambda: MERFGenerator(MERFConfig(lengthscale=1.0, n_freq=4)).sample(3, labels=torch.tensor([0, 1, 10])),
            ValueError,
            r"\[0, 10\)",
        ),
        (lambda: RandomFeatures(5, 4, 1.0)(torch.zeros(2, 6)), ValueError, "5 features"),
        (lambda: label_embedding(torch.zeros(3, 4), torch.tensor([0, 1]), 2), ValueError, "labels"),
    ],
)
def test_merf_bad_inputs_are_clear(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
