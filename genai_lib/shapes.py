"""A dSprites-like dataset drawn on the fly: binary images whose generative factors are known.

Chapter 17 of the course measures disentanglement, which needs the true factors behind every
image. dSprites (Matthey et al. 2017) is the usual set; it is a download, so this module draws
a smaller one of the same kind from its definition: every combination of five factors,

    shape (square, ellipse, heart) x scale x rotation x x-position x y-position,

each shape filled where its implicit inequality holds at the pixel centre (no anti-aliasing, so
the images are exactly binary). Rotations stay in [0, 90 degrees): a square turned by 90 degrees
is the same square, so a wider range would give images whose rotation label cannot be read off.
Nothing random is drawn: the same arguments give the same tensors on every machine.

Shapes: images float32 ``(N, 1, S, S)`` in {0, 1}; factor labels int64 ``(N, 5)``, column k the
index of the value of factor ``FACTORS[k]``; ``N`` the product of the factor sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genai_lib._checks import check_positive, check_size, plain_fields

__all__ = ["FACTORS", "SHAPES", "ShapesSpec", "render_shapes", "load_shapes", "factor_values"]

FACTORS = ("shape", "scale", "rotation", "x", "y")
SHAPES = ("square", "ellipse", "heart")


@dataclass(frozen=True)
class ShapesSpec:
    """How many values each factor takes, and the image size (defaults: 3 x 4 x 6 x 8 x 8 = 4,608)."""

    size: int = 28  # image side S in pixels (28 fits the course's 28x28 conv encoders)
    n_scale: int = 4  # scales, evenly spaced from 0.5 to 1 (1: the shape spans about 40% of S)
    n_rotation: int = 6  # rotations, evenly spaced in [0, 90) degrees
    n_x: int = 8  # horizontal positions of the centre, evenly spaced across the free width
    n_y: int = 8  # vertical positions of the centre

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("size", "n_scale", "n_rotation", "n_x", "n_y"):
            check_positive(name, getattr(self, name))
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels (smaller shapes lose their form), got {self.size}")
        check_size("ShapesSpec", self.n_images * self.size * self.size, unit="pixels")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each factor, in the order of ``FACTORS``."""
        return (len(SHAPES), self.n_scale, self.n_rotation, self.n_x, self.n_y)

    @property
    def n_images(self) -> int:
        return math.prod(self.sizes)


def factor_values(spec: ShapesSpec) -> dict[str, torch.Tensor]:
    """The value behind each label index: scale (relative), rotation (radians), x and y (in [-1, 1])."""
    if not isinstance(spec, ShapesSpec):
        raise TypeError(f"spec must be a ShapesSpec, got {type(spec).__name__}")
    margin = 0.5  # the centre stays where the largest shape (radius <= 0.46 of the half-width) fits whole

    def spread(n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.linspace(lo, hi, n) if n > 1 else torch.tensor([(lo + hi) / 2])

    return {
        "shape": torch.arange(len(SHAPES), dtype=torch.float32),
        "scale": spread(spec.n_scale, 0.5, 1.0),
        "rotation": torch.arange(spec.n_rotation) * (math.pi / 2 / spec.n_rotation),
        "x": spread(spec.n_x, -margin, margin),
        "y": spread(spec.n_y, -margin, margin),
    }


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the unit shape at shape-frame coordinates (u, v) (radius about 1)."""
    if shape == 0:  # square of half-side 0.8 (its corners reach radius 1.13)
        return (u.abs() <= 0.8) & (v.abs() <= 0.8)
    if shape == 1:  # ellipse with axes 1 and 0.55: elongated, so its rotation shows
        return (u / 1.0) ** 2 + (v / 0.55) ** 2 <= 1
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, scaled to radius ~1 and centred (v points up)
    x, y = u * 1.2, -v * 1.2 + 0.15
    return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0


def render_shapes(
    shape: torch.Tensor,
    scale: torch.Tensor,
    rotation: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    size: int = 28,
) -> torch.Tensor:
    """Draw N shapes from factor *values* (each a (N,) tensor; shape an index into ``SHAPES``,
    rotation in radians, x and y the centre in [-1, 1]) -> images (N, 1, size, size) in {0, 1}."""
    check_positive("size", size)
    fields = {"shape": shape, "scale": scale, "rotation": rotation, "x": x, "y": y}
    n = None
    for name, t in fields.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor of N factor values, got {getattr(t, 'shape', t)!r}")
        if n is not None and t.shape[0] != n:
            raise ValueError(f"every factor needs the same N, got {name} of length {t.shape[0]} (expected {n})")
        n = t.shape[0]
    if bool(((shape < 0) | (shape >= len(SHAPES))).any()):
        raise ValueError(f"shape must hold indices in [0, {len(SHAPES)}), got {shape.unique().tolist()}")
    check_size("render_shapes", n * size * size, unit="pixels")
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = torch.meshgrid(c, c, indexing="ij")  # (S, S): row = y, column = x
    r = (scale.float() * 0.4)[:, None, None]  # radius in half-image units
    dx, dy = gx - x.float()[:, None, None], gy - y.float()[:, None, None]  # (N, S, S)
    cos, sin = torch.cos(rotation.float())[:, None, None], torch.sin(rotation.float())[:, None, None]
    u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r  # into the shape's own frame
    out = torch.zeros(n, size, size)
    for k in range(len(SHAPES)):
        rows = shape == k
        if bool(rows.any()):
            out[rows] = _inside(k, u[rows], v[rows]).float()
    return out.unsqueeze(1)


def load_shapes(spec: ShapesSpec | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every combination of the factors of ``spec`` once: ``(images (N, 1, S, S), labels (N, 5))``.

    Row i of ``labels`` holds the factor *indices* (see ``factor_values`` for the values), in the
    order of ``FACTORS``; images are ordered like ``itertools.product`` of the factors.
    """
    spec = ShapesSpec() if spec is None else spec
    if not isinstance(spec, ShapesSpec):
        raise TypeError(f"spec must be a ShapesSpec or None, got {type(spec).__name__}")
    grids = torch.meshgrid(*(torch.arange(s) for s in spec.sizes), indexing="ij")
    labels = torch.stack([g.reshape(-1) for g in grids], dim=1)  # (N, 5) indices
    vals = factor_values(spec)
    columns = [vals[name][labels[:, k]] for k, name in enumerate(FACTORS)]
    columns[0] = labels[:, 0]  # the shape is categorical: its index is its value
    return render_shapes(*columns, size=spec.size), labels
