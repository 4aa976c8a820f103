"""VAE-GAN (Larsen et al. 2016), chapter 3: a VAE whose reconstruction error is measured in a
discriminator's feature space, plus a GAN loss that makes the decoder's images sharp.

Three networks: encoder ``Enc: x -> (mu, logvar)``, decoder ``Dec: z -> x`` (also the GAN's
generator) and discriminator ``D: x -> logit`` whose hidden layer ``Dis_l(x)`` (its last conv
block, flattened) replaces pixels in the reconstruction term. Pixel-wise losses reward the
blurry average of plausible digits; ``Dis_l`` is invariant to small shifts of strokes, so the
decoder is free to be sharp. Larsen et al., eqs. 8-10 (with x_r = Dec(Enc(x)), x_p = Dec(z_p)):

- ``L_prior = KL(q(z|x) || N(0, I))`` (the VAE's KL term, in nats per image);
- ``L_llike = 1/2 ||Dis_l(x) - Dis_l(x_r)||^2`` (Gaussian log-likelihood in feature space);
- ``L_GAN``: D tells real ``x`` from both ``x_r`` and ``x_p`` (BCE with logits).

Update scheme (one :func:`genai_lib.train.fit_gan` step; Larsen's Algorithm 1):

- ``d_loss``: ``softplus(-D(x)) + [softplus(D(x_r)) + softplus(D(x_p))] / 2`` -> discriminator only.
- ``g_loss`` (encoder and decoder together, one optimizer): the encoder receives
  ``kl_weight * L_prior + recon_weight * L_llike`` (+ ``pixel_weight`` x pixel BCE); the decoder
  receives ``recon_weight * L_llike + gan_weight * L_GAN^G`` (+ pixels) with the
  non-saturating ``L_GAN^G = [softplus(-D(x_r)) + softplus(-D(x_p))] / 2``. The GAN term's
  gradient is kept out of the encoder (its x_r is decoded from a detached z), as in the paper.

Shapes: B batch, Z latent; images (B, 1, 28, 28) in [0, 1]; features (B, 2W*49).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import (
    as_dtype_of,
    check_finite_tensor,
    check_images,
    check_positive,
    check_size,
    check_tensor,
    plain_fields,
)
from genai_lib.models._layers import ConvDecoder28, ConvEncoder28, reparameterize
from genai_lib.models.gan import DCGANDiscriminator
from genai_lib.models.vae import gaussian_kl
from genai_lib.phases import DivergenceRule
from genai_lib.utils import eval_mode, normal_noise, split_batch

__all__ = ["VAEGANConfig", "VAEGAN"]


@dataclass(frozen=True)
class VAEGANConfig:
    """VAE-GAN on 28x28 single-channel images."""

    z_dim: int = 16  # latent size
    width: int = 32  # channels of the first conv of encoder / D (the second has 2x); decoder likewise
    kl_weight: float = 1.0  # weight of KL(q(z|x) || p(z)) in the encoder's loss
    recon_weight: float = 1.0  # weight of the feature-space reconstruction (Dis_l) for encoder and decoder
    gan_weight: float = 1.0  # weight of the generator's GAN loss (decoder only)
    pixel_weight: float = 0.0  # optional pixel BCE reconstruction (0 = pure Larsen et al.)

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("z_dim", self.z_dim)
        check_positive("width", self.width)
        for name in ("kl_weight", "recon_weight", "gan_weight", "pixel_weight"):
            check_positive(name, getattr(self, name), integer=False, allow_zero=True)
        w, z = self.width, self.z_dim
        check_size("VAEGANConfig", 48 * w + 96 * w * w + 98 * w * 3 * z + 16 * w + 98 * w)


class VAEGAN(nn.Module):
    """Encoder ``(B,1,28,28) -> (B,2Z)``, decoder ``(B,Z) -> (B,1,28,28)``, DCGAN discriminator."""

    def __init__(self, cfg: VAEGANConfig) -> None:
        super().__init__()
        if not isinstance(cfg, VAEGANConfig):
            raise TypeError(f"cfg must be a VAEGANConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.encoder = ConvEncoder28(2 * cfg.z_dim, cfg.width)
        self.decoder = ConvDecoder28(cfg.z_dim, cfg.width, norm=True)
        self.discriminator = DCGANDiscriminator(cfg.width)

    @property
    def generator(self) -> nn.Module:
        """The decoder is the GAN's generator (same module, not a copy)."""
        return self.decoder

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generator_parameters(self) -> list[nn.Parameter]:
        """What ``g_loss`` trains: encoder and decoder."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    @property
    def _weight(self) -> torch.Tensor:
        return next(self.parameters())

    def _x(self, batch: Any) -> torch.Tensor:
        x, _ = split_batch(batch)
        return as_dtype_of("x", check_images("x", x, (1, 28, 28)), self._weight)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 28, 28) in [0, 1] -> mu, logvar, each (B, Z)."""
        mu, logvar = self.encoder(self._x(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, Z) -> images (B, 1, 28, 28) in [0, 1]. z must be finite; it is converted to the model's dtype."""
        check_tensor("z", z, shape=(None, self.cfg.z_dim), floating=True)
        return self._decode(as_dtype_of("z", check_finite_tensor("z", z), self._weight))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 1, 28, 28) -> (reconstruction (B, 1, 28, 28), mu (B, Z), logvar (B, Z)), one z sample."""
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self._decode(z), mu, logvar

    def d_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Discriminator: real x vs reconstructions x_r and prior samples x_p (no gradient to Enc/Dec)."""
        x = self._x(batch)
        with torch.no_grad():
            mu, logvar = self.encoder(x).chunk(2, dim=1)
            x_r = self._decode(reparameterize(mu, logvar, generator))
            x_p = self._decode(self._prior(x.shape[0], generator))
        d_x, d_r, d_p = self.discriminator(x), self.discriminator(x_r), self.discriminator(x_p)
        loss = F.softplus(-d_x).mean() + 0.5 * (F.softplus(d_r).mean() + F.softplus(d_p).mean())
        logs = {
            "d_real": torch.sigmoid(d_x).mean().detach(),
            "d_recon": torch.sigmoid(d_r).mean().detach(),
            "d_fake": torch.sigmoid(d_p).mean().detach(),
        }
        return loss, logs

    def g_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Encoder + decoder loss (see the module docstring for which term reaches which network)."""
        x = self._x(batch)
        cfg = self.cfg
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = reparameterize(mu, logvar, generator)
        logits_r = self.decoder(z)
        x_r = torch.sigmoid(logits_r)
        kl = gaussian_kl(mu, logvar).mean()  # nats per image
        feat_x = self.discriminator.features(x).detach()  # (B, 2W*49), the target
        llike = 0.5 * (self.discriminator.features(x_r) - feat_x).square().sum(dim=1).mean()
        # GAN term: x_r decoded from a detached z so no GAN gradient reaches the encoder
        x_r_gan = self._decode(z.detach())
        x_p = self._decode(self._prior(x.shape[0], generator))
        gan = 0.5 * (F.softplus(-self.discriminator(x_r_gan)).mean() + F.softplus(-self.discriminator(x_p)).mean())
        loss = cfg.kl_weight * kl + cfg.recon_weight * llike + cfg.gan_weight * gan
        logs: dict[str, Any] = {"kl": kl.detach(), "llike": llike.detach(), "gan": gan.detach()}
        if cfg.pixel_weight:
            pix = F.binary_cross_entropy_with_logits(logits_r, x, reduction="none").flatten(1).sum(1).mean()
            loss = loss + cfg.pixel_weight * pix
            logs["pixel_bce"] = pix.detach()
        return loss, logs

    def _prior(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return normal_noise((n, self.cfg.z_dim), generator=generator, device=self.device, dtype=self._weight.dtype)

    def divergence_rules(self) -> tuple[DivergenceRule, ...]:
        """A discriminator that has won: D's loss ~0 while the decoder's GAN term (not its whole
        loss, whose KL and feature terms are large anyway) exceeds 10 nats."""
        return (
            DivergenceRule(
                below={"d_loss": 1e-3}, above={"gan": 10.0}, patience=200, advice="lower lr_d or raise gan_weight"
            ),
        )

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (n, 1, 28, 28) in [0, 1] on the CPU, decoded from z ~ N(0, I) (decoder in eval mode)."""
        check_positive("n", n)
        check_size(f"VAEGAN.sample({n})", n * (self.cfg.z_dim + 28 * 28), unit="values")
        with eval_mode(self.decoder):
            return self._decode(self._prior(n, generator)).cpu()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: (B, 1, 28, 28) -> (B, 1, 28, 28) in [0, 1] on the CPU (eval mode)."""
        with eval_mode(self):
            mu, _ = self.encode(x)
            return self._decode(mu).cpu()
