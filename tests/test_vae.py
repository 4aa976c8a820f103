"""Tests for genai_lib.models.vae and the shared 28x28 blocks in genai_lib.models._layers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from genai_lib.data import binarize, load_mnist, make_loader
from genai_lib.models._layers import ConvDecoder28, ConvEncoder28, mlp
from genai_lib.models.vae import VAE, VAEConfig, bernoulli_nll, gaussian_kl, iwae_nll, neg_elbo, random_shift
from genai_lib.train import fit
from genai_lib.widgets import decode_point

SMALL = VAEConfig(arch="mlp", image_shape=(1, 8, 8), z_dim=2, hidden=16, depth=1)
CONV = VAEConfig(arch="conv", z_dim=3, width=4)


def binary_images(n: int, shape: tuple[int, int, int], seed: int = 0, block: int = 1) -> torch.Tensor:
    """Random black/white images (in blocks of ``block`` x ``block`` pixels): easy to memorise."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    coarse = (torch.rand(n, c, h // block, w // block, generator=g) > 0.5).float()
    return coarse.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)


def make(cfg: VAEConfig, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(cfg)


# --------------------------------------------------------------------------- shared layers


def test_conv_blocks_shapes_and_mlp():
    torch.manual_seed(0)
    assert ConvEncoder28(7, width=4)(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    for norm in (False, True):
        assert ConvDecoder28(5, width=4, norm=norm)(torch.randn(3, 5)).shape == (3, 1, 28, 28)
    net = mlp([6, 8, 8, 2], final_activation=nn.Sigmoid)
    out = net(torch.randn(4, 6))
    assert out.shape == (4, 2)
    assert bool(((out > 0) & (out < 1)).all())
    assert sum(isinstance(m, nn.ReLU) for m in net) == 2  # hidden layers only
    assert sum(isinstance(m, nn.Linear) for m in mlp([3, 4])) == 1


@pytest.mark.parametrize(
    ("build", "exc", "match"),
    [
        (lambda: mlp([5]), ValueError, "at least 2 sizes"),
        (lambda: mlp([5, 0, 2]), ValueError, r"sizes\[1\] must be > 0"),
        (lambda: ConvEncoder28(0), ValueError, "out_dim must be > 0"),
        (lambda: ConvDecoder28(4, width=-1), ValueError, "width must be > 0"),
        (lambda: ConvEncoder28(4)(torch.rand(2, 1, 32, 32)), ValueError, r"\(B, 1, 28, 28\)"),
        (lambda: ConvDecoder28(4)(torch.rand(2, 3)), ValueError, r"\(B, 4\)"),
    ],
)
def test_layers_bad_input(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# --------------------------------------------------------------------------- the KL term


def test_gaussian_kl_pinned_values():
    zero = torch.zeros(3, 4)
    torch.testing.assert_close(gaussian_kl(zero, zero), torch.zeros(3))
    # mu = (1, 2), sigma = 1: KL = (1 + 4) / 2
    torch.testing.assert_close(gaussian_kl(torch.tensor([1.0, 2.0]), torch.zeros(2)), torch.tensor(2.5))
    # mu = 0, sigma^2 = 4: KL = (4 - log 4 - 1) / 2 per dimension
    want = 0.5 * (4 - math.log(4) - 1)
    torch.testing.assert_close(
        gaussian_kl(torch.zeros(1, 3), torch.full((1, 3), math.log(4))), torch.tensor([3 * want])
    )
    # sigma^2 = 1/e: KL = (1/e + 1 - 1) / 2
    torch.testing.assert_close(gaussian_kl(torch.zeros(1), torch.full((1,), -1.0)), torch.tensor(0.5 / math.e))


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(-1))
    assert bool((gaussian_kl(mu, logvar) > 0).all())


def test_gaussian_kl_matches_monte_carlo():
    mu, logvar = torch.tensor([0.7, -1.2]), torch.tensor([-0.5, 0.4])
    g = torch.Generator().manual_seed(0)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 2, generator=g)  # z ~ q
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    mc = (log_q - log_p).mean()
    closed = gaussian_kl(mu, logvar)
    assert abs(float(mc - closed)) < 0.02, (float(mc), float(closed))


# --------------------------------------------------------------------------- reparameterization


def test_reparameterization_gradients_reach_mu_and_logvar():
    model = make(SMALL)
    mu = torch.tensor([[0.3, -0.2]], requires_grad=True)
    logvar = torch.tensor([[0.1, -0.4]], requires_grad=True)
    z = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(3))
    z.sum().backward()
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z.detach(), mu.detach() + (0.5 * logvar.detach()).exp() * eps)
    torch.testing.assert_close(mu.grad, torch.ones(1, 2))  # dz/dmu = 1
    torch.testing.assert_close(logvar.grad, 0.5 * (0.5 * logvar.detach()).exp() * eps)  # dz/dlogvar
    # Naive sampling: torch.normal gives no useful gradient to the parameters.
    mu2 = mu.detach().clone().requires_grad_(True)
    torch.normal(mu2, torch.ones(1, 2)).sum().backward()
    assert mu2.grad is None or float(mu2.grad.abs().sum()) == 0.0


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("cfg", [SMALL, CONV], ids=["mlp", "conv"])
def test_shapes_ranges_and_gradients(cfg):
    model = make(cfg)
    x = binary_images(5, cfg.image_shape)
    logits, mu, logvar = model(x)
    assert logits.shape == (5, *cfg.image_shape)
    assert mu.shape == logvar.shape == (5, cfg.z_dim)
    assert model.decode(torch.zeros(2, cfg.z_dim)).shape == (2, *cfg.image_shape)
    rec = model.reconstruct(x)
    smp = model.sample(6, generator=torch.Generator().manual_seed(0))
    for img in (rec, smp):
        assert img.shape[1:] == cfg.image_shape
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    loss, logs = model.loss((x, torch.zeros(5)))  # (images, labels) batches work too
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    assert set(logs) == {"recon", "kl", "neg_elbo"}
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, f"no gradient reaches {name}"


