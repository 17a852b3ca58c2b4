"""An ``aws`` NodePool end to end against a moto server on loopback: a real control plane launches
through CreateFleet, an interruption event arrives through SQS, the job checkpoints and resumes on
a replacement instance, and the orphan sweep terminates what no record knows.

Moto's instances run nothing, so this test stands in for the machines: a watcher polls moto for
running instances tagged with the control plane's cluster id, reads each one's user data
(DescribeInstanceAttribute), takes the bootstrap token and the ``hyperiond`` arguments the real
instance would run (``--control-plane``, ``--label ...``), and starts a local ``hyperiond`` whose node
id is the instance id; it stops that agent once the instance is shutting down or terminated. The
join is the real bootstrap-token path (minted per launch, consumed at Hello).

The interruption comes either through the SQS queue (an EventBridge warning sent to it) or through
the instance's agent: each stand-in's ``--spot-notice-url`` points at a small local metadata
service that answers 404 until the test publishes a notice for that instance.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("flask")  # moto[server]

from hyperion.testing.cluster import LocalCluster  # noqa: E402
from hyperion.testing.moto import REGION, moto_server, stop  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "checkpoint"
CLUSTER_TAG = "hyperion:cluster-id"
POOL = {"kind": "NodePool", "name": "gpu", "provider": "aws", "instance_types": ["g5.xlarge"],
        "capacity_types": ["spot", "on-demand"], "min_nodes": 0, "max_nodes": 2, "idle_timeout": "120s"}
GONE = ("shutting-down", "terminated")


def spot_warning(instance_id: str) -> str:
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "EC2 Spot Instance Interruption Warning",
                       "source": "aws.ec2", "account": "123456789012",
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": REGION,
                       "resources": [f"arn:aws:ec2:{REGION}:123456789012:instance/{instance_id}"],
                       "detail": {"instance-id": instance_id, "instance-action": "terminate"}})


def bootstrap_of(script: str) -> tuple[str, list[str]]:
    """The bootstrap token and the ``hyperiond`` arguments (after the program) in a user data script."""
    token = re.search(r"<<'HYPERION_BOOTSTRAP_TOKEN'\n(.+?)\nHYPERION_BOOTSTRAP_TOKEN\n", script).group(1)
    command = re.search(r"^ExecStart=(.+)$", script, re.M).group(1)
    return token, shlex.split(command)[1:]


class StandIns:
    """Local ``hyperiond`` processes standing in for moto's instances of one cluster id."""

    def __init__(self, ec2, cluster_id: str, root: Path, metadata: str) -> None:
        self.ec2, self.cluster_id, self.root, self.metadata = ec2, cluster_id, root, metadata
        self.agents: dict[str, subprocess.Popen] = {}
        self.tokens: dict[str, str] = {}  # instance id -> the bootstrap token in its user data
        self.args: dict[str, list[str]] = {}  # instance id -> its hyperiond arguments
        self.stopped: list[str] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stand-ins", daemon=True)

    def __enter__(self) -> StandIns:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join(10)
        for proc in self.agents.values():
            if proc.poll() is None:
                stop(proc)

    def _watch(self) -> None:
        while not self._halt.wait(0.2):
            try:
                pages = self.ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster_id]}])
                instances = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
            except Exception:  # noqa: BLE001 - moto stopping at the end
                continue
            for i in instances:
                iid, state = i["InstanceId"], i["State"]["Name"]
                if state == "running" and iid not in self.agents and iid not in self.stopped:
                    self._start(iid)
                elif state in GONE and iid in self.agents and iid not in self.stopped:
                    stop(self.agents[iid])
                    self.stopped.append(iid)

    def _start(self, iid: str) -> None:
        value = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"].get("Value")
        if not value:
            self.stopped.append(iid)  # not launched by a control plane (the orphan): nothing joins
            return
        token, args = bootstrap_of(base64.b64decode(value).decode())
        self.tokens[iid], self.args[iid] = token, args
        self.agents[iid] = self.run_agent(iid, token, args)

    def run_agent(self, node_id: str, token: str, args: list[str]) -> subprocess.Popen:
        """``hyperiond`` as the instance would run it, with local paths for its token and data."""
        home = self.root / node_id
        home.mkdir(parents=True, exist_ok=True)
        (home / "bootstrap.token").write_text(token + "\n")
        options = dict(zip(args[::2], args[1::2], strict=False))
        labels = [v for k, v in zip(args[::2], args[1::2], strict=False) if k == "--label"]
        argv = [sys.executable, "-m", "hyperion.agent", "--control-plane", options["--control-plane"],
                "--token-file", str(home / "bootstrap.token"), "--node-id", node_id, "--data-dir", str(home / "data"),
                "--gpus", "1", "--gpu-type", "A10G", "--standby-workers", "0", "--heartbeat-interval", "0.5",
                *[a for label in labels for a in ("--label", label)]]
        if "--spot-notice-url" in options:  # the instance's own metadata service, here a local one
            argv += ["--spot-notice-url", f"{self.metadata}/{node_id}/latest/meta-data/spot/instance-action",
                     "--spot-notice-interval", "0.2"]
        out = open(home / "agent.log", "ab")  # noqa: SIM115 - the child holds it
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        finally:
            out.close()


