"""Chorales as tokens, the chorale GPT's helpers and the music statistics (chapter 12)."""

import math

import pytest
import torch
import torch.nn.functional as F

from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.music import ChoraleTokenizer, load_chorales, make_contiguous, midi_bytes, transpose
from genai_lib.music_metrics import interval_histogram, pitch_class_histogram, total_variation
from genai_lib.recipes.audio import generate_chorale, gpt_nll, ngram_nll

# a hand-made two-voice fragment: soprano G4 A4 (rest) B4, bass G2 for the whole bar
SMALL = [(0, 67, 0.0, 1.0), (3, 43, 0.0, 4.0), (0, 69, 1.0, 0.5), (0, -1, 1.5, 0.5), (0, 71, 2.0, 2.0)]


def test_tokenizer_round_trip_by_hand():
    tok = ChoraleTokenizer()
    ids = tok.encode(SMALL)
    assert ids[0] == tok.BOS and ids[-1] == tok.EOS and len(ids) == 2 + 3 * len(SMALL)
    assert tok.kind(ids[1:-1]).tolist() == [1, 2, 3] * len(SMALL)
    assert tok.decode(ids) == sorted(SMALL, key=lambda n: (n[2], n[0]))
    # the voice, pitch and duration ids are where the layout says
    assert ids[1:4] == [tok.voice0, tok.pitch0 + 1 + 67 - tok.low, tok.dur0 + 4 - 1]


