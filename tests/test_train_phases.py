"""The training core on every phase shape the chapters need, each resumed mid-run bit for bit.

Shapes: one phase; D x n_critic then G; four networks with two optimizers (CycleGAN); an EMA
hook; param groups at their own learning rates (StyleGAN's mapping network at 0.01x); lazy
regularisation every k steps sharing an optimizer; gradient accumulation equal to the large
batch; a stateful loss (TBPTT); the run's own generator.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genai_lib.data import make_loader
from genai_lib.models._layers import EMA
from genai_lib.phases import Phase, Snapshots, adversarial_phases
from genai_lib.train import fit, fit_gan
from genai_lib.train_cache import load_or_train
from genai_lib.utils import normal_noise


def _points(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.3]) + 1.0
    return x, (x[:, 0] - x[:, 1]).sin()


def _loader(batch_size=16, shuffle=True):
    x, y = _points()
    return make_loader(x, y, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(3))


class Regressor(nn.Module):
    """One network, one loss; a little global-RNG noise so that resume must restore the RNG."""

    def __init__(self, mapping=False):
        super().__init__()
        self.mapping = nn.Linear(2, 2)  # stands in for StyleGAN's mapping network
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
        self.ema = EMA(self.net, decay=0.9)

    def loss(self, batch, generator=None):
        x, y = batch
        x = x + 0.05 * normal_noise(x.shape, generator=generator)
        err = self.net(self.mapping(x)).squeeze(-1) - y
        return err.square().mean(), {"mae": err.abs().mean()}


class TinyGAN(nn.Module):
    """A 2-D GAN with the d_loss/g_loss contract, plus an R1 term for the lazy phase."""

    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def _fake(self, n):
        return self.generator(torch.randn(n, 2))

    def d_loss(self, batch):
        x = batch[0]
        loss = nn.functional.softplus(-self.discriminator(x)).mean()
        return loss + nn.functional.softplus(self.discriminator(self._fake(len(x)).detach())).mean(), {}

    def g_loss(self, batch):
        return nn.functional.softplus(-self.discriminator(self._fake(len(batch[0])))).mean(), {"g_norm": torch.ones(())}

    def r1_loss(self, batch, every=3):
        x = batch[0].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(x).sum(), x, create_graph=True)
        return every * 0.5 * grad.square().sum(1).mean(), {"r1": grad.square().sum(1).mean().detach()}


class TinyCycle(nn.Module):
    """Four networks: two generators trained together, two discriminators trained together."""

    def __init__(self):
        super().__init__()
        lin = lambda: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))  # noqa: E731
        self.g_ab, self.g_ba, self.d_a, self.d_b = lin(), lin(), lin(), lin()

    def g_loss(self, batch):
        a, b = batch[0], batch[0].flip(1) + 0.1 * torch.randn_like(batch[0])
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        adv = (self.d_b(fake_b) - 1).square().mean() + (self.d_a(fake_a) - 1).square().mean()
        cycle = (self.g_ba(fake_b) - a).abs().mean() + (self.g_ab(fake_a) - b).abs().mean()
        return adv + 10 * cycle, {"cycle": cycle.detach()}

    def d_loss(self, batch):
        a, b = batch[0], batch[0].flip(1)
        with torch.no_grad():
            fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        real = (self.d_a(a) - 1).square().mean() + (self.d_b(b) - 1).square().mean()
        return real + self.d_a(fake_a).square().mean() + self.d_b(fake_b).square().mean(), {}

    def phases(self, lr=1e-3):
        gens = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        discs = [*self.d_a.parameters(), *self.d_b.parameters()]
        return [
            Phase("g", self.g_loss, gens, lr=lr, betas=(0.5, 0.999), freeze=discs),
            Phase("d", self.d_loss, discs, lr=lr, betas=(0.5, 0.999), fresh=False),
        ]


def _build(kind):
    torch.manual_seed(0)
    return {"regressor": Regressor, "gan": TinyGAN, "cycle": TinyCycle}[kind]()


def _train(kind, model, steps, **kw):
    loader = _loader()
    if kind == "one_phase":
        return fit(model, loader, steps=steps, lr=1e-2, progress=False, **kw)
    if kind == "n_critic":
        return fit_gan(model, loader, steps=steps, n_critic=3, lr_g=1e-3, lr_d=1e-3, progress=False, **kw)
    if kind == "four_networks":
        return fit(model, loader, steps=steps, phases=model.phases(), progress=False, **kw)
    if kind == "ema":
        return fit(model, loader, steps=steps, lr=1e-2, hooks=[model.ema], progress=False, **kw)
    if kind == "param_groups":
        groups = [{"params": model.mapping.parameters(), "lr": 1e-4}, {"params": model.net.parameters()}]
        phase = Phase("loss", model.loss, groups, lr=1e-2)
        return fit(model, loader, steps=steps, phases=[phase], lr_schedule="cosine", progress=False, **kw)
    if kind == "lazy_reg":
        phases = adversarial_phases(model, lr_g=1e-3, lr_d=1e-3)
        phases.insert(1, Phase("d_reg", model.r1_loss, every=3, fresh=False, shares="d"))
        return fit(model, loader, steps=steps, phases=phases, progress=False, **kw)
    if kind == "accumulate":
        return fit(model, loader, steps=steps, lr=1e-2, accumulate=3, progress=False, **kw)
    if kind == "generator":
        gen = torch.Generator().manual_seed(5)
        return fit(model, loader, steps=steps, lr=1e-2, generator=gen, progress=False, **kw)
    raise AssertionError(kind)


SHAPES = {
    "one_phase": "regressor",
    "n_critic": "gan",
    "four_networks": "cycle",
    "ema": "regressor",
    "param_groups": "regressor",
    "lazy_reg": "gan",
    "accumulate": "regressor",
    "generator": "regressor",
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_phase_shape_trains_and_resumes_bit_identically(shape, tmp_path):
    kind = SHAPES[shape]
    straight = _build(kind)
    torch.manual_seed(11)  # the training noise
    h_full = _train(shape, straight, 10)
    assert len(h_full.step) == 10

    class Interrupted(Exception):
        pass

    def stop(step, history):  # the kernel dies after step 5; the last checkpoint is at step 4
        if step == 5:
            raise Interrupted

    ckpt = tmp_path / "run.pt"
    first = _build(kind)
    torch.manual_seed(11)
    with pytest.raises(Interrupted):  # mid-epoch: 6 batches per pass
        _train(shape, first, 10, checkpoint=ckpt, checkpoint_every=2, log_every=1, callbacks=[stop])
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = _build(kind)
    h_res = _train(shape, resumed, 10, checkpoint=ckpt, checkpoint_every=2, log_every=1)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=f"{shape}: {k} differs after resume")
    assert h_res.step == h_full.step
    assert h_res.logs == h_full.logs and h_res.key_steps == h_full.key_steps


def test_n_critic_draws_n_critic_batches_per_step():
    seen = []
    model = _build("gan")
    real = model.d_loss
    model.d_loss = lambda batch: seen.append(len(batch[0])) or real(batch)
    fit_gan(model, _loader(batch_size=10), steps=4, n_critic=3, progress=False)
    assert len(seen) == 12  # 3 discriminator updates per generator update


def test_the_lazy_phase_runs_every_k_steps_on_its_own_log_steps():
    model = _build("gan")
    hist = _train("lazy_reg", model, 7)
    assert hist.steps_of("d_reg_loss") == [1, 4, 7] and len(hist.logs["d_reg_loss"]) == 3
    assert hist.steps_of("d_loss") == list(range(1, 8))


def test_four_networks_two_optimizers_update_only_their_own():
    model = _build("cycle")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.d_loss = lambda batch: (torch.ones(()), {})  # a loss that depends on no parameter
    with pytest.raises(ValueError, match="does not require grad"):
        fit(model, _loader(), steps=1, phases=model.phases(), progress=False)
    model = _build("cycle")
    fit(model, _loader(), steps=3, phases=model.phases(), progress=False)
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"g_ab", "g_ba", "d_a", "d_b"}


def test_param_group_learning_rates_follow_the_schedule():
    model = _build("regressor")
    built, lrs = {}, []

    def adam(groups):  # an optimizer factory: fit hands it the param groups
        built["opt"] = torch.optim.Adam(groups, lr=1e-2)
        return built["opt"]

    groups = [{"params": model.mapping.parameters(), "lr": 1e-4}, {"params": model.net.parameters()}]
    phase = Phase("loss", model.loss, groups, optimizer=adam)
    watch = lambda step: lrs.append([g["lr"] for g in built["opt"].param_groups])  # noqa: E731
    fit(model, _loader(), steps=4, phases=[phase], lr_schedule=lambda s: 1.0 / (s + 1), hooks=[watch], progress=False)
    want = [[1e-4 / (s + 1), 1e-2 / (s + 1)] for s in range(4)]
    assert [x for row in lrs for x in row] == pytest.approx([x for row in want for x in row])


def test_gradient_accumulation_equals_the_large_batch():
    """3 micro-batches of 8 summed (each loss / 3) take the same step as one batch of 24."""
    x, y = _points(96)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

        def loss(self, batch):
            return (self.net(batch[0]).squeeze(-1) - batch[1]).square().mean(), {}

    torch.manual_seed(0)
    a, b = Plain(), Plain()
    b.load_state_dict(a.state_dict())
    fit(a, make_loader(x, y, batch_size=24, shuffle=False), steps=4, lr=0.1, optimizer=None, progress=False)
    fit(b, make_loader(x, y, batch_size=8, shuffle=False), steps=4, lr=0.1, accumulate=3, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6)


def test_ema_tracks_the_live_weights_and_lags_behind():
    model = _build("regressor")
    start = [p.clone() for p in model.ema.shadow.parameters()]
    _train("ema", model, 30)
    assert int(model.ema.updates) == 30
    live, avg = list(model.net.parameters()), list(model.ema.shadow.parameters())
    moved = sum((a - s).abs().sum() for a, s in zip(avg, start, strict=True))
    gap = sum((a - w).abs().sum() for a, w in zip(avg, live, strict=True))
    assert moved > 0 and 0 < gap < sum((s - w).abs().sum() for s, w in zip(start, live, strict=True))
    assert not any(p.requires_grad for p in model.ema.shadow.parameters())


def test_snapshots_come_back_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))

    def run():
        model = _build("regressor")
        snaps = Snapshots(lambda step: {"w": model.net[0].weight.detach().clone(), "step": step}, every=4)
        hist = load_or_train(model, _loader(), name="snap", steps=9, lr=1e-2, hooks=[snaps], progress=False)
        return hist, snaps

    h1, s1 = run()
    h2, s2 = run()
    assert not h1.from_cache and h2.from_cache
    assert s1.steps == s2.steps == [1, 4, 8]
    for a, b in zip(s1.items, s2.items, strict=True):
        torch.testing.assert_close(a["w"], b["w"])
    # a caller without the hook still hits the entry; one that records differently retrains
    assert load_or_train(_build("regressor"), _loader(), name="snap", steps=9, lr=1e-2, progress=False).from_cache
    other = Snapshots(lambda step: step, every=2)
    assert not load_or_train(
        _build("regressor"), _loader(), name="snap", steps=9, lr=1e-2, hooks=[other], progress=False
    ).from_cache


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda m: fit(m, _loader(), steps=2, phases=[]), TypeError, "non-empty list"),
        (lambda m: fit(m, _loader(), steps=2, phases=m.phases(), lr=0.1), TypeError, "set \\['lr'\\] on the phases"),
        (
            lambda m: fit(m, _loader(), steps=2, phases=[Phase("g", m.g_loss, fresh=False), *m.phases()[1:]]),
            ValueError,
            "must run every step on fresh batches",
        ),
        (lambda m: fit(m, _loader(), steps=2, phases=[m.phases()[0], m.phases()[0]]), ValueError, "unique"),
        (
            lambda m: fit(m, _loader(), steps=2, phases=[m.phases()[0], Phase("r", m.d_loss, shares="x")]),
            ValueError,
            "not an earlier phase",
        ),
        (
            lambda m: fit(m, _loader(), steps=2, phases=[Phase("g", m.g_loss, list(nn.Linear(2, 2).parameters()))]),
            ValueError,
            "not a parameter of the model",
        ),
        (lambda m: fit(m, _loader(), steps=2, phases=m.phases(), hooks=[3]), TypeError, "a hook needs"),
        (lambda m: fit(m, _loader(), steps=2, phases=m.phases(), generator=3), TypeError, "torch.Generator"),
        (lambda m: fit(m, _loader(), steps=2, phases=m.phases(), lr_schedule=lambda s: -1.0), ValueError, ">= 0"),
        (lambda m: Phase("d", m.d_loss, accumulate=2, fresh=False), ValueError, "needs fresh batches"),
        (lambda m: Phase("d e", m.d_loss), ValueError, "short identifier"),
        (lambda m: Phase("d", m.d_loss, optimizer="lbfgs"), ValueError, "one of"),
        (lambda m: Phase("d", m.d_loss, every=0), ValueError, "every must be > 0"),
        (lambda m: Phase("d", m.d_loss, betas=(0.9, 1.0)), ValueError, "betas"),
    ],
)
def test_bad_phase_set_ups_fail_before_step_one(make, exc, match):
    model = _build("cycle")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(exc, match=match):
        make(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_one_cache_entry_with_and_without_a_recording_hook(tmp_path, monkeypatch):
    """A notebook that records snapshots and one that does not share the entry (no ping-pong)."""
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))

    def run(hooks):
        model = _build("regressor")
        return load_or_train(model, _loader(), name="shared", steps=5, lr=1e-2, hooks=hooks, progress=False)

    snaps = lambda: [Snapshots(lambda step: float(step), every=2)]  # noqa: E731
    assert [run(snaps()).from_cache, run([]).from_cache, run(snaps()).from_cache] == [False, True, True]
    ema = _build("regressor").ema
    assert not run([ema]).from_cache  # a hook that changes what is trained is a different entry


def test_hook_list_accepts_lists_and_tuples_of_hooks_only():
    from genai_lib.phases import hook_list

    snaps = Snapshots(lambda step: {"x": torch.zeros(1)}, every=1)
    assert hook_list((snaps,)) == [snaps] and hook_list([]) == []
    for bad in (3, snaps, [object()]):
        with pytest.raises(TypeError, match="hooks must be a list or tuple"):
            hook_list(bad)
