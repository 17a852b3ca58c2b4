"""The live federation in the service (api/federation.py): kind: Cluster members applied, listed and
deleted; a submission decided by ``core.federation.place`` and stored with its routing; a refusal that
stores nothing; the JobSpec -> FedJob mapping; temporal shifting from a carbon forecast; config errors."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api.errors import Forbidden, Invalid
from hyperion.api.federation import DEFAULT_RUNTIME_S, Federation, FederationConfig, FederationConfigError, fed_job
from hyperion.api.logs import LogStore
from hyperion.api.service import ControlService
from hyperion.api.spec import SpecError, parse_job, validate_document
from hyperion.model import Priority
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState

NOW = datetime(2022, 6, 8, 6, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
ONPREM = {"kind": "Cluster", "name": "onprem", "provider": "onprem", "region": "home", "grid_zone": "XX",
          "gpus": {"A100": 2}, "gpu_hour_usd": {"A100": 1.0}, "carbon_intensity": 300}
CLOUD = {"kind": "Cluster", "name": "cloud", "provider": "onprem", "region": "far", "grid_zone": "YY",
         "gpus": {"A100": 8}, "gpu_hour_usd": {"A100": 3.0}, "carbon_intensity": 50}


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return 0.0


def make_service(store: MemoryStore, tmp_path: Path, config: FederationConfig | None = None) -> ControlService:
    svc = ControlService(ClusterState(store), Clock(), LogStore(tmp_path / "logs"), "admin-token", federation=config)
    svc.wake = lambda: None
    return svc


@pytest.fixture
def service(tmp_path: Path) -> ControlService:
    return make_service(MemoryStore(), tmp_path)


def job(name: str, gpus: int = 1, **extra) -> dict:
    return {"name": name, "team": "vision", "command": "true",
            "resources": {"gpus": gpus, "gpu_type": "A100", "cpus": 1, "memory": "1Gi"}, **extra}


# ---- JobSpec -> FedJob ----------------------------------------------------------------------
def test_fed_job_takes_all_gpus_the_knobs_and_a_default_runtime() -> None:
    spec = parse_job({**job("x", gpus=2), "replicas": 3, "priority": "latency-critical", "deadline": NOW + 7200,
                      "data": {"location": "s3://d", "size": "2G"}, "max_price_per_hour": 9.5,
                      "placement": {"weights": {"carbon": 3, "cost": 0}, "regions": ["eu-west-1"], "providers": ["aws"],
                                    "residency": ["DE"], "spot": True, "checkpoint_interval": "10m",
                                    "caller_region": "eu"}}).to_spec("vision")
    f = fed_job(spec, "id1", NOW)
    assert (f.gpus, f.gpu_type, f.runtime_estimate_s, f.priority) == (6, "A100", DEFAULT_RUNTIME_S, int(Priority.LATENCY_CRITICAL))
    assert (f.deadline, f.data_location, f.data_bytes, f.max_usd_per_h) == (NOW + 7200, "s3://d", 2_000_000_000, 9.5)
    assert (f.regions, f.providers, f.residency) == ({"eu-west-1"}, {"aws"}, {"DE"})
    assert (f.spot, f.checkpoint_interval_s, f.caller_region, f.weights) == (True, 600.0, "eu", {"carbon": 3.0, "cost": 0.0})
    assert fed_job(spec, "id1", NOW, estimate=50.0).runtime_estimate_s == 50.0  # the user's history, when known
    with_runtime = parse_job({**job("y"), "runtime_estimate": "2h"}).to_spec("vision")
    assert fed_job(with_runtime, "id2", NOW, estimate=50.0).runtime_estimate_s == 7200.0
    plain = fed_job(parse_job(job("z")).to_spec("vision"), "id3", NOW)
    assert (plain.spot, plain.weights, plain.regions) == (False, None, frozenset())


@pytest.mark.parametrize("where, doc", [
    ("placement.weights.speed", {"kind": "Job", **job("x"), "placement": {"weights": {"speed": 1}}}),
    ("placement.weights.cost", {"kind": "Job", **job("x"), "placement": {"weights": {"cost": -1}}}),
    ("placement_weights.karbon", {"kind": "Team", "name": "t", "placement_weights": {"karbon": 1}}),
])
def test_only_the_four_weights_exist_and_errors_name_the_field(where: str, doc: dict) -> None:
    with pytest.raises(SpecError) as err:
        validate_document(doc)
    assert [e.path for e in err.value.errors] == [where]


# ---- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("data, message", [
    ({"profile": "greenest"}, "federation.profile: unknown federation profile 'greenest'"),
    ({"forecast": "oracle"}, "federation.forecast: unknown forecast 'oracle'; known: same-hour-yesterday, weekly"),
    ({"carbon_dir": "/no/such/dir"}, "federation.carbon_dir: /no/such/dir is not a directory"),
    ({"options": {"max_wait_h": 1000}}, "federation.options: federation profile 'default': option max_wait_h must be"),
    ({"profiles": "x"}, "federation.profiles: unknown field; known: profile, carbon_dir, forecast, options"),
])
def test_config_errors_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(FederationConfigError) as err:
        FederationConfig.from_mapping(data)
    assert str(err.value).startswith(message)


def test_config_builds_its_profile() -> None:
    cfg = FederationConfig.from_mapping({"profile": "carbon-temporal", "forecast": "weekly", "options": {"max_wait_h": 6}})
    profile = cfg.check()
    assert (profile.name, profile.option("wait"), profile.option("max_wait_h")) == ("carbon-temporal", True, 6.0)


# ---- members and submissions ----------------------------------------------------------------
def test_no_members_submission_is_unchanged(service: ControlService) -> None:
    view = service.submit(auth.ADMIN, job("a"))
    assert view["phase"] == "pending"
    assert service.state.jobs[view["id"]].routed is None
    assert service.get_job(auth.ADMIN, view["id"])["federation"] is None


def test_members_are_applied_listed_persisted_and_deleted(service: ControlService, tmp_path: Path) -> None:
    results = service.apply(auth.ADMIN, [ONPREM, CLOUD])["results"]
    assert [r["action"] for r in results] == ["created", "created"]
    assert service.apply(auth.ADMIN, [ONPREM])["results"][0]["action"] == "unchanged"
    listed = service.list_clusters(auth.Principal("vision"))
    assert [(c["name"], c["capacity"], c["usd_per_gpu_hour"], c["carbon_g_per_kwh"], c["carbon_source"])
            for c in listed["items"]] == [("cloud", {"A100": 8}, {"A100": 3.0}, 50, "static carbon_intensity"),
                                          ("onprem", {"A100": 2}, {"A100": 1.0}, 300, "static carbon_intensity")]
    again = Federation(service.state)  # a restart reads them from the store
    assert sorted(again.members) == ["cloud", "onprem"]
    with pytest.raises(Forbidden):
        service.delete_cluster(auth.Principal("vision"), "cloud")
    assert service.delete_cluster(auth.ADMIN, "cloud")["action"] == "deleted"
    assert sorted(Federation(service.state).members) == ["onprem"]


def test_a_bad_member_document_changes_nothing(service: ControlService) -> None:
    with pytest.raises(Invalid):
        service.apply(auth.ADMIN, [ONPREM, {**CLOUD, "gpu_hour_usd": {}}])  # on-prem needs its own price
    assert service.federation.members == {} and service.state.records("clusters/") == []


def test_a_job_goes_to_the_cheapest_member_until_it_is_full_then_elsewhere(service: ControlService) -> None:
    service.apply(auth.ADMIN, [ONPREM, CLOUD])
    first = service.submit(auth.ADMIN, job("a", gpus=2))
    f = service.get_job(auth.ADMIN, first["id"])["federation"]
    assert (f["cluster"], f["gpu_type"], f["market"], f["profile"]) == ("onprem", "A100", "on-demand", "default")
    assert f["expected_usd"] == pytest.approx(2.0)  # 2 GPUs x 1 h x $1
    assert f["rejected"] == []
    # onprem's 2 GPUs are committed: the next job goes to the cloud, and says why not onprem
    second = service.get_job(auth.ADMIN, service.submit(auth.ADMIN, job("b", gpus=1))["id"])["federation"]
    assert second["cluster"] == "cloud"
    assert [r["cluster"] for r in second["rejected"]] == ["onprem"]
    assert "free" in second["rejected"][0]["reason"]
    explained = service.explain_job(auth.ADMIN, first["id"])
    assert explained["federation"]["cluster"] == "onprem"
    assert service.list_clusters(auth.ADMIN)["items"][1]["committed"] == {"A100": 2}


def test_a_job_no_member_can_take_is_refused_with_each_members_reason_and_nothing_stored(service: ControlService) -> None:
    service.apply(auth.ADMIN, [ONPREM, CLOUD])
    with pytest.raises(Invalid) as err:
        service.submit(auth.ADMIN, job("huge", gpus=16))
    assert "no federation member can take it" in err.value.message
    assert sorted(d["msg"].split(":")[0] for d in err.value.detail) == ["member cloud", "member onprem"]
    assert service.state.jobs == {}


def test_job_and_team_weights_steer_the_choice(service: ControlService) -> None:
    service.apply(auth.ADMIN, [ONPREM, CLOUD])
    prefs = {"weights": {"cost": 0, "carbon": 1}}
    plan = service.plan(auth.ADMIN, {**job("green"), "placement": prefs})
    assert plan["decision"]["cluster"] == "onprem"  # the default profile has no carbon plugin: cost still rules
    green = FederationConfig(profile="carbon-spatial", options=(("max_cost_ratio", 10.0),))
    svc = make_service(service.state.store, Path("/tmp"), green)
    assert svc.plan(auth.ADMIN, {**job("green"), "placement": prefs})["decision"]["cluster"] == "cloud"
    svc.apply(auth.ADMIN, [{"kind": "Team", "name": "vision", "placement_weights": {"cost": 0, "carbon": 1}}])
    assert svc.state.teams["vision"].placement_weights == (("carbon", 1.0), ("cost", 0.0))
    assert svc.plan(auth.ADMIN, job("team-green"))["decision"]["cluster"] == "cloud"
    assert svc.state.jobs == {}  # a plan stores nothing


def write_series(d: Path, zone: str, start: datetime, days: int, value) -> None:
    rows = ["Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA)"]
    t0 = start.timestamp()
    for h in range(days * 24):
        t = datetime.fromtimestamp(t0 + h * HOUR, UTC)
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{zone},{value(t.hour)},{value(t.hour)}")
    with gzip.open(d / f"{zone}_2022_hourly.csv.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")


def test_a_job_with_slack_waits_for_the_cleaner_hour_the_forecast_shows(tmp_path: Path) -> None:
    carbon = tmp_path / "carbon"
    carbon.mkdir()
    # dirty until noon UTC, clean after, every day
    write_series(carbon, "XX", datetime(2022, 6, 1, tzinfo=UTC), 10, lambda hour: 500 if hour < 12 else 100)
    cfg = FederationConfig(profile="carbon-temporal", carbon_dir=carbon)
    svc = make_service(MemoryStore(), tmp_path, cfg)
    svc.apply(auth.ADMIN, [{k: v for k, v in ONPREM.items() if k != "carbon_intensity"}])
    member = svc.list_clusters(auth.ADMIN)["items"][0]
    assert member["carbon_g_per_kwh"] == 500 and member["carbon_source"].startswith("same-hour-yesterday forecast from XX_")
    urgent = svc.get_job(auth.ADMIN, svc.submit(auth.ADMIN, job("now"))["id"])["federation"]
    assert urgent["start_after"] is None  # no deadline: never waits
    view = svc.submit(auth.ADMIN, {**job("later"), "deadline": NOW + 24 * HOUR, "runtime_estimate": "1h"})
    stored = svc.state.jobs[view["id"]].routed
    assert stored.start_after == NOW + 6 * HOUR  # 12:00 UTC
    assert stored.waits_for() == (f"a cleaner hour (expected {stored.expected_carbon_g:,.0f} g CO2 vs "
                                  f"{stored.carbon_now_g:,.0f} g now)")
    assert stored.expected_carbon_g == pytest.approx(stored.carbon_now_g / 5)


def test_a_delay_that_ends_is_decided_again_on_the_members_of_then(tmp_path: Path) -> None:
    carbon = tmp_path / "carbon"
    carbon.mkdir()
    write_series(carbon, "XX", datetime(2022, 6, 1, tzinfo=UTC), 10, lambda hour: 500 if hour < 12 else 100)
    svc = make_service(MemoryStore(), tmp_path, FederationConfig(profile="carbon-temporal", carbon_dir=carbon))
    svc.apply(auth.ADMIN, [{k: v for k, v in ONPREM.items() if k != "carbon_intensity"}])
    view = svc.submit(auth.ADMIN, {**job("later"), "deadline": NOW + 24 * HOUR, "runtime_estimate": "1h"})
    first = svc.state.jobs[view["id"]].routed
    assert first.start_after == NOW + 6 * HOUR
    assert svc.redecide_due() == 0  # not yet due
    svc.clock.t = NOW + 6 * HOUR  # 12:00: the forecast says now is the clean hour
    assert svc.redecide_due() == 1
    again = svc.state.jobs[view["id"]]
    assert again.routed.cluster == "onprem" and again.routed.start_after is None
    assert again.routed.decided_at == NOW + 6 * HOUR and again.submitted_at == NOW
    assert first.cost_cap_usd is not None and again.routed.cost_cap_usd == first.cost_cap_usd  # kept, not re-granted
    assert svc.redecide_due() == 0  # decided: nothing due any more


# ---- bursting ---------------------------------------------------------------------------------
def explanation(job_id: str, start: float | None):
    from hyperion.core import Explanation

    return Explanation(job_id, 1, 1, "default", 1, 1, (), None, start, "test")


def queued_on_prem(service: ControlService, pool_cluster: str | None = "cloud", budget: float | None = None) -> str:
    """onprem (burst_after 10 min) full with job a; job b waits in its queue for capacity."""
    from hyperion.model import Verdict, VerdictCode

    docs = [{**ONPREM, "burst_after": "10m"}, CLOUD]
    if pool_cluster is not None:
        docs.append({"kind": "NodePool", "name": "burst", "provider": "local", "cluster": pool_cluster})
    if budget is not None:
        docs.append({"kind": "Budget", "name": "b", "team": "vision", "period": "month", "usd": budget, "action": "hold"})
    service.apply(auth.ADMIN, docs)
    service.submit(auth.ADMIN, job("a", gpus=2))
    b = service.submit(auth.ADMIN, {**job("b", gpus=2), "runtime_estimate": "1h"})
    assert b["federation"]["cluster"] == "onprem"  # full, but it queues, and it is the cheaper member
    service.verdicts[b["id"]] = Verdict(VerdictCode.UNSCHEDULABLE, ("no node has 2 free GPUs",), "node-fit")
    return b["id"]


def test_a_job_expected_to_wait_longer_than_burst_after_goes_to_a_member_with_a_pool(service: ControlService) -> None:
    b = queued_on_prem(service)
    assert service.burst_candidates() == [b]
    assert service.burst({b: explanation(b, NOW + 5 * 60)}) == 0  # 5 min <= 10 min: it waits
    assert service.get_job(auth.ADMIN, b)["federation"]["cluster"] == "onprem"
    service.explainer = lambda job_id: explanation(job_id, NOW + 5 * 60)
    assert service.explain_job(auth.ADMIN, b)["burst"] == {"member": "onprem", "after_s": 600.0, "note": None}
    assert service.burst({b: explanation(b, NOW + 2 * HOUR)}) == 1
    f = service.get_job(auth.ADMIN, b)["federation"]
    assert (f["cluster"], f["burst_from"], f["burst_wait_s"]) == ("cloud", "onprem", 2 * HOUR)
    assert f["expected_usd"] == pytest.approx(2 * 3.0)
    assert service.burst_candidates() == []  # burst once: never back
    [event] = service.events.recent(100, kinds=["burst"])
    assert "burst to cloud" in event["message"] and "waiting on onprem: expected wait 7200 s" in event["message"]


def test_a_wait_shorter_than_burst_after_that_would_cost_the_deadline_bursts(service: ControlService) -> None:
    from hyperion.model import Verdict, VerdictCode

    service.apply(auth.ADMIN, [{**ONPREM, "burst_after": "10m"}, CLOUD,
                               {"kind": "NodePool", "name": "burst", "provider": "local", "cluster": "cloud"}])
    service.submit(auth.ADMIN, job("a", gpus=2))
    tight = service.submit(auth.ADMIN, {**job("tight", gpus=2), "runtime_estimate": "1h", "deadline": NOW + HOUR + 420})
    loose = service.submit(auth.ADMIN, {**job("loose", gpus=2), "runtime_estimate": "1h", "deadline": NOW + 3 * HOUR})
    late = service.submit(auth.ADMIN, {**job("late", gpus=2), "runtime_estimate": "1h", "deadline": NOW + HOUR + 60})
    for j in (tight, loose, late):
        service.verdicts[j["id"]] = Verdict(VerdictCode.UNSCHEDULABLE, ("no room",), "node-fit")
    service.clock.t += 120
    now = service.clock.now()
    # 8 minutes is within burst_after, but "tight" would end 3 min after its deadline; "late" misses it anyway
    assert service.burst({j["id"]: explanation(j["id"], now + 8 * 60) for j in (tight, loose, late)}) == 1
    assert service.get_job(auth.ADMIN, tight["id"])["federation"]["burst_from"] == "onprem"
    assert service.get_job(auth.ADMIN, loose["id"])["federation"]["cluster"] == "onprem"
    assert service.get_job(auth.ADMIN, late["id"])["federation"]["cluster"] == "onprem"
    [event] = service.events.recent(100, kinds=["burst"])
    assert "would miss its deadline by 180 s" in event["message"]


def test_an_unknown_wait_bursts_once_the_job_has_waited_burst_after(service: ControlService) -> None:
    b = queued_on_prem(service)
    assert service.burst({b: explanation(b, None)}) == 0
    service.clock.t += 11 * 60
    assert service.burst({b: explanation(b, None)}) == 1
    assert service.get_job(auth.ADMIN, b)["federation"]["burst_wait_s"] is None


@pytest.mark.parametrize("pool_cluster, budget, why", [
    (None, None, "none has a node or a node pool that joins it"),
    ("elsewhere", None, "none has a node or a node pool that joins it"),
    ("cloud", 5.0, "cloud: expected to cost $6.00, team 'vision' has $5.00 left"),
])
def test_a_job_no_other_member_can_run_keeps_waiting_and_says_why(service: ControlService, pool_cluster, budget,
                                                                   why: str) -> None:
    b = queued_on_prem(service, pool_cluster, budget)
    assert service.burst({b: explanation(b, NOW + 2 * HOUR)}) == 0
    assert service.get_job(auth.ADMIN, b)["federation"]["cluster"] == "onprem"
    assert why in service.burst_notes[b]
    service.clock.t += 1
    assert service.burst({b: explanation(b, NOW + 2 * HOUR)}) == 0  # a second later: the figures moved
    assert len(service.events.recent(100, kinds=["burst-refused"])) == 1  # told once
