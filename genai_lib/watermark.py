"""Watermarks for generated text and images (chapter 19).

Text: the green-list watermark of Kirchenbauer et al. 2023 (*A Watermark for Large Language
Models*). A secret ``key`` and the previous token p seed a pseudo-random split of the vocabulary:
a green list G(p) of k = round(gamma V) tokens and the red rest. While generating, the watermark
adds ``delta`` to the logits of the green tokens (a :class:`WatermarkProcessor`, the
``logits_processor`` of :func:`genai_lib.sampling.generate_tokens`), so the sampler picks green
tokens more often than the fraction gamma' = k / V that chance gives. Whoever knows the key
counts the green tokens |s|_G among the n scored tokens and computes the one-proportion z-test

    z = (|s|_G - gamma' n) / sqrt(n gamma' (1 - gamma'))                 (Kirchenbauer eq. 2)

which is about N(0, 1) for text written without the key, and large for watermarked text. The
detector needs the key and the tokenizer, not the model. Text with many repeated (previous,
token) pairs breaks the independence the z-test assumes; ``ignore_repeated=True`` scores each
pair once (Fernandez et al. 2023 make the same correction).

Text, distortion-free: the Gumbel-max (exponential-minimum) watermark of Aaronson 2022, in the
form of Kuditipudi et al. 2023 (*Robust Distortion-free Watermarks for Language Models*), with
the exact p-value of Fernandez et al. 2023. The key fixes, for each position t of the generated
text and previous token, V uniforms u_{t,1..V} (a :class:`GumbelKey`). The sampler does not draw the next token
from p = softmax(logits): it takes the token i maximising u_{t,i} ** (1 / p_i), equivalently
logits_i + G_{t,i} with the Gumbel noise G = -log(-log u) (a :class:`GumbelProcessor`). Over
the key's randomness that token has exactly the distribution p (the Gumbel-max trick), so the
watermarked text has the model's distribution and costs no perplexity in expectation; for the
key's owner the chosen tokens have suspiciously large u. The score

    S = sum_t -log(1 - u_{t, x_t})                                       (Aaronson 2022)

is a sum of n independent Exp(1) variables for text written without the key (u_{t, x_t} is then
uniform), so S ~ Gamma(n, 1) and p = Q(n, S), the regularised upper incomplete gamma function
(:func:`gumbel_pvalue`, exact at any length). Because the uniforms are indexed by position, not by
the previous token alone, repeated characters do not correlate the scores (the previous token
is hashed in as well, so that different texts use different numbers); the detector must know
where the generated text starts (``offset``), and an edited token costs two scores, as for the
green list.

Images: the tree-ring watermark of Wen et al. 2023. A key is written into the centre (the low
frequencies) of the 2-D Fourier transform of the *initial noise* x_T of the deterministic DDIM
sampler, as rings of constant value; the image is sampled from that noise. To detect it, the
image is mapped back to its noise by DDIM inversion (``GaussianDiffusion.encode``) and the
Fourier coefficients inside the key's mask are compared with the key: the mean absolute
difference is small for watermarked images and large for others.

Shapes: ids (B, T) or (T,); logits (B, V); images and noise (B, C, H, W).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genai_lib._checks import check_generator, check_positive, check_tensor

__all__ = [
    "GreenList",
    "WatermarkProcessor",
    "watermark_z",
    "green_fraction",
    "random_token_edits",
    "GumbelKey",
    "GumbelProcessor",
    "gumbel_score",
    "gumbel_pvalue",
    "ring_mask",
    "tree_ring_key",
    "embed_tree_ring",
    "tree_ring_distance",
]

_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9)  # odd 64-bit constants: spread (key, token) over seeds


def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"gamma must be a number in (0, 1), got {type(gamma).__name__}")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma (the green fraction of the vocabulary) must be in (0, 1), got {gamma!r}")
    return float(gamma)


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


class GreenList:
    """The key's split of a vocabulary of ``vocab_size`` tokens: for each previous token p, a
    green list of k = round(gamma V) tokens (1 <= k < V), a deterministic function of (key, p).

    ``mask(prev)``: bool (..., V), True for the green tokens after each id of ``prev`` (...).
    Rows are drawn once, by ``torch.randperm`` with a generator seeded from (key, p), and kept.
    """

    def __init__(self, vocab_size: int, *, gamma: float = 0.25, key: int = 0) -> None:
        check_positive("vocab_size", vocab_size)
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 to split it into green and red, got {vocab_size}")
        self.vocab_size, self.gamma, self.key = vocab_size, _check_gamma(gamma), _check_int("key", key)
        self.k = min(max(round(self.gamma * vocab_size), 1), vocab_size - 1)
        self._rows: dict[int, torch.Tensor] = {}

    @property
    def fraction(self) -> float:
        """gamma' = k / V, the exact chance that a token unrelated to the key is green."""
        return self.k / self.vocab_size

    def seed(self, prev: int) -> int:
        """The generator seed of the green list after token ``prev`` (a 63-bit hash of key and prev)."""
        return (self.key * _MIX[0] + (prev + 1) * _MIX[1]) % (2**63 - 1)

    def row(self, prev: int) -> torch.Tensor:
        """bool (V,): the green list after token ``prev``."""
        prev = int(prev)
        if not 0 <= prev < self.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got {prev}")
        if prev not in self._rows:
            g = torch.Generator().manual_seed(self.seed(prev))
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            mask[torch.randperm(self.vocab_size, generator=g)[: self.k]] = True
            self._rows[prev] = mask
        return self._rows[prev]

    def mask(self, prev: torch.Tensor) -> torch.Tensor:
        """bool (..., V) green lists after each id of ``prev`` (...), on ``prev``'s device."""
        prev = torch.as_tensor(prev)
        flat = prev.reshape(-1).tolist()
        rows = torch.stack([self.row(p) for p in flat]) if flat else torch.zeros(0, self.vocab_size, dtype=torch.bool)
        return rows.reshape(*prev.shape, self.vocab_size).to(prev.device)


