"""pix2pix (Isola et al. 2017): paired image-to-image translation, here 4x super-resolution and inpainting.

Each training example is a pair (condition c, truth x) made from one MNIST digit by a known
degradation (:func:`degrade`):

- ``"sr"``: the digit averaged down 4x to 7x7, then brought back to 28x28 by bicubic
  interpolation (:func:`bicubic_up`, the classical baseline); c is that blurry image, 1 channel.
- ``"inpaint"``: a ``mask_size`` square at a random position inside the central 20x20 box is set
  to 0; c is the masked image and the mask, 2 channels. The output keeps the known pixels and only
  fills the hole: ``y = m * G(c) + (1 - m) * x``.

A U-Net generator (Ronneberger et al. 2015; pix2pix §3.2.1) maps c to the restored image; the
skips carry the fine detail the condition already has. Its objective (pix2pix eq. 4) is

    L_G = adv_weight * L_adv(G, D) + l1_weight * E |x - G(c)|_1

with the non-saturating cross-entropy of pix2pix, ``L_adv = softplus(-D(c, G(c)))`` averaged over
the patch grid, and ``L_D = softplus(-D(c, x)) + softplus(D(c, G(c)))``. The discriminator is the
:class:`~genai_lib.models.patchgan.PatchDiscriminator` on the condition and the image stacked
as channels. ``adv_weight = 0`` is the L1-only twin: the same U-Net trained on L1 alone, which
predicts the per-pixel median of plausible answers and so blurs wherever the answer is uncertain.
The generator has no noise input (pix2pix §3.2 found it ignored); it is deterministic.

Shapes: B batch; x (B, 1, 28, 28) in [0, 1]; c (B, C, 28, 28) with C = 1 (sr) or 2 (inpaint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import as_dtype_of, check_finite_number, check_generator, check_images, check_positive
from genai_lib.models.patchgan import PatchDiscriminator
from genai_lib.phases import Phase
from genai_lib.utils import eval_mode, uniform_noise

__all__ = ["Pix2PixConfig", "Pix2Pix", "UNetGenerator", "TASKS", "degrade", "bicubic_up", "mean_fill"]

TASKS = ("sr", "inpaint")
SHAPE = (1, 28, 28)
SCALE = 4  # super-resolution factor: 28 -> 7


@dataclass(frozen=True)
class Pix2PixConfig:
    """A paired restoration model for 28x28 digits."""

    task: str = "sr"  # "sr" (7x7 -> 28x28) or "inpaint" (a masked square)
    width: int = 16  # U-Net channels at 28x28 (2x at 14x14, 4x at 7x7)
    d_width: int = 16  # PatchGAN channels after its first convolution
    l1_weight: float = 100.0  # lambda of pix2pix eq. 4 (the paper's 100)
    adv_weight: float = 1.0  # 0 = the L1-only twin (no discriminator update either)
    mask_size: int = 12  # inpainting: side of the masked square (pixels)

    def __post_init__(self) -> None:
        from genai_lib._checks import plain_fields

        plain_fields(self)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("width", "d_width", "mask_size"):
            check_positive(name, getattr(self, name))
        if self.mask_size > 20:
            raise ValueError(f"mask_size must fit in the central 20x20 box, got {self.mask_size}")
        for name in ("l1_weight", "adv_weight"):
            check_finite_number(name, getattr(self, name), positive=True)

    @property
    def cond_channels(self) -> int:
        return 1 if self.task == "sr" else 2


def bicubic_up(lr: torch.Tensor) -> torch.Tensor:
    """(B, 1, 7, 7) -> (B, 1, 28, 28): bicubic interpolation, clamped to [0, 1] (the classical baseline)."""
    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)


def _mask(n: int, size: int, generator: torch.Generator | None, device: Any) -> torch.Tensor:
    """(n, 1, 28, 28) masks, 1 inside a size x size square placed uniformly inside rows/cols 4..23."""
    top_left = 4 + (uniform_noise((n, 2), generator=generator, device=device) * (21 - size)).long()
    r = torch.arange(28, device=device)
    rows = (r >= top_left[:, :1]) & (r < top_left[:, :1] + size)  # (n, 28)
    cols = (r >= top_left[:, 1:]) & (r < top_left[:, 1:] + size)
    return (rows[:, :, None] & cols[:, None, :]).float().unsqueeze(1)


def degrade(x: torch.Tensor, task: str, *, mask_size: int = 12, generator: torch.Generator | None = None):
    """The condition of each digit: ``(c, mask)``, mask (B, 1, 28, 28) for inpainting, else None."""
    check_images("x", x, SHAPE)
    check_generator("generator", generator)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "sr":
        return bicubic_up(F.avg_pool2d(x, SCALE)), None
    m = _mask(len(x), mask_size, generator, x.device).to(x.dtype)
    return torch.cat([x * (1 - m), m], dim=1), m


def mean_fill(c: torch.Tensor, mean_image: torch.Tensor) -> torch.Tensor:
    """Inpainting baseline: the hole filled with the training set's mean image (1, 1, 28, 28)."""
    x_known, m = c[:, :1], c[:, 1:]
    return x_known + m * mean_image


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()
    )


