"""Benchmark for chapter 5: StyleGAN in miniature on MNIST, beside chapter 3's DCGAN.

The model is ``genai_lib.recipes.stylegan.STYLEGAN_MNIST`` trained by ``train_stylegan`` (what
notebook 5 calls): loaded from the shared cache when the notebook trained it, else trained now
(``--fresh`` always trains, uncached); the training seconds printed are the run's own. The
DCGAN is chapter 3's ``train_gan("dcgan")`` from the same cache (trained if absent; its time is
printed). Scores, with the course's MNIST classifier:

- ``fid``, ``dcgan``: classifier-FID of 1,000 samples (EMA generator, psi = 1) against the 1,000
  held-out digits, the protocol of ``benchmarks/gan_mnist.py``;
- ``mix_coarse``: over 1,000 pairs of latents whose images show different digits, how often the
  digit of the mixed image (layers before crossover ``COARSE`` from the first latent, the rest
  from the second) is the coarse source's; the rate at every crossover is printed;
- ``ppl_w``, ``ppl_z``: perceptual path length in W and in Z (1,000 pairs, eps 1e-3, distances in
  the classifier's feature space);
- ``prec_psi*``, ``rec_psi*``: precision and recall at truncation psi = 0.5 and 1 (the whole
  sweep is printed).

Targets: fid <= dcgan; mix_coarse >= 0.8; ppl_w < ppl_z; precision rises and recall falls as psi
goes 1 -> 0.5; at most 25 minutes on the 2-core machine. Run from the repository root:

    python benchmarks/stylegan_mnist.py

The last line reads ``stylegan_mnist: fid=<fid> dcgan=<fid> mix_coarse=<0..1> ppl_w=<x>
ppl_z=<x> prec_psi05=<x> rec_psi05=<x> prec_psi1=<x> rec_psi1=<x> seconds=<s>``.
``GENAI_FAST=1`` smoke-tests the script (tiny budgets; numbers meaningless).
"""

from __future__ import annotations

import argparse
import time

import torch

from genai_lib.recipes.classifier import mnist_classifier
from genai_lib.recipes.stylegan import (
    COARSE,
    STYLEGAN_MNIST,
    dcgan_quality,
    mixing_rates,
    path_lengths,
    quality,
    train_stylegan,
    truncation_sweep,
)
from genai_lib.utils import fast_mode, get_device

PSIS = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0)  # the truncation sweep


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true", help="train the StyleGAN now, without the cache")
    args = ap.parse_args(argv)
    device = get_device()
    if device.type == "cpu":
        torch.set_num_threads(1)
    print(f"device: {device}, fast mode: {fast_mode()}, fresh: {args.fresh}", flush=True)
    t0 = time.perf_counter()
    clf = mnist_classifier(device=device)
    print(f"classifier: test accuracy {clf.test_accuracy:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    t1 = time.perf_counter()
    dq, dh = dcgan_quality(clf, device=device)
    src = "cache" if dh.from_cache else "trained now"
    print(
        f"dcgan: FID {dq['fid']:.2f} precision {dq['precision']:.3f} recall {dq['recall']:.3f} "
        f"[chapter 3's recipe, {src}, training {dh.seconds:.0f} s; {time.perf_counter() - t1:.0f} s here]",
        flush=True,
    )
    t2 = time.perf_counter()
    model, hist, _ = train_stylegan(device=device, cache=not args.fresh)
    src = "cache" if hist.from_cache else "trained now"
    print(
        f"stylegan: {STYLEGAN_MNIST.steps if not fast_mode() else STYLEGAN_MNIST.fast_steps} steps, "
        f"{src}, training {hist.seconds:.0f} s ({time.perf_counter() - t2:.0f} s here)",
        flush=True,
    )
    q = quality(model, clf)
    print(f"stylegan: FID {q['fid']:.2f} KID {q['kid']:.4f} precision {q['precision']:.3f} recall {q['recall']:.3f}")
    mix = mixing_rates(model, clf)
    for k, c, f in zip(mix["crossover"], mix["coarse"], mix["fine"], strict=True):
        print(f"mixing crossover {k}: digit follows coarse {c:.3f}, fine {f:.3f} ({mix['pairs']} pairs)")
    ppl = path_lengths(model, clf)
    print(f"path length: W {ppl['w']:.1f}, Z {ppl['z']:.1f} (n={ppl['n']}, eps={ppl['eps']})")
    sweep = truncation_sweep(model, clf, PSIS)
    for p, fid, pr, rc in zip(sweep["psi"], sweep["fid"], sweep["precision"], sweep["recall"], strict=True):
        print(f"truncation psi {p:.2f}: FID {fid:7.2f} precision {pr:.3f} recall {rc:.3f}")
    at = {p: i for i, p in enumerate(sweep["psi"])}
    p05, r05 = sweep["precision"][at[0.5]], sweep["recall"][at[0.5]]
    p1, r1 = sweep["precision"][at[1.0]], sweep["recall"][at[1.0]]
    coarse = mix["coarse"][mix["crossover"].index(COARSE)]
    total = time.perf_counter() - t0
    print(
        f"targets: fid <= dcgan: {q['fid'] <= dq['fid']}; mix_coarse >= 0.8: {coarse >= 0.8}; "
        f"ppl_w < ppl_z: {ppl['w'] < ppl['z']}; precision rises 1 -> 0.5: {p05 > p1}; recall falls: {r05 < r1}; "
        f"<= 25 min: {total <= 1500}"
    )
    print(
        f"stylegan_mnist: fid={q['fid']:.2f} dcgan={dq['fid']:.2f} mix_coarse={coarse:.3f} ppl_w={ppl['w']:.1f} "
        f"ppl_z={ppl['z']:.1f} prec_psi05={p05:.3f} rec_psi05={r05:.3f} prec_psi1={p1:.3f} rec_psi1={r1:.3f} "
        f"seconds={total:.0f}"
    )


if __name__ == "__main__":
    main()
