"""Memorisation in a character GPT: canaries (Carlini et al. 2019), with and without DP-SGD.

A secret sentence ``"my secret pin is 4831."`` is inserted ``repeats`` times at random line
breaks of the first characters of the English training text (chapter 7's corpus). Two small
character GPTs of the same shape learn the text: one by chapter 7's AdamW recipe
(:func:`genai_lib.recipes.language.train_gpt`, random windows), one by DP-SGD at epsilon
``EPS`` (delta 1e-5), whose records are the text cut into chunks of ``block_size + 1``
characters, drawn by Poisson sampling. Exposure ranks the secret's log-perplexity among all 10^4
four-digit PINs: log2(10^4) = 13.3 bits means the secret is the model's first guess.

What DP protects here is one *chunk*: a secret repeated r times is covered only by group
privacy, epsilon grows about r-fold (and faster), which the chapter says next to the numbers.
Cached as ``canary_gpt_<kind>``. Fast mode: less text, fewer steps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.privacy import PoissonLoader, dp_phase, epsilon, noise_for_epsilon
from genai_lib.privacy_attacks import exposure
from genai_lib.recipes.language import train_gpt
from genai_lib.text import load_corpus
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train import fit
from genai_lib.train_cache import cached
from genai_lib.utils import fast_mode

__all__ = ["PREFIX", "SECRET", "CANARY", "EPS", "canary_text", "train_canary_gpt", "exposure_of", "extract"]

PREFIX, SECRET = "my secret pin is ", "4831"
CANARY = f"{PREFIX}{SECRET}."
EPS = 8.0  # the DP budget of the private GPT (per chunk, delta 1e-5)
BUDGET = {
    "full": {"chars": 100_000, "repeats": 10, "steps": 1000, "batch": 12, "dp_steps": 250, "dp_batch": 32},
    "fast": {"chars": 6_000, "repeats": 10, "steps": 80, "batch": 12, "dp_steps": 6, "dp_batch": 8},
}
SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64}


def canary_text(*, fast: bool | None = None) -> tuple[str, CharTokenizer]:
    """The training text with the canary inserted ``repeats`` times, and its character tokenizer."""
    b = BUDGET["fast" if (fast_mode() if fast is None else fast) else "full"]
    text = load_corpus("english", "train")[: b["chars"]]
    breaks = [i for i, c in enumerate(text) if c == "\n"]
    g = torch.Generator().manual_seed(16)
    where = sorted(breaks[int(i)] for i in torch.randperm(len(breaks), generator=g)[: b["repeats"]])
    for pos in reversed(where):
        text = text[: pos + 1] + CANARY + "\n" + text[pos + 1 :]
    return text, CharTokenizer.from_text(text + "0123456789")


def _sample_loss(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model.lm_head(model._hidden(x[None]))[0].float(), y)


def train_canary_gpt(
    dp: bool, *, fast: bool | None = None, progress: bool = False, cache: bool = True
) -> tuple[GPT, dict[str, Any]]:
    """The character GPT on the canaried text, without (``dp=False``) or with DP-SGD; (model, info)."""
    fast = fast_mode() if fast is None else fast
    b = BUDGET["fast" if fast else "full"]
    text, tok = canary_text(fast=fast)
    ids = tok.encode(text, as_tensor=True)
    cfg = GPTConfig(tok.vocab_size, pos="rope", **SHAPE)
    t = SHAPE["block_size"]
    chunks = ids[: len(ids) // (t + 1) * (t + 1)].view(-1, t + 1)  # the DP records
    q = b["dp_batch"] / len(chunks)
    sigma = noise_for_epsilon(EPS, q, b["dp_steps"], 1e-5) if dp else None

    def compute() -> dict[str, Any]:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = GPT(cfg)
        if dp:
            phase = dp_phase(model, _sample_loss, max_norm=1.0, noise_multiplier=sigma,
                             expected_batch_size=b["dp_batch"], method="loop", lr=3e-3)  # fmt: skip
            loader = PoissonLoader(chunks[:, :-1], chunks[:, 1:], q=q)
            h = fit(model, loader, steps=b["dp_steps"], phases=[phase], generator=torch.Generator().manual_seed(0),
                    progress=progress)  # fmt: skip
        else:
            h = train_gpt(model, ids, steps=b["steps"], batch_size=b["batch"], lr=3e-3, min_lr=3e-4, warmup=50,
                          generator=torch.Generator().manual_seed(0), progress=progress)  # fmt: skip
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "loss": list(h.logs["loss"])}

    key = {"b": b, "shape": SHAPE, "dp": dp, "eps": EPS, "text": text, "v": 1}
    value = (
        cached(f"canary_gpt_{'dp' if dp else 'nodp'}{'_fast' if fast else ''}", key, compute) if cache else compute()
    )
    model = GPT(cfg)
    model.load_state_dict(value["state"])
    model.eval()
    spent = epsilon(q, sigma, b["dp_steps"], 1e-5) if dp else None
    return model, {"epsilon": spent, "noise_multiplier": sigma, "loss": value["loss"], "tokenizer": tok,
                   "repeats": b["repeats"], "records": len(chunks)}  # fmt: skip


@torch.no_grad()
def secret_nlls(model: GPT, tok: CharTokenizer, candidates: list[str]) -> torch.Tensor:
    """NLL in nats of each candidate secret after ``PREFIX`` (one row per candidate)."""
    rows = torch.stack([tok.encode("\n" + PREFIX + c, as_tensor=True) for c in candidates])  # (R, L)
    n = len(candidates[0])
    out = []
    for part in rows.split(2000):
        logits = model(part[:, :-1])[0].float()  # (r, L-1, V)
        nll = F.cross_entropy(logits.transpose(1, 2), part[:, 1:], reduction="none")  # (r, L-1)
        out.append(nll[:, -n:].sum(1))
    return torch.cat(out)


def exposure_of(model: GPT, tok: CharTokenizer) -> tuple[float, torch.Tensor]:
    """(exposure in bits of SECRET among all 10^4 four-digit PINs, every candidate's NLL)."""
    candidates = [f"{i:04d}" for i in range(10_000)]
    nlls = secret_nlls(model, tok, candidates)
    k = candidates.index(SECRET)
    others = torch.cat([nlls[:k], nlls[k + 1 :]])
    return exposure(float(nlls[k]), others), nlls


@torch.no_grad()
def extract(model: GPT, tok: CharTokenizer) -> str:
    """Greedy decoding of four characters after the prompt ``PREFIX``: extraction by prompting."""
    idx = tok.encode("\n" + PREFIX, as_tensor=True)[None]
    for _ in range(len(SECRET)):
        nxt = model(idx[:, -SHAPE["block_size"] :])[0][:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, nxt], 1)
    return tok.decode(idx[0, -len(SECRET) :].tolist())
