"""The course from the command line: prepare a class, and carry trained weights to a room with no network.

    python -m genai_lib prepare [CHAPTER ...]      train and cache what the chapters need (all by default)
    python -m genai_lib cache list                 what the cache holds
    python -m genai_lib cache clear [--fast] [NAME ...]
    python -m genai_lib cache export FILE.zip      the trained weights of the course in one archive
    python -m genai_lib cache import FILE.zip      checked (versions and hashes) before anything is written
    python -m genai_lib repository [URL]           show (or, in a fork, change) the repository address

``prepare`` runs each chapter's notebooks in full mode, exactly as the book does, so every model a
chapter trains lands in the cache (``genai_lib.utils.cache_dir``); a second run, or a class run in
JupyterLab afterwards, loads them in seconds. It shows a progress bar over the notebooks' cells
with an estimate of the time left (from the last preparation on this machine) and says which cache
entries it already had. An archive holds the full-mode cache entries and a manifest with each
file's SHA-256 and the versions that wrote them; ``import`` refuses a damaged archive or one from
another major version of the library, and writes each file atomically.

The repository address lives in one setting, ``repository.url`` in ``_config.yml``: the book's
launch buttons (Binder, Colab) and its repository button read it, and each notebook's Colab
install line carries a copy that ``repository URL`` rewrites with it (a test checks that the
copies agree with the setting).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from genai_lib import __version__
from genai_lib.utils import atomic_write, cache_root

__all__ = [
    "main",
    "cache_entries",
    "export_cache",
    "import_cache",
    "prepare",
    "chapter_notebooks",
    "repository_url",
    "set_repository",
]

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "genai_lib_cache.json"
TIMINGS = "prepare_timings.json"


# --------------------------------------------------------------------------- the cache


def cache_entries(fast: bool = False) -> list[dict[str, Any]]:
    """The cached files of one mode: name, size in bytes, modification time."""
    folder = cache_root() / "fast" if fast else cache_root()
    out = []
    for f in sorted(folder.glob("*")):
        if f.is_file() and not f.name.startswith("."):
            st = f.stat()
            out.append({"name": f.name, "bytes": st.st_size, "mtime": st.st_mtime, "path": f})
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_cache(archive: str | os.PathLike) -> dict[str, Any]:
    """Write the full-mode cache into a zip archive with a manifest of hashes and versions."""
    archive = Path(archive)
    entries = cache_entries(fast=False)
    if not entries:
        raise ValueError(f"the cache at {cache_root()} holds no full-mode entries: run `prepare` first")
    manifest = {
        "genai_lib": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "files": {e["name"]: {"sha256": _sha256(e["path"]), "bytes": e["bytes"]} for e in entries},
    }

    def write(fh: Any) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:  # weights do not compress
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1))
            for e in entries:
                zf.write(e["path"], arcname=e["name"])

    atomic_write(archive, write)
    return manifest


def _major(version: str) -> str:
    return version.split(".")[0]


def import_cache(archive: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Check an archive written by :func:`export_cache` and copy its files into the cache.

    Every file's SHA-256 must match the manifest and the library's major version must be the same;
    names must be plain file names. Nothing is written unless the whole archive checks out. An
    existing entry is kept unless ``overwrite``. Returns ``{"imported": [...], "kept": [...]}``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"no archive at {archive}")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive} is not a cache archive (not a zip file)") from exc
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
        except KeyError:
            raise ValueError(f"{archive} has no {MANIFEST}: it was not written by `cache export`") from None
        if _major(manifest.get("genai_lib", "?")) != _major(__version__):
            raise ValueError(
                f"{archive} was written by genai_lib {manifest.get('genai_lib')}, this is {__version__}: "
                "retrain with `prepare` instead"
            )
        files = manifest.get("files", {})
        names = set(zf.namelist()) - {MANIFEST}
        if names != set(files):
            raise ValueError(f"{archive} does not match its manifest (files {sorted(names ^ set(files))})")
        for name in files:
            if Path(name).name != name or name.startswith("."):
                raise ValueError(f"{archive} holds an unsafe file name {name!r}")
        data = {}
        for name, info in files.items():
            blob = zf.read(name)
            if hashlib.sha256(blob).hexdigest() != info["sha256"]:
                raise ValueError(f"{archive}: {name} is damaged (its SHA-256 does not match the manifest)")
            data[name] = blob
    if manifest.get("torch", "").split("+")[0] != torch.__version__.split("+")[0]:
        print(f"note: the archive was written with torch {manifest.get('torch')}, this is {torch.__version__}")
    imported, kept = [], []
    for name, blob in data.items():
        target = cache_root() / name
        if target.exists() and not overwrite:
            kept.append(name)
            continue
        atomic_write(target, lambda fh, blob=blob: fh.write(blob))
        imported.append(name)
    return {"imported": imported, "kept": kept, "manifest": manifest}


# --------------------------------------------------------------------------- preparing a class


def chapter_notebooks(chapters: list[str] | None = None, root: Path = ROOT) -> list[Path]:
    """The book's notebooks in table-of-contents order, or those of the given chapters
    (a number such as ``2`` or ``03``, or a folder name such as ``03_gans``)."""
    toc = (root / "_toc.yml").read_text(encoding="utf-8")
    files = [
        line.split(":", 1)[1].strip()
        for line in toc.splitlines()
        if line.strip().startswith(("root:", "- file:", "file:"))
    ]
    notebooks = [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]
    if not chapters:
        return notebooks
    picked = []
    for want in chapters:
        key = want.strip().rstrip("/")
        match = [nb for nb in notebooks if nb.parent.name == key or nb.parent.name.split("_")[0] == key.zfill(2)]
        if not match:
            have = sorted({nb.parent.name for nb in notebooks})
            raise ValueError(f"no chapter {want!r} in the book; have {have}")
        picked += [nb for nb in match if nb not in picked]
    return picked


def _load_timings() -> dict[str, float]:
    path = cache_root() / TIMINGS
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def prepare(chapters: list[str] | None = None, *, root: Path = ROOT, progress: bool = True) -> dict[str, Any]:
    """Run the chapters' notebooks in full mode so that every model they train is cached.

    Returns ``{"had": [...], "trained": [...], "seconds": {notebook: s}}``: the cache entries present
    before, the ones the run added or rewrote, and each notebook's wall time (also saved, for the
    next run's estimate of the time left).
    """
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    notebooks = chapter_notebooks(chapters, root)
    before = {e["name"]: e["mtime"] for e in cache_entries()}
    timings = _load_timings()
    known = [timings.get(nb.stem) for nb in notebooks]
    estimate = sum(t for t in known if t) if all(known) else None
    print(
        f"preparing {len(notebooks)} notebook(s); the cache ({cache_root()}) holds {len(before)} entries"
        + (f"; last time this took {estimate / 60:.1f} min" if estimate else "")
    )
    saved = dict(os.environ)
    os.environ.pop("GENAI_FAST", None)  # the kernel inherits this process's environment: full mode
    seconds: dict[str, float] = {}
    total_cells = sum(sum(c.cell_type == "code" for c in nbformat.read(nb, 4).cells) for nb in notebooks)
    bar = tqdm(total=total_cells, desc="prepare", unit="cell", disable=not progress)
    try:
        for i, path in enumerate(notebooks):
            nb = nbformat.read(path, 4)
            left = sum(timings.get(p.stem, 0.0) for p in notebooks[i:])
            bar.set_postfix_str(f"{path.stem}" + (f", about {left / 60:.1f} min left" if left else ""))
            client = NotebookClient(
                nb, timeout=-1, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
            )
            t0 = time.perf_counter()
            client.on_cell_executed = lambda **_: bar.update(1)
            client.execute()
            seconds[path.stem] = time.perf_counter() - t0
            timings[path.stem] = seconds[path.stem]
            atomic_write(cache_root() / TIMINGS, lambda fh: fh.write(json.dumps(timings, indent=1).encode()))
    finally:
        bar.close()
        os.environ.clear()
        os.environ.update(saved)
    after = {e["name"]: e["mtime"] for e in cache_entries()}
    trained = sorted(n for n, t in after.items() if n != TIMINGS and before.get(n) != t)
    had = sorted(n for n in before if n not in trained and n != TIMINGS)
    print(f"already had {len(had)} entries; trained or updated {len(trained)}: {', '.join(trained) or 'none'}")
    return {"had": had, "trained": trained, "seconds": seconds}


# --------------------------------------------------------------------------- the repository address

_URL_SETTING = re.compile(r"^(repository:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)
_INSTALL_URL = re.compile(r"git\+(https?://[^\s\"'@\\]+)")
_SAFE_URL = re.compile(r"https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~%+-]+)+")


def repository_url(root: Path = ROOT) -> str:
    """The repository address the book's launch buttons and the notebooks' Colab cells use."""
    m = _URL_SETTING.search((root / "_config.yml").read_text(encoding="utf-8"))
    if not m:
        raise ValueError(f"{root / '_config.yml'} has no repository.url setting")
    return m.group(2)


def notebook_install_urls(path: Path) -> set[str]:
    """The repository addresses a notebook installs ``genai_lib`` from (its Colab cell)."""
    return set(_INSTALL_URL.findall(path.read_text(encoding="utf-8")))


def set_repository(url: str, root: Path = ROOT) -> list[Path]:
    """Point the book at another repository (a fork): ``_config.yml`` and every notebook's Colab
    install line. Returns the files changed; each is rewritten atomically."""
    if not isinstance(url, str) or not _SAFE_URL.fullmatch(url.rstrip("/")):
        raise ValueError(f"url must look like https://host/owner/name (letters, digits, . _ ~ % + -), got {url!r}")
    url = url.rstrip("/")
    old = repository_url(root)
    changed = []
    config = root / "_config.yml"
    text = config.read_text(encoding="utf-8")
    new_text = _URL_SETTING.sub(lambda m: m.group(1) + url, text, count=1)
    if new_text != text:
        atomic_write(config, lambda fh: fh.write(new_text.encode("utf-8")))
        changed.append(config)
    for nb in sorted((root / "chapters").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        text = nb.read_text(encoding="utf-8")
        new_text = _INSTALL_URL.sub(lambda m: "git+" + url if m.group(1) == old else m.group(0), text)
        if new_text != text:
            atomic_write(nb, lambda fh, t=new_text: fh.write(t.encode("utf-8")))
            changed.append(nb)
    return changed


# --------------------------------------------------------------------------- the command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genai_lib", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="train and cache every model the chapters need (full mode)")
    p.add_argument("chapters", nargs="*", help="chapter numbers or folder names (default: the whole book)")
    c = sub.add_parser("cache", help="list, clear, export or import the cache of trained weights")
    csub = c.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="what the cache holds")
    cl = csub.add_parser("clear", help="delete cache entries")
    cl.add_argument("names", nargs="*", help="entry names (default: all of the mode)")
    cl.add_argument("--fast", action="store_true", help="the fast-mode entries instead of the full-mode ones")
    ex = csub.add_parser("export", help="the full-mode cache in one archive")
    ex.add_argument("file")
    im = csub.add_parser("import", help="an archive written by export (checked first)")
    im.add_argument("file")
    im.add_argument("--overwrite", action="store_true", help="replace entries the cache already has")
    r = sub.add_parser("repository", help="show the repository address, or set it (in a fork)")
    r.add_argument("url", nargs="?", help="the new address, e.g. https://github.com/you/your-fork")
    args = ap.parse_args(argv)
    try:
        if args.command == "prepare":
            prepare(args.chapters)
        elif args.command == "repository":
            _repository(args)
        else:
            {"list": _list, "clear": _clear, "export": _export, "import": _import}[args.action](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _list(args: argparse.Namespace) -> None:
    for fast in (False, True):
        entries = cache_entries(fast)
        print(f"{'fast' if fast else 'full'} mode: {len(entries)} entries in {cache_root() / ('fast' if fast else '')}")
        for e in entries:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime"]))
            print(f"  {e['name']:40s} {e['bytes'] / 1e6:8.2f} MB  {when}")


def _clear(args: argparse.Namespace) -> None:
    entries = cache_entries(args.fast)
    names = set(args.names)
    chosen = [e for e in entries if not names or {e["name"], Path(e["name"]).stem} & names]
    missing = names - {e["name"] for e in chosen} - {Path(e["name"]).stem for e in chosen}
    if missing:
        raise ValueError(f"no cache entries named {sorted(missing)}")
    for e in chosen:
        e["path"].unlink(missing_ok=True)
    print(f"deleted {len(chosen)} entries")


def _export(args: argparse.Namespace) -> None:
    m = export_cache(args.file)
    size = sum(f["bytes"] for f in m["files"].values()) / 1e6
    print(f"wrote {args.file}: {len(m['files'])} entries, {size:.1f} MB")


def _import(args: argparse.Namespace) -> None:
    r = import_cache(args.file, overwrite=args.overwrite)
    print(f"imported {len(r['imported'])} entries; kept {len(r['kept'])} the cache already had")


def _repository(args: argparse.Namespace) -> None:
    if not args.url:
        print(repository_url())
        return
    changed = set_repository(args.url)
    print(f"repository is now {repository_url()}; rewrote {len(changed)} files")
