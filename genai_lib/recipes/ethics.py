"""Chapter 19's experiments: watermarking the course's generated text and images, detecting
generated digits, and searching samples for copies of the training set.

- :func:`text_watermark`: the chapter-7 character GPT (``train_char_gpt``, the shared cache
  entry) continues ``n`` prompts from the held-out English text by ``tokens`` characters at
  temperature 1, once plainly and once with the green-list watermark at each strength ``delta``
  of ``TEXT_WM`` (the same random numbers for every run, so the runs differ only by the
  watermark). It returns the z-scores at each prefix length, the perplexity of every run under
  the unwatermarked model, and the z-scores after random character edits.
- :func:`image_watermark`: the chapter-6 diffusion model (``train_diffusion("ddpm")``) samples
  ``n`` digits unconditionally by DDIM from tree-ring-marked noise and ``n`` from plain noise;
  every image is inverted by DDIM and its distance to the key measured, also after Gaussian
  noise or a blur of the image.
- :func:`generated_digits` / :func:`detector_table`: fakes of the course's generators (see
  ``GENERATORS``); a small CNN per generator learns real vs that generator's fakes and is
  scored (ROC AUC) on held-out fakes of every generator: the cross-generator table.
- :func:`copy_search`: each generator's samples against the 4,000 training digits, in pixel
  space and in the features of the metrics' classifier (:mod:`genai_lib.forensics`).

The watermark code is :mod:`genai_lib.watermark`; the scores :mod:`genai_lib.forensics`. Every
result is cached (``ch19_*`` entries) with the settings in its key; ``cache=False`` computes it
again and replaces the entry (the benchmark), except the detectors, which are reused whenever
their training fakes are the same. Fast mode: fewer and shorter samples, the fast-mode generators.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from genai_lib.data import load_mnist
from genai_lib.forensics import near_copies, roc_auc, tpr_at_fpr
from genai_lib.metrics import classifier_features
from genai_lib.models.classifier import ClassifierConfig
from genai_lib.recipes.classifier import ClassifierRecipe, mnist_classifier, train_classifier
from genai_lib.recipes.language import train_char_gpt
from genai_lib.text import load_corpus
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train_cache import cached
from genai_lib.utils import eval_mode, fast_mode, model_device
from genai_lib.watermark import (
    GreenList,
    WatermarkProcessor,
    embed_tree_ring,
    random_token_edits,
    ring_mask,
    tree_ring_distance,
    tree_ring_key,
    watermark_z,
)

__all__ = [
    "TEXT_WM",
    "IMAGE_WM",
    "GENERATORS",
    "DETECTOR",
    "char_model",
    "sequence_nats",
    "watermark_generate",
    "text_watermark",
    "image_watermark",
    "generated_digits",
    "detector_table",
    "copy_search",
]

# The text watermark: green fraction gamma, strengths swept, the strength the chapter's figures
# use, and the experiment's size (full / fast).
TEXT_WM: dict[str, Any] = {
    "gamma": 0.25,
    "key": 15485863,
    "deltas": (0.5, 1.0, 2.0, 3.0),
    "delta": 2.0,
    "z_threshold": 2.3263478740408408,  # the one-sided 1% point of N(0, 1): 1% false positives
    "full": {"n": 150, "tokens": 500, "prompt": 32, "lengths": (25, 50, 100, 200, 300, 500)},
    "fast": {"n": 24, "tokens": 60, "prompt": 16, "lengths": (15, 30, 60)},
    "edits": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
}


def char_model(*, fast: bool | None = None, device: Any = None) -> tuple[Any, CharTokenizer, torch.Tensor]:
    """The shared chapter-7 character GPT, its tokenizer and the held-out English ids."""
    text = load_corpus("english", "train")
    tok = CharTokenizer.from_text(text)
    model, _ = train_char_gpt(tok.encode(text, as_tensor=True), tok.vocab_size, fast=fast, device=device)
    return model, tok, tok.encode(load_corpus("english", "val"), as_tensor=True)


@torch.no_grad()
def sequence_nats(model: Any, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Mean nats per token of ids[:, start:] under ``model``, per row (B,): windows of block_size
    that overlap by half, every token after the first window predicted from >= block_size / 2
    tokens of context (a model with a short context scoring a long text)."""
    block = model.cfg.block_size
    half = block // 2
    n, length = ids.shape
    if not 1 <= start < length:
        raise ValueError(f"start must be in [1, {length}), got {start}")
    nll = torch.zeros(n, length, dtype=torch.float64)
    done = torch.zeros(length, dtype=torch.bool)
    done[0] = True
    dev = model_device(model)
    with eval_mode(model):
        s = 0
        while True:
            w = ids[:, s : s + block + 1].to(dev)
            lp = torch.log_softmax(model(w[:, :-1])[0].float(), -1)  # (B, w - 1, V)
            tok = -lp.gather(-1, w[:, 1:, None]).squeeze(-1).double().cpu()  # nats of ids[s + 1 ...]
            pos = torch.arange(s + 1, s + w.shape[1])
            keep = ~done[pos] & ((pos - s >= half) | (s == 0))
            nll[:, pos[keep]] = tok[:, keep]
            done[pos[keep]] = True
            if s + block + 1 >= length:
                break
            s += half
    return nll[:, start:].mean(1)


