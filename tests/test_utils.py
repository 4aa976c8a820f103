import random

import numpy as np
import pytest
import torch

from genai_lib import utils


def test_get_device_default_and_forced(monkeypatch):
    monkeypatch.delenv("GENAI_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert utils.get_device().type == expected
    assert utils.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("GENAI_DEVICE", "cpu")
    assert utils.get_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_get_device_refuses_missing_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        utils.get_device("cuda")


def test_seed_everything_reproducible():
    g1 = utils.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g1))
    g2 = utils.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    torch.testing.assert_close(a[2], b[2])
    torch.testing.assert_close(a[3], b[3])
    assert isinstance(g1, torch.Generator)


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)])
def test_seed_everything_bad(bad, exc):
    with pytest.raises(exc, match="seed"):
        utils.seed_everything(bad)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_fast_mode(monkeypatch, value, expected):
    monkeypatch.setenv("GENAI_FAST", value)
    assert utils.fast_mode() is expected


def test_cache_dir_env_and_fast_subfolder(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("GENAI_FAST", "0")
    assert utils.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("GENAI_FAST", "1")
    assert utils.cache_dir() == tmp_path / "c" / "fast"
    assert utils.cache_dir().is_dir()
    assert utils.cache_root() == tmp_path / "c"


def test_show_source():
    src = utils.show_source(utils.fast_mode)
    assert "def fast_mode" in str(src)
    assert src._repr_markdown_().startswith("```python")
    with pytest.raises(TypeError, match="Python function"):
        utils.show_source(3)


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import sys, genai_lib; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


try:
    import fcntl
except ImportError:  # not POSIX: fill_lock takes no lock there
    fcntl = None
posix_only = pytest.mark.skipif(fcntl is None, reason="fill_lock locks with fcntl, POSIX only")


def _held_elsewhere(path) -> bool:
    """Whether another open file description holds the lock fill_lock takes for ``path``."""
    with open(path.with_name(f".{path.name}.lock"), "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


@posix_only
def test_fill_lock_is_exclusive_reentrant_and_released(tmp_path):
    entry = tmp_path / "sub" / "model.pt"
    with utils.fill_lock(entry) as got:
        assert got and _held_elsewhere(entry)
        with utils.fill_lock(entry) as again:  # the same process nests without waiting
            assert again
        assert _held_elsewhere(entry)  # the inner exit did not release the outer hold
    assert not _held_elsewhere(entry)
    with pytest.raises(RuntimeError), utils.fill_lock(entry):
        raise RuntimeError("a failed fill")
    assert not _held_elsewhere(entry)  # released on an exception too


@posix_only
def test_fill_lock_gives_up_after_its_wait_and_says_so(tmp_path, capsys):
    entry = tmp_path / "model.pt"
    with open(tmp_path / ".model.pt.lock", "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)  # as another process would
        with utils.fill_lock(entry, wait_s=0.2, poll_s=0.05) as got:
            assert got is False
    err = capsys.readouterr().err
    assert "another process is filling" in err and "filling it here too" in err


@pytest.mark.parametrize("kw", [{"wait_s": -1.0}, {"poll_s": 0.0}])
def test_fill_lock_refuses_impossible_waits(tmp_path, kw):
    with pytest.raises(ValueError, match="wait_s must be"), utils.fill_lock(tmp_path / "m.pt", **kw):
        pass
