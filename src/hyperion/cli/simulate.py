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
@click.option("--cluster", "cluster_file", metavar="FILE",
              help="Cluster YAML (kind: Cluster with nodes, optional kind: Queue documents); see examples/clusters/.")
@click.option("--federation", "federation_files", metavar="FILE", multiple=True,
              help="Instead of --cluster: a federation, one kind: Cluster document per member (examples/federation.yaml); "
              "repeat to combine files.")
@click.option("--carbon", "carbon_dir", metavar="DIR", help="With --federation: hourly carbon series, <GRID_ZONE>_*.csv[.gz] "
              "(Electricity Maps format), e.g. $HYPERION_DATA/carbon_electricitymaps_hourly.")
@click.option("--policy", "policy_names", default=None,
              help="Comma-separated policies to compare [default: fifo,sjf,las,drf,default; with --federation: "
              "cheapest,default,carbon-spatial,carbon-temporal,carbon-oracle].")
@click.option("--from", "from_", metavar="WHEN", help="Replay jobs submitted from this time (date, or duration from the trace "
              "start). With --federation: the first date of the grid data's window; the trace is aligned to it.")
@click.option("--to", "to", metavar="WHEN", help="... and before this time (with --federation: a date, default --from + 7 days).")
@click.option("--trace-from", "trace_from", metavar="WHEN", help="With --federation: where in the trace the replay starts "
              "(date, or duration from its start); that point is aligned to --from.")
@click.option("--slack", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="With --federation: deadlines are submission + (1 + SLACK) x the job's duration.")
@click.option("--forecast", type=click.Choice(["same-hour-yesterday", "weekly"]), default="same-hour-yesterday",
              show_default=True, help="With --federation: the carbon forecast the non-oracle policies see.")
@click.option("--limit", type=click.IntRange(min=1), help="Replay only the first N jobs (after --from/--to).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of node failures, spot offsets, cycles.")
@click.option("--data", "data", metavar="DIR", help="Where relative data paths of the cluster file are found "
              "[env HYPERION_DATA].")
@click.option("--out", "out", metavar="DIR", default="sim-report", show_default=True,
              help="Where plots, report.html and results.json go.")
@click.option("--no-report", is_flag=True, help="Print the table only; write no files.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
@output_option
def simulate(trace_spec: str, cluster_file: str | None, federation_files: tuple[str, ...], carbon_dir: str | None,
             policy_names: str | None, from_: str | None, to: str | None, trace_from: str | None, slack: float,
             forecast: str, limit: int | None, seed: int, data: str | None, out: str, no_report: bool,
             progress: bool | None, output: str) -> None:
    """Replay a job trace through scheduling policies on a simulated cluster and compare them.

    \b
    Example:
      hyperion simulate --trace philly:$HYPERION_DATA/philly_pollux/philly.csv \\
          --cluster examples/clusters/philly-512.yaml --policy fifo,las,drf,default --from 21d --to 28d
      hyperion simulate --trace philly:$HYPERION_DATA/philly_pollux/philly.csv \\
          --federation examples/federation.yaml --carbon $HYPERION_DATA/carbon_electricitymaps_hourly \\
          --from 2022-03-07 --to 2022-03-14 --trace-from 28d
    """
    if (cluster_file is None) == (not federation_files):
        raise CliError("give either --cluster FILE (one simulated cluster) or --federation FILE (several)", exit_code=2)
    if federation_files:
        _federation(trace_spec, list(federation_files), carbon_dir, policy_names, from_, to, trace_from, slack, forecast,
                    limit, seed, out, no_report, progress, output)
        return
    for flag, value in (("--carbon", carbon_dir), ("--trace-from", trace_from)):
        if value is not None:
            raise CliError(f"{flag} goes with --federation", exit_code=2)
    policy_names = policy_names or "fifo,sjf,las,drf,default"
    from hyperion.sim.cluster import load_cluster
    from hyperion.sim.experiment import run
    from hyperion.sim.policies import PolicyError, policies
    from hyperion.sim.progress import Progress
    from hyperion.sim.report import comparison_table, to_json, write_report
    from hyperion.sim.traces import read_trace, window

    out_dir = Path(out)
    if not no_report and out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out}: exists and is not a directory; give a directory for the report", exit_code=2)
    try:
        chosen = policies(policy_names)
    except PolicyError as e:
        raise CliError(f"--policy: {e}", exit_code=2) from None
    cluster = _loaded(load_cluster, cluster_file, data)
    trace = _loaded(read_trace, trace_spec)
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


FED_METRICS = ("jobs_finished", "cost_usd", "carbon_kg", "energy_kwh", "jct_mean_s", "jct_p99_s", "queue_delay_mean_s",
               "deadline_misses", "jobs_shifted", "jobs_burst")


