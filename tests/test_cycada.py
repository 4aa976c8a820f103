"""Chapter 4: CyCADA's semantic-consistency loss on a CycleGAN (genai_lib.models.cycada)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genai_lib.data import make_loader
from genai_lib.models.classifier import ClassifierConfig, ImageClassifier
from genai_lib.models.cycada import SemanticCycleGAN, SemanticCycleGANConfig, semantic_loss
from genai_lib.models.cyclegan import CycleGAN, CycleGANConfig
from genai_lib.train import fit

TINY = {"width": 4, "n_res": 1, "d_width": 4, "pool_size": 4}


def _images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _clf(seed=0):
    torch.manual_seed(seed)
    return ImageClassifier(ClassifierConfig(width=4, feature_dim=8, dropout=0.5))


class _Recorder(nn.Module):
    """A classifier that logs every batch it reads and answers from the mean brightness."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(10))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x.mean((1, 2, 3))[:, None] * self.scale * torch.arange(10.0)


class _Brightness(nn.Module):
    """A sharp, fixed classifier: class k for images of mean brightness near k / 10."""

    def forward(self, x):
        return -1000 * (x.mean((1, 2, 3))[:, None] - torch.arange(10.0) / 10).square()


def test_semantic_loss_is_cross_entropy_to_the_source_label():
    clf = _clf().eval()
    x, t = _images(6, 0), _images(6, 1).requires_grad_(True)
    loss = semantic_loss(x, t, clf)
    expect = F.cross_entropy(clf(t), clf(x).argmax(1))
    torch.testing.assert_close(loss, expect)
    loss.backward()
    assert t.grad is not None and t.grad.abs().sum() > 0  # the translation gets the gradient
    # keeping the image keeps the label: a far lower loss than an image read as another class
    dark = 0.2 * _images(6, 2)  # mean brightness 0.1: class 1 for _Brightness
    assert semantic_loss(dark, dark, _Brightness()) < 0.1 < 2.0 < semantic_loss(dark, 1 - dark, _Brightness())


def test_semantic_cyclegan_shares_the_plain_init_and_weight_zero_is_the_plain_loss():
    cfg = SemanticCycleGANConfig(**TINY, semantic_weight=0.0)
    torch.manual_seed(0)
    plain = CycleGAN(CycleGANConfig(**TINY))
    clf_a, clf_b = _clf(1), _clf(2)
    torch.manual_seed(0)
    sem = SemanticCycleGAN(cfg, clf_a, clf_b)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, sem.state_dict()[k]), k
    batch = (_images(4, 0), _images(4, 1))
    torch.testing.assert_close(plain.g_loss(batch)[0], sem.g_loss(batch)[0])
    on = SemanticCycleGAN(SemanticCycleGANConfig(**TINY, semantic_weight=2.0), clf_a, clf_b)
    loss, logs = on.g_loss(batch)
    assert {"semantic_ab", "semantic_ba", "cycle", "identity", "g_adv"} <= set(logs)
    assert loss > logs["g_adv"] + 2.0 * (logs["semantic_ab"] + logs["semantic_ba"]) - 1e-6


def test_each_direction_is_held_by_its_source_classifier():
    rec_a, rec_b = _Recorder(), _Recorder()
    torch.manual_seed(0)
    model = SemanticCycleGAN(SemanticCycleGANConfig(**TINY), rec_a, rec_b)
    x_a, x_b = _images(3, 0), _images(3, 1)
    model.g_loss((x_a, x_b))
    with torch.no_grad():
        fake_b, fake_a = model.g_ab(x_a), model.g_ba(x_b)
    # A's classifier reads the MNIST-side images a and G(a); B's reads b and F(b)
    assert len(rec_a.seen) == len(rec_b.seen) == 2
    torch.testing.assert_close(rec_a.seen[0], x_a)
    torch.testing.assert_close(rec_a.seen[1], fake_b)
    torch.testing.assert_close(rec_b.seen[0], x_b)
    torch.testing.assert_close(rec_b.seen[1], fake_a)


