"""A class-conditional VAE (Sohn, Lee & Yan 2015) and a small MLP classifier, sized for DP-SGD.

Chapter 16 trains both with per-example gradients (:mod:`genai_lib.privacy`), so each has a
``sample_loss(model, *one_example)`` written without data-dependent Python control flow (no
checks that read values), which ``torch.func.vmap`` needs. The conditional VAE is chapter 2's
model with the one-hot label y appended to the encoder's input and to the decoder's latent:

    q(z | x, y) = N(mu(x, y), diag exp(logvar(x, y))),   p(x | z, y) = Bernoulli(sigmoid(dec(z, y)))

and the loss is chapter 2's negative ELBO (:func:`genai_lib.models.vae.bernoulli_nll`,
:func:`genai_lib.models.vae.gaussian_kl`). Conditioning lets the private generator emit labelled
digits, so a classifier can be trained on them alone (train-synthetic-test-real).

Shape legend: B batch, 1 x 28 x 28 image, D = 784 pixels, Z latent size, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_class_ids, check_positive, check_tensor, plain_fields
from genai_lib.models._layers import mlp
from genai_lib.models.vae import bernoulli_nll, gaussian_kl
from genai_lib.utils import eval_mode, normal_noise, split_batch

__all__ = [
    "LabelDecoder",
    "CVAEConfig",
    "CVAE",
    "cvae_sample_loss",
    "MLPClassifierConfig",
    "MLPClassifier",
    "ce_sample_loss",
]


@dataclass(frozen=True)
class CVAEConfig:
    """Hyper-parameters of a :class:`CVAE`."""

    z_dim: int = 8  # latent size Z
    hidden: int = 256  # width of the one hidden layer of encoder and decoder
    n_classes: int = 10  # K, the labels it conditions on

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("z_dim", "hidden", "n_classes"):
            check_positive(name, getattr(self, name))


class LabelDecoder(nn.Module):
    """What chapter 16's class-conditional generators share (:class:`CVAE`, and DP-MERF's
    :class:`genai_lib.models.merf.MERFGenerator`): a ``decoder`` from (z, one-hot label) to pixel
    logits, ``decode(z, y)`` to images in [0, 1], and ``sample(n, labels=...)``. A subclass sets
    ``cfg`` (with ``z_dim`` and ``n_classes``) and ``decoder``."""

    cfg: Any
    decoder: nn.Sequential

    def _onehot(self, y: torch.Tensor) -> torch.Tensor:
        # a comparison, not F.one_hot (which checks the ids' range and so breaks vmap)
        classes = torch.arange(self.cfg.n_classes, device=y.device)
        return (y.long()[:, None] == classes).to(self.decoder[0].weight.dtype)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] for latents z (B, Z) and labels y (B,); no checks."""
        return torch.sigmoid(self.decoder(torch.cat([z, self._onehot(y)], 1))).view(-1, 1, 28, 28)

    @torch.no_grad()
    def sample(
        self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1] on the CPU; ``labels`` (n,) default to 0, 1, ..., K-1 cycled."""
        check_positive("n", n)
        w = self.decoder[0].weight
        y = (
            torch.arange(n) % self.cfg.n_classes
            if labels is None
            else check_class_ids("labels", labels, self.cfg.n_classes, n)
        )
        z = normal_noise((n, self.cfg.z_dim), generator=generator, device=w.device, dtype=w.dtype)
        with eval_mode(self):
            return self.decode(z, y.to(w.device)).cpu()


class CVAE(LabelDecoder):
    """x (B, 1, 28, 28), y (B,) -> logits; ``sample(n, labels=...)`` draws digits of given classes."""

    def __init__(self, cfg: CVAEConfig) -> None:
        super().__init__()
        if not isinstance(cfg, CVAEConfig):
            raise TypeError(f"cfg must be a CVAEConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        k, h, z = cfg.n_classes, cfg.hidden, cfg.z_dim
        self.encoder = mlp([784 + k, h, 2 * z])  # (B, D + K) -> (B, 2Z)
        self.decoder = mlp([z + k, h, 784])  # (B, Z + K) -> (B, D) logits

    def posterior(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y)'s mean and log-variance, each (B, Z); no checks."""
        mu, logvar = self.encoder(torch.cat([x.flatten(1), self._onehot(y)], 1)).chunk(2, 1)
        return mu, logvar

    def terms(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image -log p(x | z, y) and KL (each (B,)) for the noise ``eps`` (B, Z); no checks."""
        oh = self._onehot(y)
        mu, logvar = self.posterior(x, y)
        zs = mu + torch.exp(0.5 * logvar) * eps  # reparameterisation
        logits = self.decoder(torch.cat([zs, oh], 1)).view(-1, 1, 28, 28)
        return bernoulli_nll(logits, x), gaussian_kl(mu, logvar)

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Mean negative ELBO (nats/image) of (images, labels)."""
        x, y = split_batch(batch)
        check_tensor("x", x, shape=(None, 1, 28, 28), floating=True)
        y = check_class_ids("labels", y, self.cfg.n_classes, x.shape[0])
        eps = normal_noise((x.shape[0], self.cfg.z_dim), generator=generator, device=x.device, dtype=x.dtype)
        recon, kl = self.terms(x, y, eps)
        return (recon + kl).mean(), {"recon": recon.mean().detach(), "kl": kl.mean().detach()}

    def noise_for(
        self, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor]:
        """The reparameterisation noise (B, Z) for a batch: ``dp_phase(extra=model.noise_for)``."""
        x = batch[0]
        return (normal_noise((x.shape[0], self.cfg.z_dim), generator=generator, device=x.device, dtype=x.dtype),)


def cvae_sample_loss(model: CVAE, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One example's negative ELBO (x (1, 28, 28), y (), eps (Z,)): the per-sample loss of DP-SGD."""
    recon, kl = model.terms(x[None], y[None], eps[None])
    return (recon + kl)[0]


@dataclass(frozen=True)
class MLPClassifierConfig:
    """Hyper-parameters of an :class:`MLPClassifier`."""

    hidden: int = 256  # width of each hidden layer
    depth: int = 1  # hidden layers
    n_classes: int = 10  # K
    in_features: int = 784  # D (flattened image)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("hidden", "depth", "n_classes", "in_features"):
            check_positive(name, getattr(self, name))


class MLPClassifier(nn.Module):
    """Flattened images (B, ...) -> logits (B, K): ReLU hidden layers, no dropout (vmap-friendly)."""

    def __init__(self, cfg: MLPClassifierConfig) -> None:
        super().__init__()
        if not isinstance(cfg, MLPClassifierConfig):
            raise TypeError(f"cfg must be a MLPClassifierConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.net = mlp([cfg.in_features] + [cfg.hidden] * cfg.depth + [cfg.n_classes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """Mean cross-entropy of (images, labels); logs accuracy."""
        x, y = split_batch(batch)
        if y is None:
            raise ValueError("MLPClassifier.loss needs (images, labels) batches")
        y = check_class_ids("labels", y, self.cfg.n_classes, x.shape[0]).to(x.device)
        logits = self(x)
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}


def ce_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One example's cross-entropy (x without the batch dimension, y a 0-d label)."""
    return F.cross_entropy(model(x[None]), y[None].long())
