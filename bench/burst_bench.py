"""Cloud bursting benchmark (issue 8): one week of the Philly trace, aligned to real grid data as
bench/federation_bench.py does, on a deliberately small on-prem cluster that queues
(examples/federation-burst.yaml: 384 V100s, ``burst_after``) with two cloud regions to burst to.

    .venv/bin/python bench/burst_bench.py --data /work/shared/data

It runs ``hyperion.sim.federation`` — what ``hyperion simulate --federation`` runs — under one
federation profile (``cheapest`` by default: on-prem is the cheaper member, so every job goes
there first) for: the on-prem member alone (no cloud: everything queues); the old overflow (no
``burst_after``: a full on-prem member fails ``fit`` and the job goes to the cloud at once, or
waits and is decided again after each finish); and ``burst_after`` 0, 15 min, 1 h and 4 h. It
prints a Markdown table for docs/benchmarks.md: mean and p99 queueing delay, $ cost, the share of
GPU-hours run in the cloud, jobs burst, deadline misses. ``--quick``: two days instead of seven.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEDERATION = ROOT / "examples" / "federation-burst.yaml"
ONPREM = "onprem"
WINDOW = ("2022-03-07", "28d")  # grid week, where in the Philly trace the week starts (federation_bench's first)
# row label -> (burst_after of the on-prem member: None = no queue; cloud members present)
ROWS: dict[str, tuple[float | None, bool]] = {
    "on-prem only (no cloud)": (3600.0, False),
    "no burst_after (old overflow)": (None, True),
    "burst_after 0": (0.0, True),
    "burst_after 15 min": (900.0, True),
    "burst_after 1 h": (3600.0, True),
    "burst_after 4 h": (4 * 3600.0, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("HYPERION_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--policy", default="cheapest", choices=("cheapest", "default"))
    parser.add_argument("--slack", type=float, default=1.0)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--quick", action="store_true", help="two days instead of --days")
    args = parser.parse_args()
    days = 2.0 if args.quick else args.days

    from hyperion.api.spec import parse_duration
    from hyperion.sim.federation import FED_POLICIES, Federation, FederationRun, align, load_federation
    from hyperion.sim.traces import read_trace, window

    data = Path(args.data)
    trace = read_trace(f"philly:{data / 'philly_pollux' / 'philly.csv'}")
    fed = load_federation(FEDERATION, data / "carbon_electricitymaps_hourly")
    start_text, skip = WINDOW
    start = datetime.fromisoformat(start_text).replace(tzinfo=UTC).timestamp()
    aligned = align(window(trace, parse_duration(skip), None), start, start + days * 86400)
    onprem = next(m for m in fed.members if m.name == ONPREM)
    cloud = [m for m in fed.members if m.name != ONPREM]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{len(aligned.jobs):,} jobs: Philly from {skip}, {days:g} days aligned to {start_text}; policy {args.policy}; "
          f"deadline slack {args.slack}; on-prem {sum(onprem.gpus.values())} GPUs, cloud "
          + ", ".join(f"{m.name} {sum(m.gpus.values())}" for m in cloud) + "\n")
    print("| run | wait avg h | wait p99 h | cost | cloud GPU-h | jobs burst | late | JCT avg h | unfinished | wall s |")
    print("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    t_all = time.perf_counter()
    for label, (after, with_cloud) in ROWS.items():
        members = (onprem.model_copy(update={"burst_after": after}), *(cloud if with_cloud else ()))
        federation = Federation(members, {m.name: fed.carbon[m.name] for m in members})
        t0 = time.perf_counter()
        r = FederationRun(aligned, federation, FED_POLICIES[args.policy], slack=args.slack).run()
        wall = time.perf_counter() - t0
        m = r.metrics
        gpu_h = sum(c["gpu_hours"] for c in r.per_cluster.values())
        cloud_h = sum(c["gpu_hours"] for name, c in r.per_cluster.items() if name != ONPREM)
        print(f"| {label} | {m['queue_delay_mean_s'] / 3600:.2f} | {m['queue_delay_p99_s'] / 3600:.1f} | "
              f"${m['cost_usd']:,.0f} | {cloud_h / gpu_h:.1%} | {m['jobs_burst']:,.0f} | {m['deadline_misses']:,.0f} | "
              f"{m['jct_mean_s'] / 3600:.2f} | {m['jobs_unfinished']:,.0f} | {wall:.1f} |")
    print(f"\nwall time of the {len(ROWS)} runs: {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
