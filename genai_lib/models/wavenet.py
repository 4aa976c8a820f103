"""WaveNet in miniature (van den Oord et al. 2016), and mu-law quantisation to 256 classes.

Chapter 12 of the course. A waveform x_1..x_T is modelled autoregressively, one sample at a time:

    p(x) = prod_t p(x_t | x_1, ..., x_{t-1})                                        (eq. 1)

Each p(x_t | x_<t) is a softmax over 256 classes: the sample, in [-1, 1], is first companded by
the mu-law (ITU-T G.711, mu = 255), f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu), then cut into 256
equal bins, so quiet samples get finer steps than loud ones (eq. 2 of the paper).

The network is a stack of *causal dilated convolutions* (kernel 2, dilations 1, 2, 4, ... 2^(L-1),
repeated ``stacks`` times): the output at time t sees only inputs at t, t-d, ... never t+1. Each
layer has a gated activation unit (eq. 2 of the paper),

    z = tanh(W_f * h) . sigmoid(W_g * h),

a 1x1 convolution back to the residual width (added to h: a residual connection) and another
1x1 convolution into a *skip* sum that all layers feed; the skip sum goes through
ReLU-1x1-ReLU-1x1 to the 256 logits. The receptive field is
1 + stacks * (k - 1) * (2^L - 1) samples (:func:`receptive_field`); a causal input convolution
of kernel 2 adds one more. Training predicts every next sample of a window at once (teacher
forcing); sampling runs one sample per step with a cache of the past activations each layer
needs (the "fast WaveNet" queues of Paine et al. 2016), so a step costs O(layers), not O(R).

Shape legend: B batch, T time (samples), C residual channels, S skip channels, Q = 256 classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_generator, check_positive, check_size, check_tensor, plain_fields
from genai_lib.sampling import sample_next
from genai_lib.utils import eval_mode, model_device

__all__ = [
    "MU",
    "mu_law_encode",
    "mu_law_decode",
    "mu_law_bin_edges",
    "WaveNetConfig",
    "WaveNet",
    "CausalConv1d",
    "receptive_field",
    "bits_per_sample",
]

MU = 255  # 256 classes: mu = 255


def mu_law_encode(x: Any, mu: int = MU) -> torch.Tensor:
    """Waveform in [-1, 1] (float tensor, any shape) -> class ids in 0..mu (long), by mu-law companding."""
    x = check_tensor("x", x, floating=True, finite=True)
    check_positive("mu", mu)
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # in [-1, 1]
    return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)  # round to the nearest of mu+1 levels


def mu_law_decode(q: Any, mu: int = MU) -> torch.Tensor:
    """Class ids 0..mu (integer tensor) -> waveform values in [-1, 1] (float32): the inverse of the companding."""
    if not isinstance(q, torch.Tensor) or q.dtype.is_floating_point or q.dtype == torch.bool:
        raise TypeError(f"q must be an integer tensor of class ids, got {type(q).__name__} {getattr(q, 'dtype', '')}")
    check_positive("mu", mu)
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > mu):
        raise ValueError(f"q must hold class ids in [0, {mu}], got values in [{int(q.min())}, {int(q.max())}]")
    y = q.float() / mu * 2 - 1
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


def mu_law_bin_edges(mu: int = MU) -> torch.Tensor:
    """The mu+2 waveform values that bound the mu+1 classes (float64, -1 and 1 at the ends).

    Class q holds the waveform interval [edges[q], edges[q+1]); a continuous density over the
    waveform (the linear-prediction baseline) gives each class the mass between its edges."""
    y = (torch.arange(1, mu + 1, dtype=torch.float64) - 0.5) / mu * 2 - 1  # companded mid-points
    inner = torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    return torch.cat([torch.tensor([-1.0], dtype=torch.float64), inner, torch.tensor([1.0], dtype=torch.float64)])


def bits_per_sample(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in bits of the class ids ``targets`` (...,) under ``logits`` (..., Q)."""
    nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
    return float(nats) / math.log(2)


