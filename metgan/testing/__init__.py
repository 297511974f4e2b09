"""Test scaffolding that ships with the package: the fake Met server (``metgan.testing.fakemet``),
the one drawer of synthetic vase photographs (``metgan.testing.vases``) and the hand-made trial and
search folders (``metgan.testing.trialfolders``).

It is installed with metgan because ``make demo``, the benchmarks and the test suite all serve it
(``metgan fake-met serve``), and those run from an installed wheel as well as from a checkout.
It is not part of the product: nothing under ``metgan.met``, ``metgan.images``, ``metgan.gan``,
``metgan.viz``, ``metgan.db`` or ``metgan.pipeline`` may import it (``tests/unit/test_layering.py``
checks this), so production code never depends on a fake.
"""
