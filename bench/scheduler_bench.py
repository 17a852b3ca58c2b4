"""Benchmark: the pure scheduler on synthetic clusters (issue 3's set-up).

    .venv/bin/python bench/scheduler_bench.py --nodes 1000 10000 --jobs 100000

Clusters of N nodes with 8 GPUs each and mixed GPU types (A100, H100, V100, L4); 100,000 pending
jobs of mixed sizes (1, 2, 4, 8 GPUs; some gangs of 2-4 replicas of 8 GPUs; some pinned to a GPU
type), seeded so every run sees the same data. Three figures per cluster size:

* bulk placements/s: one ``schedule()`` call over all pending jobs on the empty cluster;
  placements divided by its wall time (snapshot construction excluded, printed separately);
* arrival latency p50/p99: on the cluster left half full, 1,000 jobs arrive one at a time; each
  cycle is timed whole: a snapshot holding just that job and the kept ``NodeIndex`` (what the
  live loop's incremental cycle sees), ``schedule()``, and applying the placement to the nodes and
  the index for the next cycle;
* peak memory: tracemalloc peak during the bulk call, plus the process's max RSS.
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
from hyperion.model import JobView, NodeView, Priority, Resources, Snapshot
from hyperion.model.nodeindex import NodeIndex

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
        jobs.append(JobView(f"j{i:06d}", f"team{i % 8}", "default", prio, 0, float(i),
                            Resources(gpus, gpus * 4000, gpus * 32 * GIB), replicas, replicas, gpu_type))
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


def run(n_nodes: int, n_jobs: int, arrivals: int, profile_name: str) -> dict:
    rng = random.Random(42)
    profile = PROFILES[profile_name]()
    nodes = make_nodes(n_nodes, rng)
    jobs = make_jobs(n_jobs, rng)
    t0 = time.perf_counter()
    snap = Snapshot(0.0, 0, tuple(nodes), tuple(jobs))
    snap_s = time.perf_counter() - t0

    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    plan = schedule(snap, profile)
    bulk_s = time.perf_counter() - t0
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
    lat = []
    for job in make_jobs(arrivals, random.Random(7), start=10**6):
        t0 = time.perf_counter()
        s = Snapshot(1.0, 0, busy, (job,), node_index=index)
        p = schedule(s, profile)
        if p.assignments:
            new = occupied(list(busy), p)  # cheap here: at most 4 nodes change
            changed = {position[pl.node_id] for a in p.assignments for pl in a.placements}
            nxt = tuple(new)
            index = index.updated(busy, nxt, changed)
            busy = nxt
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {
        "nodes": n_nodes, "gpus": n_nodes * 8, "jobs": n_jobs, "jobs_placed": placed, "placements": placements,
        "snapshot_s": snap_s, "bulk_s": bulk_s, "placements_per_s": placements / bulk_s,
        "arrival_p50_ms": lat[len(lat) // 2] * 1e3, "arrival_p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
        "peak_mib": peak / 2**20, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--arrivals", type=int, default=1000)
    p.add_argument("--profile", default="first-fit")
    a = p.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, profile {a.profile}")
    for n in a.nodes:
        r = run(n, a.jobs, a.arrivals, a.profile)
        print(f"{r['nodes']:>6} nodes ({r['gpus']} GPUs), {r['jobs']} pending: placed {r['jobs_placed']} jobs "
              f"({r['placements']} placements) in {r['bulk_s']:.2f} s = {r['placements_per_s']:,.0f} placements/s; "
              f"one arrival p50 {r['arrival_p50_ms']:.2f} ms p99 {r['arrival_p99_ms']:.2f} ms; "
              f"peak {r['peak_mib']:.0f} MiB traced, {r['maxrss_mib']:.0f} MiB RSS (snapshot built in {r['snapshot_s']:.2f} s)",
              flush=True)


if __name__ == "__main__":
    main()
