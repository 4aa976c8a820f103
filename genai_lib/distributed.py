"""Data-parallel and tensor-parallel training with ``torch.distributed`` (chapter 18).

- **Data parallel** (what DDP does; Li et al. 2020): every rank holds the whole model, takes its
  own shard of the batch, and after the backward pass the gradients are averaged across ranks
  with an all-reduce, so every rank takes the same optimizer step. With equal shards of a mean
  loss, R ranks x batch B give the gradient of one process with batch R B. The training core
  (:func:`genai_lib.train.fit`) does this whenever a process group is initialised: it calls
  :func:`allreduce_gradients`, shows its progress bar and writes checkpoints on rank 0 only.
- **Tensor parallel** (Megatron-LM; Shoeybi et al. 2019): a two-layer MLP Y = f(X A) B is split
  so each rank holds a slice of A's columns and the matching rows of B; rank r computes
  f(X A_r) B_r with no communication in between (f acts elementwise), and one all-reduce sums
  the partial products. :class:`ColumnParallelLinear` and :class:`RowParallelLinear` hold the
  slices of a dense ``nn.Linear``.
- :func:`launch` starts ``world_size`` processes on this machine (gloo on CPU, NCCL on GPUs),
  the way ``torchrun --standalone --nproc_per_node=R`` does, and returns what each returned.
  Under ``torchrun``, :func:`init_from_env` joins the group torchrun describes.

Shape legend: B batch, K input features, H hidden features (split over R ranks), N outputs.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_positive
from genai_lib.utils import atomic_write

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "allreduce_gradients",
    "shard",
    "init_from_env",
    "launch",
    "check_world_size",
    "ColumnParallelLinear",
    "RowParallelLinear",
    "tensor_parallel_check",
]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised (with more than one rank)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that prints, draws progress bars and writes files."""
    return rank() == 0


def check_world_size(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"world_size must be an int >= 1, got {n!r}")
    return n


