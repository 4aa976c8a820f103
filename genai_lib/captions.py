"""Captioned MNIST (chapters 9-10): attributes read from pixels, a caption grammar, a tokenizer.

Every caption is *computed* from the image, so any image, a generated one included, can be
checked against the words that describe it. Four attributes:

- ``digit``: the label (0-9);
- ``thickness``: thin / regular / thick, the tertile of the ink mass (sum of grey levels)
  among training images of the same digit (a one has far less ink than an eight);
- ``slant``: left / upright / right, from the second moments of the ink: the shear
  ``s = -cov(x, y) / var(y)`` (image rows grow downwards, so a stroke leaning right has
  ``cov(x, y) < 0``); left if ``s < 0``, right if ``s > 0.25`` (about a third each);
- ``size``: small / large, the bounding-box area of the pixels above 0.5 against the median
  of the same digit (MNIST digits are scaled to a 20-pixel box, so the *width* varies).

The grammar is fixed: ``"a {size} {thickness} {digit} {slant phrase}"``, e.g. ``"a large thick
seven slanting right"``, 6 words; a Chinese caption reads the same attributes. The thresholds
below were measured on the 4,000-image training split (``tests/test_captions.py`` re-measures
them). Shapes: images (N, 1, 28, 28) in [0, 1]; attributes int64 (N, 4) in the column order
:data:`ATTRIBUTES`; token ids int64 (N, :data:`CAPTION_LEN`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genai_lib._checks import check_images, check_positive

__all__ = [
    "ATTRIBUTES",
    "DIGITS",
    "THICKNESS",
    "SLANT",
    "SIZE",
    "CAPTION_LEN",
    "image_statistics",
    "attributes",
    "caption",
    "caption_zh",
    "parse_caption",
    "all_captions",
    "CaptionTokenizer",
    "captioned_mnist",
]

ATTRIBUTES = ("digit", "thickness", "slant", "size")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS = ("thin", "regular", "thick")
SLANT = ("left", "upright", "right")
SIZE = ("small", "large")
_SLANT_PHRASE = ("slanting left", "standing upright", "slanting right")
_ZH_DIGITS = "零一二三四五六七八九"
_ZH_THICK = ("细", "中等粗细", "粗")
_ZH_SLANT = ("向左倾斜", "直立", "向右倾斜")
_ZH_SIZE = ("小", "大")

# Measured on the training split (4,000 images): ink tertiles and bounding-box area medians per digit.
INK_TERTILES = (
    (125.1, 150.9), (52.4, 65.6), (103.5, 129.0), (100.0, 122.6), (81.2, 101.2),
    (84.6, 109.6), (92.0, 115.7), (78.8, 98.9), (102.8, 124.8), (81.7, 100.9),
)  # fmt: skip
AREA_MEDIANS = (340, 160, 340, 320, 320, 320, 280, 300, 300, 260)
SLANT_LEFT, SLANT_RIGHT = 0.0, 0.25
CAPTION_LEN = 8  # <bos>, 6 words, <eos>


def image_statistics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ink mass, shear and bounding-box area of each image: (N, 1, 28, 28) -> three (N,) tensors.

    An image without ink has shear 0 and area 0.
    """
    images = check_images("images", images, (1, 28, 28)).float()
    m = images[:, 0]  # (N, 28, 28)
    mass = m.sum((1, 2))  # (N,)
    safe = mass.clamp_min(1e-6)
    r = torch.arange(28.0, device=m.device)
    ys, xs = r.view(1, 28, 1), r.view(1, 1, 28)
    cy = (m * ys).sum((1, 2)) / safe
    cx = (m * xs).sum((1, 2)) / safe
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    cov = (m * dx * dy).sum((1, 2)) / safe
    var_y = (m * dy * dy).sum((1, 2)) / safe
    shear = torch.where(var_y > 1e-6, -cov / var_y.clamp_min(1e-6), torch.zeros_like(cov))
    ink = m > 0.5
    idx = torch.arange(28, device=m.device)

    def extent(on: torch.Tensor) -> torch.Tensor:  # (N, 28) bool -> (N,) span of the True entries
        lo = torch.where(on, idx, 28).amin(1)
        hi = torch.where(on, idx, -1).amax(1)
        return (hi - lo + 1).clamp_min(0)

    area = extent(ink.any(2)) * extent(ink.any(1))
    return {"ink": mass, "shear": shear, "area": area.float()}


