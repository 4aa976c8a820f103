"""Attribution: which parts of an input a network's output depends on.

Chapter 17 of the course. For a differentiable score f (a class logit, a discriminator's logit):

- saliency (Simonyan et al. 2014): the gradient df/dx at the input;
- SmoothGrad (Smilkov et al. 2017): that gradient averaged over noisy copies x + N(0, sigma^2);
- integrated gradients (Sundararajan et al. 2017, eq. 1): along the straight path from a baseline
  x' to x,   IG_i(x) = (x_i - x'_i) * int_0^1 df/dx_i(x' + a (x - x')) da,
  which satisfies *completeness*: sum_i IG_i(x) = f(x) - f(x') (their Proposition 1), up to the
  error of the quadrature (the trapezoid rule here);
- Shapley values (Shapley 1953) of a set function v over n "players" (features, image patches):
      phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! * (v(S + {i}) - v(S)),
  computed exactly by enumerating all 2^n coalitions, and estimated by KernelSHAP (Lundberg & Lee
  2017, Theorem 2): the weighted least-squares fit of v(S) ~ phi_0 + sum_{i in S} phi_i with the
  Shapley kernel weights, under the constraint sum_i phi_i = v(all) - v(none).

Shape legend: B batch, X... the input's own shape (e.g. 1 x 28 x 28), n players, M coalitions
(boolean masks (M, n): True where the player is present).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from genai_lib._checks import check_finite_number, check_generator, check_positive, check_size, check_tensor
from genai_lib.utils import normal_noise

__all__ = [
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "completeness_gap",
    "exact_shapley",
    "kernel_shap",
    "masked_value",
    "patch_players",
]

MAX_PLAYERS = 20  # exact Shapley values enumerate 2^n coalitions


def _score(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: Any) -> torch.Tensor:
    """f(x) reduced to one number per example: (B,) outputs as they are, (B, K) at ``target``."""
    out = f(x)
    if not isinstance(out, torch.Tensor) or out.dim() not in (1, 2) or out.shape[0] != x.shape[0]:
        raise ValueError(f"f must map a batch (B, ...) to (B,) or (B, K) scores, got {getattr(out, 'shape', out)!r}")
    if out.dim() == 1:
        if target is not None:
            raise ValueError("target must be None when f returns one score per example (B,)")
        return out
    if target is None:
        raise ValueError(f"f returns (B, K) = {tuple(out.shape)} scores: give the target class (int or (B,) ids)")
    if isinstance(target, int) and not isinstance(target, bool):
        target = torch.full((out.shape[0],), target, dtype=torch.long, device=out.device)
    if not isinstance(target, torch.Tensor) or target.shape != (out.shape[0],) or target.is_floating_point():
        raise ValueError(f"target must be an int or (B,) = ({out.shape[0]},) class ids, got {target!r}")
    if bool(((target < 0) | (target >= out.shape[1])).any()):
        raise ValueError(f"target ids must be in [0, {out.shape[1]}), got {target.tolist()}")
    return out.gather(1, target.to(out.device).view(-1, 1)).squeeze(1)


def _check_input(x: Any) -> torch.Tensor:
    x = check_tensor("x", x, floating=True, finite=True)
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (B, ...) with at least 2 dimensions, got shape {tuple(x.shape)}")
    return x


def saliency(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: Any = None) -> torch.Tensor:
    """The gradient of the score with respect to the input: (B, ...) -> (B, ...).

    ``f`` maps (B, ...) to (B,) scores or (B, K) logits (then ``target`` picks the class).
    Each example's score depends only on its own input, so one backward pass of the sum gives
    every example's gradient.
    """
    x = _check_input(x).detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(_score(f, x, target).sum(), x)
    return grad


def smoothgrad(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: Any = None,
    *,
    n: int = 25,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SmoothGrad: the saliency averaged over ``n`` copies of x plus N(0, sigma^2) noise, (B, ...).

    ``sigma`` is in the input's units (0.15 is 15% of the [0, 1] pixel range, the paper's advice).
    """
    check_positive("n", n)
    sigma = check_finite_number("sigma", sigma, positive=True)
    check_generator("generator", generator)
    x = _check_input(x)
    total = torch.zeros_like(x)
    for _ in range(n):
        noise = normal_noise(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        total += saliency(f, x + sigma * noise, target)
    return total / n


def integrated_gradients(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: Any = None,
    *,
    baseline: torch.Tensor | None = None,
    steps: int = 64,
    chunk: int = 256,
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017, eq. 1), (B, ...) -> (B, ...).

    The path integral is the trapezoid rule on ``steps`` + 1 evenly spaced points a = 0, 1/steps,
    ..., 1 (so its error falls like 1/steps^2 for a smooth f). ``baseline`` (default: zeros, a
    black image) has x's shape or broadcasts to it. ``chunk`` bounds how many path points go
    through ``f`` at once.
    """
    check_positive("steps", steps)
    check_positive("chunk", chunk)
    x = _check_input(x)
    base = torch.zeros_like(x) if baseline is None else check_tensor("baseline", baseline, floating=True, finite=True)
    try:
        base = torch.broadcast_to(base.to(x), x.shape)
    except RuntimeError:
        raise ValueError(f"baseline must broadcast to x's shape {tuple(x.shape)}, got {tuple(base.shape)}") from None
    alphas = torch.linspace(0, 1, steps + 1, device=x.device, dtype=x.dtype)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps  # trapezoid: half weight at both ends
    avg = torch.zeros_like(x)
    per = max(1, chunk // x.shape[0])  # path points per forward pass
    for start in range(0, steps + 1, per):
        a = alphas[start : start + per]
        shape = (len(a),) + (1,) * x.dim()
        path = (base + a.view(shape) * (x - base)).reshape(-1, *x.shape[1:])  # (P*B, ...)
        tgt = target.repeat(len(a)) if isinstance(target, torch.Tensor) else target
        grad = saliency(f, path, tgt).view(len(a), *x.shape)
        avg += (weights[start : start + per].view(shape) * grad).sum(0)
    return (x - base) * avg


def completeness_gap(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    *,
    baseline: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_i IG_i(x) - (f(x) - f(baseline)) per example, (B,): zero for exact integrated gradients."""
    x = _check_input(x)
    check_tensor("attributions", attributions, shape=tuple(x.shape), floating=True)
    base = torch.zeros_like(x) if baseline is None else torch.broadcast_to(baseline.to(x), x.shape)
    with torch.no_grad():
        change = _score(f, x, target) - _score(f, base, target)
    return attributions.flatten(1).sum(1) - change


# --------------------------------------------------------------------------- Shapley values


def _check_value_fn(value: Any, n: int) -> None:
    if not callable(value):
        raise TypeError(f"value must be a function of coalition masks (M, n) -> (M,), got {type(value).__name__}")
    check_positive("n_players", n)


def _evaluate(value: Callable[[torch.Tensor], torch.Tensor], masks: torch.Tensor, chunk: int) -> torch.Tensor:
    out = []
    for i in range(0, len(masks), chunk):
        v = value(masks[i : i + chunk])
        if not isinstance(v, torch.Tensor) or v.shape != (len(masks[i : i + chunk]),):
            raise ValueError(f"value must return one number per coalition (M,), got {getattr(v, 'shape', v)!r}")
        out.append(v.detach().double().cpu())
    return torch.cat(out)


def exact_shapley(value: Callable[[torch.Tensor], torch.Tensor], n_players: int, *, chunk: int = 4096) -> torch.Tensor:
    """Exact Shapley values (n,) of the set function ``value`` (boolean masks (M, n) -> (M,)).

    Enumerates all 2^n coalitions once (n <= 20) and sums each player's weighted marginal
    contributions (the definition in the module docstring), in float64.
    """
    _check_value_fn(value, n_players)
    if n_players > MAX_PLAYERS:
        raise ValueError(f"n_players must be <= {MAX_PLAYERS} for exact enumeration (2^n coalitions), got {n_players}")
    n = n_players
    codes = torch.arange(2**n)
    masks = (codes.view(-1, 1) >> torch.arange(n)) & 1 == 1  # (2^n, n): bit i = player i present
    v = _evaluate(value, masks, chunk)  # (2^n,)
    size = masks.sum(1)
    fact = [math.factorial(k) for k in range(n + 1)]
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        without = ~masks[:, i]  # coalitions S not containing i; S + {i} has code + 2^i
        s = size[without]
        w = torch.tensor([fact[k] * fact[n - k - 1] / fact[n] for k in s.tolist()], dtype=torch.float64)
        phi[i] = (w * (v[codes[without] + 2**i] - v[without])).sum()
    return phi


def kernel_shap(
    value: Callable[[torch.Tensor], torch.Tensor],
    n_players: int,
    *,
    n_samples: int = 1024,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """KernelSHAP estimate (n,) of the Shapley values from ``n_samples`` random coalitions.

    Coalition sizes s in 1..n-1 are drawn with probability proportional to the Shapley kernel's
    total weight at that size, (n - 1) / (s (n - s)), then a uniform subset of that size, each
    with its complement (paired sampling halves the variance); the least-squares fit then weighs
    every draw equally. With ``n_samples >= 2^n - 2`` every coalition is listed once with its kernel
    weight (n - 1) / (C(n, s) s (n - s)) instead, and the fit returns the exact Shapley values.
    The constraint sum phi = v(all) - v(none) is imposed exactly by eliminating the last player.
    """
    _check_value_fn(value, n_players)
    check_positive("n_samples", n_samples)
    check_generator("generator", generator)
    n = n_players
    if n < 2:
        raise ValueError(f"n_players must be >= 2 for KernelSHAP (one player gets v(all) - v(none)), got {n}")
    check_size("kernel_shap", n_samples * n, bytes_each=1, unit="mask entries")
    if n_samples >= 2**n - 2:  # enough draws to list every coalition: enumerate, with the kernel weights
        masks = (torch.arange(1, 2**n - 1).view(-1, 1) >> torch.arange(n)) & 1 == 1
        s = masks.sum(1)
        weight = (n - 1) / (torch.tensor([math.comb(n, k) for k in s.tolist()]) * s * (n - s)).double()
    else:
        sizes = torch.arange(1, n)
        p_size = (n - 1) / (sizes * (n - sizes)).double()
        half = (n_samples + 1) // 2
        s = sizes[torch.multinomial(p_size / p_size.sum(), half, replacement=True, generator=generator)]
        order = torch.rand(half, n, generator=generator).argsort(1)  # a random permutation per draw
        masks = order < s.view(-1, 1)  # the first s players of the permutation are present
        masks = torch.cat([masks, ~masks])[:n_samples]  # each coalition with its complement
        weight = torch.ones(len(masks), dtype=torch.float64)  # drawn in proportion to the kernel already
    ends = _evaluate(value, torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]), chunk)
    v0, total = ends[0], ends[1] - ends[0]
    y = _evaluate(value, masks, chunk) - v0  # (M,)
    z = masks.double()
    # phi_n = total - sum_{i<n} phi_i: y - z_n * total = sum_{i<n} (z_i - z_n) phi_i
    root = weight.sqrt().view(-1, 1)  # weighted least squares as plain least squares on scaled rows
    a = (z[:, :-1] - z[:, -1:]) * root
    b = (y - z[:, -1] * total) * root.view(-1)
    head = torch.linalg.lstsq(a, b.view(-1, 1)).solution.squeeze(1)
    return torch.cat([head, (total - head.sum()).view(1)])


