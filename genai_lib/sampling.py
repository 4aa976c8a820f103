"""Choosing the next token from a language model's logits: greedy, temperature, top-k, top-p.

Chapters 7-8 of the course. For logits l over a vocabulary of V tokens:

* temperature tau > 0: p_i = softmax(l / tau)_i; tau -> 0 approaches greedy decoding (argmax),
  tau = 1 leaves the model's distribution unchanged, tau > 1 flattens it.
* top-k (Fan et al. 2018): keep the k largest logits, set the rest to -inf (ties with the k-th
  value are kept too).
* top-p / nucleus (Holtzman et al. 2020, *The Curious Case of Neural Text Degeneration*): keep
  the smallest set of most likely tokens whose total probability reaches p; the most likely
  token is always kept, so every filter leaves at least one token.

Filters return new logits (masked entries are ``-inf``) and never change their input, so they
compose: temperature first, then top-k, then top-p, as :func:`sample_next` does.
:func:`generate_tokens` is the one autoregressive loop every language model's ``generate``
shares (GPT with its KV cache, the LSTM with its state, the n-gram with its counts).

Shape legend: ``...`` any leading dimensions (usually B), V vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from genai_lib._checks import check_generator, check_positive

__all__ = [
    "check_generation",
    "generate_tokens",
    "greedy",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "sample_next",
    "choose_next",
    "check_sampling",
]


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    return logits


def check_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Validate sampling settings (raises ValueError/TypeError saying what is allowed)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}; for argmax decoding use greedy"
        )
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 (or None for no top-k filter), got {top_k}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
            raise TypeError(f"top_p must be a number or None, got {type(top_p).__name__}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (or None for no nucleus filter), got {top_p!r}")


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token: (..., V) -> LongTensor (...)."""
    return _check_logits(logits).argmax(dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature (temperature > 0; use :func:`greedy` for the tau -> 0 limit)."""
    check_sampling(temperature=temperature)
    return _check_logits(logits) / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits along the last axis, set the others to -inf.

    k >= V keeps everything; values tied with the k-th largest are all kept.
    """
    check_sampling(top_k=k)
    logits = _check_logits(logits)
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely tokens until their total probability reaches p.

    Sort the probabilities in decreasing order; a token is dropped when the probability of the
    tokens *before* it already reaches p. The top token is always kept (p in (0, 1]).
    """
    check_sampling(top_p=p)
    logits = _check_logits(logits)
    if p >= 1:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly more likely tokens
    drop_sorted = before >= p
    drop_sorted[..., 0] = False  # always keep the most likely token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row: (..., V) logits -> LongTensor (...) of ids.

    Applies temperature, then top-k, then top-p, then samples from the softmax with
    ``generator`` (if the generator lives on another device than the logits, the draw is made
    on the generator's device). Raises ValueError for temperature <= 0 (use :func:`greedy`),
    top_k < 1 or top_p outside (0, 1].
    """
    check_sampling(temperature, top_k, top_p)
    logits = _check_logits(logits).float()
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])  # (N, V)
    if generator is not None and generator.device != flat.device:
        ids = torch.multinomial(flat.to(generator.device), 1, generator=generator).to(flat.device)
    else:
        ids = torch.multinomial(flat, 1, generator=generator)
    return ids.reshape(probs.shape[:-1])


def choose_next(
    logits: torch.Tensor,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next token of each row, as a column: logits (B, V) -> ids (B, 1).

    The one decoding step every language model's ``generate`` shares: the argmax when
    ``greedy`` (sampling settings ignored), else a draw by :func:`sample_next`.
    """
    if greedy:
        return _check_logits(logits).argmax(dim=-1, keepdim=True)
    return sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)[:, None]


def check_generation(
    max_new_tokens: int, *, greedy: bool, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    """The argument checks every ``generate`` shares: a count >= 0, and valid settings unless greedy."""
    check_positive("max_new_tokens", max_new_tokens, allow_zero=True)
    if not greedy:
        check_sampling(temperature, top_k, top_p)


Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def generate_tokens(
    step: Step,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ids ``idx`` (B, T) by ``max_new_tokens`` tokens -> (B, T + max_new_tokens).

    ``step(out, state) -> (logits (B, V), state)`` gives the next-token logits after the whole
    sequence ``out`` so far; ``state`` is ``None`` on the first call (read the prompt) and
    whatever the previous call returned afterwards (a KV cache, an LSTM state), so a model
    feeds only the new token when it can. Each token is :func:`choose_next` of the logits.
    """
    check_generation(max_new_tokens, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
    check_generator("generator", generator)
    out = idx
    if max_new_tokens == 0:
        return out
    logits, state = step(out, None)
    for i in range(max_new_tokens):
        nxt = choose_next(
            logits.float(), greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )  # (B, 1)
        out = torch.cat([out, nxt.to(out.device)], dim=1)
        if i < max_new_tokens - 1:
            logits, state = step(out, state)
    return out
