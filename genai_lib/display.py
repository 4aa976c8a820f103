"""How a notebook's figures are shown: as an ``<img>`` that carries alt text.

Jupyter shows a matplotlib figure as a bare PNG, and the book (myst-nb) turns that PNG into an
``<img>`` whose alt text is its own file name, which tells a screen reader nothing.
:func:`setup_notebook <genai_lib.utils.setup_notebook>` calls :func:`install_figure_alt_text`,
so every figure a cell shows also carries a ``text/html`` form, ``<img src="data:..." alt="...">``,
which JupyterLab, Colab and the book all prefer to the bare PNG. The alt text is the figure's own
(:func:`with_alt`, or ``alt=`` of the ``genai_lib.plotting`` functions) or else is read from what
the figure says: its title, its panels' titles and axis labels, its legend (:func:`describe`).
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

__all__ = ["describe", "figure_html", "with_alt", "install_figure_alt_text", "ALT_ATTR"]

ALT_ATTR = "_genai_alt"  # the attribute of a Figure that holds its alt text
MAX_PANELS = 8  # panels described one by one; a larger grid is summarised


def _clean(text: str) -> str:
    """Plain words: no $, no TeX backslashes or braces (``\\bar\\alpha_{t}`` -> ``bar alpha_t``)."""
    text = re.sub(r"\\([a-zA-Z]+)", r" \1 ", text.replace("$", ""))
    text = re.sub(r"\s+([_^])", r"\1", text.replace("{", "").replace("}", "").replace("\\", " "))
    return " ".join(text.split())


def _panel(ax: Any) -> str:
    """One panel in words: 'title' (a plot of y against x: legend entries), images, points."""
    title = _clean(ax.get_title() or ax.get_title("left") or ax.get_title("right"))
    kinds = []
    if ax.images:
        kinds.append("an image")
    if ax.lines:
        labels = [_clean(ln.get_label()) for ln in ax.lines if not ln.get_label().startswith("_")]
        kinds.append("curves" + (f" ({', '.join(labels[:6])})" if labels else ""))
    if ax.collections:
        kinds.append("points or shapes")
    if ax.patches and not ax.images:
        kinds.append("bars")
    xl, yl = _clean(ax.get_xlabel()), _clean(ax.get_ylabel())
    if xl or yl:
        kinds.append(f"{yl or 'value'} against {xl or 'position'}")
    details = "; ".join(kinds)
    return f"{title} ({details})" if title and details else title or details


def describe(fig: Any) -> str:
    """Alt text read from a figure: its suptitle, then each titled or labelled panel.

    Returns "" when the figure says nothing about itself (no title, no labels): then give it
    an alt text with :func:`with_alt`.
    """
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "<colorbar>"]
    panels = [p for p in map(_panel, axes) if p]
    if not sup and not any(ax.get_title() or ax.get_xlabel() or ax.get_ylabel() for ax in fig.get_axes()):
        return ""
    head = _clean(sup)
    if len(panels) > 1:
        shown = list(dict.fromkeys(panels))  # a repeated description once
        more = f"; and {len(shown) - MAX_PANELS} more" if len(shown) > MAX_PANELS else ""
        body = f"{len(panels)} panels: " + "; ".join(shown[:MAX_PANELS]) + more
    else:
        body = panels[0] if panels else ""
    return ". ".join(p for p in (head, body) if p)


def with_alt(fig: Any, alt: str) -> Any:
    """Give ``fig`` its alt text (what it shows, in a sentence) and return it."""
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError(f"alt must be a non-empty str describing the figure, got {alt!r}")
    setattr(fig, ALT_ATTR, " ".join(alt.split()))
    return fig


def figure_html(fig: Any, alt: str | None = None) -> str:
    """The figure as one ``<img>`` (PNG in a data URI) with alt text: ``alt``, the figure's
    own (:func:`with_alt`), or :func:`describe`'s; "a figure" only when none says anything."""
    text = alt or getattr(fig, ALT_ATTR, None) or describe(fig) or "a figure"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="{uri}" alt="{html.escape(text)}" style="max-width: 100%">'


def install_figure_alt_text(shell: Any = None) -> bool:
    """Register :func:`figure_html` as the HTML form of every matplotlib figure in IPython.

    Returns False (and does nothing) outside IPython.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["text/html"].for_type(Figure, figure_html)
    return True
