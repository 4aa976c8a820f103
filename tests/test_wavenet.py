"""WaveNet, mu-law, the linear-prediction baseline and the offline audio helpers (chapter 12)."""

import io
import math

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from genai_lib.audio import check_audio, midi_to_hz, render_notes, synth_tones, wav_bytes, windows
from genai_lib.models.lpc import LinearPredictor, LPCConfig
from genai_lib.models.wavenet import (
    WaveNet,
    WaveNetConfig,
    bits_per_sample,
    mu_law_bin_edges,
    mu_law_decode,
    mu_law_encode,
    receptive_field,
)
from genai_lib.train import fit

TINY = WaveNetConfig(n_layers=3, stacks=2, channels=8, skip_channels=8)


def _model(cfg=TINY, seed=0):
    torch.manual_seed(seed)
    return WaveNet(cfg)


def _ids(b=2, t=48, seed=0):
    return torch.randint(0, 256, (b, t), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- mu-law


def test_mu_law_round_trip():
    q = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(q)), q)  # every class decodes to a value of its own class
    x = torch.linspace(-1, 1, 4001)
    c = mu_law_encode(x)
    err = (mu_law_decode(c) - x).abs()
    edges = mu_law_bin_edges().float()
    assert (err <= edges[c + 1] - edges[c] + 1e-6).all()  # never off by more than its bin's width
    assert float(err.max()) < 0.025  # 8 bits of mu-law: at most about 2% of full scale
    assert float(err[x.abs() < 0.01].max()) < 3e-4  # quiet samples: fine steps (the point of companding)


def test_mu_law_bin_edges_bound_the_classes():
    edges = mu_law_bin_edges().float()
    inner = edges[1:-1]
    assert torch.equal(mu_law_encode(inner - 1e-5), torch.arange(255))
    assert torch.equal(mu_law_encode(inner + 1e-5), torch.arange(1, 256))
    assert edges[0] == -1 and edges[-1] == 1 and (edges[1:] > edges[:-1]).all()


def test_mu_law_formula_pinned():
    # f(0.5) = ln(1 + 127.5) / ln(256) = 0.8757...; class round((f + 1) / 2 * 255) = 239
    assert int(mu_law_encode(torch.tensor(0.5))) == round((math.log(128.5) / math.log(256) + 1) / 2 * 255)
    assert int(mu_law_encode(torch.tensor(0.0))) == 128 and int(mu_law_encode(torch.tensor(-1.0))) == 0


# --------------------------------------------------------------------------- the network


def test_shapes_loss_and_gradients():
    m = _model()
    q = _ids()
    assert m(q).shape == (2, 256, 48)
    loss, logs = m.loss((q,))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert abs(float(logs["bits"]) - loss.item() / math.log(2)) < 1e-6
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_causality_future_never_changes_the_past():
    m = _model()
    q = _ids(t=40)
    base = m(q)
    for t in (0, 7, 25, 39):
        q2 = q.clone()
        q2[:, t] = (q2[:, t] + 97) % 256
        out = m(q2)
        torch.testing.assert_close(out[:, :, :t], base[:, :, :t], rtol=0, atol=0)
        assert (out[:, :, t] - base[:, :, t]).abs().max() > 0  # ... and the present does see sample t


def test_receptive_field_is_what_the_network_sees():
    rf = receptive_field(TINY)
    assert rf == 2 + 2 * (1 + 2 + 4) == _model().receptive_field
    m = _model()
    q = _ids(b=1, t=64)
    x = mu_law_decode(q).requires_grad_(True)
    # gradient of the output at t = 50 w.r.t. every input value: nonzero exactly on [50 - rf + 1, 50]
    h = m.inp(x[:, None])
    skip = 0
    for layer in m.layers:
        h, s = layer(h)
        skip = skip + s
    m.head(skip)[0, :, 50].sum().backward()
    seen = (x.grad[0].abs() > 0).nonzero().flatten()
    assert int(seen.min()) == 50 - rf + 1 and int(seen.max()) == 50
    assert receptive_field(WaveNetConfig(n_layers=10, stacks=3)) == 2 + 3 * 1023  # the paper's 3 x (1..512)


