"""Tests for genai_lib.text: corpora, batching and LM metrics (tokenizers: test_tokenizer.py)."""

from __future__ import annotations

import math
import pydoc_data.topics

import pytest
import torch

from genai_lib.text import (
    TokenStream,
    batch_windows,
    bits_per_char,
    bptt_batches,
    evaluate_lm,
    load_corpus,
    perplexity,
    sliding_nats,
    text_loader,
)

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


class _OneHotLM(torch.nn.Module):
    """logits(x)[b, t] = 10 * onehot(x[b, t] + 1): puts almost all mass on "the next id"."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor):
        return (self.scale * torch.nn.functional.one_hot((x + 1) % self.vocab, self.vocab).float(), None)


def test_sliding_nats_scores_second_halves_exactly():
    vocab = 7
    model = _OneHotLM(vocab)
    ids = torch.arange(50) % vocab  # every next id is x + 1 (mod 7): each token costs the same
    z = math.exp(10) + vocab - 1  # softmax normaliser of the logits (10, 0, ..., 0)
    per_token = math.log(z) - 10  # -log p(expected next id)
    assert sliding_nats(model, ids, 8, batch_size=3) == pytest.approx(per_token, rel=1e-3)
    assert model.training  # mode restored
    wrong = ids.clone()
    wrong[30] = (wrong[30] + 3) % vocab  # one surprising token: scored once (windows overlap, halves do not)
    n_scored = len(range(0, 50 - 8, 4)) * 4
    cost = math.log(z)  # -log p(any other id)
    # ids[30] is the target at position 30 (surprising) and the input at 30 (its successor is then surprising too)
    surprised = sliding_nats(model, wrong, 8, batch_size=3) * n_scored
    assert surprised == pytest.approx((n_scored - 2) * per_token + 2 * cost, rel=1e-4)
    with pytest.raises(ValueError, match="block_size"):
        sliding_nats(model, ids, 1)


def test_bits_and_perplexity_closed_form():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(4), chars_per_token=2.0) == pytest.approx(1.0)
    assert perplexity(math.log(5)) == pytest.approx(5.0)
    assert perplexity(0.0) == 1.0
