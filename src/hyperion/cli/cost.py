"""``hyperion cost`` and ``hyperion budgets``: what teams (or jobs) spent, and how their budgets stand.

Times for ``--from``/``--to``: ISO-8601 with a timezone (``2026-12-01T00:00:00Z``), a date
(``2026-12-01``, midnight UTC), seconds since the epoch, or an age (``7d``, ``12h``, ``30m``: that
long before now).
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime
from typing import Any

import click

from hyperion.cli.context import CliError, CliState
from hyperion.cli.output import dump_json, iso_time, render_table

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
COLUMNS = ("cost_usd", "gpu_hours", "energy_kwh", "carbon_kg")


def parse_when(text: str | None, option: str, now: float) -> float | None:
    if text is None:
        return None
    t = text.strip()
    m = _AGE.match(t)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(t)
    except ValueError:
        pass
    when = iso_time(t)
    if when is None:
        raise CliError(f"{option}: {text!r} is not a time; give an ISO-8601 time (2026-12-01T00:00:00Z), a date "
                       "(2026-12-01), seconds since the epoch, or an age (7d, 12h)", exit_code=2)
    return when


def _num(v: float) -> str:
    """Two decimals for amounts of 10 and more, four below (a short demo costs fractions of a cent)."""
    return f"{v:,.2f}" if abs(v) >= 10 else f"{v:.4f}"


def _row(item: dict[str, Any], key: str) -> list[Any]:
    return [item[key], *(_num(item[c]) for c in COLUMNS)]


@click.command()
@click.option("--team", help="One team (a team's token sees only its own).")
@click.option("--from", "start", help="Start of the range (default: the beginning).")
@click.option("--to", "end", help="End of the range (default: now).")
@click.option("--by", type=click.Choice(["team", "job"]), default="team", show_default=True,
              help="One row per team, or per job (jobs are kept per UTC day).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_obj
def cost(state: CliState, team: str | None, start: str | None, end: str | None, by: str, output: str) -> None:
    """Cost (USD), GPU-hours, energy (kWh) and carbon (kg CO2e) accrued by teams or jobs."""
    now = time.time()
    body = state.client().cost(team, parse_when(start, "--from", now), parse_when(end, "--to", now), by)
    items = body.get("items") or []
    key = "team" if by == "team" else "job"
    if output == "json":
        click.echo(dump_json(body))
    elif output == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        head = [key, *(["name", "team"] if by == "job" else []), *COLUMNS]
        w.writerow(head)
        for item in items:
            w.writerow([item.get(h) for h in head])
        click.echo(buf.getvalue(), nl=False)
    else:
        rows = [_row(i, key) for i in items]
        total = body.get("total") or {}
        if len(rows) > 1:
            rows.append(_row({key: "TOTAL", **total}, key))
        click.echo(render_table((key.upper(), "COST $", "GPU-H", "ENERGY KWH", "CARBON KG"), rows))


@click.command()
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def budgets(state: CliState, output: str) -> None:
    """Budgets: spent, limit and share used this period."""
    body = state.client().budgets()
    if output == "json":
        click.echo(dump_json(body))
        return
    rows = []
    for b in body.get("items") or []:
        unit = "$" if b["resource"] == "usd" else "GPU-h "
        ends = datetime.fromtimestamp(b["period_end"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows.append([b["name"], b["team"], b["period"], f"{unit}{b['spent']:.2f}", f"{unit}{b['limit']:.2f}",
                     f"{b['ratio']:.0%}", b["action"], ends])
    click.echo(render_table(("BUDGET", "TEAM", "PERIOD", "SPENT", "LIMIT", "USED", "ACTION", "PERIOD ENDS"), rows))


COMMANDS = (cost, budgets)
