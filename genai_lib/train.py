"""One training loop for every model that follows the library's contract.

``fit(model, loader, ...)`` calls ``model.loss(batch) -> (scalar, logs)`` and takes care of the
rest: optimizer, steps or epochs, a ``tqdm`` progress bar with the loss, a :class:`History` to
plot, optional validation, gradient clipping, bf16 autocast on CUDA, atomic checkpoints every N
steps, resuming from the last checkpoint, and a clear error when the loss stops being finite.

``load_or_train(...)`` caches the trained weights under :func:`genai_lib.utils.cache_dir` so a
second run of a notebook in class loads in seconds instead of retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_positive
from genai_lib.checkpoint import CheckpointError, config_dict, load_checkpoint, save_checkpoint
from genai_lib.utils import cache_dir

__all__ = ["History", "TrainingDivergedError", "fit", "evaluate", "load_or_train", "model_device", "to_device"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class History:
    """What ``fit`` logged: per-step training logs and periodic validation logs."""

    step: list[int] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    val_step: list[int] = field(default_factory=list)
    val: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    from_cache: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return self.logs[key]

    def last(self, key: str = "loss", *, val: bool = False) -> float:
        """Most recent value of a training (or validation) log."""
        values = (self.val if val else self.logs).get(key)
        if not values:
            raise KeyError(
                f"no {'validation ' if val else ''}log named {key!r}; have {sorted(self.val if val else self.logs)}"
            )
        return values[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "logs": self.logs,
            "val_step": self.val_step,
            "val": self.val,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            step=list(d.get("step", [])),
            logs={k: list(v) for k, v in d.get("logs", {}).items()},
            val_step=list(d.get("val_step", [])),
            val={k: list(v) for k, v in d.get("val", {}).items()},
            seconds=float(d.get("seconds", 0.0)),
        )

    def plot(self, keys: Sequence[str] | None = None, **kwargs: Any):
        """Training (and validation) curves as a matplotlib Figure."""
        from genai_lib.plotting import training_curves

        return training_curves(self, keys=keys, **kwargs)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for an empty module)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or tensors nested in tuples/lists/dicts, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def autocast_for(device: torch.device, amp: bool | None) -> Any:
    """bf16 autocast on CUDA (when ``amp`` is None or True), a no-op elsewhere."""
    use = device.type == "cuda" and (amp if amp is not None else torch.cuda.is_bf16_supported())
    return torch.autocast("cuda", dtype=torch.bfloat16) if use else nullcontext()


def _call_loss(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    out = model.loss(batch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError(f"{type(model).__name__}.loss(batch) must return (scalar, logs dict), got {type(out).__name__}")
    loss, logs = out
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError(f"{type(model).__name__}.loss must return a scalar tensor first, got {loss!r:.80}")
    return loss, logs


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable, *, amp: bool | None = None, max_batches: int | None = None
) -> dict[str, float]:
    """Mean of ``loss`` and every log over a loader (weighted by batch size), in eval mode."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    try:
        for batch in islice(loader, max_batches):
            batch = to_device(batch, device)
            n = _batch_size(batch)
            with autocast_for(device, amp):
                loss, logs = _call_loss(model, batch)
            for k, v in {"loss": loss, **logs}.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got an empty loader")
    return {k: v / count for k, v in totals.items()}


def _batch_size(batch: Any) -> int:
    first = (
        batch[0]
        if isinstance(batch, (list, tuple))
        else next(iter(batch.values()))
        if isinstance(batch, dict)
        else batch
    )
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _batches_from(loader: Iterable, epoch: int, offset: int) -> Iterable:
    """Batches of ``epoch`` starting at ``offset``; exact for loaders with ``set_epoch``/``iter_from``."""
    if hasattr(loader, "iter_from") and hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return loader.iter_from(offset)
    return islice(iter(loader), offset, None)


