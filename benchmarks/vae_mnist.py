"""Benchmark for chapter 2: held-out negative ELBO of three VAEs on MNIST.

Trains, in full mode, the 2-D MLP VAE, the 16-D MLP VAE and the 16-D conv VAE of
``genai_lib.recipes.vae.VAE_MNIST`` (with ``train_vae``, the function the chapter-2 notebook
calls) on the 4,000 training images of the offline MNIST subset, and reports
the negative ELBO on the 1,000 held-out images in nats per image: summed binary cross-entropy
over the 784 pixels plus the closed-form KL, with one posterior sample per image (lower is
better; targets: mlp2 <= 150, conv16 <= 105). Those grey-level numbers are cross-entropies, not
likelihoods of any data, so it also trains the 16-D conv and MLP VAEs of ``VAE_BINARISED`` with
dynamic binarisation and scores them on the binarised test split by the importance-weighted
bound (Burda et al. 2016) at k = 1, 100 and 1,000: a true estimate of -log p(x), comparable
with published binarised-MNIST numbers (about 87 nats for a one-layer VAE trained on all 60,000
images, Burda et al. 2016, Table 1). Run from the repository root:

    python benchmarks/vae_mnist.py

The last line reads ``vae_mnist: mlp2=<nats> mlp16=<nats> conv16=<nats> iwae_nll_binarised=<nats>
iwae_nll_binarised_mlp=<nats> seconds=<s>`` (the two IWAE numbers at k = 1,000: conv, then MLP).
With ``GENAI_FAST=1`` it only smoke-tests the script (the recipes' fast budgets; numbers meaningless).
On a CPU it trains the three models in two processes at once (``--jobs 2``, one thread each; the
conv VAE in one, the two MLPs one after the other in the other): on a 2-core machine that is
faster than giving each model both threads in turn. ``--jobs 1`` trains them one after another.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from genai_lib.data import binarize, load_mnist
from genai_lib.models.vae import iwae_nll, neg_elbo
from genai_lib.recipes.vae import BINARISED_TEST_SEED, VAE_BINARISED, VAE_MNIST, train_vae
from genai_lib.utils import fast_mode, get_device

# The recipes (config, epochs, learning rate, batch size) live in genai_lib.recipes.vae, and
# train_vae is the function the chapter-2 notebook calls, so the book and this benchmark quote
# the same settings.
RUNS = {**VAE_MNIST, **VAE_BINARISED}
IWAE_K = (1, 100, 1000)


def train_and_score(name: str, device: torch.device) -> tuple[float | dict[int, float], float, float]:
    """Train one model from seed 0; return (held-out nats per image, wall seconds, CPU seconds).

    Grey-level recipes: the one-sample negative ELBO. Binarised recipes: ``{k: IWAE -log p(x)}``
    on the binarised test split for each k in ``IWAE_K`` (fast mode: k up to 10).
    """
    x_test, _ = load_mnist("test")
    t0, c0 = time.perf_counter(), time.process_time()
    model, _ = train_vae(name, device=device, cache=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if name not in VAE_BINARISED:
        return neg_elbo(model, x_test, generator=torch.Generator().manual_seed(0)), seconds, cpu
    xb = binarize(x_test, generator=torch.Generator().manual_seed(BINARISED_TEST_SEED))
    ks = (1, 10) if fast_mode() else IWAE_K
    return {k: iwae_nll(model, xb, k=k, generator=torch.Generator().manual_seed(0)) for k in ks}, seconds, cpu


def _worker(name: str, device_name: str, threads: int) -> tuple[str, float | dict[int, float], float, float]:
    torch.set_num_threads(threads)
    return (name, *train_and_score(name, torch.device(device_name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_jobs = 2 if (os.cpu_count() or 1) >= 2 else 1
    parser.add_argument(
        "--jobs", type=int, default=default_jobs, help="models trained at once, one process and one thread each (CPU)"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    device = get_device()
    jobs = 1 if device.type != "cpu" else args.jobs
    start = time.perf_counter()
    # Longest first, so that with two processes the two MLPs run beside the conv VAE.
    order = sorted(RUNS, key=lambda n: -RUNS[n].epochs * (4 if RUNS[n].config.arch == "conv" else 1))
    if jobs == 1:
        results = [(name, *train_and_score(name, device)) for name in order]
        threads = torch.get_num_threads()
    else:  # one model per process, one thread each: on a small CPU this beats two threads per model
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            results = list(pool.map(_worker, order, [str(device)] * len(order), [1] * len(order)))
        threads = 1
    scores: dict[str, float] = {}
    for name, nats, seconds, cpu in sorted(results, key=lambda r: list(RUNS).index(r[0])):
        r = RUNS[name]
        epochs = r.fast_epochs if fast_mode() else r.epochs
        setting = f"{epochs} epochs, lr {r.lr:g}, batch {r.batch_size}, shift {r.config.shift}"
        cost = f"{seconds:.0f} s wall, {cpu:.0f} s CPU"
        if isinstance(nats, dict):  # binarised: the IWAE estimate for each k
            scores[name] = nats[max(nats)]
            bounds = ", ".join(f"k={k}: {v:.1f}" for k, v in nats.items())
            print(f"{name}: -log p(x) on binarised test digits, IWAE {bounds} nats ({setting}, binarised; {cost})")
        else:
            scores[name] = nats
            print(f"{name}: {nats:.1f} nats/image held-out ({setting}, {cost})", flush=True)
    total = time.perf_counter() - start
    print(f"device: {device}, processes: {jobs}, torch threads each: {threads}, fast mode: {fast_mode()}")
    print("binarised anchor: about 87 nats for a 1-layer VAE on all 60,000 images (Burda et al. 2016, Table 1)")
    line = " ".join(f"{name}={scores[name]:.1f}" for name in ("mlp2", "mlp16", "conv16"))
    line += f" iwae_nll_binarised={scores['bin_conv16']:.1f} iwae_nll_binarised_mlp={scores['bin_mlp16']:.1f}"
    print(f"vae_mnist: {line} seconds={total:.0f}")


if __name__ == "__main__":
    main()
