"""Interactive controls over a model's decoder, for JupyterLab/Colab *and* the static book.

Two modes:

- ``"live"``: sliders call Python; each move decodes the latent point and redraws the image.
  Needs a running kernel (JupyterLab, Binder, Colab).
- ``"static"``: every slider position is decoded once, in advance; the frames are stacked in
  ``ipywidgets.Stack`` containers whose ``selected_index`` is linked to the sliders in the
  browser (``jslink``), so the slider still works in the rendered book with no kernel.

``mode="auto"`` picks static when the environment variable ``GENAI_BOOK=1`` is set (the book
build sets it) and live otherwise. ipywidgets is imported lazily, inside the functions.

The decoding itself is the plain function :func:`decode_point`, unit-tested without widgets.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive, check_size

__all__ = [
    "decode_point",
    "to_png",
    "img_html",
    "latent_slider",
    "frame_slider",
    "text_sampler",
    "SAMPLING_GRID",
    "widget_mode",
    "picker",
]


def widget_mode(mode: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"static"`` (book build, ``GENAI_BOOK=1``) or ``"live"``."""
    if mode not in ("auto", "live", "static"):
        raise ValueError(f"mode must be 'auto', 'live' or 'static', got {mode!r}")
    if mode == "auto":
        return "static" if os.environ.get("GENAI_BOOK", "") == "1" else "live"
    return mode


def decode_point(decode_fn: Callable[[torch.Tensor], torch.Tensor], values: Sequence[float]) -> np.ndarray:
    """Decode one latent point and return a displayable image array in [0, 1].

    ``decode_fn`` maps a (1, Z) float tensor to images (1, C, H, W), (1, H, W) or (1, H*W)
    (square) in [0, 1]. Returns (H, W) for one channel, (H, W, 3) for three.
    """
    if not callable(decode_fn):
        raise TypeError(f"decode_fn must be callable, got {type(decode_fn).__name__}")
    vals = _finite_numbers("values", values)
    if not vals:
        raise ValueError("values must hold at least one latent coordinate")
    z = torch.tensor([vals], dtype=torch.float32)
    with torch.no_grad():
        out = decode_fn(z)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"decode_fn must return a tensor, got {type(out).__name__}")
    img = out.detach().float().cpu()
    if img.shape[0] != 1:
        raise ValueError(f"decode_fn must return a batch of 1, got shape {tuple(img.shape)}")
    img = img[0]
    if img.dim() == 1:
        side = int(round(img.numel() ** 0.5))
        if side * side != img.numel():
            raise ValueError(f"a flat output of {img.numel()} values is not a square image")
        img = img.reshape(side, side)
    if img.dim() == 3:
        if img.shape[0] not in (1, 3):
            raise ValueError(
                f"decoder output has {img.shape[0]} channels (shape {tuple(out.shape)}); "
                "an image needs 1 (grey) or 3 (RGB)"
            )
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
    if img.dim() not in (2, 3):
        raise ValueError(f"cannot display decoder output of shape {tuple(out.shape)}")
    if not bool(torch.isfinite(img).all()):
        raise ValueError(f"decode_fn returned NaN or infinite values for the latent point {vals}")
    return img.clamp(0, 1).numpy()


