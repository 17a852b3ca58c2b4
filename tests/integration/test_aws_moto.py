"""The aws provider, its interruption queue, the orphan sweep and ``hyperion down --purge-cloud``
against a moto server started on loopback (``python -m moto.server``) with dummy credentials.

What moto does not do is listed in docs/aws.md (ClientToken, allocation strategies and spot
prices are accepted but not modelled; instances are "running" at once).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("flask")  # moto[server]

from click.testing import CliRunner  # noqa: E402

from hyperion.cli.main import cli  # noqa: E402
from hyperion.providers import aws  # noqa: E402
from hyperion.providers.aws import AwsProvider, purge, sweep_orphans  # noqa: E402
from hyperion.providers.aws_events import SqsInterruptions  # noqa: E402
from hyperion.testing.moto import AWS_ENV, moto_server  # noqa: E402
from hyperion.testing.provider_contract import run  # noqa: E402

pytestmark = pytest.mark.integration
REGION = "us-east-1"
ADDRESS = "10.0.0.1:7070"


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    """A moto server on loopback, with dummy credentials in the environment; its URL."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def ec2(moto_endpoint):
    return boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture(scope="module")
def ami(ec2) -> str:
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


class Tokens:
    """Mints distinct bootstrap tokens and remembers them, so tests can look for them in logs."""

    def __init__(self) -> None:
        self.minted: list[str] = []

    def __call__(self) -> str:
        self.minted.append(f"hyp-bootstrap-{uuid.uuid4().hex}")
        return self.minted[-1]


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def make_provider(moto_endpoint, ami, tokens):
    made: list[AwsProvider] = []

    def make(cluster_id: str | None = None, **options) -> AwsProvider:
        options = {"instance_types": ("g5.xlarge", "p4d.24xlarge"), "pool": "gpu", **options}
        provider = AwsProvider(REGION, cluster_id or f"it-{uuid.uuid4().hex[:10]}", ADDRESS, tokens, ami=ami,
                               endpoint_url=moto_endpoint, **options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        run(purge(provider))


def described(ec2, ids) -> dict[str, dict]:
    pages = ec2.get_paginator("describe_instances").paginate(InstanceIds=list(ids))
    return {i["InstanceId"]: i for page in pages for r in page["Reservations"] for i in r["Instances"]}


def user_data(ec2, instance_id: str) -> str:
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    return base64.b64decode(value).decode()


def our_templates(ec2, cluster_id: str) -> list[dict]:
    return ec2.describe_launch_templates(Filters=[{"Name": "tag:hyperion:cluster-id", "Values": [cluster_id]}])["LaunchTemplates"]


# ---- launching ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("node_type", "lifecycle"), [("g5.xlarge", None), ("g5.xlarge:spot", "spot")])
def test_launch_tags_instances_and_is_idempotent_by_request(make_provider, ec2, tokens, node_type, lifecycle):
    provider = make_provider()
    first = run(provider.launch(node_type, 2, "req-1"))
    again = run(provider.launch(node_type, 2, "req-1"))
    assert len(first) == 2 and sorted(n.id for n in again) == sorted(n.id for n in first)
    assert len(tokens.minted) == 1, "the repeated request minted a token or launched again"
    for instance in described(ec2, [n.id for n in first]).values():
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["hyperion:cluster-id"] == provider.cluster_id
        assert tags["hyperion:request-id"] == "req-1"
        assert tags["hyperion:pool"] == "gpu" and tags["hyperion:node-type"] == node_type
        assert instance["InstanceType"] == "g5.xlarge" and instance.get("InstanceLifecycle") == lifecycle
        script = user_data(ec2, instance["InstanceId"])
        assert f"--control-plane {ADDRESS} --token-file /etc/hyperion/bootstrap.token" in script
        assert tokens.minted[0] in script and "pip install" in script
    assert {n.state for n in run(provider.list_nodes())} == {"running"}
    assert provider.drain_errors() == []


def test_a_launch_template_per_instance_type_and_market_is_made_once(make_provider, ec2):
    provider = make_provider()
    run(provider.launch("g5.xlarge", 1, "a"))
    run(provider.launch("g5.xlarge", 1, "b"))
    run(provider.launch("g5.xlarge:spot", 1, "c"))
    run(provider.launch("p4d.24xlarge", 1, "d"))
    assert len(our_templates(ec2, provider.cluster_id)) == 3
    again = make_provider(provider.cluster_id)  # a restarted control plane finds them
    run(again.launch("g5.xlarge", 1, "e"))
    assert len(our_templates(ec2, provider.cluster_id)) == 3
    assert provider.drain_errors() == [] and again.drain_errors() == []


def test_a_restarted_provider_finds_what_a_request_launched(make_provider):
    provider = make_provider()
    launched = run(provider.launch("g5.xlarge:spot", 2, "req-restart"))
    restarted = make_provider(provider.cluster_id)
    assert sorted(n.id for n in run(restarted.launch("g5.xlarge:spot", 2, "req-restart"))) == sorted(n.id for n in launched)


def test_without_the_user_data_override_a_template_version_carries_it(make_provider, ec2, tokens, monkeypatch):
    monkeypatch.setattr(aws, "_supports_user_data_override", lambda client: False)
    provider = make_provider()
    (node,) = run(provider.launch("g5.xlarge", 1, "req-old-botocore"))
    assert tokens.minted[0] in user_data(ec2, node.id)
    (template,) = our_templates(ec2, provider.cluster_id)
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in versions] == [1], "the version holding the token was not deleted"
    assert provider.drain_errors() == []


