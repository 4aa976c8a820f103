"""Chapter 13: grid levels (generator, solver, tokenizer), the code corpus and its checks."""

import sys

import pytest
import torch

from genai_lib.code_corpus import (
    CODE_MODULES,
    PROMPTS,
    code_files,
    compiles,
    extract_function,
    has_body,
    load_code_corpus,
    parses,
    property_checks,
    scan_brackets,
    stdlib_dir,
)
from genai_lib.data import make_loader
from genai_lib.levels import (
    LevelConfig,
    LevelTokenizer,
    check_level,
    generate_levels,
    is_solvable,
    level_stats,
    random_levels,
    solve,
)
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.train import fit

OPEN = ["#####", "#P.G#", "#####"]  # two moves
WALLED = ["#####", "#P#G#", "#####"]  # the goal behind a wall
DOOR_NO_KEY = ["######", "#P.DG#", "######"]  # a door and no key: unsolvable
DOOR_KEY = ["######", "#PKDG#", "######"]  # pick the key, open the door: three moves
DETOUR = ["#######", "#P#..G#", "#.#.#.#", "#.....#", "#######"]  # around a wall: 8 moves


def test_solver_on_hand_made_levels():
    assert solve(OPEN) == 2
    assert solve(WALLED) is None and not is_solvable(WALLED)
    assert solve(DOOR_NO_KEY) is None
    assert solve(DOOR_KEY) == 3
    assert solve(DETOUR) == 8
    assert solve("#####\n#P.G#\n#####") == 2  # a string works too


def test_solver_fetches_the_key_first():
    # K(1,1) . P(1,3) D(1,4) G(1,5): two steps left to the key, three back to the door, one on
    level = ["#######", "#K.PDG#", "#######"]
    assert solve(level) == 6
    assert solve(["#######", "#..PDG#", "#######"]) is None  # the same without the key
    # a way around the door: three moves down, along and up, no key needed
    assert solve(["#######", "#K.PDG#", "###...#", "#######"]) == 4


@pytest.mark.parametrize(
    "level, match",
    [
        (["#####", "#..G#", "#####"], "exactly one player"),
        (["#####", "#PPG#", "#####"], "exactly one player"),
        (["#####", "#P..#", "#####"], "exactly one goal"),
        (["#####", "#P.G", "#####"], "equal length"),
        (["#####", "#PxG#", "#####"], "unknown tiles"),
        ([], "non-empty"),
    ],
)
def test_malformed_levels_are_refused(level, match):
    with pytest.raises(ValueError, match=match):
        check_level(level)
    assert not is_solvable(level)


def test_generator_is_seeded_and_its_levels_are_solvable():
    a, b = generate_levels(30, seed=3), generate_levels(30, seed=3)
    assert a == b and a != generate_levels(30, seed=4)
    cfg = LevelConfig()
    for lv in a:
        assert len(lv) == cfg.height and all(len(r) == cfg.width for r in lv)
        assert set(lv[0]) == {"#"} and set(lv[-1]) == {"#"}  # the border rule
        assert solve(lv) is not None
    assert len({"".join(lv) for lv in a}) == 30  # distinct
    assert any("D" in "".join(lv) for lv in a) and any("D" not in "".join(lv) for lv in a)


def test_random_baseline_is_not_always_solvable():
    st = level_stats(random_levels(60, seed=0))
    assert st["valid"] == 1.0 and 0.2 < st["solvable"] < 1.0


def test_tokenizer_round_trip_and_layout():
    tok = LevelTokenizer()
    for lv in generate_levels(5, seed=0) + [DETOUR]:
        ids = tok.encode(lv)
        assert tok.decode(ids) == lv
        assert ids[0] == tok.start_id and ids[-1] == tok.end_id
        assert len(ids) == len(lv) * (len(lv[0]) + 1) + 2
    assert tok.decode(tok.encode_many([OPEN, WALLED])) == OPEN  # stops at the first end token
    with pytest.raises(ValueError, match="unknown tiles"):
        tok.encode(["#?#"])
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([99])


def test_level_stats_novelty_and_difficulty():
    train = [OPEN, DETOUR]
    st = level_stats([OPEN, DOOR_KEY, WALLED, ["bad"]], train=[OPEN])
    assert st["valid"] == 0.5  # OPEN and WALLED have the training shape, DOOR_KEY is wider
    st = level_stats([OPEN, DOOR_KEY, WALLED, ["bad"]])
    assert st["valid"] == 0.75 and st["solvable"] == 0.5
    assert st["difficulty"] == pytest.approx((2 + 3) / 2)
    st = level_stats([OPEN, OPEN], train=train)
    assert st["novel"] == 0.0 and st["unique"] == 0.5 and st["diversity"] == 0.0
    with pytest.raises(ValueError, match="at least one level"):
        level_stats([])


