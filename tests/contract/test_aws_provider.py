"""The aws NodeProvider against the contract suite, on a moto server started on loopback.

The server (``python -m moto.server``) runs for the module; each test gets its own cluster id, so a
test sees only the instances it launched. Credentials are dummies in the environment; the AMI is
one moto ships. Skipped when boto3 or moto[server] is not installed.
"""

from __future__ import annotations

import os
import uuid

import pytest

pytest.register_assert_rewrite("hyperion.testing.provider_contract")
pytest.importorskip("boto3")
pytest.importorskip("flask")  # moto[server]

from hyperion.providers.aws import AwsProvider  # noqa: E402
from hyperion.testing.moto import moto_server  # noqa: E402
from hyperion.testing.provider_contract import ProviderContract, run, terminate_everything  # noqa: E402

pytestmark = pytest.mark.integration
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    """A moto server on loopback, with dummy credentials in the environment; its URL."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def moto_ami(moto_endpoint) -> str:
    import boto3

    images = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint).describe_images(Owners=["amazon"])["Images"]
    assert images, "moto ships AMIs; none found"
    return images[0]["ImageId"]


def aws_provider(endpoint: str, ami: str, **options) -> AwsProvider:
    options = {"instance_types": ("g5.xlarge",), **options}
    return AwsProvider(REGION, f"test-{uuid.uuid4().hex[:10]}", "10.0.0.1:7070", lambda: "bootstrap-" + uuid.uuid4().hex,
                       ami=ami, endpoint_url=endpoint, **options)


class TestAwsProvider(ProviderContract):
    @pytest.fixture
    def provider(self, moto_endpoint, moto_ami):
        provider = aws_provider(moto_endpoint, moto_ami)
        yield provider
        terminate_everything(provider)


class TestAwsProviderSpot(ProviderContract):
    """The same contract for the spot market (the first offer is spot)."""

    @pytest.fixture
    def provider(self, moto_endpoint, moto_ami):
        provider = aws_provider(moto_endpoint, moto_ami, capacity_types=("spot",))
        assert provider.offers()[0]["node_type"] == "g5.xlarge:spot"
        yield provider
        terminate_everything(provider)


def test_contract_runs_without_errors(moto_endpoint, moto_ami):
    """The contract suite does not check drain_errors after good calls; this does."""
    provider = aws_provider(moto_endpoint, moto_ami)
    nodes = run(provider.launch("g5.xlarge", 2, "req-clean"))
    run(provider.terminate([n.id for n in nodes], "stop-clean"))
    assert provider.drain_errors() == []
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"  # never a real account


def test_spot_offers_take_the_current_spot_price_from_ec2(moto_endpoint, moto_ami):
    """With ``spot_price_refresh_s``, ``offers()`` starts reading DescribeSpotPriceHistory in the
    background (it never blocks) and spot offers then carry the lowest current price of the region's
    zones; on-demand offers keep the catalog's. Moto answers 0.00001 for every zone."""
    import time

    catalog_price = aws_provider(moto_endpoint, moto_ami, capacity_types=("spot",)).offers()[0]["price_per_hour"]
    provider = aws_provider(moto_endpoint, moto_ami, spot_price_refresh_s=600.0)
    first = {o["node_type"]: o for o in provider.offers()}
    assert first["g5.xlarge:spot"]["price_per_hour"] == catalog_price  # not read yet: the catalog's (the cap)
    deadline = time.monotonic() + 20
    while not any(o.get("price_source") for o in provider.offers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    offers = {o["node_type"]: o for o in provider.offers()}
    spot = offers["g5.xlarge:spot"]
    assert spot["price_per_hour"] == 0.00001 and spot["price_source"] == "ec2 spot price now" and not spot["price_is_cap"]
    assert "zone" not in spot  # the zone-less offer: CreateFleet picks the zone
    assert offers[f"g5.xlarge:spot@{REGION}a"]["zone"] == f"{REGION}a"
    assert offers["g5.xlarge"]["price_per_hour"] == first["g5.xlarge"]["price_per_hour"]  # on demand: the catalog's
    [od, *spots] = sorted(provider.instance_offers(), key=lambda o: o.spot)
    assert not od.spot and all(o.spot and o.usd_per_h == 0.00001 for o in spots)


def test_each_zones_spot_price_is_an_offer_pinned_to_that_zone_and_launches_there(moto_endpoint, moto_ami):
    """With current spot prices known, ``offers()`` adds one spot offer per zone
    (``g5.xlarge:spot@us-east-1b``); launching it keeps only the configured subnets in that zone
    (DescribeSubnets), so the instance runs there, and ``list_nodes`` says where each node runs.
    (Without subnets the override is ``AvailabilityZone``, which moto does not model.)"""
    import time

    import boto3

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)
    subnets = {sn["AvailabilityZone"]: sn["SubnetId"] for sn in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
    provider = aws_provider(moto_endpoint, moto_ami, spot_price_refresh_s=600.0,
                            subnet_ids=[subnets[f"{REGION}a"], subnets[f"{REGION}b"]])
    provider.offers()
    deadline = time.monotonic() + 20
    while not any("@" in o["node_type"] for o in provider.offers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    zoned = sorted(o["node_type"] for o in provider.offers() if "@" in o["node_type"])
    assert len(zoned) >= 2 and all(t.startswith("g5.xlarge:spot@us-east-1") for t in zoned)
    zone = f"{REGION}b"
    target = f"g5.xlarge:spot@{zone}"
    assert target in zoned
    try:
        [node] = run(provider.launch(target, 1, "req-zone"))
        assert provider.drain_errors() == []
        listed = {n.id: n for n in run(provider.list_nodes())}
        assert listed[node.id].zone == zone and listed[node.id].node_type == target
        assert run(provider.launch("g5.xlarge:spot@eu-west-1a", 1, "req-elsewhere")) == []
        [err] = provider.drain_errors()
        assert "unknown node type" in err.message
    finally:
        terminate_everything(provider)
