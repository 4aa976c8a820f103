"""Character (or token) n-gram language models with add-k or interpolated smoothing.

Chapter 7 of the course (Jurafsky & Martin, *Speech and Language Processing*, ch. 3; Chen &
Goodman 1999, *An empirical study of smoothing techniques*). An order-n model predicts a token
from the n - 1 tokens before it,

    p(w | h) = c(h, w) / c(h)                                   (maximum likelihood)

which gives probability 0 to every continuation never seen in training. Two fixes:

* ``"add_k"`` (Lidstone): p(w | h) = (c(h, w) + k) / (c(h) + k V). An unseen context gets the
  uniform distribution. k = 1 is Laplace's add-one.
* ``"interpolated"`` (Witten & Bell 1991, interpolated form, Chen & Goodman eq. 8):
  p_m(w | h) = (c(h, w) + N1+(h .) p_{m-1}(w | h')) / (c(h) + N1+(h .)), where h' drops the
  oldest token of h, N1+(h .) is the number of distinct tokens seen after h, and p_0 = 1/V.
  An unseen context falls back to p_{m-1}. No hyper-parameter; every order contributes.

At the start of a text (fewer than n - 1 previous tokens) the longest available context is
used. Counting is vectorised: every m-gram is packed into one int64 code (base V), counted
with ``torch.unique`` and looked up with ``torch.searchsorted`` (no Python loop per token).

Shape legend: N tokens, V vocabulary size, n order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_positive, check_size, plain_fields
from genai_lib.sampling import generate_tokens
from genai_lib.tokenizer import check_token_ids

__all__ = ["NGramConfig", "NGram", "SMOOTHINGS"]

SMOOTHINGS = ("add_k", "interpolated")


@dataclass(frozen=True)
class NGramConfig:
    """Hyper-parameters of an :class:`NGram` model."""

    order: int = 3  # n: the model conditions on the previous n - 1 tokens (1 = unigram)
    vocab_size: int = 128  # V: number of token ids
    smoothing: str = "interpolated"  # "add_k" (Lidstone) or "interpolated" (Witten-Bell)
    k: float = 1.0  # pseudo-count of add-k smoothing (> 0; unused by "interpolated")

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("order", self.order)
        check_positive("vocab_size", self.vocab_size)
        check_positive("k", self.k, integer=False)
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {self.smoothing!r}")
        if self.vocab_size**self.order >= 2**62:
            raise ValueError(
                f"vocab_size**order = {self.vocab_size}**{self.order} is too large to pack an n-gram into an int64; "
                "lower the order"
            )
        # next_distribution scores every token at once: about (order + 8) int64/float64 values per token
        check_size(
            f"NGramConfig(vocab_size={self.vocab_size})",
            self.vocab_size * (self.order + 8),
            bytes_each=8,
            unit="values",
        )


def _ids_1d(name: str, ids: Any, vocab_size: int) -> torch.Tensor:
    """A 1-D sequence of token ids (tensor, list, tuple or array; may be empty) as an int64 tensor.
    Floats are refused, not truncated; a 2-D prompt is refused, not flattened."""
    if ids is None:
        return torch.zeros(0, dtype=torch.long)
    try:
        t = ids if isinstance(ids, torch.Tensor) else torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a 1-D sequence of token ids (ints), got {type(ids).__name__}") from exc
    if t.numel() == 0 and t.dim() <= 1:
        return torch.zeros(0, dtype=torch.long)
    return check_token_ids(name, t, vocab_size, dims=(1,))


class _Counts:
    """Sorted codes of the m-grams seen, their counts, and per-context totals for one order m."""

    def __init__(self, codes: torch.Tensor, vocab_size: int) -> None:
        keys, counts = torch.unique(codes, return_counts=True)  # sorted m-gram codes (K,), (K,)
        self.keys, self.counts = keys, counts
        ctx = keys // vocab_size  # context code of each m-gram; sorted too
        self.ctx_keys, n_types = torch.unique_consecutive(ctx, return_counts=True)  # (H,), N1+(h .)
        self.ctx_types = n_types
        self.ctx_totals = torch.zeros(len(self.ctx_keys), dtype=torch.long).index_add_(
            0, torch.repeat_interleave(torch.arange(len(self.ctx_keys)), n_types), counts
        )  # c(h)

    @staticmethod
    def _lookup(keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if keys.numel() == 0:
            return torch.zeros_like(query)
        pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
        return torch.where(keys[pos] == query, values[pos], torch.zeros_like(values[pos]))

    def count(self, codes: torch.Tensor) -> torch.Tensor:
        return self._lookup(self.keys, self.counts, codes)

    def context(self, ctx_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c(h), N1+(h .)) for each context code."""
        return self._lookup(self.ctx_keys, self.ctx_totals, ctx_codes), self._lookup(
            self.ctx_keys, self.ctx_types, ctx_codes
        )


