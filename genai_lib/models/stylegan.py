"""StyleGAN in miniature (chapter 5): a style-based generator for 28x28 digits.

Papers: Karras et al. 2019 (StyleGAN: a mapping network z -> w, a learned constant input, styles
injected at every layer, per-layer noise, style mixing, the truncation trick in W, perceptual
path length) and Karras et al. 2020 (StyleGAN2: weight demodulation instead of AdaIN, skip
toRGB outputs, lazy R1 regularisation); Mescheder et al. 2018 (R1).

The generator, layer by layer (``L = num_ws = 5`` style inputs, one per convolution):

    z (B, Z) --pixel norm, mapping MLP--> w (B, W)  [broadcast to ws (B, L, W), or mixed]
    const (C0, 7, 7) -> modconv 3x3 [ws[:, 0]] -> toRGB                      7x7   (coarse)
      -> up x2 -> modconv [ws[:, 1]] -> modconv [ws[:, 2]] -> toRGB (+ up)   14x14 (middle)
      -> up x2 -> modconv [ws[:, 3]] -> modconv [ws[:, 4]] -> toRGB (+ up)   28x28 (fine)
    image = sigmoid(sum of the upsampled toRGB outputs)  (B, 1, 28, 28) in [0, 1]

Modulated convolution with demodulation (StyleGAN2 eqs. 1 and 3): a style ``s = A(w)`` (B, Cin)
scales the input channels of the weight, ``w'_ijk = s_i w_ijk``, and each output channel is
renormalised, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``: the expected statistics of
the output no longer depend on the style, the job AdaIN did by normalising the activations
(which left the droplet artefacts). Because the scales are per sample, the convolution is
computed as ``conv(x * s, W) * d`` with ``d_j = (sum_ik (s_i w_ijk)^2 + eps)^{-1/2}``, the same
numbers as a per-sample convolution with ``w''`` (checked in the tests). After each convolution,
noise ``B x H x W`` (one map per layer, shared by the channels) is added with learned
per-channel strengths (zero at the start), then a bias and a leaky ReLU.

Training: the non-saturating loss (Goodfellow et al. 2014) against the chapter-3 DCGAN
discriminator (same critic, same DiffAugment shifts, so the comparison isolates the generator);
style-mixing regularisation (with probability ``mixing``, a second latent takes over from a
random crossover layer); lazy R1, ``(gamma / 2) ||grad_x D(x)||^2`` on real images every
``r1_every`` discriminator steps, scaled by ``r1_every`` (StyleGAN2 §B); the mapping network in
a param group at ``mapping_lr_mul`` x the learning rate; an EMA of the generator (the copy that
samples); the mean ``w`` tracked during training for the truncation trick
``w' = w_avg + psi (w - w_avg)``, psi in [0, 1].

Shapes: B batch, Z latent size, W style size, L style inputs (``num_ws``), C channels;
images (B, 1, 28, 28) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import (
    check_images,
    check_positive,
    check_probability,
    check_size,
    check_tensor,
    plain_fields,
)
from genai_lib.models._gan_game import GANBase
from genai_lib.models._layers import EMA
from genai_lib.models.gan import DCGANDiscriminator
from genai_lib.phases import DISCRIMINATOR_WINS, DivergenceRule, Phase
from genai_lib.utils import eval_mode, normal_noise, uniform_noise

__all__ = ["StyleGANConfig", "StyleGAN", "StyleGenerator", "ModulatedConv", "modulated_conv", "truncate"]

RESOLUTIONS = (7, 14, 28)
NOISE_MODES = ("random", "zero")


@dataclass(frozen=True)
class StyleGANConfig:
    """A style-based generator for 28x28 images and the DCGAN discriminator it plays against."""

    z_dim: int = 64  # latent size (z ~ N(0, I))
    w_dim: int = 64  # style size (the space W)
    mapping_layers: int = 4  # depth of the mapping MLP (8 in the paper)
    channels: tuple[int, int, int] = (64, 32, 16)  # channels at 7x7, 14x14, 28x28
    d_width: int = 32  # the discriminator's first-conv channels (DCGAN's critic)
    mixing: float = 0.9  # style-mixing probability per batch (the paper's 0.9)
    r1_gamma: float = 1.0  # gamma of R1 on real data; 0 = off
    r1_every: int = 8  # lazy regularisation interval in D steps (16 in StyleGAN2)
    mapping_lr_mul: float = 0.01  # the mapping network's learning-rate factor (the paper's 0.01)
    ema_decay: float = 0.995  # EMA of the generator (half-life ~140 steps)
    w_avg_beta: float = 0.995  # the tracked mean w: w_avg <- beta w_avg + (1 - beta) mean(w)
    augment: int = 2  # DiffAugment shifts (pixels) for D, as the chapter-3 DCGAN

    def __post_init__(self) -> None:
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))
        plain_fields(self)
        for name in ("z_dim", "w_dim", "mapping_layers", "d_width", "r1_every"):
            check_positive(name, getattr(self, name))
        if not (isinstance(self.channels, tuple) and len(self.channels) == len(RESOLUTIONS)):
            raise ValueError(f"channels must be 3 ints (at 7x7, 14x14, 28x28), got {self.channels!r}")
        for i, c in enumerate(self.channels):
            check_positive(f"channels[{i}]", c)
        check_probability("mixing", self.mixing)
        check_positive("r1_gamma", self.r1_gamma, integer=False, allow_zero=True)
        check_probability("mapping_lr_mul", self.mapping_lr_mul, open_low=True)
        check_probability("ema_decay", self.ema_decay, open_high=True)
        check_probability("w_avg_beta", self.w_avg_beta, open_high=True)
        check_positive("augment", self.augment, allow_zero=True)
        if self.augment > 7:
            raise ValueError(f"augment (a shift in pixels) must be at most 7 for 28x28 images, got {self.augment}")
        c0, c1, c2 = self.channels
        convs = 9 * (c0 * c0 + c0 * c1 + c1 * c1 + c1 * c2 + c2 * c2)
        affine = self.w_dim * (2 * c0 + 2 * c1 + 3 * c2 + c1)
        mapping = self.z_dim * self.w_dim + (self.mapping_layers - 1) * self.w_dim**2
        d = 16 * self.d_width + 32 * self.d_width**2 + 98 * self.d_width
        check_size("StyleGANConfig", 2 * (convs + affine + mapping + 49 * c0) + d)

    @property
    def num_ws(self) -> int:
        """Style inputs of the synthesis network: one per modulated 3x3 convolution."""
        return 5


def modulated_conv(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """StyleGAN2's modulated convolution (eqs. 1 and 3), 'same' padding.

    x (B, Cin, H, W), weight (Cout, Cin, k, k), styles (B, Cin) -> (B, Cout, H, W). Computed as
    ``conv(x * s, weight) * d``: scaling the input channels of x by s is scaling the weight's
    input channels, and the demodulation ``d`` (B, Cout) is one number per sample and output
    channel, so it can be applied after the convolution.
    """
    out = F.conv2d(x * styles[:, :, None, None], weight, padding=weight.shape[-1] // 2)
    if demodulate:
        # d_bj = (sum_{i,k} (s_bi w_jik)^2 + eps)^(-1/2), eq. 3
        d = torch.rsqrt(styles.square() @ weight.square().sum((2, 3)).t() + eps)  # (B, Cout)
        out = out * d[:, :, None, None]
    return out


class ModulatedConv(nn.Module):
    """Affine style ``A(w)``, modulated (and optionally demodulated) kxk convolution, noise, bias, act."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, *, kernel: int = 3, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) / math.sqrt(c_in * kernel * kernel))
        self.affine = nn.Linear(w_dim, c_in)
        nn.init.normal_(self.affine.weight, std=1.0 / math.sqrt(w_dim))
        nn.init.ones_(self.affine.bias)  # s = 1 + A'(w): styles start near 1 (StyleGAN2's bias init)
        self.demodulate = demodulate
        self.bias = nn.Parameter(torch.zeros(c_out))
        # per-channel noise strengths (StyleGAN 1, §3.2); toRGB layers take no noise
        self.noise_strength = nn.Parameter(torch.zeros(c_out)) if demodulate else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Cin, H, W), w (B, W), noise (B, 1, H, W) or None -> (B, Cout, H, W)."""
        out = modulated_conv(x, self.weight, self.affine(w), demodulate=self.demodulate)
        if self.noise_strength is not None and noise is not None:
            out = out + noise * self.noise_strength[None, :, None, None]
        out = out + self.bias[None, :, None, None]
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.demodulate else out


class StyleGenerator(nn.Module):
    """Mapping network (z -> w) and synthesis network (ws -> image), with the tracked mean w."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        for i in range(cfg.mapping_layers):
            lin = nn.Linear(cfg.z_dim if i == 0 else cfg.w_dim, cfg.w_dim)
            nn.init.kaiming_normal_(lin.weight, a=0.2)  # keeps the scale through leaky ReLUs
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        c0, c1, c2 = cfg.channels
        self.const = nn.Parameter(torch.randn(1, c0, 7, 7))
        wd = cfg.w_dim
        self.convs = nn.ModuleList(
            [
                ModulatedConv(c0, c0, wd),  # 7x7
                ModulatedConv(c0, c1, wd),  # 14x14 (after upsampling)
                ModulatedConv(c1, c1, wd),
                ModulatedConv(c1, c2, wd),  # 28x28
                ModulatedConv(c2, c2, wd),
            ]
        )
        self.to_rgb = nn.ModuleList([ModulatedConv(c, 1, wd, kernel=1, demodulate=False) for c in cfg.channels])

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Z) -> w (B, W); z is first projected onto the sphere of radius sqrt(Z) (pixel norm)."""
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        return self.mapping(z)

    def noise_shapes(self, n: int) -> list[tuple[int, int, int, int]]:
        """The shape (n, 1, r, r) of each convolution's noise map."""
        return [(n, 1, r, r) for r in (7, 14, 14, 28, 28)]

    def synthesize(self, ws: torch.Tensor, noise: list[torch.Tensor | None]) -> torch.Tensor:
        """ws (B, L, W) and one noise map (or None) per convolution -> images (B, 1, 28, 28) in [0, 1]."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)  # (B, C0, 7, 7)
        x = self.convs[0](x, ws[:, 0], noise[0])
        rgb = self.to_rgb[0](x, ws[:, 0])  # (B, 1, 7, 7) logits
        for r in (1, 2):  # 14x14, then 28x28
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W); then a conv: resize-convolution
            x = self.convs[2 * r - 1](x, ws[:, 2 * r - 1], noise[2 * r - 1])
            x = self.convs[2 * r](x, ws[:, 2 * r], noise[2 * r])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = rgb + self.to_rgb[r](x, ws[:, 2 * r])  # skip connections (StyleGAN2 fig. 7b)
        return torch.sigmoid(rgb)


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick in W (StyleGAN §4 / app. B): ``w_avg + psi (w - w_avg)``, psi in [0, 1]."""
    check_probability("psi", psi)
    return w_avg + psi * (w - w_avg)


