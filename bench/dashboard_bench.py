"""Dashboard API latency: every ``/v1/dashboard/...`` endpoint (and ``/metrics``) on a large cluster.

    .venv/bin/python bench/dashboard_bench.py [--jobs 10000] [--nodes 1000] [--gpus 8] [--requests 200]
                                              [--history 60] [--server testclient|uvicorn] [--no-gc-freeze]

Builds a ``ControlService`` on the in-memory store, with the real scheduler loop (``SchedulerLoop``,
agents stubbed out) deciding who runs: ``--nodes`` nodes of ``--gpus`` GPUs each (A100 and H100,
a few cordoned, unhealthy or not ready), four queues in one cohort, eight teams, and ``--jobs``
jobs of 1 to 8 GPUs (some gangs): a first third placed, run and ended (succeeded, failed,
cancelled), the rest submitted afterwards, so the cluster is full and thousands wait with
verdicts. Every node has ``--history`` telemetry samples of every GPU (the first ten the full
720 the service keeps), the event log a few thousand events, the meter a week of usage per team
and a budget per team.

Then, per endpoint, ``--requests`` requests (after 5 warm-up ones) through FastAPI's TestClient
(default) or httpx against a real uvicorn on loopback (``--server uvicorn``), as the admin and
as one team, and prints p50/p99/max latency in ms. The target: p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hyperion.api.logs import LogStore  # noqa: E402
from hyperion.api.rest import build_app  # noqa: E402
from hyperion.api.service import ControlService  # noqa: E402
from hyperion.core import PROFILES, lifecycle  # noqa: E402
from hyperion.model import Gpu, GpuMetrics, Node, NodeMetrics, NodeState, Phase, Resources  # noqa: E402
from hyperion.runtime.scheduler_loop import SchedulerLoop  # noqa: E402
from hyperion.store import MemoryStore  # noqa: E402
from hyperion.store.objects import ClusterState  # noqa: E402
from hyperion.testing.clock import ManualClock as Clock  # noqa: E402

TEAMS = ("vision", "nlp", "speech", "robotics", "search", "ads", "infra", "research")
QUEUES = ("default", "train", "tune", "serve")
GiB = 2**30



class NoAgents:
    """The scheduler loop's agent hub, minus the agents."""

    def start(self, job, handed=()) -> None:
        pass

    def stop(self, job, placements, reason) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def build(args: argparse.Namespace, tmp: Path) -> tuple[ControlService, dict[str, str], dict]:
    rng = random.Random(7)
    now = 1_750_000_000.0
    clock = Clock(now - 3 * 3600)
    state = ClusterState(MemoryStore())
    # a week of usage per team, as the meter saves it (records/usage/<day>), loaded by the service
    days: dict[str, dict] = {}
    b = now - 7 * 86400
    b -= b % 300
    while b < now:
        day = time.strftime("%Y-%m-%d", time.gmtime(b))
        rows = days.setdefault(f"usage/{day}", {"teams": {}, "jobs": {}})["teams"]
        for i, team in enumerate(TEAMS):
            gpus = (8 + 4 * i) * (1.2 + 0.8 * math.sin(b / 86400 * 6.283 + i))
            rows.setdefault(team, {})[repr(b)] = [gpus * 300 / 3600 * 2.0, gpus * 300, gpus * 0.35 * 300 / 3600,
                                                  gpus * 0.35 * 300 / 3600 * 400]
        b += 300
    state.write_records(days)
    service = ControlService(state, clock, LogStore(tmp / "logs"), "admin-token")
    loop = SchedulerLoop(service, NoAgents(), PROFILES["default"]())  # type: ignore[arg-type]
    docs: list[dict] = [{"kind": "Team", "name": t} for t in TEAMS]
    per_queue_a100 = args.nodes * 6 // 10 * args.gpus // len(QUEUES)
    per_queue_h100 = (args.nodes - args.nodes * 6 // 10) * args.gpus // len(QUEUES)
    docs += [{"kind": "Queue", "name": q, "cohort": "lab", "quota": {"gpus": {"A100": per_queue_a100, "H100": per_queue_h100}}}
             for q in QUEUES]
    tokens = {r["name"]: r["token"] for r in service.apply(_admin(service), docs)["results"] if "token" in r}
    for i in range(args.nodes):
        gpu_type = "A100" if i < args.nodes * 6 // 10 else "H100"
        state.put_node(Node(f"node-{i:04d}", hostname=f"gpu{i:04d}.dc1", gpus=tuple(Gpu(k, f"GPU-{i}-{k}", gpu_type, 81920)
                                                                                      for k in range(args.gpus)),
                            gpu_type=gpu_type, capacity=Resources(args.gpus, 128_000, 1024 * GiB), gpus_logical=False,
                            registered_at=clock.t, last_seen=now))
    admin = _admin(service)

    def submit(n: int) -> None:
        for k in range(n):
            team = TEAMS[k % len(TEAMS)]
            gpus = rng.choice((1, 1, 2, 2, 4, 8))
            doc = {"name": f"{team}-job-{k}", "team": team, "queue": QUEUES[k % len(QUEUES)], "command": "true",
                   "resources": {"gpus": gpus, "cpus": 4, "memory": "16Gi"}, "replicas": rng.choice((1, 1, 1, 2)),
                   "user": f"user{k % 23}", "runtime_estimate": f"{rng.randint(10, 600)}m"}
            if k % 3 == 0:
                doc["resources"]["gpu_type"] = rng.choice(("A100", "H100"))
            service.submit(admin, doc)
            clock.t += 0.5

    def schedule() -> None:
        for _ in range(20):  # full cycles until one places nothing
            placed = loop.cycle(clock.t)
            clock.t += 1.1
            if not placed:
                break

    def run_all() -> None:
        jobs = [j for j in state.jobs.values() if j.phase is Phase.SCHEDULED]
        state.update_jobs([lifecycle.task_running(j, j.attempt, 0, clock.t) for j in jobs])

    first = args.jobs // 3
    submit(first)
    schedule()
    run_all()
    clock.t += 1800
    ended = []
    for n, job in enumerate(j for j in state.jobs.values() if j.phase is Phase.RUNNING):
        if n % 10 == 9:
            continue  # still running
        code = 1 if n % 10 == 7 else 0
        if n % 10 == 8:
            job, code = lifecycle.cancel(job, clock.t)[0], 143
        for p in job.placements:
            job, _ = lifecycle.task_exited(job, job.attempt, p.rank, code, clock.t)
        ended.append(job)
    state.update_jobs(ended)
    submit(args.jobs - first)
    schedule()
    run_all()
    clock.t = now
    # budgets last: admission checks them at every submission
    service.apply(admin, [{"kind": "Budget", "name": f"{t}-monthly", "team": t, "usd": 500_000 + 10_000 * i}
                          for i, t in enumerate(TEAMS)])
    # a few troubled nodes
    for i, node in enumerate(list(state.nodes.values())[::50]):
        kind = i % 3
        if kind == 0:
            state.put_node(replace(node, cordoned=True))
        elif kind == 1:
            state.put_node(replace(node, condition=f"GPU {i % args.gpus} at 93 C (limit 90 C)"))
        else:
            state.put_node(replace(node, state=NodeState.NOT_READY))
    # telemetry: --history samples a node, 5 s apart (the first ten nodes: the full 720)
    held = {n: {i for (_, _), p in state.node_tasks.get(n, {}).items() for i in p.gpu_indices} for n in state.nodes}
    for n, node_id in enumerate(state.nodes):
        samples = 720 if n < 10 else args.history
        for s in range(samples):
            t = now - (samples - s) * 5.0
            gpus = tuple(GpuMetrics(k, utilization_percent=(60 + 35 * ((s + k) % 7) / 6) if k in held[node_id] else 0.0,
                                    memory_used_mb=40000.0 if k in held[node_id] else 0.0, memory_total_mb=81920.0,
                                    temperature_c=45 + (s % 20), power_w=120 + 2.5 * (s % 100))
                         for k in range(args.gpus))
            service.record_metrics(NodeMetrics(node_id, t, cpu_utilization_percent=30.0, memory_used_mb=200_000.0,
                                               memory_total_mb=1_000_000.0, gpus=gpus))
    # events
    jobs = list(state.jobs.values())
    for e in range(args.events):
        job = jobs[e % len(jobs)]
        if e % 4 == 3:
            service.events.emit("node-condition", f"node node-{e % args.nodes:04d}: GPU 3 at 93 C", node=f"node-{e % args.nodes:04d}")
        else:
            service.events.emit("preempted", f"job {job.id} preempted for a latency-critical job", job=job.id, team=job.team)
    phases: dict[str, int] = {}
    for j in state.jobs.values():
        phases[j.phase.value] = phases.get(j.phase.value, 0) + 1
    return service, tokens, phases


def _admin(service: ControlService):
    return service.authenticate("admin-token")


@contextlib.contextmanager
def uvicorn_client(app) -> Iterator:
    import httpx
    import uvicorn

    from hyperion.testing.cluster import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield client
    server.should_exit = True
    thread.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    ap.add_argument("--history", type=int, default=60, help="telemetry samples per node (the first ten nodes: 720)")
    ap.add_argument("--events", type=int, default=5_000)
    ap.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    ap.add_argument("--server", choices=("testclient", "uvicorn"), default="testclient")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="leave the loaded state in the collector's full passes (the control plane freezes it)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="hyperion-dashboard-bench-") as tmp:
        started = time.perf_counter()
        service, tokens, phases = build(args, Path(tmp))
        state = service.state
        mix = ", ".join(f"{k} {v}" for k, v in sorted(phases.items()))
        print(f"built in {time.perf_counter() - started:.1f} s: {len(state.jobs)} jobs ({mix}), "
              f"{len(state.nodes)} nodes x {args.gpus} GPUs, {sum(len(h) for h in service.metrics.values())} telemetry samples, "
              f"{args.events} events, {len(service.accountant.budgets)} budgets, a week of usage per team")
        if not args.no_gc_freeze:
            gc.freeze()  # as runtime/controlplane.py does once it has loaded its state
        app = build_app(service)
        team = TEAMS[0]
        cases = [
            ("summary", "/v1/dashboard/summary", None),
            ("pending (page of 50)", "/v1/dashboard/pending?limit=50", None),
            ("pending, deep page", "/v1/dashboard/pending?offset=3000&limit=50", None),
            ("pending, one queue", "/v1/dashboard/pending?queue=train&limit=50", None),
            ("pending (page of 500)", "/v1/dashboard/pending?limit=500", None),
            ("pending (team)", "/v1/dashboard/pending?limit=50", team),
            ("running (page of 50)", "/v1/dashboard/running?limit=50", None),
            ("running (page of 500)", "/v1/dashboard/running?limit=500", None),
            ("nodes (page of 50)", "/v1/dashboard/nodes?limit=50", None),
            ("nodes (page of 500)", "/v1/dashboard/nodes?limit=500", None),
            ("nodes, search", "/v1/dashboard/nodes?q=h100&limit=50", None),
            ("node metrics (720 samples -> 120)", "/v1/dashboard/nodes/node-0001/metrics?points=120", None),
            ("cost, 24 h", "/v1/dashboard/cost", None),
            ("cost, 7 d by hour", "/v1/dashboard/cost?from=7d&step=1h", None),
            ("cost (team)", "/v1/dashboard/cost?from=7d&step=1h", team),
            ("events (50)", "/v1/dashboard/events?limit=50", None),
            ("events (team)", "/v1/dashboard/events?limit=50", team),
            ("events, preemptions", "/v1/dashboard/events?kind=preempted&limit=100", None),
        ]
        if any(getattr(r, "path", None) == "/metrics" for r in app.routes):
            cases.append(("/metrics", "/metrics", None))
        if args.server == "uvicorn":
            ctx = uvicorn_client(app)
        else:
            from fastapi.testclient import TestClient

            ctx = TestClient(app)
        results = []
        with ctx as client:
            for name, url, who in cases:
                headers = {"Authorization": f"Bearer {tokens[who] if who else 'admin-token'}"}
                times = []
                size = 0
                for i in range(5 + args.requests):
                    t0 = time.perf_counter()
                    r = client.get(url, headers=headers)
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise SystemExit(f"{url}: {r.status_code} {r.text[:500]}")
                    size = len(r.content)
                    if i >= 5:
                        times.append(dt * 1000)
                service.clock.t += 0.01  # type: ignore[attr-defined]
                results.append((name + (f" [team {who}]" if who else ""), url, times, size))
        print(f"\n{args.requests} requests per endpoint (after 5 warm-up) through {args.server}\n")
        print("| endpoint | request | p50 ms | p99 ms | max ms | body KiB |")
        print("|---|---|---:|---:|---:|---:|")
        worst = 0.0
        for name, url, times, size in results:
            p99 = pct(times, 99)
            if url.startswith("/v1/dashboard/"):
                worst = max(worst, p99)
            print(f"| {name} | `{url}` | {statistics.median(times):.2f} | {p99:.2f} | {max(times):.2f} | {size / 1024:.1f} |")
        print(f"\ntarget: every dashboard endpoint's p99 under 100 ms: {'met' if worst < 100 else 'MISSED'} (worst p99 {worst:.2f} ms)")


if __name__ == "__main__":
    main()
