"""The live cost meter (``api.accounting``): cost, GPU-seconds, energy and carbon of running tasks,
their persistence across a restart, budgets' spend and warnings, and the service's cost and budget
operations (``kind: Budget``/``Pricing``, rejection at submission, team isolation)."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api.errors import Forbidden, Invalid
from hyperion.api.logs import LogStore
from hyperion.api.service import ControlService
from hyperion.core import lifecycle
from hyperion.model import GpuMetrics, NodeMetrics, Placement
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_node
from hyperion.testing.clock import ManualClock as Clock

T0 = float(calendar.timegm((2026, 12, 6, 23, 50, 0)))  # ten minutes before midnight UTC
PRICING = {"kind": "Pricing", "gpu_hour_usd": {"A100": 2.0, "*": 1.0}, "gpu_watts": {"A100": 400},
           "pue": 1.5, "carbon_intensity": 300}



@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def make_service(store: MemoryStore, clock: Clock, tmp_path: Path) -> ControlService:
    svc = ControlService(ClusterState(store), clock, LogStore(tmp_path / "logs"), "admin-token")
    svc.wake = lambda: None
    return svc


@pytest.fixture
def service(store: MemoryStore, clock: Clock, tmp_path: Path) -> ControlService:
    svc = make_service(store, clock, tmp_path)
    svc.state.put_node(a_node("a").gpus(4).gpu_type("A100").build())
    svc.apply(auth.ADMIN, [PRICING])
    return svc


def submit(service: ControlService, team: str = "vision", gpus: int = 2, **extra) -> str:
    doc = {"name": "train", "team": team, "command": "true", "resources": {"gpus": gpus}, **extra}
    return service.submit(auth.ADMIN, doc)["id"]


def run(service: ControlService, job_id: str, node: str = "a", gpus: tuple[int, ...] = (0, 1)) -> None:
    job = service.state.jobs[job_id]
    service.state.update_jobs([lifecycle.assign(job, (Placement(0, node, gpus),), at=service.clock.now())])


def finish(service: ControlService, job_id: str) -> None:
    job = service.state.jobs[job_id]
    new, _ = lifecycle.task_exited(job, job.attempt, 0, 0, service.clock.now())
    service.state.update_jobs([new])


def test_a_job_accrues_price_power_model_and_carbon(service: ControlService, clock: Clock) -> None:
    job_id = submit(service)
    run(service, job_id)
    clock.t += 1800
    finish(service, job_id)
    u = service.accountant.job_usage(job_id)
    assert u is not None
    assert u.cost_usd == pytest.approx(2 * 2.0 * 0.5)               # 2 GPUs x $2/GPU-h x 0.5 h
    assert u.gpu_s == pytest.approx(3600)
    assert u.energy_kwh == pytest.approx(2 * 400 * 1800 * 1.5 / 3.6e6)  # power model x PUE
    assert u.carbon_g == pytest.approx(u.energy_kwh * 300)
    clock.t += 600  # nothing accrues once it ended
    service.accountant.tick()
    assert service.accountant.job_usage(job_id) == u
    # the run crossed midnight: the 5-minute buckets split it, and add up to the whole
    rows = service.accountant.series(T0 - 3600, T0 + 7200, 300)
    assert len({r["t"] for r in rows}) == 6
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(2.0)
    report = service.cost(auth.ADMIN)
    assert report["items"] == [{"team": "vision", "cost_usd": pytest.approx(2.0), "gpu_hours": pytest.approx(1.0),
                                "energy_kwh": pytest.approx(0.6), "carbon_kg": pytest.approx(0.18)}]
    by_job = service.cost(auth.ADMIN, by="job")["items"]
    assert [(r["job"], round(r["cost_usd"], 6)) for r in by_job] == [(job_id, 2.0)]


def test_reported_gpu_power_replaces_the_model_and_node_prices_replace_the_rates(service: ControlService,
                                                                                 clock: Clock) -> None:
    service.state.put_node(a_node("cloud").gpus(8).gpu_type("A100").labels(**{"hyperion.io/price-per-hour": "16"}).build())
    service.record_metrics(NodeMetrics("cloud", clock.t, gpus=tuple(GpuMetrics(i, power_w=250.0) for i in range(8))))
    job_id = submit(service)
    run(service, job_id, node="cloud", gpus=(2, 3))
    clock.t += 3600
    service.record_metrics(NodeMetrics("cloud", clock.t, gpus=tuple(GpuMetrics(i, power_w=250.0) for i in range(8))))
    finish(service, job_id)
    u = service.accountant.job_usage(job_id)
    assert u.cost_usd == pytest.approx(16 * 2 / 8)             # its share of the instance price
    assert u.energy_kwh == pytest.approx(2 * 250 * 3600 * 1.5 / 3.6e6)


def test_the_meter_survives_a_restart_and_accrues_the_time_it_was_down(store: MemoryStore, clock: Clock,
                                                                     service: ControlService, tmp_path: Path) -> None:
    job_id = submit(service)
    run(service, job_id)
    clock.t += 600
    service.accountant.tick()
    service.accountant.save()
    clock.t += 1200  # the control plane is down for 20 minutes, the job runs on
    again = make_service(store, clock, tmp_path)
    finish(again, job_id)
    assert again.accountant.job_usage(job_id).cost_usd == pytest.approx(2 * 2.0 * 1800 / 3600)


def test_budget_views_and_warnings_at_80_and_100_percent(service: ControlService, clock: Clock) -> None:
    service.apply(auth.ADMIN, [{"kind": "Budget", "name": "vision-daily", "team": "vision", "period": "day", "usd": 5}])
    job_id = submit(service)
    run(service, job_id)
    clock.t += 500  # $0.56 today
    service.accountant.tick()
    clock.t += 3000  # $3.33 more, but after midnight: a new day, a new period
    service.accountant.tick()
    assert service.events.recent(kinds=["budget-warning"]) == []
    [view] = service.accountant.views(clock.t, max_age=0)
    assert view.spent_usd == pytest.approx(4.0 * 2900 / 3600) and view.period_start == T0 + 600


def test_warnings_are_events_once_per_level(service: ControlService, clock: Clock) -> None:
    clock.t = T0 - 6 * 3600
    service.apply(auth.ADMIN, [{"kind": "Budget", "name": "vision-daily", "team": "vision", "period": "day", "usd": 5}])
    job_id = submit(service)
    run(service, job_id)  # $4/h
    for _ in range(4):
        clock.t += 900 / 2
        service.accountant.tick()  # 0.5, 1.0, 1.5, 2.0 $... up to $2 after 30 minutes
    clock.t += 1800  # $4: 80 %
    service.accountant.tick()
    levels = [e["message"] for e in service.events.recent(kinds=["budget-warning"])]
    assert len(levels) == 1 and "80%" in levels[0] and "$4.00 of $5.00" in levels[0]
    clock.t += 1000  # $5.11: 100 %
    service.accountant.tick()
    service.accountant.tick()
    assert len(service.events.recent(kinds=["budget-warning"])) == 2
    assert service.accountant.warnings() == {("vision", "80"): 1, ("vision", "100"): 1}
    [row] = service.budgets(auth.Principal("vision"))["items"]
    assert (row["resource"], row["limit"], row["ratio"] >= 1.0) == ("usd", 5.0, True)
    assert service.budgets(auth.Principal("nlp"))["items"] == []


def test_a_reject_budget_refuses_at_submission_and_stores_nothing(service: ControlService) -> None:
    service.apply(auth.ADMIN, [{"kind": "Budget", "name": "cap", "team": "vision", "usd": 10, "action": "reject"}])
    before = dict(service.state.jobs)
    with pytest.raises(Invalid, match=r"expected to cost \$16.00 .* only \$10.00 of \$10.00 is left"):
        submit(service, gpus=4, runtime_estimate="2h")
    assert service.state.jobs == before
    assert submit(service, gpus=1, runtime_estimate="2h")  # $4 fits
    assert submit(service, team="nlp", gpus=4, runtime_estimate="2h")  # another team's budget does not apply


def test_cost_is_per_team_for_a_team_token(service: ControlService) -> None:
    with pytest.raises(Forbidden):
        service.cost(auth.Principal("vision"), team="nlp")
    assert service.cost(auth.Principal("vision"))["items"] == []


def test_pricing_and_budgets_are_kept_in_the_store(store: MemoryStore, clock: Clock, service: ControlService,
                                                   tmp_path: Path) -> None:
    result = service.apply(auth.ADMIN, [{"kind": "Budget", "name": "b", "team": "vision", "gpu_hours": 3}])
    assert result["results"] == [{"kind": "Budget", "name": "b", "action": "created"}]
    again = make_service(store, clock, tmp_path)
    assert again.accountant.rates.gpu_price("A100") == 2.0 and again.accountant.rates.pue == 1.5
    assert again.accountant.budgets["b"].gpu_hours == 3
    assert again.apply(auth.ADMIN, [PRICING])["results"][0]["action"] == "unchanged"


def test_the_example_cost_file_applies(service: ControlService) -> None:
    from hyperion.api.spec import load_documents

    path = Path(__file__).resolve().parents[3] / "examples" / "cost.yaml"
    docs = load_documents(path.read_text(), str(path))
    raw = [d.model_dump(mode="json", by_alias=True, exclude_none=True) for d in docs]
    results = service.apply(auth.ADMIN, raw)["results"]
    assert [(r["kind"], r["action"]) for r in results] == [
        ("Pricing", "configured"), ("Budget", "created"), ("Budget", "created"), ("Team", "created")]
    assert service.accountant.rates.gpu_price("H100") == 2.90


def test_rejection_counts_what_running_jobs_are_still_expected_to_use(service: ControlService, clock) -> None:
    from hyperion.core import PROFILES
    from hyperion.runtime.scheduler_loop import SchedulerLoop

    class NoAgents:
        def start(self, job, handed=()) -> None:
            pass

        def stop(self, job, placements, reason) -> None:
            pass

    loop = SchedulerLoop(service, NoAgents(), PROFILES["default"]())  # type: ignore[arg-type]
    service.apply(auth.ADMIN, [{"kind": "Budget", "name": "cap", "team": "vision", "usd": 20, "action": "reject"}])
    submit(service, gpus=2, runtime_estimate="4h")  # $16 expected: fits $20
    assert loop.cycle() == 1                         # placed: $16 of the $20 are now committed
    with pytest.raises(Invalid, match=r"only \$4.00 of \$20.00 is left .* \$16.00 still expected by running jobs"):
        submit(service, gpus=2, runtime_estimate="2h")  # $8
    assert submit(service, gpus=1, runtime_estimate="1h")  # $2 fits