class NGram:
    """An n-gram language model over token ids. ``fit(ids)`` counts; then ``log_prob``, ``nll``,
    ``next_distribution`` and ``sample``. Not an ``nn.Module``: it has counts, not weights."""

    def __init__(self, cfg: NGramConfig) -> None:
        if not isinstance(cfg, NGramConfig):
            raise TypeError(f"NGram needs an NGramConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self._tables: list[_Counts] | None = None  # index m-1 holds the m-gram counts
        self.num_tokens = 0

    def _powers(self, m: int) -> torch.Tensor:
        return self.cfg.vocab_size ** torch.arange(m - 1, -1, -1, dtype=torch.long)  # (m,) V^(m-1) .. 1

    def fit(self, ids: torch.Tensor) -> NGram:
        """Count every m-gram (m = 1..n) of the 1-D token stream ``ids`` (N,). Returns self."""
        ids = check_token_ids("ids", ids, self.cfg.vocab_size, dims=(1,)).long().cpu()
        tables = []
        for m in range(1, self.cfg.order + 1):
            if ids.numel() >= m:
                codes = (ids.unfold(0, m, 1) * self._powers(m)).sum(dim=1)  # (N - m + 1,)
            else:
                codes = torch.zeros(0, dtype=torch.long)
            tables.append(_Counts(codes, self.cfg.vocab_size))
        self._tables, self.num_tokens = tables, ids.numel()
        return self

    @property
    def num_ngrams(self) -> int:
        """Stored distinct m-grams over all orders (the model's 'size')."""
        return sum(t.keys.numel() for t in self._check_fitted())

    def _check_fitted(self) -> list[_Counts]:
        if self._tables is None:
            raise RuntimeError("the model has no counts yet: call fit(ids) first")
        return self._tables

    def _prob(self, ctx: torch.Tensor, nctx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """p(w | context) for P queries. ctx (P, n-1) holds the previous tokens right-aligned,
        nctx (P,) how many of them are real (the rest is ignored); w (P,) the next tokens."""
        tables, V, n = self._check_fitted(), self.cfg.vocab_size, self.cfg.order
        P = w.shape[0]
        if self.cfg.smoothing == "add_k":
            m = (nctx + 1).clamp(max=n)  # order used by each query: longest available context
            prob = torch.empty(P, dtype=torch.float64)
            for order in range(1, n + 1):
                sel = m == order
                if not bool(sel.any()):
                    continue
                h = ctx[sel][:, n - order :] if order > 1 else ctx[sel][:, :0]  # (p, order-1)
                h_code = (
                    (h * self._powers(order - 1)).sum(dim=1) if order > 1 else torch.zeros(h.shape[0], dtype=torch.long)
                )
                c_hw = tables[order - 1].count(h_code * V + w[sel]).double()
                c_h = tables[order - 1].context(h_code)[0].double()
                prob[sel] = (c_hw + self.cfg.k) / (c_h + self.cfg.k * V)
            return prob
        prob = torch.full((P,), 1.0 / V, dtype=torch.float64)  # p_0: uniform
        for order in range(1, n + 1):
            h = ctx[:, n - order :] if order > 1 else ctx[:, :0]
            h_code = (h * self._powers(order - 1)).sum(dim=1) if order > 1 else torch.zeros(P, dtype=torch.long)
            c_hw = tables[order - 1].count(h_code * V + w).double()
            c_h, types = (t.double() for t in tables[order - 1].context(h_code))
            mixed = (c_hw + types * prob) / (c_h + types).clamp(min=1)
            usable = (nctx >= order - 1) & (c_h > 0)  # enough history and the context was seen
            prob = torch.where(usable, mixed, prob)
        return prob

    def _contexts(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each position t of ids (N,): the previous n-1 tokens (N, n-1), zero-padded, and
        how many are real (N,)."""
        n = self.cfg.order
        N = ids.numel()
        padded = torch.cat([torch.zeros(n - 1, dtype=torch.long), ids])  # (n-1+N,)
        ctx = padded.unfold(0, n, 1)[:, : n - 1] if n > 1 else torch.zeros(N, 0, dtype=torch.long)  # (N, n-1)
        return ctx, torch.arange(N).clamp(max=n - 1)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """Natural-log probability of each token given its predecessors: (N,) -> float64 (N,).

        The first token is predicted from an empty context, the second from one token, ...
        """
        ids = check_token_ids("ids", ids, self.cfg.vocab_size, dims=(1,)).long().cpu()
        ctx, nctx = self._contexts(ids)
        return self._prob(ctx, nctx, ids).log()

    def nll(self, ids: torch.Tensor) -> float:
        """Mean negative log-likelihood of ``ids`` in nats per token (cross-entropy)."""
        return float(-self.log_prob(ids).mean())

    def perplexity(self, ids: torch.Tensor) -> float:
        """exp(nll): the effective branching factor on ``ids``."""
        return float(torch.exp(-self.log_prob(ids).mean()))

    def next_distribution(self, context: Any = None) -> torch.Tensor:
        """p(. | context) over the whole vocabulary: float64 (V,) summing to 1.

        ``context`` is a 1-D tensor or list of previous ids (only the last n-1 matter; an empty
        or None context uses the unigram level).
        """
        self._check_fitted()
        n, V = self.cfg.order, self.cfg.vocab_size
        ctx = _ids_1d("context", context, V).cpu()
        ctx = ctx[max(0, ctx.numel() - (n - 1)) :] if n > 1 else ctx[:0]
        k = ctx.numel()
        row = torch.cat([torch.zeros(n - 1 - k, dtype=torch.long), ctx])  # right-aligned (n-1,)
        probs = self._prob(row.expand(V, n - 1), torch.full((V,), k), torch.arange(V))
        return probs / probs.sum()  # exact normalisation guards float64 rounding only

    def sample(
        self,
        n: int,
        *,
        prompt: Any = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """``n`` tokens drawn one by one after ``prompt`` -> 1-D LongTensor (prompt + n), through the
        loop every language model shares (:func:`genai_lib.sampling.generate_tokens`)."""
        self._check_fitted()
        out = _ids_1d("prompt", prompt, self.cfg.vocab_size).cpu()
        keep = self.cfg.order - 1

        def step(seq: torch.Tensor, _: Any) -> tuple[torch.Tensor, None]:
            history = seq[0, max(0, seq.shape[1] - keep) :] if keep else seq[0, :0]
            return self.next_distribution(history).float().log()[None], None  # -inf where p = 0 (add_k never)

        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        return generate_tokens(step, out[None], n, generator=generator, **sampling)[0]
