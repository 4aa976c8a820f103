"""Small generative models for chapter 15: a conditional VAE of multi-step scenarios, and a
recurrent Gaussian model of sensor signals.

**ScenarioCVAE** (Sohn, Lee & Yan 2015, over real-valued windows): given the last ``context``
quarters c of D series, it models the next ``horizon`` quarters y (H x D values) as

    z ~ N(0, I),   y | z, c ~ N(mu(z, c), diag exp(logvar(z, c))),
    q(z | y, c) = N(m(y, c), diag exp(s(y, c))),
    loss = -E_q log p(y | z, c) + KL(q || N(0, I))          (the negative ELBO, nats per window)

With ``changes=True`` (the default) y is modelled as its change from the last observed quarter,
since the four series are persistent (a level is best predicted by the last one). A scenario is
a draw of z and then of y: the decoder's own noise is part of the scenario, so
its spread is a forecast distribution, not only a spread of means. Inputs and outputs are
standardised with the buffers ``shift`` and ``scale`` (set from the training data by the recipe).

``noise`` says where the observation variance comes from: ``"context"`` (heteroscedastic, Nix &
Weigend 1994) lets the decoder predict it from (z, c), so it can shrink wherever the training
pasts were calm; ``"shared"`` (homoscedastic) learns one log-variance per output value, the same
for every past, as a VAR's residual covariance is (Seitzer et al. 2022 on why a predicted
variance is often over-confident away from the training data).

**SensorGRU**: a GRU reads sensor readings x_1..x_t (C channels) and predicts the next reading
as N(mu_t, diag exp(logvar_t)); trained by Gaussian negative log-likelihood on healthy
machines, its per-cycle NLL of what actually came next is an anomaly score.

Shape legend: B batch, Tc context length, H horizon, D series, Z latent, T cycles, C channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_positive, check_tensor, plain_fields
from genai_lib.models._layers import gaussian_nll, mlp, reparameterize
from genai_lib.models.vae import gaussian_kl
from genai_lib.utils import eval_mode, normal_noise

__all__ = ["ScenarioCVAEConfig", "ScenarioCVAE", "SensorGRUConfig", "SensorGRU"]

LOGVAR_MIN, LOGVAR_MAX = -7.0, 3.0  # keep predicted variances in a sane range (standardised units)
NOISE = ("context", "shared")  # where the decoder's observation variance comes from


@dataclass(frozen=True)
class ScenarioCVAEConfig:
    """Hyper-parameters of a :class:`ScenarioCVAE`."""

    context: int = 8  # Tc: past quarters the model conditions on
    horizon: int = 4  # H: quarters of each scenario
    dims: int = 4  # D: series
    z_dim: int = 4  # Z: latent size
    hidden: int = 64  # width of the hidden layers
    beta: float = 1.0  # weight of the KL term (1: the ELBO; > 1 keeps less of y in z, wider scenarios)
    changes: bool = True  # model y minus the last context quarter (the series are persistent)
    noise: str = "context"  # "context": the decoder predicts each variance; "shared": one learnt per value

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("context", "horizon", "dims", "z_dim", "hidden"):
            check_positive(name, getattr(self, name))
        check_positive("beta", self.beta, integer=False)
        if not isinstance(self.changes, bool):
            raise TypeError(f"changes must be a bool, got {type(self.changes).__name__}")
        if self.noise not in NOISE:
            raise ValueError(f"noise must be one of {NOISE}, got {self.noise!r}")


class ScenarioCVAE(nn.Module):
    """Conditional VAE over (horizon, dims) windows given (context, dims) pasts (see the module)."""

    def __init__(self, cfg: ScenarioCVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nc, ny = cfg.context * cfg.dims, cfg.horizon * cfg.dims
        self.encoder = mlp([nc + ny, cfg.hidden, cfg.hidden, 2 * cfg.z_dim], nn.SiLU)
        shared = cfg.noise == "shared"
        self.decoder = mlp([nc + cfg.z_dim, cfg.hidden, cfg.hidden, ny if shared else 2 * ny], nn.SiLU)
        # "shared": one log-variance per output value, the same for every past (homoscedastic)
        self.logvar = nn.Parameter(torch.zeros(ny)) if shared else None
        self.register_buffer("shift", torch.zeros(cfg.dims))
        self.register_buffer("scale", torch.ones(cfg.dims))

    def set_scaling(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise each series by (x - shift) / scale inside the model (D values each)."""
        shift, scale = torch.as_tensor(shift).float(), torch.as_tensor(scale).float()
        if shift.shape != (self.cfg.dims,) or scale.shape != (self.cfg.dims,) or not (scale > 0).all():
            raise ValueError(f"shift and scale must be ({self.cfg.dims},) with scale > 0")
        self.shift.copy_(shift)
        self.scale.copy_(scale)

    def _check(self, name: str, x: Any, length: int) -> torch.Tensor:
        x = check_tensor(name, x, shape=(None, length, self.cfg.dims), floating=True, finite=True)
        return ((x.to(self.shift.device) - self.shift) / self.scale).flatten(1)

    def _target(self, ctx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y in the model's units: standardised, minus the last context quarter if ``changes``."""
        yy = self._check("y", y, self.cfg.horizon)
        if self.cfg.changes:
            last = ctx[:, -self.cfg.dims :]  # (B, D) the last quarter, standardised
            yy = yy - last.repeat(1, self.cfg.horizon)
        return yy

    def _decode(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.decoder(torch.cat([c, z], 1))
        if self.logvar is not None:
            return out, self.logvar.clamp(LOGVAR_MIN, LOGVAR_MAX).expand_as(out)
        mean, logvar = out.chunk(2, 1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def forward(self, ctx: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-window reconstruction NLL and KL (B,) each, in nats, standardised units."""
        c = self._check("ctx", ctx, self.cfg.context)
        yy = self._target(c, y)
        mu, logvar = self.encoder(torch.cat([c, yy], 1)).chunk(2, 1)
        mean, lv = self._decode(reparameterize(mu, logvar), c)
        return gaussian_nll(yy, mean, lv), gaussian_kl(mu, logvar)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean of recon + beta * KL over a (ctx, y) batch (the negative ELBO at beta = 1); logs
        recon, kl and neg_elbo."""
        ctx, y = batch
        recon, kl = self(ctx, y)
        loss = (recon + self.cfg.beta * kl).mean()
        return loss, {
            "recon": recon.mean().detach(),
            "kl": kl.mean().detach(),
            "neg_elbo": (recon + kl).mean().detach(),
        }

    @torch.no_grad()
    def sample(
        self, n: int, *, context: torch.Tensor, generator: torch.Generator | None = None, noise: bool = True
    ) -> torch.Tensor:
        """``n`` scenarios for each past: context (B, Tc, D) -> (B, n, H, D) on the CPU, original units.

        ``noise=False`` returns only the decoder's means (the spread of z alone): not the model's
        predictive distribution, kept to show how narrow such scenarios are."""
        check_positive("n", n)
        if not isinstance(noise, bool):
            raise TypeError(f"noise must be a bool, got {type(noise).__name__}")
        if n > 100_000:
            raise ValueError(f"n must be <= 100000 scenarios, got {n}")
        with eval_mode(self):
            c = self._check("context", context, self.cfg.context)  # (B, Tc D)
            b = c.shape[0]
            cc = c.repeat_interleave(n, 0)  # (B n, Tc D)
            z = normal_noise((b * n, self.cfg.z_dim), generator=generator, device=c.device, dtype=c.dtype)
            mean, lv = self._decode(z, cc)
            eps = normal_noise(mean.shape, generator=generator, device=c.device, dtype=c.dtype)
            y = mean + torch.exp(0.5 * lv) * eps if noise else mean  # (B n, H D)
            if self.cfg.changes:
                y = y + cc[:, -self.cfg.dims :].repeat(1, self.cfg.horizon)
            y = y.view(b, n, self.cfg.horizon, self.cfg.dims)
            return (y * self.scale + self.shift).cpu()


@dataclass(frozen=True)
class SensorGRUConfig:
    """Hyper-parameters of a :class:`SensorGRU`."""

    channels: int = 4  # C: sensors per reading
    hidden: int = 32  # GRU state size

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("channels", self.channels)
        check_positive("hidden", self.hidden)


class SensorGRU(nn.Module):
    """Next-reading Gaussian model of multichannel signals (see the module docstring)."""

    def __init__(self, cfg: SensorGRUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gru = nn.GRU(cfg.channels, cfg.hidden, batch_first=True)
        self.head = nn.Linear(cfg.hidden, 2 * cfg.channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> mean, logvar (B, T - 1, C) of readings 2..T given the ones before."""
        x = check_tensor("x", x, shape=(None, None, self.cfg.channels), floating=True, finite=True)
        if x.shape[1] < 2:
            raise ValueError(f"x needs at least 2 readings per sequence, got {x.shape[1]}")
        h, _ = self.gru(x[:, :-1].to(self.head.weight.device))
        mean, logvar = self.head(h).chunk(2, -1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step NLL of each next reading (B, T - 1), in nats: the anomaly score."""
        mean, logvar = self(x)
        return gaussian_nll(x[:, 1:].to(mean.device), mean, logvar)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-reading NLL of a batch of (B, T, C) windows (nats per step)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        nll = self.score(x).mean()
        return nll, {"nll": nll.detach()}
