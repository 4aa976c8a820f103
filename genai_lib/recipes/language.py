"""Training language models on token streams (chapters 7-8), and the course's character models.

- :func:`train_gpt`: random windows of a token stream, AdamW from
  :meth:`~genai_lib.models.gpt.GPT.configure_optimizers`, linear warm-up then cosine decay,
  gradient clipping, bf16 autocast on CUDA, optional ``torch.compile``.
- :func:`train_lstm`: truncated back-propagation through time (Williams & Peng 1990): contiguous
  windows (:class:`genai_lib.text.BPTTLoader`), the LSTM state carried, detached, from one window
  to the next and reset at each pass over the data. The carried state is part of the run's
  checkpoint, so a run resumes exactly.
- ``CHAR_GPT`` / :func:`train_char_gpt` and ``CHAR_LSTM`` / :func:`train_char_lstm`: chapter 7's
  character models on the English corpus, each in one cache entry that notebooks 7, 8.1 and 8.2
  share.

All of them train through the one core, :func:`genai_lib.train.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_positive
from genai_lib.history import History
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.models.lstm import LSTMLM, LSTMConfig
from genai_lib.phases import Phase
from genai_lib.text import BPTTLoader, text_loader
from genai_lib.tokenizer import check_token_ids
from genai_lib.train import cosine_schedule, fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode

__all__ = [
    "train_gpt",
    "train_lstm",
    "CharGPTRecipe",
    "CHAR_GPT",
    "train_char_gpt",
    "CharLSTMRecipe",
    "CHAR_LSTM",
    "train_char_lstm",
]


def _run(model: Any, loader: Any, name: str | None, key: Any, **kwargs: Any) -> History:
    if name is None:
        return fit(model, loader, **kwargs)
    return load_or_train(model, loader, name=name, key=key, **kwargs)


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
) -> History:
    """Train ``model`` on random windows of the 1-D token stream ``ids`` (see the module docstring).

    ``compile=True`` (CUDA) compiles the model in place with ``torch.compile``. With ``name``,
    the run goes through :func:`genai_lib.train_cache.load_or_train`: cached weights for the
    same config, token stream, arguments and ``key`` are loaded instead of retrained. Returns
    the History (``val`` holds held-out loss every ``val_every`` steps when ``val_ids`` is given).
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    check_positive("steps", steps)
    check_positive("min_lr", min_lr, integer=False)
    if min_lr > lr:
        raise ValueError(f"min_lr must be <= lr, got min_lr={min_lr}, lr={lr}")
    ids = check_token_ids("ids", ids, model.cfg.vocab_size, dims=(1,))
    block = model.cfg.block_size
    loader = text_loader(ids, block, batch_size, steps_per_epoch=min(steps, 1000), generator=generator)
    val_loader = None
    if val_ids is not None:
        val_ids = check_token_ids("val_ids", val_ids, model.cfg.vocab_size, dims=(1,))
        val_loader = text_loader(
            val_ids, block, batch_size, steps_per_epoch=20, generator=torch.Generator().manual_seed(1234)
        )
    if compile:
        model.compile()
    opt = model.configure_optimizers(weight_decay, lr, betas)
    recipe = {
        "ids": ids,
        "batch_size": batch_size,
        "min_lr": min_lr,
        "warmup": warmup,
        "weight_decay": weight_decay,
        "betas": betas,
        "val_ids": val_ids,
        "loader_seed": loader.seed,
        "user": key,
    }
    return _run(
        model,
        loader,
        name,
        recipe,
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


class TBPTTLoss:
    """The loss of truncated BPTT: carries the LSTM state from one window to the next.

    Called with ``(x, y, first)`` batches of a :class:`~genai_lib.text.BPTTLoader`: a pass over
    the data starts from a zero state; every later window starts from the previous window's
    final state, detached so that gradients reach back one window only. Its ``state_dict``
    holds the carried state, which the training core saves in checkpoints.
    """

    def __init__(self, model: LSTMLM) -> None:
        self.model = model
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y, first = batch
        if first:
            self.state = None  # a new pass over the data starts from a zero state
        elif self.state is not None:
            self.state = (self.state[0].detach(), self.state[1].detach())  # truncate the graph here
        _, loss, self.state = self.model(x, y, self.state)
        return loss, {}

    def state_dict(self) -> dict[str, Any]:
        return {"state": [] if self.state is None else [t.detach() for t in self.state]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.state = tuple(saved["state"]) if saved["state"] else None  # type: ignore[assignment]


def train_lstm(
    model: LSTMLM,
    ids: torch.Tensor,
    *,
    steps: int,
    block_size: int = 64,
    batch_size: int = 32,
    lr: float = 2e-3,
    grad_clip: float | None = 1.0,
    lr_schedule: Any = None,
    log_every: int = 10,
    name: str | None = None,
    key: Any = None,
    **fit_kwargs: Any,
) -> History:
    """Truncated BPTT on the 1-D token stream ``ids`` with Adam (see the module docstring).

    With ``name`` the weights and History are cached like :func:`train_gpt`'s; ``lr_schedule``
    (step -> factor) is a function and cannot be fingerprinted: describe it in ``key``.
    """
    if not isinstance(model, LSTMLM):
        raise TypeError(f"model must be an LSTMLM, got {type(model).__name__}")
    check_positive("steps", steps)
    ids = check_token_ids("ids", ids, model.cfg.vocab_size, dims=(1,))
    loader = BPTTLoader(ids, block_size, batch_size)
    phase = Phase(
        "loss", TBPTTLoss(model), [p for p in model.parameters() if p.requires_grad], lr=lr, grad_clip=grad_clip
    )
    recipe = {
        "ids": ids,
        "block_size": block_size,
        "batch_size": batch_size,
        "lr": lr,
        "grad_clip": grad_clip,
        "user": key,
    }
    fit_kwargs.setdefault("progress", False)
    return _run(
        model,
        loader,
        name,
        recipe,
        steps=steps,
        phases=[phase],
        lr_schedule=lr_schedule,
        log_every=log_every,
        **fit_kwargs,
    )


# --------------------------------------------------------------------------- the character models


def _char_model(table: dict, kind: type, build: type, recipe: Any, fast: bool | None, vocab_size: int, device: Any):
    """``(recipe, is_the_shared_one, untrained model)``: the caller's recipe or the shared one of
    ``table`` for the mode, and its model with weights from seed 0 inside ``fork_rng``."""
    shared = table["fast" if (fast_mode() if fast is None else fast) else "full"]
    if recipe is not None and not isinstance(recipe, kind):
        raise TypeError(f"recipe must be a {kind.__name__}, got {type(recipe).__name__}")
    recipe = recipe or shared
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build(recipe.config(vocab_size)).to(device)
    return recipe, recipe == shared, model


@dataclass(frozen=True)
class CharGPTRecipe:
    """A character GPT's shape and its AdamW + warm-up/cosine budget (see ``CHAR_GPT``)."""

    n_layer: int  # Transformer blocks
    n_embd: int  # model width d
    block_size: int  # context length T
    steps: int  # optimizer steps
    batch_size: int  # windows per step
    lr: float  # peak learning rate (cosine decay to 10% of it)
    warmup: int  # linear warm-up steps
    n_head: int = 4  # attention heads
    weight_decay: float = 0.1  # on the weight matrices only (GPT.configure_optimizers)

    def config(self, vocab_size: int) -> GPTConfig:
        """The model config for a tokenizer of ``vocab_size`` ids (rotary positions)."""
        return GPTConfig(
            vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            pos="rope",
        )


CHAR_GPT: dict[str, CharGPTRecipe] = {
    # Full: 0.80M parameters, 1,500 steps of 12 x 64 characters (67 s on one core of the 2026-12-01 CPU, about
    # 4 minutes on the older one); held-out 1.82 bits/char in chapter 7, against 1.90 for the 5-gram and 2.18 for
    # the LSTM.
    "full": CharGPTRecipe(n_layer=4, n_embd=128, block_size=64, steps=1500, batch_size=12, lr=3e-3, warmup=100),
    "fast": CharGPTRecipe(n_layer=2, n_embd=64, block_size=32, steps=200, batch_size=16, lr=5e-3, warmup=20),
}


def train_char_gpt(
    train_ids: torch.Tensor,
    vocab_size: int,
    *,
    recipe: CharGPTRecipe | None = None,
    fast: bool | None = None,
    device: Any = None,
    progress: bool = False,
) -> tuple[GPT, History]:
    """Chapter 7's character GPT on ``train_ids`` (1-D ids of the English training split): trained
    with ``CHAR_GPT["fast" if fast else "full"]`` and cached as ``ch7_gpt_english``, or loaded.

    ``recipe`` replaces the shared recipe (e.g. ``dataclasses.replace(CHAR_GPT["full"], steps=3000)``
    for an exercise); its weights are cached under ``ch7_gpt_english_custom`` so the shared entry
    stays. Weights come from seed 0 inside ``torch.random.fork_rng``. Returns ``(model, history)``;
    ``history.from_cache`` says whether it was loaded. ``fast`` defaults to ``GENAI_FAST``.
    """
    recipe, shared, model = _char_model(CHAR_GPT, CharGPTRecipe, GPT, recipe, fast, vocab_size, device)
    history = train_gpt(
        model,
        train_ids,
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        min_lr=0.1 * recipe.lr,
        warmup=recipe.warmup,
        weight_decay=recipe.weight_decay,
        generator=torch.Generator().manual_seed(0),
        name="ch7_gpt_english" if shared else "ch7_gpt_english_custom",
        progress=progress,
    )
    return model, history


@dataclass(frozen=True)
class CharLSTMRecipe:
    """A character LSTM's shape and its TBPTT + warm-up/cosine budget (see ``CHAR_LSTM``)."""

    n_embd: int  # token embedding size
    hidden: int  # LSTM state size
    n_layers: int  # stacked LSTM layers
    steps: int  # optimizer steps
    block_size: int  # window length T (gradients reach back T characters)
    batch_size: int  # parallel streams B
    lr: float  # peak Adam learning rate (cosine decay to 10% of it)
    warmup: int  # linear warm-up steps

    def config(self, vocab_size: int) -> LSTMConfig:
        return LSTMConfig(vocab_size, n_embd=self.n_embd, hidden=self.hidden, n_layers=self.n_layers)


CHAR_LSTM: dict[str, CharLSTMRecipe] = {
    # Full: the same wall-clock budget as CHAR_GPT["full"] on a laptop CPU (640 steps, about a minute);
    # held-out 2.18 bits/char in chapter 7.
    "full": CharLSTMRecipe(
        n_embd=64, hidden=256, n_layers=2, steps=640, block_size=64, batch_size=32, lr=2e-3, warmup=50
    ),
    "fast": CharLSTMRecipe(
        n_embd=32, hidden=128, n_layers=1, steps=120, block_size=32, batch_size=32, lr=5e-3, warmup=10
    ),
}


def train_char_lstm(
    train_ids: torch.Tensor,
    vocab_size: int,
    *,
    recipe: CharLSTMRecipe | None = None,
    fast: bool | None = None,
    device: Any = None,
    progress: bool = False,
) -> tuple[LSTMLM, History]:
    """Chapter 7's character LSTM on ``train_ids``, trained with ``CHAR_LSTM`` and cached as
    ``ch7_lstm``, or loaded. ``recipe`` replaces the shared recipe (an exercise); it is cached as
    ``ch7_lstm_custom``. Weights come from seed 0 inside ``torch.random.fork_rng``."""
    recipe, shared, model = _char_model(CHAR_LSTM, CharLSTMRecipe, LSTMLM, recipe, fast, vocab_size, device)
    history = train_lstm(
        model,
        train_ids,
        steps=recipe.steps,
        block_size=recipe.block_size,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        lr_schedule=cosine_schedule(recipe.warmup, recipe.steps),
        name="ch7_lstm" if shared else "ch7_lstm_custom",
        key={"schedule": f"cosine({recipe.warmup}, {recipe.steps}, 0.1)"},
        progress=progress,
    )
    return model, history
