import math

import pytest
import torch

from genai_lib import train, train_cache, utils
from genai_lib.data import make_loader
from tests._tiny import Tiny, TinyConfig, tiny_data


def _loader(seed=0, batch_size=16):
    x, y = tiny_data()
    return make_loader(x, y, batch_size=batch_size, generator=torch.Generator().manual_seed(seed))


def test_fit_lowers_loss_and_records_history():
    torch.manual_seed(0)
    model = Tiny(TinyConfig())
    hist = train.fit(model, _loader(), epochs=30, lr=1e-2, progress=False)
    assert len(hist.step) == 30 * 4 and hist.step[-1] == 120
    assert hist.last("loss") < 0.5 * hist.logs["loss"][0]
    assert "mae" in hist.logs and len(hist.logs["mae"]) == 120
    assert hist.seconds > 0


def test_fit_validation_and_grad_clip():
    torch.manual_seed(0)
    model = Tiny(TinyConfig())
    x, y = tiny_data(32, seed=5)
    val = make_loader(x, y, batch_size=8, shuffle=False)
    hist = train.fit(model, _loader(), steps=40, lr=1e-2, grad_clip=0.1, val_loader=val, val_every=20, progress=False)
    assert hist.val_step == [20, 40]
    assert len(hist.val["loss"]) == 2 and hist.val["loss"][1] < hist.val["loss"][0]


def test_lr_schedule_is_applied():
    seen = []
    model = Tiny(TinyConfig())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def cb(step, hist):
        seen.append(opt.param_groups[0]["lr"])

    train.fit(
        model,
        _loader(),
        steps=3,
        optimizer=opt,
        lr_schedule=lambda s: 1.0 / (s + 1),
        callbacks=[cb],
        log_every=1,
        progress=False,
    )
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_cosine_schedule_shape():
    f = train.cosine_schedule(10, 110, final=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(110) == pytest.approx(0.1)
    assert f(60) == pytest.approx(0.55)


def test_resume_matches_uninterrupted_run(tmp_path):
    cfg = TinyConfig(noise=0.1)  # the loss uses the global RNG: resume must restore it
    torch.manual_seed(1)
    straight = Tiny(cfg)
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    torch.manual_seed(7)
    h_full = train.fit(straight, _loader(), steps=10, lr=1e-2, progress=False)

    ckpt = tmp_path / "run.pt"
    first = Tiny(cfg)
    first.load_state_dict(init)
    torch.manual_seed(7)
    train.fit(first, _loader(), steps=6, lr=1e-2, checkpoint=ckpt, progress=False)  # stops at step 6 (mid-epoch 2)
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = Tiny(cfg)
    h_res = train.fit(resumed, _loader(), steps=10, lr=1e-2, checkpoint=ckpt, progress=False)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    assert h_res.step == h_full.step
    assert h_res.logs["loss"] == pytest.approx(h_full.logs["loss"])


def test_checkpoint_every_writes_intermediate(tmp_path):
    ckpt = tmp_path / "c.pt"
    seen = []
    model = Tiny(TinyConfig())

    def cb(step, hist):
        if ckpt.exists():
            seen.append(torch.load(ckpt, weights_only=True)["step"])

    train.fit(
        model, _loader(), steps=9, checkpoint=ckpt, checkpoint_every=4, callbacks=[cb], log_every=1, progress=False
    )
    assert 4 in seen and 8 in seen
    assert torch.load(ckpt, weights_only=True)["step"] == 9


def test_nan_loss_names_the_step():
    class Exploding(Tiny):
        def loss(self, batch):
            loss, logs = super().loss(batch)
            self.calls = getattr(self, "calls", 0) + 1
            return (loss * math.nan if self.calls == 3 else loss), logs

    with pytest.raises(train.TrainingDivergedError, match="at step 3"):
        train.fit(Exploding(TinyConfig()), _loader(), steps=10, progress=False)


def test_load_or_train_hits_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    calls = []

    def counting_fit(*a, **k):
        calls.append(1)
        return train.fit(*a, **k)

    def run(model, steps):
        return train_cache.load_or_train(
            model, _loader(), name="tiny", trainer=counting_fit, steps=steps, lr=1e-2, progress=False
        )

    torch.manual_seed(0)
    m1 = Tiny(TinyConfig())
    h1 = run(m1, 20)
    m2 = Tiny(TinyConfig())
    h2 = run(m2, 20)
    assert calls == [1] and h2.from_cache and not h1.from_cache
    assert h2.logs["loss"] == pytest.approx(h1.logs["loss"])
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v)
    # A different training budget or config is a different cache entry.
    run(Tiny(TinyConfig()), 21)
    run(Tiny(TinyConfig(hidden=4)), 21)
    assert calls == [1, 1, 1]


def test_load_or_train_retrains_on_corrupt_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GENAI_FAST", "0")
    (tmp_path / "tiny.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="corrupt"):
        hist = train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="tiny", steps=5, progress=False)
    assert not hist.from_cache and len(hist.step) == 5


def test_evaluate_weights_by_batch_size():
    model = Tiny(TinyConfig())
    x, y = tiny_data(10)
    full = train.evaluate(model, make_loader(x, y, batch_size=10, shuffle=False))
    parts = train.evaluate(model, make_loader(x, y, batch_size=3, shuffle=False))
    assert parts["loss"] == pytest.approx(full["loss"], rel=1e-5)


def test_to_device_nested():
    batch = {"a": (torch.zeros(1), [torch.ones(1)]), "b": 3}
    out = utils.to_device(batch, torch.device("cpu"))
    assert out["b"] == 3 and isinstance(out["a"], tuple) and isinstance(out["a"][1], list)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_with_bf16():
    model = Tiny(TinyConfig()).cuda()
    hist = train.fit(model, _loader(), steps=20, lr=1e-2, progress=False)
    assert math.isfinite(hist.last("loss"))