def masked_value(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    players: torch.Tensor,
    target: Any = None,
    *,
    baseline: torch.Tensor | float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The set function of one input: v(S) = f(x with the players outside S set to the baseline).

    ``x`` is one example (1, ...); ``players`` (n, ...) boolean, player j the pixels it owns (see
    :func:`patch_players`). The returned function maps masks (M, n) to scores (M,).
    """
    x = _check_input(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must be one example (1, ...), got a batch of {x.shape[0]}")
    check_tensor("players", players, shape=(None, *x.shape[1:]))
    if players.dtype != torch.bool:
        raise TypeError(f"players must be a boolean tensor (n, ...), got dtype {players.dtype}")
    own = players.to(x.device).flatten(1).float()  # (n, D)
    base = torch.broadcast_to(torch.as_tensor(baseline, dtype=x.dtype, device=x.device), x.shape).flatten(1)

    @torch.no_grad()
    def value(masks: torch.Tensor) -> torch.Tensor:
        keep = (masks.to(x.device).float() @ own).clamp(max=1)  # (M, D): 1 where a present player owns the pixel
        xs = keep * x.flatten(1) + (1 - keep) * base
        tgt = target.reshape(-1).expand(len(masks)) if isinstance(target, torch.Tensor) else target
        return _score(f, xs.view(len(masks), *x.shape[1:]), tgt)

    return value


def patch_players(shape: tuple[int, ...], grid: int) -> torch.Tensor:
    """Split an image (C, H, W) into grid x grid rectangular patches: boolean players (grid^2, C, H, W)."""
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {shape!r}")
    check_positive("grid", grid)
    _, h, w = shape
    if grid > min(h, w):
        raise ValueError(f"grid must be at most the image side {min(h, w)}, got {grid}")
    rows = torch.arange(h) * grid // h  # patch row of each pixel row
    cols = torch.arange(w) * grid // w
    cell = rows.view(-1, 1) * grid + cols.view(1, -1)  # (H, W) patch index
    return (cell == torch.arange(grid * grid).view(-1, 1, 1)).unsqueeze(1).expand(-1, shape[0], -1, -1).clone()
