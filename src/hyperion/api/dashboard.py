"""The web dashboard's views, aggregated on the server over ``ControlService``.

Each view takes the principal a request acts for (``auth.Principal``) and its query parameters as
the raw strings the transport received (``None`` when absent); a bad parameter raises
``BadRequest`` naming it, the value and what is allowed. What a principal sees:

- the admin sees everything;
- a team sees its own jobs and its own cost; jobs of other teams appear only as counts and as
  the positions they take in a queue, never with their ids, names or users;
- nodes (and their telemetry) are visible to everyone; a node's row counts its tasks, it does
  not name them.

Every list paginates (``offset``, ``limit`` up to ``MAX_LIMIT``) and is computed here, so a
browser never downloads the cluster. Costs per request: O(jobs) scans of in-memory dicts (cheap),
O(nodes) for the GPU totals, and the expensive parts (the estimated start of a pending job, each
GPU's telemetry) only for the rows of the page.

Glossary:
- *order*: pending jobs in the order the scheduler's last cycles took them
  (``service.pending_order``, the scheduler loop's ``Rounds.order``); jobs that arrived since the
  last cycle follow in submission order. ``position`` is the 1-based place in it, over every
  team; ``queue_position`` the place among the pending jobs of the same queue.
- *held GPUs*: GPU indices of live tasks that hold their resources (``store.objects.holds``).
- *idle* GPUs: free GPUs on schedulable nodes; *unavailable*: free GPUs on nodes that take no
  work (not ready, cordoned or unhealthy).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter

from hyperion.api import auth
from hyperion.api.accounting import BUCKET
from hyperion.api.errors import BadRequest, Forbidden, NotFound
from hyperion.api.events import KINDS
from hyperion.api.service import ControlService, _attributed
from hyperion.api.spec import parse_time
from hyperion.core import Explanation
from hyperion.model import GpuMetrics, Job, Node, NodeMetrics, NodeState
from hyperion.store.objects import holds

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_POINTS = 1000
DEFAULT_POINTS = 120
MAX_STEPS = 2000  # time steps in one cost series
DEFAULT_COST_WINDOW = 24 * 3600.0
TICK_EVERY_S = 2.0  # the cost view accrues running jobs' spend at most this often
_DIGITS = re.compile(r"(\d+)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
GPU_FIELDS = ("utilization_percent", "memory_used_mb", "temperature_c", "power_w")


class Dashboard:
    def __init__(self, service: ControlService) -> None:
        self.service = service
        self._ticked = float("-inf")

    # ---- summary ----------------------------------------------------------------------------
    def summary(self, who: auth.Principal) -> dict:
        """Jobs by phase (yours), GPUs and nodes of the cluster, pending jobs per queue, the
        scheduler's counters."""
        state = self.service.state
        by_phase = Counter(j.phase for j in state.jobs.values() if who.team is None or j.spec.team == who.team)
        phases = {p.value: n for p, n in by_phase.items()}
        all_nodes = list(state.nodes.values())
        states = Counter(n.state for n in all_nodes)
        gpus = dict.fromkeys(("total", "allocated", "idle", "unavailable"), 0)
        util_sum, util_n = 0.0, 0
        for node in all_nodes:
            if node.state is NodeState.DOWN:
                continue
            held = len(self._held_gpus(node.id))
            gpus["total"] += len(node.gpus)
            gpus["allocated"] += held
            gpus["idle" if node.schedulable else "unavailable"] += len(node.gpus) - held
            latest = self._latest(node.id)
            if latest is not None and latest.gpus and node.state is NodeState.READY:
                util_sum += sum(g.utilization_percent for g in latest.gpus)
                util_n += len(latest.gpus)
        pending = Counter()
        yours = Counter()
        for job_id in state.pending:
            job = state.jobs[job_id]
            pending[job.spec.queue] += 1
            yours[job.spec.queue] += who.may_see(job.team)
        return {
            "team": who.team,
            "now": self.service.clock.now(),
            "jobs": {"total": sum(phases.values()), **{p: phases.get(p, 0) for p in _PHASES}},
            "gpus": {**gpus, "utilization_percent": round(util_sum / util_n, 1) if util_n else None},
            "nodes": {"total": len(all_nodes), "ready": states[NodeState.READY], "not_ready": states[NodeState.NOT_READY],
                      "down": states[NodeState.DOWN], "cordoned": sum(1 for n in all_nodes if n.cordoned),
                      "unhealthy": sum(1 for n in all_nodes if n.condition),
                      "schedulable": sum(1 for n in all_nodes if n.schedulable)},
            "pending": {"total": len(state.pending), "yours": sum(yours.values()),
                        "queues": [{"queue": q, "pending": n, "yours": yours[q]} for q, n in sorted(pending.items())]},
            "scheduler": self.service.scheduler_stats(),
        }

    # ---- pending ----------------------------------------------------------------------------
    def order(self) -> list[str]:
        """Pending job ids in scheduling order (see the module's glossary)."""
        pending = self.service.state.pending
        seen = dict.fromkeys(i for i in self.service.pending_order() if i in pending)
        return [*seen, *(i for i in pending if i not in seen)]

    def pending(self, who: auth.Principal, queue: str | None = None, offset: str | None = None,
                limit: str | None = None) -> dict:
        """Pending jobs you may see, in scheduling order, with their place in it and in their queue,
        the reasons they wait and (for this page) an estimated start."""
        first, count = _page(offset, limit)
        state = self.service.state
        jobs = state.jobs
        queue = queue or None
        if queue is not None and queue != "default" and queue not in state.queues \
                and not any(jobs[i].spec.queue == queue for i in state.pending):
            raise BadRequest(f"queue={queue!r}: no such queue; known: {', '.join(sorted({'default', *state.queues}))}")
        order = self.order()
        team = who.team
        per_queue: dict[str, int] = {}  # pending jobs per queue, every team's
        rows: list[tuple[int, int, str]] = []  # (position, queue position, job id) of the jobs shown
        for position, job_id in enumerate(order, 1):
            spec = jobs[job_id].spec
            q = spec.queue
            n = per_queue[q] = per_queue.get(q, 0) + 1
            if (queue is None or q == queue) and (team is None or spec.team == team):
                rows.append((position, n, job_id))
        page = rows[first:first + count]
        started = time.perf_counter()
        explained = self.service.explain_many([job_id for _, _, job_id in page]) if page else {}
        spent_ms = (time.perf_counter() - started) * 1000
        items = [self._pending_row(jobs[job_id], position, qpos, per_queue[jobs[job_id].spec.queue],
                                   explained.get(job_id))
                 for position, qpos, job_id in page]
        in_scope = per_queue.get(queue, 0) if queue is not None else len(order)
        return {"items": items, "total": len(rows), "offset": first, "limit": count, "pending": len(order),
                "queue": queue, "hidden": in_scope - len(rows),  # other teams' jobs: a count, nothing more
                "estimates_ms": round(spent_ms, 3)}

    def _pending_row(self, job: Job, position: int, queue_position: int, queue_pending: int,
                     e: Explanation | None) -> dict:
        spec = job.spec
        now = self.service.clock.now()
        verdict = self.service.verdicts.get(job.id)
        return {
            "position": position, "queue_position": queue_position, "queue_pending": queue_pending,
            "id": job.id, "name": spec.name, "team": spec.team, "user": spec.user, "queue": spec.queue,
            "priority": spec.priority.label, "priority_value": spec.priority_value,
            "gpus": spec.resources.gpus * spec.replicas, "gpus_per_replica": spec.resources.gpus,
            "replicas": spec.replicas, "gpu_type": spec.gpu_type, "attempt": job.attempt,
            "submitted_at": job.submitted_at, "waiting_s": max(0.0, now - job.submitted_at),
            "reason": job.reason or None,
            "verdict": verdict.code.value if verdict is not None else None,
            "reasons": [_attributed(verdict.plugin, r) for r in verdict.reasons] if verdict is not None else [],
            "estimated_start": e.estimated_start if e is not None else None,
            "estimate_basis": e.estimate_basis if e is not None else "not yet considered by the scheduler",
        }

    # ---- running ----------------------------------------------------------------------------
    def running(self, who: auth.Principal, offset: str | None = None, limit: str | None = None) -> dict:
        """Jobs with live tasks (running, or being stopped: their phase says which), in submission
        order, each rank's node and GPUs with the GPUs' latest utilisation and memory."""
        first, count = _page(offset, limit)
        state = self.service.state
        holding = {job_id for tasks in state.node_tasks.values() for job_id, _ in tasks}
        visible = [j for job_id, j in state.jobs.items() if job_id in holding and who.may_see(j.team)]
        gpus = sum(len(p.gpu_indices) for j in visible for p in state.node_tasks_of(j.id)) if visible else 0
        latest: dict[str, dict[int, GpuMetrics] | None] = {}
        items = [self._running_row(j, latest) for j in visible[first:first + count]]
        return {"items": items, "total": len(visible), "gpus": gpus, "offset": first, "limit": count}

    def _running_row(self, job: Job, latest: dict[str, dict[int, GpuMetrics] | None]) -> dict:
        spec = job.spec
        now = self.service.clock.now()
        started = job.attempt_started_at or job.scheduled_at
        placements, utils = [], []
        for p in self.service.state.node_tasks_of(job.id):
            if p.node_id not in latest:
                m = self._latest(p.node_id)
                latest[p.node_id] = {g.index: g for g in m.gpus} if m is not None else None
            by_index = latest[p.node_id] or {}
            devices = []
            for i in p.gpu_indices:
                g = by_index.get(i)
                devices.append({"index": i, **(_gpu_now(g) if g is not None else dict.fromkeys(_GPU_NOW))})
                if g is not None:
                    utils.append(g.utilization_percent)
            placements.append({"rank": p.rank, "node": p.node_id, "gpus": devices})
        estimate = job.placed_estimate_s if job.placed_estimate_s is not None else spec.runtime_estimate_s
        return {
            "id": job.id, "name": spec.name, "team": spec.team, "user": spec.user, "queue": spec.queue,
            "priority": spec.priority.label, "phase": job.phase.value, "attempt": job.attempt,
            "reason": job.reason or None, "started_at": started,
            "runtime_s": max(0.0, now - started) if started is not None else None,
            "expected_end": started + estimate if started is not None and estimate is not None else None,
            "gpus": sum(len(p["gpus"]) for p in placements), "placements": placements,
            "utilization_percent": round(sum(utils) / len(utils), 1) if utils else None,
            "last_checkpoint_at": job.last_checkpoint_at,
        }

    # ---- nodes ------------------------------------------------------------------------------
    def nodes(self, who: auth.Principal, offset: str | None = None, limit: str | None = None,
              q: str | None = None) -> dict:
        """Nodes in id order (``local-2`` before ``local-10``), filtered by ``q``: a substring of
        the id, hostname, GPU type, state or condition; ``cordoned`` and ``unhealthy`` match those."""
        first, count = _page(offset, limit)
        needle = (q or "").strip().lower()
        nodes = [n for n in self.service.state.nodes.values() if not needle or _matches(n, needle)]
        nodes.sort(key=_natural)
        return {"items": [self._node_row(n) for n in nodes[first:first + count]], "total": len(nodes),
                "offset": first, "limit": count, "q": needle or None}

    def _node_row(self, node: Node) -> dict:
        state = self.service.state
        held = self._held_gpus(node.id)
        m = self._latest(node.id)
        telemetry = None
        if m is not None:
            gs = m.gpus
            telemetry = {
                "at": m.timestamp, "age_s": max(0.0, self.service.clock.now() - m.timestamp),
                "cpu_percent": m.cpu_utilization_percent, "memory_used_mb": m.memory_used_mb,
                "memory_total_mb": m.memory_total_mb,
                "gpu_utilization_percent": round(sum(g.utilization_percent for g in gs) / len(gs), 1) if gs else None,
                "gpu_memory_used_mb": sum(g.memory_used_mb for g in gs), "gpu_memory_total_mb": sum(g.memory_total_mb for g in gs),
                "max_temperature_c": max((g.temperature_c for g in gs), default=None),
                "power_w": round(sum(g.power_w for g in gs), 1),
                "gpu_utilization": [g.utilization_percent for g in sorted(gs, key=_index)],  # per GPU
            }
        return {
            "id": node.id, "hostname": node.hostname, "state": node.state.value, "cordoned": node.cordoned,
            "condition": node.condition or None, "schedulable": node.schedulable, "gpu_type": node.gpu_type,
            "gpus_logical": node.gpus_logical, "gpus": len(node.gpus), "gpus_free": len(node.gpus) - len(held),
            "gpus_held": sorted(held), "tasks": len(state.node_tasks.get(node.id, ())),
            "cpus": node.capacity.cpus_milli / 1000, "memory": node.capacity.memory,
            "last_seen": node.last_seen, "version": node.version, "telemetry": telemetry,
        }

    def node_metrics(self, who: auth.Principal, node_id: str, points: str | None = None) -> dict:
        """A node's telemetry history, downsampled to at most ``points`` points: each point is the
        mean of consecutive samples (per GPU: utilisation, memory, temperature, power)."""
        n_points = _whole("points", points, DEFAULT_POINTS, 2, MAX_POINTS)
        node = self.service.state.nodes.get(node_id)
        if node is None:
            raise NotFound(f"no node {node_id!r}; GET /v1/dashboard/nodes lists them")
        samples = list(self.service.metrics.get(node_id, ()))
        k = min(n_points, len(samples))
        chunks = [samples[i * len(samples) // k:(i + 1) * len(samples) // k] for i in range(k)]
        indices = sorted({g.index for s in samples for g in s.gpus} | {g.index for g in node.gpus})
        series = {i: {f: [] for f in GPU_FIELDS} for i in indices}
        totals: dict[int, float] = {}
        t, cpu = [], []
        for chunk in chunks:
            t.append(round(sum(s.timestamp for s in chunk) / len(chunk), 3))
            cpu.append(round(sum(s.cpu_utilization_percent for s in chunk) / len(chunk), 2))
            sums = {i: [0.0] * len(GPU_FIELDS) for i in indices}
            seen: Counter[int] = Counter()
            for s in chunk:
                for g in s.gpus:
                    acc = sums[g.index]
                    for f_i, f in enumerate(GPU_FIELDS):
                        acc[f_i] += getattr(g, f)
                    seen[g.index] += 1
                    if g.memory_total_mb:
                        totals[g.index] = g.memory_total_mb
            for i in indices:
                for f_i, f in enumerate(GPU_FIELDS):
                    series[i][f].append(round(sums[i][f_i] / seen[i], 2) if seen[i] else None)
        devices = {g.index: g for g in node.gpus}
        return {
            "node": node_id, "state": node.state.value, "samples": len(samples), "points": k,
            "from": samples[0].timestamp if samples else None, "to": samples[-1].timestamp if samples else None,
            "t": t, "cpu_percent": cpu,
            "gpus": [{"index": i, "name": devices[i].name if i in devices else "",
                      "memory_total_mb": totals.get(i) or (devices[i].memory_mb if i in devices else None),
                      **series[i]} for i in indices],
        }

    # ---- cost -------------------------------------------------------------------------------
    def cost(self, who: auth.Principal, start: str | None = None, end: str | None = None, step: str | None = None,
             team: str | None = None) -> dict:
        """Cost, GPU-hours, energy and carbon per team per ``step`` in [from, to), totals over the
        window, and budgets in their current period. A team sees only its own."""
        now = self.service.clock.now()
        t1 = _instant("to", end, now, now)
        t0 = _instant("from", start, t1 - DEFAULT_COST_WINDOW, now)
        if t0 >= t1:
            raise BadRequest(f"from ({t0:.0f}) must be before to ({t1:.0f})")
        step_s = _seconds("step", step, None)
        if step_s is None:  # about 100 points over the window, in whole buckets
            step_s = max(BUCKET, math.ceil((t1 - t0) / 100 / BUCKET) * BUCKET)
        if step_s < BUCKET:
            raise BadRequest(f"step={step!r}: the usage meter keeps {BUCKET:.0f}-second buckets; use a step of at least {BUCKET:.0f}s")
        step_s = step_s - step_s % BUCKET  # what ``Accountant.series`` uses
        first = t0 - t0 % step_s
        steps = math.ceil((t1 - first) / step_s)
        if steps > MAX_STEPS:
            raise BadRequest(f"from..to in steps of {step_s:.0f}s is {steps} steps; at most {MAX_STEPS}: use a larger step")
        if team is not None and not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot see the cost of team {team!r}")
        want = team if team is not None else who.team
        acc = self.service.accountant
        if now - self._ticked >= TICK_EVERY_S:  # running jobs' spend accrued up to now
            acc.tick(now)
            self._ticked = now
        times = [first + i * step_s for i in range(steps)]
        teams: dict[str, dict[str, list[float]]] = {}
        for row in acc.series(t0, t1, step_s, team=want):
            per = teams.setdefault(row["team"], {k: [0.0] * steps for k in _COST_FIELDS})
            i = int((row["t"] - first) // step_s)
            if 0 <= i < steps:
                for k in _COST_FIELDS:
                    per[k][i] += row[k]
        budgets = [b for b in acc.budget_status(now) if who.may_see(b["team"]) and (want is None or b["team"] == want)]
        for b in budgets:
            if isinstance(b.get("ratio"), float) and math.isinf(b["ratio"]):
                b["ratio"] = None  # a zero limit: not JSON
        return {"from": t0, "to": t1, "step": step_s, "team": want, "t": times,
                "teams": [{"team": name, **series} for name, series in sorted(teams.items())],
                "totals": [{"team": name, **{k: sum(v) for k, v in series.items()}} for name, series in sorted(teams.items())],
                "total": {k: sum(sum(series[k]) for series in teams.values()) for k in _COST_FIELDS},
                "budgets": budgets}

    # ---- events -----------------------------------------------------------------------------
    def events(self, who: auth.Principal, kind: str | None = None, limit: str | None = None,
               before: str | None = None) -> dict:
        """Recent events, newest first; ``next_before`` pages on. A team sees its own events and
        the events of nodes (those that name neither a job nor a team)."""
        count = _whole("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)
        upto = _whole("before", before, None, 1, None)
        kinds = None
        if kind:
            kinds = [k.strip() for k in kind.split(",") if k.strip()]
            bad = sorted(set(kinds) - set(KINDS))
            if bad:
                raise BadRequest(f"kind={', '.join(bad)}: unknown event kind; known: {', '.join(KINDS)}")
        log = self.service.events
        if who.is_admin:
            items = log.recent(count, kinds, None, None, upto)
        else:
            items, cursor = [], upto
            while len(items) < count:  # read in chunks, skipping other teams' events
                chunk = log.recent(4 * count, kinds, None, None, cursor)
                items += [e for e in chunk if _team_may_see(who, e)][:count - len(items)]
                if len(chunk) < 4 * count:
                    break
                cursor = chunk[-1]["seq"]
        return {"items": items, "next_before": items[-1]["seq"] if len(items) == count else None,
                "kinds": list(KINDS)}

    # ---- helpers ----------------------------------------------------------------------------
    def _held_gpus(self, node_id: str) -> set[int]:
        jobs = self.service.state.jobs
        out: set[int] = set()
        for (job_id, _), p in self.service.state.node_tasks.get(node_id, {}).items():
            if holds(jobs[job_id]):
                out.update(p.gpu_indices)
        return out

    def _latest(self, node_id: str) -> NodeMetrics | None:
        history = self.service.metrics.get(node_id)
        return history[-1] if history else None


_PHASES = ("pending", "scheduled", "running", "preempted", "succeeded", "failed", "cancelled")
_GPU_NOW = ("utilization_percent", "memory_used_mb", "memory_total_mb")
_COST_FIELDS = ("cost_usd", "gpu_hours", "energy_kwh", "carbon_kg")


def _index(g: GpuMetrics) -> int:
    return g.index


def _gpu_now(g: GpuMetrics) -> dict:
    return {f: getattr(g, f) for f in _GPU_NOW}


def _team_may_see(who: auth.Principal, event: dict) -> bool:
    team = event.get("team")
    if team is not None:
        return who.may_see(team)
    return "job" not in event  # a node's event; an event naming a job but no team is the admin's


def _natural(node: Node) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(node.id)]


def _matches(node: Node, needle: str) -> bool:
    if needle in ("cordoned", "unhealthy"):
        return node.cordoned if needle == "cordoned" else bool(node.condition)
    return any(needle in s.lower() for s in (node.id, node.hostname, node.gpu_type, node.state.value, node.condition))


def _page(offset: str | None, limit: str | None) -> tuple[int, int]:
    return _whole("offset", offset, 0, 0, None), _whole("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)


def _whole(name: str, raw: str | None, default: int | None, lo: int, hi: int | None) -> int:
    if raw is None or raw == "":
        return default  # type: ignore[return-value]
    try:
        value = int(raw)
    except ValueError:
        value = None
    allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if value is None or value < lo or (hi is not None and value > hi):
        raise BadRequest(f"{name}={raw!r}: expected a whole number {allowed}")
    return value


def _seconds(name: str, raw: str | None, default: float | None) -> float | None:
    """A duration: seconds, or a number with a unit (``90s``, ``15m``, ``6h``, ``7d``, ``2w``)."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        m = _DURATION.fullmatch(text)
        if m is None:
            raise BadRequest(f"{name}={raw!r}: expected seconds or a duration such as 15m, 6h, 7d") from None
        value = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"{name}={raw!r}: expected a positive duration")
    return value


def _instant(name: str, raw: str | None, default: float, now: float) -> float:
    """A point in time: epoch seconds, ``now``, or a duration before now (``24h``, ``-7d``)."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if text == "now":
        return now
    try:
        value = float(text)
    except ValueError:
        m = _DURATION.fullmatch(text.removeprefix("-"))
        if m is not None:
            return now - float(m.group(1)) * _UNIT_S[m.group(2)]
        try:
            return parse_time(text)
        except ValueError:
            raise BadRequest(f"{name}={raw!r}: expected epoch seconds, an ISO-8601 time with a timezone, 'now', "
                             "or a duration before now such as 24h or 7d") from None
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"{name}={raw!r}: expected epoch seconds (>= 0)")
    return value
