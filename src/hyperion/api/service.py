"""The transport-agnostic control-plane service: every user-facing operation, once.

REST (``api.rest``) and gRPC (``api.grpc_server``) both call this; they only translate wire
formats and map ``ServiceError.status`` to their own codes. A rejected request raises before any
write, so it changes no state; an accepted job is committed to the store before the call returns.

Queues: a job names one (``default`` when it does not), which must be ``default`` or a queue
applied as a ``kind: Queue`` object. A queue's *usage* is what the live tasks of its jobs hold
(``gpus/<node's GPU type>``, ``cpus``, ``memory``; see ``model.queue.demand``).
"""

from __future__ import annotations

import secrets
import string
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from hyperion.api import auth
from hyperion.api.accounting import Accountant
from hyperion.api.errors import BadRequest, Forbidden, Invalid, NotFound, Unauthorized
from hyperion.api.events import EventLog
from hyperion.api.federation import Federation, FederationConfig, decision_view, routing_view
from hyperion.api.logs import LogStore
from hyperion.api.metrics import Instruments
from hyperion.api.nodepools import NodePools
from hyperion.api.spec import (
    BudgetDoc,
    ClusterDoc,
    JobDoc,
    NodePoolDoc,
    PricingDoc,
    QueueDoc,
    SpecError,
    TeamDoc,
    parse_job,
    validate_document,
)
from hyperion.api.views import job_view, node_view, queue_view
from hyperion.core import Explanation, budget, idle, lifecycle
from hyperion.core.explain import waits_for_capacity
from hyperion.core.federation.burst import burst_reason
from hyperion.model import Job, NodeMetrics, Phase, Placement, Team, Verdict
from hyperion.model.queue import DEFAULT_QUEUE, unlimited
from hyperion.ports.clock import Clock
from hyperion.store.objects import ClusterState

_ID_ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_TEAM = "default"
EXPLAIN_AHEAD_SHOWN = 20
METRICS_HISTORY = 720  # samples kept per node (an hour at 5 s)


class Dispatcher(Protocol):
    """Sends commands to agents (implemented by ``api.agents.AgentHub``)."""

    def stop(self, job: Job, placements: Iterable[Placement], reason: str) -> None: ...


