"""Bach chorales as notes and as tokens (pitch, duration, voice), from music21's bundled corpus.

Chapter 12 of the course. music21 ships 371 four-part chorales that parse offline
(``music21.corpus.chorales.Iterator``). :func:`load_chorales` reads them into note lists
``(voice, pitch, onset, duration)`` (voice 0-3 = soprano, alto, tenor, bass; MIDI pitch, -1 for
a rest; onset and duration in quarter notes on a sixteenth-note grid), with each voice made
contiguous (gaps become rests, a chord keeps its top note), and caches them
(``genai_lib.train_cache.cached`` is a core function, so the data layer keeps its own small
cache file: ``chorales_<n>.pt`` under :func:`genai_lib.utils.cache_root`).

:class:`ChoraleTokenizer` turns a chorale into one token stream: ``BOS``, then for every note in
order of onset (ties broken by voice) three tokens, *voice*, *pitch*, *duration*, then ``EOS``.
Onsets are not stored: each voice's notes follow each other, so decoding adds up durations per
voice and the round trip is exact (tests/test_music.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genai_lib._checks import check_positive
from genai_lib.utils import atomic_write, cache_root

__all__ = [
    "Note",
    "VOICES",
    "ChoraleTokenizer",
    "load_chorales",
    "make_contiguous",
    "midi_bytes",
    "transpose",
    "N_CHORALES",
]

Note = tuple[int, int, float, float]  # (voice, pitch or -1, onset, duration), quarter notes
VOICES = ("soprano", "alto", "tenor", "bass")
N_CHORALES = 371  # chorales in music21's corpus that parse offline
GRID = 4  # steps per quarter note: a sixteenth-note grid
MAX_STEPS = 64  # longest duration token: 16 quarter notes (longer notes are split)


def make_contiguous(notes: Sequence[Note]) -> list[Note]:
    """Snap to the sixteenth grid and make each voice a gap-free succession (rests fill gaps,
    overlaps are cut, chords keep the top note, notes longer than 16 quarters are split); sorted
    by (onset, voice)."""
    by_voice: dict[int, list[tuple[int, int, int]]] = {}
    for v, p, o, d in notes:
        s, e = round(float(o) * GRID), round((float(o) + float(d)) * GRID)
        if e > s:
            by_voice.setdefault(int(v), []).append((s, -int(p) if p >= 0 else 1, e))
    out: list[Note] = []
    for v, items in by_voice.items():
        items.sort()  # by start, then highest pitch first (chords: the top note)
        t = 0
        for s, neg_p, e in items:
            if e <= t:
                continue
            if s > t:
                out += _split(v, -1, t, s)
            out += _split(v, -neg_p if neg_p <= 0 else -1, max(s, t), e)
            t = e
    return sorted(out, key=lambda n: (n[2], n[0]))


def transpose(notes: Sequence[Note], k: int) -> list[Note]:
    """The notes moved by ``k`` semitones (rests stay rests): data augmentation by key."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int number of semitones, got {type(k).__name__}")
    return [(v, p if p < 0 else p + k, o, d) for v, p, o, d in notes]


def _split(v: int, p: int, s: int, e: int) -> list[Note]:
    res = []
    while e > s:
        step = min(MAX_STEPS, e - s)
        res.append((v, p, s / GRID, step / GRID))
        s += step
    return res


