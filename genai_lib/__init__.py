"""genai_lib: the small, tested PyTorch library behind the course
*Generative AI from first principles to practice*.

Importing the package does no work: submodules are imported explicitly, e.g.
``from genai_lib.models.vae import VAE, VAEConfig``.
"""

__version__ = "0.1.0"
