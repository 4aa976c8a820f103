"""Tests for the chapter-6 noise process, samplers and networks: genai_lib.models.diffusion,
genai_lib.models.flow and genai_lib.models.unet (tiny configs, synthetic data, CPU)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from genai_lib.data import make_loader, toy_2d
from genai_lib.models.diffusion import (
    DiffusionConfig,
    GaussianDiffusion,
    LatentGenerator,
    NoiseSchedule,
    cosine_alpha_bar,
    linear_betas,
)
from genai_lib.models.flow import FlowConfig, FlowMatching, euler, heun, ode_path
from genai_lib.models.unet import (
    MLPDenoiser,
    MLPDenoiserConfig,
    UNet,
    UNetConfig,
    guided,
    null_labels,
    timestep_embedding,
)
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.train import fit

TINY_UNET = UNetConfig(width=8, mults=(1, 2), groups=4, heads=2, image_shape=(1, 8, 8))
TINY_MLP = MLPDenoiserConfig(dim=2, hidden=32, depth=2, emb_dim=16)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, shape=(1, 8, 8), seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=gen(seed))


# --------------------------------------------------------------------------- schedules: closed forms


def test_linear_schedule_pinned():
    s = NoiseSchedule.make("linear", 1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert s.T == 1000 and s.alpha_bar.shape == (1001,) and float(s.alpha_bar[0]) == 1.0
    expected = float(torch.prod(1 - betas))
    assert math.isclose(expected, 4.0358e-5, rel_tol=1e-3)  # Ho et al.'s schedule: x_T is almost pure noise
    assert math.isclose(float(s.alpha_bar[-1]), expected, rel_tol=1e-4)
    torch.testing.assert_close(s.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    # other lengths are scaled by 1000 / T (Nichol & Dhariwal's convention)
    torch.testing.assert_close(linear_betas(100)[[0, -1]], torch.tensor([1e-3, 0.2], dtype=torch.float64))


def test_cosine_schedule_pinned_at_its_ends():
    T, s0 = 1000, 0.008
    s = NoiseSchedule.make("cosine", T)
    f = lambda t: math.cos((t / T + s0) / (1 + s0) * math.pi / 2) ** 2  # noqa: E731
    assert math.isclose(float(s.alpha_bar[1]), f(1) / f(0), rel_tol=1e-6)  # the first step adds very little
    assert float(s.alpha_bar[1]) > 0.9999
    assert math.isclose(float(s.alpha_bar[T // 2]), f(T // 2) / f(0), rel_tol=1e-5)  # no clipping in the middle
    closed = cosine_alpha_bar(T)
    assert float(closed[-1]) < 1e-30  # f(T) = cos(pi/2)^2 = 0: the closed form ends at exactly no signal
    assert math.isclose(float(s.betas[-1]), 0.999, rel_tol=1e-6)  # so the last beta is clipped (N&D eq. 17)
    assert math.isclose(float(s.alpha_bar[-1]), float(closed[-2]) * 0.001, rel_tol=1e-4)
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())


def test_from_alpha_bar_round_trip_and_not_monotone():
    s = NoiseSchedule.make("cosine", 50)
    again = NoiseSchedule.from_alpha_bar(s.alpha_bar.double())
    torch.testing.assert_close(again.alpha_bar, s.alpha_bar)
    with pytest.raises(ValueError, match="not monotone"):
        NoiseSchedule.from_alpha_bar([1.0, 0.9, 0.95, 0.2])
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\)"):
        NoiseSchedule([0.1, -0.1, 0.2])
    with pytest.raises(ValueError, match="need 0 < beta < 1"):
        linear_betas(10)  # 1000/10 * 0.02 = 2


def test_schedules_are_buffers():
    m = GaussianDiffusion(DiffusionConfig(TINY_MLP, steps=20))
    names = {n for n, _ in m.named_buffers()}
    assert {"schedule.betas", "schedule.alpha_bar"} <= names
    assert "schedule.alpha_bar" in m.state_dict()


# --------------------------------------------------------------------------- the forward process and posterior


def test_q_sample_statistics():
    s = NoiseSchedule.make("linear", 100)
    x0 = torch.tensor([[1.5, -0.5]]).repeat(200_000, 1)
    t = 40
    xt = s.q_sample(x0, t, generator=gen(1))
    a = float(s.alpha_bar[t])
    torch.testing.assert_close(xt.mean(0), math.sqrt(a) * x0[0], atol=0.01, rtol=0)
    torch.testing.assert_close(xt.var(0), torch.full((2,), 1 - a), atol=0.01, rtol=0)
    assert abs(float(torch.corrcoef(xt.T)[0, 1])) < 0.01  # independent coordinates
    torch.testing.assert_close(s.q_sample(x0[:3], 0, generator=gen(2)), x0[:3])  # t = 0 is the data


@pytest.mark.parametrize("jump", [1, 7])
def test_posterior_matches_monte_carlo(jump):
    """Draw (x_{t'}, x_t) from the forward chain for one x_0; the regression of x_{t'} on x_t is
    linear with the posterior's coefficients, and its residual variance is betatilde."""
    s = NoiseSchedule.make("cosine", 100)
    t, tp, x0, n = 60, 60 - jump, 0.7, 400_000
    g = gen(3)
    x_prev = s.q_sample(torch.full((n, 1), x0), tp, generator=g)  # q(x_{t'} | x_0)
    a, a_prev = float(s.alpha_bar[t]), float(s.alpha_bar[tp])
    x_t = math.sqrt(a / a_prev) * x_prev + math.sqrt(1 - a / a_prev) * torch.randn(n, 1, generator=g)
    cov = torch.cov(torch.cat([x_prev, x_t], 1).T.double())
    slope = float(cov[0, 1] / cov[1, 1])
    intercept = float(x_prev.mean() - slope * x_t.mean())
    resid = float(cov[0, 0] - slope * cov[0, 1])
    # the library's posterior at two points gives its slope and intercept
    pts = torch.tensor([[0.0], [1.0]])
    mean, var = s.posterior(torch.full((2, 1), x0), pts, torch.tensor([t, t]), torch.tensor([tp, tp]))
    assert math.isclose(float(mean[1] - mean[0]), slope, abs_tol=3e-3)
    assert math.isclose(float(mean[0]), intercept, abs_tol=3e-3)
    assert math.isclose(float(var[0]), resid, rel_tol=0.02)
    if jump == 1:  # and its closed form, Ho et al. eq. 7
        beta = float(s.betas[t - 1])
        assert math.isclose(float(var[0]), (1 - a_prev) / (1 - a) * beta, rel_tol=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_predictions_convert_both_ways(prediction):
    s = NoiseSchedule.make("cosine", 100)
    x0, eps = torch.randn(5, 3, generator=gen(0)), torch.randn(5, 3, generator=gen(1))
    t = torch.tensor([1, 10, 50, 90, 100])
    xt = s.q_sample(x0, t, eps)
    x0_hat, eps_hat = s.split(s.target(x0, eps, t, prediction), xt, t, prediction)
    torch.testing.assert_close(x0_hat, x0, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(eps_hat, eps, atol=2e-4, rtol=1e-4)


def test_ddim_with_eta_one_is_the_ddpm_step():
    s = NoiseSchedule.make("linear", 100)
    x0, eps, z = (torch.randn(4, 2, generator=gen(i)) for i in range(3))
    t, tp = 80, 60
    xt = s.q_sample(x0, t, eps)
    ddpm = s.ddpm_step(xt, t, tp, x0, z)
    ddim = s.ddim_step(xt, t, tp, x0, eps, eta=1.0, noise=z)
    torch.testing.assert_close(ddim, ddpm, atol=1e-5, rtol=1e-5)
    # eta = 0 at the last step returns the predicted x0; timesteps run from T to 0
    torch.testing.assert_close(s.ddim_step(xt, t, 0, x0, eps), x0)
    assert s.timesteps(4) == [100, 75, 50, 25, 0]


# --------------------------------------------------------------------------- the networks


@pytest.mark.parametrize(
    "cfg",
    [
        TINY_UNET,
        dataclasses.replace(TINY_UNET, n_classes=3, attention=False),
        UNetConfig(width=8, mults=(1, 2), groups=4, heads=2, patch=2, n_classes=10),
        UNetConfig(width=8, mults=(1, 2, 2), groups=4, heads=2, blocks=2),
    ],
)
def test_unet_shapes_and_gradients_reach_every_parameter(cfg):
    torch.manual_seed(0)
    net = UNet(cfg)
    x = torch.randn(3, *cfg.image_shape)
    labels = torch.tensor([0, 1, cfg.n_classes]) if cfg.n_classes else None
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(3):  # zero-initialised output and residual convs open up over the first two steps
        opt.zero_grad()
        out = net(x, torch.rand(3), labels)
        assert out.shape == x.shape
        (out - x).square().mean().backward()
        opt.step()
    dead = [n for n, p in net.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert not dead, f"no gradient reached {dead}"


def test_unet_and_mlp_overfit_one_batch():
    torch.manual_seed(0)
    for net, x in ((UNet(TINY_UNET), torch.randn(8, 1, 8, 8)), (MLPDenoiser(TINY_MLP), torch.randn(16, 2))):
        t, target = torch.rand(len(x)), torch.randn_like(x)
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        first = None
        for _ in range(150):
            opt.zero_grad()
            loss = (net(x, t) - target).square().mean()
            first = first if first is not None else float(loss.detach())
            loss.backward()
            opt.step()
        assert float(loss.detach()) < 0.5 * first


def test_diffusion_loss_overfits_one_batch_with_fixed_noise():
    torch.manual_seed(0)
    m = GaussianDiffusion(DiffusionConfig(TINY_UNET, steps=50))
    x = images(8)
    opt = torch.optim.Adam(m.denoiser.parameters(), 3e-3)
    losses = []
    for _ in range(120):
        opt.zero_grad()
        loss, _ = m.loss(x, generator=gen(0))  # the same t and noise every step: a fixed objective
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0.0, 0.5]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.zeros(2), 7)


def test_guidance_scale_zero_is_unconditional_one_is_conditional():
    torch.manual_seed(0)
    net = MLPDenoiser(dataclasses.replace(TINY_MLP, n_classes=3))
    nn.init.normal_(net.out[1].weight)  # a non-zero output layer, so the labels matter
    x, t, y = torch.randn(4, 2), torch.rand(4), torch.tensor([0, 1, 2, 1])
    uncond, cond = net(x, t, null_labels(4, 3)), net(x, t, y)
    assert not torch.allclose(uncond, cond)
    torch.testing.assert_close(guided(net, x, t, y, 0.0), uncond)
    torch.testing.assert_close(guided(net, x, t, None, 3.0), uncond)
    torch.testing.assert_close(guided(net, x, t, y, 1.0), cond)
    torch.testing.assert_close(guided(net, x, t, y, 2.5), uncond + 2.5 * (cond - uncond), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="guidance scale must be >= 0"):
        guided(net, x, t, y, -1.0)


# --------------------------------------------------------------------------- trained toy models


@pytest.fixture(scope="module")
def ring_models():
    """A diffusion model and a flow trained briefly on the 8-Gaussian ring (a few seconds)."""
    x, _ = toy_2d("ring", 4000, generator=gen(0))
    loader = make_loader(x, batch_size=256, generator=gen(0))
    torch.manual_seed(0)
    dm = GaussianDiffusion(DiffusionConfig(TINY_MLP, steps=100, schedule="linear", ema_decay=0.9))
    fm = FlowMatching(FlowConfig(TINY_MLP, ema_decay=0.9))
    hist = {}
    for name, m in (("dm", dm), ("fm", fm)):
        hist[name] = fit(m, loader, steps=300, lr=3e-3, hooks=[m.ema], generator=gen(1), progress=False)
    return dm, fm, hist


def test_training_through_fit_with_ema(ring_models):
    dm, fm, hist = ring_models
    for m, h in ((dm, hist["dm"]), (fm, hist["fm"])):
        first, last = sum(h["loss"][:20]) / 20, sum(h["loss"][-20:]) / 20
        assert last < 0.8 * first
        assert int(m.ema.updates) == 300
        live, avg = next(m.denoiser.parameters()), next(m.ema.shadow.parameters())
        assert not avg.requires_grad and not torch.equal(live, avg)
    samples = dm.sample(500, steps=50, generator=gen(2))
    assert samples.shape == (500, 2) and samples.device.type == "cpu"
    assert float(samples.norm(dim=1).median()) == pytest.approx(2.0, abs=0.4)  # on the ring's radius


def test_ddim_eta0_is_deterministic_and_invertible(ring_models):
    dm, _, _ = ring_models
    noise = torch.randn(64, 2, generator=gen(5))
    a = dm.sample(64, steps=100, noise=noise, generator=gen(1))
    b = dm.sample(64, steps=100, noise=noise, generator=gen(2))  # eta = 0: the generator is never used
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    x = toy_2d("ring", 64, generator=gen(9))[0]
    z = dm.encode(x, steps=100)
    back = dm.sample(64, steps=100, noise=z)
    assert float((back - x).norm(dim=1).median()) < 0.05  # the ODE run backwards and forwards again
    assert float((z - noise).std()) > 0.1  # and z is a different point from a random one


def test_flow_encode_then_sample_returns_the_data(ring_models):
    _, fm, _ = ring_models
    x = toy_2d("ring", 64, generator=gen(9))[0]
    z = fm.encode(x, steps=100, method="heun")
    back = fm.sample(64, steps=100, method="heun", noise=z)
    assert float((back - x).norm(dim=1).median()) < 0.02


def test_same_generator_same_samples(ring_models):
    dm, fm, _ = ring_models
    for kw in ({"method": "ddpm"}, {"method": "ddim", "eta": 0.5}, {}):
        a, b = dm.sample(10, steps=20, generator=gen(3), **kw), dm.sample(10, steps=20, generator=gen(3), **kw)
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        c = dm.sample(10, steps=20, generator=gen(4), **kw)
        assert not torch.equal(a, c)
    torch.testing.assert_close(fm.sample(10, generator=gen(3)), fm.sample(10, generator=gen(3)), atol=0, rtol=0)


def test_trajectory_ends_at_the_sample(ring_models):
    dm, fm, _ = ring_models
    path = dm.trajectory(6, steps=10, generator=gen(1))
    assert path["x"].shape == (11, 6, 2) and path["x0"].shape == (10, 6, 2) and path["t"][0] == 100
    torch.testing.assert_close(path["x"][-1], dm.sample(6, steps=10, generator=gen(1)))
    fpath = fm.trajectory(6, steps=8, method="heun", generator=gen(1))
    assert fpath["x"].shape == (9, 6, 2) and fpath["t"][-1] == 1.0
    torch.testing.assert_close(fpath["x"][-1], fm.sample(6, steps=8, method="heun", generator=gen(1)))


# --------------------------------------------------------------------------- the samplers on known fields


def test_euler_is_exact_for_the_linear_field_of_one_data_point():
    """With a single data point x1, the OT path's marginal velocity is (x1 - x) / (1 - t): linear
    in x, with straight trajectories, which Euler follows exactly with any number of steps."""
    x1 = torch.tensor([[2.0, -1.0, 0.5]])
    v = lambda x, t: (x1 - x) / (1 - t)  # noqa: E731
    x0 = torch.randn(5, 3, generator=gen(0))
    for steps in (1, 3, 10):
        torch.testing.assert_close(euler(v, x0, steps), x1.expand(5, 3), atol=1e-6, rtol=0)
    const = torch.tensor([0.3, -0.2, 1.0])
    torch.testing.assert_close(euler(lambda x, t: const.expand_as(x), x0, 7), x0 + const)


def test_heun_is_second_order_euler_first():
    x0 = torch.ones(1, 1)
    exact = math.e  # dx/dt = x from 0 to 1
    err = {
        (m, s): abs(float(ode_path(lambda x, t: x, x0, s, m)[-1]) - exact) for m in ("euler", "heun") for s in (10, 20)
    }
    assert err["euler", 10] / err["euler", 20] == pytest.approx(2, rel=0.1)
    assert err["heun", 10] / err["heun", 20] == pytest.approx(4, rel=0.1)
    torch.testing.assert_close(heun(lambda x, t: x, x0, 20), torch.tensor([[exact]]), atol=2e-3, rtol=0)


class _ExactGaussianEps(nn.Module):
    """The optimal noise predictor for N(0, I) data: E[eps | x_t] = sqrt(1 - abar_t) x_t."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.cfg = TINY_MLP

    def forward(self, x, t, labels=None):
        steps = (t * self.schedule.T).round().long()
        return (1 - self.schedule.alpha_bar[steps])[:, None].sqrt() * x


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_score_of_the_exact_denoiser_for_gaussian_data(scale):
    """For data N(0, scale^2 I), q_t stays N(0, scale^2 I) in data space... in model space it is
    N(0, I) at every t, so the score is -x / scale^2 in data space."""
    m = GaussianDiffusion(DiffusionConfig(TINY_MLP, steps=100, data_scale=scale))
    m.ema.shadow = _ExactGaussianEps(m.schedule)
    x = torch.randn(6, 2, generator=gen(0)) * scale
    torch.testing.assert_close(m.score(x, 30), -x / scale**2, atol=1e-5, rtol=1e-5)
    s = m.sample(20_000, steps=50, generator=gen(1))  # the exact denoiser samples the data distribution
    assert float(s.std()) == pytest.approx(scale, rel=0.03)


# --------------------------------------------------------------------------- images, labels, latents


def test_image_models_sample_in_range_with_labels_and_guidance():
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY_UNET, n_classes=3)
    for m in (
        GaussianDiffusion(DiffusionConfig(cfg, steps=20, p_uncond=0.2)),
        FlowMatching(FlowConfig(cfg, p_uncond=0.2)),
    ):
        loss, _ = m.loss((images(4), torch.tensor([0, 1, 2, 0])), generator=gen(0))
        loss.backward()
        for kw in ({"labels": 2, "guidance": 3.0}, {"labels": torch.tensor([0, 1, 2]), "guidance": 0.0}, {}):
            out = m.sample(3, steps=4, generator=gen(1), **kw)
            assert out.shape == (3, 1, 8, 8) and float(out.min()) >= 0 and float(out.max()) <= 1
        a = m.sample(3, steps=4, labels=1, guidance=0.0, generator=gen(1))
        torch.testing.assert_close(a, m.sample(3, steps=4, generator=gen(1)))  # scale 0 = unconditional


def test_label_dropout_uses_the_null_class():
    m = GaussianDiffusion(DiffusionConfig(dataclasses.replace(TINY_MLP, n_classes=4), steps=10, p_uncond=0.5))
    y = m.training_labels(torch.zeros(2000, dtype=torch.long), 2000, gen(0))
    assert set(y.unique().tolist()) == {0, 4}
    assert float((y == 4).float().mean()) == pytest.approx(0.5, abs=0.04)


def test_latent_generator_decodes_prior_samples():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(arch="mlp", image_shape=(1, 8, 8), z_dim=3, hidden=8, depth=1))
    prior = GaussianDiffusion(DiffusionConfig(dataclasses.replace(TINY_MLP, dim=3), steps=10, data_scale=0.5))
    out = LatentGenerator(prior, vae).sample(4, steps=5, generator=gen(0))
    assert out.shape == (4, 1, 8, 8) and float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(TypeError, match="decode_mean"):
        LatentGenerator(prior, nn.Linear(2, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_with_bf16_autocast():
    from genai_lib.train import fit as train

    cfg = UNetConfig(width=16, n_classes=10)
    for m in (GaussianDiffusion(DiffusionConfig(cfg, p_uncond=0.1)), FlowMatching(FlowConfig(cfg, p_uncond=0.1))):
        m = m.to("cuda")
        x = torch.rand(64, 1, 28, 28)
        loader = make_loader(x, torch.arange(64) % 10, batch_size=32)
        h = train(m, loader, steps=4, hooks=[m.ema], generator=gen(0), progress=False, amp=True)
        assert all(math.isfinite(v) for v in h["loss"])
        out = m.sample(4, steps=3, labels=1, guidance=2.0, generator=gen(0))
        assert out.device.type == "cpu" and out.shape == (4, 1, 28, 28)


# --------------------------------------------------------------------------- bad inputs

_DM = GaussianDiffusion(DiffusionConfig(TINY_UNET, steps=20))
_FM = FlowMatching(FlowConfig(MLPDenoiserConfig(dim=2, hidden=8, depth=1, emb_dim=8)))
_S = NoiseSchedule.make("linear", 100)

BAD = [
    (lambda: _S.q_sample(torch.zeros(2, 2), 101), ValueError, r"t must lie in \[0, 100\], got values in \[101, 101\]"),
    (lambda: _S.q_sample(torch.zeros(2, 2), torch.tensor([-1, 3])), ValueError, r"t must lie in \[0, 100\]"),
    (lambda: _S.q_sample(torch.zeros(2, 2), torch.tensor([1.0, 3.0])), TypeError, "t must be an integer tensor"),
    (lambda: _S.posterior(torch.zeros(2, 1), torch.zeros(2, 1), 0), ValueError, r"t must lie in \[1, 100\]"),
    (lambda: _S.q_sample(torch.zeros(2, 2), 3, torch.zeros(3, 2)), ValueError, "noise must have the shape of x0"),
    (lambda: _DM.loss(torch.rand(2, 1, 28, 28)), ValueError, r"x must have shape \(N, 1, 8, 8\)"),
    (lambda: _DM.loss(torch.rand(2, 1, 8, 8) * 2 - 1), ValueError, r"images must be finite and lie in \[0, 1\]"),
    (lambda: _DM.loss(torch.full((2, 1, 8, 8), float("nan"))), ValueError, r"lie in \[0, 1\]"),
    (lambda: _DM.sample(2, steps=0), ValueError, "steps must be > 0"),
    (lambda: _DM.sample(2, steps=21), ValueError, r"steps must be <= 20 \(the length of the chain\)"),
    (lambda: _DM.sample(2, steps=2.5), TypeError, "steps must be an int"),
    (lambda: _FM.sample(2, steps=0), ValueError, "steps must be > 0"),
    (lambda: _DM.sample(0, steps=5), ValueError, "n must be > 0"),
    (lambda: _DM.sample(2, method="euler"), ValueError, "method must be 'ddim' or 'ddpm'"),
    (lambda: _DM.sample(2, method="ddpm", eta=0.5), ValueError, "eta belongs to method='ddim'"),
    (lambda: _DM.sample(2, eta=-0.1), ValueError, "eta must be >= 0"),
    (lambda: _FM.sample(2, method="rk4"), ValueError, r"method must be one of \('euler', 'heun'\)"),
    (lambda: _DM.sample(2, guidance=-1.0), ValueError, "guidance must be >= 0"),
    (lambda: _DM.sample(2, guidance=float("nan")), ValueError, "guidance must be a finite number"),
    (lambda: _DM.sample(2, labels=1), ValueError, "labels are only accepted by a class-conditional model"),
    (
        lambda: _DM.sample(2, steps=5, noise=torch.zeros(3, 1, 8, 8)),
        ValueError,
        r"noise must have shape \(2, 1, 8, 8\)",
    ),
    (lambda: _DM.sample(2, steps=5, generator=0), TypeError, "generator must be a torch.Generator"),
    (lambda: _DM.network(ema="yes"), TypeError, "ema must be a bool"),
    (lambda: _FM.loss(torch.zeros(4, 3)), ValueError, r"x must have shape \(N, 2\)"),
    (lambda: NoiseSchedule.from_alpha_bar([1.0, 0.5, 0.6]), ValueError, "not monotone"),
    (lambda: NoiseSchedule.from_alpha_bar([1.0, 0.5, 0.0]), ValueError, "stay > 0"),
    (lambda: NoiseSchedule.make("quadratic", 10), ValueError, r"schedule must be one of \('linear', 'cosine'\)"),
    (lambda: DiffusionConfig(TINY_MLP, schedule="sigmoid"), ValueError, "schedule must be one of"),
    (lambda: DiffusionConfig(TINY_MLP, prediction="score"), ValueError, r"prediction must be one of \('eps'"),
    (lambda: DiffusionConfig(TINY_MLP, steps=0), ValueError, "steps must be > 0"),
    (lambda: DiffusionConfig(TINY_MLP, steps=10, schedule="linear"), ValueError, "need 0 < beta < 1"),
    (lambda: DiffusionConfig(TINY_MLP, p_uncond=0.1), ValueError, "p_uncond > 0 needs a class-conditional"),
    (lambda: DiffusionConfig(TINY_MLP, ema_decay=1.0), ValueError, r"ema_decay must be in \[0, 1\)"),
    (lambda: DiffusionConfig("unet"), TypeError, "denoiser must be a UNetConfig or MLPDenoiserConfig"),
    (lambda: DiffusionConfig(TINY_MLP, data_scale=0.0), ValueError, "data_scale must be > 0"),
    (lambda: FlowConfig(TINY_MLP, sigma_min=1.0), ValueError, r"sigma_min must be in \[0, 1\)"),
    (lambda: FlowConfig(TINY_MLP, time_sampling="beta"), ValueError, "time_sampling must be one of"),
    (lambda: GaussianDiffusion(FlowConfig(TINY_MLP)), TypeError, "cfg must be a DiffusionConfig"),
    (lambda: FlowMatching(DiffusionConfig(TINY_MLP)), TypeError, "cfg must be a FlowConfig"),
    (lambda: UNetConfig(image_shape=(1, 30, 30)), ValueError, "must be divisible by patch"),
    (lambda: UNetConfig(width=12, groups=8), ValueError, "not divisible by groups=8"),
    (lambda: UNetConfig(width=8, groups=4, heads=3), ValueError, "not divisible by heads=3"),
    (lambda: UNetConfig(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (lambda: MLPDenoiserConfig(emb_dim=7), ValueError, "emb_dim must be even"),
    (
        lambda: UNet(TINY_UNET)(torch.zeros(2, 1, 8, 8), torch.zeros(3)),
        ValueError,
        r"t must have shape \(2\), got \(3,\)",
    ),
    (lambda: UNet(TINY_UNET)(torch.zeros(2, 1, 8, 8), 0.5, torch.zeros(2).long()), ValueError, "unconditional"),
    (
        lambda: UNet(dataclasses.replace(TINY_UNET, n_classes=2))(torch.zeros(2, 1, 8, 8), 0.5, torch.tensor([0, 3])),
        ValueError,
        r"labels must lie in \[0, 2\] \(2 = the null class\)",
    ),
    (
        lambda: GaussianDiffusion(DiffusionConfig(dataclasses.replace(TINY_MLP, n_classes=2), steps=10)).loss(
            torch.zeros(2, 2)
        ),
        ValueError,
        r"needs \(x, labels\) batches",
    ),
    (
        lambda: GaussianDiffusion(DiffusionConfig(dataclasses.replace(TINY_MLP, n_classes=2), steps=10)).sample(
            2, labels=2
        ),
        ValueError,
        r"labels must lie in \[0, 2\)",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_give_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
