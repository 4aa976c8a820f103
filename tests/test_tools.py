"""Whole-repository checks that run tools: ruff, and Jupyter Book builds.

Every build goes through ``scripts/jb_parallel.py``, the way ``scripts/book.sh`` builds the book:
Jupyter Book with Sphinx's parallel read, so notebooks execute side by side.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_ruff_clean():
    targets = [p for p in ("genai_lib", "tests", "chapters", "benchmarks") if (ROOT / p).exists()]
    res = subprocess.run([str(BIN / "ruff"), "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_ruff_format_clean():
    """Library, tests, benchmarks, scripts and notebooks are as ``ruff format`` writes them."""
    targets = [p for p in ("genai_lib", "tests", "chapters", "benchmarks", "scripts") if (ROOT / p).exists()]
    res = subprocess.run([str(BIN / "ruff"), "format", "--check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, "run `ruff format` on:\n" + res.stdout + res.stderr


def _build(source: Path, out: Path, config: Path, jobs: int = 2) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "jb_parallel.py"),
        "build",
        str(source),
        "--path-output",
        str(out),
        "--config",
        str(config),
        "-W",
        "--keep-going",
    ]
    env = {**os.environ, "GENAI_BOOK_JOBS": str(jobs)}
    return subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    """The book's structure, references and markup build cleanly (nbval executes the notebooks).

    Execution is off and the output goes to a temporary folder, so this build never shares
    jupyter-cache's execution cache with the full-mode book in _build/.
    """
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["execute"]["execute_notebooks"] = "off"
    config = tmp_path / "_config.yml"
    config.write_text(yaml.safe_dump(cfg))
    res = _build(ROOT, tmp_path / "book", config)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    html = tmp_path / "book" / "_build" / "html"
    assert (html / "index.html").exists()
    for part in ("01_generative_ai/01_what_is_generative_ai.html", "02_vae/02_vae.html", "appendix/glossary.html"):
        assert (html / "chapters" / part).exists(), part


@pytest.mark.slow
def test_a_notebook_that_raises_fails_the_build(tmp_path):
    """With the project's execute settings, one failing cell fails the whole build."""
    import nbformat

    book = tmp_path / "mini"
    book.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Boom"), nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "boom.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: boom\n")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    mini = {"title": "mini", "execute": cfg["execute"], "only_build_toc_files": True}
    (book / "_config.yml").write_text(yaml.safe_dump(mini))
    res = _build(book, tmp_path / "out", book / "_config.yml")
    assert res.returncode != 0
    assert "boom" in (res.stdout + res.stderr)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def _mini_book(book: Path, cells: list[str]) -> None:
    """A book of one notebook per code cell (each a page), with the project's execute settings."""
    import nbformat

    book.mkdir()
    for i, code in enumerate(cells):
        page = [nbformat.v4.new_markdown_cell(f"# Page {i}"), nbformat.v4.new_code_cell(code)]
        nb = nbformat.v4.new_notebook(cells=page)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, book / f"p{i}.ipynb")
    (book / "intro.md").write_text("# Intro\n")
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: p{i}\n" for i in range(len(cells)))
    (book / "_toc.yml").write_text(toc)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    mini = {"title": "mini", "execute": cfg["execute"], "only_build_toc_files": True}
    (book / "_config.yml").write_text(yaml.safe_dump(mini))


@pytest.mark.slow
def test_parallel_build_executes_notebooks_side_by_side(tmp_path):
    """scripts/jb_parallel.py: with 2 workers, two notebooks' executions overlap in time.

    Six pages (Sphinx reads serially below six) each record when their one cell started and
    ended; with an empty jupyter-cache (its database is created before the workers start) the
    -W build succeeds, so no extension forced a serial read (that is a Sphinx warning), and at
    least two executions overlap. Serially, none could.
    """
    code = "import json, os, time\nt0 = time.time(); time.sleep(4)\nprint(json.dumps([os.getpid(), t0, time.time()]))"
    _mini_book(tmp_path / "mini", [f"# page {i}\n{code}" for i in range(6)])
    res = _build(tmp_path / "mini", tmp_path / "out", tmp_path / "mini" / "_config.yml", jobs=2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "doing serial read" not in res.stdout + res.stderr
    spans = []
    for nb_path in sorted((tmp_path / "out" / "_build" / "jupyter_execute").glob("p*.ipynb")):
        cell = next(c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code")
        spans.append(json.loads("".join(cell["outputs"][0]["text"])))
    assert len(spans) == 6, f"expected six executed pages, found {len(spans)}"
    overlaps = sum(a[1] < b[2] and b[1] < a[2] for i, a in enumerate(spans) for b in spans[i + 1 :])
    assert overlaps >= 1, f"no two executions overlapped: {spans}"
    assert len({pid for pid, _, _ in spans}) == 6, "each page runs in its own kernel"


@pytest.mark.slow
def test_parallel_build_fails_when_a_worker_notebook_raises(tmp_path):
    """An error in a notebook read by a worker process still fails the whole build."""
    cells = [f"print({i})" for i in range(5)] + ["raise RuntimeError('boom in a worker')"]
    _mini_book(tmp_path / "mini", cells)
    res = _build(tmp_path / "mini", tmp_path / "out", tmp_path / "mini" / "_config.yml", jobs=2)
    assert res.returncode != 0
    assert "boom in a worker" in res.stdout + res.stderr


def test_jb_parallel_rejects_a_bad_worker_count():
    env = {**os.environ, "GENAI_BOOK_JOBS": "zero"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "jb_parallel.py"), "--help"], env=env, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "GENAI_BOOK_JOBS must be a positive integer, got 'zero'" in res.stderr
