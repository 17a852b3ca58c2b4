"""The control-plane process: store, service, REST + gRPC servers, loops and local agents.

``python -m hyperion.runtime --data-dir DIR`` runs it in the foreground (``hyperion up`` starts it
detached). Files in the data dir:

- ``state.db``            the SQLite store (jobs, nodes, teams)
- ``admin.token``         the admin token (0600), created on first start
- ``agent.token``         the token agents present (0600)
- ``metrics.token``       the token Prometheus presents to read ``/metrics``, and nothing else (0600)
- ``controlplane.json``   pid and addresses of the running control plane
- ``logs/``               job logs shipped by the agents
- ``checkpoints/``        a directory per job that names no ``checkpoint_dir`` (``--checkpoint-root``)
- ``cluster-id``          the id this installation tags its cloud resources with, created on first start
                          (``hyperion down --purge-cloud`` reads it too)
- ``agents/``             local agents' data dirs and logs (the ``local`` provider): ``local-<n>`` the
                          static ``--agents``, ``pool-<pool>-<n>`` those a ``local`` NodePool launched
                          (labelled ``hyperion.io/pool=<pool>``; docs/autoscaling.md)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import uvicorn

from hyperion.api import auth
from hyperion.api.agents import AgentHub
from hyperion.api.federation import FederationConfig, FederationConfigError
from hyperion.api.grpc_server import add_services
from hyperion.api.logs import LogStore
from hyperion.api.nodepools import pool_labels
from hyperion.api.rest import build_app
from hyperion.api.service import ControlService
from hyperion.core import PROFILES, ProfileError
from hyperion.model import NodeState
from hyperion.model.autoscale import NodePoolSpec
from hyperion.ports.clock import SystemClock
from hyperion.ports.provider import NodeProvider
from hyperion.providers.local import LocalProvider
from hyperion.runtime.autoscaler_loop import AutoscalerLoop
from hyperion.runtime.health import HealthMonitor
from hyperion.runtime.scheduler_loop import SchedulerLoop
from hyperion.store import SqliteStore, StoreError
from hyperion.store.objects import ClusterState

log = logging.getLogger("hyperion.controlplane")


CLUSTER_ID_FILE = "cluster-id"


@dataclass(frozen=True)
class AwsSettings:
    """What an ``aws`` node pool's provider is built with (the pool gives its instance and capacity
    types); ``--aws-*`` flags of ``python -m hyperion.runtime``. docs/autoscaling.md."""

    region: str = ""
    endpoint_url: str | None = None  # tests: a moto server
    sqs_queue_url: str = ""  # interruption events (EventBridge -> SQS); "" : none
    ami: str | None = None  # None: the provider's default (the Deep Learning AMI via SSM)
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    instance_profile: str | None = None
    key_name: str | None = None
    install_command: str | None = None
    hyperiond: str | None = None
    control_plane_address: str = ""  # HOST:PORT the instances dial; "": the gRPC address we listen on
    bootstrap_ttl_s: float = 900.0
    sqs_poll_s: float = 2.0
    sweep_s: float = 60.0
    orphan_grace_s: float = 600.0
    spot_price_refresh_s: float | None = 600.0  # current spot prices read this often; None: the catalog's only


@dataclass
class Config:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8470
    grpc_port: int = 8471
    agents: int = 0
    gpus_per_agent: int | None = None
    gpu_type: str = "logical"
    node_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    profile: str = "default"
    scheduler_options: tuple[tuple[str, str], ...] = ()  # profile options (core.framework.OPTIONS)
    checkpoint_root: Path | None = None  # default: <data dir>/checkpoints (shared storage for multi-host)
    agent_args: tuple[str, ...] = ()  # extra hyperiond arguments for the local agents
    federation: FederationConfig = FederationConfig()  # profile, carbon dir and forecast (api.federation)
    cluster_id: str | None = None  # default: <data dir>/cluster-id (created on first start)
    aws: AwsSettings = field(default_factory=AwsSettings)


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the control plane handles signals itself
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SystemExit(f"error: cannot listen on {host}:{port}: {err.strerror}; choose another port with --port") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class ControlPlane:
    def __init__(self, config: Config) -> None:
        self.config = config
        d = config.data_dir
        d.mkdir(parents=True, exist_ok=True)
        self.admin_token = auth.ensure_token_file(d / "admin.token")
        self.agent_token = auth.ensure_token_file(d / "agent.token")
        self.metrics_token = auth.ensure_token_file(d / "metrics.token")
        self.cluster_id = ensure_cluster_id(d / CLUSTER_ID_FILE, config.cluster_id)
        try:
            self.store = SqliteStore(d / "state.db")
        except StoreError as err:
            raise SystemExit(f"error: {err}") from None
        self.state = ClusterState(self.store)
        for node in list(self.state.nodes.values()):  # not heard from yet: ready again on Hello
            if node.state is NodeState.READY:
                self.state.put_node(replace(node, state=NodeState.NOT_READY))
        self.clock = SystemClock()
        try:
            self.service = ControlService(self.state, self.clock, LogStore(d / "logs"), self.admin_token,
                                          federation=config.federation)
        except FederationConfigError as err:
            raise SystemExit(f"error: {err}") from None
        checkpoints = config.checkpoint_root or d / "checkpoints"
        self.hub = AgentHub(self.service, self.agent_token, config.heartbeat_interval, str(checkpoints.resolve()))
        self.hub.bootstrap.ttl_s = config.aws.bootstrap_ttl_s
        if config.profile not in PROFILES:
            raise SystemExit(f"error: unknown profile {config.profile!r}; known: {', '.join(PROFILES)}")
        try:
            profile = PROFILES[config.profile](**dict(config.scheduler_options))
        except ProfileError as err:
            raise SystemExit(f"error: {err}; fix --scheduler-option") from None
        self.scheduler = SchedulerLoop(self.service, self.hub, profile)
        self.health = HealthMonitor(self.hub, config.node_timeout)
        self.provider: LocalProvider | None = None
        self.grpc_addr = ""
        self.autoscaler = AutoscalerLoop(self.service, self.hub, self._pool_provider, default_gpus=self._local_gpus)
        self.scheduler.after_cycle.append(self.autoscaler.wake)
        self.hub.on_spot_notice = self._agent_spot_notice
        self.chores = None  # runtime.cloud_chores.CloudChores, built in run() (it sweeps the aws pools' regions)
        self._gpus_here: int | None = None
        self._stop = asyncio.Event()
        # what was loaded lives as long as the process: keep it out of the collector's full passes,
        # which otherwise stall every request for ~0.3 s with 10,000 jobs in memory
        gc.freeze()

    async def run(self) -> None:
        cfg = self.config
        http_sock = _bind(cfg.host, cfg.port)
        api_addr = f"http://{cfg.host}:{http_sock.getsockname()[1]}"
        grpc_server = grpc.aio.server(options=[
            ("grpc.so_reuseport", 0),
            # agents ping every 10 s (agent/session.py); allow it, and ping them back
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ])
        add_services(grpc_server, self.service, self.agent_token, self.hub)
        try:
            grpc_port = grpc_server.add_insecure_port(f"{cfg.host}:{cfg.grpc_port}")
        except RuntimeError:  # grpcio raises where older versions returned 0
            grpc_port = 0
        if grpc_port == 0:
            http_sock.close()
            raise SystemExit(f"error: cannot listen on {cfg.host}:{cfg.grpc_port} for gRPC; choose another with --grpc-port")
        grpc_addr = self.grpc_addr = f"{cfg.host}:{grpc_port}"
        await grpc_server.start()
        web = _Uvicorn(uvicorn.Config(build_app(self.service, auth.digest(self.metrics_token)), log_level="warning", access_log=False,
                                      lifespan="off", timeout_graceful_shutdown=2))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.create_task(web.serve(sockets=[http_sock]), name="rest"),
                 asyncio.create_task(self.scheduler.run(), name="scheduler"),
                 asyncio.create_task(self.health.run(), name="health"),
                 asyncio.create_task(self.autoscaler.run(), name="autoscaler"),
                 asyncio.create_task(self._compact_forever(), name="compaction"),
                 asyncio.create_task(self._meter_forever(), name="accounting")]
        tasks.append(asyncio.create_task(self._cloud_chores(), name="cloud-chores"))  # idle without aws pools
        info = {"pid": os.getpid(), "api": api_addr, "grpc": grpc_addr, "started_at": self.clock.now()}
        _write_json(cfg.data_dir / "controlplane.json", info)
        log.info("control plane up: REST %s, gRPC %s, data dir %s", api_addr, grpc_addr, cfg.data_dir)
        if cfg.agents:
            await self._ensure_local_agents(grpc_addr)
        try:
            done_waiter = asyncio.create_task(self._stop.wait())
            await asyncio.wait([done_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and t.exception():
                    log.error("%s stopped: %r", t.get_name(), t.exception())
        finally:
            web.should_exit = True
            await grpc_server.stop(grace=1.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.autoscaler.stop()  # launches and terminations in flight finish their records
            try:
                self.service.accountant.save()  # what accrued since the last save
            except Exception:
                log.exception("could not save the cost meter")
            with contextlib.suppress(FileNotFoundError):
                if json.loads((cfg.data_dir / "controlplane.json").read_text()).get("pid") == os.getpid():
                    (cfg.data_dir / "controlplane.json").unlink()
            self.store.close()
            log.info("control plane stopped")

    async def _meter_forever(self, every_s: float = 5.0) -> None:
        """Accrue running jobs' cost, energy and carbon, warn of budgets, save every minute; stop
        jobs whose GPUs stayed idle (``ControlService.reclaim_idle``)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.service.accountant.tick()
                self.service.reclaim_idle()
            except Exception:
                log.exception("cost meter or idle reclaim failed; retrying")

    async def _compact_forever(self, every_s: float = 60.0, keep_last: int = 100_000) -> None:
        """The store's change history would grow without bound at thousands of writes a second."""
        while True:
            await asyncio.sleep(every_s)
            self.store.compact(keep_last)

    async def _ensure_local_agents(self, grpc_addr: str) -> None:
        cfg = self.config
        self.provider = LocalProvider(cfg.data_dir, grpc_addr, cfg.data_dir / "agent.token",
                                      gpus_per_node=cfg.gpus_per_agent, gpu_type=cfg.gpu_type,
                                      extra_args=cfg.agent_args)
        running = [n for n in await self.provider.list_nodes() if n.state == "running"]
        missing = cfg.agents - len(running)
        if missing > 0:
            request_id = f"controlplane-{os.getpid()}-{int(self.clock.now())}"
            await self.provider.launch("local", missing, request_id)
            log.info("started %d local agent(s) (%d already running)", missing, len(running))
        for err in self.provider.drain_errors():
            log.error("local provider: %s", err.message)


    # ---- node pools (runtime.autoscaler_loop) -----------------------------------------------
    def _pool_provider(self, pool: NodePoolSpec) -> NodeProvider | None:
        """A ``local`` pool's provider: agents on this machine, labelled with the pool, with node
        ids ``pool-<pool>-<n>`` (the static agents are ``local-<n>``). An ``aws`` pool's: EC2
        through CreateFleet (``_aws_provider``). Other providers are not available here (None:
        the pool shows why)."""
        if pool.provider == "aws" and self.grpc_addr:
            return self._aws_provider(pool)
        if pool.provider != "local" or not self.grpc_addr:
            return None
        cfg = self.config
        return LocalProvider(cfg.data_dir, self.grpc_addr, cfg.data_dir / "agent.token",
                             gpus_per_node=cfg.gpus_per_agent, gpu_type=cfg.gpu_type,
                             extra_args=(*cfg.agent_args, *(f"--label={k}={v}" for k, v in pool_labels(pool).items())),
                             node_prefix=f"pool-{pool.name}")

    def _aws_provider(self, pool: NodePoolSpec) -> NodeProvider:
        aws = self.config.aws
        region = pool.region or aws.region
        if not region:
            raise ValueError("give the pool a `region:` or start the control plane with --aws-region "
                             "(and AWS credentials) for aws pools")
        from hyperion.providers.aws import AwsProvider

        options = {k: v for k, v in (("ami", aws.ami), ("install_command", aws.install_command),
                                     ("hyperiond", aws.hyperiond)) if v}
        return AwsProvider(region, self.cluster_id, aws.control_plane_address or self.grpc_addr,
                           self._bootstrap_minter(f"pool {pool.name}"), pool=pool.name,
                           instance_types=pool.instance_types, capacity_types=pool.capacity_types,
                           subnet_ids=aws.subnet_ids, security_group_ids=aws.security_group_ids,
                           instance_profile=aws.instance_profile, key_name=aws.key_name,
                           endpoint_url=aws.endpoint_url, node_labels=pool_labels(pool),
                           spot_price_refresh_s=aws.spot_price_refresh_s, **options)

    def _bootstrap_minter(self, purpose: str) -> Callable[[], str]:
        """``() -> token`` for a provider: a fresh bootstrap token per launch (``api.bootstrap``).
        Providers call it from a worker thread; the store is written on the event loop."""
        loop = asyncio.get_running_loop()

        async def on_loop() -> str:
            return self.hub.bootstrap.mint(self.clock.now(), purpose)

        def mint() -> str:
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                return self.hub.bootstrap.mint(self.clock.now(), purpose)
            return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout=30)

        return mint

    async def _cloud_chores(self) -> None:
        from hyperion.providers.aws_events import SqsInterruptions
        from hyperion.runtime.cloud_chores import CloudChores

        aws = self.config.aws
        queue = SqsInterruptions(aws.sqs_queue_url, aws.region, endpoint_url=aws.endpoint_url) if aws.sqs_queue_url else None
        self.chores = CloudChores(self.autoscaler, queue, poll_s=aws.sqs_poll_s, sweep_s=aws.sweep_s,
                                  grace_s=aws.orphan_grace_s)
        if aws.region:
            log.info("aws: cluster id %s, region %s%s; orphan sweep every %.0f s (grace %.0f s)", self.cluster_id,
                     aws.region, f", interruptions from {aws.sqs_queue_url}" if queue else "", aws.sweep_s,
                     aws.orphan_grace_s)
        await self.chores.run()

    def _agent_spot_notice(self, node_id: str, at: float) -> bool:
        """A node's agent read the spot interruption notice (EC2 acts at ``at``): its instance is
        drained and replaced, as for a queue event; False if no pool owns the node."""
        action = f"EC2 acts in {max(0.0, at - self.clock.now()):.0f} s"
        return self.autoscaler.notice(self.clock.now(), "spot-interruption", f"the node's agent ({action})",
                                      node_id=node_id) is not None

    def _local_gpus(self) -> int:
        """GPUs a local agent reports when ``--gpus-per-agent`` is not given: what a local node
        that joined has, else what NVML finds on this machine (once)."""
        local = [n.capacity.gpus for n in self.state.nodes.values() if n.id.startswith(("local-", "pool-"))]
        if local:
            return max(local)
        if self._gpus_here is None:
            try:
                from hyperion.agent.inventory import nvml_gpus

                self._gpus_here = len(nvml_gpus())
            except Exception:
                self._gpus_here = 0
        return self._gpus_here


def ensure_cluster_id(path: Path, given: str | None = None) -> str:
    """The installation's cluster id: ``given`` (then written), else the file, else a new one."""
    if given:
        if not path.exists() or path.read_text().strip() != given:
            path.write_text(given + "\n")
        return given
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    cluster_id = f"hyp-{secrets.token_hex(6)}"
    path.write_text(cluster_id + "\n")
    return cluster_id


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
