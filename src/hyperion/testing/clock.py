"""``ManualClock``: a ``ports.clock.Clock`` that moves only when a test says so."""

from __future__ import annotations


class ManualClock:
    """``t`` is now, in epoch seconds; ``monotonic`` follows it. Set ``t`` or ``advance``."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t
