"""Cloud bursting end to end on this machine: an on-prem federation member with ``burst_after``
(one real agent labelled with it) and a cloud member whose capacity is a ``local`` NodePool that
joins it (``cluster: cloud``; its agents stand in for cloud instances).

A job that finds on-prem's GPUs taken joins on-prem's queue; its expected wait there (the running
job's runtime estimate) is longer than ``burst_after``, so it is burst to the cloud member, the pool
launches a node labelled with that member, and the job runs and succeeds there. A job of a team
whose budget cannot pay for the cloud stays in the queue, and ``hyperion explain`` says why."""

from __future__ import annotations

import pytest

from hyperion.testing.cluster import LocalCluster

pytestmark = pytest.mark.integration

ONPREM = {"kind": "Cluster", "name": "onprem", "provider": "onprem", "region": "home", "gpus": {"A100": 2},
          "gpu_hour_usd": {"A100": 1.0}, "carbon_intensity": 300, "burst_after": "2s"}
CLOUD = {"kind": "Cluster", "name": "cloud", "provider": "aws", "region": "us-east-1", "gpus": {"A100": 4},
         "gpu_hour_usd": {"A100": 4.0}}
POOL = {"kind": "NodePool", "name": "burst", "provider": "local", "cluster": "cloud", "min_nodes": 0, "max_nodes": 2,
        "idle_timeout": "60s", "capacity_types": ["on-demand"]}
SMALL_BUDGET = {"kind": "Budget", "name": "nlp-tiny", "team": "nlp", "period": "month", "usd": 5, "action": "hold"}


@pytest.fixture
def cluster(make_cluster) -> LocalCluster:
    c = make_cluster(agents=1, gpus_per_agent=2, node_timeout=5.0, extra_args=("--gpu-type", "A100"),
                     agent_args=("--label=hyperion.io/cluster=onprem",))
    r = c.client().post("/v1/apply", json={"documents": [ONPREM, CLOUD, POOL, SMALL_BUDGET]})
    assert r.status_code == 200, r.text
    return c


def job(name: str, team: str, command: str, estimate: str) -> dict:
    return {"name": name, "team": team, "resources": {"gpus": 2, "gpu_type": "A100", "cpus": "100m", "memory": "16Mi"},
            "command": command, "grace_period": "1s", "runtime_estimate": estimate}


def test_a_job_waiting_too_long_on_prem_bursts_to_the_cloud_pool(cluster: LocalCluster) -> None:
    c = cluster
    admin = c.client()
    [onprem_node] = c.wait_nodes(1)
    big = c.submit(job("big", "vision", "sleep 300", "1h"))  # takes on-prem's two GPUs for an hour
    assert big["federation"]["cluster"] == "onprem"
    c.wait(lambda: admin.get(f"/v1/jobs/{big['id']}").json(), lambda j: j["phase"] == "running", 20, "big running")

    # on-prem is full, but it queues: the cheaper member still takes the job, and it waits there
    small = c.submit(job("small", "vision", "echo done-in-the-cloud", "10m"))
    assert small["federation"]["cluster"] == "onprem" and small["federation"].get("burst_from") is None
    # its expected wait (about an hour) is longer than burst_after (2 s): burst to the cloud member
    done = c.wait_jobs([small["id"]], timeout=40)[small["id"]]
    assert done["phase"] == "succeeded", done
    f = done["federation"]
    assert (f["cluster"], f["burst_from"]) == ("cloud", "onprem")
    assert f["burst_wait_s"] > 3000  # the running job's estimate, less what it has run
    assert f["expected_usd"] == pytest.approx(2 * 4.0 * 10 / 60)
    assert done["node"].startswith("pool-burst-") and done["node"] != onprem_node["id"]
    [instance] = [i for p in admin.get("/v1/nodepools").json()["items"] if p["name"] == "burst" for i in p["instances"]]
    assert instance["node_id"] == done["node"]
    events = admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]
    burst = [e for e in events if e["kind"] == "burst"]
    assert burst and "burst to cloud" in burst[0]["message"] and small["id"] in burst[0]["message"]
    assert any(e["kind"] == "scale-up" and "burst" in e["message"] for e in events)
    explained = c.cli("explain", small["id"])
    assert "burst from onprem" in explained

    # team nlp's budget ($5 a month) pays for an hour of two on-prem GPUs ($2), not cloud ones ($8): it stays queued
    held = c.submit(job("held", "nlp", "true", "1h"))
    assert held["federation"]["cluster"] == "onprem"
    e = c.wait(lambda: admin.get(f"/v1/jobs/{held['id']}/explain").json(),
               lambda e: (e.get("burst") or {}).get("note"), 20, "the reason it is not burst")
    assert e["phase"] == "pending" and e["federation"]["cluster"] == "onprem"
    assert "no other member can run it now" in e["burst"]["note"] and "team 'nlp' has $5.00 left" in e["burst"]["note"]
    assert "bursting: to another member once the expected wait on onprem passes 2s" in c.cli("explain", held["id"])
    kinds = [x["kind"] for x in admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]]
    assert "burst-refused" in kinds
    admin.post(f"/v1/jobs/{big['id']}/cancel")
    admin.post(f"/v1/jobs/{held['id']}/cancel")
