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
shares (GPT with its KV cache, the LSTM with its state, the n-gram with its counts); its
``logits_processor`` hook changes each step's logits before the choice (chapter 19's watermark).

Shape legend: ``...`` any leading dimensions (usually B), V vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from genai_lib._checks import check_generator, check_positive, check_size
from genai_lib.utils import eval_mode, model_device

__all__ = [
    "check_generation",
    "generate_tokens",
    "TokenGenerator",
    "greedy",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "sample_next",
    "choose_next",
    "check_sampling",
]


def _check_logits(logits: torch.Tensor, *, values: bool = True) -> torch.Tensor:
    """Logits (..., V): a float tensor; with ``values`` also no NaN or +inf and at least one
    token per row that is not masked (-inf), checked in one host sync."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() == 0 or logits.shape[-1] == 0 or logits.numel() == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if values:
        bad = logits.isnan() | (logits == float("inf"))
        if not bool((torch.isfinite(logits).any(-1) & ~bad.any(-1)).all()):
            _explain_bad_logits(logits)
    return logits


def _explain_bad_logits(logits: torch.Tensor) -> None:
    if bool(logits.isnan().any()):
        raise ValueError("logits contain NaN; the model's output is broken (check its inputs and weights)")
    if bool((logits == float("inf")).any()):
        raise ValueError("logits contain +inf; only -inf (a masked token) is allowed")
    raise ValueError("every logit of a row is -inf: no token is left to choose")


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
    """logits / temperature (temperature > 0; use :func:`greedy` for the tau -> 0 limit).

    A temperature so small that the division overflows (1e-40, say) raises ValueError rather than
    returning inf (:func:`sample_next` handles such temperatures exactly)."""
    check_sampling(temperature=temperature)
    out = _check_logits(logits) / temperature
    if bool((out == float("inf")).any()):
        raise ValueError(
            f"temperature={temperature!r} is so small that logits / temperature overflows to inf; "
            "use greedy decoding, or sample_next, which handles it"
        )
    return out


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits along the last axis, set the others to -inf.

    k >= V keeps everything; values tied with the k-th largest are all kept.
    """
    check_sampling(top_k=k)
    return _top_k(_check_logits(logits), k)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
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
    return _top_p(_check_logits(logits), p)


def _top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
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
    check_generator("generator", generator)
    logits = _check_logits(logits, values=False).float()

    def probabilities(scaled: torch.Tensor) -> torch.Tensor:
        if top_k is not None:
            scaled = _top_k(scaled, top_k)
        if top_p is not None:
            scaled = _top_p(scaled, p=top_p)
        return torch.softmax(scaled, dim=-1)

    probs = probabilities(logits / temperature if temperature != 1 else logits)
    if not bool(torch.isfinite(probs).all()):  # one host sync; the slow path only for bad input
        _check_logits(logits)  # NaN, +inf or a fully masked row: say so
        # finite logits, but logits / temperature overflowed (temperature ~ 1e-40): shift by the row
        # maximum first, which leaves the softmax unchanged and tends to greedy as temperature -> 0
        probs = probabilities((logits - logits.amax(-1, keepdim=True)) / temperature)
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
    if isinstance(logits, torch.Tensor) and logits.dim() != 2:
        raise ValueError(f"choose_next takes logits of shape (B, V), got {tuple(logits.shape)}")
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
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids (B, T), logits (B, V)) -> logits


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
    logits_processor: LogitsProcessor | None = None,
) -> torch.Tensor:
    """Continue ids ``idx`` (B, T) by ``max_new_tokens`` tokens -> (B, T + max_new_tokens).

    ``step(out, state) -> (logits (B, V), state)`` gives the next-token logits after the whole
    sequence ``out`` so far; ``state`` is ``None`` on the first call (read the prompt) and
    whatever the previous call returned afterwards (a KV cache, an LSTM state), so a model
    feeds only the new token when it can. Each token is :func:`choose_next` of the logits, after
    ``logits_processor(out, logits)`` when one is given (it sees every id so far, B x T).
    """
    check_generation(max_new_tokens, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
    check_generator("generator", generator)
    if logits_processor is not None and not callable(logits_processor):
        raise TypeError(
            f"logits_processor must be callable (ids, logits) -> logits, got {type(logits_processor).__name__}"
        )
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        raise ValueError(f"idx must be a (B, T) tensor of token ids, got {getattr(idx, 'shape', type(idx).__name__)}")
    check_size(
        f"generating {max_new_tokens} tokens",
        idx.shape[0] * (idx.shape[1] + max_new_tokens),
        bytes_each=8,
        unit="token ids",
    )
    out = idx
    if max_new_tokens == 0:
        return out
    logits, state = step(out, None)
    for i in range(max_new_tokens):
        if logits_processor is not None:
            logits = logits_processor(out, logits)
        nxt = choose_next(
            logits.float(), greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )  # (B, 1)
        out = torch.cat([out, nxt.to(out.device)], dim=1)
        if i < max_new_tokens - 1:
            logits, state = step(out, state)
    return out


class TokenGenerator:
    """``generate`` and ``sample`` written once for every neural language model (a mixin).

    A model provides ``_check_ids(idx, name)`` (validation of (B, T) ids) and ``_decode_step(**options)``,
    which returns the ``step(out, state)`` function of :func:`generate_tokens` (GPT: with or
    without its KV cache; LSTM: with its carried state). ``generate`` runs in eval mode (dropout
    off) and restores the mode afterwards.
    """

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        greedy: bool = False,
        logits_processor: LogitsProcessor | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Continue idx (B, T) by ``max_new_tokens`` tokens -> (B, T + max_new_tokens).

        ``greedy=True`` takes the argmax (temperature, top-k and top-p are then ignored); else
        each token is drawn by :func:`sample_next` with ``generator``. ``logits_processor``
        changes each step's logits first (see :func:`generate_tokens`). ``options`` go to the
        model's decoding step (GPT: ``use_cache``)."""
        idx = self._check_ids(idx, "idx")
        step = self._decode_step(**options)
        sampling = {"greedy": greedy, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        sampling["logits_processor"] = logits_processor
        with eval_mode(self):
            return generate_tokens(step, idx, max_new_tokens, generator=generator, **sampling)

    def sample(
        self, n: int, *, prompt: torch.Tensor | None = None, generator: torch.Generator | None = None, **sampling: Any
    ) -> torch.Tensor:
        """``n`` new token ids after ``prompt`` (1-D ids; default: the single token 0) -> 1-D
        LongTensor (prompt + n) on the CPU, ready for ``tokenizer.decode``. ``sampling``: the
        keyword arguments of :meth:`generate`."""
        if prompt is None:
            prompt = torch.zeros(1, dtype=torch.long)
        prompt = self._check_ids(prompt, "prompt", dims=(1,))
        return self.generate(prompt[None].to(model_device(self)), n, generator=generator, **sampling)[0].cpu()
