"""Python source that ships with CPython, for chapter 13's code model, and the checks of its output.

The corpus is a fixed, documented subset of the standard library's own ``.py`` files
(:data:`CODE_MODULES`, read from ``sysconfig.get_paths()["stdlib"]`` in that order), so it is the
same on every machine with the same Python version and needs no network. Only files inside the
interpreter's standard-library folder are read.

A generated function is checked in three steps of increasing strictness:

1. it *parses* (``ast.parse``: the grammar is right);
2. it *compiles* (``compile``: also catches ``return`` outside a function, ``break`` outside a
   loop, ``nonlocal`` errors and the like, found after parsing);
3. it *passes* a few input/output properties (:data:`PROMPTS`), run in a separate Python process
   with a time limit per function, so that a generated infinite loop or ``os.remove`` cannot harm
   the notebook's process (the child gets no input and its globals hold only the function).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genai_lib._checks import check_positive

__all__ = [
    "CODE_MODULES",
    "PROMPTS",
    "stdlib_dir",
    "code_files",
    "load_code_corpus",
    "docstring_prompts",
    "extract_function",
    "parses",
    "has_body",
    "compiles",
    "property_checks",
    "CLOSERS",
    "scan_brackets",
]

# Small, plain modules of the standard library (no C accelerators needed to read them): about
# 400,000 characters of idiomatic Python with docstrings.
CODE_MODULES = (
    "bisect", "heapq", "colorsys", "fnmatch", "textwrap", "string", "shlex", "keyword", "graphlib",
    "statistics", "fractions", "numbers", "operator", "copy", "reprlib", "genericpath", "posixpath",
    "glob", "queue", "sched", "base64", "quopri", "netrc", "getopt", "csv", "calendar", "random",
    "contextlib", "functools", "abc",
)  # fmt: skip

# (function name, prompt: a signature and a docstring, [(args, expected result), ...])
PROMPTS: tuple[tuple[str, str, list[tuple[list[Any], Any]]], ...] = (
    ("add", 'def add(a, b):\n    """Return the sum of a and b."""\n', [([2, 3], 5), ([-1, 1], 0)]),
    ("square", 'def square(x):\n    """Return x squared."""\n', [([3], 9), ([-2], 4)]),
    ("is_even", 'def is_even(n):\n    """Return True if n is even."""\n', [([4], True), ([7], False)]),
    ("first", 'def first(items):\n    """Return the first item of items."""\n', [([[5, 6]], 5), ([["a"]], "a")]),
    ("last", 'def last(items):\n    """Return the last item of items."""\n', [([[5, 6]], 6), ([["a"]], "a")]),
    ("length", 'def length(items):\n    """Return the number of items."""\n', [([[1, 2, 3]], 3), ([[]], 0)]),
    ("maximum", 'def maximum(a, b):\n    """Return the larger of a and b."""\n', [([2, 9], 9), ([4, 1], 4)]),
    ("negate", 'def negate(x):\n    """Return -x."""\n', [([3], -3), ([-1], 1)]),
)


def stdlib_dir() -> Path:
    """The folder of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def code_files(modules: Sequence[str] = CODE_MODULES) -> list[Path]:
    """The paths of ``modules`` inside :func:`stdlib_dir`, in the given order (missing: an error)."""
    if isinstance(modules, str) or not modules:
        raise ValueError(f"modules must be a non-empty sequence of module names, got {modules!r}")
    root = stdlib_dir()
    paths = []
    for name in modules:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"modules must hold plain module names, got {name!r}")
        path = (root / f"{name}.py").resolve()
        if path.parent != root or not path.is_file():
            raise ValueError(f"{name!r} is not a .py file of the standard library in {root}")
        paths.append(path)
    return paths


def load_code_corpus(
    modules: Sequence[str] = CODE_MODULES, *, max_chars: int | None = None, functions: bool = False
) -> str:
    """The source of ``modules`` joined by blank lines, tabs as four spaces, at most ``max_chars``.

    ``functions=True`` keeps only the functions and methods (every ``def`` found by walking each
    module's syntax tree, in the order of ``ast.walk``), each dedented to column 0: the form of
    the chapter's prompts, a signature at the margin and a body indented by four spaces.
    """
    if max_chars is not None:
        check_positive("max_chars", max_chars)
    parts = []
    for path in code_files(modules):
        src = path.read_text(encoding="utf-8").replace("\t", "    ")
        if not functions:
            parts.append(src.strip("\n"))
            continue
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                seg = ast.get_source_segment(src, node, padded=True)
                if seg:
                    parts.append(textwrap.dedent(seg).strip("\n"))
    text = "\n\n\n".join(parts) + "\n"
    return text[:max_chars] if max_chars is not None else text


