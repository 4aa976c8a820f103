"""Chapter 5's StyleGAN: its recipe and the measurements shared by the notebook and the benchmark.

``STYLEGAN_MNIST``: :class:`~genai_lib.models.stylegan.StyleGANConfig` plus the budget, trained by
:func:`train_stylegan` through :func:`genai_lib.train.fit` with the model's phases (D, lazy R1
every ``r1_every`` steps, G with the mapping network at 0.01x the learning rate) and its EMA
hook, on the 4,000 MNIST training images in batches of 64 (``drop_last``, shuffled from seed 0),
weights and training noise from seed 0 inside ``torch.random.fork_rng``; cached as
``ch5_stylegan``. A :class:`~genai_lib.phases.Snapshots` hook records 16 EMA samples from fixed
latents six times per run (always, so the notebook and the benchmark share one cache entry).

The measurements (each cached by :func:`genai_lib.train_cache.cached`, keyed by the weights):

- :func:`quality`: classifier-FID, KID, precision and recall at ``EVAL["n"]`` = 1,000 images
  drawn with seed ``EVAL["seed"]``, the protocol of ``benchmarks/gan_mnist.py`` and
  :mod:`genai_lib.recipes.diffusion_eval`; :func:`dcgan_quality` scores chapter 3's DCGAN the same
  way (from the cache, trained if absent).
- :func:`mixing_rates`: for each crossover layer, how often the classifier reads, in an image
  whose layers before the crossover take ``w`` of one latent (coarse) and the rest that of another
  (fine), the digit of the coarse source, and how often that of the fine one.
- :func:`truncation_sweep`: FID, precision and recall against psi.
- :func:`path_lengths`: perceptual path length (Karras et al. 2019, §4.2) in Z (slerp) and in W
  (lerp), distances measured in the classifier's feature space.
- :func:`noise_variance`: per-pixel variance of images under redrawn noise, with w fixed.

Fast mode: width (16, 8, 4), the first 1,000 images, a few steps, 200 images per score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from genai_lib._checks import check_positive, check_probability
from genai_lib.data import load_mnist, make_loader
from genai_lib.history import History
from genai_lib.metrics import classifier_features
from genai_lib.models.stylegan import StyleGAN, StyleGANConfig
from genai_lib.phases import Snapshots
from genai_lib.recipes.diffusion_eval import EVAL, eval_n, image_scores, sample_images
from genai_lib.recipes.gan import train_gan
from genai_lib.train import fit
from genai_lib.train_cache import cached, load_or_train
from genai_lib.utils import eval_mode, fast_mode

__all__ = [
    "StyleGANRecipe",
    "STYLEGAN_MNIST",
    "COARSE",
    "stylegan_model",
    "train_stylegan",
    "quality",
    "dcgan_quality",
    "mixing_grid",
    "mixing_rates",
    "truncation_sweep",
    "path_lengths",
    "noise_variance",
]

BATCH = 64
FAST_LIMIT = 1000
COARSE = 3  # the headline crossover: layers at 7x7 and 14x14 are "coarse", the two at 28x28 "fine"


@dataclass(frozen=True)
class StyleGANRecipe:
    """A StyleGAN config with its training budget."""

    config: StyleGANConfig  # the model
    steps: int  # training steps (one D update, one G update, R1 every r1_every)
    lr: float = 2e-3  # Adam learning rate (the mapping network's is mapping_lr_mul times it)
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (StyleGAN2's)
    fast_steps: int = 30  # steps in fast mode

    def budget(self, fast: bool) -> tuple[StyleGANConfig, int]:
        if not fast:
            return self.config, self.steps
        return replace(self.config, channels=(16, 8, 4), d_width=8), self.fast_steps


# Measured 2026-12-03 (benchmarks/stylegan_mnist.py, one thread on a shared 2-core CPU): 3,000 steps gave
# FID 81-103 at n = 1,000 depending on the seed stream (the DCGAN: 90.2); 6,000 steps (the DCGAN's count) 78.7,
# in 1,172 s. r1_gamma 0.1 instead of 1 trained worse (FID 181 vs 137 at step 500).
STYLEGAN_MNIST = StyleGANRecipe(StyleGANConfig(channels=(64, 32, 8)), steps=6000)


def _recipe(recipe: StyleGANRecipe | None) -> StyleGANRecipe:
    if recipe is None:
        return STYLEGAN_MNIST
    if not isinstance(recipe, StyleGANRecipe):
        raise TypeError(f"recipe must be a StyleGANRecipe, got {type(recipe).__name__}")
    return recipe


def stylegan_model(recipe: StyleGANRecipe | None = None, *, fast: bool | None = None, device: Any = None) -> StyleGAN:
    """The untrained model of the recipe, weights from seed 0 (the caller's RNG is untouched)."""
    cfg, _ = _recipe(recipe).budget(fast_mode() if fast is None else fast)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = StyleGAN(cfg)
    return model.to(device)


def _snapshots(model: StyleGAN, steps: int) -> Snapshots:
    def record(step: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(123)
        return {"images": model.sample(16, generator=g, noise="zero")}

    return Snapshots(record, every=max(1, steps // 6))


def train_stylegan(
    recipe: StyleGANRecipe | None = None,
    *,
    name: str = "stylegan",
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    progress: bool = False,
) -> tuple[StyleGAN, History, Snapshots]:
    """Train (or load from the cache ``ch5_<name>``) the recipe: ``(model, history, snapshots)``.

    ``cache=False`` always trains (a benchmark timing the run)."""
    r = _recipe(recipe)
    fast = fast_mode() if fast is None else fast
    _, steps = r.budget(fast)
    model = stylegan_model(r, fast=fast, device=device)
    x, y = load_mnist("train", limit=FAST_LIMIT if fast else None)
    loader = make_loader(x, y, batch_size=BATCH, drop_last=True, generator=torch.Generator().manual_seed(0))
    snaps = _snapshots(model, steps)
    kwargs = {
        "steps": steps,
        "phases": model.phases(lr=r.lr, betas=r.betas),
        "hooks": [model.ema, snaps],
        "rules": model.divergence_rules(),
        "progress": progress,
        "desc": f"ch5_{name}",
        "log_every": 10,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the training noise
        if cache:
            key = {"n": len(x), "lr": r.lr, "betas": r.betas}
            history = load_or_train(model, loader, name=f"ch5_{name}", key=key, **kwargs)
        else:
            history = fit(model, loader, **kwargs)
    model.eval()
    return model, history, snaps


# --------------------------------------------------------------------------- measurements


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


def quality(model: StyleGAN, classifier: torch.nn.Module, *, psi: float = 1.0, n: int | None = None) -> dict:
    """FID, KID, precision, recall of ``n`` EMA samples at truncation ``psi`` (chapter 3's protocol)."""
    n = eval_n(n)
    check_probability("psi", psi)

    def compute() -> dict[str, Any]:
        fake, secs = sample_images(model, n=n, psi=psi)
        return {**_floats(image_scores(classifier, fake)), "s_per_image": secs / n}

    return _floats(
        cached("ch5_quality", {"weights": _weights(model), "psi": psi, "n": n, "seed": EVAL["seed"]}, compute)
    )


def dcgan_quality(classifier: torch.nn.Module, *, device: Any = None) -> tuple[dict[str, float], History]:
    """Chapter 3's DCGAN (``train_gan("dcgan")``, from the cache or trained now), sampled as
    ``benchmarks/gan_mnist.py`` samples it: ``(scores, its training history)``."""
    model, hist = train_gan("dcgan", device=device)
    fake = model.sample(eval_n(), generator=torch.Generator().manual_seed(EVAL["seed"]))
    return _floats(image_scores(classifier, fake)), hist


def _floats(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores as Python floats, the sample count ``n`` as an int."""
    return {k: int(v) if k == "n" else float(v) for k, v in scores.items()}


def _labels(classifier: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    device = next(classifier.parameters()).device
    with eval_mode(classifier), torch.no_grad():
        return torch.cat(
            [classifier(images[i : i + 256].to(device)).argmax(1).cpu() for i in range(0, len(images), 256)]
        )


@torch.no_grad()
def mixing_grid(
    model: StyleGAN, rows: int, cols: int, crossover: int = COARSE, *, seed: int = 5, psi: float = 1.0
) -> dict[str, torch.Tensor]:
    """Style mixing: cell (i, j) takes the layers before ``crossover`` from row i's latent (coarse)
    and the rest from column j's (fine); one noise draw for every cell. Returns ``{"grid": (rows,
    cols, 1, 28, 28), "coarse": (rows, 1, 28, 28), "fine": (cols, 1, 28, 28)}``."""
    check_positive("rows", rows)
    check_positive("cols", cols)
    g = torch.Generator().manual_seed(seed)
    w_c = model.mapping(torch.randn(rows, model.cfg.z_dim, generator=g), psi=psi)
    w_f = model.mapping(torch.randn(cols, model.cfg.z_dim, generator=g), psi=psi)
    noise = [torch.randn(s, generator=g) for s in model.generator.noise_shapes(1)]
    with eval_mode(model):

        def draw(ws: torch.Tensor) -> torch.Tensor:
            return model.synthesis(ws, noise=[m.expand(len(ws), -1, -1, -1) for m in noise]).cpu()

        wc = w_c.repeat_interleave(cols, 0)  # (rows * cols, W): row-major cells
        wf = w_f.repeat(rows, 1)
        grid = draw(model.mix(wc, wf, crossover)).reshape(rows, cols, 1, 28, 28)
        return {"grid": grid, "coarse": draw(w_c), "fine": draw(w_f)}


def mixing_rates(model: StyleGAN, classifier: torch.nn.Module, *, n: int | None = None, seed: int = 7) -> dict:
    """For every crossover k in 1..L-1, on ``n`` pairs of latents: the fraction of mixed images
    whose digit (as the classifier reads it) is the coarse source's (``coarse``), and the fine
    source's (``fine``); pairs whose two sources show the same digit are left out."""
    n = eval_n(n)
    L = model.cfg.num_ws

    @torch.no_grad()
    def compute() -> dict[str, Any]:
        g = torch.Generator().manual_seed(seed)
        w1 = model.mapping(torch.randn(n, model.cfg.z_dim, generator=g))
        w2 = model.mapping(torch.randn(n, model.cfg.z_dim, generator=g))
        with eval_mode(model):
            y1 = _labels(classifier, model.synthesis(w1, noise="zero"))
            y2 = _labels(classifier, model.synthesis(w2, noise="zero"))
            differ = y1 != y2
            out: dict[str, list] = {"crossover": list(range(1, L)), "coarse": [], "fine": []}
            for k in out["crossover"]:
                ym = _labels(classifier, model.synthesis(model.mix(w1, w2, k), noise="zero"))
                out["coarse"].append(float((ym == y1)[differ].double().mean()))
                out["fine"].append(float((ym == y2)[differ].double().mean()))
        return {**out, "pairs": int(differ.sum())}

    return cached("ch5_mixing", {"weights": _weights(model), "n": n, "seed": seed}, compute)


def truncation_sweep(
    model: StyleGAN, classifier: torch.nn.Module, psis: Sequence[float], *, n: int | None = None
) -> dict[str, list[float]]:
    """FID, precision and recall of ``n`` samples at each psi: lists aligned with ``psis``."""
    psis = [float(p) for p in psis]
    for p in psis:
        check_probability("psi", p)
    out: dict[str, list[float]] = {"psi": psis, "fid": [], "precision": [], "recall": []}
    for p in psis:
        q = quality(model, classifier, psi=p, n=n)
        for k in ("fid", "precision", "recall"):
            out[k].append(q[k])
    return out


def path_lengths(
    model: StyleGAN, classifier: torch.nn.Module, *, n: int | None = None, eps: float = 1e-3, seed: int = 11
) -> dict[str, float]:
    """Perceptual path length (Karras et al. 2019, eqs. 3-4): ``E[ ||f(G(p(t))) - f(G(p(t + eps)))||^2
    / eps^2 ]``, t ~ U(0, 1), with ``f`` the classifier's features, the same noise at both ends;
    ``p`` slerps between two z in Z, or lerps between their w in W. The 1% extremes at each end
    are dropped, as in the paper. Returns ``{"z": ..., "w": ..., "n": n}``."""
    n = eval_n(n)
    check_positive("eps", eps, integer=False)

    @torch.no_grad()
    def compute() -> dict[str, Any]:
        g = torch.Generator().manual_seed(seed)
        z0, z1 = torch.randn(2, n, model.cfg.z_dim, generator=g).to(model.device)
        t = (torch.rand(n, 1, generator=g) * (1 - eps)).to(model.device)
        noise = [torch.randn(s, generator=g) for s in model.generator.noise_shapes(n)]
        out = {}
        with eval_mode(model):
            net = model.ema.shadow
            for space in ("z", "w"):
                if space == "z":
                    wa, wb = net.map(_slerp(z0, z1, t)), net.map(_slerp(z0, z1, t + eps))
                else:
                    w0, w1 = net.map(z0), net.map(z1)
                    wa, wb = torch.lerp(w0, w1, t), torch.lerp(w0, w1, t + eps)
                fa = classifier_features(classifier, model.synthesis(wa, noise=noise))
                fb = classifier_features(classifier, model.synthesis(wb, noise=noise))
                d = ((fa - fb).square().sum(1) / eps**2).sort().values
                lo, hi = int(0.01 * n), max(int(math.ceil(0.99 * n)), int(0.01 * n) + 1)
                out[space] = float(d[lo:hi].mean())
        return {**out, "n": n, "eps": eps}

    return cached("ch5_ppl", {"weights": _weights(model), "n": n, "eps": eps, "seed": seed}, compute)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Row-wise spherical interpolation of a, b (N, Z) at t (N, 1)."""
    cos = torch.clamp(torch.nn.functional.cosine_similarity(a, b, dim=1)[:, None], -1 + 1e-7, 1 - 1e-7)
    omega = torch.arccos(cos)  # (N, 1)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def noise_variance(model: StyleGAN, *, n_w: int = 4, draws: int = 64, seed: int = 13) -> dict[str, torch.Tensor]:
    """What the noise inputs change: for ``n_w`` fixed styles, ``draws`` images each with fresh
    noise in every layer (``"all"``), or in the layers of one resolution only (``"7"``, ``"14"``,
    ``"28"``; the others get none). Returns the mean images (n_w, 28, 28) and, per key, the
    per-pixel variance maps (n_w, 28, 28)."""
    check_positive("n_w", n_w)
    check_positive("draws", draws)
    g = torch.Generator().manual_seed(seed)
    w = model.mapping(torch.randn(n_w, model.cfg.z_dim, generator=g)).repeat_interleave(draws, 0)
    layers = {"all": range(5), "7": [0], "14": [1, 2], "28": [3, 4]}
    out: dict[str, torch.Tensor] = {}
    with eval_mode(model):
        for key, which in layers.items():
            noise = [
                torch.randn(s, generator=g) * (1.0 if i in which else 0.0)
                for i, s in enumerate(model.generator.noise_shapes(len(w)))
            ]
            imgs = model.synthesis(w, noise=noise).cpu().reshape(n_w, draws, 28, 28)
            out[key] = imgs.var(1)
            if key == "all":
                out["mean"] = imgs.mean(1)
    return out
