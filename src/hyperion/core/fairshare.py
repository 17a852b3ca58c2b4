"""Weighted dominant-resource fair share with decayed history.

Glossary:
- *dominant share* of a queue: the largest, over resource keys, of its usage divided by the
  cluster's total of that key (DRF); divided by the queue's weight, lower goes first.
- *history*: past usage, in resource-seconds, decayed with a half-life ``H``: every ``H`` seconds
  old usage counts half as much. A constant usage ``u`` held forever accrues to ``u * H / ln 2``,
  so ``history * ln 2 / H`` is a recent-average usage in the same unit as current usage.
- *effective usage*: ``(1 - w) * current + w * recent average`` with ``w`` = ``history_weight``:
  a team that used a lot yesterday yields today, and current holdings still count at once.

Drivers (live runtime and simulator) call ``accrue`` as time passes; decisions read the result
from ``Snapshot.history``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

LN2 = math.log(2)


def accrue(history: Mapping[str, Mapping[str, float]], usage: Mapping[str, Mapping[str, float]],
           elapsed: float, half_life: float) -> dict[str, dict[str, float]]:
    """History after ``elapsed`` seconds during which ``usage`` was held: old history decays and
    the usage integral, itself decaying over the interval, is added (exact for constant usage)."""
    if elapsed <= 0:
        return {k: dict(v) for k, v in history.items()}
    keep = 0.5 ** (elapsed / half_life)
    gain = half_life / LN2 * (1 - keep)  # integral of 2^(-(elapsed - t)/H) dt over the interval
    out: dict[str, dict[str, float]] = {}
    for name in history.keys() | usage.keys():
        old, now = history.get(name, {}), usage.get(name, {})
        row = {k: old.get(k, 0.0) * keep + now.get(k, 0) * gain for k in old.keys() | now.keys()}
        row = {k: v for k, v in row.items() if v > 1e-9}
        if row:
            out[name] = row
    return out


def dominant_share(usage: Mapping[str, float], history: Mapping[str, float], totals: Mapping[str, int],
                   half_life: float, history_weight: float) -> float:
    best = 0.0
    scale = LN2 / half_life
    for key in usage.keys() | history.keys():
        total = totals.get(key, 0)
        if total <= 0:
            continue
        eff = (1 - history_weight) * usage.get(key, 0) + history_weight * history.get(key, 0.0) * scale
        if eff > best * total:
            best = eff / total
    return best
