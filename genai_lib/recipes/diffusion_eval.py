"""How chapter 6 scores its models, shared by notebooks 6.2-6.3 and ``benchmarks/diffusion_mnist.py``.

The protocol is chapter 3's (``benchmarks/gan_mnist.py``): ``EVAL["n"]`` = 1,000 generated images
drawn with a generator seeded ``EVAL["seed"]``, scored by :func:`genai_lib.metrics.image_quality`
(classifier-FID, KID, precision, recall) against the 1,000 held-out test digits, with the
classifier of :func:`genai_lib.recipes.classifier.mnist_classifier`. Unconditional samples of a
class-conditional model use the null class. Sweeps (sampler steps, guidance scales, training
snapshots) use ``SWEEP_N`` = 500 images per point, so their FIDs are comparable with each other
but run higher than at n = 1,000 (FID is biased upwards at small n). Fast mode scores 200 images.

Everything that costs minutes is an artifact of :func:`genai_lib.train_cache.cached`, keyed by
the content of the model's weights and the settings: a second run, or the benchmark after a
notebook, reads the numbers back (timings included, measured where they were computed).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from genai_lib._checks import check_finite_number, check_positive
from genai_lib.data import load_mnist
from genai_lib.metrics import conditional_accuracy, image_quality, ring_metrics
from genai_lib.models.diffusion import GaussianDiffusion
from genai_lib.recipes.diffusion import model_at, train_diffusion, train_latent
from genai_lib.recipes.gan import RING_EVAL, train_gan
from genai_lib.recipes.vae import train_vae
from genai_lib.train_cache import cached
from genai_lib.utils import fast_mode

__all__ = [
    "EVAL",
    "SWEEP_N",
    "SAMPLERS",
    "CFG",
    "LATENT_SAMPLER",
    "eval_n",
    "sample_images",
    "image_scores",
    "ring_scores",
    "evaluations",
    "guided_samples",
    "sampler_sweep",
    "guidance_sweep",
    "training_curve",
    "COMPARISON",
    "comparison_table",
]

EVAL = {"n": 1000, "seed": 1, "batch": 250}  # generated images per score, their generator seed, batch size
SWEEP_N = 500  # images per point of a sweep
FAST_N = 200  # images per score in fast mode

# The chapter's headline samplers: name -> (family, sample keywords)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim50": ("ddpm", {"steps": 50}),
    "ddim10": ("ddpm", {"steps": 10}),
    "fm20": ("fm", {"steps": 20}),
    "fm5": ("fm", {"steps": 5}),
}
# Guided class-conditional samples: the digit k for sample i = k mod 10, this scale and sampler
CFG = {"family": "fm", "scale": 2.0, "sampler": {"steps": 20}, "seed": 2}
LATENT_SAMPLER = {"steps": 50}  # DDIM on the latents


def eval_n(n: int | None = None) -> int:
    """``n``, or the protocol's image count: ``EVAL["n"]`` (fast mode: 200)."""
    if n is None:
        return FAST_N if fast_mode() else EVAL["n"]
    check_positive("n", n)
    return n


def _sweep_n(n: int | None) -> int:
    if n is not None:
        check_positive("n", n)
        return n
    return FAST_N if fast_mode() else SWEEP_N


