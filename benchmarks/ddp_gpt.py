"""Data-parallel training of the chapter-7 character GPT under ``torchrun`` (chapter 18).

One process per device; each rank draws its own random windows of the English corpus (seed =
rank), the training core averages the gradients across ranks after every backward pass, and rank 0
alone draws the progress bar and writes the checkpoint. At the end every rank checks that its
weights equal rank 0's (they must: same start, same averaged gradients, same optimizer steps).

    torchrun --standalone --nproc_per_node=2 benchmarks/ddp_gpt.py --steps 50      # 2 CPU processes
    torchrun --standalone --nproc_per_node=8 benchmarks/ddp_gpt.py                 # 8 GPUs
    torchrun --nnodes=4 --nproc_per_node=8 --node_rank=$NODE_RANK \\
             --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 benchmarks/ddp_gpt.py  # 4 nodes x 8 GPUs

Without torchrun it runs as one process. Last line (rank 0):
``ddp_gpt: world=<R> steps=<n> batch_per_rank=<B> loss=<last training loss> ranks_equal=<0|1> seconds=<s>``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist

from genai_lib.distributed import init_from_env, is_main, rank, world_size
from genai_lib.models.gpt import GPT
from genai_lib.recipes.language import CHAR_GPT
from genai_lib.text import load_corpus, text_loader
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=6, help="sequences per rank and step")
    parser.add_argument("--checkpoint", default=None, help="written by rank 0 only")
    args = parser.parse_args()
    t0 = time.perf_counter()
    init_from_env()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu")
    text = load_corpus("english", "train")
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text, as_tensor=True)
    recipe = CHAR_GPT["full"]
    torch.manual_seed(0)  # the same initial weights on every rank
    model = GPT(recipe.config(tok.vocab_size)).to(device)
    loader = text_loader(ids, model.cfg.block_size, args.batch, generator=torch.Generator().manual_seed(rank()))
    hist = fit(
        model,
        loader,
        steps=args.steps,
        optimizer=model.configure_optimizers(0.1, recipe.lr),
        grad_clip=1.0,
        checkpoint=args.checkpoint,
        desc=f"DDP on {world_size()} rank(s)",
    )
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    same = True
    if dist.is_initialized():
        ref = flat.clone()
        dist.broadcast(ref, 0)
        ok = torch.tensor([float(torch.equal(ref, flat))], device=flat.device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        same = bool(ok.item())
    if is_main():
        print(
            f"ddp_gpt: world={world_size()} steps={args.steps} batch_per_rank={args.batch} "
            f"loss={hist.logs['loss'][-1]:.4f} ranks_equal={int(same)} seconds={time.perf_counter() - t0:.1f}"
        )
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
