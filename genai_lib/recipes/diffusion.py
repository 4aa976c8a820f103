"""The chapter-6 models: diffusion and flow matching on MNIST, on the 8-Gaussian ring, and on the
latents of the chapter-2 VAE; shared by notebooks 6.1-6.3 and ``benchmarks/diffusion_mnist.py``.

Every model trains through :func:`genai_lib.train.fit` (one phase on ``model.loss``) with Adam,
``warmup`` steps of linear warm-up then cosine decay to 5%, gradient clipping at 1, and the EMA
hook ``hooks=[model.ema]``; samplers use the averaged weights. Weights come from seed 0 inside
``torch.random.fork_rng``, the training noise (times, noise, label dropout) from a generator
seeded 0, the batches from a loader shuffled from seed 0. Entries are cached as ``ch6_<name>``.

- ``DIFFUSION_MNIST["ddpm"]`` and ``["fm"]``: the same class-conditional U-Net (labels dropped to
  the null class 20% of the time, so one network is the conditional *and* the unconditional
  model of classifier-free guidance), trained as a cosine-schedule v-prediction diffusion model
  or as a flow, on the 4,000 training images in batches of 64. Every run records the same
  :class:`genai_lib.phases.Snapshots` (:func:`training_snapshots`): a grid of 20 samples from
  fixed noise after step 1 and every eighth of the run, and the EMA weights at every quarter, so
  a notebook can show samples over training and a benchmark FID against training compute;
- ``RING``: an MLP on the ring of chapter 3 (``genai_lib.recipes.gan.RING_DATA``);
- ``LATENT``: an MLP diffusion model on the 16-D posterior means of ``train_vae("conv16")``.

Fast mode (``GENAI_FAST=1``): narrower networks, the first 1,000 images, ``fast_steps`` steps.
How the models are scored is :mod:`genai_lib.recipes.diffusion_eval`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import torch

from genai_lib._checks import check_finite_number, check_positive, plain_fields
from genai_lib.data import load_mnist, make_loader, toy_2d
from genai_lib.history import History
from genai_lib.models.diffusion import DiffusionConfig, GaussianDiffusion, LatentGenerator
from genai_lib.models.flow import FlowConfig, FlowMatching
from genai_lib.models.unet import MLPDenoiserConfig, UNetConfig
from genai_lib.phases import Snapshots, hook_list
from genai_lib.recipes.gan import RING_DATA
from genai_lib.recipes.vae import train_vae
from genai_lib.train import cosine_schedule, fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode, normal_noise

__all__ = [
    "DiffusionRecipe",
    "UNET",
    "DIFFUSION_MNIST",
    "RING",
    "LATENT",
    "diffusion_model",
    "train_diffusion",
    "training_snapshots",
    "model_at",
    "train_ring_model",
    "train_latent",
    "vae_latents",
]

FAST_LIMIT = 1000  # training images in fast mode
Model = GaussianDiffusion | FlowMatching


@dataclass(frozen=True)
class DiffusionRecipe:
    """A model config with its training budget (Adam, warm-up + cosine to 5%, clipping at 1)."""

    config: DiffusionConfig | FlowConfig  # the model
    steps: int  # optimizer steps
    lr: float  # peak learning rate
    batch_size: int = 64  # examples per step
    warmup: int = 100  # linear warm-up steps (at most a tenth of the run)
    fast_steps: int = 40  # steps in fast mode
    fast_width: int | None = 16  # fast mode: the U-Net's width (None: unchanged)

    def __post_init__(self) -> None:
        plain_fields(self)
        if not isinstance(self.config, (DiffusionConfig, FlowConfig)):
            raise TypeError(f"config must be a DiffusionConfig or FlowConfig, got {type(self.config).__name__}")
        for name in ("steps", "batch_size", "fast_steps"):
            check_positive(name, getattr(self, name))
        check_positive("warmup", self.warmup, allow_zero=True)
        check_finite_number("lr", self.lr, positive=True, allow_zero=False)
        if self.fast_width is not None:
            check_positive("fast_width", self.fast_width)

    def budget(self, fast: bool) -> tuple[DiffusionConfig | FlowConfig, int]:
        """The config and step count for full or fast mode."""
        if not fast:
            return self.config, self.steps
        den = self.config.denoiser
        if isinstance(den, UNetConfig) and self.fast_width:
            den = replace(den, width=self.fast_width)
        return replace(self.config, denoiser=den), self.fast_steps


# The U-Net of both pixel-space models: each 2x2 patch folded into 4 channels, then 14x14 (32
# channels) -> 7x7 (64, with self-attention) and back; 0.76M parameters, about 100 MFLOP per image.
UNET = UNetConfig(width=32, mults=(1, 2), patch=2, n_classes=10)

# Measured on the 2-core machine (one thread, seed 0, classifier-FID at n = 1,000 against the
# held-out digits): with a 1,500-step run, eps-prediction DDIM-50 133.0, v-prediction 83.1, the
# flow (Euler 20) 78.8; with a 3,000-step run, v-prediction DDIM-50 49.7 and the flow 53.6.
DIFFUSION_MNIST: dict[str, DiffusionRecipe] = {
    "ddpm": DiffusionRecipe(
        DiffusionConfig(UNET, schedule="cosine", prediction="v", p_uncond=0.2, ema_decay=0.995), steps=2000, lr=2e-3
    ),
    "fm": DiffusionRecipe(FlowConfig(UNET, p_uncond=0.2, ema_decay=0.995), steps=2000, lr=2e-3),
}

_RING_NET = MLPDenoiserConfig(dim=2, hidden=128, depth=3, emb_dim=64)
RING: dict[str, DiffusionRecipe] = {
    "ddpm": DiffusionRecipe(
        DiffusionConfig(_RING_NET, schedule="cosine", ema_decay=0.995),
        steps=3000,
        lr=2e-3,
        batch_size=256,
        fast_steps=300,
        fast_width=None,
    ),
    "fm": DiffusionRecipe(
        FlowConfig(_RING_NET, ema_decay=0.995), steps=3000, lr=2e-3, batch_size=256, fast_steps=300, fast_width=None
    ),
}

# data_scale is set from the latents when training (their standard deviation). v-prediction:
# with eps-prediction the cosine schedule's last step (abar_T = 2.4e-9) makes DDIM's first
# x0 estimate divide the network's error by sqrt(abar_T); images clip x0 to [-1, 1], latents
# have no range to clip to (FID 545 with eps, measured 2026-12-02).
LATENT = DiffusionRecipe(
    DiffusionConfig(
        MLPDenoiserConfig(dim=16, hidden=256, depth=3, emb_dim=64), schedule="cosine", prediction="v", ema_decay=0.995
    ),
    steps=3000,
    lr=1e-3,
    batch_size=256,
    fast_steps=100,
    fast_width=None,
)

SNAPSHOT_SAMPLER = {"ddpm": {"steps": 20}, "fm": {"steps": 20}}  # DDIM / Euler: deterministic from fixed noise


def _build(config: DiffusionConfig | FlowConfig, device: Any) -> Model:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GaussianDiffusion(config) if isinstance(config, DiffusionConfig) else FlowMatching(config)
    return model.to(device)


def _recipe(name: str | DiffusionRecipe, table: dict[str, DiffusionRecipe]) -> DiffusionRecipe:
    if isinstance(name, DiffusionRecipe):
        return name
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"recipe must be one of {tuple(table)} or a DiffusionRecipe, got {name!r}")
    return table[name]


def _train(
    model: torch.nn.Module,
    recipe: DiffusionRecipe,
    steps: int,
    tensors: tuple[torch.Tensor, ...],
    *,
    name: str,
    key: dict[str, Any],
    cache: bool,
    hooks: list[Any],
    progress: bool,
) -> History:
    loader = make_loader(
        *tensors, batch_size=recipe.batch_size, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    warmup = min(recipe.warmup, max(1, steps // 10))
    kwargs = {
        "steps": steps,
        "lr": recipe.lr,
        "lr_schedule": cosine_schedule(warmup, steps, 0.05),
        "grad_clip": 1.0,
        "hooks": [model.ema, *hooks],
        "generator": torch.Generator().manual_seed(0),
        "progress": progress,
        "desc": name,
    }
    if not cache:
        return fit(model, loader, **kwargs)
    key = {**key, "batch_size": recipe.batch_size, "schedule": f"cosine({warmup}, {steps}, 0.05)", "loader_seed": 0}
    return load_or_train(model, loader, name=name, key=key, **kwargs)


def diffusion_model(recipe: str | DiffusionRecipe, *, fast: bool | None = None, device: Any = None) -> Model:
    """The untrained model of a ``DIFFUSION_MNIST`` recipe, weights from seed 0."""
    cfg, _ = _recipe(recipe, DIFFUSION_MNIST).budget(fast_mode() if fast is None else fast)
    return _build(cfg, device)


def training_snapshots(model: Model, steps: int) -> Snapshots:
    """The Snapshots every MNIST run records: ``{"grid": (20, 1, 28, 28) samples of the digits
    0-9 twice from fixed noise (20 deterministic sampler steps, EMA weights), "weights": the EMA
    network's state dict at every quarter of the run, else None}`` after step 1 and every
    ``steps // 8`` steps."""
    check_positive("steps", steps)
    every, keep = max(1, steps // 8), max(1, steps // 4)
    noise = normal_noise((20, *model.data_shape), generator=torch.Generator().manual_seed(5))
    labels = torch.arange(20) % 10
    kw = SNAPSHOT_SAMPLER["ddpm" if isinstance(model, GaussianDiffusion) else "fm"]

    def record(step: int) -> dict[str, Any]:
        grid = model.sample(20, labels=labels, noise=noise, **kw)
        weights = None
        if step % keep == 0:
            weights = {k: v.detach().cpu().clone() for k, v in model.ema.shadow.state_dict().items()}
        return {"grid": grid, "weights": weights}

    return Snapshots(record, every)


def train_diffusion(
    recipe: str | DiffusionRecipe,
    *,
    name: str | None = None,
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    hooks: Any = (),
    progress: bool = False,
) -> tuple[Model, History, Snapshots]:
    """Train (or load from the cache ``ch6_<name>``) a pixel-space MNIST model.

    ``recipe``: ``"ddpm"``, ``"fm"`` or a :class:`DiffusionRecipe` of your own (give it a
    ``name``). Returns ``(model in eval mode, history, snapshots)``; ``snapshots`` is the
    :func:`training_snapshots` hook, its records filled (from the cache too).
    """
    r = _recipe(recipe, DIFFUSION_MNIST)
    name = name or (recipe if isinstance(recipe, str) else None)
    if cache and name is None:
        raise ValueError("a custom DiffusionRecipe needs a name: its cache entry")
    hooks = hook_list(hooks)
    fast = fast_mode() if fast is None else fast
    cfg, steps = r.budget(fast)
    model = _build(cfg, device)
    snaps = training_snapshots(model, steps)
    x, y = load_mnist("train", limit=FAST_LIMIT if fast else None)
    key = {"n": len(x)}
    history = _train(
        model, r, steps, (x, y), name=f"ch6_{name}", key=key, cache=cache, hooks=[snaps, *hooks], progress=progress
    )
    return model.eval(), history, snaps


def model_at(model: Model, weights: dict[str, torch.Tensor]) -> Model:
    """A copy of ``model`` whose EMA network (what the samplers use) holds ``weights``: a state
    dict recorded by :func:`training_snapshots` earlier in the run."""
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a state dict recorded by training_snapshots, got {type(weights).__name__}")
    twin = copy.deepcopy(model)
    twin.ema.shadow.load_state_dict(weights)
    return twin.eval()


def train_ring_model(
    which: str | DiffusionRecipe,
    *,
    name: str | None = None,
    fast: bool | None = None,
    cache: bool = True,
    progress: bool = False,
) -> tuple[Model, History]:
    """Train (or load ``ch6_ring_<name>``) a ``RING`` model (``"ddpm"``, ``"fm"``, or a
    :class:`DiffusionRecipe` of your own with a ``name``) on ``RING_DATA``'s 20,000 points."""
    r = _recipe(which, RING)
    name = name or (which if isinstance(which, str) else None)
    if cache and name is None:
        raise ValueError("a custom DiffusionRecipe needs a name: its cache entry")
    cfg, steps = r.budget(fast_mode() if fast is None else fast)
    model = _build(cfg, None)
    x, _ = toy_2d(RING_DATA["name"], RING_DATA["n"], generator=torch.Generator().manual_seed(RING_DATA["seed"]))
    key = {"data": RING_DATA}
    history = _train(model, r, steps, (x,), name=f"ch6_ring_{name}", key=key, cache=cache, hooks=[], progress=progress)
    return model.eval(), history


@torch.no_grad()
def vae_latents(vae: torch.nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Posterior means mu(x) (N, Z) of ``images`` under a chapter-2 VAE (its encoder in eval mode)."""
    check_positive("batch", batch)
    was = vae.training
    vae.eval()
    try:
        return torch.cat([vae.encode(images[i : i + batch])[0].cpu() for i in range(0, len(images), batch)])
    finally:
        vae.train(was)


def train_latent(
    *, fast: bool | None = None, device: Any = None, cache: bool = True, progress: bool = False
) -> tuple[LatentGenerator, History, dict[str, Any]]:
    """Latent diffusion in miniature: ``LATENT`` on the 16-D posterior means of ``train_vae("conv16")``
    (from the shared cache), decoded by its decoder. Returns ``(generator, history, info)``;
    ``info`` holds the VAE's ``history`` and the latents' ``scale`` (their std, the model's
    ``data_scale``). Cached as ``ch6_latent``."""
    fast = fast_mode() if fast is None else fast
    vae, vae_history = train_vae("conv16", fast=fast, device=device)
    x, _ = load_mnist("train", limit=FAST_LIMIT if fast else None)
    z = vae_latents(vae, x)
    scale = round(float(z.std()), 4)
    cfg, steps = LATENT.budget(fast)
    prior = _build(replace(cfg, data_scale=scale), device)
    key = {"n": len(x), "latents": z, "vae_loss": vae_history.last("loss")}
    history = _train(prior, LATENT, steps, (z,), name="ch6_latent", key=key, cache=cache, hooks=[], progress=progress)
    return LatentGenerator(prior.eval(), vae), history, {"vae_history": vae_history, "scale": scale}