@torch.no_grad()
def allreduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` across ranks (one flat all-reduce, as DDP's buckets do).

    A parameter without a gradient on this rank counts as zero there. A no-op without a group."""
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def shard(x: torch.Tensor, r: int | None = None, n: int | None = None) -> torch.Tensor:
    """Rank ``r``'s equal slice (along dim 0) of a batch ``x`` split over ``n`` ranks."""
    r, n = rank() if r is None else r, world_size() if n is None else n
    check_world_size(n)
    if not 0 <= r < n:
        raise ValueError(f"rank must be in [0, {n}), got {r}")
    if x.shape[0] % n:
        raise ValueError(f"the batch size {x.shape[0]} must be a multiple of the world size {n}")
    b = x.shape[0] // n
    return x[r * b : (r + 1) * b]


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, ...); ``backend`` defaults to NCCL with CUDA, else gloo. Returns whether it did
    (False when not launched by torchrun)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(r: int, fn: Callable[..., Any], n: int, port: int, out_dir: str, args: tuple, threads: int) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=n)
    try:
        result = fn(*args)
        buf = io.BytesIO()
        torch.save(result, buf)
        atomic_write(Path(out_dir) / f"rank{r}.pt", lambda fh: fh.write(buf.getvalue()))
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], world_size: int = 2, args: tuple = (), *, threads: int = 1) -> list[Any]:
    """Run ``fn(*args)`` in ``world_size`` fresh processes joined in a gloo group on 127.0.0.1 (a
    free port), like ``torchrun --standalone``; returns each rank's result, rank 0 first.

    ``fn`` must be importable (defined at a module's top level: processes are spawned) and return
    tensors and plain data. Each process uses ``threads`` CPU threads."""
    check_world_size(world_size)
    check_positive("threads", threads)
    if not callable(fn):
        raise TypeError(f"fn must be a function defined at a module's top level, got {fn!r}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="genai_dist_") as out:
        mp.start_processes(
            _entry,
            args=(fn, world_size, _free_port(), out, tuple(args), threads),
            nprocs=world_size,
            start_method="spawn",
        )
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


class ColumnParallelLinear(nn.Module):
    """Rank ``r``'s slice of a dense ``nn.Linear`` (K -> H): output features r H/R .. (r+1) H/R."""

    def __init__(self, dense: nn.Linear, r: int, n: int) -> None:
        super().__init__()
        check_world_size(n)
        if dense.out_features % n:
            raise ValueError(f"out_features {dense.out_features} must be a multiple of the world size {n}")
        rows = slice(r * dense.out_features // n, (r + 1) * dense.out_features // n)
        self.weight = nn.Parameter(dense.weight.detach()[rows].clone())  # (H/R, K)
        self.bias = None if dense.bias is None else nn.Parameter(dense.bias.detach()[rows].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)  # (B, H/R): this rank's features, no communication


class RowParallelLinear(nn.Module):
    """Rank ``r``'s slice of a dense ``nn.Linear`` (H -> N): input features r H/R .. (r+1) H/R; the
    forward sums the ranks' partial outputs with an all-reduce and adds the bias once."""

    def __init__(self, dense: nn.Linear, r: int, n: int) -> None:
        super().__init__()
        check_world_size(n)
        if dense.in_features % n:
            raise ValueError(f"in_features {dense.in_features} must be a multiple of the world size {n}")
        cols = slice(r * dense.in_features // n, (r + 1) * dense.in_features // n)
        self.weight = nn.Parameter(dense.weight.detach()[:, cols].clone())  # (N, H/R)
        self.bias = None if dense.bias is None else nn.Parameter(dense.bias.detach().clone())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        partial = F.linear(h, self.weight)  # (B, N): this rank's share of the sum over H
        if is_distributed():
            partial = _AllReduceSum.apply(partial)
        return partial if self.bias is None else partial + self.bias


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks forward; identity backward (each rank's slice needs the full output grad)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


def _tp_worker(fc: nn.Linear, proj: nn.Linear, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """This rank's half of the Megatron MLP: y = RowParallel(gelu(ColumnParallel(x))), and its
    gradients for the loss sum(y^2) / 2."""
    r, n = rank(), world_size()
    col, row = ColumnParallelLinear(fc, r, n), RowParallelLinear(proj, r, n)
    y = row(F.gelu(col(x)))
    (0.5 * y.pow(2).sum()).backward()
    return {"y": y.detach(), "fc": col.weight.grad, "proj": row.weight.grad}


def tensor_parallel_check(
    world_size: int = 2, *, features: int = 16, hidden: int = 32, batch: int = 4, seed: int = 0
) -> dict[str, float]:
    """A dense MLP ``features -> hidden -> features`` (GELU, biases) against its Megatron split over
    ``world_size`` gloo ranks: the largest absolute differences of the output (``y``) and of each
    rank's weight gradients from the matching slices of the dense ones (``grad``)."""
    world_size = check_world_size(world_size)
    for name, v in (("features", features), ("hidden", hidden), ("batch", batch)):
        check_positive(name, v)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fc, proj = nn.Linear(features, hidden), nn.Linear(hidden, features)
        x = torch.randn(batch, features)
    dense_y = proj(F.gelu(fc(x)))
    (0.5 * dense_y.pow(2).sum()).backward()
    ranks = launch(_tp_worker, world_size, (fc, proj, x))
    h = hidden // world_size
    dense_y = dense_y.detach()
    y_gap = max(float((r["y"] - dense_y).abs().max()) for r in ranks)
    g_gap = max(
        max(
            float((r["fc"] - fc.weight.grad[i * h : (i + 1) * h]).abs().max()),
            float((r["proj"] - proj.weight.grad[:, i * h : (i + 1) * h]).abs().max()),
        )
        for i, r in enumerate(ranks)
    )
    return {"y": y_gap, "grad": g_gap, "y_scale": float(dense_y.abs().max())}
