"""Tests for chapter 17's library: attribution, Shapley values, MIG, latent directions, the GPT's
internals (logit lens, probes, induction scores), the shapes dataset and the beta-VAE recipe."""

import math

import pytest
import torch
from torch import nn

from genai_lib.attribution import (
    completeness_gap,
    exact_shapley,
    integrated_gradients,
    kernel_shap,
    masked_value,
    patch_players,
    saliency,
    smoothgrad,
)
from genai_lib.interpret import (
    discrete_mutual_info,
    induction_scores,
    latent_directions,
    linear_probe,
    logit_lens,
    mig,
    previous_token_scores,
    repeated_tokens,
)
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.shapes import FACTORS, SHAPES, ShapesSpec, factor_values, load_shapes, render_shapes


def _net(seed=0, out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, out)).double()


def _x(b=4, seed=1):
    return torch.randn(b, 1, 3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- attribution


def test_saliency_is_the_gradient_of_a_linear_model():
    w = torch.randn(12, dtype=torch.float64)
    f = lambda x: x.flatten(1) @ w  # noqa: E731
    torch.testing.assert_close(saliency(f, _x()), w.view(1, 1, 3, 4).expand(4, -1, -1, -1))


def test_integrated_gradients_is_complete():
    f, x = _net(), _x()
    base = torch.full_like(x, 0.3)
    for steps, tol in ((16, 1e-3), (256, 1e-5)):  # the trapezoid error falls like 1/steps^2
        ig = integrated_gradients(f, x, 2, baseline=base, steps=steps)
        gap = completeness_gap(f, x, ig, 2, baseline=base)
        assert gap.abs().max() < tol, (steps, gap)
    # and the check can fail: plain saliency times the input is not complete
    gap = completeness_gap(f, x, saliency(f, x, 2) * (x - base), 2, baseline=base)
    assert gap.abs().max() > 1e-2


def test_integrated_gradients_closed_form_on_a_quadratic():
    # f(x) = sum_i c_i x_i^2, baseline 0: IG_i = c_i x_i^2 exactly (the gradient 2 c_i a x_i integrates to c_i x_i)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    f = lambda x: (c * x.flatten(1) ** 2).sum(1)  # noqa: E731
    x = torch.tensor([[[1.0, 2.0, -3.0]]], dtype=torch.float64)
    torch.testing.assert_close(integrated_gradients(f, x, steps=8).flatten(), c * x.flatten() ** 2)


def test_integrated_gradients_equals_captum():
    captum_attr = pytest.importorskip("captum.attr")  # pinned in requirements.txt
    f, x = _net(), _x()
    ig = integrated_gradients(f, x, 1, steps=400)
    theirs = captum_attr.IntegratedGradients(f).attribute(x, target=1, n_steps=200)  # Gauss-Legendre
    torch.testing.assert_close(ig, theirs, atol=1e-6, rtol=1e-5)
    # Captum's "riemann_trapezoid" weights each of its n points by 1/n (ends halved), which sums to
    # (n - 1)/n, not 1; rescaled, it is the trapezoid rule written here, to rounding.
    n = 33
    trap = captum_attr.IntegratedGradients(f).attribute(x, target=1, n_steps=n, method="riemann_trapezoid")
    torch.testing.assert_close(trap * n / (n - 1), integrated_gradients(f, x, 1, steps=n - 1))


def test_integrated_gradients_with_per_example_targets_and_chunks():
    f, x = _net(), _x()
    t = torch.tensor([0, 1, 2, 0])
    whole = integrated_gradients(f, x, t, steps=20, chunk=10_000)
    torch.testing.assert_close(integrated_gradients(f, x, t, steps=20, chunk=4), whole)
    for i in range(4):
        torch.testing.assert_close(whole[i : i + 1], integrated_gradients(f, x[i : i + 1], int(t[i]), steps=20))


def test_smoothgrad_averages_noisy_saliency_and_is_seeded():
    f, x = _net(), _x()
    a = smoothgrad(f, x, 0, n=8, sigma=0.1, generator=torch.Generator().manual_seed(0))
    b = smoothgrad(f, x, 0, n=8, sigma=0.1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, saliency(f, x, 0))
    w = torch.randn(12, dtype=torch.float64)  # a linear score: the noise changes nothing
    lin = lambda x: x.flatten(1) @ w  # noqa: E731
    torch.testing.assert_close(smoothgrad(lin, x, n=3), saliency(lin, x))


# --------------------------------------------------------------------------- Shapley values


def _game(masks):
    """v(S) = x1 + 2 x2 + 3 x3 + 4 x1 x2: phi = (1 + 2, 2 + 2, 3), the interaction split evenly."""
    m = masks.double()
    return m[:, 0] + 2 * m[:, 1] + 3 * m[:, 2] + 4 * m[:, 0] * m[:, 1]


def test_exact_shapley_on_a_three_feature_game():
    torch.testing.assert_close(exact_shapley(_game, 3), torch.tensor([3.0, 4.0, 3.0], dtype=torch.float64))
    # a pure 3-way product: each player gets a third
    prod = lambda m: m.double().prod(1) * 6  # noqa: E731
    torch.testing.assert_close(exact_shapley(prod, 3), torch.full((3,), 2.0, dtype=torch.float64))


def test_exact_shapley_is_efficient_and_symmetric_on_a_random_game():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(2**6, generator=g, dtype=torch.float64)
    value = lambda m: table[(m.long() * (2 ** torch.arange(6))).sum(1)]  # noqa: E731
    phi = exact_shapley(value, 6)
    full, empty = torch.ones(1, 6, dtype=torch.bool), torch.zeros(1, 6, dtype=torch.bool)
    assert abs(float(phi.sum() - (value(full) - value(empty)))) < 1e-12  # efficiency
    # a player that changes nothing gets 0 (the dummy axiom)
    dummy = lambda m: table[(m[:, :5].long() * (2 ** torch.arange(5))).sum(1)]  # noqa: E731
    assert abs(float(exact_shapley(dummy, 6)[5])) < 1e-12


def test_kernel_shap_approaches_the_exact_values():
    w = torch.arange(1.0, 11.0, dtype=torch.float64)
    value = lambda m: torch.sin(m.double() @ w / 5) + m[:, 0] * m[:, 3] * m[:, 7]  # noqa: E731
    exact = exact_shapley(value, 10)
    errs = []
    for n in (100, 1000):  # sampled: the error falls like 1/sqrt(n)
        ests = [kernel_shap(value, 10, n_samples=n, generator=torch.Generator().manual_seed(s)) for s in range(4)]
        assert all(abs(float(e.sum() - exact.sum())) < 1e-10 for e in ests)  # efficiency holds exactly
        errs.append(sum(float((e - exact).abs().max()) for e in ests) / 4)
    assert errs[1] < 0.1 and errs[1] < errs[0] / 2, errs
    # with every coalition listed (2^10 - 2 of them) and its kernel weight, the fit is exact
    torch.testing.assert_close(kernel_shap(value, 10, n_samples=2**10), exact)
    # additive games are fitted exactly from any sample
    add = lambda m: m.double() @ w  # noqa: E731
    torch.testing.assert_close(kernel_shap(add, 10, n_samples=40, generator=torch.Generator().manual_seed(1)), w)


def test_masked_value_and_patch_players_on_a_linear_model():
    players = patch_players((1, 4, 4), 2)  # 4 patches of 2x2
    assert players.shape == (4, 1, 4, 4) and bool((players.sum(0) == 1).all())
    w = torch.randn(16, dtype=torch.float64)
    f = lambda x: x.flatten(1) @ w  # noqa: E731
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    value = masked_value(f, x, players, baseline=0.0)
    phi = exact_shapley(value, 4)  # linear model, zero baseline: phi_j = sum of w_i x_i over patch j
    want = torch.stack([(w * x.flatten() * p.flatten().double()).sum() for p in players])
    torch.testing.assert_close(phi, want)


# --------------------------------------------------------------------------- MIG


def test_mig_is_one_for_a_disentangled_code_and_low_for_a_rotation():
    _, labels = load_shapes(ShapesSpec(n_scale=3, n_rotation=3, n_x=4, n_y=4))
    z = labels.double()
    score, gaps = mig(z, labels)
    assert score > 1 - 1e-6 and gaps.shape == (5,)
    # extra coordinates of pure noise lower it only by the plug-in estimate's bias (432 images, 20 bins)
    noisy = torch.cat([z, torch.randn(len(z), 3, generator=torch.Generator().manual_seed(0), dtype=z.dtype)], 1)
    assert 0.9 < mig(noisy, labels)[0] < 1
    zs = (z - z.mean(0)) / z.std(0)
    rotated = []
    for s in range(3):
        q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(s), dtype=z.dtype))
        rotated.append(mig(zs @ q, labels)[0])
    assert max(rotated) < 0.3, rotated
    # a code that copies one factor into two coordinates has gap 0 for it
    assert float(mig(torch.cat([z, z[:, :1]], 1), labels)[1][0]) < 1e-9


