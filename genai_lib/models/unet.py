"""Denoising networks for diffusion and flow matching (chapter 6): a small U-Net for 28x28
images and an MLP for 2-D points (or any flat vector, e.g. VAE latents).

Both networks map a noisy input, a time and optionally a class label to an output of the
input's shape: ``net(x, t, labels) -> (B, ...)``. *What* the output means (the noise eps, the
clean x0, the velocity v) is the business of the process that trains it
(:mod:`genai_lib.models.diffusion`, :mod:`genai_lib.models.flow`): the network knows nothing
about schedules, which is why one U-Net serves both families.

- time ``t`` is a float in [0, 1] per example (a diffusion step t/T, or the flow time), embedded
  with the sinusoidal features of the Transformer (Vaswani et al. 2017, section 3.5) as DDPM
  does (Ho et al. 2020, appendix B), then an MLP;
- the U-Net (Ronneberger et al. 2015) in DDPM's form: residual blocks with group normalisation
  (Wu & He 2018), the time embedding entering every block as a scale and shift of the
  normalised features ("adaptive group norm", Dhariwal & Nichol 2021, section 3), self-attention
  at the 7x7 level, skip connections by concatenation, the last layer of every residual branch
  zero-initialised (each block starts as the identity);
- ``n_classes = K > 0`` adds a class embedding with K + 1 rows: row K is the *null class*, the
  "no label" input that classifier-free guidance (Ho & Salimans 2022) trains by dropping labels.

:func:`guided` combines the conditional and unconditional outputs of one network,
``out_u + w (out_c - out_u)`` (scale w = 0: unconditional, 1: conditional, > 1: guided).

Shape legend: B batch, C channels, H x W = 28 x 28 images, D vector size, E embedding size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import (
    check_finite_number,
    check_positive,
    check_probability,
    check_size,
    check_tensor,
    plain_fields,
)

__all__ = [
    "UNetConfig",
    "UNet",
    "MLPDenoiserConfig",
    "MLPDenoiser",
    "build_denoiser",
    "timestep_embedding",
    "guided",
    "null_labels",
]


def timestep_embedding(t: torch.Tensor, dim: int, *, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features of times t (B,) in [0, 1]: (B, dim), half sines, half cosines.

    ``scale * t`` plays the role of the position of Vaswani et al. (2017): frequencies
    ``10000^(-i / (dim/2))``, so a DDPM step t/T with T = 1000 gets DDPM's own embedding.
    """
    check_tensor("t", t, floating=True)
    if t.dim() != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = scale * t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _Conditioning(nn.Module):
    """Time (and class) -> one embedding (B, E) shared by every block."""

    def __init__(self, base: int, emb: int, n_classes: int) -> None:
        super().__init__()
        self.base = base
        self.mlp = nn.Sequential(nn.Linear(base, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.n_classes = n_classes
        self.label = nn.Embedding(n_classes + 1, emb) if n_classes else None  # row K: the null class

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        e = self.mlp(timestep_embedding(t, self.base))  # (B, E)
        if self.label is not None:
            e = e + self.label(null_labels(len(t), self.n_classes, t.device) if labels is None else labels)
        return e


def _check_inputs(x: torch.Tensor, t: Any, labels: Any, shape: tuple[int, ...], n_classes: int) -> torch.Tensor:
    check_tensor("x", x, shape=(None, *shape), floating=True)
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.full((x.shape[0],), float(t), device=x.device)
    t = check_tensor("t", t, shape=(x.shape[0],), floating=True)
    if labels is not None:
        if not n_classes:
            raise ValueError("labels were given to an unconditional network (n_classes = 0)")
        check_tensor("labels", labels, shape=(x.shape[0],), floating=False)
        if int(labels.min()) < 0 or int(labels.max()) > n_classes:
            raise ValueError(
                f"labels must lie in [0, {n_classes}] ({n_classes} = the null class), got {labels.tolist()}"
            )
    return t.to(x.device)


# --------------------------------------------------------------------------- the U-Net


@dataclass(frozen=True)
class UNetConfig:
    """A U-Net for small images (frozen; variants with ``dataclasses.replace``)."""

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W); H and W divisible by 2^(levels - 1)
    width: int = 32  # channels at full resolution
    mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per level: 28x28, 14x14, 7x7
    blocks: int = 1  # residual blocks per level on the way down (one more on the way up)
    attention: bool = True  # self-attention at the lowest level (7x7) and in the middle
    heads: int = 4  # attention heads
    groups: int = 8  # group-norm groups (each channel count must be divisible by it)
    dropout: float = 0.0  # inside the residual blocks
    n_classes: int = 0  # 0: unconditional; K: a class embedding with K + 1 rows (row K = null class)
    patch: int = 1  # 2: fold each 2x2 pixel patch into channels first (space-to-depth), 4x cheaper

    def __post_init__(self) -> None:
        plain_fields(self)
        if not isinstance(self.image_shape, (tuple, list)) or len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape!r}")
        shape = tuple(self.image_shape)
        for name, v in zip(("C", "H", "W"), shape, strict=True):
            check_positive(f"image_shape {name}", v)
        object.__setattr__(self, "image_shape", shape)
        if not isinstance(self.mults, (tuple, list)):
            raise TypeError(f"mults must be a tuple of ints, got {type(self.mults).__name__}")
        mults = tuple(self.mults)
        if not mults:
            raise ValueError("mults must name at least one level")
        for m in mults:
            check_positive("mults entry", m)
        object.__setattr__(self, "mults", mults)
        for name in ("width", "blocks", "heads", "groups"):
            check_positive(name, getattr(self, name))
        check_positive("n_classes", self.n_classes, allow_zero=True)
        check_probability("dropout", self.dropout, open_high=True)
        check_positive("patch", self.patch)
        factor = self.patch * 2 ** (len(mults) - 1)
        if shape[1] % factor or shape[2] % factor:
            raise ValueError(f"image sides {shape[1:]} must be divisible by patch * 2^(levels - 1) = {factor}")
        for c in sorted({self.width * m for m in mults} | {self.width}):
            if c % self.groups:
                raise ValueError(f"channel count {c} is not divisible by groups={self.groups}")
        if self.attention and (self.width * mults[-1]) % self.heads:
            raise ValueError(f"the 7x7 channels ({self.width * mults[-1]}) are not divisible by heads={self.heads}")
        if not isinstance(self.attention, bool):
            raise TypeError(f"attention must be a bool, got {type(self.attention).__name__}")
        check_size("UNetConfig", self.num_params)

    @property
    def num_params(self) -> int:
        """About how many weights the U-Net has (within a factor of 2; a bound for :func:`check_size`)."""
        convs = 40 * (2 * self.blocks + 2) * sum((self.width * m) ** 2 for m in self.mults)
        return convs + (self.n_classes + 1) * self.emb_dim

    @property
    def emb_dim(self) -> int:
        """E = 4 * width, as in DDPM."""
        return 4 * self.width


