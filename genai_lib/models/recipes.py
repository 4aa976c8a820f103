"""Training recipes shared by the chapters' notebooks and the benchmarks: one source of truth.

A recipe is a model config plus the budget and optimiser settings it was tuned with. The
notebook of a chapter and its benchmark both read them from here, so the numbers quoted in the
book and the benchmark's printout come from the same settings.

``VAE_MNIST`` (chapter 2, ``benchmarks/vae_mnist.py``): the 4,000-image MNIST training split,
batch 64, Adam with one epoch of linear warm-up then cosine decay to 5% of ``lr``. Tuned on the
held-out negative ELBO. With only 4,000 training images the models overfit when trained long, so
the longer runs use random one-pixel shifts of the training images (``shift=1``), which lets
them train for more epochs before the held-out number turns up.

``GAN_MNIST`` (chapter 3, notebooks 3.2 and 3.3, ``benchmarks/gan_mnist.py``): a model config
plus the keyword arguments of :func:`genai_lib.train.fit_gan`, on the same 4,000 training
images in batches of 64 (``drop_last``), from seed 0. ``steps`` counts generator updates; each
takes ``n_critic`` discriminator updates, one batch each. Adam with DCGAN's ``betas=(0.5, 0.999)``
unless the recipe says otherwise; the WGAN-GP critic uses ``(0.5, 0.9)``. Scored by
classifier-FID at n = 1,000 in the benchmark.

:func:`ring_experiment` (chapter 3, notebook 3.1, ``benchmarks/gan_mnist.py``): the seeded
mode-collapse experiment on the 8-Gaussian ring, with :func:`train_ring` and
:func:`evaluate_ring` so the notebook and the benchmark train and score it the same way.

``CHAR_GPT`` (chapter 7, read again by notebooks 8.1 and 8.2): the character GPT on the English
corpus, trained by :func:`train_char_gpt` into one cache entry, so whichever notebook runs first
trains it and the others load the same weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from genai_lib.models.gan import DCGANConfig, GANConfig, ToyGAN
from genai_lib.models.gpt import GPT, GPTConfig, train_gpt
from genai_lib.models.vae import VAEConfig
from genai_lib.models.vaegan import VAEGANConfig

__all__ = [
    "VAERecipe",
    "VAE_MNIST",
    "GANRecipe",
    "GAN_MNIST",
    "RING_DATA",
    "RING_EVAL",
    "ring_experiment",
    "train_ring",
    "evaluate_ring",
    "CharGPTRecipe",
    "CHAR_GPT",
    "train_char_gpt",
]


@dataclass(frozen=True)
class VAERecipe:
    """A VAE config with its training budget (see ``VAE_MNIST``)."""

    config: VAEConfig  # the model
    epochs: int  # passes over the 4,000 training images
    lr: float  # peak Adam learning rate
    batch_size: int = 64  # images per step


VAE_MNIST: dict[str, VAERecipe] = {
    # 2-D latent (the one we can draw and put on sliders): 80 epochs with shifts measured
    # 149.6 nats, 40 epochs without them 152.3 (seed 0).
    "mlp2": VAERecipe(VAEConfig(arch="mlp", z_dim=2, hidden=512, depth=3, shift=1), epochs=80, lr=2e-3),
    "mlp16": VAERecipe(VAEConfig(arch="mlp", z_dim=16, hidden=512, depth=2), epochs=30, lr=2e-3),
    # conv: 40 epochs 108.6, 80 epochs 106.3, 160 epochs 104.7 nats (seed 0).
    "conv16": VAERecipe(VAEConfig(arch="conv", z_dim=16, width=32, shift=1), epochs=160, lr=3e-3),
}


@dataclass(frozen=True)
class GANRecipe:
    """A GAN config with the :func:`genai_lib.train.fit_gan` arguments it was tuned with (see ``GAN_MNIST``)."""

    config: DCGANConfig | VAEGANConfig  # the model
    fit: Mapping[str, Any]  # fit_gan keyword arguments (read-only; copy with {**recipe.fit, ...})

    def __post_init__(self) -> None:
        if not isinstance(self.config, (DCGANConfig, VAEGANConfig)):
            raise TypeError(f"config must be a DCGANConfig or VAEGANConfig, got {type(self.config).__name__}")
        if not isinstance(self.fit, Mapping) or "steps" not in self.fit:
            raise ValueError(f"fit must be a mapping of fit_gan arguments with 'steps', got {self.fit!r}")
        object.__setattr__(self, "fit", MappingProxyType(dict(self.fit)))  # a shared recipe cannot be edited

    @property
    def steps(self) -> int:
        """Generator updates."""
        return int(self.fit["steps"])


GAN_MNIST: dict[str, GANRecipe] = {
    # DCGAN, FID at n=1,000 (seed 0). At 3,000 steps: lr 2e-4 without augmentation 151.1; with DiffAugment
    # shifts of up to 2 pixels 139.5; with the shifts and lr 5e-4 118.2 (the chapter-2 conv VAE: 121.4). On a
    # second machine the same run gave 121.4 at 3,000 steps, level with the VAE (121.2), and kept improving:
    # 98.7 at 4,000, 91.2 at 5,000, 82.5 at 6,000 (a cosine decay over 5,000 steps stalled at 123).
    "dcgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, augment=2), {"steps": 6000, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 1}
    ),
    "cgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, n_classes=10, augment=2),
        {"steps": 3000, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 1},
    ),
    # WGAN-GP, 1,200 steps: lr 2e-4 FID 134.6; with augment=2 133.6; with augment=2 and lr 5e-4 84.3.
    "wgan": GANRecipe(
        DCGANConfig(z_dim=64, width=32, loss="wgan-gp", augment=2),
        {"steps": 1200, "lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 3, "betas": (0.5, 0.9)},
    ),
    "vaegan": GANRecipe(VAEGANConfig(z_dim=16, width=32), {"steps": 2500, "lr_g": 3e-4, "lr_d": 2e-4, "n_critic": 1}),
}


# --------------------------------------------------------------------------- the ring experiment

RING_DATA = {"name": "ring", "n": 20_000, "seed": 0}  # toy_2d("ring") training points


def ring_experiment(fast: bool | None = None) -> dict[str, dict[str, Any]]:
    """The seeded mode-collapse experiment of chapter 3 and ``benchmarks/gan_mnist.py``.

    ``"vanilla"``: a non-saturating MLP GAN that collapses onto a few of the 8 ring modes.
    ``"fixed"``: the same networks with the R1 gradient penalty on real data (Mescheder et al.
    2018), which damps the oscillation that makes the generator hop between modes, and a cosine
    learning-rate decay. Each entry holds the ``config``,
    the ``fit_gan`` keyword arguments (``fit``), the ``batch_size`` and the ``seed`` that
    :func:`train_ring` uses, so a notebook and the benchmark show the same numbers. ``fast``
    (default: ``GENAI_FAST``) shortens training; fast-mode results are not the reported ones.
    """
    from genai_lib.utils import fast_mode

    fast = fast_mode() if fast is None else fast
    scale = 0.1 if fast else 1.0
    return {
        "vanilla": {  # measured: 3/8 modes (notebook 3.1) to 6/8 (benchmark), always short of 8
            "config": GANConfig(z_dim=8, hidden=128, depth=3),
            "fit": {"steps": int(4000 * scale), "lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 1},
            "batch_size": 256,
            "seed": 0,
        },
        "fixed": {  # R1 penalty (Mescheder et al. 2018) + cosine lr decay; measured: 8/8 modes, 84-85% hq
            "config": GANConfig(z_dim=8, hidden=128, depth=3, r1_weight=1.0),
            "fit": {"steps": int(3000 * scale), "lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 1, "lr_schedule": "cosine"},
            "batch_size": 256,
            "seed": 0,
        },
    }


def train_ring(which: str, *, fast: bool | None = None, cache: bool = True, progress: bool = False, callbacks=()):
    """Train (or load from the cache) one model of :func:`ring_experiment`; returns ``(model, history)``.

    Weights are initialised inside ``torch.random.fork_rng`` seeded from the spec, so the
    result does not depend on (and does not change) the caller's global RNG. ``callbacks``
    (e.g. snapshots for an animation) only run when the model is actually trained.
    """
    from genai_lib.data import make_loader, toy_2d
    from genai_lib.train import fit_gan, load_or_train_gan

    specs = ring_experiment(fast)
    if which not in specs:
        raise ValueError(f"which must be one of {tuple(specs)}, got {which!r}")
    spec = specs[which]
    x, _ = toy_2d(RING_DATA["name"], RING_DATA["n"], generator=torch.Generator().manual_seed(RING_DATA["seed"]))
    kwargs = dict(spec["fit"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec["seed"])
        model = ToyGAN(spec["config"])
        loader = make_loader(x, batch_size=spec["batch_size"], generator=torch.Generator().manual_seed(spec["seed"]))
        common = {"progress": progress, "callbacks": callbacks, "divergence": None, **kwargs}
        if cache:
            history = load_or_train_gan(
                model, loader, name=f"ring_{which}", key={"data": RING_DATA, **spec["fit"]}, **common
            )
        else:
            history = fit_gan(model, loader, **common)
    return model, history


RING_EVAL = {"n": 2000, "seed": 1}  # samples drawn to score a ring model, and their generator seed


def evaluate_ring(model: ToyGAN, *, n: int = RING_EVAL["n"], seed: int = RING_EVAL["seed"]) -> dict[str, Any]:
    """:func:`genai_lib.metrics.ring_metrics` of ``n`` seeded samples (modes covered, high-quality fraction)."""
    from genai_lib.metrics import ring_metrics

    return ring_metrics(model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu())


# --------------------------------------------------------------------------- the character GPT


@dataclass(frozen=True)
class CharGPTRecipe:
    """A character GPT's shape and its AdamW + warm-up/cosine budget (see ``CHAR_GPT``)."""

    n_layer: int  # Transformer blocks
    n_embd: int  # model width d
    block_size: int  # context length T
    steps: int  # optimizer steps
    batch_size: int  # windows per step
    lr: float  # peak learning rate (cosine decay to 10% of it)
    warmup: int  # linear warm-up steps
    n_head: int = 4  # attention heads
    weight_decay: float = 0.1  # on the weight matrices only (GPT.configure_optimizers)

    def config(self, vocab_size: int) -> GPTConfig:
        """The model config for a tokenizer of ``vocab_size`` ids (rotary positions)."""
        return GPTConfig(
            vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            pos="rope",
        )


