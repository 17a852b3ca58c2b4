"""Builders for the federation tests (imported by the test modules beside it)."""

from __future__ import annotations

from typing import Any

from hyperion.core.federation import Context
from hyperion.core.federation.estimate import Candidate, candidate
from hyperion.model.federation import ClusterView, FedJob, FedSnapshot

HOUR = 3600.0
NOW = 1_800_000_000.0 - 1_800_000_000.0 % HOUR  # on the hour


def a_cluster(name: str = "c1", provider: str = "aws", region: str = "us-east-1", free: dict[str, int] | None = None,
              od: dict[str, float] | None = None, spot: dict[str, float] | None = None, **kw: Any) -> ClusterView:
    return ClusterView(name, provider, region, {"H100": 8} if free is None else free,
                       {"H100": 2.0} if od is None else od, spot or {}, **kw)


def a_job(id: str = "j1", team: str = "t", gpus: int = 1, estimate_s: float = HOUR, **kw: Any) -> FedJob:
    kw.setdefault("submitted_at", NOW)
    return FedJob(id, team, gpus, estimate_s, **kw)


def a_snapshot(clusters: list[ClusterView], jobs: list[FedJob] | None = None, **kw: Any) -> FedSnapshot:
    return FedSnapshot(NOW, 0, tuple(clusters), tuple(jobs or ()), **kw)


def cand(job: FedJob, cluster: ClusterView, gpu_type: str = "H100", spot: bool = False, delay_s: float = 0.0,
         snapshot: FedSnapshot | None = None, rate: float = 0.05) -> Candidate:
    return candidate(job, cluster, gpu_type, spot, delay_s, snapshot or a_snapshot([cluster], [job]), rate)


def ctx(snapshot: FedSnapshot) -> Context:
    return Context(snapshot, {(c.name, t): n for c in snapshot.clusters for t, n in c.free_gpus.items()},
                   dict(snapshot.team_budget_left))
