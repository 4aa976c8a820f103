"""Image and text in one model (chapter 9): a captioner with cross-attention, and CLIP in miniature.

- :class:`Captioner`: an encoder reads the image as patches (Dosovitskiy et al. 2021) with
  bidirectional self-attention; a decoder writes the caption with causal self-attention plus
  *cross-attention* to the patches (Vaswani et al. 2017, section 3.2.3: queries from the text,
  keys and values from the image). Generation keeps a :class:`~genai_lib.models.attention.KVCache`
  for the text and computes the patches' keys and values once.
- :class:`ContrastiveModel`: an image encoder and a text encoder trained with the symmetric
  InfoNCE loss and a learned temperature (Radford et al. 2021, figure 3), :func:`info_nce`.

Shape legend: B batch, T caption length, P patches, C width, nh heads, D embedding size.
Images (B, 1, 28, 28) in [0, 1]; captions int64 (B, T) of :class:`genai_lib.captions.CaptionTokenizer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_images, check_positive, plain_fields
from genai_lib.models._layers import ConvEncoder28, conv_blocks28, random_shift
from genai_lib.models.attention import CausalSelfAttention, KVCache
from genai_lib.sampling import generate_tokens
from genai_lib.tokenizer import check_token_ids

__all__ = [
    "CaptionerConfig",
    "Captioner",
    "CrossAttention",
    "EncoderBlock",
    "ContrastiveConfig",
    "ContrastiveModel",
    "info_nce",
    "patchify",
]


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 1, 28, 28) -> (B, P, patch^2), P = (28 / patch)^2 patches in reading order."""
    b = images.shape[0]
    g = 28 // patch
    x = images.reshape(b, g, patch, g, patch).permute(0, 1, 3, 2, 4)  # (B, g, g, p, p)
    return x.reshape(b, g * g, patch * patch)


@dataclass(frozen=True)
class CaptionerConfig:
    vocab_size: int = 24  # CaptionTokenizer().vocab_size
    max_len: int = 8  # caption positions (<bos> .. <eos>)
    patch: int = 4  # patch side: 7 x 7 = 49 patches (stem "patch")
    stem: str = "patch"  # "patch": linear patch embedding; "conv": two stride-2 convolutions, a 7 x 7 grid;
    # "classifier": the conv blocks of the course's digit classifier (ImageClassifier, width stem_width)
    # then a linear map to n_embd, a 7 x 7 grid; Captioner.init_stem copies a trained classifier in
    stem_width: int = 32  # stem "classifier": channels of its first conv block (the second has 2x)
    n_embd: int = 64  # width C
    n_head: int = 4  # heads
    enc_layers: int = 2  # image encoder blocks
    dec_layers: int = 2  # caption decoder blocks
    dropout: float = 0.0  # dropout inside the blocks
    shift: int = 0  # training: random shifts of up to this many pixels (thickness, slant, size are shift-invariant)

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("shift", self.shift, allow_zero=True)
        for f in ("vocab_size", "max_len", "patch", "n_embd", "n_head", "enc_layers", "dec_layers", "stem_width"):
            check_positive(f, getattr(self, f))
        if self.stem not in ("patch", "conv", "classifier"):
            raise ValueError(f"stem must be 'patch', 'conv' or 'classifier', got {self.stem!r}")
        if 28 % self.patch:
            raise ValueError(f"patch must divide 28, got {self.patch}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_embd / n_head must be an even integer, got {self.n_embd} / {self.n_head}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class CrossAttention(nn.Module):
    """Queries from x (B, T, C), keys and values from memory (B, P, C) -> (B, T, C). No mask:
    every text position may look at every patch."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.q = nn.Linear(n_embd, n_embd, bias=False)
        self.kv = nn.Linear(n_embd, 2 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The patches' keys and values, each (B, nh, P, hs): computed once per image."""
        b, p, c = memory.shape
        k, v = self.kv(memory).split(c, dim=2)
        return tuple(t.view(b, p, self.n_head, c // self.n_head).transpose(1, 2) for t in (k, v))  # type: ignore

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], weights: bool = False) -> Any:
        b, t, c = x.shape
        q = self.q(x).view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k, v = kv
        if weights:  # the explicit softmax(Q K^T / sqrt(hs)) V, returning the map (B, nh, T, P)
            w = (q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])).softmax(-1)
            y = w @ v
        else:
            y, w = F.scaled_dot_product_attention(q, k, v), None
        y = self.proj(y.transpose(1, 2).reshape(b, t, c))
        return (y, w) if weights else y


