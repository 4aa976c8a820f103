"""Benchmark for chapter 3: sample quality of DCGAN, conditional DCGAN, WGAN-GP and VAE-GAN on MNIST.

Trains each model from seed 0 on the 4,000 training images of the offline MNIST subset for the
recipe in ``genai_lib.recipes.gan.GAN_MNIST`` with ``train_gan`` (what notebooks 3.2 and 3.3 call; generator
steps, each using ``n_critic`` batches of 64), then scores
``N_EVAL`` = 1,000 generated images against 1,000 held-out test images with the metrics of
``genai_lib.metrics`` on the features of the course's MNIST classifier ("classifier-FID": lower
is better, comparable only inside this course and at the same sample count). Also reported:

- the real-data floor: 1,000 training images vs the 1,000 held-out ones (the best a model can do);
- the chapter-2 conv VAE (``train_vae("conv16")`` of ``genai_lib.recipes.vae``: config, epochs,
  learning rate and batch size of chapter 2) sampled from its prior (the blurry baseline);
- the conditional GAN's accuracy: how often the classifier agrees with the requested digit;
- the 8-Gaussian ring (``genai_lib.recipes.gan.ring_experiment``): the vanilla GAN's mode
  collapse and the coverage of the "fixed" model (the same GAN with an R1 gradient penalty on
  real data, Mescheder et al. 2018, and a cosine learning-rate decay), on 2,000 seeded samples.

Targets: every GAN's FID below the VAE's; cGAN accuracy >= 0.9; fixed ring model 8/8 modes with
>= 80% high-quality samples while the vanilla one collapses. Run from the repository root:

    python benchmarks/gan_mnist.py

The last line reads ``gan_mnist: floor=<fid> dcgan=<fid> cgan=<fid> wgan=<fid> vaegan=<fid>
vae=<fid> cgan_acc=<0..1> ring_modes=<n> ring_hq=<0..1> seconds=<s>``. The classifier comes
from the shared cache (trained once, ~1-2 minutes, if absent). ``GENAI_FAST=1`` only smoke-tests
the script (the recipes' fast budgets; numbers meaningless). Each part's result is stored in
``benchmarks/results/`` (git-ignored); ``--only PART ...`` runs some parts and ``--reuse`` assembles
stored parts whose configuration is unchanged. On a CPU the parts run in two processes of one
thread each (``--jobs 2``, the default on 2+ cores; ``--jobs 1`` runs them one after another).
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

from genai_lib.data import load_mnist
from genai_lib.metrics import conditional_accuracy, image_quality
from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.recipes.gan import GAN_MNIST, evaluate_ring, ring_experiment, train_gan, train_ring
from genai_lib.recipes.vae import VAE_MNIST, train_vae
from genai_lib.utils import fast_mode, get_device

N_EVAL = 1000  # generated and real images per metric (FID is biased at small N: keep it fixed)

RUNS = GAN_MNIST  # name -> GANRecipe(config, fit): the models of chapter 3 (notebooks 3.2 and 3.3)
VAE_RUN = VAE_MNIST["conv16"]  # the chapter-2 conv VAE: VAERecipe(config, epochs, lr, batch_size)


def timed_gan(name: str, device: torch.device) -> tuple[torch.nn.Module, float]:
    """Train one model of ``RUNS`` with the notebooks' recipe (not cached); return it and its seconds."""
    t0 = time.perf_counter()
    model, _ = train_gan(name, device=device, cache=False)
    return model, time.perf_counter() - t0


def timed_vae(device: torch.device) -> tuple[torch.nn.Module, float]:
    t0 = time.perf_counter()
    model, _ = train_vae("conv16", device=device, cache=False)
    return model, time.perf_counter() - t0


def vae_epochs() -> int:
    return VAE_RUN.fast_epochs if fast_mode() else VAE_RUN.epochs


def gan_steps(name: str) -> int:
    return RUNS[name].budget(fast_mode())[1]["steps"]


def fmt(q: dict[str, float]) -> str:
    return (
        f"FID {q['fid']:7.2f}  KID {q['kid']:7.3f} +- {q['kid_std']:.3f}  "
        f"precision {q['precision']:.3f}  recall {q['recall']:.3f}  (n={q['n']})"
    )


PARTS = ("floor", "vae", *RUNS, "ring_vanilla", "ring_fixed")
RESULTS = Path(__file__).resolve().parent / "results"  # git-ignored


def _fingerprint(part: str) -> str:
    """What a stored part result depends on (its config, budget, fast mode, the library's ring spec)."""
    if part in RUNS:
        spec: Any = (RUNS[part], gan_steps(part))
    elif part == "vae":
        spec = (VAE_RUN, vae_epochs())
    elif part.startswith("ring_"):
        spec = ring_experiment()[part[5:]]
    else:
        spec = part
    return repr((spec, N_EVAL, fast_mode()))


