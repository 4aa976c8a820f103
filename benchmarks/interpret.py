"""Interpretability benchmark (chapter 17): disentanglement, IG completeness, KernelSHAP, induction head.

Uses the chapter's recipes, cached like the notebook's (``GENAI_FAST=1``: the tiny budgets):

- the beta-VAEs of ``genai_lib.recipes.interpret.SHAPES_BETAS`` on the dSprites-like shapes, each
  scored by the mutual-information gap of its posterior means (``shapes_mig``);
- integrated gradients of the MNIST classifier's true-class logit on 8 test digits (256 trapezoid
  steps, black baseline): the largest completeness gap |sum IG - (f(x) - f(0))| relative to the
  mean |logit|;
- KernelSHAP on 16 patches (4 x 4) of one test digit with 2,048 sampled coalitions, against the
  exact Shapley values from all 65,536 coalitions: the largest error relative to the largest value;
- the copy GPT (``train_copy_gpt``) on 256 random sequences of period 8 repeated twice: the layer,
  head and score of its top induction head, the best layer-0 previous-token score, and the loss on
  the first and on the second copy (nats per token).

No target is set by issue 15 for chapter 17; the numbers are what the notebook measures, in one line.
Last line: ``interpret: mig_b1=.. mig_b2=.. ... mig_best=.. beta_best=.. ig_gap_rel=..
kernelshap_err_rel=.. induction_layer=.. induction_head=.. induction_score=.. prev_token_score=..
copy_loss_first=.. copy_loss_second=.. seconds=..``.
"""

from __future__ import annotations

import time

import torch

from genai_lib.attribution import (
    completeness_gap,
    exact_shapley,
    integrated_gradients,
    kernel_shap,
    masked_value,
    patch_players,
)
from genai_lib.data import load_mnist
from genai_lib.interpret import induction_scores, previous_token_scores, repeated_tokens
from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.recipes.interpret import COPY_GPT, shapes_betas, shapes_mig, train_copy_gpt, train_shapes_vae


def main() -> None:
    start = time.perf_counter()
    out = {}
    for beta in shapes_betas():
        model, _ = train_shapes_vae(beta, progress=True)
        score, gaps = shapes_mig(model)
        out[f"mig_b{beta:g}"] = score
        print(f"beta {beta:g}: MIG {score:.3f} per factor {[round(float(g), 3) for g in gaps]}", flush=True)
    best = max(shapes_betas(), key=lambda b: out[f"mig_b{b:g}"])
    out["mig_best"], out["beta_best"] = out[f"mig_b{best:g}"], f"{best:g}"

    clf = mnist_classifier()
    x, y = load_mnist("test")
    digits, labels = x[:8], y[:8]
    ig = integrated_gradients(clf, digits, labels, steps=256)
    gap = float(completeness_gap(clf, digits, ig, labels).abs().max())
    with torch.no_grad():
        logit = float(clf(digits).gather(1, labels.view(-1, 1)).abs().mean())
    out["ig_gap_rel"] = gap / logit

    value = masked_value(clf, digits[:1], patch_players((1, 28, 28), 4), int(labels[0]))
    exact = exact_shapley(value, 16)
    est = kernel_shap(value, 16, n_samples=2048, generator=torch.Generator().manual_seed(0))
    out["kernelshap_err_rel"] = float((est - exact).abs().max() / exact.abs().max())

    copy_gpt, _ = train_copy_gpt(progress=True)
    period = COPY_GPT["periods"][1]
    seqs = repeated_tokens(256, period, copy_gpt.cfg.vocab_size, generator=torch.Generator().manual_seed(0))
    maps = copy_gpt.attention_maps(seqs)
    scores = induction_scores(maps, period)  # (L, nh)
    out["induction_layer"], out["induction_head"] = divmod(int(scores.argmax()), scores.shape[1])
    out["induction_score"] = float(scores.max())
    out["prev_token_score"] = float(previous_token_scores(maps)[0].max())
    with torch.no_grad():
        logits, _ = copy_gpt(seqs)
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), seqs[:, 1:], reduction="none").mean(0)
    out["copy_loss_first"], out["copy_loss_second"] = float(nll[: period - 1].mean()), float(nll[period:].mean())
    out["seconds"] = time.perf_counter() - start
    print(
        "interpret: "
        + " ".join(
            f"{k}={v:.4f}"
            if isinstance(v, float) and k != "seconds"
            else f"{k}={v:.0f}"
            if k == "seconds"
            else f"{k}={v}"
            for k, v in out.items()
        )
    )


if __name__ == "__main__":
    main()
