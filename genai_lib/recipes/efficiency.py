"""Chapter 18's experiments on the course's character GPT: compress it, distil it, train it on 2 ranks.

The teacher is chapter 7's GPT (:func:`genai_lib.recipes.language.train_char_gpt`, the shared
cache entry ``ch7_gpt_english``). Every run below trains with the teacher's own budget and
optimizer (:data:`~genai_lib.recipes.language.CHAR_GPT`: AdamW, warm-up then cosine decay,
gradient clipping) through the one core, and is cached:

- :func:`prune_finetune`: magnitude pruning (:func:`genai_lib.compress.magnitude_masks`), then
  ``steps`` of fine-tuning with the mask held (:class:`genai_lib.compress.MaskHook`), cached as
  ``ch18_prune<percent>[s]``.
- :func:`train_student`: a half-width GPT (n_embd / 2, the rest of the shape the teacher's) for
  the teacher's number of steps, on the teacher's soft targets (:class:`~genai_lib.compress.KDLoss`,
  cached as ``ch18_student_kd``) or on the data alone (``ch18_student_scratch``).
- :func:`ddp_check`: the same few steps of the core run as 2 gloo ranks x batch B and as one
  process x batch 2 B (:func:`genai_lib.distributed.launch`); returns how far apart they are.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from genai_lib._checks import check_positive
from genai_lib.compress import KDLoss, MaskHook, magnitude_masks
from genai_lib.distributed import check_world_size, launch, shard
from genai_lib.history import History
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.phases import Phase
from genai_lib.recipes.language import CHAR_GPT, CharGPTRecipe
from genai_lib.text import text_loader
from genai_lib.tokenizer import check_token_ids
from genai_lib.train import cosine_schedule, fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode

__all__ = ["budget", "student_config", "prune_finetune", "train_student", "ddp_check", "FT_STEPS", "KD"]

FT_STEPS = {"full": 300, "fast": 30}  # fine-tuning steps after pruning
KD = {"temperature": 2.0, "alpha": 0.5}  # Hinton et al.'s T and the weight of the soft term


def budget(fast: bool | None = None) -> CharGPTRecipe:
    """The teacher's recipe for the mode (``CHAR_GPT["fast"]`` or ``["full"]``)."""
    return CHAR_GPT["fast" if (fast_mode() if fast is None else fast) else "full"]


