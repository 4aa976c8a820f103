"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation with cycle consistency (chapter 4).

Two domains A and B (here MNIST digits and the UCI digits brought to 28x28) and no pairs. Two
generators translate, ``G = g_ab: A -> B`` and ``F = g_ba: B -> A``; two PatchGAN
discriminators judge, ``D_B`` real B against ``G(a)`` and ``D_A`` real A against ``F(b)``. The
generator objective (Zhu et al. 2017, eqs. 1-3, and §5.2 for the identity term) is

    L(G, F) = L_adv(G, D_B) + L_adv(F, D_A)
              + lambda_cyc (E_a |F(G(a)) - a|_1 + E_b |G(F(b)) - b|_1)        (cycle, eq. 2)
              + lambda_id  (E_b |G(b) - b|_1 + E_a |F(a) - a|_1)              (identity)

The cycle is ``F(G(a)) ~ a`` and ``G(F(b)) ~ b``: translating there and back returns the input,
so ``G`` cannot map every input to one convincing output (article 000 writes ``G(G(x)) = x``,
which would ask a translator A -> B to accept its own output from B). The adversarial terms are
least-squares (Mao et al. 2017), as in the paper: ``L_D = ((D(real) - 1)^2 + D(fake)^2) / 2``,
``L_G = (D(G(x)) - 1)^2``, each averaged over the patch grid. The discriminators see fakes drawn
from an :class:`ImagePool` of earlier generator outputs (Shrivastava et al. 2017), which damps
oscillation.

The generator is a small ResNet translator (Johnson et al. 2016, as in the paper): a 3x3
convolution, two stride-2 downsamplings to 7x7, ``n_res`` residual blocks, two upsamplings back
to 28x28 and a sigmoid; instance normalisation throughout.

