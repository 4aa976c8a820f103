"""Figures are shown as an <img> with alt text (genai_lib.display), read from the figure or given."""

import matplotlib.pyplot as plt
import torch

from genai_lib import display, plotting


def test_describe_reads_titles_labels_and_legends():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [1, 0], label="train")
    a.plot([0, 1], [2, 1], label="held out")
    a.set(title="loss falls", xlabel="step", ylabel="nats")
    b.imshow([[0, 1]])
    b.set_title(r"$\bar\alpha_t$ = 0.5")
    fig.suptitle("training")
    alt = display.describe(fig)
    assert alt.startswith("training. 2 panels: loss falls (curves (train, held out); nats against step)")
    assert "bar alpha_t = 0.5 (an image)" in alt and "$" not in alt and "\\" not in alt


def test_a_figure_that_says_nothing_gets_no_description():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert display.describe(fig) == ""
    assert 'alt="a figure"' in display.figure_html(fig)


def test_given_alt_wins_and_is_escaped():
    fig, ax = plt.subplots()
    ax.set_title("ignored")
    html = display.figure_html(plotting.with_alt(fig, 'two "quoted" <digits>'))
    assert html.startswith('<img src="data:image/png;base64,')
    assert 'alt="two &quot;quoted&quot; &lt;digits&gt;"' in html


def test_image_grid_says_how_many_images():
    fig = plotting.image_grid(torch.zeros(6, 4, 4), title="samples")
    assert getattr(fig, display.ALT_ATTR) == "samples: a grid of 6 images"
    fig = plotting.image_grid(torch.zeros(6, 4, 4), alt="six blank squares")
    assert 'alt="six blank squares"' in display.figure_html(fig)


def test_install_registers_the_html_form_of_figures():
    class Formatter:
        def __init__(self):
            self.types = {}

        def for_type(self, typ, func):
            self.types[typ] = func

    class Shell:
        display_formatter = type("F", (), {"formatters": {"text/html": Formatter()}})()

    shell = Shell()
    assert display.install_figure_alt_text(shell) is True
    (func,) = shell.display_formatter.formatters["text/html"].types.values()
    fig, ax = plt.subplots()
    ax.set_title("a title")
    assert 'alt="a title"' in func(fig)
    assert display.install_figure_alt_text() is False  # not inside IPython