def sample_images(
    model: Any, *, n: int | None = None, seed: int = EVAL["seed"], batch: int = EVAL["batch"], **kwargs: Any
) -> tuple[torch.Tensor, float]:
    """``n`` samples from ``model.sample(batch, generator=..., **kwargs)`` in batches, one generator
    seeded ``seed``; returns ``(images, seconds)`` (CUDA synchronised)."""
    n = eval_n(n)
    check_positive("batch", batch)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    out = [model.sample(min(batch, n - i), generator=g, **kwargs) for i in range(0, n, batch)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return torch.cat(out), time.perf_counter() - t0


def image_scores(classifier: torch.nn.Module, fake: torch.Tensor, n: int | None = None) -> dict[str, float]:
    """FID, KID, precision and recall of ``fake`` against the held-out test digits at ``n``
    (default: all of ``fake``, at most 1,000): the protocol of ``benchmarks/gan_mnist.py``."""
    x_test, _ = load_mnist("test")
    n = min(len(fake), len(x_test)) if n is None else n
    return image_quality(classifier, x_test, fake, n=n, generator=torch.Generator().manual_seed(0))


def ring_scores(model: Any, **kwargs: Any) -> dict[str, Any]:
    """Ring metrics of ``RING_EVAL["n"]`` samples drawn with seed ``RING_EVAL["seed"]`` (chapter 3's protocol)."""
    samples = model.sample(RING_EVAL["n"], generator=torch.Generator().manual_seed(RING_EVAL["seed"]), **kwargs)
    return ring_metrics(samples)


def evaluations(model: Any, kwargs: Mapping[str, Any], guidance: float = 1.0) -> int:
    """Network evaluations per sample of ``model.sample(**kwargs)``: one per step (two for Heun),
    twice that under classifier-free guidance with a scale other than 0 and 1."""
    per_step = 2 if kwargs.get("method") == "heun" else 1
    default = 50 if isinstance(model, GaussianDiffusion) else 20
    guided = 2 if guidance not in (0.0, 1.0) else 1
    return int(kwargs.get("steps", default)) * per_step * guided


def guided_samples(
    model: Any, n: int, scale: float, *, seed: int = CFG["seed"], batch: int = EVAL["batch"], **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``n`` class-conditional samples, digit ``i % 10`` for sample i, at guidance ``scale``:
    ``(images, labels, seconds)``."""
    check_finite_number("scale", scale, positive=True)
    labels = torch.arange(n) % 10
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    out = [
        model.sample(len(labels[i : i + batch]), labels=labels[i : i + batch], guidance=scale, generator=g, **kwargs)
        for i in range(0, n, batch)
    ]
    return torch.cat(out), labels, time.perf_counter() - t0


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


def _scores(classifier: torch.nn.Module, fake: torch.Tensor, seconds: float) -> dict[str, float]:
    q = image_scores(classifier, fake)
    return {**{k: float(v) for k, v in q.items()}, "s_per_image": seconds / len(fake)}


def sampler_sweep(
    model: Any,
    classifier: torch.nn.Module,
    settings: Mapping[str, Mapping[str, Any]],
    *,
    name: str,
    n: int | None = None,
) -> dict[str, dict[str, float]]:
    """Score ``model.sample(**settings[k])`` for every k on ``n`` images (default ``SWEEP_N``, fast
    200): ``{k: {"fid", "kid", "precision", "recall", "s_per_image", "nfe"}}``, cached as
    ``ch6_sweep_<name>`` for these weights and settings."""
    n = _sweep_n(n)
    settings = {k: dict(v) for k, v in settings.items()}

    def compute() -> dict[str, Any]:
        out = {}
        for k, kw in settings.items():
            fake, secs = sample_images(model, n=n, **kw)
            out[k] = {**_scores(classifier, fake, secs), "nfe": evaluations(model, kw)}
        return out

    key = {"weights": _weights(model), "settings": settings, "n": n, "seed": EVAL["seed"]}
    return cached(f"ch6_sweep_{name}", key, compute)


def guidance_sweep(
    model: Any,
    classifier: torch.nn.Module,
    scales: list[float],
    *,
    name: str,
    n: int | None = None,
    **kwargs: Any,
) -> dict[str, list[float]]:
    """Guided samples (:func:`guided_samples`) at each scale: how often the classifier reads the
    requested digit (``acc``) and FID/precision/recall against the test digits (recall: how much
    of the data's variety the samples cover). Returns lists aligned with ``scales``; cached as
    ``ch6_guidance_<name>``."""
    n = _sweep_n(n)
    scales = [check_finite_number("scale", s, positive=True) for s in scales]

    def compute() -> dict[str, Any]:
        out: dict[str, list[float]] = {"scale": scales, "acc": [], "fid": [], "precision": [], "recall": []}
        for s in scales:
            imgs, labels, _ = guided_samples(model, n, s, **kwargs)
            out["acc"].append(conditional_accuracy(classifier, imgs, labels))
            q = image_scores(classifier, imgs)
            for k in ("fid", "precision", "recall"):
                out[k].append(float(q[k]))
        return out

    key = {"weights": _weights(model), "scales": scales, "n": n, "sampler": dict(kwargs), "seed": CFG["seed"]}
    return cached(f"ch6_guidance_{name}", key, compute)


def training_curve(
    model: Any, snapshots: Any, classifier: torch.nn.Module, *, name: str, n: int | None = None, **kwargs: Any
) -> dict[str, list[float]]:
    """FID of ``model.sample(**kwargs)`` with the EMA weights each snapshot recorded (every
    quarter of the run), on ``n`` images: ``{"step": [...], "fid": [...]}``, cached as
    ``ch6_curve_<name>``."""
    n = eval_n(n)
    kept = [(s, it["weights"]) for s, it in zip(snapshots.steps, snapshots.items, strict=True) if it["weights"]]

    def compute() -> dict[str, Any]:
        fids = []
        for _, w in kept:
            fake, _ = sample_images(model_at(model, w), n=n, **kwargs)
            fids.append(float(image_scores(classifier, fake)["fid"]))
        return {"step": [s for s, _ in kept], "fid": fids}

    key = {"weights": [w for _, w in kept], "n": n, "sampler": dict(kwargs), "seed": EVAL["seed"]}
    return cached(f"ch6_curve_{name}", key, compute)


# --------------------------------------------------------------------------- the chapter-2-to-6 table

# name -> (what it is, how its models are trained and sampled)
COMPARISON = {
    "VAE": "chapter 2's conv VAE (16-D), sampled from its prior",
    "DCGAN": "chapter 3",
    "WGAN-GP": "chapter 3",
    "cGAN": "chapter 3, labels cycling through the digits",
    "VAE-GAN": "chapter 3",
    "DDPM/DDIM-50": "this chapter, DDIM with 50 steps, unconditional (null class)",
    "flow, Euler 20": "this chapter, 20 Euler steps, unconditional (null class)",
    "latent diffusion": "DDIM-50 on the conv VAE's 16-D latents, decoded",
}


class _Sampler:
    """``sample(n, generator=)`` of ``model.sample`` with fixed keywords."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model, self.kwargs = model, kwargs

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        return self.model.sample(n, generator=generator, **self.kwargs)


def _contenders(device: Any) -> dict[str, tuple[_Sampler, float]]:
    """name -> (its sampler, the training seconds of its run), every model from the shared cache."""
    vae, vh = train_vae("conv16", device=device)
    out = {"VAE": (_Sampler(vae), vh.seconds)}
    for label, recipe in (("DCGAN", "dcgan"), ("WGAN-GP", "wgan"), ("cGAN", "cgan"), ("VAE-GAN", "vaegan")):
        gan, gh = train_gan(recipe, device=device)
        out[label] = (_Sampler(gan), gh.seconds)
    for label, sampler in (("DDPM/DDIM-50", "ddim50"), ("flow, Euler 20", "fm20")):
        family, kw = SAMPLERS[sampler]
        model, h, _ = train_diffusion(family, device=device)
        out[label] = (_Sampler(model, **kw), h.seconds)
    gen, lh, info = train_latent(device=device)
    out["latent diffusion"] = (_Sampler(gen, **LATENT_SAMPLER), lh.seconds + info["vae_history"].seconds)
    return out


def comparison_table(classifier: torch.nn.Module, *, device: Any = None) -> dict[str, dict[str, float]]:
    """The chapter-2-to-6 table: for every model of :data:`COMPARISON` (each from the shared cache,
    trained if absent), FID, KID, precision and recall at ``EVAL["n"]``, the training seconds of
    its run and the seconds to sample 1,000 images here. Cached as ``ch6_table``."""
    models = _contenders(device)
    n = eval_n()

    def compute() -> dict[str, Any]:
        rows = {}
        for label, (sampler, train_s) in models.items():
            fake, secs = sample_images(sampler, n=n)
            q = image_scores(classifier, fake)
            rows[label] = {**{k: float(v) for k, v in q.items()}, "train_s": float(train_s)}
            rows[label]["sample_s_per_1k"] = secs * 1000 / len(fake)
        return rows

    weights = {label: _weights(sampler.model) for label, (sampler, _) in models.items()}
    return cached("ch6_table", {"weights": weights, "n": n, "seed": EVAL["seed"]}, compute)
