"""Text to image (chapter 9): a caption-conditioned VAE whose decoder cross-attends to the words.

The decoder maps a latent z (B, Z) to a 7 x 7 grid of features; every grid cell then *queries*
the caption's token features with cross-attention (Vaswani et al. 2017, section 3.2.3; the
same mechanism as Stable Diffusion's U-Net, Rombach et al. 2022, here in a VAE because a
diffusion model's hundreds of denoising steps do not fit a CPU budget of seconds), and two
transposed convolutions bring the grid to 28 x 28. The encoder q(z | x, caption) sees the image
and the pooled caption, so z only has to carry what the words do not say (the handwriting).
Sampling: z ~ N(0, I), decoded under the caption. :func:`rerank` keeps, of several samples per
caption, the one a contrastive model scores highest (as DALL-E re-ranked with CLIP).

Shapes: images (B, 1, 28, 28) in [0, 1]; caption ids (B, 8) of the caption tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_images, check_positive, plain_fields
from genai_lib.models._layers import ConvEncoder28, reparameterize
from genai_lib.models.multimodal import CrossAttention, EncoderBlock
from genai_lib.models.vae import bernoulli_nll, gaussian_kl
from genai_lib.tokenizer import check_token_ids
from genai_lib.utils import normal_noise

__all__ = ["TextToImageConfig", "TextToImageVAE", "rerank"]


@dataclass(frozen=True)
class TextToImageConfig:
    vocab_size: int = 24  # CaptionTokenizer().vocab_size
    max_len: int = 8  # caption positions
    z_dim: int = 16  # latent size Z
    n_embd: int = 64  # text and grid feature width C
    n_head: int = 4  # cross-attention heads
    width: int = 32  # conv width

    def __post_init__(self) -> None:
        plain_fields(self)
        for f in ("vocab_size", "max_len", "z_dim", "n_embd", "n_head", "width"):
            check_positive(f, getattr(self, f))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got {self.n_embd} and {self.n_head}")


class TextToImageVAE(nn.Module):
    """Caption -> image (module docstring)."""

    def __init__(self, cfg: TextToImageConfig) -> None:
        super().__init__()
        if not isinstance(cfg, TextToImageConfig):
            raise TypeError(f"cfg must be a TextToImageConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        c = cfg.n_embd
        self.tok = nn.Embedding(cfg.vocab_size, c)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, c) * 0.02)
        self.text = EncoderBlock(c, cfg.n_head, 0.0)
        self.text_ln = nn.LayerNorm(c)
        self.img_enc = ConvEncoder28(4 * cfg.z_dim, cfg.width)
        self.enc_head = nn.Linear(4 * cfg.z_dim + c, 2 * cfg.z_dim)
        self.grid = nn.Linear(cfg.z_dim, 49 * c)
        self.grid_pos = nn.Parameter(torch.randn(1, 49, c) * 0.02)
        self.ln_q = nn.LayerNorm(c)
        self.cross = CrossAttention(c, cfg.n_head)
        self.ff = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
        w = cfg.width
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c, w, 4, stride=2, padding=1),  # (B, w, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits
        )

    def text_features(self, ids: Any) -> torch.Tensor:
        """Caption ids (B, T) -> token features (B, T, C)."""
        ids = check_token_ids("ids", ids, self.cfg.vocab_size, dims=(2,)).to(self.pos.device)
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"ids must have at most max_len={self.cfg.max_len} positions, got {ids.shape[1]}")
        return self.text_ln(self.text(self.tok(ids) + self.pos[:, : ids.shape[1]]))

    def decode(self, z: torch.Tensor, text: torch.Tensor, weights: bool = False) -> Any:
        """z (B, Z), text features (B, T, C) -> image logits (B, 1, 28, 28) (and the maps (B, nh, 49, T))."""
        b, c = z.shape[0], self.cfg.n_embd
        g = self.grid(z).view(b, 49, c) + self.grid_pos  # (B, 49, C): a 7 x 7 grid of queries
        y = self.cross(self.ln_q(g), self.cross.memory_kv(text), weights=weights)
        y, w = y if weights else (y, None)
        g = g + y
        g = g + self.ff(g)
        logits = self.up(g.transpose(1, 2).reshape(b, c, 7, 7))
        return (logits, w) if weights else logits

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        images = check_images("images", batch[0], (1, 28, 28)).to(self.pos.device)
        text = self.text_features(batch[1])
        if text.shape[0] != images.shape[0]:
            raise ValueError(f"images and ids must have the same batch size, got {images.shape[0]} and {text.shape[0]}")
        h = torch.cat([self.img_enc(images), text.mean(1)], dim=-1)
        mu, logvar = self.enc_head(h).chunk(2, dim=-1)
        logvar = logvar.clamp(-8, 8)
        z = reparameterize(mu, logvar, generator)
        nll, kl = bernoulli_nll(self.decode(z, text), images), gaussian_kl(mu, logvar)
        loss = (nll + kl).mean()
        return loss, {"nll": float(nll.mean().detach()), "kl": float(kl.mean().detach())}

    @torch.no_grad()
    def generate(self, ids: Any, *, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """One image (B, 1, 28, 28) in [0, 1] per caption, on the CPU; z ~ N(0, temperature^2 I)."""
        text = self.text_features(ids)
        z = normal_noise((text.shape[0], self.cfg.z_dim), generator=generator, device=text.device, dtype=text.dtype)
        return torch.sigmoid(self.decode(z * temperature, text)).cpu()


@torch.no_grad()
def rerank(
    model: TextToImageVAE, scorer: Any, ids: torch.Tensor, k: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Of ``k`` samples per caption, the one with the highest ``scorer.similarity`` (B, 1, 28, 28)."""
    check_positive("k", k)
    ids = check_token_ids("ids", ids, model.cfg.vocab_size, dims=(2,))
    b = ids.shape[0]
    rep = ids.repeat(k, 1)  # (k B, T): sample j of caption i is row j * B + i
    imgs = model.generate(rep, generator=generator)
    img_e = scorer.encode_image(imgs)
    txt_e = scorer.encode_text(ids)
    scores = (img_e.view(k, b, -1) * txt_e[None].to(img_e.device)).sum(-1)  # (k, B)
    best = scores.argmax(0).cpu()
    return imgs.view(k, b, 1, 28, 28)[best, torch.arange(b)]
