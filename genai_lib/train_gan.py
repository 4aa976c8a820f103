"""Training loop for GANs (chapter 3): alternating discriminator and generator updates.

``fit_gan(model, loader, ...)`` trains any model with a ``.discriminator`` submodule and the two
halves of the game, ``d_loss(batch) -> (loss, logs)`` and ``g_loss(batch) -> (loss, logs)``
(:mod:`genai_lib.models.gan`, :mod:`genai_lib.models.vaegan`): ``n_critic`` discriminator steps,
then one generator step with the discriminator frozen; two Adam optimizers with DCGAN's
``betas=(0.5, 0.999)``. It shares checkpointing, resuming, progress and the :class:`History`
with :func:`genai_lib.train.fit`, and stops a run whose losses are not finite or whose
discriminator has won (:class:`DivergenceRule`). ``load_or_train_gan`` caches the weights.

Papers: Goodfellow et al. 2014 (alternating updates of the minimax game), Radford et al. 2016
(DCGAN: Adam with lr 2e-4, beta1 0.5), Gulrajani et al. 2017 (WGAN-GP: ``n_critic`` critic steps
per generator step), Larsen et al. 2016 (VAE-GAN, trained by the same loop).

These names are also importable from :mod:`genai_lib.train`, where they used to live.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_positive
from genai_lib.checkpoint import CheckpointError
from genai_lib.train import (
    History,
    TrainingDivergedError,
    _batches_from,
    _restore_run,
    _save_run,
    _step_budget,
    autocast_for,
    cosine_schedule,
    load_or_train,
    model_device,
    to_device,
)

__all__ = ["DivergenceRule", "fit_gan", "load_or_train_gan"]


@dataclass(frozen=True)
class DivergenceRule:
    """When :func:`fit_gan` declares a GAN run dead (besides any NaN/inf loss, always fatal).

    The discriminator has "won" when its loss stays below ``d_loss_below`` while the
    generator's loss stays above ``g_loss_above`` for ``patience`` consecutive steps: its
    gradients then carry no signal and training will not recover. This rule is skipped for
    critics (``cfg.loss == "wgan-gp"``), whose losses are unbounded scores, not probabilities.
    """

    d_loss_below: float = 1e-3  # D loss this close to 0 means D separates real from fake perfectly
    g_loss_above: float = 10.0  # ... while G's loss explodes (-log D(G(z)) > 10: D(G(z)) < 5e-5)
    patience: int = 200  # consecutive generator steps


def _gan_param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    if not (hasattr(model, "d_loss") and hasattr(model, "g_loss")):
        raise TypeError(f"{type(model).__name__} needs d_loss(batch) and g_loss(batch) methods for fit_gan")
    if not hasattr(model, "discriminator"):
        raise TypeError(f"{type(model).__name__} needs a .discriminator submodule for fit_gan")
    d_params = [p for p in model.discriminator.parameters() if p.requires_grad]
    if hasattr(model, "generator_parameters"):
        g_params = [p for p in model.generator_parameters() if p.requires_grad]
    else:
        d_ids = {id(p) for p in d_params}
        g_params = [p for p in model.parameters() if p.requires_grad and id(p) not in d_ids]
    if not d_params or not g_params:
        raise ValueError(f"{type(model).__name__} needs trainable generator and discriminator parameters")
    return g_params, d_params


def _call_gan_loss(fn: Callable[[Any], Any], batch: Any, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
    out = fn(batch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError(f"{name}(batch) must return (scalar, logs dict), got {type(out).__name__}")
    if not isinstance(out[0], torch.Tensor) or out[0].dim() != 0:
        raise TypeError(f"{name} must return a scalar tensor first")
    return out


def fit_gan(
    model: nn.Module,
    loader: Iterable,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    lr_schedule: Callable[[int], float] | str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
    amp: bool | None = None,
    log_every: int = 1,
    progress: bool = True,
    desc: str | None = None,
    callbacks: Sequence[Callable[[int, History], None]] = (),
    divergence: DivergenceRule | None = DivergenceRule(),  # noqa: B008 (frozen, immutable)
) -> History:
    """Train a GAN by alternating ``n_critic`` discriminator steps with one generator step.

    One *step* is one generator update; it consumes ``n_critic`` batches (one per D update;
    the G update reuses the last one for its size and labels). ``epochs`` counts passes over
    the loader, i.e. ``epochs * len(loader) // n_critic`` steps. Two Adam optimizers
    (``betas=(0.5, 0.999)`` as in DCGAN): ``lr_d`` for ``model.discriminator``, ``lr_g`` for
    the rest (or ``model.generator_parameters()`` if the model defines it); ``lr_schedule(step)``
    multiplies both learning rates (e.g. :func:`cosine_schedule`; the string ``"cosine"`` means
    ``cosine_schedule(0, total_steps, final=0.05)``, handy in plain-data experiment specs). During the G step
    the discriminator's parameters are frozen (no wasted gradients).

    The history logs ``d_loss``, ``g_loss`` and every entry of both logs dicts per step.
    Checkpoints (both optimizers, step, history, RNG) are written atomically every
    ``checkpoint_every`` steps and at the end; ``resume=True`` continues batch for batch. A
    NaN/inf loss, or a discriminator that has won (see :class:`DivergenceRule`; ``None``
    turns that rule off), raises :class:`TrainingDivergedError` naming the step.
    """
    g_params, d_params = _gan_param_groups(model)
    n_batches, total = _step_budget(loader, epochs, steps, n_critic=n_critic)
    check_positive("lr_g", lr_g, integer=False)
    check_positive("lr_d", lr_d, integer=False)
    check_positive("log_every", log_every)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0 <= float(b) < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if checkpoint_every is not None:
        check_positive("checkpoint_every", checkpoint_every)
        if checkpoint is None:
            raise ValueError("checkpoint_every needs a checkpoint path")
    if lr_schedule == "cosine":
        lr_schedule = cosine_schedule(0, total, final=0.05)
    elif isinstance(lr_schedule, str) or (lr_schedule is not None and not callable(lr_schedule)):
        raise ValueError(f"lr_schedule must be a callable, 'cosine' or None, got {lr_schedule!r}")
    if divergence is not None and not isinstance(divergence, DivergenceRule):
        raise TypeError(f"divergence must be a DivergenceRule or None, got {type(divergence).__name__}")

    device = model_device(model)
    opt_g = torch.optim.Adam(g_params, lr=lr_g, betas=tuple(betas))
    opt_d = torch.optim.Adam(d_params, lr=lr_d, betas=tuple(betas))
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    optimizers = {"opt_g": opt_g, "opt_d": opt_d}  # checkpoint key -> optimizer

    def validate(state: dict[str, Any]) -> None:
        missing = [k for k in ("opt_g", "opt_d") if k not in state]
        if missing:
            raise CheckpointError(f"{ckpt_path} is not a fit_gan checkpoint (no {' or '.join(missing)} state)")

    history, step, state = _restore_run(
        ckpt_path, model, optimizers, resume=resume, meta=meta, total=total, validate=validate
    )
    streak = int(state.get("streak", 0))  # consecutive steps matching the divergence rule

    def save() -> None:
        _save_run(
            ckpt_path,
            model,
            optimizers,
            step=step,
            total=total,
            history=history,
            meta=meta,
            streak=streak,
            n_critic=n_critic,
        )

    def batches() -> Any:
        """Endless batches, starting where ``step`` left off (exact for TensorLoader)."""
        consumed = step * n_critic
        epoch, offset = divmod(consumed, n_batches) if n_batches else (0, 0)
        while True:
            got = False
            for b in _batches_from(loader, epoch, offset):
                got = True
                yield b
            if not got:
                raise ValueError("the training loader yielded no batches")
            epoch, offset = epoch + 1, 0

    critic_rule = getattr(getattr(model, "cfg", None), "loss", None) == "wgan-gp"
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=step, desc=desc or f"train {type(model).__name__}", disable=not progress, leave=True
    )
    pending: list[tuple[int, torch.Tensor, torch.Tensor, dict[str, Any]]] = []

    def flush() -> None:
        nonlocal streak
        if not pending:
            return
        pair = torch.stack([torch.stack([p[1].float(), p[2].float()]) for p in pending]).cpu()  # (n, 2)
        for (s, _, _, logs), (dl, gl) in zip(pending, pair.tolist(), strict=True):
            for name, value in (("discriminator", dl), ("generator", gl)):
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"the {name} loss became {value} at step {s}; lower the learning rates, "
                        f"check the data, or try loss='wgan-gp' (the last good checkpoint is kept)"
                    )
            if divergence is not None and not critic_rule:
                streak = streak + 1 if (abs(dl) < divergence.d_loss_below and gl > divergence.g_loss_above) else 0
                if streak >= divergence.patience:
                    raise TrainingDivergedError(
                        f"training diverged at step {s}: the discriminator loss stayed below "
                        f"{divergence.d_loss_below} while the generator loss stayed above {divergence.g_loss_above} "
                        f"for {divergence.patience} steps (D wins, G gets no gradient); lower lr_d, use label "
                        f"smoothing or loss='wgan-gp' (pass divergence=None to disable this check)"
                    )
            history.step.append(s)
            history.logs.setdefault("d_loss", []).append(dl)
            history.logs.setdefault("g_loss", []).append(gl)
            for k, v in logs.items():
                history.logs.setdefault(k, []).append(float(v))
        bar.update(len(pending))
        bar.set_postfix(d=f"{history.logs['d_loss'][-1]:.4g}", g=f"{history.logs['g_loss'][-1]:.4g}")
        pending.clear()
        for cb in callbacks:
            cb(step, history)

    t0 = time.perf_counter() - history.seconds
    model.train()
    stream = batches()
    try:
        while step < total:
            if lr_schedule is not None:
                factor = float(lr_schedule(step))
                for opt, base in ((opt_g, lr_g), (opt_d, lr_d)):
                    for group in opt.param_groups:
                        group["lr"] = base * factor
            for _ in range(n_critic):
                batch = to_device(next(stream), device)
                with autocast_for(device, amp):
                    d_loss, d_logs = _call_gan_loss(model.d_loss, batch, "d_loss")
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            for p in d_params:
                p.requires_grad_(False)
            try:
                with autocast_for(device, amp):
                    g_loss, g_logs = _call_gan_loss(model.g_loss, batch, "g_loss")
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
            finally:
                for p in d_params:
                    p.requires_grad_(True)
            step += 1
            logs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in {**d_logs, **g_logs}.items()}
            pending.append((step, d_loss.detach(), g_loss.detach(), logs))
            if step % log_every == 0 or step == total:
                flush()
            if checkpoint_every is not None and step % checkpoint_every == 0 and step < total:
                flush()
                history.seconds = time.perf_counter() - t0
                save()
        flush()
        history.seconds = time.perf_counter() - t0
        save()
    finally:
        bar.close()
    return history


def load_or_train_gan(model: nn.Module, loader: Iterable, *, name: str, key: Any = None, **fit_kwargs: Any) -> History:
    """:func:`load_or_train` for GANs: cached weights for ``name`` if trained identically, else ``fit_gan``.

    The cache entry ``cache_dir()/name.pt`` matches on the model config, the simple keyword
    arguments of :func:`fit_gan` and ``key``; an interrupted run resumes.
    """
    return load_or_train(model, loader, name=name, key=key, trainer=fit_gan, **fit_kwargs)