def test_discrete_mutual_info_closed_forms():
    a = torch.arange(8) % 4
    assert abs(discrete_mutual_info(a, a) - math.log(4)) < 1e-12  # I(a; a) = H(a)
    b = torch.arange(8) // 4  # independent of a on this grid
    assert discrete_mutual_info(a, b) < 1e-12


# --------------------------------------------------------------------------- latent directions


def test_latent_directions_recover_a_linear_generator():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 4, generator=g)
    scale = torch.tensor([5.0, 2.0, 1.0, 0.5])
    mix, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    feats = lambda z: (z * scale) @ mix.T  # noqa: E731  # variance 25, 4, 1, 0.25 along the columns of mix
    dirs, ratio = latent_directions(feats, z, k=2)
    assert dirs.shape == (2, 4) and ratio.shape == (2,)
    # the first two principal directions in latent space are the first two axes (up to sign)
    torch.testing.assert_close(dirs.abs(), torch.eye(4)[:2], atol=0.05, rtol=0)
    assert ratio[0] > ratio[1] and abs(float(ratio[0]) - 25 / 30.25) < 0.05


# --------------------------------------------------------------------------- GPT internals


def _gpt(seed=0, pos="rope"):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16, pos=pos)).eval()


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_logit_lens_last_row_is_the_model_output(pos):
    m = _gpt(pos=pos)
    idx = repeated_tokens(3, 8, 20, generator=torch.Generator().manual_seed(0))
    lens = logit_lens(m, idx)
    assert lens.shape == (3, 3, 16, 20)
    torch.testing.assert_close(lens[-1], m(idx)[0].log_softmax(-1))
    torch.testing.assert_close(lens.exp().sum(-1), torch.ones(3, 3, 16))


