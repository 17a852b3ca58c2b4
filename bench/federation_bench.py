"""Federation benchmark (issue 6): the five federation policies on weeks of the Philly trace,
aligned to weeks of real grid data, over the example federations.

    .venv/bin/python bench/federation_bench.py --data /work/shared/data

For each (federation, window) it runs cheapest, default (carbon-agnostic), carbon-spatial,
carbon-temporal (forecast: same hour yesterday) and carbon-oracle (the actual series) with
``hyperion.sim.federation`` — what ``hyperion simulate --federation`` runs — and prints Markdown
tables for docs/benchmarks.md: per run $ cost, kg CO2 (location-based), average and p99 JCT,
deadline misses, jobs shifted; then, per federation, the sums over the windows against the
default. Targets (issue 6): carbon-temporal with forecast cuts CO2 by >= 30% against default,
cost rises < 5%, no deadline missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("cheapest", "default", "carbon-spatial", "carbon-temporal", "carbon-oracle")
# (grid window start, where in the Philly trace the week starts): three seasons, two years
WINDOWS = (("2022-03-07", "28d"), ("2022-07-04", "35d"), ("2023-11-06", "42d"))
FEDERATIONS = {
    "cloud (examples/federation.yaml)": ["examples/federation.yaml"],
    "hybrid (+ examples/federation-onprem.yaml)": ["examples/federation.yaml", "examples/federation-onprem.yaml"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("HYPERION_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--slack", type=float, default=1.0)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()

    from hyperion.api.spec import parse_duration
    from hyperion.sim.federation import FED_POLICIES, FederationRun, align, load_federation
    from hyperion.sim.traces import read_trace, window

    data = Path(args.data)
    trace = read_trace(f"philly:{data / 'philly_pollux' / 'philly.csv'}")
    carbon = data / "carbon_electricitymaps_hourly"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"deadline slack {args.slack} (deadline = submission + (1 + slack) x duration), windows of {args.days:g} days\n")
    for fed_name, files in FEDERATIONS.items():
        fed = load_federation([ROOT / f for f in files], carbon)
        sums: dict[str, list[float]] = {p: [0.0, 0.0, 0.0] for p in POLICIES}  # cost, kg, misses
        print(f"### {fed_name}: {len(fed.members)} clusters, {fed.capacity:,} GPUs\n")
        print("| window | trace week | jobs | policy | cost | CO2 kg | vs default CO2 | vs default cost | JCT avg h "
              "| JCT p99 h | late | shifted | wall s |")
        print("|:--|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for start_text, skip in WINDOWS:
            start = datetime.fromisoformat(start_text).replace(tzinfo=UTC).timestamp()
            aligned = align(window(trace, parse_duration(skip), None), start, start + args.days * 86400)
            results = {}
            for p in POLICIES:
                t0 = time.perf_counter()
                results[p] = (FederationRun(aligned, fed, FED_POLICIES[p], slack=args.slack).run().metrics,
                              time.perf_counter() - t0)
            base = results["default"][0]
            for p, (m, wall) in results.items():
                sums[p][0] += m["cost_usd"]
                sums[p][1] += m["carbon_kg"]
                sums[p][2] += m["deadline_misses"]
                print(f"| {start_text} | from {skip} | {len(aligned.jobs):,} | {p} | ${m['cost_usd']:,.0f} | "
                      f"{m['carbon_kg']:,.0f} | {m['carbon_kg'] / base['carbon_kg'] - 1:+.1%} | "
                      f"{m['cost_usd'] / base['cost_usd'] - 1:+.1%} | {m['jct_mean_s'] / 3600:.2f} | "
                      f"{m['jct_p99_s'] / 3600:.1f} | {m['deadline_misses']:.0f} | {m['jobs_shifted']:.0f} | {wall:.1f} |")
        cost0, kg0, _ = sums["default"]
        print(f"\nSum over the {len(WINDOWS)} windows, against default:\n")
        print("| policy | cost | CO2 kg | CO2 vs default | cost vs default | deadline misses |")
        print("|:--|--:|--:|--:|--:|--:|")
        for p, (cost, kg, late) in sums.items():
            print(f"| {p} | ${cost:,.0f} | {kg:,.0f} | {kg / kg0 - 1:+.1%} | {cost / cost0 - 1:+.1%} | {late:.0f} |")
        print()


if __name__ == "__main__":
    main()
