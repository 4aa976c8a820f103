"""The one training core: every model of the course trains through :func:`fit`.

A model declares what a training step means for it as phases (:mod:`genai_lib.phases`); by
default one phase minimises ``model.loss(batch) -> (scalar, logs)``. ``fit`` runs the phases
and takes care of the rest, once for every model: optimizers (param groups, per-group learning
rates, a learning-rate schedule), gradient accumulation and clipping, bf16 autocast on CUDA,
data parallelism when a ``torch.distributed`` group is initialised (gradients averaged across
ranks after each backward pass, progress bar and checkpoints on rank 0; see
:mod:`genai_lib.distributed`), per-step hooks (EMA, annealing), a ``tqdm`` progress bar, a
:class:`~genai_lib.history.History`, validation, atomic checkpoints with exact resume (weights,
optimizers, data position, RNG states, hook states), and a clear error when a loss stops being finite or a declared
:class:`~genai_lib.phases.DivergenceRule` fires. Every argument is checked before step one.

:func:`fit_gan` is the GAN shape (:func:`genai_lib.phases.adversarial_phases`) with DCGAN's
Adam settings. Cached training lives in :mod:`genai_lib.train_cache`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_positive
from genai_lib.distributed import allreduce_gradients, is_distributed, is_main
from genai_lib.history import History, TrainingDivergedError
from genai_lib.phases import DISCRIMINATOR_WINS, DivergenceRule, Phase, adversarial_phases
from genai_lib.train_setup import (
    Plan,
    batch_stream,
    call_loss,
    lr_factor,
    plain_meta,
    plan_run,
    resolve_phases,
    step_budget,
)
from genai_lib.train_state import restore_run, save_run
from genai_lib.utils import eval_mode, model_device, to_device

__all__ = ["fit", "fit_gan", "evaluate", "cosine_schedule", "autocast_for"]

_AUTO: Any = object()  # fit_gan's default: the divergence rules the model declares


def autocast_for(device: torch.device, amp: bool | None) -> Any:
    """bf16 autocast on CUDA (when ``amp`` is None or True), a no-op elsewhere."""
    use = device.type == "cuda" and (amp if amp is not None else torch.cuda.is_bf16_supported())
    return torch.autocast("cuda", dtype=torch.bfloat16) if use else nullcontext()


def cosine_schedule(warmup: int, total: int, final: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to ``final``."""
    check_positive("total", total)
    check_positive("warmup", warmup, allow_zero=True)
    check_positive("final", final, integer=False, allow_zero=True)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    amp: bool | None = None,
    max_batches: int | None = None,
    loss: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """Mean of the loss and every log over a loader (weighted by batch size), in eval mode.

    ``loss`` defaults to ``model.loss``."""
    device = model_device(model)
    fn = loss or model.loss
    totals: dict[str, float] = {}
    count = 0
    with eval_mode(model):
        for batch in islice(loader, max_batches):
            batch = to_device(batch, device)
            n = _batch_size(batch)
            with autocast_for(device, amp):
                value, logs = call_loss(fn, batch, "the validation loss", None)
            for k, v in {"loss": value, **logs}.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count += n
    if count == 0:
        raise ValueError("evaluate got an empty loader: it yielded no batches")
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


