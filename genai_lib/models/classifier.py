"""A small CNN digit classifier: the feature network of the course's sample-quality metrics.

FID and KID (chapter 3 onwards, :mod:`genai_lib.metrics`) compare feature statistics of real
and generated images. The usual features come from an ImageNet Inception-v3, which an offline
course cannot download and which says little about 28x28 digits, so the course trains this
network on its MNIST training split instead (``genai_lib.recipes.classifier.mnist_classifier``)
and reads its 128-dimensional penultimate layer: "classifier-FID", comparable inside the course
only. The same network reads the class of a conditional generator's samples.

Shapes: images (B, 1, 28, 28) in [0, 1]; features (B, F); logits (B, K).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import (
    as_dtype_of,
    check_class_ids,
    check_positive,
    check_probability,
    check_size,
    check_tensor,
    plain_fields,
)
from genai_lib.models._layers import conv_blocks28, random_distort
from genai_lib.utils import split_batch

__all__ = ["ClassifierConfig", "ImageClassifier"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of an :class:`ImageClassifier` (the defaults are the metrics' network)."""

    n_classes: int = 10  # K
    width: int = 32  # channels of the first conv block (the second has 2x)
    feature_dim: int = 128  # F: the penultimate layer, what FID/KID/precision/recall read
    dropout: float = 0.3  # before the output layer, in training
    shift: int = 2  # training augmentation: roll each batch by up to this many pixels; 0 = off

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("n_classes", "width", "feature_dim"):
            check_positive(name, getattr(self, name))
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        check_probability("dropout", self.dropout, open_high=True)
        check_positive("shift", self.shift, allow_zero=True)
        if self.shift > 7:
            raise ValueError(f"shift must be at most 7 pixels for 28x28 images, got {self.shift}")
        w, f = self.width, self.feature_dim
        check_size("ClassifierConfig", 9 * w + 18 * w * w + 98 * w * f + f * self.n_classes)


class ImageClassifier(nn.Module):
    """Two conv blocks (28 -> 14 -> 7) and a linear layer to F features, then K logits."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ClassifierConfig):
            raise TypeError(f"cfg must be a ClassifierConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(
            *conv_blocks28(w),  # (B, 2w, 7, 7)
            nn.Flatten(),
            nn.Linear(2 * w * 49, cfg.feature_dim),  # (B, F)
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.n_classes)
        # Writer-style augmentation in training (random_distort: affine + stroke thickness), off by
        # default; a training choice, not part of the network, so the recipe sets it (and keys it).
        self.augment = False

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    def _check_x(self, x: Any) -> torch.Tensor:
        """Images (B, 1, 28, 28), float (float64/half converted to the weights' dtype and device)."""
        check_tensor("x", x, shape=(None, 1, 28, 28), floating=True)
        return as_dtype_of("x", x, self.head.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, F) penultimate features."""
        return self.body(self._check_x(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> logits (B, K)."""
        return self.head(self.dropout(self.features(x)))

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """Cross-entropy on (images, labels), with one random roll of the batch as augmentation
        (and, if ``self.augment``, a random affine map and stroke change per image first)."""
        x, y = split_batch(batch)
        if y is None:
            raise ValueError("ImageClassifier.loss needs (images, labels) batches")
        x = self._check_x(x)
        y = check_class_ids("labels", y, self.cfg.n_classes, x.shape[0]).to(x.device)  # int64 for cross-entropy
        if self.training and self.augment:
            x = random_distort(x)
        s = self.cfg.shift
        if self.training and s:  # translation augmentation: one cheap roll per batch
            dx, dy = (int(v) for v in torch.randint(-s, s + 1, (2,)))
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        logits = self(x)
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}