def _finite_numbers(name: str, values: Any) -> list[float]:
    """A sequence of real numbers as floats; NaN, inf, bools and strings are refused."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            raise TypeError(f"{name} must hold numbers, got {v!r} ({type(v).__name__})")
        if not np.isfinite(v):
            raise ValueError(f"{name} must be finite numbers, got {v!r}")
        out.append(float(v))
    return out


def to_png(image: np.ndarray, scale: int = 4) -> bytes:
    """PNG bytes of an image array in [0, 1] ((H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA),
    upscaled by ``scale`` (nearest neighbour)."""
    import matplotlib.image as mpimg

    check_positive("scale", scale)
    try:
        arr = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"image must be an array of numbers in [0, 1], got {type(image).__name__}") from exc
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or arr.size == 0:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    check_size(f"to_png(scale={scale})", arr.size * scale * scale, unit="pixels")
    arr = np.kron(arr, np.ones((scale, scale) + (1,) * (arr.ndim - 2), dtype=np.float32)) if scale > 1 else arr
    buf = io.BytesIO()
    mpimg.imsave(buf, np.clip(arr, 0, 1), cmap="gray", vmin=0, vmax=1, format="png")
    return buf.getvalue()


def img_html(png: bytes, px: int, alt: str) -> str:
    """An ``<img>`` of PNG bytes (a data URI), ``px`` wide and high, with alt text.

    Widgets show frames this way rather than as ``ipywidgets.Image``, which has no alt text (and
    whose ``tooltip`` breaks its view in ipywidgets 8.1: Image has no ``description``).
    """
    import base64

    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return f'<img src="{uri}" alt="{html.escape(alt)}" width="{px}" height="{px}">'


def _linked_stacks(
    sliders: Sequence[Any],
    frame: Callable[[tuple[int, ...]], bytes],
    sizes: Sequence[int],
    widgets,
    scale_px: int,
    alt: Callable[[tuple[int, ...]], str],
):
    """Nested Stacks: level d is indexed by slider d; every Stack at level d is jslinked to it.
    Each frame is an ``<img>`` with ``alt(index)`` as its alt text (:func:`img_html`)."""

    def build(prefix: tuple[int, ...]):
        depth = len(prefix)
        if depth == len(sizes):
            return widgets.HTML(img_html(frame(prefix), scale_px, alt(prefix)))
        stack = widgets.Stack([build((*prefix, i)) for i in range(sizes[depth])], selected_index=sliders[depth].index)
        widgets.jslink((sliders[depth], "index"), (stack, "selected_index"))
        return stack

    return build(())


def latent_slider(
    decode_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    dims: int = 2,
    bounds: float | Sequence[tuple[float, float]] = 3.0,
    steps: int = 13,
    names: Sequence[str] | None = None,
    fixed: Sequence[float] | None = None,
    mode: str = "auto",
    scale: int = 6,
    alt: str = "the decoded image",
):
    """Sliders for the first ``dims`` latent coordinates, decoding an image as they move.

    ``bounds`` is a half-width (same for every slider) or one ``(low, high)`` per slider;
    ``steps`` positions per slider (static mode pre-renders ``steps ** dims`` frames, so keep
    ``dims`` <= 3 there). ``fixed`` gives the values of any further latent coordinates. ``alt``
    says what the image is; each frame's text adds the slider values ("... at z1 = 0, z2 = 1").
    """
    import ipywidgets as widgets

    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 10_000:
        raise ValueError(f"steps must be an int in [2, 10000], got {steps!r}")
    check_positive("scale", scale)
    if isinstance(bounds, (int, float, np.number)) and not isinstance(bounds, bool):
        half = _finite_numbers("bounds", [bounds])[0]
        ranges = [(-half, half)] * dims
    elif isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__iter__"):
        raise TypeError(f"bounds must be a number or {dims} (low, high) pairs, got {type(bounds).__name__}")
    else:
        ranges = [tuple(_finite_numbers("bounds", b)) for b in bounds]
    if len(ranges) != dims or any(len(r) != 2 or r[0] >= r[1] for r in ranges):
        raise ValueError(f"bounds must give {dims} (low, high) pairs with low < high, got {bounds!r}")
    names = list(names) if names is not None else [f"z{i + 1}" for i in range(dims)]
    if len(names) != dims:
        raise ValueError(f"names must have {dims} entries, got {len(names)}")
    rest = _finite_numbers("fixed", fixed or [])
    grids = [np.round(np.linspace(lo, hi, steps), 3) for lo, hi in ranges]
    mode = widget_mode(mode)
    if mode == "static" and steps**dims > 400:
        raise ValueError(f"static mode would pre-render {steps**dims} frames; lower steps or dims")

    mid = [g[steps // 2] for g in grids]
    first = decode_point(decode_fn, mid + rest)
    px = first.shape[1] * scale
    if mode == "static":
        sliders = [
            widgets.SelectionSlider(options=[f"{v:g}" for v in g], value=f"{g[steps // 2]:g}", description=n)
            for n, g in zip(names, grids, strict=True)
        ]

        def frame(idx: tuple[int, ...]) -> bytes:
            return to_png(decode_point(decode_fn, [grids[d][i] for d, i in enumerate(idx)] + rest), scale)

        def frame_alt(idx: tuple[int, ...]) -> str:
            values = (f"{n} = {grids[d][i]:g}" for d, (n, i) in enumerate(zip(names, idx, strict=True)))
            return f"{alt} at " + ", ".join(values)

        view = _linked_stacks(sliders, frame, [steps] * dims, widgets, px, frame_alt)
    else:
        sliders = [
            widgets.FloatSlider(value=m, min=lo, max=hi, step=(hi - lo) / (4 * (steps - 1)), description=n)
            for n, m, (lo, hi) in zip(names, mid, ranges, strict=True)
        ]

        def shown(values: list[float]) -> str:
            text = f"{alt} at " + ", ".join(f"{n} = {v:.3g}" for n, v in zip(names, values, strict=True))
            return img_html(to_png(decode_point(decode_fn, values + rest), scale), px, text)

        view = widgets.HTML(shown(mid))

        def redraw(_change=None) -> None:
            view.value = shown([s.value for s in sliders])

        for s in sliders:
            s.observe(redraw, names="value")
    return widgets.HBox([widgets.VBox(sliders), view])


def frame_slider(
    frames: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    description: str = "",
    scale: int = 4,
    alt: str = "the image",
):
    """One slider over pre-rendered image frames (works with no kernel): e.g. a latent walk.

    ``alt`` says what the frames show; each frame's text adds its label ("... at K = 5").
    """
    import ipywidgets as widgets

    if len(frames) == 0 or len(frames) != len(labels):
        raise ValueError(
            f"need one label per frame and at least one frame, got {len(frames)} frames, {len(labels)} labels"
        )
    if len(set(map(str, labels))) != len(labels):
        raise ValueError(f"labels must be distinct (a slider cannot tell equal positions apart), got {list(labels)}")
    check_positive("scale", scale)
    slider = widgets.SelectionSlider(options=list(labels), value=labels[0], description=description)
    arrays = [np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f) for f in frames]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"every frame must have the same shape, got {sorted(shapes)}")
    px = arrays[0].shape[1] * scale
    name = description or "frame"
    stack = _linked_stacks(
        [slider],
        lambda idx: to_png(arrays[idx[0]], scale),
        [len(arrays)],
        widgets,
        px,
        lambda idx: f"{alt} at {name} = {labels[idx[0]]}",
    )
    return widgets.VBox([slider, stack])


# (temperature, top_k, top_p) settings shown by the static text sampler; top_k 0 and top_p 1 mean "off"
SAMPLING_GRID = (
    (0.5, 0, 1.0),
    (0.8, 0, 1.0),
    (1.0, 0, 1.0),
    (1.5, 0, 1.0),
    (1.0, 10, 1.0),
    (1.0, 0, 0.9),
    (1.5, 0, 0.8),
    (2.0, 5, 1.0),
)


def text_sampler(
    continue_fn: Callable[..., str],
    prompt: str,
    *,
    grid: Sequence[tuple[float, int, float]] = SAMPLING_GRID,
    n: int = 120,
    mode: str = "auto",
):
    """A prompt box and temperature / top-k / top-p sliders over a language model.

    ``continue_fn(prompt, temperature, top_k, top_p, n) -> str`` returns the continuation (top_k 0
    and top_p 1 mean "no filter"). Live: every change of the prompt or a slider calls it and shows
    prompt + continuation. Static (the book): one continuation of ``prompt`` per setting in
    ``grid``, computed now, as an HTML table. Returns the widget box or the ``IPython.display.HTML``.
    """
    if not callable(continue_fn):
        raise TypeError(f"continue_fn must be callable, got {type(continue_fn).__name__}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    check_positive("n", n)
    for setting in grid:
        ok = isinstance(setting, (tuple, list)) and len(setting) == 3
        if ok:
            t, k, p = setting
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in setting)
            ok = numbers and isinstance(k, int) and np.isfinite(t) and t > 0 and k >= 0 and 0 < p <= 1
        if not ok:
            raise ValueError(
                f"each grid entry is (temperature > 0, top_k >= 0 an int, 0 < top_p <= 1), finite, got {setting!r}"
            )

    def shown(text: str, prompt: str) -> str:
        return f"<pre style='white-space: pre-wrap; margin: 0'><b>{html.escape(prompt)}</b>{html.escape(text)}</pre>"

    if widget_mode(mode) == "static":
        from IPython.display import HTML

        rows = "".join(
            f"<tr><td>{t}</td><td>{k or '-'}</td><td>{p}</td><td>{shown(continue_fn(prompt, t, k, p, n), prompt)}</td>"
            "</tr>"
            for t, k, p in grid
        )
        return HTML(f"<table><tr><th>temperature</th><th>top-k</th><th>top-p</th><th>sample</th></tr>{rows}</table>")
    import ipywidgets as widgets

    box = widgets.Text(value=prompt, description="prompt")
    temp = widgets.FloatSlider(
        value=0.8, min=0.1, max=2.0, step=0.1, description="temperature", continuous_update=False
    )
    topk = widgets.IntSlider(value=0, min=0, max=40, description="top-k", continuous_update=False)
    topp = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p", continuous_update=False)
    out = widgets.HTML()

    def update(_: Any = None) -> None:
        out.value = shown(continue_fn(box.value, temp.value, topk.value, topp.value, n), box.value)

    for w in (box, temp, topk, topp):
        w.observe(update, names="value")
    update()
    return widgets.VBox([box, temp, topk, topp, out])


def picker(
    render: Callable[[str], np.ndarray],
    options: Sequence[str],
    *,
    description: str = "show",
    typed: bool = False,
    scale: int = 3,
    alt: str = "the image for",
    mode: str = "auto",
):
    """A choice among ``options`` (captions, observed views) and the image ``render(option)``.

    Static (the book, no kernel): a dropdown jslinked to pre-rendered frames. Live: the same
    dropdown calling ``render``, and with ``typed=True`` a text box too ("type a caption"): a
    ``ValueError`` from ``render`` (an unknown word) is shown instead of an image.
    """
    import ipywidgets as widgets

    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    options = [str(o) for o in options]
    if not options or len(set(options)) != len(options):
        raise ValueError(f"options must be distinct and at least one, got {options}")
    check_positive("scale", scale)
    drop = widgets.Dropdown(options=options, value=options[0], description=description)
    if widget_mode(mode) == "static":
        frames = [np.asarray(render(o)) for o in options]
        px = frames[0].shape[1] * scale
        stack = widgets.Stack(
            [widgets.HTML(img_html(to_png(f, scale), px, f"{alt} {o}")) for f, o in zip(frames, options, strict=True)],
            selected_index=0,
        )
        widgets.jslink((drop, "index"), (stack, "selected_index"))
        return widgets.VBox([drop, stack])
    out = widgets.HTML()

    def show(text: str) -> None:
        try:
            frame = np.asarray(render(text))
        except ValueError as exc:
            out.value = f"<p>{html.escape(str(exc))}</p>"
            return
        out.value = img_html(to_png(frame, scale), frame.shape[1] * scale, f"{alt} {text}")

    drop.observe(lambda change: show(change["new"]), names="value")
    parts = [drop]
    if typed:
        box = widgets.Text(value=options[0], description="caption", continuous_update=False)
        box.observe(lambda change: show(change["new"]), names="value")
        parts.append(box)
    show(options[0])
    return widgets.VBox([*parts, out])
