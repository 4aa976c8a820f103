"""A decoder-only Transformer language model (GPT; Radford et al. 2018, 2019).

Chapter 8 of the course. Attention follows Vaswani et al. 2017, *Attention Is All You Need*,
eq. 1, with the scaling *inside* the softmax and a causal mask (token t sees tokens <= t):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V,   M_ij = 0 if j <= i else -inf

Each block is pre-norm (GPT-2): x = x + Attn(LN(x)); x = x + MLP(LN(x)). The output layer shares
its weights with the token embedding (Press & Wolf 2017), initialisation is GPT-2's (N(0, 0.02),
residual projections scaled by 1/sqrt(2 L)). Training minimises the autoregressive negative
log-likelihood -sum_t log p(x_t | x_<t) in nats per token. Generation keeps a key/value cache
so each new token costs one position's work, not the whole prefix's.

Speed: attention runs through ``F.scaled_dot_product_attention(is_causal=True)`` (flash /
memory-efficient kernels where available); AdamW runs as one fused kernel (CUDA and CPU);
``genai_lib.recipes.language.train_gpt`` trains it through the core (bf16 autocast on CUDA,
optional ``torch.compile``).

Shape legend: B batch, T sequence length (<= block_size), C = n_embd, nh heads,
hs = C / nh head size, V vocabulary size, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_positive, check_size, plain_fields
from genai_lib.models.attention import CausalSelfAttention, KVCache, Rope, rope_tables
from genai_lib.sampling import TokenGenerator
from genai_lib.tokenizer import check_token_ids

__all__ = [
    "GPTConfig",
    "GPT",
    "Block",
    "MLP",
    "flops_per_token",
    "estimate_mfu",
    "extend_vocab",
]


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a :class:`GPT` (defaults: the course's CPU benchmark model)."""

    vocab_size: int  # V: number of token ids (e.g. CharTokenizer.vocab_size)
    block_size: int = 64  # longest context the model sees (learned positions 0..block_size-1)
    n_layer: int = 4  # L: Transformer blocks
    n_head: int = 4  # nh: attention heads per block
    n_embd: int = 128  # C: width of the residual stream; must be divisible by n_head
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches
    bias: bool = False  # biases in Linear and LayerNorm layers (GPT-2 had them; without is a bit faster)
    pos: str = "learned"  # positions: "learned" embeddings added to the input (GPT-2) or "rope" (rotary, Su et al.)
    tie_weights: bool = True  # share the (V, C) token embedding with the output layer (Press & Wolf 2017)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={self.n_embd}, n_head={self.n_head}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"dropout must be a number, got {type(self.dropout).__name__}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"bias must be a bool, got {type(self.bias).__name__}")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"tie_weights must be a bool, got {type(self.tie_weights).__name__}")
        if self.pos not in ("learned", "rope"):
            raise ValueError(f"pos must be 'learned' or 'rope', got {self.pos!r}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"pos='rope' needs an even head size n_embd / n_head, got {self.n_embd // self.n_head}")
        C = self.n_embd
        check_size(
            "GPTConfig",
            (1 + (not self.tie_weights)) * self.vocab_size * C + self.block_size * C + 12 * self.n_layer * C * C,
        )


class MLP(nn.Module):
    """The position-wise feed-forward layer: (B, T, C) -> (B, T, 4C) -> GELU -> (B, T, C)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)  # (B, T, 4C)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)  # (B, T, C): a residual projection
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x)); (B, T, C) -> (B, T, C)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg.n_embd, cfg.dropout, cfg.bias)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, rope: Rope = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(TokenGenerator, nn.Module):
    """Decoder-only Transformer. ``forward(idx, targets) -> (logits, loss)``; see the module docstring."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # token embedding (V, C)
        if cfg.pos == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # learned positions (block_size, C)
        else:  # rotary: fixed tables, not parameters (and not saved in the state dict)
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, hs/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # weight tying: one (V, C) matrix in and out
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # the residual projections of attention and MLP
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (the tied matrix counted once); ``non_embedding`` drops the positions."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and self.cfg.pos == "learned" else n

    def _check_idx(self, idx: Any, name: str = "idx") -> torch.Tensor:
        if (
            isinstance(idx, torch.Tensor)
            and idx.dim() == 2
            and not idx.is_floating_point()
            and (idx.device.type != "cpu" or torch.compiler.is_compiling())
        ):
            # Skip the range check on accelerators (it would sync every step) and inside
            # torch.compile (its .item() would break the graph); the embedding still fails on a bad id.
            return idx if idx.dtype == torch.long else idx.long()
        return check_token_ids(name, idx, self.cfg.vocab_size, dims=(2,))

    def _hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Token ids (B, T) -> final hidden states (B, T, C), positions continuing the cache."""
        start = cache.pos if cache is not None else 0
        x, rope = self._embed(idx, start)  # (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, rope)
        if cache is not None:
            cache.pos += idx.shape[1]
        return self.ln_f(x)

    def _embed(self, idx: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, Rope]:
        """Token ids (B, T) at positions start.. -> embeddings (B, T, C) and the rotary tables (or None)."""
        end = start + idx.shape[1]
        if self.cfg.pos == "learned":
            return self.wte(idx) + self.wpe(torch.arange(start, end, device=idx.device)), None
        return self.wte(idx), (self.rope_cos[start:end], self.rope_sin[start:end])

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids, T <= block_size -> logits (B, T, V) and, with targets (B, T), the
        mean cross-entropy in nats per token (else None). Longer inputs raise ValueError."""
        idx = self._check_idx(idx)
        if idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence length {idx.shape[1]} exceeds block_size={self.cfg.block_size}; crop the input")
        logits = self.lm_head(self._hidden(idx))  # (B, T, V)
        loss = None
        if targets is not None:
            targets = self._check_idx(targets, "targets")
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))
        return logits, loss

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch = (x, y) of token ids (B, T): mean next-token NLL in nats (for ``train.fit``)."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("GPT.loss expects a batch (x, y) of token-id tensors")
        _, loss = self(batch[0], batch[1])
        return loss, {}

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for idx (B, T): a list of L tensors (B, nh, T, T).

        Row t of a head's map is the distribution over positions <= t that token t attends to.
        """
        idx = self._check_idx(idx)
        if idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence length {idx.shape[1]} exceeds block_size={self.cfg.block_size}")
        x, rope = self._embed(idx)  # (B, T, C), eval: no dropout
        maps = []
        for block in self.blocks:
            y, w = block.attn.forward_with_weights(block.ln_1(x), rope)
            maps.append(w)
            x = x + y
            x = x + block.mlp(block.ln_2(x))  # eval mode: dropout is off
        return maps

    def _check_ids(self, idx: Any, name: str, dims: tuple[int, ...] = (2,)) -> torch.Tensor:
        return (
            self._check_idx(idx, name) if dims == (2,) else check_token_ids(name, idx, self.cfg.vocab_size, dims=dims)
        )

    def _decode_step(self, use_cache: bool = True) -> Any:
        """The step of :meth:`generate` (from :class:`~genai_lib.sampling.TokenGenerator`).

        A prompt longer than ``block_size`` is cropped to its last ``block_size`` tokens for
        conditioning (the output still starts with the whole prompt). With ``use_cache`` (default)
        each step feeds only the new token and reuses cached keys/values; when the cache is full
        (block_size positions) it is rebuilt from the last 3/4 * block_size tokens, so the cost
        stays linear in the number of new tokens. Up to block_size total positions the cached and
        the uncached (``use_cache=False``: recompute the last block_size tokens every step) results
        are identical.
        """
        if not isinstance(use_cache, (bool, int)):
            raise TypeError(f"use_cache must be True or False, got {type(use_cache).__name__}")
        block = self.cfg.block_size
        keep = max(1, block - max(1, block // 4))  # context kept when the full cache is rebuilt

        def uncached(out: torch.Tensor, _: Any) -> tuple[torch.Tensor, None]:
            return self.lm_head(self._hidden(out[:, -block:])[:, -1]), None  # the whole context, every step

        def cached(out: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
            if cache is None:  # read the prompt (its last block_size tokens)
                cache = self._new_cache(out)
                new = out[:, -block:]
            elif cache.pos == block:  # no room for a new position: re-encode a shorter window
                cache.reset()
                new = out[:, -keep:]
            else:  # one new token: one position's work
                new = out[:, -1:]
            return self.lm_head(self._hidden(new, cache)[:, -1]), cache

        return cached if use_cache else uncached

    def _new_cache(self, idx: torch.Tensor) -> KVCache:
        C, nh = self.cfg.n_embd, self.cfg.n_head
        dtype = self.wte.weight.dtype
        if torch.is_autocast_enabled(idx.device.type):
            dtype = torch.get_autocast_dtype(idx.device.type)
        return KVCache(self.cfg.n_layer, idx.shape[0], nh, self.cfg.block_size, C // nh, device=idx.device, dtype=dtype)

    def configure_optimizers(
        self,
        weight_decay: float = 0.1,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        device_type: str | None = None,
    ) -> torch.optim.AdamW:
        """AdamW with decoupled weight decay on matrices (Linear weights and embeddings, dim >= 2)
        and none on LayerNorm weights and biases (dim < 2). One fused kernel on CUDA and CPU
        (on CPU about 8% faster per training step than ``foreach`` at the benchmark config,
        measured 2026-12-02), ``foreach`` (multi-tensor) elsewhere."""
        check_positive("lr", lr, integer=False)
        check_positive("weight_decay", weight_decay, integer=False, allow_zero=True)
        if not (
            isinstance(betas, (tuple, list))
            and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        lr, weight_decay, betas = float(lr), float(weight_decay), (float(betas[0]), float(betas[1]))
        device_type = device_type or next(self.parameters()).device.type
        params = [p for p in self.parameters() if p.requires_grad]  # the tied matrix appears once
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        extra = {"fused": True} if device_type in ("cuda", "cpu") else {"foreach": True}
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **extra)


def flops_per_token(cfg: GPTConfig) -> int:
    """Training FLOPs per token, 6N + 12 L C T (Kaplan et al. 2020; PaLM appendix B).

    N counts the non-embedding-position parameters (the tied token matrix is counted: it does
    the output projection). 6N is forward (2N) plus backward (4N) of the matrix multiplies;
    12 L C T is attention's QK^T and AV products at context length T = block_size.
    """
    C, L, b = cfg.n_embd, cfg.n_layer, int(cfg.bias)
    n = L * (12 * C * C + 2 * C + 11 * C * b) + C * (1 + b) + cfg.vocab_size * C
    return 6 * n + 12 * L * C * cfg.block_size


def estimate_mfu(cfg: GPTConfig, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s divided by the device's peak FLOP/s."""
    check_positive("tokens_per_s", tokens_per_s, integer=False, allow_zero=True)
    check_positive("peak_flops", peak_flops, integer=False)
    return flops_per_token(cfg) * tokens_per_s / peak_flops


