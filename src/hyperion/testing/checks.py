"""Checks of a plan against its snapshot, shared by property tests (and, later, the simulator's).

``assert_no_overcommit(snapshot, plan)``: every placement asks for exactly its replica's GPUs;
on every node, what the plan places fits the node's free capacity, and with what running jobs
hold there it fits the node's capacity; no GPU index is handed out twice or while busy. What a
``handover`` eviction's victim holds counts as free (the fast path places its preemptor on it in
the same plan), and that preemptor must be placed by the plan.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from hyperion.model import Plan, Resources, Snapshot

__all__ = ["assert_no_overcommit"]


def assert_no_overcommit(snapshot: Snapshot, plan: Plan) -> None:
    nodes = {n.id: n for n in snapshot.nodes}
    jobs = {j.id: j for j in snapshot.pending}
    used: dict[str, Resources] = defaultdict(Resources)
    gpus: dict[str, Counter[int]] = defaultdict(Counter)
    for a in plan.assignments:
        want = jobs[a.job_id].per_replica
        for p in a.placements:
            used[p.node_id] = used[p.node_id] + want
            assert len(p.gpu_indices) == want.gpus, f"{a.job_id} rank {p.rank}: {p.gpu_indices} for {want.gpus} GPUs"
            gpus[p.node_id].update(p.gpu_indices)
    handed = {e.job_id for e in plan.evictions if e.handover}
    placed = {a.job_id for a in plan.assignments}
    for e in plan.evictions:
        assert not e.handover or e.preemptor in placed, f"{e.job_id} handed over to {e.preemptor}, which is not placed"
    running: dict[str, Resources] = defaultdict(Resources)
    freed: dict[str, Resources] = defaultdict(Resources)
    freed_gpus: dict[str, set[int]] = defaultdict(set)
    for v in snapshot.running:
        for node_id, indices in v.placements:
            if v.id in handed:
                freed[node_id] = freed[node_id] + v.per_replica
                freed_gpus[node_id].update(indices)
            else:
                running[node_id] = running[node_id] + v.per_replica
    for node_id, total in used.items():
        node = nodes[node_id]
        free = node.free + freed[node_id]
        assert total.fits_in(free), f"{node_id}: {total} placed, {free} free (handovers included)"
        assert (total + running[node_id]).fits_in(node.capacity), f"{node_id}: {total} placed + {running[node_id]} running"
        assert max(gpus[node_id].values(), default=1) == 1, f"{node_id}: a GPU index given twice: {gpus[node_id]}"
        assert set(gpus[node_id]) <= set(node.free_gpus) | freed_gpus[node_id], f"{node_id}: a busy GPU handed out"
