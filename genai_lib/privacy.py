"""Differentially private training: DP-SGD (Abadi et al. 2016) and its privacy accounting.

Chapter 16 of the course. One DP-SGD step on a batch drawn by Poisson sampling (each of the N
training examples joins the batch independently with probability q):

    g_i  = grad_theta loss(theta; x_i)                         per-sample gradients (torch.func)
    g_i <- g_i / max(1, ||g_i||_2 / C)                        clip every example's norm to <= C
    g    = (sum_i g_i + N(0, sigma^2 C^2 I)) / (q N)           Gaussian noise, then the mean

(Abadi et al. 2016, Algorithm 1; dividing by the expected batch size qN keeps the sensitivity
of the sum at C). The step is a :class:`genai_lib.phases.Phase` (:func:`dp_phase`) whose loss
returns a surrogate with the value of the batch loss and the gradient g, so training still goes
through :func:`genai_lib.train.fit`.

Accounting: T steps of the sampled Gaussian mechanism compose in Renyi differential privacy
(Mironov 2017). For integer orders alpha >= 2 the RDP of one step is exactly
(Mironov, Talwar & Zhang 2019, section 3.3)

    RDP(alpha) = 1/(alpha - 1) log sum_{k=0}^{alpha} C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2))

T steps give T * RDP(alpha); the conversion to (epsilon, delta) is
epsilon = min_alpha [T RDP(alpha) + log((alpha - 1)/alpha) - (log delta + log alpha)/(alpha - 1)]
(Balle et al. 2020, Theorem 21; ``conversion="mironov"``: T RDP + log(1/delta)/(alpha - 1),
Mironov 2017 Proposition 3). :func:`noise_for_epsilon` inverts it by bisection.

Shape legend: B batch, N training examples, q = B/N sampling rate, P parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import gammaln
from torch import nn

from genai_lib._checks import check_finite_number, check_positive
from genai_lib.phases import Phase
from genai_lib.utils import normal_noise

__all__ = [
    "per_sample_grads",
    "clip_per_sample",
    "privatize",
    "dp_phase",
    "PoissonLoader",
    "DEFAULT_ORDERS",
    "rdp_sampled_gaussian",
    "rdp_to_epsilon",
    "epsilon",
    "noise_for_epsilon",
    "check_delta",
    "gaussian_mechanism",
]

SampleLoss = Callable[..., torch.Tensor]  # (model, *one_example) -> scalar loss


class _Bound(nn.Module):
    """Wraps ``model`` so torch.func.functional_call can run any ``fn(model, *sample)``."""

    def __init__(self, model: nn.Module, fn: SampleLoss) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *sample: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, *sample)


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def per_sample_grads(
    model: nn.Module,
    sample_loss: SampleLoss,
    tensors: Sequence[torch.Tensor],
    *,
    method: str = "vmap",
    with_loss: bool = False,
) -> Any:
    """The gradient of ``sample_loss(model, *example)`` for every example: name -> (B, *param shape).

    ``tensors`` hold the batch, first dimension B; ``sample_loss`` sees one example (the batch
    dimension removed). ``method="vmap"`` uses ``torch.func.vmap(grad(...))`` (one pass for the
    batch; the loss must be free of data-dependent Python control flow); ``"loop"`` runs one
    backward pass per example (the definition, for models whose input checks read values).
    ``with_loss=True`` returns ``(grads, losses (B,))``.
    """
    if method not in ("vmap", "loop"):
        raise ValueError(f"method must be 'vmap' or 'loop', got {method!r}")
    if not callable(sample_loss):
        raise TypeError(f"sample_loss must be callable (model, *example) -> scalar, got {sample_loss!r}")
    if not tensors or any(not isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("tensors must be a non-empty sequence of tensors with the batch first")
    b = tensors[0].shape[0]
    if b == 0 or any(t.shape[0] != b for t in tensors):
        raise ValueError(f"tensors need the same non-zero first dimension, got {[t.shape[0] for t in tensors]}")
    params = _trainable(model)
    if method == "loop":
        names, out, losses = list(params), {n: [] for n in params}, []
        for i in range(b):
            value = sample_loss(model, *(t[i] for t in tensors))
            grads = torch.autograd.grad(value, list(params.values()))
            losses.append(value.detach())
            for n, g in zip(names, grads, strict=True):
                out[n].append(g)
        stacked = {n: torch.stack(v) for n, v in out.items()}
        return (stacked, torch.stack(losses)) if with_loss else stacked
    bound = _Bound(model, sample_loss)
    frozen = {f"model.{n}": p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    frozen.update({f"model.{n}": v for n, v in model.named_buffers()})

    def one(p: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(bound, {**{f"model.{n}": v for n, v in p.items()}, **frozen}, sample)

    detached = {n: p.detach() for n, p in params.items()}
    dims = (None, *([0] * len(tensors)))
    grads, losses = torch.func.vmap(torch.func.grad_and_value(one), in_dims=dims)(detached, *tensors)
    return (grads, losses.detach()) if with_loss else grads


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scale each example's gradient (over all parameters together) to L2 norm <= ``max_norm``.

    Returns the clipped gradients and the norms (B,) before clipping.
    """
    check_finite_number("max_norm", max_norm, positive=True, allow_zero=False)
    if not grads:
        raise ValueError("grads is empty: no trainable parameters")
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()  # (B,)
    scale = (max_norm / (norms + 1e-12)).clamp(max=1.0)  # min(1, C / ||g_i||)
    return {n: g * scale.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}, norms


