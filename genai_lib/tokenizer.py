"""Tokenizers for the language-model chapters: characters and byte-level BPE.

Chapters 7 (language models) and 8 (Transformers and GPT) of the course.

* :class:`CharTokenizer`: one id per Unicode code point, with explicit unknown handling.
* :class:`BPETokenizer`: byte-level BPE (Sennrich et al. 2016 / GPT-2), trained locally with
  Hugging Face ``tokenizers``.
* :func:`bpe_merges`: a tiny pure-Python merge loop for teaching that reproduces the library's
  merges on ASCII text.
* :func:`check_token_ids`: the validation every language model applies to its inputs.

The corpora, batching and held-out metrics live in :mod:`genai_lib.text`.
Shape legend: N tokens, B batch, T window length, V vocabulary size.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive

__all__ = ["CharTokenizer", "BPETokenizer", "bpe_merges", "check_token_ids"]

# --------------------------------------------------------------------------- token-id checks


MAX_VOCAB = 2**20  # the largest BPE vocabulary trained here (GPT-4's has about 100k tokens)


def check_token_ids(name: str, ids: Any, vocab_size: int, *, dims: tuple[int, ...] = (1, 2)) -> torch.Tensor:
    """Validate a tensor of token ids: integer dtype, allowed rank, non-empty, in [0, vocab_size).

    Returns the ids as int64 (what embeddings and cross-entropy take): uint8/int16/int32 ids are
    converted, the obvious intent; float, bool and complex tensors are refused.
    """
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
    if ids.dtype != torch.long:
        ids = ids.long()
    lo, hi = (int(v) for v in torch.aminmax(ids))
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
        raise TypeError(f"token ids must be integers (a list, 1-D array or tensor of ints), got dtype {arr.dtype}")
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
        check_positive("min_frequency", min_frequency, allow_zero=True)
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 (the byte alphabet), got {vocab_size}")
        if vocab_size > MAX_VOCAB:  # tokenizers' native code aborts the interpreter on absurd sizes
            raise ValueError(f"vocab_size must be at most {MAX_VOCAB:,} (2**20), got {vocab_size:,}")
        if not isinstance(text, str) and not hasattr(text, "__iter__"):
            raise TypeError(f"text must be a str or an iterable of str, got {type(text).__name__}")
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(t, str) for t in texts):
            bad = next(type(t).__name__ for t in texts if not isinstance(t, str))
            raise TypeError(f"text must be a str or an iterable of str, got an item of type {bad}")
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
        arr = _as_id_array(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.vocab_size - 1}], got values in [{arr.min()}, {arr.max()}]"
            )
        return [_readable(self._tok.id_to_token(int(i))) for i in arr]


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
