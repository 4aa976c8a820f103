"""How a model says what training means for it: phases, divergence rules and step hooks.

A base module with no training code, so models may import it: a model (or a small function
beside it) *declares* its training as a list of :class:`Phase` objects and the one training core,
:func:`genai_lib.train.fit`, runs them. A phase names the loss it minimises, the parameters it
updates with which optimizer (param groups with their own learning rates allowed), and how
often it runs:

- a VAE, an LM, a classifier: one phase on ``model.loss`` (what ``fit`` builds by default);
- a GAN (Goodfellow et al. 2014; WGAN-GP, Gulrajani et al. 2017): ``n_critic`` discriminator
  updates, each on a fresh batch, then one generator update on the last batch with the
  discriminator frozen (:func:`adversarial_phases`);
- CycleGAN (Zhu et al. 2017): both generators in one phase, both discriminators in another, two
  optimizers, one batch per step;
- StyleGAN2 (Karras et al. 2020): the mapping network in a param group at 0.01x the learning
  rate, and lazy R1 regularisation: a phase that runs every 16 steps and steps the
  discriminator's optimizer (``shares="d"``).

A :class:`DivergenceRule` declares when a run is dead although its losses are finite (a
discriminator that has won); the thresholds belong to the model's losses, so the model declares
them. A *hook* is called by the core around every step: ``before_step(step)`` (set an annealed
KL weight) and ``after_step(step)`` (update an EMA of the weights, :class:`genai_lib.models._layers.EMA`);
a plain callable is an ``after_step``. Hooks with ``state_dict``/``load_state_dict`` are saved
in checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_positive

__all__ = [
    "Phase",
    "DivergenceRule",
    "DISCRIMINATOR_WINS",
    "adversarial_phases",
    "Snapshots",
    "OPTIMIZERS",
    "hook_list",
]

OPTIMIZERS = ("adam", "adamw", "sgd")

LossFn = Callable[..., tuple[torch.Tensor, dict[str, Any]]]


@dataclass(frozen=True)
class Phase:
    """One kind of update inside a training step (see the module docstring)."""

    name: str  # log key prefix ("d" logs "d_loss") and checkpoint key; a single phase logs "loss"
    loss: LossFn  # batch -> (scalar loss, logs dict)
    params: Sequence[Any] = ()  # parameters, or param groups [{"params": [...], "lr": ...}, ...]
    optimizer: Any = "adam"  # "adam", "adamw", "sgd", a torch.optim.Optimizer, or factory(groups) -> optimizer
    lr: float = 1e-3  # learning rate of groups that do not set their own
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW betas
    weight_decay: float = 0.0  # Adam(W) weight decay
    repeat: int = 1  # updates per step (a WGAN critic's n_critic); each fresh update draws a new batch
    every: int = 1  # the phase runs on steps s with s % every == 0 (lazy regularisation: every=16)
    fresh: bool = True  # draw new batches for this phase; False: reuse the last batch drawn in the step
    accumulate: int = 1  # micro-batches per update: gradients summed, each loss divided by accumulate
    grad_clip: float | None = None  # clip the gradient norm of the phase's parameters
    freeze: Sequence[nn.Parameter] = ()  # parameters with requires_grad off while this phase runs
    shares: str | None = None  # step the optimizer of the earlier phase with this name
    lr_schedule: Callable[[int], float] | None = None  # this phase's lr factor; None: fit's lr_schedule

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a phase name must be a short identifier such as 'd' or 'g', got {self.name!r}")
        if not callable(self.loss):
            raise TypeError(f"phase {self.name!r}: loss must be callable (batch -> (loss, logs)), got {self.loss!r}")
        for key in ("repeat", "every", "accumulate"):
            check_positive(f"phase {self.name!r} {key}", getattr(self, key))
        check_positive(f"phase {self.name!r} lr", self.lr, integer=False)
        if not math.isfinite(self.lr):
            raise ValueError(f"phase {self.name!r}: lr must be finite, got {self.lr!r}")
        check_positive(f"phase {self.name!r} weight_decay", self.weight_decay, integer=False, allow_zero=True)
        betas = self.betas
        if not (
            isinstance(betas, (tuple, list))
            and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(f"phase {self.name!r}: betas must be two numbers in [0, 1), got {betas!r}")
        if self.grad_clip is not None:
            check_positive(f"phase {self.name!r} grad_clip", self.grad_clip, integer=False)
        if not isinstance(self.fresh, bool):
            raise TypeError(f"phase {self.name!r}: fresh must be a bool, got {type(self.fresh).__name__}")
        if not self.fresh and self.accumulate > 1:
            raise ValueError(f"phase {self.name!r}: accumulate > 1 needs fresh batches (fresh=True)")
        if isinstance(self.optimizer, str) and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"phase {self.name!r}: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule is not None and not callable(self.lr_schedule):
            raise TypeError(f"phase {self.name!r}: lr_schedule must be callable (step -> factor)")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "freeze", tuple(self.freeze))
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))

    @property
    def log_key(self) -> str:
        return f"{self.name}_loss"

    def runs_at(self, step: int) -> bool:
        """Whether the phase runs in step ``step`` (0-based, before it is counted)."""
        return step % self.every == 0

    def batches_before(self, step: int) -> int:
        """Fresh batches this phase drew in steps 0 .. step-1 (to resume the data stream exactly)."""
        if not self.fresh:
            return 0
        runs = (step + self.every - 1) // self.every
        return runs * self.repeat * self.accumulate


@dataclass(frozen=True)
class DivergenceRule:
    """A run is dead when every ``below`` log stays under its bound and every ``above`` log over
    its bound for ``patience`` consecutive steps. NaN or infinite losses are always fatal."""

    below: Mapping[str, float] = field(default_factory=dict)  # log key -> upper bound
    above: Mapping[str, float] = field(default_factory=dict)  # log key -> lower bound
    patience: int = 200  # consecutive steps
    advice: str = ""  # what to try, appended to the error

    def __post_init__(self) -> None:
        check_positive("patience", self.patience)
        if not self.below and not self.above:
            raise ValueError("a DivergenceRule needs at least one bound in below or above")
        for kind in ("below", "above"):
            bounds = getattr(self, kind)
            if not isinstance(bounds, Mapping):
                raise TypeError(f"{kind} must map log names to numbers, got {type(bounds).__name__}")
            for k, v in bounds.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{kind}[{k!r}] must be a finite number, got {v!r}")
            object.__setattr__(self, kind, MappingProxyType({str(k): float(v) for k, v in bounds.items()}))

    def keys(self) -> set[str]:
        return set(self.below) | set(self.above)

    def holds(self, values: Mapping[str, float]) -> bool:
        """Whether this step's values meet every bound."""
        return all(values[k] < b for k, b in self.below.items()) and all(values[k] > b for k, b in self.above.items())

    def describe(self) -> str:
        parts = [f"{k} < {b:g}" for k, b in self.below.items()] + [f"{k} > {b:g}" for k, b in self.above.items()]
        return " and ".join(parts)


