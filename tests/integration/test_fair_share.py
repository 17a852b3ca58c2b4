"""Two teams share 4 logical GPUs through queues in one cohort, on a real control plane and agent:
equal weights give each team 2 under backlog, and a team's lent GPUs come back by preemption in
the first scheduling cycle after it submits; preempted jobs go back to their queue."""

from __future__ import annotations

import pytest

from hyperion.testing.cluster import LocalCluster

pytestmark = pytest.mark.integration

QUEUES = [{"kind": "Queue", "name": q, "cohort": "lab", "quota": {"gpus": {"logical": 2}}} for q in ("qa", "qb")]


@pytest.fixture
def shared(tmp_path):
    c = LocalCluster(tmp_path / "hyperion", agents=1, gpus_per_agent=4, node_timeout=5.0)
    c.start()
    c.wait_nodes(1)
    r = c.client().post("/v1/apply", json={"documents": [*QUEUES, {"kind": "Team", "name": "a"}, {"kind": "Team", "name": "b"}]})
    assert r.status_code == 200, r.text
    tokens = {x["name"]: x["token"] for x in r.json()["results"] if x["kind"] == "Team"}
    yield c, tokens
    c.stop()


def job(name: str, queue: str) -> dict:
    return {"name": name, "queue": queue, "resources": {"gpus": 1, "cpus": "100m", "memory": "16Mi"},
            "command": "sleep 600", "grace_period": "2s"}


def holding(c: LocalCluster) -> dict[str, int]:
    """GPUs held per team by running or scheduled jobs."""
    jobs = c.client().get("/v1/jobs", params={"limit": 1000}).json()["items"]
    out = {"a": 0, "b": 0}
    for j in jobs:
        if j["phase"] in ("scheduled", "running"):
            out[j["team"]] += len(j["placements"])
    return out


def test_equal_weights_split_the_gpus_under_backlog(shared):
    c, tokens = shared
    for i in range(4):  # both teams submit a backlog at about the same time
        c.submit(job(f"a{i}", "qa"), tokens["a"])
        c.submit(job(f"b{i}", "qb"), tokens["b"])
    c.wait(lambda: holding(c), lambda h: h == {"a": 2, "b": 2}, 20, "2 GPUs per team")


def test_lent_gpus_are_reclaimed_in_the_first_cycle_after_the_owner_submits(shared):
    c, tokens = shared
    a_jobs = [c.submit(job(f"a{i}", "qa"), tokens["a"])["id"] for i in range(6)]
    c.wait(lambda: holding(c), lambda h: h == {"a": 4, "b": 0}, 20, "team a borrowing all 4 GPUs")
    admin = c.client()
    cycles = admin.get("/healthz").json()["scheduler"]["cycles"]  # nothing pending: no cycle runs until b submits
    first = c.submit(job("b0", "qb"), tokens["b"])
    victim = c.wait(lambda: [j for j in admin.get("/v1/jobs", params={"limit": 1000}).json()["items"]
                             if f"for job {first['id']}" in j["reason"]],
                    lambda found: found, 10, "a job of team a preempted for b0")[0]
    assert victim["team"] == "a"
    assert f"(scheduling cycle {cycles + 1})" in victim["reason"], victim["reason"]
    c.submit(job("b1", "qb"), tokens["b"])
    c.wait(lambda: holding(c), lambda h: h == {"a": 2, "b": 2}, 30, "a back to its nominal 2, b holding its 2")
    # the preempted jobs went back to team a's queue, not lost
    phases = {admin.get(f"/v1/jobs/{i}").json()["phase"] for i in a_jobs}
    assert phases <= {"pending", "scheduled", "running"}
    pending_a = [admin.get(f"/v1/jobs/{i}").json() for i in a_jobs]
    requeued = [j for j in pending_a if j["phase"] == "pending" and j["attempt"] == 1]  # ran once, then preempted
    assert len(requeued) == 2, [(j["name"], j["phase"], j["attempt"], j["reason"]) for j in pending_a]


def test_a_preempted_job_checkpoints_on_its_grace_period_and_resumes_from_it(shared, tmp_path):
    c, tokens = shared
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    # saves its attempt number when told to stop; a later attempt records what it resumed from
    script = ('[ -f "$HYPERION_CHECKPOINT_DIR/state" ] && cp "$HYPERION_CHECKPOINT_DIR/state" "$HYPERION_CHECKPOINT_DIR/resumed"; '
              'trap \'echo "$HYPERION_ATTEMPT" > "$HYPERION_CHECKPOINT_DIR/state"; exit 143\' TERM; sleep 600 & wait')
    train = c.submit({"name": "train", "queue": "qa", "resources": {"gpus": 4, "cpus": "100m", "memory": "16Mi"},
                      "command": script, "checkpoint_dir": str(ckpt), "grace_period": "5s"}, tokens["a"])
    admin = c.client()
    c.wait(lambda: admin.get(f"/v1/jobs/{train['id']}").json(), lambda j: j["phase"] == "running", 20, "train running")
    urgent = c.submit({"name": "serve", "queue": "qa", "priority": "ultra-low-latency", "command": "sleep 1",
                       "resources": {"gpus": 2, "cpus": "100m", "memory": "16Mi"}}, tokens["a"])
    c.wait_jobs([urgent["id"]], phases=("succeeded",), timeout=30)
    again = c.wait(lambda: admin.get(f"/v1/jobs/{train['id']}").json(),
                   lambda j: j["phase"] == "running" and j["attempt"] == 2, 30, "train running again")
    assert again["team"] == "a"
    c.wait(lambda: (ckpt / "resumed").exists(), bool, 10, "the second attempt to find the checkpoint")
    assert (ckpt / "resumed").read_text().strip() == "1"  # written by attempt 1 when it was preempted
