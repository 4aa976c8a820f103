"""Generative adversarial networks (chapter 3): a 2-D MLP GAN, DCGAN, conditional DCGAN, WGAN-GP.

Papers: Goodfellow et al. 2014 (the minimax game and the non-saturating generator loss),
Radford et al. 2016 (DCGAN: strided convolutions, batch norm in the generator, LeakyReLU in
the discriminator), Mirza & Osindero 2014 (conditional GAN), Miyato & Koyama 2018 (projection
discriminator, used here for the conditional critic), Gulrajani et al. 2017 (WGAN-GP),
Mescheder et al. 2018 (the R1 penalty on real data), Lin et al. 2018 (PacGAN packing),
Salimans et al. 2016 (one-sided label smoothing).

Every model has ``.generator`` and ``.discriminator`` submodules and the two halves of the
game, ``d_loss(batch) -> (loss, logs)`` and ``g_loss(batch) -> (loss, logs)``, which
:func:`genai_lib.train.fit_gan` alternates. Losses are written with logits, never with
``log(sigmoid(.))``: with ``l = D(x)`` a logit, ``-log sigmoid(l) = softplus(-l)`` and
``-log(1 - sigmoid(l)) = softplus(l)``, both finite for any ``l``.

- ``"ns"`` (non-saturating, Goodfellow 2014 §3): ``L_D = softplus(-D(x)) + softplus(D(G(z)))``,
  ``L_G = softplus(-D(G(z)))`` (i.e. ``-log D(G(z))``). With one-sided label smoothing ``s``
  (Salimans et al. 2016 §3.4) the real target is ``1 - s``:
  ``L_D = (1 - s) softplus(-D(x)) + s softplus(D(x)) + softplus(D(G(z)))``; fakes keep target 0.
- ``"minimax"`` (the game as written): same ``L_D``; ``L_G = -softplus(D(G(z)))``
  (i.e. ``log(1 - D(G(z)))``), which saturates when D wins.
- ``"wgan-gp"``: ``L_D = D(G(z)) - D(x) + lambda (||grad D(x_hat)|| - 1)^2``, ``L_G = -D(G(z))``.

Shapes: B batch, Z latent size, K classes; points (B, 2); images (B, 1, 28, 28) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_class_ids, check_images, check_positive, check_size, check_tensor, plain_fields
from genai_lib.models._gan_game import GANBase, gradient_penalty
from genai_lib.models._layers import ConvDecoder28, ConvEncoder28, mlp

__all__ = [
    "LOSSES",
    "GANConfig",
    "ToyGAN",
    "DCGANConfig",
    "DCGAN",
    "gradient_penalty",
    "interpolate",
    "n_params",
]

LOSSES = ("ns", "minimax", "wgan-gp")


def _check_loss(loss: Any, allowed: tuple[str, ...]) -> None:
    if loss not in allowed:
        raise ValueError(f"loss must be one of {allowed}, got {loss!r}")


def _check_label_smoothing(value: Any, loss: str) -> None:
    """One-sided label smoothing: a number in [0, 0.5) (the real target 1 - s must stay above 1/2); BCE losses only."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"label_smoothing must be a number, got {type(value).__name__}")
    if not 0 <= value < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {value!r}")
    if value and loss == "wgan-gp":
        raise ValueError("label_smoothing applies to the BCE losses ('ns', 'minimax'); wgan-gp has no labels")


# --------------------------------------------------------------------------- 2-D toy GAN


@dataclass(frozen=True)
class GANConfig:
    """An MLP GAN for low-dimensional toy data (the 8-Gaussian ring of chapter 3)."""

    data_dim: int = 2  # size of a data point
    z_dim: int = 8  # latent (noise) size
    hidden: int = 128  # width of every hidden layer, in G and in D
    depth: int = 3  # hidden layers in each network
    loss: str = "ns"  # "ns" (non-saturating), "minimax" or "wgan-gp"
    gp_weight: float = 0.1  # lambda of the gradient penalty (wgan-gp only); Gulrajani used 0.1 on toy data
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; 1 = a plain GAN
    r1_weight: float = 0.0  # gamma of the R1 penalty on real data (Mescheder et al. 2018; ns/minimax); 0 = off
    label_smoothing: float = 0.0  # one-sided (Salimans et al. 2016): D's real target is 1 - s; ns/minimax; 0 = off

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("data_dim", "z_dim", "hidden", "depth", "pack"):
            check_positive(name, getattr(self, name))
        _check_loss(self.loss, LOSSES)
        check_positive("gp_weight", self.gp_weight, integer=False, allow_zero=True)
        check_positive("r1_weight", self.r1_weight, integer=False, allow_zero=True)
        if self.r1_weight and self.loss == "wgan-gp":
            raise ValueError("r1_weight applies to the 'ns' and 'minimax' losses; wgan-gp has its own gradient penalty")
        _check_label_smoothing(self.label_smoothing, self.loss)
        h, n = self.hidden, self.depth
        g = self.z_dim * h + (n - 1) * h * h + h * self.data_dim
        d = self.data_dim * self.pack * h + (n - 1) * h * h + h
        check_size("GANConfig", g + d)


