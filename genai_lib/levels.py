"""Grid-puzzle levels for chapter 13: a classical generator, a BFS solver and a tokenizer.

A level is an ``h x w`` grid of characters: ``#`` wall, ``.`` floor, ``P`` the player (exactly
one), ``G`` the goal (exactly one), ``K`` a key and ``D`` a door (at most one each). The player
moves up, down, left or right onto any non-wall cell; a door opens only once the key has been
picked up. A level is *solvable* when the goal can be reached, and its *difficulty* is the length
of the shortest solution, found by breadth-first search over (cell, has-key) states.

The classical generator is what game studios call procedural generation: seeded noise (walls
drawn with probability ``wall_p``) plus rules (a border, one player and one goal at least
``min_dist`` apart, optionally a key-and-door corridor), and rejection of unsolvable draws. No
learning is involved; it is how Rogue, Spelunky or Minecraft's terrain (Perlin noise plus
hand-written rules) are made.

The tokenizer writes a level row by row, one token per cell, a ``/`` token after each row, and
frames it with ``<`` (start) and ``>`` (end), so a language model can learn levels as text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genai_lib._checks import check_positive, check_probability, plain_fields

__all__ = [
    "LevelConfig",
    "check_level",
    "solve",
    "is_solvable",
    "generate_levels",
    "random_levels",
    "LevelTokenizer",
    "level_stats",
]

TILES = "#.PGKD"  # wall, floor, player, goal, key, door
ROW, START, END = "/", "<", ">"


@dataclass(frozen=True)
class LevelConfig:
    """The classical generator's rules."""

    height: int = 8  # rows, border included
    width: int = 8  # columns, border included
    wall_p: float = 0.4  # probability that an inner cell is a wall (the seeded noise)
    min_dist: int = 6  # the goal at least this many moves from the player (Manhattan)
    door_p: float = 0.5  # probability that a level gets a key and a door on its solution path

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("height", "width"):
            check_positive(name, getattr(self, name))
            if getattr(self, name) < 4 or getattr(self, name) > 32:
                raise ValueError(f"{name} must be in [4, 32], got {getattr(self, name)}")
        check_probability("wall_p", self.wall_p)
        check_probability("door_p", self.door_p)
        if self.wall_p > 0.8:
            raise ValueError(f"wall_p must be <= 0.8 (else almost no level is solvable), got {self.wall_p}")
        check_positive("min_dist", self.min_dist)
        if self.min_dist > self.height + self.width - 6:
            raise ValueError(f"min_dist {self.min_dist} cannot fit in a {self.height}x{self.width} level")


def check_level(level: Sequence[str], name: str = "level") -> list[str]:
    """The level as a list of equal-length rows of known tiles, with one P and one G, or an error."""
    if isinstance(level, str):
        level = level.strip("\n").split("\n")
    rows = list(level)
    if not rows or not all(isinstance(r, str) for r in rows):
        raise ValueError(f"{name} must be a non-empty list of strings (rows), got {level!r}")
    if len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError(f"{name} rows must be non-empty and of equal length, got lengths {[len(r) for r in rows]}")
    bad = set("".join(rows)) - set(TILES)
    if bad:
        raise ValueError(f"{name} has unknown tiles {sorted(bad)}; tiles are {TILES!r}")
    text = "".join(rows)
    for tile, what in (("P", "player"), ("G", "goal")):
        if text.count(tile) != 1:
            raise ValueError(f"{name} must have exactly one {what} {tile!r}, got {text.count(tile)}")
    for tile in "KD":
        if text.count(tile) > 1:
            raise ValueError(f"{name} may have at most one {tile!r}, got {text.count(tile)}")
    return rows


def solve(level: Sequence[str]) -> int | None:
    """Length of the shortest solution (moves) by breadth-first search, or None if unsolvable.

    The search state is (row, column, has the key); a door ``D`` is passable only with the key.
    BFS visits states in order of distance, so the first time it reaches ``G`` is optimal.
    """
    rows = check_level(level)
    h, w = len(rows), len(rows[0])
    start = next((r, c) for r in range(h) for c in range(w) if rows[r][c] == "P")
    todo = deque([(start[0], start[1], False, 0)])
    seen = {(start[0], start[1], False)}
    while todo:
        r, c, key, d = todo.popleft()
        if rows[r][c] == "G":
            return d
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if not (0 <= nr < h and 0 <= nc < w):
                continue
            tile = rows[nr][nc]
            if tile == "#" or (tile == "D" and not key):
                continue
            state = (nr, nc, key or tile == "K")
            if state not in seen:
                seen.add(state)
                todo.append((*state, d + 1))
    return None


