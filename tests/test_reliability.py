"""Issue 18, section 1: nothing stale, nothing unloadable, nothing lost, nothing that kills Python.

- the cache never hands back weights trained on other data (tensor keys are hashed by content);
- configs hold plain Python numbers, so every checkpoint that stores one loads with weights_only;
- processes filling an empty cache at once all succeed (unique temporary files, atomic renames);
- ``fit``/``fit_gan`` refuse a bad argument before step one, leaving no checkpoint behind;
- sizes no machine can allocate are refused before they reach native code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from genai_lib import checkpoint
from genai_lib.data import make_loader
from genai_lib.models.classifier import ClassifierConfig
from genai_lib.models.gan import DCGAN, DCGANConfig, GANConfig
from genai_lib.models.gpt import GPTConfig
from genai_lib.models.lstm import LSTMConfig
from genai_lib.models.mixture import MixtureConfig
from genai_lib.models.ngram import NGramConfig
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.models.vaegan import VAEGAN, VAEGANConfig
from genai_lib.tokenizer import BPETokenizer
from genai_lib.train import fit, fit_gan
from genai_lib.train_cache import fingerprint, load_or_train
from tests._tiny import Tiny, TinyConfig, tiny_data

ROOT = Path(__file__).resolve().parent.parent


def _loader(n: int = 64, batch_size: int = 8):
    x, y = tiny_data(n)
    return make_loader(x, y, batch_size=batch_size)


# --------------------------------------------------------------------------- stale cache entries


def test_cache_key_hashes_tensor_content_not_its_abbreviated_str(tmp_path, monkeypatch):
    """The issue's repro: two keys that differ only in element 2,500 of 5,000 must not share weights."""
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    data = torch.arange(5000.0)
    changed = data.clone()
    changed[2500] = -1.0
    assert str(data) == str(changed)  # what json.dumps(default=str) used to hash
    kw = {"name": "stale", "steps": 2, "progress": False}
    first = load_or_train(Tiny(TinyConfig()), _loader(), key={"data": data}, **kw)
    second = load_or_train(Tiny(TinyConfig()), _loader(), key={"data": changed}, **kw)
    again = load_or_train(Tiny(TinyConfig()), _loader(), key={"data": changed}, **kw)
    assert not first.from_cache and not second.from_cache
    assert again.from_cache


@pytest.mark.parametrize(
    "key",
    [torch.arange(6.0), np.arange(6.0), torch.arange(6, dtype=torch.int32), torch.ones(2, 3, dtype=torch.bfloat16)],
    ids=["torch float", "numpy", "int32", "bfloat16"],
)
def test_fingerprint_sees_dtype_shape_and_every_element(key):
    model = Tiny(TinyConfig())
    base = fingerprint(model, {}, {"d": key})["digest"]
    if isinstance(key, np.ndarray):
        same, flipped = key.copy(), key.copy()
        flipped.reshape(-1)[-1] += 1
        others = (flipped, key.reshape(-1, 1), key.astype(np.float32))
    else:
        same, flipped = key.clone(), key.clone()
        flipped.view(-1)[-1] += 1
        others = (flipped, key.reshape(-1, 1), key.double() if key.dtype != torch.float64 else key.float())
    for other in others:
        assert fingerprint(model, {}, {"d": other})["digest"] != base
    assert fingerprint(model, {}, {"d": same})["digest"] == base


@pytest.mark.parametrize(
    "key, match",
    [
        ({"f": lambda s: s}, "function"),
        ({"s": {1, 2}}, "set"),
        ({1: "a"}, "non-string key"),
        ({"o": object()}, "object"),
        ({"g": torch.Generator()}, "Generator"),
    ],
    ids=["lambda", "set", "int dict key", "object", "generator"],
)
def test_keys_that_cannot_be_hashed_faithfully_are_refused(tmp_path, monkeypatch, key, match):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    with pytest.raises(TypeError, match=match):
        load_or_train(Tiny(TinyConfig()), _loader(), name="k", key=key, steps=1, progress=False)
    assert list(tmp_path.rglob("*.pt")) == []


# --------------------------------------------------------------------------- configs that save and load

