"""Tests for genai_lib.models.recipes: the shared recipes are valid and the benchmarks read them."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from genai_lib.models.gan import DCGANConfig
from genai_lib.models.recipes import CHAR_GPT, GAN_MNIST, VAE_MNIST, GANRecipe, train_char_gpt
from genai_lib.models.vae import VAEConfig

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_use_the_shared_recipes():
    assert _load_benchmark("vae_mnist").RUNS is VAE_MNIST
    gan = _load_benchmark("gan_mnist")
    assert gan.RUNS is GAN_MNIST and gan.VAE_RUN is VAE_MNIST["conv16"]


def test_vae_recipes_cover_the_benchmark_models():
    assert set(VAE_MNIST) == {"mlp2", "mlp16", "conv16"}
    for r in VAE_MNIST.values():
        assert isinstance(r.config, VAEConfig) and r.epochs > 0 and r.lr > 0 and r.batch_size > 0
    assert VAE_MNIST["mlp2"].config.z_dim == 2 and VAE_MNIST["conv16"].config.arch == "conv"


def test_gan_recipe_is_read_only_and_validated():
    r = GAN_MNIST["dcgan"]
    assert r.steps == r.fit["steps"] > 0
    with pytest.raises(TypeError):
        r.fit["steps"] = 1  # a notebook cannot change a shared recipe by accident
    with pytest.raises(TypeError, match="DCGANConfig or VAEGANConfig"):
        GANRecipe(VAEConfig(), {"steps": 1})
    with pytest.raises(ValueError, match="'steps'"):
        GANRecipe(DCGANConfig(), {"lr_g": 1e-3})


def test_char_gpt_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 60)
    rng_before = torch.random.get_rng_state()
    model, hist = train_char_gpt(stream, 10, fast=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert model.cfg == CHAR_GPT["fast"].config(10) and model.cfg.pos == "rope"
    assert not hist.from_cache and len(hist.step) > 0 and hist.logs["loss"][-1] < 0.5 * hist.logs["loss"][0]
    again, hist2 = train_char_gpt(stream, 10, fast=True)
    assert hist2.from_cache
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_char_gpt_custom_recipe_has_its_own_cache_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 60)
    short = dataclasses.replace(CHAR_GPT["fast"], steps=20)
    model, _ = train_char_gpt(stream, 10, recipe=short)
    assert sorted(p.name for p in tmp_path.rglob("*.pt")) == ["ch7_gpt_english_custom.pt"]
    with pytest.raises(TypeError, match="CharGPTRecipe"):
        train_char_gpt(stream, 10, recipe={"steps": 5})
