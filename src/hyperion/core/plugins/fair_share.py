"""Fair share: which queue goes next, and which user inside a queue.

Across queues (``queue_key``): jobs that fit within their queue's nominal quota go before jobs
that would borrow; then the queue with the lowest weighted dominant share (``core.fairshare``:
current usage mixed with decayed history) goes next. Options (docs/adr/0003): ``share_basis``
``usage`` (all the queue holds) or ``borrowed`` (only what it holds above nominal quota);
``share_order`` ``current`` or ``after-admission`` (the share once the head job is admitted).

Inside a queue (``sort_key``, after integer priority): the user with the fewer decayed past
GPU-seconds in that queue goes first (then fewer CPU-seconds).
"""

from __future__ import annotations

from hyperion.core.fairshare import dominant_share
from hyperion.core.framework import plugin
from hyperion.model import JobView, Snapshot
from hyperion.model.queue import demand


@plugin("fair-share")
class FairShare:
    def queue_key(self, queue: str, head: JobView, cycle) -> tuple:
        ledger, opt = cycle.ledger, cycle.opt
        types = [head.gpu_type] if head.gpu_type else cycle.cap.types or [""]
        usage = ledger.usage[queue]
        spec = ledger.queues.get(queue)
        borrowed = opt["share_basis"] == "borrowed"
        after = opt["share_order"] == "after-admission"
        half_life, w = opt["half_life_s"], opt["history_weight"]
        history = {} if borrowed else cycle.snapshot.history.get(queue, {})
        weight = spec.weight if spec else 1.0
        needs_borrow = not any(ledger.within_nominal(queue, head.per_replica, t, head.min_available) for t in types)
        share = None
        for t in types if after else [None]:
            u = dict(usage)
            if t is not None:
                for key, amount in demand(head.per_replica, t):
                    u[key] = u.get(key, 0) + amount * head.min_available
            if borrowed:
                u = {k: max(0, v - (spec.nominal_of(k) or 0)) if spec and spec.nominal_of(k) is not None else 0
                     for k, v in u.items()}
            s = dominant_share(u, history, cycle.cap.totals, half_life, w)
            share = s if share is None else min(share, s)
        return (needs_borrow, (share or 0.0) / weight)

    def sort_key(self, job: JobView, snapshot: Snapshot) -> tuple:
        past = snapshot.history.get(f"{job.queue}/{job.user}") if job.user else None
        if not past:
            return (0.0, 0.0)
        gpu = sum(v for k, v in past.items() if k.startswith("gpus/"))
        return (gpu, past.get("cpus", 0.0))
