"""The live federation on a real control plane and agent: kind: Cluster members applied over REST,
jobs submitted over REST and gRPC decided by the federation, the decision in the job view and in
``hyperion explain``, a routed job running on the agent labelled with its member, a job routed to a
member without nodes held with the reason, and a refused submission that stores nothing."""

from __future__ import annotations

import grpc
import pytest

from hyperion.api._generated.hyperion.v1 import hyperion_pb2 as pb
from hyperion.api._generated.hyperion.v1 import hyperion_pb2_grpc
from hyperion.testing.cluster import LocalCluster

pytestmark = pytest.mark.integration

ONPREM = {"kind": "Cluster", "name": "onprem", "provider": "onprem", "region": "home", "gpus": {"A100": 2},
          "gpu_hour_usd": {"A100": 1.0}, "carbon_intensity": 300}
CLOUD = {"kind": "Cluster", "name": "cloud", "provider": "aws", "region": "us-east-1", "gpus": {"A100": 8},
         "gpu_hour_usd": {"A100": 4.0}}


@pytest.fixture
def cluster(make_cluster) -> LocalCluster:
    c = make_cluster(agents=1, gpus_per_agent=2, node_timeout=5.0, extra_args=("--gpu-type", "A100"),
                     agent_args=("--label=hyperion.io/cluster=onprem",))
    r = c.client().post("/v1/apply", json={"documents": [ONPREM, CLOUD]})
    assert r.status_code == 200, r.text
    assert [x["action"] for x in r.json()["results"]] == ["created", "created"]
    return c


def job(name: str, gpus: int, command: str) -> dict:
    return {"name": name, "team": "vision", "resources": {"gpus": gpus, "gpu_type": "A100", "cpus": "100m",
            "memory": "16Mi"}, "command": command, "grace_period": "1s", "runtime_estimate": "1h"}


def test_jobs_are_routed_by_the_federation_and_run_on_their_members_nodes(cluster: LocalCluster) -> None:
    c = cluster
    admin = c.client()
    [node] = c.wait_nodes(1)
    assert node["labels"] == {"hyperion.io/cluster": "onprem"}
    members = admin.get("/v1/clusters").json()
    assert [(m["name"], m["capacity"], m["nodes"]) for m in members["items"]] == [
        ("cloud", {"A100": 8}, 0), ("onprem", {"A100": 2}, 1)]
    table = c.cli("clusters")
    assert "onprem" in table and "cloud" in table and "$/GPU-H" in table

    # REST: the cheaper member takes it, and it runs on that member's node
    first = c.submit(job("train", 2, "sleep 120"))  # holds onprem's GPUs until cancelled below
    assert first["federation"]["cluster"] == "onprem"
    view = admin.get(f"/v1/jobs/{first['id']}").json()
    f = view["federation"]
    assert (f["cluster"], f["gpu_type"], f["market"], f["profile"]) == ("onprem", "A100", "on-demand", "default")
    assert f["expected_usd"] == pytest.approx(2.0) and f["expected_carbon_g"] is not None
    running = c.wait(lambda: admin.get(f"/v1/jobs/{first['id']}").json(), lambda j: j["phase"] == "running", 20,
                     "the routed job running")
    assert running["node"] == node["id"]

    # gRPC: onprem's GPUs are committed, so the job goes to the cloud member, which has no node yet
    with grpc.insecure_channel(f"127.0.0.1:{c.grpc_port}") as ch:
        stub = hyperion_pb2_grpc.FederationSchedulerStub(ch)
        md = (("authorization", f"Bearer {c.admin_token}"),)
        status = stub.SubmitJob(pb.AIJob(name="viagrpc", team="vision", command=["true"],
                                         resources=pb.AIJob.ResourceRequest(gpus=1, gpu_type="A100", cpus_milli=100,
                                                                            memory_mb=16),
                                         placement=pb.Placement(weights={"cost": 1.0, "carbon": 0.5})), metadata=md)
        # a placement knob that no member satisfies is refused, naming the field
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitJob(pb.AIJob(name="nowhere", team="vision", command=["true"],
                                    placement=pb.Placement(weights={"speed": 1.0})), metadata=md)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "speed" in refused.value.details()
    assert status.phase == "pending" and "routed to member cloud" in status.status_message and status.cluster == "cloud"
    explained = c.wait(lambda: admin.get(f"/v1/jobs/{status.job_id}/explain").json(),
                       lambda e: e.get("verdict") == "unresolvable", 10, "the federation's verdict")
    assert explained["federation"]["cluster"] == "cloud"
    assert [r["cluster"] for r in explained["federation"]["rejected"]] == ["onprem"]
    [reason] = explained["reasons"]
    assert reason["plugin"] == "federation"
    assert reason["reason"].startswith("routed to member cloud, which has no node yet: capacity comes from its node pool")
    text = c.cli("explain", status.job_id)
    assert "federation: member cloud A100 on-demand (profile default)" in text
    assert "rejected onprem:" in text
    assert "which has no node yet" in text

    # no member can take 16 GPUs: refused with each member's reason, nothing stored
    before = admin.get("/v1/jobs").json()["total"]
    r = admin.post("/v1/jobs", json=job("huge", 16, "true"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert "no federation member can take it" in body["message"]
    assert sorted(d["msg"].split(":")[0] for d in body["detail"]) == ["member cloud", "member onprem"]
    assert admin.get("/v1/jobs").json()["total"] == before

    admin.delete(f"/v1/jobs/{first['id']}")
    done = c.wait_jobs([first["id"]], timeout=30)[first["id"]]
    assert done["phase"] == "cancelled" and done["federation"]["cluster"] == "onprem"
    # its GPUs are free again: the next job goes back to onprem and runs there
    again = c.submit(job("again", 1, "true"))
    assert again["federation"]["cluster"] == "onprem"
    assert c.wait_jobs([again["id"]], timeout=30)[again["id"]]["node"] == node["id"]
    admin.delete(f"/v1/jobs/{status.job_id}")
    assert admin.delete("/v1/clusters/cloud").json()["action"] == "deleted"
    assert [m["name"] for m in admin.get("/v1/clusters").json()["items"]] == ["onprem"]
