"""Every command the README shows, run exactly as written on an empty cache (issue 17, section 1).

A new user copies commands from the README into a fresh clone; a warm cache once hid a crash
there (two benchmark workers raced on the MNIST cache). So each command in a ```bash block of
README.md runs here as written, from the repository root, with ``GENAI_FAST=1`` (benchmarks
smoke-test in seconds) and a cache folder of its own that starts empty. The commands of one
block that is a sequence (preparing a class: prepare, list, export, import) share one cache and
run in order. Commands that cannot finish in a few minutes, or that are this test suite itself,
are listed in ``NOT_RUN`` with the reason; a README command that is neither run nor listed fails
the test, so a new command cannot slip past. The runs go two at a time (the machine has 2 cores).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LIMIT_S = 900  # per command; the slowest benchmark takes about 2 minutes in fast mode

NOT_RUN = {
    "bash scripts/book.sh": "builds the whole book in full mode (about an hour on 2 cores from an empty "
    "cache); tests/test_tools.py builds the book and checks it has no warning",
    "bash scripts/test.sh": "this is the test command: it runs this file",
    ".venv/bin/jupyter lab": "a server that runs until it is stopped",
}
# Without CUDA (or without a python3 that has torch) this command must refuse with one of these
# messages and a non-zero status; with CUDA it is the GPU run itself.
NEEDS_CUDA = {"bash benchmarks/gpu_check.sh": r"gpu_check: (no CUDA device visible|this python cannot import torch)"}
# What a command's output must show, besides a zero exit status.
EXPECT = {
    "-m genai_lib prepare": "already had",
    "-m genai_lib cache list": "full mode:",
    "-m genai_lib cache export": "wrote ",
    "-m genai_lib cache import": "imported ",
}


def readme_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block, comments and blank lines dropped."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        cmds = [line.split("  #")[0].strip() for line in body.splitlines()]
        blocks.append([c for c in cmds if c and not c.startswith("#")])
    return [b for b in blocks if b]


def test_readme_blocks_are_read():
    blocks = readme_blocks("x\n```bash\na b  # c\n\n# only a comment\nd\n```\n```text\nno\n```\n")
    assert blocks == [["a b", "d"]]


def _python(cmd: str) -> str:
    """The command as written; where this checkout has no .venv (a worktree), this Python runs it."""
    if cmd.startswith(".venv/bin/python ") and not (ROOT / ".venv/bin/python").exists():
        return shlex.quote(sys.executable) + cmd[len(".venv/bin/python") :]
    return cmd


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run_block(block: list[str]) -> list[dict]:
    """Run one block's commands; a sequence shares one empty cache, the others get one each."""
    sequence = any("-m genai_lib prepare" in c for c in block)
    shared = tempfile.mkdtemp(prefix="genai_readme_")
    results = []
    for cmd in block:
        if cmd in NOT_RUN:
            continue
        if cmd in NEEDS_CUDA and _has_cuda():
            results.append({"cmd": cmd, "rc": "cuda", "out": "", "err": ""})
            continue
        env = dict(os.environ, GENAI_FAST="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env["GENAI_CACHE_DIR"] = shared if sequence else tempfile.mkdtemp(prefix="genai_readme_")
        try:
            p = subprocess.run(
                _python(cmd), shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT_S
            )
            results.append({"cmd": cmd, "rc": p.returncode, "out": p.stdout, "err": p.stderr})
        except subprocess.TimeoutExpired as exc:
            results.append({"cmd": cmd, "rc": "timeout", "out": str(exc.stdout), "err": str(exc.stderr)})
        if results[-1]["rc"] != 0 and sequence:
            break  # the rest of a sequence depends on this step
    return results


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    # benchmarks are independent: one task each; a sequence stays one task
    tasks = []
    for block in blocks:
        if any("-m genai_lib prepare" in c for c in block):
            tasks.append(block)
        else:
            tasks += [[c] for c in block if c not in NOT_RUN]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = [r for rs in pool.map(_run_block, tasks) for r in rs]
    finally:  # an archive a command wrote outside the cache
        for cmd in (c for b in blocks for c in b if "cache export" in c):
            Path(shlex.split(cmd)[-1]).unlink(missing_ok=True)
    return {r["cmd"]: r for r in done}


def _readme_commands() -> list[str]:
    return [c for b in readme_blocks(README.read_text(encoding="utf-8")) for c in b]


def test_every_readme_command_is_run_or_listed_with_a_reason():
    cmds = _readme_commands()
    assert len(cmds) >= 10, f"expected the README's commands, found {cmds}"
    assert set(NOT_RUN) <= set(cmds), f"NOT_RUN lists commands the README no longer shows: {set(NOT_RUN) - set(cmds)}"
    runnable = [c for c in cmds if c not in NOT_RUN]
    unknown = [c for c in runnable if not c.startswith((".venv/bin/python ", "bash benchmarks/"))]
    assert not unknown, f"README commands this test does not know how to run: {unknown}"


def _tail(r: dict) -> str:
    return f"status {r['rc']}\n--- stdout (end)\n{r['out'][-2500:]}\n--- stderr (end)\n{r['err'][-2500:]}"


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in _readme_commands() if c not in NOT_RUN])
def test_readme_command_works_on_an_empty_cache(cmd, runs):
    assert cmd in runs, f"{cmd!r} did not run: an earlier step of its sequence failed"
    r = runs[cmd]
    if cmd in NEEDS_CUDA:
        if r["rc"] == "cuda":
            pytest.skip("CUDA is present: benchmarks/gpu_check.sh is the GPU run itself (minutes), not run here")
        assert r["rc"] != 0 and re.search(NEEDS_CUDA[cmd], r["out"] + r["err"]), _tail(r)
        return
    assert r["rc"] == 0, f"{cmd}\n{_tail(r)}"
    m = re.search(r"\bbenchmarks/(\w+)\.(?:py|sh)\b", cmd)
    if m:  # a benchmark prints one last line of key=value results under its own name
        last = [line for line in r["out"].splitlines() if line.strip()][-1]
        assert re.fullmatch(rf"{m.group(1)}: (\S+=\S+)( \S+=\S+)*", last.strip()), f"last line: {last!r}"
    for key, phrase in EXPECT.items():
        if key in cmd:
            assert phrase in r["out"], f"{cmd}: expected {phrase!r} in its output\n{_tail(r)}"
