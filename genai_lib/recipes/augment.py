"""Chapter 14's scarce class: a digit classifier with one digit cut to 20 training examples.

The training set is the 4,000 MNIST training digits (fast mode: the first 1,000) with every
``SCARCE_DIGIT`` but the first ``KEEP`` removed. Seven ways to train the same MLP classifier on it
(:func:`genai_lib.recipes.privacy.train_mlp`), each then scored on the 1,000 real test digits by
the scarce digit's recall and the overall accuracy:

- ``"base"``: the imbalanced set as it is;
- ``"oversample"``: the ``KEEP`` real examples repeated until the digit has ``TARGET`` rows;
- ``"classical"``: ``TARGET`` rows of the ``KEEP`` examples, each randomly rotated, scaled,
  shifted and thickened (:func:`genai_lib.models._layers.random_distort`);
- ``"cgan"``: the ``KEEP`` real examples plus ``TARGET - KEEP`` samples of the chapter-3
  conditional GAN, trained here on the *same* imbalanced set (its scarce digit oversampled so the
  generator sees it in every few batches): it never sees the removed digits;
- ``"cgan+classical"``: the ``"cgan"`` rows, each then distorted as in ``"classical"``;
- ``"cvae"``: the ``KEEP`` real examples plus ``TARGET - KEEP`` *analogies* of chapter 16's
  conditional VAE (:class:`genai_lib.models.cvae.CVAE`, Sohn et al. 2015), trained here on the
  same imbalanced set (scarce digit oversampled): a real digit of another class is encoded with
  its own label to its style code z = mu(x, y) and decoded with the scarce label, so the new
  rows inherit the slant, thickness and size of thousands of real digits (Kingma et al. 2014's
  "analogies"; augmentation in a learned feature space, DeVries & Taylor 2017);
- ``"cvae+classical"``: half ``"classical"`` rows (the real examples distorted), half CVAE
  analogies, each analogy distorted as well: real shapes and borrowed styles together.

No generator ever sees the removed digits or the test set. ``train_scarce_cgan()`` is cached as
``ch14_cgan_scarce``, ``train_scarce_cvae()`` as ``ch14_cvae_scarce``; ``scarce_experiment()``
caches its scores as ``ch14_scarce``.
"""

from __future__ import annotations

from typing import Any

import torch

from genai_lib.data import load_mnist, make_loader
from genai_lib.history import History
from genai_lib.models._layers import random_distort
from genai_lib.models.cvae import CVAE, CVAEConfig
from genai_lib.recipes.gan import GAN_MNIST, gan_model
from genai_lib.recipes.privacy import train_mlp
from genai_lib.train import fit, fit_gan
from genai_lib.train_cache import cached, load_or_train
from genai_lib.utils import fast_mode

__all__ = [
    "SCARCE_DIGIT",
    "KEEP",
    "TARGET",
    "METHODS",
    "GENERATIVE",
    "SCARCE",
    "scarce_train_set",
    "augment_scarce",
    "train_scarce_cgan",
    "SCARCE_CVAE",
    "train_scarce_cvae",
    "cvae_analogies",
    "scarce_experiment",
]

SCARCE_DIGIT = 8  # the digit cut down
KEEP = 20  # its training examples left
TARGET = 400  # its rows after oversampling or augmentation (the other digits have 400 each)
METHODS = ("base", "oversample", "classical", "cgan", "cgan+classical", "cvae", "cvae+classical")
GENERATIVE = ("cgan", "cgan+classical", "cvae", "cvae+classical")  # the methods that need a model
SCARCE = {  # budgets: cGAN generator steps, CVAE steps, classifier steps, classifier seeds averaged
    "full": {"gan_steps": 2000, "cvae_steps": 3000, "clf_steps": 1000, "seeds": (0, 1, 2), "limit": None,
             "target": 400},
    "fast": {"gan_steps": 20, "cvae_steps": 60, "clf_steps": 50, "seeds": (0,), "limit": 1000, "target": 100},
}  # fmt: skip
SCARCE_CVAE = CVAEConfig(z_dim=16, hidden=256)  # z 16: room for style (8: 0.03 less recall, 32: no gain)