class WatermarkProcessor:
    """A logits processor: ``(ids (B, T), logits (B, V)) -> logits + delta * green(ids[:, -1])``.

    Pass it as ``model.generate(..., logits_processor=WatermarkProcessor(green, delta=2.0))``;
    ``delta = 0`` leaves the logits unchanged (the unwatermarked model)."""

    def __init__(self, green: GreenList, *, delta: float = 2.0) -> None:
        if not isinstance(green, GreenList):
            raise TypeError(f"green must be a GreenList, got {type(green).__name__}")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"delta (the watermark strength) must be a number >= 0, got {type(delta).__name__}")
        if not (math.isfinite(delta) and delta >= 0):
            raise ValueError(f"delta (the watermark strength) must be a finite number >= 0, got {delta!r}")
        self.green, self.delta = green, float(delta)

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[-1] != self.green.vocab_size:
            raise ValueError(f"logits must be (B, {self.green.vocab_size}), got {tuple(logits.shape)}")
        if self.delta == 0:
            return logits
        return logits + self.delta * self.green.mask(ids[:, -1]).to(logits.dtype)


def _as_rows(ids: Any) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.dtype in (torch.bool,) or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
    if ids.dim() not in (1, 2):
        raise ValueError(f"ids must be (T,) or (B, T) token ids, got shape {tuple(ids.shape)}")
    rows = ids.reshape(1, -1) if ids.dim() == 1 else ids
    if rows.shape[1] < 2:
        raise ValueError(
            f"ids must hold at least 2 tokens (a previous token and one scored token), got {rows.shape[1]}"
        )
    return rows.cpu()


