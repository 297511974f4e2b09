"""The fake Met's photographs. The drawing lives in :mod:`metgan.testing.vases`, the one drawer shared
with the trial-folder fixtures, the GAN tests and the benchmarks; the server imports this name."""

from metgan.testing.vases import DRAWERS, render, render_jpeg, stable_seed

__all__ = ["DRAWERS", "render", "render_jpeg", "stable_seed"]
