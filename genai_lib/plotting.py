"""Plots the chapters share. Every function returns a matplotlib ``Figure`` (never shows it).

Shapes: images (B, C, H, W) or (B, H, W) in [0, 1]; points (N, 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from genai_lib._checks import check_positive, check_size
from genai_lib.display import describe, figure_html, with_alt

__all__ = [
    "with_alt",
    "describe",
    "figure_html",
    "grid_array",
    "latent_map",
    "training_curves",
    "density_2d",
    "scatter_2d",
    "animate",
]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _detached(fig, own: bool = True):
    """Detach a new figure from pyplot so it is displayed once: by the cell that returns it.

    Jupyter's inline backend shows every figure pyplot still manages at the end of a cell *and*
    the figure a cell returns, so an un-detached figure would appear twice.
    """
    if own:
        plt.close(fig)
    return fig


def grid_array(images: Any, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile a batch of images into one (H', W') or (H', W', 3) array in [0, 1]."""
    x = _to_numpy(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, H, W) or (B, C, H, W) with C in (1, 3), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if nrow is not None:
        check_positive("nrow", nrow)
    check_positive("pad", pad, allow_zero=True)
    b, c, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(b)))
    ncol = int(np.ceil(b / nrow))
    out = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(b):
        r, q = divmod(i, nrow)
        out[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    out = np.clip(out, 0.0, 1.0)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def image_grid(
    images: Any,
    nrow: int | None = None,
    *,
    title: str | None = None,
    size: float = 4.0,
    ax=None,
    alt: str | None = None,
):
    """A grid of images (e.g. samples) in one axes; ``alt`` says what they show (by default the
    title and how many images there are)."""
    own = ax is None
    arr = grid_array(images, nrow)
    count = len(images)
    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size * arr.shape[0] / arr.shape[1]))
    else:
        fig = ax.figure
    ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if own:
        with_alt(fig, alt or f"{title + ': ' if title else ''}a grid of {count} images")
    return _detached(fig, own)


def latent_map(z: Any, labels: Any = None, *, title: str = "latent space", ax=None, s: float = 6):
    """Scatter of 2-D latent codes coloured by label (e.g. the digit)."""
    own = ax is None
    z = _to_numpy(z)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must be (N, 2), got {z.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5)) if ax is None else (ax.figure, ax)
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=0.7)
    else:
        lab = _to_numpy(labels).astype(int)
        sc = ax.scatter(z[:, 0], z[:, 1], c=lab, cmap="tab10", s=s, alpha=0.8, vmin=-0.5, vmax=9.5)
        fig.colorbar(sc, ax=ax, ticks=range(10), label="label")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return _detached(fig, own)


def training_curves(
    history: Any, keys: Sequence[str] | None = None, *, smooth: int = 0, logy: bool = False, title: str | None = None
):
    """Training (solid) and validation (dots) curves from a ``History`` or a dict of lists."""
    logs = history.logs if hasattr(history, "logs") else dict(history)
    steps = getattr(history, "step", None) or None
    check_positive("smooth", smooth, allow_zero=True)
    if isinstance(keys, str):
        keys = [keys]  # one key given as a string, not its characters
    keys = list(keys) if keys else list(logs)
    if not keys:
        raise ValueError("nothing to plot: the history has no logs")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        if k not in logs:
            raise KeyError(f"no log named {k!r}; have {sorted(logs)}")
        y = np.asarray(logs[k], dtype=float)
        own = history.steps_of(k) if hasattr(history, "steps_of") else steps  # a key logged every k steps
        x = np.asarray(own if own and len(own) == len(y) else np.arange(1, len(y) + 1))
        ax.plot(x, y, alpha=0.35 if smooth > 1 else 1.0, lw=1, label="train")
        if smooth > 1 and len(y) >= smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(x[smooth - 1 :], np.convolve(y, kernel, mode="valid"), lw=2, label=f"train (mean of {smooth})")
        val = getattr(history, "val", {})
        if k in val and val[k]:
            ax.plot(history.val_step, val[k], "o-", label="validation")
        ax.set_xlabel("step")
        ax.set_title(k)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _detached(fig)