class ControlService:
    def __init__(self, state: ClusterState, clock: Clock, logs: LogStore, admin_token: str,
                 federation: FederationConfig | None = None) -> None:
        self.state = state
        self.clock = clock
        self.logs = logs
        self._admin_digest = auth.digest(admin_token)
        self._team_by_digest = {t.token_sha256: t.name for t in state.teams.values()}
        self.verdicts: dict[str, Verdict] = {}
        self.metrics: dict[str, deque[NodeMetrics]] = {}
        self.events = EventLog(state, clock)
        self.accountant = Accountant(state, clock, self.metrics, self.events)
        self.federation = Federation(state, federation)  # kind: Cluster members; none: no federation
        self.nodepools = NodePools(state)  # kind: NodePool and their instances (runtime.autoscaler_loop acts on them)
        # job -> (attempt, rank) -> since when its GPUs read idle (core.idle)
        self.idle_since: dict[str, dict[tuple[int, int], float | None]] = {}
        self.dispatcher: Dispatcher | None = None
        self.wake: Callable[[], None] = lambda: None
        self.explainer: Callable[[str], Explanation | None] = lambda job_id: None
        self.scheduler_stats: Callable[[], dict] = dict  # set by the scheduler loop: cycles, placed, evicted
        self.instruments = Instruments(self)  # /metrics: the loops report to it, it reads the rest at scrape time
        self.pending_order: Callable[[], Sequence[str]] = tuple  # set by the scheduler loop: the last cycles' order
        # set by the scheduler loop: team -> (USD, GPU-hours) its running jobs are still expected to use
        self.commitments: Callable[[float, dict], dict[str, tuple[float, float]]] = lambda now, prices: {}
        self.explain_many: Callable[[Iterable[str]], dict[str, Explanation]] = lambda job_ids: {}  # ditto, on one snapshot
        self.burst_notes: dict[str, str] = {}  # job -> why it waits in its member's queue although it is due to burst

    # ---- identity ------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> auth.Principal:
        if not token:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>' (the admin token is in <data dir>/admin.token)")
        d = auth.digest(token)
        if auth.same(d, self._admin_digest):
            return auth.ADMIN
        team = self._team_by_digest.get(d)
        if team is None:
            raise Unauthorized("invalid token")
        return auth.Principal(team)

    # ---- jobs ----------------------------------------------------------------------------
    @staticmethod
    def _job_doc(who: auth.Principal, payload: object) -> tuple[JobDoc, str]:
        """A request body as a job document, and its team."""
        if not isinstance(payload, dict):
            raise Invalid("the request body must be a JSON object describing one job",
                          [{"loc": [], "line": None, "msg": "expected an object"}])
        try:
            doc = parse_job(payload)
        except SpecError as err:
            raise Invalid(f"invalid job: {len(err.errors)} error(s)", err.to_detail()) from None
        return doc, doc.team or who.team or DEFAULT_TEAM  # the admin's jobs without a team go to "default"

    def submit(self, who: auth.Principal, payload: object) -> dict:
        doc, team = self._job_doc(who, payload)
        if not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot submit jobs for team {team!r}")
        if doc.queue != DEFAULT_QUEUE and doc.queue not in self.state.queues:
            message = f"queue {doc.queue!r} does not exist; create it with 'hyperion apply -f queues.yaml' (kind: Queue)"
            known = ", ".join(sorted({DEFAULT_QUEUE, *self.state.queues}))
            raise Invalid(message, [{"loc": ["queue"], "line": None, "msg": f"no such queue; known queues: {known}"}])
        spec = doc.to_spec(team)
        now = self.clock.now()
        self._check_budget(spec, now)
        routed = self._route(spec, now) if self.federation.members else None
        for _ in range(8):
            job = Job(id=self._new_id(spec.name), spec=spec, submitted_at=now, routed=routed)
            if self.state.create_job(job):
                self.wake()
                view = job_view(job)
                if routed is not None:
                    view["federation"] = routing_view(routed)
                return view
        raise RuntimeError("could not allocate a unique job id")

    def _check_budget(self, spec, now: float) -> None:
        """``action: reject`` budgets refuse, at submission, a job whose expected cost does not fit
        what is left, as the scheduler's gate counts it (``hold`` budgets leave it to the gate,
        which keeps it pending)."""
        views = [v for v in self.accountant.views(now) if v.team == spec.team and v.action == "reject"]
        if not views:
            return
        estimate = self.state.estimate_for(spec)
        r = spec.resources
        prices = self.accountant.prices()
        why = budget.check(spec.team, r.gpus * spec.replicas, r.cpus_milli * spec.replicas, spec.gpu_type, estimate,
                           views, prices, committed=self.commitments(now, prices).get(spec.team, (0.0, 0.0)))
        if why is not None:
            raise Invalid(f"job rejected: {why}", [{"loc": ["resources"], "line": None, "msg": why}])

    # ---- federation (api.federation; docs/federation.md) --------------------------------
    def _decide(self, spec, now: float, job: Job | None = None, members: Collection[str] | None = None,
                burst: bool = False):
        estimate = self.state.estimate_for(spec)
        # ``action: reject`` budgets bound the expected cost (a ``hold`` budget's gate keeps the job pending instead);
        # a burst must fit every budget of the team, after what its running jobs are still expected to cost
        lefts = [v.usd - v.spent_usd for v in self.accountant.views(now)
                 if v.team == spec.team and v.usd is not None and (burst or v.action == "reject")]
        if burst and lefts:
            committed = self.commitments(now, self.accountant.prices()).get(spec.team, (0.0, 0.0))[0]
            lefts = [left - committed for left in lefts]
        team = self.state.teams.get(spec.team)
        return self.federation.decide(spec, job.id if job else "new", now, estimate, min(lefts) if lefts else None,
                                      team.placement_weights if team else (), job.submitted_at if job else None,
                                      None if burst else job.routed.cost_cap_usd if job and job.routed else None,
                                      members=members, queue=not burst)

    def redecide_due(self) -> int:
        """Decide again each federated job whose delay has ended, on the members and forecast of now
        (the simulator does the same): it starts where it was routed, goes to another member, or
        waits again within what its slack reserve allows. One that no member can take now keeps
        its member and may start. Called by the scheduler loop before each cycle; returns how many
        jobs were decided again."""
        if not self.federation.members:
            return 0
        now = self.clock.now()
        due = [job for job_id in self.state.pending if (job := self.state.jobs[job_id]).routed is not None
               and job.routed.start_after is not None and job.routed.start_after <= now]
        changed = []
        for job in due:
            _, routed = self._decide(job.spec, now, job)
            if routed is None:
                routed = replace(job.routed, start_after=None, start_delay_s=0.0, decided_at=now)
            changed.append(replace(job, routed=routed))
        self.state.update_jobs(changed)
        return len(changed)

    # ---- bursting (docs/federation.md, Bursting) --------------------------------------------
    def burst_candidates(self) -> list[str]:
        """Pending jobs waiting for GPUs in the queue of a member with ``burst_after`` (not
        delayed, not burst already): the scheduler loop asks ``burst`` about them with their
        estimated starts."""
        if not self.federation.members:
            return []
        now = self.clock.now()
        out = []
        for job_id in self.state.pending:
            job = self.state.jobs[job_id]
            r = job.routed
            if r is None or r.burst_from is not None or (r.start_after is not None and r.start_after > now):
                continue
            member = self.federation.members.get(r.cluster)
            if member is None or member.burst_after is None:
                continue
            if waits_for_capacity(self.verdicts.get(job_id), r, now):
                out.append(job_id)
        for gone in set(self.burst_notes) - set(out):
            del self.burst_notes[gone]
        return out

    def burst(self, explained: Mapping[str, Explanation]) -> int:
        """Burst each candidate due to burst (``core.federation.burst.burst_reason``: its expected
        wait in its member's queue is longer than the member's ``burst_after``, or unknown once it
        has waited that long there, or would cost a deadline it can still meet) to the best other
        member that can run it now: one with free GPUs (no other queue) and nodes
        or a node pool that joins it, chosen by the federation's scoring within what the team's
        budgets have left after its running jobs. A job that nowhere else can take keeps waiting,
        and ``burst_notes`` (shown by explain) says why. Returns how many jobs were burst."""
        now = self.clock.now()
        running = self._capacity_members()
        burst = 0
        for job_id, e in sorted(explained.items()):
            job = self.state.jobs.get(job_id)
            if job is None or job.phase is not Phase.PENDING or job.routed is None:
                continue
            r = job.routed
            after = self.federation.members[r.cluster].burst_after
            wait = None if e.estimated_start is None else max(0.0, e.estimated_start - now)
            why = None if after is None else burst_reason(wait, now - r.decided_at, after, now, job.spec.deadline,
                                                          self.state.estimate_for(job.spec))
            if why is None:
                self.burst_notes.pop(job_id, None)
                continue
            others = (running & self.federation.members.keys()) - {r.cluster}
            decision, routed = self._decide(job.spec, now, job, members=others, burst=True)
            if routed is None:
                refusal = ("; ".join(f"{c}: {x}" for c, x in sorted(decision.rejected.items())) if others
                           else "none has a node or a node pool that joins it")
                note = (f"due to burst from {r.cluster} ({why}), but no other member can run it now: "
                        f"{refusal or decision.reason}")
                if job_id not in self.burst_notes:  # told once per stay (the note's figures move each check)
                    self.events.emit("burst-refused", f"job {job_id}: {note}", job=job_id, team=job.team)
                self.burst_notes[job_id] = note
                continue
            routed = replace(routed, burst_from=r.cluster, burst_wait_s=wait)
            self.state.update_jobs([replace(job, routed=routed)])
            self.burst_notes.pop(job_id, None)
            self.verdicts.pop(job_id, None)
            cost = f", expected ${routed.expected_usd:,.2f}" if routed.expected_usd is not None else ""
            self.events.emit("burst", f"job {job_id}: waiting on {r.cluster}: {why}; burst to {routed.cluster} "
                                      f"({routed.gpu_type or 'CPU'} {'spot' if routed.spot else 'on demand'}{cost})",
                             job=job_id, team=job.team)
            burst += 1
        if burst:
            self.wake()
        return burst

    def _capacity_members(self) -> set[str]:
        """Members a job can run on soon: with a ready node, or a node pool whose nodes join them."""
        return set(self.federation.nodes()) | {p.cluster for p in self.nodepools.pools.values() if p.cluster}

    def _route(self, spec, now: float):
        """The federation's decision for a job being submitted; a job no member can take is refused,
        with every member's reason (nothing is stored)."""
        decision, routed = self._decide(spec, now)
        if routed is None:
            why = "; ".join(f"{c}: {r}" for c, r in sorted(decision.rejected.items())) or decision.reason
            raise Invalid(f"job rejected: no federation member can take it ({why})",
                          [{"loc": ["placement"], "line": None, "msg": f"member {c}: {r}"}
                           for c, r in sorted(decision.rejected.items())])
        return routed

    def plan(self, who: auth.Principal, payload: object) -> dict:
        """Where the federation would send a job now, without submitting it (a dry run)."""
        doc, team = self._job_doc(who, payload)
        if not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot plan jobs for team {team!r}")
        if not self.federation.members:
            return {"members": 0, "decision": None, "profile": self.federation.profile.name,
                    "reason": "no federation members: apply kind: Cluster documents first"}
        decision, routed = self._decide(doc.to_spec(team), self.clock.now())
        out = routing_view(routed) if routed is not None else decision_view(decision)
        return {"members": len(self.federation.members), "profile": self.federation.profile.name, "decision": out}

    def list_clusters(self, who: auth.Principal) -> dict:
        """Federation members with capacity, GPUs committed, prices and current carbon intensity."""
        now = self.clock.now()
        committed = self.federation.committed()
        nodes = self.federation.nodes()
        return {"profile": self.federation.profile.name,
                "items": [self.federation.member_view(doc, now, committed.get(name, {}), nodes.get(name, 0))
                          for name, doc in sorted(self.federation.members.items())]}

    def delete_cluster(self, who: auth.Principal, name: str) -> dict:
        """Remove a member (admin). Jobs already routed to it keep their routing."""
        return self._delete(who, "Cluster", "federation member", name, self.federation.delete, self.federation.members)

    def _delete(self, who: auth.Principal, kind: str, what: str, name: str, delete, known) -> dict:
        """Remove the declarative object ``name`` of ``kind`` (admin only) with ``delete(name) ->
        bool``; a name that is not there is a 404 listing the ``known`` ones."""
        if not who.is_admin:
            raise Forbidden(f"only the admin token may delete a {what}")
        if not delete(name):
            raise NotFound(f"no {what} {name!r}; known: {', '.join(sorted(known)) or 'none'}")
        self.wake()
        return {"kind": kind, "name": name, "action": "deleted"}

    def _new_id(self, name: str) -> str:
        return f"{name[:24].rstrip('-._')}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(6))}"

    def _job(self, who: auth.Principal, job_id: str) -> Job:
        job = self.state.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}; 'hyperion queue --all' lists jobs")
        if not who.may_see(job.team):
            raise Forbidden(f"job {job_id!r} belongs to another team")
        return job

    def get_job(self, who: auth.Principal, job_id: str) -> dict:
        job = self._job(who, job_id)
        return self._view(job)

    def list_jobs(self, who: auth.Principal, phases: set[str] | None = None, team: str | None = None,
                  limit: int = 1000, offset: int = 0) -> dict:
        if phases:
            known = {p.value for p in Phase}
            bad = sorted(phases - known)
            if bad:
                raise BadRequest(f"unknown phase(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        if team is not None and not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot list team {team!r}")
        if limit < 1 or limit > 10000 or offset < 0:
            raise BadRequest("limit must be 1..10000 and offset >= 0")
        want_team = team if team is not None else who.team
        items = [j for j in self.state.jobs.values()
                 if (want_team is None or j.team == want_team) and (not phases or j.phase.value in phases)]
        page = items[offset: offset + limit]
        return {"items": [self._view(j) for j in page], "total": len(items)}

    def _view(self, job: Job) -> dict:
        """A job as the API shows it: its verdict's reasons while pending, what it used so far."""
        view = job_view(job, self.verdicts.get(job.id))
        used = self.accountant.job_usage(job.id)
        view["usage"] = usage_dict(used) if used is not None else None
        view["federation"] = routing_view(job.routed) if job.routed is not None else None
        return view

    def cancel_job(self, who: auth.Principal, job_id: str) -> dict:
        job = self._job(who, job_id)
        new, stops = lifecycle.cancel(job, self.clock.now())
        if new is not job:
            self.state.update_jobs([new])
            if stops and self.dispatcher is not None:
                self.dispatcher.stop(new, stops, "cancelled")
            self.verdicts.pop(job_id, None)
            self.wake()
        return job_view(new)

    def explain_job(self, who: auth.Principal, job_id: str) -> dict:
        """Why a job is where it is; for a pending job, its place in the queue, who is ahead (jobs
        of other teams shown without their ids), the reasons, and an estimated start."""
        job = self._job(who, job_id)
        out = {"id": job.id, "name": job.spec.name, "team": job.team, "phase": job.phase.value, "reason": job.reason}
        if job.routed is not None:
            out["federation"] = routing_view(job.routed)
        if job.phase is not Phase.PENDING:
            return out
        e = self.explainer(job_id)
        if e is None:
            return {**out, "reason": "not yet considered by the scheduler"}
        ahead = [{"id": j.id if who.may_see(j.team) else None, "team": j.team, "priority": j.priority.label,
                  "gpus": j.per_replica.gpus * j.replicas} for j in e.ahead[:EXPLAIN_AHEAD_SHOWN]]
        verdict = e.verdict
        return {**out, "position": e.position, "pending": e.pending, "ahead_total": len(e.ahead), "ahead": ahead,
                "queue": e.queue, "queue_position": e.queue_position, "queue_pending": e.queue_pending,
                "verdict": verdict.code.value if verdict else None,
                "reasons": [_attributed(verdict.plugin, r) for r in verdict.reasons] if verdict else [],
                "estimated_start": e.estimated_start, "estimate_basis": e.estimate_basis, "burst": self._burst_view(job)}

    def _burst_view(self, job: Job) -> dict | None:
        """For a job in a queueing member's queue: when it would burst, and why it has not."""
        r = job.routed
        member = self.federation.members.get(r.cluster) if r is not None and r.burst_from is None else None
        if member is None or member.burst_after is None:
            return None
        return {"member": member.name, "after_s": member.burst_after, "note": self.burst_notes.get(job.id)}

    def read_logs(self, who: auth.Principal, job_id: str, rank: int, offset: int = 0) -> tuple[bytes, bool]:
        """A rank's log from ``offset``, and whether it is complete: the job has ended and no task
        of it is still running (its last bytes are in, since agents ship them before the exit)."""
        job = self._job(who, job_id)
        if rank < 0 or rank >= job.spec.replicas:
            raise BadRequest(f"job {job_id} has ranks 0..{job.spec.replicas - 1}, not {rank}")
        if offset < 0:
            raise BadRequest("offset must be >= 0")
        done = job.phase.terminal and not self.state.node_tasks_of(job_id)
        return self.logs.read(job_id, rank, offset), done

    # ---- nodes ---------------------------------------------------------------------------
    def list_nodes(self, who: auth.Principal) -> dict:
        items = []
        for node in self.state.nodes.values():
            used, gpus = self.state.allocated(node.id)
            history = self.metrics.get(node.id)
            items.append(node_view(node, used, gpus, len(self.state.node_tasks.get(node.id, {})),
                                   history[-1] if history else None))
        return {"items": items}

    def record_metrics(self, m: NodeMetrics) -> None:
        history = self.metrics.get(m.node_id)
        if history is None:
            history = self.metrics[m.node_id] = deque(maxlen=METRICS_HISTORY)
        history.append(m)
        self._follow_idle(m)

    # ---- idle GPU reclaim (core.idle) ----------------------------------------------------
    def _idle_policy(self, job: Job) -> idle.IdlePolicy | None:
        team = self.state.teams.get(job.team)
        return idle.policy_for(job.spec.idle_gpu_utilization, job.spec.idle_window_s,
                               team.idle_gpu_utilization if team else None, team.idle_window_s if team else None)

    def _follow_idle(self, m: NodeMetrics) -> None:
        """Follow, per rank of each running job with an idle policy, since when its GPUs read idle."""
        tasks = self.state.node_tasks.get(m.node_id)
        if not tasks:
            return
        utilization = {g.index: g.utilization_percent for g in m.gpus}
        now = self.clock.now()
        for (job_id, rank), p in tasks.items():
            job = self.state.jobs[job_id]
            if job.phase is not Phase.RUNNING:
                continue
            policy = self._idle_policy(job)
            if policy is None:
                continue
            ranks = self.idle_since.setdefault(job_id, {})
            key = (job.attempt, rank)
            ranks[key] = idle.follow(ranks.get(key), idle.is_low(p.gpu_indices, utilization, policy), now)

    def reclaim_idle(self) -> list[str]:
        """Stop, with a checkpoint request, the running jobs whose every rank's GPUs stayed idle for
        their policy's window; an ``idle-reclaimed`` event says so. Returns their ids."""
        now = self.clock.now()
        done = []
        for job_id, ranks in list(self.idle_since.items()):
            job = self.state.jobs.get(job_id)
            policy = self._idle_policy(job) if job is not None else None
            if job is None or job.phase is not Phase.RUNNING or policy is None:
                del self.idle_since[job_id]
                continue
            live = {(job.attempt, p.rank) for p in lifecycle.live(job)}
            if not live or set(ranks) != live or any(since is None for since in ranks.values()):
                continue
            since = max(ranks.values())
            if not idle.due(since, policy, now):
                continue
            why = idle.reason(policy, since, now)
            new, stops = lifecycle.cancel(job, now, why)
            self.state.update_jobs([new])
            if stops and self.dispatcher is not None:
                self.dispatcher.stop(new, stops, why)
            del self.idle_since[job_id]
            self.events.emit("idle-reclaimed", f"job {job_id} {why}", job=job_id, team=job.team)
            done.append(job_id)
        if done:
            self.wake()
        return done

    # ---- node pools (the autoscaler; docs/autoscaling.md) ----------------------------------
    def list_nodepools(self, who: auth.Principal) -> dict:
        """Every node pool with its instances and their lifecycle states."""
        return {"items": self.nodepools.views()}

    def delete_nodepool(self, who: auth.Principal, name: str) -> dict:
        """Remove a pool (admin); the autoscaler terminates the instances it still has."""
        return self._delete(who, "NodePool", "node pool", name, self.nodepools.delete_pool, self.nodepools.pools)

    # ---- queues --------------------------------------------------------------------------
    def list_queues(self, who: auth.Principal) -> dict:
        """Every queue (``default`` always) with its definition, usage and number of pending jobs.
        Any principal may list them: definitions and totals name no job of another team."""
        usage = {q: {k: v for k, v in held.items() if v} for q, held in self.state.queue_usage.items()}
        usage = {q: held for q, held in usage.items() if held}
        pending = Counter(self.state.jobs[job_id].spec.queue for job_id in self.state.pending)
        # jobs submitted before their queue had to exist still show, as queues without a quota
        names = sorted({DEFAULT_QUEUE, *self.state.queues, *usage, *pending})
        items = [queue_view(self.state.queues.get(n) or unlimited(n), dict(usage.get(n, {})), pending[n],
                            defined=n in self.state.queues) for n in names]
        return {"items": items}

    # ---- cost ----------------------------------------------------------------------------
    def cost(self, who: auth.Principal, team: str | None = None, start: float | None = None, end: float | None = None,
             by: str = "team") -> dict:
        """Cost, GPU-hours, energy and carbon accrued in [start, end) (all time when not given),
        per team (``by="team"``, 5-minute resolution) or per job (``by="job"``, whole UTC days).
        A team's token sees its own team only."""
        if team is not None and not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot see the cost of team {team!r}")
        if by not in ("team", "job"):
            raise BadRequest(f"by must be 'team' or 'job', not {by!r}")
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        if lo >= hi:
            raise BadRequest("'from' must be before 'to'")
        want = team if team is not None else who.team
        self.accountant.tick()  # running jobs accrued up to now
        if by == "team":
            rows = [{"team": t, **usage_dict(u)} for t, u in sorted(self.accountant.usage_between(lo, hi, want).items())]
        else:
            rows = []
            for job_id, u in sorted(self.accountant.jobs_between(lo, hi).items()):
                job = self.state.jobs.get(job_id)
                owner = job.team if job is not None else None
                if owner is None or (want is not None and owner != want):
                    continue
                rows.append({"job": job_id, "name": job.spec.name, "team": owner, **usage_dict(u)})
        total = {k: sum(r[k] for r in rows) for k in ("cost_usd", "gpu_hours", "energy_kwh", "carbon_kg")}
        return {"from": start, "to": end, "by": by, "items": rows, "total": total}

    def budgets(self, who: auth.Principal) -> dict:
        """Each budget (a team sees its own) with spend, limit and ratio in the current period."""
        rows = [r for r in self.accountant.budget_status() if who.may_see(r["team"])]
        return {"items": rows}

    # ---- declarative objects -------------------------------------------------------------
    def apply(self, who: auth.Principal, documents: object) -> dict:
        if not who.is_admin:
            raise Forbidden("only the admin token may apply objects")
        if not isinstance(documents, list) or not documents:
            raise Invalid("'documents' must be a non-empty list", [{"loc": ["documents"], "line": None, "msg": "expected a list"}])
        docs, errors = [], []
        for i, raw in enumerate(documents):
            try:
                docs.append(validate_document(raw, source=f"documents[{i}]"))
            except SpecError as err:
                errors.extend({**d, "loc": ["documents", i, *d["loc"]]} for d in err.to_detail())
        if errors:
            raise Invalid(f"invalid documents: {len(errors)} error(s)", errors)
        unsupported = sorted({d.kind for d in docs} - set(self._appliers))
        if unsupported:
            raise Invalid(f"kind {', '.join(unsupported)} cannot be applied; submit jobs with 'hyperion submit'",
                          [{"loc": ["documents"], "line": None, "msg": f"applicable kinds: {', '.join(self._appliers)}"}])
        # every document was validated first: a bad one changes nothing
        return {"results": [self._appliers[d.kind](self, d) for d in docs]}

    def _apply_team(self, doc: TeamDoc) -> dict:
        token = doc.token or auth.new_token()
        d = auth.digest(token)
        old = self.state.teams.get(doc.name)
        idle = (doc.idle_policy.gpu_utilization, doc.idle_policy.window) if doc.idle_policy else (None, None)
        weights = doc.placement_weights.pairs() if doc.placement_weights else ()
        if old is not None and (doc.token is None or old.token_sha256 == d) \
                and (old.idle_gpu_utilization, old.idle_window_s) == idle and old.placement_weights == weights:
            return {"kind": "Team", "name": doc.name, "action": "unchanged"}
        if old is not None and doc.token is None:
            d = old.token_sha256  # a document without a token keeps the team's token
        other = self._team_by_digest.get(d)
        if other is not None and other != doc.name:
            raise Invalid(f"team {doc.name!r}: this token is already used by another team; choose another",
                          [{"loc": ["token"], "line": None, "msg": "token already in use"}])
        team = Team(doc.name, d, created_at=old.created_at if old else self.clock.now(),
                    idle_gpu_utilization=idle[0], idle_window_s=idle[1], placement_weights=weights)
        self.state.put_team(team)
        if old is not None:
            self._team_by_digest.pop(old.token_sha256, None)
        self._team_by_digest[d] = doc.name
        result = {"kind": "Team", "name": doc.name, "action": "configured" if old else "created"}
        if doc.token is None and old is None:
            result["token"] = token
        return result

    def _apply_budget(self, doc: BudgetDoc) -> dict:
        action = self.accountant.set_budget(doc.to_spec())
        if action != "unchanged":
            self.wake()  # held jobs may fit now
        return {"kind": "Budget", "name": doc.name, "action": action}

    def _apply_pricing(self, doc: PricingDoc) -> dict:
        changed = self.accountant.set_rates(doc.to_rates())
        if changed:
            self.wake()
        return {"kind": "Pricing", "name": doc.name, "action": "configured" if changed else "unchanged"}

    def _apply_queue(self, doc: QueueDoc) -> dict:
        spec = doc.to_spec()
        old = self.state.queues.get(doc.name)
        if old == spec:
            return {"kind": "Queue", "name": doc.name, "action": "unchanged"}
        self.state.put_queue(spec)
        self.wake()  # quotas changed: the scheduler looks again
        return {"kind": "Queue", "name": doc.name, "action": "configured" if old else "created"}

    def _apply_cluster(self, doc: ClusterDoc) -> dict:
        action = self.federation.put(doc)
        if action != "unchanged":
            self.wake()
        return {"kind": "Cluster", "name": doc.name, "action": action}

    def _apply_nodepool(self, doc: NodePoolDoc) -> dict:
        action = self.nodepools.put_pool(doc.to_spec())
        if action != "unchanged":
            self.wake()
        return {"kind": "NodePool", "name": doc.name, "action": action}

    _appliers = {"Team": _apply_team, "Queue": _apply_queue, "Budget": _apply_budget, "Pricing": _apply_pricing,
                 "Cluster": _apply_cluster, "NodePool": _apply_nodepool}


def usage_dict(u) -> dict:
    """A ``model.cost.Usage`` in the units people read: USD, GPU-hours, kWh, kg CO2e."""
    return {"cost_usd": u.cost_usd, "gpu_hours": u.gpu_s / 3600.0, "energy_kwh": u.energy_kwh, "carbon_kg": u.carbon_g / 1000.0}


def _attributed(default: str, reason: str) -> dict:
    """A verdict reason with the plugin that gave it: reasons of the quota, preemption, backfill
    and federation plugins start with their name."""
    named = ("quota", "preemption", "backfill", "federation")
    head, sep, rest = reason.partition(": ")
    if sep and head in named:
        return {"plugin": head, "reason": rest}
    return {"plugin": default if default not in named else "node-fit", "reason": reason}