_NUMPY_CONFIGS = [
    (VAEConfig, {"z_dim": np.int64(3), "hidden": np.int32(16), "beta": np.float64(0.5)}),
    (VAEConfig, {"image_shape": (np.int64(1), np.int64(8), 8), "beta": torch.tensor(0.25)}),
    (GANConfig, {"z_dim": np.int64(4), "gp_weight": np.float32(0.5), "r1_weight": np.float64(0.0)}),
    (DCGANConfig, {"width": np.int16(8), "gp_weight": np.float64(10.0), "batchnorm": np.bool_(True)}),
    (VAEGANConfig, {"z_dim": np.int64(4), "kl_weight": np.float64(0.5)}),
    (GPTConfig, {"vocab_size": np.int64(11), "n_embd": np.int64(16), "dropout": np.float64(0.1)}),
    (LSTMConfig, {"vocab_size": np.int64(11), "hidden": np.int64(8), "dropout": np.float32(0.0)}),
    (NGramConfig, {"order": np.int64(2), "vocab_size": np.int64(5), "k": np.float64(0.5)}),
    (MixtureConfig, {"n_components": np.int64(2), "min_std": np.float64(1e-2)}),
    (ClassifierConfig, {"width": np.int64(4), "dropout": np.float64(0.1), "shift": np.int8(1)}),
]


@pytest.mark.parametrize(
    "cls, fields", _NUMPY_CONFIGS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(_NUMPY_CONFIGS)]
)
def test_every_config_holds_plain_python_numbers(tmp_path, cls, fields):
    kwargs = {"vocab_size": 11} if cls in (GPTConfig, LSTMConfig) else {}
    cfg = cls(**{**kwargs, **fields})
    for name, given in fields.items():
        value = getattr(cfg, name)
        items = value if isinstance(value, tuple) else (value,)
        assert all(type(v) in (int, float, bool) for v in items), (name, type(value))
        assert value == (tuple(int(v) for v in given) if isinstance(given, tuple) else given.item())
    path = checkpoint.save_checkpoint(tmp_path / "c.pt", {"config": checkpoint.config_dict(cfg)})
    assert checkpoint.load_checkpoint(path, expect_config=cfg)["config"] == checkpoint.config_dict(cfg)


def test_numpy_config_trains_saves_and_resumes(tmp_path):
    """VAEConfig(beta=np.float64(0.5)): fit saves it, load_checkpoint loads it, resume continues."""
    cfg = VAEConfig(image_shape=(1, 8, 8), z_dim=2, hidden=16, depth=1, beta=np.float64(0.5))
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "vae.pt"
    torch.manual_seed(0)
    first = fit(VAE(cfg), make_loader(x, batch_size=8), steps=1, checkpoint=path, progress=False)
    state = checkpoint.load_checkpoint(path, expect_config=cfg)
    assert state["step"] == 1 and state["config"]["beta"] == 0.5
    torch.manual_seed(0)
    resumed = fit(VAE(cfg), make_loader(x, batch_size=8), steps=2, checkpoint=path, progress=False)
    assert resumed.step == [1, 2] and resumed.logs["loss"][0] == first.logs["loss"][0]


def test_numpy_learning_rate_and_meta_do_not_break_the_final_save(tmp_path):
    """An lr or a meta value of np.float64 used to be found only when the run's first checkpoint was written."""
    path = tmp_path / "np.pt"
    history = fit(
        Tiny(TinyConfig()), _loader(), steps=3, lr=np.float64(1e-2), meta={"a": np.float64(1.0)}, checkpoint=path
    )
    assert history.step == [1, 2, 3]
    state = checkpoint.load_checkpoint(path)
    assert state["meta"] == {"a": 1.0} and type(state["optimizers"]["loss"]["param_groups"][0]["lr"]) is float


# --------------------------------------------------------------------------- concurrent first use

_READY = """
import os, sys, time
from pathlib import Path
flag = Path(sys.argv[1])
(flag.parent / f"ready{sys.argv[2]}").touch()
while not flag.exists():
    time.sleep(0.005)
"""


