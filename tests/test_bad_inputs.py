"""Table-driven bad-input tests for the core: each case must fail loudly and say what was expected."""

import io
import os
import pickle

import pytest
import torch

from genai_lib import checkpoint, train, train_cache
from genai_lib.data import make_loader
from tests._tiny import Tiny, TinyConfig, tiny_data


class _Evil:
    """A pickle payload that would run code when loaded."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/genai_pwned",))


def _good_ckpt(path):
    model = Tiny(TinyConfig())
    checkpoint.save_checkpoint(
        path, {"model": model.state_dict(), "config": checkpoint.config_dict(model.cfg), "step": 1}
    )
    return path


def _loader():
    x, y = tiny_data()
    return make_loader(x, y, batch_size=8)


def case_truncated(tmp):
    p = _good_ckpt(tmp / "t.pt")
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    checkpoint.load_checkpoint(p)


def case_garbage(tmp):
    p = tmp / "g.pt"
    p.write_bytes(b"\x00\x01garbage" * 10)
    checkpoint.load_checkpoint(p)


def case_evil_pickle(tmp):
    p = tmp / "evil.pt"
    buf = io.BytesIO()
    pickle.dump({"model": _Evil()}, buf)
    p.write_bytes(buf.getvalue())
    checkpoint.load_checkpoint(p)


def case_evil_torch_save(tmp):
    p = tmp / "evil2.pt"
    torch.save({"model": _Evil()}, p)
    checkpoint.load_checkpoint(p)


def case_config_mismatch(tmp):
    p = _good_ckpt(tmp / "m.pt")
    checkpoint.load_checkpoint(p, expect_config=TinyConfig(hidden=16))


def case_missing(tmp):
    checkpoint.load_checkpoint(tmp / "nope.pt")


def case_not_a_dict(tmp):
    p = tmp / "list.pt"
    torch.save([1, 2, 3], p)
    checkpoint.load_checkpoint(p)


def case_resume_wrong_config(tmp):
    p = _good_ckpt(tmp / "r.pt")
    train.fit(Tiny(TinyConfig(hidden=4)), _loader(), steps=2, checkpoint=p, progress=False)


CASES = [
    # (id, callable(tmp_path), exception, message fragment)
    ("truncated checkpoint", case_truncated, ValueError, "corrupt or truncated"),
    ("garbage checkpoint", case_garbage, ValueError, "corrupt or truncated|not a plain tensor"),
    ("pickle that runs code", case_evil_pickle, ValueError, "refused|corrupt"),
    ("torch.save of an object that runs code", case_evil_torch_save, ValueError, "refused"),
    ("checkpoint for another config", case_config_mismatch, ValueError, "different configuration"),
    ("missing checkpoint", case_missing, ValueError, "no checkpoint"),
    ("checkpoint that is not a dict", case_not_a_dict, ValueError, "checkpoint dict"),
    ("resume into a model of another config", case_resume_wrong_config, ValueError, "different configuration"),
    ("empty dataset", lambda t: make_loader(torch.zeros(0, 2), batch_size=2), ValueError, "empty"),
    ("zero batch size", lambda t: make_loader(torch.zeros(4, 2), batch_size=0), ValueError, "batch_size must be > 0"),
    (
        "epochs and steps both",
        lambda t: train.fit(Tiny(TinyConfig()), _loader(), epochs=1, steps=1),
        ValueError,
        "exactly one",
    ),
    ("neither epochs nor steps", lambda t: train.fit(Tiny(TinyConfig()), _loader()), ValueError, "exactly one"),
    (
        "negative learning rate",
        lambda t: train.fit(Tiny(TinyConfig()), _loader(), steps=1, lr=-1.0),
        ValueError,
        "lr must be > 0",
    ),
    ("float steps", lambda t: train.fit(Tiny(TinyConfig()), _loader(), steps=2.5), TypeError, "steps must be an int"),
    ("model without loss", lambda t: train.fit(torch.nn.Linear(2, 1), _loader(), steps=1), TypeError, "loss"),
    ("empty loader list", lambda t: train.fit(Tiny(TinyConfig()), [], steps=1), ValueError, "empty"),
    (
        "checkpoint_every without a path",
        lambda t: train.fit(Tiny(TinyConfig()), _loader(), steps=2, checkpoint_every=1),
        ValueError,
        "checkpoint path",
    ),
    (
        "bad cache name",
        lambda t: train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="a/b", steps=1),
        ValueError,
        "name",
    ),
    ("config of the wrong type", lambda t: checkpoint.config_dict(42), TypeError, "dataclass"),
    ("state that is not a dict", lambda t: checkpoint.save_checkpoint(t / "x.pt", [1]), TypeError, "dict"),
]


@pytest.mark.parametrize("name, fn, exc, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(tmp_path, name, fn, exc, match):
    with pytest.raises(exc, match=match):
        fn(tmp_path)
    assert not os.path.exists("/tmp/genai_pwned"), "a malicious pickle ran code"


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = _good_ckpt(tmp_path / "keep.pt")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(path, {"model": {}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]  # no temporary file left behind


def test_checkpoint_round_trip(tmp_path):
    model = Tiny(TinyConfig())
    path = checkpoint.save_checkpoint(
        tmp_path / "ok.pt", {"model": model.state_dict(), "config": checkpoint.config_dict(model.cfg)}
    )
    state = checkpoint.load_checkpoint(path, expect_config=TinyConfig())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(state["model"][k], v)
