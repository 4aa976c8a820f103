"""genai_lib.course: preparing a class (notebooks run in full mode) and the cache archive round trip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from genai_lib import course
from genai_lib.checkpoint import save_checkpoint
from genai_lib.utils import cache_root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GENAI_FAST", raising=False)
    return cache_root()


def _fill(folder: Path) -> dict[str, bytes]:
    for i in range(3):
        save_checkpoint(folder / f"entry{i}.pt", {"w": torch.full((4,), float(i)), "step": i})
    return {f.name: f.read_bytes() for f in folder.glob("*.pt")}


def test_export_then_import_restores_every_entry(cache, tmp_path):
    original = _fill(cache)
    archive = tmp_path / "course.zip"
    manifest = course.export_cache(archive)
    assert set(manifest["files"]) == set(original) and manifest["torch"] == torch.__version__
    for f in cache.glob("*.pt"):
        f.unlink()
    result = course.import_cache(archive)
    assert sorted(result["imported"]) == sorted(original) and not result["kept"]
    assert {f.name: f.read_bytes() for f in cache.glob("*.pt")} == original
    again = course.import_cache(archive)  # entries the cache already has are kept
    assert sorted(again["kept"]) == sorted(original) and not again["imported"]


def _rewrite(archive: Path, out: Path, change) -> Path:
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            name, data = change(name, data)
            if name is not None:
                zout.writestr(name, data)
    return out


def _manifest_with(**changes):
    def change(name, data):
        if name == course.MANIFEST:
            m = json.loads(data)
            m.update(changes)
            return name, json.dumps(m)
        return name, data

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda n, d: (n, d[:-1] + bytes([d[-1] ^ 1])) if n == "entry1.pt" else (n, d), "entry1.pt is damaged"),
        (lambda n, d: (None, d) if n == course.MANIFEST else (n, d), "no genai_lib_cache.json"),
        (lambda n, d: (None, d) if n == "entry2.pt" else (n, d), "does not match its manifest"),
        (_manifest_with(genai_lib="9.0.0"), "written by genai_lib 9.0.0"),
    ],
)
def test_import_refuses_a_bad_archive_and_writes_nothing(cache, tmp_path, change, match):
    _fill(cache)
    archive = course.export_cache(tmp_path / "a.zip") and tmp_path / "a.zip"
    bad = _rewrite(archive, tmp_path / "bad.zip", change)
    for f in cache.glob("*.pt"):
        f.unlink()
    with pytest.raises(ValueError, match=match):
        course.import_cache(bad)
    assert not list(cache.glob("*.pt"))


def test_import_refuses_unsafe_names(cache, tmp_path):
    _fill(cache)
    course.export_cache(tmp_path / "a.zip")

    def escape(name, data):
        if name == course.MANIFEST:
            m = json.loads(data)
            m["files"]["../evil.pt"] = m["files"].pop("entry0.pt")
            return name, json.dumps(m)
        return ("../evil.pt" if name == "entry0.pt" else name), data

    bad = _rewrite(tmp_path / "a.zip", tmp_path / "bad.zip", escape)
    with pytest.raises(ValueError, match="unsafe file name"):
        course.import_cache(bad)
    assert not (cache.parent / "evil.pt").exists()


def test_export_of_an_empty_cache_and_the_cli_errors(cache, tmp_path, capsys):
    with pytest.raises(ValueError, match="no full-mode entries"):
        course.export_cache(tmp_path / "x.zip")
    assert course.main(["cache", "import", str(tmp_path / "missing.zip")]) == 2
    assert "no archive" in capsys.readouterr().err
    _fill(cache)
    assert course.main(["cache", "clear", "entry0"]) == 0 and not (cache / "entry0.pt").exists()
    assert course.main(["cache", "clear", "nope"]) == 2
    assert course.main(["cache", "list"]) == 0 and "entry1.pt" in capsys.readouterr().out


def test_chapter_notebooks_follow_the_table_of_contents():
    every = course.chapter_notebooks()
    assert every[0].parent.name.startswith("01_") and all(nb.suffix == ".ipynb" for nb in every)
    assert [nb.parent.name for nb in course.chapter_notebooks(["2"])] == ["02_vae"]
    assert course.chapter_notebooks(["03_gans"]) == [nb for nb in every if nb.parent.name == "03_gans"]
    with pytest.raises(ValueError, match="no chapter '42'"):
        course.chapter_notebooks(["42"])


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "toy-cell",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": [
                "import os, torch\n",
                "from genai_lib.data import make_loader\n",
                "from genai_lib.train_cache import load_or_train\n",
                "assert not os.environ.get('GENAI_FAST')  # prepare runs the full mode\n",
                "x = torch.randn(32, 2); y = x.sum(1)\n",
                "class M(torch.nn.Module):\n",
                "    def __init__(self):\n",
                "        super().__init__(); self.l = torch.nn.Linear(2, 1)\n",
                "    def loss(self, b):\n",
                "        return (self.l(b[0]).squeeze(-1) - b[1]).square().mean(), {}\n",
                "torch.manual_seed(0)\n",
                "h = load_or_train(M(), make_loader(x, y, batch_size=8), name='toy', steps=5, progress=False)\n",
            ],
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_prepare_runs_the_notebooks_in_full_mode_and_says_what_it_had(cache, tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "chapters" / "01_toy").mkdir(parents=True)
    (root / "chapters" / "01_toy" / "toy.ipynb").write_text(json.dumps(NOTEBOOK))
    (root / "_toc.yml").write_text("format: jb-book\nroot: chapters/01_toy/toy\n")
    monkeypatch.setenv("GENAI_FAST", "1")  # restored afterwards; the kernel runs without it
    first = course.prepare(root=root, progress=False)
    assert first["trained"] == ["toy.pt"] and first["had"] == [] and "toy" in first["seconds"]
    import os

    assert os.environ["GENAI_FAST"] == "1"
    second = course.prepare(["1"], root=root, progress=False)
    assert second["had"] == ["toy.pt"] and second["trained"] == []


# --------------------------------------------------------------------------- the repository address


def test_every_notebook_installs_from_the_one_repository_setting():
    url = course.repository_url()
    assert url.startswith("https://")
    for nb in sorted((course.ROOT / "chapters").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        assert course.notebook_install_urls(nb) == {url}, f"{nb.name}: its Colab cell must install from {url}"


def _copy_book(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    (root / "chapters" / "02_vae").mkdir(parents=True)
    (root / "_config.yml").write_text((course.ROOT / "_config.yml").read_text())
    src = course.ROOT / "chapters" / "02_vae" / "02_vae.ipynb"
    (root / "chapters" / "02_vae" / "02_vae.ipynb").write_text(src.read_text())
    return root


def test_set_repository_rewrites_the_setting_and_every_colab_cell(tmp_path, capsys):
    root = _copy_book(tmp_path)
    before_nb = json.loads((root / "chapters/02_vae/02_vae.ipynb").read_text())
    fork = "https://github.com/someone/my-fork"
    changed = course.set_repository(fork + "/", root)
    assert {p.name for p in changed} == {"_config.yml", "02_vae.ipynb"}
    assert course.repository_url(root) == fork
    nb_path = root / "chapters/02_vae/02_vae.ipynb"
    assert course.notebook_install_urls(nb_path) == {fork}
    after_nb = json.loads(nb_path.read_text())  # still a valid notebook, one line changed
    diff = [
        (a, b)
        for ca, cb in zip(before_nb["cells"], after_nb["cells"], strict=True)
        for a, b in zip(ca["source"], cb["source"], strict=True)
        if a != b
    ]
    assert len(diff) == 1 and fork in diff[0][1]
    cfg = (root / "_config.yml").read_text()
    assert cfg.count(fork) == 1 and "binderhub_url" in cfg  # the rest of the file is untouched
    assert course.set_repository(fork, root) == []  # idempotent


@pytest.mark.parametrize("bad", ["github.com/a/b", "https://github.com/a b", 'https://x.org/a"b', "", None])
def test_set_repository_refuses_a_bad_address(tmp_path, bad):
    root = _copy_book(tmp_path)
    with pytest.raises(ValueError, match="url must look like"):
        course.set_repository(bad, root)
    assert course.repository_url(root) == course.repository_url()


def test_repository_command_shows_the_address(capsys):
    assert course.main(["repository"]) == 0
    assert capsys.readouterr().out.strip() == course.repository_url()
    assert course.main(["repository", "not-a-url"]) == 2
    assert "url must look like" in capsys.readouterr().err
