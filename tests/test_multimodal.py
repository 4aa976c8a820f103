"""Chapters 9-10: captioned MNIST, the captioner, the contrastive model, text to image, the multimodal VAEs."""

import math
from dataclasses import replace

import pytest
import torch

from genai_lib.captions import (
    AREA_MEDIANS,
    INK_TERTILES,
    CaptionTokenizer,
    all_captions,
    attributes,
    caption,
    caption_zh,
    image_statistics,
    parse_caption,
)
from genai_lib.models.multimodal import Captioner, CaptionerConfig, ContrastiveConfig, ContrastiveModel, info_nce
from genai_lib.models.mvae import MultimodalVAE, MVAEConfig, gaussian_log_prob, product_of_experts
from genai_lib.models.text2image import TextToImageConfig, TextToImageVAE, rerank
from genai_lib.train import fit

TOK = CaptionTokenizer()


def bar(width: int = 2, shear: float = 0.0, length: int = 20) -> torch.Tensor:
    """A vertical bar (1, 1, 28, 28) of ``width`` pixels; row r is shifted by shear * (14 - r)."""
    img = torch.zeros(1, 1, 28, 28)
    for r in range(4, 4 + length):
        c = round(13 + shear * (14 - r))
        img[0, 0, r, c : c + width] = 1.0
    return img


def batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    attrs = torch.stack([torch.randint(0, hi, (n,), generator=g) for hi in (10, 3, 3, 2)], dim=1)
    ids = TOK.encode_batch([caption(a) for a in attrs.tolist()])
    return x, ids, attrs


# --------------------------------------------------------------------------- data


def test_a_thick_bar_is_thick_and_a_thin_bar_thin():
    assert attributes(bar(width=6), [1])[0, 1] == 2
    assert attributes(bar(width=1), [1])[0, 1] == 0
    assert attributes(bar(width=3), [1])[0, 1] == 1  # 60 units of ink: between the one's tertiles


def test_a_sheared_bar_slants_the_right_way():
    assert attributes(bar(shear=0.6), [1])[0, 2] == 2  # top to the right: slanting right
    assert attributes(bar(shear=-0.3), [1])[0, 2] == 0
    assert attributes(bar(shear=0.1), [1])[0, 2] == 1
    assert image_statistics(bar(shear=0.5))["shear"].item() == pytest.approx(0.5, abs=0.05)


def test_size_reads_the_bounding_box():
    wide = torch.zeros(1, 1, 28, 28)
    wide[0, 0, 4:24, 4:24] = 1.0
    assert image_statistics(wide)["area"].item() == 400
    assert attributes(wide, [0])[0, 3] == 1 and attributes(bar(), [0])[0, 3] == 0


def test_thresholds_are_the_training_split_quantiles():
    from genai_lib.data import load_mnist

    x, y = load_mnist("train")
    s = image_statistics(x)
    for d in (1, 8):
        q = torch.quantile(s["ink"][y == d], torch.tensor([1 / 3, 2 / 3]))
        torch.testing.assert_close(q, torch.tensor(INK_TERTILES[d]), atol=0.1, rtol=0)
        assert torch.quantile(s["area"][y == d], 0.5).item() == AREA_MEDIANS[d]


def test_grammar_round_trip_for_every_caption():
    rows = all_captions()
    assert len(rows) == 180 and len({caption(r) for r in rows}) == 180
    for r in rows:
        text = caption(r)
        assert parse_caption(text) == r and caption(parse_caption(text)) == text
        assert TOK.decode(TOK.encode(text)) == text
    assert caption((7, 2, 2, 1)) == "a large thick seven slanting right"
    assert caption_zh((7, 2, 2, 1)) == "一个大的、粗的数字七，向右倾斜"
    every = torch.tensor(rows)
    assert torch.equal(TOK.encode_attributes(every), TOK.encode_batch([caption(r) for r in rows]))
    with pytest.raises(ValueError, match="attrs slant must be in"):
        TOK.encode_attributes(torch.tensor([[7, 2, 3, 1]]))


@pytest.mark.parametrize(
    "text", ["", "a large thick seven slanting upwards", "a seven", "large a thick seven slanting right"]
)
def test_bad_captions_are_refused(text):
    with pytest.raises(ValueError, match="text"):
        TOK.encode(text)


# --------------------------------------------------------------------------- captioner

CAP = CaptionerConfig(patch=7, n_embd=16, n_head=2, enc_layers=1, dec_layers=2)