def privatize(
    grads: dict[str, torch.Tensor],
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """(sum of clipped per-sample grads + N(0, (sigma C)^2)) / expected batch size: the DP-SGD gradient."""
    check_finite_number("noise_multiplier", noise_multiplier)
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    check_finite_number("expected_batch_size", expected_batch_size, positive=True, allow_zero=False)
    clipped, _ = clip_per_sample(grads, max_norm)
    out = {}
    for n, g in clipped.items():
        noise = normal_noise(g.shape[1:], generator=generator, device=g.device, dtype=g.dtype)
        out[n] = (g.sum(0) + noise_multiplier * max_norm * noise) / expected_batch_size
    return out


def dp_phase(
    model: nn.Module,
    sample_loss: SampleLoss,
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    extra: Callable[[tuple[torch.Tensor, ...], torch.Generator | None], tuple[torch.Tensor, ...]] | None = None,
    method: str = "vmap",
    name: str = "dp",
    **phase_kwargs: Any,
) -> Phase:
    """A :class:`Phase` whose update is the DP-SGD step (module docstring) for ``fit(phases=[...])``.

    The phase loss computes per-sample gradients, clips and noises them (noise from fit's
    ``generator``) and returns a surrogate loss whose value is the batch's mean loss and whose
    gradient is the private gradient, so the core's ``backward`` and optimizer step apply it.
    ``extra(batch, generator)`` adds per-example tensors (e.g. a VAE's reparameterisation noise,
    drawn outside ``vmap``). ``phase_kwargs`` go to :class:`Phase` (``optimizer``, ``lr``...).
    """
    check_finite_number("max_norm", max_norm, positive=True, allow_zero=False)
    check_finite_number("noise_multiplier", noise_multiplier)
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    check_finite_number("expected_batch_size", expected_batch_size, positive=True, allow_zero=False)
    for bad in ("grad_clip", "accumulate"):
        if bad in phase_kwargs:
            raise TypeError(f"dp_phase clips per example itself; {bad!r} would break the privacy guarantee")
    params = _trainable(model)

    def loss(batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        tensors = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        if extra is not None:
            tensors = (*tensors, *extra(tensors, generator))
        grads, losses = per_sample_grads(model, sample_loss, tensors, method=method, with_loss=True)
        noisy = privatize(
            grads,
            max_norm=max_norm,
            noise_multiplier=noise_multiplier,
            expected_batch_size=expected_batch_size,
            generator=generator,
        )
        surrogate = sum((p * noisy[n]).sum() for n, p in params.items())
        value = losses.mean()
        return surrogate - surrogate.detach() + value, {"batch": torch.tensor(float(len(tensors[0])))}

    return Phase(name, loss, list(params.values()), **phase_kwargs)


class PoissonLoader:
    """Batches by Poisson sampling: every example joins each batch with probability ``q``.

    What the accountant assumes (fixed-size shuffled batches are a different mechanism). An
    epoch is ``round(1/q)`` batches; epoch ``e``'s draws depend only on the seed and ``e``, so
    ``fit`` resumes batch for batch. A batch can be small, never empty (one example is drawn
    then, a negligible event for qN >> 1 that we note rather than account).
    """

    def __init__(self, *tensors: torch.Tensor, q: float, seed: int = 0) -> None:
        if not tensors or any(not isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError("PoissonLoader needs tensors with the examples first")
        n = tensors[0].shape[0] if tensors[0].dim() else 0
        if n == 0 or any(t.shape[0] != n for t in tensors):
            raise ValueError(f"the tensors need the same non-zero first dimension, got {[t.shape[0] for t in tensors]}")
        check_finite_number("q", q, positive=True, allow_zero=False)
        if q > 1:
            raise ValueError(f"q must be a sampling rate in (0, 1], got {q}")
        self.tensors, self.q, self.seed, self.epoch = tensors, float(q), int(seed), 0

    @property
    def num_examples(self) -> int:
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        return max(1, round(1 / self.q))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for i in range(len(self)):
            mask = torch.rand(self.num_examples, generator=gen) < self.q
            if i < start:
                continue
            idx = mask.nonzero().flatten()
            if idx.numel() == 0:
                idx = torch.randint(self.num_examples, (1,), generator=gen)
            yield tuple(t[idx] for t in self.tensors)
        self.epoch += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.iter_from(0)


# --------------------------------------------------------------------------- accounting (RDP)

DEFAULT_ORDERS = tuple(range(2, 257))  # integer Renyi orders alpha


def check_delta(delta: Any) -> float:
    """delta must be a probability strictly between 0 and 1."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ValueError(f"delta must be a number in (0, 1), got {delta!r}")
    return float(delta)


def _check_mechanism(q: Any, noise_multiplier: Any, steps: Any) -> None:
    check_finite_number("q", q, positive=True, allow_zero=False)
    if q > 1:
        raise ValueError(f"q must be a sampling rate in (0, 1], got {q}")
    check_finite_number("noise_multiplier", noise_multiplier, positive=True, allow_zero=False)
    check_positive("steps", steps)


def rdp_sampled_gaussian(q: float, noise_multiplier: float, orders: Sequence[int] = DEFAULT_ORDERS) -> list[float]:
    """RDP(alpha) of one step of the sampled Gaussian mechanism, integer alpha >= 2 (module docstring)."""
    _check_mechanism(q, noise_multiplier, 1)
    out = []
    log_q, log_1mq = math.log(q), (math.log1p(-q) if q < 1 else -math.inf)
    for a in orders:
        if isinstance(a, bool) or not isinstance(a, int) or a < 2:
            raise ValueError(f"orders must be integers >= 2, got {a!r}")
        if q == 1.0:  # no subsampling: the Gaussian mechanism, alpha / (2 sigma^2)
            out.append(a / (2 * noise_multiplier**2))
            continue
        k = np.arange(a + 1, dtype=np.float64)
        terms = (
            gammaln(a + 1) - gammaln(k + 1) - gammaln(a - k + 1)  # log C(a, k)
            + (a - k) * log_1mq
            + k * log_q
            + (k * k - k) / (2 * noise_multiplier**2)
        )  # fmt: skip
        top = terms.max()
        out.append(float(top + np.log(np.exp(terms - top).sum())) / (a - 1))
    return out


def rdp_to_epsilon(
    orders: Sequence[int], rdp: Sequence[float], delta: float, *, conversion: str = "balle"
) -> tuple[float, int]:
    """(epsilon, best order) for a total RDP curve at ``delta`` (module docstring)."""
    delta = check_delta(delta)
    if conversion not in ("balle", "mironov"):
        raise ValueError(f"conversion must be 'balle' or 'mironov', got {conversion!r}")
    if len(orders) != len(rdp) or not orders:
        raise ValueError(f"orders and rdp need the same non-zero length, got {len(orders)} and {len(rdp)}")
    best = (math.inf, int(orders[0]))
    for a, r in zip(orders, rdp, strict=True):
        if conversion == "mironov":
            eps = r + math.log(1 / delta) / (a - 1)
        else:
            eps = r + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        best = min(best, (max(eps, 0.0), int(a)))
    return best


def epsilon(
    q: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    *,
    orders: Sequence[int] = DEFAULT_ORDERS,
    conversion: str = "balle",
) -> float:
    """epsilon of ``steps`` DP-SGD steps at sampling rate ``q`` and noise ``sigma``, at ``delta``."""
    _check_mechanism(q, noise_multiplier, steps)
    rdp = [steps * r for r in rdp_sampled_gaussian(q, noise_multiplier, orders)]
    return rdp_to_epsilon(orders, rdp, delta, conversion=conversion)[0]


def noise_for_epsilon(
    target_epsilon: float,
    q: float,
    steps: int,
    delta: float,
    *,
    orders: Sequence[int] = DEFAULT_ORDERS,
    tol: float = 1e-3,
) -> float:
    """The smallest noise multiplier (to ``tol``) whose ``steps`` steps stay within ``target_epsilon``."""
    check_finite_number("target_epsilon", target_epsilon, positive=True, allow_zero=False)
    check_delta(delta)
    _check_mechanism(q, 1.0, steps)
    lo, hi = 0.05, 1.0
    while epsilon(q, hi, steps, delta, orders=orders) > target_epsilon:
        lo, hi = hi, 2 * hi
        if hi > 1e4:
            raise ValueError(f"no noise multiplier below 1e4 reaches epsilon={target_epsilon} in {steps} steps")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if epsilon(q, mid, steps, delta, orders=orders) > target_epsilon else (lo, mid)
    return hi


def gaussian_mechanism(
    value: torch.Tensor,
    *,
    sensitivity: float,
    epsilon_budget: float,
    delta: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, float]:
    """Release ``value`` once with (epsilon, delta)-DP: ``value + N(0, (sigma * sensitivity)^2 I)``.

    ``sensitivity`` bounds the L2 change of ``value`` when one example is added or removed (a
    sum of per-example terms of norm <= 1 has sensitivity 1). ``sigma`` is the smallest noise
    multiplier whose one release (q = 1, one step of the accountant above) spends at most
    ``epsilon_budget``; returns (the noisy value, sigma). DP-MERF releases its embedding this way.
    """
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"value must be a floating-point tensor, got {type(value).__name__}")
    check_finite_number("sensitivity", sensitivity, positive=True, allow_zero=False)
    sigma = noise_for_epsilon(epsilon_budget, 1.0, 1, delta)
    noise = normal_noise(tuple(value.shape), generator=generator, device=value.device, dtype=value.dtype)
    return value + sigma * sensitivity * noise, sigma
