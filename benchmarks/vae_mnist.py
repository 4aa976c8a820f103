"""Benchmark for chapter 2: held-out negative ELBO of three VAEs on MNIST.

Trains, in full mode, the 2-D MLP VAE, the 16-D MLP VAE and the 16-D conv VAE of
``genai_lib.models.vae`` on the 4,000 training images of the offline MNIST subset, and reports
the negative ELBO on the 1,000 held-out images in nats per image: summed binary cross-entropy
over the 784 pixels plus the closed-form KL, with one posterior sample per image (lower is
better; targets: mlp2 <= 150, conv16 <= 105). Run from the repository root:

    python benchmarks/vae_mnist.py

The last line reads ``vae_mnist: mlp2=<nats> mlp16=<nats> conv16=<nats> seconds=<s>``.
With ``GENAI_FAST=1`` it only smoke-tests the script (a tenth of the epochs; numbers meaningless).
On a CPU shared with other jobs, run it with ``OMP_NUM_THREADS=1``: two OpenMP threads that are
descheduled in turn wait for each other at every operation and can run several times slower.
"""

from __future__ import annotations

import time

import torch

from genai_lib.data import load_mnist, mnist_loaders
from genai_lib.models.recipes import VAE_MNIST
from genai_lib.models.vae import VAE, neg_elbo
from genai_lib.train import cosine_schedule, fit
from genai_lib.utils import fast_mode, get_device, seed_everything

# The recipes (config, epochs, learning rate, batch size) live in genai_lib.models.recipes, shared
# with the notebook of chapter 2, so the book and this benchmark quote the same settings.
RUNS = VAE_MNIST


def train_and_score(name: str, device: torch.device) -> tuple[float, float, float]:
    """Train one model from seed 0; return (held-out nats per image, wall seconds, CPU seconds)."""
    recipe = RUNS[name]
    cfg, epochs, lr, batch_size = recipe.config, recipe.epochs, recipe.lr, recipe.batch_size
    if fast_mode():
        epochs = max(1, epochs // 10)
    gen = seed_everything(0)
    train, _ = mnist_loaders(batch_size, generator=gen)
    x_test, _ = load_mnist("test")
    model = VAE(cfg).to(device)
    total = epochs * len(train)
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, train, epochs=epochs, lr=lr, lr_schedule=cosine_schedule(len(train), total, 0.05), progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    nats = neg_elbo(model, x_test, generator=torch.Generator(device=device).manual_seed(0))
    return nats, seconds, cpu


def main() -> None:
    device = get_device()
    start = time.perf_counter()
    scores: dict[str, float] = {}
    for name in RUNS:
        nats, seconds, cpu = train_and_score(name, device)
        scores[name] = nats
        r = RUNS[name]
        epochs = max(1, r.epochs // 10) if fast_mode() else r.epochs
        setting = f"{epochs} epochs, lr {r.lr:g}, batch {r.batch_size}, shift {r.config.shift}"
        print(f"{name}: {nats:.1f} nats/image held-out ({setting}, {seconds:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
    total = time.perf_counter() - start
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, fast mode: {fast_mode()}")
    line = " ".join(f"{name}={scores[name]:.1f}" for name in ("mlp2", "mlp16", "conv16"))
    print(f"vae_mnist: {line} seconds={total:.0f}")


if __name__ == "__main__":
    main()
