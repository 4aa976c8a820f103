"""Flow matching and rectified flow (chapter 6): learn a velocity field whose ODE carries noise
to data (Lipman et al. 2023; Liu et al. 2023; the same idea as Albergo & Vanden-Eijnden 2023).

Time runs from t = 0 (noise x_0 ~ N(0, I)) to t = 1 (data x_1). The *conditional optimal-transport
path* of Lipman et al. (2023, eq. 20-23) with ``sigma_min`` = s moves each noise sample along a
straight line towards one data point:

    x_t = t x_1 + (1 - (1 - s) t) x_0,          u_t(x_t | x_1) = x_1 - (1 - s) x_0,

and the network regresses that conditional velocity (the conditional flow-matching loss,
Lipman eq. 9 / Liu eq. 1):

    L(theta) = E_{t, x_0, x_1} || v_theta(x_t, t) - (x_1 - (1 - s) x_0) ||^2.

Its minimiser is the *marginal* velocity E[u_t | x_t], whose ODE dx/dt = v(x, t) transports
N(0, I) to the data distribution (Lipman theorem 2). With s = 0 this is rectified flow. The
marginal paths are not straight where the lines of different pairs cross, but much straighter
than the probability-flow ODE of a diffusion model, so a few Euler steps already land near the
data. Samplers: Euler (one evaluation per step) and Heun's second-order method (two; Karras et
al. 2022, algorithm 1 without noise) on a uniform time grid: :func:`euler` and :func:`heun`
integrate any velocity function and are tested on fields with known solutions.

Classifier-free guidance (Ho & Salimans 2022) applies to the velocity as it does to the noise:
``v = v_u + w (v_c - v_u)``. Shape legend: B batch, S steps, data (B, C, H, W) or (B, D).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_finite_number, check_tensor
from genai_lib.models._denoising import DenoisingModel, check_common_config, check_steps, mse
from genai_lib.models.unet import MLPDenoiserConfig, UNetConfig
from genai_lib.utils import eval_mode, normal_noise, split_batch, uniform_noise

__all__ = ["TIME_SAMPLING", "SOLVERS", "FlowConfig", "FlowMatching", "euler", "heun", "ode_path"]

TIME_SAMPLING = ("uniform", "logit_normal")
SOLVERS = ("euler", "heun")

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def _grid(steps: int, t0: float, t1: float) -> list[float]:
    steps = check_steps(steps)
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64).tolist()


def euler(velocity: Velocity, x: torch.Tensor, steps: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t0 to t1 with ``steps`` Euler steps: x += h v(x, t)."""
    return ode_path(velocity, x, steps, "euler", t0, t1)[-1]


def heun(velocity: Velocity, x: torch.Tensor, steps: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Heun's method (the trapezoidal predictor-corrector), two evaluations per step."""
    return ode_path(velocity, x, steps, "heun", t0, t1)[-1]


def ode_path(
    velocity: Velocity, x: torch.Tensor, steps: int, method: str = "euler", t0: float = 0.0, t1: float = 1.0
) -> list[torch.Tensor]:
    """Every state [x(t0), ..., x(t1)] (S + 1 tensors) of :func:`euler` or :func:`heun`."""
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {SOLVERS}, got {method!r}")
    ts = _grid(steps, check_finite_number("t0", t0), check_finite_number("t1", t1))
    path = [x]
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        h = t_next - t
        v = velocity(x, t)
        if method == "heun":
            v = 0.5 * (v + velocity(x + h * v, t_next))  # the slope at both ends of the step
        x = x + h * v
        path.append(x)
    return path


@dataclass(frozen=True)
class FlowConfig:
    """A flow-matching model: the velocity network and its training (frozen)."""

    denoiser: UNetConfig | MLPDenoiserConfig = UNetConfig()  # the velocity network; a U-Net means images
    sigma_min: float = 0.0  # s: the width of the path's end at the data (0: rectified flow)
    time_sampling: str = "uniform"  # training times: "uniform" or "logit_normal" (Esser et al. 2024)
    p_uncond: float = 0.0  # label dropout to the null class, for classifier-free guidance
    ema_decay: float = 0.999  # decay of the weights' moving average the samplers use
    data_scale: float = 1.0  # vectors only: the network sees x / data_scale

    def __post_init__(self) -> None:
        check_common_config(self)
        s = check_finite_number("sigma_min", self.sigma_min, positive=True)
        if s >= 1:
            raise ValueError(f"sigma_min must be in [0, 1), got {self.sigma_min!r}")
        if self.time_sampling not in TIME_SAMPLING:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLING}, got {self.time_sampling!r}")


