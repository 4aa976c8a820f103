"""Instruction data with checkable answers, a chat template and preference pairs (chapter 8.3).

Everything here is generated offline from a seed, so an answer can always be checked exactly:

- :func:`make_instructions`: prompts and their one right answer from five task families
  (``TASKS``): two-number addition, unit conversion, upper-casing, reversing a string, and
  questions about a small fact table (``FACTS``). The split (``"train"`` or ``"test"``) is a
  deterministic function of the prompt, so no held-out prompt is ever seen in training.
- :class:`ChatTemplate`: wraps a character tokenizer with three special tokens, ``<|user|>``,
  ``<|assistant|>`` and ``<|end|>``, renders a (prompt, response) pair as one id sequence and
  parses it back; its loss mask marks the response tokens (and the end token) only.
- :func:`corrupt` and :func:`preference_pairs`: a preferred (right) and a rejected response per
  prompt; the rejected one is checkably worse: a wrong answer, or the right answer in the wrong
  format.
- :func:`pad_batch`: right-padded (B, L) ids and masks from variable-length sequences.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from genai_lib._checks import check_positive
from genai_lib.tokenizer import CharTokenizer

__all__ = [
    "TASKS",
    "FACTS",
    "Instruction",
    "make_instructions",
    "ChatTemplate",
    "corrupt",
    "preference_pairs",
    "pad_batch",
    "exact_match",
]

TASKS = ("add", "convert", "upper", "reverse", "fact")
# country -> (capital, continent): the questions of the "fact" task
FACTS = {
    "France": ("Paris", "Europe"),
    "Japan": ("Tokyo", "Asia"),
    "Kenya": ("Nairobi", "Africa"),
    "Peru": ("Lima", "America"),
    "Egypt": ("Cairo", "Africa"),
    "Italy": ("Rome", "Europe"),
    "China": ("Beijing", "Asia"),
    "Chile": ("Santiago", "America"),
    "Spain": ("Madrid", "Europe"),
    "India": ("Delhi", "Asia"),
    "Ghana": ("Accra", "Africa"),
    "Cuba": ("Havana", "America"),
}
_FACT_TEMPLATES = {
    "capital": ("Capital of {c}?", "What is the capital of {c}?", "{c}: capital?"),
    "continent": ("Continent of {c}?", "Where is {c}?", "{c}: continent?"),
}
_UNITS = (("km", "m", 1000), ("m", "cm", 100), ("cm", "mm", 10), ("kg", "g", 1000), ("L", "mL", 1000))
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Instruction:
    """One prompt, its one correct answer and its task family."""

    prompt: str
    answer: str
    task: str


def _split_of(prompt: str, test_fraction: float) -> str:
    """'test' for a fixed, seed-free fraction of prompts (a hash of the text), else 'train'."""
    return "test" if zlib.crc32(prompt.encode()) % 1000 < 1000 * test_fraction else "train"


def _draw(task: str, rng: random.Random) -> Instruction:
    if task == "add":
        a, b = rng.randrange(50), rng.randrange(50)
        return Instruction(f"Add {a} and {b}.", str(a + b), task)
    if task == "convert":
        src, dst, factor = rng.choice(_UNITS)
        n = rng.randrange(1, 100)
        return Instruction(f"{n} {src} in {dst}?", str(n * factor), task)
    if task in ("upper", "reverse"):
        word = "".join(rng.choice(_LETTERS) for _ in range(rng.randrange(3, 7)))
        if task == "upper":
            return Instruction(f"Upper-case: {word}", word.upper(), task)
        return Instruction(f"Reverse: {word}", word[::-1], task)
    country = rng.choice(sorted(FACTS))
    attr = rng.choice(sorted(_FACT_TEMPLATES))
    template = rng.choice(_FACT_TEMPLATES[attr])
    answer = FACTS[country][0 if attr == "capital" else 1]
    return Instruction(template.format(c=country), answer, task)


def _always_train(ins: Instruction) -> bool:
    # the first phrasing of every fact question is always a training prompt, so every held-out fact
    # question asks about a fact seen in training, phrased differently
    return ins.task == "fact" and any(ins.prompt == t[0].format(c=c) for c in FACTS for t in _FACT_TEMPLATES.values())


def make_instructions(
    n: int, *, split: str = "train", seed: int = 0, tasks: Sequence[str] = TASKS, test_fraction: float = 0.2
) -> list[Instruction]:
    """``n`` distinct instructions of ``split`` ('train' or 'test'), each of a random task, drawn with ``seed``.

    Which split a prompt belongs to depends on the prompt alone (see :func:`_split_of`), so the
    two splits never share a prompt whatever the seeds. Raises ValueError if the task families
    cannot supply ``n`` distinct prompts (the fact table holds few).
    """
    check_positive("n", n)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(tasks, str) or not tasks or any(t not in TASKS for t in tasks):
        raise ValueError(f"tasks must be a non-empty sequence of names from {TASKS}, got {tasks!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = random.Random(seed)
    out: list[Instruction] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 10_000:
            raise ValueError(f"cannot draw {n} distinct {split} instructions from tasks {tuple(tasks)}")
        ins = _draw(rng.choice(list(tasks)), rng)
        where = "train" if _always_train(ins) else _split_of(ins.prompt, test_fraction)
        if where == split and ins.prompt not in seen:
            seen.add(ins.prompt)
            out.append(ins)
    return out


def exact_match(instructions: Sequence[Instruction], responses: Sequence[str | None]) -> float:
    """The fraction of responses equal, character for character, to the instruction's answer."""
    if len(instructions) != len(responses):
        raise ValueError(f"got {len(instructions)} instructions and {len(responses)} responses")
    if not instructions:
        raise ValueError("exact_match needs at least one instruction")
    return sum(r == ins.answer for ins, r in zip(instructions, responses, strict=True)) / len(instructions)