def extend_vocab(model: GPT, vocab_size: int, *, like: int, noise: float = 0.01, generator: Any = None) -> GPT:
    """A copy of ``model`` with ``vocab_size`` token ids: the old ids keep their rows, every new
    id starts as a copy of row ``like`` (e.g. the unknown character, which a trained model has
    learnt never to predict) plus N(0, noise^2) so the new tokens start improbable and distinct.
    With tied weights the output layer grows with the embedding. Weights only: no training."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    old = model.cfg.vocab_size
    check_positive("vocab_size", vocab_size)
    if vocab_size < old:
        raise ValueError(f"vocab_size must be >= the model's {old}, got {vocab_size}")
    if isinstance(like, bool) or not isinstance(like, int) or not 0 <= like < old:
        raise ValueError(f"like must be an old token id in [0, {old - 1}], got {like!r}")
    check_positive("noise", noise, integer=False, allow_zero=True)
    if not model.cfg.tie_weights:
        raise ValueError("extend_vocab needs tie_weights=True (one matrix for input and output)")
    new = GPT(replace(model.cfg, vocab_size=vocab_size)).to(model.wte.weight.device)
    state = {k: v for k, v in model.state_dict().items() if k not in ("wte.weight", "lm_head.weight")}
    new.load_state_dict(state, strict=False)
    with torch.no_grad():
        w = model.wte.weight
        new.wte.weight[:old] = w
        extra = torch.randn(vocab_size - old, w.shape[1], generator=generator, device="cpu")
        new.wte.weight[old:] = w[like] + noise * extra.to(w.device, w.dtype)
    return new
