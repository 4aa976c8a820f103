"""Chapter 15: defects, anomaly scores, the degradation simulator, scenario windows and models."""

import numpy as np
import pytest
import torch

from genai_lib.anomaly import (
    first_alarm,
    fit_one_class,
    lead_times,
    pca_scores,
    roc_auc,
    smooth,
    threshold_costs,
    vae_scores,
)
from genai_lib.data import load_mnist, make_loader
from genai_lib.forecast import correlation_gap, energy_score, interval_coverage, marginal_gap
from genai_lib.industry import DEFECTS, add_defects, macro_series, scenario_windows, simulate_degradation
from genai_lib.models.scenario import ScenarioCVAE, ScenarioCVAEConfig, SensorGRU, SensorGRUConfig
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.train import fit


@pytest.fixture(scope="module")
def digits():
    return load_mnist("train", limit=64)[0]


@pytest.mark.parametrize("kind", DEFECTS)
def test_defect_synthesis_is_seeded_and_changes_each_part(digits, kind):
    a = add_defects(digits[:16], kind, generator=torch.Generator().manual_seed(0))
    b = add_defects(digits[:16], kind, generator=torch.Generator().manual_seed(0))
    c = add_defects(digits[:16], kind, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    changed = (a - digits[:16]).abs().flatten(1).sum(1)
    assert (changed > 0.5).all() and a.min() >= 0 and a.max() <= 1
    if kind == "missing":
        assert (a <= digits[:16] + 1e-6).all()  # only erases
    else:
        assert (a >= digits[:16] - 1e-6).all()  # only adds ink
    torch.testing.assert_close(digits[16:17], digits[16:17].clone())  # the input is not modified


def test_defect_bad_inputs(digits):
    with pytest.raises(ValueError, match="kind must be one of"):
        add_defects(digits[:2], "dent")
    with pytest.raises(ValueError, match="x"):
        add_defects(torch.zeros(2, 28, 28), "blot")


def test_roc_auc_and_costs():
    assert roc_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert roc_auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert roc_auc([1.0], [1.0]) == 0.5
    c = threshold_costs([2.0, 3.0], [0.0, 1.0, 2.5, 0.5], [1.5], miss_cost=10.0, alarm_cost=1.0)
    assert c["miss"][0] == 0.0 and c["false_alarm"][0] == 0.25
    assert c["cost"][0] == pytest.approx(1.0 * (4 / 6) * 0.25)


def test_pca_scores_zero_on_the_subspace_and_large_off_it():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 20, generator=g)
    good = torch.randn(200, 3, generator=g) @ basis
    inside = torch.randn(5, 3, generator=g) @ basis
    outside = inside + 3 * torch.randn(5, 20, generator=g)
    s_in, s_out = pca_scores(good, inside, k=3), pca_scores(good, outside, k=3)
    assert s_in.max() < 1e-6 * s_out.min() + 1e-6 and (s_out > 1).all()
    with pytest.raises(ValueError, match="k must be"):
        pca_scores(good, inside, k=20)


def test_one_class_svm_flags_outliers():
    rng = np.random.default_rng(0)
    good = rng.normal(0, 1, (300, 2))
    score = fit_one_class(good, nu=0.05)
    far, near = score(rng.normal(6, 0.5, (20, 2))), score(rng.normal(0, 0.5, (20, 2)))
    assert roc_auc(far, near) > 0.95


def test_vae_scores_shapes_and_sense(digits):
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", z_dim=4, hidden=32, depth=1))
    fit(model, make_loader(digits, batch_size=32), steps=60, lr=3e-3, progress=False)
    recon, nelbo = vae_scores(model, digits[:10], generator=torch.Generator().manual_seed(0))
    assert recon.shape == nelbo.shape == (10,) and (nelbo > 0).all()
    noise = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    r2, n2 = vae_scores(model, noise, generator=torch.Generator().manual_seed(0))
    assert r2.min() > recon.max() and n2.min() > nelbo.max()


def test_smoothing_alarms_and_lead_times():
    np.testing.assert_allclose(smooth([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])
    assert first_alarm([0.1, 0.5, 2.0, 3.0], 1.0) == 2 and first_alarm([0.1], 1.0) is None
    lt = lead_times([2, None], [10, 20])
    assert lt[0] == 8 and np.isnan(lt[1])
    with pytest.raises(ValueError, match="one entry per unit"):
        lead_times([1], [1, 2])


def test_degradation_simulator_is_seeded_and_degrades():
    a, b = simulate_degradation(5, seed=0), simulate_degradation(5, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a["signals"], b["signals"], strict=True))
    for s, life, onset in zip(a["signals"], a["life"], a["onset"], strict=True):
        assert s.shape == (life, 4) and 110 <= onset < life <= 300
        pressure = s[:, 1] - 0.4 * s[:, 3]  # without the operating condition's share
        assert pressure[-10:].mean() < pressure[:onset].mean() - 0.4  # pressure falls with wear
        assert s[-10:, 2].std() > 2 * s[:onset, 2].std()  # vibration grows
    with pytest.raises(ValueError, match="n_units"):
        simulate_degradation(0)


def test_sensor_gru_learns_healthy_signals():
    sim = simulate_degradation(4, seed=0)
    x = torch.from_numpy(np.stack([s[:60] for s in sim["signals"]]))
    torch.manual_seed(0)
    model = SensorGRU(SensorGRUConfig(channels=4, hidden=16))
    assert model.score(x).shape == (4, 59)
    h = fit(model, make_loader(x, batch_size=4), steps=150, lr=1e-2, progress=False, log_every=1)
    assert h.logs["loss"][-1] < h.logs["loss"][0] - 1.0
    with pytest.raises(ValueError, match="at least 2 readings"):
        model.score(x[:, :1])