def test_fast_generation_cache_equals_the_full_forward():
    m = _model()
    out = m.generate(30, batch=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 31)
    full = m(out)  # (B, Q, T)
    queues = [torch.zeros(2, 1, 1)] + [torch.zeros(2, 8, layer.dilation) for layer in m.layers]
    for t in range(out.shape[1]):
        step = m._step(mu_law_decode(out[:, t : t + 1]), queues)
        torch.testing.assert_close(step, full[:, :, t], rtol=1e-4, atol=1e-5)


def test_seeded_generation_is_deterministic():
    m = _model()
    a = m.sample(40, generator=torch.Generator().manual_seed(3))
    b = m.sample(40, generator=torch.Generator().manual_seed(3))
    c = m.sample(40, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (40,) and a.abs().max() <= 1


def test_one_batch_overfit_through_fit():
    m = _model()
    t = torch.arange(128)
    q = mu_law_encode(0.6 * torch.sin(2 * math.pi * t / 16.0))[None].repeat(2, 1)
    before = m.loss((q,))[0].item()
    fit(m, [(q,)], steps=80, lr=1e-2, progress=False)
    after = m.loss((q,))[0].item()
    assert after < before / 2, (before, after)


def test_bits_per_sample_of_uniform_logits_is_eight():
    assert abs(bits_per_sample(torch.zeros(3, 5, 256), torch.zeros(3, 5, dtype=torch.long)) - 8.0) < 1e-5


# --------------------------------------------------------------------------- linear prediction


def test_lpc_recovers_an_ar2_process():
    g = torch.Generator().manual_seed(0)
    n, x = 20000, torch.zeros(20000, dtype=torch.float64)
    e = 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    for t in range(2, n):
        x[t] = 1.6 * x[t - 1] - 0.8 * x[t - 2] + e[t]
    q = mu_law_encode((x / x.abs().max() * 0.9).float())
    lpc = LinearPredictor(LPCConfig(order=2, noise="gaussian")).fit(q)
    torch.testing.assert_close(lpc.coef, torch.tensor([1.6, -0.8], dtype=torch.float64), atol=0.05, rtol=0)


def test_lpc_class_probabilities_sum_to_one_and_beat_uniform():
    q = mu_law_encode(0.5 * torch.sin(torch.arange(4000) / 5.0))[None]
    lpc = LinearPredictor(LPCConfig(order=4)).fit(q)
    pred = lpc.predict(q)[:, :5]  # sum over every class of the mass it gives, at 5 positions
    edges = mu_law_bin_edges()
    total = lpc._cdf((edges[-1:] * 1e9 - pred[..., None]) / lpc.scale) - lpc._cdf(
        (edges[:1] * 1e9 - pred[..., None]) / lpc.scale
    )
    torch.testing.assert_close(total[..., 0], torch.ones_like(pred))
    assert lpc.bits(q) < 4.0  # a sinusoid is linearly predictable: far below the uniform 8 bits


# --------------------------------------------------------------------------- audio helpers


def test_render_puts_the_energy_at_the_note_frequency():
    x = render_notes([(0, 69, 0.0, 2.0)], rate=8000, harmonics=1)
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 8000 / x.size - 440.0) < 2.0
    assert abs(np.abs(x).max() - 0.9) < 1e-6 and x.dtype == np.float32
    assert float(midi_to_hz(81)) == pytest.approx(880.0)


def test_render_drops_partials_above_nyquist():
    x = render_notes([(0, 96, 0.0, 2.0)], rate=8000, harmonics=6)  # C7 = 2093 Hz: only 1 partial fits
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / 8000)
    assert spec[freqs > 2300].max() < 0.01 * spec.max()


def test_wav_bytes_round_trip():
    x = np.sin(np.arange(800) / 3.0).astype(np.float32) * 0.5
    rate, y = wavfile.read(io.BytesIO(wav_bytes(x, 8000)))
    assert rate == 8000 and y.dtype == np.int16
    np.testing.assert_allclose(y / 32767, x, atol=1e-4)


def test_synth_tones_are_seeded():
    a = synth_tones(2, 0.5, generator=torch.Generator().manual_seed(0))
    b = synth_tones(2, 0.5, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 4000) and np.array_equal(a, b) and np.abs(a).max() <= 0.9 + 1e-6


def test_windows_and_check_audio():
    w = windows(np.zeros(10, dtype=np.float32), 4, 3)
    assert w.shape == (3, 4)
    with pytest.raises(TypeError, match="int16"):
        check_audio("x", np.zeros(4, dtype=np.int16))
