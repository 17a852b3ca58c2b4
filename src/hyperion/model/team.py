"""Teams: the unit of isolation. A team's token lets it see and act on its own jobs only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    token_sha256: str  # the token itself is never stored
    created_at: float = 0.0
    # idle reclaim for the team's jobs that set none (see JobSpec.idle_gpu_utilization)
    idle_gpu_utilization: float | None = None
    idle_window_s: float | None = None
    # federation score weights for the team's jobs that set none (score plugin -> weight, sorted)
    placement_weights: tuple[tuple[str, float], ...] = ()