def fit(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    phases: Sequence[Phase] | None = None,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    lr_schedule: Callable[[int], float] | str | None = None,
    grad_clip: float | None = None,
    accumulate: int = 1,
    rules: Sequence[DivergenceRule] = (),
    hooks: Sequence[Any] = (),
    generator: torch.Generator | None = None,
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
    """Train ``model`` for ``steps`` (or ``epochs`` passes over ``loader``) and return its History.

    Without ``phases``, one phase minimises ``model.loss(batch)[0]`` with Adam(``lr``,
    ``weight_decay``) or the given ``optimizer``, clipping at ``grad_clip`` and accumulating
    ``accumulate`` micro-batches per update; with ``phases``, set those on the phases.
    ``lr_schedule(step)`` multiplies every group's learning rate (``"cosine"``: no warm-up,
    decay to 5% over the run). ``rules``: when a run is dead although finite. ``generator`` is
    passed to every phase loss as ``loss(batch, generator=...)`` and saved with checkpoints.
    ``hooks`` run around every step (:mod:`genai_lib.phases`); ``callbacks(step, history)``
    after each log flush (every ``log_every`` steps, when the losses are read back). With
    ``checkpoint``, the full state is written atomically every ``checkpoint_every`` steps and at
    the end, and ``resume=True`` continues batch for batch from it (``meta`` must match). A
    NaN/inf loss raises :class:`TrainingDivergedError` naming the step.
    """
    phases = resolve_phases(
        model, phases, optimizer=optimizer, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip, accumulate=accumulate
    )
    total, n_batches = step_budget(loader, phases, epochs, steps)
    if isinstance(lr_schedule, str) and lr_schedule == "cosine":
        lr_schedule = cosine_schedule(0, total, final=0.05)
    meta = plain_meta(meta)  # NumPy numbers become Python ones: every checkpoint must load with weights_only
    plan = plan_run(
        model,
        loader,
        phases,
        total,
        n_batches,
        lr_schedule=lr_schedule,
        rules=rules,
        hooks=hooks,
        generator=generator,
        val_loader=val_loader,
        val_every=val_every,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        meta=meta,
        log_every=log_every,
        callbacks=callbacks,
    )
    device = model_device(model)
    history, step, state = restore_run(
        plan.ckpt_path,
        model,
        plan.optims,
        resume=resume,
        meta=meta,
        total=total,
        generator=generator,
        stateful=plan.stateful,
    )
    streaks = list(state.get("streaks", []))
    streaks = streaks if len(streaks) == len(plan.rules) else [0] * len(plan.rules)

    def save() -> None:
        history.seconds = time.perf_counter() - t0
        if not is_main():  # data parallel: rank 0 writes the checkpoint, the other ranks hold the same state
            return
        save_run(
            plan.ckpt_path,
            model,
            plan.optims,
            step=step,
            total=total,
            history=history,
            meta=meta,
            generator=generator,
            stateful=plan.stateful,
            streaks=streaks,
        )

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=step, desc=desc or f"train {type(model).__name__}", disable=not progress or not is_main()
    )
    pending: list[tuple[int, dict[str, Any], tuple[str, ...]]] = []

    def flush() -> None:
        if pending:
            _record(pending, plan, history, streaks, bar, device)
            pending.clear()
            for cb in callbacks:
                cb(step, history)

    stream = batch_stream(loader, sum(p.batches_before(step) for p in phases), n_batches)
    t0 = time.perf_counter() - history.seconds
    model.train()
    try:
        while step < total:
            values = _train_step(model, plan, step, stream, device, amp, generator)
            step += 1
            for h in plan.after_hooks:
                h(step)
            pending.append((step, *values))
            if step % log_every == 0 or step == total:
                flush()
            if val_every is not None and (step % val_every == 0 or step == total):
                flush()
                _validate(model, val_loader, amp, history, step)
                model.train()
            if checkpoint_every is not None and step % checkpoint_every == 0 and step < total:
                flush()
                save()
        flush()
        if val_loader is not None and val_every is None:
            _validate(model, val_loader, amp, history, step)
        save()
    finally:
        bar.close()
    return history


