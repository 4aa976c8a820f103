"""Gaussian diffusion (chapter 6): the noise process, kept apart from the denoising network.

The forward process adds Gaussian noise in T small steps (Sohl-Dickstein et al. 2015; Ho et al.
2020, "DDPM"). With ``beta_t`` the variance added at step t, ``alpha_t = 1 - beta_t`` and
``abar_t = prod_{s <= t} alpha_s`` (``abar_0 = 1``):

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                          (Ho eq. 2)
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I)                         (Ho eq. 4)
    q(x_{t-1} | x_t, x_0) = N(mu_t, betatilde_t I),                                  (Ho eq. 6-7)
        mu_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
        betatilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t.

A network learns to undo it. It may predict the noise ``eps`` (Ho eq. 14, the "simple" loss
``||eps - eps_theta(x_t, t)||^2``, a weighted denoising score matching: the score of q(x_t) is
``-eps / sqrt(1 - abar_t)``, Vincent 2011; Song & Ermon 2019), the clean ``x0``, or the velocity
``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (Salimans & Ho 2022, section 4); all three are
linear in each other given x_t (:meth:`NoiseSchedule.split`).

Samplers walk down a subsequence T = tau_S > ... > tau_0 = 0 of the steps:

- DDPM ancestral sampling: x_{t'} ~ q(x_{t'} | x_t, x0_hat), the posterior above for the jump
  t -> t' (with ``beta = 1 - abar_t / abar_{t'}``: the respacing of Nichol & Dhariwal 2021, §4);
- DDIM (Song et al. 2021, eq. 12): ``x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - sigma^2) eps_hat
  + sigma z`` with ``sigma = eta sqrt((1 - abar_{t'}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t'})``
  (eq. 16): eta = 0 is deterministic (an ODE solver, invertible: :meth:`GaussianDiffusion.encode`),
  eta = 1 is DDPM's ancestral step again.

Schedules: ``"linear"`` beta from 1e-4 to 0.02 over T = 1000 steps (Ho et al. 2020, §4; scaled
by 1000/T for other T) and ``"cosine"``, ``abar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) /
(1 + s) pi/2)``, s = 0.008, betas clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17).

Shape legend: B batch, S sampler steps, T chain length, data (B, C, H, W) or (B, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_finite_number, check_positive, check_tensor
from genai_lib.models._denoising import DenoisingModel, LatentGenerator, check_common_config, check_steps, mse
from genai_lib.models.unet import MLPDenoiserConfig, UNetConfig
from genai_lib.utils import eval_mode, normal_noise, split_batch

__all__ = [
    "SCHEDULES",
    "PREDICTIONS",
    "linear_betas",
    "cosine_alpha_bar",
    "NoiseSchedule",
    "DiffusionConfig",
    "GaussianDiffusion",
    "LatentGenerator",
]

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")


def linear_betas(steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear schedule (T,) in float64, scaled by 1000 / T so that abar_T stays near 4e-5."""
    check_positive("steps", steps)
    scale = 1000.0 / steps
    lo, hi = scale * beta_start, scale * beta_end
    if not 0 < lo <= hi < 1:
        raise ValueError(f"a linear schedule over {steps} steps has betas in [{lo:.3g}, {hi:.3g}]; need 0 < beta < 1")
    return torch.linspace(lo, hi, steps, dtype=torch.float64)


def cosine_alpha_bar(steps: int, s: float = 0.008) -> torch.Tensor:
    """The cosine schedule's closed form abar_t = f(t) / f(0), t = 0 .. T: (T + 1,) float64 (before clipping)."""
    check_positive("steps", steps)
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


