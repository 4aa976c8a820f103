"""Chapter 13's models: a GPT that writes game levels, and a GPT that writes Python.

- ``train_level_gpt()``: chapter 8's GPT (:mod:`genai_lib.models.gpt`) over the tokens of
  ``LEVELS[...]["n_levels"]`` solvable levels of the classical generator
  (:func:`genai_lib.levels.generate_levels`, seed 0), trained by chapter 8's recipe
  (:func:`genai_lib.recipes.language.train_gpt`); cached as ``level_gpt``. ``sample_levels``
  draws levels from it after the start token (``rules=True``: under layout rules).
  ``refine_level_gpt()`` fine-tunes it on its own solvable samples (the solver as a reward,
  a few rounds of expert iteration); cached as ``level_gpt_refined<round>``.
- ``train_code_gpt()``: the same GPT, wider, on the characters of the functions and methods of
  a fixed subset of CPython's standard library (:data:`genai_lib.code_corpus.CODE_MODULES`, each
  function dedented to the margin, the form of the prompts); cached as ``code_gpt``.
  ``refine_code_gpt()`` fine-tunes it on its own completions that compile (the parser and the
  compiler as a reward, expert iteration on prompts made from the corpus, never the evaluation
  prompts); cached as ``code_gpt_refined<round>``.
  ``complete_functions`` continues a signature and docstring; ``code_validity`` measures the
  fraction of completions that parse, compile and pass the prompt's property checks, at
  several temperatures.

Fast mode (``GENAI_FAST=1``): fewer levels, less code, far fewer steps; the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genai_lib.code_corpus import (
    CLOSERS,
    PROMPTS,
    compiles,
    docstring_prompts,
    extract_function,
    has_body,
    load_code_corpus,
    parses,
    property_checks,
    scan_brackets,
)
from genai_lib.data import make_loader
from genai_lib.levels import LevelConfig, LevelTokenizer, generate_levels, solve
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.recipes.language import train_gpt
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train import fit
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode

__all__ = [
    "LEVELS",
    "CODE",
    "train_level_gpt",
    "sample_levels",
    "refine_level_gpt",
    "train_code_gpt",
    "refine_code_gpt",
    "complete_functions",
    "code_validity",
    "BracketGuard",
]

LEVELS = {
    "full": {"n_levels": 3000, "steps": 1000, "batch": 32, "lr": 3e-3},
    "fast": {"n_levels": 200, "steps": 20, "batch": 16, "lr": 3e-3},
}
LEVEL_SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 74, "dropout": 0.0}
REFINE = {
    "full": {"rounds": 3, "samples": 1000, "steps": 200, "lr": 1e-3},
    "fast": {"rounds": 1, "samples": 32, "steps": 5, "lr": 1e-3},
}
CODE = {
    "full": {"chars": None, "steps": 6000, "batch": 16, "lr": 2e-3},
    "fast": {"chars": 20_000, "steps": 12, "batch": 8, "lr": 3e-3},
}
REFINE_CODE = {  # expert iteration for the code GPT: rounds, samples per prompt, steps per round
    "full": {"rounds": 2, "samples": 16, "steps": 300, "lr": 3e-4, "temperature": 0.5, "prompts": None},
    "fast": {"rounds": 1, "samples": 2, "steps": 3, "lr": 3e-4, "temperature": 0.5, "prompts": 4},
}
CODE_SHAPE = {"n_layer": 3, "n_head": 4, "n_embd": 96, "block_size": 96, "dropout": 0.0}


def _budget(table: dict[str, dict[str, Any]], fast: bool | None) -> tuple[bool, dict[str, Any]]:
    fast = fast_mode() if fast is None else fast
    return fast, table["fast" if fast else "full"]


def train_level_gpt(
    *, fast: bool | None = None, device: Any = None, cache: bool = True, progress: bool = False
) -> tuple[GPT, dict[str, Any]]:
    """The level GPT; returns (model in eval mode, info with ``levels``, ``tokenizer``, ``history``).

    Every level has the same number of tokens, so each training example is one whole level
    (inputs ``< ... /`` and targets shifted by one): the positions of the GPT then line up with
    the rows and columns of the grid, which a stream of random windows would not give it.
    """
    fast, b = _budget(LEVELS, fast)
    cfg = LevelConfig()
    levels = generate_levels(b["n_levels"], cfg, seed=0)
    tok = LevelTokenizer()
    ids = torch.tensor([tok.encode(lv) for lv in levels])  # (N, 74)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT(GPTConfig(tok.vocab_size, **LEVEL_SHAPE)).to(device)
    loader = make_loader(ids[:, :-1], ids[:, 1:], batch_size=b["batch"], generator=torch.Generator().manual_seed(0))
    kw = {"steps": b["steps"], "lr": b["lr"], "lr_schedule": "cosine", "progress": progress, "grad_clip": 1.0}
    if cache:
        name = "level_gpt_fast" if fast else "level_gpt"
        history = load_or_train(model, loader, name=name, key={"levels": cfg.__dict__, "n": len(levels)}, **kw)
    else:
        history = fit(model, loader, **kw)
    return model.eval(), {"levels": levels, "tokenizer": tok, "history": history, "config": cfg}


def sample_levels(
    model: GPT,
    n: int,
    *,
    temperature: float = 1.0,
    rules: bool = False,
    generator: torch.Generator | None = None,
) -> list[list[str]]:
    """``n`` levels drawn after the start token ``<`` (each decoded up to its end token ``>``).

    ``rules=True`` decodes under :meth:`~genai_lib.levels.LevelTokenizer.layout_rules` (the
    form of a level enforced, its solvability not)."""
    tok = LevelTokenizer()
    cfg = LevelConfig()
    length = cfg.height * (cfg.width + 1) + 1  # rows, row ends and the end token: 73 tokens
    dev = next(model.parameters()).device
    start = torch.full((n, 1), tok.start_id, dtype=torch.long, device=dev)
    with torch.no_grad():
        proc = tok.layout_rules(cfg.height, cfg.width) if rules else None
        out = model.generate(start, length, temperature=temperature, generator=generator, logits_processor=proc)
    return [tok.decode(row.tolist()) for row in out.cpu()]


def refine_level_gpt(
    *, fast: bool | None = None, device: Any = None, cache: bool = True, progress: bool = False
) -> tuple[GPT, dict[str, Any]]:
    """The level GPT fine-tuned on its own solvable levels: ``rounds`` rounds of expert iteration.

    Each round draws ``samples`` levels from the current model with layout rules at temperature 1
    (seed = the round), the BFS solver keeps the solvable ones (the solver acts as a reward), and
    the model trains ``steps`` more steps on those alone. Round ``k`` is cached as
    ``level_gpt_refined<k>``. Returns (model, info with ``kept``: per round, the fraction of
    samples the solver kept; ``levels``: the original training levels).
    """
    fast, b = _budget(REFINE, fast)
    model, info = train_level_gpt(fast=fast, device=device, cache=cache, progress=progress)
    tok, kept_frac = info["tokenizer"], []
    for k in range(1, b["rounds"] + 1):
        g = torch.Generator().manual_seed(k)
        drawn = sample_levels(model, b["samples"], rules=True, generator=g)
        kept = [lv for lv in drawn if solve(lv) is not None]
        kept_frac.append(len(kept) / len(drawn))
        ids = torch.tensor([tok.encode(lv) for lv in kept])
        loader = make_loader(ids[:, :-1], ids[:, 1:], batch_size=32, generator=torch.Generator().manual_seed(k))
        kw = {"steps": b["steps"], "lr": b["lr"], "lr_schedule": "cosine", "progress": progress, "grad_clip": 1.0}
        model.train()
        if cache:
            name = f"level_gpt_refined{k}{'_fast' if fast else ''}"
            load_or_train(model, loader, name=name, key={"round": k, "kept": len(kept), "v": 2}, **kw)
        else:
            fit(model, loader, **kw)
        model.eval()
    return model, {**info, "kept": kept_frac}


def code_tokenizer(text: str) -> CharTokenizer:
    """Characters of the code corpus (plus printable ASCII, so any prompt encodes)."""
    return CharTokenizer.from_text(text + "".join(chr(i) for i in range(32, 127)) + "\n")


def train_code_gpt(
    *, fast: bool | None = None, device: Any = None, cache: bool = True, progress: bool = False
) -> tuple[GPT, dict[str, Any]]:
    """The code GPT; returns (model in eval mode, info with ``tokenizer``, ``chars``, ``history``)."""
    fast, b = _budget(CODE, fast)
    text = load_code_corpus(max_chars=b["chars"], functions=True)
    key = {"corpus": len(text), "functions": True, "v": 2}
    tok = code_tokenizer(text)
    ids = tok.encode(text, as_tensor=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT(GPTConfig(tok.vocab_size, pos="rope", **CODE_SHAPE)).to(device)
    history = train_gpt(
        model, ids, steps=b["steps"], batch_size=b["batch"], lr=b["lr"], warmup=min(100, b["steps"] // 5),
        generator=torch.Generator().manual_seed(0), progress=progress, log_every=max(1, b["steps"] // 50),
        name=("code_gpt_fast" if fast else "code_gpt") if cache else None, key=key,
    )  # fmt: skip
    return model.eval(), {"tokenizer": tok, "chars": len(text), "history": history}


def refine_code_gpt(
    *, fast: bool | None = None, device: Any = None, cache: bool = True, progress: bool = False
) -> tuple[GPT, dict[str, Any]]:
    """The code GPT fine-tuned on its own functions that compile: ``rounds`` rounds of expert
    iteration, the idea of :func:`refine_level_gpt` with Python's compiler as the judge.

    Each round completes every prompt of :func:`~genai_lib.code_corpus.docstring_prompts` (the
    corpus's own signatures and docstring first lines; the evaluation :data:`PROMPTS` are left
    out) ``samples`` times at ``temperature`` (seed = the round), keeps the distinct completions
    that parse, have a body and compile, and trains ``steps`` more steps of chapter 8's recipe on
    those alone. Round ``k`` is cached as ``code_gpt_refined<k>``. Returns (model, the info of
    :func:`train_code_gpt` with ``kept``: per round, the fraction of completions the compiler
    kept, and ``kept_chars``: the mean length of the distinct ones in characters). A round in
    which nothing compiles trains nothing (the fast-mode model of a few steps writes no function).
    """
    fast, b = _budget(REFINE_CODE, fast)
    model, info = train_code_gpt(fast=fast, device=device, cache=cache, progress=progress)
    tok = info["tokenizer"]
    prompts = docstring_prompts()[: b["prompts"]]
    kept_frac, kept_chars = [], []
    for k in range(1, b["rounds"] + 1):
        g = torch.Generator().manual_seed(k)
        drawn = [
            src
            for prompt in prompts
            for src in complete_functions(model, tok, prompt, b["samples"], temperature=b["temperature"], generator=g)
        ]
        good = [s for s in drawn if parses(s) and has_body(s) and compiles(s)]
        kept = list(dict.fromkeys(good))
        kept_frac.append(len(good) / len(drawn))
        kept_chars.append(sum(map(len, kept)) / max(1, len(kept)))
        if not kept:  # a model too young to write one function (fast mode): nothing to learn from
            continue
        ids = tok.encode("\n\n\n".join(kept) + "\n\n\n", as_tensor=True)
        model.train()
        train_gpt(
            model, ids, steps=b["steps"], batch_size=CODE["fast" if fast else "full"]["batch"], lr=b["lr"],
            min_lr=b["lr"] / 10, warmup=min(20, b["steps"] // 5), generator=torch.Generator().manual_seed(k),
            progress=progress, log_every=max(1, b["steps"] // 20),
            name=f"code_gpt_refined{k}{'_fast' if fast else ''}" if cache else None,
            key={"round": k, "kept": len(kept), "v": 1},
        )  # fmt: skip
        model.eval()
    return model, {**info, "kept": kept_frac, "kept_chars": kept_chars}


class BracketGuard:
    """Constrained decoding for the code GPT: a logits processor that forbids, at each step, the
    characters the sampled text so far makes a syntax error for sure, in the spirit of PICARD
    (Scholak et al. 2021, which rejects every token an incremental parser refuses), reduced to
    two rules: a closing bracket that matches no open one, and a line break inside a one-line
    string. Everything else is sampled from the model as it is (the state is
    :func:`genai_lib.code_corpus.scan_brackets` of each row's text)."""

    def __init__(self, tok: CharTokenizer) -> None:
        if not isinstance(tok, CharTokenizer):
            raise TypeError(f"tok must be a CharTokenizer, got {type(tok).__name__}")
        self.tok = tok
        self.closers = {c: tok.stoi[c] for c in CLOSERS if c in tok.stoi}
        self.newline = tok.stoi.get("\n")

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        for b, row in enumerate(ids.tolist()):
            stack, quote = scan_brackets(self.tok.decode(row))
            if quote is None:
                for c, j in self.closers.items():
                    if not stack or stack[-1] != CLOSERS[c]:
                        logits[b, j] = float("-inf")
            elif len(quote) == 1 and self.newline is not None:
                logits[b, self.newline] = float("-inf")
        return logits


def complete_functions(
    model: GPT,
    tok: CharTokenizer,
    prompt: str,
    n: int,
    *,
    temperature: float = 0.5,
    max_new: int = 100,
    generator: torch.Generator | None = None,
    constrained: bool = False,
) -> list[str]:
    """``n`` functions: the prompt continued by ``max_new`` sampled characters, cut at the body's
    end; ``constrained=True`` samples under :class:`BracketGuard`."""
    if not isinstance(constrained, bool):
        raise TypeError(f"constrained must be a bool, got {type(constrained).__name__}")
    dev = next(model.parameters()).device
    ids = tok.encode(prompt, as_tensor=True)[None].repeat(n, 1).to(dev)
    guard = BracketGuard(tok) if constrained else None
    with torch.no_grad():
        out = model.generate(ids, max_new, temperature=temperature, generator=generator, logits_processor=guard)
    return [extract_function(prompt, tok.decode(row[ids.shape[1] :].tolist())) for row in out.cpu()]


def code_validity(
    model: GPT,
    tok: CharTokenizer,
    *,
    temperatures: Sequence[float] = (0.2, 0.5, 0.8, 1.0, 1.3),
    n: int = 16,
    seed: int = 0,
    constrained: bool = False,
) -> dict[float, dict[str, Any]]:
    """For each temperature: the fractions of completions (``n`` per prompt of
    :data:`~genai_lib.code_corpus.PROMPTS`) that parse, compile and pass, the fraction of them
    that are distinct (``distinct``: a model that writes one function everywhere scores 1/n per
    prompt), and a few examples.

    A function counts as parsed only if its body holds a statement besides the prompt's
    docstring (a docstring alone is valid Python, and would reward writing nothing).
    ``constrained=True``: sampled under :class:`BracketGuard`."""
    out = {}
    for t in temperatures:
        g = torch.Generator().manual_seed(seed)
        srcs, jobs = [], []
        for name, prompt, cases in PROMPTS:
            for src in complete_functions(model, tok, prompt, n, temperature=t, generator=g, constrained=constrained):
                srcs.append(src)
                jobs.append((src, name, cases))
        ok_parse = [parses(s) and has_body(s) for s in srcs]
        ok_compile = [p and compiles(s) for p, s in zip(ok_parse, srcs, strict=True)]
        passed = property_checks([j for j, c in zip(jobs, ok_compile, strict=True) if c])
        out[t] = {
            "parse": sum(ok_parse) / len(srcs),
            "compile": sum(ok_compile) / len(srcs),
            "pass": sum(passed) / len(srcs),
            "distinct": len(set(srcs)) / len(srcs),
            "examples": srcs[:: max(1, n)][: len(PROMPTS)],
        }
    return out
