"""Tests for genai_lib.text: corpora, tokenizers, batching and LM metrics."""

from __future__ import annotations

import math
import pydoc_data.topics

import pytest
import torch

from genai_lib.text import (
    BPETokenizer,
    CharTokenizer,
    TokenStream,
    batch_windows,
    bits_per_char,
    bpe_merges,
    bptt_batches,
    check_token_ids,
    evaluate_lm,
    load_corpus,
    perplexity,
    text_loader,
)

TRICKY = "héllo wörld 😀👩\u200d💻 中文字符，标点。\n\ttabs  and   spaces\r\n\x00\x1f end"


# --------------------------------------------------------------------------- corpora


def test_english_corpus_is_pydoc_topics_split_90_10():
    full = "".join(pydoc_data.topics.topics.values())
    assert load_corpus("english", "all") == full
    train, val = load_corpus("english", "train"), load_corpus("english", "val")
    assert train + val == full
    assert len(train) == int(0.9 * len(full))


def test_chinese_corpus_is_clean_text_and_split():
    full = load_corpus("chinese")
    assert 400_000 < len(full) < 700_000
    assert "/" not in full[:20_000] and "[" not in full and "]nt" not in full  # tags stripped
    assert full.startswith("迈向充满希望的新世纪")
    assert sum("\u4e00" <= c <= "\u9fff" for c in full[:1000]) > 700  # mostly CJK characters
    assert load_corpus("chinese", "train") + load_corpus("chinese", "val") == full


@pytest.mark.parametrize(("name", "split", "match"), [("klingon", "all", "corpus name"), ("english", "test", "split")])
def test_load_corpus_bad_inputs(name, split, match):
    with pytest.raises(ValueError, match=match):
        load_corpus(name, split)


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


# --------------------------------------------------------------------------- batching


def test_batch_windows_are_shifted_slices():
    ids = torch.arange(100)
    x, y = batch_windows(ids, 8, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    torch.testing.assert_close(y, x + 1)  # y is x shifted by one token
    torch.testing.assert_close(x, x[:, :1] + torch.arange(8))  # each row is a contiguous slice
    assert int(y.max()) <= 99
    x2, _ = batch_windows(ids, 8, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, x2)


def test_token_stream_resumes_exactly():
    ids = torch.arange(50)
    loader = text_loader(ids, 4, 3, steps_per_epoch=6, generator=torch.Generator().manual_seed(1))
    assert isinstance(loader, TokenStream) and len(loader) == 6
    loader.set_epoch(2)
    full = list(loader)
    loader.set_epoch(2)
    tail = list(loader.iter_from(4))
    assert len(full) == 6 and len(tail) == 2
    for (a, b), (c, d) in zip(full[4:], tail, strict=True):
        torch.testing.assert_close(a, c)
        torch.testing.assert_close(b, d)
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader))[0], full[0][0])  # a new epoch, new windows


def test_bptt_batches_continue_each_other():
    ids = torch.arange(101)
    batches = list(bptt_batches(ids, 5, 4))  # rows of 25 -> 5 windows
    assert len(batches) == 5
    for (x0, y0), (x1, _) in zip(batches[:-1], batches[1:], strict=True):
        torch.testing.assert_close(x1[:, 0], y0[:, -1])  # row b continues where it stopped
        torch.testing.assert_close(y0, x0 + 1)
    torch.testing.assert_close(batches[0][0][:, 0], torch.tensor([0, 25, 50, 75]))


@pytest.mark.parametrize(
    ("ids", "block", "batch", "exc", "match"),
    [
        (torch.arange(5), 8, 2, ValueError, "at least 9"),
        (torch.arange(0), 1, 1, ValueError, "at least 2"),
        (torch.zeros(20), 4, 2, ValueError, "integer"),
        (torch.zeros(2, 20, dtype=torch.long), 4, 2, ValueError, "1-D"),
        ([1, 2, 3], 1, 1, TypeError, "torch.Tensor"),
        (torch.arange(20), 0, 2, ValueError, "block_size"),
    ],
)
def test_batching_bad_inputs(ids, block, batch, exc, match):
    with pytest.raises(exc, match=match):
        batch_windows(ids, block, batch)


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


# --------------------------------------------------------------------------- metrics


class _ConstantLM(torch.nn.Module):
    """Loss = mean of the targets: lets evaluate_lm's averaging be checked by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def loss(self, batch):
        assert not self.training  # evaluate_lm switches to eval mode
        return batch[1].float().mean() + self.w, {}


def test_evaluate_lm_averages_and_restores_mode():
    model = _ConstantLM()
    ids = torch.arange(41)  # 10 windows of 4: targets 1..40, mean 20.5
    assert evaluate_lm(model, ids, 4, 3, n_batches=None) == pytest.approx(20.5)
    assert model.training
    a = evaluate_lm(model, ids, 4, 3, n_batches=5, generator=torch.Generator().manual_seed(0))
    b = evaluate_lm(model, ids, 4, 3, n_batches=5, generator=torch.Generator().manual_seed(0))
    assert a == b and 2.5 <= a <= 38.5


def test_bits_and_perplexity_closed_form():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(4), chars_per_token=2.0) == pytest.approx(1.0)
    assert perplexity(math.log(5)) == pytest.approx(5.0)
    assert perplexity(0.0) == 1.0