class StyleGAN(GANBase):
    """Generator (mapping + synthesis), its EMA copy ``ema`` and the DCGAN discriminator."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        if not isinstance(cfg, StyleGANConfig):
            raise TypeError(f"cfg must be a StyleGANConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.generator = StyleGenerator(cfg)
        self.discriminator = DCGANDiscriminator(cfg.d_width)
        self.ema = EMA(self.generator, cfg.ema_decay)  # register it as a hook: fit(hooks=[model.ema])

    _sample_numel = 28 * 28

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())

    # ---- the public API: mapping, truncation, mixing, synthesis, sampling
    def _net(self, ema: bool) -> StyleGenerator:
        return self.ema.shadow if ema else self.generator

    def mapping(self, z: torch.Tensor, *, psi: float = 1.0, ema: bool = True) -> torch.Tensor:
        """Styles w (B, W) of latents z (B, Z), truncated towards the mean w by ``psi`` in [0, 1]."""
        check_probability("psi", psi)
        net = self._net(ema)
        return truncate(net.map(self._check_z(z)), net.w_avg, psi)

    def mix(self, w_coarse: torch.Tensor, w_fine: torch.Tensor, crossover: int) -> torch.Tensor:
        """ws (B, L, W): layers ``< crossover`` take ``w_coarse`` (B, W), the rest ``w_fine`` (B, W).
        ``crossover`` in [0, L]: 0 is all ``w_fine``, L all ``w_coarse``."""
        L = self.cfg.num_ws
        if isinstance(crossover, bool) or not isinstance(crossover, int):
            raise TypeError(f"crossover must be an int layer index, got {type(crossover).__name__}")
        if not 0 <= crossover <= L:
            raise ValueError(f"crossover must be in [0, {L}] (the generator has {L} style inputs), got {crossover}")
        for name, w in (("w_coarse", w_coarse), ("w_fine", w_fine)):
            check_tensor(name, w, shape=(None, self.cfg.w_dim), floating=True, finite=True)
        if w_coarse.shape != w_fine.shape:
            raise ValueError(
                f"w_coarse and w_fine must have the same shape, got {tuple(w_coarse.shape)} and {tuple(w_fine.shape)}"
            )
        layer = torch.arange(L, device=w_coarse.device)[None, :, None]  # (1, L, 1)
        return torch.where(layer < crossover, w_coarse[:, None], w_fine[:, None].to(w_coarse.device))

    def synthesis(
        self,
        ws: torch.Tensor,
        *,
        noise: str | list[torch.Tensor] = "random",
        generator: torch.Generator | None = None,
        ema: bool = True,
    ) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] from ws (B, W) (every layer) or (B, L, W).

        ``noise``: ``"random"`` (drawn with ``generator``), ``"zero"`` (no noise), or a list of L
        maps of shapes :meth:`StyleGenerator.noise_shapes`."""
        net = self._net(ema)
        L, wd = self.cfg.num_ws, self.cfg.w_dim
        check_tensor("ws", ws, floating=True, finite=True)
        if ws.dim() == 2 and ws.shape[1] == wd:
            ws = ws[:, None].expand(-1, L, -1)
        check_tensor("ws", ws, shape=(None, L, wd))
        ws = ws.to(self.device, next(net.parameters()).dtype)
        return net.synthesize(ws, self._noise(ws.shape[0], noise, generator, net))

    def _noise(self, n: int, noise: Any, generator: torch.Generator | None, net: StyleGenerator) -> list:
        shapes = net.noise_shapes(n)
        if isinstance(noise, str):
            if noise not in NOISE_MODES:
                raise ValueError(f"noise must be one of {NOISE_MODES} or a list of maps, got {noise!r}")
            if noise == "zero":
                return [None] * len(shapes)
            return [normal_noise(s, generator=generator, device=self.device) for s in shapes]
        if not isinstance(noise, (list, tuple)) or len(noise) != len(shapes):
            raise ValueError(f"noise must be a list of {len(shapes)} maps of shapes {shapes}, got {type(noise)}")
        for i, (m, s) in enumerate(zip(noise, shapes, strict=True)):
            check_tensor(f"noise[{i}]", m, shape=s, floating=True, finite=True)
        return [m.to(self.device) for m in noise]

    def _draw_z(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return normal_noise((n, self.cfg.z_dim), generator=generator, device=self.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        psi: float = 1.0,
        noise: str = "random",
        ema: bool = True,
        labels: Any = None,
    ) -> torch.Tensor:
        """``n`` images (n, 1, 28, 28) in [0, 1] on the CPU from the EMA generator (``ema=False``:
        the live one), truncated by ``psi`` in [0, 1]."""
        check_positive("n", n)
        check_probability("psi", psi)
        if labels is not None:
            raise ValueError("labels are only accepted by a class-conditional model; StyleGAN here is unconditional")
        check_size(f"StyleGAN.sample({n})", n * (self.cfg.z_dim + 784), unit="values")
        with eval_mode(self):
            w = self.mapping(self._draw_z(n, generator), psi=psi, ema=ema)
            return self.synthesis(w, noise=noise, generator=generator, ema=ema).cpu()

    # ---- training
    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None, generator: Any = None) -> torch.Tensor:
        """Training-time generation with the live generator: style mixing with probability ``mixing``."""
        g = self.generator
        w = g.map(z)  # (B, W)
        if self.training:  # track the mean w for truncation
            with torch.no_grad():
                g.w_avg.lerp_(w.detach().mean(0).to(g.w_avg.dtype), 1 - self.cfg.w_avg_beta)
        ws = w[:, None].expand(-1, self.cfg.num_ws, -1)
        if self.cfg.mixing and float(uniform_noise((1,), generator=generator)) < self.cfg.mixing:
            w2 = g.map(self._draw_z(len(z), generator).to(z.dtype))
            k = int(torch.randint(1, self.cfg.num_ws, (1,), generator=generator))
            ws = self.mix(w, w2, k)
        return g.synthesize(ws, self._noise(len(z), "random", generator, g))

    def _fake(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        return self._generate(self._draw_z(n, generator), None, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The live generator, no mixing, random noise: z (B, Z) -> (B, 1, 28, 28)."""
        g = self.generator
        w = g.map(self._check_z(z))
        return self.synthesis(w, ema=False)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x)

    def _check_data(self, x: torch.Tensor) -> torch.Tensor:
        return check_images("x", x, (1, 28, 28))

    def d_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Non-saturating D loss ``softplus(-D(x)) + softplus(D(G(z)))`` (no R1 here: see :meth:`r1_loss`)."""
        x, _ = self._split(batch)
        with torch.no_grad():
            fake = self._fake(len(x), None, generator)
        real_out = self.critic(self._augment(x, generator))
        fake_out = self.critic(self._augment(fake, generator))
        loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        return loss, {
            "d_real": torch.sigmoid(real_out).mean().detach(),
            "d_fake": torch.sigmoid(fake_out).mean().detach(),
        }

    def r1_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Lazy R1: ``r1_every * (gamma / 2) E ||grad_x D(x)||^2`` on the real batch (StyleGAN2 §B)."""
        x, _ = self._split(batch)
        x = x.detach().requires_grad_(True)
        out = self.critic(x)  # not augmented: the penalty is on the data distribution
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        penalty = grad.flatten(1).square().sum(1).mean()
        return self.cfg.r1_every * 0.5 * self.cfg.r1_gamma * penalty, {"r1": penalty.detach()}

    def g_loss(self, batch: Any, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Non-saturating G loss ``softplus(-D(G(z)))`` on as many fakes as the batch has images."""
        x, _ = self._split(batch)
        out = self.critic(self._augment(self._fake(len(x), None, generator), generator))
        return F.softplus(-out).mean(), {"g_fake": torch.sigmoid(out).mean().detach()}

    def phases(self, lr: float = 2e-3, betas: tuple[float, float] = (0.0, 0.99)) -> list[Phase]:
        """D, lazy R1 every ``r1_every`` steps (stepping D's optimizer), then G with D frozen; the
        mapping network in its own param group at ``mapping_lr_mul * lr``. Adam(0, 0.99), StyleGAN2's."""
        d = list(self.discriminator.parameters())
        mapping = list(self.generator.mapping.parameters())
        ids = {id(p) for p in mapping}
        synthesis = [p for p in self.generator.parameters() if id(p) not in ids]
        groups = [{"params": synthesis}, {"params": mapping, "lr": lr * self.cfg.mapping_lr_mul}]
        phases = [Phase("d", self.d_loss, d, lr=lr, betas=betas)]
        if self.cfg.r1_gamma:
            phases.append(Phase("d_reg", self.r1_loss, every=self.cfg.r1_every, fresh=False, shares="d"))
        phases.append(Phase("g", self.g_loss, groups, lr=lr, betas=betas, fresh=False, freeze=d))
        return phases

    def divergence_rules(self) -> tuple[DivergenceRule, ...]:
        return (DISCRIMINATOR_WINS,)
