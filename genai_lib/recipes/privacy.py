"""Chapter 16's private models: a DP-SGD conditional VAE at several epsilons, and membership inference.

- ``train_dp_cvae(eps)``: the class-conditional VAE (:mod:`genai_lib.models.cvae`) on the 4,000
  MNIST training digits, by DP-SGD with Poisson batches (expected size ``batch``), per-example
  clipping at ``max_norm`` and the noise multiplier that spends exactly ``eps`` at delta = 1e-5
  in ``steps`` steps (:func:`genai_lib.privacy.noise_for_epsilon`); ``eps=None`` trains the same
  network without privacy (Adam, shuffled batches). Cached as ``dp_cvae_<eps>``. With
  ``public=True`` the network starts from :func:`pretrain_public_cvae` instead of random weights
  (public-data pretraining, the standard help for DP training: Li et al. 2022, Ghalebikesabi et
  al. 2023); cached as ``dp_cvae_<eps>_pub``.
- ``pretrain_public_cvae()``: the same network trained without privacy on the 1,797 UCI digits
  (scikit-learn's, brought to MNIST's frame by ``load_digits28``): public data, disjoint from
  MNIST, another set of writers and scanners. Cached as ``dp_cvae_public``.
- ``train_dp_merf(eps)``: DP-MERF (Harder et al. 2021, :mod:`genai_lib.models.merf`): the 4,000
  digits' class-conditional mean embedding in random Fourier features, released once by the
  Gaussian mechanism at ``eps`` (:func:`genai_lib.privacy.gaussian_mechanism`), then a generator
  trained to match it (no further privacy cost). Kernel lengthscale: the median distance
  between public UCI digits. Cached as ``dp_merf_<eps>``.
- ``tstr(model)``: train-synthetic-test-real, an MLP classifier trained only on the generator's
  labelled samples and scored on the 1,000 real test digits; ``fid(model)``: classifier-FID.
- ``membership(dp)``: a small MLP trained to overfit 500 members (or its DP twin), attacked by
  the loss threshold (Yeom et al. 2018) and by LiRA with shadow models trained the same way on
  random halves of the 1,000-digit pool (Carlini et al. 2022). Cached as ``mia_<kind>``.

Fast mode (``GENAI_FAST=1``): fewer steps and images, the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive
from genai_lib.data import load_digits28, load_mnist, make_loader
from genai_lib.metrics import classifier_features, frechet_distance
from genai_lib.models.cvae import CVAE, CVAEConfig, MLPClassifier, MLPClassifierConfig, ce_sample_loss, cvae_sample_loss
from genai_lib.models.merf import MERFConfig, MERFGenerator
from genai_lib.privacy import PoissonLoader, check_delta, dp_phase, epsilon, gaussian_mechanism, noise_for_epsilon
from genai_lib.privacy_attacks import auc, lira_scores, logit_confidence, tpr_at_fpr
from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.train import fit
from genai_lib.train_cache import cached, load_or_train
from genai_lib.utils import fast_mode

__all__ = [
    "DPRecipe",
    "DP_CVAE",
    "DELTA",
    "train_dp_cvae",
    "pretrain_public_cvae",
    "train_dp_merf",
    "MERF",
    "tstr",
    "fid",
    "train_mlp",
    "membership",
    "EPSILONS",
]

DELTA = 1e-5  # the delta of every epsilon in the chapter (well below 1 / 4,000 examples)
EPSILONS = (1.0, 3.0, 8.0)  # the privacy budgets of the private generators


@dataclass(frozen=True)
class DPRecipe:
    """A DP-SGD budget: steps, expected batch, clip norm, Adam learning rate."""

    steps: int  # optimizer steps (each a Poisson batch)
    batch: int  # expected batch size q N
    max_norm: float  # per-example clip norm C
    lr: float  # Adam learning rate
    nodp_steps: int  # steps of the non-private twin (batches of ``batch``)


DP_CVAE = {
    "full": DPRecipe(steps=300, batch=256, max_norm=1.0, lr=5e-3, nodp_steps=1500),
    "fast": DPRecipe(steps=12, batch=128, max_norm=1.0, lr=5e-3, nodp_steps=60),
}
CVAE_CFG = CVAEConfig(z_dim=8, hidden=64)  # small: DP noise grows with the parameter count
PUBLIC_STEPS = {"full": 1500, "fast": 60}  # Adam steps (batches of 256) on the public UCI digits


def _data(fast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("train", limit=1000 if fast else None)


def _check_eps(eps: Any) -> None:
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0):
        raise ValueError(f"epsilon must be a number > 0 (or None for no privacy), got {eps!r}")


def _public_data() -> tuple[torch.Tensor, torch.Tensor]:
    (xa, ya), (xb, yb) = load_digits28("train"), load_digits28("test")
    return torch.cat([xa, xb]), torch.cat([ya, yb])


def pretrain_public_cvae(*, fast: bool | None = None, device: Any = None, progress: bool = False) -> CVAE:
    """The conditional VAE trained without privacy on the public UCI digits (all 1,797)."""
    fast = fast_mode() if fast is None else fast
    steps = PUBLIC_STEPS["fast" if fast else "full"]
    x, y = _public_data()

    def compute() -> dict[str, Any]:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = CVAE(CVAE_CFG).to(device or "cpu")
        loader = make_loader(x, y, batch_size=256, generator=torch.Generator().manual_seed(0))
        h = fit(model, loader, steps=steps, lr=5e-3, generator=torch.Generator().manual_seed(1), progress=progress)
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "loss": list(h.logs["loss"])}

    key = {"steps": steps, "cfg": CVAE_CFG.__dict__, "n": len(x), "v": 2}  # v2: seeded noise
    value = cached(f"dp_cvae_public{'_fast' if fast else ''}", key, compute)
    model = CVAE(CVAE_CFG)
    model.load_state_dict(value["state"])
    return model.to(device or "cpu").eval()


def train_dp_cvae(
    eps: float | None,
    *,
    public: bool = False,
    delta: float = DELTA,
    fast: bool | None = None,
    device: Any = None,
    progress: bool = False,
    cache: bool = True,
) -> tuple[CVAE, dict[str, Any]]:
    """The conditional VAE trained at privacy budget ``eps`` (None: no privacy); returns (model, info).

    ``info``: ``epsilon`` spent (recomputed from sigma, q and steps), ``noise_multiplier``,
    ``q``, ``steps`` and the training ``loss`` curve. ``public``: start from the network
    pretrained on the public UCI digits (the epsilon is that of the MNIST fine-tuning: the
    public data need no privacy).
    """
    _check_eps(eps)
    if not isinstance(public, bool):
        raise TypeError(f"public must be a bool, got {type(public).__name__}")
    check_delta(delta)
    fast = fast_mode() if fast is None else fast
    r = DP_CVAE["fast" if fast else "full"]
    x, y = _data(fast)
    q = r.batch / len(x)
    sigma = None if eps is None else noise_for_epsilon(float(eps), q, r.steps, delta)

    def compute() -> dict[str, Any]:
        if public:
            model = pretrain_public_cvae(fast=fast, device=device).train()
        else:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = CVAE(CVAE_CFG).to(device or "cpu")
        gen = torch.Generator().manual_seed(0)
        if sigma is None:
            loader = make_loader(x, y, batch_size=r.batch, generator=torch.Generator().manual_seed(0))
            h = fit(model, loader, steps=r.nodp_steps, lr=r.lr, generator=gen, progress=progress)
        else:
            phase = dp_phase(
                model, cvae_sample_loss, max_norm=r.max_norm, noise_multiplier=sigma,
                expected_batch_size=r.batch, extra=model.noise_for, lr=r.lr,
            )  # fmt: skip
            h = fit(model, PoissonLoader(x, y, q=q), steps=r.steps, phases=[phase], generator=gen, progress=progress)
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "loss": list(h.logs["loss"])}

    key = {"recipe": r.__dict__, "cfg": CVAE_CFG.__dict__, "eps": eps, "delta": delta, "n": len(x), "v": 1}
    if sigma is None:
        key["v"] = 2  # v2: seeded shuffle and noise (the same weights from an empty cache every time)
    if public:
        key["public"] = {"steps": PUBLIC_STEPS["fast" if fast else "full"], "n": len(_public_data()[0]), "v": 2}
    name = f"dp_cvae_{'nodp' if eps is None else eps}{'_pub' if public else ''}{'_fast' if fast else ''}"
    value = cached(name, key, compute) if cache else compute()
    model = CVAE(CVAE_CFG)
    model.load_state_dict(value["state"])
    model.to(device or "cpu").eval()
    spent = None if sigma is None else epsilon(q, sigma, r.steps, delta)
    info = {"epsilon": spent, "noise_multiplier": sigma, "q": q, "steps": r.steps, "loss": value["loss"]}
    return model, info


# DP-MERF's budgets. 1,000 full-mode steps: the loss is flat by then (2,000 steps gave TSTR 0.791
# instead of 0.782 at epsilon 8, at twice the time; notebook 16's benchmark box)
MERF = {
    "full": {"n_freq": 2000, "steps": 1000, "batch": 500, "lr": 1e-3},
    "fast": {"n_freq": 200, "steps": 40, "batch": 100, "lr": 1e-3},
}


def public_lengthscale(n: int = 500) -> float:
    """The median distance between ``n`` public UCI digits (MNIST frame): DP-MERF's kernel width,
    chosen without looking at the private digits."""
    x, _ = load_digits28("train", limit=n)
    flat = x.flatten(1)
    d = torch.cdist(flat, flat)
    return float(d[torch.triu_indices(n, n, 1).unbind()].median())


def train_dp_merf(
    eps: float | None,
    *,
    delta: float = DELTA,
    fast: bool | None = None,
    device: Any = None,
    progress: bool = False,
    cache: bool = True,
) -> tuple[MERFGenerator, dict[str, Any]]:
    """The DP-MERF generator at privacy budget ``eps`` (None: the embedding released without noise).

    Returns (model in eval mode, info with ``epsilon``, ``noise_multiplier``, ``lengthscale``
    and the training ``loss`` curve, the squared MMD to the released embedding).
    """
    _check_eps(eps)
    check_delta(delta)
    fast = fast_mode() if fast is None else fast
    b = MERF["fast" if fast else "full"]
    x, y = _data(fast)
    cfg = MERFConfig(lengthscale=round(public_lengthscale(), 4), n_freq=b["n_freq"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MERFGenerator(cfg)
    summary = model.embed(x, y)  # (2F, K): sensitivity 1 under adding or removing one digit
    sigma = None
    if eps is not None:
        summary, sigma = gaussian_mechanism(
            summary, sensitivity=1.0, epsilon_budget=float(eps), delta=delta, generator=torch.Generator().manual_seed(1)
        )
    model.set_target(summary / len(x))  # the dataset size is treated as public, as in DP-SGD's q N
    model.to(device or "cpu")
    labels = torch.arange(20 * b["batch"]) % 10  # balanced labels, as the split is
    loader = make_loader(labels, batch_size=b["batch"], generator=torch.Generator().manual_seed(0))
    kwargs = {"steps": b["steps"], "lr": b["lr"], "generator": torch.Generator().manual_seed(0)}
    key = {"budget": b, "eps": eps, "delta": delta, "n": len(x), "labels": labels, "v": 1}
    name = f"dp_merf_{'nodp' if eps is None else eps}{'_fast' if fast else ''}"
    if cache:
        h = load_or_train(model, loader, name=name, key=key, progress=progress, **kwargs)
    else:
        h = fit(model, loader, progress=progress, **kwargs)
    spent = None if sigma is None else epsilon(1.0, sigma, 1, delta)
    info = {"epsilon": spent, "noise_multiplier": sigma, "lengthscale": cfg.lengthscale, "loss": list(h.logs["loss"])}
    return model.eval(), info


def train_mlp(x: torch.Tensor, y: torch.Tensor, *, steps: int, seed: int = 0, hidden: int = 256) -> MLPClassifier:
    """An MLP classifier trained by Adam on (x, y) in batches of 128, weights from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MLPClassifier(MLPClassifierConfig(hidden=hidden))
    loader = make_loader(x, y, batch_size=min(128, len(x)), generator=torch.Generator().manual_seed(seed))
    fit(model, loader, steps=steps, lr=1e-3, progress=False, log_every=steps)
    return model.eval()


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def tstr(model: CVAE | None, *, n: int = 4000, fast: bool | None = None) -> float:
    """Accuracy on the real test digits of an MLP trained only on ``n`` samples of ``model``
    (labels 0..9 in turn); ``model=None`` trains it on the real training digits instead."""
    fast = fast_mode() if fast is None else fast
    xt, yt = load_mnist("test", limit=300 if fast else None)
    if model is None:
        xs, ys = _data(fast)
    else:
        ys = torch.arange(n) % 10
        xs = model.sample(n, labels=ys, generator=torch.Generator().manual_seed(1))
    return _accuracy(train_mlp(xs, ys, steps=100 if fast else 800), xt, yt)