def _green_counts(ids: Any, green: GreenList, ignore_repeated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(green hits (B,), scored tokens (B,)) for every row of ids: token t scored against ids[t-1]."""
    if not isinstance(green, GreenList):
        raise TypeError(f"green must be a GreenList, got {type(green).__name__}")
    rows = _as_rows(ids)
    lo, hi = int(rows.min()), int(rows.max())
    if lo < 0 or hi >= green.vocab_size:
        raise ValueError(f"token ids must be in [0, {green.vocab_size}), got values in [{lo}, {hi}]")
    prev, cur = rows[:, :-1], rows[:, 1:]  # (B, T-1)
    hit = green.mask(prev).gather(-1, cur.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    if not ignore_repeated:
        return hit.sum(1).double(), torch.full((len(rows),), float(cur.shape[1]), dtype=torch.float64)
    hits, ns = [], []
    for p, c, h in zip(prev.tolist(), cur.tolist(), hit.tolist(), strict=True):
        seen = dict(zip(zip(p, c, strict=True), h, strict=True))  # one entry per distinct pair
        hits.append(sum(seen.values()))
        ns.append(len(seen))
    return torch.tensor(hits, dtype=torch.float64), torch.tensor(ns, dtype=torch.float64)


def green_fraction(ids: Any, green: GreenList, *, ignore_repeated: bool = False) -> torch.Tensor:
    """The fraction of scored tokens that are green, per row (B,) (float64)."""
    hits, n = _green_counts(ids, green, ignore_repeated)
    return hits / n


def watermark_z(ids: Any, green: GreenList, *, ignore_repeated: bool = False) -> torch.Tensor:
    """The z-score of Kirchenbauer eq. 2 per row (B,) (float64): token t >= 1 of a row is scored
    against its previous token, so pass the last prompt token followed by the generated ones."""
    hits, n = _green_counts(ids, green, ignore_repeated)
    g = green.fraction
    return (hits - g * n) / (n * g * (1 - g)).sqrt()


def random_token_edits(
    ids: torch.Tensor, fraction: float, vocab_size: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of ids (B, T) with each token replaced, with probability ``fraction``, by a token drawn
    uniformly from the vocabulary (an attacker's random edits; the first token is kept)."""
    check_tensor("ids", ids, shape=(None, None))
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    check_positive("vocab_size", vocab_size)
    check_generator("generator", generator)
    src = generator.device if generator is not None else ids.device
    flip = torch.rand(ids.shape, generator=generator, device=src).to(ids.device) < fraction
    flip[:, 0] = False
    new = torch.randint(0, vocab_size, ids.shape, generator=generator, device=src).to(ids.device)
    return torch.where(flip, new, ids)


# -------------------------------------------------------------------- Gumbel-max (distortion-free)
class GumbelKey:
    """The key's uniforms: ``uniforms(t, prev)`` is float64 (V,) in (0, 1), a deterministic
    function of (key, t, prev) for position t >= 0 of the generated text and previous token prev
    (drawn once and kept). The position makes every scored token's uniforms fresh (an exact null
    however often the text repeats itself); the previous token makes two texts that differ
    use different numbers at the same position."""

    def __init__(self, vocab_size: int, *, key: int = 0) -> None:
        check_positive("vocab_size", vocab_size)
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 to choose between tokens, got {vocab_size}")
        self.vocab_size, self.key = vocab_size, _check_int("key", key)
        self._rows: dict[tuple[int, int], torch.Tensor] = {}

    def seed(self, t: int, prev: int) -> int:
        """The generator seed of position ``t`` after token ``prev`` (a 63-bit hash)."""
        return (self.key * _MIX[1] + (t + 1) * _MIX[0] + (prev + 1) * (_MIX[0] ^ _MIX[1])) % (2**63 - 1)

    def uniforms(self, t: int, prev: int) -> torch.Tensor:
        """float64 (V,): the uniforms of position ``t`` after token ``prev``, away from 0 and 1."""
        t, prev = int(t), int(prev)
        if t < 0:
            raise ValueError(f"t (a position in the generated text) must be >= 0, got {t}")
        if not 0 <= prev < self.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got {prev}")
        if (t, prev) not in self._rows:
            g = torch.Generator().manual_seed(self.seed(t, prev))
            u = torch.rand(self.vocab_size, generator=g, dtype=torch.float64)
            self._rows[t, prev] = u.clamp(1e-12, 1 - 1e-12)
        return self._rows[t, prev]

    def table(self, prev: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """float64 (B, T, V): the uniforms after each id of ``prev`` (B, T), column j at
        position offset + j."""
        rows = [[self.uniforms(offset + j, p) for j, p in enumerate(r)] for r in prev.tolist()]
        return torch.stack([torch.stack(r) for r in rows])


class GumbelProcessor:
    """A logits processor that makes the choice: ``(ids (B, T), logits (B, V))`` -> logits that
    are 0 at argmax_i (log p_i + G_i), G = -log(-log u) with u = uniforms(T - ``start``,
    ids[:, -1]), and -inf elsewhere (``start``: the prompt's length, so the first generated token
    has t = 0). Over the key the choice is a sample of softmax(logits) (temperature 1: divide
    the logits first for another); any sampler downstream can only pick it."""

    def __init__(self, key: GumbelKey, *, start: int) -> None:
        if not isinstance(key, GumbelKey):
            raise TypeError(f"key must be a GumbelKey, got {type(key).__name__}")
        start = _check_int("start", start)
        if start < 1:
            raise ValueError(f"start (the prompt length) must be >= 1, got {start}")
        self.key, self.start = key, start

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[-1] != self.key.vocab_size:
            raise ValueError(f"logits must be (B, {self.key.vocab_size}), got {tuple(logits.shape)}")
        t = ids.shape[1] - self.start
        if t < 0:
            raise ValueError(f"ids hold {ids.shape[1]} tokens, fewer than start={self.start}")
        u = torch.stack([self.key.uniforms(t, p) for p in ids[:, -1].tolist()])
        gumbel = -torch.log(-torch.log(u)).to(logits.device)
        pick = (torch.log_softmax(logits.double(), -1) + gumbel).argmax(-1, keepdim=True)
        return torch.full_like(logits, float("-inf")).scatter(-1, pick, 0.0)


def gumbel_score(ids: Any, key: GumbelKey, *, offset: int = 0) -> torch.Tensor:
    """S = sum_t -log(1 - u_t[x_t]) per row (B,) (float64): ids (B, T) or (T,) are the prompt's
    last token followed by generated ones, token j >= 1 scored with uniforms(offset + j - 1,
    ids[j - 1]); Gamma(T - 1, 1) for text written without the key."""
    if not isinstance(key, GumbelKey):
        raise TypeError(f"key must be a GumbelKey, got {type(key).__name__}")
    offset = _check_int("offset", offset)
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    rows = _as_rows(ids)
    lo, hi = int(rows.min()), int(rows.max())
    if lo < 0 or hi >= key.vocab_size:
        raise ValueError(f"token ids must be in [0, {key.vocab_size}), got values in [{lo}, {hi}]")
    u = key.table(rows[:, :-1], offset)  # (B, T - 1, V)
    r = u.gather(-1, rows[:, 1:, None]).squeeze(-1)  # u_t[x_t]
    return -torch.log1p(-r).sum(1)


def gumbel_pvalue(ids: Any, key: GumbelKey, *, offset: int = 0) -> torch.Tensor:
    """The exact p-value P(Gamma(n, 1) >= S) per row (B,) (float64), n = T - 1 scored tokens:
    small means watermarked."""
    s = gumbel_score(ids, key, offset=offset)
    n = torch.full_like(s, float(torch.as_tensor(ids).shape[-1] - 1))
    return torch.special.gammaincc(n, s)


# ---------------------------------------------------------------------------------------- images
def _fft(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1))  # the zero frequency at the centre


def ring_mask(size: int, radius: int) -> torch.Tensor:
    """bool (size, size): the centred Fourier coefficients within ``radius`` of the zero frequency."""
    check_positive("size", size)
    check_positive("radius", radius)
    if 2 * radius >= size:
        raise ValueError(f"radius must be < size / 2 (the Nyquist frequency), got radius={radius} for size={size}")
    return _radius(size) <= radius


def _radius(size: int) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float64) - size // 2  # fftshift puts frequency 0 at index size // 2
    return (c[:, None] ** 2 + c[None, :] ** 2).sqrt().round()


