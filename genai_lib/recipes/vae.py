"""The chapter-2 VAEs on MNIST: one recipe each, shared by notebooks 2 and 3.3 and the benchmarks.

``VAE_MNIST``: the 4,000-image MNIST training split, batches of 64 shuffled from seed 0, Adam
with one epoch of linear warm-up then cosine decay to 5% of ``lr``, weights from seed 0. Tuned
on the held-out negative ELBO (``benchmarks/vae_mnist.py``). With only 4,000 training images the
models overfit when trained long, so the longer runs use random one-pixel shifts of the training
images (``shift=1``), which lets them train for more epochs before the held-out number turns up.
Fast mode (``GENAI_FAST=1``): the first 1,000 training images and ``fast_epochs`` passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_positive
from genai_lib.data import load_mnist, make_loader
from genai_lib.history import History
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.train import cosine_schedule, fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode

__all__ = ["VAERecipe", "VAE_MNIST", "VAE_BINARISED", "BINARISED_TEST_SEED", "train_vae", "FAST_LIMIT"]

FAST_LIMIT = 1000  # training images in fast mode


@dataclass(frozen=True)
class VAERecipe:
    """A VAE config with its training budget (see ``VAE_MNIST``)."""

    config: VAEConfig  # the model
    epochs: int  # passes over the 4,000 training images
    lr: float  # peak Adam learning rate
    batch_size: int = 64  # images per step
    fast_epochs: int = 2  # passes over the 1,000 fast-mode images


VAE_MNIST: dict[str, VAERecipe] = {
    # 2-D latent (the one we can draw and put on sliders): 80 epochs with shifts measured
    # 149.6 nats, 40 epochs without them 152.3 (seed 0).
    "mlp2": VAERecipe(VAEConfig(arch="mlp", z_dim=2, hidden=512, depth=3, shift=1), epochs=80, lr=2e-3, fast_epochs=3),
    "mlp16": VAERecipe(VAEConfig(arch="mlp", z_dim=16, hidden=512, depth=2), epochs=30, lr=2e-3),
    # conv: 40 epochs 108.6, 80 epochs 106.3, 160 epochs 104.7 nats (seed 0).
    "conv16": VAERecipe(VAEConfig(arch="conv", z_dim=16, width=32, shift=1), epochs=160, lr=3e-3),
}

# Binarised MNIST, where the Bernoulli decoder is a true likelihood and nats compare with the
# literature: the same networks trained with dynamic binarisation (a fresh Bernoulli draw of every
# training image at every step, which also regularises, so no shifts), scored on the test split
# binarised once with BINARISED_TEST_SEED, by the importance-weighted bound at k = 1,000.
VAE_BINARISED: dict[str, VAERecipe] = {
    "bin_mlp16": VAERecipe(VAEConfig(arch="mlp", z_dim=16, hidden=512, depth=2, binarize=True), epochs=30, lr=2e-3),
    "bin_conv16": VAERecipe(VAEConfig(arch="conv", z_dim=16, width=32, binarize=True), epochs=80, lr=3e-3),
}
BINARISED_TEST_SEED = 0  # genai_lib.data.binarize(x_test, generator=torch.Generator().manual_seed(0))


def train_vae(
    recipe: str | VAERecipe,
    *,
    name: str | None = None,
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> tuple[VAE, History]:
    """Train (or load from the cache) one VAE recipe; returns ``(model, history)``.

    ``recipe`` is a key of ``VAE_MNIST`` or ``VAE_BINARISED``, or a :class:`VAERecipe` of your own (then give it a
    ``name``, its cache entry). The cache entry is ``vae_<name>`` (``name`` defaults to the key);
    ``cache=False`` always trains (a benchmark timing the run). ``history.from_cache`` says
    whether the weights were loaded. The model is returned in eval mode.
    """
    if isinstance(recipe, str):
        known = {**VAE_MNIST, **VAE_BINARISED}
        if recipe not in known:
            raise ValueError(f"recipe must be one of {tuple(known)} or a VAERecipe, got {recipe!r}")
        name, recipe = name or recipe, known[recipe]
    elif not isinstance(recipe, VAERecipe):
        raise TypeError(f"recipe must be a name in VAE_MNIST or a VAERecipe, got {type(recipe).__name__}")
    elif cache and name is None:
        raise ValueError("a custom VAERecipe needs a name: its cache entry")
    check_positive("seed", seed, allow_zero=True)
    fast = fast_mode() if fast is None else fast
    limit, epochs = (FAST_LIMIT, recipe.fast_epochs) if fast else (None, recipe.epochs)
    x, y = load_mnist("train", limit=limit)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VAE(recipe.config).to(device)
        loader = make_loader(x, y, batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(seed))
        steps = epochs * len(loader)
        kwargs = {"epochs": epochs, "lr": recipe.lr, "progress": progress, "desc": f"VAE {name or ''}".strip()}
        schedule = cosine_schedule(len(loader), steps, 0.05)  # one epoch of warm-up, then cosine to 5%
        if cache:
            key = {
                "n_train": len(x),
                "batch_size": recipe.batch_size,
                "seed": seed,
                "schedule": "cosine(1 epoch, 0.05)",
            }
            history = load_or_train(model, loader, name=f"vae_{name}", key=key, lr_schedule=schedule, **kwargs)
        else:
            history = fit(model, loader, lr_schedule=schedule, **kwargs)
    return model.eval(), history