CHAR_GPT: dict[str, CharGPTRecipe] = {
    # Full: 0.80M parameters, 1,500 steps of 12 x 64 characters (67 s on one core of the 2026-12-01 CPU, about
    # 4 minutes on the older one); held-out 1.82 bits/char in chapter 7, against 1.90 for the 5-gram and 2.18 for
    # the LSTM.
    "full": CharGPTRecipe(n_layer=4, n_embd=128, block_size=64, steps=1500, batch_size=12, lr=3e-3, warmup=100),
    "fast": CharGPTRecipe(n_layer=2, n_embd=64, block_size=32, steps=200, batch_size=16, lr=5e-3, warmup=20),
}


def train_char_gpt(
    train_ids: torch.Tensor,
    vocab_size: int,
    *,
    recipe: CharGPTRecipe | None = None,
    fast: bool | None = None,
    device: Any = None,
    progress: bool = False,
) -> tuple[GPT, Any]:
    """Chapter 7's character GPT on ``train_ids`` (1-D ids of the English training split): trained
    with ``CHAR_GPT["fast" if fast else "full"]`` and cached as ``ch7_gpt_english``, or loaded.

    ``recipe`` replaces the shared recipe (e.g. ``dataclasses.replace(CHAR_GPT["full"], steps=3000)``
    for an exercise); its weights are cached under ``ch7_gpt_english_custom`` so the shared entry
    stays. Weights are initialised from seed 0 inside ``torch.random.fork_rng``, so the result does
    not depend on (and does not change) the caller's global RNG. Returns ``(model, history)``;
    ``history.from_cache`` says whether it was loaded. ``fast`` defaults to ``GENAI_FAST``.
    """
    from genai_lib.utils import fast_mode

    shared = CHAR_GPT["fast" if (fast_mode() if fast is None else fast) else "full"]
    if recipe is not None and not isinstance(recipe, CharGPTRecipe):
        raise TypeError(f"recipe must be a CharGPTRecipe, got {type(recipe).__name__}")
    recipe = recipe or shared
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT(recipe.config(vocab_size)).to(device)
    history = train_gpt(
        model,
        train_ids,
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        min_lr=0.1 * recipe.lr,
        warmup=recipe.warmup,
        weight_decay=recipe.weight_decay,
        generator=torch.Generator().manual_seed(0),
        name="ch7_gpt_english" if recipe == shared else "ch7_gpt_english_custom",
        key={"n_train": len(train_ids)},
        progress=progress,
    )
    return model, history
