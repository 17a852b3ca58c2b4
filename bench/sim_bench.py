"""Simulator benchmark: the whole Philly trace (82,247 jobs) on a 2,000-GPU cluster, once per
policy, each in its own process so its peak memory is its own.

    .venv/bin/python bench/sim_bench.py --data /work/shared/data
    .venv/bin/python bench/sim_bench.py --data DIR --cluster examples/clusters/philly-512.yaml --policy fifo,sjf

Prints per policy: wall time (reading the trace excluded, printed once), events processed, events
per second, scheduling cycles, peak RSS; then the policy comparison table (Markdown) for
docs/benchmarks.md. Target (issue 4): under 60 s per policy on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(args: argparse.Namespace) -> None:
    """Child: run one policy, print a JSON line."""
    from hyperion.sim.cluster import load_cluster
    from hyperion.sim.experiment import run
    from hyperion.sim.policies import policy
    from hyperion.sim.report import to_json
    from hyperion.sim.traces import read_trace

    t0 = time.perf_counter()
    trace = read_trace(f"philly:{args.trace}")
    cluster = load_cluster(args.cluster, args.data)
    read_s = time.perf_counter() - t0
    result = run(trace, cluster, policy(args.one), args.seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = to_json([result], {})["policies"][args.one]
    print(json.dumps({"policy": args.one, "read_s": read_s, "wall_s": result.wall_s, "events": result.events,
                      "cycles": result.metrics.get("cycles"), "peak_mib": peak, "result": out}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("HYPERION_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--trace", help="Philly CSV (default: DATA/philly_pollux/philly.csv)")
    ap.add_argument("--cluster", default=str(ROOT / "examples" / "clusters" / "philly.yaml"))
    ap.add_argument("--policy", default="fifo,sjf,las,drf,default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.trace = args.trace or str(Path(args.data) / "philly_pollux" / "philly.csv")
    if args.one:
        one(args)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"trace: {args.trace}\ncluster: {args.cluster}")
    rows = []
    for name in args.policy.split(","):
        cmd = [sys.executable, __file__, "--data", args.data, "--trace", args.trace, "--cluster", args.cluster,
               "--seed", str(args.seed), "--one", name]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:>8}: wall {row['wall_s']:6.1f} s  events {row['events']:>8,}  "
              f"{row['events'] / row['wall_s']:>8,.0f} events/s  cycles {row['cycles']:>8,.0f}  "
              f"peak RSS {row['peak_mib']:6.0f} MiB  (reading the trace: {row['read_s']:.1f} s)", flush=True)
    if not rows:
        return
    from hyperion.sim.report import comparison_markdown
    from hyperion.sim.result import PolicyResult

    results = [PolicyResult(r["policy"], {k: (float("nan") if v is None else v) for k, v in r["result"]["metrics"].items()})
               for r in rows]
    print()
    print(comparison_markdown(results))


if __name__ == "__main__":
    main()
