"""The live federation: ``kind: Cluster`` members in the store, and the decision of where a
submitted job goes (``core.federation.place``) on a snapshot built from them. docs/federation.md.

Glossary:
- *member*: a ``kind: Cluster`` document applied by the admin, stored as the record
  ``clusters/<name>`` (its validated fields, as JSON). Its nodes are the agents labelled
  ``hyperion.io/cluster: <name>``.
- *committed*: GPUs of a member held by the non-terminal jobs already routed to it; free GPUs in the
  snapshot are its capacity minus these.
- *carbon series*: with a carbon directory (``FederationConfig.carbon_dir``) holding
  ``<grid zone>_*.csv`` or ``.csv.gz`` files (the formats of ``providers.grid``), the member's
  series is a forecast of the next ``HORIZON_H`` hours from the last ``HISTORY_H`` hours of its
  zone's file (read with year alignment, so 2021-2023 data serve any date); else its static
  ``carbon_intensity``; else unknown.
- *routing*: the decision stored with the job (``model.federation.Routing``); the scheduler's
  ``federation`` plugin then keeps the job on its member's nodes and until its start time.
- *burst*: a job waiting in a queueing member's queue (``burst_after``) decided again on the other
  members that can run it now (``ControlService.burst``); its routing then says ``burst_from``.

With no member, nothing here runs: submission is what it was without a federation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from hyperion.api.spec import ClusterDoc, SpecError, validate_document
from hyperion.core.federation import FED_PROFILES, FedProfile, place
from hyperion.core.federation.estimate import candidate
from hyperion.core.federation.forecast import same_hour_yesterday, weekly_profile
from hyperion.core.framework import ProfileError
from hyperion.core.plugins.federation import CLUSTER_LABEL
from hyperion.model import JobSpec, NodeState
from hyperion.model.federation import ClusterView, FedDecision, FedJob, FedSnapshot, Routing
from hyperion.providers.grid import HOUR, HourlySeries, SeriesError, read_series
from hyperion.store.objects import ClusterState

log = logging.getLogger("hyperion.federation")

CLUSTERS = "clusters/"
HISTORY_H = 7 * 24  # hours of a zone's series a forecast reads
HORIZON_H = 48  # hours a forecast covers
DEFAULT_RUNTIME_S = 3600.0  # a job with no runtime estimate (and no history) is costed as one hour
FORECASTS = {"same-hour-yesterday": same_hour_yesterday, "weekly": weekly_profile}


class FederationConfigError(ValueError):
    """The control plane's ``federation`` settings are invalid; the message names the field."""


