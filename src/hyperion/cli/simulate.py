"""``hyperion simulate``: replay a real job trace through the scheduling policies on a simulated
cluster and compare them (``hyperion.sim``; docs/simulator.md).

Prints a comparison table (or JSON with ``-o json``), and writes plots, ``report.html`` and
``results.json`` to ``--out``. Deterministic for a ``--seed``. Bad input (a trace row, a cluster
field, a policy name, a window) is reported as one message naming the file and line or option.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from hyperion.cli.context import CliError
from hyperion.cli.output import iso_time, output_option


def _instant(text: str | None, option: str, start: float | None) -> float | None:
    """A window bound as relative seconds: a duration from the trace start ("30d", "3600") or,
    for traces with absolute times, a date/time ("2017-10-01", "2017-10-01T12:00:00Z")."""
    if text is None:
        return None
    from hyperion.api.spec import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        pass
    at = iso_time(text)
    if at is None:
        raise CliError(f"{option} {text!r}: expected a duration from the trace start (\"30d\", \"12h\", seconds) "
                       "or a date (\"2017-10-01\")", exit_code=2)
    if start is None:
        raise CliError(f"{option} {text!r}: this trace has only relative times; give a duration from its start "
                       "(\"30d\")", exit_code=2)
    return at - start


@click.command("simulate")
@click.option("--trace", "trace_spec", required=True, metavar="FORMAT:PATH",
              help="The job trace: philly:PATH, alibaba:PATH (pod list) or azure-llm:PATH.")
@click.option("--cluster", "cluster_file", required=True, metavar="FILE",
              help="Cluster YAML (kind: Cluster, optional kind: Queue documents); see examples/clusters/.")
@click.option("--policy", "policy_names", default="fifo,sjf,las,drf,default", show_default=True,
              help="Comma-separated policies (profiles) to compare.")
@click.option("--from", "from_", metavar="WHEN", help="Replay jobs submitted from this time (date, or duration from the trace start).")
@click.option("--to", "to", metavar="WHEN", help="... and before this time.")
@click.option("--limit", type=click.IntRange(min=1), help="Replay only the first N jobs (after --from/--to).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of node failures, spot offsets, cycles.")
@click.option("--data", "data", metavar="DIR", help="Where relative data paths of the cluster file are found "
              "[env HYPERION_DATA].")
@click.option("--out", "out", metavar="DIR", default="sim-report", show_default=True,
              help="Where plots, report.html and results.json go.")
@click.option("--no-report", is_flag=True, help="Print the table only; write no files.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
@output_option
def simulate(trace_spec: str, cluster_file: str, policy_names: str, from_: str | None, to: str | None,
             limit: int | None, seed: int, data: str | None, out: str, no_report: bool, progress: bool | None,
             output: str) -> None:
    """Replay a job trace through scheduling policies on a simulated cluster and compare them.

    \b
    Example:
      hyperion simulate --trace philly:$HYPERION_DATA/philly_pollux/philly.csv \\
          --cluster examples/clusters/philly-512.yaml --policy fifo,las,drf,default --from 21d --to 28d
    """
    from hyperion.api.spec import HINT, SpecError
    from hyperion.sim.cluster import ClusterError, load_cluster
    from hyperion.sim.experiment import run
    from hyperion.sim.policies import PolicyError, policies
    from hyperion.sim.progress import Progress
    from hyperion.sim.report import comparison_table, to_json, write_report
    from hyperion.sim.traces import read_trace, window
    from hyperion.sim.traces.base import TraceError

    out_dir = Path(out)
    if not no_report and out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out}: exists and is not a directory; give a directory for the report", exit_code=2)
    try:
        chosen = policies(policy_names)
    except PolicyError as e:
        raise CliError(f"--policy: {e}", exit_code=2) from None
    try:
        cluster = load_cluster(cluster_file, data)
    except SpecError as e:  # the spec's own "file:line: field: message" lines; nothing is submitted here
        message = str(e).removesuffix(HINT) + "fix the fields above and run again"
        raise CliError(message, exit_code=2, plain=True) from None
    except ClusterError as e:
        raise CliError(str(e), exit_code=2) from None
    try:
        trace = read_trace(trace_spec)
    except TraceError as e:
        raise CliError(str(e), exit_code=2) from None
    lo, hi = _instant(from_, "--from", trace.start), _instant(to, "--to", trace.start)
    if lo is not None and hi is not None and hi <= lo:
        raise CliError(f"--to ({to}) must come after --from ({from_})", exit_code=2)
    if lo is not None or hi is not None:
        trace = window(trace, lo, hi)
    if limit is not None:
        trace = replace(trace, jobs=trace.jobs[:limit])
    if not trace.jobs and (lo is not None or hi is not None):
        raise CliError("no job of the trace falls in the window; widen --from/--to", exit_code=2)
    if not trace.jobs:
        skipped = ", ".join(f"{n:,} {why}" for why, n in trace.skipped.items())
        raise CliError(f"{trace_spec}: no job to replay" + (f" (rows skipped: {skipped})" if skipped else ""),
                       exit_code=2)
    results = []
    for p in chosen:
        with Progress(len(trace.jobs), f"{p.name:>8}", enabled=progress) as bar:
            results.append(run(trace, cluster, p, seed, lambda done, total, note: bar.update(done)))
    meta = {"trace": trace.name, "jobs": len(trace.jobs), "cluster": f"{cluster.name} ({cluster_file})",
            "gpus": cluster.gpus, "window": f"{from_ or 'start'} .. {to or 'end'}", "seed": seed,
            "command": "hyperion " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("hyperion") else ""}
    try:
        written = [] if no_report else write_report(results, out_dir, meta)
    except OSError as e:
        raise CliError(f"cannot write the report to {out}: {e.strerror or e}", exit_code=1) from None
    if output == "json":
        click.echo(json.dumps(to_json(results, meta), indent=2))
        return
    click.echo(f"{trace.name}: {len(trace.jobs):,} jobs on {cluster.name} ({cluster.gpus:,} GPUs), seed {seed}")
    click.echo(comparison_table(results))
    for r in results:
        never, stuck = int(r.metrics.get("jobs_unplaceable", 0)), int(r.metrics.get("jobs_unfinished", 0))
        if never or stuck:
            click.echo(f"note: {r.policy}: " + "; ".join(
                text for n, text in ((never, f"{never:,} job(s) fit no node of this cluster (never replayed)"),
                                     (stuck, f"{stuck:,} job(s) could never start (quota)")) if n))
    if written:
        click.echo(f"report: {out_dir / 'report.html'} (plots and results.json beside it)")


COMMANDS = [simulate]
