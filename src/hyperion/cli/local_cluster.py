"""The ``up`` and ``down`` commands: a whole cluster on this machine, one data dir each.

The process mechanics (start detached, wait, signal) live in ``cli.daemon``; this module decides
what to say. Everything ``up`` prints is safe to paste: the admin token's *path*, never the token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from hyperion.cli.context import (
    LOG_FILE,
    CliError,
    CliState,
    read_controlplane,
    resolve_data_dir,
)
from hyperion.cli.daemon import (
    DEFAULT_OPTIONS,
    READY_TIMEOUT_S,
    STOP_GRACE_S,
    admin_token_path,
    is_ours,
    load_config,
    merge_options,
    running_controlplane,
    save_config,
    start_daemon,
    stop_local_agents,
    stop_process,
    wait_healthy,
    wait_nodes_ready,
)

CLUSTER_ID_FILE = "cluster-id"  # in the data dir: the id this installation tags its cloud resources with


def _default(name: str) -> str:
    return f"[default: {DEFAULT_OPTIONS[name]}, or as at the last `up`]"


@click.command()
@click.option("--agents", type=click.IntRange(min=0), help=f"Local agents (nodes) to run. {_default('agents')}")
@click.option("--gpus-per-agent", type=click.IntRange(min=0),
              help=f"GPUs each local agent reports. {_default('gpus_per_agent')}")
@click.option("--gpu-type", help="GPU model the local agents report (e.g. A100).")
@click.option("--host", help=f"Address the API listens on. {_default('host')}")
@click.option("--port", type=click.IntRange(0, 65535),
              help=f"REST API port; 0 picks a free one. {_default('port')}")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help=f"gRPC port; 0 picks a free one. {_default('grpc_port')}")
@click.option("--federation-profile", type=click.Choice(["cheapest", "default", "carbon-spatial", "carbon-temporal"]),
              help=f"How the federation picks a member cluster for each job. {_default('federation_profile')}")
@click.option("--carbon-dir", type=click.Path(exists=True, file_okay=False),
              help="Hourly carbon series <GRID_ZONE>_*.csv[.gz] the federation forecasts from.")
@click.option("--forecast", type=click.Choice(["same-hour-yesterday", "weekly"]),
              help=f"The federation's carbon forecast. {_default('forecast')}")
@click.option("--aws-region", metavar="REGION", help="Region `provider: aws` node pools launch in (docs/aws.md).")
@click.option("--aws-endpoint-url", metavar="URL", help="EC2/SQS endpoint instead of AWS's (tests: a moto server).")
@click.option("--aws-sqs-queue-url", metavar="URL", help="SQS queue with EC2 spot interruption and rebalance events.")
@click.option("--aws-ami", metavar="AMI", help="Image the instances boot (id or resolve:ssm:...).")
@click.option("--aws-subnet", "aws_subnets", multiple=True, metavar="ID", help="Subnet to launch in; repeatable.")
@click.option("--aws-security-group", "aws_security_groups", multiple=True, metavar="ID", help="Repeatable.")
@click.option("--aws-instance-profile", metavar="NAME|ARN", help="IAM instance profile of the instances.")
@click.option("--aws-key-name", metavar="NAME", help="EC2 key pair of the instances.")
@click.option("--aws-control-plane-address", metavar="HOST:PORT",
              help="gRPC address the instances' agents dial (default: the control plane's own).")
@click.pass_obj
def up(state: CliState, **given: Any) -> None:
    """Start a control plane and local agents for the data dir (does nothing if already up)."""
    data_dir = state.data_dir.resolve()
    info, is_healthy = running_controlplane(data_dir)
    if info is not None:
        if not is_healthy:
            raise CliError(
                f"control plane process {info.get('pid')} is running but its API at "
                f"{info.get('api')} does not answer; see {data_dir / LOG_FILE}, "
                "or run `hyperion down` and `hyperion up` again")
        click.echo(f"control plane already running at {info.get('api')} (pid {info.get('pid')}, "
                   f"data dir {data_dir})")
        if any(v is not None for v in given.values()):
            click.echo("options ignored; run `hyperion down`, then `hyperion up` with new options",
                       err=True)
        return
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = merge_options(given, load_config(data_dir))
    click.echo(f"starting control plane in {data_dir} ...", err=True)
    process, log_offset = start_daemon(data_dir, options)
    info = wait_healthy(process, data_dir, log_offset)
    save_config(data_dir, options)  # only options that started a healthy control plane
    want = int(options["agents"])
    if want:
        click.echo(f"waiting for {want} node(s) to report ready ...", err=True)
    ready, reached = wait_nodes_ready(info["api"], data_dir, want)
    click.echo(summary(info, data_dir, ready, default_dir=_is_default_dir(state, data_dir)))
    if not reached:
        raise CliError(
            f"only {len(ready)} of {want} node(s) were ready after {READY_TIMEOUT_S:g} s; "
            f"see {data_dir / LOG_FILE} (the control plane keeps running; `hyperion nodes` "
            "shows their state)")


def _is_default_dir(state: CliState, data_dir: Path) -> bool:
    """Would a later command without ``--data-dir`` find this data dir?"""
    return resolve_data_dir(None, state.env).resolve() == data_dir


def summary(info: dict[str, Any], data_dir: Path, ready: list[dict[str, Any]],
            default_dir: bool = True) -> str:
    """What ``up`` prints once the cluster is ready (addresses, token path, size, next steps)."""
    gpus = sum(int(n.get("gpus") or 0) for n in ready)
    lines = [
        f"control plane running (pid {info.get('pid')})",
        f"  API:          {info.get('api')}",
        f"  gRPC:         {info.get('grpc', '-')}",
        f"  admin token:  {admin_token_path(data_dir)}",
        f"  nodes:        {len(ready)} ready, {gpus} GPUs",
        f"  log:          {data_dir / LOG_FILE}",
        "",
        "next steps:",
    ]
    if not default_dir:
        lines.append(f"  export HYPERION_HOME={data_dir}")
    lines += [
        "  hyperion nodes",
        "  hyperion submit examples/jobs/hello.yaml",
        "  hyperion queue",
        "  hyperion down",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--keep-agents", is_flag=True, help="Stop only the control plane; agents keep running.")
@click.option("--purge-cloud", is_flag=True,
              help="Also remove everything this installation created in AWS (instances, fleets and launch "
                   "templates tagged with its cluster id) and list what was removed.")
@click.option("--aws-region", "aws_regions", multiple=True, metavar="REGION",
              help="Region to purge; repeatable. [default: $HYPERION_AWS_REGIONS (comma-separated), "
                   "else $AWS_REGION or $AWS_DEFAULT_REGION]")
@click.option("--aws-endpoint-url", metavar="URL", help="EC2 endpoint to use instead of AWS's (tests: a moto server).")
@click.option("--cluster-id", help=f"Cluster id the cloud resources are tagged with. [default: $HYPERION_CLUSTER_ID, "
                                   f"else the file {CLUSTER_ID_FILE} in the data dir]")
@click.pass_obj
def down(state: CliState, keep_agents: bool, purge_cloud: bool, aws_regions: tuple[str, ...],
         aws_endpoint_url: str | None, cluster_id: str | None) -> None:
    """Stop the control plane and local agents of the data dir; state stays on disk."""
    data_dir = state.data_dir.resolve()
    if purge_cloud:  # before stopping anything: a bad option or missing boto3 changes nothing
        purge_plan = _purge_plan(data_dir, state.env, aws_regions, cluster_id)
    info = read_controlplane(data_dir) or {}
    pid = info.get("pid")
    stopped = False
    if is_ours(pid):
        stopped = True
        killed = stop_process(pid)
        how = f" (killed after {STOP_GRACE_S:g} s)" if killed else ""
        click.echo(f"stopped control plane (pid {pid}){how}")
    else:
        click.echo(f"no control plane running for {data_dir}")
    if purge_cloud:  # once the control plane stopped: its autoscaler cannot launch again meanwhile
        _purge_cloud(*purge_plan, aws_endpoint_url)
    if keep_agents:
        click.echo("local agents left running (--keep-agents)")
        return
    if not data_dir.is_dir():
        click.echo("no local agents running")
        return
    try:
        ids = stop_local_agents(data_dir)
    except ImportError as err:
        raise CliError(f"cannot stop local agents: {err}") from None
    if ids:
        click.echo(f"stopped {len(ids)} local agent(s): {', '.join(ids)}")
    else:
        click.echo("no local agents running")
    if stopped or ids:
        click.echo(f"state kept in {data_dir}", err=True)


def _purge_plan(data_dir: Path, env: Mapping[str, str], regions: Sequence[str],
                cluster_id: str | None) -> tuple[str, list[str]]:
    """(cluster id, regions) for ``--purge-cloud``; a CliError saying what is missing."""
    if not cluster_id:
        cluster_id = env.get("HYPERION_CLUSTER_ID", "").strip()
    if not cluster_id:
        try:
            cluster_id = (data_dir / CLUSTER_ID_FILE).read_text().strip()
        except OSError:
            cluster_id = ""
    if not cluster_id:
        raise CliError(f"--purge-cloud: no cluster id: pass --cluster-id, set HYPERION_CLUSTER_ID, or keep "
                       f"{data_dir / CLUSTER_ID_FILE}", exit_code=2)
    chosen = [r for r in regions if r] or [r.strip() for r in env.get("HYPERION_AWS_REGIONS", "").split(",") if r.strip()]
    if not chosen and (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        chosen = [env.get("AWS_REGION") or env["AWS_DEFAULT_REGION"]]
    if not chosen:
        raise CliError("--purge-cloud: no AWS region: pass --aws-region, or set HYPERION_AWS_REGIONS or AWS_REGION",
                       exit_code=2)
    try:
        import boto3
    except ImportError:
        raise CliError("--purge-cloud needs boto3: pip install 'hyperion[aws]'") from None
    if boto3.session.Session().get_credentials() is None:
        raise CliError("--purge-cloud: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY, or run where an instance role applies")
    return cluster_id, chosen


def _purge_cloud(cluster_id: str, regions: list[str], endpoint_url: str | None) -> None:
    from hyperion.providers.aws import AwsProvider, purge

    failures = []
    for region in regions:
        provider = AwsProvider(region, cluster_id, endpoint_url=endpoint_url)
        removed = asyncio.run(purge(provider))
        failures += [f"{region}: {e.message}" for e in provider.drain_errors()]
        if not removed:
            click.echo(f"nothing of cluster {cluster_id} in AWS {region}")
            continue
        click.echo(f"removed from AWS {region} (cluster {cluster_id}):")
        for item in removed:
            more = f" {item['node_type']} (was {item['state']})" if item["kind"] == "instance" else ""
            more += f" {item['name']}" if item.get("name") else ""
            click.echo(f"  {item['kind']:<16} {item['id']}{more}")
    if failures:
        raise CliError("--purge-cloud could not remove everything; run it again, or remove these by hand:\n  "
                       + "\n  ".join(failures))


COMMANDS = (up, down)
