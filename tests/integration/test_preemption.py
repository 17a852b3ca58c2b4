"""Preemption without lost work, on real processes: a control plane, its local agents, and jobs
that checkpoint with ``hyperion.checkpoint`` (examples/checkpoint), on loopback.

- an ultra-low-latency job takes the GPUs of a checkpointing batch job at once (the fast path);
  the batch job resumes from its checkpoint and ends with the result of an uninterrupted run;
- a job without a checkpoint handler ignores the request, is killed after its grace period and
  starts again from scratch;
- kill -9 of an agent: its node is lost, the job resumes from its checkpoint on the other node;
- an over-temperature reading injected through the telemetry file cordons the node, and a cool
  spell uncordons it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperion.testing.cluster import LocalCluster, kill_pid

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "checkpoint"
PY = sys.executable


def uninterrupted(script: str, tmp: Path, *args: str) -> dict:
    """The example's result when nothing interrupts it."""
    out = tmp / f"{script}.reference.json"
    env = {**os.environ, "HYPERION_CHECKPOINT_DIR": str(tmp / f"{script}.reference-ckpt")}
    subprocess.run([PY, str(EXAMPLES / script), *args, "--sleep", "0", "--out", str(out)], env=env, check=True,
                   capture_output=True, timeout=60)
    return json.loads(out.read_text())


def job(c: LocalCluster, job_id: str) -> dict:
    return c.client().get(f"/v1/jobs/{job_id}").json()


def wait_for(c: LocalCluster, job_id: str, pred, what: str, timeout: float = 30.0) -> dict:
    return c.wait(lambda: job(c, job_id), pred, timeout, what)


def running_process(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def urgent_marker(path: Path) -> list[str]:
    """An urgent job that records when its first instruction ran."""
    return [PY, "-c", f"import time; open({str(path)!r}, 'w').write(repr(time.time()))"]


@pytest.fixture
def one_node(make_cluster):
    return make_cluster(agents=1, gpus_per_agent=2, node_timeout=3.0)


def test_an_urgent_job_takes_the_gpus_at_once_and_the_batch_job_resumes_with_the_same_result(one_node, tmp_path):
    c = one_node
    args = ("--steps", "80", "--every", "5")
    expected = uninterrupted("regression.py", tmp_path, *args)
    out = tmp_path / "batch.json"
    batch = c.submit({"name": "train", "resources": {"gpus": 2}, "grace_period": "10s",
                      "command": [PY, str(EXAMPLES / "regression.py"), *args, "--sleep", "0.05", "--out", str(out)]})
    first = wait_for(c, batch["id"], lambda j: j["last_checkpoint_at"] is not None, "a first checkpoint")
    assert first["phase"] == "running" and first["checkpoint_path"].startswith(str(c.data_dir / "checkpoints"))

    marker = tmp_path / "urgent.started"
    urgent = c.submit({"name": "serve", "priority": "ultra-low-latency", "resources": {"gpus": 2},
                       "command": urgent_marker(marker)})
    done = c.wait_jobs([batch["id"], urgent["id"]], timeout=90)
    assert done[urgent["id"]]["phase"] == "succeeded", done[urgent["id"]]
    b = done[batch["id"]]
    assert (b["phase"], b["attempt"], b["failures"]) == ("succeeded", 2, 0), b
    result = json.loads(out.read_text())
    assert result["resumed_from"] is not None and result["attempt"] == 2  # it did not start over
    assert (result["loss"], result["w"], result["b"]) == (expected["loss"], expected["w"], expected["b"])
    # the fast path: the agent froze the batch job, started the urgent one, then asked it to checkpoint
    log = (c.data_dir / "agents" / "local-1" / "agent.log").read_text()
    froze = log.index(f"fast path: froze [('{batch['id']}', 1, 0)], started ('{urgent['id']}', 1, 0)")
    assert froze < log.index(f"stopping ('{batch['id']}', 1, 0) (preempted for job {urgent['id']}")
    assert float(marker.read_text()) < b["attempt_started_at"]


def test_a_job_without_a_checkpoint_handler_is_killed_after_its_grace_period_and_starts_over(one_node, tmp_path):
    c = one_node
    ticks = tmp_path / "ticks"
    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # no handler: the checkpoint request is ignored\n"
            f"out = open({str(ticks)!r}, 'a', buffering=1)\n"
            "out.write(f\"start {os.environ['HYPERION_ATTEMPT']} {os.environ.get('HYPERION_RESUME_FROM', '')}\\n\")\n"
            "for i in range(30):\n"
            "    out.write(f\"tick {os.environ['HYPERION_ATTEMPT']} {i} {time.time()}\\n\")\n"
            "    time.sleep(0.1)\n")
    batch = c.submit({"name": "stubborn", "resources": {"gpus": 2}, "grace_period": "1s", "command": [PY, "-c", code]})
    wait_for(c, batch["id"], lambda j: j["phase"] == "running", "running")
    c.wait(lambda: ticks.read_text() if ticks.exists() else "", lambda t: "tick 1 3" in t, 20, "a few ticks")
    marker = tmp_path / "urgent.started"
    urgent = c.submit({"name": "serve", "priority": "ultra-low-latency", "resources": {"gpus": 2},
                       "command": urgent_marker(marker)})
    done = c.wait_jobs([batch["id"], urgent["id"]], timeout=90)
    assert done[urgent["id"]]["phase"] == "succeeded"
    assert (done[batch["id"]]["phase"], done[batch["id"]]["attempt"]) == ("succeeded", 2)
    lines = ticks.read_text().splitlines()
    assert [ln for ln in lines if ln.startswith("start")] == ["start 1 ", "start 2 "]  # nothing to resume from
    second = [ln.split() for ln in lines if ln.startswith("tick 2 ")]
    assert [int(t[2]) for t in second] == list(range(30))  # from scratch
    # it ignored the request and ran on (thawed) until the grace period ended
    last_of_first = max(float(ln.split()[3]) for ln in lines if ln.startswith("tick 1 "))
    assert last_of_first - float(marker.read_text()) > 0.5


