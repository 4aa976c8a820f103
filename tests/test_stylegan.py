"""genai_lib.models.stylegan: the style-based generator of chapter 5 (tiny configs, synthetic data)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from genai_lib.models.stylegan import StyleGAN, StyleGANConfig, modulated_conv, truncate
from genai_lib.train import fit

TINY = StyleGANConfig(z_dim=8, w_dim=8, mapping_layers=2, channels=(8, 4, 4), d_width=4, r1_every=2)


def _model(cfg: StyleGANConfig = TINY) -> StyleGAN:
    torch.manual_seed(0)
    return StyleGAN(cfg)


def _images(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_shapes_and_ranges():
    m = _model()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 8, generator=g)
    w = m.mapping(z)
    assert w.shape == (3, 8) and m.cfg.num_ws == 5
    ws = m.mix(w, m.mapping(torch.randn(3, 8, generator=g)), 2)
    assert ws.shape == (3, 5, 8)
    for inp in (w, ws):
        img = m.synthesis(inp, generator=g)
        assert img.shape == (3, 1, 28, 28) and float(img.min()) >= 0 and float(img.max()) <= 1
    x = m.sample(4, generator=g)
    assert x.shape == (4, 1, 28, 28) and x.device.type == "cpu"
    assert m.critic(_images(4)).shape == (4,)
    assert m(z).shape == (3, 1, 28, 28)


def test_every_parameter_gets_a_gradient():
    m = _model(dataclasses.replace(TINY, mixing=1.0))  # the mixing path too
    g = torch.Generator().manual_seed(0)
    d_loss, _ = m.d_loss(_images(), generator=g)
    r1, logs = m.r1_loss(_images(), generator=g)
    (d_loss + r1).backward()
    assert float(logs["r1"]) > 0
    for name, p in m.discriminator.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"D {name}"
    assert all(p.grad is None for p in m.generator.parameters())  # D's loss does not train G
    m.zero_grad()
    g_loss, _ = m.g_loss(_images(), generator=g)
    g_loss.backward()
    for name, p in m.generator.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"G {name}"
    assert all(not p.requires_grad for p in m.ema.parameters())  # the EMA copy is never trained


def test_the_generator_overfits_one_batch():
    m = _model()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 8, generator=g)
    centres = torch.rand(8, 2, 1, 1, generator=g) * 16 + 6  # a blob per image, at its own place
    grid = torch.arange(28.0)
    target = torch.exp(-((grid[None, :, None] - centres[:, 0]) ** 2 + (grid[None, None] - centres[:, 1]) ** 2) / 18)
    target = target[:, None]  # (8, 1, 28, 28)
    opt = torch.optim.Adam(m.generator.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        img = m.synthesis(m.generator.map(z), noise="zero", ema=False)
        loss = F.binary_cross_entropy(img, target)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_the_discriminator_overfits_one_batch():
    m = _model()
    opt = torch.optim.Adam(m.discriminator.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    x = (_images(16) > 0.7).float()
    losses = []
    for _ in range(60):
        loss, _ = m.d_loss(x, generator=g)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_same_generator_same_sample():
    m = _model()
    a = m.sample(5, generator=torch.Generator().manual_seed(3), psi=0.7)
    b = m.sample(5, generator=torch.Generator().manual_seed(3), psi=0.7)
    c = m.sample(5, generator=torch.Generator().manual_seed(4), psi=0.7)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_modulation_and_demodulation_equal_a_per_sample_convolution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 9, 9, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.5
    for demod in (True, False):
        loop = []
        for b in range(3):  # StyleGAN2 eq. 1: w'_ijk = s_i w_ijk; eq. 3: w'' = w' / sqrt(sum_ik w'^2 + eps)
            w1 = weight * styles[b][None, :, None, None]
            if demod:
                w1 = w1 / torch.sqrt(w1.square().sum((1, 2, 3), keepdim=True) + 1e-8)
            loop.append(F.conv2d(x[b : b + 1], w1, padding=1))
        torch.testing.assert_close(modulated_conv(x, weight, styles, demodulate=demod), torch.cat(loop))
    # demodulation makes each output channel's weights unit-norm: for unit-variance iid inputs the
    # output variance is 1 whatever the style
    big = torch.randn(1, 5, 64, 64, generator=g, dtype=torch.float64)
    out = modulated_conv(big, weight, 7 * styles[:1])
    assert abs(float(out[..., 2:-2, 2:-2].var()) - 1) < 0.1


def test_truncation_psi_one_is_identity_and_zero_is_the_mean():
    m = _model()
    m.generator.w_avg.copy_(torch.arange(8.0))
    m.ema.shadow.w_avg.copy_(torch.arange(8.0))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    w = m.mapping(z)
    torch.testing.assert_close(m.mapping(z, psi=1.0), m.ema.shadow.map(z))
    torch.testing.assert_close(m.mapping(z, psi=0.0), torch.arange(8.0).expand(4, -1))
    torch.testing.assert_close(truncate(w, m.ema.shadow.w_avg, 0.5), (w + torch.arange(8.0)) / 2)


def test_style_mixing_takes_coarse_layers_from_the_first_latent():
    m = _model()
    g = torch.Generator().manual_seed(0)
    w1, w2 = m.mapping(torch.randn(2, 8, generator=g)), m.mapping(torch.randn(2, 8, generator=g))
    ws = m.mix(w1, w2, 2)
    assert torch.equal(ws[:, :2], w1[:, None].expand(-1, 2, -1)) and torch.equal(
        ws[:, 2:], w2[:, None].expand(-1, 3, -1)
    )
    only_coarse = m.synthesis(m.mix(w1, w2, 5), noise="zero")
    torch.testing.assert_close(only_coarse, m.synthesis(w1, noise="zero"))
    torch.testing.assert_close(m.synthesis(m.mix(w1, w2, 0), noise="zero"), m.synthesis(w2, noise="zero"))


def test_noise_inputs_change_the_image_only_through_their_strengths():
    m = _model()
    w = m.mapping(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)))
    noise = [torch.randn(s) for s in m.generator.noise_shapes(2)]
    torch.testing.assert_close(m.synthesis(w, noise=noise), m.synthesis(w, noise="zero"))  # strengths start at 0
    for conv in m.ema.shadow.convs:
        conv.noise_strength.data.fill_(0.5)
    assert not torch.allclose(m.synthesis(w, noise=noise), m.synthesis(w, noise="zero"))


def test_phases_mapping_lr_lazy_r1_and_ema_through_the_core():
    m = _model()
    phases = m.phases(lr=1e-3)
    assert [p.name for p in phases] == ["d", "d_reg", "g"]
    assert phases[1].every == 2 and phases[1].shares == "d" and not phases[1].fresh
    lrs = sorted(group.get("lr", phases[2].lr) for group in phases[2].params)
    assert lrs == [pytest.approx(1e-5), 1e-3]  # the mapping network at 0.01x
    x = (_images(32) > 0.6).float()
    loader = [(x[i : i + 8],) for i in range(0, 32, 8)]
    before = m.ema.shadow.const.detach().clone()
    hist = fit(m, loader, steps=5, phases=phases, hooks=[m.ema], progress=False, log_every=1)
    assert hist.step == [1, 2, 3, 4, 5] and len(hist.logs["d_reg_loss"]) == 3  # R1 at steps 0, 2, 4
    assert int(m.ema.updates) == 5 and not torch.equal(m.ema.shadow.const, before)
    assert float(m.generator.w_avg.abs().sum()) > 0  # the mean w is tracked during training


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.sample(2, psi=1.5), ValueError, r"psi must be in \[0, 1\]"),
        (lambda m: m.mapping(torch.randn(2, 8), psi=-0.1), ValueError, r"psi must be in \[0, 1\]"),
        (lambda m: m.mix(torch.randn(2, 8), torch.randn(2, 8), 6), ValueError, r"crossover must be in \[0, 5\]"),
        (lambda m: m.mix(torch.randn(2, 8), torch.randn(3, 8), 2), ValueError, "same shape"),
        (lambda m: m.synthesis(torch.randn(2, 4, 8)), ValueError, r"ws must have shape \(N, 5, 8\)"),
        (lambda m: m.synthesis(torch.randn(2, 8), noise="loud"), ValueError, "noise must be one of"),
        (lambda m: m.mapping(torch.randn(2, 7)), ValueError, r"z must have shape \(N, 8\)"),
        (lambda m: m.d_loss(torch.rand(2, 1, 32, 32)), ValueError, "x must have shape"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_model())