def student_config(teacher: GPTConfig) -> GPTConfig:
    """The teacher's shape at half the width (n_embd / 2; about a quarter of the parameters)."""
    if teacher.n_embd % (2 * teacher.n_head):
        raise ValueError(f"n_embd={teacher.n_embd} must be a multiple of 2 * n_head={2 * teacher.n_head}")
    return dataclasses.replace(teacher, n_embd=teacher.n_embd // 2)


def _train_lm(model: GPT, ids: torch.Tensor, loss: Any, *, steps: int, recipe: CharGPTRecipe, lr: float, **kw: Any):
    """The teacher's optimizer and schedule on random windows of ``ids``, with ``loss`` as the phase."""
    loader = text_loader(
        ids, model.cfg.block_size, recipe.batch_size, steps_per_epoch=min(steps, 1000),
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    opt = model.configure_optimizers(recipe.weight_decay, lr, (0.9, 0.95))
    phase = Phase("loss", loss, optimizer=opt, lr=lr, grad_clip=1.0)
    warmup = min(recipe.warmup, steps // 10)
    kw["key"] = {"ids": ids, "batch": recipe.batch_size, "schedule": f"cosine({warmup}, {steps}, 0.1)", **kw["key"]}
    sched = cosine_schedule(warmup, steps, final=0.1)
    return load_or_train(model, loader, steps=steps, phases=[phase], lr_schedule=sched, log_every=10, **kw)


def prune_finetune(
    model: GPT,
    train_ids: torch.Tensor,
    sparsity: float,
    *,
    structured: bool = False,
    steps: int | None = None,
    fast: bool | None = None,
    progress: bool = False,
) -> tuple[GPT, History | None]:
    """A pruned copy of ``model`` (``sparsity`` of each weight matrix zeroed by magnitude), then
    fine-tuned for ``steps`` (default ``FT_STEPS``) with the mask held at a tenth of the teacher's
    peak learning rate; ``steps=0`` returns it untrained with History None."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    mode = "fast" if (fast_mode() if fast is None else fast) else "full"
    steps = FT_STEPS[mode] if steps is None else steps
    check_positive("steps", steps, allow_zero=True)
    pruned = copy.deepcopy(model)
    masks = magnitude_masks(pruned, sparsity, structured=structured)
    hook = MaskHook(pruned, masks)
    if steps == 0:
        return pruned, None
    train_ids = check_token_ids("train_ids", train_ids, model.cfg.vocab_size, dims=(1,))
    recipe = budget(fast)
    name = f"ch18_prune{round(100 * sparsity)}{'s' if structured else ''}"
    key = {"base": pruned.state_dict(), "masks": masks, "sparsity": sparsity, "structured": structured}
    history = _train_lm(
        pruned, train_ids, pruned.loss, steps=steps, recipe=recipe, lr=0.1 * recipe.lr,
        name=name, key=key, hooks=[hook], progress=progress,
    )  # fmt: skip
    return pruned, history


def train_student(
    teacher: GPT,
    train_ids: torch.Tensor,
    *,
    distill: bool,
    fast: bool | None = None,
    temperature: float = KD["temperature"],
    alpha: float = KD["alpha"],
    progress: bool = False,
) -> tuple[GPT, History]:
    """The half-width student (:func:`student_config`, weights from seed 0) trained for the
    teacher's steps: on ``alpha`` T^2 KL(teacher_T || student_T) + (1 - alpha) CE with
    ``distill``, on the cross-entropy alone without. Cached (a ``temperature`` or ``alpha`` other
    than ``KD``'s in its own entry); returns ``(student, history)``."""
    if not isinstance(teacher, GPT):
        raise TypeError(f"teacher must be a GPT, got {type(teacher).__name__}")
    train_ids = check_token_ids("train_ids", train_ids, teacher.cfg.vocab_size, dims=(1,))
    recipe = budget(fast)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        student = GPT(student_config(teacher.cfg)).to(next(teacher.parameters()).device)
    if distill:
        loss: Any = KDLoss(student, teacher, temperature, alpha)
        key: dict[str, Any] = {"teacher": teacher.state_dict(), "T": float(temperature), "alpha": float(alpha)}
    else:
        loss, key = student.loss, {"kind": "cross-entropy only"}
    name = "ch18_student_kd" if distill else "ch18_student_scratch"
    if distill and (float(temperature), float(alpha)) != (KD["temperature"], KD["alpha"]):
        name += f"_T{temperature:g}_a{alpha:g}"  # an exercise's setting: the shared entry stays
    history = _train_lm(
        student, train_ids, loss, steps=recipe.steps, recipe=recipe, lr=recipe.lr, name=name, key=key,
        progress=progress,
    )  # fmt: skip
    return student, history


def _ddp_worker(cfg: GPTConfig, state: dict, xs: torch.Tensor, ys: torch.Tensor, lr: float) -> dict[str, Any]:
    """One rank (or the single process when no group is initialised): ``len(xs)`` steps of the
    core on this rank's shard of each batch; returns the losses, last gradients and weights."""
    model = GPT(cfg)
    model.load_state_dict(state)
    batches = [(shard(x), shard(y)) for x, y in zip(xs, ys, strict=True)]
    hist = fit(model, batches, steps=len(batches), lr=lr, grad_clip=1.0, log_every=1, progress=False)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return {"loss": hist.logs["loss"], "grads": grads, "state": model.state_dict()}


def ddp_check(
    cfg: GPTConfig, *, world_size: int = 2, batch_size: int = 4, steps: int = 3, seed: int = 0
) -> dict[str, float]:
    """``steps`` of Adam through :func:`genai_lib.train.fit` on random token batches, once on
    ``world_size`` gloo ranks with ``batch_size`` sequences each, once in this process with
    ``world_size * batch_size``. Returns the largest absolute and relative differences of the
    per-step losses (mean over ranks), the last step's gradients and the final weights, and
    ``ranks_equal`` (1.0 when every rank ends with the same weights)."""
    world_size = check_world_size(world_size)
    check_positive("batch_size", batch_size)
    check_positive("steps", steps)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = GPT(cfg).state_dict()
    shape = (steps, world_size * batch_size, cfg.block_size)
    xs = torch.randint(cfg.vocab_size, shape, generator=g)
    ys = torch.randint(cfg.vocab_size, shape, generator=g)
    ranks = launch(_ddp_worker, world_size, (cfg, state, xs, ys, 1e-3))
    single = _ddp_worker(cfg, state, xs, ys, 1e-3)
    loss = torch.tensor([r["loss"] for r in ranks], dtype=torch.float64).mean(0)

    def gap(a: dict, b: dict) -> tuple[float, float]:
        absd = max(float((a[k] - b[k]).abs().max()) for k in b)
        return absd, absd / max(float(v.abs().max()) for v in b.values())

    grad_abs, grad_rel = gap(ranks[0]["grads"], single["grads"])
    w_abs, w_rel = gap(ranks[0]["state"], single["state"])
    ref = torch.tensor(single["loss"], dtype=torch.float64)
    same = all(torch.equal(r["state"][k], ranks[0]["state"][k]) for r in ranks for k in single["state"])
    return {
        "loss_abs": float((loss - ref).abs().max()),
        "loss_rel": float(((loss - ref).abs() / ref.abs()).max()),
        "grad_abs": grad_abs,
        "grad_rel": grad_rel,
        "weight_abs": w_abs,
        "weight_rel": w_rel,
        "ranks_equal": float(same),
    }
