"""Federated averaging (McMahan et al. 2017) and its differentially private form (chapter 16).

One round of FedAvg: the server sends the weights w to the clients; client k trains them locally
(``local_steps`` steps of SGD through :func:`genai_lib.train.fit`) to w_k; the server sets

    w <- w + sum_k (n_k / n) (w_k - w)                   (McMahan et al. 2017, Algorithm 1)

with n_k the client's number of examples. Data never leave a client, but the updates w_k - w
do, and they can reveal the data (gradient inversion, :mod:`genai_lib.privacy_attacks`).

DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent language models"):
each update is clipped to L2 norm <= S, the server averages them with equal weights and adds
N(0, (sigma S / m)^2) for m clients per round: client-level DP, accounted like DP-SGD with
q = m / (number of clients) (:func:`genai_lib.privacy.epsilon`). Secure aggregation (Bonawitz
et al. 2017) would hide the single updates from the server; it changes nothing in the sum, so we
explain it rather than simulate it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from genai_lib._checks import check_finite_number, check_positive
from genai_lib.train import fit
from genai_lib.train_setup import batch_stream
from genai_lib.utils import normal_noise

__all__ = ["split_non_iid", "fedavg", "client_update"]


def split_non_iid(
    labels: torch.Tensor, n_clients: int, classes_per_client: int, *, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Indices of each client's examples: client k holds ``classes_per_client`` digits.

    Classes are dealt round-robin (client k gets classes k, k+1, ... mod C), and each class's
    examples are split evenly among the clients holding it, shuffled by ``generator``.
    """
    check_positive("n_clients", n_clients)
    check_positive("classes_per_client", classes_per_client)
    labels = torch.as_tensor(labels).long().cpu()
    classes = sorted(int(c) for c in labels.unique())
    if classes_per_client > len(classes):
        raise ValueError(f"classes_per_client must be <= {len(classes)} classes, got {classes_per_client}")
    owners: dict[int, list[int]] = {c: [] for c in classes}
    for k in range(n_clients):
        for j in range(classes_per_client):
            owners[classes[(k * classes_per_client + j) % len(classes)]].append(k)
    parts: list[list[torch.Tensor]] = [[] for _ in range(n_clients)]
    for c, ks in owners.items():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        for k, chunk in zip(ks, idx.chunk(len(ks)) if ks else (), strict=False):
            parts[k].append(chunk)
    out = [torch.cat(p) if p else torch.empty(0, dtype=torch.long) for p in parts]
    if any(p.numel() == 0 for p in out):
        raise ValueError("a client got no examples: use fewer clients or more classes per client")
    return out


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _load_flat(model: nn.Module, flat: torch.Tensor) -> None:
    i = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(flat[i : i + p.numel()].view_as(p))
            i += p.numel()


def client_update(model: nn.Module, batches: Sequence[Any], *, lr: float) -> torch.Tensor:
    """w_k - w: one step of plain SGD at ``lr`` per batch of ``batches``, on a copy of ``model`` (flat, (P,))."""
    local = copy.deepcopy(model)
    opt = torch.optim.SGD([p for p in local.parameters() if p.requires_grad], lr=lr)
    fit(local, list(batches), steps=len(batches), optimizer=opt, progress=False, log_every=len(batches))
    return _flat(local) - _flat(model)


def fedavg(
    model: nn.Module,
    clients: Sequence[Any],
    *,
    rounds: int,
    local_steps: int,
    lr: float,
    clients_per_round: int | None = None,
    clip: float | None = None,
    noise_multiplier: float = 0.0,
    generator: torch.Generator | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` in place by FedAvg over ``clients`` (one loader per client) for ``rounds``.

    ``clients_per_round`` (default all) are drawn at random each round. With ``clip`` the round
    is DP-FedAvg (module docstring) with ``noise_multiplier`` sigma. Returns ``evaluate(model)``
    after every round (empty without ``evaluate``).
    """
    if not isinstance(clients, Sequence) or len(clients) == 0:
        raise ValueError("clients must be a non-empty sequence of loaders, one per client")
    sizes = []
    for k, c in enumerate(clients):
        n = getattr(c, "num_examples", None)
        n = len(c) if n is None else n
        if n == 0:
            raise ValueError(f"client {k} is empty: every client needs at least one example")
        sizes.append(n)
    check_positive("rounds", rounds)
    check_positive("local_steps", local_steps)
    check_finite_number("lr", lr, positive=True, allow_zero=False)
    m = len(clients) if clients_per_round is None else clients_per_round
    check_positive("clients_per_round", m)
    if m > len(clients):
        raise ValueError(f"clients_per_round must be <= {len(clients)} clients, got {m}")
    if clip is not None:
        check_finite_number("clip", clip, positive=True, allow_zero=False)
    check_finite_number("noise_multiplier", noise_multiplier, positive=True)
    if noise_multiplier > 0 and clip is None:
        raise ValueError("noise_multiplier > 0 needs a clip norm (DP-FedAvg)")
    from tqdm.auto import tqdm

    # each client's data stream continues from round to round (epoch after epoch of its loader)
    streams = [batch_stream(c, 0, len(c) if hasattr(c, "__len__") else None) for c in clients]
    history = []
    for _ in tqdm(range(rounds), desc="FedAvg rounds", disable=not progress):
        chosen = torch.randperm(len(clients), generator=generator)[:m].tolist() if m < len(clients) else range(m)
        updates, weights = [], []
        for k in chosen:
            u = client_update(model, [next(streams[k]) for _ in range(local_steps)], lr=lr)
            if clip is not None:
                u = u * min(1.0, clip / (float(u.norm()) + 1e-12))
            updates.append(u)
            weights.append(1.0 if clip is not None else float(sizes[k]))
        w = torch.tensor(weights, dtype=updates[0].dtype, device=updates[0].device)
        delta = (torch.stack(updates) * (w / w.sum())[:, None]).sum(0)
        if clip is not None and noise_multiplier > 0:
            noise = normal_noise(delta.shape, generator=generator, device=delta.device, dtype=delta.dtype)
            delta = delta + noise_multiplier * clip / m * noise
        _load_flat(model, _flat(model) + delta)
        if evaluate is not None:
            history.append(float(evaluate(model)))
    return history