@dataclass(frozen=True)
class WaveNetConfig:
    """Hyper-parameters of a :class:`WaveNet`."""

    n_layers: int = 8  # L: dilated layers per stack, dilations 1, 2, ..., 2^(L-1)
    stacks: int = 2  # the dilation pattern is repeated this many times
    channels: int = 32  # C: residual channels
    skip_channels: int = 64  # S: skip channels
    kernel_size: int = 2  # k: taps of each dilated convolution
    classes: int = 256  # Q: mu-law classes (mu = Q - 1)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("n_layers", "stacks", "channels", "skip_channels", "kernel_size"):
            check_positive(name, getattr(self, name))
        check_positive("classes", self.classes)
        if self.classes < 2:
            raise ValueError(f"classes must be >= 2, got {self.classes}")
        if self.n_layers > 16:
            raise ValueError(f"n_layers must be <= 16 (dilation 2^15), got {self.n_layers}")
        C, S, layers = self.channels, self.skip_channels, self.n_layers * self.stacks
        check_size("WaveNetConfig", layers * (2 * C * C * self.kernel_size + C * C + C * S) + S * S + S * self.classes)

    @property
    def dilations(self) -> list[int]:
        return [2**i for i in range(self.n_layers)] * self.stacks


def receptive_field(cfg: WaveNetConfig) -> int:
    """How many past samples (the current one included) the output at t depends on.

    The input convolution (kernel 2) sees 2 samples; each dilated layer adds d (k - 1)."""
    if not isinstance(cfg, WaveNetConfig):
        raise TypeError(f"receptive_field needs a WaveNetConfig, got {type(cfg).__name__}")
    return 2 + sum(d * (cfg.kernel_size - 1) for d in cfg.dilations)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: (B, C_in, T) -> (B, C_out, T), output t sees inputs <= t."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)))

    def step(self, past: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One output from the current input x (B, C_in) and the inputs at t - d, ..., t - (k-1)d,
        past (B, C_in, k - 1) oldest first -> (B, C_out)."""
        window = torch.cat([past, x[:, :, None]], dim=2)  # (B, C_in, k)
        return torch.einsum("bik,oik->bo", window, self.weight) + self.bias


class ResidualLayer(nn.Module):
    """Dilated causal conv -> gated unit -> 1x1 residual and 1x1 skip outputs."""

    def __init__(self, channels: int, skip: int, kernel_size: int, dilation: int, last: bool = False) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation)  # filter and gate halves
        # the last layer's residual output would feed nothing: it has only the skip output
        self.res = None if last else nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip, 1)

    def gate(self, u: torch.Tensor) -> torch.Tensor:
        f, g = u.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)  # the gated activation unit

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.gate(self.conv(h))  # (B, C, T)
        return (h if self.res is None else h + self.res(z)), self.skip(z)


class WaveNet(nn.Module):
    """The 256-class autoregressive waveform model. ``loss((q,))`` on (B, T) class ids."""

    def __init__(self, cfg: WaveNetConfig) -> None:
        super().__init__()
        if not isinstance(cfg, WaveNetConfig):
            raise TypeError(f"WaveNet needs a WaveNetConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        C, S, Q = cfg.channels, cfg.skip_channels, cfg.classes
        self.inp = CausalConv1d(1, C, 2)  # the decoded sample value in, C channels out
        n = len(cfg.dilations)
        self.layers = nn.ModuleList(
            ResidualLayer(C, S, cfg.kernel_size, d, last=i == n - 1) for i, d in enumerate(cfg.dilations)
        )
        self.out1 = nn.Conv1d(S, S, 1)
        self.out2 = nn.Conv1d(S, Q, 1)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.cfg)

    def _values(self, q: Any) -> torch.Tensor:
        mu = self.cfg.classes - 1
        if not isinstance(q, torch.Tensor) or q.dim() != 2 or q.dtype != torch.long:
            got = f"{type(q).__name__} {tuple(q.shape) if isinstance(q, torch.Tensor) else ''}"
            raise TypeError(f"q must be a (B, T) long tensor of class ids, got {got} {getattr(q, 'dtype', '')}")
        return mu_law_decode(q, mu).to(self.out2.weight)

    def head(self, skip: torch.Tensor) -> torch.Tensor:
        return self.out2(F.relu(self.out1(F.relu(skip))))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, T) class ids -> logits (B, Q, T): position t predicts sample t + 1 from samples <= t."""
        h = self.inp(self._values(q)[:, None])  # (B, C, T)
        skip = 0
        for layer in self.layers:
            h, s = layer(h)
            skip = skip + s  # (B, S, T)
        return self.head(skip)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch = (q,) with q (B, T): mean NLL in nats of q[:, 1:] given the past (for ``fit``).

        The first receptive field - 1 positions see zero padding; they are scored too (as at the
        start of any clip). ``bits`` in the logs is the same loss in bits per sample."""
        q = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = self(q)[:, :, :-1]  # (B, Q, T-1)
        loss = F.cross_entropy(logits.float(), q[:, 1:])
        return loss, {"bits": loss.detach() / math.log(2)}

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        batch: int = 1,
        prompt: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples after ``prompt`` (B, P) class ids (default: silence) -> (B, P + n) ids.

        Each layer keeps the last (k - 1) dilation-spaced inputs it needs in a queue, so one
        step is O(layers) (the fast-WaveNet cache); it equals running :meth:`forward` on the
        whole sequence (tests/test_wavenet.py checks it)."""
        check_positive("n", n)
        check_positive("batch", batch)
        check_generator("generator", generator)
        device = model_device(self)
        mid = self.cfg.classes // 2
        if prompt is None:
            prompt = torch.full((batch, 1), mid, dtype=torch.long, device=device)
        prompt = prompt.to(device)
        self._values(prompt)  # validates
        k = self.cfg.kernel_size
        B = prompt.shape[0]
        # queue of past inputs per conv: (B, C_in, (k-1) d) time-ordered; zero history = the padding
        queues = [torch.zeros(B, 1, 1, device=device)]
        queues += [torch.zeros(B, self.cfg.channels, (k - 1) * layer.dilation, device=device) for layer in self.layers]
        out = [prompt[:, i] for i in range(prompt.shape[1])]
        with eval_mode(self):
            for t in range(prompt.shape[1] + n - 1):
                x = mu_law_decode(out[t][:, None], self.cfg.classes - 1).to(device)  # (B, 1)
                logits = self._step(x, queues)
                if t + 1 >= prompt.shape[1]:
                    nxt = sample_next(logits, temperature=temperature, generator=generator)
                    out.append(nxt.view(B).to(device))
        return torch.stack(out, dim=1).cpu()

    def _step(self, x: torch.Tensor, queues: list[torch.Tensor]) -> torch.Tensor:
        """One time step through every layer, updating the queues in place -> logits (B, Q)."""
        convs = [self.inp, *(layer.conv for layer in self.layers)]
        skip = 0
        h = x
        for i, conv in enumerate(convs):
            d = conv.dilation[0]
            q = queues[i]
            past = q[:, :, ::d][:, :, : conv.kernel_size[0] - 1]  # inputs at t - (k-1)d, ..., t - d
            u = conv.step(past, h)
            queues[i] = torch.cat([q[:, :, 1:], h[:, :, None]], dim=2)  # push h, drop the oldest
            if i == 0:
                h = u
                continue
            layer = self.layers[i - 1]
            z = layer.gate(u[:, :, None])  # (B, C, 1)
            if layer.res is not None:
                h = h + layer.res(z)[:, :, 0]
            skip = skip + layer.skip(z)
        return self.head(skip)[:, :, 0]

    def sample(self, n: int, *, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        """``n`` waveform samples in [-1, 1] (float32 (n,), on the CPU), drawn from silence."""
        q = self.generate(n, generator=generator, **kwargs)[0, 1:]
        return mu_law_decode(q, self.cfg.classes - 1)
