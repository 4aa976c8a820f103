"""The built book in a real browser: every page, offline, as a reader meets it.

One executed build in fast mode (``GENAI_FAST=1 GENAI_BOOK=1``, so widgets pre-render their
frames) is served on 127.0.0.1 and opened in headless Chromium; the CDN assets are answered from
``tests/browser/node_modules`` (see tests/_browser.py). Every page is visited once and what it
shows is recorded; the tests below check the record: console errors, images and their alt text,
math, widgets, animations and audio, links and anchors, and axe-core on a sample of pages.
Screenshots of each chapter's first screen go to the folder the build fixture prints
(``$GENAI_SCREENSHOTS/book`` when set). ``GENAI_BOOK_HTML=<folder>`` reuses a book already built
that way instead of building one (for working on these tests).
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests import _browser

pytestmark = pytest.mark.slow

ROOT = _browser.ROOT
BIN = Path(sys.executable).parent
AXE_SAMPLE = [
    "index.html",
    "chapters/02_vae/02_vae.html",
    "chapters/03_gans/03a_gan_theory_and_toy.html",
    "chapters/07_language_models/07_language_models.html",
    "chapters/appendix/glossary.html",
]
# axe-core findings (serious or critical) that stay, by (rule, where), each with why. "theme" is
# the page chrome of sphinx-book-theme 1.3 / pydata-sphinx-theme 0.17 (header, sidebars), which
# the course does not template; "content" is the book's own pages.
THEME_CHROME = ".bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .navbar-item"
AXE_ALLOWED: dict[tuple[str, str], str] = {
    ("label-content-name-mismatch", "theme"): "the theme's search button shows 'Search Ctrl+K' but is "
    "named 'Search' (aria-label); the name still says what it does",
    ("summary-name", "theme"): "the theme's sidebar expands a part with an icon-only <summary> (the "
    "link beside it names the part)",
    ("aria-input-field-name", "content"): "ipywidgets 8.1's slider handle (noUiSlider, role=slider) "
    "has no accessible name; the visible description beside it is not tied to it, and the "
    "widget library's markup cannot be changed from a notebook",
}
# Alt text that says nothing about the picture: a file name, or a default with no subject.
_VACUOUS_ALT = re.compile(r"(^$|\.(png|jpe?g|svg|gif)$|_images/|^a figure$|^an animation of \d+ frames)", re.I)


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    """The book built once with execution (fast mode, static widgets) into a temporary folder."""
    _browser.require_browser()
    given = os.environ.get("GENAI_BOOK_HTML")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("browser_book")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["execute"]["execute_notebooks"] = "force"
    config = out / "_config.yml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "GENAI_FAST": "1", "GENAI_BOOK": "1", "PYTHONPATH": str(ROOT)}
    # executed as scripts/book.sh does: pages side by side in Sphinx's parallel read
    jb = [sys.executable, str(ROOT / "scripts" / "jb_parallel.py")]
    cmd = [*jb, "build", str(ROOT), "--path-output", str(out), "--config", str(config)]
    start = time.monotonic()
    res = subprocess.run([*cmd, "-W", "--keep-going"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    print(f"\nexecuted fast-mode book build: {time.monotonic() - start:.0f} s")
    return out / "_build" / "html"


def _pages(html_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html") if not {"_static", "_sources"} & set(p.parts)
    )


_PAGE_JS = """async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const rendered = () => views.filter((s) => {
    const p = s.previousElementSibling;
    return p && p.classList.contains("widget-subarea") && p.children.length > 0;
  }).length;
  for (let t = 0; t < 200 && rendered() < views.length; t++) { await new Promise((r) => setTimeout(r, 100)); }
  const main = document.querySelector("main") || document.body;
  const visible = (el) => el.offsetParent !== null;
  const imgs = [...main.querySelectorAll("img")];
  await Promise.all(imgs.map((i) => i.complete ? null : new Promise((r) => { i.onload = i.onerror = r; })));
  const clone = main.cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, mjx-container, .MathJax, textarea").forEach((e) => e.remove());
  return {
    images: imgs.map((i) => ({
      src: i.currentSrc.slice(0, 120), width: i.naturalWidth, alt: i.getAttribute("alt"),
      title: i.getAttribute("title"), aria: i.getAttribute("aria-label"),
      caption: !!(i.closest("figure") && i.closest("figure").querySelector("figcaption")),
    })),
    math: main.querySelectorAll(".math").length,
    untypeset: [...main.querySelectorAll(".math")].filter((m) => !m.querySelector("mjx-container")).length,
    text: clone.innerText,
    widgetViews: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
    widgetRoots: rendered(),
    handles: document.querySelectorAll(".noUi-handle").length,
    selects: main.querySelectorAll(".jupyter-widgets select").length,
    audio: main.querySelectorAll("audio").length,
    code: [...main.querySelectorAll("div.cell_input pre")].map((p) => [
      p.innerText.split("\\n").reduce((a, l) => Math.max(a, l.length), 0), p.scrollWidth > p.clientWidth + 1]),
    animations: main.querySelectorAll(".genai-animation").length,
  };
}"""

_AXE_JS = """async (chrome) => {
  const found = (await axe.run(document)).violations.filter((v) => ["serious", "critical"].includes(v.impact));
  const out = [];
  for (const v of found) {
    for (const where of ["theme", "content"]) {
      const nodes = v.nodes.filter((n) => {
        const el = document.querySelector(n.target[0]);
        return (el && el.closest(chrome) ? "theme" : "content") === where;
      });
      if (nodes.length) { out.push([v.id, where, v.impact, v.help, nodes.length, nodes[0].target]); }
    }
  }
  return out;
}"""

_SHOWN_JS = """(el) => {
  const root = el.closest(".cell_output") || el.closest(".output") || document;
  return [...root.querySelectorAll("img")].filter((i) => i.offsetParent !== null).map((i) => i.src).join(" ");
}"""


def _widgets(page) -> list[str]:
    """Move every slider and pick another option of every dropdown; the shown image must change."""
    failures = []
    handles = page.locator(".noUi-handle")
    for i in range(handles.count()):
        h = handles.nth(i)
        h.scroll_into_view_if_needed()
        before = h.evaluate(_SHOWN_JS)
        h.click()
        for key in ("ArrowRight", "ArrowRight", "End"):
            page.keyboard.press(key)
            page.wait_for_timeout(150)
            if h.evaluate(_SHOWN_JS) != before:
                break
        else:
            failures.append(f"slider {i} ({h.get_attribute('aria-valuetext')}): the image did not change")
        if not before:
            failures.append(f"slider {i}: no image shown beside it")
    selects = page.locator(".jupyter-widgets select")
    for i in range(selects.count()):
        s = selects.nth(i)
        before = s.evaluate(_SHOWN_JS)
        options = s.locator("option").all_inner_texts()
        s.select_option(label=options[-1] if s.input_value() != options[-1] else options[0])
        page.wait_for_timeout(200)
        if s.evaluate(_SHOWN_JS) == before:
            failures.append(f"dropdown {i}: picking {options[-1]!r} did not change the image")
    return failures


def _media(page) -> list[str]:
    """Animations step when played; audio loads and its clock advances when played."""
    failures = []
    anims = page.locator(".genai-animation")
    for i in range(anims.count()):
        a = anims.nth(i)
        a.scroll_into_view_if_needed()
        first = a.locator("img").evaluate("(i) => [i.naturalWidth, i.src]")
        if first[0] == 0:
            failures.append(f"animation {i}: its first frame did not load")
        a.locator("[data-act=play]").click()
        page.wait_for_timeout(1200)
        if a.locator("img").evaluate("(i) => i.src") == first[1]:
            failures.append(f"animation {i}: play did not change the frame")
    for i, state in enumerate(
        page.evaluate("""async () => Promise.all([...document.querySelectorAll("main audio")].map(async (a) => {
          if (a.readyState < 1) { await new Promise((r) => { a.onloadedmetadata = a.onerror = r; }); }
          try { await a.play(); } catch (e) { return [a.readyState, a.duration, 0, String(e)]; }
          await new Promise((r) => setTimeout(r, 400)); a.pause();
          return [a.readyState, a.duration, a.currentTime, ""]; }))""")
    ):
        if state[0] < 1 or not state[1] or state[2] <= 0:
            failures.append(f"audio {i}: readyState {state[0]}, duration {state[1]}, played to {state[2]} {state[3]}")
    return failures


@pytest.fixture(scope="module")
def visits(book_html, tmp_path_factory) -> dict[str, dict]:
    """Open every page once, record what it shows, try its widgets, media and (sampled) axe."""
    shots = _browser.screenshot_dir("book", tmp_path_factory)
    print(f"\nbrowser test screenshots: {shots}")
    axe = (_browser.NODE_MODULES / "axe-core" / "axe.min.js").read_text()
    record: dict[str, dict] = {}
    unserved: list[str] = []
    with _browser.serve(book_html) as base, _browser.chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        _browser.route_offline(context, unserved)
        for rel in _pages(book_html):
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(f"pageerror: {exc.message}"))
            page.on("response", lambda r, e=errors: e.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
            page.goto(f"{base}/{rel}", wait_until="networkidle")
            info = page.evaluate(_PAGE_JS)
            if rel.startswith("chapters/") and re.match(r"chapters/\d\d_", rel):
                page.screenshot(path=str(shots / (rel.split("/")[-1].removesuffix(".html") + ".png")))
            info["widget_failures"] = _widgets(page)
            info["media_failures"] = _media(page)
            if rel in AXE_SAMPLE:
                page.add_script_tag(content=axe)
                info["axe"] = page.evaluate(_AXE_JS, THEME_CHROME)
            info["errors"] = errors
            record[rel] = info
            page.close()
            print(f"  {rel}: {len(info['images'])} images, {info['handles']} sliders, {len(errors)} errors", flush=True)
    record["__unserved__"] = {"urls": sorted(set(unserved))}
    return record


def _page_items(visits):
    return [(k, v) for k, v in visits.items() if not k.startswith("__")]


def test_every_page_was_visited(visits, book_html):
    pages = _page_items(visits)
    assert len(pages) >= 20
    assert any("02_vae" in k for k, _ in pages)
    assert not visits["__unserved__"]["urls"], "remote requests with no local copy (the book must work offline)"


def test_no_console_errors(visits):
    """Only the listed, explained error (tests/_browser.py ALLOWED_PAGE_ERRORS) may appear."""
    allowed = {f"pageerror: {t}" for t in _browser.ALLOWED_PAGE_ERRORS}
    bad = {k: [e for e in v["errors"] if e not in allowed] for k, v in _page_items(visits)}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, json.dumps(bad, indent=1)[:6000]


def test_every_image_loads_and_says_what_it_shows(visits):
    bad = {}
    total = 0
    for rel, info in _page_items(visits):
        for img in info["images"]:
            total += 1
            words = next((t for t in (img["alt"], img["aria"], img["title"]) if t and not _VACUOUS_ALT.search(t)), None)
            if img["width"] == 0 or not (words or img["caption"]):
                bad.setdefault(rel, []).append(img)
    assert total > 50, f"only {total} images in the whole book: did the notebooks execute?"
    assert not bad, json.dumps(bad, indent=1)[:6000]


def test_math_is_typeset(visits):
    pages = _page_items(visits)
    assert sum(v["math"] for _, v in pages) > 100
    untypeset = {k: v["untypeset"] for k, v in pages if v["untypeset"]}
    assert not untypeset, f"math elements with no MathJax output: {untypeset}"
    raw = {}
    for rel, info in pages:
        hits = re.findall(r"\$[^$\n]{1,80}\$|\\\(|\\\[", info["text"])
        if hits:
            raw[rel] = hits[:5]
    assert not raw, f"raw math delimiters left in the text: {raw}"


def test_code_cells_fit_the_column(visits):
    """A code cell whose lines are at most 88 characters (ruff's limit for notebooks) does not
    scroll sideways at a 1280-pixel-wide window (chapters/_static/course.css sets its font)."""
    cells = [(k, c) for k, v in _page_items(visits) for c in v["code"]]
    assert len(cells) > 200
    scrolled = [(k, width) for k, (width, scrolls) in cells if width <= 88 and scrolls]
    assert not scrolled, f"code cells of at most 88 characters that scroll sideways: {scrolled[:20]}"


def test_every_widget_renders_and_responds(visits):
    pages = _page_items(visits)
    with_widgets = {k: v for k, v in pages if v["widgetViews"]}
    assert with_widgets, "no page carries a widget: were widgets pre-rendered (GENAI_BOOK=1)?"
    unrendered = {
        k: (v["widgetViews"], v["widgetRoots"]) for k, v in with_widgets.items() if v["widgetRoots"] < v["widgetViews"]
    }
    assert not unrendered, f"widget views that did not render (views, rendered): {unrendered}"
    assert sum(v["handles"] + v["selects"] for v in with_widgets.values()) >= 5
    failures = {k: v["widget_failures"] for k, v in pages if v["widget_failures"]}
    assert not failures, failures


def test_animations_and_audio_play(visits):
    pages = _page_items(visits)
    assert sum(v["animations"] for _, v in pages) >= 1, "the book shows animations (chapter 3): none found"
    failures = {k: v["media_failures"] for k, v in pages if v["media_failures"]}
    assert not failures, failures


def test_axe_finds_no_serious_violation(visits):
    assert all("axe" in visits.get(k, {}) for k in AXE_SAMPLE), "an axe sample page is missing from the book"
    found = {k: [v for v in visits[k]["axe"] if (v[0], v[1]) not in AXE_ALLOWED] for k in AXE_SAMPLE}
    found = {
        k: [f"{r[0]} in {r[1]} ({r[2]}, {r[4]} nodes: {r[3]}; first {r[5]})" for r in v] for k, v in found.items() if v
    }
    assert not found, json.dumps(found, indent=1)[:8000]


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name") if tag in ("a",) else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script", "link") and (a.get("src") or a.get("href")):
            self.links.append(a.get("src") or a.get("href"))


def test_internal_links_and_anchors_resolve(book_html, tmp_path_factory):
    """A small link checker over the built HTML: every relative link and #anchor resolves;
    external links are listed in a report (not fetched)."""
    parsed: dict[Path, _Links] = {}

    def links_of(path: Path) -> _Links:
        if path not in parsed:
            p = _Links()
            p.feed(path.read_text(encoding="utf-8", errors="replace"))
            parsed[path] = p
        return parsed[path]

    broken, external, checked = [], set(), 0
    for rel in _pages(book_html):
        here = book_html / rel
        for href in links_of(here).links:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https", "mailto"):
                external.add(href)
                continue
            if parts.scheme in ("data", "javascript", "blob") or href.startswith("//"):
                continue
            target = (here.parent / unquote(parts.path)).resolve() if parts.path else here
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{rel}: {href} (no file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in links_of(target).ids:
                broken.append(f"{rel}: {href} (no anchor #{parts.fragment})")
    report = tmp_path_factory.mktemp("links") / "external_links.txt"
    report.write_text("\n".join(sorted(external)) + "\n")
    print(f"\n{checked} internal links checked; {len(external)} external links listed in {report}")
    assert checked > 500
    assert not broken, "\n".join(broken[:50])