def test_kill_9_of_the_agent_resumes_the_job_from_its_checkpoint_on_another_node(make_cluster, tmp_path):
    args = ("--steps", "100", "--every", "5")
    expected = uninterrupted("counter.py", tmp_path, *args)
    out = tmp_path / "counter.json"
    c = make_cluster(agents=2, gpus_per_agent=1, node_timeout=2.0)
    batch = c.submit({"name": "count", "resources": {"gpus": 1},
                      "command": [PY, str(EXAMPLES / "counter.py"), *args, "--sleep", "0.05", "--out", str(out)]})
    running = wait_for(c, batch["id"], lambda j: j["last_checkpoint_at"] is not None, "a first checkpoint")
    node = running["placements"][0]["node"]
    journal = (c.data_dir / "agents" / node / "tasks.jsonl").read_text().splitlines()
    task_pid = [json.loads(ln)["pid"] for ln in journal if json.loads(ln)["state"] == "running"][-1]
    kill_pid(c.agent_pids()[node], signal.SIGKILL)
    # the task dies with its agent (PR_SET_PDEATHSIG): the job never runs twice
    c.wait(lambda: running_process(task_pid), lambda alive: not alive, 10, f"task {task_pid} gone")
    done = c.wait_jobs([batch["id"]], timeout=60)[batch["id"]]
    assert (done["phase"], done["attempt"], done["failures"]) == ("succeeded", 2, 0), done
    assert done["placements"][0]["node"] != node
    result = json.loads(out.read_text())
    assert result["resumed_from"] is not None and result["attempt"] == 2
    assert result["total"] == expected["total"]


def test_an_over_temperature_reading_cordons_the_node_and_a_cool_spell_uncordons_it(make_cluster):
    agent_args = ("--telemetry-file=telemetry.json", "--metrics-interval=0.2", "--cool-readings=3",
                  "--max-gpu-temperature=90", "--resume-gpu-temperature=80")
    c = make_cluster(agents=1, gpus_per_agent=2, node_timeout=3.0, agent_args=agent_args)
    telemetry = c.data_dir / "agents" / "local-1" / "telemetry.json"

    def readings(*temps: float) -> None:
        tmp = telemetry.with_suffix(".tmp")
        tmp.write_text(json.dumps({"gpus": [{"index": i, "temperature_c": t} for i, t in enumerate(temps)]}))
        os.replace(tmp, telemetry)

    def node() -> dict:
        return c.client().get("/v1/nodes").json()["items"][0]

    readings(60, 95)
    hot = c.wait(node, lambda n: n["condition"], 20, "the node cordoned")
    assert "GPU 1 at 95.0 C (limit 90.0 C)" in hot["condition"] and hot["state"] == "ready"
    waiting = c.submit({"name": "w", "resources": {"gpus": 1}, "command": "true"})
    pending = wait_for(c, waiting["id"], lambda j: j["verdict"] is not None, "a verdict")
    assert pending["phase"] == "pending" and "cordoned" in pending["reason"], pending

    readings(60, 85)  # below the limit, above the resume temperature: still cordoned
    time.sleep(1.5)
    assert node()["condition"] and job(c, waiting["id"])["phase"] == "pending"

    readings(60, 70)
    c.wait(node, lambda n: not n["condition"], 20, "the node uncordoned")
    assert c.wait_jobs([waiting["id"]], timeout=30)[waiting["id"]]["phase"] == "succeeded"


def test_a_node_too_hot_with_drain_stops_its_jobs_which_resume_once_it_cools(make_cluster, tmp_path):
    args = ("--steps", "60", "--every", "5")
    expected = uninterrupted("counter.py", tmp_path, *args)
    out = tmp_path / "counter.json"
    agent_args = ("--telemetry-file=telemetry.json", "--metrics-interval=0.2", "--cool-readings=2",
                  "--drain-on-temperature")
    c = make_cluster(agents=1, gpus_per_agent=1, node_timeout=3.0, agent_args=agent_args)
    telemetry = c.data_dir / "agents" / "local-1" / "telemetry.json"
    batch = c.submit({"name": "count", "resources": {"gpus": 1}, "grace_period": "10s",
                      "command": [PY, str(EXAMPLES / "counter.py"), *args, "--sleep", "0.05", "--out", str(out)]})
    wait_for(c, batch["id"], lambda j: j["last_checkpoint_at"] is not None, "a first checkpoint")
    telemetry.write_text(json.dumps({"gpus": [{"index": 0, "temperature_c": 99}]}))
    drained = wait_for(c, batch["id"], lambda j: j["phase"] == "pending", "the job drained and requeued")
    assert drained["failures"] == 0 and drained["attempt"] == 1, drained
    time.sleep(1.0)  # the node is cordoned: the job waits
    waiting = job(c, batch["id"])
    assert waiting["phase"] == "pending" and "cordoned" in waiting["reason"], waiting
    telemetry.write_text(json.dumps({"gpus": [{"index": 0, "temperature_c": 50}]}))
    done = c.wait_jobs([batch["id"]], timeout=60)[batch["id"]]
    assert (done["phase"], done["attempt"]) == ("succeeded", 2), done
    result = json.loads(out.read_text())
    assert result["resumed_from"] is not None and result["total"] == expected["total"]
