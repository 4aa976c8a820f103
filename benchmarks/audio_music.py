"""Benchmark for chapter 12: WaveNet against linear prediction, a chorale GPT against n-grams.

Trains from scratch (``cache=False``), in full mode, the recipes the chapter-12 notebook calls
(``genai_lib.recipes.audio``):

- a WaveNet (2 stacks of 8 dilated layers, receptive field 512 samples) on 54 Bach chorales of
  music21's corpus rendered at 8 kHz by the chapter's NumPy synthesiser (6 s each) plus 60
  synthetic tone clips; held-out bits per sample on 6 other rendered chorales, positions after
  the first receptive field of each window, against the best linear predictor (orders 8, 16,
  32; Gaussian or Laplace residuals) scored on the same 256 mu-law classes;
- a GPT (chapter 8) on 334 chorales as (voice, pitch, duration) tokens; held-out NLL on the
  other 37 chorales against the best interpolated n-gram (orders 2-8); 20 generated chorales
  (grammar-constrained sampling, 64 notes each) against the held-out ones by the total-variation
  distance of their pitch-class histograms (and of their interval histograms, printed above).

Targets (issue 13): wavenet_bits < lpc_bits; chorale_nll < ngram_nll. Run from the repository
root:

    python benchmarks/audio_music.py

``--cache`` uses (and fills) the recipes' cache entries. The two halves run in two processes
(one thread each). The last line reads ``audio_music: wavenet_bits=<bits/sample>
lpc_bits=<bits/sample> chorale_nll=<nats/token> ngram_nll=<nats/token> pitch_hist_tv=<0..1>
seconds=<s>``. With ``GENAI_FAST=1`` it smoke-tests the script.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from genai_lib.music_metrics import interval_histogram, pitch_class_histogram, total_variation
from genai_lib.recipes.audio import (
    audio_data,
    chorale_data,
    generate_chorale,
    gpt_nll,
    lpc_bits,
    ngram_nll,
    train_chorale_gpt,
    train_wavenet,
    wavenet_bits,
)


def waveform(cache: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    data = audio_data()
    model, _ = train_wavenet(cache=cache)
    rf = model.receptive_field
    out = {"wavenet": wavenet_bits(model, data["test"]), "tones": wavenet_bits(model, data["tones_test"])}
    out["lpc"] = lpc_bits(data, skip=rf)
    print(f"  wavenet: {out}", flush=True)
    return out


def symbolic(cache: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    data = chorale_data()
    model, _ = train_chorale_gpt(cache=cache)
    out: dict[str, Any] = {"gpt": gpt_nll(model, data["test"]), "ngram": ngram_nll(data)}
    gen = torch.Generator().manual_seed(0)
    fake = [generate_chorale(model, 64, generator=gen) for _ in range(20)]
    real = data["test_notes"]
    out["pitch_tv"] = total_variation(pitch_class_histogram(fake), pitch_class_histogram(real))
    out["interval_tv"] = total_variation(interval_histogram(fake), interval_histogram(real))
    print(f"  chorales: {out}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="use and fill the cache (default: train from scratch)")
    args = parser.parse_args()
    start = time.perf_counter()
    chorale_data()  # parse the corpus once, before the two workers read it
    with ProcessPoolExecutor(2) as pool:
        w = pool.submit(waveform, args.cache)
        s = pool.submit(symbolic, args.cache)
        wav, sym = w.result(), s.result()
    seconds = time.perf_counter() - start
    print(
        f"audio_music: wavenet_bits={wav['wavenet']:.3f} lpc_bits={wav['lpc']['bits']:.3f} "
        f"chorale_nll={sym['gpt']:.3f} ngram_nll={sym['ngram']['nll']:.3f} "
        f"pitch_hist_tv={sym['pitch_tv']:.3f} seconds={seconds:.0f}"
    )


if __name__ == "__main__":
    main()