def attributes(images: torch.Tensor, digits: Any) -> torch.Tensor:
    """The attribute table (N, 4) of images whose digit is ``digits`` (N,) (labels, or the digit
    a caption asked for): thickness and size are read relative to that digit's training images."""
    stats = image_statistics(images)
    n = stats["ink"].shape[0]
    digits = torch.as_tensor(digits)
    if digits.shape != (n,) or digits.dtype.is_floating_point or digits.dtype == torch.bool:
        raise ValueError(f"digits must be {n} integer labels (N,), got {digits.dtype} {tuple(digits.shape)}")
    if n and (int(digits.min()) < 0 or int(digits.max()) > 9):
        raise ValueError(f"digits must be in [0, 9], got values in [{int(digits.min())}, {int(digits.max())}]")
    dev = stats["ink"].device
    digits = digits.to(dev).long()
    tert = torch.tensor(INK_TERTILES, device=dev)[digits]  # (N, 2)
    thick = (stats["ink"] > tert[:, 0]).long() + (stats["ink"] > tert[:, 1]).long()
    slant = (stats["shear"] >= SLANT_LEFT).long() + (stats["shear"] > SLANT_RIGHT).long()
    size = (stats["area"] >= torch.tensor(AREA_MEDIANS, device=dev)[digits]).long()
    return torch.stack([digits, thick, slant, size], dim=1)


def _row(attrs: Any) -> tuple[int, int, int, int]:
    row = torch.as_tensor(attrs).reshape(-1).tolist() if not isinstance(attrs, (tuple, list)) else list(attrs)
    if len(row) != 4:
        raise ValueError(f"attrs must hold 4 values (digit, thickness, slant, size), got {len(row)}")
    for name, v, hi in zip(ATTRIBUTES, row, (10, 3, 3, 2), strict=True):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < hi:
            raise ValueError(f"attrs {name} must be an int in [0, {hi}), got {v!r}")
    return tuple(row)  # type: ignore[return-value]


def caption(attrs: Any) -> str:
    """The English caption of one attribute row: ``(7, 2, 2, 1)`` -> ``"a large thick seven slanting right"``."""
    d, t, s, z = _row(attrs)
    return f"a {SIZE[z]} {THICKNESS[t]} {DIGITS[d]} {_SLANT_PHRASE[s]}"


def caption_zh(attrs: Any) -> str:
    """The same attributes in Chinese: ``(7, 2, 2, 1)`` -> ``"一个大的、粗的数字七，向右倾斜"``."""
    d, t, s, z = _row(attrs)
    return f"一个{_ZH_SIZE[z]}的、{_ZH_THICK[t]}的数字{_ZH_DIGITS[d]}，{_ZH_SLANT[s]}"


