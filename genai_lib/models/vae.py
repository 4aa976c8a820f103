"""Variational autoencoder (Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014).

Chapter 2 of the course. The generative model is a latent-variable model

    z ~ p(z) = N(0, I),        x | z ~ p_theta(x | z) = Bernoulli(sigmoid(decoder(z)))   (pixel-wise)

and the encoder gives the approximate posterior q_phi(z | x) = N(mu(x), diag(exp(logvar(x)))).
Training maximises the evidence lower bound (ELBO) on log p(x), i.e. minimises

    -ELBO(x) = E_q[-log p_theta(x | z)] + KL(q_phi(z | x) || p(z))           (K&W 2014, eq. 10)

in nats per image, with one reparameterised sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).
``beta`` != 1 weights the KL term (beta-VAE, Higgins et al. 2017).

Shape legend: B batch, C x H x W image (1 x 28 x 28 for MNIST), D = C*H*W pixels, Z latent size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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
from genai_lib.models._layers import ConvDecoder28, ConvEncoder28, mlp, random_shift
from genai_lib.models._layers import reparameterize as _reparameterize
from genai_lib.utils import eval_mode, normal_noise, split_batch, uniform_noise

__all__ = ["VAEConfig", "VAE", "bernoulli_nll", "gaussian_kl", "neg_elbo", "iwae_nll", "random_shift"]

ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    """Hyper-parameters of a :class:`VAE` (frozen: make variants with ``dataclasses.replace``)."""

    arch: str = "mlp"  # "mlp" (fully connected, any image size) or "conv" (28x28 conv blocks)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the images, pixels in [0, 1]
    z_dim: int = 2  # latent size Z; 2 lets us draw the latent space and put it on two sliders
    hidden: int = 512  # width of each hidden layer of the MLP encoder/decoder
    depth: int = 2  # hidden layers in the MLP encoder and in the MLP decoder
    width: int = 32  # channels of the first conv layer (arch="conv"; the second has 2 * width)
    beta: float = 1.0  # weight of the KL term: 1 is the true ELBO, > 1 a beta-VAE
    shift: int = 0  # training only: shift each image by up to this many pixels (augmentation); 0 = off
    binarize: bool = False  # training only: resample each image as Bernoulli(grey levels) at every step

    def __post_init__(self) -> None:
        plain_fields(self)
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        shape = self.image_shape
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise ValueError(f"image_shape must be a (C, H, W) tuple of 3 ints, got {shape!r}")
        for name, v in zip(("C", "H", "W"), shape, strict=True):
            check_positive(f"image_shape {name}", v)
        object.__setattr__(self, "image_shape", tuple(shape))  # a list becomes a tuple (hashable, comparable)
        if self.arch == "conv" and tuple(shape) != (1, 28, 28):
            raise ValueError(f"arch='conv' needs image_shape (1, 28, 28), got {tuple(shape)}; use arch='mlp'")
        for name in ("z_dim", "hidden", "depth", "width"):
            check_positive(name, getattr(self, name))
        check_positive("shift", self.shift, allow_zero=True)
        if not isinstance(self.binarize, bool):
            raise TypeError(f"binarize must be True or False, got {self.binarize!r}")
        if 2 * self.shift >= min(shape[1:]):
            raise ValueError(f"shift must be less than half the image size {tuple(shape[1:])}, got {self.shift}")
        check_positive("beta", self.beta, integer=False, allow_zero=True)
        check_size(f"VAEConfig(arch={self.arch!r})", self.num_params)

    @property
    def num_params(self) -> int:
        """The number of weights a :class:`VAE` of this config has (biases aside)."""
        d, h, z, n, w = self.num_pixels, self.hidden, self.z_dim, self.depth, self.width
        if self.arch == "mlp":
            return d * h + 2 * (n - 1) * h * h + h * 2 * z + z * h + h * d
        return 16 * w + 64 * w * w + 98 * w * 2 * z + z * 98 * w + 16 * w

    @property
    def num_pixels(self) -> int:
        """D = C * H * W."""
        c, h, w = self.image_shape
        return c * h * w


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ), summed over the last dimension.

    Closed form (Kingma & Welling 2014, Appendix B), per latent dimension j:

        KL_j = 1/2 * (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1),   sigma_j^2 = exp(logvar_j)

    mu, logvar: (..., Z) -> (...,) in nats. Zero exactly when mu = 0 and logvar = 0.
    """
    check_tensor("mu", mu, floating=True)
    check_tensor("logvar", logvar, floating=True)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


