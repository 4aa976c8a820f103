"""Chapter 16's federated runs: FedAvg on non-IID MNIST clients against central training,
DP-FedAvg, and a gradient-inversion attack on one client's update.

Ten clients, each holding two digits of the 4,000 training images (:func:`split_non_iid`), train
an MLP classifier by FedAvg (plain SGD locally, ``local_steps`` batches of 50 per round). The
central baseline trains the same network with the same SGD on the pooled data, for as many
steps as the federation runs rounds x local steps, in batches ten times larger (the same number
of examples seen). Cached as ``fedavg_<kind>``. Fast mode: 1,000 images, few rounds.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from genai_lib.data import load_mnist, make_loader
from genai_lib.federated import fedavg, split_non_iid
from genai_lib.models.cvae import MLPClassifier, MLPClassifierConfig
from genai_lib.privacy_attacks import invert_gradient
from genai_lib.train import fit
from genai_lib.train_cache import cached
from genai_lib.utils import fast_mode

__all__ = ["FED", "federated_run", "central_run", "invert_one_client"]

FED = {
    "full": {"rounds": 200, "local_steps": 5, "lr": 0.1, "batch": 50, "clients": 10, "limit": None},
    "fast": {"rounds": 4, "local_steps": 5, "lr": 0.1, "batch": 50, "clients": 10, "limit": 1000},
}
DP_FED = {"clip": 1.0, "noise_multiplier": 0.3}  # client-level DP-FedAvg (10 clients a round)
HIDDEN = 128  # the MLP every client and the central run train: 784 -> 128 -> 10


def _model() -> MLPClassifier:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MLPClassifier(MLPClassifierConfig(hidden=HIDDEN))


@torch.no_grad()
def _accuracy(model: MLPClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def _budget(fast: bool | None) -> tuple[bool, dict[str, Any]]:
    fast = fast_mode() if fast is None else fast
    return fast, FED["fast" if fast else "full"]


def federated_run(*, dp: bool = False, fast: bool | None = None, cache: bool = True) -> dict[str, Any]:
    """FedAvg (``dp=True``: DP-FedAvg with ``DP_FED``) on non-IID clients: test accuracy per round."""
    fast, b = _budget(fast)
    x, y = load_mnist("train", limit=b["limit"])
    xt, yt = load_mnist("test", limit=300 if fast else None)

    def compute() -> dict[str, Any]:
        parts = split_non_iid(y, b["clients"], 2, generator=torch.Generator().manual_seed(0))
        clients = [
            make_loader(x[p], y[p], batch_size=b["batch"], generator=torch.Generator().manual_seed(k))
            for k, p in enumerate(parts)
        ]
        model = _model()
        extra = DP_FED if dp else {}
        acc = fedavg(
            model, clients, rounds=b["rounds"], local_steps=b["local_steps"], lr=b["lr"],
            generator=torch.Generator().manual_seed(0), evaluate=lambda m: _accuracy(m, xt, yt),
            progress=False, **extra,
        )  # fmt: skip
        return {"acc": acc, "digits": [sorted(set(y[p].tolist())) for p in parts]}

    key = {"b": b, "dp": dp, "hidden": HIDDEN, "v": 1}
    return cached(f"fedavg_{'dp' if dp else 'plain'}{'_fast' if fast else ''}", key, compute) if cache else compute()


def central_run(*, fast: bool | None = None, cache: bool = True) -> dict[str, Any]:
    """The same network and SGD on the pooled data (module docstring): test accuracy per round's worth."""
    fast, b = _budget(fast)
    x, y = load_mnist("train", limit=b["limit"])
    xt, yt = load_mnist("test", limit=300 if fast else None)

    def compute() -> dict[str, Any]:
        model = _model()
        loader = make_loader(x, y, batch_size=b["batch"] * b["clients"], generator=torch.Generator().manual_seed(0))
        opt = torch.optim.SGD(model.parameters(), lr=b["lr"])
        acc: list[float] = []
        cb_every = b["local_steps"]
        fit(
            model, loader, steps=b["rounds"] * cb_every, optimizer=opt, progress=False, log_every=cb_every,
            callbacks=[lambda step, h: acc.append(_accuracy(model.eval(), xt, yt)) or model.train()],
        )  # fmt: skip
        return {"acc": acc}

    key = {"b": b, "hidden": HIDDEN, "v": 1}
    return cached(f"fedavg_central{'_fast' if fast else ''}", key, compute) if cache else compute()


def invert_one_client(*, index: int = 0, steps: int = 300) -> dict[str, Any]:
    """DLG on the update of a client holding one digit, one local SGD step: (image, reconstruction, label)."""
    x, y = load_mnist("test", limit=index + 1)
    model = _model()
    target = x[index : index + 1]
    loss = F.cross_entropy(model(target), y[index : index + 1])
    grads = [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]  # = -update / lr
    rec, label, losses = invert_gradient(
        model, grads, (1, 28, 28), 10, steps=steps, lr=1.0, generator=torch.Generator().manual_seed(0)
    )
    return {"image": target[0], "reconstruction": rec[0], "label": int(y[index]), "guess": int(label.argmax()),
            "losses": losses}  # fmt: skip
