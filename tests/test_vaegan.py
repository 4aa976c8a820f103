"""genai_lib.models.vaegan: tiny configs, CPU, seconds."""

from __future__ import annotations

import pytest
import torch

from genai_lib import train
from genai_lib.data import make_loader
from genai_lib.models.vae import gaussian_kl
from genai_lib.models.vaegan import VAEGAN, VAEGANConfig

TINY = {"z_dim": 4, "width": 4}


def _model(**kw):
    torch.manual_seed(0)
    return VAEGAN(VAEGANConfig(**{**TINY, **kw}))


def _x(n=8):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_shapes():
    m = _model()
    x = _x()
    recon, mu, logvar = m(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (8, 4)
    assert m.sample(3).shape == (3, 1, 28, 28) and m.reconstruct(x).shape == x.shape
    out = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1
    assert m.generator is m.decoder


def test_losses_finite_and_gradients_reach_the_right_networks():
    m = _model(pixel_weight=0.5)
    x = _x()
    d_loss, d_logs = m.d_loss((x, torch.zeros(8, dtype=torch.long)))  # (x, labels) batches work too
    assert torch.isfinite(d_loss) and {"d_real", "d_recon", "d_fake"} <= set(d_logs)
    d_loss.backward()
    assert all(p.grad is not None for p in m.discriminator.parameters())
    assert all(p.grad is None for p in m.generator_parameters())  # D step: encoder/decoder untouched
    m.zero_grad(set_to_none=True)
    g_loss, g_logs = m.g_loss(x)
    assert torch.isfinite(g_loss) and {"kl", "llike", "gan", "pixel_bce"} <= set(g_logs)
    g_loss.backward()
    for name, p in list(m.encoder.named_parameters()) + list(m.decoder.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_gan_term_does_not_reach_the_encoder():
    """Larsen et al.: the encoder is trained by the prior and feature-reconstruction terms only."""
    m = _model(kl_weight=0.0, recon_weight=0.0, gan_weight=1.0)
    loss, _ = m.g_loss(_x())
    loss.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in m.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in m.decoder.parameters())


def test_kl_term_matches_the_closed_form():
    m = _model(recon_weight=0.0, gan_weight=0.0)
    x = _x()
    mu, logvar = m.encode(x)
    loss, logs = m.g_loss(x)
    torch.testing.assert_close(loss, gaussian_kl(mu, logvar).mean())
    torch.testing.assert_close(logs["kl"], gaussian_kl(mu, logvar).mean())


def test_sampling_is_deterministic_given_generator():
    m = _model()
    a = m.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, m.sample(4, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, m.sample(4, generator=torch.Generator().manual_seed(2)))


def test_discriminator_overfits_one_batch():
    m = _model(width=8)
    x = (_x(16) > 0.7).float()
    opt = torch.optim.Adam(m.discriminator.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        loss, _ = m.d_loss(x, generator=gen)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_fit_gan_trains_encoder_and_decoder():
    m = _model()
    x = (_x(32) > 0.8).float()
    loader = make_loader(x, batch_size=16, generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in m.generator_parameters()]
    hist = train.fit_gan(m, loader, steps=4, progress=False)
    assert {"d_loss", "g_loss", "kl", "llike", "gan"} <= set(hist.logs) and len(hist.step) == 4
    assert all(not torch.equal(b, p) for b, p in zip(before, m.generator_parameters(), strict=True))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: VAEGANConfig(z_dim=0), ValueError, "z_dim must be > 0"),
        (lambda: VAEGANConfig(kl_weight=-1.0), ValueError, "kl_weight must be >= 0"),
        (lambda: VAEGANConfig(width="8"), TypeError, "width must be an int"),
        (lambda: VAEGAN({"z_dim": 4}), TypeError, "cfg must be a VAEGANConfig"),
        (lambda: _model().g_loss(torch.rand(2, 1, 14, 14)), ValueError, r"\(N, 1, 28, 28\)"),
        (lambda: _model().d_loss(torch.rand(2, 1, 28, 28) - 1), ValueError, r"\[0.0, 1.0\]"),
        (lambda: _model().decode(torch.randn(2, 5)), ValueError, r"\(N, 4\)"),
        (lambda: _model().sample(0), ValueError, "n must be > 0"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
