"""Chapter 19: the green-list text watermark, the tree-ring image watermark, DDIM inversion, the
detection scores and the copy search."""

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from genai_lib.forensics import near_copies, nearest_neighbours, roc_auc, roc_curve, tpr_at_fpr
from genai_lib.models.diffusion import DiffusionConfig, GaussianDiffusion
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.models.unet import MLPDenoiserConfig
from genai_lib.recipes.ethics import sequence_nats
from genai_lib.sampling import generate_tokens
from genai_lib.watermark import (
    GreenList,
    GumbelKey,
    GumbelProcessor,
    WatermarkProcessor,
    embed_tree_ring,
    green_fraction,
    gumbel_pvalue,
    gumbel_score,
    random_token_edits,
    ring_mask,
    tree_ring_distance,
    tree_ring_key,
    watermark_z,
)

Z99 = 2.3263478740408408  # the one-sided 1% point of N(0, 1)


# ------------------------------------------------------------------------------ the green list
def test_the_green_list_is_a_deterministic_function_of_the_previous_token_and_the_key():
    a, b = GreenList(50, gamma=0.25, key=7), GreenList(50, gamma=0.25, key=7)
    for prev in (0, 3, 49):
        assert torch.equal(a.row(prev), b.row(prev))  # a fresh instance draws the same list
        assert int(a.row(prev).sum()) == a.k == round(0.25 * 50)
    assert not torch.equal(a.row(3), a.row(4))  # another previous token, another list
    assert not torch.equal(a.row(3), GreenList(50, gamma=0.25, key=8).row(3))  # another key
    prev = torch.tensor([[3, 0], [49, 3]])
    masks = a.mask(prev)  # batched look-up = row by row
    assert masks.shape == (2, 2, 50)
    assert torch.equal(masks[1, 1], a.row(3)) and torch.equal(masks[1, 0], a.row(49))


def test_the_processor_adds_delta_to_the_green_logits_only():
    green = GreenList(20, gamma=0.5, key=1)
    ids = torch.tensor([[1, 5], [2, 9]])
    logits = torch.randn(2, 20)
    out = WatermarkProcessor(green, delta=1.5)(ids, logits)
    torch.testing.assert_close(out - logits, 1.5 * green.mask(torch.tensor([5, 9])).float())
    assert torch.equal(WatermarkProcessor(green, delta=0.0)(ids, logits), logits)


def test_a_strong_watermark_in_the_sampling_loop_makes_every_token_green():
    green = GreenList(30, gamma=0.25, key=3)

    def step(out, state):  # a "model" that knows nothing: uniform logits
        return torch.zeros(len(out), 30), None

    g = torch.Generator().manual_seed(0)
    idx = torch.zeros(8, 1, dtype=torch.long)
    plain = generate_tokens(step, idx, 60, generator=g)
    marked = generate_tokens(step, idx, 60, generator=g, logits_processor=WatermarkProcessor(green, delta=30.0))
    assert bool((green_fraction(marked, green) == 1).all())
    assert float(green_fraction(plain, green).mean()) < 0.45
    assert bool((watermark_z(marked, green) > 6).all())


def test_gpt_generate_takes_the_watermark_processor():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16))
    green = GreenList(16, gamma=0.25, key=5)
    out = model.generate(
        torch.zeros(2, 1, dtype=torch.long), 20, generator=torch.Generator().manual_seed(1),
        logits_processor=WatermarkProcessor(green, delta=40.0),
    )  # fmt: skip
    assert out.shape == (2, 21) and bool((green_fraction(out, green) == 1).all())


def test_the_z_score_is_the_one_proportion_test_counted_by_hand():
    green = GreenList(10, gamma=0.3, key=0)
    ids = torch.tensor([4, 1, 7, 7, 2, 9, 0, 4, 4, 8])
    hits = sum(bool(green.row(int(p))[int(c)]) for p, c in zip(ids[:-1], ids[1:], strict=True))
    n, g = len(ids) - 1, green.fraction
    want = (hits - g * n) / math.sqrt(n * g * (1 - g))
    assert float(watermark_z(ids, green)) == pytest.approx(want)


