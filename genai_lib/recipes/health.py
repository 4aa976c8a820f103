"""Chapter 14's synthetic patients: a tabular VAE, its DP-SGD twin and a Gaussian copula.

The table is the breast-cancer split of :func:`genai_lib.tabular.patient_split` (427 training
and 142 test patients), with the label appended as a 31st, binary column, so every generator
draws whole labelled records. Each generator fits the training rows only; the test rows are the
holdout of every score.

- ``train_tabular_vae(eps)``: the :class:`~genai_lib.models.tabular_vae.TabularVAE` trained by
  :func:`genai_lib.train.fit` (``eps=None``) or by chapter 16's DP-SGD at privacy budget ``eps``
  (Poisson batches, per-row clipping, delta = 1e-5). Cached as ``tab_vae_<eps>``.
- ``fit_copula()``: the Gaussian copula baseline (no training loop: ranks and a correlation).
- ``synthetic_patients(kind)``: n labelled synthetic records of ``"copula"``, ``"vae"`` or
  ``"dp_vae"``; ``patient_report()`` scores them all: TSTR and TRTR AUC, KS, correlation gap,
  distance to the closest record.

Fast mode (``GENAI_FAST=1``): fewer steps, the same data and code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genai_lib.data import make_loader
from genai_lib.fidelity import closest_record_distance, correlation_gap, logistic_auc, marginal_ks
from genai_lib.models.copula import GaussianCopula
from genai_lib.models.tabular_vae import TabularVAE, TabularVAEConfig, tabular_sample_loss
from genai_lib.privacy import PoissonLoader, dp_phase, epsilon, noise_for_epsilon
from genai_lib.tabular import patient_split
from genai_lib.train import fit
from genai_lib.train_cache import cached
from genai_lib.utils import fast_mode

__all__ = [
    "TabularBudget",
    "TABULAR",
    "TAB_CFG",
    "DP_DELTA",
    "patient_table",
    "train_tabular_vae",
    "fit_copula",
    "synthetic_patients",
    "patient_report",
]

DP_DELTA = 1e-5  # delta of the private generator (well below 1 / 427 records)


@dataclass(frozen=True)
class TabularBudget:
    """How long the tabular VAE trains, with and without DP-SGD."""

    steps: int  # Adam steps of the non-private VAE (batches of ``batch``)
    batch: int  # batch size (the expected Poisson batch under DP-SGD)
    lr: float  # Adam learning rate
    dp_steps: int  # DP-SGD steps
    max_norm: float  # per-row clip norm C of DP-SGD

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "dp_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not (self.lr > 0 and self.max_norm > 0):
            raise ValueError(f"lr and max_norm must be > 0, got {self.lr!r} and {self.max_norm!r}")


TABULAR = {
    "full": TabularBudget(steps=2000, batch=64, lr=2e-3, dp_steps=600, max_norm=5.0),
    "fast": TabularBudget(steps=60, batch=64, lr=2e-3, dp_steps=20, max_norm=5.0),
}
TAB_CFG = TabularVAEConfig(n_columns=31, binary=(30,), z_dim=8, hidden=128, depth=2)


def patient_table(split: str = "train") -> torch.Tensor:
    """The ``"train"`` or ``"test"`` patients as one table (N, 31): 30 features, then the label."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    s = patient_split()
    return torch.cat([s[f"{split}_x"], s[f"{split}_y"][:, None].float()], 1)


def _check_eps(eps: Any) -> None:
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0):
        raise ValueError(f"eps must be a number > 0 (or None for no privacy), got {eps!r}")