def test_loss_is_the_equation():
    cfg = dataclasses.replace(SMALL, beta=0.25)
    model = make(cfg)
    x = binary_images(4, cfg.image_shape, seed=1) * 0.8 + 0.1  # grey values are allowed
    torch.manual_seed(5)
    loss, logs = model.loss(x)
    torch.manual_seed(5)  # the same eps
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    p = torch.sigmoid(model.decode(z))
    recon = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(model.decode(z), x), recon, rtol=1e-4, atol=1e-4)
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)  # K&W Appendix B, as usually written
    torch.testing.assert_close(loss, (recon + 0.25 * kl).mean(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logs["neg_elbo"], (recon + kl).mean(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logs["kl"], kl.mean(), rtol=1e-4, atol=1e-4)


def test_same_generator_same_sample_and_eval():
    model = make(SMALL)
    a = model.sample(4, generator=torch.Generator().manual_seed(7))
    b = model.sample(4, generator=torch.Generator().manual_seed(7))
    c = model.sample(4, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    x = binary_images(10, SMALL.image_shape)
    e1 = neg_elbo(model, x, generator=torch.Generator().manual_seed(0))
    e2 = neg_elbo(model, make_loader(x, batch_size=10, shuffle=False), generator=torch.Generator().manual_seed(0))
    e3 = neg_elbo(model, make_loader(x, batch_size=3, shuffle=False), generator=torch.Generator().manual_seed(0))
    assert math.isfinite(e1) and e1 > 0
    assert e1 == e2  # the same noise for the same images: a reproducible number
    assert abs(e1 - e3) < 0.02 * e1  # other batching: other noise, about the same value
    assert model.training  # neg_elbo restores the mode


def test_random_shift_moves_each_image_by_at_most_max_shift():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0  # a 2x2 blob in the middle
    out = random_shift(x, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # the blob never leaves the image
    offsets = set()
    for img in out[:, 0]:
        r, c = (img > 0).nonzero()[0].tolist()
        offsets.add((r - 3, c - 3))
        assert abs(r - 3) <= 2 and abs(c - 3) <= 2
    assert len(offsets) > 10  # many different shifts were drawn
    torch.testing.assert_close(random_shift(x, 2, generator=torch.Generator().manual_seed(0)), out)
    torch.testing.assert_close(random_shift(x, 0), x)


def test_shift_augmentation_only_in_training():
    model = make(dataclasses.replace(SMALL, shift=1)).eval()
    plain = make(SMALL).eval()  # the same initial weights
    x = binary_images(6, SMALL.image_shape)
    torch.manual_seed(0)
    a = model.loss(x)[0]
    torch.manual_seed(0)
    b = plain.loss(x)[0]
    torch.testing.assert_close(a, b)  # in eval mode the shift config changes nothing
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model.loss(x)[0], a)


def test_decode_mean_works_with_the_slider_callback():
    model = make(SMALL)
    img = decode_point(model.decode_mean, [0.5, -1.0])
    assert img.shape == (8, 8)
    assert img.min() >= 0 and img.max() <= 1


@pytest.mark.parametrize("cfg", [SMALL, CONV], ids=["mlp", "conv"])
def test_overfit_one_batch(cfg):
    cfg = dataclasses.replace(cfg, z_dim=4, hidden=64)
    model = make(cfg)
    x = binary_images(8, cfg.image_shape, seed=2, block=cfg.image_shape[1] // 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    first = float(model.loss(x)[0].detach())
    for _ in range(100):
        loss, _ = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = float(model.loss(x)[0].detach())
    assert last < 0.5 * first, (first, last)


def test_fit_resume_after_interruption_equals_uninterrupted(tmp_path):
    x = binary_images(24, SMALL.image_shape, seed=4)

    def run(checkpoint=None, stop_at=None):
        model = make(SMALL, seed=11)
        loader = make_loader(x, batch_size=8, generator=torch.Generator().manual_seed(2))

        class Stop(Exception):
            pass

        def interrupt(step, _history):
            if stop_at is not None and step == stop_at:
                raise Stop

        torch.manual_seed(99)  # reparameterization noise: global RNG; a resume must restore its step-10 state
        try:
            every = None if checkpoint is None else 5
            fit(
                model,
                loader,
                steps=20,
                lr=1e-2,
                checkpoint=checkpoint,
                checkpoint_every=every,
                progress=False,
                log_every=1,  # callbacks run at every step
                callbacks=[interrupt],
            )
        except Stop:
            return None
        return model

    straight = run()
    ckpt = tmp_path / "vae.pt"
    assert run(ckpt, stop_at=12) is None  # interrupted after the step-10 checkpoint was written
    resumed = run(ckpt)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_unchanged():
    model = make(CONV).to("cuda")
    x = binary_images(4, CONV.image_shape)  # on the CPU: the model moves it
    loss, _ = model.loss(x.cuda())
    loss.backward()
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).device.type == "cuda"
    assert model.reconstruct(x).device.type == "cuda"
    assert math.isfinite(neg_elbo(model, x))


# --------------------------------------------------------------------------- bad input


def _model() -> VAE:
    return make(SMALL)


X = binary_images(2, SMALL.image_shape)

BAD = [
    (lambda: VAEConfig(arch="gan"), ValueError, r"arch must be one of \('mlp', 'conv'\)"),
    (lambda: VAEConfig(z_dim=0), ValueError, "z_dim must be > 0"),
    (lambda: VAEConfig(z_dim=2.5), TypeError, "z_dim must be an int"),
    (lambda: VAEConfig(hidden=-8), ValueError, "hidden must be > 0"),
    (lambda: VAEConfig(depth=0), ValueError, "depth must be > 0"),
    (lambda: VAEConfig(beta=-0.5), ValueError, "beta must be >= 0"),
    (lambda: VAEConfig(beta=float("inf")), ValueError, "beta must be finite"),
    (lambda: VAEConfig(shift=-1), ValueError, "shift must be >= 0"),
    (lambda: VAEConfig(image_shape=(1, 8, 8), shift=4), ValueError, "shift must be less than half the image size"),
    (lambda: random_shift(torch.zeros(2, 8, 8), 1), ValueError, r"x must have shape \(B, C, H, W\)"),
    (lambda: VAEConfig(image_shape=(28, 28)), ValueError, r"image_shape must be a \(C, H, W\)"),
    (lambda: VAEConfig(image_shape=(1, 0, 28)), ValueError, "image_shape H must be > 0"),
    (lambda: VAEConfig(arch="conv", image_shape=(1, 8, 8)), ValueError, r"needs image_shape \(1, 28, 28\)"),
    (lambda: VAE({"arch": "mlp"}), TypeError, "cfg must be a VAEConfig"),
    (lambda: _model().encode(torch.rand(2, 1, 28, 28)), ValueError, r"x must have shape \(N, 1, 8, 8\)"),
    (lambda: _model().loss(torch.rand(2, 64)), ValueError, r"x must have shape \(N, 1, 8, 8\)"),
    (lambda: _model().loss((X * 255).to(torch.uint8)), TypeError, "x must be a floating-point tensor"),
    (lambda: _model().loss(X * 255), ValueError, r"x must lie in \[0.0, 1.0\]"),
    (lambda: _model().reconstruct(X - 0.5), ValueError, r"x must lie in \[0.0, 1.0\]"),
    (lambda: _model().loss(X.masked_fill(X > 0.5, float("nan"))), ValueError, "x contains NaN"),
    (lambda: _model().loss(X.numpy()), TypeError, "batch must be a tensor"),
    (lambda: _model().loss(X[:0]), ValueError, "x is empty"),
    (lambda: _model().decode(torch.zeros(3, 5)), ValueError, r"z must have shape \(N, 2\)"),
    (lambda: _model().decode_mean(torch.zeros(2)), ValueError, r"z must have shape \(N, 2\)"),
    (lambda: _model().decode(torch.zeros(3, 2, dtype=torch.long)), TypeError, "z must be a floating-point"),
    (lambda: _model().sample(0), ValueError, "n must be > 0"),
    (lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "same shape"),
    (lambda: bernoulli_nll(torch.zeros(2, 1, 8, 8), X[:, 0]), ValueError, r"same shape \(B, ...\)"),
    (lambda: neg_elbo(nn.Linear(2, 2), X), TypeError, "model must be a VAE"),
    (lambda: neg_elbo(_model(), []), ValueError, "no images"),
    (lambda: VAEConfig(binarize=1), TypeError, "binarize must be True or False"),
    (lambda: iwae_nll(_model(), X, k=0), ValueError, "k must be > 0"),
    (lambda: iwae_nll(nn.Linear(2, 2), X, k=2), TypeError, "model must be a VAE"),
    (lambda: iwae_nll(_model(), [], k=2), ValueError, "no images"),
    (lambda: iwae_nll(_model(), X * 2, k=2), ValueError, r"x must lie in \[0.0, 1.0\]"),
    (lambda: binarize((X * 255).to(torch.uint8)), TypeError, "float tensor of grey levels"),
    (lambda: binarize(X.numpy()), TypeError, "float tensor of grey levels"),
    (lambda: binarize(X + 0.5), ValueError, r"grey levels in \[0, 1\]"),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD, ids=[f"case{i}" for i in range(len(BAD))])
def test_bad_input_is_refused_clearly(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- binarised MNIST and the IWAE bound


def test_binarize_is_seeded_binary_and_unbiased():
    x = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = binarize(x, generator=torch.Generator().manual_seed(3))
    b = binarize(x, generator=torch.Generator().manual_seed(3))
    c = binarize(x, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)  # a seeded generator: a fixed binarised set
    assert not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and a.shape == x.shape and a.dtype == x.dtype
    assert abs(float(a.mean() - x.mean())) < 0.02  # each pixel is 1 with probability x
    torch.testing.assert_close(binarize(torch.ones(3, 4)), torch.ones(3, 4))  # 0 and 1 are kept
    torch.testing.assert_close(binarize(torch.zeros(3, 4)), torch.zeros(3, 4))


def test_dynamic_binarisation_only_in_training():
    cfg = dataclasses.replace(SMALL, binarize=True)
    x = torch.rand(16, *SMALL.image_shape, generator=torch.Generator().manual_seed(0))
    model, plain = make(cfg), make(SMALL)  # the same weights
    torch.manual_seed(5)
    loss_bin, _ = model.train().loss(x)
    torch.manual_seed(5)
    xb = (torch.rand(x.shape) < x).float()  # the draw the training loss makes first
    loss_plain, _ = plain.train().loss(xb)
    torch.testing.assert_close(loss_bin, loss_plain)
    torch.manual_seed(6)
    eval_bin, _ = model.eval().loss(x)
    torch.manual_seed(6)
    eval_plain, _ = plain.eval().loss(x)
    torch.testing.assert_close(eval_bin, eval_plain)  # evaluation never binarises


def _log_weights(model: VAE, x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for k samples, written with torch.distributions: (k, B)."""
    normal = torch.distributions.Normal
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        std = (0.5 * logvar).exp()
        eps = torch.randn((k, *mu.shape), generator=g)
        z = mu + std * eps
        logits = model.decode(z.flatten(0, 1)).view(k, *x.shape)
        log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(2).sum(-1)
        return log_px + normal(0.0, 1.0).log_prob(z).sum(-1) - normal(mu, std).log_prob(z).sum(-1)


def test_iwae_matches_the_formula_and_its_k1_mean_is_the_elbo():
    model = make(SMALL).eval()
    x = binary_images(64, SMALL.image_shape)
    for k in (1, 7):
        lw = _log_weights(model, x, k, seed=2)
        expected = float(-(torch.logsumexp(lw, 0) - math.log(k)).mean())
        # chunk 3 splits the 7 samples unevenly: the same draws in the same order
        got = iwae_nll(model, x, k=k, generator=torch.Generator().manual_seed(2), chunk=3, batch_size=64)
        assert got == pytest.approx(expected, rel=1e-5)
    # k = 1 estimates the KL with the sample itself; its mean over many draws is the closed-form ELBO
    many = iwae_nll(model, x.repeat(50, 1, 1, 1), k=1, generator=torch.Generator().manual_seed(0))
    elbo = neg_elbo(model, x.repeat(50, 1, 1, 1), generator=torch.Generator().manual_seed(0))
    assert many == pytest.approx(elbo, abs=0.3)


def test_iwae_bound_tightens_with_k_on_a_trained_model():
    x, y = load_mnist("train", limit=300)
    xb = binarize(x, generator=torch.Generator().manual_seed(0))
    cfg = VAEConfig(arch="mlp", z_dim=4, hidden=64, depth=1, binarize=True)
    model = make(cfg)
    fit(model, make_loader(x, y, batch_size=50, generator=torch.Generator().manual_seed(0)), epochs=6, lr=3e-3)
    nll = [iwae_nll(model, xb, k=k, generator=torch.Generator().manual_seed(1)) for k in (1, 10, 100)]
    assert nll[0] > nll[1] > nll[2], nll  # E[L_k] rises with k (Burda et al. 2016, Theorem 1)
    assert nll[0] - nll[2] > 1.0  # by a visible margin: q is not the true posterior
    assert nll[2] < 543.0  # learned something: below a coin flip per pixel (784 log 2)