def _run_together(body: str, n: int, cache: Path, tmp: Path, timeout: float = 120.0) -> list[str]:
    """Start ``n`` Python processes that import what ``body`` needs, wait until all are ready, then run
    ``body`` in all of them at the same moment; returns their stdout (each must exit 0)."""
    imports, _, work = body.partition("# --- go\n")
    script = textwrap.dedent(imports) + _READY + textwrap.dedent(work)
    env = {**os.environ, "GENAI_CACHE_DIR": str(cache), "GENAI_FAST": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    go = tmp / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go), str(i)],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + timeout
    while len(list(tmp.glob("ready*"))) < n and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.01)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"a process failed:\n{err[-3000:]}"
        outs.append(out.strip())
    return outs


_MNIST = """
from genai_lib import data
# --- go
x, y = data._mnist_arrays()
import hashlib
print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest())
"""


@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.slow)])  # 3 fresh interpreters: 5-10 s
def test_processes_filling_an_empty_mnist_cache_at_once_all_succeed(tmp_path, n):
    cache = tmp_path / "cache"
    work = tmp_path / "work"
    work.mkdir()
    outs = _run_together(_MNIST, n, cache, work)
    assert len(set(outs)) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["mnist_5k.npz"]  # no temporary file left behind


_TRAIN = """
import torch
from genai_lib.data import load_mnist, make_loader
from genai_lib.models.vae import VAE, VAEConfig
from genai_lib.train_cache import load_or_train
# --- go
x, _ = load_mnist("train", limit=64)
torch.manual_seed(0)
model = VAE(VAEConfig(z_dim=2, hidden=16, depth=1))
loader = make_loader(x, batch_size=16, generator=torch.Generator().manual_seed(0))
history = load_or_train(model, loader, name="race", key={"n": len(x)}, steps=6, progress=False)
import hashlib
blob = b"".join(v.detach().cpu().numpy().tobytes() for v in model.state_dict().values())
print(hashlib.sha256(blob).hexdigest(), history.from_cache)
"""


@pytest.mark.slow  # two fresh interpreters importing torch and training: 6-10 s on 2 cores
def test_two_processes_train_one_cached_model_on_an_empty_cache_at_once(tmp_path):
    """Issue 17 too: MNIST loading and load_or_train's checkpoint writes race; both runs succeed
    and end with identical weights, the entry they leave loads, and it was trained once: the
    second process waited for the first (fill_lock) and loaded its weights."""
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    outs = _run_together(_TRAIN, 2, cache, work)
    digests = {o.split()[0] for o in outs}
    assert len(digests) == 1, outs
    assert sorted(o.split()[1] for o in outs) == ["False", "True"], outs  # one trained, one loaded
    files = sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))
    assert files == ["mnist_5k.npz", "race.pt"]
    state = checkpoint.load_checkpoint(cache / "fast" / "race.pt")
    blob = b"".join(v.numpy().tobytes() for v in state["model"].values())
    assert hashlib.sha256(blob).hexdigest() in digests


def test_damaged_mnist_cache_is_rebuilt(tmp_path, monkeypatch):
    from genai_lib import data

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    (tmp_path / "mnist_5k.npz").write_bytes(b"PK\x03\x04 half a zip")
    x, y = data._mnist_arrays()
    assert x.shape == (5000, 784) and y.shape == (5000,)
    with np.load(tmp_path / "mnist_5k.npz") as f:
        assert f["x"].shape == (5000, 784)


# --------------------------------------------------------------------------- failing before step one


class _Counting(Tiny):
    """Tiny, counting how many times its loss ran."""

    calls = 0

    def loss(self, batch):
        type(self).calls += 1
        return super().loss(batch)


def _readonly(tmp: Path) -> Path:
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "run.pt"


def _file_parent(tmp: Path) -> Path:
    (tmp / "afile").write_text("not a folder")
    return tmp / "afile" / "run.pt"