@pytest.fixture
def metadata() -> Iterator[tuple[str, set[str]]]:
    """A metadata service for every stand-in: ``/<instance id>/latest/meta-data/spot/instance-action``
    answers 404 until the instance id is in the yielded set (IMDSv2 tokens are handed out)."""
    noticed: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_PUT(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"imds-session")

        def do_GET(self) -> None:
            iid = self.path.strip("/").split("/")[0]
            body = json.dumps({"action": "terminate", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                             time.gmtime(time.time() + 120))}).encode()
            self.send_response(200 if iid in noticed else 404)
            self.end_headers()
            if iid in noticed:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", noticed
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.mark.parametrize("via", ["sqs", "agent"])
def test_a_spot_interruption_checkpoints_and_resumes_on_a_replacement_then_orphans_are_swept(
        moto_endpoint, metadata, tmp_path, via):
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)
    queue = sqs.create_queue(QueueName=f"hyperion-interruptions-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    cluster_id = f"it-{uuid.uuid4().hex[:10]}"
    args = ("--cluster-id", cluster_id, "--aws-region", REGION, "--aws-endpoint-url", moto_endpoint,
            "--aws-sqs-queue-url", queue, "--aws-ami", ami, "--aws-sqs-poll-interval", "0.3",
            "--aws-sweep-interval", "1", "--aws-orphan-grace", "2", "--heartbeat-interval", "0.5")
    c = LocalCluster(tmp_path / "hyperion", agents=0, gpus_per_agent=1, node_timeout=5.0, extra_args=args)
    with c, StandIns(ec2, cluster_id, tmp_path / "instances", metadata[0]) as machines:
        assert (c.data_dir / "cluster-id").read_text().strip() == cluster_id
        admin = c.client()
        r = admin.post("/v1/apply", json={"documents": [POOL]})
        assert r.status_code == 200, r.text

        def pool() -> dict:
            [p] = [p for p in admin.get("/v1/nodepools").json()["items"] if p["name"] == "gpu"]
            return p

        def job() -> dict:
            return admin.get(f"/v1/jobs/{submitted['id']}").json()

        out = tmp_path / "counter.json"
        steps = 150
        submitted = c.submit({"name": "count", "resources": {"gpus": 1}, "grace_period": "10s",
                              "checkpoint_dir": str(tmp_path / "ckpt"),
                              "command": [sys.executable, str(EXAMPLES / "counter.py"), "--steps", str(steps),
                                          "--every", "5", "--sleep", "0.05", "--out", str(out)]})

        # CreateFleet launched a spot instance; its stand-in joined with the bootstrap token; the job checkpoints
        running = c.wait(job, lambda j: j["phase"] == "running" and j["last_checkpoint_at"] is not None, 60,
                         "the job running on a launched instance, with a checkpoint")
        first = running["placements"][0]["node"]
        [launched] = pool()["instances"]
        assert launched["provider_id"] == first and launched["node_id"] == first and launched["state"] == "ready"
        assert launched["instance_type"] == "g5.xlarge:spot" and launched["spot"]
        described = ec2.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"][0]
        assert described.get("InstanceLifecycle") == "spot"
        assert {t["Key"]: t["Value"] for t in described["Tags"]}[CLUSTER_TAG] == cluster_id
        node = [n for n in admin.get("/v1/nodes").json()["items"] if n["id"] == first][0]
        assert node["labels"]["hyperion.io/pool"] == "gpu"
        first_token = machines.tokens[first]
        assert first_token.startswith("hb1.")
        assert "--spot-notice-url" in machines.args[first]  # a spot instance's agent watches the metadata service

        # the bootstrap token joined once: another node presenting it is refused, with the reason
        intruder = machines.run_agent("intruder-1", first_token, machines.args[first])
        try:
            log = tmp_path / "instances" / "intruder-1" / "agent.log"
            c.wait(lambda: log.read_text() if log.exists() else "", lambda text: "already used" in text, 20,
                   "the intruder refused")  # (the first node has not presented its credential yet)
        finally:
            stop(intruder)
        assert "intruder-1" not in [n["id"] for n in admin.get("/v1/nodes").json()["items"]]

        # the interruption warning arrives (through SQS, or the instance's agent reads the notice):
        # drain (checkpoint + requeue), replace, resume
        sent_at = time.monotonic()
        if via == "sqs":
            sqs.send_message(QueueUrl=queue, MessageBody=spot_warning(first))
        else:
            metadata[1].add(first)
        done = c.wait_jobs([submitted["id"]], timeout=90)[submitted["id"]]
        print(f"\ninterruption warning -> job done on the replacement: {time.monotonic() - sent_at:.1f} s")
        assert (done["phase"], done["attempt"], done["failures"]) == ("succeeded", 2, 0), done
        second = done["placements"][0]["node"]
        assert second != first
        result = json.loads(out.read_text())
        assert result["resumed_from"] is not None and result["resumed_from"] >= 5, result  # from its checkpoint, not 0
        assert result["total"] == sum(k * k for k in range(1, steps + 1)) and result["attempt"] == 2
        instances = {i["provider_id"]: i for i in c.wait(
            lambda: pool()["instances"], lambda items: any(i["provider_id"] == first and i["state"] == "terminated"
                                                          for i in items), 30, "the interrupted instance terminated")}
        assert instances[first]["notice_at"] is not None
        assert instances[second]["state"] == "ready" and instances[second]["request_id"] != instances[first]["request_id"]
        assert ec2.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"][0]["State"]["Name"] in GONE
        kinds = [e["kind"] for e in admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]]
        assert "spot-interruption" in kinds and kinds.count("scale-up") == 2
        [told] = [e for e in admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]
                  if e["kind"] == "spot-interruption"]
        assert ("SQS" if via == "sqs" else "the node's agent") in told["message"]

        # the orphan sweep: an instance with our tag that no record knows is terminated and reported
        [orphan] = ec2.run_instances(ImageId=ami, InstanceType="g5.xlarge", MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": CLUSTER_TAG, "Value": cluster_id}]}])["Instances"]
        oid = orphan["InstanceId"]
        c.wait(lambda: ec2.describe_instances(InstanceIds=[oid])["Reservations"][0]["Instances"][0]["State"]["Name"],
               lambda state: state in GONE, 30, "the orphan terminated")
        swept = [e for e in admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]
                 if e["kind"] == "orphan-swept"]
        assert any(oid in e["message"] for e in swept), swept
        assert ec2.describe_instances(InstanceIds=[second])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"

        # the bootstrap join was exchanged for a node credential, kept in the agent's data dir (0600);
        # the restarted agent presents it, after which its bootstrap token admits nobody
        credential_file = tmp_path / "instances" / second / "data" / "node.credential"
        credential = credential_file.read_text().strip()
        assert credential.startswith("hn1.") and credential_file.stat().st_mode & 0o777 == 0o600
        stop(machines.agents[second])
        machines.agents[second] = machines.run_agent(second, machines.tokens[second], machines.args[second])
        c.wait(lambda: (tmp_path / "instances" / second / "agent.log").read_text(),
               lambda text: text.count("connected to control plane") >= 2, 20, "the restarted agent connected")
        reused = machines.run_agent("intruder-2", machines.tokens[second], machines.args[second])
        try:
            log = tmp_path / "instances" / "intruder-2" / "agent.log"
            c.wait(lambda: log.read_text() if log.exists() else "", lambda text: "invalid agent token" in text, 20,
                   "the spent bootstrap token refused")
        finally:
            stop(reused)

        cp_log = (c.data_dir / "controlplane.log").read_text()
        for token in [*machines.tokens.values(), credential]:  # never logged
            assert token not in cp_log