class UNetGenerator(nn.Module):
    """(B, C, 28, 28) condition -> (B, 1, 28, 28) in [0, 1]: 28 -> 14 -> 7 and back, with skips."""

    def __init__(self, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = _block(in_channels, w)  # (B, W, 28, 28)
        self.enc2 = _block(w, 2 * w, stride=2)  # (B, 2W, 14, 14)
        self.enc3 = _block(2 * w, 4 * w, stride=2)  # (B, 4W, 7, 7)
        self.mid = _block(4 * w, 4 * w)  # (B, 4W, 7, 7)
        self.dec2 = _block(4 * w + 2 * w, 2 * w)  # upsampled mid + enc2 skip -> (B, 2W, 14, 14)
        self.dec1 = _block(2 * w + w, w)  # upsampled dec2 + enc1 skip -> (B, W, 28, 28)
        self.out = nn.Conv2d(w, 1, 3, padding=1)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(2 * c - 1)
        e2 = self.enc2(e1)
        h = self.mid(self.enc3(e2))
        h = self.dec2(torch.cat([F.interpolate(h, scale_factor=2.0), e2], 1))
        h = self.dec1(torch.cat([F.interpolate(h, scale_factor=2.0), e1], 1))
        return torch.sigmoid(self.out(h))


class Pix2Pix(nn.Module):
    """U-Net generator ``g`` and PatchGAN ``d`` on (condition, image); batches are (x,) or (x, y)."""

    def __init__(self, cfg: Pix2PixConfig) -> None:
        super().__init__()
        if not isinstance(cfg, Pix2PixConfig):
            raise TypeError(f"cfg must be a Pix2PixConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.g = UNetGenerator(cfg.cond_channels, cfg.width)
        self.d = PatchDiscriminator(cfg.cond_channels + 1, cfg.d_width)

    def _truth(self, batch: Any) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return as_dtype_of("x", check_images("x", x, SHAPE), next(self.parameters()))

    def condition(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """``(c, mask)`` for clean digits x (see :func:`degrade`)."""
        return degrade(x, self.cfg.task, mask_size=self.cfg.mask_size, generator=generator)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """Restore a condition (B, C, 28, 28); inpainting keeps the known pixels."""
        c = check_images("c", c, (self.cfg.cond_channels, 28, 28))
        y = self.g(c)
        if self.cfg.task == "inpaint":
            y = c[:, 1:] * y + c[:, :1]  # the masked image is 0 in the hole
        return y

    def g_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        x = self._truth(batch)
        c, _ = self.condition(x, generator)
        y = self(c)
        l1 = (y - x).abs().mean()
        loss, logs = self.cfg.l1_weight * l1, {"l1": l1.detach()}
        if self.cfg.adv_weight:
            adv = F.softplus(-self.d(torch.cat([c, y], 1))).mean()
            loss = loss + self.cfg.adv_weight * adv
            logs["g_adv"] = adv.detach()
        return loss, logs

    def d_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        x = self._truth(batch)
        c, _ = self.condition(x, generator)
        with torch.no_grad():
            y = self(c)
        real, fake = self.d(torch.cat([c, x], 1)), self.d(torch.cat([c, y], 1))
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        return loss, {"d_real": real.mean().detach()}

    def loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The generator objective (what the L1-only twin minimises alone)."""
        return self.g_loss(batch, generator=generator)

    def phases(self, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> list[Phase]:
        """Generator then discriminator (pix2pix §3.3: Adam, lr 2e-4, beta1 0.5); the L1-only twin
        has the generator phase alone."""
        g = Phase("g", self.g_loss, list(self.g.parameters()), lr=lr, betas=betas, freeze=list(self.d.parameters()))
        if not self.cfg.adv_weight:
            return [g]
        return [g, Phase("d", self.d_loss, list(self.d.parameters()), lr=lr, betas=betas, fresh=False)]

    @torch.no_grad()
    def restore(self, c: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Restored images (N, 1, 28, 28) on the CPU, in eval mode, in batches."""
        check_positive("batch_size", batch_size)
        dev = next(self.parameters()).device
        with eval_mode(self):
            return torch.cat([self(c[i : i + batch_size].to(dev)).cpu() for i in range(0, len(c), batch_size)])
