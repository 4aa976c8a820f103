"""A tiny model that follows the library's contract, for testing the core (train, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TinyConfig:
    dim: int = 2  # input features
    hidden: int = 8  # hidden width
    noise: float = 0.0  # std of noise added in loss (exercises the global RNG in resume tests)


class Tiny(nn.Module):
    """A regression MLP: loss is the mean squared error to the target."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def loss(self, batch):
        x, y = batch
        if self.cfg.noise:
            x = x + self.cfg.noise * torch.randn_like(x)
        err = self(x) - y
        return (err**2).mean(), {"mae": err.abs().mean()}


def tiny_data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1]
    return x, y
