"""Offline tables for chapter 14: the Wisconsin diagnostic breast-cancer records.

scikit-learn ships the table (Street, Wolberg & Mangasarian 1993; 569 patients, 30 features of
cell nuclei measured on a digitised fine-needle aspirate, label 1 = benign, 0 = malignant), so it
loads with no network. :func:`patient_split` makes the fixed, stratified train/test split every
synthetic-data experiment of the chapter uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_probability

__all__ = ["load_breast_cancer_table", "patient_split"]


def load_breast_cancer_table() -> dict[str, Any]:
    """``x`` float32 (569, 30), ``y`` int64 (569,) (1 benign), ``features`` (30 names)."""
    from sklearn.datasets import load_breast_cancer  # reads the CSV inside the installed package

    data = load_breast_cancer()
    return {
        "x": torch.from_numpy(data.data.astype(np.float32)),
        "y": torch.from_numpy(data.target.astype(np.int64)),
        "features": [str(f) for f in data.feature_names],
    }


def patient_split(test_fraction: float = 0.25, *, seed: int = 0) -> dict[str, Any]:
    """A stratified split: ``train_x``, ``train_y``, ``test_x``, ``test_y``, ``features``.

    Each class is shuffled by ``seed`` and its last ``test_fraction`` goes to the test set, so
    both sets keep the table's 63/37 benign/malignant mix.
    """
    check_probability("test_fraction", test_fraction, open_low=True, open_high=True)
    t = load_breast_cancer_table()
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in (0, 1):
        idx = torch.nonzero(t["y"] == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(len(idx) * test_fraction)
        train.append(idx[: len(idx) - k])
        test.append(idx[len(idx) - k :])
    tr, te = torch.cat(train).sort().values, torch.cat(test).sort().values
    return {
        "train_x": t["x"][tr],
        "train_y": t["y"][tr],
        "test_x": t["x"][te],
        "test_y": t["y"][te],
        "features": t["features"],
    }
