"""Compression benchmark (chapter 18): the course's character GPT quantised, pruned and distilled.

The model is chapter 7's GPT through its recipe (``train_char_gpt``, cache entry
``ch7_gpt_english``: trained once, then loaded); every other run goes through
``genai_lib.recipes.efficiency`` and is cached under ``ch18_*`` (the notebook reads the same
entries). Validation loss: nats per character over the whole English validation split in
consecutive 64-character windows (``evaluate_lm(..., n_batches=None)``). Sizes: bytes of
``torch.save(state_dict)``. Speed: inference tokens per second of one CPU thread on a 16 x 64
batch, best of 3 rounds. Also printed (not in the last line): group-wise int8/int4 at several
group sizes, the pruning sweep (30/50/70/90%, with and without fine-tuning, unstructured and
structured, and the dense model fine-tuned as long), and the DDP check's relative gaps.

Targets (issue 15): int8 <= 1/3.5 of the fp32 size with val within 1%; int4 group-wise within
5%; 50% pruning after fine-tuning within 2%; the distilled student below the scratch student;
DDP and single-process gradients equal to 1e-5 relative.

    python benchmarks/compress_gpt.py           # GENAI_FAST=1 for the tiny budgets

Last line: ``compress_gpt: fp32_val=... int8_val=... int8_mb=... fp32_mb=... int8_tok_s=...
fp32_tok_s=... int4_val=... prune50_ft_val=... student_kd_val=... student_scratch_val=...
ddp_match=... seconds=...``.
"""

from __future__ import annotations

import time

import torch

from genai_lib.compress import (
    dynamic_int8,
    forward_tokens_per_s,
    linear_fraction,
    quantize_weights,
    serialized_bytes,
    weight_sparsity,
)
from genai_lib.recipes.efficiency import ddp_check, prune_finetune, train_student
from genai_lib.recipes.language import train_char_gpt
from genai_lib.text import evaluate_lm, load_corpus
from genai_lib.tokenizer import CharTokenizer
from genai_lib.utils import fast_mode, seed_everything

SPARSITIES = (0.3, 0.5, 0.7, 0.9)
INT4_GROUP, INT8_GROUP = 32, 64


def main() -> None:
    t0 = time.perf_counter()
    seed_everything(0)
    torch.set_num_threads(1)
    fast = fast_mode()
    train_text, val_text = load_corpus("english", "train"), load_corpus("english", "val")
    tok = CharTokenizer.from_text(train_text)
    train_ids, val_ids = tok.encode(train_text, as_tensor=True), tok.encode(val_text, as_tensor=True)
    if fast:
        val_ids = val_ids[:8000]
    teacher, hist = train_char_gpt(train_ids, tok.vocab_size)
    block = teacher.cfg.block_size
    print(f"teacher: {teacher.num_params():,} parameters ({'cache' if hist.from_cache else f'{hist.seconds:.0f} s'})")

    def ev(model: torch.nn.Module) -> float:
        return evaluate_lm(model, val_ids, block, 64, n_batches=None)

    fp32_val, fp32_b = ev(teacher), serialized_bytes(teacher)
    int8 = dynamic_int8(teacher)
    int8_val, int8_b = ev(int8), serialized_bytes(int8)
    print(f"Linear layers hold {linear_fraction(teacher):.1%} of the parameters (what torch.ao quantises)")
    x = val_ids[: 16 * block].reshape(16, block)
    speeds: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(3):  # interleaved rounds: a busy machine slows both alike
        speeds["fp32"].append(forward_tokens_per_s(teacher, x, reps=10))
        speeds["int8"].append(forward_tokens_per_s(int8, x, reps=10))
    fp32_tok, int8_tok = max(speeds["fp32"]), max(speeds["int8"])

    groupwise = {}
    for bits, group in ((8, 64), (8, 128), (4, 16), (4, 32), (4, 64), (4, 128)):
        if teacher.cfg.n_embd % group:  # the fast model is narrower than the widest groups
            continue
        q = quantize_weights(teacher, bits, group)
        groupwise[bits, group] = (ev(q), serialized_bytes(q))
        val, b = groupwise[bits, group]
        print(f"group-wise int{bits} g={group:3d}: val {val:.4f} ({val / fp32_val - 1:+.2%}), {b / 1e6:.3f} MB")
    int4_val = groupwise[4, INT4_GROUP][0]

    dense_ft, _ = prune_finetune(teacher, train_ids, 0.0)  # the control: as much fine-tuning, no pruning
    print(f"dense, fine-tuned as long as the pruned ones: val {ev(dense_ft):.4f}")
    prune = {}
    for structured in (False, True):
        for s in SPARSITIES:
            raw, _ = prune_finetune(teacher, train_ids, s, structured=structured, steps=0)
            tuned, _ = prune_finetune(teacher, train_ids, s, structured=structured)
            prune[s, structured] = (ev(raw), ev(tuned))
            kind = "structured" if structured else "unstructured"
            print(
                f"prune {kind:12s} {s:.0%} (sparsity {weight_sparsity(tuned):.3f}): val {prune[s, structured][0]:.4f}"
                f" -> {prune[s, structured][1]:.4f} after fine-tuning ({prune[s, structured][1] / fp32_val - 1:+.2%})"
            )
    prune50 = prune[0.5, False][1]

    kd, kd_hist = train_student(teacher, train_ids, distill=True)
    scratch, sc_hist = train_student(teacher, train_ids, distill=False)
    kd_val, scratch_val = ev(kd), ev(scratch)
    print(f"students ({kd.num_params():,} parameters, {len(kd_hist.step)} logged steps): kd {kd_val:.4f}, "
          f"scratch {scratch_val:.4f}")  # fmt: skip

    gap = ddp_check(teacher.cfg, world_size=2, batch_size=6, steps=3)
    print("ddp: " + " ".join(f"{k}={v:.3g}" for k, v in gap.items()))

    targets = {
        "int8 size <= fp32/3.5": int8_b * 3.5 <= fp32_b,
        "int8 val within 1%": int8_val <= 1.01 * fp32_val,
        "int4 val within 5%": int4_val <= 1.05 * fp32_val,
        "prune50 ft within 2%": prune50 <= 1.02 * fp32_val,
        "kd student below scratch": kd_val < scratch_val,
        "ddp grads equal to 1e-5 rel": gap["grad_rel"] <= 1e-5,
    }
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    print(
        f"compress_gpt: fp32_val={fp32_val:.4f} int8_val={int8_val:.4f} int8_mb={int8_b / 1e6:.3f} "
        f"fp32_mb={fp32_b / 1e6:.3f} int8_tok_s={int8_tok:.0f} fp32_tok_s={fp32_tok:.0f} int4_val={int4_val:.4f} "
        f"prune50_ft_val={prune50:.4f} student_kd_val={kd_val:.4f} student_scratch_val={scratch_val:.4f} "
        f"ddp_match={gap['grad_abs']:.3g} seconds={time.perf_counter() - t0:.0f}"
    )


if __name__ == "__main__":
    main()