class EncoderBlock(nn.Module):
    """Pre-norm bidirectional self-attention block: (B, N, C) -> (B, N, C)."""

    def __init__(self, c: int, nh: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, nh, dropout=dropout, bias=False, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class _DecoderBlock(nn.Module):
    """x + CausalSelfAttn(LN x), then x + CrossAttn(LN x, patches), then x + MLP(LN x)."""

    def __init__(self, c: int, nh: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.self_attn = CausalSelfAttention(c, nh, dropout)
        self.cross = CrossAttention(c, nh)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c), nn.Dropout(dropout))

    def forward(self, x, kv, cache=None, layer=0, weights=False):
        x = x + self.self_attn(self.ln1(x), cache, layer)
        y = self.cross(self.ln2(x), kv, weights=weights)
        y, w = y if weights else (y, None)
        x = x + y
        return x + self.mlp(self.ln3(x)), w


class Captioner(nn.Module):
    """Image -> caption: a patch encoder and a causal decoder with cross-attention (module docstring)."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        if not isinstance(cfg, CaptionerConfig):
            raise TypeError(f"cfg must be a CaptionerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        c, n_patch = cfg.n_embd, (28 // cfg.patch) ** 2 if cfg.stem == "patch" else 49
        if cfg.stem == "patch":
            self.patch_in = nn.Linear(cfg.patch**2, c)
        elif cfg.stem == "classifier":  # the ImageClassifier's conv blocks (28 -> 14 -> 7), then C
            w = cfg.stem_width
            self.patch_in = nn.Sequential(*conv_blocks28(w), nn.Flatten(2))  # (B, 2w, 49)
            self.stem_proj = nn.Linear(2 * w, c)
        else:  # a hybrid ViT (Dosovitskiy et al. 2021, section 3.1): CNN features as the patches
            self.patch_in = nn.Sequential(
                nn.Conv2d(1, c // 2, 4, stride=2, padding=1),  # (B, C/2, 14, 14)
                nn.GELU(),
                nn.Conv2d(c // 2, c, 4, stride=2, padding=1),  # (B, C, 7, 7)
                nn.Flatten(2),  # (B, C, 49)
            )
        self.patch_pos = nn.Parameter(torch.randn(1, n_patch, c) * 0.02)
        self.encoder = nn.ModuleList(EncoderBlock(c, cfg.n_head, cfg.dropout) for _ in range(cfg.enc_layers))
        self.ln_mem = nn.LayerNorm(c)
        self.tok = nn.Embedding(cfg.vocab_size, c)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, c) * 0.02)
        self.decoder = nn.ModuleList(_DecoderBlock(c, cfg.n_head, cfg.dropout) for _ in range(cfg.dec_layers))
        self.ln_f = nn.LayerNorm(c)
        self.head = nn.Linear(c, cfg.vocab_size, bias=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 1, 28, 28) -> patch features (B, P, C)."""
        images = check_images("images", images, (1, 28, 28))
        dev = self.patch_pos.device
        images = images.to(dev)
        if self.cfg.stem == "patch":
            x = self.patch_in(patchify(images, self.cfg.patch))
        else:
            x = self.patch_in(images).transpose(1, 2)  # (B, 49, C), stem "classifier": (B, 49, 2w)
            if self.cfg.stem == "classifier":
                x = self.stem_proj(x)
        x = x + self.patch_pos
        for blk in self.encoder:
            x = blk(x)
        return self.ln_mem(x)

    @torch.no_grad()
    def init_stem(self, classifier: nn.Module) -> None:
        """Copy the two conv layers of a trained :class:`~genai_lib.models.classifier.ImageClassifier`
        into the stem "classifier" (transfer learning: the hybrid ViT's pre-trained CNN, Dosovitskiy
        et al. 2021, section 3.1); training then fine-tunes them with the rest."""
        if self.cfg.stem != "classifier":
            raise ValueError(f"init_stem needs stem='classifier', got stem={self.cfg.stem!r}")
        body = getattr(classifier, "body", None)
        if not isinstance(body, nn.Sequential) or len(body) < 5 or not isinstance(body[3], nn.Conv2d):
            raise TypeError(f"classifier must be an ImageClassifier, got {type(classifier).__name__}")
        for i in (0, 3):
            dst, src = self.patch_in[i], body[i]
            if dst.weight.shape != src.weight.shape:
                raise ValueError(
                    f"classifier conv {i} has weights {tuple(src.weight.shape)}, the stem {tuple(dst.weight.shape)}:"
                    " stem_width must equal the classifier's width"
                )
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)

    def _kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [blk.cross.memory_kv(memory) for blk in self.decoder]

    def _decode(self, ids, kvs, cache=None, start=0, weights=False):
        x = self.tok(ids) + self.pos[:, start : start + ids.shape[1]]
        maps = []
        for i, blk in enumerate(self.decoder):
            x, w = blk(x, kvs[i], cache, i, weights)
            maps.append(w)
        return self.head(self.ln_f(x)), maps

    def _ids(self, ids: Any) -> torch.Tensor:
        ids = check_token_ids("ids", ids, self.cfg.vocab_size, dims=(2,))
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"ids must have at most max_len={self.cfg.max_len} positions, got {ids.shape[1]}")
        return ids.to(self.pos.device)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) of the token after each position of ids (B, T)."""
        ids = self._ids(ids)
        if ids.shape[0] != images.shape[0]:
            raise ValueError(f"images and ids must have the same batch size, got {images.shape[0]} and {ids.shape[0]}")
        return self._decode(ids, self._kv(self.encode(images)))[0]

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of each next word; batch = (images, ids, ...)."""
        images, ids = batch[0], self._ids(batch[1])
        if self.training and self.cfg.shift:  # 2-pixel shifts change the attributes of 0.45% of the
            # training digits (faint ink cut at the border): little label noise
            images = random_shift(check_images("images", images, (1, 28, 28)), self.cfg.shift, generator)
        logits = self(images, ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
        return loss, {"ce": float(loss.detach())}

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Cross-attention weights (B, layers, nh, T, P) of the decoder reading ids (B, T)."""
        ids = self._ids(ids)
        _, maps = self._decode(ids, self._kv(self.encode(images)), weights=True)
        return torch.stack(maps, dim=1)

    @torch.no_grad()
    def generate(
        self,
        images: torch.Tensor,
        *,
        greedy: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Caption ids (B, max_len) starting at <bos>, decoded by the course's ``generate_tokens``."""
        kvs = self._kv(self.encode(images))
        b, cfg = images.shape[0], self.cfg
        start = torch.full((b, 1), 1, dtype=torch.long, device=self.pos.device)  # <bos>

        def step(out: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
            if not use_cache:  # recompute every position (the reference the cache must equal)
                return self._decode(out, kvs)[0][:, -1], None
            if cache is None:
                hs = cfg.n_embd // cfg.n_head
                cache = KVCache(cfg.dec_layers, b, cfg.n_head, cfg.max_len, hs, device=out.device, dtype=self.pos.dtype)
                logits = self._decode(out, kvs, cache, 0)[0]
            else:
                logits = self._decode(out[:, -1:], kvs, cache, cache.pos)[0]
            cache.pos = out.shape[1]
            return logits[:, -1], cache

        return generate_tokens(
            step, start, cfg.max_len - 1, greedy=greedy, temperature=temperature, top_k=top_k, generator=generator
        )

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError("a captioner needs images: use generate(images)")


# --------------------------------------------------------------------------- contrastive (CLIP)


def info_nce(
    img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor | float, same: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised embeddings img, txt (B, D) (Radford et al. 2021, fig. 3):

        L = 1/2 [ CE(s I T^T, targets) + CE(s T I^T, targets) ],  s = exp(logit_scale)

    targets: pair i matches i; with ``same`` (B, B) bool (pairs with identical captions), the
    target of row i is spread evenly over the columns j with same[i, j] (no false negatives).
    """
    if img.shape != txt.shape or img.dim() != 2:
        raise ValueError(f"img and txt must both be (B, D), got {tuple(img.shape)} and {tuple(txt.shape)}")
    scale = torch.as_tensor(logit_scale, device=img.device).float().exp()
    logits = scale * img.float() @ txt.float().T  # (B, B)
    if same is None:
        target = torch.eye(img.shape[0], device=img.device)
    else:
        target = same.float().to(img.device)
        if target.shape != logits.shape or not bool(target.diagonal().all()):
            raise ValueError("same must be (B, B) with a true diagonal (each pair matches itself)")
    t = target / target.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t.T))  # same is symmetric: t.T's rows sum to 1


@dataclass(frozen=True)
class ContrastiveConfig:
    vocab_size: int = 24  # CaptionTokenizer().vocab_size
    max_len: int = 8  # caption positions
    embed_dim: int = 32  # shared embedding size D
    width: int = 32  # image CNN width
    n_embd: int = 64  # text Transformer width
    n_head: int = 4  # text heads
    text_layers: int = 2  # text blocks
    init_temperature: float = 0.07  # CLIP's initial temperature
    dedupe: bool = True  # identical captions in a batch count as matches (see info_nce)

    def __post_init__(self) -> None:
        plain_fields(self)
        for f in ("vocab_size", "max_len", "embed_dim", "width", "n_embd", "n_head", "text_layers"):
            check_positive(f, getattr(self, f))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got {self.n_embd} and {self.n_head}")
        check_positive("init_temperature", self.init_temperature, integer=False)


class ContrastiveModel(nn.Module):
    """CLIP in miniature: ``encode_image`` and ``encode_text`` give unit vectors (B, D)."""

    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ContrastiveConfig):
            raise TypeError(f"cfg must be a ContrastiveConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.image_net = nn.Sequential(ConvEncoder28(4 * cfg.embed_dim, cfg.width), nn.GELU())
        self.image_proj = nn.Linear(4 * cfg.embed_dim, cfg.embed_dim)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.n_embd) * 0.02)
        self.text_blocks = nn.ModuleList(EncoderBlock(cfg.n_embd, cfg.n_head, 0.0) for _ in range(cfg.text_layers))
        self.text_ln = nn.LayerNorm(cfg.n_embd)
        self.text_proj = nn.Linear(cfg.n_embd, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        images = check_images("images", images, (1, 28, 28)).to(self.pos.device)
        return F.normalize(self.image_proj(self.image_net(images)), dim=-1)

    def text_tokens(self, ids: Any) -> torch.Tensor:
        """Per-token text features (B, T, C): what a text-conditioned generator cross-attends to."""
        ids = check_token_ids("ids", ids, self.cfg.vocab_size, dims=(2,)).to(self.pos.device)
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"ids must have at most max_len={self.cfg.max_len} positions, got {ids.shape[1]}")
        x = self.tok(ids) + self.pos[:, : ids.shape[1]]
        for blk in self.text_blocks:
            x = blk(x)
        return self.text_ln(x)

    def encode_text(self, ids: Any) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_tokens(ids).mean(1)), dim=-1)

    def similarity(self, images: torch.Tensor, ids: Any) -> torch.Tensor:
        """Cosine similarities (B_images, B_texts)."""
        return self.encode_image(images) @ self.encode_text(ids).T

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        images, ids = batch[0], batch[1]
        img, txt = self.encode_image(images), self.encode_text(ids)
        ids = ids.to(img.device)
        same = (ids[:, None] == ids[None]).all(-1) if self.cfg.dedupe else None
        scale = self.logit_scale.clamp(max=math.log(100.0))  # CLIP clips the scale at 100
        loss = info_nce(img, txt, scale, same)
        return loss, {"nce": float(loss.detach()), "temperature": float((-scale).exp().detach())}
