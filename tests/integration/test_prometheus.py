"""The shipped monitoring files against real processes: a control plane with two local agents runs a
few jobs (one preempted by a latency-critical job), and a real Prometheus, configured by
``deploy/prometheus/prometheus.yml`` with only the target, the token file and the intervals
changed, scrapes it with the metrics token.

Checked through Prometheus' HTTP API: the target is up, the job, GPU, scheduler, preemption and
cost metrics say what happened, the alert rules loaded and evaluate, and every query of every
shipped Grafana dashboard evaluates, on metric names that exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from hyperion.testing.cluster import LocalCluster, free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
WAIT_S = 30.0
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
TEMPLATE_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")
METRIC = re.compile(r"\bhyperion_[a-z0-9_]+")

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (PROMETHEUS and PROMTOOL), reason="needs prometheus and promtool (apt-get install prometheus)")]


def short(name: str, **extra) -> dict:
    return {"name": name, "team": "vision", "resources": {"gpus": 1, "cpus": "100m", "memory": "16Mi"},
            "command": "sleep 0.3", **extra}


@pytest.fixture
def ran(make_cluster) -> tuple[LocalCluster, int]:
    """A cluster of 2 x 2 GPUs that ran short jobs and a preemption; returns it and the jobs that succeeded."""
    c = make_cluster(agents=2, gpus_per_agent=2, node_timeout=5.0,
                     agent_args=("--telemetry-file=telemetry.json", "--metrics-interval=0.5"))
    for agent in ("local-1", "local-2"):  # logical GPUs report what the telemetry file says
        readings = {"gpus": [{"index": i, "temperature_c": 60 + i, "utilization_percent": 50, "power_w": 200,
                              "memory_used_mb": 1024, "memory_total_mb": 81920} for i in range(2)]}
        (c.data_dir / "agents" / agent / "telemetry.json").write_text(json.dumps(readings))
    r = c.client().post("/v1/apply", json={"documents": [
        {"kind": "Budget", "name": "vision-monthly", "team": "vision", "gpu_hours": 100}]})
    assert r.status_code == 200, r.text
    jobs = [c.submit(short(f"short-{i}"))["id"] for i in range(3)]
    c.wait_jobs(jobs, phases=("succeeded",), timeout=30)
    victim = c.submit(short("victim", replicas=2, resources={"gpus": 2, "cpus": "100m", "memory": "16Mi"},
                            command="sleep 600", grace_period="1s"))["id"]
    c.wait_jobs([victim], phases=("running",), timeout=30)
    urgent = c.submit(short("urgent", priority="latency-critical", resources={"gpus": 2, "cpus": "100m", "memory": "16Mi"}))
    c.wait_jobs([urgent["id"]], phases=("succeeded",), timeout=30)
    assert c.client().get(f"/v1/jobs/{victim}").json()["attempt"] >= 1
    return c, len(jobs) + 1


@pytest.fixture
def prometheus(ran, tmp_path):
    """The shipped config with the target, the token file and 1 s intervals; yields its API URL."""
    c, _ = ran
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    (job,) = [s for s in config["scrape_configs"] if s["job_name"] == "hyperion"]
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{c.port}"]}]
    job["authorization"]["credentials_file"] = str(c.data_dir / "metrics.token")
    d = tmp_path / "prometheus"
    d.mkdir()
    shutil.copy(DEPLOY / "prometheus" / "rules.yml", d / "rules.yml")
    (d / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run([PROMTOOL, "check", "config", str(d / "prometheus.yml")], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = open(d / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    try:
        yield f"http://127.0.0.1:{port}", d / "prometheus.log"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def query(api: str, expr: str) -> dict:
    r = httpx.get(f"{api}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {r.status_code} {body}"
    return body["data"]


def values(api: str, expr: str) -> list[float]:
    return [float(s["value"][1]) for s in query(api, expr)["result"]]


def poll(fetch, done, what: str, log: Path):
    """``fetch()`` until ``done(result)``, for at most WAIT_S; Prometheus starts and scrapes meanwhile."""
    try:
        return LocalCluster.wait(fetch, done, WAIT_S, what)
    except TimeoutError as err:
        raise AssertionError(f"{err}\nprometheus log:\n{log.read_text()[-3000:]}") from None


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every panel target, and (dashboard, variable, query) of
    every template variable."""
    out = []

    def walk(panels, board):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((board, p.get("title", ""), t["expr"]))
            walk(p.get("panels", []), board)

    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        walk(board["panels"], path.name)
        for v in board.get("templating", {}).get("list", []):
            q = v.get("query")
            out.append((path.name, f"${v['name']}", q["query"] if isinstance(q, dict) else q))
    return out


