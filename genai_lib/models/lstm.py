"""An LSTM language model (Hochreiter & Schmidhuber 1997), trained on every position.

Chapter 7 of the course: the source articles' ``TextGenerator`` done right. The articles feed a
window of characters and train on the *last* position only, so each window gives one training
signal; here the LSTM predicts token t+1 at every position t of the window (T signals per
window, the same loss as a Transformer's):

    h_t, c_t = LSTM(e(x_t), (h_{t-1}, c_{t-1})),   p(x_{t+1} | x_<=t) = softmax(W h_t + b)

Training with truncated back-propagation through time (TBPTT; Williams & Peng 1990,
``genai_lib.recipes.language.train_lstm``): the corpus is cut into B parallel streams,
consecutive windows continue each other, and the final state of one window (detached from the
graph) is the initial state of the next, so the model learns to use context longer than a
window while gradients flow back at most T steps. Optional weight
tying shares the embedding and output matrices (Press & Wolf 2017; Inan et al. 2017).

Shape legend: B batch, T window length, E = n_embd, H = hidden, L = n_layers, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import as_dtype_of, check_positive, check_size, plain_fields
from genai_lib.sampling import TokenGenerator
from genai_lib.tokenizer import check_token_ids

__all__ = ["LSTMConfig", "LSTMLM"]

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H)


@dataclass(frozen=True)
class LSTMConfig:
    """Hyper-parameters of an :class:`LSTMLM`."""

    vocab_size: int  # V: number of token ids
    n_embd: int = 64  # E: token embedding size
    hidden: int = 256  # H: LSTM state size
    n_layers: int = 2  # L: stacked LSTM layers
    dropout: float = 0.0  # dropout on embeddings, between layers and before the output layer
    tie_weights: bool = False  # share the (V, E) embedding with the output layer (adds an H -> E projection if H != E)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("vocab_size", "n_embd", "hidden", "n_layers"):
            check_positive(name, getattr(self, name))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"dropout must be a number, got {type(self.dropout).__name__}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"tie_weights must be a bool, got {type(self.tie_weights).__name__}")
        V, E, H, L = self.vocab_size, self.n_embd, self.hidden, self.n_layers
        check_size("LSTMConfig", V * E + 4 * H * (E + H) + (L - 1) * 8 * H * H + H * E + V * H)


class LSTMLM(TokenGenerator, nn.Module):
    """Embedding -> L-layer LSTM -> (projection) -> output logits at every position."""

    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        if not isinstance(cfg, LSTMConfig):
            raise TypeError(f"LSTMLM needs an LSTMConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # (V, E)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(
            cfg.n_embd, cfg.hidden, cfg.n_layers, batch_first=True, dropout=cfg.dropout if cfg.n_layers > 1 else 0.0
        )
        out_dim = cfg.hidden
        self.proj: nn.Module = nn.Identity()
        if cfg.tie_weights and cfg.hidden != cfg.n_embd:
            self.proj = nn.Linear(cfg.hidden, cfg.n_embd)  # H -> E so the (V, E) matrix fits
            out_dim = cfg.n_embd
        self.head = nn.Linear(out_dim, cfg.vocab_size)
        if cfg.tie_weights:
            self.head.weight = self.embed.weight

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        """idx (B, T) ids -> (logits (B, T, V), loss or None, state).

        ``state`` is the (h, c) pair, each (L, B, H), to continue from (zeros if None); the
        returned state is the one after the last position (attached to the graph: detach it
        before reusing it across optimizer steps). ``loss`` is the mean next-token NLL in nats
        over all B*T positions when ``targets`` (B, T) is given.
        """
        idx = check_token_ids("idx", idx, self.cfg.vocab_size, dims=(2,))
        if state is not None:
            state = self._check_state(state, idx.shape[0])
        x = self.drop(self.embed(idx))  # (B, T, E)
        out, state = self.lstm(x, state)  # (B, T, H)
        logits = self.head(self.proj(self.drop(out)))  # (B, T, V)
        loss = None
        if targets is not None:
            targets = check_token_ids("targets", targets, self.cfg.vocab_size, dims=(2,))
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        return logits, loss, state

    def _check_state(self, state: Any, batch: int) -> State:
        """(h, c), each (L, B, H) floating: converted to the model's dtype and device (float64 states too)."""
        if not (
            isinstance(state, (tuple, list)) and len(state) == 2 and all(isinstance(t, torch.Tensor) for t in state)
        ):
            raise TypeError(f"state must be a pair (h, c) of tensors or None, got {type(state).__name__}")
        h, c = state
        want = (self.cfg.n_layers, batch, self.cfg.hidden)
        if tuple(h.shape) != want or tuple(c.shape) != want:
            raise ValueError(f"state must be (h, c) each of shape {want}, got {tuple(h.shape)} and {tuple(c.shape)}")
        weight = self.embed.weight
        return as_dtype_of("state h", h, weight), as_dtype_of("state c", c, weight)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch = (x, y) ids (B, T): mean next-token NLL in nats from a zero state (for ``fit``)."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("LSTMLM.loss expects a batch (x, y) of token-id tensors")
        _, loss, _ = self(batch[0], batch[1])
        return loss, {}

    def _check_ids(self, idx: Any, name: str, dims: tuple[int, ...] = (2,)) -> torch.Tensor:
        return check_token_ids(name, idx, self.cfg.vocab_size, dims=dims)

    def _decode_step(self) -> Any:
        """The step of :meth:`generate` (from :class:`~genai_lib.sampling.TokenGenerator`): the
        prompt is read once (any length: an RNN has no context limit), then each new token is fed
        with the carried state, so the cost is linear in the number of tokens."""

        def step(out: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
            new = out if state is None else out[:, -1:]  # the prompt once, then one token with the carried state
            logits, _, state = self(new, state=state)
            return logits[:, -1], state

        return step
