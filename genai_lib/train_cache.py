"""Cached training: a second run of a notebook loads in seconds what the first one trained.

:func:`load_or_train` keeps a run's final checkpoint in ``cache_dir()/name.pt`` and reuses it
when the model's config, the training arguments and the caller's ``key`` are the same. The
fingerprint hashes the *content* of every tensor and array in ``key`` (dtype, shape and bytes),
so two datasets that differ in one element never share weights, and a key it cannot hash
faithfully is refused rather than guessed. Hooks that record something during training (the
:class:`genai_lib.phases.Snapshots` of an animation) are saved in the same file, so their
records come back with the weights. Writes are atomic, and two processes that need one entry at
once fill it once: the second waits for the first (:func:`genai_lib.utils.fill_lock`), then loads.
:func:`cached` does the same for any computed artifact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genai_lib.checkpoint import CheckpointError, config_dict, load_checkpoint, save_checkpoint
from genai_lib.history import History
from genai_lib.train import fit
from genai_lib.utils import cache_dir, fill_lock, model_device

__all__ = ["fingerprint", "load_or_train", "cached", "cache_path"]

_SKIP = frozenset({"progress", "log_every", "desc", "callbacks", "checkpoint_every", "hooks"})


class _Unhashable(TypeError):
    pass


def _canon(obj: Any, where: str) -> Any:
    """A JSON-able description of ``obj`` that changes whenever its content does."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return repr(obj) if not math.isfinite(obj) else obj
    if isinstance(obj, np.generic):
        return _canon(obj.item(), where)
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        arr = obj.detach().cpu() if isinstance(obj, torch.Tensor) else obj
        dtype = str(arr.dtype)
        if isinstance(arr, torch.Tensor):
            arr = arr.contiguous().view(torch.uint8) if arr.dtype == torch.bfloat16 else arr.contiguous()
            arr = arr.numpy()
        data = np.ascontiguousarray(arr)
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        return {"array": dtype, "shape": list(obj.shape), "sha256": digest}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [_canon(x, f"{where}[{i}]") for i, x in enumerate(obj)]
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise _Unhashable(f"{where} has a non-string key {k!r}; use strings as keys")
            out[k] = _canon(v, f"{where}[{k!r}]")
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"dataclass": type(obj).__name__, **_canon(fields, where)}
    raise _Unhashable(
        f"cannot fingerprint {where} of type {type(obj).__name__}: use numbers, strings, tensors, arrays, lists, "
        "dicts or dataclasses of them (describe anything else, e.g. a schedule, in plain data)"
    )


def fingerprint(model: nn.Module, fit_kwargs: Mapping[str, Any], key: Any) -> dict[str, Any]:
    """What a cache entry must match: the model's class and config, the training arguments that
    are plain data (functions such as a schedule cannot be hashed: describe them in ``key``), and
    ``key`` itself (refused with a TypeError if any part of it cannot be hashed faithfully).

    Hooks count by kind only: a recording hook (``Snapshots``) watches the run without changing it,
    so an entry trained with or without one is the same entry (its records are checked apart);
    hooks that change what is trained (an ``EMA``) are listed by class name."""
    try:
        key_desc = _canon(key, "key")
    except _Unhashable as exc:
        raise TypeError(str(exc)) from None
    simple = {}
    for k, v in sorted(fit_kwargs.items()):
        if k in _SKIP:
            continue
        try:
            simple[k] = _canon(v, k)
        except _Unhashable:
            continue  # callables, optimizers, loaders: the caller's key describes them
    changing = sorted(type(h).__name__ for h in fit_kwargs.get("hooks", ()) if not _is_recorder(h))
    if changing:
        simple["hooks"] = changing
    blob = json.dumps(
        {"config": _canon(config_dict(getattr(model, "cfg", None)), "config"), "fit": simple, "key": key_desc},
        sort_keys=True,
    )
    return {
        "model": type(model).__name__,
        "digest": hashlib.sha256(blob.encode()).hexdigest()[:32],
        "fit": json.dumps(simple, sort_keys=True)[:2000],
    }


