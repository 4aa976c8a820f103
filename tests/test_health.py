"""Chapter 14: the tabular VAE, the Gaussian copula, the fidelity scores and the scarce-class set."""

import numpy as np
import pytest
import torch

from genai_lib.data import load_mnist, make_loader
from genai_lib.fidelity import closest_record_distance, correlation_gap, logistic_auc, marginal_ks
from genai_lib.models.copula import GaussianCopula, normal_scores
from genai_lib.models.cvae import CVAE
from genai_lib.models.tabular_vae import TableScaler, TabularVAE, TabularVAEConfig, tabular_sample_loss
from genai_lib.privacy import per_sample_grads
from genai_lib.recipes import augment
from genai_lib.recipes.augment import (
    KEEP,
    SCARCE_CVAE,
    SCARCE_DIGIT,
    augment_scarce,
    cvae_analogies,
    scarce_train_set,
    train_scarce_cvae,
)
from genai_lib.tabular import load_breast_cancer_table, patient_split
from genai_lib.train import fit

CFG = TabularVAEConfig(n_columns=4, binary=(3,), z_dim=2, hidden=16)


def _table(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 50.0, 0.01]) + torch.tensor([0.0, 300.0, -2.0])
    y = (x[:, :1] > 0).float()
    return torch.cat([x, y], 1)


def _vae(seed=0):
    torch.manual_seed(seed)
    return TabularVAE(CFG).fit_scaler(_table())


def test_standardisation_round_trip_and_units():
    t = _table()
    s = TableScaler(4, (3,)).fit(t)
    z = s.transform(t)
    torch.testing.assert_close(s.inverse(z), t, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(z[:, :3].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, :3].std(0), torch.ones(3), atol=1e-5, rtol=0)
    assert torch.equal(z[:, 3], t[:, 3])  # the binary column is left as it is


def test_vae_samples_in_original_units_and_shapes():
    m = _vae().eval()
    assert m(_table()[:5]).shape == (5, 4)
    s = m.sample(500, generator=torch.Generator().manual_seed(0))
    assert s.shape == (500, 4) and s.device.type == "cpu"
    assert set(s[:, 3].unique().tolist()) <= {0.0, 1.0}
    assert 200 < float(s[:, 1].mean()) < 400  # the second column lives near 300, not near 0
    assert torch.equal(s, m.sample(500, generator=torch.Generator().manual_seed(0)))


def test_vae_loss_gradients_and_one_batch_overfit():
    m = _vae()
    batch = (_table(16),)
    loss, logs = m.loss(batch, generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss) and {"nll", "kl"} <= set(logs)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    m = _vae()
    h = fit(m, make_loader(_table(16), batch_size=16), steps=150, lr=1e-2, progress=False, log_every=10)
    assert h.logs["loss"][-1] < h.logs["loss"][0] - 3


def test_per_sample_loss_matches_the_batch_loss():
    m, x = _vae(), _table(6)
    (eps,) = m.noise_for((x,), torch.Generator().manual_seed(0))
    nll, kl = m.terms(x, eps)
    one = torch.stack([tabular_sample_loss(m, x[i], eps[i]) for i in range(6)])
    torch.testing.assert_close(one, nll + kl)
    grads = per_sample_grads(m, tabular_sample_loss, (x, eps))
    assert grads["log_scale"].shape == (6, 4)


def test_copula_reproduces_a_known_correlation():
    rho = 0.7
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    z[:, 1] = rho * z[:, 0] + (1 - rho**2) ** 0.5 * z[:, 1]
    x = torch.stack([z[:, 0].exp(), z[:, 1] ** 3], 1)  # skewed marginals, the same Gaussian copula
    cop = GaussianCopula().fit(x)
    assert abs(cop.corr_[0, 1] - rho) < 0.03
    s = cop.sample(20000, generator=torch.Generator().manual_seed(1)).double().numpy()
    assert abs(np.corrcoef(normal_scores(s), rowvar=False)[0, 1] - rho) < 0.03
    assert (s[:, 0] > 0).all()  # the log-normal marginal stays positive
    assert marginal_ks(x, torch.from_numpy(s)).max() < 0.03


