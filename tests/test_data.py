import pytest
import torch

from genai_lib import data


def test_mnist_split_is_stratified_and_disjoint():
    xtr, ytr = data.load_mnist("train")
    xte, yte = data.load_mnist("test")
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) <= 1.0 and float(xtr.max()) > 0.99
    assert ytr.bincount(minlength=10).tolist() == [400] * 10
    assert yte.bincount(minlength=10).tolist() == [100] * 10
    # No test image appears in the training split.
    flat_tr = {tuple(r) for r in (xtr.reshape(4000, -1) * 255).round().to(torch.uint8)[:, ::7].tolist()}
    overlap = sum(tuple(r) in flat_tr for r in (xte.reshape(1000, -1) * 255).round().to(torch.uint8)[:, ::7].tolist())
    assert (
        overlap <= 2
    )  # the 5k subset has no exact duplicates across the split (a couple of near-blank rows tolerated)


def test_mnist_limit_is_balanced():
    x, y = data.load_mnist("train", limit=50)
    assert x.shape[0] == 50
    assert y.bincount(minlength=10).tolist() == [5] * 10


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"split": "valid"}, ValueError, "split"),
        ({"limit": 0}, ValueError, "limit"),
        ({"limit": 2.5}, TypeError, "limit"),
    ],
)
def test_mnist_bad_args(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        data.load_mnist(**kwargs)


def test_digits8():
    x, y = data.load_digits8("train")
    xt, yt = data.load_digits8("test")
    assert x.shape[1:] == (1, 8, 8) and x.shape[0] + xt.shape[0] == 1797
    assert float(x.max()) <= 1.0 and set(yt.tolist()) == set(range(10))


@pytest.mark.parametrize("name", data.TOY_DATASETS)
def test_toy_shapes_and_determinism(name):
    a, la = data.toy_2d(name, 300, generator=torch.Generator().manual_seed(1))
    b, lb = data.toy_2d(name, 300, generator=torch.Generator().manual_seed(1))
    assert a.shape == (300, 2) and la.shape == (300,) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a).all()


def test_ring_modes_are_on_the_circle():
    x, label = data.toy_2d("ring", 2000, generator=torch.Generator().manual_seed(0))
    assert set(label.tolist()) == set(range(8))
    radius = x.norm(dim=1)
    assert abs(float(radius.mean()) - 2.0) < 0.02


def test_loader_batches_epochs_and_resume_order():
    x = torch.arange(10).float()
    loader = data.make_loader(x, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 3
    epoch0 = [b[0] for b in loader]
    epoch1 = [b[0] for b in loader]
    assert sorted(torch.cat(epoch0).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))  # reshuffled each epoch
    loader.set_epoch(1)
    again = [b[0] for b in loader.iter_from(1)]
    torch.testing.assert_close(torch.cat(again), torch.cat(epoch1[1:]))
    assert len(data.make_loader(x, batch_size=4, drop_last=True)) == 2


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((torch.zeros(0, 2),), {"batch_size": 4}, ValueError, "empty"),
        ((torch.zeros(5, 2), torch.zeros(4)), {"batch_size": 2}, ValueError, "first dimension"),
        ((torch.zeros(5, 2),), {"batch_size": 0}, ValueError, "batch_size"),
        (([1, 2, 3],), {"batch_size": 2}, TypeError, "torch.Tensor"),
        ((torch.zeros(5, 2),), {"batch_size": 8, "drop_last": True}, ValueError, "no batch"),
    ],
)
def test_loader_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        data.make_loader(*args, **kwargs)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"name": "blobs", "n": 5}, ValueError),
        ({"name": "ring", "n": 0}, ValueError),
        ({"name": "ring", "n": 5, "noise": -1.0}, ValueError),
    ],
)
def test_toy_bad(kwargs, exc):
    with pytest.raises(exc):
        data.toy_2d(**kwargs)
