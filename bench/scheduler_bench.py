"""Benchmark: the pure scheduler on synthetic clusters (issue 3's set-up).

    .venv/bin/python bench/scheduler_bench.py --nodes 1000 10000 --jobs 100000 --profile default --quotas

Clusters of N nodes with 8 GPUs each and mixed GPU types (A100, H100, V100, L4); 100,000 pending
jobs of mixed sizes (1, 2, 4, 8 GPUs; some gangs of 2-4 replicas of 8 GPUs; some pinned to a GPU
type; 5% latency-critical; 1 in 3 with a runtime estimate) spread over 8 queues, seeded so every
run sees the same data. With ``--quotas`` the 8 queues form one cohort, each with a nominal
quota of 1/8 of every GPU type. Three figures per cluster size:

* bulk placements/s: one ``schedule()`` call over all pending jobs on the empty cluster;
  placements divided by its wall time (snapshot construction excluded, printed separately);
* arrival latency p50/p99: the first half of the bulk placements become running jobs (with
  their queue usage, as the live snapshotter passes them); then 1,000 jobs arrive one at a time;
  each cycle is timed whole: a snapshot holding just that job, the running jobs and the kept
  ``NodeIndex`` (what the live loop's incremental cycle sees), ``schedule()``, and applying the
  placement to the nodes and the index for the next cycle;
* peak memory: tracemalloc peak during a second, untimed bulk call (tracing slows Python down,
  so the timed call runs without it), plus the process's max RSS.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import resource
import time
import tracemalloc

from hyperion.core import PROFILES, schedule
from hyperion.core.ledger import usage_of
from hyperion.model import JobView, NodeView, Priority, QueueSpec, Resources, RunningView, Snapshot
from hyperion.model.nodeindex import NodeIndex
from hyperion.model.queue import gpu_key

GPU_TYPES = ("A100", "H100", "V100", "L4")
GIB = 2**30


def make_nodes(n: int, rng: random.Random) -> list[NodeView]:
    cap = Resources(8, 96_000, 1024 * GIB)
    return [NodeView(f"n{i:05d}", GPU_TYPES[i % len(GPU_TYPES)], cap, cap, tuple(range(8))) for i in range(n)]


def make_jobs(n: int, rng: random.Random, start: int = 0) -> list[JobView]:
    jobs = []
    for i in range(start, start + n):
        r = rng.random()
        if r < 0.05:
            gpus, replicas = 8, rng.choice((2, 3, 4))
        else:
            gpus, replicas = rng.choice((1, 1, 1, 2, 4, 8)), 1
        gpu_type = rng.choice(GPU_TYPES) if rng.random() < 0.3 else None
        prio = Priority.LATENCY_CRITICAL if rng.random() < 0.05 else Priority.BATCH
        estimate = rng.choice((600.0, 3600.0, 4 * 3600.0)) if rng.random() < 1 / 3 else None
        jobs.append(JobView(f"j{i:06d}", f"team{i % 8}", f"q{i % 8}", prio, 0, float(i),
                            Resources(gpus, gpus * 4000, gpus * 32 * GIB), replicas, replicas, gpu_type, estimate))
    return jobs


def occupied(nodes: list[NodeView], plan) -> list[NodeView]:
    """The nodes after applying a plan's placements."""
    taken: dict[str, list[tuple[int, ...]]] = {}
    for a in plan.assignments:
        for p in a.placements:
            taken.setdefault(p.node_id, []).append(p.gpu_indices)
    out = []
    for n in nodes:
        used = [g for gs in taken.get(n.id, ()) for g in gs]
        if not used:
            out.append(n)
            continue
        k = len(used)
        free = n.free - Resources(k, k * 4000, k * 32 * GIB)
        out.append(NodeView(n.id, n.gpu_type, n.capacity, free, tuple(g for g in n.free_gpus if g not in used)))
    return out


def make_queues(n_nodes: int) -> dict[str, QueueSpec]:
    per_type = n_nodes // len(GPU_TYPES) * 8 // 8  # GPUs of one type / 8 queues
    nominal = tuple(sorted((gpu_key(t), per_type) for t in GPU_TYPES))
    return {f"q{i}": QueueSpec(f"q{i}", "all", 1.0, nominal) for i in range(8)}