def test_level_config_is_validated():
    with pytest.raises(ValueError, match="wall_p"):
        LevelConfig(wall_p=0.95)
    with pytest.raises(ValueError, match="height"):
        LevelConfig(height=2)
    with pytest.raises(ValueError, match="min_dist"):
        LevelConfig(height=5, width=5, min_dist=9)


def test_a_tiny_gpt_overfits_levels():
    tok = LevelTokenizer()
    ids = torch.tensor([tok.encode(lv) for lv in generate_levels(8, seed=0)])
    torch.manual_seed(0)
    model = GPT(GPTConfig(tok.vocab_size, block_size=74, n_layer=1, n_head=2, n_embd=32))
    loader = make_loader(ids[:, :-1], ids[:, 1:], batch_size=8)
    h = fit(model, loader, steps=150, lr=1e-2, progress=False, log_every=1)
    assert h.logs["loss"][-1] < 0.5 * h.logs["loss"][0]


# ----------------------------------------------------------------------------- code corpus


def test_code_corpus_is_deterministic_and_from_the_interpreter():
    root = stdlib_dir()
    paths = code_files()
    assert [p.stem for p in paths] == list(CODE_MODULES)
    assert all(p.parent == root and p.suffix == ".py" for p in paths)
    assert str(root).startswith(sys.base_prefix) or root.is_relative_to(sys.base_prefix)
    a = load_code_corpus(max_chars=5000)
    assert a == load_code_corpus(max_chars=5000) and len(a) == 5000
    full = load_code_corpus(["bisect", "heapq"])
    assert full.startswith(paths[0].read_text().strip("\n")) and "\t" not in full
    assert parses(paths[0].read_text())
    funcs = load_code_corpus(["bisect", "heapq"], functions=True)
    defs = funcs.split("\n\n\n")
    assert all(d.startswith(("def ", "async def ", "@")) or d.lstrip().startswith("@") for d in defs)
    assert all(parses(d) for d in defs) and "def insort_right(a, x" in funcs
    assert funcs == load_code_corpus(["bisect", "heapq"], functions=True)  # deterministic


@pytest.mark.parametrize("name", ["os.path", "../etc/passwd", "no_such_module_xyz", ""])
def test_code_corpus_refuses_what_is_not_a_stdlib_file(name):
    with pytest.raises(ValueError, match="modules|standard library"):
        code_files([name])


def test_extract_parse_compile():
    prompt = PROMPTS[0][1]
    src = extract_function(prompt, "    return a + b\n\nprint('after the body')\n")
    assert src == prompt + "    return a + b\n"
    cut = extract_function(prompt, "    x = a + b\n    return (x")  # the budget ran out mid-line
    assert cut == prompt + "    x = a + b\n"
    assert parses(src) and compiles(src) and has_body(src)
    assert parses(prompt) and not has_body(prompt)  # a docstring alone parses, but is no body
    assert not parses(prompt + "    return (a +\n")
    bad = prompt + "    nonlocal a\n    return a\n"  # parses, but the compiler refuses it
    assert parses(bad) and not compiles(bad)


def test_property_checks_run_isolated_with_a_time_limit():
    _, prompt, cases = PROMPTS[0]
    good = prompt + "    return a + b\n"
    wrong = prompt + "    return a - b\n"
    loop = prompt + "    while True:\n        pass\n"
    boom = prompt + "    raise SystemExit(3)\n"
    jobs = [(good, "add", cases), (wrong, "add", cases), (loop, "add", cases), (boom, "add", cases)]
    assert property_checks(jobs, timeout=0.3) == [True, False, False, False]
    assert property_checks([]) == []
    with pytest.raises(ValueError, match="timeout"):
        property_checks(jobs, timeout=0)


def test_scan_brackets_follows_strings_and_comments():
    assert scan_brackets("f(a, [b") == (["(", "["], None)
    assert scan_brackets('x = "(" + (y') == (["("], None)  # a bracket in a string is no bracket
    assert scan_brackets("# (\nz = {1: (2)}") == ([], None)  # nor one in a comment
    assert scan_brackets('d = """doc (\n') == ([], '"""')  # the text ends inside a docstring
    assert scan_brackets("s = 'a\\'b'(") == (["("], None)  # an escaped quote does not end it
    assert scan_brackets("a)") == ([], None)  # an unmatched closer is skipped
    with pytest.raises(TypeError, match="text"):
        scan_brackets(3)


