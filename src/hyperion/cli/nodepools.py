"""``hyperion nodepools``: node pools (``kind: NodePool``) and the instances the autoscaler
launched for them, with their lifecycle states (docs/autoscaling.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import click

from hyperion.cli.context import CliState
from hyperion.cli.output import age_since, dump_json, output_option, render_table

POOL_COLUMNS = ("NAME", "PROVIDER", "MIN", "MAX", "IDLE-TIMEOUT", "LIVE", "STATES", "STATUS")
INSTANCE_COLUMNS = ("POOL", "INSTANCE", "STATE", "TYPE", "GPUS", "NODE", "AGE", "IDLE", "REASON")
LIVE = frozenset({"requested", "launching", "booting", "ready", "draining"})


def pools_table(pools: Sequence[dict[str, Any]]) -> str:
    rows = []
    for p in pools:
        states = Counter(i["state"] for i in p.get("instances") or [])
        rows.append([p["name"], p.get("provider", "-"), p.get("min_nodes", "-"), p.get("max_nodes", "-"),
                     f"{p['idle_timeout_s']:g}s" if "idle_timeout_s" in p else "-",
                     sum(n for s, n in states.items() if s in LIVE),
                     ", ".join(f"{s}: {n}" for s, n in sorted(states.items())) or "-", p.get("status") or "-"])
    return render_table(POOL_COLUMNS, rows)


def instances_table(pools: Sequence[dict[str, Any]], now: float, show_ended: bool) -> str:
    rows = []
    for p in pools:
        for i in p.get("instances") or []:
            if not show_ended and i["state"] not in LIVE and i["state"] != "failed":
                continue
            idle = age_since(i.get("idle_since"), now) if i.get("idle_since") is not None else "-"
            rows.append([p["name"], i["id"], i["state"], i["instance_type"], i["gpus"], i.get("node_id") or "-",
                         age_since(i.get("created_at"), now), idle, (i.get("reason") or "")[:60]])
    return render_table(INSTANCE_COLUMNS, rows)


@click.command("nodepools")
@click.option("--delete", "delete", metavar="NAME", help="remove this node pool (admin); its instances are terminated")
@click.option("--all", "show_ended", is_flag=True, help="also list terminated instances")
@output_option
@click.pass_obj
def nodepools(state: CliState, delete: str | None, show_ended: bool, output: str) -> None:
    """List node pools (kind: NodePool) and the instances the autoscaler launched for them."""
    if delete:
        body = state.client().delete_nodepool(delete)
        click.echo(dump_json(body) if output == "json" else f"nodepool/{delete} deleted")
        return
    body = state.client().list_nodepools()
    if output == "json":
        click.echo(dump_json(body))
        return
    items = body.get("items") or []
    if not items:
        click.echo("no node pools: nodes come from agents you start (apply a kind: NodePool to autoscale; "
                   "docs/autoscaling.md)", err=True)
        return
    click.echo(pools_table(items))
    if any(p.get("instances") for p in items):
        click.echo("")
        click.echo(instances_table(items, time.time(), show_ended))


COMMANDS = (nodepools,)
