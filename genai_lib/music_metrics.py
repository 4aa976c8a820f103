"""Statistics of music, real against generated: pitch-class and interval histograms, TV distance.

Chapter 12 of the course. A picture of two histograms is not a measurement; the total-variation
distance TV(p, q) = 1/2 sum_i |p_i - q_i| (in [0, 1]: 0 identical, 1 disjoint supports) is. The
pitch-class histogram counts notes by pitch mod 12 (C = 0, ..., B = 11); the interval histogram
counts the melodic steps inside each voice between consecutive sounding notes, in semitones
clipped to [-12, 12] (25 bins). Notes are ``(voice, pitch, onset, duration)`` tuples, pitch -1 a
rest (:mod:`genai_lib.music`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genai_lib.music import Note

__all__ = ["pitch_class_histogram", "interval_histogram", "total_variation"]

MAX_INTERVAL = 12  # intervals are clipped to an octave up or down


def _chorales(name: str, chorales: Any) -> list[Sequence[Note]]:
    if not isinstance(chorales, Sequence) or not chorales:
        raise ValueError(f"{name} must be a non-empty list of chorales (lists of notes)")
    if isinstance(chorales[0], tuple):  # one chorale given on its own
        chorales = [chorales]
    return list(chorales)


def pitch_class_histogram(chorales: Any) -> torch.Tensor:
    """Share of sounding notes in each pitch class: float64 (12,) summing to 1."""
    counts = torch.zeros(12, dtype=torch.float64)
    for c in _chorales("chorales", chorales):
        for _, p, _, _ in c:
            if p >= 0:
                counts[int(p) % 12] += 1
    if counts.sum() == 0:
        raise ValueError("chorales hold no sounding notes")
    return counts / counts.sum()


def interval_histogram(chorales: Any) -> torch.Tensor:
    """Share of melodic intervals -12..12 semitones within each voice: float64 (25,) summing to 1."""
    counts = torch.zeros(2 * MAX_INTERVAL + 1, dtype=torch.float64)
    for c in _chorales("chorales", chorales):
        last: dict[int, int] = {}
        for v, p, _, _ in sorted(c, key=lambda n: (n[0], n[2])):
            if p < 0:
                continue
            if v in last:
                step = max(-MAX_INTERVAL, min(MAX_INTERVAL, int(p) - last[v]))
                counts[step + MAX_INTERVAL] += 1
            last[v] = int(p)
    if counts.sum() == 0:
        raise ValueError("chorales hold no melodic interval (each voice needs two sounding notes)")
    return counts / counts.sum()


def total_variation(p: Any, q: Any) -> float:
    """TV distance 1/2 sum |p - q| between two histograms of the same length (each normalised first)."""
    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must be 1-D of the same length, got {tuple(p.shape)} and {tuple(q.shape)}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must be non-negative with a positive sum")
    return float(0.5 * (p / p.sum() - q / q.sum()).abs().sum())