def _step_budget(
    loader: Iterable, epochs: int | None, steps: int | None, *, n_critic: int = 1
) -> tuple[int | None, int]:
    """``(len(loader) or None, total steps)`` from exactly one of ``epochs`` and ``steps``.

    A step consumes ``n_critic`` batches (1 for :func:`fit`; ``fit_gan``'s ``n_critic``).
    """
    if (epochs is None) == (steps is None):
        raise ValueError(f"give exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
    check_positive("n_critic", n_critic)
    n_batches = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    if n_batches == 0:
        raise ValueError("the training loader is empty: it yields no batches")
    if epochs is not None:
        check_positive("epochs", epochs)
        if n_batches is None:
            raise ValueError("epochs needs a loader with len(); give steps instead")
        return n_batches, max(1, epochs * n_batches // n_critic)
    check_positive("steps", steps)
    return n_batches, int(steps)  # type: ignore[arg-type]


def _restore_run(
    path: Path | None,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    resume: bool,
    meta: dict[str, Any] | None,
    total: int,
    validate: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[History, int, dict[str, Any]]:
    """Continue a run from the checkpoint at ``path``: weights, optimizers, history, step and RNG state.

    Returns ``(history, step, state)``; ``state`` holds the trainer's own extra entries and is
    empty on a fresh start (no path, ``resume=False`` or no file yet). ``optimizers`` maps a
    checkpoint key to its optimizer (a key the file lacks is skipped); ``validate(state)`` may
    reject a file written by another trainer before anything is loaded.
    """
    if path is None or not resume or not path.exists():
        return History(), 0, {}
    state = load_checkpoint(path, expect_config=getattr(model, "cfg", None), map_location=model_device(model))
    if meta is not None and state.get("meta") != meta:
        raise CheckpointError(
            f"{path} was written by a different training run (meta differs); pass resume=False to start over"
        )
    if validate is not None:
        validate(state)
    model.load_state_dict(state["model"])
    for key, opt in optimizers.items():
        if key in state:
            opt.load_state_dict(state[key])
    history = History.from_dict(state.get("history", {}))
    step = int(state["step"])
    if "rng" in state:
        _set_rng_state(state["rng"])
    if step > total:
        raise ValueError(f"{path} is at step {step}, beyond the requested {total} steps")
    return history, step, state


def _save_run(
    path: Path | None,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    step: int,
    total: int,
    history: History,
    meta: dict[str, Any] | None,
    **extra: Any,
) -> None:
    """Write the full training state atomically for :func:`_restore_run` (a no-op without a path)."""
    if path is None:
        return
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            **{key: opt.state_dict() for key, opt in optimizers.items()},
            "step": step,
            "total": total,
            **extra,
            "history": history.to_dict(),
            "rng": _rng_state(),
            "config": config_dict(getattr(model, "cfg", None)),
            "meta": meta or {},
        },
    )


def fit(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    lr_schedule: Callable[[int], float] | None = None,
    grad_clip: float | None = None,
    val_loader: Iterable | None = None,
    val_every: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
    amp: bool | None = None,
    log_every: int = 10,
    progress: bool = True,
    desc: str | None = None,
    callbacks: Sequence[Callable[[int, History], None]] = (),
) -> History:
    """Train ``model`` by minimising ``model.loss(batch)[0]``.

    Give ``epochs`` or ``steps`` (one of them). ``lr_schedule(step)`` multiplies the base
    learning rate (e.g. warm-up then cosine). With ``checkpoint`` set, the full training state
    (weights, optimizer, step, history, RNG) is written atomically every ``checkpoint_every``
    steps and at the end; with ``resume=True`` a later call continues from it, batch for batch.
    Losses are read back every ``log_every`` steps (fewer host syncs on a GPU); a NaN/inf loss
    raises :class:`TrainingDivergedError` naming the first bad step. ``callbacks(step,
    history)`` run after each log flush.
    """
    if not hasattr(model, "loss"):
        raise TypeError(f"{type(model).__name__} has no .loss(batch) method; fit needs the library's model contract")
    n_batches, total = _step_budget(loader, epochs, steps)
    check_positive("lr", lr, integer=False)
    check_positive("log_every", log_every)
    for name, value in (("checkpoint_every", checkpoint_every), ("val_every", val_every)):
        if value is not None:
            check_positive(name, value)
    if grad_clip is not None:
        check_positive("grad_clip", grad_clip, integer=False)
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs a checkpoint path")

    device = model_device(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    opt = optimizer or torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    optimizers = {"optimizer": opt}  # checkpoint key -> optimizer
    history, step, _ = _restore_run(ckpt_path, model, optimizers, resume=resume, meta=meta, total=total)

    def save() -> None:
        _save_run(ckpt_path, model, optimizers, step=step, total=total, history=history, meta=meta)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=step, desc=desc or f"train {type(model).__name__}", disable=not progress, leave=True
    )
    pending: list[tuple[int, torch.Tensor, dict[str, Any]]] = []

    def flush() -> None:
        if not pending:
            return
        losses = torch.stack([p[1].float() for p in pending]).cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            first = pending[int(bad[0])][0]
            raise TrainingDivergedError(
                f"loss became {losses[int(bad[0])].item()} at step {first}; lower the learning rate, "
                f"clip gradients, or check the data (the last good checkpoint is kept)"
            )
        for (s, loss_t, logs), value in zip(pending, losses.tolist(), strict=True):
            history.step.append(s)
            history.logs.setdefault("loss", []).append(value)
            for k, v in logs.items():
                history.logs.setdefault(k, []).append(float(v))
            del loss_t
        bar.update(len(pending))
        bar.set_postfix(loss=f"{history.logs['loss'][-1]:.4g}")
        pending.clear()
        for cb in callbacks:
            cb(step, history)

    import time

    t0 = time.perf_counter() - history.seconds
    model.train()
    try:
        while step < total:
            epoch, offset = divmod(step, n_batches) if n_batches else (0, 0)
            progressed = False
            for batch in _batches_from(loader, epoch, offset):
                progressed = True
                batch = to_device(batch, device)
                if lr_schedule is not None:
                    factor = float(lr_schedule(step))
                    for g, base in zip(opt.param_groups, base_lrs, strict=True):
                        g["lr"] = base * factor
                with autocast_for(device, amp):
                    loss, logs = _call_loss(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                step += 1
                pending.append(
                    (
                        step,
                        loss.detach(),
                        {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in logs.items()},
                    )
                )
                if step % log_every == 0 or step == total:
                    flush()
                if val_loader is not None and val_every is not None and (step % val_every == 0 or step == total):
                    flush()
                    for k, v in evaluate(model, val_loader, amp=amp).items():
                        history.val.setdefault(k, []).append(v)
                    history.val_step.append(step)
                    model.train()
                if checkpoint_every is not None and step % checkpoint_every == 0 and step < total:
                    flush()
                    history.seconds = time.perf_counter() - t0
                    save()
                if step >= total:
                    break
            if not progressed:
                raise ValueError("the training loader yielded no batches")
        flush()
        if val_loader is not None and val_every is None:
            for k, v in evaluate(model, val_loader, amp=amp).items():
                history.val.setdefault(k, []).append(v)
            history.val_step.append(step)
        history.seconds = time.perf_counter() - t0
        save()
    finally:
        bar.close()
    return history


def _fingerprint(model: nn.Module, fit_kwargs: dict[str, Any], key: Any) -> dict[str, Any]:
    simple = {
        k: v
        for k, v in sorted(fit_kwargs.items())
        if isinstance(v, (int, float, str, bool, type(None))) and k not in ("progress", "log_every", "desc")
    }
    blob = json.dumps(
        {"config": config_dict(getattr(model, "cfg", None)), "fit": simple, "key": key}, sort_keys=True, default=str
    )
    return {
        "model": type(model).__name__,
        "digest": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "fit": json.dumps(simple, sort_keys=True),
    }


def load_or_train(
    model: nn.Module,
    loader: Iterable,
    *,
    name: str,
    key: Any = None,
    trainer: Callable[..., History] | None = None,
    **fit_kwargs: Any,
) -> History:
    """Load cached weights for ``name`` if they were trained with the same config, else train.

    The cache entry (``cache_dir()/name.pt``) matches when the model's config, the simple
    keyword arguments of ``fit`` and ``key`` (use it for anything else that changes the result,
    e.g. the data size) are the same. An interrupted training run resumes where it stopped. A
    corrupt cache file is reported with a warning and retrained, never silently used.
    ``trainer`` is the training function (default :func:`fit`; :func:`genai_lib.train_gan.fit_gan` for GANs).
    """
    trainer = trainer or fit
    if not name or not isinstance(name, str) or any(c in name for c in "/\\"):
        raise ValueError(f"name must be a non-empty file stem without slashes, got {name!r}")
    for bad in ("checkpoint", "meta", "resume"):
        if bad in fit_kwargs:
            raise TypeError(f"load_or_train manages {bad!r} itself")
    path = cache_dir() / f"{name}.pt"
    extra = {} if trainer is fit else {"trainer": trainer.__name__}  # fit's entries keep their digests
    meta = _fingerprint(model, {**fit_kwargs, **extra}, key)
    resume = False
    if path.exists():
        try:
            state = load_checkpoint(path, map_location=model_device(model))
        except CheckpointError as exc:
            warnings.warn(f"ignoring the cached checkpoint: {exc}; retraining", stacklevel=2)
        else:
            if state.get("meta") == meta and state.get("step") == state.get("total"):
                model.load_state_dict(state["model"])
                history = History.from_dict(state.get("history", {}))
                history.from_cache = True
                return history
            resume = state.get("meta") == meta
    fit_kwargs.setdefault("checkpoint_every", 200)
    return trainer(model, loader, checkpoint=path, resume=resume, meta=meta, **fit_kwargs)


def cosine_schedule(warmup: int, total: int, final: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to ``final``."""
    check_positive("total", total)
    check_positive("warmup", warmup, allow_zero=True)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# GAN training (chapter 3) lives in genai_lib.train_gan; its names stay importable from here. They
# load lazily (PEP 562) because train_gan imports this module: an eager re-export at the end of
# this file would fail with a circular import whenever genai_lib.train_gan is imported first.
_GAN_NAMES = frozenset({"DivergenceRule", "fit_gan", "load_or_train_gan", "_gan_param_groups", "_call_gan_loss"})


def __getattr__(name: str) -> Any:
    if name in _GAN_NAMES:
        from genai_lib import train_gan

        return getattr(train_gan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
