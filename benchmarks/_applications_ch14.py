"""Chapter 14's part of ``benchmarks/applications.py``: synthetic patients and the scarce digit.

``run_ch14(fast)`` trains from scratch (``cache=False``; ``--cache`` uses and fills the recipes'
cache entries, which the chapter-14 notebook then loads) and returns

- ``trtr_auc``: ROC AUC on the 142 real test patients of a logistic regression trained on the 427
  real training patients; ``tstr_auc``: the same model trained only on as many records sampled
  from the tabular VAE (``genai_lib.recipes.health``);
- ``scarce_recall_base`` / ``scarce_recall_aug``: recall of the digit cut to 20 training examples,
  for the MLP trained on the imbalanced set and on that set augmented by the best generative
  method, ``"cvae+classical"`` (``genai_lib.recipes.augment``: half classically distorted real
  examples, half conditional-VAE analogies distorted; the mean over three classifier seeds).
  Until 2026-12-03 it was the cGAN's samples alone (``"cgan"``, printed below with the rest);
- ``qed_gain``: the mean QED of the chapter-11 molecule generator's valid samples after
  fine-tuning on its best samples minus before (``genai_lib.recipes.steering``); NaN when chapter
  11's recipe is not installed (no number is reported until it has been measured).

``details`` (a dict, optional) receives the other scores: the copula's and the DP VAE's TSTR AUC,
the fidelity and distance-to-closest-record numbers, every augmentation method's recall and
accuracy, the steering rounds' QED, validity, uniqueness and novelty. Targets (issue 19):
``tstr_auc`` within 0.05 of ``trtr_auc``; ``scarce_recall_aug`` above ``scarce_recall_base`` and
above the classical augmentation's recall; QED rises at >= 90% validity. Run alone:

    python benchmarks/_applications_ch14.py [--cache]

The last line reads ``applications_ch14: tstr_auc=... trtr_auc=... scarce_recall_aug=...
scarce_recall_base=... qed_gain=... seconds=<s>``. ``GENAI_FAST=1`` smoke-tests it.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

from genai_lib.recipes.augment import scarce_experiment
from genai_lib.recipes.health import patient_report
from genai_lib.recipes.steering import steer_molecules
from genai_lib.utils import fast_mode

BEST_GENERATIVE = "cvae+classical"  # the augmentation method reported as scarce_recall_aug


def run_ch14(fast: bool, *, cache: bool = False, details: dict[str, Any] | None = None) -> dict[str, float]:
    """The five chapter-14 numbers of the applications line (module docstring)."""
    torch.set_num_threads(1)
    patients = patient_report(fast=fast, cache=cache)
    scarce = scarce_experiment(fast=fast, cache=cache)
    try:
        steer = steer_molecules(fast=fast, cache=cache)
    except RuntimeError:  # chapter 11's molecule generator is not installed
        steer = None
    if details is not None:
        details.update({"patients": patients, "scarce": scarce, "steer": steer})
    return {
        "tstr_auc": float(patients["vae"]["tstr_auc"]),
        "trtr_auc": float(patients["trtr_auc"]),
        "scarce_recall_aug": float(scarce[BEST_GENERATIVE]["recall"]),
        "scarce_recall_base": float(scarce["base"]["recall"]),
        "qed_gain": math.nan if steer is None else float(steer["qed_gain"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="use and fill the recipes' cache entries")
    args = parser.parse_args()
    t0 = time.perf_counter()
    details: dict[str, Any] = {}
    out = run_ch14(fast_mode(), cache=args.cache, details=details)
    p, s = details["patients"], details["scarce"]
    for kind in ("copula", "vae", "dp_vae"):
        print(f"  patients {kind}: {p[kind]}", flush=True)
    print(f"  patients trtr_auc={p['trtr_auc']:.4f} dcr_holdout={p['dcr_holdout']:.3f}")
    for method, r in s.items():
        print(f"  scarce {method}: recall={r['recall']:.3f} acc={r['acc']:.3f} per seed={r['recalls']}")
    print(f"  scarce_recall_aug is {BEST_GENERATIVE!r}; classical: {s['classical']['recall']:.3f}")
    if details["steer"] is None:
        print("  molecules: chapter 11's generator is not installed, qed_gain not measured")
    else:
        for i, r in enumerate(details["steer"]["rounds"]):
            print(f"  molecules round {i}: qed={r['qed']:.3f} valid={r['valid']:.3f} unique={r['unique']:.3f} "
                  f"novel={r['novel']:.3f}")  # fmt: skip
    line = " ".join(f"{k}={v:.4f}" if not math.isnan(v) else f"{k}=nan" for k, v in out.items())
    print(f"applications_ch14: {line} seconds={time.perf_counter() - t0:.0f}")


if __name__ == "__main__":
    main()
