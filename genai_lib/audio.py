"""Audio made offline: an additive synthesiser in NumPy, synthetic tones, WAV bytes, windows.

Chapter 12 of the course. Nothing here downloads anything: the "real musical audio" of the
chapter is Bach chorales from music21's corpus (:mod:`genai_lib.music`) rendered by
:func:`render_notes`, a plain additive synthesiser,

    x(t) = sum_notes env(t - t0) sum_{h=1..H} a_h sin(2 pi h f0 (t - t0)),   f0 = 440 * 2^((p - 69) / 12)

with a_h = h^(-rolloff) (harmonics above the Nyquist frequency rate / 2 dropped, so nothing
aliases) and an envelope with a linear attack, an exponential decay and a short release
(no clicks at note boundaries). :func:`wav_bytes` writes 16-bit PCM WAV through
``scipy.io.wavfile``, which ``IPython.display.Audio`` embeds inline (it plays in the static book).

Notes are tuples ``(voice, pitch, onset, duration)``: voice 0..3 (soprano, alto, tenor, bass),
MIDI pitch (-1 for a rest), onset and duration in quarter notes.
Shape legend: N samples, W windows, T window length.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_finite_number, check_generator, check_positive

__all__ = [
    "RATE",
    "check_audio",
    "check_rate",
    "midi_to_hz",
    "render_notes",
    "synth_tones",
    "wav_bytes",
    "windows",
]

RATE = 8000  # samples per second of the chapter's audio (telephone quality: 4 kHz bandwidth)
MAX_RATE = 48000  # the highest sample rate the helpers accept
MAX_SECONDS = 600  # ... and the longest clip


def check_rate(rate: Any) -> int:
    """A sample rate: an int in [1000, 48000] Hz."""
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise TypeError(f"rate must be an int number of samples per second, got {type(rate).__name__} ({rate!r})")
    if not 1000 <= rate <= MAX_RATE:
        raise ValueError(f"rate must be in [1000, {MAX_RATE}] Hz, got {rate}")
    return rate


def check_audio(name: str, x: Any) -> np.ndarray:
    """A mono waveform: 1-D float array or tensor, finite, in [-1, 1] -> float32 NumPy array."""
    if isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating waveform in [-1, 1], got a tensor of dtype {x.dtype}")
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a 1-D float array or tensor, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating waveform in [-1, 1], got dtype {x.dtype} (divide int16 by 32768)")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (mono), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has NaN or inf samples")
    if np.abs(x).max() > 1.0 + 1e-6:
        raise ValueError(f"{name} must lie in [-1, 1], got a peak of {np.abs(x).max():.3g}")
    return x.astype(np.float32)


def midi_to_hz(pitch: Any) -> np.ndarray:
    """MIDI note number(s) -> frequency in Hz (A4 = 69 = 440 Hz, 12-tone equal temperament)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69) / 12)


def _envelope(n: int, rate: int, attack: float = 0.01, decay: float = 0.6, release: float = 0.03) -> np.ndarray:
    t = np.arange(n) / rate
    env = np.minimum(1.0, t / attack) * (0.35 + 0.65 * np.exp(-t / decay))  # attack, then decay to a sustain
    r = min(n, max(1, int(release * rate)))
    env[-r:] *= np.linspace(1.0, 0.0, r)  # release: no click at the end of the note
    return env