@dataclass(frozen=True)
class FederationConfig:
    """``federation: {profile, carbon_dir, forecast, options}`` of the control plane."""

    profile: str = "default"
    carbon_dir: Path | None = None
    forecast: str = "same-hour-yesterday"
    options: tuple[tuple[str, object], ...] = ()  # federation profile options (core.federation.profiles)

    @classmethod
    def from_mapping(cls, data: object, where: str = "federation") -> FederationConfig:
        """Validate a ``federation:`` mapping; errors name the field and what it must be."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FederationConfigError(f"{where}: expected a mapping with profile, carbon_dir, forecast, options")
        known = ("profile", "carbon_dir", "forecast", "options")
        for key in data:
            if key not in known:
                raise FederationConfigError(f"{where}.{key}: unknown field; known: {', '.join(known)}")
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise FederationConfigError(f"{where}.options: expected a mapping of option: value")
        carbon = data.get("carbon_dir")
        cfg = cls(str(data.get("profile", "default")), Path(carbon).expanduser() if carbon else None,
                  str(data.get("forecast", "same-hour-yesterday")), tuple(sorted(options.items())))
        cfg.check(where)
        return cfg

    def check(self, where: str = "federation") -> FedProfile:
        """The profile these settings build; ``FederationConfigError`` when any field is wrong."""
        if self.profile not in FED_PROFILES:
            raise FederationConfigError(f"{where}.profile: unknown federation profile {self.profile!r}; "
                                        f"known: {', '.join(FED_PROFILES)}")
        if self.forecast not in FORECASTS:
            raise FederationConfigError(f"{where}.forecast: unknown forecast {self.forecast!r}; known: {', '.join(FORECASTS)}")
        if self.carbon_dir is not None and not self.carbon_dir.is_dir():
            raise FederationConfigError(f"{where}.carbon_dir: {self.carbon_dir} is not a directory; give a directory "
                                        "of <ZONE>_*.csv(.gz) hourly carbon files, or leave it out")
        try:
            return FED_PROFILES[self.profile](**dict(self.options))
        except ProfileError as err:
            raise FederationConfigError(f"{where}.options: {err}") from None


class Federation:
    """The members (cached from the store) and the decision for a job on them."""

    def __init__(self, state: ClusterState, config: FederationConfig | None = None) -> None:
        self.state = state
        self.config = config or FederationConfig()
        self.profile = self.config.check()
        self.members: dict[str, ClusterDoc] = {}
        for name, data in state.records(CLUSTERS):
            try:
                doc = validate_document(data, source=f"record {name}")
            except SpecError as err:  # written by another version: say so, keep the rest working
                log.error("federation member %s cannot be read and is ignored: %s", name, err)
                continue
            if isinstance(doc, ClusterDoc):
                self.members[doc.name] = doc
        self._templates: dict[str, ClusterView] = {}  # member -> its view at full capacity (catalog prices resolved once)
        self._series: dict[str, tuple[HourlySeries | None, str]] = {}  # grid zone -> (series, where from)
        self._forecasts: dict[tuple[str, float], tuple[float, ...]] = {}

    # ---- members ---------------------------------------------------------------------------
    def template(self, doc: ClusterDoc) -> ClusterView:
        """The member's view at full capacity with its static carbon, prices looked up once."""
        view = self._templates.get(doc.name)
        if view is None:
            view = self._templates[doc.name] = doc.to_view()
        return view

    def put(self, doc: ClusterDoc) -> str:
        """Create or replace a member; returns ``created``, ``configured`` or ``unchanged``."""
        data = doc.model_dump(mode="json", by_alias=True)
        old = self.members.get(doc.name)
        if old is not None and old.model_dump(mode="json", by_alias=True) == data:
            return "unchanged"
        self.state.write_records({CLUSTERS + doc.name: data})
        self.members[doc.name] = doc
        self._templates.pop(doc.name, None)
        return "configured" if old else "created"

    def delete(self, name: str) -> bool:
        if name not in self.members:
            return False
        self.state.write_records({}, [CLUSTERS + name])
        del self.members[name]
        self._templates.pop(name, None)
        return True

    def committed(self, exclude: str | None = None) -> dict[str, dict[str, int]]:
        """Member -> GPU type -> GPUs of the non-terminal jobs routed to it (but job ``exclude``)."""
        out: dict[str, dict[str, int]] = {}
        for job in self.state.jobs.values():
            r = job.routed
            if r is None or job.phase.terminal or job.id == exclude:
                continue
            gpu_type = job.spec.gpu_type or r.gpu_type
            if gpu_type is None:
                continue
            by_type = out.setdefault(r.cluster, {})
            by_type[gpu_type] = by_type.get(gpu_type, 0) + job.spec.resources.gpus * job.spec.replicas
        return out

    def nodes(self) -> dict[str, int]:
        """Member -> ready nodes labelled with it."""
        out: dict[str, int] = {}
        for node in self.state.nodes.values():
            member = dict(node.labels).get(CLUSTER_LABEL)
            if member is not None and node.state is NodeState.READY:
                out[member] = out.get(member, 0) + 1
        return out

    # ---- carbon ----------------------------------------------------------------------------
    def _zone_series(self, zone: str) -> tuple[HourlySeries | None, str]:
        cached = self._series.get(zone)
        if cached is not None:
            return cached
        found: tuple[HourlySeries | None, str] = (None, "")
        d = self.config.carbon_dir
        if d is not None and zone:
            files = sorted(p for p in d.glob(f"{zone}_*") if p.name.endswith((".csv", ".csv.gz")))
            if files:
                try:
                    found = (read_series(files[0]), files[0].name)
                except (SeriesError, OSError) as err:
                    log.error("carbon series of grid zone %s cannot be read: %s", zone, err)
                    found = (None, f"unreadable: {err}")
        self._series[zone] = found
        return found

    def carbon(self, doc: ClusterDoc, now: float) -> tuple[tuple[float, ...], str]:
        """The member's hourly carbon series from the current hour, and where it comes from."""
        zone = self.template(doc).grid_zone
        series, source = self._zone_series(zone)
        if series is not None:
            hour = now - now % HOUR
            key = (zone, hour)
            forecast = self._forecasts.get(key)
            if forecast is None:
                history = [series.at(hour - (HISTORY_H - i) * HOUR) for i in range(HISTORY_H)]
                forecast = tuple(FORECASTS[self.config.forecast](history, HORIZON_H))
                if len(self._forecasts) > 4096:
                    self._forecasts.clear()
                self._forecasts[key] = forecast
            return forecast, f"{self.config.forecast} forecast from {source}"
        if doc.carbon_intensity is not None:
            return (doc.carbon_intensity,), "static carbon_intensity"
        return (), "unknown"

    # ---- the decision ----------------------------------------------------------------------
    def views(self, now: float, exclude: str | None = None, members: Collection[str] | None = None,
              queue: bool = True) -> tuple[ClusterView, ...]:
        """The members (only ``members``, when given) as the decision sees them now; with
        ``queue=False`` no member takes a job beyond its free GPUs (a burst goes where it runs now)."""
        committed = self.committed(exclude)
        out = []
        for name, doc in sorted(self.members.items()):
            if members is not None and name not in members:
                continue
            held = committed.get(name, {})
            free = {t: max(0, n - held.get(t, 0)) for t, n in doc.gpus.items()}
            view = replace(self.template(doc), free_gpus=free, carbon_g_per_kwh=self.carbon(doc, now)[0])
            out.append(view if queue else replace(view, queues=False))
        return tuple(out)

    def decide(self, spec: JobSpec, job_id: str, now: float, estimate: float | None = None,
               budget_left: float | None = None, team_weights: tuple[tuple[str, float], ...] = (),
               submitted_at: float | None = None, cost_cap_usd: float | None = None,
               members: Collection[str] | None = None, queue: bool = True) -> tuple[FedDecision, Routing | None]:
        """Where the job goes on the members as they are now; the routing to store (None: nowhere).
        ``submitted_at``, ``cost_cap_usd``: of a stored job decided again when its delay ended (its
        own GPUs are not counted as committed; it keeps the cost cap of its first delay).
        ``members``, ``queue``: see ``views`` (a burst)."""
        job = replace(fed_job(spec, job_id, now, estimate, submitted_at), cost_cap_usd=cost_cap_usd)
        views = self.views(now, exclude=job_id if submitted_at is not None else None, members=members, queue=queue)
        snapshot = FedSnapshot(now=now, seed=int(now), clusters=views, jobs=(job,),
                               team_budget_left={spec.team: budget_left} if budget_left is not None else {},
                               team_weights={spec.team: dict(team_weights)} if team_weights else {})
        d = place(snapshot, self.profile).decisions[0]
        if d.cluster is None:
            return d, None
        carbon_now, usd_now = d.expected_carbon_g, d.expected_usd
        if d.start_delay_s > 0 and d.gpu_type is not None:  # what starting at once would have meant
            view = next(c for c in snapshot.clusters if c.name == d.cluster)
            c = candidate(job, view, d.gpu_type, d.spot, 0.0, snapshot, self.profile.option("spot_interruptions_per_h"))
            carbon_now, usd_now = c.carbon_g, c.usd
        routing = Routing(
            cluster=d.cluster, profile=self.profile.name, decided_at=now,
            gpu_type=d.gpu_type if spec.resources.gpus > 0 else None, spot=d.spot, start_delay_s=d.start_delay_s,
            start_after=now + d.start_delay_s if d.start_delay_s > 0 else None,
            expected_usd=_finite(d.expected_usd), expected_carbon_g=_finite(d.expected_carbon_g),
            expected_end=_finite(d.expected_end), score=_finite(d.score), carbon_now_g=_finite(carbon_now),
            usd_now=_finite(usd_now), rejected=tuple(sorted(d.rejected.items())),
            cost_cap_usd=cost_cap_usd if cost_cap_usd is not None else (d.cost_cap_usd if d.start_delay_s > 0 else None))
        return d, routing

    def member_view(self, doc: ClusterDoc, now: float, committed: Mapping[str, int], nodes: int) -> dict:
        """A member as ``GET /v1/clusters`` shows it."""
        view = self.template(doc)
        carbon, source = self.carbon(doc, now)
        return {"name": doc.name, "provider": doc.provider, "region": doc.region, "zone": doc.zone,
                "grid_zone": view.grid_zone, "country": view.country, "capacity": dict(doc.gpus),
                "committed": {t: n for t, n in committed.items() if n}, "nodes": nodes,
                "usd_per_gpu_hour": dict(view.on_demand_usd), "spot_usd_per_gpu_hour": dict(view.spot_usd),
                "carbon_g_per_kwh": carbon[0] if carbon else None, "carbon_source": source,
                "accepting": doc.accepting}