def test_copula_keeps_discrete_values_and_is_seeded():
    t = _table(200)
    cop = GaussianCopula().fit(t)
    s = cop.sample(300, generator=torch.Generator().manual_seed(0))
    assert set(s[:, 3].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(s, cop.sample(300, generator=torch.Generator().manual_seed(0)))


def test_fidelity_scores_separate_copies_from_noise():
    t = _table(200)
    assert marginal_ks(t, t).max() == 0 and correlation_gap(t, t) == 0
    assert float(closest_record_distance(t, t).max()) < 1e-2  # cdist rounding
    noise = torch.randn(200, 4)
    assert marginal_ks(t, noise).mean() > 0.3 and correlation_gap(t, noise) > 0.1
    assert float(closest_record_distance(noise, t).median()) > 0.3


def test_logistic_auc_on_separable_and_on_shuffled_labels():
    t = _table(200)
    assert logistic_auc(t[:100, :3], t[:100, 3], t[100:, :3], t[100:, 3]) > 0.95
    y = t[:, 3][torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    assert logistic_auc(t[:100, :3], y[:100], t[100:, :3], y[100:]) < 0.7


def test_breast_cancer_split_is_fixed_and_stratified():
    t = load_breast_cancer_table()
    assert t["x"].shape == (569, 30) and len(t["features"]) == 30
    a, b = patient_split(), patient_split()
    assert torch.equal(a["train_x"], b["train_x"]) and len(a["train_x"]) + len(a["test_x"]) == 569
    assert abs(float(a["train_y"].float().mean()) - float(a["test_y"].float().mean())) < 0.01
    rows = {tuple(r.tolist()) for r in a["train_x"]}
    assert not any(tuple(r.tolist()) in rows for r in a["test_x"])  # no patient on both sides


def test_scarce_set_and_augmentations():
    x, y = scarce_train_set(fast=True)
    assert int((y == SCARCE_DIGIT).sum()) == KEEP and int((y == 0).sum()) == 100
    for method in ("oversample", "classical"):
        xa, ya = augment_scarce(method, x, y, target=60, seed=0)
        assert int((ya == SCARCE_DIGIT).sum()) == 60 and len(xa) == len(ya)
        assert xa.min() >= 0 and xa.max() <= 1
    a1, _ = augment_scarce("classical", x, y, target=60, seed=0)
    a2, _ = augment_scarce("classical", x, y, target=60, seed=0)
    assert torch.equal(a1, a2)
    o, _ = augment_scarce("oversample", x, y, target=60)
    assert not torch.equal(a1, o)  # the distortions changed the images
    with pytest.raises(ValueError, match="target"):
        augment_scarce("oversample", x, y, target=5)


def _nearest(a, b):
    """Each row of a's exact distance to its nearest row of b (no matmul shortcut: exact zeros)."""
    return torch.cdist(a.flatten(1), b.flatten(1), compute_mode="donot_use_mm_for_euclid_dist").min(1).values


def _untrained_cvae():
    torch.manual_seed(0)
    return CVAE(SCARCE_CVAE).eval()


def test_cvae_analogies_take_styles_from_other_digits_only():
    x, y = scarce_train_set(fast=True)
    model = _untrained_cvae()
    seen = []
    model.encoder.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    rows = cvae_analogies(model, x, y, 30, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (30, 1, 28, 28) and rows.min() >= 0 and rows.max() <= 1
    labels = seen[0][:, 784:].argmax(1)  # the one-hot labels the encoder was given
    assert len(labels) == 30 and not bool((labels == SCARCE_DIGIT).any())
    src = seen[0][:, :784]  # each encoded image is a real training row of another digit
    others = x[y != SCARCE_DIGIT].flatten(1)
    assert bool((_nearest(src, others) == 0).all())
    again = cvae_analogies(model, x, y, 30, generator=torch.Generator().manual_seed(0))
    other = cvae_analogies(model, x, y, 30, generator=torch.Generator().manual_seed(1))
    assert torch.equal(rows, again) and not torch.equal(rows, other)


@pytest.mark.parametrize("method", ["cvae", "cvae+classical"])
def test_cvae_methods_shapes_labels_and_seeding(method):
    x, y = scarce_train_set(fast=True)
    model = _untrained_cvae()
    xa, ya = augment_scarce(method, x, y, cvae=model, target=60, seed=0)
    assert int((ya == SCARCE_DIGIT).sum()) == 60 and len(xa) == len(ya) == len(x) - KEEP + 60
    assert torch.equal(xa[ya != SCARCE_DIGIT], x[y != SCARCE_DIGIT])  # the other digits untouched
    assert xa.min() >= 0 and xa.max() <= 1
    new = xa[ya == SCARCE_DIGIT]
    if method == "cvae":  # the real examples first, then KEEP..60 generated rows
        assert torch.equal(new[:KEEP], x[y == SCARCE_DIGIT])
        assert bool((_nearest(new[KEEP:], x) > 1).all())  # made, not copied
    again, _ = augment_scarce(method, x, y, cvae=model, target=60, seed=0)
    other, _ = augment_scarce(method, x, y, cvae=model, target=60, seed=1)
    assert torch.equal(xa, again) and not torch.equal(xa, other)


def test_scarce_cvae_trains_on_the_imbalanced_set_only(monkeypatch):
    seen = {}
    real_fit = augment.fit

    def spy(model, loader, **kw):
        seen["x"], seen["y"] = loader.tensors
        return real_fit(model, loader, **kw)

    monkeypatch.setattr(augment, "fit", spy)
    model, h = train_scarce_cvae(fast=True, cache=False)
    assert isinstance(model, CVAE) and h.logs["loss"][-1] < h.logs["loss"][0]
    xall, yall = load_mnist("train", limit=1000)
    kept = xall[yall == SCARCE_DIGIT][:KEEP].flatten(1)  # the only 8s it may see
    eights = seen["x"][seen["y"] == SCARCE_DIGIT].flatten(1)
    assert len(eights) == augment.SCARCE["fast"]["target"]
    assert bool((_nearest(eights, kept) == 0).all())
    xt, _ = load_mnist("test")
    assert bool((_nearest(seen["x"], xt) > 0).all())  # and never a test digit


class _Categorical(torch.nn.Module):
    """A toy generator over 20 items: logits, sampled by index; item k scores k."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(20))

    def loss(self, batch):
        (idx,) = batch if isinstance(batch, (tuple, list)) else (batch,)
        return torch.nn.functional.cross_entropy(self.logits.expand(len(idx), -1), idx), {}


def test_fine_tune_on_best_raises_the_score_of_a_toy_generator():
    from genai_lib.recipes.steering import fine_tune_on_best

    def sample(m, n, generator):
        idx = torch.multinomial(torch.softmax(m.logits.detach(), 0), n, replacement=True, generator=generator)
        return [None if i == 0 else int(i) for i in idx]  # item 0 is "invalid"

    torch.manual_seed(0)
    m = _Categorical()
    recs = fine_tune_on_best(
        m, sample=sample, score=lambda items: np.array(items, float), to_batch=lambda items: (torch.tensor(items),),
        rounds=3, n=400, top=0.2, steps=30, lr=0.1,
    )  # fmt: skip
    means = [float(r["scores"].mean()) for r in recs]
    assert len(recs) == 4 and means[-1] > means[0] + 3
    assert all(min(r["kept"]) >= np.quantile(r["scores"], 0.7) for r in recs[:-1])
    assert recs[0]["valid"] < 1 and recs[-1]["kept"] == []


def test_tabular_recipe_trains_once_then_loads(monkeypatch, tmp_path):
    from genai_lib.recipes.health import train_tabular_vae

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    rng_before = torch.random.get_rng_state()
    model, info = train_tabular_vae(fast=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before) and not model.training
    assert info["loss"][-1] < info["loss"][0] and info["epsilon"] is None
    assert list(tmp_path.rglob("tab_vae_nodp_fast.pt"))
    again, info2 = train_tabular_vae(fast=True)
    assert info2["loss"] == info["loss"] and torch.equal(again.log_scale, model.log_scale)


def test_the_benchmark_calls_the_shared_recipes():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_applications_ch14.py"
    spec = importlib.util.spec_from_file_location("bench_ch14", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from genai_lib.recipes import augment, health, steering

    assert bench.patient_report is health.patient_report and bench.scarce_experiment is augment.scarce_experiment
    assert bench.steer_molecules is steering.steer_molecules
