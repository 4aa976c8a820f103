"""genai_lib.models.gan and train.fit_gan: tiny configs, CPU, seconds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genai_lib import train
from genai_lib.data import make_loader, toy_2d
from genai_lib.models.gan import (
    DCGAN,
    DCGANConfig,
    GANConfig,
    ToyGAN,
    gradient_penalty,
    interpolate,
)
from genai_lib.phases import DivergenceRule
from genai_lib.recipes.gan import ring_experiment
from genai_lib.train_cache import load_or_train

TINY_DC = {"z_dim": 8, "width": 4}


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def _models():
    torch.manual_seed(0)
    return [
        ToyGAN(GANConfig(z_dim=4, hidden=16, depth=2)),
        ToyGAN(GANConfig(z_dim=4, hidden=16, depth=2, loss="wgan-gp", pack=2)),
        DCGAN(DCGANConfig(**TINY_DC)),
        DCGAN(DCGANConfig(**TINY_DC, n_classes=10)),
        DCGAN(DCGANConfig(**TINY_DC, loss="wgan-gp")),
    ]


def _batch(model, n=8):
    if isinstance(model, ToyGAN):
        return toy_2d("ring", n, generator=torch.Generator().manual_seed(0))[0]
    x, y = _images(n)
    return (x, y) if model.cfg.n_classes else x


@pytest.mark.parametrize("model", _models(), ids=["toy-ns", "toy-wgan-pack", "dcgan", "cgan", "wgan"])
def test_shapes_finite_losses_and_gradients(model):
    batch = _batch(model)
    for name, fn in (("d", model.d_loss), ("g", model.g_loss)):
        model.zero_grad(set_to_none=True)
        loss, logs = fn(batch)
        assert loss.dim() == 0 and torch.isfinite(loss), name
        assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values()), name
        loss.backward()
        net = model.discriminator if name == "d" else model.generator
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: no gradient on {pname}"
        if name == "d":  # the D step never trains G
            assert all(p.grad is None for p in model.generator.parameters())
    assert {"d_real", "d_fake"} <= set(model.d_loss(batch)[1])
    out = model.sample(6, generator=torch.Generator().manual_seed(1))
    if isinstance(model, ToyGAN):
        assert out.shape == (6, 2)
    else:
        assert out.shape == (6, 1, 28, 28) and out.min() >= 0 and out.max() <= 1


def test_conditional_generator_gets_gradient_on_class_embedding():
    model = _models()[3]
    loss, _ = model.g_loss(_batch(model))
    loss.backward()
    assert model.label_embed.weight.grad is not None and model.label_embed.weight.grad.abs().sum() > 0
    assert len(model.generator_parameters()) == len(list(model.generator.parameters())) + 1


def test_sample_is_deterministic_given_generator():
    for model in _models():
        a = model.sample(5, generator=torch.Generator().manual_seed(3))
        b = model.sample(5, generator=torch.Generator().manual_seed(3))
        c = model.sample(5, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, c)


def test_conditional_sample_labels():
    model = _models()[3]
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    # same z, different class -> different image; labels as int, list and tensor agree
    assert not torch.allclose(model.generate(z, torch.tensor([1, 1, 1])), model.generate(z, torch.tensor([2, 2, 2])))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(
        model.sample(3, labels=7, generator=g()), model.sample(3, labels=[7, 7, 7], generator=g())
    )


def test_losses_match_the_equations():
    """ns: L_D = -log D(x) - log(1 - D(G(z))), L_G = -log D(G(z)); minimax L_G = log(1 - D(G(z)))."""
    torch.manual_seed(0)
    model = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1))
    x = torch.randn(16, 2)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    fake = model.generate(torch.randn(16, 2, generator=gen()))
    d_real, d_fake = torch.sigmoid(model.critic(x)), torch.sigmoid(model.critic(fake))
    want_d = -(d_real.log().mean() + (1 - d_fake).log().mean())
    torch.testing.assert_close(model.d_loss(x, generator=gen())[0], want_d)
    torch.testing.assert_close(model.g_loss(x, generator=gen())[0], -d_fake.log().mean())
    minimax = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1, loss="minimax"))
    minimax.load_state_dict(model.state_dict())
    torch.testing.assert_close(minimax.g_loss(x, generator=gen())[0], (1 - d_fake).log().mean())


def test_label_smoothing_changes_only_the_real_target():
    torch.manual_seed(0)
    a = DCGAN(DCGANConfig(**TINY_DC))
    b = DCGAN(DCGANConfig(**TINY_DC, label_smoothing=0.1))
    b.load_state_dict(a.state_dict())
    x, _ = _images()
    logit = a.critic(x)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    diff = b.d_loss(x, generator=gen())[0] - a.d_loss(x, generator=gen())[0]
    want = 0.1 * (F.softplus(logit) - F.softplus(-logit)).mean()  # BCE(target 0.9) - BCE(target 1)
    torch.testing.assert_close(diff, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["toy", "dcgan"])
def test_label_smoothing_is_bce_with_real_target_one_minus_s(kind, smoothing):
    """One-sided (Salimans et al. 2016): L_D = BCE(D(x), 1 - s) + BCE(D(G(z)), 0); s = 0 is the plain loss."""
    torch.manual_seed(0)
    if kind == "toy":
        model, x = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1, label_smoothing=smoothing)), torch.randn(16, 2)
    else:
        model, x = DCGAN(DCGANConfig(**TINY_DC, label_smoothing=smoothing)), _images()[0]
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    fake = model._fake(x.shape[0], None, gen())
    real_logit, fake_logit = model.critic(x), model.critic(fake)
    want = F.binary_cross_entropy_with_logits(
        real_logit, torch.full_like(real_logit, 1 - smoothing)
    ) + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    torch.testing.assert_close(model.d_loss(x, generator=gen())[0], want)


def test_label_smoothing_pinned_value():
    """A discriminator that outputs the logit 1 everywhere: L_D = (1 - s) softplus(-1) + s softplus(1) + softplus(1)."""
    values = {}
    for s in (0.0, 0.2):
        model = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1, label_smoothing=s))
        with torch.no_grad():
            model.discriminator[-1].weight.zero_()
            model.discriminator[-1].bias.fill_(1.0)
        values[s] = model.d_loss(torch.randn(8, 2))[0]
    torch.testing.assert_close(values[0.0], torch.tensor(1.626523))  # softplus(-1) + softplus(1)
    torch.testing.assert_close(values[0.2], torch.tensor(1.826523))  # 0.8 * 0.313262 + 1.2 * 1.313262
    assert ToyGAN(GANConfig(label_smoothing=0.1)).g_loss(torch.randn(4, 2))[0].isfinite()  # G's loss is untouched


def test_diffaugment_shifts_what_d_sees_and_keeps_gradients():
    x = _images()[0]
    torch.manual_seed(0)
    plain = DCGAN(DCGANConfig(**TINY_DC))
    torch.manual_seed(0)
    aug = DCGAN(DCGANConfig(**TINY_DC, augment=2))  # same weights: only the augmentation differs
    g = torch.Generator().manual_seed(3)
    seen = []
    aug.discriminator.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    loss, _ = aug.d_loss(x, generator=g)
    assert not torch.equal(seen[0], x)  # the real images were shifted ...
    assert seen[0].shape == x.shape and float(seen[0].sum()) <= float(x.sum()) + 1e-4  # ... zero-filled
    assert plain._augment(x, g) is x  # augment=0: D sees the images untouched
    torch.testing.assert_close(aug.discriminator(x), plain.discriminator(x))  # same D, so the shift made the change
    g_loss, _ = aug.g_loss(x, generator=torch.Generator().manual_seed(4))
    g_loss.backward()  # the shift is differentiable: G still gets a gradient through D
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in aug.generator.parameters())
    assert bool(torch.isfinite(loss))


def test_losses_stay_finite_for_huge_logits():
    torch.manual_seed(0)
    model = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1))
    with torch.no_grad():
        model.discriminator[-1].bias.fill_(1e4)  # D(x) = sigmoid(1e4): log(1 - D) would be -inf
    loss, _ = model.d_loss(torch.randn(8, 2))
    assert torch.isfinite(loss) and loss > 1e3


def test_r1_penalty_adds_half_gamma_squared_gradient_norm():
    torch.manual_seed(0)
    plain = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1))
    r1 = ToyGAN(GANConfig(z_dim=2, hidden=8, depth=1, r1_weight=2.0))
    r1.load_state_dict(plain.state_dict())
    x = torch.randn(16, 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(plain.critic(x).sum(), x)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    diff = r1.d_loss(x.detach(), generator=gen())[0] - plain.d_loss(x.detach(), generator=gen())[0]
    torch.testing.assert_close(diff, 0.5 * 2.0 * grad.square().sum(1).mean())


def test_gradient_penalty_closed_form():
    """critic(x) = w.x has gradient w everywhere: GP = (||w|| - 1)^2."""
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.randn(10, 2), torch.randn(10, 2)
    gp = gradient_penalty(lambda t: t @ w, real, fake, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gp, torch.tensor(16.0))
    assert gradient_penalty(lambda t: t @ (w / 5), real, fake) < 1e-10


def test_discriminator_overfits_one_batch():
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(z_dim=8, width=8))
    x, _ = _images(16)
    x = (x > 0.7).float()
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        loss, _ = model.d_loss(x, generator=gen)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_interpolate_endpoints_and_norm():
    z0, z1 = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    path = interpolate(z0, z1, 5)
    assert path.shape == (5, 16)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(interpolate(z0, z1, 3, spherical=False)[1], (z0 + z1) / 2)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: GANConfig(z_dim=0), ValueError, "z_dim must be > 0"),
        (lambda: GANConfig(loss="hinge"), ValueError, "loss must be one of"),
        (lambda: GANConfig(hidden=1.5), TypeError, "hidden must be an int"),
        (lambda: GANConfig(loss="wgan-gp", r1_weight=1.0), ValueError, "r1_weight applies to"),
        (lambda: DCGANConfig(loss="minimax"), ValueError, "loss must be one of"),
        (lambda: DCGANConfig(n_classes=1), ValueError, "n_classes must be 0"),
        (lambda: DCGANConfig(augment=-1), ValueError, "augment must be >= 0"),
        (lambda: DCGANConfig(augment=8), ValueError, "augment .* at most 7"),
        (lambda: DCGANConfig(augment=1.5), TypeError, "augment must be an int"),
        (lambda: GANConfig(label_smoothing="0.1"), TypeError, "label_smoothing must be a number"),
        (lambda: GANConfig(label_smoothing=True), TypeError, "label_smoothing must be a number"),
        (lambda: GANConfig(label_smoothing=0.5), ValueError, r"label_smoothing must be in \[0, 0.5\)"),
        (lambda: GANConfig(label_smoothing=-0.1), ValueError, r"label_smoothing must be in \[0, 0.5\)"),
        (lambda: GANConfig(loss="wgan-gp", label_smoothing=0.1), ValueError, "wgan-gp has no labels"),
        (lambda: DCGANConfig(label_smoothing=None), TypeError, "label_smoothing must be a number"),
        (lambda: DCGANConfig(label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0, 0.5\)"),
        (lambda: DCGANConfig(loss="wgan-gp", label_smoothing=0.1), ValueError, "wgan-gp has no labels"),
        (lambda: DCGAN(GANConfig()), TypeError, "cfg must be a DCGANConfig"),
        (lambda: DCGAN(DCGANConfig(**TINY_DC)).d_loss(torch.rand(2, 1, 32, 32)), ValueError, r"shape \(N, 1, 28, 28\)"),
        (
            lambda: DCGAN(DCGANConfig(**TINY_DC)).d_loss(torch.rand(2, 1, 28, 28) * 2),
            ValueError,
            r"lie in \[0.0, 1.0\]",
        ),
        (
            lambda: DCGAN(DCGANConfig(**TINY_DC, n_classes=10)).d_loss(torch.rand(2, 1, 28, 28)),
            ValueError,
            "needs labels",
        ),
        (
            lambda: DCGAN(DCGANConfig(**TINY_DC, n_classes=10)).g_loss(
                (torch.rand(2, 1, 28, 28), torch.tensor([0, 10]))
            ),
            ValueError,
            r"labels must lie in \[0, 10\)",
        ),
        (lambda: DCGAN(DCGANConfig(**TINY_DC)).sample(2, labels=3), ValueError, "only accepted by a class-conditional"),
        (lambda: DCGAN(DCGANConfig(**TINY_DC)).sample(0), ValueError, "n must be > 0"),
        (lambda: ToyGAN(GANConfig()).d_loss(torch.randn(4, 3)), ValueError, r"shape \(N, 2\)"),
        (lambda: ToyGAN(GANConfig(pack=4)).d_loss(torch.randn(6, 2)), ValueError, "multiple of pack=4"),
        (lambda: ToyGAN(GANConfig()).d_loss("data"), TypeError, "batch must be a tensor"),
        (lambda: gradient_penalty(lambda t: t.sum(1), torch.randn(3, 2), torch.randn(4, 2)), ValueError, "same shape"),
    ],
)
def test_bad_inputs(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# --------------------------------------------------------------------------- fit_gan


def _ring_loader(seed=0):
    x, _ = toy_2d("ring", 256, generator=torch.Generator().manual_seed(seed))
    return make_loader(x, batch_size=32, generator=torch.Generator().manual_seed(seed))


def _toy(loss="ns"):
    torch.manual_seed(0)
    return ToyGAN(GANConfig(z_dim=4, hidden=16, depth=2, loss=loss))


def test_fit_gan_logs_both_losses_and_counts_steps():
    model = _toy()
    seen = []
    hist = train.fit_gan(
        model,
        _ring_loader(),
        steps=12,
        n_critic=2,
        lr_g=1e-3,
        lr_d=1e-3,
        progress=False,
        callbacks=[lambda s, h: seen.append(s)],
    )
    assert hist.step == list(range(1, 13)) and seen[-1] == 12
    assert {"d_loss", "g_loss", "d_real", "d_fake", "g_fake"} <= set(hist.logs)
    assert all(math.isfinite(v) for v in hist.logs["d_loss"] + hist.logs["g_loss"])
    # epochs: 8 batches per pass, 2 batches per step -> 4 steps per epoch
    assert len(train.fit_gan(_toy(), _ring_loader(), epochs=2, n_critic=2, progress=False).step) == 8


def test_fit_gan_trains_the_generator_towards_the_data():
    model = _toy()
    before = model.sample(256, generator=torch.Generator().manual_seed(0)).norm(dim=1).mean()
    train.fit_gan(model, _ring_loader(), steps=150, lr_g=2e-3, lr_d=2e-3, progress=False)
    after = model.sample(256, generator=torch.Generator().manual_seed(0)).norm(dim=1).mean()
    assert abs(after - 2.0) < 0.5 * abs(before - 2.0)  # points move out towards the radius-2 ring


def test_fit_gan_checkpoint_resume_matches_uninterrupted(tmp_path):
    full = _toy("wgan-gp")
    train.fit_gan(full, _ring_loader(), steps=10, n_critic=2, progress=False)
    part = _toy("wgan-gp")
    ck = tmp_path / "gan.pt"
    train.fit_gan(part, _ring_loader(), steps=6, n_critic=2, checkpoint=ck, progress=False)
    resumed = _toy("wgan-gp")
    hist = train.fit_gan(resumed, _ring_loader(), steps=10, n_critic=2, checkpoint=ck, progress=False)
    assert hist.step[-1] == 10 and len(hist.step) == 10
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{k} differs after resume")


@pytest.mark.parametrize("drop", ["g", "d"])
def test_fit_gan_refuses_a_checkpoint_without_both_optimizers(tmp_path, drop):
    from genai_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    ck = tmp_path / "gan.pt"
    train.fit_gan(_toy("wgan-gp"), _ring_loader(), steps=3, n_critic=2, checkpoint=ck, progress=False)
    state = load_checkpoint(ck)
    del state["optimizers"][drop]
    save_checkpoint(ck, state)
    with pytest.raises(CheckpointError, match=f"no optimizer state for phase\\(s\\) \\['{drop}'\\]"):
        train.fit_gan(_toy("wgan-gp"), _ring_loader(), steps=5, n_critic=2, checkpoint=ck, progress=False)


def test_load_or_train_gan_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    a = _toy()
    h1 = load_or_train(a, _ring_loader(), name="toy", trainer=train.fit_gan, steps=5, progress=False)
    b = _toy()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    h2 = load_or_train(b, _ring_loader(), name="toy", trainer=train.fit_gan, steps=5, progress=False)
    assert not h1.from_cache and h2.from_cache
    torch.testing.assert_close(a.state_dict(), b.state_dict())
    c = _toy()
    assert not load_or_train(c, _ring_loader(), name="toy", trainer=train.fit_gan, steps=6, progress=False).from_cache


def test_fit_gan_stops_on_nan_naming_the_step():
    model = _toy()
    with torch.no_grad():
        model.discriminator[0].weight.fill_(float("nan"))
    with pytest.raises(train.TrainingDivergedError, match="the 'd' phase's loss became nan at step 1"):
        train.fit_gan(model, _ring_loader(), steps=5, progress=False)


def test_fit_gan_detects_a_winning_discriminator():
    class Rigged(ToyGAN):  # D loss ~ 0 and G loss ~ 20 from the start
        def d_loss(self, batch, **kw):
            loss, logs = super().d_loss(batch, **kw)
            return loss * 0 + 1e-5, logs

        def g_loss(self, batch, **kw):
            loss, logs = super().g_loss(batch, **kw)
            return loss * 0 + 20.0, logs

    torch.manual_seed(0)
    model = Rigged(GANConfig(z_dim=4, hidden=8, depth=1))
    rule = DivergenceRule(below={"d_loss": 1e-3}, above={"g_loss": 10.0}, patience=5)
    with pytest.raises(train.TrainingDivergedError, match="diverged at step 5"):
        train.fit_gan(model, _ring_loader(), steps=20, divergence=rule, progress=False)
    assert len(train.fit_gan(model, _ring_loader(), steps=20, divergence=None, progress=False).step) == 20


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"steps": 5, "n_critic": 0}, ValueError, "n_critic must be > 0"),
        ({"steps": 5, "epochs": 1}, ValueError, "exactly one of epochs or steps"),
        ({"steps": 5, "lr_d": 0.0}, ValueError, "lr_d must be > 0"),
        ({"steps": 5, "betas": (0.5, 1.0)}, ValueError, "betas must be two numbers"),
        ({"steps": 5, "checkpoint_every": 2}, ValueError, "checkpoint_every needs a checkpoint path"),
        ({"steps": 5, "divergence": 3}, TypeError, "DivergenceRule or None"),
        ({"steps": 5, "lr_schedule": "linear"}, ValueError, "lr_schedule must be a callable .*, 'cosine' or None"),
    ],
)
def test_fit_gan_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        train.fit_gan(_toy(), _ring_loader(), progress=False, **kwargs)


def test_fit_gan_cosine_schedule_string():
    model = _toy()
    seen = []
    opt_lrs = lambda s, h: seen.append(s)  # noqa: E731
    train.fit_gan(model, _ring_loader(), steps=4, lr_schedule="cosine", callbacks=[opt_lrs], progress=False)
    assert seen == [1, 2, 3, 4]


def test_fit_gan_rejects_models_without_the_gan_contract():
    with pytest.raises(TypeError, match="d_loss"):
        train.fit_gan(torch.nn.Linear(2, 2), _ring_loader(), steps=1)


def test_ring_experiment_configs_are_importable():
    spec = ring_experiment()
    assert set(spec) == {"vanilla", "fixed"}
    for s in spec.values():
        assert isinstance(s["config"], GANConfig) and s["fit"]["steps"] > 0 and s["fit"]["n_critic"] >= 1