class ResBlock(nn.Module):
    """GN-SiLU-conv, adaptive GN with the embedding (scale, shift), SiLU-dropout-conv, plus a skip.

    x (B, C_in, H, W), e (B, E) -> (B, C_out, H, W). The second conv starts at zero.
    """

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * c_out)  # scale and shift
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        scale, shift = self.emb(F.silu(e))[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, residual, zero-initialised
    output projection: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, nh, hs, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, nh, HW, hs) each
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, hs)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """DDPM's U-Net, sized for 28x28 digits (see the module docstring).

    With the defaults: 28x28 (32 ch) -> 14x14 (64) -> 7x7 (64, attention) and back, about 0.9M
    parameters. ``forward(x, t, labels)``: x (B, C, H, W), t (B,) in [0, 1], labels (B,) int in
    [0, K] or None (the null class) -> (B, C, H, W).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        if not isinstance(cfg, UNetConfig):
            raise TypeError(f"cfg must be a UNetConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        c_img, w, e, g, p = cfg.image_shape[0], cfg.width, cfg.emb_dim, cfg.groups, cfg.dropout
        chans = [w * m for m in cfg.mults]
        last = len(chans) - 1
        self.cond = _Conditioning(w, e, cfg.n_classes)
        self.unfold = nn.PixelUnshuffle(cfg.patch) if cfg.patch > 1 else nn.Identity()
        self.fold = nn.PixelShuffle(cfg.patch) if cfg.patch > 1 else nn.Identity()
        c_img = c_img * cfg.patch**2
        self.conv_in = nn.Conv2d(c_img, w, 3, padding=1)
        self.down = nn.ModuleList()
        skips, c = [w], w
        for i, ch in enumerate(chans):
            for _ in range(cfg.blocks):
                attn = cfg.attention and i == last
                self.down.append(_Level(c, ch, e, g, p, attn, cfg.heads))
                c = ch
                skips.append(c)
            if i < last:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # halve H and W
                skips.append(c)
        self.mid1 = ResBlock(c, c, e, g, p)
        self.mid_attn = SelfAttention2d(c, cfg.heads, g) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c, c, e, g, p)
        self.up = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            for _ in range(cfg.blocks + 1):
                attn = cfg.attention and i == last
                self.up.append(_Level(c + skips.pop(), ch, e, g, p, attn, cfg.heads))
                c = ch
            if i > 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
                )
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = _zero(nn.Conv2d(c, c_img, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), t (B,) in [0, 1], labels (B,) or None -> (B, C, H, W)."""
        t = _check_inputs(x, t, labels, self.cfg.image_shape, self.cfg.n_classes)
        e = self.cond(t, labels)  # (B, E)
        h = self.conv_in(self.unfold(x))  # (B, w, 28, 28), or (B, w, 14, 14) with patch 2
        stack = [h]
        for layer in self.down:
            h = layer(h, e) if isinstance(layer, _Level) else layer(h)
            stack.append(h)  # 28x28 ... 7x7
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)  # (B, c, 7, 7)
        for layer in self.up:
            h = layer(torch.cat([h, stack.pop()], dim=1), e) if isinstance(layer, _Level) else layer(h)
        return self.fold(self.conv_out(F.silu(self.norm_out(h))))  # (B, C, 28, 28)