def test_target_readers_read_the_translations_and_the_labellers_label():
    lab_a, lab_b, r_a, r_b = _Recorder(), _Recorder(), _Recorder(), _Recorder()
    torch.manual_seed(0)
    model = SemanticCycleGAN(SemanticCycleGANConfig(**TINY, readers="target"), lab_a, lab_b, readers=(r_a, r_b))
    x_a, x_b = _images(3, 0), _images(3, 1)
    model.g_loss((x_a, x_b))
    with torch.no_grad():
        fake_b, fake_a = model.g_ab(x_a), model.g_ba(x_b)
    assert len(lab_a.seen) == len(lab_b.seen) == len(r_a.seen) == len(r_b.seen) == 1
    torch.testing.assert_close(lab_a.seen[0], x_a)  # the label of a comes from A's classifier
    torch.testing.assert_close(r_b.seen[0], fake_b)  # G(a) is read in the domain it lands in, B
    torch.testing.assert_close(lab_b.seen[0], x_b)
    torch.testing.assert_close(r_a.seen[0], fake_a)
    # the loss is the cross-entropy of the reader against the labeller's class
    expect = F.cross_entropy(_Brightness()(x_a), _Brightness()(x_a).argmax(1))
    torch.testing.assert_close(semantic_loss(x_a, x_a, _Brightness(), _Brightness()), expect)
    assert semantic_loss(0.2 * x_a, 0.2 * x_a, _Brightness(), _Flipped()) > 2.0  # another reader, another class


class _Flipped(nn.Module):
    """Reads the brightness classes in reverse order."""

    def forward(self, x):
        return _Brightness()(x).flip(1)


def test_classifiers_frozen_in_eval_and_outside_every_phase():
    clf_a, clf_b, r_a, r_b = _clf(1), _clf(2), _clf(3), _clf(4)
    cfg = SemanticCycleGANConfig(**TINY, readers="target")
    model = SemanticCycleGAN(cfg, clf_a, clf_b, readers=(r_a, r_b)).train()
    frozen = [clf_a, clf_b, r_a, r_b]
    assert model.g_ab.training and not any(m.training for m in frozen)  # no dropout in the loss
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    ids = {id(p) for ph in model.phases() for p in ph.params}
    assert not ids & {id(p) for m in frozen for p in m.parameters()}
    model.zero_grad(set_to_none=True)
    model.g_loss((_images(4, 0), _images(4, 1)))[0].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.generator_parameters())
    assert all(p.grad is None for p in clf_a.parameters())


def test_semantic_cyclegan_trains_through_fit_and_the_semantic_loss_falls():
    torch.manual_seed(0)
    model = SemanticCycleGAN(SemanticCycleGANConfig(**TINY, semantic_weight=5.0), _Brightness(), _Brightness())
    a, b = 0.2 * _images(16, 0), 0.6 + 0.2 * _images(16, 1)  # read as class 1 and class 7
    loader = make_loader(a, b, batch_size=8, generator=torch.Generator().manual_seed(0))
    hist = fit(model, loader, steps=40, phases=model.phases(lr=3e-3), progress=False, log_every=1)
    sem = [x + y for x, y in zip(hist["semantic_ab"], hist["semantic_ba"], strict=True)]
    assert sum(sem[-5:]) < 0.7 * sum(sem[:5])


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: SemanticCycleGANConfig(semantic_weight=-1.0), ValueError, "semantic_weight"),
        (lambda: SemanticCycleGAN(CycleGANConfig(**TINY), _clf(), _clf()), TypeError, "SemanticCycleGANConfig"),
        (lambda: SemanticCycleGAN(SemanticCycleGANConfig(**TINY), "clf", _clf()), TypeError, "clf_a"),
        (lambda: semantic_loss(_images(2), _images(3), _clf()), ValueError, "translated must have"),
        (lambda: SemanticCycleGANConfig(readers="judge"), ValueError, "readers must be one of"),
        (
            lambda: SemanticCycleGAN(SemanticCycleGANConfig(**TINY, readers="target"), _clf(), _clf()),
            ValueError,
            "readers=\\(r_a, r_b\\) must be given",
        ),
        (
            lambda: SemanticCycleGAN(SemanticCycleGANConfig(**TINY), _clf(), _clf(), readers=(_clf(), _clf())),
            ValueError,
            "exactly when",
        ),
        (
            lambda: SemanticCycleGAN(SemanticCycleGANConfig(**TINY, readers="target"), _clf(), _clf(), readers=_clf()),
            TypeError,
            "readers must be a pair",
        ),
    ],
)
def test_bad_inputs(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
