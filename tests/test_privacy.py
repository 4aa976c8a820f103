"""Chapter 16: DP-SGD, the RDP accountant, FedAvg and the privacy attacks (tiny models, seconds)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genai_lib.data import make_loader
from genai_lib.federated import client_update, fedavg, split_non_iid
from genai_lib.models.cvae import CVAE, CVAEConfig, MLPClassifier, MLPClassifierConfig, ce_sample_loss, cvae_sample_loss
from genai_lib.privacy import (
    PoissonLoader,
    clip_per_sample,
    dp_phase,
    epsilon,
    noise_for_epsilon,
    per_sample_grads,
    privatize,
    rdp_sampled_gaussian,
)
from genai_lib.privacy_attacks import (
    auc,
    exposure,
    invert_gradient,
    lira_scores,
    logit_confidence,
    roc_curve,
    tpr_at_fpr,
)
from genai_lib.train import fit

ORDERS = list(range(2, 257))


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def _batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(3, (n,), generator=g)


def test_per_sample_grads_equal_a_loop_over_samples():
    m, (x, y) = _net(), _batch()
    fast = per_sample_grads(m, ce_sample_loss, (x, y))
    for i in range(len(x)):
        m.zero_grad()
        F.cross_entropy(m(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in m.named_parameters():
            torch.testing.assert_close(fast[n][i], p.grad, rtol=1e-5, atol=1e-6)
    loop = per_sample_grads(m, ce_sample_loss, (x, y), method="loop")
    for n in fast:
        torch.testing.assert_close(fast[n], loop[n], rtol=1e-5, atol=1e-6)


def test_per_sample_grads_equal_opacus():
    opacus = pytest.importorskip("opacus")
    m, (x, y) = _net(), _batch()
    ours = per_sample_grads(m, ce_sample_loss, (x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = opacus.GradSampleModule(m, loss_reduction="sum")
        F.cross_entropy(gm(x), y, reduction="sum").backward()
    for n, p in gm.named_parameters():
        torch.testing.assert_close(p.grad_sample, ours[n.removeprefix("_module.")], rtol=1e-5, atol=1e-6)


def test_the_cvae_per_sample_loss_works_under_vmap():
    m = CVAE(CVAEConfig(z_dim=2, hidden=8))
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    (eps,) = m.noise_for((x,), torch.Generator().manual_seed(0))
    fast = per_sample_grads(m, cvae_sample_loss, (x, y, eps))
    loop = per_sample_grads(m, cvae_sample_loss, (x, y, eps), method="loop")
    for n in fast:
        torch.testing.assert_close(fast[n], loop[n], rtol=1e-4, atol=1e-5)


def test_clipping_bounds_every_per_sample_norm():
    m, (x, y) = _net(), _batch(n=16)
    scale = torch.logspace(-3, 2, 16)  # norms from tiny to large, so every c splits them
    grads = {
        n: g * scale.view(-1, *[1] * (g.dim() - 1)) for n, g in per_sample_grads(m, ce_sample_loss, (x, y)).items()
    }
    for c in (0.01, 0.5, 3.0):
        clipped, norms = clip_per_sample(grads, c)
        assert (norms <= c).any() and (norms > c).any()
        after = torch.stack([g.flatten(1).pow(2).sum(1) for g in clipped.values()]).sum(0).sqrt()
        assert (after <= c * (1 + 1e-5)).all()
        small = norms <= c  # examples under the bound are left alone
        torch.testing.assert_close(after[small], norms[small])
        torch.testing.assert_close(after[~small], torch.full_like(after[~small], c))


def test_privatize_is_the_clipped_mean_plus_noise_of_the_right_scale():
    grads = {"w": torch.randn(4000, 3, generator=torch.Generator().manual_seed(0)) * 10}
    clipped, _ = clip_per_sample(grads, 1.0)
    no_noise = privatize(grads, max_norm=1.0, noise_multiplier=0.0, expected_batch_size=4000)
    torch.testing.assert_close(no_noise["w"], clipped["w"].mean(0))
    draws = torch.stack(
        [privatize(grads, max_norm=1.0, noise_multiplier=2.0, expected_batch_size=4000,
                   generator=torch.Generator().manual_seed(s))["w"] for s in range(300)]
    )  # fmt: skip
    std = float((draws - no_noise["w"]).std())
    assert abs(std - 2.0 / 4000) < 0.15 * 2.0 / 4000  # sigma C / (q N)


def test_dp_step_through_fit_equals_opacus_optimizer_step():
    opacus = pytest.importorskip("opacus")
    x, y = _batch(n=8)
    ours, ref = _net(), _net()
    phase = dp_phase(ours, ce_sample_loss, max_norm=0.1, noise_multiplier=0.0, expected_batch_size=8,
                     optimizer="sgd", lr=0.5)  # fmt: skip
    fit(ours, make_loader(x, y, batch_size=8, shuffle=False), steps=1, phases=[phase], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = opacus.GradSampleModule(ref)
        opt = opacus.optimizers.DPOptimizer(
            torch.optim.SGD(gm.parameters(), lr=0.5), noise_multiplier=0.0, max_grad_norm=0.1, expected_batch_size=8
        )
        F.cross_entropy(gm(x), y).backward()
        opt.step()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_dp_training_run_learns_and_reports_its_epsilon():
    x, y = _batch(n=64, seed=3)
    y = (x[:, 0] > 0).long()  # a learnable rule
    m = _net()
    before = F.cross_entropy(m(x), y).item()
    sigma = noise_for_epsilon(8.0, 0.25, 40, 1e-5)
    phase = dp_phase(m, ce_sample_loss, max_norm=1.0, noise_multiplier=sigma, expected_batch_size=16, lr=0.05)
    fit(m, PoissonLoader(x, y, q=0.25), steps=40, phases=[phase], generator=torch.Generator().manual_seed(0),
        progress=False)  # fmt: skip
    assert F.cross_entropy(m(x), y).item() < before
    assert epsilon(0.25, sigma, 40, 1e-5) <= 8.0 + 1e-9


def test_poisson_loader_samples_at_rate_q_and_is_reproducible():
    loader = PoissonLoader(torch.arange(1000), q=0.1, seed=3)
    sizes = [len(b[0]) for b in loader]
    assert len(sizes) == 10 and abs(np.mean(sizes) - 100) < 15
    loader.set_epoch(0)
    again = [b[0] for b in loader]
    loader.set_epoch(0)
    assert all(torch.equal(a, b[0]) for a, b in zip(again, loader.iter_from(0), strict=True))
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader.iter_from(4)))[0], again[4])


def test_the_accountant_is_monotone_in_steps_and_noise():
    eps_steps = [epsilon(0.01, 1.1, t, 1e-5) for t in (100, 1000, 10000)]
    assert eps_steps[0] < eps_steps[1] < eps_steps[2]
    eps_noise = [epsilon(0.01, s, 1000, 1e-5) for s in (0.7, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(eps_noise, eps_noise[1:], strict=False))
    assert epsilon(0.01, 1.1, 1000, 1e-6) > epsilon(0.01, 1.1, 1000, 1e-5)  # smaller delta, larger epsilon


def test_the_accountant_matches_closed_forms_and_opacus():
    # q = 1: the Gaussian mechanism, RDP(alpha) = alpha / (2 sigma^2) (Mironov 2017, Proposition 7)
    assert rdp_sampled_gaussian(1.0, 2.0, [2, 10]) == pytest.approx([2 / 8, 10 / 8])
    # alpha = 2, any q: log(1 + q^2 (exp(1/sigma^2) - 1)) (the k <= 2 terms of the binomial sum)
    q, s = 0.05, 1.3
    assert rdp_sampled_gaussian(q, s, [2])[0] == pytest.approx(math.log1p(q * q * math.expm1(1 / s**2)))
    opacus_rdp = pytest.importorskip("opacus.accountants.analysis.rdp")
    for q, s, t in [(0.01, 1.1, 10000), (256 / 60000, 1.1, 60 * 235), (0.064, 1.0, 500), (0.2, 3.0, 50)]:
        ref_rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=s, steps=t, orders=ORDERS)
        np.testing.assert_allclose([t * r for r in rdp_sampled_gaussian(q, s, ORDERS)], ref_rdp, rtol=1e-9)
        ref_eps, _ = opacus_rdp.get_privacy_spent(orders=ORDERS, rdp=ref_rdp, delta=1e-5)
        assert epsilon(q, s, t, 1e-5) == pytest.approx(ref_eps, rel=1e-9)


def test_noise_for_epsilon_inverts_epsilon():
    for target in (1.0, 3.0, 8.0):
        s = noise_for_epsilon(target, 0.064, 300, 1e-5)
        assert epsilon(0.064, s, 300, 1e-5) <= target < epsilon(0.064, s - 2e-3, 300, 1e-5)


def _clf(seed=0):
    torch.manual_seed(seed)
    return MLPClassifier(MLPClassifierConfig(hidden=7, in_features=5, n_classes=3))


def _client(x, y):
    return make_loader(x, y, batch_size=len(x), shuffle=False)


def test_fedavg_with_one_client_equals_plain_sgd():
    x, y = _batch(n=12)
    fed, plain = _clf(), _clf()

    def loader():  # mini-batches, shuffled: the client's stream must go on from round to round
        return make_loader(x, y, batch_size=4, generator=torch.Generator().manual_seed(5))

    fedavg(fed, [loader()], rounds=5, local_steps=2, lr=0.1, progress=False)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    fit(plain, loader(), steps=10, optimizer=opt, progress=False)
    for a, b in zip(fed.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_fedavg_weights_clients_by_size_and_dp_fedavg_clips():
    x, y = _batch(n=12)
    m = _clf()
    u1 = client_update(m, [(x[:4], y[:4])], lr=0.1)
    u2 = client_update(m, [(x[4:], y[4:])], lr=0.1)
    start = torch.cat([p.detach().flatten() for p in m.parameters()])
    fedavg(m, [_client(x[:4], y[:4]), _client(x[4:], y[4:])], rounds=1, local_steps=1, lr=0.1, progress=False)
    after = torch.cat([p.detach().flatten() for p in m.parameters()])
    torch.testing.assert_close(after - start, (4 * u1 + 8 * u2) / 12)
    m2 = _clf()
    fedavg(m2, [_client(x[:4], y[:4]), _client(x[4:], y[4:])], rounds=1, local_steps=1, lr=100.0, clip=1e-3,
           progress=False)  # fmt: skip
    moved = torch.cat([p.detach().flatten() for p in m2.parameters()]) - start
    assert float(moved.norm()) <= 1e-3 * (1 + 1e-5)


def test_split_non_iid_gives_each_client_its_digits():
    labels = torch.arange(100) % 10
    parts = split_non_iid(labels, 10, 2, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.cat(parts).tolist()) == list(range(100))  # a partition
    assert all(len(labels[p].unique()) == 2 for p in parts)


def test_roc_auc_and_tpr_at_low_fpr():
    assert auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and auc([0.0], [1.0]) == 0.0 and auc([1.0], [1.0]) == 0.5
    rng = np.random.default_rng(0)
    m, o = rng.normal(1, 1, 4000), rng.normal(0, 1, 4000)
    assert auc(m, o) == pytest.approx(0.760, abs=0.02)  # Phi(1 / sqrt 2) for unit-variance Gaussians
    fpr, tpr = roc_curve(m, o)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and (np.diff(fpr) >= 0).all()
    assert tpr_at_fpr(m, o, 0.01) == pytest.approx(0.092, abs=0.03)  # 1 - Phi(2.326 - 1)


def test_logit_confidence_and_lira():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    p = logits.softmax(1)[0, 0]
    torch.testing.assert_close(logit_confidence(logits, torch.tensor([0])), torch.log(p / (1 - p)).reshape(1))
    rng = np.random.default_rng(0)
    inside = np.array([[True, False], [False, True]] * 4)  # 8 shadows, (8, 2)
    shadow = np.where(inside, 3.0, 0.0) + rng.normal(0, 0.1, inside.shape)
    scores = lira_scores(np.array([3.0, 0.0]), shadow, inside)
    assert scores[0] > 0 > scores[1]


def test_exposure_is_log2_candidates_over_rank():
    assert exposure(0.0, [1.0] * 1023) == pytest.approx(10.0)  # the best of 1,024: log2(1024) bits
    assert exposure(2.0, [1.0] * 1023) == pytest.approx(0.0)  # the worst: no exposure


def test_gradient_inversion_recovers_one_image():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 3))
    x = torch.rand(1, 16, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(F.cross_entropy(m(x), torch.tensor([2])), list(m.parameters()))
    rec, label, losses = invert_gradient(m, [g.detach() for g in grads], (16,), 3, steps=200,
                                         lr=1.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert losses[-1] < losses[0] * 1e-2
    assert int(label.argmax()) == 2 and float((rec - x).abs().max()) < 0.05


def test_the_benchmark_calls_the_shared_recipes():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "privacy.py"
    spec = importlib.util.spec_from_file_location("bench_privacy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from genai_lib.recipes import canary, federated, privacy

    assert bench.train_dp_cvae is privacy.train_dp_cvae and bench.membership is privacy.membership
    assert bench.train_canary_gpt is canary.train_canary_gpt and bench.federated_run is federated.federated_run


def test_the_accountant_matches_published_values():
    # opacus's documentation of scripts/compute_dp_sgd_privacy (https://opacus.ai/api/compute_dp_sgd_privacy.html):
    # q = 1%, sigma = 1.0, 300 steps, orders 2 5 10 20 100, delta 1e-5 -> epsilon 2.39 at order 5 (current
    # conversion); and, in its older version, 60,000 examples, batches of 256, sigma 1.12, 60 epochs (60 x 235
    # steps), orders 10 20 100 -> epsilon 2.95 (the conversion of Mironov 2017, Proposition 3).
    from genai_lib.privacy import rdp_to_epsilon

    orders = (2, 5, 10, 20, 100)
    eps, best = rdp_to_epsilon(orders, [300 * r for r in rdp_sampled_gaussian(0.01, 1.0, orders)], 1e-5)
    assert round(eps, 2) == 2.39 and best == 5
    orders = (10, 20, 100)
    rdp = [60 * 235 * r for r in rdp_sampled_gaussian(256 / 60000, 1.12, orders)]
    assert round(rdp_to_epsilon(orders, rdp, 1e-5, conversion="mironov")[0], 2) == 2.95


def test_public_pretraining_starts_the_dp_fine_tune_from_the_public_model(monkeypatch, tmp_path):
    # fast mode, tiny budgets: the DP run with public=True starts from the public model's weights
    # (one Adam step of lr 5e-3 moves no weight by much more than 5e-3), the run from scratch not
    from genai_lib.recipes import privacy

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(privacy.PUBLIC_STEPS, "fast", 20)  # Adam moves the public weights by ~0.1
    fast = privacy.DP_CVAE["fast"]
    monkeypatch.setitem(privacy.DP_CVAE, "fast", privacy.DPRecipe(1, 64, 1.0, 5e-3, 1))
    pub = privacy.pretrain_public_cvae(fast=True)
    tuned, info = privacy.train_dp_cvae(8.0, public=True, fast=True)
    scratch, _ = privacy.train_dp_cvae(8.0, fast=True)
    w = "decoder.0.weight"
    assert float((tuned.state_dict()[w] - pub.state_dict()[w]).abs().max()) < 0.01
    assert float((scratch.state_dict()[w] - pub.state_dict()[w]).abs().max()) > 0.03
    assert info["epsilon"] <= 8.0 + 1e-9 and fast.steps > 1
    with pytest.raises(TypeError, match="public must be a bool"):
        privacy.train_dp_cvae(8.0, public="yes", fast=True)


def test_the_membership_pool_is_stratified_by_class():
    from genai_lib.recipes.privacy import member_pool

    y = torch.arange(400) % 10
    idx = member_pool(y, 60, generator=torch.Generator().manual_seed(0))
    assert len(idx) == 60 and len(set(idx.tolist())) == 60  # distinct digits
    members, others = y[idx[:30]], y[idx[30:]]
    assert torch.equal(torch.bincount(members, minlength=10), torch.full((10,), 3))
    assert torch.equal(torch.bincount(others, minlength=10), torch.full((10,), 3))
    again = member_pool(y, 60, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, again) and not torch.equal(
        idx, member_pool(y, 60, generator=torch.Generator().manual_seed(1))
    )
    with pytest.raises(ValueError, match="multiple of 20"):
        member_pool(y, 50)
    with pytest.raises(ValueError, match="needs 200 digits of every class"):
        member_pool(y, 2000)


def test_the_non_private_and_public_runs_are_seeded(monkeypatch, tmp_path):
    # an empty-cache rebuild gives the same weights: the public pretraining and the non-private
    # CVAE draw their batches and VAE noise from their own generators, not the global random state
    from genai_lib.recipes import privacy

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setitem(privacy.PUBLIC_STEPS, "fast", 5)
    monkeypatch.setitem(privacy.DP_CVAE, "fast", privacy.DPRecipe(1, 64, 1.0, 5e-3, 5))
    first = [privacy.pretrain_public_cvae(fast=True), privacy.train_dp_cvae(None, public=True, fast=True)[0]]
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path / "b"))
    torch.manual_seed(12345)  # a different global state must not matter
    torch.rand(7)
    again = [privacy.pretrain_public_cvae(fast=True), privacy.train_dp_cvae(None, public=True, fast=True)[0]]
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(first[0].state_dict()["decoder.0.weight"], first[1].state_dict()["decoder.0.weight"])