def test_ignore_repeated_counts_each_pair_once():
    green = GreenList(10, gamma=0.5, key=2)
    ids = torch.tensor([[1, 2, 1, 2, 1, 2, 1, 2]])  # only the pairs (1, 2) and (2, 1)
    hits = int(green.row(1)[2]) + int(green.row(2)[1])
    z = float(watermark_z(ids, green, ignore_repeated=True))
    assert z == pytest.approx((hits - 0.5 * 2) / math.sqrt(2 * 0.25))


@pytest.mark.parametrize("ignore_repeated", [False, True])
def test_the_z_score_is_standard_normal_on_unwatermarked_text(ignore_repeated):
    # unwatermarked text: uniform random tokens, scored under 400 keys (the null hypothesis)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (400, 201), generator=g)
    z = torch.cat(
        [watermark_z(ids[k : k + 1], GreenList(64, key=k), ignore_repeated=ignore_repeated) for k in range(400)]
    )
    assert abs(float(z.mean())) < 0.15  # se of the mean 1 / sqrt(400) = 0.05
    assert 0.9 < float(z.std()) < 1.1
    assert float((z > Z99).double().mean()) < 0.03  # about 1% false positives


def test_random_edits_wash_the_watermark_out():
    green = GreenList(40, gamma=0.25, key=0)

    def step(out, state):
        return torch.zeros(len(out), 40), None

    g = torch.Generator().manual_seed(0)
    marked = generate_tokens(step, torch.zeros(64, 1, dtype=torch.long), 200, generator=g,
                             logits_processor=WatermarkProcessor(green, delta=3.0))  # fmt: skip
    z = [float(watermark_z(random_token_edits(marked, f, 40, generator=g), green).mean()) for f in (0, 0.3, 1)]
    assert z[0] > z[1] > z[2] and abs(z[2]) < 0.6
    same = random_token_edits(marked, 0.0, 40, generator=g)
    assert torch.equal(same, marked)


# ------------------------------------------------------------------------------ images
def test_ddim_inversion_recovers_the_initial_noise_of_a_tiny_model():
    torch.manual_seed(0)
    model = GaussianDiffusion(DiffusionConfig(MLPDenoiserConfig(dim=4, hidden=16, depth=2, emb_dim=8), steps=200))
    z = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    x = model.sample(32, steps=100, noise=z)
    back = model.encode(x, steps=100)
    assert float((back - z).norm() / z.norm()) < 0.05
    other = model.encode(x[torch.randperm(32)], steps=100)
    assert float((other - z).norm() / z.norm()) > 0.5  # the match is not a coincidence