class NoiseSchedule(nn.Module):
    """The forward process of a schedule: buffers ``betas`` (T,) and ``alpha_bar`` (T + 1,),
    ``alpha_bar[0] = 1``, so ``.to(device)`` moves them (see the module docstring).

    Build it from betas in (0, 1), with :meth:`make` (``"linear"``, ``"cosine"``), or
    :meth:`from_alpha_bar` (a strictly decreasing sequence). Steps ``t`` are ints or (B,) integer
    tensors in [0, T] (t = 0 is the data itself).
    """

    def __init__(self, betas: Any) -> None:
        super().__init__()
        b = check_tensor("betas", torch.as_tensor(betas, dtype=torch.float64), finite=True)
        if b.dim() != 1:
            raise ValueError(f"betas must be 1-D (T,), got shape {tuple(b.shape)}")
        if bool((b <= 0).any()) or bool((b >= 1).any()):
            bad = int(((b <= 0) | (b >= 1)).nonzero()[0]) + 1
            raise ValueError(
                f"betas must lie in (0, 1) so that alpha_bar decreases strictly; beta_{bad} = {float(b[bad - 1]):.4g}"
            )
        abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - b, 0)])
        self.register_buffer("betas", b.float())
        self.register_buffer("alpha_bar", abar.float())

    @classmethod
    def make(cls, kind: str, steps: int) -> NoiseSchedule:
        """``"linear"`` (Ho et al. 2020) or ``"cosine"`` (Nichol & Dhariwal 2021) over ``steps`` steps."""
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
        if kind == "linear":
            return cls(linear_betas(steps))
        abar = cosine_alpha_bar(steps)
        return cls((1 - abar[1:] / abar[:-1]).clamp(max=0.999))  # N&D eq. 17, clipped

    @classmethod
    def from_alpha_bar(cls, alpha_bar: Any) -> NoiseSchedule:
        """A schedule from abar_0 = 1 > abar_1 > ... > abar_T > 0 (or without the leading 1)."""
        a = check_tensor("alpha_bar", torch.as_tensor(alpha_bar, dtype=torch.float64), finite=True)
        if a.dim() != 1:
            raise ValueError(f"alpha_bar must be 1-D, got shape {tuple(a.shape)}")
        if float(a[0]) != 1.0:
            a = torch.cat([torch.ones(1, dtype=torch.float64), a])
        if len(a) < 2 or bool((a[1:] >= a[:-1]).any()) or float(a[-1]) <= 0:
            raise ValueError(
                "alpha_bar must decrease strictly from 1 and stay > 0 (a schedule that is not monotone), "
                f"got {[round(v, 4) for v in a.tolist()[:8]]}{'...' if len(a) > 8 else ''}"
            )
        return cls(1 - a[1:] / a[:-1])

    @property
    def T(self) -> int:  # noqa: N802 (the papers' name)
        return len(self.betas)

    # ------------------------------------------------------------------ indexing
    def check_t(self, t: Any, n: int | None = None, *, low: int = 0) -> torch.Tensor:
        """``t`` as a long tensor on the schedule's device, every value in [low, T]."""
        if isinstance(t, int) and not isinstance(t, bool):
            t = torch.full((n or 1,), t, dtype=torch.long)
        t = check_tensor("t", t, floating=False)
        if t.dim() != 1 or (n is not None and len(t) != n):
            raise ValueError(f"t must have shape ({n if n is not None else 'B'},), got {tuple(t.shape)}")
        lo, hi = int(t.min()), int(t.max())
        if lo < low or hi > self.T:
            raise ValueError(f"t must lie in [{low}, {self.T}], got values in [{lo}, {hi}]")
        return t.to(self.alpha_bar.device)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped (B, 1, ..., 1) to broadcast against ``like`` (B, ...)."""
        return values[t].reshape(-1, *([1] * (like.dim() - 1))).to(like.device, like.dtype)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self._at(self.alpha_bar, t, like)

    # ------------------------------------------------------------------ the forward process
    def q_sample(self, x0: torch.Tensor, t: Any, noise: torch.Tensor | None = None, *, generator=None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, a sample of q(x_t | x_0) (Ho eq. 4)."""
        check_tensor("x0", x0, floating=True)
        t = self.check_t(t, len(x0))
        if noise is None:
            noise = normal_noise(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t: Any, t_prev: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, ...) and variance (B, 1, ...) of q(x_{t'} | x_t, x_0) (Ho eq. 6-7), t' = t - 1
        by default or any earlier step (a jump of the respaced chain)."""
        t = self.check_t(t, len(xt), low=1)
        t_prev = t - 1 if t_prev is None else self.check_t(t_prev, len(xt))
        if bool((t_prev >= t).any()):
            raise ValueError("t_prev must be smaller than t")
        a, a_prev = self.abar(t, xt), self.abar(t_prev, xt)
        beta = 1 - a / a_prev  # the variance the forward process adds between t' and t
        mean = (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * xt
        return mean, (1 - a_prev) / (1 - a) * beta

    # ------------------------------------------------------------------ what a network predicts
    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """The regression target for ``prediction`` ("eps", "x0" or "v")."""
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":
            a = self.abar(t, x0)
            return a.sqrt() * eps - (1 - a).sqrt() * x0  # Salimans & Ho 2022, section 4
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")

    def split(
        self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, prediction: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A network output -> (x0_hat, eps_hat), through x_t = sqrt(abar) x0 + sqrt(1 - abar) eps."""
        a = self.abar(t, xt)
        if prediction == "eps":
            return (xt - (1 - a).sqrt() * out) / a.sqrt(), out
        if prediction == "x0":
            return out, (xt - a.sqrt() * out) / (1 - a).sqrt()
        if prediction == "v":
            return a.sqrt() * xt - (1 - a).sqrt() * out, (1 - a).sqrt() * xt + a.sqrt() * out
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")

    # ------------------------------------------------------------------ samplers' steps
    def timesteps(self, steps: int) -> list[int]:
        """The S + 1 steps T = tau_S > ... > tau_0 = 0 a sampler visits (evenly spaced)."""
        steps = check_steps(steps, self.T)
        return torch.linspace(self.T, 0, steps + 1, dtype=torch.float64).round().long().tolist()

    def ddpm_step(
        self, xt: torch.Tensor, t: int, t_prev: int, x0_hat: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """x_{t'} ~ q(x_{t'} | x_t, x0_hat): the posterior mean plus sqrt(betatilde) noise (none at t' = 0)."""
        n = len(xt)
        mean, var = self.posterior(x0_hat, xt, self.check_t(t, n, low=1), self.check_t(t_prev, n))
        return mean + var.sqrt() * noise if t_prev > 0 else mean

    def ddim_step(
        self,
        xt: torch.Tensor,
        t: int,
        t_prev: int,
        x0_hat: torch.Tensor,
        eps_hat: torch.Tensor,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Song et al. 2021, eq. 12 with sigma of eq. 16 (see the module docstring)."""
        eta = check_finite_number("eta", eta, positive=True)
        n = len(xt)
        a, a_prev = self.abar(self.check_t(t, n, low=1), xt), self.abar(self.check_t(t_prev, n), xt)
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
        x = a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
        if eta > 0 and t_prev > 0:
            if noise is None:
                raise ValueError("eta > 0 needs noise")
            x = x + sigma * noise
        return x


@dataclass(frozen=True)
class DiffusionConfig:
    """A diffusion model: the denoiser, the noise process and its training (frozen)."""

    denoiser: UNetConfig | MLPDenoiserConfig = UNetConfig()  # the network; a U-Net means images
    steps: int = 1000  # T, the length of the forward chain
    schedule: str = "cosine"  # "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)
    prediction: str = "eps"  # what the network predicts: "eps", "x0" or "v"
    p_uncond: float = 0.0  # label dropout to the null class, for classifier-free guidance
    ema_decay: float = 0.999  # decay of the weights' moving average the samplers use
    data_scale: float = 1.0  # vectors only: the network sees x / data_scale
    clip_x0: bool = True  # images only: clip the predicted x0 to [-1, 1] while sampling

    def __post_init__(self) -> None:
        check_common_config(self)
        check_positive("steps", self.steps)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "linear":
            linear_betas(self.steps)  # raises for chains too short for the linear schedule
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not isinstance(self.clip_x0, bool):
            raise TypeError(f"clip_x0 must be a bool, got {type(self.clip_x0).__name__}")


class GaussianDiffusion(DenoisingModel):
    """DDPM training with DDPM and DDIM sampling (see the module docstring).

    ``loss(batch)``: t ~ U{1..T}, eps ~ N(0, I), the mean squared error of the network's
    prediction at x_t (Ho et al. 2020, algorithm 1). ``sample(n, steps=..., method="ddim" |
    "ddpm")`` (algorithm 2 on a respaced chain, or DDIM) draws from the EMA weights and returns
    display-ready CPU data. ``net_output`` / ``predict`` / ``score`` expose the pieces.
    """

    def __init__(self, cfg: DiffusionConfig) -> None:
        if not isinstance(cfg, DiffusionConfig):
            raise TypeError(f"cfg must be a DiffusionConfig, got {type(cfg).__name__}")
        super().__init__(cfg)
        self.schedule = NoiseSchedule.make(cfg.schedule, cfg.steps)

    @property
    def T(self) -> int:  # noqa: N802
        return self.cfg.steps

    def time(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time input t / T in [0, 1] (B,)."""
        return t.float() / self.T

    def loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The simple loss (Ho eq. 14) for the configured prediction, averaged over every element."""
        x, y = split_batch(batch)
        x0 = self.to_model_space(x)
        n = len(x0)
        labels = self.training_labels(y, n, generator)
        src = generator.device if generator is not None else self.device
        t = torch.randint(1, self.T + 1, (n,), generator=generator, device=src).to(self.device)
        eps = normal_noise(x0.shape, generator=generator, device=self.device)
        xt = self.schedule.q_sample(x0, t, eps)
        out = self.denoiser(xt, self.time(t), labels)
        return mse(out, self.schedule.target(x0, eps, t, self.cfg.prediction)), {}

    def predict(
        self, xt: torch.Tensor, t: int, labels: torch.Tensor | None = None, guidance: float = 1.0, *, ema: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) at model-space x_t and step t (an int), guided; x0 clipped for images."""
        tt = self.schedule.check_t(t, len(xt))
        out = self.output(xt, self.time(tt), labels, guidance, ema=ema)
        x0, eps = self.schedule.split(out, xt, tt, self.cfg.prediction)
        if self.images and self.cfg.clip_x0 and t > 0:
            x0 = x0.clamp(-1, 1)
            a = self.schedule.abar(tt, xt)
            eps = (xt - a.sqrt() * x0) / (1 - a).sqrt()  # the noise consistent with the clipped x0
        return x0, eps

    def _walk(
        self, n: int, steps: int, method: str, eta: float | None, labels: Any, guidance: float, generator, noise, ema
    ):
        """Yield (x_t, x0_hat) in model space along the sampler's steps, starting with (x_T, None)."""
        if method not in ("ddim", "ddpm"):
            raise ValueError(f"method must be 'ddim' or 'ddpm', got {method!r}")
        if method == "ddpm" and eta is not None:
            raise ValueError("eta belongs to method='ddim' (ddpm is its eta = 1 case)")
        eta = 0.0 if eta is None else check_finite_number("eta", eta, positive=True)
        y = self.sample_labels(n, labels, guidance)
        ts = self.schedule.timesteps(steps)
        x = self.start_noise(n, noise, generator)
        yield x, None
        with eval_mode(self):
            for t, t_prev in zip(ts[:-1], ts[1:], strict=True):
                x0, eps = self.predict(x, t, y, guidance, ema=ema)
                z = normal_noise(x.shape, generator=generator, device=self.device) if method == "ddpm" or eta else None
                if method == "ddpm":  # algorithm 2 of Ho et al. on the respaced chain
                    x = self.schedule.ddpm_step(x, t, t_prev, x0, z)
                else:
                    x = self.schedule.ddim_step(x, t, t_prev, x0, eps, eta, z)
                yield x, x0

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        steps: int = 50,
        method: str = "ddim",
        eta: float | None = None,
        labels: Any = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        ema: bool = True,
    ) -> torch.Tensor:
        """n samples on the CPU (images in [0, 1], or vectors): ``steps`` network evaluations
        (twice as many passes with guidance other than 0 or 1). ``method="ddim"`` with ``eta``
        (default 0, deterministic) or ``"ddpm"`` (ancestral). ``labels``: an int or (n,) ints
        for a class-conditional model; ``guidance`` the classifier-free guidance scale (0:
        unconditional, 1: conditional). ``noise``: the starting x_T (model space)."""
        x = None
        for x, _ in self._walk(n, steps, method, eta, labels, guidance, generator, noise, ema):  # noqa: B007
            pass  # keep only the last state
        return self.to_data_space(x).cpu()

    @torch.no_grad()
    def trajectory(self, n: int, **kwargs: Any) -> dict[str, Any]:
        """:meth:`sample` (same keywords) keeping every state: ``{"t": [T, ..., 0], "x": (S + 1, n, ...),
        "x0": (S, n, ...)}`` in data space on the CPU; ``x[-1]`` is the sample, ``x0[i]`` the
        prediction made at step ``t[i]``."""
        opts = {"steps": 50, "method": "ddim", "eta": None, "labels": None, "guidance": 1.0}
        opts.update({"generator": None, "noise": None, "ema": True})
        unknown = set(kwargs) - set(opts)
        if unknown:
            raise TypeError(f"trajectory got unexpected keywords {sorted(unknown)}; it takes {sorted(opts)}")
        opts.update(kwargs)
        states = list(self._walk(n, **opts))
        return {
            "t": self.schedule.timesteps(opts["steps"]),
            "x": torch.stack([self.to_data_space(x) for x, _ in states]).cpu(),
            "x0": torch.stack([self.to_data_space(x0) for _, x0 in states[1:]]).cpu(),
        }

    @torch.no_grad()
    def encode(
        self, x: torch.Tensor, *, steps: int = 50, labels: Any = None, guidance: float = 1.0, ema: bool = True
    ) -> torch.Tensor:
        """DDIM inversion (Song et al. 2021, section 4.3): run the eta = 0 update upwards from data x
        to x_T, evaluating the network at the current step. Returns model-space noise that
        ``sample(noise=..., steps=steps)`` maps back to about x."""
        x = self.to_model_space(x)
        y = self.sample_labels(len(x), labels, guidance)
        ts = self.schedule.timesteps(steps)[::-1]  # 0 = tau_0 < ... < tau_S = T
        with eval_mode(self):
            for t, t_next in zip(ts[:-1], ts[1:], strict=True):
                x0, eps = self.predict(x, max(t, 1), y, guidance, ema=ema)
                a_next = self.schedule.abar(self.schedule.check_t(t_next, len(x)), x)
                x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return x

    @torch.no_grad()
    def score(
        self, x: torch.Tensor, t: int, labels: Any = None, guidance: float = 1.0, *, ema: bool = True
    ) -> torch.Tensor:
        """The learned score grad_x log q_t(x) = -eps_hat / sqrt(1 - abar_t) at data-space x (B, ...), step t >= 1."""
        xm = self.to_model_space(x)
        y = self.sample_labels(len(xm), labels, guidance)
        tt = self.schedule.check_t(t, len(xm), low=1)
        with eval_mode(self):
            out = self.output(xm, self.time(tt), y, guidance, ema=ema)
        _, eps = self.schedule.split(out, xm, tt, self.cfg.prediction)
        scale = 2.0 if self.images else 1.0 / self.cfg.data_scale  # d(model space) / d(data space)
        return (-eps / (1 - self.schedule.abar(tt, xm)).sqrt() * scale).cpu()