def test_the_bootstrap_token_is_never_logged(make_provider, tokens, caplog):
    caplog.set_level(logging.DEBUG)  # botocore included: it logs every request's parameters at DEBUG
    provider = make_provider()
    run(provider.launch("g5.xlarge:spot", 2, "req-secret"))
    run(provider.launch("nope.large", 1, "req-bad-type"))
    (token,) = tokens.minted
    logged = caplog.text + "".join(str(r.msg) + str(r.args) for r in caplog.records)
    assert "CreateFleet" in logged, "botocore's debug log was not captured: the test would prove nothing"
    encoded = [base64.b64encode(token.encode()).decode()[:16]]  # the token's own base64, and inside the user data:
    encoded += [base64.b64encode(("x" * pad + token).encode()).decode()[8:24] for pad in range(3)]
    for secret in [token, *encoded]:
        assert secret not in logged
    assert "[redacted]" in logged
    assert token not in repr(provider) and all(token not in e.message for e in provider.drain_errors())


# ---- interruptions from SQS -----------------------------------------------------------------------

def eventbridge(detail_type: str, instance_id: str, action: str = "terminate") -> str:
    detail = {"instance-id": instance_id}
    if detail_type.startswith("EC2 Spot"):
        detail["instance-action"] = action
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": "aws.ec2",
                       "account": "123456789012", "time": "2026-01-02T03:04:05Z", "region": REGION,
                       "resources": [f"arn:aws:ec2:{REGION}:123456789012:instance/{instance_id}"], "detail": detail})


