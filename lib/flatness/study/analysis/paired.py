"""Reading a summary's seed-paired difference into a :class:`~flatness.study.claims.Comparison`.

Summaries store each paired difference with its per-seed values (``differences``). Summaries
written before that stored only the mean and a spread of ``max(2 std, 1 point)``: their
standard deviation is taken as half the spread, an upper bound, so an old summary is never
judged more kindly than its numbers.
"""

from __future__ import annotations

from typing import Any

from flatness.study.claims import Comparison


def from_entry(label: str, entry: dict[str, Any], n: int, predicted: int, *,
               mean_key: str = "gain", spread_key: str = "spread", **kwargs: Any
               ) -> Comparison:
    """The comparison stored in a summary ``entry`` over ``n`` seeds."""
    if entry.get("differences") is not None:
        return Comparison.paired(label, entry["differences"], predicted, **kwargs)
    spread = entry.get(spread_key)
    return Comparison.from_stats(label, entry.get(mean_key),
                                 None if spread is None else spread / 2, n, predicted, **kwargs)
