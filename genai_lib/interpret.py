"""Looking inside generative models: disentanglement, latent directions, and a GPT's internals.

Chapter 17 of the course.

- Mutual-information gap (MIG; Chen et al. 2018, eq. 6): for each true factor v_k, the gap between
  the two latent coordinates that know most about it, normalised by its entropy,
      MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k),
  with z_(1), z_(2) the coordinates of largest and second-largest I(z_j; v_k). Here each z_j is
  discretised into equal-width bins over its range, so I is the plug-in mutual information of two
  discrete variables (as in Locatello et al. 2019's library); 1 means each factor is read off
  one coordinate alone, near 0 means every factor is spread over several.
- Latent principal directions (GANSpace; Harkonen et al. 2020): principal components of features
  computed from many sampled latents (for a GAN without a mapping network, its first layer), turned
  into latent directions by regressing the latents on the component scores.
- The logit lens (nostalgebraist 2020): the residual stream after each block of a GPT, read out
  through the final layer norm and the unembedding, as if the model stopped there.
- Linear probes (Alain & Bengio 2017): a ridge-regression classifier fitted in closed form on
  frozen features, scored on held-out ones.
- Induction heads (Olsson et al. 2022): on a random token sequence repeated twice, an induction
  head at position t of the second copy attends to the token *after* the earlier occurrence of
  the current token, position t - period + 1. It composes with a *previous-token* head in an
  earlier layer (attention t -> t - 1), which tells each position which token preceded it.

Shape legend: N examples, Z latent size, K factors, D feature width, L layers, nh heads,
T sequence length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from genai_lib._checks import check_positive, check_tensor
from genai_lib.models.gpt import GPT
from genai_lib.utils import eval_mode

__all__ = [
    "discrete_mutual_info",
    "mutual_info_matrix",
    "mig",
    "latent_directions",
    "residual_stream",
    "logit_lens",
    "linear_probe",
    "induction_scores",
    "previous_token_scores",
    "repeated_tokens",
]


def _entropy(counts: torch.Tensor) -> torch.Tensor:
    p = counts / counts.sum()
    p = p[p > 0]
    return -(p * p.log()).sum()


def _codes(a: torch.Tensor) -> torch.Tensor:
    """Integer labels 0..m-1 of the distinct values of a 1-D tensor."""
    return torch.unique(a, return_inverse=True)[1]


def discrete_mutual_info(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plug-in mutual information I(a; b) in nats of two discrete 1-D label tensors of length N."""
    for name, t in (("a", a), ("b", b)):
        check_tensor(name, t, floating=False)
        if t.dim() != 1:
            raise ValueError(f"{name} must be 1-D labels (N,), got shape {tuple(t.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length, got {a.shape[0]} and {b.shape[0]}")
    ca, cb = _codes(a.cpu()), _codes(b.cpu())
    joint = torch.zeros(int(ca.max()) + 1, int(cb.max()) + 1, dtype=torch.float64)
    joint.index_put_((ca, cb), torch.ones(len(ca), dtype=torch.float64), accumulate=True)
    mi = _entropy(joint.sum(1)) + _entropy(joint.sum(0)) - _entropy(joint.flatten())
    return max(float(mi), 0.0)  # rounding can give -1e-16


def _bin(z: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, Z) real codes -> (N, Z) bin indices, equal-width bins over each column's range."""
    lo, hi = z.min(0).values, z.max(0).values
    width = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return ((z - lo) / width * bins).long().clamp(0, bins - 1)


def mutual_info_matrix(z: torch.Tensor, factors: torch.Tensor, *, bins: int = 20) -> torch.Tensor:
    """I(z_j; v_k) in nats for every latent coordinate j and factor k: (Z, K), z binned first."""
    z = check_tensor("z", z, floating=True, finite=True)
    factors = check_tensor("factors", factors, floating=False)
    if z.dim() != 2 or factors.dim() != 2 or z.shape[0] != factors.shape[0]:
        raise ValueError(
            f"z (N, Z) and factors (N, K) need the same N, got {tuple(z.shape)} and {tuple(factors.shape)}"
        )
    check_positive("bins", bins)
    zb = _bin(z.detach().double().cpu(), bins)
    f = factors.cpu()
    return torch.tensor(
        [[discrete_mutual_info(zb[:, j], f[:, k]) for k in range(f.shape[1])] for j in range(zb.shape[1])],
        dtype=torch.float64,
    )


