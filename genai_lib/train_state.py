"""The training core's checkpoints: the full state of a run, written atomically, restored exactly.

A run's checkpoint holds the model's weights, every optimizer's state, the step, the History,
the RNG states (torch's global CPU and CUDA generators and the run's own ``generator``), the
streaks of the divergence rules and the state of stateful phase losses (``loss_states``) and
hooks (``hook_states``), so that
``fit(..., checkpoint=path)`` stopped at step k and called again continues with exactly the
batches, the noise and the weights the uninterrupted run would have had.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genai_lib.checkpoint import CheckpointError, config_dict, load_checkpoint, save_checkpoint
from genai_lib.history import History
from genai_lib.utils import model_device

__all__ = ["check_checkpoint_path", "restore_run", "save_run"]


def check_checkpoint_path(checkpoint: Any) -> Path | None:
    """A path ``fit`` can write a checkpoint to, checked before training (not after it)."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or Path), got {type(checkpoint).__name__}")
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory; give a file path such as {path / 'run.pt'}")
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"cannot write the checkpoint {path}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write the checkpoint {path}: the folder {folder} is not writable")
            break
    return path


def _rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def restore_run(
    path: Path | None,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    resume: bool,
    meta: dict[str, Any] | None,
    total: int,
    generator: torch.Generator | None = None,
    stateful: dict[str, list[Any]] | None = None,
) -> tuple[History, int, dict[str, Any]]:
    """Continue a run from ``path``: returns ``(history, step, state)``; a fresh start (no path,
    ``resume=False`` or no file yet) gives ``(History(), 0, {})``."""
    if path is None or not resume or not path.exists():
        return History(), 0, {}
    state = load_checkpoint(path, expect_config=getattr(model, "cfg", None), map_location=model_device(model))
    if meta is not None and state.get("meta") != meta:
        raise CheckpointError(
            f"{path} was written by a different training run (meta differs); pass resume=False to start over"
        )
    missing = [k for k in ("model", "step", "optimizers") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint of fit (it has no {', '.join(missing)})")
    lacking = sorted(set(optimizers) - set(state["optimizers"]))
    if lacking:
        raise CheckpointError(
            f"{path} has no optimizer state for phase(s) {lacking} (it has {sorted(state['optimizers'])}): it was "
            "written by another kind of training; pass resume=False to start over"
        )
    step = int(state["step"])
    if step > total:
        raise ValueError(f"{path} is at step {step}, beyond the requested {total} steps")
    model.load_state_dict(state["model"])
    seen: set[int] = set()
    for name, opt in optimizers.items():
        if id(opt) not in seen:  # phases that share an optimizer restore it once
            opt.load_state_dict(state["optimizers"][name])
            seen.add(id(opt))
    for group, objects in (stateful or {}).items():
        saved = state.get(group, [])
        if len(saved) != len(objects):
            raise CheckpointError(f"{path} holds {len(saved)} {group.replace('_', ' ')}, this run has {len(objects)}")
        for obj, value in zip(objects, saved, strict=True):
            obj.load_state_dict(value)
    if "rng" in state:
        _set_rng_state(state["rng"], generator)
    return History.from_dict(state.get("history", {})), step, state


def save_run(
    path: Path | None,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    step: int,
    total: int,
    history: History,
    meta: dict[str, Any] | None,
    generator: torch.Generator | None = None,
    stateful: dict[str, list[Any]] | None = None,
    streaks: list[int] = (),  # type: ignore[assignment]
) -> None:
    """Write the full training state atomically for :func:`restore_run` (a no-op without a path)."""
    if path is None:
        return
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "step": step,
            "total": total,
            "history": history.to_dict(),
            "rng": _rng_state(generator),
            "streaks": list(streaks),
            **{group: [obj.state_dict() for obj in objects] for group, objects in (stateful or {}).items()},
            "config": config_dict(getattr(model, "cfg", None)),
            "meta": meta or {},
        },
    )