def tree_ring_key(size: int, radius: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A key (size, size), complex128: on ring r = 0..radius the real part of one Fourier coefficient
    of a fresh N(0, I) image (Wen et al.'s "rings" pattern), zero outside the mask. Its rings are
    symmetric about the centre, so writing it into real noise keeps the noise real."""
    mask = ring_mask(size, radius)
    check_generator("generator", generator)
    g = torch.randn(size, size, generator=generator, dtype=torch.float64)
    spec = _fft(g)
    rad = _radius(size)
    key = torch.zeros(size, size, dtype=torch.complex128)
    c = size // 2
    for r in range(radius + 1):
        key[rad == r] = spec[c, c + r].real
    return key * mask


def _check_key(noise: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, channel: int) -> None:
    check_tensor("noise", noise, shape=(None, None, None, None), floating=True)
    size = noise.shape[-1]
    if noise.shape[-2] != size:
        raise ValueError(f"images must be square, got {tuple(noise.shape[-2:])}")
    for name, t in (("key", key), ("mask", mask)):
        if tuple(t.shape) != (size, size):
            raise ValueError(f"{name} must be ({size}, {size}), got {tuple(t.shape)}")
    if not 0 <= channel < noise.shape[1]:
        raise ValueError(f"channel must be in [0, {noise.shape[1]}), got {channel}")


def embed_tree_ring(noise: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, *, channel: int = 0) -> torch.Tensor:
    """Initial noise (B, C, H, W) with the key written into the centred spectrum of ``channel``
    inside ``mask`` (the rest of the spectrum, and the other channels, unchanged)."""
    _check_key(noise, key, mask, channel)
    spec = _fft(noise[:, channel])  # (B, H, W)
    spec[:, mask] = key.to(spec.device)[mask.to(spec.device)]
    out = noise.clone()
    back = torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1)))
    out[:, channel] = back.real.to(noise.dtype)
    return out


def tree_ring_distance(noise: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, *, channel: int = 0) -> torch.Tensor:
    """(B,) float64: the mean |F(x)_i - key_i| over the mask, for recovered noise x (B, C, H, W);
    small means watermarked."""
    _check_key(noise, key, mask, channel)
    spec = _fft(noise[:, channel])
    m = mask.to(spec.device)
    return (spec[:, m] - key.to(spec.device)[m]).abs().mean(-1).cpu()
