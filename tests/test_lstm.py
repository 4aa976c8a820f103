"""Tests for genai_lib.models.lstm: every-position training, state carrying, TBPTT, generation."""

from __future__ import annotations

import pytest
import torch

from genai_lib.models.lstm import LSTMLM, LSTMConfig
from genai_lib.recipes.language import train_lstm

CFG = LSTMConfig(vocab_size=9, n_embd=8, hidden=16, n_layers=2)


def tiny(cfg: LSTMConfig = CFG, seed: int = 0) -> LSTMLM:
    torch.manual_seed(seed)
    return LSTMLM(cfg)


def ids(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 9, (b, t), generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_loss_and_gradients():
    model = tiny()
    logits, loss, (h, c) = model(ids(3, 7), ids(3, 7, seed=1))
    assert logits.shape == (3, 7, 9)  # a prediction at every position, not only the last
    assert h.shape == c.shape == (2, 3, 16)
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert model(ids(3, 7))[1] is None


def test_state_carrying_equals_one_long_pass():
    model = tiny().eval()
    x = ids(2, 12)
    full, _, _ = model(x)
    first, _, state = model(x[:, :5])
    second, _, _ = model(x[:, 5:], state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full, rtol=1e-5, atol=1e-6)
    fresh, _, _ = model(x[:, 5:])  # without the state the second half differs
    assert (fresh - second).abs().max() > 1e-4


@pytest.mark.parametrize(("n_embd", "hidden"), [(16, 16), (8, 16)])
def test_weight_tying(n_embd, hidden):
    model = tiny(LSTMConfig(vocab_size=9, n_embd=n_embd, hidden=hidden, n_layers=1, tie_weights=True))
    assert model.head.weight is model.embed.weight
    assert isinstance(model.proj, torch.nn.Linear) == (hidden != n_embd)
    assert model(ids(2, 5))[0].shape == (2, 5, 9)
    untied = tiny(LSTMConfig(vocab_size=9, n_embd=n_embd, hidden=hidden, n_layers=1))
    assert (
        sum(p.numel() for p in model.parameters())
        < sum(p.numel() for p in untied.parameters()) + hidden * n_embd + n_embd
    )


def test_overfit_one_batch():
    model = tiny()
    x = ids(4, 12)
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss((x, y))[0].item()
    for _ in range(60):
        loss, _ = model.loss((x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert loss.item() < first / 2


def test_generate_greedy_matches_recomputation_and_determinism():
    model = tiny()
    prompt = ids(2, 3)
    out = model.generate(prompt, 6, greedy=True)
    assert out.shape == (2, 9) and torch.equal(out[:, :3], prompt)
    for t in range(3, 9):  # each greedy token is the argmax of a full pass over the prefix
        assert torch.equal(model(out[:, :t])[0][:, -1].argmax(-1), out[:, t])
    a = model.sample(15, prompt=torch.tensor([1]), generator=torch.Generator().manual_seed(0), top_p=0.9)
    b = model.sample(15, prompt=torch.tensor([1]), generator=torch.Generator().manual_seed(0), top_p=0.9)
    assert a.shape == (16,) and torch.equal(a, b)
    assert model.training


def test_train_lstm_learns_long_period():
    # period 12 with repeated tokens: the next token needs context longer than the window of 4,
    # which only a state carried across windows can provide
    pattern = [0, 1, 2, 3, 0, 1, 2, 4, 0, 1, 2, 5]
    stream = torch.tensor(pattern * 60)
    model = tiny(LSTMConfig(vocab_size=9, n_embd=8, hidden=32, n_layers=1))
    hist = train_lstm(model, stream, steps=150, block_size=4, batch_size=8, lr=2e-2, log_every=25)
    assert len(hist.logs["loss"]) == 150 and hist.seconds > 0
    assert sum(hist.logs["loss"][-10:]) / 10 < 0.3
    out = model.generate(torch.tensor([pattern * 2]), 12, greedy=True)
    assert out[0, 24:].tolist() == pattern


def test_train_lstm_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    stream = torch.tensor([0, 1, 2, 3] * 40)
    model = tiny()
    first = train_lstm(model, stream, steps=6, block_size=4, batch_size=4, name="lstm_t", key="v1")
    assert not first.from_cache and list(tmp_path.rglob("lstm_t.pt"))
    again = tiny(seed=1)
    second = train_lstm(again, stream, steps=6, block_size=4, batch_size=4, name="lstm_t", key="v1")
    assert second.from_cache and second.logs["loss"] == first.logs["loss"]
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    other = train_lstm(tiny(seed=1), stream, steps=6, block_size=4, batch_size=4, name="lstm_t", key="v2")
    assert not other.from_cache  # a different key retrains


def test_train_lstm_resumes_with_the_carried_state(tmp_path):
    """The TBPTT state is part of the checkpoint: a resumed run equals the uninterrupted one."""
    stream = torch.tensor([0, 1, 2, 3, 0, 1, 2, 4] * 30)
    straight = tiny()
    full = train_lstm(straight, stream, steps=9, block_size=4, batch_size=4, lr=1e-2)

    class Stop(Exception):
        pass

    def stop(step, history):
        if step == 4:
            raise Stop

    ck = tmp_path / "lstm.pt"
    with pytest.raises(Stop):  # 14 windows per pass: stopped mid-pass, with a carried state
        train_lstm(
            tiny(),
            stream,
            steps=9,
            block_size=4,
            batch_size=4,
            lr=1e-2,
            checkpoint=ck,
            checkpoint_every=3,
            log_every=1,
            callbacks=[stop],
        )
    resumed = tiny(seed=5)
    again = train_lstm(resumed, stream, steps=9, block_size=4, batch_size=4, lr=1e-2, checkpoint=ck)
    assert again.logs["loss"] == full.logs["loss"]
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size must be > 0"),
        ({"hidden": 2.5}, TypeError, "hidden must be an int"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"tie_weights": 1}, TypeError, "tie_weights must be a bool"),
    ],
)
def test_bad_configs(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LSTMConfig(**{"vocab_size": 9, **kwargs})


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m(torch.tensor([[0, 9]])), ValueError, r"outside the vocabulary \[0, 8\]"),
        (lambda m: m(torch.tensor([[-2, 1]])), ValueError, "outside the vocabulary"),
        (lambda m: m(torch.zeros(1, 3)), TypeError, "integer"),
        (lambda m: m(ids(2, 3), state=(torch.zeros(2, 1, 16), torch.zeros(2, 1, 16))), ValueError, "state must be"),
        (lambda m: m(ids(2, 3), ids(2, 4)), ValueError, "targets must have the shape"),
        (lambda m: m.generate(ids(1, 2), 3, temperature=-1.0), ValueError, "temperature"),
        (lambda m: m.generate(ids(1, 2), 3, top_p=0.0), ValueError, "top_p"),
        (lambda m: train_lstm(m, torch.tensor([], dtype=torch.long), steps=1), ValueError, "empty"),
        (lambda m: train_lstm(m, torch.arange(5), steps=1, block_size=8, batch_size=1), ValueError, "at least 9"),
        (lambda m: LSTMLM(CFG.__dict__), TypeError, "LSTMConfig"),
        (lambda m: train_lstm(m, torch.arange(9), steps=1, block_size=2, batch_size=1, name="a/b"), ValueError, "name"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tiny())
