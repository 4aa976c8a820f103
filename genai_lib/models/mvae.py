"""Multimodal VAEs over an image and its caption (chapter 10): MVAE (PoE) and MMVAE (MoE).

One latent z explains both views; each view m has an encoder q_m(z | x_m) = N(mu_m, sigma_m^2)
and a decoder p(x_m | z). The joint posterior is built from the experts in one of two ways:

- **Product of experts** (Wu & Goodman 2018): q(z | x, y) proportional to p(z) q_x(z|x) q_y(z|y).
  A product of Gaussians is Gaussian, with precision the sum of precisions (eq. 10.3):
  ``T = sum_m 1/sigma_m^2``, ``mu = (sum_m mu_m / sigma_m^2) / T``, ``sigma^2 = 1 / T``; the
  prior expert N(0, I) adds precision 1 and mean 0, and a missing view simply leaves the product.
  Trained on the joint ELBO plus each view's own ELBO (the paper's sub-sampling).
- **Mixture of experts** (Shi et al. 2019): q(z | x, y) = 1/2 q_x + 1/2 q_y. The ELBO is estimated
  by stratified sampling, one z from each expert (eq. 10.5):
  ``L = 1/2 sum_m [log p(x|z_m) + w log p(y|z_m) + log p(z_m) - log q(z_m | x, y)]``, so each
  expert's sample must explain *both* views: that is what makes cross-generation work.

``views=("image",)`` or ``("caption",)`` gives a unimodal VAE of one view (the baseline).
Captions enter as the 6 word ids (no <bos>/<eos>). Shapes: images (B, 1, 28, 28) in [0, 1];
words int64 (B, 6); z (B, Z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_images, check_positive, plain_fields
from genai_lib.models._layers import ConvDecoder28, ConvEncoder28, mlp, reparameterize
from genai_lib.models.vae import bernoulli_nll, gaussian_kl
from genai_lib.tokenizer import check_token_ids
from genai_lib.utils import normal_noise

__all__ = ["MVAEConfig", "MultimodalVAE", "product_of_experts", "gaussian_log_prob", "WORDS"]

WORDS = 6  # words per caption


def product_of_experts(
    mus: torch.Tensor, logvars: torch.Tensor, prior: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of Gaussian experts (K, B, Z) -> (mu, logvar) (B, Z); with ``prior``, times N(0, I)."""
    if mus.shape != logvars.shape or mus.dim() != 3:
        raise ValueError(f"mus and logvars must both be (K, B, Z), got {tuple(mus.shape)} and {tuple(logvars.shape)}")
    precision = torch.exp(-logvars)  # 1 / sigma^2 of each expert
    total = precision.sum(0) + (1.0 if prior else 0.0)
    mu = (mus * precision).sum(0) / total  # the prior expert adds mean 0
    return mu, -torch.log(total)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension: (..., Z) -> (...)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


@dataclass(frozen=True)
class MVAEConfig:
    posterior: str = "poe"  # "poe" (MVAE) or "moe" (MMVAE)
    views: tuple[str, ...] = ("image", "caption")  # which views the model has
    z_dim: int = 16  # latent size Z
    width: int = 32  # conv encoder/decoder width
    vocab_size: int = 24  # CaptionTokenizer().vocab_size
    embed: int = 16  # word embedding size
    hidden: int = 256  # caption MLP width
    caption_weight: float = 20.0  # w: a caption has 6 words (~10 nats), an image ~100 nats

    def __post_init__(self) -> None:
        plain_fields(self)
        if self.posterior not in ("poe", "moe"):
            raise ValueError(f"posterior must be 'poe' or 'moe', got {self.posterior!r}")
        object.__setattr__(self, "views", tuple(self.views))
        if (
            not self.views
            or any(v not in ("image", "caption") for v in self.views)
            or len(set(self.views)) < len(self.views)
        ):
            raise ValueError(f"views must be a non-empty subset of ('image', 'caption'), got {self.views}")
        for f in ("z_dim", "width", "vocab_size", "embed", "hidden"):
            check_positive(f, getattr(self, f))
        check_positive("caption_weight", self.caption_weight, integer=False)


