"""The game every GAN of chapter 3 plays: the shared losses behind :mod:`genai_lib.models.gan`.

:class:`GANBase` holds ``d_loss``/``g_loss`` (non-saturating, minimax and WGAN-GP, with R1,
label smoothing and DiffAugment), sampling and the divergence rule; :func:`gradient_penalty` is
WGAN-GP's penalty (Gulrajani et al. 2017). The models themselves (``ToyGAN``, ``DCGAN``) and the
equations of each loss are in :mod:`genai_lib.models.gan`.

Shapes: B batch, Z latent size; points (B, 2); images (B, 1, 28, 28) in [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import as_dtype_of, check_finite_tensor, check_positive, check_size, check_tensor
from genai_lib.models._layers import random_shift
from genai_lib.phases import DISCRIMINATOR_WINS, DivergenceRule
from genai_lib.utils import eval_mode, normal_noise, split_batch, uniform_noise

__all__ = ["GANBase", "gradient_penalty"]


def gradient_penalty(
    critic: Any, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3): ``E[(||grad_x critic(x_hat)||_2 - 1)^2]``.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per example.
    ``critic`` is any callable (B, ...) -> (B,) or (B, 1); for a conditional critic pass
    ``lambda x: D(x, labels)``. The graph is kept (``create_graph=True``) so the penalty
    trains the critic.
    """
    if not isinstance(real, torch.Tensor) or not isinstance(fake, torch.Tensor):
        raise TypeError("real and fake must be tensors")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps = uniform_noise((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()


class GANBase(nn.Module):
    """The shared game: subclasses provide ``generate``/``_generate``, ``critic``, ``_check_data`` and ``_labels``."""

    cfg: Any
    generator: nn.Module
    discriminator: nn.Module

    # ---- to implement
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _check_data(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        return None

    # ---- shared
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_z(self, z: Any) -> torch.Tensor:
        """Latents (B, Z): float, finite, converted to the generator's dtype and device."""
        check_tensor("z", z, shape=(None, self.cfg.z_dim), floating=True)
        return as_dtype_of("z", check_finite_tensor("z", z), next(self.generator.parameters()))

    def _split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = split_batch(batch)
        x = as_dtype_of("x", self._check_data(x), next(self.discriminator.parameters()))
        return x, self._labels(y, x.shape[0])

    def _fake(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        dtype = next(self.generator.parameters()).dtype
        return self._generate(
            normal_noise((n, self.cfg.z_dim), generator=generator, device=self.device, dtype=dtype), labels
        )

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """DiffAugment: the same kind of random, differentiable shift for real and fake images, in
        both players' losses, so D cannot memorise the few real images and G is not taught to
        draw shifted digits (augmenting only the real images would do that)."""
        shift = getattr(self.cfg, "augment", 0)
        return random_shift(x, shift, generator) if shift else x

    def d_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Discriminator (critic) loss on a real batch and as many fresh fakes; G gets no gradient."""
        x, y = self._split(batch)
        with torch.no_grad():
            fake = self._fake(x.shape[0], y, generator)
        r1 = getattr(self.cfg, "r1_weight", 0.0)
        if r1:
            x = x.detach().requires_grad_(True)
        real_out = self.critic(self._augment(x, generator), y)
        fake_out = self.critic(self._augment(fake, generator), y)
        if self.cfg.loss == "wgan-gp":
            gp = gradient_penalty(lambda t: self.critic(t, y), x, fake, generator)
            wdist = real_out.mean() - fake_out.mean()  # critic's estimate of W(p_data, p_G)
            loss = -wdist + self.cfg.gp_weight * gp
            logs = {
                "d_real": real_out.mean().detach(),
                "d_fake": fake_out.mean().detach(),
                "gp": gp.detach(),
                "wdist": wdist.detach(),
            }
        else:
            # BCE with logits; one-sided label smoothing (Salimans et al. 2016): real target 1 - s.
            s = self.cfg.label_smoothing
            real_term = (1 - s) * F.softplus(-real_out) + s * F.softplus(real_out)
            loss = real_term.mean() + F.softplus(fake_out).mean()
            if r1:  # R1 (Mescheder et al. 2018): (gamma / 2) E ||grad_x D(x)||^2 on real data
                (grad,) = torch.autograd.grad(real_out.sum(), x, create_graph=True)
                loss = loss + 0.5 * r1 * grad.flatten(1).square().sum(1).mean()
            logs = {
                "d_real": torch.sigmoid(real_out).mean().detach(),
                "d_fake": torch.sigmoid(fake_out).mean().detach(),
            }
        return loss, logs

    def g_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Generator loss on a fresh batch of fakes (the batch gives its size and labels)."""
        x, y = self._split(batch)
        out = self.critic(self._augment(self._fake(x.shape[0], y, generator), generator), y)
        if self.cfg.loss == "wgan-gp":
            return -out.mean(), {"g_fake": out.mean().detach()}
        loss = F.softplus(-out).mean() if self.cfg.loss == "ns" else -F.softplus(out).mean()
        return loss, {"g_fake": torch.sigmoid(out).mean().detach()}

    def divergence_rules(self) -> tuple[DivergenceRule, ...]:
        """When the training core stops a run: a BCE discriminator that has won; a WGAN critic's
        losses are unbounded scores, not probabilities, so no such rule fits them."""
        return () if self.cfg.loss == "wgan-gp" else (DISCRIMINATOR_WINS,)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` display-ready samples on the CPU (points, or images in [0, 1]), drawn with the
        generator in eval mode (its train/eval state is restored)."""
        check_positive("n", n)
        check_size(f"{type(self).__name__}.sample({n})", n * (self.cfg.z_dim + self._sample_numel), unit="values")
        y = self._sample_labels(n, labels)
        with eval_mode(self.generator):
            return self._fake(n, y, generator).cpu()

    def _sample_labels(self, n: int, labels: Any) -> torch.Tensor | None:
        if labels is not None:
            raise ValueError("labels are only accepted by a class-conditional model (n_classes > 0)")
        return None
