"""The ``aws`` NodeProvider: EC2 instances launched with CreateFleet, found again by their tags.

Glossary:
    node type     what ``launch`` is asked for: an EC2 instance type, on-demand (``"g5.xlarge"``)
                  or spot (``"g5.xlarge:spot"``). ``offers()`` lists both markets of every
                  instance type the shipped catalog prices in the region (or of the configured
                  ``instance_types``); ``node_type_for`` / ``parse_node_type`` convert.
    ours          an instance (fleet, launch template) tagged ``hyperion:cluster-id=<cluster id>``.
                  Instances also carry ``hyperion:request-id``, ``hyperion:pool``,
                  ``hyperion:node-type`` and a ``Name``. Nothing else is ever touched.
    launch        one ``CreateFleet`` of type ``instant``: spot with the
                  ``price-capacity-optimized`` allocation, on-demand with ``lowest-price``, one
                  override per configured subnet (none: the default VPC). The launch template
                  (AMI, instance type, security groups, instance profile, IMDSv2) is created once
                  per instance type and market and reused; its name carries a hash of its
                  content, so changing the AMI makes a new one.
    idempotent    ``ClientToken`` is derived from the request id, and before launching
                  ``DescribeInstances`` filtered by ``hyperion:request-id`` returns what the request
                  already made (also after a control-plane restart).
    user data     a shell script, given per launch (``LaunchTemplateSpecificationUserData``), that
                  writes the bootstrap token to a 0600 file, installs ``hyperiond`` (a configured
                  install command) and runs it as a systemd service with the instance id as node id.
    spot price    with ``spot_price_refresh_s``, the current spot price of each offered instance type
                  (the lowest over the region's zones, ``DescribeSpotPriceHistory`` from now), read
                  in a background thread when ``offers()`` finds it older than that; until it is
                  known, or when the call fails, a spot offer carries the catalog's spot price,
                  else the on-demand price (``price_is_cap``: the most spot costs).
    bootstrap     a short-lived token minted by ``bootstrap_token()`` for each launch request. It is
    token         never logged, never in a repr or a ProviderError; botocore's debug log of the
                  request is redacted (``_Redact``) while a launch may still log it.

EC2 states map to ProviderNode states: pending -> launching; running -> running; shutting-down,
terminated, stopping, stopped -> terminated (Hyperion never stops an instance; a stopped one runs
nothing). Every boto3 call runs in a thread (``asyncio.to_thread``); every error becomes a
``ProviderError`` for ``drain_errors()``, never an exception in the caller's loop. boto3 is imported
when a client is first needed, so this module imports without it.

``sweep_orphans`` terminates instances that are ours but unknown to the store; ``purge`` removes
everything of this cluster id in the region (``hyperion down --purge-cloud``). docs/aws.md has the
whole story, including the SQS interruption queue (``hyperion.providers.aws_events``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import logging
import re
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hyperion.model.autoscale import ON_DEMAND, SPOT, InstanceOffer
from hyperion.ports.provider import Capability, ProviderError, ProviderNode
from hyperion.providers.catalog import shipped

__all__ = ["AwsInstance", "AwsProvider", "find_orphans", "node_type_for", "parse_node_type", "purge",
           "render_user_data", "sweep_orphans"]

log = logging.getLogger("hyperion.providers.aws")

TAG_CLUSTER, TAG_REQUEST = "hyperion:cluster-id", "hyperion:request-id"
TAG_POOL, TAG_NODE_TYPE = "hyperion:pool", "hyperion:node-type"
SPOT_SUFFIX = ":spot"
ZONE_SEP = "@"  # a node type pinned to one availability zone: g5.xlarge:spot@us-east-1b
DEFAULT_AMI = "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
DEFAULT_INSTALL = "python3 -m venv /opt/hyperion && /opt/hyperion/bin/pip install --quiet --upgrade hyperion"
DEFAULT_HYPERIOND = "/opt/hyperion/bin/hyperiond"
IMDS_SPOT_ACTION = "http://169.254.169.254/latest/meta-data/spot/instance-action"  # agent.spot_notice's default
TOKEN_PATH, AGENT_DIR = "/etc/hyperion/bootstrap.token", "/var/lib/hyperion/agent"
STATES = {"pending": "launching", "running": "running", "shutting-down": "terminated", "terminated": "terminated",
          "stopping": "terminated", "stopped": "terminated"}
GONE = frozenset({"shutting-down", "terminated"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,512}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9().\-/_]")
_BOTO3_MISSING = "the aws provider needs boto3: pip install 'hyperion[aws]'"


def parse_node_type(node_type: str) -> tuple[str, bool]:
    """``"g5.xlarge:spot"`` -> ``("g5.xlarge", True)``; ``"g5.xlarge"`` -> ``("g5.xlarge", False)``;
    a zone (``"g5.xlarge:spot@us-east-1b"``) is left out (``zone_of``)."""
    node_type = node_type.partition(ZONE_SEP)[0]
    if node_type.endswith(SPOT_SUFFIX):
        return node_type[: -len(SPOT_SUFFIX)], True
    return node_type, False


def zone_of(node_type: str) -> str:
    """The availability zone a node type names (``"g5.xlarge:spot@us-east-1b"`` -> ``"us-east-1b"``), or ""."""
    return node_type.partition(ZONE_SEP)[2]


def node_type_for(instance_type: str, spot: bool, zone: str = "") -> str:
    return (instance_type + SPOT_SUFFIX if spot else instance_type) + (ZONE_SEP + zone if zone else "")


def client_token(request_id: str) -> str:
    """CreateFleet's ClientToken for a request id (at most 64 ASCII characters)."""
    if len(request_id) <= 64 and request_id.isascii() and request_id.isprintable():
        return request_id
    return hashlib.sha256(request_id.encode()).hexdigest()[:64]


