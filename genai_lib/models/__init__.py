"""Generative models of the course, one algorithm per module (e.g. ``genai_lib.models.vae``)."""