_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_EARLY = [
    # (id, fit keyword arguments built from tmp, exception, message)
    ("checkpoint parent is a file", lambda t: {"checkpoint": _file_parent(t)}, ValueError, "is a file, not a folder"),
    ("checkpoint is a directory", lambda t: {"checkpoint": t}, ValueError, "is a directory"),
    ("checkpoint folder is read-only", lambda t: {"checkpoint": _readonly(t)}, PermissionError, "not writable"),
    ("checkpoint of a wrong type", lambda t: {"checkpoint": 3}, TypeError, "checkpoint must be a path"),
    ("empty val_loader", lambda t: {"val_loader": []}, ValueError, "val_loader is empty"),
    ("one-shot val_loader", lambda t: {"val_loader": iter(_loader())}, TypeError, "re-iterable"),
    ("val_every without val_loader", lambda t: {"val_every": 2}, ValueError, "val_every needs a val_loader"),
    ("negative lr schedule", lambda t: {"lr_schedule": lambda s: -1.0}, ValueError, "lr_schedule"),
    (
        "NaN lr schedule at the last step",
        lambda t: {"lr_schedule": lambda s: float("nan") if s == 3 else 1.0},
        ValueError,
        r"lr_schedule\(3\)",
    ),
    ("unknown lr schedule name", lambda t: {"lr_schedule": "linear"}, ValueError, "lr_schedule must be"),
    ("negative grad_clip", lambda t: {"grad_clip": -1.0}, ValueError, "grad_clip must be > 0"),
    ("NaN grad_clip", lambda t: {"grad_clip": float("nan")}, ValueError, "grad_clip"),
    ("inf learning rate", lambda t: {"lr": float("inf")}, ValueError, "lr must be finite"),
    (
        "optimizer over another model",
        lambda t: {"optimizer": torch.optim.SGD(Tiny(TinyConfig()).parameters(), 0.1)},
        ValueError,
        "not a parameter of the model",
    ),
    ("optimizer that is a class", lambda t: {"optimizer": torch.optim.SGD}, TypeError, "optimizer must be"),
    ("numpy generator", lambda t: {"generator": np.random.default_rng(0)}, TypeError, "torch.Generator"),
    ("int generator", lambda t: {"generator": 0}, TypeError, "torch.Generator"),
    ("hook that is not callable", lambda t: {"hooks": [3]}, TypeError, "hook"),
    ("callback that is not callable", lambda t: {"callbacks": ["x"]}, TypeError, "callback"),
    ("meta of an unsaveable type", lambda t: {"meta": {"f": object()}}, TypeError, "meta"),
    ("meta that is not a dict", lambda t: {"meta": [1]}, TypeError, "meta must be a dict"),
    ("log_every 0", lambda t: {"log_every": 0}, ValueError, "log_every must be > 0"),
    (
        "checkpoint_every without a path",
        lambda t: {"checkpoint_every": 1, "checkpoint": None},
        ValueError,
        "checkpoint path",
    ),
    ("accumulate 0", lambda t: {"accumulate": 0}, ValueError, "accumulate must be > 0"),
]


@pytest.mark.parametrize("name, kwargs, exc, match", _EARLY, ids=[c[0] for c in _EARLY])
def test_fit_refuses_bad_arguments_before_step_one(tmp_path, name, kwargs, exc, match):
    if "read-only" in name and _ROOT:
        pytest.skip("root may write into a read-only folder")
    kw = kwargs(tmp_path)
    kw.setdefault("checkpoint", tmp_path / "out" / "run.pt")
    _Counting.calls = 0
    with pytest.raises(exc, match=match):
        fit(_Counting(TinyConfig()), _loader(), steps=4, progress=False, **kw)
    assert _Counting.calls == 0, "training started before the argument was refused"
    assert list(tmp_path.rglob("*.pt")) == [] and list(tmp_path.rglob("*.tmp")) == []


def _gan_loader(n: int, batch_size: int, drop_last: bool = False):
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return make_loader(x, batch_size=batch_size, drop_last=drop_last)


_GAN_EARLY = [
    ("lr_g 0", {"lr_g": 0.0}, ValueError, "lr_g must be > 0"),
    ("lr_d inf", {"lr_d": float("inf")}, ValueError, "lr_d must be finite"),
    ("n_critic 0", {"n_critic": 0}, ValueError, "n_critic must be > 0"),
    ("betas out of range", {"betas": (1.5, 0.9)}, ValueError, "betas"),
    ("divergence of a wrong type", {"divergence": "off"}, TypeError, "divergence"),
    ("checkpoint is a directory", {"checkpoint": "."}, ValueError, "is a directory"),
    ("epochs and steps", {"epochs": 1}, ValueError, "exactly one"),
]


