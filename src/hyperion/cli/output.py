"""Turning API objects into what the terminal shows: tables, detail views and clean JSON.

Everything here is a pure function from plain dicts (and an explicit ``now``) to strings, so the
formats are tested without a server. Conventions, after kubectl:

- ages are one unit, rounded down: ``5s``, ``3m``, ``2h``, ``4d``; unknown is ``-``;
- memory is binary gigabytes: ``16Gi``, ``7.5Gi``;
- queue amounts are ``key=amount`` joined by commas: ``gpus/A100=8,cpus=64,memory=256Gi``;
- tables are left-aligned columns separated by three spaces, upper-case headers;
- ``-o json`` output is JSON only (indented), nothing else on stdout.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from typing import Any

import click
import orjson
import yaml

JOB_COLUMNS = ("ID", "NAME", "TEAM", "PHASE", "PRIORITY", "GPUS", "NODE", "AGE", "REASON")
NODE_COLUMNS = ("ID", "STATE", "GPUS", "FREE", "GPU-TYPE", "CPUS", "MEMORY", "CPU%", "AGE")
QUEUE_COLUMNS = ("NAME", "COHORT", "WEIGHT", "QUOTA", "USAGE", "PENDING")
REASON_WIDTH = 48
TERMINAL_PHASES = frozenset({"succeeded", "failed", "cancelled"})

# Fields shown first, in this order, by ``job_detail``; any others follow alphabetically.
JOB_DETAIL_ORDER = (
    "id", "name", "team", "user", "phase", "exit_code", "priority", "queue", "replicas", "gpus",
    "attempt", "node", "nodes", "submitted_at", "started_at", "attempt_started_at", "finished_at", "reason",
)
_TIME_FIELDS = frozenset({"submitted_at", "started_at", "attempt_started_at", "finished_at", "last_seen",
                          "created_at", "registered_at", "updated_at", "scheduled_at", "last_checkpoint_at"})


def dump_json(value: Any) -> str:
    """Indented JSON text for ``-o json`` (non-str keys and odd types are stringified)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode()


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def age_since(timestamp: float | None, now: float) -> str:
    return "-" if timestamp is None else format_age(now - timestamp)


