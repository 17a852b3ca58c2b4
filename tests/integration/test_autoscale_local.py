"""The autoscaler end to end on this machine: a control plane with no agents of its own and a
``local`` NodePool of min 0 / max 4. A submitted job makes the pool launch an agent, runs on it
and succeeds; after the idle timeout the pool is back to zero (every instance terminated, no agent
process left, no node listed). A gang of two replicas that each need a whole node makes it launch
two. Submit-to-start with zero nodes is printed (the benchmark, bench/autoscale_bench.py, reports
it properly). With ``consolidate_after``, a node whose checkpointing job fits on the pool's other
node is drained: the job checkpoints, resumes there from its checkpoint and succeeds, and the
drained node is terminated."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from hyperion.testing.cluster import LocalCluster

pytestmark = pytest.mark.integration

POOL = {"kind": "NodePool", "name": "gpu", "provider": "local", "min_nodes": 0, "max_nodes": 4, "idle_timeout": "3s",
        "capacity_types": ["on-demand"]}
IDLE_TIMEOUT = 3.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "checkpoint"


@pytest.fixture
def cluster(make_cluster) -> LocalCluster:
    c = make_cluster(agents=0, gpus_per_agent=2, node_timeout=5.0)
    r = c.client().post("/v1/apply", json={"documents": [POOL]})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"kind": "NodePool", "name": "gpu", "action": "created"}]
    return c


def job(name: str, command: str, gpus: int = 1, replicas: int = 1) -> dict:
    return {"name": name, "resources": {"gpus": gpus, "cpus": "100m", "memory": "16Mi"}, "replicas": replicas,
            "command": command, "grace_period": "1s"}


def pool(c: LocalCluster) -> dict:
    [p] = [p for p in c.client().get("/v1/nodepools").json()["items"] if p["name"] == "gpu"]
    return p


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_job_gets_a_node_from_an_empty_pool_and_the_pool_returns_to_zero(cluster: LocalCluster) -> None:
    c = cluster
    admin = c.client()
    assert pool(c)["instances"] == [] and admin.get("/v1/nodes").json()["items"] == []
    assert "gpu" in c.cli("nodepools")

    submitted = c.submit(job("first", "sleep 1"))
    done = c.wait_jobs([submitted["id"]], timeout=30)[submitted["id"]]
    assert done["phase"] == "succeeded", done
    print(f"\nsubmit -> start with zero nodes: {done['started_at'] - done['submitted_at']:.2f} s")
    assert done["node"].startswith("pool-gpu-")
    [instance] = pool(c)["instances"]
    assert instance["node_id"] == done["node"] and instance["state"] in ("ready", "terminating", "terminated")
    [node] = [n for n in admin.get("/v1/nodes").json()["items"] if n["id"] == done["node"]] or [None]
    if node is not None:  # not yet released
        assert node["labels"] == {"hyperion.io/pool": "gpu"}
    pid = c.agent_pids()[done["node"]]

    # idle for the pool's idle timeout: released, and the pool is back to zero
    final = c.wait(lambda: pool(c), lambda p: p["instances"] and all(i["state"] == "terminated" for i in p["instances"]),
                   IDLE_TIMEOUT + 15, "every instance terminated")
    assert len(final["instances"]) == 1
    assert not alive(pid)
    assert c.wait(lambda: admin.get("/v1/nodes").json()["items"], lambda items: items == [], 5, "no node listed") == []
    kinds = [e["kind"] for e in admin.get("/v1/dashboard/events", params={"limit": 100}).json()["items"]]
    assert "scale-up" in kinds and "scale-down" in kinds
    table = c.cli("nodepools", "--all")
    assert "terminated" in table and instance["id"] in table


def test_a_gang_that_needs_two_nodes_launches_two(cluster: LocalCluster) -> None:
    c = cluster
    gang = c.submit(job("gang", "true", gpus=2, replicas=2))  # 2 GPUs a node: one replica per node
    done = c.wait_jobs([gang["id"]], timeout=30)[gang["id"]]
    assert done["phase"] == "succeeded", done
    instances = pool(c)["instances"]
    assert len(instances) == 2 and len({i["request_id"] for i in instances}) == 1
    assert len({i["node_id"] for i in instances}) == 2
    assert all(os.path.isdir(c.data_dir / "agents" / i["node_id"]) for i in instances)


def test_deleting_the_pool_terminates_its_instances(cluster: LocalCluster) -> None:
    c = cluster
    admin = c.client()
    long = c.submit(job("long", "sleep 60"))
    c.wait(lambda: admin.get(f"/v1/jobs/{long['id']}").json(), lambda j: j["phase"] == "running", 30, "the job running")
    admin.delete(f"/v1/jobs/{long['id']}")
    c.wait_jobs([long["id"]], timeout=30)
    assert admin.delete("/v1/nodepools/gpu").json() == {"kind": "NodePool", "name": "gpu", "action": "deleted"}
    c.wait(lambda: admin.get("/v1/nodepools").json()["items"], lambda items: items == [], 15,
           "the deleted pool's instances terminated")
    assert admin.delete("/v1/nodepools/gpu").status_code == 404


def test_an_under_used_node_is_consolidated_and_its_job_resumes_on_the_other(make_cluster, tmp_path: Path) -> None:
    c = make_cluster(agents=0, gpus_per_agent=2, node_timeout=5.0)
    admin = c.client()
    consolidating = {**POOL, "idle_timeout": "120s", "consolidate_after": "1s"}
    assert admin.post("/v1/apply", json={"documents": [consolidating]}).status_code == 200

    gang = c.submit(job("gang", "true", gpus=2, replicas=2))  # two nodes of 2 GPUs, idle once it is done
    assert c.wait_jobs([gang["id"]], timeout=30)[gang["id"]]["phase"] == "succeeded"
    c.wait(lambda: pool(c)["instances"], lambda items: [i["state"] for i in items] == ["ready", "ready"], 10,
           "two ready nodes")

    out, steps = tmp_path / "counter.json", 100
    counter = c.submit({**job("count", ""), "checkpoint_dir": str(tmp_path / "ckpt"), "grace_period": "10s",
                        "command": [sys.executable, str(EXAMPLES / "counter.py"), "--steps", str(steps),
                                    "--every", "5", "--sleep", "0.05", "--out", str(out)]})
    done = c.wait_jobs([counter["id"]], timeout=60)[counter["id"]]
    assert (done["phase"], done["attempt"], done["failures"]) == ("succeeded", 2, 0), done
    result = json.loads(out.read_text())
    assert result["resumed_from"] is not None and result["resumed_from"] >= 5, result  # from its checkpoint, not 0
    assert result["total"] == sum(k * k for k in range(1, steps + 1)) and result["attempt"] == 2

    second = done["placements"][0]["node"]
    instances = c.wait(lambda: pool(c)["instances"], lambda items: any(i["state"] == "terminated" for i in items), 30,
                       "the consolidated node terminated")
    [drained] = [i for i in instances if i["state"] == "terminated"]
    [kept] = [i for i in instances if i["state"] != "terminated"]
    assert kept["node_id"] == second and drained["node_id"] != second and kept["state"] == "ready"
    events = admin.get("/v1/dashboard/events", params={"limit": 200}).json()["items"]
    [consolidation] = [e for e in events if e["kind"] == "scale-down" and "consolidation" in e["message"]]
    assert drained["id"] in consolidation["message"] and kept["id"] in consolidation["message"]
