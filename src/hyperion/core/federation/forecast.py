"""Carbon (or price) forecasts from an hourly history, pure: what the live driver puts in
``ClusterView.carbon_g_per_kwh`` (the simulator may use these too, or the actual series as an
oracle bound).

``history`` is one value per hour, oldest first, its last value the hour *before* the current
one; a forecast's index 0 is the current hour (the same indexing as the carbon series).
- ``same_hour_yesterday(history, n)``: hour ``i`` from now is the value 24 hours before it,
  ``history[len - 24 + i % 24]`` (so the last day repeats). With under a day of history, the last
  value repeated (persistence).
- ``weekly_profile(history, n, weeks=4)``: hour ``i`` from now is the mean of the values at the
  same hour of the week in each of the last ``weeks`` weeks the history covers,
  ``history[len - 168 w + i % 168]`` for ``w = 1..weeks``. With under a week of history, the
  same hour yesterday.
Both return an empty list for an empty history.
"""

from __future__ import annotations

from collections.abc import Sequence

DAY_H = 24
WEEK_H = 7 * DAY_H


def same_hour_yesterday(history: Sequence[float], n: int) -> list[float]:
    if not history or n <= 0:
        return []
    if len(history) < DAY_H:
        return [float(history[-1])] * n
    base = len(history) - DAY_H
    return [float(history[base + i % DAY_H]) for i in range(n)]


def weekly_profile(history: Sequence[float], n: int, weeks: int = 4) -> list[float]:
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    if len(history) < WEEK_H:
        return same_hour_yesterday(history, n)
    out = []
    for i in range(n):
        vals = [history[j] for w in range(1, weeks + 1) if (j := len(history) - WEEK_H * w + i % WEEK_H) >= 0]
        out.append(sum(vals) / len(vals))
    return out