def scatter_2d(
    points: Any, labels: Any = None, *, ax=None, title: str | None = None, s: float = 3, lim: float | None = None
):
    """Scatter of 2-D points (N, 2)."""
    own = ax is None
    p = _to_numpy(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {p.shape}")
    fig, ax = plt.subplots(figsize=(4, 4)) if ax is None else (ax.figure, ax)
    c = None if labels is None else _to_numpy(labels)
    ax.scatter(p[:, 0], p[:, 1], c=c, s=s, cmap="tab10" if c is not None else None, alpha=0.6)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return _detached(fig, own)


def density_2d(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    *,
    lim: float = 4.0,
    resolution: int = 150,
    ax=None,
    title: str | None = None,
    points: Any = None,
):
    """Heat map of ``exp(log_prob(xy))`` on a square grid, optionally with data points on top."""
    own = ax is None
    check_positive("lim", lim, integer=False)
    check_positive("resolution", resolution)
    check_size(f"density_2d(resolution={resolution})", 2 * resolution * resolution, unit="grid values")
    xs = torch.linspace(-lim, lim, resolution)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        dens = log_prob(grid).exp().reshape(resolution, resolution)
    fig, ax = plt.subplots(figsize=(4, 4)) if ax is None else (ax.figure, ax)
    ax.imshow(_to_numpy(dens), origin="lower", extent=(-lim, lim, -lim, lim), cmap="magma")
    if points is not None:
        p = _to_numpy(points)
        ax.scatter(p[:, 0], p[:, 1], s=1, c="cyan", alpha=0.3)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return _detached(fig, own)


def animate(
    frames: Sequence[Any],
    *,
    titles: Sequence[str] | None = None,
    interval: int = 400,
    size: float = 3.5,
    alt: str | None = None,
) -> str:
    """A self-contained HTML animation of image arrays (display it with ``IPython.display.HTML``).

    The first frame is a plain ``<img>`` (with ``alt`` text), so it shows at once everywhere:
    the static book, JupyterLab before any click, a notebook whose outputs are not trusted (no
    script runs there). A short inline script adds play/pause, step and a frame slider; the
    controls are text buttons, so nothing is fetched from a CDN (matplotlib's ``to_jshtml``
    needs Font Awesome from one and, in JupyterLab, a click before it draws).
    """
    import base64
    import html as html_lib
    import io
    import json
    import uuid

    if len(frames) == 0:
        raise ValueError("animate needs at least one frame")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"need one title per frame, got {len(titles)} titles for {len(frames)} frames")
    check_positive("interval", interval)
    arrays = [_to_numpy(f) for f in frames]
    fig, ax = plt.subplots(figsize=(size, size))
    ax.set_axis_off()
    im = ax.imshow(arrays[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    uris = []
    for i, arr in enumerate(arrays):
        im.set_data(arr)
        if titles is not None:
            ax.set_title(titles[i])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        uris.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    plt.close(fig)
    n = len(uris)
    alt = alt or f"an animation of {n} frames"
    labels = [str(t) for t in titles] if titles is not None else [f"frame {i + 1}" for i in range(n)]
    uid = "genai-anim-" + uuid.uuid4().hex[:12]
    esc = html_lib.escape
    buttons = "".join(
        f'<button type="button" data-act="{act}" aria-label="{label}" title="{label}">{text}</button>'
        for act, label, text in (
            ("first", "first frame", "|&#9664;"),
            ("prev", "previous frame", "&#9664;"),
            ("play", "play", "&#9654; play"),
            ("next", "next frame", "&#9654;"),
            ("last", "last frame", "&#9654;|"),
        )
    )
    data = json.dumps({"frames": uris, "labels": labels, "interval": int(interval), "alt": alt})
    script = _ANIMATION_JS.replace("__UID__", uid).replace("__DATA__", data.replace("</", "<\\/"))
    return (
        f'<div class="genai-animation" id="{uid}" role="group" aria-label="{esc(alt)}">'
        f'<img src="{uris[0]}" alt="{esc(alt)} (frame 1 of {n}: {esc(labels[0])})" style="max-width: 100%">'
        f'<div class="genai-animation-controls">{buttons}'
        f'<input type="range" min="0" max="{n - 1}" value="0" aria-label="frame" style="vertical-align: middle">'
        f' <span aria-live="polite">{esc(labels[0])} (1/{n})</span></div>'
        f"<script>{script}</script></div>"
    )


# The player behind animate(): plain DOM calls, no library; it binds to its own element by id.
_ANIMATION_JS = """
(function () {
  var root = document.getElementById("__UID__");
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  var d = __DATA__, i = 0, timer = null;
  var img = root.querySelector("img"), range = root.querySelector("input");
  var label = root.querySelector("span"), play = root.querySelector("[data-act=play]");
  function show(k) {
    i = (k + d.frames.length) % d.frames.length;
    img.src = d.frames[i];
    img.alt = d.alt + " (frame " + (i + 1) + " of " + d.frames.length + ": " + d.labels[i] + ")";
    range.value = i;
    label.textContent = d.labels[i] + " (" + (i + 1) + "/" + d.frames.length + ")";
  }
  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
    play.innerHTML = "&#9654; play"; play.setAttribute("aria-label", "play");
  }
  function start() {
    if (i === d.frames.length - 1) { show(0); }
    timer = setInterval(function () {
      if (i === d.frames.length - 1) { stop(); } else { show(i + 1); }
    }, d.interval);
    play.innerHTML = "&#10074;&#10074; pause"; play.setAttribute("aria-label", "pause");
  }
  root.addEventListener("click", function (e) {
    var act = e.target.closest("button") && e.target.closest("button").dataset.act;
    if (!act) { return; }
    if (act === "play") { if (timer) { stop(); } else { start(); } return; }
    stop();
    show({first: 0, prev: i - 1, next: i + 1, last: d.frames.length - 1}[act]);
  });
  range.addEventListener("input", function () { stop(); show(parseInt(range.value, 10)); });
})();
"""