def mig(z: torch.Tensor, factors: torch.Tensor, *, bins: int = 20) -> tuple[float, torch.Tensor]:
    """Mutual-information gap of codes z (N, Z) for true factors (N, K) of integer labels.

    Returns ``(MIG, per-factor gaps (K,))``. Needs Z >= 2; factors that take one value only
    (zero entropy) are refused.
    """
    mi = mutual_info_matrix(z, factors, bins=bins)  # (Z, K)
    if mi.shape[0] < 2:
        raise ValueError(f"z needs at least 2 latent coordinates for a gap, got {mi.shape[0]}")
    ent = torch.tensor(
        [float(_entropy(torch.bincount(_codes(factors[:, k].cpu())).double())) for k in range(mi.shape[1])]
    )
    if bool((ent <= 0).any()):
        raise ValueError(
            f"every factor must take at least two values; constant columns: {(ent <= 0).nonzero().view(-1).tolist()}"
        )
    top = mi.topk(2, dim=0).values  # (2, K)
    gaps = (top[0] - top[1]) / ent.double()
    return float(gaps.mean()), gaps


@torch.no_grad()
def latent_directions(
    features: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, k: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """GANSpace directions: ``(directions (k, Z) of unit length, explained variance ratios (k,))``.

    ``features`` maps latents (N, Z) to activations (N, ...) (e.g. a generator's first layer);
    their top-k principal components u_c, with scores x = U^T (y - mean), are carried back to the
    latent space by least squares z ~ x A, and direction c is row c of A, normalised. The sign
    of each direction is arbitrary (as for any principal component).
    """
    z = check_tensor("z", z, floating=True, finite=True)
    if z.dim() != 2:
        raise ValueError(f"z must be (N, Z) latents, got shape {tuple(z.shape)}")
    check_positive("k", k)
    y = features(z).flatten(1).double()  # (N, D)
    if k > min(y.shape):
        raise ValueError(f"k must be at most min(N, D) = {min(y.shape)}, got {k}")
    y = y - y.mean(0)
    _, s, vh = torch.linalg.svd(y, full_matrices=False)  # principal axes in the rows of vh
    ratio = (s**2 / (s**2).sum())[:k]
    scores = y @ vh[:k].T  # (N, k)
    a = torch.linalg.lstsq(scores, (z.double() - z.double().mean(0))).solution  # (k, Z)
    return (a / a.norm(dim=1, keepdim=True)).to(z.dtype), ratio.to(z.dtype)


def _check_gpt(model: Any, idx: Any) -> torch.Tensor:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a genai_lib GPT, got {type(model).__name__}")
    idx = model._check_idx(idx)
    if idx.shape[1] > model.cfg.block_size:
        raise ValueError(f"sequence length {idx.shape[1]} exceeds block_size={model.cfg.block_size}")
    return idx


@torch.no_grad()
def residual_stream(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The residual stream of a GPT: the embeddings, then the state after each block, (L + 1, B, T, C).

    The model runs in eval mode (no dropout); its train/eval mode is restored afterwards.
    """
    idx = _check_gpt(model, idx)
    with eval_mode(model):
        x, rope = model._embed(idx)
        states = [x]
        for block in model.blocks:
            x = block(x, None, 0, rope)
            states.append(x)
    return torch.stack(states)


@torch.no_grad()
def logit_lens(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities read from the residual stream after each block: (L + 1, B, T, V).

    Row 0 is the embeddings alone, row L the model's own output (equal to ``model(idx)``'s
    log-softmax). Each row is ``log_softmax(lm_head(ln_f(h_l)))``.
    """
    states = residual_stream(model, idx)
    return torch.stack([model.lm_head(model.ln_f(h)).float().log_softmax(-1) for h in states])


def linear_probe(
    train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *, ridge: float = 1e-2
) -> float:
    """Held-out accuracy of a ridge-regression classifier on frozen features.

    ``train`` and ``test`` are ``(features (N, D), labels (N,))``; the probe solves
    min ||[X 1] W - Y||^2 + ridge ||W||^2 for one-hot Y in closed form (standardised features)
    and predicts the arg-max column.
    """
    check_positive("ridge", ridge, integer=False)
    (xtr, ytr), (xte, yte) = train, test
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        check_tensor(f"{name} features", x, floating=True, finite=True)
        check_tensor(f"{name} labels", y, floating=False)
        if x.dim() != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"{name} must be features (N, D) and labels (N,), got {tuple(x.shape)}, {tuple(y.shape)}")
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"test features have width {xte.shape[1]}, train features {xtr.shape[1]}")
    xtr, xte = xtr.detach().double().cpu(), xte.detach().double().cpu()
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-8)
    a = torch.cat([(xtr - mu) / sd, torch.ones(len(xtr), 1, dtype=torch.float64)], 1)
    classes = int(max(ytr.max(), yte.max())) + 1
    y1 = torch.nn.functional.one_hot(ytr.cpu().long(), classes).double()
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y1)
    pred = (torch.cat([(xte - mu) / sd, torch.ones(len(xte), 1, dtype=torch.float64)], 1) @ w).argmax(1)
    return float((pred == yte.cpu()).double().mean())