def format_memory(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "-"
    gib = num_bytes / 2**30
    text = f"{gib:.0f}" if gib >= 10 else f"{gib:.1f}".removesuffix(".0")
    return f"{text}Gi"


def format_number(value: Any) -> str:
    """``16`` for 16.0, ``0.5`` for 0.5, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_time(timestamp: float | None, now: float) -> str:
    """``2025-01-02 13:04:05 (3m ago)`` in local time; ``-`` when unset."""
    if timestamp is None:
        return "-"
    when = _dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    if timestamp > now + 0.5:
        return f"{when} (in {format_age(timestamp - now)})"
    return f"{when} ({format_age(now - timestamp)} ago)"


def truncate(text: str, width: int) -> str:
    text = " ".join(str(text).split())  # one line in a table cell
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None or c == "" else str(c) for c in row]
                                           for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def job_gpus(job: dict[str, Any]) -> str:
    """Total GPUs as ``4`` for one replica, ``2x4`` for two replicas of 4."""
    gpus, replicas = job.get("gpus"), job.get("replicas") or 1
    if gpus is None:
        return "-"
    return f"{replicas}x{gpus}" if replicas > 1 else str(gpus)


def job_node(job: dict[str, Any]) -> str:
    nodes = [n for n in (job.get("nodes") or []) if n]
    if not nodes:
        return job.get("node") or "-"
    return nodes[0] if len(nodes) == 1 else f"{nodes[0]}+{len(nodes) - 1}"


def job_row(job: dict[str, Any], now: float) -> list[str]:
    return [
        job.get("id", "-"), job.get("name") or "-", job.get("team") or "-", job.get("phase", "-"),
        str(job.get("priority", "-")), job_gpus(job), job_node(job),
        age_since(job.get("submitted_at"), now), truncate(job.get("reason") or "", REASON_WIDTH),
    ]


def jobs_table(jobs: Sequence[dict[str, Any]], now: float) -> str:
    return render_table(JOB_COLUMNS, [job_row(j, now) for j in jobs])


def node_state(node: dict[str, Any]) -> str:
    state = node.get("state", "-")
    if node.get("condition"):
        state += ",unhealthy"
    return f"{state},cordoned" if node.get("cordoned") else state


def node_row(node: dict[str, Any], now: float) -> list[str]:
    metrics = node.get("metrics") or {}
    cpu = metrics.get("cpu_utilization_percent")
    born = next((node[k] for k in ("registered_at", "created_at", "joined_at") if node.get(k)), None)
    return [
        node.get("id", "-"), node_state(node), str(node.get("gpus", "-")),
        str(node.get("free_gpus", "-")), node.get("gpu_type") or "-", format_number(node.get("cpus")),
        format_memory(node.get("memory")), "-" if cpu is None else f"{cpu:.0f}%",
        age_since(born, now),
    ]


def nodes_table(nodes: Sequence[dict[str, Any]], now: float) -> str:
    return render_table(NODE_COLUMNS, [node_row(n, now) for n in nodes])


def format_amounts(amounts: dict[str, Any] | None) -> str:
    """Resource-key amounts as the API gives them (millicores, bytes) the way people read them."""
    def one(key: str, value: Any) -> str:
        if key == "cpus" and isinstance(value, (int, float)):
            return f"cpus={format_number(value / 1000)}"
        if key == "memory" and isinstance(value, (int, float)):
            return f"memory={format_memory(value)}"
        return f"{key}={value}"
    return ",".join(one(k, v) for k, v in (amounts or {}).items()) or "-"


def queue_row(queue: dict[str, Any]) -> list[str]:
    return [
        queue.get("name", "-"), queue.get("cohort") or "-", format_number(queue.get("weight")),
        format_amounts(queue.get("nominal")), format_amounts(queue.get("usage")), str(queue.get("pending", 0)),
    ]


def queues_table(queues: Sequence[dict[str, Any]]) -> str:
    return render_table(QUEUE_COLUMNS, [queue_row(q) for q in queues])


def _detail_value(key: str, value: Any, now: float) -> str:
    if value is None or value == "":
        return "-"
    if key in _TIME_FIELDS and isinstance(value, (int, float)):
        return format_time(value, now)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode() if value else "-"
    return str(value)


def job_detail(job: dict[str, Any], now: float) -> str:
    """The human view of ``hyperion status``: every field, then placements, the reason and the
    spec as submitted."""
    sections = ("placements", "reason", "spec", "federation")
    keys = [k for k in JOB_DETAIL_ORDER if k in job and k not in sections]
    keys += sorted(k for k in job if k not in JOB_DETAIL_ORDER and k not in sections)
    width = max((len(k) for k in keys), default=0) + 2
    lines = [f"{(k + ':').ljust(width)}{_detail_value(k, job[k], now)}" for k in keys]
    placements = job.get("placements") or []
    lines.append("")
    if placements:
        lines.append("Placements:")
        rows = [[p.get("rank", "-"), p.get("node") or "-", _gpu_list(p.get("gpus"))]
                for p in sorted(placements, key=lambda p: p.get("rank", 0))]
        lines += ["  " + line for line in render_table(("RANK", "NODE", "GPUS"), rows).splitlines()]
    else:
        lines.append("Placements: none")
    lines.append("")
    lines.append(f"Reason: {job.get('reason') or '-'}")
    if job.get("federation"):
        lines += ["", *federation_lines(job["federation"], now)]
    if job.get("spec"):
        spec = yaml.safe_dump(job["spec"], sort_keys=False, default_flow_style=False).rstrip()
        lines += ["", "Spec:"] + ["  " + line for line in spec.splitlines()]
    return "\n".join(lines)


def _gpu_list(gpus: Any) -> str:
    if isinstance(gpus, (list, tuple)):
        return ",".join(str(g) for g in gpus) or "-"
    return "-" if gpus is None else str(gpus)


_EPOCH = re.compile(r"\bt=(\d{9,11}(?:\.\d+)?)\b")


def _epochs_as_times(text: str, now: float) -> str:
    """A scheduler reason with its epoch instants (``t=1796600658``, as the core writes them: it
    reads no clock or timezone) shown as local times."""
    return _EPOCH.sub(lambda m: format_time(float(m.group(1)), now), text)


def federation_lines(f: dict[str, Any], now: float) -> list[str]:
    """The federation's decision for a job: member, GPU type, market, delay, expected cost and
    carbon, and every member it did not choose because a hard constraint failed there."""
    gpu = f" {f['gpu_type']}" if f.get("gpu_type") else ""
    lines = [f"federation: member {f['cluster']}{gpu} {f.get('market', 'on-demand')} (profile {f.get('profile', '-')})"]
    if f.get("burst_from"):
        wait = f.get("burst_wait_s")
        lines.append(f"  burst from {f['burst_from']} (expected wait there: "
                     f"{format_age(wait) if wait is not None else 'unknown'})")
    if f.get("start_after") is not None:
        lines.append(f"  starts after: {format_time(f['start_after'], now)}"
                     + (f" (waits {format_age(f['start_delay_s'])} for {f['waits_for']})" if f.get("waits_for") else ""))
    usd, carbon = f.get("expected_usd"), f.get("expected_carbon_g")
    lines.append(f"  expected: {'$' + format(usd, ',.2f') if usd is not None else 'cost unknown'}, "
                 f"{format(carbon, ',.0f') + ' g CO2' if carbon is not None else 'carbon unknown'}"
                 + (f", score {f['score']:.3f}" if f.get("score") is not None else ""))
    for r in f.get("rejected") or []:
        lines.append(f"  rejected {r['cluster']}: {r['reason']}")
    return lines


def explanation(e: dict[str, Any], now: float) -> str:
    """`hyperion explain` for people."""
    lines = [f"{e['id']} ({e['team']}): {e['phase']}"]
    if e.get("federation"):
        lines += federation_lines(e["federation"], now)
    if e["phase"] != "pending" or "position" not in e:
        if e.get("reason"):
            lines.append(f"reason: {e['reason']}")
        return "\n".join(lines)
    lines.append(f"position: {e['position']} of {e['pending']} pending ({e['ahead_total']} ahead)")
    if e.get("queue"):
        lines.append(f"queue: {e['queue']}, position {e['queue_position']} of {e['queue_pending']} pending there")
    if e.get("verdict"):
        lines.append(f"verdict: {e['verdict']}")
    for r in e.get("reasons", []):
        lines.append(f"  [{r['plugin']}] {_epochs_as_times(r['reason'], now)}")
    if e.get("estimated_start") is not None:
        lines.append(f"estimated start: {format_time(e['estimated_start'], now)}  ({e['estimate_basis']})")
    else:
        lines.append(f"estimated start: unknown ({e['estimate_basis']})")
    if e.get("burst"):
        b = e["burst"]
        lines.append(f"bursting: to another member once the expected wait on {b['member']} passes "
                     f"{format_age(b['after_s'])} or would cost its deadline" + (f"; {b['note']}" if b.get("note") else ""))
    if e.get("ahead"):
        lines.append("ahead of it:")
        rows = [[a["id"] or "(another team's job)", a["team"], a["priority"], a["gpus"]] for a in e["ahead"]]
        lines.append(render_table(["ID", "TEAM", "PRIORITY", "GPUS"], rows))
    return "\n".join(lines)


def wait_exit_code(job: dict[str, Any]) -> int:
    """The process exit code for ``submit --wait``: the job's own, 1 if it failed without one,
    130 if it was cancelled."""
    phase, code = job.get("phase"), job.get("exit_code")
    if phase == "cancelled":
        return 130
    if isinstance(code, int) and not isinstance(code, bool):
        code = 128 - code if code < 0 else code  # killed by signal N -> 128+N, as shells do
        code = code if code <= 255 else 1
    else:
        code = 0
    if phase == "failed" and code == 0:
        return 1
    return code


def iso_time(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 date or time ("2026-12-01", "2026-12-01T18:00:00Z"), read as
    UTC when it names no timezone; None when ``text`` is not one."""
    try:
        at = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=_dt.UTC)).timestamp()


