"""The dashboard API (``/v1/dashboard/...``, ``api/dashboard.py``) through FastAPI's TestClient on a
ControlService with an in-memory store and the real scheduler loop (agents stubbed out): the
shape of each view, pagination, what a team may see (never another team's job ids, names or
cost), 400 with a message naming the parameter for bad ones, and the static page at ``/ui/``."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperion.api import auth
from hyperion.api.logs import LogStore
from hyperion.api.rest import build_app
from hyperion.api.service import ControlService
from hyperion.core import PROFILES, lifecycle
from hyperion.model import Gpu, GpuMetrics, Node, NodeMetrics, NodeState, Phase, Resources
from hyperion.runtime.scheduler_loop import SchedulerLoop
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.clock import ManualClock as Clock

GiB = 2**30
T0 = 1_750_000_000.0
ADMIN = "admin-token"



class NoAgents:
    def start(self, job, handed=()) -> None:
        pass

    def stop(self, job, placements, reason) -> None:
        pass


def node(node_id: str, **changes) -> Node:
    return Node(node_id, hostname=f"{node_id}.lab", gpus=tuple(Gpu(i, f"GPU-{node_id}-{i}", "A100", 81920) for i in range(4)),
                gpu_type="A100", capacity=Resources(4, 32_000, 256 * GiB), gpus_logical=False, registered_at=T0,
                last_seen=T0, **changes)


def job(name: str, team: str, gpus: int, queue: str | None = None, **extra) -> dict:
    doc = {"name": name, "team": team, "command": "true", "resources": {"gpus": gpus, "cpus": 1, "memory": "1Gi"}, **extra}
    if queue:
        doc["queue"] = queue
    return doc


@pytest.fixture
def cluster(tmp_path: Path):
    """n1, n2 ready (4 GPUs each, held by one vision and one nlp job); n3 cordoned, n4 unhealthy,
    n5 not ready; five jobs pending behind them (two queues); telemetry, events and an hour of
    metered usage."""
    clock = Clock(T0)
    service = ControlService(ClusterState(MemoryStore()), clock, LogStore(tmp_path / "logs"), ADMIN)
    loop = SchedulerLoop(service, NoAgents(), PROFILES["default"]())  # type: ignore[arg-type]
    results = service.apply(auth.ADMIN, [{"kind": "Team", "name": "vision"}, {"kind": "Team", "name": "nlp"},
                                         {"kind": "Queue", "name": "research"}])["results"]
    tokens = {r["name"]: r["token"] for r in results if r["kind"] == "Team"}
    state = service.state
    for n in (node("n1"), node("n2"), node("n3", cordoned=True), node("n4", condition="GPU 2 at 95 C (limit 90 C)"),
              node("n5", state=NodeState.NOT_READY)):
        state.put_node(n)
    ids = {}
    for doc in (job("vision-train", "vision", 4, runtime_estimate="1h"), job("nlp-secret-pretrain", "nlp", 4, runtime_estimate="2h")):
        ids[doc["name"]] = service.submit(auth.ADMIN, doc)["id"]
        clock.t += 1
    loop.cycle(clock.t)
    state.update_jobs([lifecycle.task_running(j, j.attempt, 0, clock.t) for j in state.jobs.values() if j.phase is Phase.SCHEDULED])
    for doc in (job("vision-eval", "vision", 2), job("nlp-secret-finetune", "nlp", 4), job("vision-sweep", "vision", 1),
                job("nlp-secret-research", "nlp", 2, queue="research"), job("vision-research", "vision", 1, queue="research")):
        clock.t += 1
        ids[doc["name"]] = service.submit(auth.ADMIN, doc)["id"]
    clock.t += 1
    loop.cycle(clock.t + 5)
    for k in range(30):  # telemetry: 30 samples 10 s apart on n1 (GPU i at 10*i + k %)
        service.record_metrics(NodeMetrics("n1", T0 + 10 * k, cpu_utilization_percent=20.0, gpus=tuple(
            GpuMetrics(i, utilization_percent=10.0 * i + k, memory_used_mb=1000.0 * (i + 1), memory_total_mb=81920.0,
                       temperature_c=40.0 + i, power_w=100.0 + k) for i in range(4))))
    clock.t = T0 + 3600
    service.accountant.tick(clock.t)
    service.events.emit("preempted", f"job {ids['nlp-secret-pretrain']} preempted for a latency-critical job",
                        job=ids["nlp-secret-pretrain"], team="nlp")
    service.events.emit("node-condition", "node n4: GPU 2 at 95 C (limit 90 C)", node="n4")
    service.events.emit("preempted", f"job {ids['vision-train']} preempted for a latency-critical job",
                        job=ids["vision-train"], team="vision")
    service.events.emit("budget-warning", "team nlp has used 80 % of budget 'nlp'", team="nlp")
    service.apply(auth.ADMIN, [{"kind": "Budget", "name": "vision-month", "team": "vision", "usd": 1000},
                               {"kind": "Budget", "name": "nlp-month", "team": "nlp", "gpu_hours": 100}])
    client = TestClient(build_app(service))
    yield service, client, tokens, ids


def get(client: TestClient, url: str, token: str = ADMIN, status: int = 200) -> dict:
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == status, (url, r.status_code, r.text)
    return r.json()


NLP_NAMES = ("nlp-secret-pretrain", "nlp-secret-finetune", "nlp-secret-research")


# ---- summary ------------------------------------------------------------------------------
def test_summary_counts_jobs_gpus_nodes_and_queues(cluster):
    _, client, tokens, _ = cluster
    s = get(client, "/v1/dashboard/summary")
    assert s["team"] is None
    assert s["jobs"]["total"] == 7 and s["jobs"]["running"] == 2 and s["jobs"]["pending"] == 5
    # n5 is not ready: its GPUs count as unavailable, like those of cordoned n3 and unhealthy n4
    assert s["gpus"] | {"utilization_percent": None} == {"total": 20, "allocated": 8, "idle": 0, "unavailable": 12,
                                                         "utilization_percent": None}
    assert s["gpus"]["utilization_percent"] == pytest.approx((0 + 10 + 20 + 30) / 4 + 29)
    assert s["nodes"] == {"total": 5, "ready": 4, "not_ready": 1, "down": 0, "cordoned": 1, "unhealthy": 1, "schedulable": 2}
    assert s["pending"] == {"total": 5, "yours": 5, "queues": [{"queue": "default", "pending": 3, "yours": 3},
                                                               {"queue": "research", "pending": 2, "yours": 2}]}
    assert set(s["scheduler"]) == {"cycles", "placed", "evicted"}
    mine = get(client, "/v1/dashboard/summary", tokens["vision"])
    assert mine["team"] == "vision"
    assert (mine["jobs"]["total"], mine["jobs"]["running"], mine["jobs"]["pending"]) == (4, 1, 3)
    assert mine["pending"]["total"] == 5 and mine["pending"]["yours"] == 3  # the others only as a count


# ---- pending ------------------------------------------------------------------------------
def test_pending_follows_the_scheduling_order_with_reasons_and_estimates(cluster):
    service, client, _, ids = cluster
    page = get(client, "/v1/dashboard/pending")
    assert (page["total"], page["pending"], page["hidden"], page["offset"], page["limit"]) == (5, 5, 0, 0, 50)
    rows = page["items"]
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["id"] for r in rows] == [i for i in service.pending_order() if i in service.state.pending]
    for r in rows:  # the same answers as `hyperion explain`
        e = service.explain_job(auth.ADMIN, r["id"])
        assert (r["position"], r["queue_position"], r["queue_pending"]) == (e["position"], e["queue_position"], e["queue_pending"])
        assert (r["estimated_start"], r["estimate_basis"]) == (e["estimated_start"], e["estimate_basis"])
        assert r["verdict"] == e["verdict"] and r["reasons"] == e["reasons"] and r["reasons"]
        assert {"plugin", "reason"} == set(r["reasons"][0])
    eval_row = next(r for r in rows if r["id"] == ids["vision-eval"])
    assert eval_row["gpus"] == 2 and eval_row["team"] == "vision" and eval_row["waiting_s"] > 0
    assert eval_row["estimated_start"] is not None and eval_row["estimated_start"] > service.clock.now()
    assert page["estimates_ms"] >= 0


def test_pending_pages_and_filters_by_queue(cluster):
    _, client, _, ids = cluster
    everything = get(client, "/v1/dashboard/pending")["items"]
    page = get(client, "/v1/dashboard/pending?offset=2&limit=2")
    assert [r["id"] for r in page["items"]] == [r["id"] for r in everything[2:4]] and page["total"] == 5
    assert get(client, "/v1/dashboard/pending?offset=10")["items"] == []
    research = get(client, "/v1/dashboard/pending?queue=research")
    assert {r["id"] for r in research["items"]} == {ids["nlp-secret-research"], ids["vision-research"]}
    assert [r["queue_position"] for r in research["items"]] == [1, 2]
    assert all(r["queue_pending"] == 2 for r in research["items"])
    assert get(client, "/v1/dashboard/pending?queue=research&limit=1")["items"][0]["id"] == research["items"][0]["id"]


def test_a_team_sees_its_pending_jobs_with_global_positions_and_others_only_as_a_count(cluster):
    _, client, tokens, ids = cluster
    everything = {r["id"]: r for r in get(client, "/v1/dashboard/pending")["items"]}
    page = get(client, "/v1/dashboard/pending", tokens["vision"])
    assert {r["id"] for r in page["items"]} == {ids["vision-eval"], ids["vision-sweep"], ids["vision-research"]}
    assert (page["total"], page["pending"], page["hidden"]) == (3, 5, 2)
    for r in page["items"]:
        assert (r["position"], r["queue_position"]) == (everything[r["id"]]["position"], everything[r["id"]]["queue_position"])
    research = get(client, "/v1/dashboard/pending?queue=research", tokens["nlp"])
    assert [r["id"] for r in research["items"]] == [ids["nlp-secret-research"]] and research["hidden"] == 1


# ---- running ------------------------------------------------------------------------------
def test_running_jobs_with_their_gpus_and_live_utilisation(cluster):
    service, client, tokens, ids = cluster
    page = get(client, "/v1/dashboard/running")
    assert (page["total"], page["gpus"]) == (2, 8)
    rows = {r["id"]: r for r in page["items"]}
    assert set(rows) == {ids["vision-train"], ids["nlp-secret-pretrain"]}
    on_n1 = next(r for r in rows.values() if r["placements"][0]["node"] == "n1")
    assert on_n1["phase"] == "running" and on_n1["gpus"] == 4
    gpus = on_n1["placements"][0]["gpus"]
    assert [g["index"] for g in gpus] == [0, 1, 2, 3]
    assert [g["utilization_percent"] for g in gpus] == [29.0, 39.0, 49.0, 59.0]  # the newest sample
    assert gpus[1]["memory_used_mb"] == 2000.0 and gpus[1]["memory_total_mb"] == 81920.0
    assert on_n1["utilization_percent"] == 44.0
    on_n2 = next(r for r in rows.values() if r["placements"][0]["node"] == "n2")
    assert on_n2["placements"][0]["gpus"][0]["utilization_percent"] is None and on_n2["utilization_percent"] is None
    assert rows[ids["vision-train"]]["expected_end"] == pytest.approx(rows[ids["vision-train"]]["started_at"] + 3600)
    assert get(client, "/v1/dashboard/running?limit=1")["items"][0]["id"] == page["items"][0]["id"]
    assert get(client, "/v1/dashboard/running?offset=1&limit=1")["items"][0]["id"] == page["items"][1]["id"]
    mine = get(client, "/v1/dashboard/running", tokens["vision"])
    assert [r["id"] for r in mine["items"]] == [ids["vision-train"]] and (mine["total"], mine["gpus"]) == (1, 4)


# ---- nodes --------------------------------------------------------------------------------
def test_nodes_with_state_condition_free_gpus_and_telemetry(cluster):
    _, client, tokens, _ = cluster
    page = get(client, "/v1/dashboard/nodes", tokens["vision"])  # nodes are everyone's to see
    assert page["total"] == 5
    rows = {n["id"]: n for n in page["items"]}
    assert (rows["n1"]["state"], rows["n1"]["gpus"], rows["n1"]["gpus_free"], rows["n1"]["tasks"]) == ("ready", 4, 0, 1)
    assert rows["n3"]["cordoned"] and not rows["n3"]["schedulable"] and rows["n3"]["gpus_free"] == 4
    assert rows["n4"]["condition"] == "GPU 2 at 95 C (limit 90 C)"
    assert rows["n5"]["state"] == "not-ready"
    t = rows["n1"]["telemetry"]
    assert t["gpu_utilization"] == [29.0, 39.0, 49.0, 59.0] and t["gpu_utilization_percent"] == 44.0
    assert (t["max_temperature_c"], t["power_w"], t["at"]) == (43.0, 4 * 129.0, T0 + 290)
    assert rows["n2"]["telemetry"] is None


@pytest.mark.parametrize("q, expected", [("n1", ["n1"]), ("cordoned", ["n3"]), ("unhealthy", ["n4"]),
                                         ("not-ready", ["n5"]), ("95 c", ["n4"]), ("N2.LAB", ["n2"]), ("zzz", [])])
def test_nodes_search(cluster, q, expected):
    _, client, _, _ = cluster
    assert [n["id"] for n in get(client, f"/v1/dashboard/nodes?q={q}")["items"]] == expected


def test_nodes_page_in_natural_id_order(cluster):
    service, client, _, _ = cluster
    service.state.put_node(node("n10"))
    page = get(client, "/v1/dashboard/nodes?offset=1&limit=2")
    assert [n["id"] for n in page["items"]] == ["n2", "n3"] and page["total"] == 6
    assert [n["id"] for n in get(client, "/v1/dashboard/nodes?offset=4")["items"]] == ["n5", "n10"]


def test_node_metrics_are_downsampled_on_the_server(cluster):
    _, client, _, _ = cluster
    m = get(client, "/v1/dashboard/nodes/n1/metrics?points=10")
    assert (m["node"], m["samples"], m["points"], m["from"], m["to"]) == ("n1", 30, 10, T0, T0 + 290)
    assert len(m["t"]) == 10 and m["t"][0] == T0 + 10  # the mean time of samples 0..2
    assert [g["index"] for g in m["gpus"]] == [0, 1, 2, 3]
    g1 = m["gpus"][1]
    assert g1["utilization_percent"] == [10.0 + 1 + 3 * k for k in range(10)]  # means of (10 + k) over 3 samples
    assert g1["temperature_c"] == [41.0] * 10 and g1["memory_used_mb"] == [2000.0] * 10 and g1["memory_total_mb"] == 81920.0
    assert g1["power_w"][-1] == 128.0
    everything = get(client, "/v1/dashboard/nodes/n1/metrics?points=1000")
    assert everything["points"] == 30 and everything["gpus"][0]["utilization_percent"] == [float(k) for k in range(30)]
    empty = get(client, "/v1/dashboard/nodes/n2/metrics")
    assert (empty["samples"], empty["t"]) == (0, []) and all(g["utilization_percent"] == [] for g in empty["gpus"])
    assert "no node 'nope'" in get(client, "/v1/dashboard/nodes/nope/metrics", status=404)["message"]


# ---- cost ---------------------------------------------------------------------------------
def test_cost_per_team_over_time_with_totals_and_budgets(cluster):
    service, client, tokens, _ = cluster
    start = T0 - 3600
    c = get(client, f"/v1/dashboard/cost?from={start}&to={T0 + 7200}&step=1h")
    assert (c["from"], c["to"], c["step"], c["team"]) == (start, T0 + 7200, 3600.0, None)
    assert c["t"] == [start - start % 3600 + k * 3600 for k in range(4)]  # whole steps covering [from, to)
    teams = {t["team"]: t for t in c["teams"]}
    assert set(teams) == {"vision", "nlp"}
    usage = service.accountant.usage_between(start, T0 + 7200)
    totals = {t["team"]: t for t in c["totals"]}
    for team in ("vision", "nlp"):  # 4 GPUs for about an hour each, at the default rates
        assert totals[team]["gpu_hours"] == pytest.approx(usage[team].gpu_s / 3600) and 3.9 < totals[team]["gpu_hours"] < 4.1
        assert totals[team]["cost_usd"] == pytest.approx(usage[team].cost_usd) and usage[team].cost_usd > 0
        assert totals[team]["carbon_kg"] == pytest.approx(usage[team].carbon_g / 1000) and usage[team].carbon_g > 0
        assert sum(teams[team]["gpu_hours"]) == pytest.approx(totals[team]["gpu_hours"])
        assert len(teams[team]["cost_usd"]) == len(c["t"])
    assert c["total"]["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in c["totals"]))
    assert {(b["name"], b["resource"]) for b in c["budgets"]} == {("vision-month", "usd"), ("nlp-month", "gpu_hours")}
    default = get(client, "/v1/dashboard/cost")
    assert default["to"] == service.clock.now() and default["to"] - default["from"] == 86400
    assert default["step"] % 300 == 0 and len(default["t"]) <= 101


def test_a_team_sees_only_its_own_cost(cluster):
    _, client, tokens, _ = cluster
    c = get(client, "/v1/dashboard/cost?from=7d", tokens["vision"])
    assert c["team"] == "vision"
    assert [t["team"] for t in c["teams"]] == ["vision"] and [t["team"] for t in c["totals"]] == ["vision"]
    assert [b["name"] for b in c["budgets"]] == ["vision-month"]
    assert get(client, "/v1/dashboard/cost?team=vision", tokens["vision"])["team"] == "vision"
    err = get(client, "/v1/dashboard/cost?team=nlp", tokens["vision"], status=403)
    assert "cannot see the cost of team 'nlp'" in err["message"]
    assert [t["team"] for t in get(client, "/v1/dashboard/cost?from=7d&team=nlp")["teams"]] == ["nlp"]


# ---- events -------------------------------------------------------------------------------
def test_events_newest_first_by_kind_and_in_pages(cluster):
    _, client, _, _ = cluster
    page = get(client, "/v1/dashboard/events")
    assert [e["kind"] for e in page["items"]] == ["budget-warning", "preempted", "node-condition", "preempted"]
    assert page["next_before"] is None and "preempted" in page["kinds"]
    preempted = get(client, "/v1/dashboard/events?kind=preempted")["items"]
    assert [e["team"] for e in preempted] == ["vision", "nlp"]
    both = get(client, "/v1/dashboard/events?kind=preempted,node-condition")["items"]
    assert len(both) == 3
    first = get(client, "/v1/dashboard/events?limit=2")
    assert len(first["items"]) == 2 and first["next_before"] == first["items"][-1]["seq"]
    rest = get(client, f"/v1/dashboard/events?limit=2&before={first['next_before']}")
    assert [e["seq"] for e in first["items"] + rest["items"]] == [e["seq"] for e in page["items"]]


def test_a_team_sees_its_events_and_node_events_only(cluster):
    _, client, tokens, _ = cluster
    mine = get(client, "/v1/dashboard/events", tokens["vision"])["items"]
    assert [(e["kind"], e.get("team")) for e in mine] == [("preempted", "vision"), ("node-condition", None)]
    one = get(client, "/v1/dashboard/events?limit=1", tokens["vision"])
    assert len(one["items"]) == 1 and one["items"][0]["team"] == "vision"
    older = get(client, f"/v1/dashboard/events?limit=1&before={one['next_before']}", tokens["vision"])["items"]
    assert [e["kind"] for e in older] == ["node-condition"]


# ---- isolation, auth and parameters ---------------------------------------------------------
def test_a_team_token_never_sees_another_teams_job_ids_or_names(cluster):
    _, client, tokens, ids = cluster
    secrets = [ids[n] for n in NLP_NAMES] + list(NLP_NAMES)
    for url in ("/v1/dashboard/summary", "/v1/dashboard/pending", "/v1/dashboard/pending?queue=research",
                "/v1/dashboard/running", "/v1/dashboard/nodes", "/v1/dashboard/nodes/n1/metrics",
                "/v1/dashboard/cost?from=30d", "/v1/dashboard/events"):
        r = client.get(url, headers={"Authorization": f"Bearer {tokens['vision']}"})
        assert r.status_code == 200, (url, r.text)
        leaked = [s for s in secrets if s in r.text]
        assert not leaked, (url, leaked)
        assert '"nlp"' not in r.text, url  # no nlp cost, budget or event either


@pytest.mark.parametrize("url", ["/v1/dashboard/summary", "/v1/dashboard/pending", "/v1/dashboard/running",
                                 "/v1/dashboard/nodes", "/v1/dashboard/nodes/n1/metrics", "/v1/dashboard/cost",
                                 "/v1/dashboard/events"])
def test_every_dashboard_route_needs_a_valid_token(cluster, url):
    _, client, _, _ = cluster
    assert client.get(url).status_code == 401
    r = client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["message"] == "invalid token"


@pytest.mark.parametrize("url, words", [
    ("/v1/dashboard/pending?limit=0", "limit='0': expected a whole number 1..500"),
    ("/v1/dashboard/pending?limit=501", "limit='501'"),
    ("/v1/dashboard/running?limit=ten", "limit='ten': expected a whole number"),
    ("/v1/dashboard/nodes?offset=-1", "offset='-1': expected a whole number >= 0"),
    ("/v1/dashboard/pending?queue=nope", "queue='nope': no such queue; known: default, research"),
    ("/v1/dashboard/nodes/n1/metrics?points=1", "points='1': expected a whole number 2..1000"),
    ("/v1/dashboard/cost?step=60", "step='60'"),
    ("/v1/dashboard/cost?step=soon", "step='soon': expected seconds or a duration"),
    ("/v1/dashboard/cost?from=yesterday", "from='yesterday'"),
    (f"/v1/dashboard/cost?from={T0 + 10}&to={T0}", "from (1750000010) must be before to (1750000000)"),
    ("/v1/dashboard/cost?from=3000d&step=300", "at most 2000"),
    ("/v1/dashboard/events?kind=preempted,nope", "kind=nope: unknown event kind"),
    ("/v1/dashboard/events?before=x", "before='x'"),
])
def test_bad_parameters_are_a_400_naming_them(cluster, url, words):
    _, client, _, _ = cluster
    body = get(client, url, status=400)
    assert words in body["message"], body


def test_times_and_durations_in_cost_parameters(cluster):
    service, client, _, _ = cluster
    now = service.clock.now()
    assert get(client, "/v1/dashboard/cost?from=6h&to=now")["from"] == now - 6 * 3600
    assert get(client, "/v1/dashboard/cost?from=-2d")["from"] == now - 2 * 86400
    assert get(client, "/v1/dashboard/cost?from=2025-06-15T00:00:00Z&to=2025-06-16T00:00:00Z&step=1h")["t"][0] == 1749945600.0


# ---- the page ------------------------------------------------------------------------------
def test_the_page_is_served_at_ui_and_root_redirects_there(cluster):
    _, client, _, _ = cluster
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and 'id="login-form"' in page.text and "app.js" in page.text
    assert "text/html" in page.headers["content-type"]
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/ui/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"], asset
    script = client.get("/ui/app.js").text
    assert "/v1/dashboard/summary" in script
    for text in (page.text, script, client.get("/ui/style.css").text):  # nothing loaded from elsewhere
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text)
        assert "fetch(\"http" not in text and "import " not in text


def test_the_estimate_of_a_page_is_worked_out_once(cluster, monkeypatch):
    service, client, _, _ = cluster
    calls = []
    real = service.explain_many
    monkeypatch.setattr(service, "explain_many", lambda ids: calls.append(list(ids)) or real(ids))
    monkeypatch.setattr(service, "explainer", lambda job_id: pytest.fail("one explanation per job"))
    page = get(client, "/v1/dashboard/pending?offset=1&limit=3")
    assert calls == [[r["id"] for r in page["items"]]]


def test_jobs_that_arrived_after_the_last_cycle_follow_in_submission_order(cluster):
    service, client, _, _ = cluster
    late = service.submit(auth.ADMIN, job("vision-late", "vision", 1))["id"]
    rows = get(client, "/v1/dashboard/pending")["items"]
    assert rows[-1]["id"] == late and rows[-1]["position"] == 6
    assert rows[-1]["verdict"] is None and rows[-1]["reasons"] == []


def test_a_handed_over_jobs_gpus_are_not_counted_as_held(cluster):
    service, client, _, ids = cluster
    state = service.state
    j = state.jobs[ids["vision-train"]]
    state.update_jobs([replace(j, phase=Phase.PREEMPTED, handed_over=True, reason="handed over")])
    s = get(client, "/v1/dashboard/summary")
    assert s["gpus"]["allocated"] == 4