def fid(model: CVAE, *, n: int = 1000, fast: bool | None = None) -> float:
    """Classifier-FID (the course's MNIST feature network) of ``n`` samples against the test digits."""
    fast = fast_mode() if fast is None else fast
    net = mnist_classifier(fast=fast)
    xt, _ = load_mnist("test", limit=n)
    fake = model.sample(len(xt), generator=torch.Generator().manual_seed(2))
    return frechet_distance(classifier_features(net, fake), classifier_features(net, xt))


# --------------------------------------------------------------------------- membership inference

MIA = {
    "full": {"pool": 1000, "steps": 1500, "shadows": 8, "dp_shadows": 4, "dp_steps": 200, "dp_batch": 50, "eps": 8.0},
    "fast": {"pool": 200, "steps": 150, "shadows": 2, "dp_shadows": 2, "dp_steps": 20, "dp_batch": 20, "eps": 8.0},
}


MIA_HIDDEN = 128  # the attacked MLP: 784 -> 128 -> 10


def _train_member_model(x, y, *, dp: bool, budget: dict, seed: int) -> tuple[MLPClassifier, float | None]:
    if not dp:
        return train_mlp(x, y, steps=budget["steps"], seed=seed, hidden=MIA_HIDDEN), None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MLPClassifier(MLPClassifierConfig(hidden=MIA_HIDDEN))
    q = budget["dp_batch"] / len(x)
    sigma = noise_for_epsilon(budget["eps"], q, budget["dp_steps"], DELTA)
    phase = dp_phase(
        model, ce_sample_loss, max_norm=1.0, noise_multiplier=sigma, expected_batch_size=budget["dp_batch"], lr=2e-3
    )
    loader = PoissonLoader(x, y, q=q, seed=seed)
    fit(
        model,
        loader,
        steps=budget["dp_steps"],
        phases=[phase],
        generator=torch.Generator().manual_seed(seed),
        progress=False,
    )
    return model.eval(), epsilon(q, sigma, budget["dp_steps"], DELTA)


