"""Chapter 4: CycleGAN, PatchGAN, pix2pix, the digits28 loader and the restoration metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genai_lib.data import load_digits28, make_loader
from genai_lib.metrics import psnr, sharpness, ssim
from genai_lib.models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    ImagePool,
    ResnetGenerator,
    cycle_loss,
    identity_loss,
    lsgan_d_loss,
    lsgan_g_loss,
)
from genai_lib.models.patchgan import PatchDiscriminator, receptive_field
from genai_lib.models.pix2pix import Pix2Pix, Pix2PixConfig, UNetGenerator, bicubic_up, degrade, mean_fill
from genai_lib.train import fit

TINY_CYCLE = {"width": 4, "n_res": 1, "d_width": 4, "pool_size": 4}


def _images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _digits(n=8, seed=0):
    """Sparse digit-like images: most pixels 0, a few strokes near 1."""
    return (_images(n, seed) > 0.8).float()


# --------------------------------------------------------------------------- shapes and gradients


@pytest.mark.parametrize(
    "net, c_in, out",
    [
        (ResnetGenerator(4, 1), 1, (1, 28, 28)),
        (UNetGenerator(2, 4), 2, (1, 28, 28)),
        (PatchDiscriminator(1, 4), 1, (1, 7, 7)),
        (PatchDiscriminator(2, 4), 2, (1, 7, 7)),
    ],
    ids=["resnet", "unet", "patch1", "patch2"],
)
def test_network_shapes_range_and_gradients(net, c_in, out):
    x = torch.rand(3, c_in, 28, 28)
    y = net(x)
    assert y.shape == (3, *out)
    if not isinstance(net, PatchDiscriminator):
        assert y.min() >= 0 and y.max() <= 1
    y.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_receptive_field():
    assert receptive_field() == 18
    assert receptive_field(((3, 1),)) == 3
    # the corner logit's convolutions see only the top-left 18x18 patch (instance norm's statistics,
    # taken over the whole grid, are the one global path: switched off here)
    torch.manual_seed(0)
    d = PatchDiscriminator(1, 4)
    d.net[3] = nn.Identity()
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    d(x)[0, 0, 0, 0].backward()
    assert x.grad[0, 0, 17:, 17:].abs().sum() == 0
    assert x.grad[0, 0, :17, :17].abs().min() >= 0 and x.grad[0, 0, :16, :16].abs().sum() > 0


def test_cyclegan_losses_reach_every_parameter_of_their_phase():
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(**TINY_CYCLE))
    batch = (_images(4, 0), _images(4, 1))
    for name, fn, params in (
        ("g", model.g_loss, model.generator_parameters()),
        ("d", model.d_loss, model.discriminator_parameters()),
    ):
        model.zero_grad(set_to_none=True)
        loss, logs = fn(batch, generator=torch.Generator().manual_seed(0))
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params), name
    assert {"g_adv", "cycle", "identity"} <= set(model.g_loss(batch)[1])
    there, back = model.round_trip(_images(3), "ab")
    assert there.shape == back.shape == (3, 1, 28, 28)


@pytest.mark.parametrize("task", ["sr", "inpaint"])
@pytest.mark.parametrize("adv", [1.0, 0.0])
def test_pix2pix_losses_reach_every_parameter_of_their_phase(task, adv):
    torch.manual_seed(0)
    model = Pix2Pix(Pix2PixConfig(task=task, width=4, d_width=4, adv_weight=adv))
    phases = model.phases()
    assert len(phases) == (2 if adv else 1)
    for ph in phases:
        model.zero_grad(set_to_none=True)
        loss, _ = ph.loss((_digits(4),), generator=torch.Generator().manual_seed(0))
        loss.backward()
        owned = model.g if ph.name == "g" else model.d
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in owned.parameters()), ph.name


# --------------------------------------------------------------------------- the losses


class _Identity(nn.Module):
    def forward(self, x):
        return x


def test_cycle_and_identity_losses_zero_for_identity_generators():
    a, b = _images(4, 0), _images(4, 1)
    assert cycle_loss(a, b, _Identity(), _Identity()) == 0
    assert identity_loss(a, b, _Identity(), _Identity()) == 0
    # and not zero for a generator that changes its input
    inv = lambda x: 1 - x  # noqa: E731
    assert identity_loss(a, b, inv, inv) > 0.1
    assert cycle_loss(a, b, inv, inv) == 0  # an involution is cycle-consistent: the cycle alone cannot fix the map
    half = lambda x: 0.5 * x  # noqa: E731
    expect = (a - 0.25 * a).abs().mean() + (b - 0.25 * b).abs().mean()
    assert torch.allclose(cycle_loss(a, b, half, half), expect)


def test_lsgan_losses():
    ones, zeros = torch.ones(2, 1, 7, 7), torch.zeros(2, 1, 7, 7)
    assert lsgan_d_loss(ones, zeros) == 0  # a perfect discriminator
    assert lsgan_d_loss(zeros, ones) == 1
    assert lsgan_g_loss(ones) == 0 and lsgan_g_loss(zeros) == 1


def test_image_pool_replacement_rule():
    pool = ImagePool(3, shape=(1, 2, 2))
    first = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    out = pool.query(first, torch.Generator().manual_seed(0))
    assert torch.equal(out, first) and torch.equal(pool.images, first) and int(pool.count) == 3  # filling up
    new = 10 + torch.arange(200.0).view(200, 1, 1, 1).expand(200, 1, 2, 2).contiguous()
    stored = set(pool.images[:, 0, 0, 0].tolist())
    out = pool.query(new, torch.Generator().manual_seed(1))
    swapped = 0
    for i in range(200):
        v = float(out[i, 0, 0, 0])
        if v != float(new[i, 0, 0, 0]):  # a swap returns an image that was in the pool before
            assert v in stored
            swapped += 1
        stored = set(stored)  # track the pool: the new image took the returned one's place
        if v != float(new[i, 0, 0, 0]):
            stored.discard(v)
            stored.add(float(new[i, 0, 0, 0]))
    assert stored == set(pool.images[:, 0, 0, 0].tolist())
    assert 70 < swapped < 130  # probability 1/2
    assert torch.equal(ImagePool(0).query(_images(2)), _images(2))


# --------------------------------------------------------------------------- training


def test_cyclegan_trains_through_fit_and_the_cycle_loss_falls():
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(**TINY_CYCLE, identity_weight=0.0))
    a, b = _digits(16, 0), _digits(16, 1)
    loader = make_loader(a, b, batch_size=8, generator=torch.Generator().manual_seed(0))
    hist = fit(model, loader, steps=40, phases=model.phases(lr=3e-3), progress=False, log_every=1)
    cyc = hist["cycle"]
    assert cyc[-1] < 0.6 * cyc[0]


def test_pix2pix_l1_overfits_one_batch():
    torch.manual_seed(0)
    model = Pix2Pix(Pix2PixConfig(task="sr", width=8, adv_weight=0.0))
    x = _digits(8)
    opt = torch.optim.Adam(model.g.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        loss, logs = model.loss((x,))
        first = first if first is not None else logs["l1"].item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["l1"].item() < 0.5 * first


def test_same_generator_same_sample():
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(**TINY_CYCLE))
    x = _images(4)
    assert torch.equal(model.translate(x, "ab"), model.translate(x, "ab"))
    c1, m1 = degrade(_digits(4), "inpaint", generator=torch.Generator().manual_seed(5))
    c2, m2 = degrade(_digits(4), "inpaint", generator=torch.Generator().manual_seed(5))
    assert torch.equal(c1, c2) and torch.equal(m1, m2)
    p = Pix2Pix(Pix2PixConfig(task="inpaint", width=4, d_width=4))
    assert torch.equal(p.restore(c1), p.restore(c2))
    pa, pb = (CycleGAN(CycleGANConfig(**TINY_CYCLE)).pool_b for _ in range(2))
    for pool in (pa, pb):
        pool.query(_images(4, 0), torch.Generator().manual_seed(0))
    qa = pa.query(_images(4, 1), torch.Generator().manual_seed(3))
    qb = pb.query(_images(4, 1), torch.Generator().manual_seed(3))
    assert torch.equal(qa, qb)


# --------------------------------------------------------------------------- degradations


def test_degradations_and_baselines():
    x = _digits(6)
    c, m = degrade(x, "sr")
    assert c.shape == (6, 1, 28, 28) and m is None
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(bicubic_up(torch.full((1, 1, 7, 7), 0.3)), flat, atol=1e-6)  # constants survive
    c, m = degrade(x, "inpaint", mask_size=12, generator=torch.Generator().manual_seed(0))
    assert c.shape == (6, 2, 28, 28) and torch.equal(c[:, 1:], m)
    assert torch.all(m.flatten(1).sum(1) == 144)
    assert torch.all(m[..., :4, :] == 0) and torch.all(m[..., 24:, :] == 0)
    assert torch.all(c[:, :1] * m == 0) and torch.equal(c[:, :1] * (1 - m), x * (1 - m))
    filled = mean_fill(c, flat)
    assert torch.equal(filled * (1 - m), x * (1 - m)) and torch.allclose(filled * m, 0.3 * m)
    p = Pix2Pix(Pix2PixConfig(task="inpaint", width=4, d_width=4))
    y = p.restore(c)
    assert torch.equal(y * (1 - m), x * (1 - m))  # the known pixels are kept


# --------------------------------------------------------------------------- the UCI digits at 28x28


def test_digits28_loader():
    x, y = load_digits28("train")
    xt, yt = load_digits28("test")
    assert x.shape == (1438, 1, 28, 28) and xt.shape == (359, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    for img in x[:50, 0]:  # MNIST's framing: the longer side of the bounding box is 20, centred by mass
        rows, cols = torch.nonzero(img.sum(1) > 0).flatten(), torch.nonzero(img.sum(0) > 0).flatten()
        assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (19, 20)  # bicubic edges may clamp to 0
        r = torch.arange(28.0)
        com = ((img.sum(1) * r).sum() / img.sum(), (img.sum(0) * r).sum() / img.sum())
        assert abs(com[0] - 13.5) <= 1.5 and abs(com[1] - 13.5) <= 1.5
    for labels in (y, yt):
        counts = torch.bincount(labels, minlength=10)
        assert torch.all(counts > 0) and counts.max() - counts.min() <= counts.max() // 5
    xl, yl = load_digits28("train", limit=20)
    assert torch.equal(torch.bincount(yl, minlength=10), torch.full((10,), 2))
    assert xl.shape == (20, 1, 28, 28)


# --------------------------------------------------------------------------- metrics


def test_psnr_ssim_sharpness_known_values():
    x = _images(3)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    y = (x + 0.1).clamp(0, 1)
    mse = (y - x).double().square().flatten(1).mean(1)
    assert torch.allclose(psnr(y, x), 10 * torch.log10(1 / mse))
    half = torch.full((1, 1, 28, 28), 0.5)
    assert math.isclose(float(psnr(torch.zeros(1, 1, 28, 28), half)), 10 * math.log10(4), rel_tol=1e-9)
    # two constant images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = 0.01**2
    expect = (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)
    assert math.isclose(float(ssim(half, torch.full_like(half, 0.25))), expect, rel_tol=1e-9)
    assert float(ssim(1 - x, x).mean()) < 0.0  # anti-correlated
    assert torch.all(sharpness(torch.zeros(2, 1, 28, 28)) == 0)
    blur = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert torch.all(sharpness(blur) < sharpness(x))
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1  # every horizontal difference is +-1, vertical 0
    assert math.isclose(float(sharpness(stripes)), 1.0)


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: psnr(torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28)), ValueError, "one shape"),
        (lambda: psnr(torch.rand(2, 28, 28), torch.rand(2, 28, 28)), ValueError, r"\(N, C, H, W\)"),
        (lambda: ssim(torch.rand(2, 1, 28, 28) * 2, torch.rand(2, 1, 28, 28)), ValueError, r"pred"),
        (lambda: ssim(torch.rand(2, 1, 5, 5), torch.rand(2, 1, 5, 5)), ValueError, "window"),
        (lambda: CycleGAN(CycleGANConfig(**TINY_CYCLE))(torch.rand(2, 3, 28, 28)), ValueError, "x must have shape"),
        (lambda: CycleGAN(CycleGANConfig(**TINY_CYCLE))(torch.rand(2, 1, 28, 28), "ac"), ValueError, "direction"),
        (lambda: CycleGAN(CycleGANConfig(**TINY_CYCLE)).g_loss(torch.rand(2, 1, 28, 28)), TypeError, "pair"),
        (lambda: CycleGANConfig(cycle_weight=-1.0), ValueError, "cycle_weight"),
        (lambda: Pix2PixConfig(task="denoise"), ValueError, "task must be one of"),
        (lambda: Pix2PixConfig(mask_size=21), ValueError, "mask_size"),
        (lambda: degrade(torch.rand(2, 1, 32, 32), "sr"), ValueError, "x must have shape"),
        (lambda: degrade(torch.rand(2, 1, 28, 28) + 1, "sr"), ValueError, "x"),
        (lambda: Pix2Pix(Pix2PixConfig(task="inpaint", width=4))(torch.rand(2, 1, 28, 28)), ValueError, "c must"),
        (lambda: load_digits28("val"), ValueError, "split"),
    ],
)
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