def test_induction_score_of_a_hand_built_attention_pattern():
    period, t_len = 5, 10
    ideal = torch.zeros(2, 3, t_len, t_len)
    ideal[..., 0, 0] = 1
    for t in range(1, t_len):
        ideal[:, 0, t, t - 1] = 1  # head 0: previous token
        ideal[:, 1, t, max(t - period + 1, 0) if t >= period else t] = 1  # head 1: induction
        ideal[:, 2, t, : t + 1] = 1 / (t + 1)  # head 2: uniform
    scores = induction_scores([ideal, ideal.flip(1)], period)  # layer 1: heads in reverse order
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores[0, 1], torch.tensor(1.0))
    assert float(scores[0, 0]) == 0.0 and float(scores[0, 2]) < 0.2
    assert divmod(int(scores.argmax()), 3) in ((0, 1), (1, 1))  # the induction head is found
    torch.testing.assert_close(scores[1], scores[0].flip(0))


def test_previous_token_score_of_a_hand_built_attention_pattern():
    t_len = 10
    w = torch.zeros(2, 3, t_len, t_len)
    w[..., 0, 0] = 1
    for t in range(1, t_len):
        w[:, 0, t, t] = 1  # head 0: attends to itself
        w[:, 1, t, t - 1] = 1  # head 1: previous token
        w[:, 2, t, : t + 1] = 1 / (t + 1)  # head 2: uniform
    w[1, 1, 5] = 0
    w[1, 1, 5, 0] = 1  # one query of one sequence looks elsewhere: 17 of 18 rows hit
    scores = previous_token_scores([w, w.flip(1)])
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores[0, 1], torch.tensor(17 / 18))
    assert float(scores[0, 0]) == 0.0
    uniform = sum(1 / (t + 1) for t in range(1, t_len)) / (t_len - 1)
    torch.testing.assert_close(scores[0, 2], torch.tensor(uniform))
    torch.testing.assert_close(scores[1], scores[0].flip(0))
    # an induction pattern is not a previous-token pattern (period 5: key t - 4)
    ind = torch.zeros(1, 1, t_len, t_len)
    for t in range(t_len):
        ind[0, 0, t, t - 4 if t >= 5 else t] = 1
    assert float(previous_token_scores(ind)) == 0.0 and float(induction_scores(ind, 5)) == 1.0


