"""``python -m hyperion.runtime``: run the control plane in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from hyperion.api.federation import FederationConfig, FederationConfigError
from hyperion.runtime.controlplane import AwsSettings, Config, ControlPlane


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hyperion.runtime", description="Run the Hyperion control plane.")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("HYPERION_HOME", "~/.hyperion")).expanduser())
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8470, help="REST port (0: any free port)")
    p.add_argument("--grpc-port", type=int, default=8471, help="gRPC port (0: any free port)")
    p.add_argument("--agents", type=int, default=0, help="local agents to keep running")
    p.add_argument("--gpus-per-agent", type=int, default=None, help="logical GPUs per local agent (default: real GPUs via NVML)")
    p.add_argument("--gpu-type", default="logical")
    p.add_argument("--node-timeout", type=float, default=10.0, help="seconds without a heartbeat before a node is not ready")
    p.add_argument("--heartbeat-interval", type=float, default=1.0)
    p.add_argument("--profile", default="default", help="scheduling profile: default (queues, fair share, preemption, "
                   "backfill), first-fit, or a simulator baseline: fifo, sjf, las, drf (docs/simulator.md)")
    p.add_argument("--scheduler-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a profile option, e.g. victim_order=cheapest-first (docs/adr/0003); repeatable")
    p.add_argument("--checkpoint-root", type=Path, default=None, metavar="DIR",
                   help="where jobs that name no checkpoint_dir checkpoint, a directory per job (default "
                        "<data dir>/checkpoints); put it on storage every node mounts to resume on any node")
    p.add_argument("--agent-arg", action="append", default=[], metavar="ARG",
                   help="an extra hyperiond argument for the local agents, e.g. --agent-arg=--standby-workers=4; repeatable")
    fed = p.add_argument_group("federation (docs/federation.md; used once kind: Cluster members exist)")
    fed.add_argument("--federation-profile", default="default", metavar="NAME",
                     help="cheapest, default, carbon-spatial or carbon-temporal")
    fed.add_argument("--carbon-dir", type=Path, default=None, metavar="DIR",
                     help="hourly carbon files <GRID ZONE>_*.csv(.gz) the members' forecasts read")
    fed.add_argument("--forecast", default="same-hour-yesterday", metavar="KIND", help="same-hour-yesterday or weekly")
    fed.add_argument("--federation-option", action="append", default=[], metavar="NAME=VALUE",
                     help="a federation profile option, e.g. max_wait_h=12; repeatable")
    p.add_argument("--cluster-id", default=None, metavar="ID",
                   help="the id cloud resources are tagged with (default: <data dir>/cluster-id, created on first start)")
    aws = p.add_argument_group("aws node pools (docs/autoscaling.md; used once a provider: aws NodePool exists)")
    aws.add_argument("--aws-region", default="", metavar="REGION", help="the region aws pools launch in (needed for them)")
    aws.add_argument("--aws-endpoint-url", default=None, metavar="URL", help="another EC2/SQS endpoint (tests: moto)")
    aws.add_argument("--aws-sqs-queue-url", default="", metavar="URL",
                     help="the queue EventBridge sends spot interruption and rebalance events to (docs/aws.md)")
    aws.add_argument("--aws-ami", default=None, metavar="AMI", help="image id or resolve:ssm:... (default: the Deep Learning AMI)")
    aws.add_argument("--aws-subnet", action="append", default=[], metavar="ID", help="a subnet to launch in; repeatable")
    aws.add_argument("--aws-security-group", action="append", default=[], metavar="ID", help="repeatable")
    aws.add_argument("--aws-instance-profile", default=None, metavar="NAME|ARN")
    aws.add_argument("--aws-key-name", default=None, metavar="NAME")
    aws.add_argument("--aws-install-command", default=None, metavar="CMD", help="how an instance installs hyperiond")
    aws.add_argument("--aws-control-plane-address", default="", metavar="HOST:PORT",
                     help="the gRPC address instances dial (default: the one this control plane listens on)")
    aws.add_argument("--aws-bootstrap-ttl", type=float, default=900.0, metavar="S",
                     help="how long a launch's bootstrap token may be used to join (default 900)")
    aws.add_argument("--aws-sqs-poll-interval", type=float, default=2.0, metavar="S")
    aws.add_argument("--aws-sweep-interval", type=float, default=60.0, metavar="S", help="orphan sweep period (default 60)")
    aws.add_argument("--aws-spot-price-refresh", type=float, default=600.0, metavar="S",
                     help="read current spot prices (DescribeSpotPriceHistory) this often; 0: the catalog's only")
    aws.add_argument("--aws-orphan-grace", type=float, default=600.0, metavar="S",
                     help="an unknown instance younger than this is not swept (default 600)")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    if a.agents < 0 or (a.gpus_per_agent is not None and a.gpus_per_agent < 0):
        p.error("--agents and --gpus-per-agent must be >= 0")
    if a.node_timeout <= 0 or a.heartbeat_interval <= 0:
        p.error("--node-timeout and --heartbeat-interval must be > 0")
    if (min(a.aws_bootstrap_ttl, a.aws_sqs_poll_interval, a.aws_sweep_interval) <= 0 or a.aws_orphan_grace < 0
            or a.aws_spot_price_refresh < 0):
        p.error("--aws-bootstrap-ttl, --aws-sqs-poll-interval and --aws-sweep-interval must be > 0, --aws-orphan-grace "
                "and --aws-spot-price-refresh >= 0")
    if (a.aws_sqs_queue_url or a.aws_endpoint_url) and not a.aws_region:
        p.error("--aws-sqs-queue-url and --aws-endpoint-url need --aws-region")
    options = []
    for item in a.scheduler_option:
        name, eq, value = item.partition("=")
        if not eq or not name:
            p.error(f"--scheduler-option {item!r}: expected NAME=VALUE")
        options.append((name.strip(), value.strip()))
    fed_options = {}
    for item in a.federation_option:
        name, eq, value = item.partition("=")
        if not eq or not name:
            p.error(f"--federation-option {item!r}: expected NAME=VALUE")
        fed_options[name.strip()] = value.strip()
    try:
        federation = FederationConfig.from_mapping(
            {"profile": a.federation_profile, "carbon_dir": str(a.carbon_dir) if a.carbon_dir else None,
             "forecast": a.forecast, "options": fed_options})
    except FederationConfigError as err:
        p.error(str(err))
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config(data_dir=a.data_dir.resolve(), host=a.host, port=a.port, grpc_port=a.grpc_port, agents=a.agents,
                 gpus_per_agent=a.gpus_per_agent, gpu_type=a.gpu_type, node_timeout=a.node_timeout,
                 heartbeat_interval=a.heartbeat_interval, profile=a.profile,
                 scheduler_options=tuple(options),
                 checkpoint_root=a.checkpoint_root.expanduser().resolve() if a.checkpoint_root else None,
                 agent_args=tuple(a.agent_arg), federation=federation, cluster_id=a.cluster_id,
                 aws=AwsSettings(region=a.aws_region, endpoint_url=a.aws_endpoint_url, sqs_queue_url=a.aws_sqs_queue_url,
                                 ami=a.aws_ami, subnet_ids=tuple(a.aws_subnet), security_group_ids=tuple(a.aws_security_group),
                                 instance_profile=a.aws_instance_profile, key_name=a.aws_key_name,
                                 install_command=a.aws_install_command, control_plane_address=a.aws_control_plane_address,
                                 bootstrap_ttl_s=a.aws_bootstrap_ttl, sqs_poll_s=a.aws_sqs_poll_interval,
                                 sweep_s=a.aws_sweep_interval, orphan_grace_s=a.aws_orphan_grace,
                                 spot_price_refresh_s=a.aws_spot_price_refresh or None))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(ControlPlane(cfg).run())


if __name__ == "__main__":
    main()