def _loaded(load, *args):
    """``load(*args)``, its bad input as one CLI error (exit 2): a spec's "file:line: field:
    message" lines as they are, any other reader's ``ValueError`` (trace, cluster, federation,
    policy) as its message. Nothing is submitted here."""
    from hyperion.api.spec import HINT, SpecError

    try:
        return load(*args)
    except SpecError as e:
        raise CliError(str(e).removesuffix(HINT) + "fix the fields above and run again", exit_code=2, plain=True) from None
    except ValueError as e:
        raise CliError(str(e), exit_code=2) from None


def _date(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    at = iso_time(text)
    if at is None:
        raise CliError(f"{option} {text!r}: expected a date of the grid data's window, e.g. 2022-03-07", exit_code=2)
    return at


def _federation(trace_spec: str, federation_files: list[str], carbon_dir: str | None, policy_names: str | None,
                from_: str | None, to: str | None, trace_from: str | None, slack: float, forecast: str,
                limit: int | None, seed: int, out: str, no_report: bool, progress: bool | None, output: str) -> None:
    """``simulate --federation``: the federation policies on a trace aligned to the grid data's window."""
    from hyperion.sim.federation import FederationError, FederationRun, align, fed_policies, load_federation
    from hyperion.sim.progress import Progress
    from hyperion.sim.report import comparison_table, to_json, write_report
    from hyperion.sim.traces import read_trace, window

    start = _date(from_, "--from")
    if start is None:
        raise CliError("--federation needs --from DATE: the first day of the grid data to replay the trace in", exit_code=2)
    end = _date(to, "--to") if to is not None else start + 7 * 86400
    if end <= start:
        raise CliError(f"--to ({to}) must come after --from ({from_})", exit_code=2)
    chosen = _loaded(fed_policies, policy_names or "cheapest,default,carbon-spatial,carbon-temporal,carbon-oracle")
    federation = _loaded(load_federation, federation_files, carbon_dir)
    trace = _loaded(read_trace, trace_spec)
    skip = _instant(trace_from, "--trace-from", trace.start)
    if skip is not None:
        trace = window(trace, skip, None)
    try:
        trace = align(trace, start, end)
    except FederationError as e:
        raise CliError(str(e), exit_code=2) from None
    if limit is not None:
        trace = replace(trace, jobs=trace.jobs[:limit])
    if not trace.jobs:
        raise CliError("no job of the trace falls in the window once aligned; widen --from/--to or move --trace-from",
                       exit_code=2)
    results = []
    for p in chosen:
        runner = FederationRun(trace, federation, p, slack=slack, forecast=forecast, seed=seed)
        with Progress(len(trace.jobs), f"{p.name:>15}", enabled=progress) as bar:
            results.append(runner.run(lambda done, total: bar.update(done)))
    assert trace.start is not None
    meta = {"trace": trace.name, "jobs": len(trace.jobs), "federation": ", ".join(federation_files),
            "members": ", ".join(f"{m.name} ({m.provider} {m.region}, {sum(m.gpus.values())} GPUs)" for m in federation.members),
            "window": f"{iso(start)} .. {iso(end)} (trace aligned: first job {iso(trace.start + trace.jobs[0].submit_s)})",
            "carbon": carbon_dir or "static intensities", "forecast": forecast, "deadline slack": slack, "seed": seed,
            "accounting": "location-based (grid average intensity where and when the energy is drawn)",
            "command": "hyperion " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("hyperion") else ""}
    try:
        written = [] if no_report else write_report(results, Path(out), meta)
    except OSError as e:
        raise CliError(f"cannot write the report to {out}: {e.strerror or e}", exit_code=1) from None
    if output == "json":
        click.echo(json.dumps(to_json(results, meta), indent=2))
        return
    click.echo(f"{trace.name}: {len(trace.jobs):,} jobs over {len(federation.members)} clusters "
               f"({federation.capacity:,} GPUs), {iso(start)} .. {iso(end)}, seed {seed}")
    click.echo(comparison_table(results, FED_METRICS))
    click.echo(relative_lines(results))
    for r in results:
        unfinished = int(r.metrics.get("jobs_unfinished", 0)) + int(r.metrics.get("jobs_unplaceable", 0))
        if unfinished:
            click.echo(f"note: {r.policy}: {unfinished:,} job(s) fit no member (more GPUs than any cluster has)")
    if written:
        click.echo(f"report: {Path(out) / 'report.html'} (plots and results.json beside it)")


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def relative_lines(results: list) -> str:
    """Each policy's cost and CO2 against the carbon-agnostic ``default`` (when it ran)."""
    base = next((r for r in results if r.policy == "default"), None)
    if base is None or not base.metrics.get("carbon_kg") or not base.metrics.get("cost_usd"):
        return ""
    lines = ["against default (carbon-agnostic):"]
    for r in results:
        if r is base:
            continue
        co2 = r.metrics["carbon_kg"] / base.metrics["carbon_kg"] - 1
        usd = r.metrics["cost_usd"] / base.metrics["cost_usd"] - 1
        lines.append(f"  {r.policy:<16} CO2 {co2:+.1%}  cost {usd:+.1%}")
    return "\n".join(lines)


COMMANDS = [simulate]
