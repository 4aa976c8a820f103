"""GPT speed benchmark: training tokens/s (forward + backward + AdamW step) and KV-cache speed-up.

Configs (issue 4):
* CPU:  n_layer=4, n_head=4, n_embd=128, block_size=64,  batch_size=12, fp32, foreach AdamW.
* CUDA: n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, bf16 autocast,
  torch.compile, fused AdamW; MFU against the device's dense bf16 peak (H100/H200: 989 TFLOP/s;
  override with GENAI_PEAK_FLOPS).

Each step is timed on its own (CUDA synchronised); the reported throughput is batch * block /
median step time over ``--steps`` (>= 30) steps after ``--warmup`` steps. Batches are random
windows of the English corpus, drawn before timing. The same steps are then timed through the
course's training core (``genai_lib.train.fit``, what the chapters use): ``core_ratio`` is the
bare loop's step time over the core's (1.0: the core costs nothing extra). Then greedy generation of 256 new tokens is
timed with and without the KV-cache (median of 3), for the benchmark model (block_size as
configured: the cache is rebuilt whenever it fills), for the same architecture with a context
long enough to hold the whole generation, and for the CUDA config's architecture with that
context (one run each: without the cache it takes tens of seconds on a CPU).

    python benchmarks/gpt_speed.py [--device cpu] [--steps 40] [--no-compile] [--compile-mode MODE]

On a lent GPU, ``bash benchmarks/gpu_check.sh`` runs this with the CUDA tests.

Last line: ``gpt_speed: device=<cpu|cuda> tokens_per_s=<n> mfu=<x|na> core_ratio=<x> kv_speedup=<x>
kv_speedup_b4=<x>``
(the speed-up for the L6/H6/C384 model with a 257-position context, one sequence and four at once;
target >= 5x).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from genai_lib.models.gpt import GPT, GPTConfig, estimate_mfu, flops_per_token
from genai_lib.text import batch_windows, load_corpus
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train import autocast_for, fit
from genai_lib.utils import get_device

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if os.environ.get("GENAI_PEAK_FLOPS"):
        return float(os.environ["GENAI_PEAK_FLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_generation(
    model: GPT, device: torch.device, new_tokens: int, use_cache: bool, repeats: int = 3, batch: int = 1
) -> float:
    prompt = torch.zeros(batch, 1, dtype=torch.long, device=device)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        with autocast_for(device, None):
            model.generate(prompt, new_tokens, greedy=True, use_cache=use_cache)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    parser.add_argument(
        "--compile-mode",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="torch.compile mode on CUDA (reduce-overhead adds CUDA graphs; max-autotune searches kernels)",
    )
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.steps < 30:
        parser.error("--steps must be >= 30")

    device = get_device(args.device)
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(load_corpus("english", "train"))
    ids = tok.encode(load_corpus("english", "train"), as_tensor=True).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        cfg = GPTConfig(tok.vocab_size, block_size=256, n_layer=6, n_head=6, n_embd=384)
        batch, compile_it = 64, not args.no_compile
    else:
        cfg = GPTConfig(tok.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
        batch, compile_it = 12, False
    model = GPT(cfg).to(device)
    opt = model.configure_optimizers(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95), device_type=device.type)
    fwd = torch.compile(model, mode=args.compile_mode) if compile_it else model
    gen = torch.Generator().manual_seed(0)
    batches = [batch_windows(ids, cfg.block_size, batch, generator=gen) for _ in range(args.warmup + args.steps)]
    print(
        f"device={device} threads={torch.get_num_threads()} params={model.num_params():,} "
        f"config=L{cfg.n_layer}/H{cfg.n_head}/C{cfg.n_embd}/T{cfg.block_size}/B{batch} "
        f"compile={compile_it and (args.compile_mode or 'default')}"
    )

    times = []
    for i, (x, y) in enumerate(batches):
        sync(device)
        t0 = time.perf_counter()
        with autocast_for(device, None):
            _, loss = fwd(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tokens_per_s = batch * cfg.block_size / step_s

    # The same steps through the training core (what every chapter uses): its loop, autocast,
    # clipping and logging must cost nothing measurable beside the bare loop above.
    core_times: list[float] = []

    class StepTimer:
        def before_step(self, step: int) -> None:
            sync(device)
            self.t0 = time.perf_counter()

        def after_step(self, step: int) -> None:
            sync(device)
            if step > args.warmup:
                core_times.append(time.perf_counter() - self.t0)

    torch.manual_seed(0)
    core_model = GPT(cfg).to(device)
    core_opt = core_model.configure_optimizers(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95), device_type=device.type)
    if compile_it:
        core_model.compile(mode=args.compile_mode)
    fit(
        core_model,
        batches,
        steps=len(batches),
        optimizer=core_opt,
        grad_clip=1.0,
        hooks=[StepTimer()],
        log_every=len(batches),
        progress=False,
    )
    core_s = statistics.median(core_times)
    peak = peak_flops(device)
    mfu = f"{estimate_mfu(cfg, tokens_per_s, peak):.3f}" if peak else "na"
    print(
        f"train step: median {step_s * 1e3:.2f} ms over {len(times)} steps "
        f"(min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}); "
        f"final loss {loss.item():.3f}; {flops_per_token(cfg) / 1e6:.2f} MFLOP/token"
    )
    print(
        f"train step through genai_lib.train.fit: median {core_s * 1e3:.2f} ms (bare loop / core {step_s / core_s:.3f})"
    )

    model.eval()
    n_new = args.new_tokens
    # KV-cache speed-up for n_new greedy tokens from a 1-token prompt: (1) the benchmark model, whose
    # 64-position context caps what the uncached path recomputes; (2) the same architecture with a
    # context that holds the whole generation; (3) the CUDA config's architecture (L6/H6/C384) with
    # that context. A step without the cache costs a forward pass over the whole prefix, so the
    # speed-up grows with context length and model width; for a tiny model on a CPU the fixed cost
    # per step (~100 small kernel launches) dominates both paths. On a CPU a cached step is a
    # matrix-vector product per layer, bound by reading every weight from memory once per token,
    # while the uncached step is a matrix-matrix product that uses every thread; with several
    # sequences at once (batch 4) the cached step reads the weights once for all of them.
    long_ctx = max(cfg.block_size, n_new + 1)
    kv_cfgs = [
        ("benchmark model", cfg, 3),
        ("same, long context", dataclasses.replace(cfg, block_size=long_ctx), 3),
        ("L6/H6/C384, long context", dataclasses.replace(cfg, n_layer=6, n_head=6, n_embd=384, block_size=long_ctx), 1),
    ]
    speedups = []
    big = None
    for label, gcfg, repeats in kv_cfgs + [("L6/H6/C384, long context, batch 4", kv_cfgs[-1][1], 1)]:
        batch_g = 4 if "batch 4" in label else 1
        if gcfg == cfg:
            gmodel = model
        else:
            big = big if big is not None and big.cfg == gcfg else GPT(gcfg).to(device).eval()
            gmodel = big
        t_cache = time_generation(gmodel, device, n_new, use_cache=True, repeats=repeats, batch=batch_g)
        t_full = time_generation(gmodel, device, n_new, use_cache=False, repeats=repeats, batch=batch_g)
        speedups.append(t_full / t_cache)
        print(
            f"kv_cache [{label}]: L{gcfg.n_layer}/C{gcfg.n_embd}/T{gcfg.block_size} B{batch_g} new_tokens={n_new} "
            f"cached_s={t_cache:.3f} uncached_s={t_full:.3f} speedup={t_full / t_cache:.1f}x",
            flush=True,
        )
    print(
        f"gpt_speed: device={device.type} tokens_per_s={tokens_per_s:.0f} mfu={mfu} "
        f"core_ratio={step_s / core_s:.3f} kv_speedup={speedups[2]:.1f} kv_speedup_b4={speedups[3]:.1f}"
    )


if __name__ == "__main__":
    main()
