"""Causal self-attention (chapter 8.1), with rotary positions and a key/value cache.

Vaswani et al. 2017, *Attention Is All You Need*, eq. 1, with the scaling *inside* the softmax
and a causal mask (token t sees tokens <= t):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V,   M_ij = 0 if j <= i else -inf

Rotary position embeddings (Su et al. 2021) rotate queries and keys by an angle proportional
to their position, so their dot product depends on the distance between them only. The
:class:`KVCache` keeps the keys and values of the positions already seen, so generation costs
one position's work per new token. :mod:`genai_lib.models.gpt` stacks these layers.

Shape legend: B batch, T sequence length, C width, nh heads, hs = C / nh head size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_positive, check_size

__all__ = ["rope_tables", "apply_rope", "KVCache", "CausalSelfAttention", "Rope"]

Rope = tuple[torch.Tensor, torch.Tensor] | None  # rotary (cos, sin) tables for the current positions


def rope_tables(n_pos: int, head_size: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (n_pos, head_size / 2) of rotary position embeddings (Su et al. 2021).

    Pair i of a query or key at position t is rotated by the angle t * base^(-2i / head_size):
    the dot product of a rotated query at t and a rotated key at s then depends on t - s only.
    """
    check_positive("n_pos", n_pos)
    check_positive("head_size", head_size)
    check_positive("base", base, integer=False)
    if head_size % 2:
        raise ValueError(f"head_size must be a positive even number, got {head_size}")
    check_size("rope_tables", n_pos * head_size, bytes_each=8, unit="values")
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)  # (hs/2,)
    angles = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv_freq  # (n_pos, hs/2)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hs) queries or keys: halves (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).

    cos, sin: (T, hs / 2) rows of :func:`rope_tables` for the T positions of x.
    """
    x1, x2 = x.chunk(2, dim=-1)  # 2 x (B, nh, T, hs/2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class KVCache:
    """Keys and values of the positions seen so far, preallocated for ``max_len`` positions.

    ``k[l]``, ``v[l]``: (B, nh, max_len, hs) for layer l; positions ``[0, pos)`` are filled.
    """

    def __init__(
        self, n_layer: int, batch: int, n_head: int, max_len: int, head_size: int, *, device: Any, dtype: Any
    ) -> None:
        shape = (n_layer, batch, n_head, max_len, head_size)
        for name, size in zip(("n_layer", "batch", "n_head", "max_len", "head_size"), shape, strict=True):
            check_positive(name, size)
        check_size("KVCache", 2 * math.prod(shape), unit="values")
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0  # number of cached positions

    def reset(self) -> None:
        self.pos = 0


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: (B, T, C) -> (B, T, C).

    ``c_attn`` maps x to queries, keys and values for all heads at once (C -> 3C); ``c_proj``
    mixes the heads' outputs. Three paths, equal up to float rounding: SDPA with
    ``is_causal=True`` (training), SDPA against a :class:`KVCache` (generation), and an explicit
    softmax(Q K^T / sqrt(hs) + M) that also returns the attention weights (for plots).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        check_positive("n_embd", n_embd)
        check_positive("n_head", n_head)
        if n_embd % n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got {n_embd} and {n_head}")
        check_size("CausalSelfAttention", 4 * n_embd * n_embd)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): queries, keys and values side by side
        if rope is None:
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in qkv.split(C, dim=2))  # 3 x (B, nh, T, hs)
            return q, k, v
        # rotary positions: rotate queries and keys by their position's angle, both in one call
        qk, v = qkv.split([2 * C, C], dim=2)  # a split (not slices): its backward is one cat, no zero-fill
        qk = qk.unflatten(-1, (2 * nh, hs)).transpose(1, 2)  # (B, 2nh, T, hs)
        q, k = apply_rope(qk, *rope).split(nh, dim=1)  # 2 x (B, nh, T, hs)
        return q, k, v.unflatten(-1, (nh, hs)).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, rope: Rope = None) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C). With ``cache``, x holds the T *new* positions only.
        ``rope``: (cos, sin) tables (T, hs/2) for these T positions, or None (learned positions)."""
        B, T, C = x.shape
        q, k, v = self._heads(x, rope)  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, nh, T, hs)
        else:
            start, end = cache.pos, cache.pos + T
            if end > cache.max_len:
                raise ValueError(f"the KV-cache holds {cache.max_len} positions; cannot add {T} at position {start}")
            cache.k[layer, :, :, start:end] = k
            cache.v[layer, :, :, start:end] = v
            k_all, v_all = cache.k[layer, :, :, :end], cache.v[layer, :, :, :end]  # (B, nh, end, hs)
            if start == 0:
                y = F.scaled_dot_product_attention(q, k_all, v_all, is_causal=True)
            elif T == 1:  # one new query may look at every cached position
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:  # new query i sits at position start + i and sees keys j <= start + i
                allowed = torch.ones(T, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=allowed)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_drop(self.c_proj(y))

    def forward_with_weights(self, x: torch.Tensor, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit formula: returns (output (B, T, C), attention weights (B, nh, T, T))."""
        B, T, C = x.shape
        q, k, v = self._heads(x, rope)  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])  # (B, nh, T, T)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # rows sum to 1
        y = (weights @ v).transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y), weights
