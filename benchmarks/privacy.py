"""Benchmark for chapter 16: privacy/utility of DP-SGD, membership inference, canaries, FedAvg.

Trains from scratch (``cache=False``), in full mode, the recipes the chapter-16 notebook calls:

- the class-conditional VAE on the 4,000 MNIST training digits without privacy and by DP-SGD at
  epsilon 1, 3 and 8 (delta 1e-5) (``genai_lib.recipes.privacy.train_dp_cvae``), each scored
  by train-synthetic-test-real accuracy (an MLP trained only on 4,000 of its labelled samples,
  tested on the 1,000 real test digits) and classifier-FID; the same from random weights
  ("plain") and pretrained on the public UCI digits ("public", ``public=True``), and the public
  model alone;
- DP-MERF (``train_dp_merf``): a generator matched to the digits' random-feature mean embedding,
  released once by the Gaussian mechanism at epsilon 1, 3 and 8 and without noise, scored the
  same way. ``dp_tstr`` is the best private generator at epsilon 8 (DP-MERF or the DP-SGD CVAE,
  whichever scores higher) and ``nodp_tstr`` the best non-private one (any of the four:
  CVAE plain or public, MERF, at no privacy), the stricter comparison; ``dpsgd_tstr`` and
  ``merf_tstr`` are the two private generators at epsilon 8, each printed with its curve;
- membership inference against an MLP overfit on 500 digits and its DP twin at epsilon 8 (and 1
  and 3, printed), on a class-stratified pool: the loss-threshold attack and LiRA with shadow
  models (``membership``); the AUC reported is the stronger of the two attacks in each run
  (max of the two), the TPR at 1% FPR is LiRA's;
- canary exposure in a character GPT trained without and with DP-SGD (``recipes.canary``);
- FedAvg on ten non-IID clients (two digits each) against central training (``recipes.federated``).

Targets (issue 14): dp_tstr at epsilon 8 within 10 points of nodp_tstr; mia_auc_overfit >= 0.6
and mia_auc_dp <= 0.55; canary_exposure_dp < canary_exposure_nodp; fedavg_acc within 3 points
of central_acc. Run from the repository root:

    python benchmarks/privacy.py

``--cache`` uses the recipes' cache entries (and fills them, so that the notebook then loads the
same models) instead of training from scratch. It runs two processes (one thread each): the
generators in one, the rest in the other. The last line reads ``privacy: eps=<e> dp_tstr=...
nodp_tstr=... mia_auc_overfit=... mia_auc_dp=... mia_tpr1_overfit=... canary_exposure_nodp=<bits>
canary_exposure_dp=<bits> fedavg_acc=... central_acc=... dpsgd_tstr=... merf_tstr=...
seconds=<s>``. With ``GENAI_FAST=1`` it smoke-tests the script.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from genai_lib.recipes.canary import exposure_of, extract, train_canary_gpt
from genai_lib.recipes.federated import central_run, federated_run
from genai_lib.recipes.privacy import (
    EPSILONS,
    fid,
    membership,
    pretrain_public_cvae,
    train_dp_cvae,
    train_dp_merf,
    tstr,
)


def generators(cache: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {"real_tstr": tstr(None)}
    t0 = time.perf_counter()
    pub = pretrain_public_cvae() if cache else _fresh(pretrain_public_cvae)
    out["public_only"] = {"tstr": tstr(pub), "fid": fid(pub), "seconds": time.perf_counter() - t0}
    print(f"  generator public only (UCI digits, no MNIST): {out['public_only']}", flush=True)
    for public in (False, True):
        for eps in (None, *EPSILONS):
            t0 = time.perf_counter()
            model, info = train_dp_cvae(eps, public=public, cache=cache)
            out[public, eps] = {"tstr": tstr(model), "fid": fid(model), "eps": info["epsilon"],
                                "sigma": info["noise_multiplier"], "seconds": time.perf_counter() - t0}  # fmt: skip
            print(f"  generator {'public' if public else 'plain'} eps={eps}: {out[public, eps]}", flush=True)
    for eps in (None, *EPSILONS):
        t0 = time.perf_counter()
        model, info = train_dp_merf(eps, cache=cache)
        out["merf", eps] = {"tstr": tstr(model), "fid": fid(model), "eps": info["epsilon"],
                            "sigma": info["noise_multiplier"], "seconds": time.perf_counter() - t0}  # fmt: skip
        print(f"  generator DP-MERF eps={eps}: {out['merf', eps]}", flush=True)
    return out


def _fresh(fn: Any) -> Any:
    """``fn()`` with its cache entry recomputed (the public model has no ``cache=False``)."""
    import os
    import tempfile

    old = os.environ.get("GENAI_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GENAI_CACHE_DIR"] = tmp
        try:
            return fn()
        finally:
            if old is None:
                os.environ.pop("GENAI_CACHE_DIR")
            else:
                os.environ["GENAI_CACHE_DIR"] = old


def attacks(cache: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    for dp in (False, True):
        r = membership(dp, cache=cache)
        out[f"mia_{dp}"] = {k: r[k] for k in ("auc_loss", "auc_lira", "tpr1_loss", "tpr1_lira", "train_acc", "test_acc",
                                              "epsilon")}  # fmt: skip
        print(f"  membership dp={dp}: {out[f'mia_{dp}']}", flush=True)
    for e in EPSILONS[:-1]:
        r = membership(True, eps=e, cache=cache)
        print(f"  membership dp=True eps={e:g}: auc_loss={r['auc_loss']:.4f} auc_lira={r['auc_lira']:.4f}", flush=True)
    for dp in (False, True):
        model, info = train_canary_gpt(dp, cache=cache)
        bits, _ = exposure_of(model, info["tokenizer"])
        out[f"canary_{dp}"] = {"exposure": bits, "extracted": extract(model, info["tokenizer"]),
                               "epsilon": info["epsilon"], "loss": info["loss"][-1]}  # fmt: skip
        print(f"  canary dp={dp}: {out[f'canary_{dp}']}", flush=True)
    out["fed"] = federated_run(cache=cache)["acc"][-1]
    out["dpfed"] = federated_run(dp=True, cache=cache)["acc"][-1]
    out["central"] = central_run(cache=cache)["acc"][-1]
    print(f"  fedavg={out['fed']:.4f} dp_fedavg={out['dpfed']:.4f} central={out['central']:.4f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="use and fill the cache (default: train from scratch)")
    args = parser.parse_args()
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        gen_f, att_f = pool.submit(generators, args.cache), pool.submit(attacks, args.cache)
        g, a = gen_f.result(), att_f.result()
    eps = max(EPSILONS)
    mo, md = a["mia_False"], a["mia_True"]
    print(f"  real-data classifier: {g['real_tstr']:.4f}")
    for kind in (False, True, "merf"):
        curve = " ".join(f"eps{e:g}={g[kind, e]['tstr']:.4f}" for e in EPSILONS)
        label = {False: "CVAE plain", True: "CVAE public", "merf": "DP-MERF"}[kind]
        print(f"  tstr {label}: {curve} nodp={g[kind, None]['tstr']:.4f}")
    print(f"  tstr public only: {g['public_only']['tstr']:.4f}")
    dpsgd, merf = g[True, eps]["tstr"], g["merf", eps]["tstr"]
    nodp = max(g[kind, None]["tstr"] for kind in (False, True, "merf"))
    print(
        f"privacy: eps={eps:g} dp_tstr={max(dpsgd, merf):.4f} nodp_tstr={nodp:.4f} "
        f"mia_auc_overfit={max(mo['auc_loss'], mo['auc_lira']):.4f} "
        f"mia_auc_dp={max(md['auc_loss'], md['auc_lira']):.4f} "
        f"mia_tpr1_overfit={mo['tpr1_lira']:.4f} canary_exposure_nodp={a['canary_False']['exposure']:.2f} "
        f"canary_exposure_dp={a['canary_True']['exposure']:.2f} fedavg_acc={a['fed']:.4f} "
        f"central_acc={a['central']:.4f} dpsgd_tstr={dpsgd:.4f} merf_tstr={merf:.4f} "
        f"seconds={time.perf_counter() - start:.0f}"
    )


if __name__ == "__main__":
    main()
