"""Benchmark: API submission throughput and end-to-end throughput of trivial jobs.

Both run against a real control plane (SQLite store, REST on loopback) started as its own
process, with real local agents for the end-to-end part, exactly as `hyperion up` runs them.
The load generator speaks plain HTTP/1.1 over keep-alive TCP connections (asyncio streams, each
request a real POST /v1/jobs with a JSON body and a bearer token), so that on a 2-core machine the
client takes as little CPU as possible from the server it measures.

    .venv/bin/python bench/e2e_throughput.py [--submit N] [--e2e N] [--agents A] [--conns C]

* submissions/s: N jobs accepted (201, committed to the store) / wall time, control plane with
  no agents (the jobs stay pending).
* end to end jobs/s: N jobs whose command is `true`, from the first submission to the moment the
  last one is `succeeded` (every job's exit code committed), with A local agents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hyperion.testing.cluster import LocalCluster

JOB = {"name": "t", "command": ["true"], "resources": {"gpus": 0, "cpus": "10m", "memory": "1Mi"}}


async def _post_many(port: int, token: str, n: int, conns: int) -> tuple[float, list[float]]:
    body = json.dumps(JOB).encode()
    req = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    remaining = [n]
    latencies: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                if status != 201:
                    raise RuntimeError(f"submission failed with HTTP {status}")
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return time.perf_counter() - t0, latencies


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def bench_submit(n: int, conns: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        c = LocalCluster(Path(d), agents=0)
        c.start()
        try:
            wall, lat = asyncio.run(_post_many(c.port, c.admin_token, n, conns))
            total = c.client().get("/v1/jobs", params={"limit": 1}).json()["total"]
            assert total == n, f"{total} jobs stored, {n} submitted"
        finally:
            c.stop()
    return {"jobs": n, "connections": conns, "wall_s": wall, "per_s": n / wall,
            "p50_ms": _pct(lat, 50) * 1e3, "p99_ms": _pct(lat, 99) * 1e3}


def bench_e2e(n: int, agents: int, conns: int, profile: str = "default") -> dict:
    with tempfile.TemporaryDirectory() as d:
        c = LocalCluster(Path(d), agents=agents, gpus_per_agent=0, extra_args=("--profile", profile))
        c.start()
        try:
            c.wait_nodes()
            t0 = time.perf_counter()
            submit_wall, _ = asyncio.run(_post_many(c.port, c.admin_token, n, conns))
            api = httpx.Client(base_url=c.api, headers={"Authorization": f"Bearer {c.admin_token}"})
            while True:
                done = api.get("/v1/jobs", params={"phase": "succeeded,failed", "limit": 1}).json()["total"]
                if done >= n:
                    break
                if time.perf_counter() - t0 > 600:
                    raise TimeoutError(f"only {done} of {n} jobs finished in 600 s")
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            failed = api.get("/v1/jobs", params={"phase": "failed", "limit": 1}).json()["total"]
            assert failed == 0, f"{failed} trivial jobs failed"
        finally:
            c.stop()
    return {"jobs": n, "agents": agents, "connections": conns, "submit_wall_s": submit_wall, "wall_s": wall,
            "per_s": n / wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--submit", type=int, default=10000, help="jobs for the submission benchmark")
    p.add_argument("--e2e", type=int, default=3000, help="jobs for the end-to-end benchmark")
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--profile", default="default", help="the control plane's scheduling profile")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    out = {"machine": machine}
    if a.submit:
        out["submit"] = bench_submit(a.submit, a.conns)
    if a.e2e:
        out["e2e"] = bench_e2e(a.e2e, a.agents, a.conns, a.profile)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"machine: {machine}")
    if "submit" in out:
        s = out["submit"]
        print(f"API submissions: {s['jobs']} jobs over {s['connections']} connections in {s['wall_s']:.2f} s = "
              f"{s['per_s']:.0f}/s (latency p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms)  target >= 2000/s")
    if "e2e" in out:
        e = out["e2e"]
        print(f"end to end: {e['jobs']} `true` jobs on {e['agents']} agents in {e['wall_s']:.2f} s = {e['per_s']:.0f} jobs/s "
              f"(submission phase {e['submit_wall_s']:.2f} s, profile {a.profile})  target >= 400/s")


if __name__ == "__main__":
    sys.exit(main())