def running_views(jobs: list[JobView], plan) -> tuple[RunningView, ...]:
    by_id = {j.id: j for j in jobs}
    out = []
    for a in plan.assignments:
        j = by_id[a.job_id]
        t = j.gpu_type or GPU_TYPES[int(a.placements[0].node_id[1:]) % len(GPU_TYPES)]
        out.append(RunningView(j.id, j.team, j.queue, j.priority, j.per_replica,
                               tuple((p.node_id, p.gpu_indices) for p in a.placements), t, 0.0, j.runtime_estimate_s))
    return tuple(out)


def run(n_nodes: int, n_jobs: int, arrivals: int, profile_name: str, quotas: bool) -> dict:
    rng = random.Random(42)
    profile = PROFILES[profile_name]()
    queues = make_queues(n_nodes) if quotas else {}
    nodes = make_nodes(n_nodes, rng)
    jobs = make_jobs(n_jobs, rng)
    t0 = time.perf_counter()
    snap = Snapshot(0.0, 0, tuple(nodes), tuple(jobs), queues=queues)
    snap_s = time.perf_counter() - t0

    gc.collect()
    t0 = time.perf_counter()
    plan = schedule(snap, profile)
    bulk_s = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    schedule(snap, profile)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    placed = len(plan.assignments)
    placements = sum(len(a.placements) for a in plan.assignments)

    # half-full cluster: keep only the first half of the bulk plan's placements; then jobs arrive
    # one at a time, as the live loop sees them, and each cycle is timed whole: build the snapshot
    # (sharing the kept node index), schedule, and apply the placement to the nodes and the index
    half = type(plan)(plan.assignments[: placed // 2], {})
    busy = tuple(occupied(nodes, half))
    position = {n.id: i for i, n in enumerate(busy)}
    index = NodeIndex.build(busy)
    running = running_views(jobs, half)
    usage = usage_of(running)
    lat = []
    holds = ()
    for job in make_jobs(arrivals, random.Random(7), start=10**6):
        t0 = time.perf_counter()
        # the live loop's incremental cycle carries the holds (reservations) of earlier cycles
        s = Snapshot(1.0, 0, busy, (job,), node_index=index, running=running, queues=queues, usage=usage, holds=holds)
        p = schedule(s, profile)
        holds = p.holds
        kind = "placed" if p.assignments else "preempting" if p.evictions else "waiting"
        if p.assignments:
            changed = {position[pl.node_id] for a in p.assignments for pl in a.placements}
            new = list(busy)  # only the changed nodes are rebuilt, as the live snapshotter does
            for i, n in zip(sorted(changed), occupied([busy[i] for i in sorted(changed)], p), strict=True):
                new[i] = n
            nxt = tuple(new)
            index = index.updated(busy, nxt, changed)
            busy = nxt
        lat.append((time.perf_counter() - t0, kind))
    by_kind: dict[str, list[float]] = {}
    for dt, kind in lat:
        by_kind.setdefault(kind, []).append(dt)
    lat = sorted(dt for dt, _ in lat)
    kinds = {k: (len(v), pct(v, 0.5) * 1e3, pct(v, 0.99) * 1e3) for k, v in sorted(by_kind.items())}
    return {
        "nodes": n_nodes, "gpus": n_nodes * 8, "jobs": n_jobs, "jobs_placed": placed, "placements": placements,
        "snapshot_s": snap_s, "bulk_s": bulk_s, "placements_per_s": placements / bulk_s,
        "arrival_p50_ms": lat[len(lat) // 2] * 1e3, "arrival_p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
        "kinds": kinds,
        "peak_mib": peak / 2**20, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--arrivals", type=int, default=1000)
    p.add_argument("--profile", default="default")
    p.add_argument("--quotas", action="store_true", help="8 queues in one cohort, each with 1/8 of every GPU type")
    a = p.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, profile {a.profile}, "
          f"{'quotas' if a.quotas else 'no quotas'}")
    for n in a.nodes:
        r = run(n, a.jobs, a.arrivals, a.profile, a.quotas)
        print(f"{r['nodes']:>6} nodes ({r['gpus']} GPUs), {r['jobs']} pending: placed {r['jobs_placed']} jobs "
              f"({r['placements']} placements) in {r['bulk_s']:.2f} s = {r['placements_per_s']:,.0f} placements/s; "
              f"one arrival p50 {r['arrival_p50_ms']:.2f} ms p99 {r['arrival_p99_ms']:.2f} ms; "
              f"peak {r['peak_mib']:.0f} MiB traced, {r['maxrss_mib']:.0f} MiB RSS (snapshot built in {r['snapshot_s']:.2f} s)",
              flush=True)
        for kind, (n_, p50, p99) in r["kinds"].items():
            print(f"        arrivals {kind}: {n_}, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
