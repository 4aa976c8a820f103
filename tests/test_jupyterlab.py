"""JupyterLab, driven as a class meets it: open a chapter, Run All, move a slider, read the page.

JupyterLab runs on 127.0.0.1 with a fixed token, over a *copy* of chapters/ in a temporary
folder (so nothing it does can write into the repository's notebooks), with autosave off and
cell windowing off (every cell stays in the page, so its text can be read). Kernels run in fast
mode with this checkout's genai_lib. Headless Chromium (tests/_browser.py) drives it; every
request the browser makes off 127.0.0.1 is refused and listed, so a CDN fetch fails the test.
Screenshots go to ``$GENAI_SCREENSHOTS/jupyterlab`` when set (else a temp folder, printed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import _browser

pytestmark = pytest.mark.slow

ROOT = _browser.ROOT
BIN = Path(sys.executable).parent
TOKEN = "genai-course-test-token"
NOTEBOOKS = sorted(str(p.relative_to(ROOT / "chapters")) for p in (ROOT / "chapters").glob("[0-9]*/*.ipynb"))
# MyST markup that must not show as text once JupyterLab (with jupyterlab-myst) renders a cell.
RAW_MYST = re.compile(r"\{(cite(:[a-z]+)?|doc|ref|numref|eq|term|download|admonition|note|warning|tip|math)\}|:::|```")
SETTINGS = {
    # autosave would write outputs into the notebooks the test opened
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # every cell in the DOM (windowing drops the ones scrolled out of view)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.ipynb")):
        h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base address, browser page, list of refused remote requests, screenshot folder)."""
    _browser.require_browser()
    if shutil.which("jupyter-lab", path=str(BIN)) is None:
        pytest.fail("jupyter-lab is not installed beside this Python (pip install -r requirements.txt)")
    before = _digest(ROOT / "chapters")
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "chapters", work / "chapters", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = work / "settings"
    for name, value in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port = _browser.free_port()
    env = {
        **os.environ,
        "GENAI_FAST": "1",
        "PYTHONPATH": str(ROOT),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(work / "config"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    env.pop("GENAI_BOOK", None)  # live widgets: sliders call the kernel
    cmd = [str(BIN / "jupyter-lab"), "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    cmd += [f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work / 'chapters'}"]
    log = (work / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    shots = _browser.screenshot_dir("jupyterlab", tmp_path_factory)
    print(f"\nJupyterLab test screenshots: {shots}; server log: {work / 'lab.log'}")
    try:
        _browser.wait_for_port(port, timeout=120)
        with _browser.chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            unserved: list[str] = []
            _browser.route_offline(context, unserved)
            page = context.new_page()
            yield f"http://127.0.0.1:{port}", page, unserved, shots
            context.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert _digest(ROOT / "chapters") == before, "JupyterLab changed a notebook in the repository"


def _open(lab, notebook: str):
    base, page, _, _ = lab
    page.goto(f"{base}/lab/tree/{notebook}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function(
        """() => { const s = document.querySelector(".jp-Notebook-ExecutionIndicator");
                   const bar = document.querySelector("#jp-main-statusbar");
                   return s && s.getAttribute("data-status") === "idle" && bar && /\\| Idle/.test(bar.innerText); }""",
        timeout=180_000,
    )  # the kernel has connected (the toolbar says idle even before it has)
    page.wait_for_timeout(1500)  # let the markdown renderers finish
    return page


def _run_all(page, shots: Path, timeout_s: int = 240) -> None:
    """Run > Run All Cells, then wait for every code cell to have run and the kernel to be idle."""
    started = """() => [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")]
                         .some((p) => /\\[(\\*|\\d+)\\]/.test(p.innerText))"""
    for attempt in range(2):  # a Run All sent while the kernel still settles can be dropped
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=30_000, polling=500)
            break
        except Exception:
            if attempt:
                raise
    done = """() => {
      const prompts = [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")].map((p) => p.innerText);
      const s = document.querySelector(".jp-Notebook-ExecutionIndicator");
      const idle = s && s.getAttribute("data-status") === "idle";
      return prompts.length && prompts.every((t) => /\\[\\d+\\]/.test(t)) && idle;
    }"""
    try:
        page.wait_for_function(done, timeout=timeout_s * 1000, polling=1000)
    except Exception as exc:
        page.screenshot(path=str(shots / "run_all_timeout.png"), full_page=True)
        state = page.evaluate(
            """() => [[...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")].map((p) => p.innerText),
                      (document.querySelector(".jp-Notebook-ExecutionIndicator") || {}).outerHTML]"""
        )
        raise AssertionError(f"Run All did not finish in {timeout_s} s: prompts and status {state}") from exc
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, errors.first.inner_text()[:3000]


def _raw_myst(page) -> list[str]:
    text = page.evaluate(
        """() => [...document.querySelectorAll(".jp-MarkdownCell .jp-MarkdownOutput, .jp-OutputArea-output")]
                 .map((e) => e.innerText).join("\\n")"""
    )
    return [m.group(0) for m in RAW_MYST.finditer(text)][:10]


_SHOWN_EXPR = (
    "[...a.querySelectorAll('img')].map((i) => i.src).join(' ') + "
    "[...a.querySelectorAll('.widget-html-content, pre')].map((e) => e.innerText).join(' ')"
)


def _shown(page, handle) -> str:
    return handle.evaluate("(h) => { const a = h.closest('.jp-OutputArea-output'); return " + _SHOWN_EXPR + "; }")


def _move(page, handle, timeout_ms: int = 30_000) -> None:
    """Click a slider handle and press ArrowRight until what its widget shows changes."""
    handle.scroll_into_view_if_needed()
    before = _shown(page, handle)
    assert before, "the slider's widget shows nothing"
    handle.click()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
    try:
        page.wait_for_function(
            "([h, b]) => { const a = h.closest('.jp-OutputArea-output'); return a && (" + _SHOWN_EXPR + ") !== b; }",
            arg=[handle.element_handle(), before],
            timeout=timeout_ms,
        )
    except Exception as exc:
        area = handle.evaluate_handle("(h) => h.closest('.jp-OutputArea-output')")
        if "javascript error" in area.evaluate("(a) => a.innerText"):
            area.as_element().query_selector("text=Click to show javascript error").click()
            page.wait_for_timeout(300)
        values = area.evaluate("(a) => a.innerText")
        raise AssertionError(f"moving the slider changed nothing shown; the widget reads {values!r}") from exc


def test_chapter_2_latent_slider_decodes(lab):
    page = _open(lab, "02_vae/02_vae.ipynb")
    _run_all(page, lab[3])
    handles = page.locator(".jp-OutputArea-output .noUi-handle")
    assert handles.count() >= 2, "chapter 2's latent slider (two sliders) did not render"
    _move(page, handles.first)
    page.screenshot(path=str(lab[3] / "02_vae_after_slider.png"))
    assert not _raw_myst(page)


def test_chapter_7_text_sampler_resamples(lab):
    page = _open(lab, "07_language_models/07_language_models.ipynb")
    _run_all(page, lab[3])
    sampler = page.locator(".jp-OutputArea-output .widget-vbox", has=page.locator(".widget-text"))
    assert sampler.count() >= 1, "chapter 7's text sampler did not render"
    _move(page, sampler.first.locator(".noUi-handle").first)
    page.screenshot(path=str(lab[3] / "07_after_temperature.png"))
    assert not _raw_myst(page)


def test_notebook_3_2_animation_shows_its_first_frame_and_plays(lab):
    page = _open(lab, "03_gans/03b_dcgan_mnist.ipynb")
    _run_all(page, lab[3])
    anim = page.locator(".jp-OutputArea-output .genai-animation").first
    anim.scroll_into_view_if_needed()
    page.screenshot(path=str(lab[3] / "03b_animation.png"))
    first = anim.locator("img").evaluate("(i) => [i.complete && i.naturalWidth, i.src]")
    assert first[0] > 0, "the animation's first frame is not shown before any click"
    anim.locator("[data-act=play]").click()
    page.wait_for_function(
        "([i, s]) => i.src !== s", arg=[anim.locator("img").element_handle(), first[1]], timeout=5000
    )
    assert not lab[2], f"JupyterLab fetched from the network: {lab[2]}"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_no_raw_myst_on_open(lab, notebook):
    page = _open(lab, notebook)
    assert page.locator(".jp-MarkdownCell").count() > 3
    raw = _raw_myst(page)
    if raw:
        page.screenshot(path=str(lab[3] / (Path(notebook).stem + "_raw_myst.png")))
    assert not raw, f"{notebook}: MyST markup shown as text: {raw}"
