"""The foundation end to end: a real control plane and two real agents on loopback."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from hyperion.api._generated.hyperion.v1 import hyperion_pb2 as pb
from hyperion.api._generated.hyperion.v1 import hyperion_pb2_grpc
from hyperion.testing.cluster import kill_pid

pytestmark = pytest.mark.integration


def test_fifty_jobs_run_with_their_logs_and_exit_codes(cluster):
    jobs = [cluster.submit({"name": f"j{i}", "command": f"echo out-{i} rank=$HYPERION_RANK; exit {i % 3}",
                            "resources": {"gpus": i % 3}})
            for i in range(50)]
    done = cluster.wait_jobs([j["id"] for j in jobs], timeout=60)
    for i, j in enumerate(jobs):
        got = done[j["id"]]
        assert got["exit_code"] == i % 3
        assert got["phase"] == ("succeeded" if i % 3 == 0 else "failed")
        log = cluster.client().get(f"/v1/jobs/{j['id']}/logs").text
        assert log == f"out-{i} rank=0\n"


def test_gang_gets_distinct_gpus_and_cuda_visible_devices(cluster):
    job = cluster.submit({"name": "gang", "replicas": 2, "resources": {"gpus": 3},
                          "command": "echo $HYPERION_RANK/$HYPERION_WORLD_SIZE:$CUDA_VISIBLE_DEVICES"})
    done = cluster.wait_jobs([job["id"]])[job["id"]]
    assert done["phase"] == "succeeded"
    nodes = [p["node"] for p in done["placements"]]
    assert len(set(nodes)) == 2  # 3 + 3 GPUs do not fit on one 4-GPU node
    for p in done["placements"]:
        log = cluster.client().get(f"/v1/jobs/{job['id']}/logs", params={"rank": p["rank"]}).text
        assert log.strip() == f"{p['rank']}/2:{','.join(map(str, p['gpus']))}"


def test_jobs_wait_for_gpus_and_say_why(cluster):
    big = cluster.submit({"name": "big", "resources": {"gpus": 4}, "command": "sleep 30"})
    cluster.submit({"name": "big2", "resources": {"gpus": 4}, "command": "sleep 30"})
    third = cluster.submit({"name": "waits", "resources": {"gpus": 1}, "command": "true"})
    never = cluster.submit({"name": "never", "resources": {"gpus": 5}, "command": "true"})
    c = cluster.client()
    waiting = cluster.wait(lambda: c.get(f"/v1/jobs/{third['id']}").json(),
                           lambda j: j["phase"] == "pending" and "insufficient gpus" in j["reason"], 10, "a reason")
    assert waiting["verdict"] == "unschedulable"
    cluster.wait(lambda: c.get(f"/v1/jobs/{never['id']}").json(), lambda j: j["verdict"] == "unresolvable", 10,
                 "the too-large job to be unresolvable")
    assert c.delete(f"/v1/jobs/{big['id']}").json()["phase"] == "cancelled"
    cluster.wait_jobs([third["id"]], phases=("succeeded",), timeout=20)


def test_cancel_stops_the_whole_process_group(cluster, tmp_path):
    marker = tmp_path / "child-alive"
    job = cluster.submit({"name": "tree", "command": f"(while true; do touch {marker}; sleep 0.1; done) & sleep 60"})
    c = cluster.client()
    cluster.wait(lambda: c.get(f"/v1/jobs/{job['id']}").json(), lambda j: j["phase"] == "running", 10, "running")
    cluster.wait(lambda: marker.exists(), bool, 10, "the child to start")
    assert c.delete(f"/v1/jobs/{job['id']}").json()["phase"] == "cancelled"
    cluster.wait(lambda: cluster.client().get("/v1/nodes").json()["items"],
                 lambda nodes: all(n["tasks"] == 0 for n in nodes), 15, "the task to be reported stopped")
    marker.unlink()
    time.sleep(0.5)
    assert not marker.exists(), "a child of the cancelled job is still running"
    assert c.get(f"/v1/jobs/{job['id']}").json()["phase"] == "cancelled"


def test_control_plane_kill9_loses_nothing_and_runs_nothing_twice(cluster, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = [cluster.submit({"name": f"k{i}", "command": f"echo started >> {runs}/k{i}; sleep 2; echo done-{i}"})["id"]
           for i in range(6)]
    c = cluster.client()
    cluster.wait(lambda: c.get("/v1/jobs", params={"phase": "running"}).json()["total"], lambda n: n >= 2, 10, "running jobs")
    cluster.kill9()
    queued_while_down = ids  # agents keep running the jobs while the control plane is gone
    time.sleep(1.0)
    cluster.start()
    late = cluster.submit({"name": "late", "command": "echo late"})["id"]
    done = cluster.wait_jobs([*queued_while_down, late], timeout=60)
    assert {j["phase"] for j in done.values()} == {"succeeded"}, done
    for i, job_id in enumerate(ids):
        assert (runs / f"k{i}").read_text() == "started\n", f"job k{i} ran more than once"
        assert cluster.client().get(f"/v1/jobs/{job_id}/logs").text == f"done-{i}\n"
    assert len(cluster.agent_pids()) == 2  # the restarted control plane adopted its agents


def test_agent_kill9_fails_or_requeues_its_jobs_within_the_timeout(cluster):
    c = cluster.client()
    keep = cluster.submit({"name": "retry", "max_retries": 1, "resources": {"gpus": 4}, "command": "sleep 3; echo ok"})
    fail = cluster.submit({"name": "once", "resources": {"gpus": 4}, "command": "sleep 30"})
    running = cluster.wait(lambda: [c.get(f"/v1/jobs/{j['id']}").json() for j in (keep, fail)],
                           lambda js: all(j["phase"] == "running" for j in js), 10, "both running")
    victim = running[0]["node"]
    kill_pid(cluster.agent_pids()[victim])
    t0 = time.monotonic()
    lost = cluster.wait(lambda: {n["id"]: n["state"] for n in c.get("/v1/nodes").json()["items"]},
                        lambda s: s[victim] == "not-ready", 10, "the node to be not ready")
    assert lost[victim] == "not-ready"
    assert time.monotonic() - t0 < cluster.node_timeout + 3
    first = c.get(f"/v1/jobs/{keep['id']}").json()
    assert first["attempt"] == 2 or first["phase"] == "pending" or first["failures"] == 1
    done = cluster.wait_jobs([keep["id"]], timeout=30)[keep["id"]]
    assert done["phase"] == "succeeded" and done["attempt"] == 2 and done["node"] != victim
    if running[1]["node"] == victim:
        other = c.get(f"/v1/jobs/{fail['id']}").json()
        assert other["phase"] == "failed" and other["exit_code"] == 137 and "lost" in other["reason"]


def test_teams_are_isolated(cluster):
    c = cluster.client()
    r = c.post("/v1/apply", json={"documents": [{"kind": "Team", "name": "vision"}, {"kind": "Team", "name": "nlp"}]})
    assert r.status_code == 200, r.text
    tokens = {x["name"]: x["token"] for x in r.json()["results"]}
    vision, nlp = cluster.client(tokens["vision"]), cluster.client(tokens["nlp"])
    job = vision.post("/v1/jobs", json={"name": "mine", "command": "sleep 20"}).json()
    assert job["team"] == "vision"
    assert vision.get("/v1/jobs").json()["total"] == 1
    assert nlp.get("/v1/jobs").json()["total"] == 0
    assert nlp.get(f"/v1/jobs/{job['id']}").status_code == 403
    assert nlp.delete(f"/v1/jobs/{job['id']}").status_code == 403
    assert nlp.get(f"/v1/jobs/{job['id']}/logs").status_code == 403
    assert nlp.post("/v1/jobs", json={"name": "x", "team": "vision", "command": "true"}).status_code == 403
    assert nlp.post("/v1/apply", json={"documents": [{"kind": "Team", "name": "evil"}]}).status_code == 403
    assert c.get(f"/v1/jobs/{job['id']}").json()["phase"] in ("pending", "scheduled", "running")
    assert cluster.client("not-a-token").get("/v1/jobs").status_code == 401
    assert httpx.get(f"{cluster.api}/v1/nodes").status_code == 401


@pytest.mark.parametrize("body, status, loc", [
    ({"name": "x", "command": "true", "replicas": 0.5}, 422, ["replicas"]),
    ({"name": "x", "command": "true", "resources": {"memory": "-1Gi"}}, 422, ["resources", "memory"]),
    ({"name": "x", "command": "true", "colour": "red"}, 422, ["colour"]),
    ({"name": "x"}, 422, None),
    ({"name": "x", "command": "true", "replicas": 2, "min_available": 3}, 422, None),
    ([1, 2], 422, None),
])
def test_bad_specs_are_rejected_with_the_field_and_change_nothing(cluster, body, status, loc):
    c = cluster.client()
    before = c.get("/v1/jobs").json()["total"]
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail and all("msg" in d for d in detail)
    if loc:
        assert any(d["loc"] == loc for d in detail), detail
    assert "Traceback" not in r.text
    assert c.get("/v1/jobs").json()["total"] == before


def test_bad_requests_are_rejected_clearly(cluster):
    c = cluster.client()
    r = c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    assert c.get("/v1/jobs/nope").status_code == 404
    assert c.get("/v1/jobs", params={"phase": "sleeping"}).status_code == 400
    assert c.post("/v1/apply", json={"documents": [{"kind": "Team", "name": "Bad Name"}]}).status_code == 422
    assert c.get("/v1/jobs").json()["total"] == 0


def test_grpc_submit_job_and_metrics_reach_the_nodes(cluster):
    with grpc.insecure_channel(f"127.0.0.1:{cluster.grpc_port}") as ch:
        stub = hyperion_pb2_grpc.FederationSchedulerStub(ch)
        md = (("authorization", f"Bearer {cluster.admin_token}"),)
        job = pb.AIJob(name="viagrpc", command=["echo", "from grpc"], priority=pb.AIJob.LATENCY_CRITICAL,
                       resources=pb.AIJob.ResourceRequest(gpus=1, cpus_milli=500, memory_mb=256))
        status = stub.SubmitJob(job, metadata=md)
        assert status.job_id and status.phase == "pending"
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitJob(pb.AIJob(name="Bad Name!", command=["true"]), metadata=md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitJob(job)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    done = cluster.wait_jobs([status.job_id])[status.job_id]
    assert done["phase"] == "succeeded" and done["priority"] == "latency-critical"
    assert cluster.client().get(f"/v1/jobs/{status.job_id}/logs").text == "from grpc\n"


def test_log_follow_streams_until_the_job_ends(cluster):
    job = cluster.submit({"name": "slow", "command": "for i in 1 2 3; do echo line$i; sleep 0.3; done"})
    with cluster.client().stream("GET", f"/v1/jobs/{job['id']}/logs", params={"follow": "true"}) as r:
        body = b"".join(r.iter_bytes())
    assert body == b"line1\nline2\nline3\n"


def test_after_a_restart_nodes_are_ready_only_once_their_agent_is_back(cluster):
    victim, survivor = sorted(cluster.agent_pids().items())
    cluster.kill9()
    kill_pid(victim[1])
    cluster.start()
    states = cluster.wait(lambda: {n["id"]: n["state"] for n in cluster.client().get("/v1/nodes").json()["items"]},
                          lambda s: s.get(survivor[0]) == "ready", 10, "the surviving agent to reconnect")
    assert states[victim[0]] == "not-ready"
    job = cluster.submit({"name": "after", "command": "echo ok"})
    assert cluster.wait_jobs([job["id"]])[job["id"]]["node"] == survivor[0]


@pytest.mark.parametrize("what", ["same data dir", "port in use", "grpc port in use"])
def test_a_second_control_plane_is_refused_clearly(cluster, tmp_path, what):
    import subprocess
    import sys

    from hyperion.testing.cluster import free_port

    data = cluster.data_dir if what == "same data dir" else tmp_path / "other"
    port = cluster.port if what == "port in use" else free_port()
    grpc_port = cluster.grpc_port if what == "grpc port in use" else free_port()
    p = subprocess.run([sys.executable, "-m", "hyperion.runtime", "--data-dir", str(data), "--port", str(port),
                        "--grpc-port", str(grpc_port)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")
    assert cluster.client().get("/v1/nodes").status_code == 200  # the running one is unharmed


def test_explain_shows_position_who_is_ahead_and_an_estimated_start(cluster):
    c = cluster.client()
    r = c.post("/v1/apply", json={"documents": [{"kind": "Team", "name": "a"}, {"kind": "Team", "name": "b"}]})
    tokens = {x["name"]: x["token"] for x in r.json()["results"]}
    a, b = cluster.client(tokens["a"]), cluster.client(tokens["b"])
    busy = [a.post("/v1/jobs", json={"name": f"busy{i}", "resources": {"gpus": 4}, "runtime_estimate": "60s",
                                     "command": "sleep 30"}).json()["id"] for i in range(2)]
    cluster.wait(lambda: [c.get(f"/v1/jobs/{j}").json()["phase"] for j in busy], lambda p: p == ["running"] * 2, 15, "running")
    wait_a = a.post("/v1/jobs", json={"name": "wa", "resources": {"gpus": 4}, "command": "true"}).json()["id"]
    wait_b = b.post("/v1/jobs", json={"name": "wb", "resources": {"gpus": 4}, "command": "true"}).json()["id"]
    e = cluster.wait(lambda: b.get(f"/v1/jobs/{wait_b}/explain").json(), lambda e: e.get("verdict"), 10, "a verdict")
    assert (e["position"], e["pending"], e["ahead_total"]) == (2, 2, 1)
    assert e["ahead"] == [{"id": None, "team": "a", "priority": "batch", "gpus": 4}]  # another team's job: no id
    assert any("insufficient gpus" in r["reason"] for r in e["reasons"])
    started = max(c.get(f"/v1/jobs/{j}").json()["started_at"] for j in busy)
    assert abs(e["estimated_start"] - (started + 60)) < 1.0 and "runtime estimates" in e["estimate_basis"]
    mine = a.get(f"/v1/jobs/{wait_a}/explain").json()
    assert mine["position"] == 1 and mine["ahead"] == []
    assert b.get(f"/v1/jobs/{wait_a}/explain").status_code == 403
    done = c.get(f"/v1/jobs/{busy[0]}/explain").json()
    assert done["phase"] == "running" and "position" not in done


def test_agents_notice_a_frozen_control_plane_and_reconnect(cluster):
    import os
    import signal

    os.kill(cluster.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(8)  # silence limit: 5 heartbeat intervals of 1 s, at least 5 s
        logs = {n: (cluster.data_dir / "agents" / n / "agent.log").read_text() for n in cluster.agent_pids()}
    finally:
        os.kill(cluster.proc.pid, signal.SIGCONT)
    assert all("no word from the control plane" in text for text in logs.values()), logs
    job = cluster.submit({"name": "after-thaw", "command": "echo back"})
    assert cluster.wait_jobs([job["id"]])[job["id"]]["phase"] == "succeeded"
