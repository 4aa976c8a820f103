"""Whole-repository checks that run tools: ruff, and a Jupyter Book build (execution off)."""

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


def _build(source: Path, out: Path, config: Path) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "jupyter-book"),
        "build",
        str(source),
        "--path-output",
        str(out),
        "--config",
        str(config),
        "-W",
        "--keep-going",
    ]
    return subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=600)


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