# A discriminator whose BCE loss is ~0 while the generator's -log D(G(z)) > 10 (D(G(z)) < 5e-5)
# separates real from fake perfectly; its gradients then carry no signal and G will not recover.
DISCRIMINATOR_WINS = DivergenceRule(
    below={"d_loss": 1e-3},
    above={"g_loss": 10.0},
    patience=200,
    advice="lower lr_d, use label smoothing or loss='wgan-gp' (divergence=None disables this check)",
)


def adversarial_phases(
    model: nn.Module,
    *,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
) -> list[Phase]:
    """The two phases of a GAN: ``n_critic`` D updates on fresh batches, then one G update.

    Works for any model with ``d_loss(batch)``, ``g_loss(batch)`` and a ``.discriminator``
    submodule; G's parameters are ``model.generator_parameters()`` if defined, else every
    trainable parameter outside the discriminator. D is frozen during the G update (no wasted
    gradients). Adam with DCGAN's ``betas=(0.5, 0.999)`` (Radford et al. 2016).
    """
    if not (hasattr(model, "d_loss") and hasattr(model, "g_loss")):
        raise TypeError(f"{type(model).__name__} needs d_loss(batch) and g_loss(batch) methods to train as a GAN")
    if not isinstance(getattr(model, "discriminator", None), nn.Module):
        raise TypeError(f"{type(model).__name__} needs a .discriminator submodule to train as a GAN")
    d_params = [p for p in model.discriminator.parameters() if p.requires_grad]
    if hasattr(model, "generator_parameters"):
        g_params = [p for p in model.generator_parameters() if p.requires_grad]
    else:
        d_ids = {id(p) for p in d_params}
        g_params = [p for p in model.parameters() if p.requires_grad and id(p) not in d_ids]
    if not d_params or not g_params:
        raise ValueError(f"{type(model).__name__} needs trainable generator and discriminator parameters")
    return [
        Phase("d", model.d_loss, d_params, lr=lr_d, betas=betas, repeat=n_critic),
        Phase("g", model.g_loss, g_params, lr=lr_g, betas=betas, fresh=False, freeze=d_params),
    ]


def _check_plain(value: Any, where: str) -> None:
    """Tensors, Python numbers, strings, None, and lists/tuples/dicts of them (what weights_only loads)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} holds a {type(value).__name__}; records are saved in checkpoints, so return tensors, Python "
        "numbers, strings and lists/dicts of them (e.g. torch.as_tensor(array) or float(x))"
    )


class Snapshots:
    """A hook that records ``record(step)`` after step 1 and every ``every`` steps.

    ``record`` returns tensors or plain data (a grid of samples from fixed latents, a metric);
    the records are saved in the run's checkpoint, so :func:`genai_lib.train_cache.load_or_train`
    hands them back with cached weights. ``record`` must not draw from torch's global RNG (use a
    seeded ``torch.Generator``), or recording would change the training it watches.
    """

    def __init__(self, record: Callable[[int], Any], every: int) -> None:
        if not callable(record):
            raise TypeError(f"record must be callable as record(step), got {record!r}")
        check_positive("every", every)
        self.record, self.every = record, every
        self.steps: list[int] = []
        self.items: list[Any] = []

    def after_step(self, step: int) -> None:
        if step % self.every == 0 or step == 1:
            item = self.record(step)
            if not self.items:  # the first record: refuse what a checkpoint cannot hold, now, not at the save
                _check_plain(item, "a Snapshots record")
            self.steps.append(step)
            self.items.append(item)

    def state_dict(self) -> dict[str, Any]:
        return {"every": self.every, "steps": list(self.steps), "items": list(self.items)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("every") != self.every:
            raise ValueError(f"these snapshots were taken every {state.get('every')} steps, not every {self.every}")
        self.steps, self.items = list(state["steps"]), list(state["items"])


def hook_list(hooks: Any) -> list[Any]:
    """``hooks`` (a list or tuple of objects with ``after_step(step)``, e.g. ``[Snapshots(...)]``) as a
    list; anything else is a TypeError. The recipes check their ``hooks`` argument with it."""
    hooks = list(hooks) if isinstance(hooks, (list, tuple)) else hooks
    if not isinstance(hooks, list) or not all(hasattr(h, "after_step") for h in hooks):
        raise TypeError(f"hooks must be a list or tuple of hooks with an after_step(step) method, got {hooks!r}")
    return hooks
