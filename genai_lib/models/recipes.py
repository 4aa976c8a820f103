"""Training recipes shared by the chapters' notebooks and the benchmarks: one source of truth.

A recipe is a model config plus the budget and optimiser settings it was tuned with. The
notebook of a chapter and its benchmark both read them from here, so the numbers quoted in the
book and the benchmark's printout come from the same settings.

``VAE_MNIST`` (chapter 2, ``benchmarks/vae_mnist.py``): the 4,000-image MNIST training split,
batch 64, Adam with one epoch of linear warm-up then cosine decay to 5% of ``lr``. Tuned on the
held-out negative ELBO. With only 4,000 training images the models overfit when trained long, so
the longer runs use random one-pixel shifts of the training images (``shift=1``), which lets
them train for more epochs before the held-out number turns up.

``GAN_MNIST`` (chapter 3, notebooks 3.2 and 3.3, ``benchmarks/gan_mnist.py``): a model config
plus the keyword arguments of :func:`genai_lib.train.fit_gan`, on the same 4,000 training
images in batches of 64 (``drop_last``), from seed 0. ``steps`` counts generator updates; each
takes ``n_critic`` discriminator updates, one batch each. Adam with DCGAN's ``betas=(0.5, 0.999)``
unless the recipe says otherwise; the WGAN-GP critic uses ``(0.5, 0.9)``. Scored by
classifier-FID at n = 1,000 in the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from genai_lib.models.gan import DCGANConfig
from genai_lib.models.vae import VAEConfig
from genai_lib.models.vaegan import VAEGANConfig

__all__ = ["VAERecipe", "VAE_MNIST", "GANRecipe", "GAN_MNIST"]


@dataclass(frozen=True)
class VAERecipe:
    """A VAE config with its training budget (see ``VAE_MNIST``)."""

    config: VAEConfig  # the model
    epochs: int  # passes over the 4,000 training images
    lr: float  # peak Adam learning rate
    batch_size: int = 64  # images per step


VAE_MNIST: dict[str, VAERecipe] = {
    # 2-D latent (the one we can draw and put on sliders): 80 epochs with shifts measured
    # 149.6 nats, 40 epochs without them 152.3 (seed 0).
    "mlp2": VAERecipe(VAEConfig(arch="mlp", z_dim=2, hidden=512, depth=3, shift=1), epochs=80, lr=2e-3),
    "mlp16": VAERecipe(VAEConfig(arch="mlp", z_dim=16, hidden=512, depth=2), epochs=30, lr=2e-3),
    # conv: 40 epochs 108.6, 80 epochs 106.3, 160 epochs 104.7 nats (seed 0).
    "conv16": VAERecipe(VAEConfig(arch="conv", z_dim=16, width=32, shift=1), epochs=160, lr=3e-3),
}


@dataclass(frozen=True)
class GANRecipe:
    """A GAN config with the :func:`genai_lib.train.fit_gan` arguments it was tuned with (see ``GAN_MNIST``)."""

    config: DCGANConfig | VAEGANConfig  # the model
    fit: Mapping[str, Any]  # fit_gan keyword arguments (read-only; copy with {**recipe.fit, ...})

    def __post_init__(self) -> None:
        if not isinstance(self.config, (DCGANConfig, VAEGANConfig)):
            raise TypeError(f"config must be a DCGANConfig or VAEGANConfig, got {type(self.config).__name__}")
        if not isinstance(self.fit, Mapping) or "steps" not in self.fit:
            raise ValueError(f"fit must be a mapping of fit_gan arguments with 'steps', got {self.fit!r}")
        object.__setattr__(self, "fit", MappingProxyType(dict(self.fit)))  # a shared recipe cannot be edited

    @property
    def steps(self) -> int:
        """Generator updates."""
        return int(self.fit["steps"])


GAN_MNIST: dict[str, GANRecipe] = {
    # DCGAN, 3,000 steps, FID at n=1,000 (seed 0): lr 2e-4 without augmentation 151.1; with DiffAugment
    # shifts of up to 2 pixels 139.5; with the shifts and lr 5e-4 118.2 (the chapter-2 conv VAE: 125.5).
    "dcgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, augment=2), {"steps": 3000, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 1}
    ),
    "cgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, n_classes=10, augment=2),
        {"steps": 3000, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 1},
    ),
    # WGAN-GP, 1,200 steps: lr 2e-4 FID 134.6; with augment=2 133.6; with augment=2 and lr 5e-4 84.3.
    "wgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, loss="wgan-gp", augment=2),
        {"steps": 1200, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 3, "betas": (0.5, 0.9)},
    ),
    "vaegan": GANRecipe(VAEGANConfig(z_dim=16, width=32), {"steps": 2500, "lr_g": 3e-4, "lr_d": 2e-4, "n_critic": 1}),
}
