"""Chapter 12's trained models: a small WaveNet on rendered chorales and tones, and a chorale GPT.

- ``audio_data()``: chorales of music21's corpus rendered at 8 kHz by the NumPy synthesiser
  (the first ``seconds`` of each) plus synthetic tones, mu-law encoded to 256 classes; the last
  chorales are held out. ``train_wavenet()`` trains :class:`~genai_lib.models.wavenet.WaveNet`
  on windows of it; ``lpc_bits()`` fits the linear-prediction baseline on the same training
  audio; ``wavenet_bits(model)`` scores held-out audio (positions after the first receptive
  field of each window, for both models).
- ``chorale_data()``: the chorales as one token stream (:class:`~genai_lib.music.ChoraleTokenizer`),
  the last 10% of chorales held out. ``train_chorale_gpt()`` trains chapter 8's GPT on it;
  ``ngram_nll()`` is the best interpolated n-gram (orders 2-8) on the same held-out stream.
- ``generate_chorale(model, n_notes)``: sampling constrained to the (voice, pitch, duration)
  grammar -> notes; ``render_chorale(notes)``: -> waveform (8 kHz). Chapter 13 can use both.

Fast mode (``GENAI_FAST=1``): a few chorales, short clips, few steps; the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genai_lib.audio import RATE, render_notes, synth_tones, windows
from genai_lib.data import make_loader
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.models.lpc import LinearPredictor, LPCConfig
from genai_lib.models.ngram import NGram, NGramConfig
from genai_lib.models.wavenet import WaveNet, WaveNetConfig, mu_law_encode
from genai_lib.music import ChoraleTokenizer, Note, load_chorales, transpose
from genai_lib.recipes.language import train_gpt
from genai_lib.train_cache import cached, load_or_train
from genai_lib.utils import eval_mode, fast_mode, model_device

__all__ = [
    "AudioRecipe",
    "AUDIO",
    "WAVENET_CFG",
    "audio_data",
    "train_wavenet",
    "wavenet_bits",
    "lpc_bits",
    "chorale_data",
    "train_chorale_gpt",
    "gpt_nll",
    "ngram_nll",
    "generate_chorale",
    "render_chorale",
]


@dataclass(frozen=True)
class AudioRecipe:
    """Data sizes and budgets of chapter 12."""

    chorales: int  # chorales parsed from the corpus
    held_out: int  # of which the last ones are held out (audio and tokens)
    seconds: float  # seconds of each chorale rendered for the WaveNet
    tones: int  # synthetic tone clips (2 s each) added to the WaveNet's training audio
    window: int  # WaveNet training window, samples
    wn_steps: int  # WaveNet optimizer steps
    wn_batch: int  # windows per WaveNet batch
    gpt_steps: int  # chorale GPT optimizer steps
    block: int  # GPT context, tokens (3 per note)
    shifts: tuple[int, ...] = (0,)  # transpositions (semitones) of the training chorales


AUDIO = {
    "full": AudioRecipe(chorales=371, held_out=37, seconds=6.0, tones=60, window=2048, wn_steps=1200,
                        wn_batch=4, gpt_steps=1000, block=144, shifts=(-3, -2, -1, 0, 1, 2, 3)),
    "fast": AudioRecipe(chorales=16, held_out=3, seconds=1.5, tones=4, window=1024, wn_steps=40,
                        wn_batch=4, gpt_steps=40, block=96, shifts=(-1, 0, 1)),
}  # fmt: skip
WAVENET_CFG = {
    "full": WaveNetConfig(n_layers=8, stacks=2, channels=32, skip_channels=64),
    "fast": WaveNetConfig(n_layers=6, stacks=1, channels=16, skip_channels=32),
}
AUDIO_CHORALES = 60  # chorales rendered for the WaveNet in full mode (rendering all 371 adds nothing)


def _mode(fast: bool | None) -> str:
    return "fast" if (fast_mode() if fast is None else fast) else "full"


def render_chorale(notes: list[Note], *, seconds: float | None = None, rate: int = RATE) -> np.ndarray:
    """A chorale (or generated notes) as a float32 waveform at ``rate`` (the chapter's synthesiser)."""
    return render_notes(notes, rate=rate, max_seconds=seconds)


def audio_data(fast: bool | None = None) -> dict[str, torch.Tensor]:
    """Mu-law class ids: ``train`` (W, T) windows, ``test`` (W, T) held-out chorale windows,
    ``tones_test`` (W, T) held-out tone windows. Cached as ``audio_data``."""
    r, mode = AUDIO[_mode(fast)], _mode(fast)
    n = min(r.chorales, AUDIO_CHORALES) if mode == "full" else r.chorales

    def compute() -> dict[str, Any]:
        chorales = load_chorales(r.chorales)
        k = max(1, round(n * r.held_out / r.chorales))
        train_c, test_c = chorales[: n - k], chorales[r.chorales - k :]
        clip = [render_chorale(c, seconds=r.seconds) for c in train_c]
        tones = synth_tones(r.tones + max(1, r.tones // 5), 2.0, generator=torch.Generator().manual_seed(1))
        train_tones, test_tones = tones[: r.tones], tones[r.tones :]
        T = r.window
        cut = lambda xs, hop: torch.cat([windows(x, T, hop) for x in xs])  # noqa: E731
        test = [render_chorale(c, seconds=r.seconds) for c in test_c]
        return {
            "train": mu_law_encode(cut([*clip, *train_tones], T // 2)),
            "test": mu_law_encode(cut(test, T)),
            "tones_test": mu_law_encode(cut(list(test_tones), T)),
        }

    return cached("audio_data", {"recipe": r, "n": n, "rate": RATE, "v": 1}, compute)


def train_wavenet(
    *, fast: bool | None = None, device: Any = None, progress: bool = False, cache: bool = True
) -> tuple[WaveNet, dict[str, Any]]:
    """The chapter's WaveNet trained on :func:`audio_data`'s windows -> (model, info with ``loss`` curve)."""
    mode = _mode(fast)
    r, cfg = AUDIO[mode], WAVENET_CFG[mode]
    data = audio_data(fast)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = WaveNet(cfg).to(device or "cpu")
    loader = make_loader(data["train"], batch_size=r.wn_batch, generator=torch.Generator().manual_seed(0))
    kw = {"steps": r.wn_steps, "lr": 3e-3, "lr_schedule": "cosine", "grad_clip": 1.0, "progress": progress}
    if cache:
        hist = load_or_train(model, loader, name=f"wavenet_{mode}", key={"recipe": r, "v": 1}, **kw)
    else:
        from genai_lib.train import fit

        hist = fit(model, loader, **kw)
    model.eval()
    return model, {"loss": hist["loss"], "history": hist}


@torch.no_grad()
def wavenet_bits(model: WaveNet, q: torch.Tensor, *, skip: int | None = None, batch: int = 8) -> float:
    """Held-out bits per sample of class-id windows q (W, T), over positions t >= skip
    (default: the receptive field, so every scored sample sees a full past)."""
    skip = model.receptive_field if skip is None else skip
    if not 0 < skip < q.shape[1]:
        raise ValueError(f"skip must be in (0, {q.shape[1]}), got {skip}")
    device, total, count = model_device(model), 0.0, 0
    with eval_mode(model):
        for i in range(0, q.shape[0], batch):
            x = q[i : i + batch].to(device)
            logits = model(x)[:, :, skip - 1 : -1]  # position t-1 predicts sample t
            nll = F.cross_entropy(logits.float(), x[:, skip:], reduction="sum")
            total, count = total + float(nll), count + x[:, skip:].numel()
    return total / count / math.log(2)


def lpc_bits(data: dict[str, torch.Tensor], *, skip: int, orders: tuple[int, ...] = (8, 16, 32)) -> dict[str, Any]:
    """The linear-prediction baseline: for each order and residual density, fit on ``data['train']``,
    score ``data['test']`` (positions t >= skip). Returns the best bits and the whole table."""
    table = {}
    for order in orders:
        for noise in ("gaussian", "laplace"):
            lpc = LinearPredictor(LPCConfig(order=order, noise=noise)).fit(data["train"])
            table[f"{noise}{order}"] = lpc.bits(data["test"], skip=skip)
    best = min(table, key=table.get)
    return {"bits": table[best], "best": best, "table": table}


def chorale_data(fast: bool | None = None) -> dict[str, Any]:
    """Token streams: ``train`` and ``test`` (1-D long), ``train_aug`` (the training chorales in
    every key of the recipe's ``shifts`` that stays in the tokenizer's range), the ``tokenizer``,
    and the notes."""
    r = AUDIO[_mode(fast)]
    chorales = load_chorales(r.chorales)
    tok = ChoraleTokenizer()
    train_c, test_c = chorales[: -r.held_out], chorales[-r.held_out :]
    in_range = lambda c: all(p < 0 or tok.low <= p <= tok.high for _, p, _, _ in c)  # noqa: E731
    aug = [t for k in r.shifts for c in train_c if in_range(t := transpose(c, k))]
    stream = lambda cs: torch.tensor([i for c in cs for i in tok.encode(c)])  # noqa: E731
    return {"train": stream(train_c), "test": stream(test_c), "train_aug": stream(aug), "tokenizer": tok,
            "test_notes": test_c, "train_notes": train_c}  # fmt: skip


def gpt_config(vocab_size: int, fast: bool | None = None) -> GPTConfig:
    r = AUDIO[_mode(fast)]
    if _mode(fast) == "fast":
        return GPTConfig(vocab_size=vocab_size, block_size=r.block, n_layer=2, n_head=2, n_embd=32)
    return GPTConfig(vocab_size=vocab_size, block_size=r.block, n_layer=3, n_head=4, n_embd=96, dropout=0.1)


def train_chorale_gpt(
    *, fast: bool | None = None, device: Any = None, progress: bool = False, cache: bool = True
) -> tuple[GPT, dict[str, Any]]:
    """Chapter 8's GPT trained on the chorale token stream -> (model, info)."""
    mode = _mode(fast)
    r, data = AUDIO[mode], chorale_data(fast)
    cfg = gpt_config(data["tokenizer"].vocab_size, fast)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(cfg).to(device or "cpu")
    kw = {"steps": r.gpt_steps, "batch_size": 16, "lr": 1e-3 if mode == "full" else 3e-3, "warmup": 50,
          "generator": torch.Generator().manual_seed(0), "progress": progress}  # fmt: skip
    name = f"chorale_gpt_{mode}" if cache else None
    hist = train_gpt(model, data["train_aug"], name=name, key={"recipe": r, "v": 2}, **kw)
    model.eval()
    return model, {"history": hist, "tokenizer": data["tokenizer"]}


@torch.no_grad()
def gpt_nll(model: GPT, ids: torch.Tensor) -> float:
    """Mean next-token NLL (nats) of a 1-D stream, in windows of the model's context that overlap
    by half (each token after the first window is scored with at least half a context)."""
    T = model.cfg.block_size
    device, total, count, pos = model_device(model), 0.0, 0, 0
    with eval_mode(model):
        for s in range(0, len(ids) - 1, T // 2):
            chunk = ids[s : s + T + 1].to(device)
            if len(chunk) < 2:
                break
            logits, _ = model(chunk[None, :-1])
            nll = F.cross_entropy(logits[0].float(), chunk[1:], reduction="none")
            new = nll[max(0, pos - s) :]  # tokens not scored by the previous window
            total, count = total + float(new.sum()), count + new.numel()
            pos = s + len(chunk) - 1
            if s + T + 1 >= len(ids):
                break
    return total / count


def ngram_nll(data: dict[str, Any], orders: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)) -> dict[str, Any]:
    """The interpolated (Witten-Bell) n-gram baseline at several orders, counted on the training
    stream and on its transposed copies (``train_aug``, when given), scored on the held-out
    stream; the best of all is the baseline (chosen on the test stream: generous to it)."""
    V = data["tokenizer"].vocab_size
    table = {}
    for src in ("train", "train_aug"):
        if src in data:
            for n in orders:
                table[f"{src}:{n}"] = NGram(NGramConfig(order=n, vocab_size=V)).fit(data[src]).nll(data["test"])
    best = min(table, key=table.get)
    return {"nll": table[best], "order": int(best.split(":")[1]), "data": best.split(":")[0], "table": table}


def generate_chorale(
    model: GPT,
    n_notes: int = 48,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[Note]:
    """Sample about ``n_notes`` notes (fewer if EOS comes first) after BOS, each token masked to
    what the grammar allows after the previous one -> notes (voice, pitch, onset, duration)."""
    tok = ChoraleTokenizer()
    masks = torch.stack([tok.grammar_mask(k) for k in range(4)]).to(model_device(model))

    def grammar(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kind = tok.kind(ids[:, -1]).to(logits.device)  # (B,)
        return logits.masked_fill(~masks[kind], float("-inf"))

    prompt = torch.tensor([tok.BOS])
    ids = model.sample(3 * n_notes, prompt=prompt, generator=generator, temperature=temperature,
                       logits_processor=grammar)  # fmt: skip
    return tok.decode(ids, strict=False)