class ToyGAN(GANBase):
    """MLP generator ``z (B, Z) -> x (B, data_dim)`` and discriminator ``x -> logit (B,)``."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GANConfig):
            raise TypeError(f"cfg must be a GANConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        h = [cfg.hidden] * cfg.depth
        self.generator = mlp([cfg.z_dim, *h, cfg.data_dim], nn.ReLU)
        self.discriminator = mlp([cfg.data_dim * cfg.pack, *h, 1], lambda: nn.LeakyReLU(0.2))

    @property
    def _sample_numel(self) -> int:
        return self.cfg.data_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generator: (B, Z) -> (B, data_dim)."""
        return self.generate(z)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Points (B, data_dim) from latents z (B, Z) (finite; converted to the model's dtype)."""
        if labels is not None:
            raise ValueError("labels are only accepted by a class-conditional model (n_classes > 0)")
        return self._generate(self._check_z(z), None)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.generator(z)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D logits (B,); with ``pack > 1`` each group of ``pack`` consecutive points shares one score
        (repeated ``pack`` times so shapes match the batch). B must be a multiple of ``pack``."""
        p = self.cfg.pack
        if x.shape[0] % p:
            raise ValueError(f"batch size must be a multiple of pack={p}, got {x.shape[0]}")
        out = self.discriminator(x.reshape(x.shape[0] // p, p * self.cfg.data_dim)).squeeze(-1)  # (B/p,)
        return out.repeat_interleave(p)

    def _check_data(self, x: torch.Tensor) -> torch.Tensor:
        return check_tensor("x", x, shape=(None, self.cfg.data_dim), floating=True, finite=True)


# --------------------------------------------------------------------------- DCGAN for MNIST


@dataclass(frozen=True)
class DCGANConfig:
    """DCGAN for 28x28 single-channel images; ``n_classes > 0`` makes it class-conditional."""

    z_dim: int = 64  # latent size
    width: int = 64  # channels after the first conv of D / before the last of G (the other has 2x)
    n_classes: int = 0  # 0: unconditional; K: G gets a class embedding, D a projection term
    embed_dim: int = 16  # size of the class embedding concatenated to z (conditional only)
    loss: str = "ns"  # "ns" (non-saturating) or "wgan-gp" (critic + gradient penalty)
    gp_weight: float = 10.0  # lambda of the gradient penalty (Gulrajani et al. 2017 use 10)
    label_smoothing: float = 0.0  # one-sided (Salimans et al. 2016): D's real target is 1 - s (ns only); 0 = off
    batchnorm: bool = True  # BatchNorm in the generator (Radford et al.); D never uses it
    augment: int = 0  # DiffAugment (Zhao et al. 2020): D sees real and fake images shifted by up to this many pixels

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("z_dim", "width", "embed_dim"):
            check_positive(name, getattr(self, name))
        check_positive("n_classes", self.n_classes, allow_zero=True)
        if self.n_classes == 1:
            raise ValueError("n_classes must be 0 (unconditional) or >= 2, got 1")
        _check_loss(self.loss, ("ns", "wgan-gp"))
        check_positive("gp_weight", self.gp_weight, integer=False, allow_zero=True)
        _check_label_smoothing(self.label_smoothing, self.loss)
        if not isinstance(self.batchnorm, bool):
            raise TypeError(f"batchnorm must be a bool, got {type(self.batchnorm).__name__}")
        check_positive("augment", self.augment, allow_zero=True)
        if self.augment > 7:
            raise ValueError(f"augment (a shift in pixels) must be at most 7 for 28x28 images, got {self.augment}")
        w, k = self.width, self.n_classes
        g = (self.z_dim + (self.embed_dim if k else 0)) * 98 * w + 32 * w * w + 16 * w + k * self.embed_dim
        check_size("DCGANConfig", g + 16 * w + 32 * w * w + 98 * w * (1 + k))


class DCGANGenerator(nn.Module):
    """(B, Z [+E]) -> (B, 1, 28, 28) in [0, 1]: linear to 7x7, two stride-2 transposed convs
    (``_layers.ConvDecoder28``, BatchNorm as in DCGAN), then a sigmoid.

    (Article 004's generator used stride-1 layers only and cannot reach 28x28 from 7x7.)
    """

    def __init__(self, in_dim: int, width: int, batchnorm: bool) -> None:
        super().__init__()
        self.decoder = ConvDecoder28(in_dim, width, norm=batchnorm)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # sigmoid(a) = (tanh(a / 2) + 1) / 2: DCGAN's tanh output, shifted to [0, 1]
        return torch.sigmoid(self.decoder(h))


class DCGANDiscriminator(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> features (B, 2W*49) -> logit (B,); optional projection term.

    The body is ``_layers.ConvEncoder28`` (two stride-2 convs with LeakyReLU, no BatchNorm, so
    the WGAN-GP per-example gradient penalty stays valid); its last linear layer is the head.
    """

    def __init__(self, width: int, n_classes: int = 0) -> None:
        super().__init__()
        self.body = ConvEncoder28(1, width)
        self.feature_dim = 2 * width * 49
        # Projection discriminator (Miyato & Koyama 2018): D(x, y) = psi(h) + <embed(y), h>
        self.embed = nn.Embedding(n_classes, self.feature_dim) if n_classes else None
        if self.embed is not None:
            nn.init.zeros_(self.embed.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, 2W*49); D sees [-1, 1], like a tanh generator's output."""
        return self.body.net[:-1](2 * x - 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.body.net[-1](h).squeeze(-1)  # (B,)
        if self.embed is not None and labels is not None:
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


class DCGAN(GANBase):
    """DCGAN / conditional DCGAN / WGAN-GP critic on 28x28 images (chosen by the config)."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        if not isinstance(cfg, DCGANConfig):
            raise TypeError(f"cfg must be a DCGANConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.label_embed = nn.Embedding(cfg.n_classes, cfg.embed_dim) if cfg.n_classes else None
        in_dim = cfg.z_dim + (cfg.embed_dim if cfg.n_classes else 0)
        self.generator = DCGANGenerator(in_dim, cfg.width, cfg.batchnorm)
        self.discriminator = DCGANDiscriminator(cfg.width, cfg.n_classes)

    _sample_numel = 28 * 28

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generator: z (B, Z) [+ labels (B,)] -> images (B, 1, 28, 28) in [0, 1]."""
        return self.generate(z, labels)

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator step updates (the class embedding belongs to G)."""
        extra = list(self.label_embed.parameters()) if self.label_embed is not None else []
        return list(self.generator.parameters()) + extra

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 1, 28, 28) from latents z (B, Z) (finite; converted to the model's dtype) and,
        for a class-conditional model, labels (B,)."""
        z = self._check_z(z)
        if self.label_embed is None and labels is not None:
            raise ValueError("labels are only accepted by a class-conditional model (n_classes > 0)")
        return self._generate(z, self._labels(labels, z.shape[0]))

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.label_embed is not None:
            z = torch.cat([z, self.label_embed(labels)], dim=1)  # (B, Z + E)
        return self.generator(z)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x, labels)

    def _check_data(self, x: torch.Tensor) -> torch.Tensor:
        return check_images("x", x, (1, 28, 28))

    def _labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.cfg.n_classes:
            return None
        if y is None:
            raise ValueError(
                f"a class-conditional DCGAN (n_classes={self.cfg.n_classes}) needs labels: pass (x, labels)"
            )
        return check_class_ids("labels", y, self.cfg.n_classes, n).to(self.device)  # int64 for the embedding

    def _sample_labels(self, n: int, labels: Any) -> torch.Tensor | None:
        if not self.cfg.n_classes:
            return super()._sample_labels(n, labels)
        if labels is None:  # balanced: 0, 1, ..., K-1, 0, 1, ...
            return torch.arange(n, device=self.device) % self.cfg.n_classes
        if isinstance(labels, int) and not isinstance(labels, bool):
            labels = torch.full((n,), labels, dtype=torch.long)
        return self._labels(torch.as_tensor(labels), n)


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, *, spherical: bool = True) -> torch.Tensor:
    """Latent path from ``z0`` to ``z1`` (each (Z,)) as (steps, Z); slerp keeps Gaussian norms."""
    check_positive("steps", steps)
    check_tensor("z0", z0, shape=(None,), floating=True, finite=True)
    check_tensor("z1", z1, shape=(z0.shape[0],), floating=True, finite=True)
    check_size(f"interpolate(steps={steps})", steps * z0.shape[0], unit="values")
    z1 = z1.to(z0.device, z0.dtype)
    t = torch.linspace(0, 1, steps, device=z0.device)[:, None]
    if not spherical:
        return (1 - t) * z0 + t * z1
    omega = torch.arccos(torch.clamp(F.cosine_similarity(z0, z1, dim=0), -1 + 1e-7, 1 - 1e-7))
    so = math.sin(float(omega))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / so
