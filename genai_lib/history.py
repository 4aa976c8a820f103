"""What a training run leaves behind: :class:`History`, and the error a dead run raises.

A base module (no torch work at import): the training core (:mod:`genai_lib.train`) fills a
History, models that train in closed form (EM in :mod:`genai_lib.models.mixture`) fill one too,
and :func:`genai_lib.plotting.training_curves` draws it (this module imports nothing above it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite, or a divergence rule fired; the message names the step."""


@dataclass
class History:
    """Per-step training logs and periodic validation logs.

    ``step[i]`` is the step of ``logs[key][i]`` for every key logged at each step. A key logged
    only on some steps (a phase that runs every k steps) keeps its own steps in
    ``key_steps[key]``; :meth:`steps_of` answers for any key.
    """

    step: list[int] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    val_step: list[int] = field(default_factory=list)
    val: dict[str, list[float]] = field(default_factory=dict)
    key_steps: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    from_cache: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return self.logs[key]

    def steps_of(self, key: str) -> list[int]:
        """The steps at which ``key`` was logged."""
        if key not in self.logs:
            raise KeyError(f"no log named {key!r}; have {sorted(self.logs)}")
        return self.key_steps.get(key, self.step)

    def last(self, key: str = "loss", *, val: bool = False) -> float:
        """Most recent value of a training (or validation) log."""
        values = (self.val if val else self.logs).get(key)
        if not values:
            raise KeyError(
                f"no {'validation ' if val else ''}log named {key!r}; have {sorted(self.val if val else self.logs)}"
            )
        return values[-1]

    def append(self, step: int, values: dict[str, float], sparse: Sequence[str] = ()) -> None:
        """Record one step's values; keys in ``sparse`` keep their own step lists."""
        for k, v in values.items():
            if not math.isfinite(v):
                raise TrainingDivergedError(f"the log {k!r} became {v} at step {step}; no NaN or inf is recorded")
        self.step.append(step)
        for k, v in values.items():
            self.logs.setdefault(k, []).append(v)
        for k in sparse:
            self.key_steps.setdefault(k, []).append(step)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "logs": self.logs,
            "val_step": self.val_step,
            "val": self.val,
            "key_steps": self.key_steps,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            step=list(d.get("step", [])),
            logs={k: list(v) for k, v in d.get("logs", {}).items()},
            val_step=list(d.get("val_step", [])),
            val={k: list(v) for k, v in d.get("val", {}).items()},
            key_steps={k: list(v) for k, v in d.get("key_steps", {}).items()},
            seconds=float(d.get("seconds", 0.0)),
        )
