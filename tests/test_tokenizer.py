"""Tests for genai_lib.tokenizer: character and byte-level BPE tokenizers, token-id checks."""

from __future__ import annotations

import pytest
import torch

from genai_lib.text import load_corpus
from genai_lib.tokenizer import BPETokenizer, CharTokenizer, bpe_merges, check_token_ids

TRICKY = "héllo wörld 😀👩\u200d💻 中文字符，标点。\n\ttabs  and   spaces\r\n\x00\x1f end"


# --------------------------------------------------------------------------- character tokenizer


def test_char_tokenizer_pinned_ids_and_roundtrip():
    tok = CharTokenizer.from_text("hello")
    assert tok.itos == ["e", "h", "l", "o", "\ufffd"]  # sorted characters, then UNK
    assert tok.vocab_size == 5 and tok.unk_id == 4
    assert tok.encode("hello") == [1, 0, 2, 2, 3]
    assert tok.decode([1, 0, 2, 2, 3]) == "hello"
    ids = tok.encode("hello", as_tensor=True)
    assert ids.dtype == torch.long and ids.tolist() == [1, 0, 2, 2, 3]
    assert tok.decode(ids) == "hello"


def test_char_tokenizer_roundtrip_any_unicode():
    tok = CharTokenizer.from_text(TRICKY)
    assert tok.decode(tok.encode(TRICKY)) == TRICKY
    assert tok.decode(tok.encode(TRICKY, as_tensor=True)) == TRICKY
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_char_tokenizer_unknown_characters():
    tok = CharTokenizer.from_text("abc")
    assert tok.encode("abz") == [0, 1, tok.unk_id]
    assert tok.decode(tok.encode("a😀")) == "a\ufffd"
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abz", errors="strict")
    strict = CharTokenizer.from_text("abc", unk=None)
    assert strict.vocab_size == 3
    with pytest.raises(ValueError, match="not in the vocabulary"):
        strict.encode("x")


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: CharTokenizer.from_text(""), ValueError, "empty"),
        (lambda: CharTokenizer.from_text(123), TypeError, "str"),
        (lambda: CharTokenizer.from_text("ab", unk="xy"), ValueError, "single character"),
        (lambda: CharTokenizer.from_text("ab").decode([0, 5]), ValueError, r"\[0, 2\]"),
        (lambda: CharTokenizer.from_text("ab").decode([-1]), ValueError, r"\[0, 2\]"),
        (lambda: CharTokenizer.from_text("ab").decode([0.5]), TypeError, "integers"),
        (lambda: CharTokenizer.from_text("ab").encode("a", errors="ignore"), ValueError, "errors"),
    ],
)
def test_char_tokenizer_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- BPE


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(load_corpus("english", "train")[:50_000], vocab_size=300)


def test_bpe_roundtrip_any_string(bpe):
    assert bpe.vocab_size == 300
    for s in (TRICKY, "", " leading and trailing ", "中文😀", "\n\n\n", "The quick brown fox."):
        ids = bpe.encode(s)
        assert bpe.decode(ids) == s
        assert bpe.decode(bpe.encode(s, as_tensor=True)) == s
    assert len(bpe.encode("the the the the")) < len("the the the the")  # merges compress


def test_bpe_teaching_loop_matches_library():
    toy = "the cat sat on the mat; the hat, the bat. aaa aaaa low lower lowest newest widest"
    mine = bpe_merges(toy, 15)
    assert mine == BPETokenizer.train(toy, 256 + 15).merges
    assert mine[0] == ("a", "a") or mine[0][0] + mine[0][1] in toy


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: BPETokenizer.train("abc", 100), ValueError, ">= 256"),
        (lambda: BPETokenizer.train("", 300), ValueError, "empty"),
        (lambda: bpe_merges("abc", -1), ValueError, ">= 0"),
    ],
)
def test_bpe_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bpe_decode_rejects_unknown_ids(bpe):
    with pytest.raises(ValueError, match="token ids"):
        bpe.decode([bpe.vocab_size])


@pytest.mark.parametrize(
    ("ids", "exc", "match"),
    [
        (torch.tensor([0, 7]), ValueError, r"outside the vocabulary \[0, 4\]"),
        (torch.tensor([-1, 2]), ValueError, "outside the vocabulary"),
        (torch.tensor([0.0]), TypeError, "integer"),
        (torch.tensor([], dtype=torch.long), ValueError, "empty"),
        ([0, 1], TypeError, "torch.Tensor"),
    ],
)
def test_check_token_ids(ids, exc, match):
    with pytest.raises(exc, match=match):
        check_token_ids("ids", ids, 5)
