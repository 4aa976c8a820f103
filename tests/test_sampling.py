"""Tests for genai_lib.sampling on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from genai_lib.sampling import apply_temperature, greedy, sample_next, top_k_filter, top_p_filter

INF = float("-inf")


def test_greedy_and_temperature_pinned():
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    assert greedy(logits).tolist() == [1, 2]
    torch.testing.assert_close(apply_temperature(logits, 2.0), logits / 2)
    # temperature flattens (tau > 1) or sharpens (tau < 1) the softmax
    p1 = torch.softmax(apply_temperature(logits[0], 1.0), -1)
    p_hot = torch.softmax(apply_temperature(logits[0], 10.0), -1)
    p_cold = torch.softmax(apply_temperature(logits[0], 0.1), -1)
    assert p_cold.max() > p1.max() > p_hot.max()


def test_top_k_filter_pinned():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.0])
    out = top_k_filter(logits, 2)
    torch.testing.assert_close(out, torch.tensor([INF, 3.0, 2.0, INF]))
    torch.testing.assert_close(top_k_filter(logits, 1), torch.tensor([INF, 3.0, INF, INF]))
    torch.testing.assert_close(top_k_filter(logits, 10), logits)  # k >= V keeps everything
    assert logits.tolist() == [1.0, 3.0, 2.0, 0.0]  # input untouched
    rows = top_k_filter(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), 1)
    assert torch.isfinite(rows).tolist() == [[False, False, True], [True, False, False]]


@pytest.mark.parametrize(
    ("p", "kept"),
    [
        (1e-9, [True, False, False, False]),  # the top token is always kept
        (0.5, [True, False, False, False]),  # 0.5 reached by the top token alone
        (0.6, [True, True, False, False]),
        (0.79, [True, True, False, False]),  # 0.5 + 0.3 = 0.8 reaches p
        (0.81, [True, True, True, False]),
        (1.0, [True, True, True, True]),
    ],
)
def test_top_p_filter_pinned(p, kept):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    order = torch.tensor([2, 0, 3, 1])  # shuffle so the filter must sort and unsort
    logits = probs.log()[order]
    out = top_p_filter(logits, p)
    assert torch.isfinite(out).tolist() == [kept[i] for i in order.tolist()]
    torch.testing.assert_close(out[torch.isfinite(out)], logits[torch.isfinite(out)])


def test_sample_next_matches_softmax_frequencies():
    logits = torch.tensor([0.0, math.log(2.0), math.log(5.0)])  # p = 1/8, 2/8, 5/8
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(40_000, 3), generator=g)
    assert draws.shape == (40_000,)
    freq = torch.bincount(draws, minlength=3).double() / 40_000
    torch.testing.assert_close(freq, torch.tensor([1 / 8, 2 / 8, 5 / 8], dtype=torch.float64), atol=0.01, rtol=0)


def test_sample_next_filters_and_determinism():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(3))
    a = sample_next(logits, temperature=0.8, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(1))
    b = sample_next(logits, temperature=0.8, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    top5 = logits.topk(5, dim=-1).indices
    assert all(int(a[i]) in top5[i].tolist() for i in range(6))
    torch.testing.assert_close(sample_next(logits, top_k=1), greedy(logits))  # top-1 is greedy
    torch.testing.assert_close(sample_next(logits, top_p=1e-6), greedy(logits))
    assert sample_next(torch.randn(2, 3, 7)).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"temperature": 0.0}, ValueError, "temperature must be .* > 0.*greedy"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"top_k": 2.5}, TypeError, "top_k must be an int"),
        ({"top_p": 0.0}, ValueError, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, ValueError, r"top_p must be in \(0, 1\]"),
        ({"top_p": -0.1}, ValueError, r"top_p must be in \(0, 1\]"),
    ],
)
def test_sample_next_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sample_next(torch.zeros(4), **kwargs)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: top_k_filter(torch.zeros(3), 0), ValueError, "top_k"),
        (lambda: top_p_filter(torch.zeros(3), 2.0), ValueError, "top_p"),
        (lambda: apply_temperature(torch.zeros(3), 0), ValueError, "temperature"),
        (lambda: greedy(torch.tensor([1, 2])), TypeError, "floating-point"),
        (lambda: greedy([1.0, 2.0]), TypeError, "torch.Tensor"),
        (lambda: greedy(torch.zeros(2, 0)), ValueError, "V >= 1"),
    ],
)
def test_filters_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_choose_next_greedy_and_sampled():
    from genai_lib.sampling import choose_next

    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 0.0]])
    assert choose_next(logits, greedy=True).tolist() == [[1], [0]]
    a = choose_next(logits, temperature=2.0, generator=torch.Generator().manual_seed(3))
    b = sample_next(logits, temperature=2.0, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 1) and a[:, 0].tolist() == b.tolist()


def test_eval_mode_restores_the_mode_even_after_an_error():
    from genai_lib.utils import eval_mode

    model = torch.nn.Dropout(0.5)
    with eval_mode(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training


def test_check_generation_skips_sampling_checks_when_greedy():
    from genai_lib.sampling import check_generation

    check_generation(0, greedy=True, temperature=0.0, top_k=0, top_p=2.0)  # ignored when greedy
    with pytest.raises(ValueError, match="temperature"):
        check_generation(3, greedy=False, temperature=0.0, top_k=None, top_p=None)
    with pytest.raises(ValueError, match="max_new_tokens"):
        check_generation(-1, greedy=True, temperature=1.0, top_k=None, top_p=None)
