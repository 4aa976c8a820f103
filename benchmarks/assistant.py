"""Assistant benchmark (chapter 8.3): pre-trained char GPT -> SFT -> reward model -> DPO.

Runs ``genai_lib.recipes.assistant`` with ``ASSISTANT["full"]`` (``GENAI_FAST=1``: the tiny
budget), each stage cached like the notebook's (``--fresh`` trains in a temporary cache), and
measures on held-out instructions (greedy decoding, exact match): the base model prompted with
the same chat template, the SFT model, the DPO model, and best-of-n (n=8) samples of the SFT
model ranked by the reward model; the reward model's accuracy on held-out preference pairs; a
Monte Carlo KL(DPO || SFT) in nats per response; and the English held-out loss (nats/char) of
the base and DPO models (the alignment tax).

Targets (issue 16): sft_acc >= base_acc + 0.40; dpo_acc > sft_acc; rm_pair_acc >= 0.90.
At most 20 minutes on 2 cores.

Last line: ``assistant: base_acc=.. sft_acc=.. dpo_acc=.. bon_acc=.. rm_pair_acc=.. kl_dpo=..
pretrain_val_base=.. pretrain_val_dpo=.. seconds=..``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from genai_lib.recipes.assistant import (
    chat_base,
    instruction_splits,
    likelihood_reward,
    preference_data,
    train_dpo,
    train_reward_model,
    train_sft,
)
from genai_lib.recipes.assistant_eval import best_of_n, exact_match_accuracy, kl_to_reference, pairwise_accuracy
from genai_lib.text import evaluate_lm
from genai_lib.utils import get_device


def curve(hist, key: str, what: str, points: int = 8) -> None:
    """A few points of a logged training curve (mean over each stretch of steps)."""
    vals, steps = hist.logs[key], hist.step
    k = max(1, len(vals) // points)
    cells = [
        f"{steps[min(i + k, len(vals)) - 1]}:{sum(vals[i : i + k]) / len(vals[i : i + k]):.3f}"
        for i in range(0, len(vals), k)
    ]
    print(f"  {what} by step: " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the best available)")
    parser.add_argument("--fresh", action="store_true", help="train every stage again (temporary cache)")
    parser.add_argument("--bon", type=int, default=8, help="n of best-of-n")
    args = parser.parse_args()
    if args.fresh:
        os.environ["GENAI_CACHE_DIR"] = tempfile.mkdtemp(prefix="genai_assistant_")
    t0 = time.perf_counter()
    device = get_device(args.device)
    cb = chat_base(device=device)
    train, pair_prompts, test = instruction_splits(cb)
    r = cb.recipe
    print(f"{len(train)} SFT instructions, {len(pair_prompts)} preference prompts, {len(test)} held-out", flush=True)

    def stamp(what: str, hist=None) -> None:
        how = "" if hist is None else (" (cache)" if hist.from_cache else f" ({hist.seconds:.0f} s training)")
        print(f"[{time.perf_counter() - t0:6.0f} s] {what}{how}", flush=True)

    base_acc, _ = exact_match_accuracy(cb.base, cb.template, test, max_new=r.max_new)
    stamp(f"base exact match {base_acc:.3f}")
    sft, sft_hist = train_sft(cb, train)
    sft_acc, _ = exact_match_accuracy(sft, cb.template, test, max_new=r.max_new)
    stamp(f"SFT exact match {sft_acc:.3f}", sft_hist)
    pairs = preference_data(cb, sft, pair_prompts, seed=0)
    test_pairs = preference_data(cb, sft, test, seed=1)
    fmt = sum(ins.answer in rj for ins, _, rj in test_pairs)
    stamp(f"{len(pairs)} training pairs, {len(test_pairs)} held-out pairs ({fmt} format violations)")
    lik_acc = pairwise_accuracy(likelihood_reward(sft), cb.template, test_pairs)
    stamp(f"SFT log-likelihood alone (no preference training) held-out pairwise accuracy {lik_acc:.3f}")
    rm, rm_hist = train_reward_model(cb, sft, pairs)
    rm_acc = pairwise_accuracy(rm, cb.template, test_pairs)
    stamp(f"reward model held-out pairwise accuracy {rm_acc:.3f}", rm_hist)
    fmt_pairs = [p for p in test_pairs if p[0].answer in p[2]]
    wrong_pairs = [p for p in test_pairs if p[0].answer not in p[2]]
    if fmt_pairs and wrong_pairs:
        print(f"  format violations {pairwise_accuracy(rm, cb.template, fmt_pairs):.3f},", end=" ")
        print(f"wrong answers {pairwise_accuracy(rm, cb.template, wrong_pairs):.3f}")
    curve(rm_hist, "acc", "reward model training-pair accuracy")
    dpo, dpo_hist = train_dpo(cb, sft, pairs)
    curve(dpo_hist, "dpo", "DPO loss")
    dpo_acc, _ = exact_match_accuracy(dpo, cb.template, test, max_new=r.max_new)
    stamp(f"DPO exact match {dpo_acc:.3f}", dpo_hist)
    g = torch.Generator(device=device).manual_seed(2)
    bon_acc, _ = best_of_n(sft, rm, cb.template, test, n=args.bon, max_new=r.max_new, generator=g)
    stamp(f"best-of-{args.bon} exact match {bon_acc:.3f}")
    g = torch.Generator(device=device).manual_seed(3)
    kl = kl_to_reference(dpo, sft, cb.template, test, n=4, max_new=r.max_new, generator=g)
    val_ids = cb.pretrain_val_ids.to(device)
    block = cb.base.cfg.block_size

    def val(model) -> float:
        return evaluate_lm(model, val_ids, block, 32, n_batches=20, generator=torch.Generator().manual_seed(1))

    pre_base, pre_sft, pre_dpo = val(cb.base), val(sft), val(dpo)
    stamp(
        f"KL(DPO || SFT) {kl:.3f} nats; English held-out loss base {pre_base:.4f}, SFT {pre_sft:.4f}, DPO {pre_dpo:.4f}"
    )
    met = {
        "sft_acc >= base_acc + 0.40": sft_acc >= base_acc + 0.40,
        "dpo_acc > sft_acc": dpo_acc > sft_acc,
        "rm_pair_acc >= 0.90": rm_acc >= 0.90,
    }
    for name, ok in met.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    print(
        f"assistant: base_acc={base_acc:.3f} sft_acc={sft_acc:.3f} dpo_acc={dpo_acc:.3f} bon_acc={bon_acc:.3f} "
        f"rm_pair_acc={rm_acc:.3f} kl_dpo={kl:.4f} pretrain_val_base={pre_base:.4f} pretrain_val_dpo={pre_dpo:.4f} "
        f"seconds={time.perf_counter() - t0:.0f}"
    )


if __name__ == "__main__":
    main()