def parse_caption(text: str) -> tuple[int, int, int, int]:
    """The attributes (digit, thickness, slant, size) a caption states; the inverse of :func:`caption`."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    words = text.split()
    if not words:
        raise ValueError("text is an empty caption")
    unknown = [w for w in words if w not in CaptionTokenizer.WORDS]
    if unknown:
        raise ValueError(f"text has unknown words {unknown} (the caption vocabulary: {CaptionTokenizer.WORDS[3:]})")
    if len(words) != 6 or words[0] != "a" or " ".join(words[4:]) not in _SLANT_PHRASE:
        raise ValueError(f"text must read 'a <size> <thickness> <digit> <slant phrase>', got {text!r}")
    try:
        return (
            DIGITS.index(words[3]),
            THICKNESS.index(words[2]),
            _SLANT_PHRASE.index(" ".join(words[4:])),
            SIZE.index(words[1]),
        )
    except ValueError:
        raise ValueError(f"text must read 'a <size> <thickness> <digit> <slant phrase>', got {text!r}") from None


def all_captions(digit: int | None = None) -> list[tuple[int, int, int, int]]:
    """Every attribute row (180, or the 18 of one ``digit``), in a fixed order."""
    digits = range(10) if digit is None else [digit]
    return [(d, t, s, z) for d in digits for t in range(3) for s in range(3) for z in range(2)]


class CaptionTokenizer:
    """Word-level tokenizer of the caption grammar: ids 0-2 are ``<pad>``, ``<bos>``, ``<eos>``.

    ``encode`` gives ``[<bos>, w1..w6, <eos>]`` (CAPTION_LEN ids); ``decode`` stops at ``<eos>``.
    """

    WORDS = ("<pad>", "<bos>", "<eos>", "a", *SIZE, *THICKNESS, *DIGITS, "slanting", "standing", *SLANT)
    PAD, BOS, EOS = 0, 1, 2

    def __init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.WORDS)}

    @property
    def vocab_size(self) -> int:
        return len(self.WORDS)

    def encode(self, text: str) -> torch.Tensor:
        """One caption -> int64 (CAPTION_LEN,); unknown words and empty captions raise ValueError."""
        parse_caption(text)  # the grammar's checks, with their messages
        return torch.tensor([self.BOS, *(self.index[w] for w in text.split()), self.EOS])

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts must be a non-empty list of captions")
        return torch.stack([self.encode(t) for t in texts])

    def encode_attributes(self, attrs: torch.Tensor) -> torch.Tensor:
        """Attribute rows (N, 4) -> their captions' ids (N, CAPTION_LEN), without building strings
        (the same ids as ``encode_batch([caption(a) for a in attrs])``)."""
        if not isinstance(attrs, torch.Tensor) or attrs.dim() != 2 or attrs.shape[1] != 4:
            raise ValueError(f"attrs must be an (N, 4) tensor, got {getattr(attrs, 'shape', type(attrs).__name__)}")
        a = attrs.long().cpu()
        for j, (name, hi) in enumerate(zip(ATTRIBUTES, (10, 3, 3, 2), strict=True)):
            if len(a) and not 0 <= int(a[:, j].min()) <= int(a[:, j].max()) < hi:
                raise ValueError(f"attrs {name} must be in [0, {hi})")
        ix = self.index
        digit = torch.tensor([ix[w] for w in DIGITS])[a[:, 0]]
        thick = torch.tensor([ix[w] for w in THICKNESS])[a[:, 1]]
        slant = torch.tensor([[ix[w] for w in p.split()] for p in _SLANT_PHRASE])[a[:, 2]]  # (N, 2)
        size = torch.tensor([ix[w] for w in SIZE])[a[:, 3]]
        n = len(a)
        const = lambda v: torch.full((n,), v, dtype=torch.long)  # noqa: E731
        cols = [const(self.BOS), const(ix["a"]), size, thick, digit, slant[:, 0], slant[:, 1], const(self.EOS)]
        return torch.stack(cols, dim=1).to(attrs.device)

    def decode(self, ids: Any) -> str:
        """ids (T,) -> the words between ``<bos>`` and the first ``<eos>``."""
        words = []
        for i in torch.as_tensor(ids).reshape(-1).tolist():
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"ids must be in [0, {self.vocab_size}), got {i}")
            if i == self.EOS:
                break
            if i not in (self.PAD, self.BOS):
                words.append(self.WORDS[i])
        return " ".join(words)

    def attributes_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, T) -> attributes (N, 4); a row that does not parse gets -1 everywhere."""
        rows = []
        for r in ids:
            try:
                rows.append(parse_caption(self.decode(r)))
            except ValueError:
                rows.append((-1, -1, -1, -1))
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 4)


def captioned_mnist(
    split: str = "train", *, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST images with their computed captions: (images (N, 1, 28, 28), token ids (N, 8), attributes (N, 4))."""
    from genai_lib.data import load_mnist  # same layer (data); imported here so this module stays light

    if limit is not None:
        check_positive("limit", limit)
    x, y = load_mnist(split, limit=limit)
    attrs = attributes(x, y)
    tok = CaptionTokenizer()
    ids = tok.encode_batch([caption(a) for a in attrs.tolist()])
    return x, ids, attrs