class VAE(nn.Module):
    """A VAE with Bernoulli pixels and a Gaussian latent (see the module docstring).

    ``arch="mlp"``: x (B, D) -> hidden x depth -> (mu, logvar); z -> hidden x depth -> D logits.
    ``arch="conv"``: :class:`ConvEncoder28` / :class:`ConvDecoder28` (28 -> 14 -> 7 and back).
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        if not isinstance(cfg, VAEConfig):
            raise TypeError(f"cfg must be a VAEConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        z2 = 2 * cfg.z_dim  # the encoder outputs mu and logvar side by side
        if cfg.arch == "mlp":
            d, h = cfg.num_pixels, cfg.hidden
            self.encoder = nn.Sequential(nn.Flatten(), mlp([d] + [h] * cfg.depth + [z2]))  # (B, 2Z)
            self.decoder = nn.Sequential(mlp([cfg.z_dim] + [h] * cfg.depth + [d]), nn.Unflatten(1, cfg.image_shape))
        else:
            self.encoder = ConvEncoder28(z2, width=cfg.width)  # (B, 2Z)
            self.decoder = ConvDecoder28(cfg.z_dim, width=cfg.width)  # (B, 1, 28, 28) logits

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ validation
    def _check_x(self, x: Any) -> torch.Tensor:
        """Images (B, C, H, W), float, finite, in [0, 1]; moved to the model's device."""
        check_tensor("x", x, shape=(None, *self.cfg.image_shape), floating=True)
        # One host sync for range and NaN together (NaN fails both comparisons); details only on failure.
        if not bool(((x >= 0) & (x <= 1)).all()):
            check_images("x", x, self.cfg.image_shape)  # raises with a message naming what is wrong
            raise ValueError("x must be finite and lie in [0, 1]")  # pragma: no cover - check_images raised
        return as_dtype_of("x", x, self._weight)  # float64 or half images: the model's dtype and device

    def _check_z(self, z: Any, finite: bool = True) -> torch.Tensor:
        check_tensor("z", z, shape=(None, self.cfg.z_dim), floating=True)
        if finite:
            check_finite_tensor("z", z)
        return as_dtype_of("z", z, self._weight)

    @property
    def _weight(self) -> torch.Tensor:
        return next(self.parameters())

    # ------------------------------------------------------------------ the model
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): x (B, C, H, W) in [0, 1] -> mu (B, Z), logvar (B, Z)."""
        h = self.encoder(self._check_x(x))  # (B, 2Z)
        mu, logvar = h.chunk(2, dim=1)  # (B, Z) each
        return mu, logvar

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z | x) that gradients flow through.

        The noise is drawn on ``generator``'s device (CPU by default) and moved to ``mu``'s; the
        one line of arithmetic is :func:`genai_lib.models._layers.reparameterize`, shared with the
        VAE-GAN.
        """
        return _reparameterize(mu, logvar, generator)  # (B, Z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p(x | z): z (B, Z) -> Bernoulli logits (B, C, H, W) (unbounded; sigmoid gives the means)."""
        return self.decoder(self._check_z(z))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """decode() inside training: the shape checked, no host sync for finiteness."""
        return self.decoder(self._check_z(z, finite=False))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means sigmoid(decode(z)) in [0, 1], no gradient: what sliders and plots show."""
        with torch.no_grad():
            return torch.sigmoid(self.decode(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> (logits (B, C, H, W), mu (B, Z), logvar (B, Z)), one sample of z."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)  # (B, Z)
        return self._decode(z), mu, logvar

    def elbo_terms(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction term -log p(x | z) (one sample z ~ q) and KL, each (B,) in nats."""
        mu, logvar = self.encode(x)
        logits = self._decode(self.reparameterize(mu, logvar, generator))
        return bernoulli_nll(logits, x.to(logits.device)), gaussian_kl(mu.float(), logvar.float())

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over the batch of  recon + beta * KL  (the negative ELBO when beta = 1), nats/image.

        ``batch`` is images (B, C, H, W) or (images, labels). Logs: recon, kl, neg_elbo (beta = 1).
        """
        x, _ = split_batch(batch)
        if self.training and self.cfg.shift:
            x = random_shift(self._check_x(x), self.cfg.shift)  # augmentation: a new view of each image
        if self.training and self.cfg.binarize:  # dynamic binarisation: a fresh binary image each time
            x = _binarize(self._check_x(x))
        logits, mu, logvar = self(x)
        recon = bernoulli_nll(logits, x.to(logits.device))  # (B,)  -log p(x | z), eq. (10) first term
        kl = gaussian_kl(mu.float(), logvar.float())  # (B,)  closed form, K&W Appendix B
        loss = (recon + self.cfg.beta * kl).mean()
        logs = {"recon": recon.mean(), "kl": kl.mean(), "neg_elbo": (recon + kl).mean()}
        return loss, {k: v.detach() for k, v in logs.items()}

    # ------------------------------------------------------------------ using a trained model
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new images (n, C, H, W) in [0, 1] on the CPU: z ~ N(0, I), shown as the decoder's pixel means."""
        check_positive("n", n)
        check_size(f"VAE.sample({n})", n * (self.cfg.num_pixels + self.cfg.z_dim), unit="values")
        z = normal_noise((n, self.cfg.z_dim), generator=generator, device=self.device, dtype=self._weight.dtype)
        with eval_mode(self):
            return torch.sigmoid(self._decode(z)).cpu()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: x (B, C, H, W) -> pixel means (B, C, H, W) in [0, 1] on the CPU."""
        with eval_mode(self):
            mu, _ = self.encode(x)
            return self.decode_mean(mu).cpu()


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x | sigmoid(logits)) summed over all but the batch dimension: (B, ...) -> (B,).

    Binary cross-entropy with logits is this negative log-likelihood, also for grey values x in
    [0, 1] (then it is a cross-entropy, as in K&W's MNIST experiments). Computed in float32.
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError(f"logits and x must be tensors, got {type(logits).__name__} and {type(x).__name__}")
    if logits.shape != x.shape or logits.dim() < 2:
        got = f"{tuple(logits.shape)} and {tuple(x.shape)}"
        raise ValueError(f"logits and x must have the same shape (B, ...), got {got}")
    return F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(dim=1)


@torch.no_grad()
def neg_elbo(model: VAE, data: Iterable | torch.Tensor, *, generator: torch.Generator | None = None) -> float:
    """Held-out negative ELBO in nats per image (beta = 1, one posterior sample per image).

    ``data`` is an image tensor (N, C, H, W) or a loader of images / (images, labels) batches.
    The model is evaluated in eval mode and left in the mode it was in.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE, got {type(model).__name__}")
    batches = data.split(256) if isinstance(data, torch.Tensor) else data
    total, count = 0.0, 0
    with eval_mode(model):
        for batch in batches:
            x, _ = split_batch(batch)
            recon, kl = model.elbo_terms(x, generator=generator)
            total += float((recon + kl).sum())
            count += x.shape[0]
    if count == 0:
        raise ValueError("neg_elbo got no images (empty data)")
    return total / count


