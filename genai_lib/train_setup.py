"""Checking and building what a training run needs, before step one (see :mod:`genai_lib.train`).

:func:`plan_run` turns ``fit``'s arguments into a :class:`Plan`: the phases with their
optimizers, learning-rate bases and schedules, the step budget, the hooks, the checkpoint path.
Every argument is checked here, so a bad path, an empty validation loader or a parameter that
is not the model's fails in milliseconds, not after the last step of a long run.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genai_lib._checks import check_generator, check_positive
from genai_lib.phases import DivergenceRule, Phase
from genai_lib.train_state import check_checkpoint_path

__all__ = [
    "Plan",
    "plan_run",
    "resolve_phases",
    "step_budget",
    "call_loss",
    "batch_stream",
    "lr_factor",
    "plain_meta",
]


def call_loss(fn: Callable[..., Any], batch: Any, name: str, generator: torch.Generator | None) -> Any:
    out = fn(batch) if generator is None else fn(batch, generator=generator)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError(f"{name}(batch) must return (scalar loss, logs dict), got {type(out).__name__}")
    loss, logs = out
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError(f"{name}(batch) must return a scalar tensor first, got {loss!r:.80}")
    return loss, logs


def batch_stream(loader: Iterable, start: int, n_batches: int | None) -> Iterator[Any]:
    """Endless batches from batch ``start`` on (exact for loaders with ``set_epoch``/``iter_from``)."""
    epoch, offset = divmod(start, n_batches) if n_batches else (0, start)
    while True:
        if hasattr(loader, "iter_from") and hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
            batches = loader.iter_from(offset)
        else:
            batches = islice(iter(loader), offset, None)
        got = False
        for b in batches:
            got = True
            yield b
        if not got:
            raise ValueError("the training loader yielded no batches")
        epoch, offset = epoch + 1, 0


def _default_phase(model, optimizer, lr, weight_decay, grad_clip, accumulate) -> Phase:
    if not callable(getattr(model, "loss", None)):
        raise TypeError(f"{type(model).__name__} has no .loss(batch) method; fit needs the library's model contract")
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        return Phase("loss", model.loss, optimizer=optimizer, lr=lr, grad_clip=grad_clip, accumulate=accumulate)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return Phase(
        "loss", model.loss, params, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip, accumulate=accumulate
    )


def _build_optimizer(phase: Phase, owned: set[int]) -> torch.optim.Optimizer:
    opt = phase.optimizer
    if isinstance(opt, torch.optim.Optimizer):
        params = [p for g in opt.param_groups for p in g["params"]]
    else:
        groups = list(phase.params)
        if not groups:
            raise ValueError(f"phase {phase.name!r} has no parameters to train")
        if isinstance(groups[0], dict):
            groups = [{**g, "params": list(g["params"])} for g in groups]
        params = [p for g in groups for p in g["params"]] if isinstance(groups[0], dict) else groups
        if opt == "adam":
            opt = torch.optim.Adam(groups, lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay)
        elif opt == "adamw":
            opt = torch.optim.AdamW(groups, lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay)
        elif opt == "sgd":
            opt = torch.optim.SGD(groups, lr=phase.lr, weight_decay=phase.weight_decay)
        else:
            opt = opt(groups)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"phase {phase.name!r}: the optimizer factory returned {type(opt).__name__}")
    for p in params:
        if not isinstance(p, nn.Parameter) or id(p) not in owned:
            raise ValueError(f"phase {phase.name!r} would update a tensor that is not a parameter of the model")
        if not p.requires_grad:
            raise ValueError(f"phase {phase.name!r} lists a parameter with requires_grad=False")
    for g in opt.param_groups:  # an lr of np.float64 would make every checkpoint unloadable (weights_only)
        for k, v in g.items():
            if k != "params":
                g[k] = plain_meta(v, f"phase {phase.name!r} optimizer {k}")
    return opt


def plain_meta(meta: Any, where: str = "meta") -> Any:
    """``meta`` as data a checkpoint can hold (NumPy scalars become Python numbers), checked before
    training: a value ``torch.load(weights_only=True)`` refuses would only fail at the first save."""
    if isinstance(meta, np.generic):
        return meta.item()
    if meta is None or isinstance(meta, (bool, int, float, str, torch.Tensor)):
        return meta
    if isinstance(meta, (list, tuple)):
        return type(meta)(plain_meta(v, f"{where}[{i}]") for i, v in enumerate(meta))
    if isinstance(meta, dict):
        return {k: plain_meta(v, f"{where}[{k!r}]") for k, v in meta.items()}
    raise TypeError(
        f"{where} is a {type(meta).__name__}; a checkpoint's meta holds numbers, strings, tensors, lists and dicts"
    )


def _check_batchnorm_batches(model: nn.Module, loader: Any) -> None:
    """Batch norm cannot train on a batch of one: refuse a loader that yields one (a TensorLoader or
    a torch DataLoader whose last batch, or every batch, holds a single example)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    n, b = getattr(loader, "num_examples", None), getattr(loader, "batch_size", None)
    if n is None and isinstance(loader, torch.utils.data.DataLoader) and hasattr(loader.dataset, "__len__"):
        n = len(loader.dataset)  # type: ignore[arg-type]
    if not (isinstance(n, int) and isinstance(b, int)):
        return
    drop = getattr(loader, "drop_last", False)
    if b == 1:
        what, fix = "every batch holds 1 example (batch_size=1)", "choose batch_size >= 2"
    elif not drop and n % b == 1:
        what = f"the loader's last batch holds 1 example ({n} examples in batches of {b})"
        fix = "pass drop_last=True to the loader or choose another batch size"
    else:
        return
    raise ValueError(f"{what}, and {type(model).__name__}'s batch norm cannot train on a batch of one: {fix}")