def render_user_data(control_plane: str, token: str, *, node_labels: dict[str, str], install_command: str = DEFAULT_INSTALL,
                     hyperiond: str = DEFAULT_HYPERIOND, spot_notice_url: str = "") -> str:
    """The bootstrap script: token to a 0600 file, install, ``hyperiond`` as a systemd service
    (with ``--spot-notice-url`` for a spot instance: the agent watches the metadata service)."""
    if not _TOKEN_RE.match(token):
        raise ValueError("the bootstrap token must be 8-512 characters of [A-Za-z0-9._~+/=-]")
    labels = " ".join(f"--label {shlex.quote(f'{k}={v}')}" for k, v in sorted(node_labels.items()))
    notice = f" --spot-notice-url {shlex.quote(spot_notice_url)}" if spot_notice_url else ""
    command = (f"{shlex.quote(hyperiond)} --control-plane {shlex.quote(control_plane)} --token-file {TOKEN_PATH} "
               f"--node-id ${{NODE_ID}} --data-dir {AGENT_DIR} {labels}".rstrip() + notice)
    return f"""#!/bin/bash
# Hyperion node bootstrap, written by hyperion.providers.aws
set -euo pipefail
umask 077
install -d -m 700 /etc/hyperion /var/lib/hyperion
cat > {TOKEN_PATH} <<'HYPERION_BOOTSTRAP_TOKEN'
{token}
HYPERION_BOOTSTRAP_TOKEN
IMDS=http://169.254.169.254/latest
IMDS_TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
NODE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/meta-data/instance-id")
{install_command}
cat > /etc/systemd/system/hyperiond.service <<HYPERIOND_UNIT
[Unit]
Description=Hyperion node agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={command}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
HYPERIOND_UNIT
systemctl daemon-reload
systemctl enable --now hyperiond.service
"""


@dataclass(frozen=True, slots=True)
class AwsInstance:
    """What this module reads back from DescribeInstances."""

    id: str
    state: str  # the EC2 state name
    instance_type: str
    spot: bool
    launched_at: float  # seconds since the epoch
    request_id: str = ""
    pool: str = ""
    node_type: str = ""
    address: str = ""
    zone: str = ""

    def node(self) -> ProviderNode:
        return ProviderNode(id=self.id, node_type=self.node_type or node_type_for(self.instance_type, self.spot),
                            state=STATES.get(self.state, "launching"), request_id=self.request_id, address=self.address,
                            zone=self.zone)