# --------------------------------------------------------------------------- the chat template


class ChatTemplate:
    """``<|user|>prompt<|assistant|>response<|end|>`` over a character tokenizer.

    The three special tokens are private-use code points appended to ``base``'s vocabulary, so
    the ids of ordinary text are unchanged (a model trained with ``base`` keeps its meaning) and
    no text can contain them by accident: :meth:`encode` refuses text with a special character
    or a character outside ``base``'s vocabulary.
    """

    SPECIALS = {"<|user|>": "\ue000", "<|assistant|>": "\ue001", "<|end|>": "\ue002"}

    def __init__(self, base: CharTokenizer) -> None:
        if not isinstance(base, CharTokenizer):
            raise TypeError(f"base must be a CharTokenizer, got {type(base).__name__}")
        if any(c in base.stoi for c in self.SPECIALS.values()):
            raise ValueError("base already contains the template's special characters")
        self.base = base
        self.tokenizer = CharTokenizer(base.itos + list(self.SPECIALS.values()), unk=base.unk)
        self.user_id, self.assistant_id, self.end_id = (self.tokenizer.stoi[c] for c in self.SPECIALS.values())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _text_ids(self, name: str, text: Any) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        bad = [c for c in text if c in self.SPECIALS.values() or c not in self.base.stoi or c == self.base.unk]
        if bad:
            raise ValueError(f"{name} contains {bad[0]!r}, a special or out-of-vocabulary character")
        return self.tokenizer.encode(text)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of ``<|user|>prompt<|assistant|>``: what a model continues with its response."""
        return [self.user_id, *self._text_ids("prompt", prompt), self.assistant_id]

    def encode(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """``(ids, mask)`` of the whole exchange; ``mask[t] = 1`` where token t belongs to the
        response or is the closing ``<|end|>`` (the tokens a model is trained to produce)."""
        head = self.encode_prompt(prompt)
        tail = [*self._text_ids("response", response), self.end_id]
        return head + tail, [0] * len(head) + [1] * len(tail)

    def response(self, ids: Sequence[int]) -> str | None:
        """The text a model wrote after the prompt: ``ids`` up to the first ``<|end|>``, or None
        if it never closed its answer (or opened a new turn)."""
        ids = list(ids)
        if self.end_id not in ids:
            return None
        ids = ids[: ids.index(self.end_id)]
        if self.user_id in ids or self.assistant_id in ids:
            return None
        return self.tokenizer.decode(ids)

    def parse(self, ids: Sequence[int]) -> tuple[str, str]:
        """``(prompt, response)`` of a full exchange: the inverse of :meth:`encode`."""
        ids = [int(i) for i in ids]
        if len(ids) < 3 or ids[0] != self.user_id or ids[-1] != self.end_id or self.assistant_id not in ids:
            raise ValueError("not a <|user|>...<|assistant|>...<|end|> sequence")
        cut = ids.index(self.assistant_id)
        response = self.response(ids[cut + 1 :])
        if response is None or self.user_id in ids[1:cut]:
            raise ValueError("a chat exchange holds one user turn and one closed assistant turn")
        return self.tokenizer.decode(ids[1:cut]), response

    def render(self, ids: Sequence[int]) -> str:
        """Readable text of ids, the special tokens spelled out."""
        text = self.tokenizer.decode(list(ids))
        for name, char in self.SPECIALS.items():
            text = text.replace(char, name)
        return text


def pad_batch(seqs: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-pad id sequences and their masks to one length -> ids (B, L) and mask (B, L) long
    tensors; padding has mask 0, so it never counts in a loss."""
    if len(seqs) != len(masks) or not seqs:
        raise ValueError(f"need as many masks as sequences (and at least one), got {len(seqs)} and {len(masks)}")
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks, strict=True)):
        if len(s) != len(m):
            raise ValueError(f"sequence {i} has {len(s)} ids but a mask of {len(m)}")
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(m)] = torch.as_tensor(list(m), dtype=torch.long)
    return ids, mask