def repeated_tokens(
    n: int, period: int, vocab_size: int, *, generator: torch.Generator | None = None, low: int = 0
) -> torch.Tensor:
    """``n`` sequences (n, 2 * period): ``period`` random tokens from [low, vocab_size), then the same again."""
    for name, v in (("n", n), ("period", period), ("vocab_size", vocab_size)):
        check_positive(name, v)
    if not 0 <= low < vocab_size:
        raise ValueError(f"low must be in [0, vocab_size={vocab_size}), got {low}")
    first = torch.randint(low, vocab_size, (n, period), generator=generator)
    return torch.cat([first, first], dim=1)


def _check_maps(maps: Any) -> list[torch.Tensor]:
    if isinstance(maps, torch.Tensor):
        maps = [maps]
    if not isinstance(maps, (list, tuple)) or not maps:
        raise TypeError(f"maps must be a non-empty list of (B, nh, T, T) attention tensors, got {type(maps).__name__}")
    for i, w in enumerate(maps):
        check_tensor(f"maps[{i}]", w, floating=True)
        if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"maps[{i}] must be (B, nh, T, T), got {tuple(w.shape)}")
    return list(maps)


def _offset_scores(maps: list[torch.Tensor], first: int, back: int) -> torch.Tensor:
    """(L, nh): mean attention that queries t >= first pay to key t - back."""
    scores = []
    for w in maps:
        t = torch.arange(first, w.shape[-1], device=w.device)
        scores.append(w[:, :, t, t - back].mean(dim=(0, 2)))  # (nh,)
    return torch.stack(scores).float().cpu()


def induction_scores(maps: Any, period: int) -> torch.Tensor:
    """Per-head induction score (L, nh) from attention maps (a list of L tensors (B, nh, T, T),
    e.g. ``GPT.attention_maps`` of :func:`repeated_tokens`): the mean attention that positions
    t >= period of the second copy pay to position t - period + 1."""
    maps = _check_maps(maps)
    check_positive("period", period)
    t_len = maps[0].shape[-1]
    if t_len <= period:
        raise ValueError(f"period must be shorter than the sequence length {t_len}, got {period}")
    return _offset_scores(maps, period, period - 1)


def previous_token_scores(maps: Any) -> torch.Tensor:
    """Per-head previous-token score (L, nh): the mean attention that positions t >= 1 pay to
    position t - 1 (1 for a head that always reads the token just before its own)."""
    maps = _check_maps(maps)
    if maps[0].shape[-1] < 2:
        raise ValueError(f"previous-token scores need sequences of at least 2 positions, got {maps[0].shape[-1]}")
    return _offset_scores(maps, 1, 1)