def test_macro_series_ships_with_statsmodels():
    m = macro_series()
    assert m["values"].shape == (202, 4) and np.isfinite(m["values"]).all()
    assert m["dates"][0] == 1959.25 and m["dates"][-1] == 2009.5


def test_scenario_windows_never_leak_the_test_period():
    values = np.arange(40, dtype=np.float32)[:, None].repeat(2, 1)  # row t holds t
    w = scenario_windows(values, context=5, horizon=3, test_start=30)
    assert w["train_y"].max() < 30  # every training target before the test period
    assert w["train_ctx"].max() < 30
    assert w["test_y"].min() >= 30  # every test target inside it
    assert len(w["train_y"]) == 30 - 5 - 3 + 1 and len(w["test_y"]) == 40 - 30 - 3 + 1
    np.testing.assert_array_equal(w["test_ctx"][0, :, 0], np.arange(25, 30))  # the known past
    np.testing.assert_array_equal(w["train_y"][:, 0, 0], w["train_t"])


def test_scenario_window_bad_inputs():
    v = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="longer than the series"):
        scenario_windows(v, context=8, horizon=4, test_start=9)
    with pytest.raises(ValueError, match="test_start"):
        scenario_windows(v, context=2, horizon=2, test_start=2)
    with pytest.raises(ValueError, match="non-empty"):
        scenario_windows(np.zeros((0, 2)), context=1, horizon=1, test_start=1)


def test_scenario_cvae_shapes_gradients_overfit_and_seeds():
    cfg = ScenarioCVAEConfig(context=3, horizon=2, dims=2, z_dim=2, hidden=16)
    g = torch.Generator().manual_seed(0)
    ctx, y = torch.randn(16, 3, 2, generator=g) * 5 + 10, torch.randn(16, 2, 2, generator=g) * 5 + 10
    torch.manual_seed(0)
    model = ScenarioCVAE(cfg)
    model.set_scaling(torch.full((2,), 10.0), torch.full((2,), 5.0))
    loss, _ = model.loss((ctx, y))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    h = fit(model, make_loader(ctx, y, batch_size=16), steps=300, lr=1e-2, progress=False, log_every=1)
    assert h.logs["loss"][-1] < 0.5 * h.logs["loss"][0]
    s1 = model.sample(50, context=ctx[:4], generator=torch.Generator().manual_seed(1))
    s2 = model.sample(50, context=ctx[:4], generator=torch.Generator().manual_seed(1))
    assert s1.shape == (4, 50, 2, 2) and torch.equal(s1, s2)
    assert abs(float(s1.mean()) - 10) < 5  # back in the original units
    with pytest.raises(ValueError, match="ctx"):
        model.loss((ctx[:, :2], y))


def test_scenario_cvae_shared_noise_is_the_same_for_every_past():
    cfg = ScenarioCVAEConfig(context=3, horizon=2, dims=2, z_dim=2, hidden=16, noise="shared")
    torch.manual_seed(0)
    model = ScenarioCVAE(cfg)
    assert model.logvar.shape == (4,)
    c, z = torch.randn(5, 6), torch.randn(5, 2)
    mean, lv = model._decode(z, c)
    assert mean.shape == lv.shape == (5, 4) and torch.equal(lv, lv[:1].expand(5, 4))
    plain = ScenarioCVAE(ScenarioCVAEConfig(context=3, horizon=2, dims=2, z_dim=2, hidden=16))
    assert plain.logvar is None and not torch.equal(*plain._decode(z, c)[1][:2])
    # the shared variance is learnt: it falls from its start (1) towards the data's noise (0.5;
    # below it, as the code z explains part of each y)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(64, 3, 2, generator=g)
    y = ctx[:, -1:].repeat(1, 2, 1) + 0.5 * torch.randn(64, 2, 2, generator=g)
    fit(model, make_loader(ctx, y, batch_size=64), steps=300, lr=1e-2, progress=False)
    sd = torch.exp(0.5 * model.logvar.detach())
    assert ((sd > 0.1) & (sd < 0.8)).all(), sd
    with pytest.raises(ValueError, match="noise"):
        ScenarioCVAEConfig(noise="none")
    # without the observation noise, scenarios are only the decoder means: far narrower
    ctx1 = ctx[:2]
    full = model.sample(400, context=ctx1, generator=torch.Generator().manual_seed(0))
    means = model.sample(400, context=ctx1, generator=torch.Generator().manual_seed(0), noise=False)
    assert full.shape == means.shape == (2, 400, 2, 2)
    assert float(means.std(1).mean()) < 0.9 * float(full.std(1).mean())


def test_forecast_scores_pinned():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, (50, 2, 2))
    good = rng.normal(0, 1, (50, 150, 2, 2))
    narrow = 0.1 * good
    assert 0.9 < interval_coverage(good, y) < 0.99
    assert interval_coverage(narrow, y) < 0.3
    assert energy_score(good, y) < energy_score(narrow, y)
    one = np.zeros((1, 2, 1, 1))
    assert energy_score(one, np.ones((1, 1, 1))) == pytest.approx(1.0)  # |0 - 1|, no spread
    assert marginal_gap(good, y)["mean"] < 0.3 and correlation_gap(good, y) < 0.3
    with pytest.raises(ValueError, match="samples must be"):
        energy_score(np.zeros((2, 3, 4)), y)