class _Level(nn.Module):
    """One residual block, followed by self-attention at the lowest level."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, dropout: float, attn: bool, heads: int) -> None:
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb, groups, dropout)
        self.attn = SelfAttention2d(c_out, heads, groups) if attn else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, e))


# --------------------------------------------------------------------------- the MLP for vectors


@dataclass(frozen=True)
class MLPDenoiserConfig:
    """An MLP denoiser for points or flat vectors (2-D toy data, VAE latents)."""

    dim: int = 2  # D, the size of a data vector
    hidden: int = 128  # width of every hidden layer
    depth: int = 3  # residual hidden blocks
    emb_dim: int = 64  # E, size of the time (and class) embedding
    n_classes: int = 0  # 0: unconditional; K: K + 1 class rows (row K = null class)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("dim", "hidden", "depth"):
            check_positive(name, getattr(self, name))
        check_positive("emb_dim", self.emb_dim)
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even (sines and cosines), got {self.emb_dim}")
        check_positive("n_classes", self.n_classes, allow_zero=True)
        h, e = self.hidden, self.emb_dim
        count = self.depth * (2 * h * h + e * h) + 2 * self.dim * h + 3 * e * e + (self.n_classes + 1) * e
        check_size("MLPDenoiserConfig", count)


class MLPDenoiser(nn.Module):
    """x (B, D), t (B,) in [0, 1], labels -> (B, D): an input layer, ``depth`` residual SiLU blocks
    that each add the embedding, and a zero-initialised output layer."""

    def __init__(self, cfg: MLPDenoiserConfig) -> None:
        super().__init__()
        if not isinstance(cfg, MLPDenoiserConfig):
            raise TypeError(f"cfg must be an MLPDenoiserConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        h = cfg.hidden
        self.cond = _Conditioning(cfg.emb_dim, cfg.emb_dim, cfg.n_classes)
        self.inp = nn.Linear(cfg.dim, h)
        self.emb = nn.ModuleList(nn.Linear(cfg.emb_dim, h) for _ in range(cfg.depth))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h)) for _ in range(cfg.depth)
        )
        self.out = nn.Sequential(nn.SiLU(), _zero(nn.Linear(h, cfg.dim)))

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, D), t (B,) in [0, 1], labels (B,) or None -> (B, D)."""
        t = _check_inputs(x, t, labels, (self.cfg.dim,), self.cfg.n_classes)
        e = self.cond(t, labels)  # (B, E)
        h = self.inp(x)  # (B, hidden)
        for emb, block in zip(self.emb, self.blocks, strict=True):
            h = h + block(h + emb(e))
        return self.out(h)  # (B, D)


def build_denoiser(cfg: UNetConfig | MLPDenoiserConfig) -> UNet | MLPDenoiser:
    """The network a config describes."""
    if isinstance(cfg, UNetConfig):
        return UNet(cfg)
    if isinstance(cfg, MLPDenoiserConfig):
        return MLPDenoiser(cfg)
    raise TypeError(f"denoiser must be a UNetConfig or MLPDenoiserConfig, got {type(cfg).__name__}")


def null_labels(n: int, n_classes: int, device: Any = None) -> torch.Tensor:
    """(n,) labels all equal to the null class K."""
    return torch.full((n,), n_classes, dtype=torch.long, device=device)


def guided(
    net: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, scale: float = 1.0
) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6, written with w = 1 + their w):

        out = out(x, t, null) + scale * (out(x, t, labels) - out(x, t, null)).

    ``scale`` 0 is the unconditional model, 1 the conditional one, > 1 pushes samples towards
    what makes the label likely. Without labels (or with scale 0) it is one unconditional pass;
    scale 1 is one conditional pass; otherwise both passes run as one batch of 2B.
    """
    scale = check_finite_number("guidance scale", scale, positive=True)
    n_classes = getattr(getattr(net, "cfg", None), "n_classes", 0)
    if labels is None or scale == 0:
        return net(x, t, null_labels(len(x), n_classes, x.device) if n_classes else None)
    if scale == 1:
        return net(x, t, labels)
    both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null_labels(len(x), n_classes, x.device)]))
    cond, uncond = both.chunk(2)
    return uncond + scale * (cond - uncond)
