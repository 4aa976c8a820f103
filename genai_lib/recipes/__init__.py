"""The course's trained models: which config, which data, how long, under which cache name.

The top layer of ``genai_lib``: a recipe may import anything below it (models, the training
core, data, metrics), and nothing below imports a recipe. Notebooks and benchmarks call these
functions instead of retyping a training set-up, so the numbers the book quotes and the numbers
a benchmark prints come from the same settings. One module per chapter family:

- :mod:`genai_lib.recipes.classifier`: the MNIST classifier behind classifier-FID (chapter 3 on);
- :mod:`genai_lib.recipes.vae`: the chapter-2 VAEs;
- :mod:`genai_lib.recipes.gan`: the chapter-3 GANs and the ring experiment;
- :mod:`genai_lib.recipes.image2image`: the chapter-4 CycleGANs (MNIST <-> UCI digits), pix2pix for
  super-resolution and inpainting, and their evaluations (with a semantic-consistency variant);
- :mod:`genai_lib.recipes.digit_judges`: chapter 4's UCI-digits judge and the frozen classifiers
  inside the CycleGAN's semantic-consistency loss (never the judges);
- :mod:`genai_lib.recipes.stylegan`: chapter 5's StyleGAN and its measurements (FID beside the
  DCGAN, style mixing, truncation, path length, noise);
- :mod:`genai_lib.recipes.multimodal`: chapters 9-10's captioner, contrastive model, text-to-image
  VAE and multimodal VAEs on captioned MNIST (:mod:`~genai_lib.recipes.multimodal_eval` scores them);
- :mod:`genai_lib.recipes.language`: GPT and LSTM training on token streams (chapters 7-8);
- :mod:`genai_lib.recipes.applications`: chapter 13's level GPT (and its refinement with a solver
  in the loop) and code GPT, with their measurements;
- :mod:`genai_lib.recipes.industry`: chapter 15's anomaly VAE, sensor GRU and scenario CVAE, with
  their baselines (PCA, one-class SVM, a plain detector, a VAR);
- :mod:`genai_lib.recipes.interpret`: chapter 17's beta-VAEs on the shapes and their MIG.

Every recipe function seeds its own weights inside ``torch.random.fork_rng``, so its result does
not depend on (and does not change) the caller's global RNG, and takes ``fast`` (default:
``GENAI_FAST``) for the tiny budgets of the tests.
"""