def _binarize(x: torch.Tensor) -> torch.Tensor:
    """Bernoulli(x) per pixel on x's device (the training-time twin of ``genai_lib.data.binarize``)."""
    return (uniform_noise(tuple(x.shape), device=x.device, dtype=x.dtype) < x).to(x.dtype)


_LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def iwae_nll(
    model: VAE,
    data: Iterable | torch.Tensor,
    *,
    k: int,
    generator: torch.Generator | None = None,
    batch_size: int = 100,
    chunk: int = 100,
) -> float:
    """Importance-weighted estimate of -log p(x) in nats per image (Burda et al. 2016, eq. 8).

    With ``k`` samples z_1..z_k ~ q(z | x) and weights w_i = p(x | z_i) p(z_i) / q(z_i | x),

        L_k(x) = log (1/k) sum_i w_i  <=  log p(x),

    and E[L_k] rises with k towards log p(x) (Burda et al., Theorem 1). ``k = 1`` is a one-sample
    ELBO whose KL term is estimated by the same sample (its mean is the ELBO); ``k = 1000`` is the
    usual likelihood estimate. The Bernoulli decoder makes this a likelihood only for binary
    pixels: evaluate on binarised images (:func:`genai_lib.data.binarize`). Returns the mean of
    ``-L_k`` over the images. ``chunk`` samples are decoded at once (memory: batch x chunk images).
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE, got {type(model).__name__}")
    for name, v in (("k", k), ("batch_size", batch_size), ("chunk", chunk)):
        check_positive(name, v)
    batches = data.split(batch_size) if isinstance(data, torch.Tensor) else data
    total, count = 0.0, 0
    with eval_mode(model):
        for batch in batches:
            x, _ = split_batch(batch)
            mu, logvar = model.encode(x)  # (B, Z) each
            x = as_dtype_of("x", x, mu)
            logw = []
            for start in range(0, k, chunk):
                c = min(chunk, k - start)
                eps = normal_noise((c, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
                z = mu + torch.exp(0.5 * logvar) * eps  # (c, B, Z)
                logits = model.decode(z.flatten(0, 1))  # (c * B, C, H, W)
                log_px_z = -bernoulli_nll(logits, x.repeat(c, *[1] * (x.dim() - 1))).view(c, -1)  # (c, B)
                log_pz = -0.5 * (z.square() + _LOG_2PI).sum(-1)  # (c, B)
                log_qz = -0.5 * (eps.square() + _LOG_2PI + logvar).sum(-1)  # (c, B)
                logw.append(log_px_z + log_pz.float() - log_qz.float())
            bound = torch.logsumexp(torch.cat(logw), dim=0) - math.log(k)  # (B,)
            total += float(-bound.sum())
            count += x.shape[0]
    if count == 0:
        raise ValueError("iwae_nll got no images (empty data)")
    return total / count