def fed_job(spec: JobSpec, job_id: str, now: float, estimate: float | None = None,
            submitted_at: float | None = None) -> FedJob:
    """The federation's view of a job: all its GPUs together, its runtime estimate (the spec's,
    else ``estimate`` from the user's history, else ``DEFAULT_RUNTIME_S``), its deadline, data,
    price cap, priority and its ``placement:`` knobs."""
    runtime = spec.runtime_estimate_s if spec.runtime_estimate_s is not None else estimate
    p = spec.federation
    return FedJob(
        id=job_id, team=spec.team, gpus=spec.resources.gpus * spec.replicas,
        runtime_estimate_s=runtime if runtime is not None else DEFAULT_RUNTIME_S, gpu_type=spec.gpu_type,
        submitted_at=now if submitted_at is None else submitted_at, priority=int(spec.priority),
        deadline=spec.deadline, data_location=spec.data_location,
        data_bytes=spec.data_size or 0, max_usd_per_h=spec.max_price_per_hour,
        regions=frozenset(p.regions) if p else frozenset(), providers=frozenset(p.providers) if p else frozenset(),
        residency=frozenset(p.residency) if p else frozenset(), spot=p.spot if p else False,
        checkpoint_interval_s=p.checkpoint_interval_s if p else None, caller_region=p.caller_region if p else None,
        weights=dict(p.weights) if p and p.weights else None)