def test_bracket_guard_masks_only_what_is_a_syntax_error_for_sure():
    from genai_lib.recipes.applications import BracketGuard, code_tokenizer

    tok = code_tokenizer("def f(x):\n    return [x]\n'\"{}")
    guard = BracketGuard(tok)
    rows = ["    return (x", "    return x", "    s = 'ab"]
    ids = torch.tensor([tok.encode(r) for r in [r.rjust(14) for r in rows]])
    out = guard(ids, torch.zeros(3, tok.vocab_size))
    allowed = [{tok.itos[j] for j in range(tok.vocab_size) if out[b, j] > float("-inf")} for b in range(3)]
    assert ")" in allowed[0] and "]" not in allowed[0] and "}" not in allowed[0]
    assert not {")", "]", "}"} & allowed[1] and "\n" in allowed[1]
    assert "\n" not in allowed[2] and ")" in allowed[2]  # inside a string: any bracket, no line break
    assert len(allowed[1]) == tok.vocab_size - 3  # nothing else is touched
    with pytest.raises(TypeError, match="tok"):
        BracketGuard("abc")


def test_constrained_completions_never_close_an_unopened_bracket():
    from genai_lib.recipes.applications import BracketGuard, code_tokenizer, complete_functions

    tok = code_tokenizer("def f(x):\n    return [x]\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=32, dropout=0.0))
    ids = torch.tensor([tok.encode("    return (x")] * 8)

    def unmatched(guard):
        g = torch.Generator().manual_seed(0)
        out = model.generate(ids, 60, temperature=2.0, generator=g, logits_processor=guard)
        rows = 0
        for row in out.tolist():
            depth, quote = 0, None
            for ch in tok.decode(row):
                if quote:
                    quote = None if ch == quote or ch == "\n" else quote
                elif ch in "'\"":
                    quote = ch
                elif ch == "#":
                    break
                else:
                    depth += (ch in "([{") - (ch in ")]}")
                    if depth < 0:
                        rows += 1
                        break
        return rows

    assert unmatched(None) > 0  # a random model closes brackets it never opened
    assert unmatched(BracketGuard(tok)) == 0
    with pytest.raises(TypeError, match="constrained"):
        complete_functions(model, tok, PROMPTS[0][1], 1, constrained="yes")


def test_docstring_prompts_are_corpus_functions_and_never_an_evaluation_prompt():
    from genai_lib.code_corpus import docstring_prompts

    prompts = docstring_prompts(["bisect", "heapq", "statistics"])
    assert prompts == docstring_prompts(["bisect", "heapq", "statistics"])  # deterministic
    assert len(prompts) > 10 and len(set(prompts)) == len(prompts)
    held_out = {name for name, _, _ in PROMPTS}
    corpus = load_code_corpus(["bisect", "heapq", "statistics"], functions=True)
    for p in prompts:
        head, doc = p.split("\n")[:2]
        name = head[4 : head.index("(")]
        assert head.startswith("def ") and head.endswith(":") and name not in held_out
        assert f"def {name}(" in corpus  # a function the corpus holds
        assert doc.startswith('    """') and doc.endswith('."""') and len(p) <= 80
        assert parses(p) and not has_body(p)  # a prompt: signature and docstring, no body yet
    assert all(len(p) <= 50 for p in docstring_prompts(["statistics"], max_chars=50))
    with pytest.raises(ValueError, match="max_chars"):
        docstring_prompts(max_chars=0)


def test_refine_code_gpt_trains_only_on_distinct_completions_that_compile(monkeypatch):
    """Expert iteration for code: the compiler is the judge, so what the model trains on is the
    set of distinct completions that parse, have a body and compile; a round with none trains
    nothing."""
    import genai_lib.recipes.applications as app

    calls = {"draws": 0, "text": []}
    good = 'def f(x):\n    """Doc."""\n    return x\n'
    outputs = [good, good, 'def f(x):\n    """Doc."""\n    return (x\n', 'def f(x):\n    """Doc."""\n    nonlocal x\n']

    def fake_complete(model, tok, prompt, n, **kw):
        calls["draws"] += 1
        return (outputs * n)[:n]

    tok = app.code_tokenizer(good)
    tiny = GPT(GPTConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=32, dropout=0.0))

    def fake_train(model, ids, **kw):
        assert model is tiny and kw["name"].startswith("code_gpt_refined")
        calls["text"].append(tok.decode(ids.tolist()))

    monkeypatch.setattr(app, "train_code_gpt", lambda **kw: (tiny, {"tokenizer": tok}))
    monkeypatch.setattr(app, "complete_functions", fake_complete)
    monkeypatch.setattr(app, "train_gpt", fake_train)
    monkeypatch.setitem(app.REFINE_CODE, "fast", {**app.REFINE_CODE["fast"], "rounds": 2, "samples": 4})
    _, info = app.refine_code_gpt(fast=True)
    assert calls["draws"] == 2 * app.REFINE_CODE["fast"]["prompts"]
    assert info["kept"] == [0.5, 0.5]  # two in four compile, the same function twice
    assert calls["text"] == [good + "\n\n\n"] * 2  # once, though it was drawn many times
    outputs[:] = [outputs[2]]  # nothing compiles: the round trains nothing
    calls["text"].clear()
    _, info = app.refine_code_gpt(fast=True)
    assert info["kept"] == [0.0, 0.0] and calls["text"] == []
