"""Held-out scores of the chapter 9-10 models, each checked by the attribute functions.

- :func:`caption_scores`: greedy captions; the digit right, every attribute right, each attribute.
- :func:`zero_shot`: digit classification by the nearest prompt embedding (the 18 captions of a
  digit averaged: CLIP's prompt ensembling).
- :func:`retrieval`: recall@k both ways; a hit is a caption (image) whose caption *text* equals
  the query's, since 4,000 images share 176 distinct captions.
- :func:`t2i_scores`: images generated from held-out captions, read back by the digit
  classifier and the attribute functions.
- :func:`coherence`: the multimodal VAE's cross-generation and joint samples.
"""

from __future__ import annotations

from typing import Any

import torch

from genai_lib.captions import DIGITS, CaptionTokenizer, all_captions, attributes, caption
from genai_lib.models.mvae import WORDS
from genai_lib.models.text2image import rerank
from genai_lib.utils import eval_mode

__all__ = ["caption_scores", "zero_shot", "digit_prompts", "retrieval", "t2i_scores", "coherence", "word_digits"]

_TOK = CaptionTokenizer()


def word_digits(words: torch.Tensor) -> torch.Tensor:
    """The digit a caption names, from its 6 word ids (N, 6) (-1 where the digit slot holds no digit)."""
    lookup = torch.full((_TOK.vocab_size,), -1, dtype=torch.long)
    for d, w in enumerate(DIGITS):
        lookup[_TOK.index[w]] = d
    return lookup[words[:, 3].cpu()]


@torch.no_grad()
def caption_scores(captioner: Any, images: torch.Tensor, attrs: torch.Tensor) -> dict[str, Any]:
    """Greedy captions of ``images`` scored against their true ``attrs`` (N, 4)."""
    with eval_mode(captioner):
        ids = torch.cat([captioner.generate(images[i : i + 256]).cpu() for i in range(0, len(images), 256)])
    got = _TOK.attributes_of(ids)
    right = got == attrs
    return {
        "digit": float(right[:, 0].float().mean()),
        "exact": float(right.all(1).float().mean()),
        "per_attribute": right.float().mean(0).tolist(),
        "ids": ids,
    }


@torch.no_grad()
def digit_prompts(clip: Any) -> torch.Tensor:
    """One unit vector (10, D) per digit: the mean embedding of its 18 captions, normalised."""
    out = []
    for d in range(10):
        ids = _TOK.encode_batch([caption(a) for a in all_captions(d)])
        out.append(clip.encode_text(ids).mean(0))
    return torch.nn.functional.normalize(torch.stack(out), dim=-1)


@torch.no_grad()
def zero_shot(clip: Any, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of argmax_d cos(image, prompt_d) on labelled images."""
    with eval_mode(clip):
        pred = (clip.encode_image(images) @ digit_prompts(clip).T).argmax(1).cpu()
    return float((pred == labels.cpu()).float().mean())


@torch.no_grad()
def retrieval(clip: Any, images: torch.Tensor, ids: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """recall@k image -> text and text -> image over a held-out set (hits by identical caption text)."""
    with eval_mode(clip):
        sim = clip.similarity(images, ids).cpu()  # (N, N)
    same = (ids[:, None] == ids[None]).all(-1)  # (N, N): caption i reads like caption j
    out = {}
    for k in ks:
        top_t = sim.topk(k, dim=1).indices  # texts for each image
        top_i = sim.topk(k, dim=0).indices.T  # images for each text
        out[f"r{k}_i2t"] = float(same.gather(1, top_t).any(1).float().mean())
        out[f"r{k}_t2i"] = float(same.gather(1, top_i).any(1).float().mean())
    return out


@torch.no_grad()
def t2i_scores(
    gen: Any, classifier: Any, ids: torch.Tensor, attrs: torch.Tensor, *, scorer: Any = None, k: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Generate one image per caption (the best of ``k`` by ``scorer`` when given) and read it back."""
    g = torch.Generator().manual_seed(seed)
    with eval_mode(gen):
        if scorer is not None and k > 1:
            with eval_mode(scorer):
                images = rerank(gen, scorer, ids, k, generator=g)
        else:
            images = gen.generate(ids, generator=g)
    digit = classifier(images.to(next(classifier.parameters()).device)).argmax(1).cpu()
    got = attributes(images, attrs[:, 0])
    right = got[:, 1:] == attrs[:, 1:]
    return {
        "digit": float((digit == attrs[:, 0]).float().mean()),
        "attr": float(right.all(1).float().mean()),
        "per_attribute": right.float().mean(0).tolist(),
        "images": images,
    }


@torch.no_grad()
def coherence(model: Any, classifier: Any, images: torch.Tensor, ids: torch.Tensor, attrs: torch.Tensor,
              n_joint: int = 500, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Digit coherence of a multimodal VAE: image -> caption, caption -> image, and joint prior samples."""
    dev = next(classifier.parameters()).device
    words = ids[:, 1 : 1 + WORDS]
    out: dict[str, float] = {}
    with eval_mode(model):
        if "image" in model.cfg.views and "caption" in model.cfg.views:
            _, w = model.generate(image=images)
            out["i2t"] = float((word_digits(w) == attrs[:, 0]).float().mean())
            img, _ = model.generate(words=words)
            out["t2i"] = float((classifier(img.to(dev)).argmax(1).cpu() == attrs[:, 0]).float().mean())
            out["t2i_attr"] = float((attributes(img, attrs[:, 0])[:, 1:] == attrs[:, 1:]).all(1).float().mean())
        img, w = model.sample(n_joint, generator=torch.Generator().manual_seed(seed))
    if img is not None and w is not None:
        out["joint"] = float((classifier(img.to(dev)).argmax(1).cpu() == word_digits(w)).float().mean())
    return out
