"""Cluster objects: ``apply`` (teams, queues), ``nodes``, ``queues``, and reading the YAML
documents that ``apply`` and ``submit`` send.

The schema check runs locally first (``hyperion.api.spec.load_documents``) so a mistake is reported
as ``file:line: field.path: message`` before anything is sent; the server validates again. What is
sent is each document's *raw* mapping as written (``yaml.safe_load_all``), not the parsed model, so
defaults stay the server's to fill in.

``apply`` is the only command that prints a secret: when the server generates a team token it
comes back once in the apply result and is shown once, with a note to store it.

Glossary: a *RawDocument* is one YAML document as a plain dict plus its kind (``Job``, ``Team``,
``Queue``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import click
import yaml

from hyperion.cli.context import CliError, CliState
from hyperion.cli.output import clusters_table, dump_json, nodes_table, output_option, queues_table

STDIN = "-"


@dataclass(frozen=True)
class RawDocument:
    kind: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        metadata = self.body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return str(name or self.body.get("name") or "?")


def read_source(path: str) -> tuple[str, str]:
    """``(text, source name)`` for a path or ``-`` (stdin); unreadable -> ``CliError`` (exit 2)."""
    if path == STDIN:
        return sys.stdin.read(), "<stdin>"
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), path
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", exit_code=2) from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, expected a YAML file", exit_code=2) from None
    except UnicodeDecodeError as err:
        raise CliError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})",
                       exit_code=2) from None
    except OSError as err:
        raise CliError(f"{path}: cannot read: {err.strerror or err}", exit_code=2) from None


def load_raw_documents(text: str, source: str) -> list[RawDocument]:
    """Validate ``text`` with the schema, then return its documents as raw dicts with their kind.

    A schema error becomes a ``CliError`` whose message is the spec's own multi-line
    ``file:line: ...`` text, printed as is, with exit code 2.
    """
    from hyperion.api.spec import SpecError, load_documents  # lazy: pydantic only when needed

    try:
        parsed = load_documents(text, source=source)
    except SpecError as err:
        raise CliError(str(err), exit_code=2, plain=True) from None
    try:
        raws = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:  # the schema accepted it, so this should not happen
        raise CliError(f"{source}: {err}", exit_code=2) from None
    if not parsed or not raws:
        raise CliError(f"{source}: no documents found", exit_code=2)
    bodies = [r if isinstance(r, dict) else {} for r in raws]
    if len(parsed) == len(bodies):
        return [RawDocument(str(doc.kind), body) for doc, body in zip(parsed, bodies, strict=True)]
    # The schema counted documents differently (it may skip some we kept): trust the raw kinds.
    return [RawDocument(str(body.get("kind", "Job")), body) for body in bodies]


def read_documents(path: str) -> list[RawDocument]:
    text, source = read_source(path)
    return load_raw_documents(text, source)


@click.command()
@click.option("-f", "--filename", "file", required=True, metavar="FILE.yaml|-",
              help="YAML file with Team and Queue documents; - reads stdin.")
@output_option
@click.pass_obj
def apply(state: CliState, file: str, output: str) -> None:
    """Create or update the objects in FILE.yaml (teams, queues and their quotas)."""
    documents = read_documents(file)
    body = state.client().apply([d.body for d in documents])
    if output == "json":
        click.echo(dump_json(body))
        return
    for result in body.get("results") or []:
        kind = str(result.get("kind", "object")).lower()
        click.echo(f"{kind}/{result.get('name', '?')} {result.get('action', 'applied')}")
        if result.get("token"):
            click.echo(f"token: {result['token']} (shown once; store it)")


@click.command()
@output_option
@click.pass_obj
def nodes(state: CliState, output: str) -> None:
    """List the nodes the control plane knows, with free GPUs and load."""
    body = state.client().list_nodes()
    if output == "json":
        click.echo(dump_json(body))
        return
    items = body.get("items") or []
    if not items:
        click.echo("no nodes registered (start local agents with `hyperion up`)", err=True)
        return
    click.echo(nodes_table(items, now=time.time()))
    for node in items:
        if node.get("condition"):
            click.echo(f"{node['id']}: unhealthy, takes no new work: {node['condition']}")


@click.command()
@output_option
@click.pass_obj
def queues(state: CliState, output: str) -> None:
    """List queues: cohort, weight, quota, what their jobs hold now, how many jobs wait."""
    body = state.client().list_queues()
    if output == "json":
        click.echo(dump_json(body))
        return
    click.echo(queues_table(body.get("items") or []))


@click.command()
@click.option("--delete", "delete", metavar="NAME", help="remove this member (admin)")
@output_option
@click.pass_obj
def clusters(state: CliState, delete: str | None, output: str) -> None:
    """List the federation's members (kind: Cluster): capacity, GPUs committed, price, carbon now."""
    if delete:
        body = state.client().delete_cluster(delete)
        click.echo(dump_json(body) if output == "json" else f"cluster/{delete} deleted")
        return
    body = state.client().list_clusters()
    if output == "json":
        click.echo(dump_json(body))
        return
    items = body.get("items") or []
    if not items:
        click.echo("no federation members: jobs run on this cluster's nodes (apply kind: Cluster documents "
                   "to federate; docs/federation.md)", err=True)
        return
    click.echo(clusters_table(items))
    click.echo(f"profile: {body.get('profile')}")


COMMANDS = (apply, nodes, queues, clusters)