def test_captioner_shapes_and_attention_maps():
    torch.manual_seed(0)
    m = Captioner(CAP)
    x, ids, _ = batch(3)
    assert m(x, ids).shape == (3, 8, TOK.vocab_size)
    maps = m.attention_maps(x, ids)
    assert maps.shape == (3, 2, 2, 8, 16)  # (B, layers, heads, T, patches)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 2, 2, 8))
    assert m.generate(x).shape == (3, 8)
    conv = Captioner(CaptionerConfig(stem="conv", n_embd=16, n_head=2, enc_layers=1, dec_layers=1))
    assert conv(x, ids).shape == (3, 8, TOK.vocab_size)
    assert conv.attention_maps(x, ids).shape == (3, 1, 2, 8, 49)  # a 7 x 7 grid of CNN features


def test_the_classifier_stem_starts_from_the_classifier():
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier

    torch.manual_seed(0)
    clf = ImageClassifier(ClassifierConfig(width=8, feature_dim=16))
    cfg = CaptionerConfig(stem="classifier", stem_width=8, n_embd=16, n_head=2, enc_layers=1, dec_layers=1)
    m = Captioner(cfg)
    x, ids, _ = batch(3)
    assert m(x, ids).shape == (3, 8, TOK.vocab_size)
    assert m.attention_maps(x, ids).shape == (3, 1, 2, 8, 49)  # the classifier's 7 x 7 feature map
    assert not torch.allclose(m.patch_in(x), clf.body[:6](x).flatten(2))
    m.init_stem(clf)
    torch.testing.assert_close(m.patch_in(x), clf.body[:6](x).flatten(2))  # the same features
    with pytest.raises(ValueError, match="stem_width must equal"):
        Captioner(replace(cfg, stem_width=4)).init_stem(clf)
    with pytest.raises(ValueError, match="init_stem needs stem='classifier'"):
        Captioner(CAP).init_stem(clf)
    with pytest.raises(TypeError, match="classifier must be an ImageClassifier"):
        m.init_stem(torch.nn.Linear(2, 2))


def test_the_decoder_is_causal_and_reads_the_image():
    torch.manual_seed(0)
    m = Captioner(CAP).eval()
    x, ids, _ = batch(2)
    other = ids.clone()
    other[:, 5:] = 3
    a, b = m(x, ids), m(x, other)
    torch.testing.assert_close(a[:, :5], b[:, :5])  # later words do not change earlier logits
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    assert not torch.allclose(m(x.flip(0), ids), a)  # the image matters (cross-attention)


