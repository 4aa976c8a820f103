"""Making a trained network smaller and cheaper: quantisation, pruning and distillation (chapter 18).

- **Quantisation.** :func:`dynamic_int8` is PyTorch's post-training dynamic quantisation of the
  ``nn.Linear`` layers (int8 weights, activations quantised on the fly; ``torch.ao``).
  :func:`quantize_groupwise` is weight-only symmetric quantisation written out: each row of a
  weight matrix is cut into groups of ``group_size`` columns, and each group g gets its own scale
  s_g = max_j |w_j| / q_max with q_max = 2^(bits-1) - 1 (127 for int8, 7 for int4), so
  q_j = round(w_j / s_g) in [-q_max, q_max] and the error |w_j - s_g q_j| <= s_g / 2.
  :func:`quantize_weights` swaps every linear and embedding matrix of a model for a
  :class:`GroupQuantWeight` that stores the integers (int4: two per byte) and the scales and
  dequantises on the fly; :func:`serialized_bytes` is the size of what ``torch.save`` writes.
- **Pruning.** :func:`magnitude_masks` keeps the largest weights of each matrix (unstructured) or
  its rows of largest L2 norm (structured), so that exactly the requested fraction is zero;
  :class:`MaskHook` re-applies the masks after each optimizer step (fine-tuning with the mask
  held) and saves them in training checkpoints.
- **Distillation** (Hinton et al. 2015): :func:`distillation_loss` is
  alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) CE(z_s, y); the T^2 keeps the
  soft-target gradients, T (q_s - p_t) / T^2 per logit, on the scale of the hard-target ones.
- **Memory and speed:** :func:`saved_tensor_bytes` measures what autograd keeps for the backward
  pass, :func:`checkpoint_blocks` recomputes each block in the backward pass instead (activation
  checkpointing, Chen et al. 2016), :func:`forward_tokens_per_s` times inference.

Shape legend: N rows (output features), K columns (input features), G = K / group_size groups.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from genai_lib._checks import check_positive
from genai_lib.utils import eval_mode

__all__ = [
    "check_bits",
    "quantize_groupwise",
    "dequantize_groupwise",
    "pack_int4",
    "unpack_int4",
    "GroupQuantWeight",
    "QuantLinear",
    "QuantEmbedding",
    "quantize_weights",
    "dynamic_int8",
    "linear_fraction",
    "serialized_bytes",
    "prunable_weights",
    "magnitude_masks",
    "apply_masks_",
    "weight_sparsity",
    "MaskHook",
    "distillation_loss",
    "KDLoss",
    "saved_tensor_bytes",
    "checkpoint_blocks",
    "forward_tokens_per_s",
]


# --------------------------------------------------------------------------- quantisation


def check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    return int(bits)


def _check_groups(w: torch.Tensor, bits: int, group_size: Any, what: str = "weight") -> None:
    check_positive("group_size", group_size)
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"{what} must be a 2-D floating-point tensor (N, K), got {getattr(w, 'shape', w)!r}")
    k = w.shape[1]
    if k % group_size:
        raise ValueError(f"group_size must divide the width K={k} of the {what}, got group_size={group_size}")
    if bits == 4 and group_size % 2:
        raise ValueError(f"group_size must be even for int4 (two values per byte), got {group_size}")


def quantize_groupwise(w: torch.Tensor, bits: int = 8, group_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """w (N, K) -> (q (N, K) int8 in [-q_max, q_max], scales (N, G) float32); see the module docstring."""
    bits = check_bits(bits)
    _check_groups(w, bits, group_size)
    qmax = 2 ** (bits - 1) - 1
    n, k = w.shape
    groups = w.detach().float().reshape(n, k // group_size, group_size)
    amax = groups.abs().amax(-1)  # (N, G)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))  # an all-zero group: any scale works
    q = torch.round(groups / scale[..., None]).clamp(-qmax, qmax).to(torch.int8)
    return q.reshape(n, k), scale


def dequantize_groupwise(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (N, K) integers and scales (N, G) -> the float32 weights s_g q_j (N, K)."""
    n, k = q.shape
    g = scale.shape[1]
    if scale.shape[0] != n or k % g:
        raise ValueError(f"scales of shape {tuple(scale.shape)} do not fit integers of shape {tuple(q.shape)}")
    return (q.reshape(n, g, k // g).float() * scale[..., None]).reshape(n, k)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """int8 values in [-8, 7], (N, K) with K even -> uint8 (N, K/2): two 4-bit values per byte."""
    if q.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last dimension, got {tuple(q.shape)}")
    u = (q.to(torch.int16) + 8).to(torch.uint8)  # offset binary: 0..15
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pack_int4`: uint8 (N, K/2) -> int8 (N, K)."""
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack((low, high), -1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


class GroupQuantWeight(nn.Module):
    """A weight matrix stored as group-wise integers and scales (buffers), dequantised on call."""

    def __init__(self, w: torch.Tensor, bits: int = 8, group_size: int = 64) -> None:
        super().__init__()
        q, scale = quantize_groupwise(w, bits, group_size)
        self.bits, self.group_size, self.shape = bits, group_size, tuple(w.shape)
        self.register_buffer("qweight", pack_int4(q) if bits == 4 else q)  # int8 (N, K) or uint8 (N, K/2)
        self.register_buffer("scale", scale)  # float32 (N, G)

    def forward(self) -> torch.Tensor:
        q = unpack_int4(self.qweight) if self.bits == 4 else self.qweight
        return dequantize_groupwise(q, self.scale)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, bits={self.bits}, group_size={self.group_size}"


class QuantLinear(nn.Module):
    """``nn.Linear`` with a :class:`GroupQuantWeight` (which a tied embedding may share)."""

    def __init__(self, weight: GroupQuantWeight, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight_q = weight
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_q().to(x.dtype), self.bias)


class QuantEmbedding(nn.Module):
    """``nn.Embedding`` with a :class:`GroupQuantWeight`: looks rows up in the dequantised table."""

    def __init__(self, weight: GroupQuantWeight) -> None:
        super().__init__()
        self.weight_q = weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.weight_q())


def quantize_weights(model: nn.Module, bits: int = 8, group_size: int = 64, *, embeddings: bool = True) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` (and, with ``embeddings``, ``nn.Embedding``) weights
    are group-wise ``bits``-bit integers; a matrix shared by two layers (tied weights) stays shared.
    Every matrix's width must be a multiple of ``group_size``."""
    bits = check_bits(bits)
    check_positive("group_size", group_size)
    model = copy.deepcopy(model)
    kinds = (nn.Linear, nn.Embedding) if embeddings else (nn.Linear,)
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    for name, m in targets:
        _check_groups(m.weight, bits, group_size, what=f"weight of {name}")
    shared: dict[int, GroupQuantWeight] = {}
    for name, m in targets:
        key = id(m.weight)
        if key not in shared:
            shared[key] = GroupQuantWeight(m.weight.detach(), bits, group_size)
        if isinstance(m, nn.Linear):
            new: nn.Module = QuantLinear(shared[key], m.bias)
        else:
            new = QuantEmbedding(shared[key])
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def dynamic_int8(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` with ``torch.ao`` dynamic int8 ``nn.Linear`` layers (per-tensor
    weight scales, activations quantised per batch); other layers stay float32."""
    from torch.ao.quantization import quantize_dynamic

    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecat.*", category=Warning)  # STACK.md: still works
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def linear_fraction(model: nn.Module) -> float:
    """The fraction of ``model``'s parameters (each shared one counted once) held by ``nn.Linear``
    weights and biases that an embedding does not share (what :func:`dynamic_int8` quantises)."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    in_linear = {
        id(p): p.numel()
        for m in model.modules()
        if isinstance(m, nn.Linear)
        for p in m.parameters(recurse=False)
        if id(p) not in embedded
    }
    total = sum(p.numel() for p in model.parameters())
    return sum(in_linear.values()) / total


def serialized_bytes(model: nn.Module) -> int:
    """Bytes that ``torch.save(model.state_dict())`` writes (shared tensors stored once)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


# --------------------------------------------------------------------------- pruning


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The ``nn.Linear`` weight matrices of ``model`` by parameter name, leaving out any that an
    ``nn.Embedding`` shares (a tied output layer: pruning it would delete tokens' embeddings)."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in embedded:
            out[f"{name}.weight" if name else "weight"] = m.weight
    return out


def _check_sparsity(sparsity: Any) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    return float(sparsity)


def magnitude_masks(model: nn.Module, sparsity: float, *, structured: bool = False) -> dict[str, torch.Tensor]:
    """Boolean keep-masks for :func:`prunable_weights`, each with round(sparsity * size) zeros.

    Unstructured: each matrix loses its smallest-magnitude entries. Structured: each matrix
    loses whole rows (output features), those of smallest L2 norm, round(sparsity * N) of them.
    """
    sparsity = _check_sparsity(sparsity)
    masks = {}
    for name, w in prunable_weights(model).items():
        w = w.detach()
        score = w.norm(dim=1) if structured else w.abs().flatten()
        drop = round(sparsity * score.numel())
        keep = torch.ones(score.numel(), dtype=torch.bool, device=w.device)
        keep[torch.argsort(score, stable=True)[:drop]] = False
        masks[name] = keep[:, None].expand_as(w).clone() if structured else keep.reshape(w.shape)
    return masks


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero, in place, every weight whose mask entry is False."""
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, mask in masks.items():
        if name not in params or params[name].shape != mask.shape:
            raise ValueError(f"mask {name!r} of shape {tuple(mask.shape)} matches no parameter of the model")
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


def weight_sparsity(model: nn.Module) -> float:
    """The fraction of exact zeros in :func:`prunable_weights`."""
    ws = list(prunable_weights(model).values())
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


class MaskHook:
    """A training hook (``fit(..., hooks=[MaskHook(model, masks)])``) that zeroes the pruned
    weights after every optimizer step, so fine-tuning keeps the mask; its ``state_dict`` holds
    the masks, so a checkpoint saves them and a resumed run continues with the same ones."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self.model, self.masks = model, {k: v.bool() for k, v in masks.items()}
        apply_masks_(model, self.masks)

    def after_step(self, step: int) -> None:
        apply_masks_(self.model, self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {k: v.cpu() for k, v in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {k: v.bool() for k, v in state["masks"].items()}
        apply_masks_(self.model, self.masks)


# --------------------------------------------------------------------------- distillation


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Hinton et al.'s loss over logits (..., V): alpha T^2 KL(p_T || q_T) + (1 - alpha) CE(q, y).

    p_T = softmax(teacher / T), q_T = softmax(student / T); the KL and the cross-entropy are means
    over positions. Without ``targets`` the loss is the soft term alone (alpha ignored)."""
    check_positive("temperature", temperature, integer=False)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    v = student_logits.shape[-1]
    log_q = F.log_softmax(_wide(student_logits).reshape(-1, v) / temperature, -1)
    log_p = F.log_softmax(_wide(teacher_logits.detach()).reshape(-1, v) / temperature, -1)
    soft = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2
    if targets is None:
        return soft
    hard = F.cross_entropy(_wide(student_logits).reshape(-1, v), targets.reshape(-1))
    return alpha * soft + (1 - alpha) * hard


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32 for 16-bit logits (autocast), float64 stays float64."""
    return x if x.dtype == torch.float64 else x.float()


class KDLoss:
    """A phase loss for ``fit``: a student language model learns from a frozen teacher.

    ``student(x)`` and ``teacher(x)`` return ``(logits, ...)``; the batch is ``(x, y)``. Logs the
    soft and hard terms. The teacher is kept out of the student's modules and runs in eval mode."""

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 2.0, alpha: float = 0.5) -> None:
        check_positive("temperature", temperature, integer=False)
        self.student, self._teacher = student, (teacher,)
        self.temperature, self.alpha = float(temperature), float(alpha)

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y = batch
        teacher = self._teacher[0]
        with torch.no_grad(), eval_mode(teacher):
            t_logits = teacher(x)[0]
        s_logits = self.student(x)[0]
        soft = distillation_loss(s_logits, t_logits, temperature=self.temperature)
        hard = F.cross_entropy(s_logits.float().reshape(-1, s_logits.shape[-1]), y.reshape(-1))
        loss = self.alpha * soft + (1 - self.alpha) * hard
        return loss, {"soft": soft.detach(), "hard": hard.detach()}


# --------------------------------------------------------------------------- memory and speed


def saved_tensor_bytes(fn: Callable[[], torch.Tensor], params: Any = ()) -> tuple[int, torch.Tensor]:
    """``(bytes autograd saved for the backward pass, fn())``: every tensor packed while ``fn`` runs,
    each storage counted once, leaving out the storages of ``params`` (weights saved by reference,
    e.g. ``model.parameters()``), which exist anyway."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


@contextmanager
def checkpoint_blocks(blocks: nn.ModuleList) -> Iterator[None]:
    """Inside the ``with``, each module of ``blocks`` keeps only its input for the backward pass
    and recomputes its activations then (``torch.utils.checkpoint``, non-reentrant)."""
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"blocks must be an nn.ModuleList (e.g. gpt.blocks), got {type(blocks).__name__}")
    own = [vars(b).get("forward") for b in blocks]  # an instance-level forward, if one was set
    for b in blocks:
        f = b.forward
        b.forward = lambda *a, _f=f, **k: checkpoint(_f, *a, use_reentrant=False, **k)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for b, f in zip(blocks, own, strict=True):
            if f is None:
                del b.forward  # back to the class's forward
            else:
                b.forward = f  # type: ignore[method-assign]


@torch.no_grad()
def forward_tokens_per_s(model: nn.Module, x: torch.Tensor, *, reps: int = 5, warmup: int = 1) -> float:
    """Tokens per second of ``model(x)`` for a batch of token ids x (B, T), after ``warmup`` calls."""
    check_positive("reps", reps)
    with eval_mode(model):
        for _ in range(warmup):
            model(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
        seconds = time.perf_counter() - t0
    return x.numel() * reps / seconds
