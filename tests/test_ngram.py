"""Tests for genai_lib.models.ngram: counts, smoothing, normalisation, sampling."""

from __future__ import annotations

import itertools

import pytest
import torch

from genai_lib.models.ngram import NGram, NGramConfig

IDS = torch.tensor([0, 1, 0, 1, 2])


def test_add_k_pinned():
    m = NGram(NGramConfig(order=2, vocab_size=3, smoothing="add_k", k=1.0)).fit(IDS)
    # c(0,1) = 2, c(0 .) = 2: (2 + 1) / (2 + 3)
    torch.testing.assert_close(m.next_distribution([0]), torch.tensor([1 / 5, 3 / 5, 1 / 5], dtype=torch.float64))
    # first token uses the unigram level: (c(0) + 1) / (5 + 3)
    assert float(m.log_prob(IDS)[0].exp()) == pytest.approx(3 / 8)
    assert m.num_ngrams == 3 + 3  # unigrams {0,1,2}, bigrams {01,10,12}


def test_witten_bell_pinned():
    m = NGram(NGramConfig(order=1, vocab_size=4, smoothing="interpolated")).fit(IDS)
    # p(w) = (c(w) + N1+ / V) / (N + N1+), N = 5 tokens, N1+ = 3 distinct
    want = torch.tensor([2 + 0.75, 2 + 0.75, 1 + 0.75, 0 + 0.75], dtype=torch.float64) / 8
    torch.testing.assert_close(m.next_distribution(), want)
    m2 = NGram(NGramConfig(order=2, vocab_size=4, smoothing="interpolated")).fit(IDS)
    # after 0: c(0,1) = 2, c(0 .) = 2, N1+(0 .) = 1 -> (2 + 1 * p1(1)) / 3
    assert float(m2.next_distribution([0])[1]) == pytest.approx((2 + want[1].item()) / 3)
    torch.testing.assert_close(m2.next_distribution([3]), want)  # unseen context: back off


@pytest.mark.parametrize("smoothing", ["add_k", "interpolated"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one(smoothing, order):
    ids = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(order))  # token 3 never seen
    m = NGram(NGramConfig(order=order, vocab_size=4, smoothing=smoothing, k=0.5)).fit(ids)
    for ctx in ([], [1], [3, 3, 3], ids[:10].tolist()):
        p = m.next_distribution(ctx)
        assert p.shape == (4,) and bool((p > 0).all())
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    # the chain rule: probabilities of all sequences of length 3 sum to 1 (uses log_prob)
    seqs = torch.tensor(list(itertools.product(range(4), repeat=3)))
    total = sum(float(m.log_prob(s).sum().exp()) for s in seqs)
    assert total == pytest.approx(1.0, abs=1e-9)
    # next_distribution agrees with log_prob at a position with full context
    s = ids[:order]
    assert float(m.log_prob(s)[-1].exp()) == pytest.approx(float(m.next_distribution(s[:-1])[s[-1]]))


def test_higher_order_learns_a_periodic_text():
    ids = torch.tensor([0, 1, 2, 1] * 50)  # after "1" the next token depends on the one before
    nll = [NGram(NGramConfig(order=n, vocab_size=3)).fit(ids).nll(ids) for n in (1, 2, 3)]
    assert nll[0] > nll[1] > nll[2]
    assert nll[2] < 0.1  # order 3 predicts almost perfectly
    m = NGram(NGramConfig(order=3, vocab_size=3)).fit(ids)
    assert m.perplexity(ids) == pytest.approx(torch.tensor(m.nll(ids)).exp().item())
    out = m.sample(8, prompt=[0, 1], top_k=1)
    assert out.tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]


def test_sample_determinism_and_range():
    ids = torch.randint(0, 7, (500,), generator=torch.Generator().manual_seed(0))
    m = NGram(NGramConfig(order=3, vocab_size=7, smoothing="add_k", k=0.1)).fit(ids)
    a = m.sample(30, generator=torch.Generator().manual_seed(5))
    b = m.sample(30, generator=torch.Generator().manual_seed(5))
    c = m.sample(30, generator=torch.Generator().manual_seed(6))
    assert a.shape == (30,) and torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 7
    assert m.sample(0).numel() == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"order": 0, "vocab_size": 5}, ValueError, "order must be > 0"),
        ({"order": 2, "vocab_size": 0}, ValueError, "vocab_size must be > 0"),
        ({"order": 2, "vocab_size": 5, "smoothing": "kneser"}, ValueError, "smoothing must be one of"),
        ({"order": 2, "vocab_size": 5, "k": 0.0}, ValueError, "k must be > 0"),
        ({"order": 2.0, "vocab_size": 5}, TypeError, "order must be an int"),
        ({"order": 12, "vocab_size": 5000}, ValueError, "too large"),
    ],
)
def test_bad_configs(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        NGramConfig(**kwargs)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.fit(torch.tensor([], dtype=torch.long)), ValueError, "empty"),
        (lambda m: m.fit(torch.tensor([0, 5])), ValueError, "outside the vocabulary"),
        (lambda m: m.fit(torch.tensor([-1, 2])), ValueError, "outside the vocabulary"),
        (lambda m: m.fit(torch.tensor([0.0, 1.0])), TypeError, "integer"),
        (lambda m: m.nll(torch.tensor([0, 1])), RuntimeError, "fit"),
        (lambda m: m.fit(IDS).next_distribution([9]), ValueError, "outside the vocabulary"),
        (lambda m: m.fit(IDS).sample(3, temperature=0), ValueError, "temperature"),
        (lambda m: m.fit(IDS).sample(3, top_p=1.5), ValueError, "top_p"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(NGram(NGramConfig(order=2, vocab_size=5)))