def test_kv_cache_equals_full_recomputation():
    torch.manual_seed(0)
    m = Captioner(CAP).eval()
    x, ids, _ = batch(3)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = m.generate(x, greedy=False, generator=g1, use_cache=True)
    b = m.generate(x, greedy=False, generator=g2, use_cache=False)
    assert torch.equal(a, b)
    from genai_lib.models.attention import KVCache

    kvs = m._kv(m.encode(x))
    cache = KVCache(2, 3, 2, 8, 8, device="cpu", dtype=torch.float32)
    steps = []
    for t in range(8):
        steps.append(m._decode(ids[:, t : t + 1], kvs, cache, t)[0])
        cache.pos = t + 1
    torch.testing.assert_close(torch.cat(steps, 1), m(x, ids), atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- contrastive


def test_info_nce_equals_its_closed_form_and_is_symmetric():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    s = math.log(2.0)  # scale 2
    # row-wise: CE of logits 2 * img @ txt^T = [[1.2, 0], [1.6, 2]]
    l_i = 0.5 * (-1.2 + math.log(math.exp(1.2) + 1) + -2 + math.log(math.exp(1.6) + math.exp(2)))
    l_t = 0.5 * (-1.2 + math.log(math.exp(1.2) + math.exp(1.6)) + -2 + math.log(1 + math.exp(2)))
    got = info_nce(img, txt, s)
    assert got.item() == pytest.approx(0.5 * (l_i + l_t), abs=1e-6)
    assert info_nce(txt, img, s).item() == pytest.approx(got.item(), abs=1e-6)
    same = torch.ones(2, 2, dtype=torch.bool)  # every pair matches: the loss is log 2 minus nothing learnable
    assert info_nce(img, img, s, same).item() == pytest.approx(info_nce(img, img.flip(0), s, same).item(), abs=1e-6)


# --------------------------------------------------------------------------- multimodal VAE


def test_product_of_gaussians_with_the_prior_matches_the_closed_form():
    mus = torch.tensor([[[1.0]], [[3.0]]])  # two experts N(1, 1) and N(3, 1/2)
    logvars = torch.log(torch.tensor([[[1.0]], [[0.5]]]))
    mu, lv = product_of_experts(mus, logvars)
    # precisions 1 (prior, mean 0) + 1 + 2 = 4; mean (0 + 1 + 6) / 4
    assert mu.item() == pytest.approx(7 / 4) and lv.exp().item() == pytest.approx(1 / 4)
    mu0, lv0 = product_of_experts(mus, logvars, prior=False)
    assert mu0.item() == pytest.approx(7 / 3) and lv0.exp().item() == pytest.approx(1 / 3)
    # the product's density is proportional to the pointwise product of the densities
    z = torch.linspace(-2, 4, 7)[:, None]
    logp = sum(gaussian_log_prob(z, m[0], v[0]) for m, v in zip(mus, logvars, strict=True))
    logp = logp + gaussian_log_prob(z, torch.zeros(1), torch.zeros(1))
    diff = logp - gaussian_log_prob(z, mu[0], lv[0])
    torch.testing.assert_close(diff, diff[:1].expand_as(diff))


def test_mvae_views_and_missing_views():
    torch.manual_seed(0)
    x, ids, _ = batch(4)
    m = MultimodalVAE(MVAEConfig(z_dim=4, width=8, hidden=32)).eval()
    img, words = m.generate(words=ids[:, 1:7])
    assert img.shape == (4, 1, 28, 28) and words.shape == (4, 6) and img.min() >= 0 and img.max() <= 1
    img, words = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert img.shape == (5, 1, 28, 28) and words.shape == (5, 6)
    with pytest.raises(ValueError, match="at least one view"):
        m.posterior()
    uni = MultimodalVAE(MVAEConfig(views=("image",), z_dim=4, width=8))
    with pytest.raises(ValueError, match="no caption view"):
        uni.experts(words=ids[:, 1:7])


# --------------------------------------------------------------------------- every model: gradients, overfit, seeds

MODELS = {
    "captioner": lambda: Captioner(CAP),
    "captioner_cnn": lambda: Captioner(
        CaptionerConfig(stem="classifier", stem_width=4, n_embd=16, n_head=2, enc_layers=1, dec_layers=1, shift=2)
    ),
    "clip": lambda: ContrastiveModel(ContrastiveConfig(embed_dim=8, width=8, n_embd=16, n_head=2, text_layers=1)),
    "t2i": lambda: TextToImageVAE(TextToImageConfig(z_dim=4, n_embd=16, n_head=2, width=8)),
    "poe": lambda: MultimodalVAE(MVAEConfig(posterior="poe", z_dim=4, width=8, hidden=32)),
    "moe": lambda: MultimodalVAE(MVAEConfig(posterior="moe", z_dim=4, width=8, hidden=32)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    m = MODELS[name]()
    loss, logs = m.loss(batch(6), generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss) and logs
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", list(MODELS))
def test_one_batch_overfits(name):
    from genai_lib.data import make_loader

    torch.manual_seed(0)
    m = MODELS[name]()
    _, ids, attrs = batch(8)
    x = torch.cat([bar(width=1 + i % 4, shear=0.2 * (i - 4)) for i in range(8)])  # learnable images
    loader = make_loader(x, ids, attrs, batch_size=8, shuffle=False)
    h = fit(m, loader, steps=40, lr=3e-3, progress=False, generator=torch.Generator().manual_seed(0))
    first, last = h.logs["loss"][0], sum(h.logs["loss"][-5:]) / 5
    assert last < 0.6 * first, (first, last)


@pytest.mark.parametrize("name", list(MODELS))
def test_seeded_determinism(name):
    def run():
        torch.manual_seed(0)
        m = MODELS[name]()
        return m.loss(batch(4), generator=torch.Generator().manual_seed(3))[0]

    assert torch.equal(run(), run())


def test_text_to_image_generation_and_reranking():
    torch.manual_seed(0)
    gen = MODELS["t2i"]().eval()
    clip = MODELS["clip"]().eval()
    _, ids, _ = batch(3)
    a = gen.generate(ids, generator=torch.Generator().manual_seed(0))
    b = gen.generate(ids, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, b)
    best = rerank(gen, clip, ids, 4, generator=torch.Generator().manual_seed(0))
    cands = gen.generate(ids.repeat(4, 1), generator=torch.Generator().manual_seed(0)).view(4, 3, 1, 28, 28)
    scores = (clip.encode_image(cands.flatten(0, 1)).view(4, 3, -1) * clip.encode_text(ids)).sum(-1)
    for i in range(3):
        assert torch.equal(best[i], cands[scores[:, i].argmax(), i])


def test_training_shifts_keep_the_attributes_of_nearly_every_digit():
    from genai_lib.data import load_mnist
    from genai_lib.models._layers import random_shift

    x, y = load_mnist("test", limit=400)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert not torch.equal(shifted, x)
    changed = (attributes(shifted, y) != attributes(x, y)).any(1).float().mean().item()
    assert changed < 0.02, changed  # ink cut at the border, for a few digits near the edge


def test_recaptioned_batches_describe_their_distorted_pixels():
    from genai_lib.data import load_mnist, make_loader
    from genai_lib.recipes.multimodal import Recaptioned

    x, y = load_mnist("test", limit=128)
    a = attributes(x, y)
    loader = make_loader(x, TOK.encode_attributes(a), a, batch_size=64, shuffle=False)
    torch.manual_seed(0)
    batches = list(Recaptioned(loader))
    assert len(batches) == len(loader) == 2
    xd, ids, ad = batches[0]
    assert xd.shape == (64, 1, 28, 28) and not torch.equal(xd, x[:64])
    assert torch.equal(ad, attributes(xd, y[:64])) and torch.equal(ad[:, 0], y[:64])  # the digit stays
    assert torch.equal(ids, TOK.encode_attributes(ad))
    assert (ad != a[:64]).any(1).float().mean() > 0.2  # distortions change many captions
    g = torch.Generator().manual_seed(0)
    xh, _, ah = next(iter(Recaptioned(loader, 0.5, generator=g)))
    kept = (xh == x[:64]).flatten(1).all(1)
    assert 0.2 < kept.float().mean() < 0.8  # about half redrawn, half as they were
    assert torch.equal(ah[kept], a[:64][kept])


def test_the_captioner_recipe_starts_from_the_classifier(monkeypatch):
    import genai_lib.recipes.multimodal as mm
    from genai_lib.recipes.multimodal import MMRecipe, train_multimodal

    cfg = CaptionerConfig(stem="classifier", stem_width=32, n_embd=16, n_head=2, enc_layers=1, dec_layers=1)
    assert mm.MM_RECIPES["captioner"].init == "mnist_classifier"
    assert mm.MM_RECIPES["captioner"].config.stem == "classifier"
    with pytest.raises(ValueError, match="needs a CaptionerConfig with stem='classifier'"):
        MMRecipe(CAP, steps=1, init="mnist_classifier")
    monkeypatch.setitem(mm.MM_RECIPES, "captioner", MMRecipe(cfg, steps=1, fast_steps=1, init="mnist_classifier"))
    seen = []
    monkeypatch.setattr(mm, "mnist_classifier", lambda fast=None: seen.append(fast) or clf)
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier

    torch.manual_seed(1)
    clf = ImageClassifier(ClassifierConfig())
    model, _ = train_multimodal("captioner", fast=True, cache=False)
    assert seen == [True]
    # one Adam step (each weight moves by about lr = 2e-3) from the classifier's weights
    assert (model.patch_in[3].weight - clf.body[3].weight).abs().max() < 5e-3
    assert (Captioner(cfg).patch_in[3].weight - clf.body[3].weight).abs().max() > 0.05  # a fresh stem is far


def test_the_recipe_trains_once_then_loads(monkeypatch, tmp_path):
    from pathlib import Path

    from genai_lib.recipes.multimodal import train_multimodal

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GENAI_FAST", "1")
    a, h1 = train_multimodal("caption_vae")
    b, h2 = train_multimodal("caption_vae")
    assert not h1.from_cache and h2.from_cache
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    bench = (Path(__file__).resolve().parents[1] / "benchmarks" / "multimodal_mnist.py").read_text()
    assert "train_multimodal(" in bench and "captioned_split(" in bench


def test_the_caption_picker_static_and_live():
    import numpy as np

    from genai_lib.widgets import picker

    def render(text):
        TOK.encode(text)  # refuses words outside the grammar
        return np.full((8, 8), len(text) / 50)

    options = [caption(r) for r in all_captions()[:3]]
    static = picker(render, options, mode="static")
    stack = static.children[1]
    assert len(stack.children) == 3 and "alt=" in stack.children[0].value
    live = picker(render, options, typed=True, mode="live")
    drop, box, out = live.children
    assert "<img" in out.value
    box.value = "a huge seven"
    assert "unknown words" in out.value
    with pytest.raises(ValueError, match="distinct"):
        picker(render, options + options[:1])