def _hook_calls(hooks: Sequence[Any]) -> tuple[list[Callable[[int], None]], list[Callable[[int], None]]]:
    before, after = [], []
    for h in hooks:
        b, a = getattr(h, "before_step", None), getattr(h, "after_step", None)
        if b is None and a is None and callable(h):
            a = h
        if b is None and a is None:
            raise TypeError(f"a hook needs before_step(step) or after_step(step), or must be callable; got {h!r}")
        before += [b] if b is not None else []
        after += [a] if a is not None else []
    return before, after


def lr_factor(schedule: Callable[[int], float], step: int) -> float:
    factor = schedule(step)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
        raise ValueError(f"lr_schedule({step}) returned {factor!r}; it must return a finite number >= 0")
    return float(factor)


def accepts_generator(fn: Callable[..., Any], name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    if "generator" in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return True
    raise TypeError(f"fit got a generator, but phase {name!r}'s loss takes no generator= argument")


def resolve_phases(
    model: nn.Module,
    phases: Sequence[Phase] | None,
    *,
    optimizer: torch.optim.Optimizer | None,
    lr: float,
    weight_decay: float,
    grad_clip: float | None,
    accumulate: int,
) -> list[Phase]:
    """The run's phases: the given ones (checked), or one phase on ``model.loss``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_positive("accumulate", accumulate)
    if phases is None:
        return [_default_phase(model, optimizer, lr, weight_decay, grad_clip, accumulate)]
    given = {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "grad_clip": grad_clip}
    defaults = {"optimizer": None, "lr": 1e-3, "weight_decay": 0.0, "grad_clip": None}
    changed = [k for k in given if given[k] != defaults[k]] + (["accumulate"] if accumulate != 1 else [])
    if changed:
        raise TypeError(f"with phases, set {changed} on the phases (fit's own values would be ignored)")
    phases = list(phases)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise TypeError("phases must be a non-empty list of genai_lib.phases.Phase")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must be unique, got {names}")
    if not (phases[0].fresh and phases[0].every == 1):
        raise ValueError(f"the first phase ({names[0]!r}) must run every step on fresh batches (fresh=True, every=1)")
    for p in phases:
        if p.shares is not None and p.shares not in names[: names.index(p.name)]:
            raise ValueError(f"phase {p.name!r} shares the optimizer of {p.shares!r}, which is not an earlier phase")
    return phases


def step_budget(loader: Iterable, phases: Sequence[Phase], epochs: int | None, steps: int | None) -> tuple[int, Any]:
    """``(total steps, len(loader) or None)`` from exactly one of ``epochs`` and ``steps``."""
    n_batches = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    if n_batches == 0:
        raise ValueError("the training loader is empty: it yields no batches")
    if (epochs is None) == (steps is None):
        raise ValueError(f"give exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
    if steps is not None:
        check_positive("steps", steps)
        return int(steps), n_batches
    check_positive("epochs", epochs)
    if n_batches is None:
        raise ValueError("epochs needs a loader with len(); give steps instead")
    if any(p.fresh and p.every > 1 for p in phases):
        raise ValueError("epochs needs a fixed number of batches per step; give steps instead")
    return max(1, epochs * n_batches // sum(p.batches_before(1) for p in phases)), n_batches


@dataclass
class Plan:
    """Everything ``fit`` built and checked before step one."""

    phases: list[Phase]
    log_keys: dict[str, str]  # phase name -> its loss's log key ("loss" for a single phase)
    total: int
    n_batches: int | None
    optims: dict[str, torch.optim.Optimizer]  # phase name -> optimizer (shared ones appear twice)
    params: dict[str, list[nn.Parameter]]  # phase name -> its parameters, in the model's order
    base_lrs: dict[int, list[float]]  # id(optimizer) -> the groups' learning rates before any schedule
    schedules: dict[str, Callable[[int], float] | None]
    accepts_gen: dict[str, bool]
    stateful: dict[str, list[Any]]  # what checkpoints save beside the model: loss and hook states
    before_hooks: list[Callable[[int], None]]
    after_hooks: list[Callable[[int], None]]
    rules: list[DivergenceRule]
    ckpt_path: Path | None


def plan_run(
    model: nn.Module,
    loader: Iterable,
    phases: list[Phase],
    total: int,
    n_batches: int | None,
    *,
    lr_schedule: Any,
    rules: Sequence[DivergenceRule],
    hooks: Sequence[Any],
    generator: torch.Generator | None,
    val_loader: Iterable | None,
    val_every: int | None,
    checkpoint: Any,
    checkpoint_every: int | None,
    meta: Any,
    log_every: int,
    callbacks: Sequence[Any],
) -> Plan:
    """Check every remaining argument of ``fit`` and build the optimizers (see :class:`Plan`)."""
    check_positive("log_every", log_every)
    for name, value in (("checkpoint_every", checkpoint_every), ("val_every", val_every)):
        if value is not None:
            check_positive(name, value)
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs a checkpoint path")
    if val_every is not None and val_loader is None:
        raise ValueError("val_every needs a val_loader")
    if val_loader is not None and hasattr(val_loader, "__len__") and len(val_loader) == 0:  # type: ignore[arg-type]
        raise ValueError("val_loader is empty: it yields no batches")
    if val_loader is not None and (not hasattr(val_loader, "__iter__") or iter(val_loader) is val_loader):
        raise TypeError(
            "val_loader must be re-iterable (a list of batches or a loader such as make_loader(...)); "
            f"a {type(val_loader).__name__} is used up by the first validation"
        )
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be a callable (step -> factor), 'cosine' or None, got {lr_schedule!r}")
    check_generator("generator", generator)
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict or None, got {type(meta).__name__}")
    rules = list(rules)
    if not all(isinstance(r, DivergenceRule) for r in rules):
        raise TypeError("rules must be genai_lib.phases.DivergenceRule objects")
    if not all(callable(cb) for cb in callbacks):
        raise TypeError("every callback must be callable as callback(step, history)")
    before_hooks, after_hooks = _hook_calls(hooks)
    ckpt_path = check_checkpoint_path(checkpoint)
    _check_batchnorm_batches(model, loader)

    owned = {id(p) for p in model.parameters()}
    optims: dict[str, torch.optim.Optimizer] = {}
    for p in phases:
        optims[p.name] = optims[p.shares] if p.shares else _build_optimizer(p, owned)
    order = {id(q): i for i, q in enumerate(model.parameters())}  # clip in the model's order: bit-stable norms
    params = {
        p.name: sorted((q for g in optims[p.name].param_groups for q in g["params"]), key=lambda q: order[id(q)])
        for p in phases
    }
    schedules = {p.name: p.lr_schedule or lr_schedule for p in phases}
    for sched in schedules.values():
        if sched is not None:
            for s in sorted({0, total - 1}):
                lr_factor(sched, s)
    inside = {id(m) for m in model.modules()}  # submodules are saved with the model's own state_dict
    return Plan(
        phases=phases,
        log_keys={p.name: "loss" if len(phases) == 1 else p.log_key for p in phases},
        total=total,
        n_batches=n_batches,
        optims=optims,
        params=params,
        base_lrs={id(o): [g["lr"] for g in o.param_groups] for o in optims.values()},
        schedules=schedules,
        accepts_gen={p.name: generator is not None and accepts_generator(p.loss, p.name) for p in phases},
        stateful={
            "loss_states": [p.loss for p in phases if hasattr(p.loss, "state_dict") and id(p.loss) not in inside],
            "hook_states": [h for h in hooks if hasattr(h, "state_dict") and id(h) not in inside],
        },
        before_hooks=before_hooks,
        after_hooks=after_hooks,
        rules=rules,
        ckpt_path=ckpt_path,
    )
