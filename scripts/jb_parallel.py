"""`jupyter-book` with Sphinx's parallel read, so notebooks execute side by side.

Jupyter Book 1.x passes a fixed ``jobs=1`` to Sphinx and its command line has no ``-j``. Its
``build_sphinx`` takes ``jobs``, and myst-nb declares itself parallel-read safe, so this wrapper
runs the ordinary ``jupyter-book`` command line with ``jobs`` set: Sphinx then reads (and
myst-nb executes) the pages in ``jobs`` worker processes. Every argument is ``jupyter-book``'s:

    python scripts/jb_parallel.py build . -W --keep-going

``GENAI_BOOK_JOBS`` sets the number of workers (default: the number of CPU cores, at most 4).
Each notebook's kernel gets ``OMP_NUM_THREADS`` = cores // workers (at least 1) unless it is set,
so workers do not oversubscribe the cores. jupyter-cache's database (``execute_notebooks:
cache``) is SQLite, which serialises the few short writes the workers make.
"""

from __future__ import annotations

import functools
import os
import sys


def jobs_from_env() -> int:
    """The number of Sphinx workers: ``GENAI_BOOK_JOBS``, else min(cores, 4)."""
    raw = os.environ.get("GENAI_BOOK_JOBS", "").strip()
    cores = os.cpu_count() or 1
    if not raw:
        return max(1, min(cores, 4))
    try:
        jobs = int(raw)
    except ValueError:
        raise SystemExit(f"GENAI_BOOK_JOBS must be a positive integer, got {raw!r}") from None
    if jobs < 1:
        raise SystemExit(f"GENAI_BOOK_JOBS must be a positive integer, got {raw!r}")
    return jobs


# Extensions Jupyter Book loads that declare nothing about parallel reading, which makes Sphinx
# read serially. Each was read (the versions pinned in requirements.txt) and is safe:
_SAFE_UNDECLARED = {
    # replaces TocTreeCollector.assign_section_numbers, which Sphinx calls in the main process
    # after the workers' environments are merged, and logs one line at builder-inited
    "sphinx_multitoc_numbering": "0.1.3",
    # transforms that rewrite each page's own doctree (and LaTeX-only post-transforms); nothing
    # is kept in the shared environment
    "sphinx_jupyterbook_latex": "1.0.0",
}


def _declare_parallel_safe() -> None:
    """Declare the extensions in ``_SAFE_UNDECLARED`` parallel-safe on their behalf."""
    import importlib

    for name in _SAFE_UNDECLARED:
        module = importlib.import_module(name)
        original = module.setup

        def setup(app, _original=original):  # noqa: ANN001, ANN202 (Sphinx's signature)
            meta = _original(app) or {}
            return {**meta, "parallel_read_safe": True, "parallel_write_safe": True}

        module.setup = setup


def _create_execution_cache_first() -> None:
    """Create jupyter-cache's database in the main process, before the workers start.

    On an empty cache two workers would otherwise both create its tables and one fails
    ('table settings already exists'); once it exists, SQLite serialises their writes.
    """
    import jupyter_book

    original = jupyter_book.setup

    def before_read(app, env, docnames):  # noqa: ANN001, ANN202 (a Sphinx event handler)
        config = env.mystnb_config
        if config.execution_mode == "cache" and config.execution_cache_path:
            from jupyter_cache import get_cache

            _ = get_cache(config.execution_cache_path).db  # the property creates the tables

    def setup(app):  # noqa: ANN001, ANN202 (Sphinx's signature)
        app.connect("env-before-read-docs", before_read)
        return original(app)

    jupyter_book.setup = setup


def _one_page_per_chunk() -> None:
    """Hand the workers one page at a time instead of Sphinx's fixed chunks.

    Sphinx splits the sorted pages into chunks (about 12 pages each for this book on 2 workers)
    and gives each worker whole chunks, so one worker executed chapters 1-8.1 in a row (about
    two hours of training on an empty cache) while the other had the rest. With one page per
    chunk a worker takes the next page as soon as it is free, and the slowest chain of
    notebooks is no longer fixed by the alphabet. Each chunk costs a forked process and a
    pickled environment, well under a second per page.
    """
    import sphinx.builders

    def make_chunks(arguments, nproc, maxbatch=10):  # noqa: ANN001, ANN202, ARG001 (Sphinx's signature)
        return [[a] for a in arguments]

    sphinx.builders.make_chunks = make_chunks


def main(argv: list[str]) -> None:
    import jupyter_book.cli.main as cli
    import jupyter_book.sphinx as jb_sphinx

    _declare_parallel_safe()
    _create_execution_cache_first()
    _one_page_per_chunk()

    jobs = jobs_from_env()
    cores = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // jobs)))
    # cli.main imports build_sphinx inside its build command, so the module attribute is what
    # it finds.
    build = functools.partial(jb_sphinx.build_sphinx, jobs=jobs)

    def build_and_explain(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 (build_sphinx's)
        result = build(*args, **kwargs)
        # A worker's exception reaches the main process as SphinxParallelError, whose message
        # names only the notebook; the worker's traceback (the cell and its error) is kept in
        # .traceback, and Jupyter Book does not print it.
        if isinstance(result, Exception) and getattr(result, "traceback", None):
            print(f"\nError in a Sphinx worker:\n{result.traceback}", file=sys.stderr)
        return result

    jb_sphinx.build_sphinx = build_and_explain
    print(f"jb_parallel: {jobs} Sphinx worker(s), OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    sys.argv = ["jupyter-book", *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