def output_option(command: Any) -> Any:
    """The ``-o/--output table|json`` option every read command takes."""
    return click.option("-o", "--output", "output", type=click.Choice(["table", "json"]),
                        default="table", show_default=True,
                        help="table for people, json for scripts (JSON only on stdout).")(command)


CLUSTER_COLUMNS = ("NAME", "PROVIDER", "REGION", "GRID ZONE", "CAPACITY", "COMMITTED", "NODES", "$/GPU-H", "gCO2/kWh")


def clusters_table(members: Sequence[dict[str, Any]]) -> str:
    """``hyperion clusters``: the federation's members."""
    def amounts(m: dict[str, Any] | None) -> str:
        return ", ".join(f"{t}: {n}" for t, n in sorted((m or {}).items())) or "-"

    def prices(m: dict[str, Any] | None) -> str:
        return ", ".join(f"{t}: {p:.2f}" for t, p in sorted((m or {}).items())) or "-"

    rows = [[c["name"], c["provider"], c["region"], c.get("grid_zone") or "-", amounts(c.get("capacity")),
             amounts(c.get("committed")), c.get("nodes", 0), prices(c.get("usd_per_gpu_hour")),
             "-" if c.get("carbon_g_per_kwh") is None else f"{c['carbon_g_per_kwh']:.0f}"]
            for c in members]
    return render_table(CLUSTER_COLUMNS, rows)
