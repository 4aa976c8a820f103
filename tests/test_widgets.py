import numpy as np
import pytest
import torch

from genai_lib import widgets


def decoder(z):
    """A fake decoder: the image brightness is sigmoid(z1 + z2)."""
    return torch.sigmoid(z.sum(dim=1)).reshape(-1, 1, 1, 1).expand(-1, 1, 5, 5)


def test_decode_point_is_the_decoder_output():
    img = widgets.decode_point(decoder, [1.0, -1.0])
    assert img.shape == (5, 5)
    np.testing.assert_allclose(img, 0.5, atol=1e-6)
    bright = widgets.decode_point(decoder, [3.0, 3.0])
    assert bright.mean() > 0.99


def test_decode_point_flat_and_rgb():
    flat = widgets.decode_point(lambda z: torch.full((1, 16), 0.25), [0.0])
    assert flat.shape == (4, 4)
    rgb = widgets.decode_point(lambda z: torch.full((1, 3, 2, 2), 2.0), [0.0])
    assert rgb.shape == (2, 2, 3) and rgb.max() == 1.0  # clamped


@pytest.mark.parametrize(
    "fn, values, exc, match",
    [
        (3, [0.0], TypeError, "callable"),
        (decoder, [], ValueError, "at least one"),
        (lambda z: np.zeros((1, 4)), [0.0], TypeError, "tensor"),
        (lambda z: torch.zeros(2, 1, 4, 4), [0.0], ValueError, "batch of 1"),
        (lambda z: torch.zeros(1, 15), [0.0], ValueError, "square"),
    ],
)
def test_decode_point_bad(fn, values, exc, match):
    with pytest.raises(exc, match=match):
        widgets.decode_point(fn, values)


def test_png_bytes():
    png = widgets.to_png(np.zeros((4, 4)), scale=2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_widget_mode(monkeypatch):
    monkeypatch.setenv("GENAI_BOOK", "1")
    assert widgets.widget_mode() == "static"
    monkeypatch.setenv("GENAI_BOOK", "0")
    assert widgets.widget_mode() == "live"
    with pytest.raises(ValueError, match="mode"):
        widgets.widget_mode("fancy")


def png_side(png: bytes) -> int:
    """The width of a PNG, read from its header."""
    return int.from_bytes(png[16:20], "big")


def test_static_slider_links_every_stack():
    pytest.importorskip("ipywidgets")
    import ipywidgets as w

    box = widgets.latent_slider(decoder, dims=2, steps=3, mode="static", scale=1)
    sliders = box.children[0].children
    outer = box.children[1]
    assert isinstance(outer, w.Stack) and len(outer.children) == 3
    assert all(isinstance(inner, w.Stack) and len(inner.children) == 3 for inner in outer.children)
    # The frame at (i, j) is the decoder at (grid[i], grid[j]): bottom-right is brightest.
    frame = outer.children[2].children[2]
    png = widgets.to_png(widgets.decode_point(decoder, [3.0, 3.0]), 1)
    alt = "the decoded image at z1 = 3, z2 = 3"
    assert isinstance(frame, w.HTML) and frame.value == widgets.img_html(png, png_side(png), alt)
    assert f'alt="{alt}"' in frame.value
    assert sliders[0].index == 1 and outer.selected_index == 1


def test_live_slider_redraws():
    pytest.importorskip("ipywidgets")
    box = widgets.latent_slider(decoder, dims=2, mode="live", scale=1)
    s1, s2 = box.children[0].children
    image = box.children[1]
    s1.value, s2.value = 3.0, 3.0
    png = widgets.to_png(widgets.decode_point(decoder, [3.0, 3.0]), 1)
    assert image.value == widgets.img_html(png, png_side(png), "the decoded image at z1 = 3, z2 = 3")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dims": 0}, "dims"),
        ({"steps": 1}, "steps"),
        ({"bounds": [(1.0, -1.0), (0.0, 1.0)]}, "bounds"),
        ({"names": ["a"]}, "names"),
        ({"dims": 3, "steps": 9, "mode": "static"}, "pre-render"),
    ],
)
def test_latent_slider_bad(kwargs, match):
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError, match=match):
        widgets.latent_slider(decoder, **kwargs)


def test_frame_slider():
    pytest.importorskip("ipywidgets")
    box = widgets.frame_slider([np.zeros((3, 3)), np.ones((3, 3))], ["a", "b"])
    assert len(box.children[1].children) == 2
    with pytest.raises(ValueError, match="label"):
        widgets.frame_slider([np.zeros((3, 3))], ["a", "b"])


def fake_continue(prompt, temperature, top_k, top_p, n):
    """Echoes its settings, so a test can see which call produced which text."""
    return f"<t={temperature} k={top_k} p={top_p} n={n}>"


def test_text_sampler_static_table_has_one_escaped_sample_per_setting():
    grid = [(0.5, 0, 1.0), (1.0, 10, 0.9)]
    table = widgets.text_sampler(fake_continue, "a<b", grid=grid, n=7, mode="static").data
    assert table.count("<tr>") == 1 + len(grid)  # header + one row per setting
    assert "<b>a&lt;b</b>&lt;t=0.5 k=0 p=1.0 n=7&gt;" in table  # prompt and sample escaped
    assert "&lt;t=1.0 k=10 p=0.9 n=7&gt;" in table


def test_text_sampler_live_resamples_on_change():
    pytest.importorskip("ipywidgets")
    box = widgets.text_sampler(fake_continue, "hi", n=5, mode="live")
    prompt, temp, topk, topp, out = box.children
    assert "&lt;t=0.8 k=0 p=1.0 n=5&gt;" in out.value
    topk.value = 7
    prompt.value = "yo"
    assert "<b>yo</b>&lt;t=0.8 k=7 p=1.0 n=5&gt;" in out.value


@pytest.mark.parametrize(
    ("fn", "prompt", "grid", "exc"),
    [
        ("not callable", "x", widgets.SAMPLING_GRID, TypeError),
        (fake_continue, 3, widgets.SAMPLING_GRID, TypeError),
        (fake_continue, "x", [(0.0, 0, 1.0)], ValueError),
        (fake_continue, "x", [(1.0, 0, 1.5)], ValueError),
    ],
)
def test_text_sampler_bad_inputs(fn, prompt, grid, exc):
    with pytest.raises(exc):
        widgets.text_sampler(fn, prompt, grid=grid, mode="static")
