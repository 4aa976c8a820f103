"""The pages read cleanly outside the book too (JupyterLab with jupyterlab-myst, Colab, plain Jupyter).

Decisions these checks hold (chapters/appendix/setup.md says what each place shows):
- Citations stay MyST roles (``{cite:t}`` / ``{cite:p}``): the book turns them into author-year
  references; jupyterlab-myst, with no bibliography to hand, shows the bare key as a label. So
  every key reads as a reference on its own: first author, year, topic (``kingma2014vae``).
- Cross-references to other pages are plain Markdown links (``[errata](../appendix/errata.md)``),
  which the book resolves like ``{doc}`` and every notebook front end shows as a link.
- Notebook code lines are at most 88 characters (the book's code column), enforced by ruff
  through chapters/ruff.toml.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^[a-z]+\d{4}[a-z0-9]*$")


def _texts() -> dict[str, str]:
    out = {}
    for p in (ROOT / "chapters").rglob("*.md"):
        out[str(p.relative_to(ROOT))] = p.read_text(encoding="utf-8")
    for p in (ROOT / "chapters").rglob("*.ipynb"):
        if ".ipynb_checkpoints" not in p.parts:
            cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
            out[str(p.relative_to(ROOT))] = "\n".join(
                "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
            )
    return out


def test_citation_keys_read_as_references():
    keys = re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M)
    assert len(keys) > 50
    bad = [k for k in keys if not KEY.match(k)]
    assert not bad, f"citation keys that do not read as author + year + topic: {bad}"


def test_every_cited_key_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M))
    cited = set()
    for text in _texts().values():
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in group.split(",")}
    assert cited and not cited - keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_pages_link_with_markdown_not_doc_roles():
    found = {name: re.findall(r"\{doc\}`[^`]*`", text) for name, text in _texts().items()}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"use a Markdown link [text](path.md) instead of {{doc}} (it reads in JupyterLab too): {found}"


def test_ruff_holds_notebook_code_to_88_columns():
    cfg = tomllib.loads((ROOT / "chapters" / "ruff.toml").read_text())
    assert cfg["line-length"] == 88 and cfg["extend"] == "../pyproject.toml"
    # the rule bites: a 100-character line in a file under chapters/ is an error (read from stdin)
    res = subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--no-cache",
            "--stdin-filename",
            "chapters/probe.py",
            "-",
        ],
        cwd=ROOT,
        input="x = '" + "a" * 94 + "'\n",
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "E501" in res.stdout, res.stdout + res.stderr


def test_every_glossary_term_is_listed_once():
    """Chapters merged side by side each add glossary rows; a term defined twice is one too many."""
    rows = [
        line.split("|")[1].strip().lower()
        for line in (ROOT / "chapters/appendix/glossary.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ]
    assert len(rows) > 100, "expected the glossary's table rows"
    twice = sorted({term for term in rows if rows.count(term) > 1})
    assert not twice, f"defined more than once: {twice}"