class ChoraleTokenizer:
    """Chorales <-> token ids: BOS, (voice, pitch, duration) per note, EOS.

    Ids: 0 = BOS, 1 = EOS, 2-5 = voices, then rest + MIDI pitches ``low..high``, then
    durations 1/4, 2/4, ... 16 quarter notes."""

    BOS, EOS = 0, 1

    def __init__(self, low: int = 28, high: int = 96) -> None:
        check_positive("low", low, allow_zero=True)
        check_positive("high", high)
        if not low < high <= 127:
            raise ValueError(f"need 0 <= low < high <= 127, got low={low}, high={high}")
        self.low, self.high = low, high
        self.voice0 = 2
        self.pitch0 = self.voice0 + len(VOICES)  # the rest token; pitch p is pitch0 + 1 + p - low
        self.dur0 = self.pitch0 + 1 + (high - low + 1)  # duration k/4 is dur0 + k - 1
        self.vocab_size = self.dur0 + MAX_STEPS

    def kind(self, ids: Any) -> torch.Tensor:
        """Per id: 0 special, 1 voice, 2 pitch, 3 duration (a LongTensor like ``ids``)."""
        ids = torch.as_tensor(ids)
        return (ids >= self.voice0).long() + (ids >= self.pitch0).long() + (ids >= self.dur0).long()

    def encode(self, notes: Sequence[Note]) -> list[int]:
        """Notes -> ids. Raises ValueError on no notes, a voice, pitch or duration out of range, or a
        voice that is not a gap-free succession (use :func:`make_contiguous` first)."""
        if not isinstance(notes, Sequence) or len(notes) == 0:
            raise ValueError("a chorale needs at least one note, got no notes")
        ends: dict[int, float] = {}
        ids = [self.BOS]
        for v, p, o, d in sorted(notes, key=lambda n: (float(n[2]), int(n[0]))):
            if not 0 <= int(v) < len(VOICES):
                raise ValueError(f"voice must be in 0..{len(VOICES) - 1}, got {v}")
            if int(p) != -1 and not self.low <= int(p) <= self.high:
                raise ValueError(f"pitch must be -1 (rest) or a MIDI number in [{self.low}, {self.high}], got {p}")
            k = float(d) * GRID
            if k != round(k) or not 1 <= k <= MAX_STEPS:
                raise ValueError(f"duration must be a multiple of 1/{GRID} in (0, {MAX_STEPS // GRID}], got {d}")
            if float(o) != ends.get(int(v), 0.0):
                raise ValueError(
                    f"voice {v} is not contiguous: a note starts at {o} where the voice is at {ends.get(int(v), 0.0)}"
                )
            ends[int(v)] = float(o) + float(d)
            pitch_id = self.pitch0 if p < 0 else self.pitch0 + 1 + int(p) - self.low
            ids += [self.voice0 + int(v), pitch_id, self.dur0 + int(round(k)) - 1]
        return [*ids, self.EOS]

    def decode(self, ids: Any, *, strict: bool = True) -> list[Note]:
        """Ids -> notes. ``strict=False`` (generated text) skips triples that break the grammar
        and stops at EOS; ``strict=True`` raises ValueError on them."""
        ids = [int(i) for i in torch.as_tensor(ids).reshape(-1).tolist()]
        kinds = self.kind(ids).tolist() if ids else []
        notes: list[Note] = []
        ends: dict[int, float] = {}
        i = 0
        while i < len(ids):
            if ids[i] == self.EOS:
                break
            if kinds[i] == 1 and i + 2 < len(ids) and kinds[i + 1] == 2 and kinds[i + 2] == 3:
                v = ids[i] - self.voice0
                p = -1 if ids[i + 1] == self.pitch0 else ids[i + 1] - self.pitch0 - 1 + self.low
                d = (ids[i + 2] - self.dur0 + 1) / GRID
                o = ends.get(v, 0.0)
                notes.append((v, p, o, d))
                ends[v] = o + d
                i += 3
            elif ids[i] == self.BOS and i == 0:
                i += 1
            elif strict:
                raise ValueError(f"token {i} (id {ids[i]}) breaks the (voice, pitch, duration) grammar")
            else:
                i += 1
        if strict and not notes:
            raise ValueError("the ids hold no notes")
        return sorted(notes, key=lambda n: (n[2], n[0]))

    def grammar_mask(self, prev_kind: int) -> torch.Tensor:
        """Which ids may follow a token of kind ``prev_kind`` (bool (V,)): voice -> pitch ->
        duration -> voice or EOS; BOS -> voice. Used to constrain sampling."""
        allowed = {0: (1,), 1: (2,), 2: (3,), 3: (1, 4)}[prev_kind]
        k = self.kind(torch.arange(self.vocab_size))
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        for a in allowed:
            mask |= (k == a) if a < 4 else (torch.arange(self.vocab_size) == self.EOS)
        return mask


def _parse(n: int) -> list[list[Note]]:
    from music21 import corpus  # imported lazily: ~0.5 s, and only this function needs it

    out: list[list[Note]] = []
    for score in corpus.chorales.Iterator(returnType="stream"):
        parts = list(score.parts)
        if len(parts) < 4:
            continue
        notes: list[Note] = []
        for v, part in enumerate(parts[:4]):
            for el in part.flatten().notes:
                pitch = max(p.midi for p in el.pitches)  # a chord keeps its top note
                notes.append((v, int(pitch), float(el.offset), float(el.quarterLength)))
        notes = make_contiguous(notes)
        if notes:
            out.append(notes)
        if len(out) >= n:
            break
    return out


def load_chorales(n: int | None = None) -> list[list[Note]]:
    """The first ``n`` four-part chorales of music21's corpus (all of them if None) as note lists,
    parsed once (about 0.2 s a chorale) and then read from the cache folder."""
    n = N_CHORALES if n is None else n
    check_positive("n", n)
    path = cache_root() / f"chorales_{n}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return [[(int(v), int(p), float(o), float(d)) for v, p, o, d in t.tolist()] for t in saved]
    chorales = _parse(n)
    arrays = [torch.tensor(np.asarray(c, dtype=np.float64)) for c in chorales]
    atomic_write(path, lambda f: torch.save(arrays, f))
    return chorales


def midi_bytes(notes: Sequence[Note], *, bpm: int = 120) -> bytes:
    """Notes -> a standard MIDI file (bytes), one track per voice, via music21 (rests kept)."""
    from music21 import meter, midi, note, stream, tempo

    if not isinstance(notes, Sequence) or len(notes) == 0:
        raise ValueError("a chorale needs at least one note, got no notes")
    check_positive("bpm", bpm)
    score = stream.Score()
    for v in sorted({int(n[0]) for n in notes}):
        part = stream.Part()
        part.insert(0, tempo.MetronomeMark(number=bpm))
        part.insert(0, meter.TimeSignature("4/4"))
        for _, p, o, d in (n for n in notes if int(n[0]) == v):
            el = note.Rest(quarterLength=d) if p < 0 else note.Note(int(p), quarterLength=d)
            part.insert(float(o), el)
        score.insert(0, part)
    return midi.translate.music21ObjectToMidiFile(score).writestr()
