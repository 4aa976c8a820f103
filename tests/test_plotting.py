import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from genai_lib import plotting
from genai_lib.history import History


def test_grid_array_layout():
    imgs = torch.zeros(5, 1, 4, 4)
    imgs[1] = 1.0
    arr = plotting.grid_array(imgs, nrow=3, pad=1)
    assert arr.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert arr[1:5, 6:10].min() == 1.0 and arr[1:5, 1:5].max() == 0.0  # image 1 sits in column 2 of row 1
    rgb = plotting.grid_array(torch.rand(4, 3, 2, 2))
    assert rgb.shape[-1] == 3


@pytest.mark.parametrize("bad", [torch.zeros(2, 2, 4, 4), torch.zeros(4, 4), torch.zeros(0, 1, 4, 4)])
def test_grid_array_bad(bad):
    with pytest.raises(ValueError, match="images"):
        plotting.grid_array(bad)


def test_figures_are_returned():
    assert isinstance(plotting.image_grid(torch.rand(6, 28, 28), title="x"), Figure)
    assert isinstance(plotting.latent_map(torch.randn(20, 2), torch.arange(20) % 10), Figure)
    assert isinstance(plotting.scatter_2d(torch.randn(20, 2), lim=3), Figure)
    fig = plotting.density_2d(lambda xy: -0.5 * (xy**2).sum(1), resolution=20)
    assert isinstance(fig, Figure)
    h = History(step=[1, 2, 3], logs={"loss": [3.0, 2.0, 1.0]}, val_step=[3], val={"loss": [1.5]})
    fig = plotting.training_curves(h, smooth=2)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3  # raw, smoothed, validation


def test_latent_map_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plotting.latent_map(torch.randn(5, 3))


def test_training_curves_empty():
    with pytest.raises(ValueError, match="nothing to plot"):
        plotting.training_curves(History())


def test_animate_html():
    html = plotting.animate([np.zeros((4, 4)), np.ones((4, 4))], titles=["a", "b"])
    assert "<script" in html and "animation" in html.lower()
    with pytest.raises(ValueError):
        plotting.animate([])
