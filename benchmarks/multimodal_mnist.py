"""Benchmark for chapters 9 and 10: captioner, contrastive model, text to image, multimodal VAEs.

Trains from scratch (``cache=False``), in full mode, the recipes of ``genai_lib.recipes.multimodal``
the notebooks call, and scores them on the 1,000 held-out captioned digits:

- caption_digit / caption_exact: greedy captions naming the right digit / every attribute right;
- zeroshot: digit accuracy of the contrastive model from prompts; r1_i2t: its image -> text recall@1;
- t2i_digit / t2i_attr: images generated from the held-out captions (best of 8 by the
  contrastive score) showing the requested digit (the MNIST classifier) / every requested
  thickness, slant and size (the attribute functions);
- poe_i2t, poe_t2i, moe_i2t, moe_t2i: digit coherence of the MVAE (product of experts) and the
  MMVAE (mixture of experts), image -> caption and caption -> image.

Targets (issue 12): caption_digit >= 0.97, caption_exact >= 0.80, zeroshot >= 0.90, t2i_digit
>= 0.90, t2i_attr >= 0.75, and for the better posterior i2t >= 0.90 and t2i >= 0.85. Two
processes of one thread each (the chapter-9 models in one, the VAEs in the other). ``--cache``
uses and fills the recipes' cache entries (the notebooks then load the same models). The last line:
``multimodal_mnist: caption_digit=... caption_exact=... zeroshot=... r1_i2t=... t2i_digit=...
t2i_attr=... poe_i2t=... poe_t2i=... moe_i2t=... moe_t2i=... seconds=<s>``. ``GENAI_FAST=1`` smoke-tests it.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.recipes.multimodal import captioned_split, train_multimodal
from genai_lib.recipes.multimodal_eval import caption_scores, coherence, retrieval, t2i_scores, zero_shot


def chapter9(cache: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    x, ids, attrs = captioned_split("test")
    t0 = time.perf_counter()
    cap, _ = train_multimodal("captioner", cache=cache)
    s = caption_scores(cap, x, attrs)
    out = {"caption_digit": s["digit"], "caption_exact": s["exact"]}
    print(f"  captioner: {s['per_attribute']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    clip, _ = train_multimodal("clip", cache=cache)
    out["zeroshot"] = zero_shot(clip, x, attrs[:, 0])
    r = retrieval(clip, x, ids)
    out["r1_i2t"] = r["r1_i2t"]
    print(f"  clip: zero-shot {out['zeroshot']:.3f}, {r} ({time.perf_counter() - t0:.0f} s)", flush=True)
    gen, _ = train_multimodal("t2i", cache=cache)
    clf = mnist_classifier()
    t = t2i_scores(gen, clf, ids, attrs, scorer=clip, k=8)
    t1 = t2i_scores(gen, clf, ids, attrs)
    out.update(t2i_digit=t["digit"], t2i_attr=t["attr"])
    print(f"  t2i best of 8: {t['per_attribute']}; one sample: digit {t1['digit']:.3f} attr {t1['attr']:.3f}"
          f" ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return out


def chapter10(cache: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    x, ids, attrs = captioned_split("test")
    clf = mnist_classifier()
    out = {}
    t0 = time.perf_counter()
    for kind in ("poe", "moe"):
        model, _ = train_multimodal(kind, cache=cache)
        c = coherence(model, clf, x, ids, attrs)
        out[f"{kind}_i2t"], out[f"{kind}_t2i"] = c["i2t"], c["t2i"]
        print(f"  {kind}: {c} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="use and fill the recipes' cache entries")
    args = parser.parse_args()
    t0 = time.perf_counter()
    mnist_classifier()  # trained once (cached) before the two processes read it
    with ProcessPoolExecutor(2) as pool:
        a, b = pool.submit(chapter9, args.cache), pool.submit(chapter10, args.cache)
        res = {**a.result(), **b.result()}
    keys = ("caption_digit", "caption_exact", "zeroshot", "r1_i2t", "t2i_digit", "t2i_attr",
            "poe_i2t", "poe_t2i", "moe_i2t", "moe_t2i")  # fmt: skip
    line = " ".join(f"{k}={res[k]:.3f}" for k in keys)
    print(f"multimodal_mnist: {line} seconds={time.perf_counter() - t0:.0f}")


if __name__ == "__main__":
    main()
