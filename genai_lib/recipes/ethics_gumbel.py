"""Chapter 19's distortion-free text watermark: the Gumbel-max (exponential-minimum) sampler of
Aaronson 2022 / Kuditipudi et al. 2023 on the chapter-7 character GPT, measured like the green
list of :func:`genai_lib.recipes.ethics.text_watermark` (the same prompts, lengths and edits).

:func:`gumbel_watermark` continues the ``n`` held-out prompts by ``tokens`` characters, once by
plain sampling at temperature 1 and once with :class:`genai_lib.watermark.GumbelProcessor`; each
text's first L generated characters get the exact p-value of :func:`gumbel_pvalue` (Gamma null),
and a text is flagged when p < 0.01 (1% false positives by construction, checked on the plain
texts). The perplexity of both runs is measured under the unwatermarked model. Cached as
``ch19_text_gumbel``; ``cache=False`` recomputes it (the benchmark).
"""

from __future__ import annotations

from typing import Any

import torch

from genai_lib.recipes.ethics import TEXT_WM, _cached, _prompts, char_model, sequence_nats, watermark_generate
from genai_lib.utils import fast_mode
from genai_lib.watermark import GumbelKey, GumbelProcessor, gumbel_pvalue, random_token_edits

__all__ = ["GUMBEL_WM", "gumbel_watermark"]

# The key and the flagging level (the sizes, lengths and edits are TEXT_WM's).
GUMBEL_WM: dict[str, Any] = {"key": 15485863, "alpha": 0.01}


def gumbel_watermark(*, fast: bool | None = None, device: Any = None, cache: bool = True) -> dict[str, Any]:
    """The Gumbel-max experiment; ``{"lengths", "edits", "p_plain": {L: (n,)}, "p": {L: (n,)},
    "p_edit_plain": {f: (n,)}, "p_edit": {f: (n,)}, "nats_plain": (n,), "nats": (n,),
    "sample_plain", "sample_wm", "prompt", "tpr1": {L: rate}, "fpr": {L: rate}, "ppl_ratio",
    "ppl_ratio_se"}``. ``ppl_ratio`` is exp(mean nats watermarked - mean nats plain), and
    ``ppl_ratio_se`` its standard error over the ``n`` texts (the delta method): a ratio within
    two of them of 1 is no measurable cost."""
    fast = fast_mode() if fast is None else fast
    size = TEXT_WM["fast" if fast else "full"]
    model, tok, val_ids = char_model(fast=fast, device=device)
    key = GumbelKey(tok.vocab_size, key=GUMBEL_WM["key"])
    ckey = {"wm": GUMBEL_WM, "size": size, "edits": TEXT_WM["edits"], "fast": fast}

    def compute() -> dict[str, Any]:
        p = size["prompt"]
        prompts = _prompts(val_ids, size["n"], p)
        plain = watermark_generate(model, prompts, size["tokens"], None)
        marked = watermark_generate(model, prompts, size["tokens"], GumbelProcessor(key, start=p))

        def pv(ids: torch.Tensor) -> dict[int, torch.Tensor]:
            return {L: gumbel_pvalue(ids[:, p - 1 : p + L], key) for L in size["lengths"]}

        g = torch.Generator().manual_seed(1)
        edit_l = 200 if 200 in size["lengths"] else size["lengths"][-1]

        def edited(ids: torch.Tensor, f: float) -> torch.Tensor:
            part = random_token_edits(ids[:, p - 1 : p + edit_l], f, tok.vocab_size, generator=g)
            return gumbel_pvalue(part, key)  # the prompt's last token first, kept by the edits

        out: dict[str, Any] = {"lengths": list(size["lengths"]), "edits": list(TEXT_WM["edits"])}
        out["p_plain"], out["p"] = pv(plain), pv(marked)
        out["p_edit_plain"] = {f: edited(plain, f) for f in TEXT_WM["edits"]}
        out["p_edit"] = {f: edited(marked, f) for f in TEXT_WM["edits"]}
        out["nats_plain"] = sequence_nats(model, plain, p)
        out["nats"] = sequence_nats(model, marked, p)
        out["sample_plain"] = tok.decode(plain[0, p:].tolist())
        out["sample_wm"] = tok.decode(marked[0, p:].tolist())
        out["prompt"] = tok.decode(prompts[0].tolist())
        return out

    out = _cached("ch19_text_gumbel", ckey, compute, cache)
    a = GUMBEL_WM["alpha"]
    out["tpr1"] = {L: float((out["p"][L] < a).double().mean()) for L in out["lengths"]}
    out["fpr"] = {L: float((out["p_plain"][L] < a).double().mean()) for L in out["lengths"]}
    diff = float(out["nats"].mean() - out["nats_plain"].mean())
    n = len(out["nats"])
    se = float((out["nats"].var() / n + out["nats_plain"].var() / n).sqrt())
    out["ppl_ratio"] = float(torch.exp(torch.tensor(diff)))
    out["ppl_ratio_se"] = out["ppl_ratio"] * se
    return out