def docstring_prompts(modules: Sequence[str] = CODE_MODULES, *, max_chars: int = 80) -> list[str]:
    """Prompts in the form of :data:`PROMPTS` made from the corpus itself: for every function of
    ``modules`` with a docstring whose first line is a sentence, its signature at the margin and
    that line as a one-line docstring, at most ``max_chars`` characters in all, each once, in the
    order of :func:`load_code_corpus`. Functions named like a :data:`PROMPTS` entry are left out,
    so that training on these prompts never trains on the chapter's evaluation prompts."""
    check_positive("max_chars", max_chars)
    held_out = {name for name, _, _ in PROMPTS}
    out: list[str] = []
    for path in code_files(modules):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or node.name in held_out:
                continue
            doc = ast.get_docstring(node)
            first = doc.strip().split("\n")[0].strip() if doc else ""
            if not first.endswith(".") or '"""' in first or "\\" in first:
                continue
            prompt = f'def {node.name}({ast.unparse(node.args)}):\n    """{first}"""\n'
            if len(prompt) <= max_chars and prompt not in out:
                out.append(prompt)
    return out


def extract_function(prompt: str, completion: str) -> str:
    """The function a model wrote: the prompt, then the completion's lines up to the first line
    that is not indented (the body ends at the first dedent), trailing blank lines removed.

    If the completion never dedents, the sampling budget ran out mid-body: its last, unfinished
    line is dropped (the budget cut it, not the model), as a stop sequence would have done.
    """
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise TypeError("prompt and completion must be strings")
    lines = completion.split("\n")
    body, ended = [], False
    for line in lines:
        if line.strip() and not line[0].isspace():
            ended = True
            break
        body.append(line)
    if not ended and len(body) > 1:
        body = body[:-1]
    return (prompt + "\n".join(body)).rstrip() + "\n"


CLOSERS = {")": "(", "]": "[", "}": "{"}


def scan_brackets(text: str) -> tuple[list[str], str | None]:
    """The brackets still open at the end of ``text`` and the string it ends inside, if any.

    A small left-to-right scanner of Python's lexical structure: comments (``#`` to the end of
    the line), string literals (``'``, ``"`` and their triple forms, backslash escapes) and the
    three bracket pairs. Returns (open brackets, innermost last; the quote of the string the
    text ends inside, or None). A closing bracket that matches nothing is skipped. Used by
    chapter 13's constrained decoding (:func:`genai_lib.recipes.applications.BracketGuard`).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    stack: list[str] = []
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            if ch == "\n" and len(quote) == 1:
                quote = None  # an unterminated one-line string ends at the line (a syntax error)
            i += 1
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            continue
        if ch in "([{":
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
        i += 1
    return stack, quote


def parses(source: str) -> bool:
    """Whether ``ast.parse`` accepts the source."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "invalid decimal literal"
            ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def has_body(source: str) -> bool:
    """Whether the source's first function has a statement besides its docstring."""
    if not parses(source):
        return False
    tree = ast.parse(source)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if fn is None:
        return False
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    return len(body) > 0


def compiles(source: str) -> bool:
    """Whether ``compile`` accepts the source (a superset of the checks of :func:`parses`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(source, "<generated>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


_RUNNER = r"""
import json, signal, sys
def alarm(*_):
    raise TimeoutError
signal.signal(signal.SIGALRM, alarm)
jobs = json.loads(sys.stdin.read())
out = []
for src, name, cases, limit in jobs:
    ok = False
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        scope = {}
        exec(compile(src, "<generated>", "exec"), scope)
        ok = all(scope[name](*args) == want for args, want in cases)
    except BaseException:
        ok = False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out.append(bool(ok))
sys.stdout.write(json.dumps(out))
"""


def property_checks(jobs: Sequence[tuple[str, str, list]], *, timeout: float = 0.5) -> list[bool]:
    """For each (source, function name, cases): does the function return every expected value?

    Runs all jobs in one child Python process (``-I``: isolated, no user site), each with a
    ``timeout``-second alarm; a crash, exception or time-out counts as a failure.
    """
    if not 0 < timeout <= 10:
        raise ValueError(f"timeout must be in (0, 10] seconds, got {timeout!r}")
    todo = [[src, name, cases, timeout] for src, name, cases in jobs]
    if not todo:
        return []
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _RUNNER],
            input=json.dumps(todo), capture_output=True, text=True, timeout=5 + 2 * timeout * len(todo),
        )  # fmt: skip
        result = json.loads(done.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return [False] * len(todo)
    return [bool(r) for r in result]