def is_solvable(level: Sequence[str]) -> bool:
    """Whether a well-formed level's goal can be reached (False for a malformed one)."""
    try:
        return solve(level) is not None
    except ValueError:
        return False


def _shortest_path(rows: list[str], start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Cells of one shortest path (walls only) from start to goal, or [] if none."""
    h, w = len(rows), len(rows[0])
    prev = {start: None}
    todo = deque([start])
    while todo:
        cell = todo.popleft()
        if cell == goal:
            path = []
            while cell is not None:
                path.append(cell)
                cell = prev[cell]
            return path[::-1]
        r, c = cell
        for nxt in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nxt[0] < h and 0 <= nxt[1] < w and rows[nxt[0]][nxt[1]] != "#" and nxt not in prev:
                prev[nxt] = cell
                todo.append(nxt)
    return []


def _draw(cfg: LevelConfig, rng: np.random.Generator) -> list[str] | None:
    """One draw of noise plus rules; None when the rules reject it."""
    h, w = cfg.height, cfg.width
    grid = np.where(rng.random((h, w)) < cfg.wall_p, "#", ".")
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = "#"
    free = [(r, c) for r in range(1, h - 1) for c in range(1, w - 1) if grid[r, c] == "."]
    if len(free) < 2:
        return None
    i, j = rng.choice(len(free), size=2, replace=False)
    p, g = free[i], free[j]
    if abs(p[0] - g[0]) + abs(p[1] - g[1]) < cfg.min_dist:
        return None
    grid[p], grid[g] = "P", "G"
    rows = ["".join(r) for r in grid]
    path = _shortest_path(rows, p, g)
    if not path:
        return None
    if rng.random() < cfg.door_p and len(path) >= 5:
        # a door on the path, the key on a free cell reachable before the door
        door = path[len(path) // 2]
        grid[door] = "D"
        rows = ["".join(r) for r in grid]
        before = [c for c in path[1 : len(path) // 2] if grid[c] == "."]
        side = [c for c in free if grid[c] == "." and _shortest_path(rows, p, c)]
        spots = [c for c in side if c not in before] or before
        if not spots:
            return None
        grid[spots[rng.integers(len(spots))]] = "K"
        rows = ["".join(r) for r in grid]
    return rows if solve(rows) is not None else None


def generate_levels(n: int, cfg: LevelConfig | None = None, *, seed: int = 0) -> list[list[str]]:
    """``n`` distinct solvable levels from the classical generator, seeded (same seed, same levels)."""
    check_positive("n", n)
    if n > 100_000:
        raise ValueError(f"n must be <= 100000 levels, got {n}")
    cfg = cfg or LevelConfig()
    check_positive("seed", seed, allow_zero=True)
    rng = np.random.default_rng(seed)
    out, seen, tries = [], set(), 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise ValueError(f"the rules reject almost every draw of {cfg}; loosen them")
        rows = _draw(cfg, rng)
        if rows is not None and "".join(rows) not in seen:
            seen.add("".join(rows))
            out.append(rows)
    return out


def random_levels(n: int, cfg: LevelConfig | None = None, *, seed: int = 0) -> list[list[str]]:
    """The baseline without the solver: noise plus placement rules, no rejection of unsolvable draws."""
    check_positive("n", n)
    cfg = cfg or LevelConfig()
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        h, w = cfg.height, cfg.width
        grid = np.where(rng.random((h, w)) < cfg.wall_p, "#", ".")
        grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = "#"
        cells = [(r, c) for r in range(1, h - 1) for c in range(1, w - 1)]
        picks = rng.choice(len(cells), size=4 if rng.random() < cfg.door_p else 2, replace=False)
        for tile, k in zip("PGKD", picks, strict=False):
            grid[cells[k]] = tile
        out.append(["".join(r) for r in grid])
    return out


class LevelTokenizer:
    """Levels <-> token ids: one id per tile, ``/`` after each row, ``<`` ... ``>`` around a level."""

    symbols = START + END + ROW + TILES

    def __init__(self) -> None:
        self.stoi = {s: i for i, s in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @property
    def start_id(self) -> int:
        return self.stoi[START]

    @property
    def end_id(self) -> int:
        return self.stoi[END]

    def encode(self, level: Sequence[str]) -> list[int]:
        """A level (rows) -> ids ``< row / row / ... >``."""
        rows = list(level.strip("\n").split("\n")) if isinstance(level, str) else list(level)
        if not rows or any(not isinstance(r, str) or not r for r in rows):
            raise ValueError(f"level must be a non-empty list of non-empty rows, got {level!r}")
        bad = set("".join(rows)) - set(TILES)
        if bad:
            raise ValueError(f"level has unknown tiles {sorted(bad)}; tiles are {TILES!r}")
        text = START + "".join(r + ROW for r in rows) + END
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Ids -> rows: reads from after the first ``<`` to the first ``>`` (or the end)."""
        ids = [int(i) for i in ids]
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError(f"ids must be in [0, {self.vocab_size}), got {ids}")
        text = "".join(self.symbols[i] for i in ids)
        text = text.split(START, 1)[1] if START in text else text
        text = text.split(END, 1)[0].replace(START, "")
        return [r for r in text.split(ROW) if r]

    def layout_rules(self, height: int, width: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """A logits processor for a model that writes levels after ``<`` (constrained decoding).

        It enforces only the *form* of a level, never its solvability: ``/`` at each row end and
        ``>`` after the last row, walls on the border, at most one of each of P, G, K, D, and P
        and G forced into the last inner cells if they are still missing. What it cannot do is
        connect the player to the goal: that is left to the model.
        """
        ids = {s: self.stoi[s] for s in self.symbols}
        inner = height * width - 2 * width - 2 * (height - 2)  # cells off the border

        def process(out: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            pos = out.shape[1] - 1  # tokens written after "<"
            mask = torch.full_like(logits, float("-inf"))
            r, c = divmod(pos, width + 1)
            if r >= height:
                mask[:, ids[END]] = 0
                return logits + mask
            if c == width:
                mask[:, ids[ROW]] = 0
                return logits + mask
            if r in (0, height - 1) or c in (0, width - 1):
                mask[:, ids["#"]] = 0
                return logits + mask
            done = (r - 1) * (width - 2) + (c - 1)  # inner cells already written
            left = inner - done  # this one included
            tiles = torch.tensor([ids[t] for t in "PGKD"], device=out.device)
            have = (out[:, :, None] == tiles).any(1)  # (B, 4): P, G, K, D already placed
            n_need = (~have[:, :2]).sum(1)  # P and G still missing
            forced = n_need >= left  # (B,) only the missing P / G may go here
            free = torch.tensor([ids["#"], ids["."]], device=out.device)
            mask[:, free] = torch.where(forced, float("-inf"), 0.0)[:, None]
            mask[:, tiles] = torch.where(have, float("-inf"), 0.0)
            mask[:, tiles[2:]] = torch.where(forced[:, None], float("-inf"), mask[:, tiles[2:]])
            return logits + mask

        return process

    def encode_many(self, levels: Sequence[Sequence[str]]) -> list[int]:
        """Many levels, one after another, as one stream of ids (for a language model)."""
        return [i for lv in levels for i in self.encode(lv)]


def level_stats(levels: Sequence[Sequence[str]], train: Sequence[Sequence[str]] = ()) -> dict[str, float]:
    """Validity, solvability, novelty, diversity and difficulty of generated levels.

    - ``valid``: well-formed (equal rows of known tiles, one P, one G) and of the training shape;
    - ``solvable``: fraction of *all* levels the BFS solver solves;
    - ``novel``: fraction of the solvable ones that are not in ``train``;
    - ``unique``: fraction of the solvable ones that are distinct from each other;
    - ``diversity``: mean pairwise Hamming distance between (the first 200) solvable levels of
      the first one's shape, per cell (0..1);
    - ``difficulty``: mean shortest-solution length of the solvable ones.
    """
    if len(levels) == 0:
        raise ValueError("levels must hold at least one level")
    shape = (len(train[0]), len(train[0][0])) if len(train) else None
    train_set = {"".join(t) for t in train}
    solved, lengths = [], []
    n_valid = 0
    for lv in levels:
        try:
            rows = check_level(lv)
        except ValueError:
            continue
        if shape is not None and (len(rows), len(rows[0])) != shape:
            continue
        n_valid += 1
        d = solve(rows)
        if d is not None:
            solved.append("".join(rows))
            lengths.append(d)
    n = len(levels)
    out = {"valid": n_valid / n, "solvable": len(solved) / n}
    if solved:
        arr = np.array([list(s) for s in solved if len(s) == len(solved[0])])  # one shape
        k = min(len(arr), 200)
        a = arr[:k]
        ham = (a[:, None, :] != a[None, :, :]).mean(-1)
        out["novel"] = float(np.mean([s not in train_set for s in solved]))
        out["unique"] = len(set(solved)) / len(solved)
        out["diversity"] = float(ham[np.triu_indices(k, 1)].mean()) if k > 1 else 0.0
        out["difficulty"] = float(np.mean(lengths))
    else:
        out.update(novel=0.0, unique=0.0, diversity=0.0, difficulty=0.0)
    return out