Shapes: B batch; images (B, 1, 28, 28) in [0, 1]; a batch is the pair ``(x_a, x_b)``, each
(B, 1, 28, 28), drawn independently from the two domains (their pairing means nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genai_lib._checks import (
    as_dtype_of,
    check_finite_number,
    check_generator,
    check_images,
    check_positive,
    check_size,
)
from genai_lib.models.patchgan import PatchDiscriminator
from genai_lib.phases import DivergenceRule, Phase
from genai_lib.utils import eval_mode, uniform_noise

__all__ = [
    "CycleGANConfig",
    "CycleGAN",
    "ResnetGenerator",
    "ImagePool",
    "cycle_loss",
    "identity_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "DIRECTIONS",
]

DIRECTIONS = ("ab", "ba")
SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class CycleGANConfig:
    """CycleGAN for 28x28 single-channel images (both domains)."""

    width: int = 16  # generator channels at 28x28 (2x at 14x14, 4x at 7x7)
    n_res: int = 2  # residual blocks at 7x7 in each generator
    d_width: int = 16  # PatchGAN channels after its first convolution
    cycle_weight: float = 10.0  # lambda_cyc (Zhu et al. use 10); 0 = the "no cycle" ablation
    identity_weight: float = 5.0  # lambda_id (the paper's 0.5 * lambda_cyc); 0 = off
    pool_size: int = 50  # earlier fakes each discriminator may be shown (the paper's 50); 0 = no pool

    def __post_init__(self) -> None:
        from genai_lib._checks import plain_fields

        plain_fields(self)
        for name in ("width", "d_width"):
            check_positive(name, getattr(self, name))
        check_positive("n_res", self.n_res, allow_zero=True)
        check_positive("pool_size", self.pool_size, allow_zero=True)
        for name in ("cycle_weight", "identity_weight"):
            check_finite_number(name, getattr(self, name), positive=True)
        w = self.width
        g = 9 * (w + 2 * w * w + 8 * w * w + self.n_res * 32 * w * w + 8 * w * w + 2 * w * w + w)
        d = 16 * self.d_width + 32 * self.d_width**2 + 18 * self.d_width
        check_size("CycleGANConfig", 2 * (g + d) + 2 * self.pool_size * 784)


def _conv_block(c_in: int, c_out: int, *, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="reflect" if stride == 1 else "zeros"),
        nn.InstanceNorm2d(c_out, affine=True),
    ]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_block(channels, channels), _conv_block(channels, channels, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> (B, 1, 28, 28) in [0, 1]; input mapped to [-1, 1]."""

    def __init__(self, width: int = 16, n_res: int = 2) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _conv_block(1, w),  # (B, W, 28, 28)
            _conv_block(w, 2 * w, stride=2),  # (B, 2W, 14, 14)
            _conv_block(2 * w, 4 * w, stride=2),  # (B, 4W, 7, 7)
            *[_Residual(4 * w) for _ in range(n_res)],  # (B, 4W, 7, 7)
            nn.Upsample(scale_factor=2, mode="nearest"),  # resize-convolution: no checkerboard (Odena et al. 2016)
            _conv_block(4 * w, 2 * w),  # (B, 2W, 14, 14)
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv_block(2 * w, w),  # (B, W, 28, 28)
            nn.Conv2d(w, 1, 3, padding=1, padding_mode="reflect"),  # (B, 1, 28, 28) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(2 * x - 1))


class ImagePool(nn.Module):
    """A buffer of earlier generator outputs (Shrivastava et al. 2017; CycleGAN §4).

    :meth:`query` takes a batch of new fakes and returns what the discriminator sees. Until the
    pool holds ``size`` images, each new image is stored and returned. Afterwards each new image,
    with probability 1/2, is returned as is; otherwise a random stored image is returned and the
    new one takes its place. ``size=0`` returns the batch unchanged. The stored images are buffers,
    so they are saved (and resumed) with the model.
    """

    def __init__(self, size: int, shape: tuple[int, ...] = SHAPE) -> None:
        super().__init__()
        check_positive("size", size, allow_zero=True)
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, *shape) new fakes -> (B, *shape) images for the discriminator (detached)."""
        check_generator("generator", generator)
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        out = fakes.clone()
        n = int(self.count)
        draws = uniform_noise((len(fakes), 2), generator=generator, device=fakes.device, dtype=torch.float64)
        for i in range(len(fakes)):
            if n < self.size:  # filling up: store and return the new image
                self.images[n] = fakes[i]
                n += 1
            elif draws[i, 0] < 0.5:  # swap: return a stored image, keep the new one in its place
                j = min(int(draws[i, 1] * self.size), self.size - 1)
                out[i] = self.images[j]
                self.images[j] = fakes[i]
        self.count.fill_(n)
        return out


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss (Mao et al. 2017): ``((D(real) - 1)^2 + D(fake)^2) / 2``."""
    return 0.5 * ((real_logits - 1).square().mean() + fake_logits.square().mean())


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: ``(D(G(x)) - 1)^2``, averaged over the batch and the patches."""
    return (fake_logits - 1).square().mean()


def cycle_loss(x_a: torch.Tensor, x_b: torch.Tensor, g_ab: nn.Module, g_ba: nn.Module) -> torch.Tensor:
    """Eq. 2 of Zhu et al. 2017: ``E |F(G(a)) - a|_1 + E |G(F(b)) - b|_1`` (per-pixel means)."""
    return (g_ba(g_ab(x_a)) - x_a).abs().mean() + (g_ab(g_ba(x_b)) - x_b).abs().mean()


def identity_loss(x_a: torch.Tensor, x_b: torch.Tensor, g_ab: nn.Module, g_ba: nn.Module) -> torch.Tensor:
    """``E |G(b) - b|_1 + E |F(a) - a|_1``: a generator given an image of its target domain keeps it."""
    return (g_ab(x_b) - x_b).abs().mean() + (g_ba(x_a) - x_a).abs().mean()


class CycleGAN(nn.Module):
    """Two generators (``g_ab``, ``g_ba``), two PatchGAN discriminators (``d_a``, ``d_b``), two pools."""

    def __init__(self, cfg: CycleGANConfig) -> None:
        super().__init__()
        if not isinstance(cfg, CycleGANConfig):
            raise TypeError(f"cfg must be a CycleGANConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.g_ab = ResnetGenerator(cfg.width, cfg.n_res)
        self.g_ba = ResnetGenerator(cfg.width, cfg.n_res)
        self.d_a = PatchDiscriminator(1, cfg.d_width)
        self.d_b = PatchDiscriminator(1, cfg.d_width)
        self.pool_a = ImagePool(cfg.pool_size)  # earlier F(b): fakes of domain A
        self.pool_b = ImagePool(cfg.pool_size)  # earlier G(a): fakes of domain B

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_a.parameters(), *self.d_b.parameters()]

    def _images(self, name: str, x: Any) -> torch.Tensor:
        return as_dtype_of(name, check_images(name, x, SHAPE), next(self.parameters()))

    def _pair(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(
                f"a CycleGAN batch is the pair (x_a, x_b) of images from the two domains, got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            )
        return self._images("x_a", batch[0]), self._images("x_b", batch[1])

    def forward(self, x: torch.Tensor, direction: str = "ab") -> torch.Tensor:
        """Translate (B, 1, 28, 28) images A -> B (``"ab"``, G) or B -> A (``"ba"``, F)."""
        return self._gen(direction)(self._images("x", x))

    def _gen(self, direction: str) -> nn.Module:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        return self.g_ab if direction == "ab" else self.g_ba

    def g_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Both generators' objective (module docstring); the discriminators get no update here."""
        x_a, x_b = self._pair(batch)
        fake_b, fake_a = self.g_ab(x_a), self.g_ba(x_b)
        adv = lsgan_g_loss(self.d_b(fake_b)) + lsgan_g_loss(self.d_a(fake_a))
        loss, logs = adv, {"g_adv": adv.detach()}
        if self.cfg.cycle_weight:
            # F(G(a)) and G(F(b)) reuse the translations above (what cycle_loss computes, without recomputing)
            cyc = (self.g_ba(fake_b) - x_a).abs().mean() + (self.g_ab(fake_a) - x_b).abs().mean()
            loss = loss + self.cfg.cycle_weight * cyc
            logs["cycle"] = cyc.detach()
        if self.cfg.identity_weight:
            idt = identity_loss(x_a, x_b, self.g_ab, self.g_ba)
            loss = loss + self.cfg.identity_weight * idt
            logs["identity"] = idt.detach()
        extra, extra_logs = self._extra_g_terms(x_a, x_b, fake_b, fake_a)
        return loss + extra, {**logs, **extra_logs}

    def _extra_g_terms(
        self, x_a: torch.Tensor, x_b: torch.Tensor, fake_b: torch.Tensor, fake_a: torch.Tensor
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """Further generator terms on the step's translations ``fake_b = G(a)``, ``fake_a = F(b)``:
        none here; :class:`genai_lib.models.cycada.SemanticCycleGAN` adds CyCADA's semantic loss."""
        return 0.0, {}

    def d_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Both discriminators' least-squares loss on real images and pooled fakes (no gradient to G)."""
        x_a, x_b = self._pair(batch)
        with torch.no_grad():
            fake_b = self.pool_b.query(self.g_ab(x_a), generator)
            fake_a = self.pool_a.query(self.g_ba(x_b), generator)
        real_a, real_b = self.d_a(x_a), self.d_b(x_b)
        loss = lsgan_d_loss(real_b, self.d_b(fake_b)) + lsgan_d_loss(real_a, self.d_a(fake_a))
        return loss, {"d_real_a": real_a.mean().detach(), "d_real_b": real_b.mean().detach()}

    def phases(self, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> list[Phase]:
        """Generators then discriminators, each phase with its own Adam (Zhu et al. 2017 §4: lr 2e-4,
        beta1 0.5); the discriminators are frozen while the generators update and reuse the batch."""
        gens, discs = self.generator_parameters(), self.discriminator_parameters()
        return [
            Phase("g", self.g_loss, gens, lr=lr, betas=betas, freeze=discs),
            Phase("d", self.d_loss, discs, lr=lr, betas=betas, fresh=False),
        ]

    def divergence_rules(self) -> tuple[DivergenceRule, ...]:
        """A discriminator pair that separates real from fake perfectly (LS loss ~0 while the
        generators' adversarial loss stays near its maximum of 2) has stopped teaching."""
        return (
            DivergenceRule(
                below={"d_loss": 1e-3},
                above={"g_adv": 1.8},
                patience=200,
                advice="lower the learning rate or use a larger image pool",
            ),
        )

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "ab", *, batch_size: int = 256) -> torch.Tensor:
        """Translated images (N, 1, 28, 28) on the CPU, in eval mode, in batches."""
        check_positive("batch_size", batch_size)
        gen = self._gen(direction)
        x = self._images("x", x)
        with eval_mode(self):
            return torch.cat([gen(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def round_trip(self, x: torch.Tensor, direction: str = "ab") -> tuple[torch.Tensor, torch.Tensor]:
        """``(G(a), F(G(a)))`` for ``"ab"`` or ``(F(b), G(F(b)))`` for ``"ba"``, on the CPU."""
        there = self.translate(x, direction)
        back = self.translate(there, "ba" if direction == "ab" else "ab")
        return there, back