def watermark_generate(
    model: Any, prompts: torch.Tensor, tokens: int, processor: WatermarkProcessor | None, *, seed: int = 0
) -> torch.Tensor:
    """``prompts`` (B, P) continued by ``tokens`` sampled tokens -> (B, P + tokens) on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return model.generate(prompts.to(model_device(model)), tokens, generator=g, logits_processor=processor).cpu()


def _prompts(val_ids: torch.Tensor, n: int, length: int) -> torch.Tensor:
    starts = torch.linspace(0, len(val_ids) - length - 1, n).long()
    return val_ids[starts[:, None] + torch.arange(length)]


def text_watermark(*, fast: bool | None = None, device: Any = None, cache: bool = True) -> dict[str, Any]:
    """The text-watermark experiment (see the module docstring); cached as ``ch19_text_wm``.

    Returns ``{"deltas", "lengths", "edits", "z_plain": {L: (n,)}, "z": {delta: {L: (n,)}},
    "nats_plain": (n,), "nats": {delta: (n,)}, "z_edit_plain": {f: (n,)}, "z_edit": {f: (n,)},
    "tpr1": {delta: {L: rate}}, "fpr": {L: rate}, "ppl_ratio": {delta: ratio}, "sample_plain",
    "sample_wm", "prompt"}``. z-scores count each (previous, token) pair once
    (``ignore_repeated``: characters repeat pairs far too often for the plain count's z-test);
    ``tpr1`` is the fraction of watermarked texts above the 1% point of N(0, 1), ``fpr`` that of
    the plain texts (the check that the threshold really gives about 1% false positives)."""
    fast = fast_mode() if fast is None else fast
    size = TEXT_WM["fast" if fast else "full"]
    model, tok, val_ids = char_model(fast=fast, device=device)
    green = GreenList(tok.vocab_size, gamma=TEXT_WM["gamma"], key=TEXT_WM["key"])
    deltas = (TEXT_WM["delta"],) if fast else TEXT_WM["deltas"]
    key = {"wm": {k: v for k, v in TEXT_WM.items() if k not in ("full", "fast")}, "size": size, "fast": fast}

    def compute() -> dict[str, Any]:
        p = size["prompt"]
        prompts = _prompts(val_ids, size["n"], p)
        runs = {0.0: watermark_generate(model, prompts, size["tokens"], None)}
        for d in deltas:
            runs[d] = watermark_generate(model, prompts, size["tokens"], WatermarkProcessor(green, delta=d))

        def zs(ids: torch.Tensor) -> dict[int, torch.Tensor]:
            return {L: watermark_z(ids[:, p - 1 : p + L], green, ignore_repeated=True) for L in size["lengths"]}

        g = torch.Generator().manual_seed(1)
        edit_l = 200 if 200 in size["lengths"] else size["lengths"][-1]
        wm = runs[TEXT_WM["delta"]]

        def edited(ids: torch.Tensor, f: float) -> torch.Tensor:
            part = random_token_edits(ids[:, p - 1 : p + edit_l], f, tok.vocab_size, generator=g)
            return watermark_z(part, green, ignore_repeated=True)

        out = {"deltas": list(deltas), "lengths": list(size["lengths"]), "edits": list(TEXT_WM["edits"])}
        out["z_plain"] = zs(runs[0.0])
        out["z"] = {d: zs(runs[d]) for d in deltas}
        out["nats_plain"] = sequence_nats(model, runs[0.0], p)
        out["nats"] = {d: sequence_nats(model, runs[d], p) for d in deltas}
        out["z_edit_plain"] = {f: edited(runs[0.0], f) for f in TEXT_WM["edits"]}
        out["z_edit"] = {f: edited(wm, f) for f in TEXT_WM["edits"]}
        out["sample_plain"] = tok.decode(runs[0.0][0, p:].tolist())
        out["sample_wm"] = tok.decode(wm[0, p:].tolist())
        out["prompt"] = tok.decode(prompts[0].tolist())
        return out

    out = _cached("ch19_text_wm", key, compute, cache)
    zt = TEXT_WM["z_threshold"]
    out["tpr1"] = {d: {L: float((out["z"][d][L] > zt).double().mean()) for L in out["lengths"]} for d in out["deltas"]}
    out["fpr"] = {L: float((out["z_plain"][L] > zt).double().mean()) for L in out["lengths"]}
    base = float(out["nats_plain"].mean())
    out["ppl_ratio"] = {d: float(torch.exp(out["nats"][d].mean() - base)) for d in out["deltas"]}
    return out


def _cached(name: str, key: Any, compute: Any, cache: bool) -> dict[str, Any]:
    """The cached result, or (``cache=False``) a fresh computation that replaces the entry."""
    return cached(name, key, compute, refresh=not cache)


# ------------------------------------------------------------------------------ the generators
# Each generator of the earlier chapters, loaded from (or trained into) the shared cache.
def _vae(fast: bool, device: Any) -> Any:
    from genai_lib.recipes.vae import train_vae

    return train_vae("mlp16", fast=fast, device=device)[0]


def _gan(which: str) -> Any:
    def load(fast: bool, device: Any) -> Any:
        from genai_lib.recipes.gan import train_gan

        return train_gan(which, fast=fast, device=device)[0]

    return load


def _ddpm(fast: bool, device: Any) -> Any:
    from genai_lib.recipes.diffusion import train_diffusion

    return train_diffusion("ddpm", fast=fast, device=device)[0]


GENERATORS: dict[str, Any] = {"vae": _vae, "dcgan": _gan("dcgan"), "wgan": _gan("wgan"), "ddpm": _ddpm}
DDIM_STEPS = 20  # DDIM steps of the diffusion model's fakes (fast mode: FAST_DDIM_STEPS)
FAST_DDIM_STEPS = 10

# Fakes per generator: the detector's training half, then its test half (full / fast).
SAMPLES = {"full": {"train": 1000, "test": 500}, "fast": {"train": 100, "test": 50}}


def _draw(name: str, model: Any, n: int, seed: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, 500):
        k = min(500, n - start)
        if name == "ddpm":  # class-conditional, one label per digit in turn
            labels = (torch.arange(start, start + k) % 10).tolist()
            out.append(model.sample(k, steps=steps, labels=torch.tensor(labels), generator=g))
        else:
            out.append(model.sample(k, generator=g))
    return torch.cat(out).float().clamp(0, 1)


def generated_digits(
    names: tuple[str, ...] | None = None, *, fast: bool | None = None, device: Any = None, cache: bool = True
) -> dict[str, dict[str, torch.Tensor]]:
    """``{generator: {"train": (N, 1, 28, 28), "test": (M, 1, 28, 28)}}`` samples in [0, 1] (seeds
    0 and 1), each generator's cached as ``ch19_fakes_<name>``."""
    fast = fast_mode() if fast is None else fast
    size = SAMPLES["fast" if fast else "full"]
    ddim = FAST_DDIM_STEPS if fast else DDIM_STEPS
    out = {}
    for name in names or tuple(GENERATORS):
        if name not in GENERATORS:
            raise ValueError(f"names must be among {tuple(GENERATORS)}, got {name!r}")

        def compute(name: str = name) -> dict[str, Any]:
            model = GENERATORS[name](fast, device)
            return {split: _draw(name, model, size[split], seed, ddim) for seed, split in enumerate(("train", "test"))}

        key = {"name": name, "size": size, "fast": fast, "ddim": ddim}
        out[name] = _cached(f"ch19_fakes_{name}", key, compute, cache)
    return out


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()


DETECTOR = ClassifierRecipe(ClassifierConfig(n_classes=2, width=16, feature_dim=64), epochs=30, fast_epochs=3)


def _detector(name: str, fakes: dict[str, torch.Tensor], fast: bool, device: Any) -> Any:
    """A real (0) vs ``name``'s fakes (1) CNN: as many training digits as training fakes."""
    n = len(fakes["train"])
    real_train = load_mnist("train", limit=n)[0]
    real_test = load_mnist("test")[0][: len(fakes["test"])]

    def load(split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake = (real_train, fakes["train"]) if split == "train" else (real_test, fakes["test"])
        x = torch.cat([real, fake])
        y = torch.cat([torch.zeros(len(real), dtype=torch.long), torch.ones(len(fake), dtype=torch.long)])
        return x, y

    key = {"fakes": _digest(fakes["train"]), "source": name}  # the same fakes: the cached detector
    return train_classifier(DETECTOR, load, name=f"ch19_detector_{name}", key=key, device=device, fast=fast)


@torch.no_grad()
def _fake_score(clf: Any, x: torch.Tensor) -> torch.Tensor:
    dev = model_device(clf)
    logits = torch.cat([clf(x[i : i + 500].to(dev)).float().cpu() for i in range(0, len(x), 500)])
    return logits[:, 1] - logits[:, 0]


def detector_table(
    names: tuple[str, ...] | None = None,
    *,
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    fakes: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Train one detector per generator; ``{"names", "auc": {train: {test: AUC}}, "real_scores",
    "fake_scores"}``: ``auc[a][b]`` is the ROC AUC of the detector trained on ``a``'s fakes at
    telling the held-out real digits from ``b``'s held-out fakes. ``fakes``: the output of
    :func:`generated_digits` when the caller has it already."""
    fast = fast_mode() if fast is None else fast
    names = names or tuple(GENERATORS)
    fakes = fakes or generated_digits(names, fast=fast, device=device, cache=cache)
    real_test = load_mnist("test")[0]
    auc, real_scores, fake_scores = {}, {}, {}
    for a in names:
        clf = _detector(a, fakes[a], fast, device)
        real_scores[a] = _fake_score(clf, real_test[: len(fakes[a]["test"])])
        fake_scores[a] = {b: _fake_score(clf, fakes[b]["test"]) for b in names}
        auc[a] = {b: roc_auc(fake_scores[a][b], real_scores[a]) for b in names}
    return {"names": list(names), "auc": auc, "real_scores": real_scores, "fake_scores": fake_scores}


def copy_search(
    names: tuple[str, ...] | None = None,
    *,
    fast: bool | None = None,
    device: Any = None,
    cache: bool = True,
    fakes: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Nearest training digit of every held-out fake, in pixel space and in the metrics'
    classifier features: ``{space: {name: near_copies(...)}}`` with the threshold set by the
    held-out real digits (1% quantile), plus ``"train"`` (the 4,000 digits) for showing pairs."""
    fast = fast_mode() if fast is None else fast
    names = names or tuple(GENERATORS)
    fakes = fakes or generated_digits(names, fast=fast, device=device, cache=cache)
    train = load_mnist("train")[0]
    held = load_mnist("test")[0]
    clf = mnist_classifier(device=device, fast=fast)

    def feats(x: torch.Tensor) -> torch.Tensor:
        return classifier_features(clf, x).cpu()

    f_train, f_held = feats(train), feats(held)
    out: dict[str, Any] = {"pixel": {}, "feature": {}, "train": train}
    for name in names:
        x = fakes[name]["test"]
        out["pixel"][name] = near_copies(x, train, held)
        out["feature"][name] = near_copies(feats(x), f_train, f_held)
        out["pixel"][name]["samples"] = x
    return out


# The image watermark: key radius (in Fourier bins of the 28 x 28 noise), key seed, DDIM steps,
# samples, and the attacks applied to the images before detection (full / fast). Measured on 40
# images (2026-12-03): unconditional sampling and inversion with 50 steps, AUC 0.98 at radius 3
# and 0.93 at radius 6; class-conditional sampling inverted without the label, 20 steps, 0.69.
IMAGE_WM: dict[str, Any] = {
    "radius": 3,
    "key_seed": 1234,
    "full": {"n": 100, "steps": 50},
    "fast": {"n": 16, "steps": 10},
    "noise": (0.05, 0.1),  # std of Gaussian pixel noise, on [0, 1] images
    "blur": (1.0,),  # std of a Gaussian blur, in pixels
}


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = 3
    c = torch.arange(-r, r + 1, dtype=torch.float32)
    w = torch.exp(-(c**2) / (2 * sigma**2))
    w = (w / w.sum())[:, None] * (w / w.sum())[None, :]
    return torch.nn.functional.conv2d(x, w[None, None], padding=r)


def _attacks(x: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
    out = {"none": x}
    for s in IMAGE_WM["noise"]:
        out[f"noise {s}"] = (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)
    for s in IMAGE_WM["blur"]:
        out[f"blur {s}"] = _blur(x, s).clamp(0, 1)
    return out


def image_watermark(*, fast: bool | None = None, device: Any = None, cache: bool = True) -> dict[str, Any]:
    """The tree-ring experiment (see the module docstring); cached as ``ch19_image_wm``.

    Returns ``{"key", "mask", "images_wm", "images_plain" (n, 1, 28, 28), "dist_wm": {attack: (n,)},
    "dist_plain": {attack: (n,)}, "auc": {attack: AUC}, "tpr1": {attack: rate}, "recovery"}``;
    a smaller distance means watermarked, so the AUC scores the negated distance; ``recovery``
    is the relative error of the inverted noise of the unattacked watermarked images."""
    fast = fast_mode() if fast is None else fast
    n, steps = (IMAGE_WM["fast" if fast else "full"][k] for k in ("n", "steps"))
    wm = {"radius": IMAGE_WM["radius"], "key_seed": IMAGE_WM["key_seed"], "steps": steps}
    key = {"wm": {**wm, "noise": IMAGE_WM["noise"], "blur": IMAGE_WM["blur"]}, "n": n, "fast": fast}

    def compute() -> dict[str, Any]:
        model = _ddpm(fast, device)
        size = model.data_shape[-1]
        mask = ring_mask(size, IMAGE_WM["radius"])
        wkey = tree_ring_key(size, IMAGE_WM["radius"], generator=torch.Generator().manual_seed(IMAGE_WM["key_seed"]))
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(n, *model.data_shape, generator=g)
        marked = embed_tree_ring(noise, wkey, mask)
        res: dict[str, Any] = {"key": wkey, "mask": mask, "dist_wm": {}, "dist_plain": {}}
        for tag, z in (("wm", marked), ("plain", torch.randn(n, *model.data_shape, generator=g))):
            x = model.sample(n, steps=steps, noise=z.to(model_device(model)))  # unconditional
            res[f"images_{tag}"] = x
            for attack, xa in _attacks(x, g).items():
                inv = model.encode(xa.to(model_device(model)), steps=steps).cpu()
                res[f"dist_{tag}"][attack] = tree_ring_distance(inv, wkey, mask)
                if tag == "wm" and attack == "none":
                    res["recovery"] = float((inv - z).norm() / z.norm())
        return res

    out = _cached("ch19_image_wm", key, compute, cache)
    out["auc"] = {a: roc_auc(-out["dist_wm"][a], -out["dist_plain"][a]) for a in out["dist_wm"]}
    out["tpr1"] = {a: tpr_at_fpr(-out["dist_wm"][a], -out["dist_plain"][a], 0.01) for a in out["dist_wm"]}
    return out
