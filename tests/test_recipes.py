"""Tests for genai_lib.recipes: the shared recipes are valid, cached, and the benchmarks call them."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from genai_lib.models.gan import DCGANConfig
from genai_lib.models.vae import VAEConfig
from genai_lib.recipes import gan as gan_recipes
from genai_lib.recipes import vae as vae_recipes
from genai_lib.recipes.gan import GAN_MNIST, GANRecipe
from genai_lib.recipes.language import CHAR_GPT, train_char_gpt
from genai_lib.recipes.vae import VAE_MNIST

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_call_the_shared_recipes():
    vae = _load_benchmark("vae_mnist")
    assert vae.RUNS == {**VAE_MNIST, **vae_recipes.VAE_BINARISED} and vae.train_vae is vae_recipes.train_vae
    assert all(vae.RUNS[name] is r for name, r in VAE_MNIST.items())
    gan = _load_benchmark("gan_mnist")
    assert gan.RUNS is GAN_MNIST and gan.VAE_RUN is VAE_MNIST["conv16"]
    assert gan.train_gan is gan_recipes.train_gan and gan.train_vae is vae_recipes.train_vae
    from genai_lib.recipes import assistant

    bench = _load_benchmark("assistant")
    assert bench.train_sft is assistant.train_sft and bench.train_dpo is assistant.train_dpo
    assert bench.train_reward_model is assistant.train_reward_model


def test_vae_recipe_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    recipe = vae_recipes.VAERecipe(VAEConfig(z_dim=2, hidden=16, depth=1), epochs=1, lr=3e-3, fast_epochs=1)
    rng_before = torch.random.get_rng_state()
    model, hist = vae_recipes.train_vae(recipe, name="t", fast=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before) and not model.training
    assert not hist.from_cache and hist.logs["loss"][-1] < hist.logs["loss"][0]
    again, hist2 = vae_recipes.train_vae(recipe, name="t", fast=True)
    assert hist2.from_cache and torch.equal(again.decoder[0][0].weight, model.decoder[0][0].weight)
    with pytest.raises(ValueError, match="needs a name"):
        vae_recipes.train_vae(recipe, fast=True)
    with pytest.raises(ValueError, match="one of"):
        vae_recipes.train_vae("mlp3", fast=True)


def test_gan_recipe_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    recipe = GANRecipe(DCGANConfig(z_dim=4, width=4), {"steps": 3, "n_critic": 1}, fast_steps=3)
    model, hist = gan_recipes.train_gan(recipe, name="t", fast=True)
    assert len(hist.step) == 3 and not hist.from_cache
    same = gan_recipes.gan_model(recipe, fast=True)  # the recipe's untrained model, seed 0
    again, hist2 = gan_recipes.train_gan(recipe, name="t", model=same, fast=True)
    assert hist2.from_cache and again is same
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


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


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: vae_recipes.train_vae("mlp2", seed=-1, fast=True), ValueError, "seed must be >= 0"),
        (lambda: vae_recipes.train_vae("mlp2", seed=1.5, fast=True), TypeError, "seed must be an int"),
        (lambda: gan_recipes.train_gan("dcgan", hooks=3, fast=True), TypeError, "hooks must be a list"),
        (lambda: gan_recipes.train_ring("fixed", hooks=3, fast=True), TypeError, "hooks must be a list"),
    ],
)
def test_recipe_arguments_are_checked(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_mnist_classifier_refuses_a_numpy_generator():
    import numpy as np

    from genai_lib.recipes.classifier import mnist_classifier

    with pytest.raises(TypeError, match="torch.Generator"):
        mnist_classifier(generator=np.random.default_rng(0))


def test_a_snapshot_that_a_checkpoint_cannot_hold_is_refused_at_once():
    import numpy as np

    from genai_lib.phases import Snapshots

    snaps = Snapshots(lambda step: {"grid": np.zeros(3)}, every=2)
    with pytest.raises(TypeError, match="ndarray"):
        snaps.after_step(1)
    ok = Snapshots(lambda step: {"grid": torch.zeros(3), "fid": 1.0, "steps": [step]}, every=2)
    ok.after_step(1)
    assert ok.steps == [1]


def test_binarised_vae_recipes_train_with_dynamic_binarisation():
    assert set(vae_recipes.VAE_BINARISED) == {"bin_mlp16", "bin_conv16"}
    assert all(r.config.binarize and r.config.shift == 0 for r in vae_recipes.VAE_BINARISED.values())
    model, history = vae_recipes.train_vae("bin_mlp16", fast=True, cache=False)
    assert model.cfg.binarize and not model.training
    assert history["loss"][-1] < history["loss"][0]  # it learned


def test_stylegan_recipe_trains_once_then_loads_and_measures(monkeypatch, tmp_path):
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier
    from genai_lib.recipes import stylegan as sg

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    recipe = dataclasses.replace(sg.STYLEGAN_MNIST, fast_steps=6)
    rng_before = torch.random.get_rng_state()
    model, hist, snaps = sg.train_stylegan(recipe, name="t", fast=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before) and not model.training
    assert not hist.from_cache and hist.step[-1] == 6 and snaps.steps == [1, 2, 3, 4, 5, 6]
    assert snaps.items[0]["images"].shape == (16, 1, 28, 28) and len(hist.logs["d_reg_loss"]) == 1
    again, hist2, snaps2 = sg.train_stylegan(recipe, name="t", fast=True)
    assert hist2.from_cache and snaps2.steps == snaps.steps
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    clf = ImageClassifier(ClassifierConfig()).eval()
    rates = sg.mixing_rates(model, clf, n=40)
    assert rates["crossover"] == [1, 2, 3, 4] and all(0 <= r <= 1 for r in rates["coarse"] + rates["fine"])
    sweep = sg.truncation_sweep(model, clf, [0.5, 1.0], n=40)
    assert len(sweep["fid"]) == 2 and all(0 <= p <= 1 for p in sweep["precision"])
    ppl = sg.path_lengths(model, clf, n=40)
    assert ppl["z"] > 0 and ppl["w"] > 0 and ppl["n"] == 40
    assert sg.path_lengths(model, clf, n=40) == ppl  # cached, keyed by the weights
    var = sg.noise_variance(model, n_w=2, draws=4)
    assert set(var) == {"all", "7", "14", "28", "mean"} and var["all"].shape == (2, 28, 28)
    grid = sg.mixing_grid(model, 2, 3, crossover=sg.COARSE)
    assert grid["grid"].shape == (2, 3, 1, 28, 28) and grid["fine"].shape == (3, 1, 28, 28)
    # the row's coarse styles with a column's fine ones: crossover L copies the row image exactly
    full = sg.mixing_grid(model, 2, 3, crossover=model.cfg.num_ws)
    torch.testing.assert_close(full["grid"][:, 1], full["coarse"])
    with pytest.raises(TypeError, match="StyleGANRecipe"):
        sg.train_stylegan({"steps": 3}, fast=True)
    with pytest.raises(ValueError, match=r"psi must be in \[0, 1\]"):
        sg.truncation_sweep(model, clf, [1.2], n=40)


def test_the_stylegan_benchmark_calls_the_shared_recipe():
    from genai_lib.recipes import stylegan as sg

    bench = _load_benchmark("stylegan_mnist")
    assert bench.STYLEGAN_MNIST is sg.STYLEGAN_MNIST and bench.train_stylegan is sg.train_stylegan
    assert bench.dcgan_quality is sg.dcgan_quality and bench.COARSE == sg.COARSE
    assert 0.5 in bench.PSIS and 1.0 in bench.PSIS  # the two ends its last line reports


def test_assistant_recipes_train_once_then_load(monkeypatch, tmp_path):
    """Chapter 8.3's pipeline in fast mode: SFT, reward model and DPO train through fit, are
    cached, and a second call loads them (same weights)."""
    from genai_lib.recipes.assistant import (
        chat_base,
        instruction_splits,
        preference_data,
        train_dpo,
        train_reward_model,
        train_sft,
    )

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GENAI_FAST", "1")
    cb = chat_base()
    train, pair_prompts, test = instruction_splits(cb)
    assert not {i.prompt for i in train + pair_prompts} & {i.prompt for i in test}
    sft, hist = train_sft(cb, train)
    assert not hist.from_cache and hist.logs["loss"][-1] < hist.logs["loss"][0]
    pairs = preference_data(cb, sft, pair_prompts[:32])
    rm, rm_hist = train_reward_model(cb, sft, pairs)
    dpo, dpo_hist = train_dpo(cb, sft, pairs)
    again, hist2 = train_sft(cb, train)
    assert hist2.from_cache
    torch.testing.assert_close(again.state_dict(), sft.state_dict())
    assert train_reward_model(cb, sft, pairs)[1].from_cache and train_dpo(cb, sft, pairs)[1].from_cache
    assert dpo_hist.logs["dpo"][0] == pytest.approx(math.log(2), abs=1e-4)  # DPO starts at the reference
