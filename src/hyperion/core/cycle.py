"""One scheduling cycle: ``schedule(snapshot, profile) -> Plan``.

The cycle, in phases (as Kueue's ``schedule()``, on a working copy, never on the snapshot):
1. *order*: pending jobs are grouped by (priority class, queue); each group is sorted by the
   ``sort_key`` plugins then submission time. Higher classes go first; within a class the next
   job comes from the queue with the lowest ``queue_key`` (fair share), asked again after every
   job, since placing a job changes its queue's share.
2. *place*: each replica goes to the best node that passes every filter, on nodes of a GPU type
   the queue's quota admits (``admit`` plugins), minus what holds promise to other jobs. A job
   of ``replicas`` ranks needs ``min_available`` of them placed together (a gang), else its
   tentative placements are rolled back. A gang with no GPU type is kept on one type.
3. *preempt*: a job that does not fit may have victims chosen (``preempt`` plugins); it then
   waits for them to stop: the plan lists evictions and the job stays pending this cycle. On the
   fast path (a job of ``handover_class`` or higher) it is placed on its victims' resources at
   once instead, and the evictions are marked ``handover`` (the agent freezes the victims, starts
   the job, then lets the victims checkpoint and stop).
4. *reserve*: the first job that does not fit for want of capacity (not quota) gets a hold
   (``reserve`` plugins, EASY backfill): later jobs may use the held resources only if their
   runtime estimate ends before the reserved start.
5. every job left pending gets a typed verdict with its reasons (``hyperion explain``).

Everything is deterministic for a snapshot.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass

from hyperion.core.capacity import Capacity, Slot
from hyperion.core.framework import CLASS_FLOOR, OPTIONS, Profile
from hyperion.core.ledger import Ledger, usage_of
from hyperion.model import (
    Assign,
    Evict,
    Hold,
    JobView,
    Placement,
    Plan,
    Resources,
    RunningView,
    Snapshot,
    Verdict,
    VerdictCode,
)

# At most this many feasible nodes are scored per replica (kube-scheduler's
# percentageOfNodesToScore idea): scoring every node of a 10,000-node cluster for every job
# would cost more than the placement is worth. Candidates come best fit first.
SCORE_SAMPLE = 64

Placed = list[tuple[int, Slot, tuple[int, ...]]]  # (rank, slot, GPU indices) of one tentative placement


@dataclass(frozen=True, slots=True)
class Preemption:
    victims: tuple[RunningView, ...]  # to evict now
    waiting_on: tuple[RunningView, ...] = ()  # victims chosen by earlier cycles, still stopping
    reason: str = ""
    at: tuple[int, ...] = ()  # node positions of the preemptor's replicas once the victims are gone


class _Hold:
    __slots__ = ("job_id", "until", "at", "nomination")

    def __init__(self, job_id: str, until: float | None, at: dict[int, Resources], nomination: bool) -> None:
        self.job_id, self.until, self.at, self.nomination = job_id, until, at, nomination


def order_key(snapshot: Snapshot, profile: Profile):
    """The key that orders jobs inside a queue (lower first): the ``sort_key`` plugins', then
    submission time and id. Between queues with equal ``queue_key`` it orders their heads."""
    keys = [s.sort_key for s in profile.serving("sort_key")]
    if len(keys) == 1:  # the common case, without a generator per job (full cycles key every job)
        (first,) = keys
        return lambda job: (first(job, snapshot), job.submitted_at, job.id)
    if len(keys) == 2:
        first, second = keys
        return lambda job: (first(job, snapshot), second(job, snapshot), job.submitted_at, job.id)
    return lambda job: (*(k(job, snapshot) for k in keys), job.submitted_at, job.id)


def within_queue_order(snapshot: Snapshot, profile: Profile, jobs) -> list[JobView]:
    return sorted(jobs, key=order_key(snapshot, profile))


class Cycle:
    def __init__(self, snapshot: Snapshot, profile: Profile) -> None:
        self.snapshot = snapshot
        self.profile = profile
        self.opt = {name: profile.option(name) for name in OPTIONS}
        self.cap = Capacity(snapshot)
        usage = snapshot.usage if snapshot.usage is not None else usage_of(snapshot.running)
        lend = bool(self.opt["lend_while_pending"])  # if not, queues with pending jobs lend nothing
        self.ledger = Ledger(snapshot.queues, usage, () if lend else {j.queue for j in snapshot.pending})
        self.filters = profile.serving("filter")
        self.scorers = profile.serving("score")
        self.admitters = profile.serving("admit")
        self.assignments: list[Assign] = []
        self.verdicts: dict[str, Verdict] = {}
        self.evictions: list[Evict] = []
        self.order: list[str] = []
        self.placed_now: list[RunningView] = []  # jobs placed by this cycle, as if running
        self.claimed: set[str] = set()  # running jobs this cycle's preemptions count on
        # jobs on their way out (being stopped, or chosen as victims by this cycle): their quota
        # is already given back in the ledger; only their capacity is still held
        self.leaving: set[str] = set()
        self.new_holds: list[Hold] = []
        self._position: dict[str, int] | None = None
        self._hostable: dict[tuple, bool] = {}
        self._memo: dict[tuple, Verdict] = {}
        self._claims = 0
        self._qkeys: dict[tuple, tuple] = {}
        self.most_placed = 0  # replicas the last ``place`` managed on its best GPU type
        self.scratch: dict[str, object] = {}  # plugins' caches for the length of this cycle
        for v in snapshot.running:
            if v.preempting:
                self._leave(v)
        pending = {j.id for j in snapshot.pending}
        self.carried = tuple(h for h in snapshot.holds if h.job_id not in pending)
        for h in self.carried:  # a carried nomination keeps its preemptor's quota charged
            for queue, gpu_type, amount in h.quota:
                self.ledger.take(queue, amount, gpu_type)
        self.holds: list[_Hold] = []
        nominations: list[tuple[Hold, _Hold]] = []
        for h in self.carried:
            self.holds.append(kept := self._hold(h))
            if h.kind == "nomination":
                nominations.append((h, kept))
        # nominations of preemptors offered again: their room and quota stay theirs until their
        # turn (else a job ordered before them could take what their victims freed)
        self._nominated: dict[str, tuple[Hold, _Hold]] = {}
        for h in snapshot.holds:
            if h.kind == "nomination" and h.job_id in pending:
                for queue, gpu_type, amount in h.quota:
                    self.ledger.take(queue, amount, gpu_type)
                self.holds.append(kept := self._hold(h))
                self._nominated[h.job_id] = (h, kept)
                nominations.append((h, kept))
        if any(h.victims for h, _ in nominations):
            self._keep_what_victims_freed(nominations)

    # ---- positions, holds ---------------------------------------------------------------------
    def position(self, node_id: str) -> int | None:
        if self._position is None:
            self._position = {n.id: i for i, n in enumerate(self.snapshot.nodes)}
        return self._position.get(node_id)

    def _hold(self, h: Hold) -> _Hold:
        at: dict[int, Resources] = {}
        for node_id, amount in h.amounts:
            i = self.position(node_id)
            if i is not None:
                at[i] = at.get(i, Resources()) + amount
        return _Hold(h.job_id, h.until, at, h.kind == "nomination")

    def _keep_what_victims_freed(self, nominations: list[tuple[Hold, _Hold]]) -> None:
        """A carried nomination also holds what its victims freed once they stopped; victims still
        stopping are its own (no other preemptor counts on them)."""
        running = {v.id: v for v in self.snapshot.running}
        for h, kept in nominations:
            for vid, node_id, amount in h.victims:
                v = running.get(vid)
                if v is not None and any(n == node_id for n, _ in v.placements):
                    self.claimed.add(vid)
                    continue
                i = self.position(node_id)
                if i is not None:
                    kept.at[i] = kept.at.get(i, Resources()) + amount

    def add_hold(self, h: Hold) -> None:
        self.new_holds.append(h)
        self.holds.append(self._hold(h))

    def held_for(self, job: JobView, reservations: bool = True) -> tuple[dict[int, Resources] | None, tuple]:
        """What holds keep from ``job`` per node position, and a key naming those holds.
        Nominations always apply; reservations unless ``reservations`` is off (a preemption or a
        reservation being planned) or the job ends by the reserved time."""
        ends = None if job.runtime_estimate_s is None else self.snapshot.now + job.runtime_estimate_s
        applying = [h for h in self.holds if h.job_id != job.id and (h.nomination or reservations and (
            h.until is None or ends is None or ends > h.until))]
        if not applying:
            return None, ()
        if len(applying) == 1:
            return applying[0].at, (applying[0].job_id,)
        merged: dict[int, Resources] = {}
        for h in applying:
            for i, amount in h.at.items():
                merged[i] = merged.get(i, Resources()) + amount
        return merged, tuple(h.job_id for h in applying)

    # ---- placement -------------------------------------------------------------------------------
    def admit(self, job: JobView, gpu_type: str) -> str | None:
        for a in self.admitters:
            why = a.admit(job, job.per_replica, gpu_type, self)
            if why:
                return why
        return None

    def place(self, job: JobView, held: dict[int, Resources] | None,
              quota: bool = True) -> tuple[Placed, Counter[str], list[str]]:
        """Tentatively place the job's replicas (taking from capacity and the ledger); stops at the
        first replica that fits nowhere. Returns the placements, node reasons and quota reasons."""
        if job.gpu_type or job.replicas == 1:
            placed, reasons, quota_why = self._place_on(job, [job.gpu_type] if job.gpu_type else self.cap.types, held, quota)
            self.most_placed = len(placed)
            return placed, reasons, quota_why
        reasons = Counter()
        quota_why = []
        self.most_placed = 0
        for t in self.cap.types:  # a gang with no GPU type runs on one type
            placed, why, q = self._place_on(job, [t], held, quota)
            if len(placed) >= job.min_available:
                return placed, why, q
            self.most_placed = max(self.most_placed, len(placed))
            self.rollback(job, placed)
            reasons.update(why)
            quota_why.extend(q)
        return [], reasons, quota_why

    def _place_on(self, job: JobView, types: list[str], held: dict[int, Resources] | None,
                  quota: bool) -> tuple[Placed, Counter[str], list[str]]:
        r = job.per_replica
        placed: Placed = []
        reasons: Counter[str] = Counter()
        quota_why: list[str] = []
        snapshot, filters, scorers, weights = self.snapshot, self.filters, self.scorers, self.profile.weights
        first_allowed = types  # the GPU types quota lets its first replica use
        for rank in range(job.replicas):
            allowed = types
            if quota and self.admitters:
                allowed = []
                for t in types:
                    why = self.admit(job, t)
                    if why is None:
                        allowed.append(t)
                    elif rank == 0 or len(placed) < job.min_available:
                        quota_why.append(why)
                if rank == 0:
                    first_allowed = allowed
                if not allowed:
                    break
            best, best_score, feasible = None, None, 0
            for slot in self.cap.candidates(r.gpus, allowed):
                free = slot.free
                if held is not None:
                    h = held.get(slot.index)
                    if h is not None:
                        free = free - h
                if not r.fits_in(free):
                    if rank == 0:
                        reasons["insufficient " + ", ".join(r.shortfall(free))
                                + (" (held for another job)" if r.fits_in(slot.free) else "")] += 1
                    continue
                view = slot.view()
                why = next((w for f in filters if (w := f.filter(job, view, snapshot))), None)
                if why:
                    if rank == 0:
                        reasons[why] += 1
                    continue
                if not scorers:
                    best = slot
                    break
                score = sum(weights.get(sc.name, 1.0) * sc.score(job, view, snapshot) for sc in scorers)
                if best is None or score > best_score:
                    best, best_score = slot, score
                feasible += 1
                if feasible >= SCORE_SAMPLE:
                    break
            if best is None:
                break
            placed.append((rank, best, self.cap.take(best, r)))
            self.ledger.take(job.queue, r, best.node.gpu_type)
        if len(placed) < job.min_available and first_allowed and (rank == 0 or not placed):
            few = self.cap.too_few_gpus(r.gpus, first_allowed)
            if few:
                reasons["insufficient gpus"] += few
        return placed, reasons, quota_why

    def rollback(self, job: JobView, placed: Placed) -> None:
        for _, slot, gpus in placed:
            self.cap.give(slot, job.per_replica, gpus)
            self.ledger.release(job.queue, job.per_replica, slot.node.gpu_type)

    def try_fit(self, job: JobView, quota: bool = True) -> list[tuple[int, Resources]] | None:
        """Where the job would go now (node positions), or None; changes nothing. Respects the
        nominations of other preemptors, not reservations."""
        held = self.held_for(job, reservations=False)[0]
        placed, _, _ = self.place(job, held, quota)
        out = [(slot.index, job.per_replica) for _, slot, _ in placed] if len(placed) >= job.min_available else None
        self.rollback(job, placed)
        return out

    # ---- what-if on running jobs (preemption and reservations) ------------------------------
    def release(self, v: RunningView) -> list[int]:
        """Give a running job's resources back to the working copy; returns the positions freed."""
        return self._move(v, give=True)

    def retake(self, v: RunningView) -> None:
        """Undo ``release``."""
        self._move(v, give=False)

    def _move(self, v: RunningView, give: bool) -> list[int]:
        moved = []
        quota = v.id not in self.leaving  # a leaving job's quota is already back in the ledger
        for node_id, gpus in v.placements:
            i = self.position(node_id)
            if i is None:
                continue
            node = self.snapshot.nodes[i]
            if quota:
                self.ledger.take(v.queue, v.per_replica, node.gpu_type, -1 if give else 1)
            if not node.schedulable:
                continue  # what it frees on a cordoned node is of no use to anyone
            slot = self.cap.slot(i)
            if give:
                self.cap.give(slot, v.per_replica, gpus)
            else:
                self.cap.take(slot, v.per_replica, gpus)
            moved.append(i)
        return moved

    def _leave(self, v: RunningView) -> None:
        """``v`` is being stopped: its quota goes back now, its capacity when it has stopped."""
        if v.id in self.leaving:
            return
        for _ in v.placements:
            self.ledger.release(v.queue, v.per_replica, v.gpu_type)
        self.leaving.add(v.id)

    # ---- the cycle ------------------------------------------------------------------------------
    def ordered(self):
        """Pending jobs, each yielded once, in the order described in the module docstring."""
        groups: dict[tuple[int, str], list[JobView]] = {}
        for job in self.snapshot.pending:
            groups.setdefault((-int(job.priority), job.queue), []).append(job)
        keyers = self.profile.serving("queue_key")
        key = order_key(self.snapshot, self.profile)
        heap = []
        for (cls, queue), jobs in groups.items():
            keyed = sorted(((key(j), j) for j in jobs), key=lambda e: e[0], reverse=True)  # pop from the end
            groups[(cls, queue)] = keyed
            heap.append(self._entry(cls, queue, keyed[-1], keyers))
        heapq.heapify(heap)
        while heap:
            cls, _, _, queue = heapq.heappop(heap)
            keyed = groups[(cls, queue)]
            yield keyed.pop()[1]
            if keyed:
                heapq.heappush(heap, self._entry(cls, queue, keyed[-1], keyers))

    def _entry(self, cls: int, queue: str, head: tuple[tuple, JobView], keyers) -> tuple:
        # a queue's key depends on its usage and its head's shape: cached, since most heads do
        # not change the usage (they fail to fit) and most shapes repeat
        hkey, job = head
        if not keyers:
            return (cls, (), hkey, queue)
        ck = (queue, self.ledger.versions[queue], job.per_replica, job.gpu_type, job.min_available)
        qkey = self._qkeys.get(ck)
        if qkey is None:
            qkey = self._qkeys[ck] = tuple(k.queue_key(queue, job, self) for k in keyers)
        return (cls, qkey, hkey, queue)  # equal queue keys: the head that goes first in a queue

    def run(self) -> Plan:
        gates = self.profile.serving("gate")
        for job in self.ordered():
            self.order.append(job.id)
            if gates and self._gated(job, gates):
                continue
            self.consider(job)
        wakes = [w for p in self.profile.serving("wake_at") if (w := p.wake_at(self)) is not None] if self.verdicts else []
        return Plan(tuple(self.assignments), self.verdicts, tuple(self.evictions),
                    self.carried + tuple(self.new_holds), tuple(self.order), min(wakes) if wakes else None)

    def _gated(self, job: JobView, gates) -> bool:
        """A ``gate`` plugin keeps the job out of this cycle (a budget): UNRESOLVABLE, its reason."""
        for g in gates:
            why = g.gate(job, self)
            if why is not None:
                self.verdicts[job.id] = Verdict(VerdictCode.UNRESOLVABLE, (why,), g.name)
                return True
        return False

    def consider(self, job: JobView) -> None:
        nominated = self._nominated.pop(job.id, None)
        if nominated is not None:  # its turn: what was kept for it is its own to take
            for queue, gpu_type, amount in nominated[0].quota:
                self.ledger.release(queue, amount, gpu_type)
            self.holds.remove(nominated[1])
            self.claimed.difference_update(vid for vid, _, _ in nominated[0].victims)
        r = job.per_replica
        held, hold_key = self.held_for(job)
        key = (r, job.gpu_type, job.replicas, job.min_available, job.queue, job.priority, hold_key,
               self.cap.epoch(job.gpu_type), self._claims, self.ledger.stamp(job.queue), not self.holds)
        memo = self._memo.get(key)
        if memo is not None:
            self.verdicts[job.id] = memo
            return
        short = r.shortfall(self.cap.bound(job.gpu_type))
        if short:  # no node has room for one replica: skip the node scan, not the quota check
            types = [job.gpu_type] if job.gpu_type else self.cap.types
            admitted = [t for t in types if not self.admitters or self.admit(job, t) is None]
            quota_why = [why for t in types if t not in admitted and (why := self.admit(job, t))]
            same = sum(self.cap.count(t) for t in admitted)
            reasons: Counter[str] = Counter()
            if same:  # as the node scan would say: quota first, then the nodes of the types it allows
                reasons[f"insufficient {', '.join(short)}"] = same
            text = tuple(f"{count} node(s): {why}" for why, count in reasons.items())
            placed: Placed = []
        else:
            placed, reasons, quota_why = self.place(job, held)
            if len(placed) >= job.min_available:
                self._accept(job, placed)
                return
            if not placed:
                self.cap.tighten(job.gpu_type)  # the bound let this job through but no node had room: it was loose
            self.rollback(job, placed)
            text = tuple(f"{count} node(s): {why}" for why, count in reasons.most_common())
        verdict = self._verdict(job, text, quota_why, self.most_placed if not short else 0)
        if verdict.code is VerdictCode.UNSCHEDULABLE:
            verdict = self._preempt_or_reserve(job, verdict, quota_blocked=bool(quota_why) and not reasons)
            if verdict is None:
                return  # placed on its victims' resources (the fast path)
        self.verdicts[job.id] = verdict
        if not _from_plugins(reasons) and not verdict.plugin.startswith(("preemption", "backfill")):
            self._memo[key] = verdict

    def _accept(self, job: JobView, placed: Placed) -> None:
        self.assignments.append(Assign(job.id, tuple(Placement(rk, sl.node.id, g) for rk, sl, g in placed)))
        self.placed_now.append(RunningView(
            job.id, job.team, job.queue, job.priority, job.per_replica,
            tuple((sl.node.id, g) for _, sl, g in placed), placed[0][1].node.gpu_type, self.snapshot.now,
            job.runtime_estimate_s, job.priority_value, user=job.user))

    def _preempt_or_reserve(self, job: JobView, verdict: Verdict, quota_blocked: bool) -> Verdict | None:
        """The job's verdict after trying preemption, then a reservation; None: it was placed."""
        for p in self.profile.serving("preempt"):
            plan = p.preempt(job, self)
            if plan is None:
                continue
            self._claims += 1
            if self._hand_over(job, plan):
                return None
            self.claimed.update(v.id for v in plan.victims + plan.waiting_on)
            for v in plan.victims:
                self._leave(v)
            for i in plan.at:  # the preemptor's quota is reserved while its victims stop
                self.ledger.take(job.queue, job.per_replica, self.snapshot.nodes[i].gpu_type)
            self._nominate(job, plan)
            self.evictions.extend(Evict(v.id, job.id, plan.reason) for v in plan.victims)
            names = sorted(v.id for v in plan.victims + plan.waiting_on)
            return Verdict(VerdictCode.UNSCHEDULABLE, verdict.reasons + (
                f"preemption: waiting for {len(names)} job(s) to stop: {', '.join(names[:5])}"
                + (" ..." if len(names) > 5 else ""),), p.name)
        if quota_blocked or any(not h.nomination for h in self.holds):
            return verdict  # one reservation per cycle (EASY)
        for p in self.profile.serving("reserve"):
            hold = p.reserve(job, self)
            if hold is None:
                continue
            self.add_hold(hold)
            self._claims += 1
            when = "when running jobs without a runtime estimate end" if hold.until is None else f"at t={hold.until:.0f}"
            return Verdict(verdict.code, verdict.reasons + (
                f"backfill: resources on {len(hold.amounts)} node(s) reserved for this job; it starts {when} at the latest",), p.name)
        return verdict

    def _hand_over(self, job: JobView, plan: Preemption) -> bool:
        """The fast path: place ``job`` now on what its victims (and the jobs it waits on) hold."""
        cls = CLASS_FLOOR[self.opt["handover_class"]]
        if cls is None or job.priority < cls:
            return False
        freed = plan.victims + plan.waiting_on
        for v in freed:
            self.release(v)
        placed, _, _ = self.place(job, self.held_for(job)[0])
        if len(placed) < job.min_available:
            self.rollback(job, placed)
            for v in reversed(freed):
                self.retake(v)
            return False
        self._accept(job, placed)
        self.claimed.update(v.id for v in freed)
        self.leaving.update(v.id for v in freed)  # released in full: quota and capacity
        self.evictions.extend(Evict(v.id, job.id, plan.reason, handover=True) for v in freed)
        return True

    def _nominate(self, job: JobView, plan: Preemption) -> None:
        """Hold the free capacity the preemptor counts on besides what its victims free, and name
        what each victim frees there (kept for it too once the victim has stopped)."""
        need: dict[int, Resources] = {}
        for i in plan.at:
            need[i] = need.get(i, Resources()) + job.per_replica
        freed = []
        for v in plan.victims + plan.waiting_on:
            for node_id, _ in v.placements:
                i = self.position(node_id)
                if i in need:
                    need[i] = need[i] - v.per_replica
                    freed.append((v.id, node_id, v.per_replica))
        amounts = tuple((self.snapshot.nodes[i].id, Resources(max(0, h.gpus), max(0, h.cpus_milli), max(0, h.memory)))
                        for i, h in sorted(need.items()) if h.gpus > 0 or h.cpus_milli > 0 or h.memory > 0)
        quota = tuple((job.queue, self.snapshot.nodes[i].gpu_type, job.per_replica) for i in plan.at)
        if amounts or quota:
            self.add_hold(Hold(job.id, None, amounts, "nomination", quota, tuple(sorted(freed, key=lambda f: f[:2]))))

    # ---- verdicts ------------------------------------------------------------------------------
    def _verdict(self, job: JobView, reasons: tuple[str, ...], quota_why: list[str], placed: int) -> Verdict:
        text = list(reasons) + _other_types(self.cap, job) + _cordoned(self.cap)
        for why in dict.fromkeys(quota_why):
            text.append(why)
        if job.min_available > 1:
            text.append(f"gang of {job.min_available}: only {placed} replica(s) fit now")
        key = (job.per_replica, job.gpu_type)
        fits_empty = self._hostable.get(key)
        if fits_empty is None:
            fits_empty = self._hostable[key] = any(
                job.per_replica.fits_in(n.capacity) and (not job.gpu_type or n.gpu_type == job.gpu_type)
                for n in self.snapshot.nodes)
        never = None
        if quota_why:
            types = [job.gpu_type] if job.gpu_type else self.cap.types
            nevers = [self.ledger.never_fits(job.queue, job.per_replica, t, job.min_available) for t in types]
            if nevers and all(nevers):
                never = nevers[0]
                text.append(never)
        if not self.snapshot.nodes:
            text.append("no nodes registered")
        elif not fits_empty:
            text.append("no node is large enough for one replica even when empty")
        code = VerdictCode.UNSCHEDULABLE if fits_empty and never is None else VerdictCode.UNRESOLVABLE
        return Verdict(code, tuple(text), "quota" if quota_why and not reasons else "node-fit")


def schedule(snapshot: Snapshot, profile: Profile) -> Plan:
    return Cycle(snapshot, profile).run()


def _from_plugins(reasons: Counter[str]) -> bool:
    """Whether any reason came from a plugin filter. The framework's own reasons depend only on a
    job's shape and the capacity left; a plugin's may depend on more, so then the verdict is not
    reused for another job of the same shape."""
    return any(not (why.startswith("insufficient") or why.startswith("gpu type ")) for why in reasons)


def _other_types(cap: Capacity, job: JobView) -> list[str]:
    if not job.gpu_type:
        return []
    return [f"{n} node(s): gpu type {t or 'none'} is not {job.gpu_type}" for t, n in cap.other_types(job.gpu_type).items()]


def _cordoned(cap: Capacity) -> list[str]:
    return [f"{cap.unschedulable} node(s): node not ready or cordoned"] if cap.unschedulable else []
