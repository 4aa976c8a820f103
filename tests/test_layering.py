"""The import rules of genai_lib, read from CONTRIBUTING.md and checked on every module's imports.

Imports inside functions count too (they are edges all the same). The rules live in one place, the
table under "Import rules" in CONTRIBUTING.md; this test parses that table, so changing the rules
means changing the document a contributor reads.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "genai_lib"
MAX_LINES = 450  # "about 400 lines a file at most" (CONTRIBUTING.md)


def read_rules(text: str) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """``(layer -> module patterns, layer -> layers it may import)`` from the Markdown table."""
    section = text.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    patterns: dict[str, list[str]] = {}
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.lstrip().startswith("|") or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        layer = cells[0].strip("*")
        patterns[layer] = re.findall(r"`([^`]+)`", cells[1])
        allowed[layer] = {x.strip() for x in cells[2].split(",") if x.strip()}
    return patterns, allowed


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(name: str, source: str, is_package: bool) -> set[str]:
    """Every genai_lib module imported anywhere in ``source`` (top level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("genai_lib")}


def layer_of(module: str, patterns: dict[str, list[str]]) -> str | None:
    short = module.removeprefix("genai_lib.")
    for layer, pats in patterns.items():
        if any(fnmatch.fnmatch(short, p) for p in pats):
            return layer
    return None


def violations(graph: dict[str, set[str]], patterns, allowed) -> list[str]:
    bad = []
    for mod, targets in sorted(graph.items()):
        src = layer_of(mod, patterns)
        for t in sorted(targets):
            if t == "genai_lib" or t == mod:  # the package itself holds only its docstring and version
                continue
            dst = layer_of(t, patterns)
            if dst not in allowed[src]:
                bad.append(f"{mod} ({src}) imports {t} ({dst}); {src} may import only {sorted(allowed[src])}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def package_graph() -> dict[str, set[str]]:
    graph = {}
    for f in sorted(PKG.rglob("*.py")):
        name = module_name(f)
        graph[name] = imports_of(name, f.read_text(encoding="utf-8"), f.name == "__init__.py")
    modules = set(graph)
    # "from genai_lib.models.vae import VAE" also lists genai_lib.models.vae.VAE: keep real modules only
    return {m: {t for t in ts if t in modules} - {m} for m, ts in graph.items()}


RULES = read_rules((ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))


def test_the_rules_table_is_complete():
    patterns, allowed = RULES
    assert {"base", "models", "core", "recipes"} <= set(patterns), patterns
    for layer, deps in allowed.items():
        assert deps <= set(patterns), f"layer {layer} may import unknown layers {deps - set(patterns)}"
    unassigned = [m for m in package_graph() if m != "genai_lib" and layer_of(m, patterns) is None]
    assert not unassigned, f"modules in no layer of CONTRIBUTING.md's table: {unassigned}"


def test_every_import_follows_the_rules():
    bad = violations(package_graph(), *RULES)
    assert not bad, "import rules broken:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = [c for c in cycles(package_graph()) if not all(m.endswith("__init__") for m in c)]
    assert not found, f"modules that import each other: {found}"


def test_no_module_is_too_long():
    long = {module_name(f): n for f in PKG.rglob("*.py") if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concept (about 400 lines a file at most): {long}"


def test_importing_the_package_does_no_work():
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("genai_lib.models.vae", "def f():\n    from genai_lib.train import fit\n"),  # inside a function
        ("genai_lib.train", "import genai_lib.plotting\n"),
        ("genai_lib.data", "from genai_lib.models import vae\n"),
        ("genai_lib.metrics", "from genai_lib.recipes.vae import train_vae\n"),
    ],
)
def test_the_checker_catches_a_forbidden_import(module, line):
    """Add a forbidden edge to a copy of the graph: the check must report it."""
    graph = package_graph()
    graph[module] = graph[module] | (imports_of(module, line, False) & set(graph))
    assert violations(graph, *RULES), f"the checker missed: {module} <- {line!r}"