@pytest.mark.parametrize("name, kw, exc, match", _GAN_EARLY, ids=[c[0] for c in _GAN_EARLY])
def test_fit_gan_refuses_bad_arguments_before_step_one(tmp_path, monkeypatch, name, kw, exc, match):
    monkeypatch.chdir(tmp_path)
    model = DCGAN(DCGANConfig(z_dim=4, width=4))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(exc, match=match):
        fit_gan(model, _gan_loader(8, 4), **{"steps": 2, "progress": False, **kw})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert list(tmp_path.rglob("*.pt")) == []


@pytest.mark.parametrize(
    "model",
    [lambda: DCGAN(DCGANConfig(z_dim=4, width=4)), lambda: VAEGAN(VAEGANConfig(z_dim=4, width=4))],
    ids=["DCGAN", "VAE-GAN"],
)
@pytest.mark.parametrize(
    "loader, match",
    [
        (lambda: _gan_loader(9, 4), "last batch holds 1 example"),
        (lambda: _gan_loader(8, 1), "batch_size=1"),
        (lambda: torch.utils.data.DataLoader(torch.rand(9, 1, 28, 28), batch_size=4), "last batch holds 1 example"),
        (lambda: [torch.rand(4, 1, 28, 28), torch.rand(1, 1, 28, 28)], "batch of one"),
    ],
    ids=["TensorLoader 9 in 4s", "batch_size 1", "DataLoader 9 in 4s", "a list ending in a batch of one"],
)
def test_gans_with_a_final_batch_of_one_fail_clearly(tmp_path, model, loader, match):
    """Batch norm cannot train on one example: refused before training where the loader says its sizes,
    and with a clear message (not torch's) at the batch otherwise."""
    m = model()
    with pytest.raises(ValueError, match=match):
        fit_gan(m, loader(), epochs=1, progress=False, checkpoint=tmp_path / "g.pt")
    fit_gan(model(), _gan_loader(9, 4, drop_last=True), epochs=1, progress=False)  # the advised fix trains


# --------------------------------------------------------------------------- sizes no machine has


def test_bpe_vocabulary_of_2_to_the_40_is_refused_not_an_interpreter_abort():
    with pytest.raises(ValueError, match=r"at most 1,048,576"):
        BPETokenizer.train("abc abc", 2**40)


@pytest.mark.parametrize(
    "make",
    [
        lambda: VAEConfig(z_dim=10**9),
        lambda: VAEConfig(hidden=10**6, depth=3),
        lambda: VAEConfig(image_shape=(3, 10**5, 10**5)),
        lambda: GPTConfig(vocab_size=2**40),
        lambda: GPTConfig(vocab_size=100, n_embd=2**20, n_head=1),
        lambda: LSTMConfig(vocab_size=2**40),
        lambda: LSTMConfig(vocab_size=10, hidden=10**6),
        lambda: GANConfig(hidden=10**6),
        lambda: DCGANConfig(width=10**5),
        lambda: VAEGANConfig(z_dim=10**9),
        lambda: NGramConfig(order=1, vocab_size=2**40),
        lambda: MixtureConfig(dim=10**5),
        lambda: ClassifierConfig(feature_dim=10**9),
    ],
    ids=lambda f: "",
)
def test_absurd_model_sizes_are_refused_with_the_memory_they_need(make):
    with pytest.raises(ValueError, match=r"would need [\d,]+ .* GiB of memory"):
        make()


def test_real_sizes_are_not_refused():
    """The limits never bother real use: GPT-2 small and a 256k vocabulary pass."""
    GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    GPTConfig(vocab_size=256_000, n_embd=1024, n_head=16)
    VAEConfig(image_shape=(3, 64, 64), z_dim=512, hidden=4096)
    dataclasses.replace(DCGANConfig(), width=512)