class MultimodalVAE(nn.Module):
    """A VAE with an image view and a caption view sharing one latent (module docstring)."""

    def __init__(self, cfg: MVAEConfig) -> None:
        super().__init__()
        if not isinstance(cfg, MVAEConfig):
            raise TypeError(f"cfg must be an MVAEConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        z = cfg.z_dim
        if "image" in cfg.views:
            self.img_enc = ConvEncoder28(2 * z, cfg.width)
            self.img_dec = ConvDecoder28(z, cfg.width)
        if "caption" in cfg.views:
            self.emb = nn.Embedding(cfg.vocab_size, cfg.embed)
            self.txt_enc = mlp([WORDS * cfg.embed, cfg.hidden, cfg.hidden, 2 * z])
            self.txt_dec = mlp([z, cfg.hidden, cfg.hidden, WORDS * cfg.vocab_size])

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, image: Any, words: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if image is None and words is None:
            raise ValueError("give at least one view: image or words (both are missing)")
        for name, v in (("image", image), ("caption", words)):
            if v is not None and name not in self.cfg.views:
                raise ValueError(f"this model has no {name} view (views={self.cfg.views})")
        if image is not None:
            image = check_images("image", image, (1, 28, 28)).to(self._device)
        if words is not None:
            words = check_token_ids("words", words, self.cfg.vocab_size, dims=(2,)).to(self._device)
            if words.shape[1] != WORDS:
                raise ValueError(f"words must be (B, {WORDS}) word ids (no <bos>/<eos>), got {tuple(words.shape)}")
        if image is not None and words is not None and image.shape[0] != words.shape[0]:
            raise ValueError(
                f"image and words must have the same batch size, got {image.shape[0]} and {words.shape[0]}"
            )
        return image, words

    def experts(self, image: Any = None, words: Any = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mu, logvar) (B, Z) of each view that is given."""
        image, words = self._check(image, words)
        out = []
        if image is not None:
            out.append(self.img_enc(image).chunk(2, dim=-1))
        if words is not None:
            out.append(self.txt_enc(self.emb(words).flatten(1)).chunk(2, dim=-1))
        return [(mu, lv.clamp(-8, 8)) for mu, lv in out]

    def posterior(self, image: Any = None, words: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian posterior given the views present: the PoE (with the prior), or, for a
        MoE model, the one expert present (with both views a MoE is not Gaussian: use ``experts``)."""
        ex = self.experts(image, words)
        if self.cfg.posterior == "poe":
            return product_of_experts(torch.stack([m for m, _ in ex]), torch.stack([v for _, v in ex]))
        if len(ex) > 1:
            raise ValueError("a MoE posterior over both views is a mixture: use experts() and pick one")
        return ex[0]

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z (B, Z) -> {"image": logits (B, 1, 28, 28), "caption": logits (B, 6, V)} for its views."""
        out = {}
        if "image" in self.cfg.views:
            out["image"] = self.img_dec(z)
        if "caption" in self.cfg.views:
            out["caption"] = self.txt_dec(z).view(-1, WORDS, self.cfg.vocab_size)
        return out

    def _nll(self, z: torch.Tensor, image: torch.Tensor | None, words: torch.Tensor | None) -> torch.Tensor:
        dec, nll = self.decode(z), torch.zeros(z.shape[0], device=z.device)
        if image is not None:
            nll = nll + bernoulli_nll(dec["image"], image)
        if words is not None:
            ce = F.cross_entropy(dec["caption"].float().transpose(1, 2), words, reduction="none").sum(1)
            nll = nll + self.cfg.caption_weight * ce
        return nll

    def _elbo(self, image, words, generator):  # the negative ELBO of one subset of views, (B,)
        mu, lv = self.posterior(image, words)
        return self._nll(reparameterize(mu, lv, generator), image, words) + gaussian_kl(mu, lv)

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """batch = (images, caption ids (B, 8) with <bos>/<eos>, ...): the model's negative ELBO per example."""
        image = batch[0] if "image" in self.cfg.views else None
        words = batch[1][:, 1 : 1 + WORDS] if "caption" in self.cfg.views else None
        image, words = self._check(image, words)
        if len(self.cfg.views) == 1:
            loss = self._elbo(image, words, generator).mean()
        elif self.cfg.posterior == "poe":  # joint + each view alone (Wu & Goodman 2018, section 3.3)
            loss = sum(self._elbo(*v, generator).mean() for v in ((image, words), (image, None), (None, words)))
        else:  # stratified MoE ELBO: one sample per expert, each explaining both views
            ex, terms = self.experts(image, words), []
            for mu, lv in ex:
                z = reparameterize(mu, lv, generator)
                log_q = torch.logsumexp(torch.stack([gaussian_log_prob(z, m, v) for m, v in ex]), 0) - math.log(len(ex))
                log_p = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
                terms.append(self._nll(z, image, words) + log_q - log_p)
            loss = torch.stack(terms).mean(0).mean()
        return loss, {"neg_elbo": float(loss.detach())}

    @torch.no_grad()
    def generate(self, image: Any = None, words: Any = None, *, mean: bool = True, generator: Any = None):
        """Both views from the posterior given the present ones: (image means (B, 1, 28, 28), words (B, 6)).

        ``mean=True`` decodes the posterior mean, else a sample of z. A MoE with both views uses its image expert.
        """
        ex = self.experts(image, words)
        if self.cfg.posterior == "moe":
            mu, lv = ex[0]
        else:
            mu, lv = product_of_experts(torch.stack([m for m, _ in ex]), torch.stack([v for _, v in ex]))
        z = mu if mean else reparameterize(mu, lv, generator)
        return self._views(z)

    def _views(self, z: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        dec = self.decode(z)
        img = torch.sigmoid(dec["image"]).cpu() if "image" in dec else None
        words = dec["caption"].argmax(-1).cpu() if "caption" in dec else None
        return img, words

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None):
        """Joint samples from the prior: (images (n, 1, 28, 28) in [0, 1] or None, words (n, 6) or None)."""
        check_positive("n", n)
        z = normal_noise((n, self.cfg.z_dim), generator=generator, device=self._device, dtype=torch.float32)
        return self._views(z)