def _budget(fast: bool | None) -> dict[str, Any]:
    return SCARCE["fast" if (fast_mode() if fast is None else fast) else "full"]


def scarce_train_set(*, fast: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training digits with all but the first ``KEEP`` of ``SCARCE_DIGIT`` removed."""
    x, y = load_mnist("train", limit=_budget(fast)["limit"])
    rank = torch.cumsum((y == SCARCE_DIGIT).long(), 0)  # 1, 2, ... over the scarce digit's rows
    keep = (y != SCARCE_DIGIT) | (rank <= KEEP)
    return x[keep], y[keep]


def _repeat_scarce(x: torch.Tensor, y: torch.Tensor, target: int) -> torch.Tensor:
    few = x[y == SCARCE_DIGIT]
    return few.repeat((target + len(few) - 1) // len(few), 1, 1, 1)[:target]


def _oversampled(x: torch.Tensor, y: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) with the scarce digit's real rows repeated to ``target``: what the generators see."""
    rest, extra = y != SCARCE_DIGIT, _repeat_scarce(x, y, target)
    return torch.cat([x[rest], extra]), torch.cat([y[rest], torch.full((len(extra),), SCARCE_DIGIT)])


def train_scarce_cgan(
    *, fast: bool | None = None, cache: bool = True, progress: bool = False
) -> tuple[torch.nn.Module, History]:
    """The chapter-3 cGAN recipe trained on the scarce-class set (the scarce digit oversampled)."""
    b = _budget(fast)
    fast = fast_mode() if fast is None else fast
    xs, ys = _oversampled(*scarce_train_set(fast=fast), b["target"])
    _, kwargs = GAN_MNIST["cgan"].budget(fast)
    kwargs = {**kwargs, "steps": b["gan_steps"], "progress": progress, "desc": "ch14_cgan_scarce"}
    model = gan_model("cgan", fast=fast)
    loader = make_loader(xs, ys, batch_size=64, drop_last=True, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the training noise
        if cache:
            key = {"n": len(xs), "digit": SCARCE_DIGIT, "keep": KEEP}
            h = load_or_train(model, loader, name="ch14_cgan_scarce", key=key, trainer=fit_gan, **kwargs)
        else:
            h = fit_gan(model, loader, **kwargs)
    return model.eval(), h


def train_scarce_cvae(*, fast: bool | None = None, cache: bool = True, progress: bool = False) -> tuple[CVAE, History]:
    """Chapter 16's conditional VAE (``SCARCE_CVAE``) trained on the scarce-class set, the scarce
    digit oversampled as for the cGAN; Adam 1e-3, batches of 128, weights and noise seeded."""
    b = _budget(fast)
    xs, ys = _oversampled(*scarce_train_set(fast=fast), b["target"])
    kwargs = {"steps": b["cvae_steps"], "lr": 1e-3, "log_every": 50, "progress": progress, "desc": "ch14_cvae_scarce"}
    loader = make_loader(xs, ys, batch_size=128, generator=torch.Generator().manual_seed(0))
    kwargs["generator"] = torch.Generator().manual_seed(1)  # the reparameterisation noise
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the weights
        model = CVAE(SCARCE_CVAE)
        if cache:
            key = {"n": len(xs), "digit": SCARCE_DIGIT, "keep": KEEP, "noise_seed": 1}
            h = load_or_train(model, loader, name="ch14_cvae_scarce", key=key, **kwargs)
        else:
            h = fit(model, loader, **kwargs)
    return model.eval(), h


@torch.no_grad()
def cvae_analogies(
    model: CVAE, x: torch.Tensor, y: torch.Tensor, n: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n scarce-digit images (n, 1, 28, 28) in [0, 1]: random rows of (x, y) of the *other*
    digits, each encoded with its own label to the posterior mean z = mu(x, y) (its style), then
    decoded as the scarce digit, p(x | z, y = SCARCE_DIGIT)'s mean."""
    if not isinstance(model, CVAE):
        raise TypeError(f"model must be a CVAE, got {type(model).__name__}")
    rest = y != SCARCE_DIGIT
    if n < 1 or not bool(rest.any()):
        raise ValueError(f"need n >= 1 and rows of other digits to take styles from, got n={n}")
    idx = torch.randint(int(rest.sum()), (n,), generator=generator)
    xs, ys = x[rest][idx], y[rest][idx]
    w = model.decoder[0].weight
    mu, _ = model.posterior(xs.to(w), ys.to(w.device))  # q(z | x, y)'s mean: the style
    return model.decode(mu, torch.full((n,), SCARCE_DIGIT, device=w.device)).cpu()


def augment_scarce(
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    gan: Any = None,
    cvae: CVAE | None = None,
    target: int = TARGET,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set (x, y) with the scarce digit brought to ``target`` rows by ``method``
    (``gan=`` for the cgan methods, ``cvae=`` for the cvae ones)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "base":
        return x, y
    rest, few = y != SCARCE_DIGIT, x[y == SCARCE_DIGIT]
    if target < len(few):
        raise ValueError(f"target must be at least the {len(few)} real examples, got {target}")
    gen = torch.Generator().manual_seed(seed)
    model, arg = (gan, "gan=, the trained conditional GAN") if "cgan" in method else (cvae, "cvae=, the trained CVAE")
    if method in GENERATIVE and model is None:
        raise ValueError(f"method {method!r} needs {arg}")
    if method == "oversample":
        new = _repeat_scarce(x, y, target)
    elif method == "classical":
        new = random_distort(_repeat_scarce(x, y, target), generator=gen).clamp(0, 1)
    elif method == "cvae+classical":
        half = target // 2  # classical rows (the real examples distorted), then distorted analogies
        made = torch.cat([_repeat_scarce(x, y, half), cvae_analogies(model, x, y, target - half, generator=gen)])
        new = random_distort(made, generator=gen).clamp(0, 1)
    else:
        n = target - len(few)
        if method == "cvae":
            made = cvae_analogies(model, x, y, n, generator=gen) if n else few[:0]
        else:
            made = gan.sample(n, labels=torch.full((n,), SCARCE_DIGIT), generator=gen) if n else few[:0]
        new = torch.cat([few, made])
        if method == "cgan+classical":
            new = random_distort(new, generator=gen).clamp(0, 1)
    return torch.cat([x[rest], new]), torch.cat([y[rest], torch.full((len(new),), SCARCE_DIGIT)])


@torch.no_grad()
def _scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    pred = model(x).argmax(1)
    mask = y == SCARCE_DIGIT
    return {"recall": float((pred[mask] == SCARCE_DIGIT).float().mean()), "acc": float((pred == y).float().mean())}


def scarce_experiment(*, fast: bool | None = None, cache: bool = True) -> dict[str, dict[str, float]]:
    """Per method of ``METHODS``: ``recall`` of the scarce digit and overall ``acc`` on the real
    test digits (the mean over the budget's classifier seeds), and ``recalls`` per seed."""
    b = _budget(fast)
    fast = fast_mode() if fast is None else fast
    gan, _ = train_scarce_cgan(fast=fast, cache=cache)
    cvae, _ = train_scarce_cvae(fast=fast, cache=cache)

    def compute() -> dict[str, Any]:
        x, y = scarce_train_set(fast=fast)
        xt, yt = load_mnist("test")
        out: dict[str, Any] = {}
        for method in METHODS:
            runs = []
            for seed in b["seeds"]:
                xa, ya = augment_scarce(method, x, y, gan=gan, cvae=cvae, target=b["target"], seed=seed)
                runs.append(_scores(train_mlp(xa, ya, steps=b["clf_steps"], seed=seed), xt, yt))
            out[method] = {
                "recall": sum(r["recall"] for r in runs) / len(runs),
                "acc": sum(r["acc"] for r in runs) / len(runs),
                "recalls": [r["recall"] for r in runs],
            }
        return out

    key = {"budget": b, "digit": SCARCE_DIGIT, "keep": KEEP, "methods": METHODS, "v": 2}
    return cached(f"ch14_scarce{'_fast' if fast else ''}", key, compute) if cache else compute()