def member_pool(y: torch.Tensor, pool: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a membership-inference pool: ``pool // 2`` members, then as many non-members,
    each half holding ``pool // 20`` random digits of every class (stratified). A random split
    lets the two halves differ in their mix of easy and hard digits, which a loss threshold
    reads as membership even against a model trained on neither half."""
    check_positive("pool", pool)
    if pool % 20:
        raise ValueError(f"pool must be a multiple of 20 (two halves of 10 classes), got {pool}")
    k = pool // 20
    perm = torch.randperm(len(y), generator=generator)
    per = [perm[y[perm] == c] for c in range(10)]
    if min(len(p) for p in per) < 2 * k:
        raise ValueError(f"pool={pool} needs {2 * k} digits of every class, got at least {min(map(len, per))}")
    return torch.cat([torch.cat([p[:k] for p in per]), torch.cat([p[k : 2 * k] for p in per])])


@torch.no_grad()
def _per_example(model: MLPClassifier, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    return torch.nn.functional.cross_entropy(logits, y, reduction="none"), logit_confidence(logits, y)


def membership(dp: bool, *, eps: float = 8.0, fast: bool | None = None, cache: bool = True) -> dict[str, Any]:
    """The attacks on the overfit MLP (``dp=False``) or its DP twin at ``eps``: scores, AUCs, TPR at 1% FPR.

    Members: the first half of a pool of training digits; non-members: the second half, with the
    same number of digits of each class (:func:`member_pool`). Returns
    ``loss_scores``/``lira_scores`` (pool,), ``member`` (pool,) bool, ``auc_loss``, ``auc_lira``,
    ``tpr1_loss``, ``tpr1_lira``, ``train_acc``, ``test_acc`` and ``epsilon`` (None without DP).
    """
    fast = fast_mode() if fast is None else fast
    _check_eps(eps)
    b = dict(MIA["fast" if fast else "full"])
    b["eps"] = float(eps) if dp else b["eps"]  # the overfit model has no epsilon
    x, y = load_mnist("train")
    idx = member_pool(y, b["pool"], generator=torch.Generator().manual_seed(123))
    px, py = x[idx], y[idx]
    member = torch.zeros(b["pool"], dtype=torch.bool)
    member[: b["pool"] // 2] = True

    def compute() -> dict[str, Any]:
        target, eps = _train_member_model(px[member], py[member], dp=dp, budget=b, seed=0)
        loss, phi = _per_example(target, px, py)
        shadow_phi, shadow_in = [], []
        for k in range(b["dp_shadows" if dp else "shadows"]):
            # shadows in complementary pairs: every example is IN for one of a pair, OUT for the other
            rank = torch.randperm(b["pool"], generator=torch.Generator().manual_seed(1000 + k // 2))
            ins = (rank < b["pool"] // 2) ^ bool(k % 2)
            sm, _ = _train_member_model(px[ins], py[ins], dp=dp, budget=b, seed=k + 1)
            shadow_phi.append(_per_example(sm, px, py)[1])
            shadow_in.append(ins)
        xt, yt = load_mnist("test", limit=300 if fast else None)
        return {
            "loss_scores": -loss,
            "lira_scores": torch.from_numpy(
                lira_scores(phi.numpy(), torch.stack(shadow_phi).numpy(), torch.stack(shadow_in).numpy())
            ),
            "train_acc": _accuracy(target, px[member], py[member]),
            "test_acc": _accuracy(target, xt, yt),
            "epsilon": eps,
        }

    key = {"budget": b, "dp": dp, "hidden": MIA_HIDDEN, "split": "stratified", "v": 2}
    name = f"mia_{'dp' if dp else 'overfit'}{'' if eps == 8.0 or not dp else f'_eps{eps:g}'}{'_fast' if fast else ''}"
    out = dict(cached(name, key, compute) if cache else compute())
    m = member.numpy()
    for kind in ("loss", "lira"):
        s = out[f"{kind}_scores"] = np.asarray(out[f"{kind}_scores"], dtype=np.float64)
        out[f"auc_{kind}"] = auc(s[m], s[~m])
        out[f"tpr1_{kind}"] = tpr_at_fpr(s[m], s[~m], 0.01)
    out["member"] = m
    return out
