"""Which trial of a search is best, and which search has a model: the search record's answers
(:mod:`metgan.gan.search_record`, the one ranking), under the names the demo and older callers use."""

from __future__ import annotations

from metgan.gan.search_record import best_trial, newest_search_with_model

__all__ = ["best_trial", "newest_search_with_model"]
