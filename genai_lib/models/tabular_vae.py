"""A VAE for a table of mixed columns (chapter 14): continuous features and binary ones.

Records are rows of a float table (B, D). Continuous columns are standardised inside the model
(``x' = (x - mean) / std``, the mean and std fitted on the training table and kept as buffers,
so the model samples in the original units); binary columns (values 0 and 1) are left as they
are. The encoder and decoder are MLPs; the likelihood is a Gaussian with one learned scale per
continuous column and a Bernoulli per binary column (a simplified TVAE, Xu et al. 2019):

    q(z | x) = N(mu(x), diag exp(logvar(x))),   z ~ N(0, I_Z)
    -ELBO(x) = sum_cont [ (x'_j - m_j)^2 / (2 s_j^2) + log s_j + log(2 pi)/2 ]
             + sum_bin BCE(logit_j, x_j) + KL(q(z | x) || N(0, I))

:class:`TableScaler` is the standardisation on its own (the copula baseline and the distance
metrics use it too). ``tabular_sample_loss`` is the per-example loss DP-SGD needs (chapter 16).

Shape legend: B batch, D columns, C continuous columns, Z latent size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_generator, check_positive, plain_fields
from genai_lib.models._layers import mlp
from genai_lib.models.vae import gaussian_kl
from genai_lib.utils import normal_noise, split_batch, uniform_noise

__all__ = ["check_table", "TableScaler", "TabularVAEConfig", "TabularVAE", "tabular_sample_loss"]


def check_table(name: str, x: Any, n_columns: int | None = None) -> torch.Tensor:
    """``x`` as a float32 table (N, D) with N >= 2 finite rows; ValueError names ``name`` otherwise."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a table (N, D) of numbers, got {type(x).__name__}") from err
    if x.dim() != 2:
        raise ValueError(f"{name} must be a table of shape (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} is an empty table: it needs at least 2 rows and 1 column, got {tuple(x.shape)}")
    if n_columns is not None and x.shape[1] != n_columns:
        raise ValueError(f"{name} must have {n_columns} columns, got {x.shape[1]}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite entries")
    return x


class TableScaler(nn.Module):
    """Per-column standardisation ``(x - mean) / std`` fitted on a table; binary columns untouched.

    Buffers ``mean`` and ``std`` (D,) travel with the state dict. A constant continuous column
    (std 0) cannot be standardised and is refused by :meth:`fit`, naming the column.
    """

    def __init__(self, n_columns: int, binary: tuple[int, ...] = ()) -> None:
        super().__init__()
        check_positive("n_columns", n_columns)
        self.binary = tuple(binary)
        self.register_buffer("mean", torch.zeros(n_columns))
        self.register_buffer("std", torch.ones(n_columns))
        mask = torch.zeros(n_columns, dtype=torch.bool)
        mask[list(self.binary)] = True
        self.register_buffer("is_binary", mask)

    def fit(self, x: Any) -> TableScaler:
        """Set mean and std from the table ``x`` (N, D); returns self."""
        x = check_table("x", x, self.mean.numel())
        mean, std = x.mean(0), x.std(0)
        for j in range(x.shape[1]):
            if self.is_binary[j]:
                vals = torch.unique(x[:, j])
                if not bool(((vals == 0) | (vals == 1)).all()):
                    raise ValueError(f"binary column {j} must hold only 0 and 1, got values {vals[:5].tolist()}")
            elif std[j] <= 1e-12 * max(1.0, float(mean[j].abs())):
                raise ValueError(f"column {j} is constant (every value {float(mean[j]):g}): it cannot be standardised")
        self.mean.copy_(torch.where(self.is_binary, 0.0, mean))
        self.std.copy_(torch.where(self.is_binary, 1.0, std))
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Original units -> standardised (B, D)."""
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised -> original units (B, D): ``inverse(transform(x)) == x``."""
        return z * self.std + self.mean