# --------------------------------------------------------------------------- preference pairs


def _wrong_answer(ins: Instruction, rng: random.Random) -> str:
    """A plausible mistake for ``ins``: checkably different from the right answer."""
    a = ins.answer
    if ins.task in ("add", "convert"):
        if ins.task == "convert" and rng.random() < 0.5:
            return a[:-1] if len(a) > 2 else a + "0"  # one zero too few or too many
        wrong = int(a) + rng.choice((-10, -2, -1, 1, 2, 10))
        return str(wrong if wrong >= 0 else int(a) + 1)
    if ins.task == "upper":
        word = a.lower()
        i = rng.randrange(len(word))
        return word if rng.random() < 0.3 else a[:i] + word[i] + a[i + 1 :]
    if ins.task == "reverse":
        word = a[::-1]
        i = rng.randrange(len(a) - 1)
        swapped = a[:i] + a[i + 1] + a[i] + a[i + 2 :]
        return swapped if swapped != a else word + word[0]
    others = sorted({v for pair in FACTS.values() for v in pair if v != a and (v in _CAPITALS) == (a in _CAPITALS)})
    return rng.choice(others)


_CAPITALS = {cap for cap, _ in FACTS.values()}


def _bad_format(ins: Instruction, rng: random.Random) -> str:
    """The right answer, not in the requested format (the answer alone)."""
    return rng.choice((f"The answer is {ins.answer}.", f"{ins.answer}!", f"Answer: {ins.answer}", f"{ins.answer} ok"))


def corrupt(ins: Instruction, rng: random.Random, kind: str = "wrong") -> str:
    """A rejected response to ``ins``: ``kind='wrong'`` (a wrong answer) or ``'format'`` (the
    right answer wrapped in words the prompt did not ask for). Never equal to the answer."""
    if not isinstance(ins, Instruction):
        raise TypeError(f"ins must be an Instruction, got {type(ins).__name__}")
    if kind not in ("wrong", "format"):
        raise ValueError(f"kind must be 'wrong' or 'format', got {kind!r}")
    out = _wrong_answer(ins, rng) if kind == "wrong" else _bad_format(ins, rng)
    return out if out != ins.answer else ins.answer + "?"


def preference_pairs(
    instructions: Sequence[Instruction],
    *,
    seed: int = 0,
    format_fraction: float = 0.25,
    candidates: Sequence[Sequence[str | None]] | None = None,
) -> list[tuple[Instruction, str, str]]:
    """``(instruction, chosen, rejected)`` triples: chosen is the right answer; rejected is a
    wrong response the model itself wrote (from ``candidates[i]``, the model's samples for
    instruction i, when one of them is wrong and closed), else :func:`corrupt` of the instruction
    (a wrong answer, or with probability ``format_fraction`` a format violation)."""
    if not 0 <= format_fraction <= 1:
        raise ValueError(f"format_fraction must be in [0, 1], got {format_fraction!r}")
    if candidates is not None and len(candidates) != len(instructions):
        raise ValueError(f"need one list of candidates per instruction, got {len(candidates)} for {len(instructions)}")
    rng = random.Random(seed)
    pairs = []
    for i, ins in enumerate(instructions):
        wrong = [c for c in (candidates[i] if candidates is not None else ()) if c and c != ins.answer]
        if wrong:
            rejected = rng.choice(wrong)
        else:
            rejected = corrupt(ins, rng, "format" if rng.random() < format_fraction else "wrong")
        pairs.append((ins, ins.answer, rejected))
    return pairs