def routing_view(r: Routing) -> dict:
    """The decision as the API shows it (job view's ``federation``, ``hyperion explain``)."""
    return {"cluster": r.cluster, "profile": r.profile, "decided_at": r.decided_at, "gpu_type": r.gpu_type,
            "market": "spot" if r.spot else "on-demand", "start_delay_s": r.start_delay_s, "start_after": r.start_after,
            "waits_for": r.waits_for() or None, "expected_usd": r.expected_usd, "expected_carbon_g": r.expected_carbon_g,
            "expected_end": r.expected_end, "score": r.score, "burst_from": r.burst_from, "burst_wait_s": r.burst_wait_s,
            "rejected": [{"cluster": c, "reason": why} for c, why in r.rejected]}


def decision_view(d: FedDecision) -> dict:
    """A decision that stored nothing (a dry run, or a refusal)."""
    return {"cluster": d.cluster, "gpu_type": d.gpu_type, "market": "spot" if d.spot else "on-demand",
            "start_delay_s": d.start_delay_s, "expected_usd": _finite(d.expected_usd),
            "expected_carbon_g": _finite(d.expected_carbon_g), "expected_end": _finite(d.expected_end),
            "score": _finite(d.score), "reason": d.reason,
            "rejected": [{"cluster": c, "reason": why} for c, why in sorted(d.rejected.items())]}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
