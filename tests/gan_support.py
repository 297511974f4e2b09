"""Tiny GAN test data and configs. The vases and the subset folder come from metgan.testing (the one
drawer, metgan.testing.vases, and the subset writer the viz fixtures use too)."""

from __future__ import annotations

from metgan.testing.trialfolders import MANIFEST_HEADER, make_subset
from metgan.testing.vases import vase_images

__all__ = ["MANIFEST_HEADER", "TINY", "make_subset", "vase_images"]

# Small enough for seconds per epoch on a shared 2-core machine.
TINY = {"height": 40, "width": 32, "g_blocks": 2, "d_blocks": 2, "g_filters": 16, "g_seed_filters": 8,
        "d_filters": 8, "noise_dim": 16, "batch_size": 16, "epochs": 2, "swd_every": 1, "n_samples": 9,
        "n_generated": 4}
