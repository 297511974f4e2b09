"""A score against the data's own floor, with a verdict a person can read.

SWD (sliced Wasserstein distance, x1e3) between generated and real images means little alone: its
scale depends on the image size and on how many images it compares. Its reference is the
*floor*, the SWD between two halves of the real images themselves (``swd_real`` in
metrics.jsonl): a generator that matched the data perfectly would score about that. The ratio to
the floor is comparable across sizes and subsets, and the verdict's bands come from looking at
the pictures at each ratio (docs/searching.md shows examples): about 2x draws recognisable vases,
4x and above draws blobs.

Every place that shows a score (trial logs, ``metgan search status``, the report, the gallery,
Airflow task summaries, ``make demo``) formats it here, so they all say the same words.
"""

from __future__ import annotations

import math

# (highest ratio, verdict, advice), checked in order; the last band catches everything above.
BANDS: tuple[tuple[float, str, str], ...] = (
    (1.5, "close to the data", ""),
    (2.5, "good: recognisable, softer than the data", ""),
    (4.0, "rough: the right colours and shapes, not yet the objects",
     "train longer, or at a smaller size"),
    (math.inf, "far from the data", "train longer, or at a smaller size"),
)


def ratio(score: float | None, floor: float | None) -> float | None:
    """``score / floor``, or None when either is missing or the floor is not positive."""
    if score is None or floor is None:
        return None
    try:
        score, floor = float(score), float(floor)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(score) and math.isfinite(floor)) or floor <= 0:
        return None
    return score / floor


def verdict(score: float | None, floor: float | None) -> str | None:
    """The band's words for ``score`` against ``floor`` (with its advice), or None without a floor."""
    value = ratio(score, floor)
    if value is None:
        return None
    for highest, words, advice in BANDS:
        if value <= highest:
            return f"{words} — {advice}" if advice else words
    raise AssertionError("the last band is unbounded")


def describe(score: float | None, floor: float | None, *, metric: str = "SWD") -> str:
    """One line: ``SWD 157 = 4.8x the data's floor (33): far from the data — train longer ...``.

    Without a floor (an old trial, or a metric that has none) it is the score alone; without a
    score, ``no SWD yet``.
    """
    if score is None:
        return f"no {metric} yet"
    value = ratio(score, floor)
    if value is None:
        return f"{metric} {float(score):.3g}"
    return f"{metric} {float(score):.3g} = {value:.1f}x the data's floor ({float(floor):.3g}): {verdict(score, floor)}"
