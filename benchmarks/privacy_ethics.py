"""Chapters 16 and 19 in one benchmark: runs ``benchmarks/privacy.py`` and ``benchmarks/ethics.py``
and joins their last lines into the one line the issue asks for.

    python benchmarks/privacy_ethics.py [--jobs 2] [--cache]

``--cache`` passes ``--cache`` to ``privacy.py`` and ``--cached`` to ``ethics.py``: both then load
the models and results their recipes (and the chapter notebooks) cached, and train only what is
missing; without it both train from scratch, which is what the 25-minute budget is about.

The two scripts are independent, so on a CPU they run at the same time in two one-thread
processes (``--jobs 1``: one after the other, each with every thread). ``GENAI_FAST=1``
smoke-tests both (numbers meaningless). Each script's own output is printed as it finishes, then

``privacy_ethics: eps=<e> dp_tstr=<0..1> nodp_tstr=<0..1> mia_auc_overfit=<0..1> mia_auc_dp=<0..1>
mia_tpr1_overfit=<0..1> canary_exposure_nodp=<bits> canary_exposure_dp=<bits> fedavg_acc=<0..1>
central_acc=<0..1> detect_auc=<0..1> detect_cross_auc=<0..1> wm_tpr1_200=<0..1> wm_ppl_ratio=<x>
seconds=<s>``

where ``seconds`` is the wall time of the whole run. Targets (issue 14): at epsilon <= 8 (delta
1e-5) the synthetic-data classifier within 10 points of the non-private one; membership inference
AUC >= 0.6 on the overfit model and <= 0.55 on the DP one; canary exposure falls with DP; FedAvg on
non-IID clients within 3 points of centralised; the text watermark detected >= 95% of the time at
1% false positives with 200 tokens at a perplexity cost <= 10%; at most 25 minutes on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("privacy", "ethics")
KEYS = {
    "privacy": [
        "eps",
        "dp_tstr",
        "nodp_tstr",
        "mia_auc_overfit",
        "mia_auc_dp",
        "mia_tpr1_overfit",
        "canary_exposure_nodp",
        "canary_exposure_dp",
        "fedavg_acc",
        "central_acc",
    ],
    "ethics": ["detect_auc", "detect_cross_auc", "wm_tpr1_200", "wm_ppl_ratio"],
}


def last_line_values(name: str, output: str) -> dict[str, str]:
    """The key=value pairs of a benchmark's last line ``name: k=v k=v ...``."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith(f"{name}: "):
        raise ValueError(f"benchmarks/{name}.py did not end with a '{name}: ...' line; its last line: {lines[-1:]}")
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1][len(name) + 2 :]))


CACHE_FLAG = {"privacy": "--cache", "ethics": "--cached"}


def run_part(name: str, threads: int | None, cache: bool = False) -> tuple[str, str, int]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(HERE / f"{name}.py"), *([CACHE_FLAG[name]] if cache else [])]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return name, p.stdout + p.stderr, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, choices=(1, 2), default=2, help="run the two parts at once (2) or in turn")
    ap.add_argument("--cache", action="store_true", help="reuse the cached models and results (see above)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    threads = 1 if args.jobs == 2 else None
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda n: run_part(n, threads, args.cache), PARTS))
    values: dict[str, str] = {}
    failed = []
    for name, output, rc in results:
        print(f"===== benchmarks/{name}.py (exit {rc})\n{output.rstrip()}", flush=True)
        if rc != 0:
            failed.append(name)
            continue
        got = last_line_values(name, output)
        missing = [k for k in KEYS[name] if k not in got]
        if missing:
            raise SystemExit(f"benchmarks/{name}.py's last line lacks {missing}")
        values.update({k: got[k] for k in KEYS[name]})
    if failed:
        raise SystemExit(f"privacy_ethics: {', '.join(failed)} failed (output above)")
    seconds = time.perf_counter() - t0
    print("privacy_ethics: " + " ".join(f"{k}={values[k]}" for n in PARTS for k in KEYS[n]) + f" seconds={seconds:.0f}")


if __name__ == "__main__":
    main()