def train_tabular_vae(
    eps: float | None = None, *, fast: bool | None = None, cache: bool = True
) -> tuple[TabularVAE, dict[str, Any]]:
    """The tabular VAE on the training patients, without privacy (``eps=None``) or by DP-SGD at
    (``eps``, 1e-5); returns ``(model, info)`` with ``loss`` (the curve), ``epsilon``, ``sigma``."""
    _check_eps(eps)
    fast = fast_mode() if fast is None else fast
    b = TABULAR["fast" if fast else "full"]
    x = patient_table("train")
    q = b.batch / len(x)
    sigma = None if eps is None else noise_for_epsilon(float(eps), q, b.dp_steps, DP_DELTA)

    def build() -> TabularVAE:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return TabularVAE(TAB_CFG).fit_scaler(x)

    def compute() -> dict[str, Any]:
        model, gen = build(), torch.Generator().manual_seed(0)
        if sigma is None:
            loader = make_loader(x, batch_size=b.batch, generator=torch.Generator().manual_seed(0))
            h = fit(model, loader, steps=b.steps, lr=b.lr, generator=gen, progress=False)
        else:
            phase = dp_phase(
                model, tabular_sample_loss, max_norm=b.max_norm, noise_multiplier=sigma,
                expected_batch_size=b.batch, extra=model.noise_for, lr=b.lr,
            )  # fmt: skip
            h = fit(model, PoissonLoader(x, q=q), steps=b.dp_steps, phases=[phase], generator=gen, progress=False)
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "loss": list(h.logs["loss"])}

    key = {"budget": b.__dict__, "cfg": TAB_CFG.__dict__, "eps": eps, "n": len(x), "v": 1}
    name = f"tab_vae_{'nodp' if eps is None else eps}{'_fast' if fast else ''}"
    value = cached(name, key, compute) if cache else compute()
    model = build()
    model.load_state_dict(value["state"])
    model.eval()
    spent = None if sigma is None else epsilon(q, sigma, b.dp_steps, DP_DELTA)
    return model, {"loss": value["loss"], "epsilon": spent, "sigma": sigma, "q": q}


def fit_copula() -> GaussianCopula:
    """The Gaussian copula of the training patients (label column included)."""
    return GaussianCopula().fit(patient_table("train"))


KINDS = ("copula", "vae", "dp_vae")
DP_EPS = 8.0  # the privacy budget of the ``dp_vae`` generator


def synthetic_patients(
    kind: str, *, n: int | None = None, seed: int = 0, fast: bool | None = None, cache: bool = True
) -> torch.Tensor:
    """n synthetic records (n, 31) of generator ``kind`` (default n: as many as the training rows)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n = len(patient_table("train")) if n is None else n
    gen = torch.Generator().manual_seed(seed)
    if kind == "copula":
        return fit_copula().sample(n, generator=gen)
    model, _ = train_tabular_vae(None if kind == "vae" else DP_EPS, fast=fast, cache=cache)
    return model.sample(n, generator=gen)


def patient_report(*, fast: bool | None = None, cache: bool = True, seed: int = 0) -> dict[str, Any]:
    """Scores of every generator: ``trtr_auc``, and per kind ``tstr_auc``, ``ks`` (mean over the
    30 features), ``corr_gap``, ``dcr`` (median distance of synthetic rows to the closest training
    row), with ``dcr_holdout`` the same for the real test rows (the yardstick)."""
    train, test = patient_table("train"), patient_table("test")
    out: dict[str, Any] = {
        "trtr_auc": logistic_auc(train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]),
        "dcr_holdout": float(closest_record_distance(test, train).median()),
    }
    for kind in KINDS:
        fake = synthetic_patients(kind, seed=seed, fast=fast, cache=cache)
        y = fake[:, -1]
        ok = 0 < float(y.mean()) < 1
        out[kind] = {
            "tstr_auc": logistic_auc(fake[:, :-1], y, test[:, :-1], test[:, -1]) if ok else float("nan"),
            "ks": float(np.mean(marginal_ks(train[:, :-1], fake[:, :-1]))),
            "corr_gap": correlation_gap(train[:, :-1], fake[:, :-1]),
            "dcr": float(closest_record_distance(fake, train).median()),
            "benign": float(y.mean()),
        }
    return out
