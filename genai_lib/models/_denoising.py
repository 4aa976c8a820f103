"""What a diffusion model and a flow-matching model share (chapter 6): a denoising network with
an EMA copy, the data space it works in, and labels for classifier-free guidance.

:class:`DenoisingModel` is the base of :class:`genai_lib.models.diffusion.GaussianDiffusion` and
:class:`genai_lib.models.flow.FlowMatching`; it holds no noise process (those are in the
subclasses) and no training code (``genai_lib.train.fit`` trains ``model.loss``, with
``hooks=[model.ema]`` updating the average after every step).

- **data space**: images (B, C, H, W) in [0, 1] are mapped to [-1, 1] (Ho et al. 2020, section
  3.3), vectors (B, D) are divided by ``data_scale`` (the latent scale factor of Rombach et al.
  2022, section 4.3.2); samples come back mapped the other way, images clipped to [0, 1];
- **labels**: with a class-conditional network, training replaces a label by the null class with
  probability ``p_uncond`` (Ho & Salimans 2022, algorithm 1), so one network learns both the
  conditional and the unconditional model.

Shape legend: B batch, C x H x W image, D vector size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genai_lib._checks import (
    as_dtype_of,
    check_class_ids,
    check_finite_number,
    check_positive,
    check_probability,
    check_tensor,
    plain_fields,
)
from genai_lib.models._layers import EMA
from genai_lib.models.unet import MLPDenoiserConfig, UNetConfig, build_denoiser, guided, null_labels
from genai_lib.utils import eval_mode, normal_noise, uniform_noise

__all__ = ["DenoisingModel", "LatentGenerator", "check_common_config", "check_steps", "mse"]


def check_common_config(cfg: Any) -> None:
    """Validate the fields every denoising config has (denoiser, p_uncond, ema_decay, data_scale);
    NumPy scalars become Python numbers first (:func:`genai_lib._checks.plain_fields`)."""
    plain_fields(cfg)
    if not isinstance(cfg.denoiser, (UNetConfig, MLPDenoiserConfig)):
        raise TypeError(f"denoiser must be a UNetConfig or MLPDenoiserConfig, got {type(cfg.denoiser).__name__}")
    check_probability("p_uncond", cfg.p_uncond, open_high=True)
    if cfg.p_uncond and not cfg.denoiser.n_classes:
        raise ValueError("p_uncond > 0 needs a class-conditional denoiser (n_classes > 0)")
    check_probability("ema_decay", cfg.ema_decay, open_high=True)
    check_finite_number("data_scale", cfg.data_scale, positive=True, allow_zero=False)


class DenoisingModel(nn.Module):
    """The shared half of the chapter-6 models (see the module docstring)."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.denoiser = build_denoiser(cfg.denoiser)
        self.ema = EMA(self.denoiser, cfg.ema_decay)  # sample from ema.shadow; fit(hooks=[model.ema])

    # ------------------------------------------------------------------ data space
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def images(self) -> bool:
        """Whether the data are images (a U-Net) rather than vectors (an MLP)."""
        return isinstance(self.cfg.denoiser, UNetConfig)

    @property
    def data_shape(self) -> tuple[int, ...]:
        d = self.cfg.denoiser
        return tuple(d.image_shape) if self.images else (d.dim,)

    @property
    def n_classes(self) -> int:
        return self.cfg.denoiser.n_classes

    def to_model_space(self, x: Any) -> torch.Tensor:
        """Data (images in [0, 1], or vectors) -> what the network sees: 2x - 1, or x / data_scale."""
        if self.images:
            check_tensor("x", x, shape=(None, *self.data_shape), floating=True)
            if not bool(((x >= 0) & (x <= 1)).all()):
                lo, hi = float(x.min()), float(x.max())
                raise ValueError(f"images must be finite and lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
            return as_dtype_of("x", x, self._weight()) * 2 - 1  # float64 images: the obvious intent
        check_tensor("x", x, shape=(None, *self.data_shape), floating=True, finite=True)
        return as_dtype_of("x", x, self._weight()) / self.cfg.data_scale

    def _weight(self) -> torch.Tensor:
        return next(self.denoiser.parameters())

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_model_space`; images clipped to [0, 1]."""
        if self.images:
            return ((x + 1) / 2).clamp(0, 1)
        return x * self.cfg.data_scale

    def start_noise(self, n: int, noise: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Where a sampler starts: ``noise`` (checked, model space) or x ~ N(0, I) of shape
        (n, *data_shape), drawn on the generator's device and moved to the model's."""
        check_positive("n", n)
        if noise is None:
            return normal_noise((n, *self.data_shape), generator=generator, device=self.device)
        check_tensor("noise", noise, shape=(n, *self.data_shape), floating=True, finite=True)
        return as_dtype_of("noise", noise, self._weight())

    # ------------------------------------------------------------------ labels
    def training_labels(self, y: torch.Tensor | None, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        """Labels the network sees in training: None (unconditional), or y with a fraction
        ``p_uncond`` replaced by the null class."""
        if not self.n_classes:
            return None
        if y is None:
            raise ValueError("a class-conditional model needs (x, labels) batches")
        y = check_class_ids("labels", y, self.n_classes, n).to(self.device)
        if self.cfg.p_uncond:
            drop = uniform_noise((n,), generator=generator, device=self.device) < self.cfg.p_uncond
            y = torch.where(drop, null_labels(n, self.n_classes, self.device), y)
        return y

    def sample_labels(self, n: int, labels: Any, guidance: float) -> torch.Tensor | None:
        """``labels`` for sampling: None (unconditional), an int, or (n,) ints in [0, K)."""
        check_finite_number("guidance", guidance, positive=True)
        if labels is None:
            return None
        if not self.n_classes:
            raise ValueError("labels are only accepted by a class-conditional model (n_classes > 0)")
        if isinstance(labels, int) and not isinstance(labels, bool):
            labels = torch.full((n,), labels, dtype=torch.long)
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        return check_class_ids("labels", labels, self.n_classes, n).to(self.device)

    def network(self, ema: bool = True) -> nn.Module:
        """The averaged copy (what samplers use) or the live network (what training updates)."""
        if not isinstance(ema, bool):
            raise TypeError(f"ema must be a bool, got {type(ema).__name__}")
        return self.ema.shadow if ema else self.denoiser

    def output(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        labels: torch.Tensor | None = None,
        guidance: float = 1.0,
        *,
        ema: bool = True,
    ) -> torch.Tensor:
        """The network's (guided) output at model-space x (B, ...) and times t (B,) in [0, 1]."""
        return guided(self.network(ema), x, t, labels, guidance)


def check_steps(steps: Any, most: int | None = None) -> int:
    """A step count for a sampler: an int >= 1 (and <= ``most``)."""
    check_positive("steps", steps)
    if most is not None and steps > most:
        raise ValueError(f"steps must be <= {most} (the length of the chain), got {steps}")
    return int(steps)


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element, in float32 (the "simple" loss)."""
    return (out.float() - target.float()).square().mean()


class LatentGenerator(nn.Module):
    """Latent diffusion in miniature (Rombach et al. 2022): a prior over an autoencoder's latents
    (a :class:`GaussianDiffusion` or :class:`genai_lib.models.flow.FlowMatching` on vectors),
    decoded by the autoencoder's ``decode_mean`` (the chapter-2 VAE's). ``sample(n, **kw)``
    passes ``kw`` to the prior's sampler and returns decoded images (n, C, H, W) on the CPU."""

    def __init__(self, prior: nn.Module, autoencoder: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(prior, "sample", None)):
            raise TypeError(f"prior needs a sample(n, ...) method, got {type(prior).__name__}")
        if not callable(getattr(autoencoder, "decode_mean", None)):
            raise TypeError(f"autoencoder needs a decode_mean(z) method, got {type(autoencoder).__name__}")
        self.prior, self.autoencoder = prior, autoencoder

    @torch.no_grad()
    def sample(self, n: int, **kwargs: Any) -> torch.Tensor:
        z = self.prior.sample(n, **kwargs)  # (n, Z) on the CPU
        with eval_mode(self.autoencoder):
            dev = next(self.autoencoder.parameters()).device
            return self.autoencoder.decode_mean(z.to(dev)).cpu()
