"""The pip files and environment.yml describe one environment; the book config keeps its promises."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Notebooks that nbval already executes (fast mode) but that are not yet in the book's table of
# contents, because their full-mode run has not been verified end to end. Each must move into
# _toc.yml (and out of this set) before its issue is resolved.
DRAFTS: set[str] = set()  # notebooks executed by nbval but not yet in the toc (none now)


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = {}
    options = [line for line in pip_section if line.startswith("--")]
    # Binder has no GPU: pip must find the CPU build of torch (a local version, 2.13.0+cpu)
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"], options
    for line in pip_section:
        if line.startswith("--"):
            continue
        name, _, version = line.partition("==")
        env_pins[name.strip().lower()] = version.strip()
    assert env_pins == _requirements()
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_critical_pins():
    pins = _requirements()
    assert pins["torch"] == "2.13.0", "torch must be pinned exactly (an open range pulls a CUDA build)"
    assert pins["jupyter-book"].startswith("1."), "the book is Jupyter Book 1.x (_config.yml + _toc.yml)"
    assert all(v for k, v in pins.items() if k != "-e ."), "every requirement is pinned with =="


def test_book_config_fails_on_errors():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "cache"
    assert cfg["execute"]["raise_on_error"] is True
    assert cfg["bibtex_bibfiles"] == ["references.bib"]
    assert {"_build*", ".*", "**/.*"} <= set(cfg["exclude_patterns"])


def test_every_toc_file_exists_and_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for part in toc["parts"]:
        for ch in part["chapters"]:
            files += [s["file"] for s in ch.get("sections", [])]
    for f in files:
        assert (ROOT / f).with_suffix(".md").exists() or (ROOT / f).with_suffix(".ipynb").exists(), f
    notebooks = {
        str(p.relative_to(ROOT).with_suffix(""))
        for p in (ROOT / "chapters").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    }
    missing = notebooks - set(files) - DRAFTS
    assert not missing, f"notebooks missing from _toc.yml: {sorted(missing)}"
    assert not (DRAFTS & set(files)), "a notebook in the toc is still listed as a draft"
    assert all((ROOT / f).with_suffix(".ipynb").exists() for f in DRAFTS), "a listed draft does not exist"
    assert len(toc["parts"]) == 7


def test_notebooks_are_committed_without_outputs():
    import json

    for nb in (ROOT / "chapters").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        dirty = [
            i
            for i, c in enumerate(cells)
            if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
        ]
        assert not dirty, f"{nb.name}: cells {dirty} have outputs; strip them"


def test_every_notebook_cell_has_a_unique_id():
    # nbformat 4.5 requires cell ids (nbformat warns now and will refuse later); a cell pasted in
    # by a script that wrote the JSON by hand has none
    import json

    for nb in (ROOT / "chapters").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        data = json.loads(nb.read_text(encoding="utf-8"))
        ids = [c.get("id") for c in data["cells"]]
        missing = [i for i, x in enumerate(ids) if not x]
        assert not missing, f"{nb.name}: cells {missing} have no id (nbformat.validator.normalize adds them)"
        assert len(set(ids)) == len(ids), f"{nb.name}: duplicate cell ids"


def test_readme_chapter_table_matches_the_toc():
    """A chapter whose notebooks are in the book is not called "planned" in the README."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    in_book = {
        int(m.group(1))
        for part in toc["parts"]
        for ch in part["chapters"]
        for s in [ch, *ch.get("sections", [])]
        if (m := re.match(r"chapters/(\d\d)_", s.get("file", "")))
    }
    rows = re.findall(r"^\| (\d+)(?:-(\d+))? \| [^|]+ \| (\w+) \|$", (ROOT / "README.md").read_text(), re.M)
    assert rows, "README has no chapter table"
    seen = set()
    for first, last, status in rows:
        numbers = set(range(int(first), int(last or first) + 1))
        seen |= numbers
        if numbers <= in_book:
            label = f"{first}-{last}" if last else first
            assert status == "written", f"README calls chapter(s) {label} {status!r}, but they are in the book"
    assert in_book <= seen, f"chapters in the book with no README row: {sorted(in_book - seen)}"
