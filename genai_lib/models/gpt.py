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
memory-efficient kernels where available); AdamW is fused on CUDA and ``foreach`` on CPU;
:func:`train_gpt` adds bf16 autocast (via ``train.fit``) and optional ``torch.compile``.

Shape legend: B batch, T sequence length (<= block_size), C = n_embd, nh heads,
hs = C / nh head size, V vocabulary size, L layers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_positive
from genai_lib.sampling import check_generation, choose_next, eval_mode
from genai_lib.tokenizer import check_token_ids

__all__ = [
    "GPTConfig",
    "GPT",
    "Block",
    "CausalSelfAttention",
    "KVCache",
    "flops_per_token",
    "estimate_mfu",
    "train_gpt",
    "rope_tables",
    "apply_rope",
]


Rope = tuple[torch.Tensor, torch.Tensor] | None  # rotary (cos, sin) tables for the current positions


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


def rope_tables(n_pos: int, head_size: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (n_pos, head_size / 2) of rotary position embeddings (Su et al. 2021).

    Pair i of a query or key at position t is rotated by the angle t * base^(-2i / head_size):
    the dot product of a rotated query at t and a rotated key at s then depends on t - s only.
    """
    check_positive("n_pos", n_pos)
    if head_size % 2 or head_size <= 0:
        raise ValueError(f"head_size must be a positive even number, got {head_size}")
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
        if n_embd % n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got {n_embd} and {n_head}")
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor, rope: Rope = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        shape = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # 3 x (B, nh, T, hs)
        if rope is not None:  # rotary positions: rotate queries and keys by their position's angle
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

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


class Block(nn.Module):
    """Pre-norm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x)); (B, T, C) -> (B, T, C)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),  # (B, T, 4C)
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),  # (B, T, C)
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, rope: Rope = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
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
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):  # residual projections
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
            return idx
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
            x = x + block.mlp[:3](block.ln_2(x))
        return maps

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
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Continue idx (B, T) by ``max_new_tokens`` tokens -> (B, T + max_new_tokens).

        ``greedy=True`` takes the argmax (temperature/top-k/top-p are then ignored); otherwise
        tokens are drawn by :func:`genai_lib.sampling.sample_next`. A prompt longer than
        ``block_size`` is cropped to its last ``block_size`` tokens for conditioning (the output
        still starts with the whole prompt). With ``use_cache`` (default) each step feeds only
        the new token and reuses cached keys/values; when the cache is full (block_size
        positions) it is rebuilt from the last 3/4 * block_size tokens, so the cost stays linear
        in the number of new tokens. Up to block_size total positions, the cached and the
        uncached (``use_cache=False``: recompute the last block_size tokens every step) results
        are identical. Runs in eval mode (dropout off) and restores the mode afterwards.
        """
        idx = self._check_idx(idx)
        check_generation(max_new_tokens, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        with eval_mode(self):
            return self._generate(idx, max_new_tokens, temperature, top_k, top_p, generator, greedy, use_cache)

    def _generate(self, idx, max_new_tokens, temperature, top_k, top_p, generator, greedy, use_cache) -> torch.Tensor:
        block = self.cfg.block_size
        out = idx
        if max_new_tokens == 0:
            return out

        def choose(logits: torch.Tensor) -> torch.Tensor:  # (B, V) -> (B, 1)
            return choose_next(
                logits, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )

        if not use_cache:
            for _ in range(max_new_tokens):
                h = self._hidden(out[:, -block:])  # (B, T, C): the whole context, every step
                out = torch.cat([out, choose(self.lm_head(h[:, -1]).float())], dim=1)
            return out

        C, nh = self.cfg.n_embd, self.cfg.n_head
        dtype = self.wte.weight.dtype
        if torch.is_autocast_enabled(idx.device.type):
            dtype = torch.get_autocast_dtype(idx.device.type)
        cache = KVCache(self.cfg.n_layer, idx.shape[0], nh, block, C // nh, device=idx.device, dtype=dtype)
        keep = max(1, block - max(1, block // 4))  # context kept when the cache is rebuilt
        logits = self.lm_head(self._hidden(out[:, -block:], cache)[:, -1]).float()  # (B, V)
        for i in range(max_new_tokens):
            nxt = choose(logits)  # (B, 1)
            out = torch.cat([out, nxt], dim=1)
            if i == max_new_tokens - 1:
                break
            if cache.pos == block:  # no room for a new position: re-encode a shorter window
                cache.reset()
                logits = self.lm_head(self._hidden(out[:, -keep:], cache)[:, -1]).float()
            else:
                logits = self.lm_head(self._hidden(nxt, cache)[:, -1]).float()
        return out

    def sample(
        self,
        n: int,
        *,
        prompt: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **sampling: Any,
    ) -> torch.Tensor:
        """``n`` new token ids after ``prompt`` (1-D ids; default: the single token 0) -> 1-D
        LongTensor (prompt + n) on the CPU, ready for ``tokenizer.decode``. ``sampling``:
        temperature, top_k, top_p, greedy, use_cache (see :meth:`generate`)."""
        device = self.wte.weight.device
        if prompt is None:
            prompt = torch.zeros(1, dtype=torch.long)
        prompt = check_token_ids("prompt", prompt, self.cfg.vocab_size, dims=(1,))
        return self.generate(prompt[None].to(device), n, generator=generator, **sampling)[0].cpu()

    def configure_optimizers(
        self,
        weight_decay: float = 0.1,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        device_type: str | None = None,
    ) -> torch.optim.AdamW:
        """AdamW with decoupled weight decay on matrices (Linear weights and embeddings, dim >= 2)
        and none on LayerNorm weights and biases (dim < 2). Fused kernel on CUDA, ``foreach``
        (multi-tensor) elsewhere."""
        check_positive("lr", lr, integer=False)
        check_positive("weight_decay", weight_decay, integer=False, allow_zero=True)
        device_type = device_type or next(self.parameters()).device.type
        params = [p for p in self.parameters() if p.requires_grad]  # the tied matrix appears once
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        extra = {"fused": True} if device_type == "cuda" else {"foreach": True}
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


def train_gpt(
    model: GPT,
    ids: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 12,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup: int = 100,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    grad_clip: float | None = 1.0,
    compile: bool = False,
    generator: torch.Generator | None = None,
    val_ids: torch.Tensor | None = None,
    val_every: int | None = None,
    log_every: int = 10,
    name: str | None = None,
    key: Any = None,
    **fit_kwargs: Any,
) -> Any:
    """Train on random windows of the 1-D token stream ``ids`` with ``train.fit``: AdamW from
    :meth:`GPT.configure_optimizers`, linear warm-up then cosine decay from ``lr`` to ``min_lr``,
    gradient clipping, bf16 autocast on CUDA. ``compile=True`` (CUDA) compiles the model in place
    with ``torch.compile``. With ``name``, the run goes through ``train.load_or_train``: cached
    weights for the same config, arguments and ``key`` are loaded instead of retrained. Returns
    ``fit``'s History (``val`` holds held-out loss when ``val_ids`` is given)."""
    from genai_lib.text import text_loader
    from genai_lib.train import cosine_schedule, fit, load_or_train

    check_positive("steps", steps)
    check_positive("min_lr", min_lr, integer=False)
    if min_lr > lr:
        raise ValueError(f"min_lr must be <= lr, got min_lr={min_lr}, lr={lr}")
    block = model.cfg.block_size
    loader = text_loader(ids, block, batch_size, steps_per_epoch=min(steps, 1000), generator=generator)
    val_loader = None
    if val_ids is not None:
        val_gen = torch.Generator().manual_seed(1234)
        val_loader = text_loader(val_ids, block, batch_size, steps_per_epoch=20, generator=val_gen)
    if compile:
        model.compile()
    opt = model.configure_optimizers(weight_decay, lr, betas)
    run = fit if name is None else functools.partial(load_or_train, name=name, key=key)
    return run(
        model,
        loader,
        steps=steps,
        optimizer=opt,
        lr=lr,
        lr_schedule=cosine_schedule(warmup, steps, final=min_lr / lr),
        grad_clip=grad_clip,
        val_loader=val_loader,
        val_every=val_every,
        log_every=log_every,
        **fit_kwargs,
    )
