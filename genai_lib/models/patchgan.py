"""The PatchGAN discriminator of image-to-image translation (chapter 4), shared by CycleGAN and pix2pix.

Isola et al. 2017 (pix2pix, §3.2.2) judge an image patch by patch: a fully convolutional
network outputs a grid of logits, one per overlapping patch, and the loss averages over the grid.
Such a discriminator only models high-frequency structure (texture, stroke style) inside its
receptive field; the low frequencies are left to the L1 or cycle loss. Zhu et al. 2017 (CycleGAN)
use the same network. For 28x28 digits it is three convolutions:

    (B, C, 28, 28) -> conv 4x4 s2 -> (B, W, 14, 14) -> conv 4x4 s2 + IN -> (B, 2W, 7, 7)
                   -> conv 3x3 s1 -> logits (B, 1, 7, 7)

Each logit's convolutions see an 18x18 patch (:func:`receptive_field`), about two thirds of the
digit's frame; the paper's 70x70 patches cover about a quarter of a 256x256 photo. (Instance
normalisation takes its mean and variance over the whole grid, the one global path.)

Shapes: B batch, C input channels (1 image, or condition + image for pix2pix), W width.
"""

from __future__ import annotations

import torch
from torch import nn

from genai_lib._checks import check_positive

__all__ = ["PatchDiscriminator", "receptive_field", "PATCH_LAYERS"]

# (kernel, stride) of the three convolutions, in order
PATCH_LAYERS = ((4, 2), (4, 2), (3, 1))


def receptive_field(layers: tuple[tuple[int, int], ...] = PATCH_LAYERS) -> int:
    """Side of the input patch one output logit depends on: ``r <- r + (k - 1) * jump``, with
    ``jump`` the product of the earlier strides (for PATCH_LAYERS: 4, then 10, then 18)."""
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


class PatchDiscriminator(nn.Module):
    """(B, C, 28, 28) in [0, 1] -> patch logits (B, 1, 7, 7). Input is mapped to [-1, 1]."""

    def __init__(self, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("width", width)
        (k1, s1), (k2, s2), (k3, s3) = PATCH_LAYERS
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, k1, stride=s1, padding=1),  # (B, W, 14, 14); no norm on the input layer
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, k2, stride=s2, padding=1),  # (B, 2W, 7, 7)
            nn.InstanceNorm2d(2 * width, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, k3, stride=s3, padding=1),  # (B, 1, 7, 7) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1)
