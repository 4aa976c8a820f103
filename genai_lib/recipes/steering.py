"""Steering a generator towards a property by fine-tuning on its best samples (chapter 14).

The loop (as Segler et al. 2018 fine-tuned a SMILES generator on known actives, here on the
generator's own best samples):

    for each round:  sample n  ->  keep the valid ones  ->  score them
                     ->  fine-tune on the top fraction (``fit``, a few steps)  ->  repeat

:func:`fine_tune_on_best` runs it for any generator, given three functions: ``sample(model, n,
generator)`` (a list of items, None for an invalid one), ``score(items)`` (an array) and
``to_batch(items)`` (the training tensors the model's ``loss`` reads).
:func:`steer_molecules` applies it to the chapter-11 molecule generator
(``genai_lib.recipes.graphs``) with RDKit's QED as the score (Bickerton et al. 2012); it needs
chapter 11 and says so when that is absent. Cached as ``ch14_qed_steering``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive, check_probability
from genai_lib.data import make_loader
from genai_lib.train import fit
from genai_lib.train_cache import cached
from genai_lib.utils import fast_mode

__all__ = ["fine_tune_on_best", "STEER", "steer_molecules"]


def fine_tune_on_best(
    model: torch.nn.Module,
    *,
    sample: Callable[..., Sequence[Any]],
    score: Callable[[list[Any]], Any],
    to_batch: Callable[[list[Any]], tuple[torch.Tensor, ...]],
    rounds: int = 3,
    n: int = 500,
    top: float = 0.1,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Steer ``model`` in place; returns one record per round 0..rounds: ``items`` (the valid
    samples), ``scores`` (their scores), ``valid`` (the valid fraction) and ``kept`` (the items
    fine-tuned on after that round; empty for the last)."""
    check_positive("rounds", rounds, allow_zero=True)
    check_positive("n", n)
    check_positive("steps", steps)
    check_probability("top", top, open_low=True)
    out = []
    for r in range(rounds + 1):
        model.eval()
        drawn = list(sample(model, n, generator=torch.Generator().manual_seed(seed + r)))
        items = [s for s in drawn if s is not None]
        scores = np.asarray(score(items), dtype=np.float64) if items else np.zeros(0)
        rec = {"items": items, "scores": scores, "valid": len(items) / len(drawn), "kept": []}
        out.append(rec)
        if r == rounds or not items:
            break
        order = np.argsort(-scores, kind="stable")
        best = list(dict.fromkeys(items[i] for i in order[: max(1, round(top * len(items)))]))  # unique
        rec["kept"] = best
        tensors = to_batch(best)
        loader = make_loader(
            *tensors, batch_size=min(batch_size, len(tensors[0])), generator=torch.Generator().manual_seed(seed + r)
        )
        model.train()
        fit(model, loader, steps=steps, lr=lr, progress=False, log_every=steps)
    model.eval()
    return out


STEER = {  # rounds, samples per round, top fraction, fine-tuning steps per round
    "full": {"rounds": 3, "n": 1000, "top": 0.1, "steps": 150, "lr": 5e-4},
    "fast": {"rounds": 1, "n": 100, "top": 0.2, "steps": 10, "lr": 5e-4},
}


def _qed(smiles: list[str]) -> np.ndarray:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import QED

    RDLogger.DisableLog("rdApp.*")
    return np.array([QED.qed(Chem.MolFromSmiles(s)) for s in smiles])


def steer_molecules(*, fast: bool | None = None, cache: bool = True) -> dict[str, Any]:
    """The chapter-11 molecule generator steered towards higher QED; per round ``qed`` (mean over
    the valid samples), ``valid``, ``unique`` and ``novel`` (fractions of the valid ones not in
    the training molecules), ``qed_values``, and ``qed_gain`` (last round's mean QED minus the
    first's). Raises RuntimeError when chapter 11's recipe is not installed."""
    try:
        from genai_lib.recipes import graphs
    except ImportError as err:
        raise RuntimeError("steer_molecules needs chapter 11's molecule generator (genai_lib.recipes.graphs)") from err
    fast = fast_mode() if fast is None else fast
    b = STEER["fast" if fast else "full"]

    def compute() -> dict[str, Any]:
        model, info = graphs.train_molecule_generator(fast=fast, cache=cache)
        train = set(info["train"])
        recs = fine_tune_on_best(
            model,
            sample=lambda m, k, generator: graphs.sample_molecules(m, k, generator=generator),
            score=_qed,
            to_batch=lambda items: graphs.molecule_batch(items, orders=2),
            rounds=b["rounds"], n=b["n"], top=b["top"], steps=b["steps"], lr=b["lr"],
        )  # fmt: skip
        rounds = []
        for r in recs:
            items = r["items"]
            rounds.append({
                "qed": float(r["scores"].mean()) if items else float("nan"),
                "qed_values": torch.as_tensor(r["scores"]),
                "valid": r["valid"],
                "unique": len(set(items)) / max(1, len(items)),
                "novel": sum(s not in train for s in items) / max(1, len(items)),
            })  # fmt: skip
        return {"rounds": rounds, "qed_gain": rounds[-1]["qed"] - rounds[0]["qed"]}

    key = {"budget": b, "v": 1}
    return cached(f"ch14_qed_steering{'_fast' if fast else ''}", key, compute) if cache else compute()
