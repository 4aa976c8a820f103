"""Tests for genai_lib.models.recipes: the shared recipes are valid and the benchmarks read them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from genai_lib.models.gan import DCGANConfig
from genai_lib.models.recipes import GAN_MNIST, VAE_MNIST, GANRecipe
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
