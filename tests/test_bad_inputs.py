"""Table-driven bad-input tests (issue 18): every bad or extreme input to the public API of genai_lib
fails early with the right exception and a message that says what was expected and what came.

Each row is one line: ``(id, callable(tmp_path), exception, regex of the message)``. The rows are
grouped by module; conversions that replace a refusal (uint8 token ids, float64 images, ...) are
tested after the table against the canonical dtype.
"""

import io
import os
import pickle
import random
from functools import cache

import numpy as np
import pytest
import torch

from genai_lib import (
    attribution,
    checkpoint,
    compress,
    distributed,
    interpret,
    plotting,
    shapes,
    train,
    train_cache,
    widgets,
)
from genai_lib._checks import check_generator, check_positive, check_probability, check_tensor
from genai_lib.audio import check_audio, render_notes, synth_tones, wav_bytes, windows
from genai_lib.data import TensorLoader, load_digits8, load_mnist, make_loader, mnist_loaders, toy_2d
from genai_lib.history import History, TrainingDivergedError
from genai_lib.instruct import ChatTemplate, corrupt, exact_match, make_instructions, pad_batch, preference_pairs
from genai_lib.metrics import (
    classifier_features,
    conditional_accuracy,
    frechet_distance,
    image_quality,
    kid,
    precision_recall,
    ring_metrics,
)
from genai_lib.models._layers import (
    EMA,
    ConvDecoder28,
    ConvEncoder28,
    mlp,
    random_distort,
    random_shift,
    reparameterize,
)
from genai_lib.models.attention import CausalSelfAttention, KVCache, rope_tables
from genai_lib.models.classifier import ClassifierConfig, ImageClassifier
from genai_lib.models.gan import DCGAN, DCGANConfig, GANConfig, ToyGAN, interpolate
from genai_lib.models.gpt import GPT, GPTConfig, estimate_mfu, extend_vocab
from genai_lib.models.lpc import LinearPredictor, LPCConfig
from genai_lib.models.lstm import LSTMLM, LSTMConfig
from genai_lib.models.mixture import GaussianMixture, MixtureConfig, fit_em, kmeans_plus_plus
from genai_lib.models.ngram import NGram, NGramConfig
from genai_lib.models.preference import DPOLoss, RewardModel, SFTLoss, bradley_terry_loss, dpo_loss, masked_nll
from genai_lib.models.vae import VAE, VAEConfig, bernoulli_nll, gaussian_kl, neg_elbo
from genai_lib.models.vaegan import VAEGAN, VAEGANConfig
from genai_lib.models.wavenet import WaveNet, WaveNetConfig, mu_law_decode, mu_law_encode, receptive_field
from genai_lib.music import ChoraleTokenizer, load_chorales
from genai_lib.music_metrics import pitch_class_histogram, total_variation
from genai_lib.phases import DivergenceRule, Phase, Snapshots
from genai_lib.sampling import (
    apply_temperature,
    check_sampling,
    choose_next,
    generate_tokens,
    greedy,
    sample_next,
    top_k_filter,
    top_p_filter,
)
from genai_lib.text import (
    BPTTLoader,
    batch_windows,
    bits_per_char,
    bptt_batches,
    evaluate_lm,
    load_corpus,
    sliding_nats,
    text_loader,
)
from genai_lib.tokenizer import BPETokenizer, CharTokenizer, bpe_merges, check_token_ids
from genai_lib.utils import get_device, normal_noise, seed_everything, show_source, split_batch, uniform_noise
from tests._tiny import Tiny, TinyConfig, tiny_data

NAN, INF = float("nan"), float("inf")
NPGEN = np.random.default_rng(0)  # a NumPy generator: the wrong kind