def test_a_pool_with_its_own_region_launches_there_and_its_deletion_terminates_it(moto_endpoint, tmp_path) -> None:
    """``region:`` on an aws pool overrides ``--aws-region``: a pool kept at one node launches it in
    us-west-2 (tagged with the pool and the member it joins); deleting the pool terminates it."""
    west = boto3.client("ec2", region_name="us-west-2", endpoint_url=moto_endpoint)
    cluster_id = f"it-{uuid.uuid4().hex[:10]}"
    args = ("--cluster-id", cluster_id, "--aws-region", REGION, "--aws-endpoint-url", moto_endpoint,
            "--aws-ami", west.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])
    c = LocalCluster(tmp_path / "hyperion", agents=0, gpus_per_agent=1, node_timeout=5.0, extra_args=args)
    pool = {**POOL, "name": "west", "region": "us-west-2", "min_nodes": 1, "max_nodes": 1,
            "capacity_types": ["on-demand"], "cluster": "aws-west"}
    with c:
        admin = c.client()
        r = admin.post("/v1/apply", json={"documents": [pool]})
        assert r.status_code == 200, r.text

        def ours() -> list[dict]:
            pages = west.get_paginator("describe_instances").paginate(
                Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_id]}])
            return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

        [instance] = c.wait(ours, lambda xs: len(xs) == 1, 30, "the pool's instance in us-west-2")
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["hyperion:pool"] == "west" and instance["Placement"]["AvailabilityZone"].startswith("us-west-2")
        user_data = west.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        _, hyperiond_args = bootstrap_of(base64.b64decode(user_data["UserData"]["Value"]).decode())
        assert "hyperion.io/cluster=aws-west" in hyperiond_args and "aws/region=us-west-2" in hyperiond_args
        [p] = [p for p in admin.get("/v1/nodepools").json()["items"] if p["name"] == "west"]
        assert p["region"] == "us-west-2" and p["cluster"] == "aws-west"
        assert admin.delete("/v1/nodepools/west").status_code == 200
        c.wait(ours, lambda xs: all(i["State"]["Name"] in GONE for i in xs), 30, "the instance terminated")
