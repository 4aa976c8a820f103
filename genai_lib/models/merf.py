"""DP-MERF (Harder, Adamczewski & Park 2021): a generator trained to match the data's mean embedding
in random Fourier features, a summary that can be released privately once.

A Gaussian kernel k(x, x') = exp(-||x - x'||^2 / (2 l^2)) is approximated by F random frequencies
w_f ~ N(0, I / l^2) (Rahimi & Recht 2007):

    phi(x) = [cos(w_1.x), ..., cos(w_F.x), sin(w_1.x), ..., sin(w_F.x)] / sqrt(F),
    phi(x) . phi(x') = (1/F) sum_f cos(w_f.(x - x'))  ->  k(x, x')  as F grows,

and ``||phi(x)|| = 1`` for every x, exactly. The class-conditional embedding of a dataset is the
matrix ``S = sum_i phi(x_i) e_{y_i}^T`` (2F x K): one example changes it by a single column of norm
1, so its sensitivity is 1 and the Gaussian mechanism releases it once
(:func:`genai_lib.privacy.gaussian_mechanism`). The generator then trains, for as long as it likes
and at no further privacy cost, on

    L = || S~ / N - (1/M) sum_j phi(g(z_j, y_j)) e_{y_j}^T ||^2,

the squared maximum mean discrepancy of each class's samples from the data in the kernel's
feature space, weighted by class frequency (labels drawn uniformly: the course's MNIST split
holds 400 digits of every class).

Shape legend: B batch, D = 784 pixels, F frequencies, K classes, Z latent size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_class_ids, check_positive, check_tensor, plain_fields
from genai_lib.models._layers import mlp
from genai_lib.models.cvae import LabelDecoder
from genai_lib.utils import normal_noise

__all__ = ["MERFConfig", "RandomFeatures", "label_embedding", "MERFGenerator"]


@dataclass(frozen=True)
class MERFConfig:
    """Hyper-parameters of a :class:`MERFGenerator` and its :class:`RandomFeatures`."""

    lengthscale: float  # l of the Gaussian kernel, in pixel-space distance (the recipe's: from public data)
    n_freq: int = 2000  # F random frequencies (2F features)
    z_dim: int = 8  # Z
    hidden: int = 256  # width of the generator's hidden layer
    n_classes: int = 10  # K
    dim: int = 784  # D, flattened image size
    seed: int = 0  # the frequencies' seed: part of the released summary's definition

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("n_freq", "z_dim", "hidden", "n_classes", "dim"):
            check_positive(name, getattr(self, name))
        check_positive("lengthscale", self.lengthscale, integer=False)


class RandomFeatures(nn.Module):
    """phi: (B, D) -> (B, 2F), unit norm per row; frequencies (D, F) a buffer drawn from ``seed``."""

    def __init__(self, dim: int, n_freq: int, lengthscale: float, *, seed: int = 0) -> None:
        super().__init__()
        check_positive("dim", dim)
        check_positive("n_freq", n_freq)
        check_positive("lengthscale", lengthscale, integer=False)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim, n_freq, generator=g) / lengthscale)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        v = check_tensor("v", v, shape=(None, None), floating=True)
        if v.shape[1] != self.freqs.shape[0]:
            raise ValueError(f"v must have {self.freqs.shape[0]} features per row, got shape {tuple(v.shape)}")
        proj = v.to(self.freqs.dtype) @ self.freqs  # (B, F)
        return torch.cat([proj.cos(), proj.sin()], 1) / math.sqrt(self.freqs.shape[1])


def label_embedding(phi: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``sum_i phi_i e_{y_i}^T``: (B, 2F) features and (B,) labels -> (2F, K)."""
    phi = check_tensor("phi", phi, shape=(None, None), floating=True)
    labels = check_class_ids("labels", labels, n_classes, phi.shape[0])
    return phi.T @ F.one_hot(labels.to(phi.device).long(), n_classes).to(phi.dtype)


class MERFGenerator(LabelDecoder):
    """(z, y) -> images in [0, 1]; ``loss`` matches its samples' embedding to the buffer ``target``.

    ``target`` (2F, K) is the released embedding divided by the number of examples, set with
    :meth:`set_target` before training. A batch is a tensor of labels (B,) (or a 1-tuple of it);
    the latent noise comes from fit's generator. ``decode`` and ``sample`` are the CVAE's
    (:class:`genai_lib.models.cvae.LabelDecoder`).
    """

    def __init__(self, cfg: MERFConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = RandomFeatures(cfg.dim, cfg.n_freq, cfg.lengthscale, seed=cfg.seed)
        self.decoder = mlp([cfg.z_dim + cfg.n_classes, cfg.hidden, cfg.dim])  # (B, Z + K) -> (B, D) logits
        self.register_buffer("target", torch.zeros(2 * cfg.n_freq, cfg.n_classes))

    def set_target(self, target: torch.Tensor) -> None:
        target = check_tensor("target", target, shape=(None, None), floating=True, finite=True)
        if tuple(target.shape) != tuple(self.target.shape):
            raise ValueError(f"target must have shape {tuple(self.target.shape)} (2F, K), got {tuple(target.shape)}")
        self.target.copy_(target)

    def embed(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The label embedding (2F, K) of images x (B, ...) with labels (B,): a sum, not a mean."""
        return label_embedding(self.features(x.flatten(1)), labels, self.cfg.n_classes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = check_tensor("z", z, shape=(None, None), floating=True)
        labels = check_class_ids("labels", labels, self.cfg.n_classes, z.shape[0])
        return self.decode(z, labels.to(z.device))

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        labels = batch[0] if isinstance(batch, (tuple, list)) else batch
        labels = check_class_ids("labels", labels, self.cfg.n_classes)
        w = self.decoder[0].weight
        z = normal_noise((labels.shape[0], self.cfg.z_dim), generator=generator, device=w.device, dtype=w.dtype)
        fake = self(z, labels.to(w.device))
        mmd2 = ((self.target - self.embed(fake, labels) / labels.shape[0]) ** 2).sum()
        return mmd2, {}
