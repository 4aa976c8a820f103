"""The MNIST classifier whose features the sample-quality metrics read (chapter 3 onwards).

``MNIST_CLASSIFIER``: :class:`~genai_lib.models.classifier.ClassifierConfig` defaults, Adam at
1e-3, batches of 64, 12 epochs over the 4,000 training images (fast mode: 1,000 images, 3
epochs), weights from seed 0. :func:`mnist_classifier` trains it once and caches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_generator
from genai_lib.data import load_mnist, make_loader
from genai_lib.metrics import conditional_accuracy
from genai_lib.models.classifier import ClassifierConfig, ImageClassifier
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode

__all__ = ["ClassifierRecipe", "MNIST_CLASSIFIER", "mnist_classifier", "train_classifier"]


@dataclass(frozen=True)
class ClassifierRecipe:
    """A classifier config with its training budget."""

    config: ClassifierConfig  # the network
    epochs: int  # passes over the training images
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 64  # images per step
    fast_limit: int = 1000  # fast mode: training images
    fast_epochs: int = 3  # fast mode: passes
    augment: bool = False  # train on writer-style distortions (models._layers.random_distort)


MNIST_CLASSIFIER = ClassifierRecipe(ClassifierConfig(), epochs=12)  # >= 97% on the 1,000 held-out digits


def train_classifier(
    recipe: ClassifierRecipe,
    load: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    *,
    name: str,
    key: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    device: Any = None,
    progress: bool = False,
    fast: bool | None = None,
) -> ImageClassifier:
    """Train (or load from the cache entry ``name``) a digit classifier on ``load("train")``.

    ``load(split, limit=...)`` returns images and labels of a split. Training runs inside
    ``torch.random.fork_rng`` seeded from ``generator`` (default seed 0); the cache key holds the
    seed, the image limit and ``key``. The network is returned in eval mode with frozen weights;
    ``.test_accuracy`` holds its accuracy on ``load("test")``. Fast mode (``GENAI_FAST=1``):
    ``recipe.fast_limit`` images and ``recipe.fast_epochs`` passes.
    """
    if not isinstance(recipe, ClassifierRecipe):
        raise TypeError(f"recipe must be a ClassifierRecipe, got {type(recipe).__name__}")
    check_generator("generator", generator)
    seed = int(torch.randint(0, 2**31, (1,), generator=generator)) if generator is not None else 0
    fast = fast_mode() if fast is None else fast
    limit, epochs = (recipe.fast_limit, recipe.fast_epochs) if fast else (None, recipe.epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = ImageClassifier(recipe.config)
        clf.augment = recipe.augment
        if device is not None:
            clf = clf.to(device)
        x, y = load("train", limit=limit)
        loader = make_loader(x, y, batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(seed))
        load_or_train(
            clf,
            loader,
            name=name,
            # augmentation is keyed only when on: entries trained without it keep their keys
            key={"seed": seed, "limit": limit, **({"augment": True} if recipe.augment else {}), **(key or {})},
            epochs=epochs,
            lr=recipe.lr,
            progress=progress,
        )
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    xt, yt = load("test")
    clf.test_accuracy = conditional_accuracy(clf, xt, yt)
    return clf


def mnist_classifier(
    *, generator: torch.Generator | None = None, device: Any = None, progress: bool = False, fast: bool | None = None
) -> ImageClassifier:
    """The feature network for FID/KID, trained once on the MNIST training split, then cached.

    Training runs inside ``torch.random.fork_rng`` seeded from ``generator`` (default seed 0).
    The returned network is in eval mode with frozen weights; ``.test_accuracy`` holds its
    measured accuracy on the 1,000 held-out images. Fast mode (``GENAI_FAST=1``) gives a quick,
    weaker network (about 80-90%): good enough for tests, not for reported numbers.
    """
    return train_classifier(
        MNIST_CLASSIFIER,
        load_mnist,
        name="mnist_classifier",
        generator=generator,
        device=device,
        progress=progress,
        fast=fast,
    )
