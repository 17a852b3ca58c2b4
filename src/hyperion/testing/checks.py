"""Checks of a plan against its snapshot, shared by property tests (and, later, the simulator's).

``assert_no_overcommit(snapshot, plan)``: every placement asks for exactly its replica's GPUs;
on every node, what the plan places fits the node's free capacity, and with what running jobs
hold there it fits the node's capacity; no GPU index is handed out twice or while busy.
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
    running: dict[str, Resources] = defaultdict(Resources)
    for v in snapshot.running:
        for node_id, _ in v.placements:
            running[node_id] = running[node_id] + v.per_replica
    for node_id, total in used.items():
        node = nodes[node_id]
        assert total.fits_in(node.free), f"{node_id}: {total} placed, {node.free} free"
        assert (total + running[node_id]).fits_in(node.capacity), f"{node_id}: {total} placed + {running[node_id]} running"
        assert max(gpus[node_id].values(), default=1) == 1, f"{node_id}: a GPU index given twice: {gpus[node_id]}"
        assert set(gpus[node_id]) <= set(node.free_gpus), f"{node_id}: a busy GPU handed out"