def cache_path(name: str) -> Path:
    """``cache_dir()/name.pt`` for a valid entry name (a file stem without slashes)."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise ValueError(f"name must be a non-empty file stem without slashes, got {name!r}")
    return cache_dir() / f"{name}.pt"


def _fits(model: nn.Module, saved: Any) -> bool:
    """Whether a saved state dict has exactly the model's keys and shapes (checked before loading,
    which would otherwise overwrite some weights and then fail)."""
    own = model.state_dict()
    return (
        isinstance(saved, dict)
        and saved.keys() == own.keys()
        and all(isinstance(saved[k], torch.Tensor) and saved[k].shape == v.shape for k, v in own.items())
    )


def _is_recorder(hook: Any) -> bool:
    return hasattr(hook, "state_dict") and not isinstance(hook, nn.Module)


def _recording_hooks(fit_kwargs: Mapping[str, Any]) -> list[Any]:
    return [h for h in fit_kwargs.get("hooks", ()) if _is_recorder(h)]


def load_or_train(
    model: nn.Module,
    loader: Iterable,
    *,
    name: str,
    key: Any = None,
    trainer: Callable[..., History] = fit,
    **fit_kwargs: Any,
) -> History:
    """Load cached weights for ``name`` if they were trained identically, else train with ``trainer``.

    The entry ``cache_dir()/name.pt`` matches when :func:`fingerprint` of the model, the
    keyword arguments and ``key`` (anything else that changes the result, e.g. the data) is the
    same and the run finished; recording hooks (``hooks=[Snapshots(...)]``) must have their
    records in the entry too, else the model is trained again to record them. An interrupted
    run resumes where it stopped; a corrupt entry is reported with a warning and retrained.
    ``trainer`` is :func:`genai_lib.train.fit` or :func:`genai_lib.train.fit_gan`.
    """
    path = cache_path(name)
    for bad in ("checkpoint", "meta", "resume"):
        if bad in fit_kwargs:
            raise TypeError(f"load_or_train manages {bad!r} itself")
    if not callable(trainer):
        raise TypeError(f"trainer must be fit or fit_gan, got {trainer!r}")
    extra = {} if trainer is fit else {"trainer": getattr(trainer, "__name__", str(trainer))}
    meta = fingerprint(model, {**fit_kwargs, **extra}, key)
    recorders = _recording_hooks(fit_kwargs)
    with fill_lock(path):
        return _load_or_train_locked(model, loader, path, meta, recorders, trainer, fit_kwargs)


def _load_or_train_locked(
    model: nn.Module, loader: Iterable, path: Path, meta: dict, recorders: list, trainer: Callable, fit_kwargs: dict
) -> History:
    resume = False
    if path.exists():
        try:
            state = load_checkpoint(path, map_location=model_device(model))
        except CheckpointError as exc:
            warnings.warn(f"ignoring the cached checkpoint: {exc}; retraining", stacklevel=3)
        else:
            same = state.get("meta") == meta and all(k in state for k in ("model", "step", "total"))
            if same and not _fits(model, state["model"]):
                warnings.warn(
                    f"the cached weights in {path} do not fit this model (its code changed?); retraining", stacklevel=3
                )
                same = False
            records = state.get("hook_states", [])
            recorded = not recorders or len(records) == len(recorders)
            if same and state["step"] == state["total"] and recorded:
                try:
                    for hook, saved in zip(recorders, records[: len(recorders)], strict=True):
                        hook.load_state_dict(saved)
                except (ValueError, KeyError, TypeError):
                    pass  # recorded differently: train again to record what this caller asks for
                else:
                    model.load_state_dict(state["model"])
                    history = History.from_dict(state.get("history", {}))
                    history.from_cache = True
                    return history
            resume = same and state.get("step") != state.get("total")
    fit_kwargs.setdefault("checkpoint_every", 200)
    return trainer(model, loader, checkpoint=path, resume=resume, meta=meta, **fit_kwargs)


def cached(name: str, key: Any, compute: Callable[[], dict[str, Any]], *, refresh: bool = False) -> dict[str, Any]:
    """``compute()`` once, then from ``cache_dir()/name.pt`` while ``key`` is the same.

    ``compute`` returns a dict of tensors and plain data (what a checkpoint may hold). The
    key is fingerprinted like :func:`load_or_train`'s; the file is written atomically.
    ``refresh=True`` computes again and overwrites the entry (a benchmark timing the work).
    """
    path = cache_path(name)
    try:
        digest = {"digest": fingerprint(nn.Module(), {}, key)["digest"]}
    except TypeError as exc:
        raise TypeError(f"cached({name!r}): {exc}") from None
    with fill_lock(path):
        if path.exists() and not refresh:
            try:
                state = load_checkpoint(path)
            except CheckpointError as exc:
                warnings.warn(f"ignoring the cached artifact: {exc}; computing it again", stacklevel=2)
            else:
                if state.get("meta") == digest and "value" in state:
                    return state["value"]
        value = compute()
        if not isinstance(value, dict):
            raise TypeError(f"cached({name!r}): compute() must return a dict, got {type(value).__name__}")
        save_checkpoint(path, {"meta": digest, "value": value})
        return value