def render_notes(
    notes: Sequence[tuple[int, int, float, float]],
    *,
    rate: int = RATE,
    seconds_per_quarter: float = 0.5,
    harmonics: int = 6,
    rolloff: float = 1.5,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Synthesise notes (voice, pitch, onset, duration) -> float32 waveform (N,), peak 0.9.

    ``seconds_per_quarter`` sets the tempo (0.5: 120 quarter notes a minute); each voice gets
    ``harmonics`` partials with amplitudes h^(-rolloff) (a little brighter for lower voices);
    rests (pitch -1) are silent. ``max_seconds`` cuts the render (notes starting later are
    skipped)."""
    check_rate(rate)
    spq = check_finite_number("seconds_per_quarter", seconds_per_quarter, positive=True, allow_zero=False)
    check_positive("harmonics", harmonics)
    check_finite_number("rolloff", rolloff, positive=True)
    if not isinstance(notes, Sequence) or len(notes) == 0:
        raise ValueError("notes must be a non-empty sequence of (voice, pitch, onset, duration); got no notes")
    end = max(float(o) + float(d) for _, _, o, d in notes) * spq
    if max_seconds is not None:
        end = min(end, check_finite_number("max_seconds", max_seconds, positive=True, allow_zero=False))
    if end > MAX_SECONDS:
        raise ValueError(f"the render would last {end:.0f} s; at most {MAX_SECONDS} s (pass max_seconds)")
    out = np.zeros(int(np.ceil(end * rate)) + 1, dtype=np.float64)
    for voice, pitch, onset, dur in notes:
        if pitch < 0:
            continue
        start = int(round(float(onset) * spq * rate))
        if start >= out.size:
            continue
        n = min(int(round(float(dur) * spq * rate)), out.size - start)
        if n <= 0:
            continue
        t = np.arange(n) / rate
        f0 = float(midi_to_hz(pitch))
        h = np.arange(1, harmonics + 1)
        h = h[h * f0 < rate / 2]  # drop partials above Nyquist
        amp = h ** -(rolloff - 0.1 * int(voice))  # lower voices a little brighter
        tone = np.sin(2 * np.pi * f0 * t[:, None] * h[None]) @ amp / amp.sum()
        out[start : start + n] += 0.3 * tone * _envelope(n, rate)
    peak = np.abs(out).max()
    return (out * (0.9 / peak if peak > 0 else 1.0)).astype(np.float32)


def synth_tones(
    n_clips: int,
    seconds: float = 2.0,
    *,
    rate: int = RATE,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Synthetic tones: (n_clips, N) float32 waveforms, each a random melody of harmonic notes.

    Each clip draws a tempo, a number of harmonics (1-6) and notes with pitches in MIDI 48-84
    and lengths of a quarter to a half note: a simpler target than chorales (one voice)."""
    check_positive("n_clips", n_clips)
    check_finite_number("seconds", seconds, positive=True, allow_zero=False)
    check_rate(rate)
    check_generator("generator", generator)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    clips = []
    length = int(seconds * rate)
    for _ in range(n_clips):
        spq = 0.25 + 0.25 * float(torch.rand((), generator=g))
        quarters = seconds / spq
        notes, t = [], 0.0
        while t < quarters:
            dur = float(1 + torch.randint(0, 2, (), generator=g))
            notes.append((0, int(torch.randint(48, 85, (), generator=g)), t, dur))
            t += dur
        harm = int(torch.randint(1, 7, (), generator=g))
        x = render_notes(notes, rate=rate, seconds_per_quarter=spq, harmonics=harm, max_seconds=seconds)
        clips.append(np.pad(x, (0, max(0, length - x.size)))[:length])
    return np.stack(clips)


def wav_bytes(x: Any, rate: int = RATE) -> bytes:
    """A mono waveform in [-1, 1] -> the bytes of a 16-bit PCM WAV file (scipy.io.wavfile)."""
    from scipy.io import wavfile

    x = check_audio("x", x)
    check_rate(rate)
    buf = io.BytesIO()
    wavfile.write(buf, rate, (np.clip(x, -1, 1) * 32767).astype(np.int16))
    return buf.getvalue()


def windows(x: Any, length: int, hop: int | None = None) -> torch.Tensor:
    """Cut a waveform (N,) into overlapping windows (W, T=length) every ``hop`` samples (default length)."""
    check_positive("length", length)
    hop = length if hop is None else hop
    check_positive("hop", hop)
    x = torch.as_tensor(check_audio("x", x))
    if x.numel() < length:
        raise ValueError(f"x has {x.numel()} samples, fewer than one window of {length}")
    return x.unfold(0, length, hop).contiguous()