class _Evil:
    """A pickle payload that would run code when loaded."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/genai_pwned",))


def _good_ckpt(path):
    model = Tiny(TinyConfig())
    checkpoint.save_checkpoint(
        path, {"model": model.state_dict(), "config": checkpoint.config_dict(model.cfg), "step": 1}
    )
    return path


def _loader():
    x, y = tiny_data()
    return make_loader(x, y, batch_size=8)


# --------------------------------------------------------------------------- tiny models, built once


def _seeded(make):
    torch.manual_seed(0)
    return make()


@cache
def vae():
    return _seeded(lambda: VAE(VAEConfig(z_dim=2, hidden=8, depth=1)))


@cache
def gan():
    return _seeded(lambda: DCGAN(DCGANConfig(z_dim=4, width=4)))


@cache
def cgan():
    return _seeded(lambda: DCGAN(DCGANConfig(z_dim=4, width=4, n_classes=3, embed_dim=2)))


@cache
def toy():
    return _seeded(lambda: ToyGAN(GANConfig(z_dim=3, hidden=8, depth=1, pack=2)))


@cache
def vg():
    return _seeded(lambda: VAEGAN(VAEGANConfig(z_dim=4, width=4)))


@cache
def gpt():
    return _seeded(lambda: GPT(GPTConfig(11, block_size=8, n_layer=1, n_head=2, n_embd=16)))


@cache
def lstm():
    return _seeded(lambda: LSTMLM(LSTMConfig(11, n_embd=8, hidden=8, n_layers=1)))


@cache
def ng():
    return NGram(NGramConfig(order=3, vocab_size=11)).fit(torch.arange(40) % 11)


@cache
def gm():
    return _seeded(lambda: GaussianMixture(MixtureConfig(n_components=2, dim=2)))


@cache
def clf():
    return _seeded(lambda: ImageClassifier(ClassifierConfig(n_classes=10, width=2, feature_dim=4)))


@cache
def char():
    return CharTokenizer.from_text("hello world")


@cache
def bpe():
    return BPETokenizer.train("hello world hello there", 260)


def img(n=2, fill=None, dtype=torch.float32):
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n), dtype=dtype)
    if fill is not None:
        x[0, 0, 0, 0] = fill
    return x


def ids(*shape, high=11, dtype=torch.long):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(1)).to(dtype)


def feats(n=8, d=3):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(n))


def nanz(n=2, d=4, fill=NAN):
    z = torch.zeros(n, d)
    z[0, 0] = fill
    return z


def logits(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


def bad_logits(fill):
    x = logits(2, 5)
    x[1, 3] = fill
    return x


def masked_row():
    x = logits(2, 5)
    x[0] = -INF
    return x


def cuda_gen():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA for a generator on another device")
    return torch.Generator(device="cuda")


# --------------------------------------------------------------------------- checkpoints (the original core rows)


def case_truncated(tmp):
    p = _good_ckpt(tmp / "t.pt")
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    checkpoint.load_checkpoint(p)


def case_garbage(tmp):
    p = tmp / "g.pt"
    p.write_bytes(b"\x00\x01garbage" * 10)
    checkpoint.load_checkpoint(p)


def case_evil_pickle(tmp):
    p = tmp / "evil.pt"
    buf = io.BytesIO()
    pickle.dump({"model": _Evil()}, buf)
    p.write_bytes(buf.getvalue())
    checkpoint.load_checkpoint(p)


def case_evil_torch_save(tmp):
    p = tmp / "evil2.pt"
    torch.save({"model": _Evil()}, p)
    checkpoint.load_checkpoint(p)


def case_config_mismatch(tmp):
    p = _good_ckpt(tmp / "m.pt")
    checkpoint.load_checkpoint(p, expect_config=TinyConfig(hidden=16))


def case_missing(tmp):
    checkpoint.load_checkpoint(tmp / "nope.pt")


def case_not_a_dict(tmp):
    p = tmp / "list.pt"
    torch.save([1, 2, 3], p)
    checkpoint.load_checkpoint(p)


def case_resume_wrong_config(tmp):
    p = _good_ckpt(tmp / "r.pt")
    train.fit(Tiny(TinyConfig(hidden=4)), _loader(), steps=2, checkpoint=p, progress=False)


def case_numpy_in_file(tmp):
    torch.save({"model": {}, "lr": np.float64(1e-3)}, tmp / "np.pt")  # written by someone else's torch.save
    checkpoint.load_checkpoint(tmp / "np.pt")


def case_numpy_array_in_file(tmp):
    torch.save({"x": np.arange(3)}, tmp / "npa.pt")
    checkpoint.load_checkpoint(tmp / "npa.pt")


def case_fine_file_bad_map_location(tmp):
    checkpoint.load_checkpoint(_good_ckpt(tmp / "ok.pt"), map_location="gpu7")


def case_resume_without_step(tmp):
    model = Tiny(TinyConfig())
    cfg = checkpoint.config_dict(model.cfg)
    checkpoint.save_checkpoint(tmp / "ns.pt", {"model": model.state_dict(), "config": cfg, "optimizers": {}})
    train.fit(model, _loader(), steps=2, checkpoint=tmp / "ns.pt", progress=False)


def case_resume_without_model(tmp):
    model = Tiny(TinyConfig())
    checkpoint.save_checkpoint(tmp / "nm.pt", {"step": 1, "config": checkpoint.config_dict(model.cfg)})
    train.fit(model, _loader(), steps=2, checkpoint=tmp / "nm.pt", progress=False)


def case_resume_beyond(tmp):
    train.fit(Tiny(TinyConfig()), _loader(), steps=3, checkpoint=tmp / "b.pt", progress=False)
    train.fit(Tiny(TinyConfig()), _loader(), steps=2, checkpoint=tmp / "b.pt", progress=False)


CHECKPOINT_ROWS = [
    ("truncated checkpoint", case_truncated, ValueError, "corrupt or truncated"),
    ("garbage checkpoint", case_garbage, ValueError, "corrupt or truncated|not a plain tensor"),
    ("pickle that runs code", case_evil_pickle, ValueError, "refused|corrupt"),
    ("torch.save of an object that runs code", case_evil_torch_save, ValueError, "refused.*could run code"),
    ("numpy scalar in a file", case_numpy_in_file, ValueError, "NumPy values.*float"),
    ("numpy array in a file", case_numpy_array_in_file, ValueError, "NumPy values"),
    ("fine file, bad map_location", case_fine_file_bad_map_location, ValueError, "map_location must be a device"),
    ("checkpoint for another config", case_config_mismatch, ValueError, "different configuration"),
    ("missing checkpoint", case_missing, ValueError, "no checkpoint"),
    ("checkpoint that is not a dict", case_not_a_dict, ValueError, "checkpoint dict"),
    ("resume into a model of another config", case_resume_wrong_config, ValueError, "different configuration"),
    ("resume a file without step", case_resume_without_step, ValueError, "not a training checkpoint.*step"),
    ("resume a file without model", case_resume_without_model, ValueError, "not a training checkpoint.*model"),
    ("resume beyond the requested steps", case_resume_beyond, ValueError, "beyond the requested 2 steps"),
    ("config of the wrong type", lambda t: checkpoint.config_dict(42), TypeError, "dataclass"),
    ("state that is not a dict", lambda t: checkpoint.save_checkpoint(t / "x.pt", [1]), TypeError, "dict"),
    ("save a numpy scalar", lambda t: checkpoint.save_checkpoint(t / "n.pt", {"a": np.float64(1)}), TypeError, "NumPy"),
    ("save an object", lambda t: checkpoint.save_checkpoint(t / "o.pt", {"a": object()}), TypeError, "object"),
    (
        "load with map_location 3.5",
        lambda t: checkpoint.load_checkpoint(t / "x.pt", map_location=3.5),
        ValueError,
        "map_location",
    ),
]

# --------------------------------------------------------------------------- fit, fit_gan, load_or_train, History


class _BadLoss(Tiny):
    def __init__(self, out):
        super().__init__(TinyConfig())
        self.out = out

    def loss(self, batch):
        return self.out(self, batch)


def _fit(model, **kw):
    return train.fit(model, kw.pop("loader", _loader()), **{"steps": 2, "progress": False, **kw})


def _nan_loss(m, b):
    return m.net(b[0]).mean() * NAN, {}


def _phase(**kw):
    model = Tiny(TinyConfig())
    return Phase("p", model.loss, list(model.parameters()), **kw)


TRAIN_ROWS = [
    ("epochs and steps both", lambda t: _fit(Tiny(TinyConfig()), epochs=1), ValueError, "exactly one"),
    ("neither epochs nor steps", lambda t: train.fit(Tiny(TinyConfig()), _loader()), ValueError, "exactly one"),
    ("negative learning rate", lambda t: _fit(Tiny(TinyConfig()), lr=-1.0), ValueError, "lr must be > 0"),
    ("NaN learning rate", lambda t: _fit(Tiny(TinyConfig()), lr=NAN), ValueError, "lr must be > 0"),
    ("float steps", lambda t: _fit(Tiny(TinyConfig()), steps=2.5), TypeError, "steps must be an int"),
    ("numpy steps", lambda t: _fit(Tiny(TinyConfig()), steps=np.int64(2)), TypeError, r"steps must be an int.*int\("),
    ("zero epochs", lambda t: _fit(Tiny(TinyConfig()), steps=None, epochs=0), ValueError, "epochs must be > 0"),
    ("model without loss", lambda t: _fit(torch.nn.Linear(2, 1)), TypeError, "loss"),
    ("model that is not a module", lambda t: _fit("model"), TypeError, "model must be a torch.nn.Module"),
    ("empty loader list", lambda t: _fit(Tiny(TinyConfig()), loader=[]), ValueError, "empty"),
    (
        "epochs over a loader without len",
        lambda t: _fit(Tiny(TinyConfig()), loader=iter(_loader()), steps=None, epochs=1),
        ValueError,
        "needs a loader with len",
    ),
    (
        "checkpoint_every without a path",
        lambda t: _fit(Tiny(TinyConfig()), checkpoint_every=1),
        ValueError,
        "checkpoint path",
    ),
    ("loss that returns a float", lambda t: _fit(_BadLoss(lambda m, b: (1.0, {}))), TypeError, "scalar tensor"),
    ("loss that returns a vector", lambda t: _fit(_BadLoss(lambda m, b: (m(b[0]), {}))), TypeError, "scalar tensor"),
    ("loss without logs", lambda t: _fit(_BadLoss(lambda m, b: m.net(b[0]).mean())), TypeError, "logs dict"),
    (
        "loss that does not require grad",
        lambda t: _fit(_BadLoss(lambda m, b: (torch.tensor(1.0), {}))),
        ValueError,
        "does not require grad",
    ),
    ("NaN loss", lambda t: _fit(_BadLoss(_nan_loss)), TrainingDivergedError, "became nan at step 1"),
    (
        "phases and lr both",
        lambda t: _fit(Tiny(TinyConfig()), phases=[_phase()], lr=0.1),
        TypeError,
        "set .*'lr'.* on the phases",
    ),
    ("empty phases", lambda t: _fit(Tiny(TinyConfig()), phases=[]), TypeError, "non-empty list"),
    ("duplicate phase names", lambda t: _fit(Tiny(TinyConfig()), phases=[_phase(), _phase()]), ValueError, "unique"),
    (
        "phase over another model",
        lambda t: _fit(Tiny(TinyConfig()), phases=[_phase()]),
        ValueError,
        "not a parameter of the model",
    ),
    ("rules that are not rules", lambda t: _fit(Tiny(TinyConfig()), rules=[3]), TypeError, "DivergenceRule"),
    ("generator on another device", lambda t: check_generator("generator", cuda_gen(), "cpu"), ValueError, "cuda"),
    (
        "fit_gan on a model without d_loss",
        lambda t: train.fit_gan(Tiny(TinyConfig()), _loader(), steps=1),
        TypeError,
        "d_loss",
    ),
    ("fit_gan lr_g NaN", lambda t: train.fit_gan(gan(), [img(4)], steps=1, lr_g=NAN), ValueError, "lr_g must be"),
    ("evaluate an empty loader", lambda t: train.evaluate(Tiny(TinyConfig()), []), ValueError, "empty loader"),
    ("cosine_schedule total 0", lambda t: train.cosine_schedule(0, 0), ValueError, "total must be > 0"),
    ("cosine_schedule final -1", lambda t: train.cosine_schedule(1, 10, -1.0), ValueError, "final must be >= 0"),
    ("cosine_schedule final inf", lambda t: train.cosine_schedule(1, 10, INF), ValueError, "final must be finite"),
    ("History.append NaN", lambda t: History().append(1, {"loss": NAN}), TrainingDivergedError, "no NaN or inf"),
    ("History.last of a missing key", lambda t: History().last("loss"), KeyError, "no log named 'loss'"),
    ("History.steps_of a missing key", lambda t: History().steps_of("x"), KeyError, "no log named 'x'"),
    (
        "bad cache name",
        lambda t: train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="a/b", steps=1),
        ValueError,
        "name",
    ),
    ("hidden cache name", lambda t: train_cache.cache_path(".x"), ValueError, "file stem"),
    ("empty cache name", lambda t: train_cache.cache_path(""), ValueError, "non-empty"),
    (
        "load_or_train with checkpoint",
        lambda t: train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="c", steps=1, checkpoint=t / "x.pt"),
        TypeError,
        "manages 'checkpoint'",
    ),
    (
        "load_or_train with a bad trainer",
        lambda t: train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="c", trainer=3, steps=1),
        TypeError,
        "trainer must be",
    ),
    (
        "load_or_train key with a lambda",
        lambda t: train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="c", key={"f": print}, steps=1),
        TypeError,
        "cannot fingerprint",
    ),
    ("cached with a set key", lambda t: train_cache.cached("c", {1, 2}, dict), TypeError, "cannot fingerprint"),
    ("cached compute not a dict", lambda t: train_cache.cached("c2", 1, lambda: [1]), TypeError, "must return a dict"),
    ("Phase with a bad name", lambda t: Phase("1x", print), ValueError, "identifier"),
    ("Phase loss not callable", lambda t: Phase("p", 3), TypeError, "loss must be callable"),
    ("Phase lr inf", lambda t: Phase("p", print, lr=INF), ValueError, "lr must be finite"),
    ("Phase betas", lambda t: Phase("p", print, betas=(0.9, 1.0)), ValueError, "betas must be two numbers"),
    ("Phase optimizer name", lambda t: Phase("p", print, optimizer="rmsprop"), ValueError, "optimizer must be one of"),
    ("Phase grad_clip 0", lambda t: Phase("p", print, grad_clip=0.0), ValueError, "grad_clip must be > 0"),
    ("Phase every 0", lambda t: Phase("p", print, every=0), ValueError, "every must be > 0"),
    (
        "Phase accumulate stale batch",
        lambda t: Phase("p", print, fresh=False, accumulate=2),
        ValueError,
        "needs fresh batches",
    ),
    ("DivergenceRule without bounds", lambda t: DivergenceRule(), ValueError, "at least one bound"),
    ("DivergenceRule NaN bound", lambda t: DivergenceRule(below={"d": NAN}), ValueError, "finite number"),
    ("DivergenceRule patience 0", lambda t: DivergenceRule(below={"d": 1}, patience=0), ValueError, "patience"),
    ("Snapshots record not callable", lambda t: Snapshots(3, every=1), TypeError, "record must be callable"),
    ("Snapshots every 0", lambda t: Snapshots(print, every=0), ValueError, "every must be > 0"),
]
# --------------------------------------------------------------------------- configs

SIZE = r"would need [\d,]+ \w+ \(about [\d,.]+ GiB of memory\)"

CONFIG_ROWS = [
    ("VAE arch", lambda t: VAEConfig(arch="rnn"), ValueError, "arch must be one of"),
    ("VAE image_shape 2-D", lambda t: VAEConfig(image_shape=(28, 28)), ValueError, r"\(C, H, W\) tuple"),
    ("VAE image_shape string", lambda t: VAEConfig(image_shape="abc"), ValueError, r"\(C, H, W\) tuple"),
    ("VAE image_shape 0", lambda t: VAEConfig(image_shape=(0, 28, 28)), ValueError, "image_shape C must be > 0"),
    (
        "VAE image_shape float",
        lambda t: VAEConfig(image_shape=(1, 28.0, 28)),
        TypeError,
        "image_shape H must be an int",
    ),
    ("VAE conv on 32x32", lambda t: VAEConfig(arch="conv", image_shape=(1, 32, 32)), ValueError, "use arch='mlp'"),
    ("VAE z_dim 0", lambda t: VAEConfig(z_dim=0), ValueError, "z_dim must be > 0"),
    ("VAE z_dim -1", lambda t: VAEConfig(z_dim=-1), ValueError, "z_dim must be > 0"),
    ("VAE z_dim float", lambda t: VAEConfig(z_dim=2.5), TypeError, "z_dim must be an int"),
    ("VAE z_dim bool", lambda t: VAEConfig(z_dim=True), TypeError, "z_dim must be an int"),
    ("VAE z_dim 1-D tensor", lambda t: VAEConfig(z_dim=torch.tensor([2])), TypeError, "z_dim must be an int"),
    ("VAE hidden 0", lambda t: VAEConfig(hidden=0), ValueError, "hidden must be > 0"),
    ("VAE depth 0", lambda t: VAEConfig(depth=0), ValueError, "depth must be > 0"),
    ("VAE width 0", lambda t: VAEConfig(width=0), ValueError, "width must be > 0"),
    ("VAE beta -1", lambda t: VAEConfig(beta=-1.0), ValueError, "beta must be >= 0"),
    ("VAE beta NaN", lambda t: VAEConfig(beta=NAN), ValueError, "beta must be >= 0"),
    ("VAE beta inf", lambda t: VAEConfig(beta=INF), ValueError, "beta must be finite"),
    ("VAE beta numpy inf", lambda t: VAEConfig(beta=np.float64(INF)), ValueError, "beta must be finite"),
    ("VAE beta string", lambda t: VAEConfig(beta="1"), TypeError, "beta must be a number"),
    ("VAE shift -1", lambda t: VAEConfig(shift=-1), ValueError, "shift must be >= 0"),
    ("VAE shift 14", lambda t: VAEConfig(shift=14), ValueError, "less than half the image size"),
    ("VAE 10^9 latents", lambda t: VAEConfig(z_dim=10**9), ValueError, SIZE),
    ("VAE 10^9 hidden conv", lambda t: VAEConfig(arch="conv", width=10**5), ValueError, SIZE),
    ("GAN data_dim 0", lambda t: GANConfig(data_dim=0), ValueError, "data_dim must be > 0"),
    ("GAN z_dim float", lambda t: GANConfig(z_dim=8.0), TypeError, "z_dim must be an int"),
    ("GAN hidden -1", lambda t: GANConfig(hidden=-1), ValueError, "hidden must be > 0"),
    ("GAN depth 0", lambda t: GANConfig(depth=0), ValueError, "depth must be > 0"),
    ("GAN pack 0", lambda t: GANConfig(pack=0), ValueError, "pack must be > 0"),
    ("GAN loss", lambda t: GANConfig(loss="hinge"), ValueError, "loss must be one of"),
    ("GAN gp_weight inf", lambda t: GANConfig(loss="wgan-gp", gp_weight=INF), ValueError, "gp_weight must be finite"),
    ("GAN gp_weight NaN", lambda t: GANConfig(gp_weight=NAN), ValueError, "gp_weight must be >= 0"),
    ("GAN gp_weight -1", lambda t: GANConfig(gp_weight=-1.0), ValueError, "gp_weight must be >= 0"),
    ("GAN r1 with wgan-gp", lambda t: GANConfig(loss="wgan-gp", r1_weight=1.0), ValueError, "r1_weight applies"),
    ("GAN r1 inf", lambda t: GANConfig(r1_weight=INF), ValueError, "r1_weight must be finite"),
    ("GAN label_smoothing 0.5", lambda t: GANConfig(label_smoothing=0.5), ValueError, r"label_smoothing must be in"),
    ("GAN label_smoothing NaN", lambda t: GANConfig(label_smoothing=NAN), ValueError, r"label_smoothing must be in"),
    (
        "GAN label_smoothing wgan",
        lambda t: GANConfig(loss="wgan-gp", label_smoothing=0.1),
        ValueError,
        "label_smoothing applies",
    ),
    ("GAN label_smoothing string", lambda t: GANConfig(label_smoothing="0.1"), TypeError, "must be a number"),
    ("GAN 10^6 hidden", lambda t: GANConfig(hidden=10**6), ValueError, SIZE),
    ("DCGAN z_dim 0", lambda t: DCGANConfig(z_dim=0), ValueError, "z_dim must be > 0"),
    ("DCGAN width 0", lambda t: DCGANConfig(width=0), ValueError, "width must be > 0"),
    ("DCGAN n_classes -1", lambda t: DCGANConfig(n_classes=-1), ValueError, "n_classes must be >= 0"),
    ("DCGAN n_classes 1", lambda t: DCGANConfig(n_classes=1), ValueError, "n_classes must be 0"),
    ("DCGAN embed_dim 0", lambda t: DCGANConfig(embed_dim=0), ValueError, "embed_dim must be > 0"),
    ("DCGAN minimax", lambda t: DCGANConfig(loss="minimax"), ValueError, "loss must be one of"),
    ("DCGAN gp_weight inf", lambda t: DCGANConfig(gp_weight=INF), ValueError, "gp_weight must be finite"),
    ("DCGAN label_smoothing -0.1", lambda t: DCGANConfig(label_smoothing=-0.1), ValueError, "label_smoothing"),
    ("DCGAN batchnorm 1", lambda t: DCGANConfig(batchnorm=1), TypeError, "batchnorm must be a bool"),
    ("DCGAN augment 8", lambda t: DCGANConfig(augment=8), ValueError, "at most 7"),
    ("DCGAN augment -1", lambda t: DCGANConfig(augment=-1), ValueError, "augment must be >= 0"),
    ("DCGAN width 10^5", lambda t: DCGANConfig(width=10**5), ValueError, SIZE),
    ("VAEGAN z_dim 0", lambda t: VAEGANConfig(z_dim=0), ValueError, "z_dim must be > 0"),
    ("VAEGAN width float", lambda t: VAEGANConfig(width=4.0), TypeError, "width must be an int"),
    ("VAEGAN kl_weight inf", lambda t: VAEGANConfig(kl_weight=INF), ValueError, "kl_weight must be finite"),
    ("VAEGAN kl_weight -1", lambda t: VAEGANConfig(kl_weight=-1.0), ValueError, "kl_weight must be >= 0"),
    ("VAEGAN recon_weight NaN", lambda t: VAEGANConfig(recon_weight=NAN), ValueError, "recon_weight must be >= 0"),
    ("VAEGAN gan_weight string", lambda t: VAEGANConfig(gan_weight="1"), TypeError, "gan_weight must be a number"),
    ("VAEGAN pixel_weight inf", lambda t: VAEGANConfig(pixel_weight=INF), ValueError, "pixel_weight must be finite"),
    ("VAEGAN 10^9 latents", lambda t: VAEGANConfig(z_dim=10**9), ValueError, SIZE),
    ("GPT vocab 0", lambda t: GPTConfig(0), ValueError, "vocab_size must be > 0"),
    ("GPT vocab float", lambda t: GPTConfig(10.0), TypeError, "vocab_size must be an int"),
    ("GPT block_size 0", lambda t: GPTConfig(10, block_size=0), ValueError, "block_size must be > 0"),
    ("GPT n_layer 0", lambda t: GPTConfig(10, n_layer=0), ValueError, "n_layer must be > 0"),
    ("GPT n_head 0", lambda t: GPTConfig(10, n_head=0), ValueError, "n_head must be > 0"),
    ("GPT n_embd indivisible", lambda t: GPTConfig(10, n_embd=10, n_head=4), ValueError, "divisible by n_head"),
    ("GPT dropout 1", lambda t: GPTConfig(10, dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    ("GPT dropout NaN", lambda t: GPTConfig(10, dropout=NAN), ValueError, r"dropout must be in \[0, 1\)"),
    ("GPT dropout string", lambda t: GPTConfig(10, dropout="0"), TypeError, "dropout must be a number"),
    ("GPT bias 1", lambda t: GPTConfig(10, bias=1), TypeError, "bias must be a bool"),
    ("GPT tie_weights None", lambda t: GPTConfig(10, tie_weights=None), TypeError, "tie_weights must be a bool"),
    ("GPT pos", lambda t: GPTConfig(10, pos="alibi"), ValueError, "pos must be"),
    ("GPT rope odd head", lambda t: GPTConfig(10, n_embd=12, n_head=4, pos="rope"), ValueError, "even head size"),
    ("GPT vocab 2^40", lambda t: GPTConfig(2**40), ValueError, SIZE),
    ("GPT width 2^20", lambda t: GPTConfig(10, n_embd=2**20, n_head=1), ValueError, SIZE),
    ("GPT block 2^40", lambda t: GPTConfig(10, block_size=2**40), ValueError, SIZE),
    ("LSTM vocab 0", lambda t: LSTMConfig(0), ValueError, "vocab_size must be > 0"),
    ("LSTM n_embd 0", lambda t: LSTMConfig(10, n_embd=0), ValueError, "n_embd must be > 0"),
    ("LSTM hidden -1", lambda t: LSTMConfig(10, hidden=-1), ValueError, "hidden must be > 0"),
    ("LSTM n_layers 0", lambda t: LSTMConfig(10, n_layers=0), ValueError, "n_layers must be > 0"),
    ("LSTM dropout 1", lambda t: LSTMConfig(10, dropout=1), ValueError, "dropout must be in"),
    ("LSTM tie_weights string", lambda t: LSTMConfig(10, tie_weights="yes"), TypeError, "tie_weights must be a bool"),
    ("LSTM vocab 2^40", lambda t: LSTMConfig(2**40), ValueError, SIZE),
    ("LSTM hidden 10^6", lambda t: LSTMConfig(10, hidden=10**6), ValueError, SIZE),
    ("n-gram order 0", lambda t: NGramConfig(order=0), ValueError, "order must be > 0"),
    ("n-gram vocab 0", lambda t: NGramConfig(vocab_size=0), ValueError, "vocab_size must be > 0"),
    ("n-gram smoothing", lambda t: NGramConfig(smoothing="kneser-ney"), ValueError, "smoothing must be one of"),
    ("n-gram k 0", lambda t: NGramConfig(k=0.0), ValueError, "k must be > 0"),
    ("n-gram k inf", lambda t: NGramConfig(k=INF), ValueError, "k must be finite"),
    ("n-gram k NaN", lambda t: NGramConfig(k=NAN), ValueError, "k must be > 0"),
    ("n-gram V^n overflow", lambda t: NGramConfig(order=10, vocab_size=1000), ValueError, "int64"),
    ("n-gram vocab 2^40", lambda t: NGramConfig(order=1, vocab_size=2**40), ValueError, SIZE),
    ("mixture n_components 0", lambda t: MixtureConfig(n_components=0), ValueError, "n_components must be > 0"),
    ("mixture dim 0", lambda t: MixtureConfig(dim=0), ValueError, "dim must be > 0"),
    ("mixture covariance", lambda t: MixtureConfig(covariance="tied"), ValueError, "covariance must be one of"),
    ("mixture covariance int", lambda t: MixtureConfig(covariance=1), TypeError, "covariance must be a string"),
    ("mixture min_std 0", lambda t: MixtureConfig(min_std=0.0), ValueError, "min_std must be > 0"),
    ("mixture min_std inf", lambda t: MixtureConfig(min_std=INF), ValueError, "min_std must be finite"),
    ("mixture dim 10^5", lambda t: MixtureConfig(dim=10**5), ValueError, SIZE),
    ("classifier n_classes 1", lambda t: ClassifierConfig(n_classes=1), ValueError, "n_classes must be >= 2"),
    ("classifier width 0", lambda t: ClassifierConfig(width=0), ValueError, "width must be > 0"),
    ("classifier dropout 1", lambda t: ClassifierConfig(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    ("classifier dropout NaN", lambda t: ClassifierConfig(dropout=NAN), ValueError, "dropout must be in"),
    ("classifier shift 8", lambda t: ClassifierConfig(shift=8), ValueError, "at most 7"),
    ("classifier features 10^9", lambda t: ClassifierConfig(feature_dim=10**9), ValueError, SIZE),
    ("VAE from a dict", lambda t: VAE({"z_dim": 2}), TypeError, "cfg must be a VAEConfig"),
    ("DCGAN from a GANConfig", lambda t: DCGAN(GANConfig()), TypeError, "cfg must be a DCGANConfig"),
    ("ToyGAN from a DCGANConfig", lambda t: ToyGAN(DCGANConfig()), TypeError, "cfg must be a GANConfig"),
    ("VAEGAN from a VAEConfig", lambda t: VAEGAN(VAEConfig()), TypeError, "cfg must be a VAEGANConfig"),
    ("GPT from an LSTMConfig", lambda t: GPT(LSTMConfig(10)), TypeError, "GPT needs a GPTConfig"),
    ("LSTM from a GPTConfig", lambda t: LSTMLM(GPTConfig(10)), TypeError, "needs an LSTMConfig"),
    ("NGram from None", lambda t: NGram(None), TypeError, "NGram needs an NGramConfig"),
    ("mixture from a dict", lambda t: GaussianMixture({}), TypeError, "cfg must be a MixtureConfig"),
    ("classifier from None", lambda t: ImageClassifier(None), TypeError, "cfg must be a ClassifierConfig"),
]
# --------------------------------------------------------------------------- models: forward, loss, sample, generate


def _gpt_long():
    return gpt()(ids(1, 9))


MODEL_ROWS = [
    ("VAE encode a list", lambda t: vae().encode([[0.0]]), TypeError, "x must be a torch.Tensor"),
    ("VAE encode ints", lambda t: vae().encode(torch.zeros(2, 1, 28, 28, dtype=torch.long)), TypeError, "floating"),
    ("VAE encode wrong shape", lambda t: vae().encode(torch.rand(2, 28, 28)), ValueError, r"shape \(N, 1, 28, 28\)"),
    ("VAE encode NaN", lambda t: vae().encode(img(fill=NAN)), ValueError, "NaN or infinite"),
    ("VAE encode inf", lambda t: vae().encode(img(fill=INF)), ValueError, "NaN or infinite"),
    ("VAE encode pixels above 1", lambda t: vae().encode(img(fill=2.0)), ValueError, r"lie in \[0.0, 1.0\]"),
    ("VAE encode empty", lambda t: vae().encode(torch.rand(0, 1, 28, 28)), ValueError, "empty"),
    ("VAE decode wrong width", lambda t: vae().decode(torch.zeros(2, 3)), ValueError, r"z must have shape \(N, 2\)"),
    ("VAE decode NaN", lambda t: vae().decode(nanz(d=2)), ValueError, "z contains NaN"),
    ("VAE decode inf", lambda t: vae().decode(nanz(d=2, fill=INF)), ValueError, "z contains infinite"),
    ("VAE decode ints", lambda t: vae().decode(torch.zeros(2, 2, dtype=torch.long)), TypeError, "floating"),
    ("VAE decode_mean NaN", lambda t: vae().decode_mean(nanz(d=2)), ValueError, "z contains NaN"),
    ("VAE sample 0", lambda t: vae().sample(0), ValueError, "n must be > 0"),
    ("VAE sample 2.5", lambda t: vae().sample(2.5), TypeError, "n must be an int"),
    ("VAE sample numpy generator", lambda t: vae().sample(2, generator=NPGEN), TypeError, "torch.Generator"),
    ("VAE sample int generator", lambda t: vae().sample(2, generator=0), TypeError, "torch.Generator"),
    ("VAE sample 10^12", lambda t: vae().sample(10**12), ValueError, SIZE),
    ("VAE loss empty tuple", lambda t: vae().loss(()), ValueError, "empty tuple"),
    ("VAE loss string batch", lambda t: vae().loss("x"), TypeError, "batch must be a tensor"),
    ("VAE loss NaN images", lambda t: vae().loss(img(fill=NAN)), ValueError, "NaN"),
    ("VAE reconstruct wrong shape", lambda t: vae().reconstruct(torch.rand(2, 784)), ValueError, "shape"),
    (
        "VAE reparameterize shapes",
        lambda t: vae().reparameterize(torch.zeros(2, 2), torch.zeros(2, 3)),
        ValueError,
        "same shape",
    ),
    ("neg_elbo of a GAN", lambda t: neg_elbo(gan(), img()), TypeError, "model must be a VAE"),
    ("neg_elbo of no images", lambda t: neg_elbo(vae(), []), ValueError, "no images"),
    ("gaussian_kl shapes", lambda t: gaussian_kl(torch.zeros(2, 2), torch.zeros(2, 3)), ValueError, "same shape"),
    ("gaussian_kl ints", lambda t: gaussian_kl(torch.zeros(2, dtype=torch.long), torch.zeros(2)), TypeError, "mu"),
    ("bernoulli_nll shapes", lambda t: bernoulli_nll(torch.zeros(2, 4), torch.zeros(2, 5)), ValueError, "same shape"),
    ("bernoulli_nll list", lambda t: bernoulli_nll([0.0], torch.zeros(1)), TypeError, "must be tensors"),
    ("DCGAN generate wrong width", lambda t: gan().generate(torch.zeros(2, 5)), ValueError, r"shape \(N, 4\)"),
    ("DCGAN generate NaN", lambda t: gan().generate(nanz()), ValueError, "z contains NaN"),
    ("DCGAN generate inf", lambda t: gan().generate(nanz(fill=-INF)), ValueError, "z contains infinite"),
    ("DCGAN forward NaN", lambda t: gan()(nanz()), ValueError, "z contains NaN"),
    ("DCGAN generate ints", lambda t: gan().generate(torch.zeros(2, 4, dtype=torch.int32)), TypeError, "floating"),
    (
        "DCGAN labels to an unconditional model",
        lambda t: gan().generate(torch.zeros(2, 4), torch.zeros(2).long()),
        ValueError,
        "class-conditional",
    ),
    ("cGAN without labels", lambda t: cgan().generate(torch.zeros(2, 4)), ValueError, "needs labels"),
    (
        "cGAN labels out of range",
        lambda t: cgan().generate(torch.zeros(2, 4), torch.tensor([0, 3])),
        ValueError,
        r"labels must lie in \[0, 3\)",
    ),
    (
        "cGAN negative labels",
        lambda t: cgan().generate(torch.zeros(2, 4), torch.tensor([-1, 0])),
        ValueError,
        "labels must lie in",
    ),
    (
        "cGAN float labels",
        lambda t: cgan().generate(torch.zeros(2, 4), torch.tensor([0.0, 1.0])),
        TypeError,
        "labels must be an integer",
    ),
    (
        "cGAN bool labels",
        lambda t: cgan().generate(torch.zeros(2, 4), torch.tensor([True, False])),
        TypeError,
        "integer tensor of class ids",
    ),
    (
        "cGAN labels wrong length",
        lambda t: cgan().generate(torch.zeros(2, 4), torch.tensor([0, 1, 2])),
        ValueError,
        r"labels must have shape \(2\)",
    ),
    ("cGAN sample label 5", lambda t: cgan().sample(2, labels=5), ValueError, "labels must lie in"),
    ("cGAN sample float label list", lambda t: cgan().sample(2, labels=[0.5, 1.0]), TypeError, "integer"),
    ("DCGAN sample labels", lambda t: gan().sample(2, labels=1), ValueError, "class-conditional"),
    ("DCGAN sample 0", lambda t: gan().sample(0), ValueError, "n must be > 0"),
    ("DCGAN sample string generator", lambda t: gan().sample(2, generator="seed"), TypeError, "torch.Generator"),
    ("DCGAN sample 10^12", lambda t: gan().sample(10**12), ValueError, SIZE),
    ("DCGAN d_loss NaN images", lambda t: gan().d_loss(img(fill=NAN)), ValueError, "NaN"),
    ("DCGAN d_loss pixels in [-1, 1]", lambda t: gan().d_loss(img() * 2 - 1), ValueError, r"lie in \[0.0, 1.0\]"),
    ("DCGAN d_loss wrong shape", lambda t: gan().d_loss(torch.rand(2, 784)), ValueError, "shape"),
    ("DCGAN g_loss generator", lambda t: gan().g_loss(img(), generator=NPGEN), TypeError, "torch.Generator"),
    ("cGAN d_loss without labels", lambda t: cgan().d_loss(img()), ValueError, "needs labels"),
    (
        "cGAN d_loss labels out of range",
        lambda t: cgan().d_loss((img(), torch.tensor([0, 9]))),
        ValueError,
        "labels must lie in",
    ),
    ("ToyGAN generate wrong width", lambda t: toy().generate(torch.zeros(2, 4)), ValueError, r"shape \(N, 3\)"),
    ("ToyGAN generate NaN", lambda t: toy()(nanz(d=3)), ValueError, "z contains NaN"),
    (
        "ToyGAN generate labels",
        lambda t: toy().generate(torch.zeros(2, 3), torch.zeros(2)),
        ValueError,
        "class-conditional",
    ),
    ("ToyGAN odd batch for pack 2", lambda t: toy().d_loss(torch.zeros(3, 2)), ValueError, "multiple of pack=2"),
    ("ToyGAN NaN points", lambda t: toy().d_loss(nanz(d=2)), ValueError, "x contains NaN"),
    ("ToyGAN 3-D points", lambda t: toy().d_loss(torch.zeros(2, 3)), ValueError, r"x must have shape \(N, 2\)"),
    ("VAEGAN decode NaN", lambda t: vg().decode(nanz()), ValueError, "z contains NaN"),
    ("VAEGAN decode wrong width", lambda t: vg().decode(torch.zeros(2, 3)), ValueError, r"shape \(N, 4\)"),
    ("VAEGAN encode NaN", lambda t: vg().encode(img(fill=NAN)), ValueError, "NaN"),
    ("VAEGAN forward out of range", lambda t: vg()(img(fill=-0.5)), ValueError, r"lie in \[0.0, 1.0\]"),
    ("VAEGAN reconstruct wrong shape", lambda t: vg().reconstruct(torch.rand(2, 28, 28)), ValueError, "shape"),
    ("VAEGAN d_loss NaN", lambda t: vg().d_loss(img(fill=NAN)), ValueError, "NaN"),
    ("VAEGAN sample 0", lambda t: vg().sample(0), ValueError, "n must be > 0"),
    ("VAEGAN sample numpy generator", lambda t: vg().sample(2, generator=NPGEN), TypeError, "torch.Generator"),
    ("GPT float ids", lambda t: gpt()(torch.zeros(1, 4)), TypeError, "integer tensor of token ids"),
    ("GPT bool ids", lambda t: gpt()(torch.zeros(1, 4, dtype=torch.bool)), TypeError, "integer tensor"),
    ("GPT 1-D ids", lambda t: gpt()(ids(4)), ValueError, "idx must have 2 dimensions"),
    ("GPT 3-D ids", lambda t: gpt()(ids(1, 2, 3)), ValueError, "idx must have 2 dimensions"),
    ("GPT id 11 of 11", lambda t: gpt()(torch.tensor([[0, 11]])), ValueError, r"outside the vocabulary \[0, 10\]"),
    ("GPT negative id", lambda t: gpt()(torch.tensor([[-1, 0]])), ValueError, "outside the vocabulary"),
    ("GPT uint8 id 255", lambda t: gpt()(torch.tensor([[255]], dtype=torch.uint8)), ValueError, "outside the vocab"),
    ("GPT too long", lambda t: _gpt_long(), ValueError, "exceeds block_size=8"),
    ("GPT empty", lambda t: gpt()(torch.zeros(1, 0, dtype=torch.long)), ValueError, "empty"),
    ("GPT list ids", lambda t: gpt()([[1, 2]]), TypeError, "torch.Tensor of token ids"),
    ("GPT targets shape", lambda t: gpt()(ids(1, 4), ids(1, 3)), ValueError, "targets must have the shape"),
    ("GPT float targets", lambda t: gpt()(ids(1, 4), torch.zeros(1, 4)), TypeError, "targets must be an integer"),
    ("GPT targets out of range", lambda t: gpt()(ids(1, 4), ids(1, 4) + 20), ValueError, "targets holds token ids"),
    ("GPT loss of one tensor", lambda t: gpt().loss(ids(1, 4)), TypeError, r"batch \(x, y\)"),
    ("GPT generate -1 tokens", lambda t: gpt().generate(ids(1, 2), -1), ValueError, "max_new_tokens must be >= 0"),
    ("GPT generate temperature 0", lambda t: gpt().generate(ids(1, 2), 2, temperature=0), ValueError, "greedy"),
    ("GPT generate top_k 0", lambda t: gpt().generate(ids(1, 2), 2, top_k=0), ValueError, "top_k must be >= 1"),
    ("GPT generate top_p 1.5", lambda t: gpt().generate(ids(1, 2), 2, top_p=1.5), ValueError, r"top_p must be in"),
    (
        "GPT generate numpy generator",
        lambda t: gpt().generate(ids(1, 2), 2, generator=NPGEN),
        TypeError,
        "torch.Generator",
    ),
    ("GPT generate 10^12 tokens", lambda t: gpt().generate(ids(1, 2), 10**12), ValueError, "would need"),
    ("GPT sample 2-D prompt", lambda t: gpt().sample(2, prompt=ids(1, 2)), ValueError, "prompt must have 1 dim"),
    ("GPT sample float prompt", lambda t: gpt().sample(2, prompt=torch.tensor([1.5])), TypeError, "prompt must be"),
    ("GPT sample prompt out of range", lambda t: gpt().sample(2, prompt=torch.tensor([12])), ValueError, "vocab"),
    ("GPT attention_maps floats", lambda t: gpt().attention_maps(torch.zeros(1, 3)), TypeError, "integer"),
    ("GPT attention_maps too long", lambda t: gpt().attention_maps(ids(1, 9)), ValueError, "exceeds block_size"),
    ("GPT optimizer betas", lambda t: gpt().configure_optimizers(betas=(1.5, 0.9)), ValueError, "betas must be two"),
    ("GPT optimizer lr 0", lambda t: gpt().configure_optimizers(lr=0.0), ValueError, "lr must be > 0"),
    (
        "GPT optimizer weight decay NaN",
        lambda t: gpt().configure_optimizers(weight_decay=NAN),
        ValueError,
        "weight_decay",
    ),
    ("estimate_mfu peak 0", lambda t: estimate_mfu(gpt().cfg, 10.0, 0.0), ValueError, "peak_flops must be > 0"),
    ("LSTM float ids", lambda t: lstm()(torch.zeros(1, 3)), TypeError, "idx must be an integer"),
    ("LSTM id out of range", lambda t: lstm()(torch.tensor([[11]])), ValueError, "outside the vocabulary"),
    (
        "LSTM state wrong shape",
        lambda t: lstm()(ids(2, 3), state=(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8))),
        ValueError,
        r"state must be \(h, c\) each of shape \(1, 2, 8\)",
    ),
    ("LSTM state a tensor", lambda t: lstm()(ids(2, 3), state=torch.zeros(1, 2, 8)), TypeError, "pair"),
    ("LSTM state of three", lambda t: lstm()(ids(2, 3), state=(torch.zeros(1, 2, 8),) * 3), TypeError, "pair"),
    (
        "LSTM int state",
        lambda t: lstm()(ids(2, 3), state=(torch.zeros(1, 2, 8, dtype=torch.long),) * 2),
        TypeError,
        "state h must be a floating",
    ),
    ("LSTM targets shape", lambda t: lstm()(ids(2, 3), ids(2, 2)), ValueError, "targets must have the shape"),
    ("LSTM loss of a triple", lambda t: lstm().loss((ids(1, 2),) * 3), TypeError, r"batch \(x, y\)"),
    ("LSTM generate top_k -1", lambda t: lstm().generate(ids(1, 2), 2, top_k=-1), ValueError, "top_k must be"),
    ("LSTM generate top_k float", lambda t: lstm().generate(ids(1, 2), 2, top_k=2.5), TypeError, "top_k must be an"),
    ("LSTM sample bool prompt", lambda t: lstm().sample(2, prompt=torch.tensor([True])), TypeError, "prompt must be"),
    ("LSTM sample -1", lambda t: lstm().sample(-1), ValueError, "max_new_tokens must be >= 0"),
    ("n-gram fit floats", lambda t: NGram(NGramConfig(vocab_size=5)).fit(torch.zeros(4)), TypeError, "integer"),
    ("n-gram fit 2-D", lambda t: NGram(NGramConfig(vocab_size=5)).fit(ids(2, 2, high=5)), ValueError, "1 dim"),
    ("n-gram fit out of range", lambda t: NGram(NGramConfig(vocab_size=5)).fit(torch.arange(6)), ValueError, "vocab"),
    ("n-gram before fit", lambda t: NGram(NGramConfig()).log_prob(torch.arange(3)), RuntimeError, "call fit"),
    ("n-gram float context", lambda t: ng().next_distribution([1.5, 2.0]), TypeError, "context must be an integer"),
    ("n-gram 2-D context", lambda t: ng().next_distribution([[1, 2]]), ValueError, "context must have 1 dim"),
    ("n-gram bool context", lambda t: ng().next_distribution([True]), TypeError, "context must be an integer"),
    ("n-gram context out of range", lambda t: ng().next_distribution([11]), ValueError, "outside the vocabulary"),
    ("n-gram string context", lambda t: ng().next_distribution("ab"), TypeError, "sequence of token ids"),
    ("n-gram float prompt", lambda t: ng().sample(3, prompt=[0.7]), TypeError, "prompt must be an integer"),
    (
        "n-gram 2-D prompt",
        lambda t: ng().sample(3, prompt=torch.zeros(2, 2, dtype=torch.long)),
        ValueError,
        "prompt must have 1 dim",
    ),
    ("n-gram sample -1", lambda t: ng().sample(-1), ValueError, "max_new_tokens must be >= 0"),
    ("n-gram sample temperature NaN", lambda t: ng().sample(3, temperature=NAN), ValueError, "temperature"),
    ("n-gram sample numpy generator", lambda t: ng().sample(3, generator=NPGEN), TypeError, "torch.Generator"),
    ("n-gram nll of floats", lambda t: ng().nll(torch.zeros(3)), TypeError, "integer"),
    ("mixture 3-D points", lambda t: gm().log_prob(torch.zeros(4, 3)), ValueError, r"x must have shape \(N, 2\)"),
    ("mixture NaN points", lambda t: gm().log_prob(nanz(d=2)), ValueError, "x contains NaN"),
    ("mixture int points", lambda t: gm().log_prob(torch.zeros(2, 2, dtype=torch.long)), TypeError, "floating"),
    ("mixture loss NaN", lambda t: gm().loss(nanz(d=2)), ValueError, "batch points contains NaN"),
    (
        "mixture weights <= 0",
        lambda t: gm().set_parameters(torch.tensor([1.0, 0.0]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)),
        ValueError,
        "weights must all be > 0",
    ),
    (
        "mixture covariance not PD",
        lambda t: gm().set_parameters(torch.ones(2), torch.zeros(2, 2), -torch.eye(2).expand(2, 2, 2)),
        ValueError,
        "positive definite",
    ),
    ("mixture init method", lambda t: gm().init_from_data(torch.zeros(4, 2), method="kmeans"), ValueError, "method"),
    (
        "mixture init generator",
        lambda t: gm().init_from_data(torch.rand(4, 2), generator=NPGEN),
        TypeError,
        "torch.Generator",
    ),
    ("mixture sample generator", lambda t: gm().sample(3, generator=NPGEN), TypeError, "torch.Generator"),
    ("mixture sample 0", lambda t: gm().sample(0), ValueError, "n must be > 0"),
    ("kmeans++ k > n", lambda t: kmeans_plus_plus(torch.rand(2, 2), 3), ValueError, "need at least k=3 points"),
    ("kmeans++ generator", lambda t: kmeans_plus_plus(torch.rand(4, 2), 2, generator=1), TypeError, "Generator"),
    ("fit_em steps 0", lambda t: fit_em(MixtureConfig(n_components=2), torch.rand(8, 2), steps=0), ValueError, "steps"),
    ("fit_em tol inf", lambda t: fit_em(MixtureConfig(n_components=2), torch.rand(8, 2), tol=INF), ValueError, "tol"),
    ("fit_em a VAE", lambda t: fit_em(vae(), torch.rand(8, 2)), TypeError, "GaussianMixture or MixtureConfig"),
    ("fit_em too few points", lambda t: fit_em(gm(), torch.rand(1, 2)), ValueError, "at least n_components=2"),
    ("classifier wrong shape", lambda t: clf()(torch.rand(2, 784)), ValueError, r"shape \(N, 1, 28, 28\)"),
    (
        "classifier int images",
        lambda t: clf().features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)),
        TypeError,
        "floating",
    ),
    ("classifier loss without labels", lambda t: clf().loss(img()), ValueError, "needs \\(images, labels\\)"),
    (
        "classifier loss labels 10",
        lambda t: clf().loss((img(), torch.tensor([0, 10]))),
        ValueError,
        r"labels must lie in \[0, 10\)",
    ),
    ("classifier loss float labels", lambda t: clf().loss((img(), torch.zeros(2))), TypeError, "labels must be an int"),
    (
        "classifier loss bool labels",
        lambda t: clf().loss((img(), torch.ones(2, dtype=torch.bool))),
        TypeError,
        "class ids",
    ),
    ("classifier loss label count", lambda t: clf().loss((img(), torch.zeros(3).long())), ValueError, "labels must"),
    ("mlp one size", lambda t: mlp([3]), ValueError, "at least 2 sizes"),
    ("mlp size 0", lambda t: mlp([3, 0]), ValueError, r"mlp sizes\[1\] must be > 0"),
    ("mlp 10^6 wide", lambda t: mlp([10**6, 10**6]), ValueError, SIZE),
    ("ConvEncoder28 on 32x32", lambda t: ConvEncoder28(4)(torch.rand(1, 1, 32, 32)), ValueError, "28, 28"),
    ("ConvDecoder28 norm 1", lambda t: ConvDecoder28(4, norm=1), TypeError, "norm must be a bool"),
    (
        "ConvDecoder28 batch of one",
        lambda t: ConvDecoder28(4, 4, norm=True)(torch.zeros(1, 4)),
        ValueError,
        "batch of one",
    ),
    ("random_distort 3-D", lambda t: random_distort(torch.rand(1, 28, 28)), ValueError, r"\(B, C, H, W\)"),
    ("random_distort scale 1", lambda t: random_distort(img(), scale=1.0), ValueError, "scale must be below 1"),
    ("random_distort rotate str", lambda t: random_distort(img(), rotate="9"), TypeError, "rotate must be a number"),
    ("random_distort stroke 2", lambda t: random_distort(img(), stroke=2.0), ValueError, "stroke"),
    ("random_distort generator", lambda t: random_distort(img(), generator=NPGEN), TypeError, "torch.Generator"),
    ("random_shift 3-D", lambda t: random_shift(torch.rand(1, 28, 28), 1), ValueError, r"\(B, C, H, W\)"),
    ("random_shift -1", lambda t: random_shift(img(), -1), ValueError, "max_shift must be >= 0"),
    ("random_shift generator", lambda t: random_shift(img(), 1, generator=NPGEN), TypeError, "torch.Generator"),
    ("reparameterize shapes", lambda t: reparameterize(torch.zeros(2, 2), torch.zeros(2, 1)), ValueError, "same shape"),
    ("reparameterize generator", lambda t: reparameterize(torch.zeros(2), torch.zeros(2), 0), TypeError, "Generator"),
    ("EMA decay 1", lambda t: EMA(torch.nn.Linear(1, 1), decay=1.0), ValueError, r"decay must be in \[0, 1\)"),
    ("EMA of a tensor", lambda t: EMA(torch.zeros(1)), TypeError, "EMA needs an nn.Module"),
    ("rope_tables odd head", lambda t: rope_tables(4, 3), ValueError, "positive even number"),
    ("rope_tables 2^40 positions", lambda t: rope_tables(2**40, 64), ValueError, SIZE.replace(r"\w+", "values")),
    ("KVCache batch 0", lambda t: KVCache(1, 0, 1, 4, 2, device="cpu", dtype=torch.float32), ValueError, "batch"),
    ("KVCache 2^40", lambda t: KVCache(1, 2**20, 1, 2**20, 2, device="cpu", dtype=torch.float32), ValueError, "need"),
    ("attention n_head 0", lambda t: CausalSelfAttention(8, 0), ValueError, "n_head must be > 0"),
    ("attention indivisible", lambda t: CausalSelfAttention(8, 3), ValueError, "divisible"),
    ("interpolate shapes", lambda t: interpolate(torch.zeros(3), torch.zeros(4), 5), ValueError, r"z1 must have shape"),
    ("interpolate NaN", lambda t: interpolate(torch.ones(3), torch.full((3,), NAN), 5), ValueError, "z1 contains NaN"),
    ("interpolate steps 0", lambda t: interpolate(torch.ones(3), torch.ones(3), 0), ValueError, "steps must be > 0"),
    (
        "interpolate 2-D",
        lambda t: interpolate(torch.ones(1, 3), torch.ones(1, 3), 4),
        ValueError,
        r"z0 must have shape",
    ),
]
# --------------------------------------------------------------------------- tokenizers, loaders, text

TOKEN_ROWS = [
    ("char from empty text", lambda t: CharTokenizer.from_text(""), ValueError, "text is empty"),
    ("char from bytes", lambda t: CharTokenizer.from_text(b"abc"), TypeError, "text must be a str"),
    ("char duplicate chars", lambda t: CharTokenizer(["a", "a"]), ValueError, "distinct"),
    ("char multi-character token", lambda t: CharTokenizer(["ab"]), ValueError, "single characters"),
    ("char unk of two characters", lambda t: CharTokenizer(["a"], unk="??"), ValueError, "unk must be a single"),
    ("char encode an int", lambda t: char().encode(3), TypeError, "text must be a str"),
    ("char encode errors", lambda t: char().encode("h", errors="ignore"), ValueError, "errors must be"),
    ("char strict unknown", lambda t: char().encode("hz", errors="strict"), ValueError, "'z'.*position 1"),
    ("char decode floats", lambda t: char().decode([1.5]), TypeError, "token ids must be integers"),
    ("char decode bools", lambda t: char().decode([True, False]), TypeError, "token ids must be integers"),
    ("char decode 2-D", lambda t: char().decode([[1, 2]]), ValueError, "1-D sequence"),
    ("char decode out of range", lambda t: char().decode([99]), ValueError, "token ids must be in"),
    ("char decode negative", lambda t: char().decode([-1]), ValueError, "token ids must be in"),
    ("char decode a float tensor", lambda t: char().decode(torch.zeros(2)), TypeError, "integers"),
    ("BPE vocab 100", lambda t: BPETokenizer.train("abc", 100), ValueError, ">= 256"),
    ("BPE vocab 2^40", lambda t: BPETokenizer.train("abc abc", 2**40), ValueError, "at most 1,048,576"),
    ("BPE vocab 2^32 - 1", lambda t: BPETokenizer.train("abc abc", 2**32 - 1), ValueError, "at most"),
    ("BPE vocab float", lambda t: BPETokenizer.train("abc", 300.0), TypeError, "vocab_size must be an int"),
    ("BPE empty text", lambda t: BPETokenizer.train("", 300), ValueError, "text is empty"),
    ("BPE text of ints", lambda t: BPETokenizer.train([1, 2], 300), TypeError, "item of type int"),
    ("BPE text an int", lambda t: BPETokenizer.train(3, 300), TypeError, "text must be a str"),
    ("BPE min_frequency -1", lambda t: BPETokenizer.train("abc", 300, min_frequency=-1), ValueError, "min_frequency"),
    ("BPE encode None", lambda t: bpe().encode(None), TypeError, "text must be a str"),
    ("BPE decode out of range", lambda t: bpe().decode([10**6]), ValueError, "token ids must be in"),
    ("BPE decode floats", lambda t: bpe().decode(np.array([1.0])), TypeError, "integers"),
    ("BPE token_strings out of range", lambda t: bpe().token_strings([10**6]), ValueError, "token ids must be in"),
    ("bpe_merges of bytes", lambda t: bpe_merges(b"abc", 2), TypeError, "text must be a str"),
    ("bpe_merges -1", lambda t: bpe_merges("abc", -1), ValueError, "n_merges must be >= 0"),
    ("check_token_ids list", lambda t: check_token_ids("ids", [1, 2], 5), TypeError, "ids must be a torch.Tensor"),
    ("check_token_ids floats", lambda t: check_token_ids("ids", torch.zeros(2), 5), TypeError, "integer tensor"),
    (
        "check_token_ids complex",
        lambda t: check_token_ids("ids", torch.zeros(2, dtype=torch.cfloat), 5),
        TypeError,
        "integer tensor",
    ),
    (
        "check_token_ids empty",
        lambda t: check_token_ids("ids", torch.zeros(0, dtype=torch.long), 5),
        ValueError,
        "empty",
    ),
    ("check_token_ids rank", lambda t: check_token_ids("ids", ids(1, 1, 1), 11), ValueError, "1 or 2 dimensions"),
]


def _loader_of(n=5, b=2, **kw):
    return TensorLoader(torch.zeros(n, 2), batch_size=b, **kw)


DATA_ROWS = [
    ("loader of nothing", lambda t: TensorLoader(batch_size=2), ValueError, "at least one tensor"),
    ("loader of a list", lambda t: TensorLoader([1, 2], batch_size=2), TypeError, "tensor 0 must be a torch.Tensor"),
    ("empty dataset", lambda t: make_loader(torch.zeros(0, 2), batch_size=2), ValueError, "empty"),
    ("0-d tensor dataset", lambda t: make_loader(torch.tensor(1.0), batch_size=2), ValueError, "empty"),
    (
        "mismatched tensors",
        lambda t: make_loader(torch.zeros(4), torch.zeros(5), batch_size=2),
        ValueError,
        "same first dimension",
    ),
    ("zero batch size", lambda t: make_loader(torch.zeros(4, 2), batch_size=0), ValueError, "batch_size must be > 0"),
    ("float batch size", lambda t: make_loader(torch.zeros(4, 2), batch_size=2.0), TypeError, "batch_size must be an"),
    ("bool batch size", lambda t: make_loader(torch.zeros(4, 2), batch_size=True), TypeError, "batch_size must be an"),
    ("drop_last with too few", lambda t: _loader_of(3, 4, drop_last=True), ValueError, "gives no batch"),
    ("loader numpy generator", lambda t: _loader_of(generator=NPGEN), TypeError, "torch.Generator"),
    ("loader int generator", lambda t: _loader_of(generator=7), TypeError, "torch.Generator"),
    ("loader shuffle string", lambda t: _loader_of(shuffle="yes"), TypeError, "shuffle must be a bool"),
    ("loader drop_last 1", lambda t: _loader_of(drop_last=1), TypeError, "drop_last must be a bool"),
    ("iter_from(-1)", lambda t: _loader_of().iter_from(-1), ValueError, "start must be >= 0"),
    ("iter_from past the end", lambda t: _loader_of().iter_from(4), ValueError, r"at most len\(loader\) = 3"),
    ("iter_from(1.0)", lambda t: _loader_of().iter_from(1.0), TypeError, "start must be an int"),
    ("set_epoch(-1)", lambda t: _loader_of().set_epoch(-1), ValueError, "epoch must be >= 0"),
    ("MNIST split", lambda t: load_mnist("val"), ValueError, "split must be 'train' or 'test'"),
    ("MNIST limit 0", lambda t: load_mnist(limit=0), ValueError, "limit must be > 0"),
    ("MNIST limit float", lambda t: load_mnist(limit=10.0), TypeError, "limit must be an int"),
    ("MNIST loaders batch 0", lambda t: mnist_loaders(0), ValueError, "batch_size must be > 0"),
    ("MNIST loaders generator", lambda t: mnist_loaders(8, generator=NPGEN), TypeError, "torch.Generator"),
    ("digits split", lambda t: load_digits8("all"), ValueError, "split must be"),
    ("toy name", lambda t: toy_2d("circle", 10), ValueError, "name must be one of"),
    ("toy n 0", lambda t: toy_2d("ring", 0), ValueError, "n must be > 0"),
    ("toy n 2^40", lambda t: toy_2d("ring", 2**40), ValueError, SIZE.replace(r"\w+", "values")),
    ("toy noise -1", lambda t: toy_2d("moons", 10, noise=-1.0), ValueError, "noise must be >= 0"),
    ("toy noise inf", lambda t: toy_2d("moons", 10, noise=INF), ValueError, "noise must be finite"),
    ("toy noise NaN", lambda t: toy_2d("moons", 10, noise=NAN), ValueError, "noise must be >= 0"),
    ("toy numpy generator", lambda t: toy_2d("ring", 10, generator=NPGEN), TypeError, "torch.Generator"),
    ("toy int generator", lambda t: toy_2d("spirals", 10, generator=0), TypeError, "torch.Generator"),
]

MASK = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
ZMASK = torch.zeros(2, 4, dtype=torch.long)


@cache
def chat():
    return ChatTemplate(CharTokenizer(list("abc ")))


TEXT_ROWS = [
    ("windows of a list", lambda t: batch_windows([1, 2, 3], 2, 1), TypeError, "1-D torch.Tensor"),
    ("windows of 2-D ids", lambda t: batch_windows(ids(2, 10), 2, 1), ValueError, "1-D integer tensor"),
    ("windows of floats", lambda t: batch_windows(torch.zeros(10), 2, 1), ValueError, "integer tensor"),
    ("windows of bools", lambda t: batch_windows(torch.ones(10, dtype=torch.bool), 2, 1), ValueError, "integer tensor"),
    ("windows block 0", lambda t: batch_windows(ids(10), 0, 1), ValueError, "block_size must be > 0"),
    ("windows batch 0", lambda t: batch_windows(ids(10), 2, 0), ValueError, "batch_size must be > 0"),
    ("windows too short", lambda t: batch_windows(ids(4), 4, 1), ValueError, "needs at least 5"),
    ("windows numpy generator", lambda t: batch_windows(ids(10), 2, 1, generator=NPGEN), TypeError, "Generator"),
    ("windows batch 2^40", lambda t: batch_windows(ids(10), 2, 2**40), ValueError, "would need"),
    ("stream steps 0", lambda t: text_loader(ids(10), 2, 1, steps_per_epoch=0), ValueError, "steps_per_epoch"),
    ("stream steps 10^12", lambda t: text_loader(ids(10), 2, 4, steps_per_epoch=10**12), ValueError, "would need"),
    ("stream int generator", lambda t: text_loader(ids(10), 2, 1, generator=3), TypeError, "torch.Generator"),
    (
        "stream iter_from(-1)",
        lambda t: text_loader(ids(10), 2, 1, steps_per_epoch=3).iter_from(-1),
        ValueError,
        "start must be >= 0",
    ),
    ("BPTT rows too short", lambda t: list(bptt_batches(ids(10), 4, 4)), ValueError, "rows of 2 < block_size=4"),
    ("BPTT loader too short", lambda t: BPTTLoader(ids(10), 4, 4), ValueError, "rows of 2"),
    ("BPTT iter_from(-1)", lambda t: BPTTLoader(ids(20), 2, 2).iter_from(-1), ValueError, "start must be >= 0"),
    ("evaluate_lm n_batches 0", lambda t: evaluate_lm(gpt(), ids(20), 4, 2, n_batches=0), ValueError, "n_batches"),
    ("evaluate_lm generator", lambda t: evaluate_lm(gpt(), ids(20), 4, 2, generator=NPGEN), TypeError, "Generator"),
    ("sliding_nats block 1", lambda t: sliding_nats(gpt(), ids(20), 1), ValueError, "block_size must be >= 2"),
    ("bits_per_char 0 chars", lambda t: bits_per_char(1.0, 0.0), ValueError, "chars_per_token must be > 0"),
    ("bits_per_char inf chars", lambda t: bits_per_char(1.0, INF), ValueError, "chars_per_token must be finite"),
    ("corpus name", lambda t: load_corpus("french"), ValueError, "corpus name must be one of"),
    ("corpus split", lambda t: load_corpus("english", "test"), ValueError, "split must be one of"),
    # chapter 8.3: instruction data, the chat template, SFT / reward model / DPO losses
    ("instructions n 0", lambda t: make_instructions(0), ValueError, "n must be > 0"),
    ("instructions split", lambda t: make_instructions(5, split="val"), ValueError, "split must be 'train' or 'test'"),
    ("instructions task", lambda t: make_instructions(5, tasks=("poem",)), ValueError, "tasks must be a non-empty"),
    ("instructions tasks str", lambda t: make_instructions(5, tasks="add"), ValueError, "tasks must be a non-empty"),
    ("instructions too many", lambda t: make_instructions(500, tasks=("fact",)), ValueError, "cannot draw 500"),
    ("exact_match lengths", lambda t: exact_match(make_instructions(2), ["1"]), ValueError, "2 instructions and 1"),
    ("chat template base", lambda t: ChatTemplate("abc"), TypeError, "base must be a CharTokenizer"),
    ("chat prompt int", lambda t: chat().encode(3, "x"), TypeError, "prompt must be a str"),
    ("chat prompt special", lambda t: chat().encode("a\ue001", "x"), ValueError, "special or out-of-vocabulary"),
    ("chat response unknown", lambda t: chat().encode("a", "\u4e2d"), ValueError, "special or out-of-vocabulary"),
    ("chat parse prompt only", lambda t: chat().parse(chat().encode_prompt("a")), ValueError, "not a <"),
    ("pad_batch mask length", lambda t: pad_batch([[1, 2]], [[1]], 0), ValueError, "2 ids but a mask of 1"),
    ("pad_batch empty", lambda t: pad_batch([], [], 0), ValueError, "at least one"),
    ("corrupt kind", lambda t: corrupt(make_instructions(1)[0], random.Random(0), "rude"), ValueError, "kind must be"),
    ("corrupt not Instruction", lambda t: corrupt("1+1", random.Random(0)), TypeError, "must be an Instruction"),
    ("pairs format_fraction", lambda t: preference_pairs([], format_fraction=2), ValueError, r"in \[0, 1\]"),
    ("masked_nll float ids", lambda t: masked_nll(gpt(), torch.ones(2, 4), MASK), TypeError, "integer tensor"),
    ("masked_nll no response", lambda t: masked_nll(gpt(), ids(8).view(2, 4), ZMASK), ValueError, "response token"),
    ("masked_nll shapes", lambda t: masked_nll(gpt(), ids(8).view(2, 4), MASK[:, :3]), ValueError, "one \\(B"),
    ("bradley_terry shapes", lambda t: bradley_terry_loss(torch.ones(3), torch.ones(2)), ValueError, "two \\(B,\\)"),
    ("dpo beta 0", lambda t: dpo_loss(*[torch.zeros(2)] * 4, beta=0.0), ValueError, "beta must be > 0"),
    ("dpo beta str", lambda t: dpo_loss(*[torch.zeros(2)] * 4, beta="0.1"), TypeError, "beta must be a number"),
    ("DPOLoss same model", lambda t: (lambda m: DPOLoss(m, m))(gpt()), ValueError, "separate, frozen copy"),
    ("RewardModel cfg", lambda t: RewardModel(LSTMConfig(10)), TypeError, "RewardModel needs a GPTConfig"),
    ("RewardModel pool", lambda t: RewardModel(GPTConfig(10), pool="max"), ValueError, "pool must be 'last' or 'mean'"),
    ("RewardModel loglik", lambda t: RewardModel(GPTConfig(10), loglik="yes"), TypeError, "loglik must be a bool"),
    (
        "DPOLoss nll_weight",
        lambda t: DPOLoss(gpt(), GPT(gpt().cfg), nll_weight=-1.0),
        ValueError,
        "nll_weight must be >= 0",
    ),
    ("SFTLoss model", lambda t: SFTLoss(torch.nn.Linear(2, 2)), TypeError, "SFTLoss needs a GPT"),
    ("extend_vocab smaller", lambda t: extend_vocab(gpt(), 5, like=0), ValueError, "vocab_size must be >= "),
    ("extend_vocab like", lambda t: extend_vocab(gpt(), 12, like=11), ValueError, "like must be an old token id"),
]

# --------------------------------------------------------------------------- sampling filters

SAMPLING_ROWS = [
    ("greedy of a list", lambda t: greedy([1.0, 2.0]), TypeError, "logits must be a torch.Tensor"),
    ("greedy of ints", lambda t: greedy(torch.zeros(3, dtype=torch.long)), TypeError, "floating-point"),
    ("greedy NaN", lambda t: greedy(bad_logits(NAN)), ValueError, "logits contain NaN"),
    ("greedy empty vocabulary", lambda t: greedy(torch.zeros(2, 0)), ValueError, r"V >= 1"),
    ("greedy 0-d", lambda t: greedy(torch.tensor(1.0)), ValueError, r"shape \(\.\.\., V\)"),
    ("temperature 0", lambda t: apply_temperature(logits(5), 0), ValueError, "temperature must be a finite number > 0"),
    ("temperature NaN", lambda t: apply_temperature(logits(5), NAN), ValueError, "temperature"),
    ("temperature inf", lambda t: apply_temperature(logits(5), INF), ValueError, "finite"),
    ("temperature string", lambda t: apply_temperature(logits(5), "1"), TypeError, "temperature must be a number"),
    ("temperature 1e-40 overflows", lambda t: apply_temperature(logits(5) + 10, 1e-40), ValueError, "overflows"),
    ("temperature NaN logits", lambda t: apply_temperature(bad_logits(NAN), 1.0), ValueError, "NaN"),
    ("top_k 0", lambda t: top_k_filter(logits(5), 0), ValueError, "top_k must be >= 1"),
    ("top_k float", lambda t: top_k_filter(logits(5), 2.5), TypeError, "top_k must be an int"),
    ("top_k bool", lambda t: top_k_filter(logits(5), True), TypeError, "top_k must be an int"),
    ("top_k NaN logits", lambda t: top_k_filter(bad_logits(NAN), 2), ValueError, "NaN"),
    ("top_p 0", lambda t: top_p_filter(logits(5), 0.0), ValueError, r"top_p must be in \(0, 1\]"),
    ("top_p 1.5", lambda t: top_p_filter(logits(5), 1.5), ValueError, r"top_p must be in"),
    ("top_p NaN", lambda t: top_p_filter(logits(5), NAN), ValueError, r"top_p must be in"),
    ("top_p +inf logits", lambda t: top_p_filter(bad_logits(INF), 0.9), ValueError, r"\+inf"),
    ("sample NaN logits", lambda t: sample_next(bad_logits(NAN)), ValueError, "logits contain NaN"),
    ("sample +inf logits", lambda t: sample_next(bad_logits(INF)), ValueError, r"\+inf"),
    ("sample a fully masked row", lambda t: sample_next(masked_row()), ValueError, "every logit of a row is -inf"),
    ("sample NaN logits, cold", lambda t: sample_next(bad_logits(NAN), temperature=1e-40), ValueError, "NaN"),
    ("sample numpy generator", lambda t: sample_next(logits(5), generator=NPGEN), TypeError, "torch.Generator"),
    ("sample int generator", lambda t: sample_next(logits(5), generator=1), TypeError, "torch.Generator"),
    ("sample generator on cuda", lambda t: check_generator("generator", cuda_gen(), "cpu"), ValueError, "CPU"),
    ("sample temperature string", lambda t: sample_next(logits(5), temperature="hot"), TypeError, "number"),
    ("sample top_p -1", lambda t: sample_next(logits(5), top_p=-1.0), ValueError, "top_p"),
    ("choose_next 3-D", lambda t: choose_next(logits(2, 3, 5)), ValueError, r"shape \(B, V\), got \(2, 3, 5\)"),
    ("choose_next 1-D", lambda t: choose_next(logits(5), greedy=True), ValueError, r"shape \(B, V\)"),
    ("choose_next NaN greedy", lambda t: choose_next(bad_logits(NAN), greedy=True), ValueError, "NaN"),
    ("check_sampling top_k string", lambda t: check_sampling(top_k="5"), TypeError, "top_k must be an int"),
    (
        "generate_tokens 1-D idx",
        lambda t: generate_tokens(lambda o, s: (logits(1, 5), s), ids(3), 2),
        ValueError,
        r"idx must be a \(B, T\) tensor",
    ),
    (
        "generate_tokens -1",
        lambda t: generate_tokens(lambda o, s: (logits(1, 5), s), ids(1, 3), -1),
        ValueError,
        "max_new_tokens",
    ),
    (
        "generate_tokens 10^12",
        lambda t: generate_tokens(lambda o, s: (logits(1, 5), s), ids(1, 3), 10**12),
        ValueError,
        "would need",
    ),
    (
        "generate_tokens NaN from the model",
        lambda t: generate_tokens(lambda o, s: (bad_logits(NAN)[1:], s), ids(1, 3), 2),
        ValueError,
        "NaN",
    ),
]
# --------------------------------------------------------------------------- metrics


def _iq(**kw):
    return image_quality(clf(), img(8), img(8), **{"n": 8, **kw})


METRIC_ROWS = [
    ("features of flat images", lambda t: classifier_features(clf(), torch.rand(2, 784)), ValueError, "shape"),
    ("features of NaN images", lambda t: classifier_features(clf(), img(fill=NAN)), ValueError, "NaN"),
    ("features batch 0", lambda t: classifier_features(clf(), img(), batch_size=0), ValueError, "batch_size"),
    ("FID of one sample", lambda t: frechet_distance(feats(1), feats(4)), ValueError, "feat_a has 1 samples"),
    ("FID dimensions differ", lambda t: frechet_distance(feats(4, 3), feats(4, 2)), ValueError, "D=3.*D=2"),
    ("FID NaN features", lambda t: frechet_distance(nanz(4, 3), feats(4)), ValueError, "feat_a contains NaN"),
    ("FID 1-D features", lambda t: frechet_distance(torch.zeros(4), torch.zeros(4)), ValueError, r"2-D \(N, D\)"),
    ("FID int features", lambda t: frechet_distance(np.zeros((4, 2), int), feats(4, 2)), TypeError, "floating"),
    ("FID of strings", lambda t: frechet_distance("abc", feats(4)), TypeError, "feat_a must be a tensor or array"),
    ("KID subset 1", lambda t: kid(feats(4), feats(4), subset_size=1), ValueError, "subset_size must be >= 2"),
    (
        "KID default subset on 8 samples",
        lambda t: kid(feats(8), feats(8)),
        ValueError,
        "need at least 500 .*subset_size=500",
    ),
    ("KID n_subsets 0", lambda t: kid(feats(8), feats(8), subset_size=4, n_subsets=0), ValueError, "n_subsets"),
    ("KID numpy generator", lambda t: kid(feats(8), feats(8), subset_size=4, generator=NPGEN), TypeError, "Generator"),
    ("precision k 0", lambda t: precision_recall(feats(8), feats(8), k=0), ValueError, "k must be > 0"),
    ("precision too few", lambda t: precision_recall(feats(3), feats(8), k=3), ValueError, r"real has 3 .*k=3"),
    ("precision NaN fake", lambda t: precision_recall(feats(8), nanz(8, 3), k=2), ValueError, "fake contains NaN"),
    (
        "accuracy labels out of range",
        lambda t: conditional_accuracy(clf(), img(), torch.tensor([0, 10])),
        ValueError,
        r"labels must lie in \[0, 10\)",
    ),
    ("accuracy negative labels", lambda t: conditional_accuracy(clf(), img(), [-1, 0]), ValueError, "lie in"),
    ("accuracy float labels", lambda t: conditional_accuracy(clf(), img(), [0.0, 1.0]), TypeError, "labels must be"),
    ("accuracy label count", lambda t: conditional_accuracy(clf(), img(), [0]), ValueError, r"shape \(2\)"),
    ("accuracy NaN images", lambda t: conditional_accuracy(clf(), img(fill=NAN), [0, 1]), ValueError, "NaN"),
    ("ring std inf", lambda t: ring_metrics(feats(8, 2), std=INF), ValueError, "std must be finite"),
    ("ring radius 0", lambda t: ring_metrics(feats(8, 2), radius=0.0), ValueError, "radius must be > 0"),
    ("ring 3-D samples", lambda t: ring_metrics(feats(8, 3)), ValueError, r"samples must have shape \(N, 2\)"),
    ("ring NaN samples", lambda t: ring_metrics(nanz(4, 2)), ValueError, "samples contains NaN"),
    ("ring min_share NaN", lambda t: ring_metrics(feats(8, 2), min_share=NAN), ValueError, "min_share"),
    ("ring n_modes 0", lambda t: ring_metrics(feats(8, 2), n_modes=0), ValueError, "n_modes must be > 0"),
    ("image_quality n=1", lambda t: _iq(n=1), ValueError, r"^n must be at least 4"),
    ("image_quality n=0", lambda t: _iq(n=0), ValueError, "n must be > 0"),
    ("image_quality kid_subset 0", lambda t: _iq(kid_subset=0), ValueError, "kid_subset must be > 0"),
    ("image_quality kid_subset 1", lambda t: _iq(kid_subset=1), ValueError, r"kid_subset must be in \[2, n=8\]"),
    ("image_quality kid_subset > n", lambda t: _iq(kid_subset=9), ValueError, "kid_subset must be in"),
    ("image_quality too few real", lambda t: image_quality(clf(), img(4), img(8), n=8), ValueError, "real has 4"),
    ("image_quality generator", lambda t: _iq(generator=NPGEN), TypeError, "torch.Generator"),
    ("image_quality k 0", lambda t: _iq(k=0), ValueError, "k must be > 0"),
    ("image_quality NaN fake", lambda t: image_quality(clf(), img(8), img(8, fill=NAN), n=8), ValueError, "NaN"),
]

# --------------------------------------------------------------------------- widgets (GENAI_BOOK unset)


def _dec(z):
    return torch.sigmoid(z.sum(1)).reshape(-1, 1, 1, 1).expand(-1, 1, 4, 4)


def _slider(**kw):
    return widgets.latent_slider(_dec, **{"mode": "static", "steps": 3, **kw})


WIDGET_ROWS = [
    ("decode_point NaN value", lambda t: widgets.decode_point(_dec, [NAN, 0.0]), ValueError, "values must be finite"),
    ("decode_point inf value", lambda t: widgets.decode_point(_dec, [INF]), ValueError, "values must be finite"),
    ("decode_point string values", lambda t: widgets.decode_point(_dec, "ab"), TypeError, "sequence of numbers"),
    ("decode_point bool value", lambda t: widgets.decode_point(_dec, [True]), TypeError, "must hold numbers"),
    ("decode_point not callable", lambda t: widgets.decode_point(3, [0.0]), TypeError, "callable"),
    (
        "decode_point 2 channels",
        lambda t: widgets.decode_point(lambda z: torch.zeros(1, 2, 4, 4), [0.0]),
        ValueError,
        "2 channels.*1 \\(grey\\) or 3",
    ),
    (
        "decode_point NaN output",
        lambda t: widgets.decode_point(lambda z: torch.full((1, 1, 4, 4), NAN), [0.0]),
        ValueError,
        "NaN or infinite",
    ),
    (
        "decode_point 4-D output",
        lambda t: widgets.decode_point(lambda z: torch.zeros(1, 1, 1, 4, 4), [0.0]),
        ValueError,
        "cannot display",
    ),
    ("with_alt empty", lambda t: plotting.with_alt(plotting.image_grid(torch.zeros(1, 4, 4)), " "), ValueError, "alt"),
    (
        "with_alt not a str",
        lambda t: plotting.with_alt(plotting.image_grid(torch.zeros(1, 4, 4)), 3),
        ValueError,
        "alt",
    ),
    ("to_png NaN", lambda t: widgets.to_png(np.full((4, 4), NAN)), ValueError, "NaN or infinite"),
    ("to_png channels first", lambda t: widgets.to_png(np.zeros((3, 5, 5))), ValueError, r"\(H, W, 3\)"),
    ("to_png 1-D", lambda t: widgets.to_png(np.zeros(16)), ValueError, r"image must be \(H, W\)"),
    ("to_png empty", lambda t: widgets.to_png(np.zeros((0, 4))), ValueError, r"image must be \(H, W\)"),
    ("to_png strings", lambda t: widgets.to_png([["a"]]), TypeError, "array of numbers"),
    ("to_png scale 0", lambda t: widgets.to_png(np.zeros((4, 4)), scale=0), ValueError, "scale must be > 0"),
    ("to_png scale 2.5", lambda t: widgets.to_png(np.zeros((4, 4)), scale=2.5), TypeError, "scale must be an int"),
    ("to_png scale 10^5", lambda t: widgets.to_png(np.zeros((4, 4)), scale=10**5), ValueError, "pixels"),
    ("slider bounds NaN", lambda t: _slider(bounds=NAN), ValueError, "bounds must be finite"),
    ("slider bounds inf", lambda t: _slider(bounds=INF), ValueError, "bounds must be finite"),
    ("slider pair NaN", lambda t: _slider(bounds=[(0, NAN), (0, 1)]), ValueError, "bounds must be finite"),
    ("slider low >= high", lambda t: _slider(bounds=[(1, 0), (0, 1)]), ValueError, "low < high"),
    ("slider one pair for two dims", lambda t: _slider(bounds=[(0, 1)]), ValueError, "2 \\(low, high\\) pairs"),
    ("slider bounds string", lambda t: _slider(bounds="wide"), TypeError, "bounds must be a number"),
    ("slider fixed NaN", lambda t: _slider(fixed=[NAN]), ValueError, "fixed must be finite"),
    ("slider fixed string", lambda t: _slider(fixed="0"), TypeError, "fixed must be a sequence"),
    ("slider dims 0", lambda t: _slider(dims=0), ValueError, "dims must be a positive int"),
    ("slider dims True", lambda t: _slider(dims=True), ValueError, "dims must be a positive int"),
    ("slider steps 1", lambda t: _slider(steps=1), ValueError, "steps must be an int in"),
    ("slider steps 10^6", lambda t: _slider(steps=10**6, mode="live"), ValueError, "steps must be an int in"),
    ("slider names", lambda t: _slider(names=["a"]), ValueError, "names must have 2 entries"),
    ("slider static too many frames", lambda t: _slider(steps=21), ValueError, "pre-render 441 frames"),
    ("slider mode", lambda t: _slider(mode="fancy"), ValueError, "mode must be"),
    ("slider scale 0", lambda t: _slider(scale=0), ValueError, "scale must be > 0"),
    ("frames none", lambda t: widgets.frame_slider([], []), ValueError, "at least one frame"),
    ("frames labels count", lambda t: widgets.frame_slider([np.zeros((2, 2))], ["a", "b"]), ValueError, "one label"),
    (
        "frames duplicate labels",
        lambda t: widgets.frame_slider([np.zeros((2, 2))] * 2, ["a", "a"]),
        ValueError,
        "distinct",
    ),
    (
        "frames of two shapes",
        lambda t: widgets.frame_slider([np.zeros((2, 2)), np.zeros((3, 3))], ["a", "b"]),
        ValueError,
        "same shape",
    ),
    ("frames NaN", lambda t: widgets.frame_slider([np.full((2, 2), NAN)], ["a"]), ValueError, "NaN"),
    ("text_sampler fn", lambda t: widgets.text_sampler(3, "hi"), TypeError, "continue_fn must be callable"),
    ("text_sampler prompt", lambda t: widgets.text_sampler(print, 3), TypeError, "prompt must be a str"),
    (
        "text_sampler NaN temperature",
        lambda t: widgets.text_sampler(print, "hi", grid=[(NAN, 0, 1.0)]),
        ValueError,
        "each grid entry",
    ),
    ("text_sampler top_p 0", lambda t: widgets.text_sampler(print, "hi", grid=[(1.0, 0, 0.0)]), ValueError, "grid"),
    (
        "text_sampler float top_k",
        lambda t: widgets.text_sampler(print, "hi", grid=[(1.0, 2.5, 1.0)]),
        ValueError,
        "top_k >= 0 an int",
    ),
    ("text_sampler pair", lambda t: widgets.text_sampler(print, "hi", grid=[(1.0, 0)]), ValueError, "grid entry"),
    ("text_sampler n 0", lambda t: widgets.text_sampler(print, "hi", n=0), ValueError, "n must be > 0"),
    ("widget_mode", lambda t: widgets.widget_mode("fancy"), ValueError, "mode must be"),
]

# --------------------------------------------------------------------------- plotting, utils, checks


def _hist():
    h = History()
    h.append(1, {"loss": 1.0})
    return h


PLOT_ROWS = [
    ("grid of 2 channels", lambda t: plotting.grid_array(torch.zeros(2, 2, 4, 4)), ValueError, "C in \\(1, 3\\)"),
    ("grid of nothing", lambda t: plotting.grid_array(torch.zeros(0, 1, 4, 4)), ValueError, "empty batch"),
    ("grid nrow 0", lambda t: plotting.grid_array(torch.zeros(2, 1, 4, 4), nrow=0), ValueError, "nrow must be > 0"),
    ("grid nrow -1", lambda t: plotting.image_grid(torch.zeros(2, 1, 4, 4), nrow=-1), ValueError, "nrow must be"),
    ("grid pad -1", lambda t: plotting.grid_array(torch.zeros(2, 1, 4, 4), pad=-1), ValueError, "pad must be >= 0"),
    ("latent map 3-D", lambda t: plotting.latent_map(torch.zeros(4, 3)), ValueError, r"z must be \(N, 2\)"),
    ("curves of nothing", lambda t: plotting.training_curves(History()), ValueError, "no logs"),
    ("curves missing key", lambda t: plotting.training_curves(_hist(), ["kl"]), KeyError, "no log named 'kl'"),
    ("curves smooth -1", lambda t: plotting.training_curves(_hist(), smooth=-1), ValueError, "smooth must be >= 0"),
    ("curves key as a string", lambda t: plotting.training_curves(_hist(), "kl"), KeyError, "no log named 'kl'"),
    ("scatter 3-D", lambda t: plotting.scatter_2d(torch.zeros(4, 3)), ValueError, r"points must be \(N, 2\)"),
    ("density resolution 0", lambda t: plotting.density_2d(gm().log_prob, resolution=0), ValueError, "resolution"),
    ("density resolution 10^6", lambda t: plotting.density_2d(gm().log_prob, resolution=10**6), ValueError, "need"),
    ("density lim NaN", lambda t: plotting.density_2d(gm().log_prob, lim=NAN), ValueError, "lim must be > 0"),
    ("animate nothing", lambda t: plotting.animate([]), ValueError, "at least one frame"),
]

UTIL_ROWS = [
    ("get_device tpu", lambda t: get_device("tpu"), ValueError, "device such as 'cpu'"),
    (
        "get_device cuda without CUDA",
        lambda t: torch.cuda.is_available() and pytest.skip("CUDA here") or get_device("cuda"),
        ValueError,
        "CUDA is not available",
    ),
    ("seed -1", lambda t: seed_everything(-1), ValueError, "seed must be >= 0"),
    ("seed float", lambda t: seed_everything(1.5), TypeError, "seed must be an int"),
    ("noise negative shape", lambda t: normal_noise((-1, 2)), ValueError, r"shape\[0\] must be >= 0"),
    ("noise int shape", lambda t: normal_noise(5), TypeError, "shape must be a tuple"),
    ("noise float shape", lambda t: uniform_noise((2.0, 2)), TypeError, r"shape\[0\] must be an int"),
    ("noise numpy generator", lambda t: normal_noise((2,), generator=NPGEN), TypeError, "torch.Generator"),
    ("noise 2^40", lambda t: uniform_noise((2**20, 2**20)), ValueError, "would need"),
    ("split_batch string", lambda t: split_batch("x"), TypeError, "batch must be a tensor"),
    ("split_batch empty", lambda t: split_batch([]), ValueError, "empty tuple"),
    ("show_source of 3", lambda t: show_source(3), TypeError, "show_source needs"),
    ("check_positive inf", lambda t: check_positive("lr", INF, integer=False), ValueError, "lr must be finite"),
    ("check_positive numpy int", lambda t: check_positive("n", np.int64(3)), TypeError, r"use int\(\.\.\.\)"),
    ("check_probability NaN", lambda t: check_probability("p", NAN), ValueError, r"p must be in \[0, 1\]"),
    ("check_tensor range", lambda t: check_tensor("x", torch.ones(2) * 2, value_range=(0, 1)), ValueError, "lie in"),
]
# --------------------------------------------------------------------------- recipes' argument checks


def _recipes():
    from genai_lib.recipes import gan, language, vae

    return vae, gan, language


RECIPE_ROWS = [
    ("train_vae unknown", lambda t: _recipes()[0].train_vae("mlp3"), ValueError, "recipe must be one of"),
    ("train_vae of an int", lambda t: _recipes()[0].train_vae(3), TypeError, "recipe must be a name"),
    (
        "train_vae custom without a name",
        lambda t: _recipes()[0].train_vae(_recipes()[0].VAERecipe(VAEConfig(), 1, 1e-3)),
        ValueError,
        "needs a name",
    ),
    ("train_gan unknown", lambda t: _recipes()[1].train_gan("stylegan"), ValueError, "recipe must be one of"),
    ("gan_model unknown", lambda t: _recipes()[1].gan_model("x"), ValueError, "recipe must be one of"),
    ("GANRecipe of a VAEConfig", lambda t: _recipes()[1].GANRecipe(VAEConfig(), {"steps": 1}), TypeError, "config"),
    ("GANRecipe without steps", lambda t: _recipes()[1].GANRecipe(DCGANConfig(), {}), ValueError, "'steps'"),
    ("ring_model unknown", lambda t: _recipes()[1].ring_model("broken"), ValueError, "which must be one of"),
    ("train_ring unknown", lambda t: _recipes()[1].train_ring("broken"), ValueError, "which must be one of"),
    ("train_gpt of an LSTM", lambda t: _recipes()[2].train_gpt(lstm(), ids(50), steps=1), TypeError, "must be a GPT"),
    (
        "train_gpt min_lr > lr",
        lambda t: _recipes()[2].train_gpt(gpt(), ids(50), steps=1, min_lr=1.0),
        ValueError,
        "min_lr must be <= lr",
    ),
    ("train_gpt float ids", lambda t: _recipes()[2].train_gpt(gpt(), torch.zeros(50), steps=1), TypeError, "ids"),
    ("train_gpt steps 0", lambda t: _recipes()[2].train_gpt(gpt(), ids(50), steps=0), ValueError, "steps must be"),
    ("train_lstm of a GPT", lambda t: _recipes()[2].train_lstm(gpt(), ids(50), steps=1), TypeError, "an LSTMLM"),
    (
        "train_lstm ids out of range",
        lambda t: _recipes()[2].train_lstm(lstm(), ids(50) + 11, steps=1),
        ValueError,
        "outside the vocabulary",
    ),
    ("train_char_gpt recipe", lambda t: _recipes()[2].train_char_gpt(ids(50), 11, recipe=3), TypeError, "recipe"),
]

# --------------------------------------------------------------------------- chapter 6: diffusion and flow matching


@cache
def _d():
    """The chapter-6 modules and tiny models, imported and built once."""
    from types import SimpleNamespace

    from genai_lib.models import diffusion, flow, unet
    from genai_lib.recipes import diffusion as recipes
    from genai_lib.recipes import diffusion_eval

    tiny_unet = unet.UNetConfig(width=8, mults=(1, 2), groups=4, heads=2, image_shape=(1, 8, 8))
    tiny_mlp = unet.MLPDenoiserConfig(dim=2, hidden=8, depth=1, emb_dim=8)
    torch.manual_seed(0)
    return SimpleNamespace(
        diffusion=diffusion,
        flow=flow,
        unet=unet,
        recipes=recipes,
        eval=diffusion_eval,
        tiny_unet=tiny_unet,
        tiny_mlp=tiny_mlp,
        dm=diffusion.GaussianDiffusion(diffusion.DiffusionConfig(tiny_unet, steps=20)),
        fm=flow.FlowMatching(flow.FlowConfig(tiny_mlp)),
        cond=diffusion.GaussianDiffusion(
            diffusion.DiffusionConfig(
                unet.MLPDenoiserConfig(dim=2, hidden=8, depth=1, emb_dim=8, n_classes=2), steps=10
            )
        ),
        sched=diffusion.NoiseSchedule.make("linear", 100),
    )


def _dcfg(**kw):
    return _d().diffusion.DiffusionConfig(_d().tiny_mlp, **kw)


def _unet(**kw):
    return _d().unet.UNetConfig(**kw)


DIFFUSION_ROWS = [
    ("q_sample t > T", lambda t: _d().sched.q_sample(torch.zeros(2, 2), 101), ValueError, r"t must lie in \[0, 100\]"),
    (
        "q_sample t < 0",
        lambda t: _d().sched.q_sample(torch.zeros(2, 2), torch.tensor([-1, 3])),
        ValueError,
        r"t must lie in \[0, 100\]",
    ),
    (
        "q_sample float t",
        lambda t: _d().sched.q_sample(torch.zeros(2, 2), torch.tensor([1.0, 3.0])),
        TypeError,
        "t must be an integer tensor",
    ),
    (
        "posterior at t = 0",
        lambda t: _d().sched.posterior(torch.zeros(2, 1), torch.zeros(2, 1), 0),
        ValueError,
        r"t must lie in \[1, 100\]",
    ),
    (
        "q_sample noise shape",
        lambda t: _d().sched.q_sample(torch.zeros(2, 2), 3, torch.zeros(3, 2)),
        ValueError,
        "noise must have the shape of x0",
    ),
    ("q_sample of a list", lambda t: _d().sched.q_sample([0.0, 1.0], 3), TypeError, "x0 must be a torch.Tensor"),
    (
        "diffusion loss image size",
        lambda t: _d().dm.loss(torch.rand(2, 1, 28, 28)),
        ValueError,
        r"x must have shape \(N, 1, 8, 8\)",
    ),
    (
        "diffusion loss image range",
        lambda t: _d().dm.loss(torch.rand(2, 1, 8, 8) * 2 - 1),
        ValueError,
        r"images must be finite and lie in \[0, 1\]",
    ),
    (
        "diffusion loss NaN image",
        lambda t: _d().dm.loss(torch.full((2, 1, 8, 8), NAN)),
        ValueError,
        r"lie in \[0, 1\]",
    ),
    ("diffusion zero steps", lambda t: _d().dm.sample(2, steps=0), ValueError, "steps must be > 0"),
    (
        "diffusion steps > T",
        lambda t: _d().dm.sample(2, steps=21),
        ValueError,
        r"steps must be <= 20 \(the length of the chain\)",
    ),
    ("diffusion float steps", lambda t: _d().dm.sample(2, steps=2.5), TypeError, "steps must be an int"),
    ("flow zero steps", lambda t: _d().fm.sample(2, steps=0), ValueError, "steps must be > 0"),
    ("diffusion n = 0", lambda t: _d().dm.sample(0, steps=5), ValueError, "n must be > 0"),
    ("diffusion method euler", lambda t: _d().dm.sample(2, method="euler"), ValueError, "method must be 'ddim' or"),
    (
        "diffusion ddpm with eta",
        lambda t: _d().dm.sample(2, method="ddpm", eta=0.5),
        ValueError,
        "eta belongs to method='ddim'",
    ),
    ("diffusion negative eta", lambda t: _d().dm.sample(2, eta=-0.1), ValueError, "eta must be >= 0"),
    ("flow method rk4", lambda t: _d().fm.sample(2, method="rk4"), ValueError, r"method must be one of \('euler'"),
    ("diffusion negative guidance", lambda t: _d().dm.sample(2, guidance=-1.0), ValueError, "guidance must be >= 0"),
    ("diffusion NaN guidance", lambda t: _d().dm.sample(2, guidance=NAN), ValueError, "guidance must be a finite"),
    ("flow negative guidance", lambda t: _d().fm.sample(2, guidance=-0.5), ValueError, "guidance must be >= 0"),
    (
        "labels to an unconditional model",
        lambda t: _d().dm.sample(2, labels=1),
        ValueError,
        "labels are only accepted by a class-conditional model",
    ),
    ("sample label out of range", lambda t: _d().cond.sample(2, labels=2), ValueError, r"labels must lie in \[0, 2\)"),
    (
        "sample float labels",
        lambda t: _d().cond.sample(2, labels=torch.tensor([0.0, 1.0])),
        TypeError,
        "labels must be an integer tensor",
    ),
    (
        "conditional loss without labels",
        lambda t: _d().cond.loss(torch.zeros(2, 2)),
        ValueError,
        r"needs \(x, labels\) batches",
    ),
    (
        "sample noise shape",
        lambda t: _d().dm.sample(2, steps=5, noise=torch.zeros(3, 1, 8, 8)),
        ValueError,
        r"noise must have shape \(2, 1, 8, 8\)",
    ),
    (
        "sample an int generator",
        lambda t: _d().dm.sample(2, steps=5, generator=0),
        TypeError,
        "generator must be a torch.Generator",
    ),
    (
        "trajectory unknown keyword",
        lambda t: _d().dm.trajectory(2, step=5),
        TypeError,
        "trajectory got unexpected keywords",
    ),
    ("network ema not a bool", lambda t: _d().dm.network(ema="yes"), TypeError, "ema must be a bool"),
    ("flow loss vector size", lambda t: _d().fm.loss(torch.zeros(4, 3)), ValueError, r"x must have shape \(N, 2\)"),
    (
        "schedule not monotone",
        lambda t: _d().diffusion.NoiseSchedule.from_alpha_bar([1.0, 0.5, 0.6]),
        ValueError,
        "not monotone",
    ),
    (
        "schedule reaching 0",
        lambda t: _d().diffusion.NoiseSchedule.from_alpha_bar([1.0, 0.5, 0.0]),
        ValueError,
        "stay > 0",
    ),
    (
        "schedule beta out of (0, 1)",
        lambda t: _d().diffusion.NoiseSchedule([0.1, -0.1, 0.2]),
        ValueError,
        r"betas must lie in \(0, 1\)",
    ),
    (
        "schedule NaN beta",
        lambda t: _d().diffusion.NoiseSchedule([0.1, NAN]),
        ValueError,
        "betas contains NaN",
    ),
    (
        "schedule unknown kind",
        lambda t: _d().diffusion.NoiseSchedule.make("quadratic", 10),
        ValueError,
        r"schedule must be one of \('linear', 'cosine'\)",
    ),
    ("linear schedule too short", lambda t: _d().diffusion.linear_betas(10), ValueError, "need 0 < beta < 1"),
    ("DiffusionConfig schedule", lambda t: _dcfg(schedule="sigmoid"), ValueError, "schedule must be one of"),
    ("DiffusionConfig prediction", lambda t: _dcfg(prediction="score"), ValueError, r"prediction must be one of"),
    ("DiffusionConfig steps 0", lambda t: _dcfg(steps=0), ValueError, "steps must be > 0"),
    ("DiffusionConfig float steps", lambda t: _dcfg(steps=10.0), TypeError, "steps must be an int"),
    ("DiffusionConfig short linear", lambda t: _dcfg(steps=10, schedule="linear"), ValueError, "need 0 < beta < 1"),
    (
        "DiffusionConfig p_uncond without classes",
        lambda t: _dcfg(p_uncond=0.1),
        ValueError,
        "p_uncond > 0 needs a class-conditional",
    ),
    ("DiffusionConfig ema_decay 1", lambda t: _dcfg(ema_decay=1.0), ValueError, r"ema_decay must be in \[0, 1\)"),
    (
        "DiffusionConfig of a string",
        lambda t: _d().diffusion.DiffusionConfig("unet"),
        TypeError,
        "denoiser must be a UNetConfig or MLPDenoiserConfig",
    ),
    ("DiffusionConfig data_scale 0", lambda t: _dcfg(data_scale=0.0), ValueError, "data_scale must be > 0"),
    ("DiffusionConfig clip_x0 not bool", lambda t: _dcfg(clip_x0=1), TypeError, "clip_x0 must be a bool"),
    (
        "FlowConfig sigma_min 1",
        lambda t: _d().flow.FlowConfig(_d().tiny_mlp, sigma_min=1.0),
        ValueError,
        r"sigma_min must be in \[0, 1\)",
    ),
    (
        "FlowConfig time sampling",
        lambda t: _d().flow.FlowConfig(_d().tiny_mlp, time_sampling="beta"),
        ValueError,
        "time_sampling must be one of",
    ),
    (
        "GaussianDiffusion of a FlowConfig",
        lambda t: _d().diffusion.GaussianDiffusion(_d().flow.FlowConfig(_d().tiny_mlp)),
        TypeError,
        "cfg must be a DiffusionConfig",
    ),
    (
        "FlowMatching of a DiffusionConfig",
        lambda t: _d().flow.FlowMatching(_dcfg()),
        TypeError,
        "cfg must be a FlowConfig",
    ),
    ("UNetConfig 30x30", lambda t: _unet(image_shape=(1, 30, 30)), ValueError, "must be divisible by patch"),
    ("UNetConfig groups", lambda t: _unet(width=12, groups=8), ValueError, "not divisible by groups=8"),
    ("UNetConfig heads", lambda t: _unet(width=8, groups=4, heads=3), ValueError, "not divisible by heads=3"),
    ("UNetConfig dropout 1", lambda t: _unet(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (
        "UNetConfig image_shape 2-D",
        lambda t: _unet(image_shape=(28, 28)),
        ValueError,
        r"image_shape must be \(C, H, W\)",
    ),
    ("UNetConfig mults of an int", lambda t: _unet(mults=2), TypeError, "mults must be a tuple"),
    ("UNetConfig absurd width", lambda t: _unet(width=2**20, groups=1), ValueError, "UNetConfig would need"),
    ("UNetConfig float width", lambda t: _unet(width=32.0), TypeError, "width must be an int"),
    (
        "MLPDenoiserConfig odd embedding",
        lambda t: _d().unet.MLPDenoiserConfig(emb_dim=7),
        ValueError,
        "emb_dim must be even",
    ),
    (
        "MLPDenoiserConfig absurd width",
        lambda t: _d().unet.MLPDenoiserConfig(hidden=2**24),
        ValueError,
        "MLPDenoiserConfig would need",
    ),
    (
        "UNet t of the wrong length",
        lambda t: _d().unet.UNet(_d().tiny_unet)(torch.zeros(2, 1, 8, 8), torch.zeros(3)),
        ValueError,
        r"t must have shape \(2\), got \(3,\)",
    ),
    (
        "UNet labels to an unconditional net",
        lambda t: _d().unet.UNet(_d().tiny_unet)(torch.zeros(2, 1, 8, 8), 0.5, torch.zeros(2).long()),
        ValueError,
        "unconditional",
    ),
    (
        "UNet label beyond the null class",
        lambda t: _d().unet.UNet(_unet(width=8, mults=(1, 2), groups=4, heads=2, image_shape=(1, 8, 8), n_classes=2))(
            torch.zeros(2, 1, 8, 8), 0.5, torch.tensor([0, 3])
        ),
        ValueError,
        r"labels must lie in \[0, 2\] \(2 = the null class\)",
    ),
    ("timestep_embedding odd dim", lambda t: _d().unet.timestep_embedding(torch.zeros(3), 5), ValueError, "even"),
    (
        "guided negative scale",
        lambda t: _d().unet.guided(_d().unet.UNet(_d().tiny_unet), torch.zeros(1, 1, 8, 8), torch.zeros(1), None, -1.0),
        ValueError,
        "guidance scale must be >= 0",
    ),
    ("euler zero steps", lambda t: _d().flow.euler(lambda x, s: x, torch.zeros(1), 0), ValueError, "steps must be > 0"),
    (
        "LatentGenerator without decode_mean",
        lambda t: _d().diffusion.LatentGenerator(_d().fm, torch.nn.Linear(2, 2)),
        TypeError,
        "decode_mean",
    ),
    (
        "train_diffusion unknown",
        lambda t: _d().recipes.train_diffusion("ddim"),
        ValueError,
        "recipe must be one of",
    ),
    (
        "train_diffusion custom without a name",
        lambda t: _d().recipes.train_diffusion(_d().recipes.DIFFUSION_MNIST["fm"]),
        ValueError,
        "needs a name",
    ),
    (
        "train_diffusion hooks of an int",
        lambda t: _d().recipes.train_diffusion("fm", hooks=3),
        TypeError,
        "hooks must be a list or tuple",
    ),
    ("train_ring_model unknown", lambda t: _d().recipes.train_ring_model("gan"), ValueError, "recipe must be one of"),
    (
        "DiffusionRecipe of a VAEConfig",
        lambda t: _d().recipes.DiffusionRecipe(VAEConfig(), steps=1, lr=1e-3),
        TypeError,
        "config must be a DiffusionConfig or FlowConfig",
    ),
    (
        "DiffusionRecipe steps 0",
        lambda t: _d().recipes.DiffusionRecipe(_dcfg(), steps=0, lr=1e-3),
        ValueError,
        "steps must be > 0",
    ),
    (
        "DiffusionRecipe negative lr",
        lambda t: _d().recipes.DiffusionRecipe(_dcfg(), steps=1, lr=-1.0),
        ValueError,
        "lr must be > 0",
    ),
    ("model_at of a list", lambda t: _d().recipes.model_at(_d().fm, []), TypeError, "weights must be a state dict"),
    ("eval_n 0", lambda t: _d().eval.eval_n(0), ValueError, "n must be > 0"),
    (
        "guided_samples negative scale",
        lambda t: _d().eval.guided_samples(_d().cond, 4, -1.0),
        ValueError,
        "scale must be >= 0",
    ),
]

# --------------------------------------------------------------------------- image-to-image (chapter 4)


def _cyc():
    from genai_lib.models.cyclegan import CycleGAN, CycleGANConfig

    return CycleGAN(CycleGANConfig(width=4, n_res=1, d_width=4, pool_size=2))


def _p2p(task="sr"):
    from genai_lib.models.pix2pix import Pix2Pix, Pix2PixConfig

    return Pix2Pix(Pix2PixConfig(task=task, width=4, d_width=4))


def _i2i_cfg(kind, **kw):
    from genai_lib.models.cyclegan import CycleGANConfig
    from genai_lib.models.pix2pix import Pix2PixConfig

    return (CycleGANConfig if kind == "cycle" else Pix2PixConfig)(**kw)


def _degrade(x, task="sr", **kw):
    from genai_lib.models.pix2pix import degrade

    return degrade(x, task, **kw)


def _pool(size):
    from genai_lib.models.cyclegan import ImagePool

    return ImagePool(size)


def _restore_metric(which, a, b):
    from genai_lib import metrics

    return getattr(metrics, which)(a, b)


def _sem_cfg(**kw):
    from genai_lib.models.cycada import SemanticCycleGANConfig

    return SemanticCycleGANConfig(width=4, n_res=1, d_width=4, pool_size=2, **kw)


def _sem(cfg, *clfs, readers=None):
    from genai_lib.models.cycada import SemanticCycleGAN

    return SemanticCycleGAN(cfg, *clfs, readers=readers)


def _sem_clf():
    from genai_lib.models.classifier import ClassifierConfig, ImageClassifier

    return ImageClassifier(ClassifierConfig(width=4, feature_dim=8))


I2I_ROWS = [
    (
        "cyclegan 3 channels",
        lambda t: _cyc()(img(2).expand(2, 3, 28, 28)),
        ValueError,
        r"x must have shape \(N, 1, 28, 28\)",
    ),
    ("cyclegan 32x32", lambda t: _cyc()(torch.rand(2, 1, 32, 32)), ValueError, r"x must have shape"),
    ("cyclegan range", lambda t: _cyc()(img(2) * 3), ValueError, r"x must lie in \[0"),
    ("cyclegan direction", lambda t: _cyc().translate(img(2), "aa"), ValueError, "direction must be one of"),
    ("cyclegan batch not a pair", lambda t: _cyc().d_loss(img(2)), TypeError, r"pair \(x_a, x_b\)"),
    ("cyclegan pool negative", lambda t: _pool(-1), ValueError, "size must be >= 0"),
    ("cyclegan cycle_weight NaN", lambda t: _i2i_cfg("cycle", cycle_weight=NAN), ValueError, "cycle_weight"),
    ("cyclegan width 0", lambda t: _i2i_cfg("cycle", width=0), ValueError, "width must be > 0"),
    ("semantic weight negative", lambda t: _sem_cfg(semantic_weight=-1.0), ValueError, "semantic_weight"),
    ("semantic readers name", lambda t: _sem_cfg(readers="judges"), ValueError, "readers must be one of"),
    (
        "semantic plain config",
        lambda t: _sem(_i2i_cfg("cycle"), _sem_clf(), _sem_clf()),
        TypeError,
        "SemanticCycleGANConfig",
    ),
    ("semantic clf not a module", lambda t: _sem(_sem_cfg(), "mnist", _sem_clf()), TypeError, "clf_a must be"),
    (
        "semantic target without readers",
        lambda t: _sem(_sem_cfg(readers="target"), _sem_clf(), _sem_clf()),
        ValueError,
        r"readers=\(r_a, r_b\) must be given",
    ),
    ("pix2pix task", lambda t: _i2i_cfg("p2p", task="colour"), ValueError, "task must be one of"),
    ("pix2pix mask 21", lambda t: _i2i_cfg("p2p", mask_size=21), ValueError, "mask_size must fit"),
    ("pix2pix adv negative", lambda t: _i2i_cfg("p2p", adv_weight=-1.0), ValueError, "adv_weight"),
    ("pix2pix cond channels", lambda t: _p2p("inpaint")(img(2)), ValueError, r"c must have shape \(N, 2, 28, 28\)"),
    ("degrade 8x8", lambda t: _degrade(torch.rand(2, 1, 8, 8)), ValueError, r"x must have shape \(N, 1, 28, 28\)"),
    ("degrade range", lambda t: _degrade(img(2) - 1), ValueError, r"x must lie in \[0"),
    ("degrade generator", lambda t: _degrade(img(2), "inpaint", generator=NPGEN), TypeError, "torch.Generator"),
    ("psnr shapes differ", lambda t: _restore_metric("psnr", img(2), img(3)), ValueError, "one shape"),
    ("ssim range", lambda t: _restore_metric("ssim", img(2) * 2, img(2)), ValueError, r"pred must lie in \[0"),
    ("digits28 split", lambda t: __import__("genai_lib.data").data.load_digits28("val"), ValueError, "split must be"),
    (
        "digits28 limit 0",
        lambda t: __import__("genai_lib.data").data.load_digits28(limit=0),
        ValueError,
        "limit must be > 0",
    ),
    (
        "ssim too small",
        lambda t: _restore_metric("ssim", torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)),
        ValueError,
        "window",
    ),
]

# --------------------------------------------------------------------------- StyleGAN (chapter 5)


def _sg(**kw):
    from genai_lib.models.stylegan import StyleGAN, StyleGANConfig

    cfg = StyleGANConfig(z_dim=8, w_dim=8, mapping_layers=1, channels=(4, 4, 4), d_width=4, **kw)
    return StyleGAN(cfg)


def _sg_cfg(**kw):
    from genai_lib.models.stylegan import StyleGANConfig

    return StyleGANConfig(**kw)


def _w(n=2):
    return torch.randn(n, 8)


STYLEGAN_ROWS = [
    ("stylegan psi 1.5", lambda t: _sg().sample(2, psi=1.5), ValueError, r"psi must be in \[0, 1\]"),
    ("stylegan psi -0.5", lambda t: _sg().mapping(_w(), psi=-0.5), ValueError, r"psi must be in \[0, 1\]"),
    ("stylegan psi NaN", lambda t: _sg().sample(2, psi=NAN), ValueError, r"psi must be in \[0, 1\]"),
    ("stylegan psi str", lambda t: _sg().sample(2, psi="1"), TypeError, "psi must be a number"),
    ("stylegan crossover 6", lambda t: _sg().mix(_w(), _w(), 6), ValueError, r"crossover must be in \[0, 5\]"),
    ("stylegan crossover -1", lambda t: _sg().mix(_w(), _w(), -1), ValueError, r"crossover must be in \[0, 5\]"),
    ("stylegan crossover float", lambda t: _sg().mix(_w(), _w(), 2.0), TypeError, "crossover must be an int"),
    ("stylegan mix shapes", lambda t: _sg().mix(_w(2), _w(3), 2), ValueError, "same shape"),
    ("stylegan w size", lambda t: _sg().mix(torch.randn(2, 5), _w(), 2), ValueError, r"w_coarse must have shape"),
    ("stylegan ws layers", lambda t: _sg().synthesis(torch.randn(2, 3, 8)), ValueError, r"ws must have shape"),
    ("stylegan ws NaN", lambda t: _sg().synthesis(torch.full((2, 8), NAN)), ValueError, "NaN"),
    ("stylegan noise mode", lambda t: _sg().synthesis(_w(), noise="loud"), ValueError, "noise must be one of"),
    (
        "stylegan noise map shape",
        lambda t: _sg().synthesis(_w(), noise=[torch.randn(2, 1, 7, 7)] * 5),
        ValueError,
        r"noise\[1\] must have shape",
    ),
    ("stylegan z size", lambda t: _sg().mapping(torch.randn(2, 3)), ValueError, r"z must have shape \(N, 8\)"),
    ("stylegan images 32x32", lambda t: _sg().d_loss(torch.rand(2, 1, 32, 32)), ValueError, "x must have shape"),
    ("stylegan images range", lambda t: _sg().g_loss(img(2) * 2), ValueError, r"x must lie in \[0"),
    ("stylegan labels", lambda t: _sg().sample(2, labels=1), ValueError, "unconditional"),
    ("stylegan channels 2", lambda t: _sg_cfg(channels=(4, 4)), ValueError, "channels must be 3 ints"),
    ("stylegan mixing 2", lambda t: _sg_cfg(mixing=2.0), ValueError, r"mixing must be in \[0, 1\]"),
    ("stylegan lr mul 0", lambda t: _sg_cfg(mapping_lr_mul=0.0), ValueError, "mapping_lr_mul"),
    ("stylegan r1 every 0", lambda t: _sg_cfg(r1_every=0), ValueError, "r1_every must be > 0"),
    ("stylegan augment 9", lambda t: _sg_cfg(augment=9), ValueError, "at most 7"),
    (
        "stylegan cfg type",
        lambda t: __import__("genai_lib.models.stylegan").models.stylegan.StyleGAN({}),
        TypeError,
        "StyleGANConfig",
    ),
]


# chapter 18: compression and distributed training
def _wmat(n=4, k=8):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(0))


COMPRESS_ROWS = [
    (
        "sparsity 1",
        lambda t: compress.magnitude_masks(gpt(), 1.0),
        ValueError,
        r"sparsity must be a number in \[0, 1\)",
    ),
    ("sparsity negative", lambda t: compress.magnitude_masks(gpt(), -0.1), ValueError, "sparsity must be"),
    ("sparsity string", lambda t: compress.magnitude_masks(gpt(), "0.5"), ValueError, "sparsity must be"),
    ("quant bits 3", lambda t: compress.quantize_groupwise(_wmat(), bits=3), ValueError, "bits must be 4 or 8, got 3"),
    ("quant bits 16", lambda t: compress.quantize_weights(gpt(), bits=16), ValueError, "bits must be 4 or 8"),
    ("quant bits bool", lambda t: compress.quantize_groupwise(_wmat(), bits=True), ValueError, "bits must be 4 or 8"),
    (
        "quant group not dividing",
        lambda t: compress.quantize_groupwise(_wmat(4, 10), group_size=4),
        ValueError,
        "group_size must divide the width K=10",
    ),
    (
        "quant model group not dividing",
        lambda t: compress.quantize_weights(gpt(), group_size=5),
        ValueError,
        "group_size must divide the width K=16 of the weight of",
    ),
    (
        "quant group 0",
        lambda t: compress.quantize_groupwise(_wmat(), group_size=0),
        ValueError,
        "group_size must be > 0",
    ),
    ("int4 odd group", lambda t: compress.quantize_groupwise(_wmat(), 4, 1), ValueError, "even for int4"),
    ("quant 1-d weight", lambda t: compress.quantize_groupwise(torch.ones(8), group_size=4), ValueError, "2-D"),
    (
        "kd temperature 0",
        lambda t: compress.distillation_loss(_wmat(), _wmat(), temperature=0.0),
        ValueError,
        "temperature",
    ),
    ("kd alpha 2", lambda t: compress.distillation_loss(_wmat(), _wmat(), alpha=2.0), ValueError, r"alpha must be"),
    ("kd shapes", lambda t: compress.distillation_loss(_wmat(4, 8), _wmat(4, 6)), ValueError, "same shape"),
    ("mask for no parameter", lambda t: compress.apply_masks_(gpt(), {"nope": torch.ones(2)}), ValueError, "nope"),
    ("checkpoint blocks type", lambda t: compress.checkpoint_blocks(gpt()).__enter__(), TypeError, "ModuleList"),
    ("world size 0", lambda t: distributed.launch(print, 0), ValueError, "world_size must be an int >= 1, got 0"),
    ("world size -1 shard", lambda t: distributed.shard(torch.ones(4), 0, -1), ValueError, "world_size must be"),
    ("world size float tp", lambda t: distributed.tensor_parallel_check(1.5), ValueError, "world_size must be"),
    ("shard uneven batch", lambda t: distributed.shard(torch.ones(5), 0, 2), ValueError, "multiple of the world"),
    ("shard rank out of range", lambda t: distributed.shard(torch.ones(4), 2, 2), ValueError, "rank must be in"),
    (
        "column split uneven",
        lambda t: distributed.ColumnParallelLinear(torch.nn.Linear(4, 5), 0, 2),
        ValueError,
        "out_features 5 must be a multiple",
    ),
    ("ddp check world 0", lambda t: _efficiency().ddp_check(gpt().cfg, world_size=0), ValueError, "world_size"),
    ("prune a non-GPT", lambda t: _efficiency().prune_finetune(torch.nn.Linear(2, 2), None, 0.5), TypeError, "GPT"),
]


def _efficiency():
    from genai_lib.recipes import efficiency

    return efficiency


# --------------------------------------------------------------------------- interpretability (chapter 17)


def _lin(x):
    return x.flatten(1) @ torch.ones(x[0].numel())


def _logits(x):
    return x.flatten(1)[:, :3]


INTERPRET_ROWS = [
    ("saliency 1-D x", lambda t: attribution.saliency(_lin, torch.zeros(4)), ValueError, "at least 2 dimensions"),
    ("saliency NaN x", lambda t: attribution.saliency(_lin, torch.full((2, 3), NAN)), ValueError, "NaN"),
    (
        "saliency int x",
        lambda t: attribution.saliency(_lin, torch.zeros(2, 3, dtype=torch.long)),
        TypeError,
        "floating",
    ),
    ("saliency no target", lambda t: attribution.saliency(_logits, torch.zeros(2, 4)), ValueError, "give the target"),
    ("saliency target 3", lambda t: attribution.saliency(_logits, torch.zeros(2, 4), 3), ValueError, r"in \[0, 3\)"),
    ("saliency target float", lambda t: attribution.saliency(_logits, torch.zeros(2, 4), 1.0), ValueError, "target"),
    ("saliency target on (B,)", lambda t: attribution.saliency(_lin, torch.zeros(2, 4), 0), ValueError, "None"),
    ("saliency f scalar", lambda t: attribution.saliency(lambda x: x.sum(), torch.zeros(2, 4)), ValueError, "f must"),
    ("smoothgrad n 0", lambda t: attribution.smoothgrad(_lin, torch.zeros(2, 3), n=0), ValueError, "n must be > 0"),
    ("smoothgrad sigma -1", lambda t: attribution.smoothgrad(_lin, torch.zeros(2, 3), sigma=-1.0), ValueError, "sigma"),
    ("smoothgrad generator", lambda t: attribution.smoothgrad(_lin, torch.zeros(2, 3), generator=1), TypeError, "Gen"),
    ("ig steps 0", lambda t: attribution.integrated_gradients(_lin, torch.zeros(2, 3), steps=0), ValueError, "steps"),
    (
        "ig baseline shape",
        lambda t: attribution.integrated_gradients(_lin, torch.zeros(2, 3), baseline=torch.zeros(4)),
        ValueError,
        "baseline must broadcast",
    ),
    ("shapley 21 players", lambda t: attribution.exact_shapley(lambda m: m.sum(1), 21), ValueError, "<= 20"),
    ("shapley value not callable", lambda t: attribution.exact_shapley(3, 3), TypeError, "value must be a function"),
    ("shapley value shape", lambda t: attribution.exact_shapley(lambda m: m, 3), ValueError, "one number per"),
    ("kernel shap 1 player", lambda t: attribution.kernel_shap(lambda m: m.sum(1), 1), ValueError, ">= 2"),
    ("kernel shap samples 0", lambda t: attribution.kernel_shap(lambda m: m.sum(1), 3, n_samples=0), ValueError, "n_"),
    ("patch players 2-D", lambda t: attribution.patch_players((4, 4), 2), ValueError, r"\(C, H, W\)"),
    ("patch players grid 9", lambda t: attribution.patch_players((1, 4, 4), 9), ValueError, "at most the image side"),
    (
        "masked value batch",
        lambda t: attribution.masked_value(_lin, torch.zeros(2, 1, 4, 4), attribution.patch_players((1, 4, 4), 2)),
        ValueError,
        "one example",
    ),
    (
        "masked value float players",
        lambda t: attribution.masked_value(_lin, torch.zeros(1, 1, 4, 4), torch.zeros(4, 1, 4, 4)),
        TypeError,
        "boolean",
    ),
    (
        "mig 1 latent",
        lambda t: interpret.mig(torch.randn(8, 1), torch.arange(8).view(8, 1) % 2),
        ValueError,
        "at least 2",
    ),
    ("mig N mismatch", lambda t: interpret.mig(torch.randn(8, 2), torch.zeros(7, 1).long()), ValueError, "same N"),
    ("mig float factors", lambda t: interpret.mig(torch.randn(8, 2), torch.zeros(8, 1)), TypeError, "integer"),
    ("mig constant factor", lambda t: interpret.mig(torch.randn(8, 2), torch.zeros(8, 1).long()), ValueError, "two v"),
    ("mig bins 0", lambda t: interpret.mig(torch.randn(8, 2), torch.zeros(8, 1).long(), bins=0), ValueError, "bins"),
    ("mig NaN z", lambda t: interpret.mig(torch.full((8, 2), NAN), torch.zeros(8, 1).long()), ValueError, "NaN"),
    (
        "mutual info lengths",
        lambda t: interpret.discrete_mutual_info(torch.arange(3), torch.arange(4)),
        ValueError,
        "same length",
    ),
    (
        "directions k too big",
        lambda t: interpret.latent_directions(lambda z: z, torch.randn(10, 3), k=4),
        ValueError,
        "at most min",
    ),
    ("directions 1-D z", lambda t: interpret.latent_directions(lambda z: z, torch.randn(10)), ValueError, r"\(N, Z\)"),
    (
        "logit lens not a GPT",
        lambda t: interpret.logit_lens(torch.nn.Linear(2, 2), torch.zeros(1, 2)),
        TypeError,
        "GPT",
    ),
    ("logit lens too long", lambda t: interpret.logit_lens(_tiny_gpt(), torch.zeros(1, 9).long()), ValueError, "block"),
    ("probe ridge 0", lambda t: interpret.linear_probe(_probe(), _probe(), ridge=0.0), ValueError, "ridge must be > 0"),
    ("probe widths", lambda t: interpret.linear_probe(_probe(), _probe(d=3)), ValueError, "width"),
    (
        "probe label shape",
        lambda t: interpret.linear_probe((torch.zeros(4, 2), torch.zeros(3).long()), _probe()),
        ValueError,
        "labels",
    ),
    ("repeated low", lambda t: interpret.repeated_tokens(2, 3, 10, low=10), ValueError, "low must be in"),
    ("repeated period 0", lambda t: interpret.repeated_tokens(2, 0, 10), ValueError, "period must be > 0"),
    ("induction maps empty", lambda t: interpret.induction_scores([], 2), TypeError, "non-empty list"),
    ("induction maps 3-D", lambda t: interpret.induction_scores([torch.zeros(1, 4, 4)], 2), ValueError, "nh, T, T"),
    (
        "induction period too long",
        lambda t: interpret.induction_scores([torch.zeros(1, 1, 4, 4)], 4),
        ValueError,
        "shorter",
    ),
    ("previous-token maps empty", lambda t: interpret.previous_token_scores([]), TypeError, "non-empty list"),
    (
        "previous-token one position",
        lambda t: interpret.previous_token_scores([torch.ones(1, 1, 1, 1)]),
        ValueError,
        "at least 2 positions",
    ),
    ("shapes size 8", lambda t: shapes.ShapesSpec(size=8), ValueError, "at least 16"),
    ("shapes n_x 0", lambda t: shapes.ShapesSpec(n_x=0), ValueError, "n_x must be > 0"),
    ("shapes n_scale float", lambda t: shapes.ShapesSpec(n_scale=2.5), TypeError, "n_scale must be an int"),
    ("shapes spec type", lambda t: shapes.load_shapes({"size": 28}), TypeError, "ShapesSpec"),
    (
        "render shape id 3",
        lambda t: shapes.render_shapes(*([torch.tensor([3.0])] + [torch.zeros(1)] * 4)),
        ValueError,
        "shape must",
    ),
    (
        "render lengths",
        lambda t: shapes.render_shapes(*([torch.zeros(2)] + [torch.zeros(1)] * 4)),
        ValueError,
        "same N",
    ),
    ("shapes vae beta 0", lambda t: _shapes_recipe().train_shapes_vae(0.0, fast=True), ValueError, "beta must be > 0"),
    ("copy stream periods", lambda t: _shapes_recipe().copy_stream(10, 5, (4, 2)), ValueError, "low <= high"),
    ("copy stream vocab 0", lambda t: _shapes_recipe().copy_stream(10, 0, (2, 4)), ValueError, "vocab must be > 0"),
    ("shapes mig not a VAE", lambda t: _shapes_recipe().shapes_mig(torch.nn.Linear(2, 2)), TypeError, "must be a VAE"),
]


def _tiny_gpt():
    return GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))


def _probe(d=2):
    return torch.randn(6, d), torch.arange(6) % 2


def _shapes_recipe():
    from genai_lib.recipes import interpret as r

    return r


def _priv():
    from genai_lib import privacy

    return privacy


def _priv_fed():
    from genai_lib import federated

    return federated


def _priv_att():
    from genai_lib import privacy_attacks

    return privacy_attacks


def _priv_grads():
    return {"w": torch.ones(3, 2)}


def _priv_client(n):
    return make_loader(torch.zeros(max(n, 1), 2), batch_size=1) if n else []


PRIVACY_ROWS = [
    ("dp epsilon target 0", lambda t: _priv().noise_for_epsilon(0.0, 0.1, 10, 1e-5), ValueError, "target_epsilon"),
    ("dp epsilon target -1", lambda t: _priv().noise_for_epsilon(-1.0, 0.1, 10, 1e-5), ValueError, "target_epsilon"),
    ("dp delta 0", lambda t: _priv().epsilon(0.1, 1.0, 10, 0.0), ValueError, r"delta must be a number in \(0, 1\)"),
    ("dp delta 1", lambda t: _priv().epsilon(0.1, 1.0, 10, 1.0), ValueError, r"delta must be a number in \(0, 1\)"),
    ("dp delta in target", lambda t: _priv().noise_for_epsilon(1.0, 0.1, 10, 2.0), ValueError, "delta"),
    ("dp q above 1", lambda t: _priv().epsilon(1.5, 1.0, 10, 1e-5), ValueError, r"q must be a sampling rate"),
    ("dp sigma 0", lambda t: _priv().epsilon(0.1, 0.0, 10, 1e-5), ValueError, "noise_multiplier"),
    ("dp steps 0", lambda t: _priv().epsilon(0.1, 1.0, 0, 1e-5), ValueError, "steps"),
    ("dp order 1", lambda t: _priv().rdp_sampled_gaussian(0.1, 1.0, (1,)), ValueError, "orders"),
    ("dp clip 0", lambda t: _priv().clip_per_sample(_priv_grads(), 0.0), ValueError, "max_norm must be > 0"),
    ("dp clip -1", lambda t: _priv().clip_per_sample(_priv_grads(), -1.0), ValueError, "max_norm must be > 0"),
    (
        "dp phase clip 0",
        lambda t: _priv().dp_phase(
            torch.nn.Linear(2, 1), lambda m, x: m(x).sum(), max_norm=0.0, noise_multiplier=1.0, expected_batch_size=4
        ),
        ValueError,
        "max_norm",
    ),
    (
        "dp phase grad_clip",
        lambda t: _priv().dp_phase(
            torch.nn.Linear(2, 1),
            lambda m, x: m(x).sum(),
            max_norm=1.0,
            noise_multiplier=1.0,
            expected_batch_size=4,
            grad_clip=1.0,
        ),
        TypeError,
        "grad_clip",
    ),
    ("dp poisson q 0", lambda t: _priv().PoissonLoader(torch.zeros(4, 2), q=0.0), ValueError, "q must be > 0"),
    ("dp poisson empty", lambda t: _priv().PoissonLoader(torch.zeros(0, 2), q=0.5), ValueError, "non-zero"),
    (
        "dp grads bad method",
        lambda t: _priv().per_sample_grads(
            torch.nn.Linear(2, 1), lambda m, x: m(x).sum(), (torch.zeros(2, 2),), method="jit"
        ),
        ValueError,
        "method",
    ),
    (
        "fed empty client",
        lambda t: _priv_fed().fedavg(
            torch.nn.Linear(2, 1), [_priv_client(2), _priv_client(0)], rounds=1, local_steps=1, lr=0.1
        ),
        ValueError,
        "client 1 is empty",
    ),
    (
        "fed no clients",
        lambda t: _priv_fed().fedavg(torch.nn.Linear(2, 1), [], rounds=1, local_steps=1, lr=0.1),
        ValueError,
        "non-empty sequence",
    ),
    (
        "fed noise without clip",
        lambda t: _priv_fed().fedavg(
            torch.nn.Linear(2, 1), [_priv_client(2)], rounds=1, local_steps=1, lr=0.1, noise_multiplier=1.0
        ),
        ValueError,
        "clip",
    ),
    (
        "fed clip 0",
        lambda t: _priv_fed().fedavg(
            torch.nn.Linear(2, 1), [_priv_client(2)], rounds=1, local_steps=1, lr=0.1, clip=0.0
        ),
        ValueError,
        "clip must be > 0",
    ),
    (
        "fed split too many classes",
        lambda t: _priv_fed().split_non_iid(torch.arange(4), 2, 5),
        ValueError,
        "classes_per_client",
    ),
    ("fed split empty client", lambda t: _priv_fed().split_non_iid(torch.zeros(3), 5, 1), ValueError, "no examples"),
    ("mia empty scores", lambda t: _priv_att().auc([], [1.0]), ValueError, "member_scores is empty"),
    ("mia nan scores", lambda t: _priv_att().auc([float("nan")], [1.0]), ValueError, "NaN"),
    ("mia fpr above 1", lambda t: _priv_att().tpr_at_fpr([1.0], [0.0], 2.0), ValueError, "fpr"),
    (
        "mia lira shapes",
        lambda t: _priv_att().lira_scores(np.zeros(3), np.zeros((2, 4)), np.zeros((2, 4), bool)),
        ValueError,
        "shadow",
    ),
    ("canary no candidates", lambda t: _priv_att().exposure(1.0, []), ValueError, "candidate_nlls"),
]


def _wm():
    from genai_lib import watermark

    return watermark


def _fx():
    from genai_lib import forensics

    return forensics


_GREEN = lambda: _wm().GreenList(10, gamma=0.5)
_GKEY = lambda: _wm().GumbelKey(10)
_IDS2 = lambda: torch.zeros(1, 2, dtype=torch.long)
ETHICS_ROWS = [
    (
        "wm delta negative",
        lambda t: _wm().WatermarkProcessor(_GREEN(), delta=-1.0),
        ValueError,
        r"delta \(the watermark strength\) must be a finite number >= 0, got -1.0",
    ),
    ("wm delta nan", lambda t: _wm().WatermarkProcessor(_GREEN(), delta=float("nan")), ValueError, "delta"),
    ("wm delta str", lambda t: _wm().WatermarkProcessor(_GREEN(), delta="2"), TypeError, "delta .* must be a number"),
    (
        "wm processor not a green list",
        lambda t: _wm().WatermarkProcessor({}, delta=1.0),
        TypeError,
        "green must be a GreenList",
    ),
    ("wm gamma 0", lambda t: _wm().GreenList(10, gamma=0.0), ValueError, r"gamma .* must be in \(0, 1\), got 0.0"),
    ("wm gamma 1", lambda t: _wm().GreenList(10, gamma=1.0), ValueError, r"must be in \(0, 1\), got 1.0"),
    ("wm gamma 1.5", lambda t: _wm().GreenList(10, gamma=1.5), ValueError, r"must be in \(0, 1\)"),
    ("wm gamma str", lambda t: _wm().GreenList(10, gamma="a"), TypeError, "gamma must be a number"),
    ("wm vocab 1", lambda t: _wm().GreenList(1), ValueError, "vocab_size must be >= 2"),
    ("wm key float", lambda t: _wm().GreenList(10, key=1.5), TypeError, "key must be an int"),
    (
        "wm empty text",
        lambda t: _wm().watermark_z(torch.tensor([], dtype=torch.long), _GREEN()),
        ValueError,
        "at least 2 tokens",
    ),
    (
        "wm one token",
        lambda t: _wm().watermark_z(torch.tensor([3]), _GREEN()),
        ValueError,
        "at least 2 tokens .* got 1",
    ),
    ("wm float ids", lambda t: _wm().watermark_z(torch.rand(5), _GREEN()), TypeError, "integer token ids"),
    (
        "wm 3-d ids",
        lambda t: _wm().watermark_z(torch.zeros(1, 2, 3, dtype=torch.long), _GREEN()),
        ValueError,
        r"\(T,\) or \(B, T\)",
    ),
    (
        "wm id out of vocab",
        lambda t: _wm().watermark_z(torch.tensor([0, 12]), _GREEN()),
        ValueError,
        r"token ids must be in \[0, 10\)",
    ),
    (
        "wm processor logits shape",
        lambda t: _wm().WatermarkProcessor(_GREEN())(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 9)),
        ValueError,
        r"logits must be \(B, 10\)",
    ),
    (
        "wm edits fraction 2",
        lambda t: _wm().random_token_edits(torch.zeros(1, 4, dtype=torch.long), 2.0, 10),
        ValueError,
        r"fraction must be a number in \[0, 1\]",
    ),
    ("wm ring past nyquist", lambda t: _wm().ring_mask(28, 14), ValueError, "Nyquist"),
    (
        "wm key shape",
        lambda t: _wm().embed_tree_ring(torch.zeros(1, 1, 28, 28), torch.zeros(8, 8), _wm().ring_mask(28, 3)),
        ValueError,
        r"key must be \(28, 28\)",
    ),
    (
        "wm noise not square",
        lambda t: _wm().tree_ring_distance(torch.zeros(1, 1, 28, 20), torch.zeros(28, 28), torch.zeros(28, 28)),
        ValueError,
        "square",
    ),
    (
        "wm channel out of range",
        lambda t: _wm().embed_tree_ring(torch.zeros(1, 1, 8, 8), torch.zeros(8, 8), _wm().ring_mask(8, 2), channel=1),
        ValueError,
        "channel must be in",
    ),
    ("auc no positives", lambda t: _fx().roc_auc([], [1.0]), ValueError, "positives must hold at least one score"),
    ("auc nan score", lambda t: _fx().roc_auc([float("nan")], [1.0]), ValueError, "positives must be finite"),
    ("tpr at fpr 2", lambda t: _fx().tpr_at_fpr([1.0], [0.0], 2.0), ValueError, "fpr"),
    (
        "nn size mismatch",
        lambda t: _fx().nearest_neighbours(torch.zeros(2, 4), torch.zeros(3, 5)),
        ValueError,
        "same size per item",
    ),
    (
        "nn int queries",
        lambda t: _fx().nearest_neighbours(torch.zeros(2, 4, dtype=torch.long), torch.zeros(3, 4)),
        TypeError,
        "floating-point",
    ),
    (
        "nn empty reference",
        lambda t: _fx().nearest_neighbours(torch.zeros(2, 4), torch.zeros(0, 4)),
        ValueError,
        "N >= 1",
    ),
    (
        "copies quantile 2",
        lambda t: _fx().near_copies(torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(3, 4), quantile=2.0),
        ValueError,
        "quantile",
    ),
    ("gumbel key vocab 1", lambda t: _wm().GumbelKey(1), ValueError, "vocab_size must be >= 2"),
    ("gumbel key float key", lambda t: _wm().GumbelKey(10, key=0.5), TypeError, "key must be an int"),
    ("gumbel negative position", lambda t: _wm().GumbelKey(10).uniforms(-1, 0), ValueError, r"t \(a position"),
    ("gumbel prev out of vocab", lambda t: _GKEY().uniforms(0, 10), ValueError, r"token ids must be in \[0, 10\)"),
    (
        "gumbel processor key",
        lambda t: _wm().GumbelProcessor(_GREEN(), start=1),
        TypeError,
        "key must be a GumbelKey",
    ),
    ("gumbel processor start 0", lambda t: _wm().GumbelProcessor(_GKEY(), start=0), ValueError, "start"),
    (
        "gumbel processor short ids",
        lambda t: _wm().GumbelProcessor(_GKEY(), start=3)(_IDS2(), torch.zeros(1, 10)),
        ValueError,
        "fewer than start=3",
    ),
    (
        "gumbel processor logits shape",
        lambda t: _wm().GumbelProcessor(_GKEY(), start=1)(_IDS2(), torch.zeros(1, 9)),
        ValueError,
        r"logits must be \(B, 10\)",
    ),
    ("gumbel score one token", lambda t: _wm().gumbel_score(torch.tensor([3]), _GKEY()), ValueError, "at least 2"),
    ("gumbel score float ids", lambda t: _wm().gumbel_score(torch.rand(5), _GKEY()), TypeError, "integer token ids"),
    (
        "gumbel score id out of vocab",
        lambda t: _wm().gumbel_pvalue(torch.tensor([0, 12]), _GKEY()),
        ValueError,
        r"token ids must be in \[0, 10\)",
    ),
    (
        "gumbel score negative offset",
        lambda t: _wm().gumbel_score(torch.tensor([0, 1]), _GKEY(), offset=-1),
        ValueError,
        "offset must be >= 0",
    ),
    (
        "gumbel score not a key",
        lambda t: _wm().gumbel_score(torch.tensor([0, 1]), _GREEN()),
        TypeError,
        "key must be a GumbelKey",
    ),
]


def _mm():
    from genai_lib import captions
    from genai_lib.models import multimodal, mvae

    return captions, multimodal, mvae


_CAPTIONER = lambda: _mm()[1].Captioner(
    _mm()[1].CaptionerConfig(patch=7, n_embd=16, n_head=2, enc_layers=1, dec_layers=1)
)
_MVAE = lambda: _mm()[2].MultimodalVAE(_mm()[2].MVAEConfig(z_dim=2, width=4, hidden=8))
MULTIMODAL_ROWS = [
    (
        "caption unknown word",
        lambda t: _mm()[0].CaptionTokenizer().encode("a large thick seven slanting up"),
        ValueError,
        r"text has unknown words \['up'\]",
    ),
    ("caption empty", lambda t: _mm()[0].CaptionTokenizer().encode(""), ValueError, "text is an empty caption"),
    (
        "caption wrong order",
        lambda t: _mm()[0].parse_caption("thick a large seven slanting right"),
        ValueError,
        "text must read 'a <size>",
    ),
    ("caption not a str", lambda t: _mm()[0].parse_caption(3), TypeError, "text must be a str"),
    (
        "caption attrs out of range",
        lambda t: _mm()[0].caption((7, 3, 0, 0)),
        ValueError,
        r"attrs thickness must be an int in \[0, 3\)",
    ),
    (
        "attributes digits shape",
        lambda t: _mm()[0].attributes(img(2), [1]),
        ValueError,
        r"digits must be 2 integer labels",
    ),
    ("attributes digit 10", lambda t: _mm()[0].attributes(img(2), [1, 10]), ValueError, r"digits must be in \[0, 9\]"),
    (
        "captioner image shape",
        lambda t: _CAPTIONER().encode(torch.zeros(2, 1, 14, 14)),
        ValueError,
        r"images must have shape \(N, 1, 28, 28\), got \(2, 1, 14, 14\)",
    ),
    (
        "captioner ids too long",
        lambda t: _CAPTIONER()(img(1), torch.zeros(1, 9, dtype=torch.long)),
        ValueError,
        "at most max_len=8",
    ),
    (
        "captioner batch mismatch",
        lambda t: _CAPTIONER()(img(2), torch.ones(3, 4, dtype=torch.long)),
        ValueError,
        "same batch size, got 2 and 3",
    ),
    ("captioner patch 5", lambda t: _mm()[1].CaptionerConfig(patch=5), ValueError, "patch must divide 28"),
    ("captioner stem", lambda t: _mm()[1].CaptionerConfig(stem="resnet"), ValueError, "stem must be 'patch', 'conv'"),
    (
        "captioner stem width",
        lambda t: _mm()[1].CaptionerConfig(stem="classifier", stem_width=0),
        ValueError,
        "stem_width",
    ),
    (
        "recaptioned generator",
        lambda t: __import__("genai_lib.recipes.multimodal", fromlist=["x"]).Recaptioned([], generator=3),
        TypeError,
        "generator",
    ),
    (
        "recipe distort",
        lambda t: __import__("genai_lib.recipes.multimodal", fromlist=["x"]).MMRecipe(None, steps=1, distort=1.5),
        ValueError,
        "distort",
    ),
    (
        "recipe init",
        lambda t: __import__("genai_lib.recipes.multimodal", fromlist=["x"]).MMRecipe(None, steps=1, init="imagenet"),
        ValueError,
        "init must be None or 'mnist_classifier'",
    ),
    (
        "info_nce shapes",
        lambda t: _mm()[1].info_nce(torch.zeros(2, 3), torch.zeros(3, 3), 0.0),
        ValueError,
        r"img and txt must both be \(B, D\)",
    ),
    (
        "info_nce same diagonal",
        lambda t: _mm()[1].info_nce(torch.zeros(2, 3), torch.zeros(2, 3), 0.0, torch.zeros(2, 2, dtype=torch.bool)),
        ValueError,
        "true diagonal",
    ),
    ("mvae no view", lambda t: _MVAE().posterior(), ValueError, "give at least one view: image or words"),
    ("mvae no view generate", lambda t: _MVAE().generate(), ValueError, "both are missing"),
    ("mvae image shape", lambda t: _MVAE().experts(image=torch.zeros(2, 28, 28)), ValueError, "image must have shape"),
    (
        "mvae words length",
        lambda t: _MVAE().experts(words=torch.ones(2, 8, dtype=torch.long)),
        ValueError,
        r"words must be \(B, 6\) word ids",
    ),
    (
        "mvae posterior kind",
        lambda t: _mm()[2].MVAEConfig(posterior="sum"),
        ValueError,
        "posterior must be 'poe' or 'moe'",
    ),
    ("mvae views", lambda t: _mm()[2].MVAEConfig(views=("audio",)), ValueError, "views must be a non-empty subset"),
    (
        "mvae view absent",
        lambda t: (
            _mm()[2]
            .MultimodalVAE(_mm()[2].MVAEConfig(views=("image",), z_dim=2, width=4))
            .experts(words=torch.ones(1, 6, dtype=torch.long))
        ),
        ValueError,
        "this model has no caption view",
    ),
    (
        "recipe unknown",
        lambda t: __import__("genai_lib.recipes.multimodal", fromlist=["x"]).train_multimodal("dalle"),
        ValueError,
        "name must be one of",
    ),
]


# --------------------------------------------------------------------------- graphs (chapter 11)


def _lt(*cols):
    return torch.tensor(cols, dtype=torch.long).T.reshape(2, -1)


def _gcn_on(x, ei):
    from genai_lib.models.gnn import GCNLayer

    return GCNLayer(2, 2)(x, ei)


def _graph_rows():
    import networkx as nx

    from genai_lib import graph_metrics as gm
    from genai_lib import graphs as gr
    from genai_lib.models import gnn
    from genai_lib.models import graph_gen as gg

    k = gr.karate_club()
    no_mask = torch.zeros(34, dtype=torch.bool)
    clf = lambda: gnn.NodeClassifier(gnn.NodeClassifierConfig(34, 2))  # noqa: E731
    rnn = lambda: gg.GraphRNN(gg.GraphRNNConfig(max_nodes=4, node_types=2))  # noqa: E731
    z1 = torch.zeros(1, dtype=torch.long)
    return [
        ("edge_index out of range", lambda t: gr.check_edge_index(_lt((0, 5)), 3), ValueError, r"outside \[0, 2\]"),
        ("edge_index negative id", lambda t: gr.check_edge_index(_lt((-1, 0)), 3), ValueError, r"outside \[0, 2\]"),
        ("edge_index float", lambda t: gr.check_edge_index(torch.zeros(2, 1), 3), TypeError, "integer tensor"),
        ("edge_index (3, E)", lambda t: gr.check_edge_index(torch.zeros(3, 1, dtype=torch.long), 3), ValueError,
         r"shape \(2, E\)"),
        ("edge_index a list", lambda t: gr.check_edge_index([[0], [1]], 3), TypeError, "torch.Tensor of node ids"),
        ("make_graph self-loop", lambda t: gr.make_graph(_lt((1, 1)), 3), ValueError, "self-loop at node 1"),
        ("make_graph x rows", lambda t: gr.make_graph(_lt((0, 1)), 3, x=torch.zeros(2, 4)), ValueError,
         r"x must be a float tensor of shape \(3, F\)"),
        ("GCN self-loop", lambda t: _gcn_on(torch.zeros(3, 2), _lt((0, 0))), ValueError, "self-loops are forbidden"),
        ("GCN edge out of range", lambda t: _gcn_on(torch.zeros(3, 2), _lt((0, 3))), ValueError, r"outside \[0, 2\]"),
        ("GCN empty graph", lambda t: _gcn_on(torch.zeros(0, 2), torch.zeros(2, 0, dtype=torch.long)), ValueError,
         "the graph is empty"),
        ("GCN float edges", lambda t: _gcn_on(torch.zeros(3, 2), torch.zeros(2, 1)), TypeError, "integer tensor"),
        ("empty networkx graph", lambda t: gr.from_networkx(nx.Graph()), ValueError, "the graph is empty"),
        ("batch no graphs", lambda t: gr.batch_graphs([]), ValueError, "graphs is empty"),
        ("bfs of empty graph", lambda t: gr.bfs_order(nx.Graph()), ValueError, "the graph is empty"),
        ("sbm p_in 1.5", lambda t: gr.sbm_graph(p_in=1.5), ValueError, r"p_in must be in \[0, 1\]"),
        ("sbm 0 blocks", lambda t: gr.sbm_graph(blocks=0), ValueError, "blocks must be > 0"),
        ("split val + test = 1", lambda t: gr.split_edges(k, val=0.5, test=0.5), ValueError, "val \\+ test must be"),
        ("community 0 graphs", lambda t: gr.community_small(0), ValueError, "n_graphs must be > 0"),
        ("grid max <= min", lambda t: gr.grid_graphs(5, 5), ValueError, "max_side must be > min_side"),
        ("node classifier kind", lambda t: gnn.NodeClassifierConfig(4, 2, kind="cnn"), ValueError, "kind must be"),
        ("GAT dropout 1", lambda t: gnn.GATLayer(2, 2, dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
        ("node loss empty mask", lambda t: clf().loss((k, no_mask)), ValueError, "mask selects no node"),
        ("node loss int mask", lambda t: clf().loss((k, no_mask.long())), ValueError, "mask must be a bool tensor"),
        ("node loss no mask", lambda t: clf().loss(k), TypeError, r"batch \(graph, mask\)"),
        ("node features 3 of 34", lambda t: clf()(gr.Graph(torch.zeros(34, 3), k.edge_index)), ValueError,
         "must have 34 features"),
        ("negative pairs of 1 node", lambda t: gnn.negative_edges(1, 4), ValueError, "at least 2 nodes"),
        ("GraphRNN max_nodes 1", lambda t: gg.GraphRNNConfig(max_nodes=1), ValueError, "max_nodes must be >= 2"),
        ("GraphVAE beta -1", lambda t: gg.GraphVAEConfig(beta=-1.0), ValueError, "beta must be >= 0"),
        ("GraphRNN empty graph", lambda t: rnn().encode(z1[:0], torch.zeros(0, 0, dtype=torch.long)), ValueError,
         "the graph is empty"),
        ("GraphRNN 5 of 4 nodes", lambda t: rnn().encode(torch.zeros(5, dtype=torch.long),
                                                          torch.zeros(5, 5, dtype=torch.long)), ValueError,
         "more than max_nodes=4"),
        ("GraphRNN type 2 of 2", lambda t: rnn().encode(z1 + 2, torch.zeros(1, 1, dtype=torch.long)), ValueError,
         r"types must be in \[0, 1\]"),
        ("GraphRNN self-loop", lambda t: rnn().encode(z1, torch.ones(1, 1, dtype=torch.long)), ValueError,
         "symmetric with a zero diagonal"),
        ("GraphRNN sample 0", lambda t: rnn().sample(0), ValueError, "n must be > 0"),
        ("GraphRNN loss one tensor", lambda t: rnn().loss(torch.zeros(2, 5)), TypeError, r"batch \(t, rows\)"),
        ("graph MMD statistic", lambda t: gm.graph_mmd([nx.path_graph(3)], [nx.path_graph(3)], "spectral"),
         ValueError, "stat must be"),
        ("graph MMD empty", lambda t: gm.graph_mmd([], [nx.path_graph(3)], "degree"), ValueError,
         "reference is empty"),
        ("graph MMD not graphs", lambda t: gm.graph_mmd([1], [nx.path_graph(3)], "degree"), TypeError,
         "networkx graphs"),
        ("orbits of 61 nodes", lambda t: gm.orbit_counts(nx.path_graph(61)), ValueError, "at most 60 nodes"),
        ("molecule metrics empty", lambda t: gm.molecule_metrics([], ["C"]), ValueError, "generated is empty"),
        ("QED of bad SMILES", lambda t: gm.qed_values(["C1CC"]), ValueError, "not valid SMILES"),
        ("link AUC no negatives", lambda t: gm.link_auc_ap([0.5], []), ValueError, r"len\(neg\) must be > 0"),
    ]  # fmt: skip


GRAPH_ROWS = _graph_rows()


def _tab():
    from genai_lib.models import copula, tabular_vae

    return tabular_vae, copula


def _fid():
    from genai_lib import fidelity

    return fidelity


def _aug():
    from genai_lib.recipes import augment

    return augment


def _cvae():
    from genai_lib.models.cvae import CVAE, CVAEConfig

    return CVAE(CVAEConfig(z_dim=2, hidden=4))


def _health():
    from genai_lib.recipes import health

    return health


def _steer(**kw):
    from genai_lib.recipes.steering import fine_tune_on_best

    fns = {"sample": lambda m, n, generator: [1] * n, "score": len, "to_batch": lambda items: (torch.zeros(1),)}
    return fine_tune_on_best(torch.nn.Linear(1, 1), **fns, **kw)


_TWO_COL = torch.tensor([[1.0, 2.0], [3.0, 5.0], [4.0, 1.0]])
_CONST_COL = torch.tensor([[1.0, 7.0], [3.0, 7.0], [4.0, 7.0]])
_IMGS = torch.zeros(2, 1, 28, 28)

HEALTH_ROWS = [
    ("tab empty table", lambda t: _tab()[0].TableScaler(2).fit(torch.zeros(0, 2)), ValueError, "x is an empty table"),
    ("tab one row", lambda t: _tab()[0].TableScaler(2).fit(torch.zeros(1, 2)), ValueError, "empty table"),
    ("tab constant column", lambda t: _tab()[0].TableScaler(2).fit(_CONST_COL), ValueError, "column 1 is constant"),
    ("tab not 2-d", lambda t: _tab()[0].TableScaler(2).fit(torch.zeros(4)), ValueError, r"shape \(N, D\)"),
    ("tab wrong width", lambda t: _tab()[0].TableScaler(3).fit(_TWO_COL), ValueError, "must have 3 columns"),
    ("tab nan", lambda t: _tab()[0].TableScaler(2).fit(_TWO_COL / 0 * 0), ValueError, "NaN or infinite"),
    ("tab strings", lambda t: _tab()[0].check_table("x", "abc"), TypeError, "x must be a table"),
    ("tab binary not 0/1", lambda t: _tab()[0].TableScaler(2, (1,)).fit(_TWO_COL), ValueError, "binary column 1"),
    ("tab cfg binary out", lambda t: _tab()[0].TabularVAEConfig(n_columns=3, binary=(3,)), ValueError, "binary"),
    ("tab cfg binary list", lambda t: _tab()[0].TabularVAEConfig(n_columns=3, binary=[0]), ValueError, "binary"),
    ("tab cfg z 0", lambda t: _tab()[0].TabularVAEConfig(n_columns=3, z_dim=0), ValueError, "z_dim"),
    ("tab cfg beta 0", lambda t: _tab()[0].TabularVAEConfig(n_columns=3, beta=0.0), ValueError, "beta"),
    ("tab vae cfg type", lambda t: _tab()[0].TabularVAE({"n_columns": 3}), TypeError, "TabularVAEConfig"),
    ("copula empty", lambda t: _tab()[1].GaussianCopula().fit(torch.zeros(0, 3)), ValueError, "empty table"),
    ("copula constant", lambda t: _tab()[1].GaussianCopula().fit(_CONST_COL), ValueError, "column 1 is constant"),
    ("copula unfitted", lambda t: _tab()[1].GaussianCopula().sample(3), ValueError, "fit"),
    ("fid auc one class", lambda t: _fid().logistic_auc(_TWO_COL, [1, 1, 1], _TWO_COL, [0, 1, 1]), ValueError, "one"),
    ("fid auc labels", lambda t: _fid().logistic_auc(_TWO_COL, [0, 1], _TWO_COL, [0, 1, 1]), ValueError, "train_y"),
    ("fid auc not 0/1", lambda t: _fid().logistic_auc(_TWO_COL, [0, 2, 1], _TWO_COL, [0, 1, 1]), ValueError, "0/1"),
    ("fid ks width", lambda t: _fid().marginal_ks(_TWO_COL, torch.zeros(3, 3)), ValueError, "fake must have 2"),
    ("fid dcr width", lambda t: _fid().closest_record_distance(torch.zeros(3, 3), _TWO_COL), ValueError, "query"),
    ("aug method", lambda t: _aug().augment_scarce("mixup", _IMGS, torch.zeros(2)), ValueError, "method"),
    ("aug cgan no gan", lambda t: _aug().augment_scarce("cgan", _IMGS, torch.full((2,), 8)), ValueError, "gan="),
    ("aug cvae no cvae", lambda t: _aug().augment_scarce("cvae", _IMGS, torch.full((2,), 8)), ValueError, "cvae="),
    (
        "aug mix no cvae",
        lambda t: _aug().augment_scarce("cvae+classical", _IMGS, torch.full((2,), 8)),
        ValueError,
        "cvae=",
    ),
    ("aug analogies not cvae", lambda t: _aug().cvae_analogies(None, _IMGS, torch.zeros(2), 3), TypeError, "CVAE"),
    (
        "aug analogies no others",
        lambda t: _aug().cvae_analogies(_cvae(), _IMGS, torch.full((2,), 8), 3),
        ValueError,
        "other digits",
    ),
    ("aug analogies n 0", lambda t: _aug().cvae_analogies(_cvae(), _IMGS, torch.zeros(2), 0), ValueError, "n >= 1"),
    ("health eps 0", lambda t: _health().train_tabular_vae(0.0), ValueError, "eps"),
    ("health kind", lambda t: _health().synthetic_patients("gan"), ValueError, "kind"),
    ("steer top 0", lambda t: _steer(top=0.0), ValueError, "top"),
    ("steer top 2", lambda t: _steer(top=2.0), ValueError, "top"),
    ("steer n 0", lambda t: _steer(n=0), ValueError, "n"),
    ("steer rounds -1", lambda t: _steer(rounds=-1), ValueError, "rounds"),
]

# --------------------------------------------------------------------------- audio and music (chapter 12)

_WN = WaveNetConfig(n_layers=2, stacks=1, channels=4, skip_channels=4)
AUDIO_ROWS = [
    ("wavenet n_layers 0", lambda t: WaveNetConfig(n_layers=0), ValueError, "n_layers must be > 0"),
    ("wavenet n_layers 17", lambda t: WaveNetConfig(n_layers=17), ValueError, "n_layers must be <= 16"),
    ("wavenet channels float", lambda t: WaveNetConfig(channels=8.0), TypeError, "channels must be an int"),
    ("wavenet classes 1", lambda t: WaveNetConfig(classes=1), ValueError, "classes must be >= 2"),
    ("wavenet huge", lambda t: WaveNetConfig(channels=10**6), ValueError, SIZE),
    ("wavenet needs its config", lambda t: WaveNet({"n_layers": 2}), TypeError, "needs a WaveNetConfig"),
    ("receptive_field of a dict", lambda t: receptive_field({}), TypeError, "needs a WaveNetConfig"),
    ("wavenet float input", lambda t: WaveNet(_WN)(torch.zeros(1, 8)), TypeError, "long tensor of class ids"),
    ("wavenet 1-D input", lambda t: WaveNet(_WN)(torch.zeros(8, dtype=torch.long)), TypeError, r"\(B, T\) long"),
    ("wavenet class 256", lambda t: WaveNet(_WN)(torch.full((1, 4), 256)), ValueError, r"class ids in \[0, 255\]"),
    ("wavenet generate n 0", lambda t: WaveNet(_WN).generate(0), ValueError, "n must be > 0"),
    ("wavenet generate generator", lambda t: WaveNet(_WN).generate(3, generator=1), TypeError, "generator must be"),
    ("mu-law encode ints", lambda t: mu_law_encode(torch.zeros(4, dtype=torch.int16)), TypeError, "x must be"),
    ("mu-law encode NaN", lambda t: mu_law_encode(torch.tensor([NAN])), ValueError, "x contains NaN or infinite"),
    ("mu-law decode floats", lambda t: mu_law_decode(torch.zeros(3)), TypeError, "integer tensor of class ids"),
    ("mu-law decode -1", lambda t: mu_law_decode(torch.tensor([-1])), ValueError, r"class ids in \[0, 255\]"),
    ("lpc order 0", lambda t: LPCConfig(order=0), ValueError, "order must be > 0"),
    ("lpc noise", lambda t: LPCConfig(noise="cauchy"), ValueError, "noise must be one of"),
    ("lpc floor 0", lambda t: LPCConfig(floor=0.0), ValueError, r"floor must be in \(0, 1\)"),
    ("lpc float ids", lambda t: LinearPredictor(LPCConfig()).fit(torch.zeros(100)), TypeError, "long tensor"),
    (
        "lpc too short",
        lambda t: LinearPredictor(LPCConfig(order=8)).fit(torch.zeros(5, dtype=torch.long)),
        ValueError,
        "more than order=8",
    ),  # fmt: skip
    (
        "lpc predict unfitted",
        lambda t: LinearPredictor(LPCConfig()).predict(torch.zeros(64, dtype=torch.long)),
        RuntimeError,
        "call fit",
    ),  # fmt: skip
    ("audio int16", lambda t: check_audio("x", np.zeros(8, dtype=np.int16)), TypeError, "divide int16 by 32768"),
    ("audio int tensor", lambda t: wav_bytes(torch.zeros(8, dtype=torch.long)), TypeError, "floating waveform"),
    ("audio stereo", lambda t: wav_bytes(np.zeros((2, 8), dtype=np.float32)), ValueError, "1-D"),
    ("audio empty", lambda t: wav_bytes(np.zeros(0, dtype=np.float32)), ValueError, "x is empty"),
    ("audio too loud", lambda t: wav_bytes(np.full(4, 2.0, dtype=np.float32)), ValueError, r"\[-1, 1\]"),
    ("audio NaN", lambda t: wav_bytes(np.full(4, np.nan, dtype=np.float32)), ValueError, "NaN or inf"),
    ("audio a list", lambda t: wav_bytes([0.0, 0.1]), TypeError, "1-D float array"),
    ("audio rate 100", lambda t: wav_bytes(np.zeros(4, dtype=np.float32), 100), ValueError, "rate must be in"),
    ("audio rate float", lambda t: wav_bytes(np.zeros(4, dtype=np.float32), 8000.0), TypeError, "rate must be an int"),
    ("render no notes", lambda t: render_notes([]), ValueError, "got no notes"),
    ("render rate 10^6", lambda t: render_notes([(0, 60, 0.0, 1.0)], rate=10**6), ValueError, "rate must be in"),
    (
        "render tempo 0",
        lambda t: render_notes([(0, 60, 0.0, 1.0)], seconds_per_quarter=0),
        ValueError,
        "seconds_per_quarter must be > 0",
    ),  # fmt: skip
    ("render an hour", lambda t: render_notes([(0, 60, 0.0, 10**5)]), ValueError, "pass max_seconds"),
    ("tones 0 clips", lambda t: synth_tones(0), ValueError, "n_clips must be > 0"),
    (
        "audio windows too short",
        lambda t: windows(np.zeros(3, dtype=np.float32), 8),
        ValueError,
        "fewer than one window",
    ),
    ("chorale with no notes", lambda t: ChoraleTokenizer().encode([]), ValueError, "no notes"),
    ("chorale voice 4", lambda t: ChoraleTokenizer().encode([(4, 60, 0.0, 1.0)]), ValueError, "voice must be in"),
    ("chorale pitch 127", lambda t: ChoraleTokenizer().encode([(0, 127, 0.0, 1.0)]), ValueError, "pitch must be"),
    ("chorale triplet", lambda t: ChoraleTokenizer().encode([(0, 60, 0.0, 1 / 3)]), ValueError, "multiple of 1/4"),
    ("chorale gap", lambda t: ChoraleTokenizer().encode([(0, 60, 1.0, 1.0)]), ValueError, "not contiguous"),
    ("chorale decode nothing", lambda t: ChoraleTokenizer().decode([0, 1]), ValueError, "hold no notes"),
    ("chorale tokenizer range", lambda t: ChoraleTokenizer(low=90, high=80), ValueError, "low < high"),
    ("chorales n 0", lambda t: load_chorales(0), ValueError, "n must be > 0"),
    ("pitch histogram empty", lambda t: pitch_class_histogram([]), ValueError, "non-empty list of chorales"),
    ("TV negative", lambda t: total_variation([-1.0, 2.0], [0.5, 0.5]), ValueError, "non-negative"),
]

# --------------------------------------------------------------------------- applications (chapters 13, 15)


def _apps():
    from genai_lib import anomaly, code_corpus, forecast, industry, levels
    from genai_lib.models import scenario

    return levels, code_corpus, industry, anomaly, forecast, scenario


APPS_ROWS = [
    ("level with no player", lambda t: _apps()[0].solve(["#####", "#..G#", "#####"]), ValueError, "one player"),
    ("level with two goals", lambda t: _apps()[0].check_level(["#####", "#PGG#", "#####"]), ValueError, "one goal"),
    ("level ragged rows", lambda t: _apps()[0].check_level(["###", "#P.G#"]), ValueError, "equal length"),
    ("level unknown tile", lambda t: _apps()[0].check_level(["#P?G#"]), ValueError, "unknown tiles"),
    ("level stats empty", lambda t: _apps()[0].level_stats([]), ValueError, "at least one level"),
    ("level config wall_p", lambda t: _apps()[0].LevelConfig(wall_p=0.9), ValueError, "wall_p"),
    ("level config tiny", lambda t: _apps()[0].LevelConfig(height=3), ValueError, "height must be in"),
    ("level generator n 0", lambda t: _apps()[0].generate_levels(0), ValueError, "n must be"),
    ("level token decode id", lambda t: _apps()[0].LevelTokenizer().decode([42]), ValueError, "ids must be in"),
    ("code module outside stdlib", lambda t: _apps()[1].code_files(["../x"]), ValueError, "module names"),
    ("code module missing", lambda t: _apps()[1].code_files(["no_such_mod_q"]), ValueError, "standard library"),
    ("code modules empty", lambda t: _apps()[1].code_files([]), ValueError, "non-empty"),
    ("code timeout 0", lambda t: _apps()[1].property_checks([], timeout=0), ValueError, "timeout"),
    ("defect kind", lambda t: _apps()[2].add_defects(torch.zeros(1, 1, 28, 28), "dent"), ValueError, "kind must be"),
    ("defect shape", lambda t: _apps()[2].add_defects(torch.zeros(1, 28, 28), "blot"), ValueError, "x"),
    ("simulator 0 units", lambda t: _apps()[2].simulate_degradation(0), ValueError, "n_units"),
    (
        "window longer than the series",
        lambda t: _apps()[2].scenario_windows(np.zeros((10, 2)), context=8, horizon=4, test_start=9),
        ValueError,
        "longer than the series",
    ),
    (
        "scenario empty table",
        lambda t: _apps()[2].scenario_windows(np.zeros((0, 4)), context=2, horizon=1, test_start=3),
        ValueError,
        "non-empty",
    ),
    (
        "scenario test_start",
        lambda t: _apps()[2].scenario_windows(np.zeros((20, 2)), context=2, horizon=2, test_start=1),
        ValueError,
        "test_start",
    ),
    (
        "scenario constant column",
        lambda t: (
            _apps()[5]
            .ScenarioCVAE(_apps()[5].ScenarioCVAEConfig(dims=2))
            .set_scaling(torch.zeros(2), torch.tensor([1.0, 0.0]))
        ),
        ValueError,
        "scale > 0",
    ),
    ("scenario cvae beta 0", lambda t: _apps()[5].ScenarioCVAEConfig(beta=0.0), ValueError, "beta"),
    ("scenario cvae noise", lambda t: _apps()[5].ScenarioCVAEConfig(noise="fixed"), ValueError, "noise"),
    ("code scan_brackets not text", lambda t: _apps()[1].scan_brackets(None), TypeError, "text"),
    (
        "scenario cvae sample noise",
        lambda t: (
            _apps()[5]
            .ScenarioCVAE(_apps()[5].ScenarioCVAEConfig())
            .sample(2, context=torch.zeros(1, 8, 4), noise="yes")
        ),
        TypeError,
        "noise",
    ),
    (
        "sensor gru one reading",
        lambda t: _apps()[5].SensorGRU(_apps()[5].SensorGRUConfig()).score(torch.zeros(1, 1, 4)),
        ValueError,
        "at least 2 readings",
    ),
    (
        "pca k too big",
        lambda t: _apps()[3].pca_scores(np.zeros((4, 3)), np.zeros((2, 3)), k=3),
        ValueError,
        "k must be",
    ),
    ("one-class nu", lambda t: _apps()[3].fit_one_class(np.zeros((4, 3)), nu=2.0), ValueError, "nu must be"),
    (
        "costs empty",
        lambda t: _apps()[3].threshold_costs([], [1.0], [0.5], miss_cost=1, alarm_cost=1),
        ValueError,
        "non-empty",
    ),
    (
        "energy score shapes",
        lambda t: _apps()[4].energy_score(np.zeros((2, 3, 4)), np.zeros((2, 3, 4))),
        ValueError,
        "samples must be",
    ),
    (
        "coverage level",
        lambda t: _apps()[4].interval_coverage(np.zeros((1, 2, 1, 1)), np.zeros((1, 1, 1)), level=1.5),
        ValueError,
        "level",
    ),
]


ROWS = (
    CHECKPOINT_ROWS
    + TRAIN_ROWS
    + CONFIG_ROWS
    + MODEL_ROWS
    + TOKEN_ROWS
    + DATA_ROWS
    + TEXT_ROWS
    + SAMPLING_ROWS
    + ETHICS_ROWS
    + METRIC_ROWS
    + WIDGET_ROWS
    + PLOT_ROWS
    + UTIL_ROWS
    + RECIPE_ROWS
    + DIFFUSION_ROWS
    + I2I_ROWS
    + STYLEGAN_ROWS
    + COMPRESS_ROWS
    + INTERPRET_ROWS
    + PRIVACY_ROWS
    + MULTIMODAL_ROWS
    + GRAPH_ROWS
    + HEALTH_ROWS
    + AUDIO_ROWS
    + APPS_ROWS
)


def test_the_table_has_unique_readable_ids():
    names = [r[0] for r in ROWS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert len(ROWS) >= 300


@pytest.mark.parametrize("name, fn, exc, match", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_clearly(tmp_path, monkeypatch, name, fn, exc, match):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GENAI_BOOK", raising=False)
    with pytest.raises(exc, match=match):
        fn(tmp_path)
    assert not os.path.exists("/tmp/genai_pwned"), "a malicious pickle ran code"


# --------------------------------------------------------------------------- conversions instead of refusals


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32], ids=str)
def test_small_integer_token_ids_are_converted(dtype):
    x, y = ids(2, 5), ids(2, 5)
    want_logits, want_loss = gpt()(x, y)
    got_logits, got_loss = gpt()(x.to(dtype), y.to(dtype))
    torch.testing.assert_close(got_logits, want_logits)
    torch.testing.assert_close(got_loss, want_loss)
    torch.testing.assert_close(lstm()(x.to(dtype), y.to(dtype))[1], lstm()(x, y)[1])
    assert check_token_ids("ids", x.to(dtype), 11).dtype == torch.long
    assert torch.equal(gpt().generate(x.to(dtype), 3, greedy=True), gpt().generate(x, 3, greedy=True))
    assert ng().nll(x[0].to(dtype)) == ng().nll(x[0])
    wx, wy = batch_windows(ids(30).to(dtype), 4, 2, generator=torch.Generator().manual_seed(0))
    assert wx.dtype == torch.long and wy.dtype == torch.long


def test_lists_and_arrays_of_ids_work_for_the_ngram():
    assert torch.equal(ng().next_distribution([1, 2]), ng().next_distribution(torch.tensor([1, 2])))
    assert torch.equal(ng().next_distribution(np.array([1, 2], np.int32)), ng().next_distribution([1, 2]))
    assert torch.equal(ng().next_distribution([]), ng().next_distribution(None))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_other_float_images_and_latents_are_converted(dtype):
    x = img(4)
    xd = x.to(dtype)
    exact = x if dtype == torch.float64 else xd.float()  # what the model sees after conversion
    vae(), gan(), vg(), clf(), gm()  # built first: a first (cached) build seeds and draws from the global RNG
    torch.manual_seed(0)
    want = vae().loss(exact)[0]
    torch.manual_seed(0)
    got = vae().loss(xd)[0]
    torch.testing.assert_close(got, want)
    z = torch.randn(3, 2)
    torch.testing.assert_close(vae().decode(z.to(dtype)), vae().decode(z.to(dtype).float()))
    zg = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(gan().eval().generate(zg.to(dtype)), gan().generate(zg.to(dtype).float()))
        torch.testing.assert_close(vg().eval().decode(zg.to(dtype)), vg().decode(zg.to(dtype).float()))
    g = torch.Generator().manual_seed(0)
    d_got = gan().d_loss(xd, generator=g)[0]
    d_want = gan().d_loss(exact, generator=torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(d_got, d_want)
    torch.testing.assert_close(vg().encode(xd)[0], vg().encode(exact)[0])
    torch.testing.assert_close(classifier_features(clf(), xd), classifier_features(clf(), exact))
    torch.testing.assert_close(gm().log_prob(zg[:, :2].to(dtype)), gm().log_prob(zg[:, :2].to(dtype).float()))


def test_float64_lstm_state_is_converted():
    x = ids(2, 4)
    state = (torch.randn(1, 2, 8), torch.randn(1, 2, 8))
    want = lstm()(x, state=state)[0]
    got = lstm()(x, state=(state[0].double(), state[1].double()))[0]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32], ids=str)
def test_small_integer_labels_are_converted(dtype):
    x, y = img(3), torch.tensor([0, 2, 1])
    torch.testing.assert_close(
        cgan().eval().generate(torch.zeros(3, 4), y.to(dtype)), cgan().generate(torch.zeros(3, 4), y)
    )
    torch.manual_seed(0)
    want = clf().eval().loss((x, y))[0]
    torch.manual_seed(0)
    torch.testing.assert_close(clf().loss((x, y.to(dtype)))[0], want)
    assert conditional_accuracy(clf(), x, y.to(dtype)) == conditional_accuracy(clf(), x, y)


def test_a_tiny_temperature_samples_the_argmax():
    lg = logits(4, 7) * 3
    for temperature in (1e-40, 1e-30, 1e-8):
        got = sample_next(lg, temperature=temperature, generator=torch.Generator().manual_seed(0))
        assert torch.equal(got, greedy(lg)), temperature
    masked = top_k_filter(lg, 2)  # -inf entries are a mask, not an error
    assert torch.equal(sample_next(masked, temperature=1e-40), greedy(lg))


def test_numpy_numbers_in_configs_compare_equal_to_plain_ones():
    assert VAEConfig(z_dim=np.int64(3), beta=np.float64(0.5)) == VAEConfig(z_dim=3, beta=0.5)
    assert GPTConfig(np.int64(11), n_embd=np.int64(16)) == GPTConfig(11, n_embd=16)
    assert hash(NGramConfig(order=np.int64(2))) == hash(NGramConfig(order=2))


def test_a_cache_entry_without_model_or_step_is_retrained_not_a_keyerror(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    meta = train_cache.fingerprint(Tiny(TinyConfig()), {"steps": 2}, None)
    for broken in ({"meta": meta}, {"meta": meta, "model": Tiny(TinyConfig()).state_dict()}):
        checkpoint.save_checkpoint(train_cache.cache_path("broken"), broken)
        history = train_cache.load_or_train(Tiny(TinyConfig()), _loader(), name="broken", steps=2, progress=False)
        assert not history.from_cache and history.step == [1, 2]


def test_a_cache_entry_of_another_shape_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    meta = train_cache.fingerprint(Tiny(TinyConfig()), {"steps": 2}, None)
    other = Tiny(TinyConfig(hidden=3)).state_dict()
    checkpoint.save_checkpoint(train_cache.cache_path("shape"), {"meta": meta, "model": other, "step": 2, "total": 2})
    model = Tiny(TinyConfig())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="do not fit this model"):
        history = train_cache.load_or_train(model, _loader(), name="shape", steps=2, progress=False)
    assert not history.from_cache
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # trained, from its own init


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = _good_ckpt(tmp_path / "keep.pt")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(path, {"model": {}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]  # no temporary file left behind


def test_unloadable_save_keeps_the_old_checkpoint(tmp_path):
    path = _good_ckpt(tmp_path / "keep.pt")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="NumPy"):
        checkpoint.save_checkpoint(path, {"model": {}, "lr": np.float32(1.0)})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["keep.pt"]


def test_checkpoint_round_trip(tmp_path):
    model = Tiny(TinyConfig())
    path = checkpoint.save_checkpoint(
        tmp_path / "ok.pt", {"model": model.state_dict(), "config": checkpoint.config_dict(model.cfg)}
    )
    state = checkpoint.load_checkpoint(path, expect_config=TinyConfig())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(state["model"][k], v)