def test_the_tree_ring_key_is_recovered_from_marked_noise_only():
    mask = ring_mask(28, 6)
    key = tree_ring_key(28, 6, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    marked = embed_tree_ring(noise, key, mask)
    assert marked.dtype == noise.dtype and marked.shape == noise.shape
    spec = torch.fft.fftshift(torch.fft.fft2(marked[:, 0].double()), dim=(-2, -1))
    torch.testing.assert_close(spec[:, mask], key[mask].expand(16, -1), atol=1e-4, rtol=0)  # real noise, key intact
    spec0 = torch.fft.fftshift(torch.fft.fft2(noise[:, 0].double()), dim=(-2, -1))
    torch.testing.assert_close(spec[:, ~mask], spec0[:, ~mask], atol=1e-3, rtol=0)  # the rest unchanged
    d_marked, d_plain = tree_ring_distance(marked, key, mask), tree_ring_distance(noise, key, mask)
    assert float(d_marked.max()) < 1e-3 < 5 < float(d_plain.min())
    inside = sum(round(math.hypot(i - 14, j - 14)) <= 6 for i in range(28) for j in range(28))
    assert int(mask.sum()) == inside and bool(mask[14, 14]) and bool(mask[14, 20]) and not bool(mask[14, 21])


# ------------------------------------------------------------------------------ scores and copies
def test_roc_auc_and_the_curve_agree_with_sklearn():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(300, generator=g) + 0.8
    neg = torch.randn(200, generator=g)
    pos[:20] = neg[:20]  # ties between classes count one half
    want = roc_auc_score([1] * 300 + [0] * 200, torch.cat([pos, neg]).numpy())
    assert roc_auc(pos, neg) == pytest.approx(want, abs=1e-12)
    fpr, tpr = roc_curve(pos, neg)
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(want, abs=1e-12)
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and roc_auc([0.0], [1.0]) == 0.0


def test_tpr_at_fpr_uses_a_threshold_that_lets_through_at_most_that_many_negatives():
    neg = torch.arange(100.0)  # 0..99
    pos = torch.tensor([97.5, 98.5, 99.5, 50.0])
    assert tpr_at_fpr(pos, neg, 0.01) == 0.5  # threshold 98: one negative (99) above it
    assert tpr_at_fpr(pos, neg, 0.0) == 0.25  # threshold 99: only 99.5 above
    assert tpr_at_fpr(pos, neg, 0.02) == 0.75  # threshold 97


def test_copy_search_finds_a_planted_duplicate():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(500, 1, 8, 8, generator=g)
    held = torch.rand(200, 1, 8, 8, generator=g)
    samples = torch.rand(50, 1, 8, 8, generator=g) + 0.5  # new images, off the training set
    samples[13] = train[321] + 0.001  # a near-copy of training image 321
    d, i = nearest_neighbours(samples, train, chunk=7)
    brute = torch.cdist(samples.reshape(50, -1), train.reshape(500, -1)).min(1)
    torch.testing.assert_close(d, brute.values, atol=1e-4, rtol=0)
    assert torch.equal(i, brute.indices) and int(i[13]) == 321
    res = near_copies(samples, train, held)
    assert res["fraction"] == pytest.approx(1 / 50) and res["distances"][13] < res["threshold"]


def test_sequence_nats_matches_the_full_context_loss_when_the_text_fits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16))
    ids = torch.randint(0, 12, (3, 17))
    logits = model(ids[:, :-1])[0]
    want = torch.nn.functional.cross_entropy(logits[:, 4:].transpose(1, 2), ids[:, 5:], reduction="none").mean(1)
    torch.testing.assert_close(sequence_nats(model, ids, 5), want.double(), atol=1e-5, rtol=0)
    longer = torch.randint(0, 12, (2, 70))  # longer than the block: windows overlapping by half
    assert sequence_nats(model, longer, 1).shape == (2,)


def test_cached_refresh_computes_again_and_replaces_the_entry(tmp_path, monkeypatch):
    from genai_lib.train_cache import cached

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"n": torch.tensor(len(calls))}

    assert int(cached("x", {"a": 1}, compute)["n"]) == 1
    assert int(cached("x", {"a": 1}, compute)["n"]) == 1  # loaded
    assert int(cached("x", {"a": 1}, compute, refresh=True)["n"]) == 2  # computed again
    assert int(cached("x", {"a": 1}, compute)["n"]) == 2 and len(calls) == 2  # and stored