def _train_step(model, plan: Plan, step: int, stream, device, amp, generator) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One step: hooks, learning rates, then every phase that runs at ``step``; returns the logs."""
    for h in plan.before_hooks:
        h(step)
    for p in plan.phases:
        sched = plan.schedules[p.name]
        if sched is not None:
            factor, opt = lr_factor(sched, step), plan.optims[p.name]
            for g, base in zip(opt.param_groups, plan.base_lrs[id(opt)], strict=True):
                g["lr"] = base * factor
    losses: dict[str, Any] = {}
    logs: dict[str, Any] = {}
    sparse: tuple[str, ...] = ()
    batch = None
    for p in plan.phases:
        if not p.runs_at(step):
            continue
        opt, gen = plan.optims[p.name], generator if plan.accepts_gen[p.name] else None
        for q in p.freeze:  # e.g. the discriminator during the generator's update: no wasted gradients
            q.requires_grad_(False)
        try:
            for _ in range(p.repeat):
                opt.zero_grad(set_to_none=True)
                summed = None
                for _ in range(p.accumulate):
                    if p.fresh:
                        batch = to_device(next(stream), device)
                    with autocast_for(device, amp):
                        loss, p_logs = call_loss(p.loss, batch, f"phase {p.name!r} loss", gen)
                    if not loss.requires_grad:
                        raise ValueError(
                            f"phase {p.name!r}: the loss does not require grad, so it cannot train anything "
                            "(computed under torch.no_grad, or from detached tensors?)"
                        )
                    (loss / p.accumulate if p.accumulate > 1 else loss).backward()
                    summed = loss.detach() if summed is None else summed + loss.detach()
                if is_distributed():  # data parallel (DDP): every rank steps with the mean gradient
                    allreduce_gradients(plan.params[p.name])
                if p.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(plan.params[p.name], p.grad_clip)
                opt.step()
        finally:
            for q in p.freeze:
                q.requires_grad_(True)
        key = plan.log_keys[p.name]
        losses[key] = summed / p.accumulate if p.accumulate > 1 else summed
        logs.update(p_logs)
        if p.every > 1:
            sparse += (key, *p_logs)
    return {**losses, **logs}, sparse


def _record(pending, plan: Plan, history: History, streaks: list[int], bar: Any, device) -> None:
    """Read the pending steps' logs back in one host sync, check them, and append them to history."""
    flat = [(i, k, v) for i, (_, vals, _) in enumerate(pending) for k, v in vals.items()]
    tensors = [v.detach().float().reshape(()).to(device) for _, _, v in flat if isinstance(v, torch.Tensor)]
    numbers = iter(torch.stack(tensors).cpu().tolist() if tensors else [])
    rows: list[dict[str, float]] = [{} for _ in pending]
    for i, k, v in flat:
        rows[i][k] = next(numbers) if isinstance(v, torch.Tensor) else float(v)
    for (s, _, sparse), row in zip(pending, rows, strict=True):
        for name, key in plan.log_keys.items():
            value = row.get(key)
            if value is not None and not math.isfinite(value):
                who = "loss" if len(plan.phases) == 1 else f"the {name!r} phase's loss"
                raise TrainingDivergedError(
                    f"{who} became {value} at step {s}; lower the learning rate, clip gradients, or check the "
                    "data (the last good checkpoint is kept)"
                )
        for r, rule in enumerate(plan.rules):
            missing = rule.keys() - set(row)
            if missing - set(history.logs):
                raise ValueError(
                    f"a divergence rule refers to {sorted(missing)}, which no phase logs; have {sorted(row)}"
                )
            streaks[r] = streaks[r] + 1 if not missing and rule.holds(row) else 0
            if streaks[r] >= rule.patience:
                raise TrainingDivergedError(
                    f"training diverged at step {s}: {rule.describe()} for {rule.patience} steps. {rule.advice}"
                )
        history.append(s, row, sparse)
    bar.update(len(pending))
    bar.set_postfix({k: f"{rows[-1][v]:.4g}" for k, v in plan.log_keys.items() if v in rows[-1]})


def _validate(model: nn.Module, loader: Any, amp: bool | None, history: History, step: int) -> None:
    for k, v in evaluate(model, loader, amp=amp).items():
        history.val.setdefault(k, []).append(v)
    history.val_step.append(step)


def fit_gan(
    model: nn.Module,
    loader: Iterable,
    *,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    divergence: DivergenceRule | None = _AUTO,
    log_every: int = 1,
    **fit_kwargs: Any,
) -> History:
    """Train a GAN: ``n_critic`` discriminator updates on fresh batches, then one generator update.

    One *step* is one generator update (``epochs * len(loader) // n_critic`` steps per
    ``epochs``). Two Adam optimizers with DCGAN's ``betas``: ``lr_d`` for ``model.discriminator``,
    ``lr_g`` for the generator (:func:`genai_lib.phases.adversarial_phases`). The history logs
    ``d_loss``, ``g_loss`` and both logs dicts. ``divergence``: by default the rules the model
    declares (``model.divergence_rules()``, else :data:`genai_lib.phases.DISCRIMINATOR_WINS`);
    ``None`` turns them off. Every other argument is :func:`fit`'s.
    """
    check_positive("lr_g", lr_g, integer=False)
    check_positive("lr_d", lr_d, integer=False)
    check_positive("n_critic", n_critic)
    phases = adversarial_phases(model, lr_g=lr_g, lr_d=lr_d, betas=betas, n_critic=n_critic)
    if divergence is _AUTO:
        declared = getattr(model, "divergence_rules", None)
        rules = tuple(declared()) if callable(declared) else (DISCRIMINATOR_WINS,)
    elif divergence is None:
        rules = ()
    elif isinstance(divergence, DivergenceRule):
        rules = (divergence,)
    else:
        raise TypeError(f"divergence must be a DivergenceRule or None, got {type(divergence).__name__}")
    return fit(model, loader, phases=phases, rules=rules, log_every=log_every, **fit_kwargs)
