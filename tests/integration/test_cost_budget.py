"""Cost, budgets and idle reclaim on a real control plane and agent.

The agent's GPUs are logical; their telemetry comes from the agent's telemetry file (power and
utilisation set by the test), so cost, energy and carbon have exact expected values: what
``hyperion cost`` reports must match the job's run (placed -> ended) within 1 %."""

from __future__ import annotations

import json
import os

import pytest

from hyperion.testing.cluster import LocalCluster

pytestmark = pytest.mark.integration

GPU_HOUR = 36.0        # USD per GPU-hour: one cent per GPU-second
WATTS = 200.0
INTENSITY = 500.0      # gCO2/kWh
PRICING = {"kind": "Pricing", "gpu_hour_usd": {"*": GPU_HOUR}, "pue": 1.0, "carbon_intensity": INTENSITY}


def telemetry(c: LocalCluster, utilization: float) -> None:
    """Every agent's GPUs report WATTS and ``utilization`` (written elsewhere, renamed into place)."""
    for agent in (c.data_dir / "agents").iterdir():
        tmp = agent / "telemetry.json.tmp"
        tmp.write_text(json.dumps({"gpus": [{"index": i, "power_w": WATTS, "utilization_percent": utilization}
                                            for i in range(2)]}))
        os.replace(tmp, agent / "telemetry.json")


@pytest.fixture
def cluster(make_cluster) -> LocalCluster:
    c = make_cluster(agents=1, gpus_per_agent=2, node_timeout=5.0,
                     agent_args=("--metrics-interval=0.3", "--telemetry-file=telemetry.json"))
    telemetry(c, 90.0)
    r = c.client().post("/v1/apply", json={"documents": [PRICING]})
    assert r.status_code == 200, r.text
    # the node reports the file's power before any job runs
    c.wait(lambda: c.client().get("/v1/nodes").json()["items"][0]["metrics"],
           lambda m: m and m["gpus"] and m["gpus"][0]["power_w"] == WATTS, 10, "telemetry from the file")
    return c


def job(name: str, team: str, command: str, **extra) -> dict:
    return {"name": name, "team": team, "resources": {"gpus": 2, "cpus": "100m", "memory": "16Mi"},
            "command": command, "grace_period": "1s", **extra}


def test_cost_and_carbon_match_the_jobs_run_and_a_team_over_budget_is_held(cluster: LocalCluster) -> None:
    c = cluster
    done = c.submit(job("train", "vision", "sleep 3"))
    j = c.wait_jobs([done["id"]], timeout=30)[done["id"]]
    assert j["phase"] == "succeeded"
    run_s = j["finished_at"] - j["scheduled_at"]
    report = json.loads(c.cli("cost", "--team", "vision", "-o", "json"))
    [row] = report["items"]
    assert row["team"] == "vision"
    assert row["cost_usd"] == pytest.approx(2 * GPU_HOUR * run_s / 3600, rel=0.01)
    assert row["gpu_hours"] == pytest.approx(2 * run_s / 3600, rel=0.01)
    assert row["energy_kwh"] == pytest.approx(2 * WATTS * run_s / 3.6e6, rel=0.01)
    assert row["carbon_kg"] == pytest.approx(2 * WATTS * run_s / 3.6e6 * INTENSITY / 1000, rel=0.01)
    by_job = c.cli("cost", "--by", "job", "-o", "csv").splitlines()
    assert by_job[0] == "job,name,team,cost_usd,gpu_hours,energy_kwh,carbon_kg"
    assert by_job[1].startswith(f"{done['id']},train,vision,")
    table = c.cli("cost")
    assert "vision" in table and "COST $" in table

    # a daily budget of what vision spent plus $5: a job expected to cost $72 (2 GPUs x 1 h) is held
    admin = c.client()
    spent = row["cost_usd"]
    r = admin.post("/v1/apply", json={"documents": [
        {"kind": "Budget", "name": "vision-daily", "team": "vision", "period": "day", "usd": round(spent + 5, 2)}]})
    assert r.status_code == 200, r.text
    held = c.submit(job("big", "vision", "sleep 600", runtime_estimate="1h"))
    explained = c.wait(lambda: admin.get(f"/v1/jobs/{held['id']}/explain").json(),
                       lambda e: e.get("verdict") == "unresolvable", 10, "the budget's verdict")
    [reason] = explained["reasons"]
    assert reason["plugin"] == "budget"
    assert "expected to cost $72.00 (2 GPU(s) x 1.00 h x $36.00/GPU-h)" in reason["reason"]
    assert "is left this day" in reason["reason"]
    # nothing else changes: the job holds nothing, another team's job runs, the budget shows the spend
    other = c.submit(job("other", "nlp", "sleep 1"))
    assert c.wait_jobs([other["id"]], timeout=30)[other["id"]]["phase"] == "succeeded"
    again = admin.get(f"/v1/jobs/{held['id']}").json()
    assert (again["phase"], again["attempt"], again["placements"]) == ("pending", 0, [])
    events = admin.get("/v1/dashboard/events", params={"kind": "budget-held"}).json()["items"]
    assert [e["job"] for e in events] == [held["id"]]  # once, not at every cycle
    [budget] = admin.get("/v1/budgets").json()["items"]
    assert budget["spent"] == pytest.approx(spent, rel=0.01) and budget["limit"] == round(spent + 5, 2)
    assert "vision-daily" in c.cli("budgets")
    # raising the budget lets it start
    admin.post("/v1/apply", json={"documents": [
        {"kind": "Budget", "name": "vision-daily", "team": "vision", "period": "day", "usd": 1000}]})
    c.wait(lambda: admin.get(f"/v1/jobs/{held['id']}").json()["phase"], lambda p: p == "running", 10, "the job running")
    admin.delete(f"/v1/jobs/{held['id']}")


def test_a_job_whose_gpus_stay_idle_is_reclaimed_with_an_event(cluster: LocalCluster) -> None:
    c = cluster
    telemetry(c, 0.0)
    idle = c.submit(job("notebook", "vision", "sleep 600", idle_policy={"gpu_utilization": 5, "window": "2s"}))
    c.wait_jobs([idle["id"]], phases=("cancelled",), timeout=30)
    # cancelled at once; its rank's exit (after SIGTERM, the checkpoint request) is reported when it stops
    j = c.wait(lambda: c.client().get(f"/v1/jobs/{idle['id']}").json(), lambda j: j["rank_exits"], 30,
               "the reclaimed rank's exit")
    assert j["reason"].startswith("reclaimed: every GPU stayed below 5% utilisation")
    events = c.client().get("/v1/dashboard/events", params={"kind": "idle-reclaimed"}).json()["items"]
    assert [e["job"] for e in events] == [idle["id"]] and "reclaimed" in events[0]["message"]