def test_the_benchmark_calls_the_chapter_recipes():
    import importlib.util
    from pathlib import Path

    from genai_lib.recipes import ethics

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ethics.py"
    spec = importlib.util.spec_from_file_location("bench_ethics", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.text_watermark is ethics.text_watermark and bench.detector_table is ethics.detector_table
    assert bench.image_watermark is ethics.image_watermark and bench.copy_search is ethics.copy_search


# ----------------------------------------------------------- the Gumbel-max (distortion-free) watermark
def test_the_gumbel_key_is_a_deterministic_function_of_the_key_position_and_previous_token():
    a, b = GumbelKey(30, key=7), GumbelKey(30, key=7)
    for t, prev in ((0, 0), (5, 3), (99, 29)):
        assert torch.equal(a.uniforms(t, prev), b.uniforms(t, prev))  # a fresh instance: the same
    assert not torch.equal(a.uniforms(3, 1), a.uniforms(4, 1))  # another position
    assert not torch.equal(a.uniforms(3, 1), a.uniforms(3, 2))  # another previous token
    assert not torch.equal(a.uniforms(3, 1), GumbelKey(30, key=8).uniforms(3, 1))  # another key
    u = a.table(torch.tensor([[1, 2], [5, 5]]), offset=2)
    assert u.shape == (2, 2, 30) and torch.equal(u[0, 1], a.uniforms(3, 2))
    assert float(u.min()) > 0 and float(u.max()) < 1


def test_gumbel_sampling_has_the_model_distribution_over_keys():
    # one fixed next-token distribution p; over 4000 keys the watermarked choice is a sample of p
    p = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = p.log()[None]
    ids = torch.zeros(1, 1, dtype=torch.long)
    picks = torch.tensor(
        [int(GumbelProcessor(GumbelKey(5, key=k), start=1)(ids, logits).argmax()) for k in range(4000)]
    )
    freq = torch.bincount(picks, minlength=5).double() / len(picks)
    assert float((freq - p.double()).abs().max()) < 0.03  # se of each frequency <= 0.008


def test_the_gumbel_processor_leaves_exactly_one_token_for_the_sampler():
    key = GumbelKey(12, key=1)
    out = GumbelProcessor(key, start=2)(torch.zeros(3, 4, dtype=torch.long), torch.randn(3, 12))
    assert bool((torch.isfinite(out).sum(-1) == 1).all())
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16))
    prompt = torch.randint(0, 12, (4, 3), generator=torch.Generator().manual_seed(0))
    runs = [
        model.generate(prompt, 30, generator=torch.Generator().manual_seed(s),
                       logits_processor=GumbelProcessor(key, start=3))
        for s in (0, 1)
    ]  # fmt: skip
    assert torch.equal(runs[0], runs[1])  # the key, not the sampler's generator, chooses
    assert bool((gumbel_pvalue(runs[0][:, 2:], key) < 1e-3).all())  # the key finds its text
    plain = model.generate(prompt, 30, generator=torch.Generator().manual_seed(0))
    assert bool((gumbel_pvalue(plain[:, 2:], key) > 1e-3).all())


def test_the_gumbel_score_is_its_gamma_null_on_unwatermarked_text():
    # text written without the key: random tokens that repeat pairs a lot (8 symbols), 400 keys
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 8, (400, 201), generator=g)
    s = torch.cat([gumbel_score(ids[k : k + 1], GumbelKey(8, key=k)) for k in range(400)])
    assert abs(float(s.mean()) - 200) < 3 * 200**0.5 / 20  # Gamma(200, 1): mean 200, sd sqrt(200)
    assert 0.85 < float(s.std()) / 200**0.5 < 1.15
    pv = torch.cat([gumbel_pvalue(ids[k : k + 1], GumbelKey(8, key=k)) for k in range(400)])
    assert abs(float(pv.mean()) - 0.5) < 0.05 and float((pv < 0.01).double().mean()) < 0.03


def test_the_gumbel_score_counted_by_hand():
    key = GumbelKey(10, key=3)
    ids = torch.tensor([4, 1, 7, 7, 2])
    want = sum(-math.log(1 - float(key.uniforms(2 + j, int(ids[j]))[int(ids[j + 1])])) for j in range(4))
    assert float(gumbel_score(ids, key, offset=2)) == pytest.approx(want)
    q = torch.special.gammaincc(torch.tensor(4.0, dtype=torch.float64), torch.tensor(want, dtype=torch.float64))
    assert float(gumbel_pvalue(ids, key, offset=2)) == pytest.approx(float(q))