@dataclass(frozen=True)
class TabularVAEConfig:
    """Hyper-parameters of a :class:`TabularVAE`."""

    n_columns: int  # D, every column of the table
    binary: tuple[int, ...] = ()  # indices of the 0/1 columns (Bernoulli likelihood)
    z_dim: int = 8  # latent size Z
    hidden: int = 128  # width of each hidden layer of encoder and decoder
    depth: int = 2  # hidden layers of each
    beta: float = 1.0  # weight of the KL term

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("n_columns", "z_dim", "hidden", "depth"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.binary, tuple) or any(
            isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < self.n_columns for j in self.binary
        ):
            raise ValueError(f"binary must be a tuple of column indices in [0, {self.n_columns}), got {self.binary!r}")
        if len(set(self.binary)) != len(self.binary):
            raise ValueError(f"binary has repeated columns: {self.binary!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta!r}")


class TabularVAE(nn.Module):
    """Rows (B, D) in original units -> a latent code and back. Call :meth:`fit_scaler` before training."""

    def __init__(self, cfg: TabularVAEConfig) -> None:
        super().__init__()
        if not isinstance(cfg, TabularVAEConfig):
            raise TypeError(f"cfg must be a TabularVAEConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        d, h = cfg.n_columns, cfg.hidden
        self.scaler = TableScaler(d, cfg.binary)
        self.encoder = mlp([d] + [h] * cfg.depth + [2 * cfg.z_dim])
        self.decoder = mlp([cfg.z_dim] + [h] * cfg.depth + [d])
        self.log_scale = nn.Parameter(torch.full((d,), math.log(0.3)))  # s_j of the Gaussian columns

    def fit_scaler(self, x: Any) -> TabularVAE:
        """Fit the standardisation on the training table (N, D); returns self."""
        self.scaler.fit(x)
        return self

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (B, D), original units -> (mu, logvar), each (B, Z)."""
        mu, logvar = self.encoder(self.scaler.transform(x)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows (B, D) -> decoder output (B, D) at the posterior mean (standardised means, logits)."""
        return self.decoder(self.encode(x)[0])

    def terms(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row reconstruction NLL and KL (B,), with reparameterisation noise ``eps`` (B, Z)."""
        mu, logvar = self.encode(x)
        out = self.decoder(mu + eps * (0.5 * logvar).exp())
        xs = self.scaler.transform(x)
        ls = self.log_scale.clamp(-6, 3)
        gauss = 0.5 * ((xs - out) / ls.exp()) ** 2 + ls + 0.5 * math.log(2 * math.pi)
        bern = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        nll = torch.where(self.scaler.is_binary, bern, gauss).sum(-1)
        return nll, gaussian_kl(mu, logvar)

    def noise_for(
        self, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor]:
        """Reparameterisation noise (B, Z) for a batch: ``dp_phase(extra=model.noise_for)``."""
        x = batch[0]
        return (normal_noise((x.shape[0], self.cfg.z_dim), generator=generator, device=x.device, dtype=x.dtype),)

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Mean negative ELBO per row of a batch of rows (B, D); logs the two terms."""
        x, _ = split_batch(batch)
        x = check_table("batch", x, self.cfg.n_columns).to(self.log_scale.device)
        (eps,) = self.noise_for((x,), generator)
        nll, kl = self.terms(x, eps)
        return (nll + self.cfg.beta * kl).mean(), {"nll": nll.mean().detach(), "kl": kl.mean().detach()}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n synthetic rows (n, D) in original units on the CPU: z ~ N(0, I), then the likelihood's draw."""
        check_positive("n", n)
        check_generator("generator", generator)
        dev = self.log_scale.device
        z = normal_noise((n, self.cfg.z_dim), generator=generator, device=dev)
        out = self.decoder(z)
        noise = normal_noise((n, self.cfg.n_columns), generator=generator, device=dev)
        cont = self.scaler.inverse(out + noise * self.log_scale.clamp(-6, 3).exp())
        u = uniform_noise((n, self.cfg.n_columns), generator=generator, device=dev)
        bern = (u < torch.sigmoid(out)).float()
        return torch.where(self.scaler.is_binary, bern, cont).cpu()


def tabular_sample_loss(model: TabularVAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One row's negative ELBO (x (D,), eps (Z,)): the per-sample loss of DP-SGD (no value checks)."""
    nll, kl = model.terms(x[None], eps[None])
    return (nll + model.cfg.beta * kl)[0]