def test_tokenizer_round_trip_on_real_chorales(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    chorales = load_chorales(2)
    assert len(chorales) == 2 and all(len(c) > 50 for c in chorales)
    assert {v for v, *_ in chorales[0]} == {0, 1, 2, 3}
    tok = ChoraleTokenizer()
    for c in chorales:
        assert tok.decode(tok.encode(c)) == c
    assert load_chorales(2) == chorales  # the second call reads the cache file
    assert (tmp_path / "chorales_2.pt").exists()


def test_encode_refuses_what_it_cannot_round_trip():
    tok = ChoraleTokenizer()
    with pytest.raises(ValueError, match="no notes"):
        tok.encode([])
    with pytest.raises(ValueError, match="not contiguous"):
        tok.encode([(0, 60, 0.0, 1.0), (0, 62, 2.0, 1.0)])  # a gap in the soprano
    with pytest.raises(ValueError, match="duration"):
        tok.encode([(0, 60, 0.0, 1 / 3)])
    with pytest.raises(ValueError, match="pitch"):
        tok.encode([(0, 120, 0.0, 1.0)])
    with pytest.raises(ValueError, match="voice"):
        tok.encode([(4, 60, 0.0, 1.0)])


def test_midi_bytes_read_back():
    from music21 import converter

    data = midi_bytes(SMALL)
    assert data[:4] == b"MThd"
    score = converter.parse(data, format="midi")
    got = sorted(int(n.pitch.midi) for n in score.flatten().notes)
    assert got == sorted(p for _, p, _, _ in SMALL if p >= 0)


def test_transpose_keeps_rests():
    up = transpose(SMALL, 2)
    assert [p for _, p, _, _ in up] == [69, 45, 71, -1, 73] and [n[2:] for n in up] == [n[2:] for n in SMALL]


def test_make_contiguous_fills_gaps_cuts_overlaps_and_keeps_top_notes():
    notes = [(0, 60, 0.0, 1.0), (0, 64, 0.0, 1.0), (0, 62, 2.0, 1.0), (1, 55, 0.0, 2.0), (1, 57, 1.0, 2.0)]
    out = make_contiguous(notes)
    assert [n for n in out if n[0] == 0] == [(0, 64, 0.0, 1.0), (0, -1, 1.0, 1.0), (0, 62, 2.0, 1.0)]
    assert [n for n in out if n[0] == 1] == [(1, 55, 0.0, 2.0), (1, 57, 2.0, 1.0)]
    assert make_contiguous([(0, 60, 0.0, 20.0)]) == [(0, 60, 0.0, 16.0), (0, 60, 16.0, 4.0)]  # split, long note
    assert ChoraleTokenizer().decode(ChoraleTokenizer().encode(out)) == out


def test_decode_strict_and_lenient():
    tok = ChoraleTokenizer()
    ids = tok.encode(SMALL)
    broken = [*ids[:4], ids[5], *ids[4:]]  # a stray pitch token
    with pytest.raises(ValueError, match="grammar"):
        tok.decode(broken)
    assert tok.decode(broken, strict=False) == tok.decode(ids)


def test_grammar_mask():
    tok = ChoraleTokenizer()
    kinds = tok.kind(torch.arange(tok.vocab_size))
    assert torch.equal(tok.grammar_mask(1), kinds == 2)  # after a voice: a pitch
    assert torch.equal(tok.grammar_mask(2), kinds == 3)  # after a pitch: a duration
    after_dur = tok.grammar_mask(3)
    assert after_dur[tok.EOS] and torch.equal(after_dur & (kinds != 0), kinds == 1)


def test_generate_chorale_follows_the_grammar():
    tok = ChoraleTokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    a = generate_chorale(model, 20, generator=torch.Generator().manual_seed(0))
    b = generate_chorale(model, 20, generator=torch.Generator().manual_seed(0))
    assert a == b and 0 < len(a) <= 20
    assert tok.decode(tok.encode(a)) == a  # every generated note is a valid, contiguous note


def test_gpt_nll_equals_cross_entropy_within_one_block():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    ids = torch.randint(0, 20, (25,), generator=torch.Generator().manual_seed(0))
    logits, _ = model(ids[None, :-1])
    want = F.cross_entropy(logits[0], ids[1:]).item()
    assert gpt_nll(model, ids) == pytest.approx(want, rel=1e-5)
    long = torch.randint(0, 20, (200,), generator=torch.Generator().manual_seed(1))
    assert math.isfinite(gpt_nll(model, long))


def test_ngram_baseline_picks_its_best_order():
    tok = ChoraleTokenizer()
    stream = torch.tensor(tok.encode(SMALL) * 20)
    res = ngram_nll({"train": stream, "test": stream, "tokenizer": tok}, orders=(1, 3))
    assert res["order"] == 3 and res["nll"] == min(res["table"].values()) < res["table"]["train:1"]


# --------------------------------------------------------------------------- statistics


def test_histograms_by_hand():
    pc = pitch_class_histogram(SMALL)  # G, G (43 = G2), A, B: rests do not count
    assert pc[7] == pytest.approx(0.5) and pc[9] == pytest.approx(0.25) and pc[11] == pytest.approx(0.25)
    iv = interval_histogram(SMALL)  # soprano 67 -> 69 -> 71: two steps of +2; the bass has one note
    assert iv[12 + 2] == pytest.approx(1.0) and iv.sum() == pytest.approx(1.0)
    wide = interval_histogram([(0, 40, 0.0, 1.0), (0, 80, 1.0, 1.0)])
    assert wide[-1] == 1.0  # +40 semitones is clipped to +12


def test_total_variation():
    p = torch.tensor([0.5, 0.5, 0.0])
    assert total_variation(p, p) == 0.0
    assert total_variation([1.0, 0.0], [0.0, 1.0]) == 1.0
    assert total_variation(p, [0.25, 0.25, 0.5]) == pytest.approx(0.5)
    assert total_variation([2.0, 2.0], [1.0, 1.0]) == 0.0  # normalised first
    with pytest.raises(ValueError, match="same length"):
        total_variation([1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="no sounding notes"):
        pitch_class_histogram([(0, -1, 0.0, 1.0)])


def test_audio_recipes_train_once_then_load_and_the_benchmark_calls_them(monkeypatch, tmp_path):
    import importlib.util
    from pathlib import Path

    from genai_lib.recipes import audio as recipes

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    tiny = recipes.AudioRecipe(chorales=4, held_out=1, seconds=0.5, tones=2, window=256, wn_steps=3,
                               wn_batch=2, gpt_steps=3, block=24, shifts=(0, 1))  # fmt: skip
    monkeypatch.setitem(recipes.AUDIO, "fast", tiny)
    rng = torch.random.get_rng_state()
    wn, info = recipes.train_wavenet(fast=True)
    assert not info["history"].from_cache and torch.equal(torch.random.get_rng_state(), rng)
    wn2, info2 = recipes.train_wavenet(fast=True)
    assert info2["history"].from_cache and torch.equal(wn2.out2.weight, wn.out2.weight)
    gpt, g = recipes.train_chorale_gpt(fast=True)
    gpt2, g2 = recipes.train_chorale_gpt(fast=True)
    assert not g["history"].from_cache and g2["history"].from_cache
    assert torch.equal(gpt2.lm_head.weight, gpt.lm_head.weight)
    data = recipes.chorale_data(fast=True)
    assert len(data["train_aug"]) > len(data["train"])  # the transposed copies
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "audio_music.py"
    spec = importlib.util.spec_from_file_location("bench_audio_music", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.train_wavenet is recipes.train_wavenet and bench.train_chorale_gpt is recipes.train_chorale_gpt
    assert bench.lpc_bits is recipes.lpc_bits and bench.ngram_nll is recipes.ngram_nll