def run_part(part: str, clf: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """Train and score one part; returns {"lines": [...], "values": {...}, "seconds", "cpu"}."""
    t0, c0 = time.perf_counter(), time.process_time()
    x_test, _ = load_mnist("test")
    n = N_EVAL
    lines: list[str] = []
    values: dict[str, Any] = {}

    def score(name: str, fake: torch.Tensor, note: str) -> None:
        q = image_quality(clf, x_test, fake, n=n, generator=torch.Generator().manual_seed(0))
        values["fid"] = q["fid"]
        values["quality"] = q
        lines.append(f"{name:7s} {fmt(q)}{note}")

    if part == "floor":
        score("floor", load_mnist("train")[0], "  [1,000 training images vs the held-out set]")
    elif part == "vae":
        vae, secs = timed_vae(device)
        fake = vae.sample(n, generator=torch.Generator().manual_seed(1))
        score("vae", fake, f"  [chapter-2 conv VAE, {vae_epochs()} epochs, {secs:.0f} s]")
    elif part in RUNS:
        model, secs = timed_gan(part, device)
        fake = model.sample(n, generator=torch.Generator().manual_seed(1))
        f = RUNS[part].fit
        score(part, fake, f"  [{gan_steps(part)} G steps, n_critic {f['n_critic']}, {secs:.0f} s]")
        if part == "cgan":
            per_class = []
            for digit in range(10):
                imgs = model.sample(100, labels=digit, generator=torch.Generator().manual_seed(2))
                per_class.append(conditional_accuracy(clf, imgs, torch.full((100,), digit)))
            values["acc"] = conditional_accuracy(clf, fake, torch.arange(n) % 10)
            lines.append(
                f"cgan accuracy on {n} balanced samples: {values['acc']:.3f}; per class (100 each): "
                + " ".join(f"{d}:{a:.2f}" for d, a in enumerate(per_class))
            )
    else:
        which = part[5:]
        model, _ = train_ring(which, cache=False)
        r = evaluate_ring(model)
        values.update(r)
        lines.append(
            f"ring {which:7s}: {r['modes']}/8 modes, high-quality {r['hq']:.3f}, per-mode {r['counts']} "
            f"(n={r['n']}, {time.perf_counter() - t0:.0f} s)"
        )
    return {"lines": lines, "values": values, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def _part_worker(part: str, device_name: str) -> dict[str, Any]:
    """Run one part in a worker process with one thread (the classifier comes from the cache)."""
    torch.set_num_threads(1)
    device = torch.device(device_name)
    return run_part(part, mnist_classifier(device=device), device)


# Rough single-thread CPU cost of each part (seconds, measured on the course's 2-core machine): the
# parallel run starts the longest parts first so that the two processes finish at about the same time.
COST = {"vae": 500, "dcgan": 450, "cgan": 450, "vaegan": 450, "wgan": 400, "ring_vanilla": 150, "ring_fixed": 150}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=PARTS, help="run these parts only (results are stored)")
    ap.add_argument("--reuse", action="store_true", help="reuse stored part results whose config is unchanged")
    ap.add_argument(
        "--jobs",
        type=int,
        default=2 if (os.cpu_count() or 1) >= 2 else 1,
        help="parts run at once on a CPU, one process and one thread each (default 2 on 2+ cores)",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    device = get_device()
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, fast mode: {fast_mode()}", flush=True)
    t0 = time.perf_counter()
    clf = mnist_classifier(device=device)
    print(
        f"classifier: test accuracy {clf.test_accuracy:.3f} on the 1,000 held-out images "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    RESULTS.mkdir(exist_ok=True)
    tag = "fast" if fast_mode() else "full"
    res: dict[str, dict[str, Any]] = {}
    parts = list(args.only or PARTS)
    todo = []
    for part in parts:
        path = RESULTS / f"gan_mnist_{tag}_{part}.json"
        stored = json.loads(path.read_text()) if path.exists() else None
        if args.reuse and stored and stored.get("fingerprint") == _fingerprint(part):
            res[part] = {**stored, "stored": True}
        else:
            todo.append(part)
    jobs = 1 if device.type != "cpu" else min(args.jobs, max(1, len(todo)))
    if jobs == 1:
        fresh = {part: run_part(part, clf, device) for part in todo}
    else:  # longest first, one thread per process
        todo.sort(key=lambda p: -COST.get(p, 0))
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            fresh = dict(zip(todo, pool.map(_part_worker, todo, [str(device)] * len(todo)), strict=True))
    for part, result in fresh.items():
        res[part] = {**result, "fingerprint": _fingerprint(part)}
        (RESULTS / f"gan_mnist_{tag}_{part}.json").write_text(json.dumps(res[part], indent=1))
    for part in parts:
        note = " (stored result)" if res[part].get("stored") else ""
        for line in res[part]["lines"]:
            print(line + note, flush=True)
    if args.only:
        return
    cpu = sum(r["cpu"] for r in res.values())
    if any(r.get("stored") for r in res.values()):
        total = sum(r["seconds"] for r in res.values())
        how = "sum of the parts' wall times, some stored from earlier runs"
    else:
        total = time.perf_counter() - t0
        how = f"this run, classifier included, {jobs} process(es)"
    print(f"wall {total:.0f} s ({how}); CPU {cpu:.0f} s of process time summed over the parts")
    fids = {p: res[p]["values"]["fid"] for p in ("floor", "vae", *RUNS)}
    acc = res["cgan"]["values"]["acc"]
    fixed, vanilla = res["ring_fixed"]["values"], res["ring_vanilla"]["values"]
    print(
        f"targets: every GAN beats the VAE: {all(fids[k] < fids['vae'] for k in RUNS)}; cgan_acc >= 0.9: {acc >= 0.9}; "
        f"ring fixed 8/8 & hq >= 0.8: {fixed['modes'] == 8 and fixed['hq'] >= 0.8}; "
        f"vanilla collapsed (< 8 modes): {vanilla['modes'] < 8}"
    )
    print(
        f"gan_mnist: floor={fids['floor']:.2f} dcgan={fids['dcgan']:.2f} cgan={fids['cgan']:.2f} "
        f"wgan={fids['wgan']:.2f} vaegan={fids['vaegan']:.2f} vae={fids['vae']:.2f} cgan_acc={acc:.3f} "
        f"ring_modes={fixed['modes']} ring_hq={fixed['hq']:.3f} seconds={total:.0f}"
    )


if __name__ == "__main__":
    main()