def promql(expr: str) -> str:
    """A dashboard's expr as Prometheus would get it from Grafana: macros and variables filled in."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return TEMPLATE_VARIABLE.sub(".*", expr)


def test_dashboards_are_grafana_json_on_the_provisioned_data_source():
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (uid,) = [d["uid"] for d in provisioned["datasources"] if d["type"] == "prometheus"]
    assert {p.name for p in DASHBOARDS} == {"cluster-overview.json", "queues-fairness.json", "gpu-health.json", "cost-carbon.json"}
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert 36 <= board["schemaVersion"] <= 41 and board["uid"] not in uids and board["title"], path.name
        uids.add(board["uid"])
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels and {p["type"] for p in panels} <= {"timeseries", "stat", "table"}, path.name
        for p in panels:
            assert p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"]), (path.name, p["title"])
        for v in board["templating"]["list"]:
            assert v["datasource"]["uid"] == uid, (path.name, v["name"])


def test_prometheus_scrapes_the_control_plane_with_the_shipped_config(ran, prometheus):
    c, succeeded = ran
    api, log = prometheus
    poll(lambda: values(api, 'up{job="hyperion"}'), lambda v: v == [1.0], "up{job=hyperion} == 1", log)
    temps = poll(lambda: values(api, "hyperion_gpu_temperature_celsius"), lambda v: len(v) == 4, "4 GPUs' temperature", log)
    assert sorted(temps) == [60.0, 60.0, 61.0, 61.0]
    assert values(api, 'hyperion_gpu_memory_used_bytes{gpu="0"}') == [1024 * 2**20] * 2
    assert values(api, 'hyperion_jobs_finished_total{outcome="succeeded"}')[0] >= succeeded
    assert values(api, "sum(hyperion_gpus)") == [4.0]
    assert values(api, 'sum(hyperion_nodes{state="ready"})') == [2.0]
    assert values(api, "hyperion_scheduling_cycle_duration_seconds_count")[0] > 0
    assert values(api, 'hyperion_team_gpu_seconds_total{team="vision"}')[0] > 0
    assert values(api, 'hyperion_team_cost_usd_total{team="vision"}')[0] > 0
    assert values(api, 'sum(hyperion_preemptions_total{queue="default", priority="batch", path="ordinary"})') == [1.0]
    assert values(api, 'hyperion_preemption_duration_seconds_count{path="ordinary"}') == [1.0]
    assert values(api, 'hyperion_budget_limit{team="vision", budget="vision-monthly", resource="gpu_hours"}') == [100.0]
    assert values(api, 'sum(hyperion_queue_wait_seconds_count{queue="default"})')[0] >= succeeded + 1  # the victim twice

    rules = poll(lambda: httpx.get(f"{api}/api/v1/rules", timeout=10).json()["data"]["groups"],
                 lambda groups: groups and all(r["health"] == "ok" for g in groups for r in g["rules"]),
                 "every rule evaluated without error", log)
    names = {r["name"] for g in rules for r in g["rules"]}
    assert {"HyperionBudgetAt80Percent", "HyperionBudgetExhausted", "HyperionGpuHot", "HyperionNodeNotReady",
            "HyperionQueueWaitingLong"} <= names

    exported = set(httpx.get(f"{api}/api/v1/label/__name__/values", timeout=10).json()["data"])
    used = set()
    for _, _, expr in dashboard_queries():
        used |= set(METRIC.findall(expr))
        if not expr.startswith("label_values("):  # a Grafana function, not PromQL
            query(api, promql(expr))  # asserts it evaluates
    missing = sorted(used - exported)
    assert not missing, f"metrics the dashboards use that Prometheus never got: {missing}"
    assert len(used) >= 25  # the dashboards cover the exposition, not a corner of it