class FlowMatching(DenoisingModel):
    """Conditional flow matching on the OT path (see the module docstring).

    ``loss(batch)``; ``velocity(x, t)`` in model space; ``sample(n, steps=..., method="euler" |
    "heun")`` from the EMA weights, display-ready on the CPU; ``trajectory`` keeps the states;
    ``encode`` integrates backwards, data -> noise.
    """

    def __init__(self, cfg: FlowConfig) -> None:
        if not isinstance(cfg, FlowConfig):
            raise TypeError(f"cfg must be a FlowConfig, got {type(cfg).__name__}")
        super().__init__(cfg)

    def path(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, u_t): the point at time t (B,) on the OT path from noise x0 to data x1, and its velocity."""
        s = self.cfg.sigma_min
        tt = t.reshape(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
        return tt * x1 + (1 - (1 - s) * tt) * x0, x1 - (1 - s) * x0

    def _times(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.cfg.time_sampling == "uniform":
            return uniform_noise((n,), generator=generator, device=self.device)
        return torch.sigmoid(normal_noise((n,), generator=generator, device=self.device))  # logit-normal(0, 1)

    def loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The conditional flow-matching loss (Lipman eq. 9 on the path of eq. 22-23)."""
        x, y = split_batch(batch)
        x1 = self.to_model_space(x)
        n = len(x1)
        labels = self.training_labels(y, n, generator)
        t = self._times(n, generator)
        x0 = normal_noise(x1.shape, generator=generator, device=self.device)
        xt, u = self.path(x0, x1, t)
        return mse(self.denoiser(xt, t, labels), u), {}

    def velocity(
        self, x: torch.Tensor, t: float, labels: torch.Tensor | None = None, guidance: float = 1.0, *, ema: bool = True
    ) -> torch.Tensor:
        """The (guided) velocity at model-space x (B, ...) and time t in [0, 1]."""
        tt = torch.full((len(x),), float(t), device=x.device)
        return self.output(x, tt, labels, guidance, ema=ema)

    def _states(self, n, steps, method, labels, guidance, generator, noise, ema, t0=0.0, t1=1.0) -> list[torch.Tensor]:
        if method not in SOLVERS:
            raise ValueError(f"method must be one of {SOLVERS}, got {method!r}")
        y = self.sample_labels(n, labels, guidance)
        x = self.start_noise(n, noise, generator) if noise is None or t0 == 0.0 else noise
        with eval_mode(self):
            return ode_path(lambda z, t: self.velocity(z, t, y, guidance, ema=ema), x, steps, method, t0, t1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        steps: int = 20,
        method: str = "euler",
        labels: Any = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        ema: bool = True,
    ) -> torch.Tensor:
        """n samples on the CPU (images in [0, 1], or vectors): the ODE from noise (t = 0) to data
        (t = 1) in ``steps`` Euler or Heun steps (1 or 2 evaluations each, twice that with
        guidance other than 0 or 1). ``labels`` and ``guidance`` as in the diffusion sampler."""
        states = self._states(n, steps, method, labels, guidance, generator, noise, ema)
        return self.to_data_space(states[-1]).cpu()

    @torch.no_grad()
    def trajectory(
        self,
        n: int,
        *,
        steps: int = 20,
        method: str = "euler",
        labels: Any = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        ema: bool = True,
    ) -> dict[str, Any]:
        """:meth:`sample` keeping every state: ``{"t": [0, ..., 1], "x": (S + 1, n, ...)}``, data space, CPU."""
        states = self._states(n, steps, method, labels, guidance, generator, noise, ema)
        return {"t": _grid(steps, 0.0, 1.0), "x": torch.stack([self.to_data_space(x) for x in states]).cpu()}

    @torch.no_grad()
    def encode(
        self, x: torch.Tensor, *, steps: int = 20, method: str = "euler", labels: Any = None, guidance: float = 1.0
    ) -> torch.Tensor:
        """Integrate the ODE backwards from data x (t = 1) to noise (t = 0); model space."""
        xm = self.to_model_space(x)
        check_tensor("x", xm, floating=True)
        return self._states(len(xm), steps, method, labels, guidance, None, xm, True, t0=1.0, t1=0.0)[-1]
