"""Chapter 17's own models: beta-VAEs on the dSprites-like shapes, and their disentanglement.

``SHAPES_VAE``: an MLP VAE (two hidden layers of 256, an 8-dimensional latent) on every image
of ``genai_lib.shapes.load_shapes()`` (4,608 binary 28x28 images, 5 known factors), batches of
64 shuffled from seed 0, Adam with one epoch of warm-up then cosine decay to 5%, weights from
seed 0; one model per ``beta`` of ``SHAPES_BETAS`` (beta-VAE, Higgins et al. 2017), cached as
``ch17_shapes_vae_b<beta>``. :func:`shapes_mig` scores a model's posterior means with the
mutual-information gap. Fast mode (``GENAI_FAST=1``): ``fast_epochs`` passes and two betas.

``COPY_GPT``: a two-layer, four-head GPT with rotary (relative) positions trained on a stream where
copying pays (:func:`copy_stream`: random segments of 4-8 tokens, each followed by itself), the
model chapter 17 runs its induction-head test on beside chapter 7's English GPT; cached as
``ch17_copy_gpt``. With rotary positions and periods that vary, no fixed offset copies, and the
model learns the two-layer circuit of Olsson et al. 2022 (a previous-token head in layer 0, induction
heads in layer 1). An earlier version with learned absolute positions and periods 8-16 learned a
layer-0 positional shortcut instead. Fast mode: ``fast_steps`` (too few for the circuit to form).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from genai_lib._checks import check_finite_number, check_generator, check_positive
from genai_lib.data import make_loader
from genai_lib.history import History
from genai_lib.interpret import mig
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.recipes.language import train_gpt
from genai_lib.shapes import ShapesSpec, load_shapes
from genai_lib.train import cosine_schedule, fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import eval_mode, fast_mode

__all__ = [
    "ShapesVAERecipe",
    "SHAPES_VAE",
    "SHAPES_BETAS",
    "shapes_betas",
    "train_shapes_vae",
    "shapes_mig",
    "COPY_GPT",
    "copy_stream",
    "train_copy_gpt",
]


@dataclass(frozen=True)
class ShapesVAERecipe:
    """A VAE config for the shapes with its training budget (``beta`` is set per run)."""

    config: VAEConfig  # the model (its beta is replaced by the run's)
    epochs: int  # passes over the 4,608 images
    lr: float  # peak Adam learning rate
    batch_size: int = 64  # images per step
    fast_epochs: int = 2  # passes in fast mode


SHAPES_VAE = ShapesVAERecipe(VAEConfig(arch="mlp", z_dim=8, hidden=256, depth=2), epochs=60, lr=1e-3)
SHAPES_BETAS = (1.0, 2.0, 4.0, 8.0, 16.0)  # the full sweep
FAST_BETAS = (1.0, 8.0)


def shapes_betas(fast: bool | None = None) -> tuple[float, ...]:
    """The betas of the sweep in this mode."""
    return FAST_BETAS if (fast_mode() if fast is None else fast) else SHAPES_BETAS


def train_shapes_vae(
    beta: float,
    *,
    recipe: ShapesVAERecipe = SHAPES_VAE,
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    progress: bool = False,
) -> tuple[VAE, History]:
    """Train (or load) the beta-VAE of ``recipe`` with KL weight ``beta`` on the shapes.

    The cache entry is ``ch17_shapes_vae_b<beta>`` (``cache=False`` always trains). Returns
    ``(model in eval mode, history)``.
    """
    beta = check_finite_number("beta", beta, positive=True, allow_zero=False)
    if not isinstance(recipe, ShapesVAERecipe):
        raise TypeError(f"recipe must be a ShapesVAERecipe, got {type(recipe).__name__}")
    fast = fast_mode() if fast is None else fast
    epochs = recipe.fast_epochs if fast else recipe.epochs
    spec = ShapesSpec()
    x, labels = load_shapes(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VAE(replace(recipe.config, beta=beta)).to(device)
        loader = make_loader(x, labels, batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(0))
        kwargs = {
            "epochs": epochs,
            "lr": recipe.lr,
            "lr_schedule": cosine_schedule(len(loader), epochs * len(loader), 0.05),
            "progress": progress,
            "desc": f"beta-VAE {beta:g}",
        }
        if cache:
            key = {"data": "shapes", "spec": repr(spec), "seed": 0, "schedule": "cosine(1 epoch, 0.05)"}
            history = load_or_train(model, loader, name=f"ch17_shapes_vae_b{beta:g}", key=key, **kwargs)
        else:
            history = fit(model, loader, **kwargs)
    return model.eval(), history


@torch.no_grad()
def shapes_mig(model: VAE, *, bins: int = 20) -> tuple[float, torch.Tensor]:
    """MIG of ``model``'s posterior means on every shapes image: ``(MIG, per-factor gaps (5,))``."""
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE, got {type(model).__name__}")
    x, labels = load_shapes(ShapesSpec())
    with eval_mode(model):
        device = next(model.parameters()).device
        mu = torch.cat([model.encode(b.to(device))[0].cpu() for b in x.split(1024)])
    return mig(mu, labels, bins=bins)


# --------------------------------------------------------------------------- a GPT where copying pays

COPY_GPT = {
    "vocab": 64,  # token ids 0..63
    "periods": (4, 8),  # segment lengths, drawn uniformly (varied, so no single offset copies)
    "tokens": 1_000_000,  # length of the training stream
    "config": {"block_size": 24, "n_layer": 2, "n_head": 4, "n_embd": 64, "pos": "rope"},
    "steps": 3000,  # AdamW steps of 64 windows (fast mode: fast_steps)
    "fast_steps": 150,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 0.0,
}


def copy_stream(n_tokens: int, vocab: int, periods: tuple[int, int], *, generator: torch.Generator | None = None):
    """A 1-D token stream (n_tokens,) of random segments, each of a random length in ``periods``
    (inclusive) and followed by an exact copy of itself."""
    check_positive("n_tokens", n_tokens)
    check_positive("vocab", vocab)
    check_generator("generator", generator)
    lo, hi = periods
    check_positive("periods[0]", lo)
    if hi < lo:
        raise ValueError(f"periods must be (low, high) with low <= high, got {periods!r}")
    lengths = torch.randint(lo, hi + 1, (n_tokens // (2 * lo) + 1,), generator=generator)  # enough segments
    tokens = torch.randint(0, vocab, (int(lengths.sum()),), generator=generator)
    segments = tokens.split(lengths.tolist())
    return torch.cat([t for seg in segments for t in (seg, seg)])[:n_tokens]


def train_copy_gpt(*, fast: bool | None = None, device: Any = None, progress: bool = False) -> tuple[GPT, History]:
    """Train (or load, ``ch17_copy_gpt``) the ``COPY_GPT`` model; returns ``(model in eval mode, history)``."""
    fast = fast_mode() if fast is None else fast
    r = COPY_GPT
    ids = copy_stream(r["tokens"], r["vocab"], r["periods"], generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT(GPTConfig(r["vocab"], **r["config"])).to(device)
        history = train_gpt(
            model,
            ids,
            steps=r["fast_steps"] if fast else r["steps"],
            batch_size=r["batch_size"],
            lr=r["lr"],
            min_lr=r["lr"] / 10,
            weight_decay=r["weight_decay"],
            warmup=50,
            generator=torch.Generator().manual_seed(0),
            name="ch17_copy_gpt",
            key={"stream": "copy_stream", "periods": list(r["periods"]), "seed": 0},
            progress=progress,
        )
    return model.eval(), history
