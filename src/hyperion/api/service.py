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
from collections.abc import Callable, Iterable
from typing import Protocol

from hyperion.api import auth
from hyperion.api.accounting import Accountant
from hyperion.api.events import EventLog
from hyperion.api.errors import BadRequest, Forbidden, Invalid, NotFound, Unauthorized
from hyperion.api.logs import LogStore
from hyperion.api.spec import QueueDoc, SpecError, TeamDoc, parse_job, validate_document
from hyperion.api.views import job_view, node_view, queue_view
from hyperion.core import Explanation, lifecycle
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
    def __init__(self, state: ClusterState, clock: Clock, logs: LogStore, admin_token: str) -> None:
        self.state = state
        self.clock = clock
        self.logs = logs
        self._admin_digest = auth.digest(admin_token)
        self._team_by_digest = {t.token_sha256: t.name for t in state.teams.values()}
        self.verdicts: dict[str, Verdict] = {}
        self.metrics: dict[str, deque[NodeMetrics]] = {}
        self.events = EventLog(state, clock)
        self.accountant = Accountant(state, clock, self.metrics, self.events)
        self.dispatcher: Dispatcher | None = None
        self.wake: Callable[[], None] = lambda: None
        self.explainer: Callable[[str], Explanation | None] = lambda job_id: None
        self.scheduler_stats: Callable[[], dict] = dict  # set by the scheduler loop: cycles, placed, evicted

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
    def submit(self, who: auth.Principal, payload: object) -> dict:
        if not isinstance(payload, dict):
            raise Invalid("the request body must be a JSON object describing one job",
                          [{"loc": [], "line": None, "msg": "expected an object"}])
        try:
            doc = parse_job(payload)
        except SpecError as err:
            raise Invalid(f"invalid job: {len(err.errors)} error(s)", err.to_detail()) from None
        team = doc.team or who.team or DEFAULT_TEAM  # the admin's jobs without a team go to "default"
        if not who.may_see(team):
            raise Forbidden(f"your token belongs to team {who.team!r}; it cannot submit jobs for team {team!r}")
        if doc.queue != DEFAULT_QUEUE and doc.queue not in self.state.queues:
            message = f"queue {doc.queue!r} does not exist; create it with 'hyperion apply -f queues.yaml' (kind: Queue)"
            known = ", ".join(sorted({DEFAULT_QUEUE, *self.state.queues}))
            raise Invalid(message, [{"loc": ["queue"], "line": None, "msg": f"no such queue; known queues: {known}"}])
        spec = doc.to_spec(team)
        now = self.clock.now()
        for _ in range(8):
            job = Job(id=self._new_id(spec.name), spec=spec, submitted_at=now)
            if self.state.create_job(job):
                self.wake()
                return job_view(job)
        raise RuntimeError("could not allocate a unique job id")

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
        return job_view(job, self.verdicts.get(job.id))

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
        return {"items": [job_view(j, self.verdicts.get(j.id)) for j in page], "total": len(items)}

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
                "estimated_start": e.estimated_start, "estimate_basis": e.estimate_basis}

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
        if old is not None and (doc.token is None or old.token_sha256 == d):
            return {"kind": "Team", "name": doc.name, "action": "unchanged"}
        other = self._team_by_digest.get(d)
        if other is not None and other != doc.name:
            raise Invalid(f"team {doc.name!r}: this token is already used by another team; choose another",
                          [{"loc": ["token"], "line": None, "msg": "token already in use"}])
        team = Team(doc.name, d, created_at=old.created_at if old else self.clock.now())
        self.state.put_team(team)
        if old is not None:
            self._team_by_digest.pop(old.token_sha256, None)
        self._team_by_digest[d] = doc.name
        result = {"kind": "Team", "name": doc.name, "action": "configured" if old else "created"}
        if doc.token is None:
            result["token"] = token
        return result

    def _apply_queue(self, doc: QueueDoc) -> dict:
        spec = doc.to_spec()
        old = self.state.queues.get(doc.name)
        if old == spec:
            return {"kind": "Queue", "name": doc.name, "action": "unchanged"}
        self.state.put_queue(spec)
        self.wake()  # quotas changed: the scheduler looks again
        return {"kind": "Queue", "name": doc.name, "action": "configured" if old else "created"}

    _appliers = {"Team": _apply_team, "Queue": _apply_queue}


def _attributed(default: str, reason: str) -> dict:
    """A verdict reason with the plugin that gave it: reasons of the quota, preemption and
    backfill plugins start with their name."""
    head, sep, rest = reason.partition(": ")
    if sep and head in ("quota", "preemption", "backfill"):
        return {"plugin": head, "reason": rest}
    return {"plugin": default if default not in ("quota", "preemption", "backfill") else "node-fit", "reason": reason}