class AwsProvider:
    name = "aws"
    capabilities = Capability.SPOT | Capability.MULTI_NODE

    def __init__(self, region: str, cluster_id: str, control_plane: str = "",
                 bootstrap_token: Callable[[], str] | None = None, *, pool: str = "default",
                 instance_types: Sequence[str] = (), capacity_types: Sequence[str] = (ON_DEMAND, SPOT),
                 ami: str = DEFAULT_AMI, subnet_ids: Sequence[str] = (), security_group_ids: Sequence[str] = (),
                 instance_profile: str | None = None, key_name: str | None = None,
                 install_command: str = DEFAULT_INSTALL, hyperiond: str = DEFAULT_HYPERIOND,
                 endpoint_url: str | None = None, session: Any = None, catalog: Any = None,
                 node_labels: Mapping[str, str] | None = None, spot_price_refresh_s: float | None = None) -> None:
        if importlib.util.find_spec("boto3") is None:
            raise ImportError(_BOTO3_MISSING)
        if not cluster_id:
            raise ValueError("the aws provider needs a cluster id: it tags and finds its instances by it")
        self.region, self.cluster_id, self.pool = region, cluster_id, pool
        self.node_labels = dict(node_labels or {})  # more labels for its nodes' agents (e.g. the federation member)
        self.control_plane = control_plane
        self._bootstrap_token = bootstrap_token
        self.ami, self.subnet_ids, self.security_group_ids = ami, tuple(subnet_ids), tuple(security_group_ids)
        self.instance_profile, self.key_name = instance_profile, key_name
        self.install_command, self.hyperiond = install_command, hyperiond
        self.endpoint_url, self._session = endpoint_url, session
        self._offers = _offers_from_catalog(catalog if catalog is not None else shipped(), region, instance_types,
                                            capacity_types)
        self._client_obj: Any = None
        self._lock = threading.RLock()
        self._stripes = [threading.Lock() for _ in range(32)]  # one launch per request id at a time
        self._templates: dict[tuple[str, bool], str] = {}  # (instance type, spot) -> launch template id
        self._subnet_zones: dict[str, str] = {}  # subnet id -> its availability zone (DescribeSubnets, once)
        self._launched: dict[str, list[ProviderNode]] = {}  # request id -> what CreateFleet returned
        self._tokens: dict[str, str] = {}  # request id -> its bootstrap token until the launch succeeded
        self._errors: list[ProviderError] = []
        self.spot_price_refresh_s = spot_price_refresh_s
        self._spot_prices: dict[str, dict[str, float]] = {}  # instance type -> zone -> USD/h now
        self._spot_read_at = float("-inf")  # monotonic time of the last refresh started
        self._spot_reading: threading.Thread | None = None

    def __repr__(self) -> str:  # no token, no user data
        return f"AwsProvider(region={self.region!r}, cluster_id={self.cluster_id!r}, pool={self.pool!r})"

    # ---- the NodeProvider port --------------------------------------------------------------
    def offers(self) -> list[dict]:
        """The catalog's offers; once current spot prices are known, a spot offer carries the lowest
        over the region's zones, and each zone's price is also an offer pinned to that zone
        (``g5.xlarge:spot@us-east-1b``), so a replacement can be sent to another zone."""
        self._refresh_spot_prices()
        prices = self._spot_prices
        out = []
        for o in self._offers:
            zones = prices.get(o["instance_type"]) if o["spot"] else None
            if not zones:
                out.append(dict(o))
                continue
            live = {**o, "price_is_cap": False, "price_source": "ec2 spot price now"}
            out.append({**live, "price_per_hour": min(zones.values())})
            out += [{**live, "node_type": node_type_for(o["instance_type"], True, zone), "zone": zone,
                     "price_per_hour": price} for zone, price in sorted(zones.items())]
        return out

    def _refresh_spot_prices(self) -> None:
        """Start reading the current spot prices in the background when they are older than
        ``spot_price_refresh_s`` (never blocks the caller; one read at a time)."""
        if self.spot_price_refresh_s is None or not any(o["spot"] for o in self._offers):
            return
        now = time.monotonic()
        with self._lock:
            if now - self._spot_read_at < self.spot_price_refresh_s or (
                    self._spot_reading is not None and self._spot_reading.is_alive()):
                return
            self._spot_read_at = now
            self._spot_reading = threading.Thread(target=self._read_spot_prices, name=f"aws-spot-prices-{self.region}",
                                                  daemon=True)
            self._spot_reading.start()

    def _read_spot_prices(self) -> None:
        types = sorted({o["instance_type"] for o in self._offers if o["spot"]})
        found: dict[str, dict[str, float]] = {}
        try:
            client = self._client()
            for batch in _chunks(types, 100):
                pages = client.get_paginator("describe_spot_price_history").paginate(
                    InstanceTypes=batch, ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                    StartTime=datetime.now(UTC))
                for page in pages:
                    for h in page.get("SpotPriceHistory", []):
                        price, zone = float(h["SpotPrice"]), str(h.get("AvailabilityZone", ""))
                        if price > 0 and zone:  # the newest record of each zone comes first
                            found.setdefault(h["InstanceType"], {}).setdefault(zone, price)
        except Exception as exc:  # noqa: BLE001 - the offers keep their last prices
            log.warning("aws %s: reading spot prices failed (offers keep the prices they had): %s", self.region, exc)
            return
        with self._lock:
            self._spot_prices = {**self._spot_prices, **found}
        log.info("aws %s: current spot prices of %d of %d instance type(s)", self.region, len(found), len(types))

    def instance_offers(self) -> list[InstanceOffer]:
        """``offers()`` as the autoscaler's ``InstanceOffer``s for this provider's pool."""
        return [InstanceOffer(pool=self.pool, instance_type=o["instance_type"], gpus=o["gpus"], usd_per_h=o["price_per_hour"],
                              gpu_type=o["gpu_type"], spot=o["spot"], zone=o.get("zone", "")) for o in self.offers()]

    async def list_nodes(self) -> list[ProviderNode]:
        return [i.node() for i in await self._describe("list")]

    async def launch(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]:
        base, zone = node_type.partition(ZONE_SEP)[::2]
        if base not in {o["node_type"] for o in self._offers} or (zone and not zone.startswith(self.region)):
            some = ", ".join(o["node_type"] for o in self._offers[:6])
            self._error(request_id, f"unknown node type {node_type!r} in {self.region}; offers {some}, ...")
            return []
        nodes = await self._call(request_id, "launch", self._launch_sync, node_type, max(count, 0), request_id)
        return nodes or []

    async def terminate(self, ids: Sequence[str], request_id: str) -> None:
        if ids:
            await self._call(request_id, "terminate", self._terminate_sync, list(ids), request_id)

    def drain_errors(self) -> list[ProviderError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    # ---- launching --------------------------------------------------------------------------
    def _launch_sync(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]:
        with self._stripes[hash(request_id) % len(self._stripes)]:
            done = self._describe_sync([{"Name": f"tag:{TAG_REQUEST}", "Values": [request_id]}])
            if done:
                return [i.node() for i in done]
            if request_id in self._launched:  # made, but DescribeInstances does not show it yet
                return list(self._launched[request_id])
            if count == 0:
                return []
            if self._bootstrap_token is None or not self.control_plane:
                raise _Refused("this provider was built without a control plane address and bootstrap token; it cannot launch")
            instance_type, spot = parse_node_type(node_type)
            template_id = self._template_sync(instance_type, spot)
            with self._lock:
                token = self._tokens.get(request_id)
            if token is None:  # the same token for retries of one request: CreateFleet's ClientToken needs equal parameters
                token = self._bootstrap_token()
                with self._lock:
                    self._tokens[request_id] = token
                    while len(self._tokens) > 256:  # failed requests' tokens expire anyway
                        self._tokens.pop(next(iter(self._tokens)))
            _redact(token)
            labels = {"aws/instance-type": instance_type, "aws/capacity-type": SPOT if spot else ON_DEMAND,
                      "aws/region": self.region, "hyperion.io/pool": self.pool, **self.node_labels}
            try:
                script = render_user_data(self.control_plane, token, node_labels=labels,
                                          install_command=self.install_command, hyperiond=self.hyperiond,
                                          spot_notice_url=IMDS_SPOT_ACTION if spot else "")
            except ValueError as exc:
                raise _Refused(str(exc)) from None
            user_data = base64.b64encode(script.encode()).decode()
            _redact(user_data)
            nodes = self._create_fleet(template_id, instance_type, spot, count, node_type, request_id, user_data)
            with self._lock:
                self._launched[request_id] = nodes
                self._tokens.pop(request_id, None)
            log.info("launched %d x %s for request %s: %s", len(nodes), node_type, request_id,
                     ", ".join(n.id for n in nodes) or "none")
            return list(nodes)

    def _create_fleet(self, template_id: str, instance_type: str, spot: bool, count: int, node_type: str,
                      request_id: str, user_data: str) -> list[ProviderNode]:
        client = self._client()
        spec: dict[str, Any] = {"LaunchTemplateId": template_id, "Version": "$Default"}
        version = None
        if _supports_user_data_override(client):
            spec["LaunchTemplateSpecificationUserData"] = user_data
        else:  # older botocore: a template version per launch, deleted once the fleet is made
            version = client.create_launch_template_version(
                LaunchTemplateId=template_id, VersionDescription=client_token(request_id),
                LaunchTemplateData={**self._template_data(instance_type), "UserData": user_data})["LaunchTemplateVersion"]["VersionNumber"]
            spec["Version"] = str(version)
        overrides = self._overrides(instance_type, zone_of(node_type))
        market = "spot" if spot else "on-demand"
        options = ({"SpotOptions": {"AllocationStrategy": "price-capacity-optimized"}} if spot
                   else {"OnDemandOptions": {"AllocationStrategy": "lowest-price"}})
        tags = self._tags(**{TAG_REQUEST: request_id, TAG_POOL: self.pool, TAG_NODE_TYPE: node_type,
                             "Name": f"hyperion-{self.cluster_id}-{self.pool}"})
        try:
            response = client.create_fleet(
                Type="instant", ClientToken=client_token(request_id), **options,
                LaunchTemplateConfigs=[{"LaunchTemplateSpecification": spec, "Overrides": overrides}],
                TargetCapacitySpecification={"TotalTargetCapacity": count, "DefaultTargetCapacityType": market},
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                                   {"ResourceType": "fleet", "Tags": self._tags(**{TAG_REQUEST: request_id})}])
        finally:
            if version is not None:
                client.delete_launch_template_versions(LaunchTemplateId=template_id, Versions=[str(version)])
        ids = [i for made in response.get("Instances") or [] for i in made.get("InstanceIds") or []]
        for err in response.get("Errors") or []:
            self._error(request_id, f"CreateFleet for {count} x {node_type}: {err.get('ErrorCode')}: {err.get('ErrorMessage')}")
        if len(ids) < count and not response.get("Errors"):
            self._error(request_id, f"CreateFleet for {count} x {node_type} launched only {len(ids)}")
        return [ProviderNode(id=i, node_type=node_type, state="launching", request_id=request_id) for i in ids]

    def _overrides(self, instance_type: str, zone: str) -> list[dict]:
        """CreateFleet overrides: one per configured subnet (none: the default VPC's), only those in
        ``zone`` when the node type names one."""
        if not self.subnet_ids:
            return [{"InstanceType": instance_type, **({"AvailabilityZone": zone} if zone else {})}]
        subnets = list(self.subnet_ids)
        if zone:
            with self._lock:
                known = dict(self._subnet_zones)
            if not set(subnets) <= set(known):
                described = self._client().describe_subnets(SubnetIds=subnets)["Subnets"]
                known = {sn["SubnetId"]: sn["AvailabilityZone"] for sn in described}
                with self._lock:
                    self._subnet_zones.update(known)
            subnets = [sn for sn in subnets if known.get(sn) == zone]
            if not subnets:
                raise _Refused(f"no configured subnet is in {zone}; configured: {', '.join(self.subnet_ids)}")
        return [{"InstanceType": instance_type, "SubnetId": sn} for sn in subnets]

    def _template_sync(self, instance_type: str, spot: bool) -> str:
        with self._lock:
            found = self._templates.get((instance_type, spot))
        if found:
            return found
        data = self._template_data(instance_type)
        digest = hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:8]
        name = _NAME_UNSAFE.sub("-", f"hyperion-{self.cluster_id}-{instance_type}-{'spot' if spot else 'od'}-{digest}")[:128]
        client = self._client()
        template_id = self._find_template(client, name)
        if template_id is None:
            try:
                template_id = client.create_launch_template(
                    LaunchTemplateName=name, LaunchTemplateData=data,
                    TagSpecifications=[{"ResourceType": "launch-template", "Tags": self._tags()}])["LaunchTemplate"]["LaunchTemplateId"]
                log.info("created launch template %s (%s)", name, template_id)
            except Exception as exc:  # made by another process meanwhile
                if _code(exc) != "InvalidLaunchTemplateName.AlreadyExistsException":
                    raise
                template_id = self._find_template(client, name)
                if template_id is None:
                    raise
        with self._lock:
            self._templates[(instance_type, spot)] = template_id
        return template_id

    def _template_data(self, instance_type: str) -> dict[str, Any]:
        data: dict[str, Any] = {"ImageId": self.ami, "InstanceType": instance_type,
                                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                                    "HttpPutResponseHopLimit": 2}}
        if self.security_group_ids:
            data["SecurityGroupIds"] = list(self.security_group_ids)
        if self.instance_profile:
            key = "Arn" if self.instance_profile.startswith("arn:") else "Name"
            data["IamInstanceProfile"] = {key: self.instance_profile}
        if self.key_name:
            data["KeyName"] = self.key_name
        return data

    @staticmethod
    def _find_template(client: Any, name: str) -> str | None:
        try:
            found = client.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
        except Exception as exc:
            if _code(exc) == "InvalidLaunchTemplateName.NotFoundException":
                return None
            raise
        return found[0]["LaunchTemplateId"] if found else None

    # ---- reading back and terminating -------------------------------------------------------
    async def _describe(self, request_id: str) -> list[AwsInstance]:
        return await self._call(request_id, "describe instances", self._describe_sync, []) or []

    def _describe_sync(self, filters: list[dict]) -> list[AwsInstance]:
        pages = self._client().get_paginator("describe_instances").paginate(
            Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": [self.cluster_id]}, *filters])
        found = [_instance(i) for page in pages for r in page.get("Reservations", []) for i in r.get("Instances", [])]
        return sorted(found, key=lambda i: (i.launched_at, i.id))

    def _terminate_sync(self, ids: list[str], request_id: str) -> list[str]:
        known = {}
        for chunk in _chunks(ids, 200):
            known.update({i.id: i for i in self._describe_sync([{"Name": "instance-id", "Values": chunk}])})
        unknown = [i for i in ids if i not in known]
        if unknown:
            self._error(request_id, f"cannot terminate {', '.join(unknown)}: not an instance of cluster "
                                    f"{self.cluster_id} in {self.region} (never ours, or gone long ago)")
        live = [i for i in ids if i in known and known[i].state not in GONE]
        for chunk in _chunks(live, 500):
            self._client().terminate_instances(InstanceIds=chunk)
        if live:
            log.info("terminating %s (request %s)", ", ".join(live), request_id)
        return live

    # ---- plumbing ---------------------------------------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise _Refused(_BOTO3_MISSING) from None
                session = self._session or boto3.session.Session()
                config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
                self._client_obj = session.client("ec2", region_name=self.region, endpoint_url=self.endpoint_url, config=config)
            return self._client_obj

    def _tags(self, **more: str) -> list[dict]:
        return [{"Key": k, "Value": v} for k, v in {TAG_CLUSTER: self.cluster_id, **more}.items()]

    async def _call(self, request_id: str, what: str, fn: Callable, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ProviderError, never raised
            self._error(request_id, f"{what} in {self.region}: {describe_error(exc)}")
            return None

    def _error(self, request_id: str, message: str) -> None:
        message = _scrub(message)
        log.warning("aws: %s (request %s)", message, request_id)
        with self._lock:
            self._errors.append(ProviderError(request_id=request_id, message=message))


# ---- orphans and purge ------------------------------------------------------------------------
def find_orphans(instances: Iterable[AwsInstance], known_instance_ids: Iterable[str], grace_s: float, now: float,
                 known_request_ids: Iterable[str] = ()) -> list[str]:
    """Ids of live instances the store does not know (by id or by request id) launched over ``grace_s`` ago."""
    known, requests = set(known_instance_ids), set(known_request_ids)
    return [i.id for i in instances if i.state not in GONE and i.id not in known
            and not (i.request_id and i.request_id in requests) and now - i.launched_at > grace_s]


async def sweep_orphans(provider: AwsProvider, known_instance_ids: Iterable[str], grace_s: float, now: float,
                        known_request_ids: Iterable[str] = ()) -> list[str]:
    """Terminate instances tagged as this cluster's that the store does not know; returns their ids."""
    request_id = f"sweep-{int(now)}"
    instances = await provider._describe(request_id)
    orphans = find_orphans(instances, known_instance_ids, grace_s, now, known_request_ids)
    if orphans:
        log.warning("aws: terminating %d orphan instance(s) of cluster %s: %s", len(orphans), provider.cluster_id,
                    ", ".join(orphans))
        await provider.terminate(orphans, request_id)
    return orphans


async def purge(provider: AwsProvider) -> list[dict]:
    """Terminate every instance of this cluster id, delete its fleets and launch templates; returns what it removed.

    Each entry is ``{"kind": "instance" | "fleet" | "launch-template", "id", "region", ...}``; what
    failed is in ``provider.drain_errors()`` instead. Fleets go first: deleting an instant fleet
    terminates its instances (EC2 requires that), the rest are terminated by id.
    """
    live = [i for i in await provider._describe("purge") if i.state not in GONE]
    fleets = await provider._call("purge", "delete fleets", _purge_fleets, provider) or []
    removed = []
    if await provider._call("purge", "terminate instances", provider._terminate_sync, [i.id for i in live], "purge") is not None:
        removed += [{"kind": "instance", "id": i.id, "region": provider.region, "node_type": i.node_type or i.instance_type,
                     "state": i.state} for i in live]
    templates = await provider._call("purge", "delete launch templates", _purge_templates, provider) or []
    return removed + fleets + templates


def _purge_fleets(p: AwsProvider) -> list[dict]:
    client = p._client()
    ours = [f["FleetId"] for page in client.get_paginator("describe_fleets").paginate() for f in page.get("Fleets", [])
            if {"Key": TAG_CLUSTER, "Value": p.cluster_id} in (f.get("Tags") or [])
            and f.get("FleetState") not in ("deleted", "deleted_running", "deleted_terminating")]
    removed = []
    for chunk in _chunks(ours, 25):
        response = client.delete_fleets(FleetIds=chunk, TerminateInstances=True)
        removed += [{"kind": "fleet", "id": f["FleetId"], "region": p.region} for f in response.get("SuccessfulFleetDeletions", [])]
        for f in response.get("UnsuccessfulFleetDeletions", []):
            p._error("purge", f"cannot delete fleet {f.get('FleetId')}: {f.get('Error', {}).get('Message', '')}")
    return removed


def _purge_templates(p: AwsProvider) -> list[dict]:
    client = p._client()
    pages = client.get_paginator("describe_launch_templates").paginate(
        Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": [p.cluster_id]}])
    removed = []
    for template in [t for page in pages for t in page.get("LaunchTemplates", [])]:
        client.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
        removed.append({"kind": "launch-template", "id": template["LaunchTemplateId"], "region": p.region,
                        "name": template.get("LaunchTemplateName", "")})
    with p._lock:
        p._templates.clear()
    return removed


# ---- helpers ----------------------------------------------------------------------------------
class _Refused(Exception):
    """A launch this provider will not make; its message is the ProviderError's."""


def _offers_from_catalog(catalog: Any, region: str, instance_types: Sequence[str], capacity_types: Sequence[str]) -> list[dict]:
    rows = [o for o in catalog.offers(provider="aws", region=region) if not instance_types or o.instance_type in instance_types]
    missing = sorted(set(instance_types) - {o.instance_type for o in rows})
    if missing:
        log.warning("aws: %s not in the price catalog for %s; not offered", ", ".join(missing), region)
    offers = []
    for o in rows:
        base = {"instance_type": o.instance_type, "gpu_type": o.gpu_type, "gpus": o.gpus, "vcpus": o.vcpus,
                "memory_gib": o.memory_gib, "region": region}
        if ON_DEMAND in capacity_types:
            offers.append({"node_type": o.instance_type, "capacity_type": ON_DEMAND, "spot": False,
                           "price_per_hour": o.usd_per_hour, **base})
        if SPOT in capacity_types:  # no spot price in the catalog: the on-demand price is the cap spot never exceeds
            offers.append({"node_type": node_type_for(o.instance_type, True), "capacity_type": SPOT, "spot": True,
                           "price_per_hour": o.spot_usd_per_hour or o.usd_per_hour,
                           "price_is_cap": o.spot_usd_per_hour is None, **base})
    return offers


def _instance(raw: dict) -> AwsInstance:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags") or []}
    launched = raw.get("LaunchTime")
    return AwsInstance(id=raw["InstanceId"], state=raw.get("State", {}).get("Name", "pending"),
                       instance_type=raw.get("InstanceType", ""), spot=raw.get("InstanceLifecycle") == "spot",
                       launched_at=launched.timestamp() if hasattr(launched, "timestamp") else 0.0,
                       request_id=tags.get(TAG_REQUEST, ""), pool=tags.get(TAG_POOL, ""),
                       node_type=tags.get(TAG_NODE_TYPE, ""), address=raw.get("PrivateIpAddress") or "",
                       zone=(raw.get("Placement") or {}).get("AvailabilityZone", ""))


def _supports_user_data_override(client: Any) -> bool:
    try:
        shape = client.meta.service_model.shape_for("FleetLaunchTemplateSpecificationRequest")
        return "LaunchTemplateSpecificationUserData" in shape.members
    except Exception:  # noqa: BLE001
        return False


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def describe_error(exc: BaseException) -> str:
    """A boto3/botocore failure as one line a user can act on (secrets scrubbed)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        text = f"{error.get('Code', 'error')}: {error.get('Message', '')}"
    elif type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        text = f"{exc}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or give the control plane an instance role"
    elif isinstance(exc, _Refused):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _scrub(text)


# Secrets a launch handed to botocore: botocore.endpoint's debug log prints every request's
# parameters, user data included. The filter replaces them in any record of that logger.
_SECRETS: deque[str] = deque(maxlen=256)
_SECRETS_LOCK = threading.Lock()


def _scrub(text: str) -> str:
    with _SECRETS_LOCK:
        secrets = list(_SECRETS)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            scrubbed = _scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, ()
        return True


_REDACT = _Redact()


def _redact(secret: str) -> None:
    with _SECRETS_LOCK:
        if secret not in _SECRETS:
            _SECRETS.append(secret)
    for name in ("botocore.endpoint", "botocore.parsers", "botocore.hooks"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
