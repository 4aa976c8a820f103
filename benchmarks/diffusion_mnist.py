"""Benchmark for chapter 6: diffusion and flow matching against the GANs and the VAE, on MNIST.

The models are the recipes of ``genai_lib.recipes.diffusion`` (what notebooks 6.1-6.3 train):
the class-conditional U-Net trained as a cosine-schedule diffusion model (``"ddpm"``) and as a
flow (``"fm"``), latent diffusion on the chapter-2 conv VAE, and the 2-D ring model. Each is
loaded from the shared cache when the notebooks trained it with the same recipe, else trained
(``--fresh`` always trains, uncached); the reported training seconds are the run's own
(``History.seconds``, wherever it ran). Scores, on the protocol of ``benchmarks/gan_mnist.py``:
classifier-FID (and KID, precision, recall) of ``EVAL["n"]`` = 1,000 unconditional samples
(the null class) against the 1,000 held-out digits; ``cfg_acc``: how often the classifier reads
the requested digit in 1,000 guided samples (100 per digit, guidance scale ``CFG["scale"]``). The
DCGAN is chapter 3's ``train_gan("dcgan")`` from the same cache (trained if absent), sampled as
``gan_mnist.py`` samples it.

Targets: the best diffusion or flow model beats the DCGAN; every pixel-space model beats the
chapter-2 VAE (121.2 on 2026-12-01); fm20 <= ddim50; cfg_acc >= 0.97; ring 8/8 modes with
>= 90% high-quality samples. Run from the repository root:

    python benchmarks/diffusion_mnist.py

The last line reads ``diffusion_mnist: ddim50=<fid> ddim10=<fid> fm20=<fid> fm5=<fid>
latent=<fid> cfg_acc=<0..1> dcgan=<fid> ring_modes=<n> ring_hq=<0..1> train_s=<s>
sample_s_per_1k=<s> seconds=<s>``; ``train_s`` and ``sample_s_per_1k`` belong to the best
pixel-space model (its training run, and its headline sampler per 1,000 images here).
``GENAI_FAST=1`` smoke-tests the script (tiny budgets; numbers meaningless). On a CPU the parts
run in two processes of one thread each (``--jobs 2``); on CUDA in one, with bf16 autocast in
training. Part results are stored in ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from genai_lib.metrics import conditional_accuracy
from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.recipes.diffusion import DIFFUSION_MNIST, train_diffusion, train_latent, train_ring_model
from genai_lib.recipes.diffusion_eval import (
    CFG,
    EVAL,
    LATENT_SAMPLER,
    SAMPLERS,
    eval_n,
    guided_samples,
    image_scores,
    ring_scores,
    sample_images,
)
from genai_lib.recipes.gan import train_gan
from genai_lib.utils import fast_mode, get_device

RING_SAMPLER = {"steps": 1000, "method": "ddpm"}  # Ho et al.'s algorithm 2, every step of the chain
PARTS = ("ddpm", "fm", "latent", "ring", "dcgan")
COST = {"ddpm": 900, "fm": 800, "latent": 200, "ring": 150, "dcgan": 30}  # rough single-thread seconds, cached VAE/GAN
RESULTS = Path(__file__).resolve().parent / "results"  # git-ignored


def fmt(q: dict[str, Any]) -> str:
    return (
        f"FID {q['fid']:7.2f}  KID {q['kid']:7.3f} +- {q['kid_std']:.3f}  "
        f"precision {q['precision']:.3f}  recall {q['recall']:.3f}  (n={q['n']})"
    )


def _guided_accuracy(model: Any, clf: torch.nn.Module) -> float:
    imgs, labels, _ = guided_samples(model, eval_n(), CFG["scale"], **CFG["sampler"])
    return conditional_accuracy(clf, imgs, labels)


def run_part(part: str, clf: torch.nn.Module, device: torch.device, fresh: bool) -> dict[str, Any]:
    """Train (or load) and score one part; returns {"lines", "values", "seconds", "cpu"}."""
    t0, c0 = time.perf_counter(), time.process_time()
    lines: list[str] = []
    values: dict[str, Any] = {}
    if part in DIFFUSION_MNIST:
        model, hist, _ = train_diffusion(part, device=device, cache=not fresh)
        values["train_s"] = hist.seconds
        src = "cache" if hist.from_cache else "trained now"
        for name, (family, kw) in SAMPLERS.items():
            if family != part:
                continue
            fake, secs = sample_images(model, n=eval_n(), **kw)
            q = image_scores(clf, fake)
            values[name] = {"fid": q["fid"], "quality": q, "sample_s_per_1k": secs * 1000 / len(fake)}
            lines.append(f"{name:7s} {fmt(q)}  [{kw}, {secs:.0f} s to sample; training {hist.seconds:.0f} s, {src}]")
        if part == CFG["family"]:
            values["cfg_acc"] = _guided_accuracy(model, clf)
            lines.append(
                f"{part} guided (scale {CFG['scale']}): accuracy {values['cfg_acc']:.3f} on {eval_n()} samples"
            )
    elif part == "latent":
        gen, hist, info = train_latent(device=device, cache=not fresh)
        fake, secs = sample_images(gen, n=eval_n(), **LATENT_SAMPLER)
        q = image_scores(clf, fake)
        values.update(fid=q["fid"], quality=q, train_s=hist.seconds, sample_s_per_1k=secs * 1000 / len(fake))
        lines.append(
            f"latent  {fmt(q)}  [DDIM {LATENT_SAMPLER['steps']} on the conv VAE's 16-D latents, {secs:.1f} s; "
            f"training {hist.seconds:.0f} s + the VAE's {info['vae_history'].seconds:.0f} s]"
        )
    elif part == "ring":
        model, hist = train_ring_model("ddpm", cache=not fresh)
        r = ring_scores(model, **RING_SAMPLER)
        values.update(r)
        lines.append(f"ring    {r['modes']}/8 modes, high-quality {r['hq']:.3f}, per-mode {r['counts']} (n={r['n']})")
    else:  # dcgan, from chapter 3's cache
        model, hist = train_gan("dcgan", device=device)
        fake = model.sample(EVAL["n"], generator=torch.Generator().manual_seed(1))  # as gan_mnist.py samples it
        q = image_scores(clf, fake)
        values.update(fid=q["fid"], quality=q, train_s=hist.seconds)
        lines.append(f"dcgan   {fmt(q)}  [chapter 3's recipe, training {hist.seconds:.0f} s]")
    return {"lines": lines, "values": values, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def _worker(part: str, device_name: str, fresh: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    device = torch.device(device_name)
    return run_part(part, mnist_classifier(device=device), device, fresh)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true", help="train every model now, without the cache")
    ap.add_argument(
        "--jobs",
        type=int,
        default=2 if (os.cpu_count() or 1) >= 2 else 1,
        help="parts at once on a CPU (1 thread each)",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    device = get_device()
    print(f"device: {device}, fast mode: {fast_mode()}, fresh: {args.fresh}", flush=True)
    t0 = time.perf_counter()
    clf = mnist_classifier(device=device)
    print(f"classifier: test accuracy {clf.test_accuracy:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    jobs = 1 if device.type != "cpu" else min(args.jobs, len(PARTS))
    order = sorted(PARTS, key=lambda p: -COST[p])
    if jobs == 1:
        res = {p: run_part(p, clf, device, args.fresh) for p in order}
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            out = pool.map(_worker, order, [str(device)] * len(order), [args.fresh] * len(order))
            res = dict(zip(order, out, strict=True))
    RESULTS.mkdir(exist_ok=True)
    tag = "fast" if fast_mode() else "full"
    (RESULTS / f"diffusion_mnist_{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    for p in PARTS:
        for line in res[p]["lines"]:
            print(line, flush=True)
    total = time.perf_counter() - t0
    cpu = sum(r["cpu"] for r in res.values())
    print(f"wall {total:.0f} s ({jobs} process(es), classifier included); CPU {cpu:.0f} s summed over the parts")
    v = {p: res[p]["values"] for p in PARTS}
    fid = {name: v[fam][name]["fid"] for name, (fam, _) in SAMPLERS.items()}
    fid["latent"], dcgan = v["latent"]["fid"], v["dcgan"]["fid"]
    best = min(SAMPLERS, key=lambda k: fid[k])
    best_family = SAMPLERS[best][0]
    acc, ring = v[CFG["family"]]["cfg_acc"], v["ring"]
    vae = 121.2  # the chapter-2 conv VAE, benchmarks/gan_mnist.py on 2026-12-01
    print(
        f"targets: best ({best}) beats the DCGAN: {fid[best] < dcgan}; every pixel-space model beats the VAE "
        f"({vae}): {all(fid[k] < vae for k in SAMPLERS)}; fm20 <= ddim50: {fid['fm20'] <= fid['ddim50']}; "
        f"cfg_acc >= 0.97: {acc >= 0.97}; ring 8/8 and hq >= 0.9: {ring['modes'] == 8 and ring['hq'] >= 0.9}"
    )
    print(
        f"diffusion_mnist: ddim50={fid['ddim50']:.2f} ddim10={fid['ddim10']:.2f} fm20={fid['fm20']:.2f} "
        f"fm5={fid['fm5']:.2f} latent={fid['latent']:.2f} cfg_acc={acc:.3f} dcgan={dcgan:.2f} "
        f"ring_modes={ring['modes']} ring_hq={ring['hq']:.3f} train_s={v[best_family]['train_s']:.0f} "
        f"sample_s_per_1k={v[best_family][best]['sample_s_per_1k']:.1f} seconds={total:.0f}"
    )


if __name__ == "__main__":
    main()