def test_interruption_events_are_parsed_and_deleted(make_provider, moto_endpoint):
    provider = make_provider()
    spot, other = run(provider.launch("g5.xlarge:spot", 2, "req-sqs"))
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)
    queue = sqs.create_queue(QueueName=f"hyperion-interruptions-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=eventbridge("EC2 Spot Instance Interruption Warning", spot.id))
    sqs.send_message(QueueUrl=queue, MessageBody=eventbridge("EC2 Instance Rebalance Recommendation", other.id))
    sqs.send_message(QueueUrl=queue, MessageBody=eventbridge("EC2 Instance State-change Notification", other.id))
    sqs.send_message(QueueUrl=queue, MessageBody="not json")
    interruptions = SqsInterruptions(queue, REGION, endpoint_url=moto_endpoint)
    events = run(interruptions.poll(max_messages=10))
    assert sorted((e.kind, e.instance_id, e.action) for e in events) == [
        ("rebalance-recommendation", other.id, ""), ("spot-interruption", spot.id, "terminate")]
    assert run(interruptions.poll()) == []
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert interruptions.drain_errors() == []


def test_a_missing_queue_is_an_error_not_an_exception(moto_endpoint):
    interruptions = SqsInterruptions(f"{moto_endpoint}/123456789012/no-such-queue", REGION, endpoint_url=moto_endpoint)
    assert run(interruptions.poll()) == []
    (error,) = interruptions.drain_errors()
    assert "no-such-queue" in error.message


# ---- orphans and purge --------------------------------------------------------------------------

def test_sweep_terminates_unknown_instances_of_this_cluster_only(make_provider, ec2):
    provider = make_provider()
    known = run(provider.launch("g5.xlarge", 2, "req-known"))
    (orphan,) = run(provider.launch("g5.xlarge", 1, "req-lost"))  # the store never recorded this request
    (pending,) = run(provider.launch("g5.xlarge", 1, "req-recorded"))  # recorded request, instance id not yet
    (foreign,) = run(make_provider().launch("g5.xlarge", 1, "req-other-cluster"))
    known_ids = [n.id for n in known]
    assert run(sweep_orphans(provider, known_ids, grace_s=3600, now=time.time(), known_request_ids=["req-recorded"])) == []
    swept = run(sweep_orphans(provider, known_ids, grace_s=0, now=time.time() + 5, known_request_ids=["req-recorded"]))
    assert swept == [orphan.id]
    states = {i: d["State"]["Name"] for i, d in described(ec2, [*known_ids, orphan.id, pending.id, foreign.id]).items()}
    assert states[orphan.id] in ("shutting-down", "terminated")
    assert {states[i] for i in [*known_ids, pending.id, foreign.id]} == {"running"}
    assert provider.drain_errors() == []


def test_purge_removes_and_lists_everything_of_the_cluster(make_provider, ec2):
    provider = make_provider()
    on_demand = run(provider.launch("g5.xlarge", 2, "req-p1"))
    spot = run(provider.launch("p4d.24xlarge:spot", 1, "req-p2"))
    (foreign,) = run(make_provider().launch("g5.xlarge", 1, "req-p3"))
    removed = run(purge(provider))
    ids = sorted(n.id for n in on_demand + spot)
    assert sorted(r["id"] for r in removed if r["kind"] == "instance") == ids
    assert len([r for r in removed if r["kind"] == "launch-template"]) == 2
    assert len([r for r in removed if r["kind"] == "fleet"]) == 2
    assert {n.state for n in run(provider.list_nodes())} == {"terminated"}
    assert our_templates(ec2, provider.cluster_id) == []
    assert described(ec2, [foreign.id])[foreign.id]["State"]["Name"] == "running"
    assert [r["kind"] for r in run(purge(provider))] == []  # nothing left the second time
    assert provider.drain_errors() == []


def test_down_purge_cloud_lists_what_it_removed(make_provider, moto_endpoint, tmp_path):
    provider = make_provider()
    nodes = run(provider.launch("g5.xlarge:spot", 2, "req-cli"))
    (tmp_path / "cluster-id").write_text(provider.cluster_id + "\n")
    args = ["--data-dir", str(tmp_path), "down", "--purge-cloud", "--aws-region", REGION, "--aws-endpoint-url", moto_endpoint]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"removed from AWS {REGION} (cluster {provider.cluster_id})" in result.output
    for node in nodes:
        assert f"instance         {node.id} g5.xlarge:spot (was running)" in result.output
    assert "launch-template" in result.output and "fleet" in result.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and f"nothing of cluster {provider.cluster_id}" in again.output


def test_down_purge_cloud_without_credentials_says_so(tmp_path, monkeypatch):
    for key in [*AWS_ENV, "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "down", "--purge-cloud", "--cluster-id", "c1",
                                      "--aws-region", REGION])
    assert result.exit_code == 1 and "no AWS credentials found" in result.output
    assert "control plane" not in result.output, "it stopped things before refusing"