def test_repeated_tokens_repeat():
    s = repeated_tokens(4, 6, 50, generator=torch.Generator().manual_seed(0), low=3)
    assert s.shape == (4, 12) and bool((s[:, :6] == s[:, 6:]).all()) and int(s.min()) >= 3


def test_linear_probe_reads_a_linearly_coded_label():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    x = torch.randn(600, 8, generator=g)
    x[torch.arange(600), y] += 3  # class c is written along axis c
    acc = linear_probe((x[:400], y[:400]), (x[400:], y[400:]))
    assert acc > 0.9
    shuffled = y[torch.randperm(600, generator=g)]  # no relation: chance level
    assert linear_probe((x[:400], shuffled[:400]), (x[400:], shuffled[400:])) < 0.5


# --------------------------------------------------------------------------- the shapes data


def test_shapes_dataset_shapes_labels_and_determinism():
    spec = ShapesSpec()
    x, labels = load_shapes(spec)
    n = len(SHAPES) * spec.n_scale * spec.n_rotation * spec.n_x * spec.n_y
    assert x.shape == (n, 1, 28, 28) and labels.shape == (n, len(FACTORS)) and n == spec.n_images
    assert set(x.unique().tolist()) == {0.0, 1.0} and bool((x.sum((1, 2, 3)) > 0).all())
    assert labels.dtype == torch.long and [int(c.max()) + 1 for c in labels.T] == list(spec.sizes)
    assert len(torch.unique(labels, dim=0)) == n  # every combination once
    x2, l2 = load_shapes(spec)
    assert torch.equal(x, x2) and torch.equal(labels, l2)
    assert float(x[:, :, 0].sum() + x[:, :, -1].sum() + x[..., 0].sum() + x[..., -1].sum()) == 0  # none clipped


def test_shapes_factors_act_as_labelled():
    vals = factor_values(ShapesSpec())
    one = lambda **kw: render_shapes(  # noqa: E731
        *[torch.tensor([float(kw.get(k, d))]) for k, d in zip(FACTORS, (0, 1.0, 0.0, 0.0, 0.0), strict=True)]
    )[0, 0]
    small, big = one(scale=0.5), one(scale=1.0)
    assert small.sum() < big.sum() * 0.4  # area grows like scale^2
    right = one(x=0.5)
    cols = torch.arange(28).float()
    assert float((right.sum(0) * cols).sum() / right.sum()) > float((big.sum(0) * cols).sum() / big.sum()) + 5
    assert not torch.equal(one(shape=1, rotation=0.0), one(shape=1, rotation=math.pi / 4))  # rotation shows
    square = one(shape=0)
    torch.testing.assert_close(one(shape=0, rotation=math.pi / 2), square)  # a square's symmetry
    assert vals["rotation"].max() < math.pi / 2


def test_shapes_vae_recipe_trains_then_loads_and_scores(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    from genai_lib.recipes.interpret import shapes_betas, shapes_mig, train_shapes_vae

    assert shapes_betas(fast=True) == (1.0, 8.0) and len(shapes_betas(fast=False)) >= 4
    model, hist = train_shapes_vae(4.0, fast=True)
    assert model.cfg.beta == 4.0 and not hist.from_cache
    losses = hist["loss"]
    assert losses[-1] < losses[0] * 0.7  # it learned
    again, hist2 = train_shapes_vae(4.0, fast=True)
    assert hist2.from_cache
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    score, gaps = shapes_mig(model)
    assert 0 <= score <= 1 and gaps.shape == (5,)


def test_copy_stream_repeats_every_segment():
    from genai_lib.recipes.interpret import copy_stream

    s = copy_stream(200, 50, (3, 5), generator=torch.Generator().manual_seed(0))
    assert s.shape == (200,) and int(s.max()) < 50
    pos, seen = 0, 0
    while pos + 10 <= 200:  # walk the segments: each is followed by itself
        p = next(p for p in (3, 4, 5) if torch.equal(s[pos : pos + p], s[pos + p : pos + 2 * p]))
        pos, seen = pos + 2 * p, seen + 1
    assert seen >= 15
    again = copy_stream(200, 50, (3, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)
