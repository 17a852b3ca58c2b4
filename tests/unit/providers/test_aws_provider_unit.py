"""The aws provider's pure parts (node types, client tokens, user data, offers, orphans, error text)
and that the package imports without boto3. The provider against EC2 is in tests/contract and
tests/integration (moto)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

from hyperion.model.offer import Catalog, Offer
from hyperion.providers import aws
from hyperion.providers.aws import AwsInstance, client_token, find_orphans, node_type_for, parse_node_type, render_user_data

TOKEN = "hyp-bootstrap-0123456789abcdef"


@pytest.mark.parametrize(("node_type", "parsed"), [("g5.xlarge", ("g5.xlarge", False)),
                                                    ("g5.xlarge:spot", ("g5.xlarge", True)),
                                                    ("p5.48xlarge:spot", ("p5.48xlarge", True))])
def test_node_types_name_the_market(node_type, parsed):
    assert parse_node_type(node_type) == parsed
    assert node_type_for(*parsed) == node_type


def test_a_node_type_may_name_a_zone():
    from hyperion.providers.aws import zone_of

    assert parse_node_type("g5.xlarge:spot@us-east-1b") == ("g5.xlarge", True)
    assert zone_of("g5.xlarge:spot@us-east-1b") == "us-east-1b" and zone_of("g5.xlarge:spot") == ""
    assert node_type_for("g5.xlarge", True, "us-east-1b") == "g5.xlarge:spot@us-east-1b"


@pytest.mark.parametrize("request_id", ["req-1", "x" * 64, "y" * 65, "naïve", "tab\there"])
def test_client_tokens_are_at_most_64_printable_ascii_characters_and_stable(request_id):
    token = client_token(request_id)
    assert len(token) <= 64 and token.isascii() and token.isprintable()
    assert token == client_token(request_id)
    assert (token == request_id) == (len(request_id) <= 64 and request_id.isascii() and request_id.isprintable())


def test_user_data_writes_the_token_to_a_private_file_and_runs_hyperiond():
    script = render_user_data("cp.example:7070", TOKEN, node_labels={"aws/capacity-type": "spot"},
                              install_command="pip install hyperion==1.2", hyperiond="/usr/local/bin/hyperiond")
    assert script.startswith("#!/bin/bash\n") and "umask 077" in script
    assert f"<<'HYPERION_BOOTSTRAP_TOKEN'\n{TOKEN}\nHYPERION_BOOTSTRAP_TOKEN\n" in script  # quoted: no expansion
    assert "pip install hyperion==1.2" in script
    assert ("ExecStart=/usr/local/bin/hyperiond --control-plane cp.example:7070 --token-file /etc/hyperion/bootstrap.token "
            "--node-id ${NODE_ID} --data-dir /var/lib/hyperion/agent --label aws/capacity-type=spot") in script
    assert script.count(TOKEN) == 1, "the token is only in its file, not on a command line"


@pytest.mark.parametrize("token", ["short", "has space in it", "semi;colon;token", "new\nline-token", "x" * 513])
def test_user_data_refuses_tokens_that_could_break_the_script(token):
    with pytest.raises(ValueError) as err:
        render_user_data("cp:1", token, node_labels={})
    assert token not in str(err.value)


CATALOG = Catalog([Offer("aws", "us-east-1", "", "g5.xlarge", "A10G", 1, 4, 16, 1.006),
                   Offer("aws", "us-east-1", "", "p5.48xlarge", "H100", 8, 192, 2048, 55.04, 20.5),
                   Offer("aws", "us-west-2", "", "g5.xlarge", "A10G", 1, 4, 16, 1.1),
                   Offer("gcp", "us-east1", "us-east1-b", "a2-highgpu-1g", "A100", 1, 12, 85, 3.67)])


def provider(**options) -> aws.AwsProvider:
    pytest.importorskip("boto3")
    return aws.AwsProvider("us-east-1", "c1", "cp:7070", lambda: TOKEN, catalog=CATALOG, **options)


def test_offers_are_both_markets_of_the_region_from_the_catalog():
    offers = {o["node_type"]: o for o in provider().offers()}
    assert sorted(offers) == ["g5.xlarge", "g5.xlarge:spot", "p5.48xlarge", "p5.48xlarge:spot"]
    assert offers["p5.48xlarge:spot"]["price_per_hour"] == 20.5 and not offers["p5.48xlarge:spot"]["price_is_cap"]
    assert offers["g5.xlarge:spot"]["price_per_hour"] == 1.006 and offers["g5.xlarge:spot"]["price_is_cap"]
    assert offers["g5.xlarge"]["gpus"] == 1 and offers["p5.48xlarge"]["gpu_type"] == "H100"


def test_offers_follow_the_configured_instance_types_and_markets(caplog):
    with caplog.at_level(logging.WARNING, "hyperion.providers.aws"):
        chosen = provider(instance_types=("p5.48xlarge", "p9.typo"), capacity_types=("spot",))
    assert [o["node_type"] for o in chosen.offers()] == ["p5.48xlarge:spot"]
    assert "p9.typo not in the price catalog" in caplog.text
    (offer,) = chosen.instance_offers()
    assert (offer.pool, offer.instance_type, offer.spot, offer.gpus, offer.usd_per_h) == ("default", "p5.48xlarge", True, 8, 20.5)


def test_the_shipped_catalog_offers_gpu_instances_in_us_east_1():
    pytest.importorskip("boto3")
    node_types = {o["node_type"] for o in aws.AwsProvider("us-east-1", "c1").offers()}
    assert {"g5.xlarge", "g5.xlarge:spot", "p5.48xlarge"} <= node_types


def test_an_unknown_node_type_is_an_error_not_an_exception():
    p = provider()
    assert asyncio.run(p.launch("g5.xlarge:preemptible", 1, "req-x")) == []
    (error,) = p.drain_errors()
    assert error.request_id == "req-x" and "g5.xlarge:preemptible" in error.message


def test_the_repr_and_errors_hold_no_secrets():
    p = provider()
    assert "lambda" not in repr(p) and TOKEN not in repr(p)
    aws._redact(TOKEN)

    class ParamError(Exception):
        pass

    assert TOKEN not in aws.describe_error(ParamError(f"Invalid type for parameter UserData, value: {TOKEN}"))
    p._error("r", f"boom {TOKEN}")
    assert TOKEN not in p.drain_errors()[0].message


def test_a_client_error_reads_as_code_and_message():
    class ClientError(Exception):
        response = {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no p5 in us-east-1a"}}

    assert aws.describe_error(ClientError()) == "InsufficientInstanceCapacity: no p5 in us-east-1a"


def instance(id: str, state: str = "running", launched_at: float = 1000.0, request_id: str = "r") -> AwsInstance:
    return AwsInstance(id=id, state=state, instance_type="g5.xlarge", spot=False, launched_at=launched_at, request_id=request_id)


def test_orphans_are_live_unknown_and_older_than_the_grace_period():
    instances = [instance("i-known"), instance("i-orphan"), instance("i-young", launched_at=1290.0),
                 instance("i-gone", state="terminated"), instance("i-going", state="shutting-down"),
                 instance("i-recorded", request_id="req-recorded"), instance("i-pending", state="pending")]
    assert find_orphans(instances, ["i-known"], grace_s=60, now=1300.0, known_request_ids=["req-recorded"]) == [
        "i-orphan", "i-pending"]
    assert find_orphans(instances, [], grace_s=1000, now=1300.0) == []


def test_the_package_imports_without_boto3():
    code = textwrap.dedent("""
        import sys
        sys.modules["boto3"] = None  # import boto3 now raises ImportError
        sys.modules["botocore"] = None
        import hyperion.providers.aws as aws, hyperion.providers.aws_events as events, hyperion.agent.spot_notice
        import hyperion.cli.local_cluster
        assert aws.parse_node_type("g5.xlarge:spot") == ("g5.xlarge", True)
        try:
            aws.AwsProvider("us-east-1", "c1")
        except ImportError as exc:
            assert "pip install 'hyperion[aws]'" in str(exc), exc
        else:
            raise AssertionError("built an AwsProvider without boto3")
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
