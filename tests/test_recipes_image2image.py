"""Tests for genai_lib.recipes.image2image: the chapter-4 recipes train through fit, are cached,
leave the caller's RNG alone, and the evaluations score what they say (fast mode)."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch

from genai_lib.models.cycada import SemanticCycleGAN, SemanticCycleGANConfig
from genai_lib.models.cyclegan import CycleGAN, CycleGANConfig
from genai_lib.models.pix2pix import Pix2Pix, Pix2PixConfig
from genai_lib.recipes import image2image as R
from genai_lib.recipes.classifier import MNIST_CLASSIFIER, train_classifier


class _Oracle(torch.nn.Module):
    """A 'classifier' that answers the label stored in the top-left pixel (for the evaluations)."""

    def forward(self, x):
        ids = (x[:, 0, 0, 0] * 10).round().long().clamp(0, 9)
        return torch.nn.functional.one_hot(ids, 10).float()


def test_cyclegan_recipe_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    recipe = replace(R.CYCLEGAN["full"], fast_steps=12, batch_size=16)
    rng_before = torch.random.get_rng_state()
    model, hist, snaps = R.train_cyclegan(recipe, name="t", fast=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before) and not model.training
    assert isinstance(model, CycleGAN) and model.cfg.width == recipe.fast_width
    assert not hist.from_cache and len(hist.step) > 0 and hist.logs["cycle"][-1] < hist.logs["cycle"][0]
    again, hist2, snaps2 = R.train_cyclegan(recipe, name="t", fast=True)
    assert snaps2.steps == snaps.steps and snaps.steps[0] == 1 and len(snaps.items) >= 2
    early = R.cyclegan_at(again, snaps2.items[0])
    assert not torch.equal(early.g_ab.net[0][0].weight, again.g_ab.net[0][0].weight)
    assert hist2.from_cache
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert sorted(p.name for p in tmp_path.rglob("*.pt")) == ["ch4_cyclegan_t.pt"]
    with pytest.raises(ValueError, match="needs a name"):
        R.train_cyclegan(recipe, fast=True)


def _tiny_clf(seed):
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier

    torch.manual_seed(seed)
    return ImageClassifier(ClassifierConfig(width=4, feature_dim=8))


def test_semantic_recipe_builds_the_plain_init_with_its_frozen_classifiers(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    pair = (_tiny_clf(1), _tiny_clf(2))
    readers = (_tiny_clf(3), _tiny_clf(4))
    monkeypatch.setattr(R, "semantic_classifiers", lambda **kw: pair)
    monkeypatch.setattr(R, "reader_classifiers", lambda **kw: readers)
    plain = R.image2image_model(R.CYCLEGAN["full"], fast=True)
    for name in ("semantic", "semantic_target"):
        model = R.image2image_model(R.CYCLEGAN[name], fast=True)
        assert isinstance(model, SemanticCycleGAN) and (model.clf_a, model.clf_b) == pair
        assert (model.readers is None) == (name == "semantic")
        for k, v in plain.state_dict().items():  # generators and discriminators: the plain draw
            assert torch.equal(v, model.state_dict()[k]), (name, k)
    recipe = replace(R.CYCLEGAN["semantic_target"], fast_steps=4, batch_size=8)
    model, hist, _ = R.train_cyclegan(recipe, name="s", fast=True)
    assert {"semantic_ab", "semantic_ba"} <= set(hist.logs) and model.readers is not None
    assert R.train_cyclegan(recipe, name="s", fast=True)[1].from_cache
    with torch.no_grad():  # other frozen classifiers are another cache entry: retrained
        readers[1].head.bias.add_(1.0)
    assert not R.train_cyclegan(recipe, name="s", fast=True)[1].from_cache


def test_pix2pix_recipes_learn_in_fast_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    for name in ("sr", "inpaint_l1"):
        model, hist = R.train_pix2pix(name, fast=True)
        assert isinstance(model, Pix2Pix) and not model.training
        l1 = hist.logs["l1"]
        assert l1[-1] < l1[0], name
        assert ("d_loss" in hist.logs) == (R.PIX2PIX[name].config.adv_weight > 0)


def test_recipe_tables_are_what_the_chapter_says():
    assert set(R.CYCLEGAN) == {"full", "nocycle", "noidentity", "semantic", "semantic_target"} and set(R.PIX2PIX) == {
        "sr",
        "sr_l1",
        "inpaint",
        "inpaint_l1",
    }
    full, noc, noi = (R.CYCLEGAN[k].config for k in ("full", "nocycle", "noidentity"))
    assert full.cycle_weight > 0 and full.identity_weight == 0.5 * full.cycle_weight  # the paper's ratio
    assert noc.cycle_weight == 0 and noc.identity_weight == 0 and noi.identity_weight == 0 and noi.cycle_weight > 0
    for task in ("sr", "inpaint"):
        adv, l1 = R.PIX2PIX[task].config, R.PIX2PIX[f"{task}_l1"].config
        assert adv.adv_weight > 0 and l1.adv_weight == 0 and replace(l1, adv_weight=adv.adv_weight) == adv
    for name, readers in (("semantic", "source"), ("semantic_target", "target")):
        r = R.CYCLEGAN[name]  # the plain recipe plus the semantic loss, nothing else changed
        assert isinstance(r.config, SemanticCycleGANConfig) and r.config.readers == readers
        plain = {k: v for k, v in asdict(r.config).items() if k not in ("semantic_weight", "readers")}
        assert CycleGANConfig(**plain) == full
        fast = R.CYCLEGAN["full"].fast_steps
        assert replace(r, config=full, fast_steps=fast) == R.CYCLEGAN["full"]  # the same full budget
    sweep = R.cycle_recipe(3.0, steps=7)
    assert sweep.config.cycle_weight == 3.0 and sweep.config.identity_weight == 1.5 and sweep.steps == 7
    assert sweep.config == replace(full, cycle_weight=3.0, identity_weight=1.5)


def test_uci_classifier_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    clf = R.uci_classifier(fast=True)
    assert not clf.training and all(not p.requires_grad for p in clf.parameters())
    assert 0.5 < clf.test_accuracy <= 1.0  # 10 classes: chance is 0.1
    assert [p.name for p in tmp_path.rglob("*.pt")] == ["uci_classifier_aug.pt"]
    assert R.UCI_CLASSIFIER.augment  # chapter 4's judge trains on distortions; the MNIST one does not
    assert not MNIST_CLASSIFIER.augment  # FID's feature network everywhere: unchanged


def _labelled(x, y):
    x = x.clone()
    x[:, 0, 0, 0] = y.float() / 10  # the oracle reads the label here
    return x


def test_evaluate_cyclegan_scores_the_translations(monkeypatch):
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(width=4, n_res=0, d_width=4, pool_size=0))
    ident = torch.nn.Identity()
    model.g_ab, model.g_ba = ident, ident  # identity translators: every score is the raw one
    real = R.domains("test", fast=False)
    fake = {k: (_labelled(x, y), y) for k, (x, y) in real.items()}
    monkeypatch.setattr(R, "domains", lambda split, fast=None: fake)
    e = R.evaluate_cyclegan(model, _Oracle(), _Oracle(), n=50)
    assert e["acc_ab"] == e["acc_ba"] == e["raw_ab"] == e["cycle_ab"] == 1.0
    assert e["cycle_l1_ab"] == e["cycle_l1_ba"] == 0.0


def test_evaluate_restoration_baselines_and_truth():
    torch.manual_seed(0)
    m = Pix2Pix(Pix2PixConfig(task="inpaint", width=4, d_width=4))
    scores = R.evaluate_restoration({"untrained": m}, _Oracle(), n=40)
    assert list(scores) == ["mean fill", "untrained", "truth"]
    assert scores["truth"]["psnr"] == 100 and scores["truth"]["ssim"] == pytest.approx(1.0)
    t = R.restoration_conditions("inpaint", n=40)
    assert torch.equal(t["baseline"] * (1 - t["mask"]), t["x"] * (1 - t["mask"]))  # the known pixels are kept
    assert torch.equal(R.restoration_conditions("inpaint", n=40)["mask"], t["mask"])  # same holes every time
    sr = R.restoration_conditions("sr", n=10)
    assert sr["mask"] is None and sr["baseline"].shape == (10, 1, 28, 28)
    with pytest.raises(ValueError, match="one task"):
        R.evaluate_restoration({"a": m, "b": Pix2Pix(Pix2PixConfig(task="sr", width=4, d_width=4))}, _Oracle())


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: R.train_cyclegan("cycle"), ValueError, "recipe must be one of"),
        (lambda: R.train_cyclegan("full", hooks=3, fast=True), TypeError, "hooks must be a list"),
        (lambda: R.train_pix2pix("denoise"), ValueError, "recipe must be one of"),
        (lambda: R.train_pix2pix(R.CYCLEGAN["full"], name="x"), TypeError, "Pix2PixConfig"),
        (lambda: R.train_cyclegan(R.PIX2PIX["sr"], name="x"), TypeError, "CycleGANConfig"),
        (lambda: R.I2IRecipe(CycleGANConfig(), steps=0), ValueError, "steps must be"),
        (lambda: R.I2IRecipe(CycleGANConfig(), steps=1, lr=-1.0), ValueError, "lr"),
        (lambda: R.I2IRecipe({"width": 4}, steps=1), TypeError, "CycleGANConfig or Pix2PixConfig"),
        (lambda: R.cycle_recipe(-1.0), ValueError, "cycle_weight"),
        (lambda: R.evaluate_cyclegan(torch.nn.Linear(1, 1), _Oracle(), _Oracle()), TypeError, "CycleGAN"),
        (lambda: R.evaluate_restoration({}, _Oracle()), TypeError, "non-empty dict"),
        (lambda: R.uci_classifier(generator=3), TypeError, "generator"),
        (lambda: train_classifier("uci", R.load_digits28, name="x"), TypeError, "ClassifierRecipe"),
    ],
)
def test_recipe_arguments_are_checked(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_the_benchmark_calls_the_shared_recipes():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "image2image.py"
    spec = importlib.util.spec_from_file_location("bench_image2image", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.RUNS["cyclegan"] is R.CYCLEGAN and bench.RUNS["pix2pix"] is R.PIX2PIX
    assert bench.train_cyclegan is R.train_cyclegan and bench.evaluate_restoration is R.evaluate_restoration


def test_random_distort_changes_style_not_size():
    from genai_lib.models._layers import random_distort

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a thick vertical bar
    out = random_distort(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not torch.allclose(out, x)
    torch.testing.assert_close(random_distort(x, generator=torch.Generator().manual_seed(0)), out)  # seeded
    # nothing drawn big enough to change anything: the identity (up to bilinear resampling)
    same = random_distort(x, rotate=0.0, scale=0.0, shift=0.0, stroke=0.0, blur=0.0, generator=g)
    torch.testing.assert_close(same, x)
    # stroke 1 and no affine: every image thicker or thinner than the original (ink changes)
    ink = random_distort(x, rotate=0.0, scale=0.0, shift=0.0, stroke=1.0, blur=0.0, generator=g).sum((1, 2, 3))
    assert ((ink - x.sum((1, 2, 3))).abs() > 1).all()


def test_classifier_augment_only_in_training():
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier

    torch.manual_seed(0)
    clf = ImageClassifier(ClassifierConfig(width=4, feature_dim=8, dropout=0.0, shift=0))
    clf.augment = True
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    clf.eval()
    assert torch.equal(clf.loss((x, y))[0], clf.loss((x, y))[0])  # eval: no augmentation drawn
    clf.train()
    torch.manual_seed(1)
    a = clf.loss((x, y))[0]
    torch.manual_seed(2)
    assert not torch.equal(a, clf.loss((x, y))[0])  # training: a fresh distortion each call
