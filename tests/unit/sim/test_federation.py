"""The federation simulator (``sim.federation``) on hand-made traces, members and carbon series:
alignment of a trace to the grid data's window, loading a federation (series by grid zone, static
fallback, clear errors), and runs whose cost, carbon, shifts and deadline misses follow by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hyperion.api.spec import SpecError
from hyperion.providers.grid import HourlySeries, constant
from hyperion.sim.federation import (
    FED_POLICIES,
    Federation,
    FederationError,
    FederationRun,
    actual_mean,
    align,
    fed_policies,
    load_federation,
)
from hyperion.sim.traces.base import Trace, TraceJob

H = 3600.0
T0 = datetime(2022, 3, 7, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
EM_HEADER = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA)\n"


def member(name: str, price: float, gpus: int = 8, extra: str = "") -> str:
    return (f"kind: Cluster\nname: {name}\nprovider: onprem\nregion: r-{name}\ngrid_zone: Z-{name}\n"
            f"gpus: {{V100: {gpus}}}\ngpu_hour_usd: {{V100: {price}}}\npue: 1.0\ngpu_watts: {{V100: 250}}\n{extra}")


def federation(tmp_path: Path, *docs: str) -> Federation:
    """Members with static intensities, loaded as ``simulate --federation`` loads a file."""
    path = tmp_path / "fed.yaml"
    path.write_text("---\n".join(docs))
    return load_federation(path, None)


def trace(*jobs: tuple[float, float, int], start: float = T0) -> Trace:
    """(submit offset s, duration s, GPUs) per job."""
    return Trace("t", tuple(TraceJob(f"j{i}", s, d, g) for i, (s, d, g) in enumerate(jobs)), start=start)


def series(values: list[float], start: float = T0 - 2 * 86400) -> HourlySeries:
    return HourlySeries("s", start, tuple(values), "gCO2/kWh")


def run(tr: Trace, fed: Federation, policy: str, **kw):
    return FederationRun(tr, fed, FED_POLICIES[policy], **kw).run()


# ---- alignment --------------------------------------------------------------------------------
def test_align_moves_by_whole_weeks_and_keeps_hour_weekday_and_gaps() -> None:
    start = datetime(2017, 10, 4, 13, 30, tzinfo=UTC).timestamp()  # a Wednesday
    tr = trace((0, 60, 1), (5400, 60, 1), (9 * 86400, 60, 1), start=start)
    out = align(tr, T0, T0 + 8 * 86400)
    first = datetime.fromtimestamp(out.start, UTC)
    assert (first.weekday(), first.hour, first.minute) == (2, 13, 30)  # still Wednesday 13:30
    assert T0 <= out.start < T0 + 7 * 86400
    assert (out.start - start) % (7 * 86400) == 0
    assert [j.submit_s for j in out.jobs] == [0, 5400]  # the job 9 days in falls after --to


def test_align_needs_absolute_times() -> None:
    with pytest.raises(FederationError, match="only relative times"):
        align(trace((0, 60, 1), start=None), T0)  # type: ignore[arg-type]


# ---- loading ----------------------------------------------------------------------------------
def write_em(path: Path, zone: str, start: float, values: list[float]) -> None:
    rows = [f"{datetime.fromtimestamp(start + i * H, UTC):%Y-%m-%d %H:%M:%S},{zone},{v},{v}" for i, v in enumerate(values)]
    path.write_text(EM_HEADER + "\n".join(rows) + "\n", encoding="utf-8")


def test_load_reads_each_members_grid_zone_series_or_its_static_intensity(tmp_path: Path) -> None:
    carbon = tmp_path / "carbon"
    carbon.mkdir()
    write_em(carbon / "Z-a_2022_hourly.csv", "Z-a", T0, [100.0, 200.0, 300.0])
    fed_file = tmp_path / "fed.yaml"
    fed_file.write_text(member("a", 1.0) + "---\n" + member("b", 2.0, extra="carbon_intensity: 55\n"))
    fed = load_federation(fed_file, carbon)
    assert [m.name for m in fed.members] == ["a", "b"] and fed.capacity == 16
    assert fed.carbon["a"].values == (100.0, 200.0, 300.0)
    assert fed.carbon["b"].at(T0) == 55.0


@pytest.mark.parametrize(("docs", "words"), [
    ([member("a", 1.0)], "grid zone Z-a): no --carbon directory and no `carbon_intensity:`"),
    ([member("a", 1.0, extra="carbon_intensity: 1\n"), member("a", 2.0, extra="carbon_intensity: 1\n")],
     "appear more than once"),
    (["kind: Queue\nname: q\n"], "only kind: Cluster documents"),
])
def test_load_errors_say_what_to_do(tmp_path: Path, docs: list[str], words: str) -> None:
    path = tmp_path / "fed.yaml"
    path.write_text("---\n".join(docs))
    with pytest.raises(FederationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_federation(path, None)


def test_a_bad_member_field_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "fed.yaml"
    path.write_text(member("a", 1.0, extra="carbon_intensity: 1\n").replace("gpu_hour_usd: {V100: 1.0}\n", ""))
    with pytest.raises(SpecError, match=r"fed.yaml:6: gpus.V100: onprem clusters are not in the price catalog"):
        load_federation(path, None)


def test_unknown_policy_and_forecast_are_refused() -> None:
    with pytest.raises(FederationError, match="unknown federation policy 'fifo'"):
        fed_policies("default,fifo")
    fed = Federation((), {})
    with pytest.raises(FederationError, match="unknown forecast"):
        FederationRun(trace((0, 60, 1)), fed, FED_POLICIES["default"], forecast="tomorrow")


# ---- runs -------------------------------------------------------------------------------------
def test_cost_energy_and_carbon_of_one_job_follow_by_hand(tmp_path: Path) -> None:
    fed = federation(tmp_path, member("a", 2.0, extra="carbon_intensity: 400\n"))
    r = run(trace((0, 2 * H, 4)), fed, "default")
    m = r.metrics
    assert m["jobs_finished"] == 1 and m["deadline_misses"] == 0
    assert m["cost_usd"] == pytest.approx(4 * 2.0 * 2)                  # GPUs x $/GPU-h x h
    assert m["energy_kwh"] == pytest.approx(4 * 0.25 * 2)               # GPUs x kW x h (PUE 1)
    assert m["carbon_kg"] == pytest.approx(4 * 0.25 * 2 * 400 / 1000)
    assert m["jct_mean_s"] == 2 * H and r.per_cluster["a"]["gpu_hours"] == 8


def test_carbon_spatial_moves_work_to_a_cleaner_member_within_the_cost_bound(tmp_path: Path) -> None:
    dirty = member("dirty", 3.0, extra="carbon_intensity: 500\n")
    clean = member("clean", 3.3, extra="carbon_intensity: 50\n")      # 10% dearer: inside the 25% bound
    pricey = member("pricey", 9.0, extra="carbon_intensity: 0\n")     # cleanest, but 3x the price
    fed = federation(tmp_path, dirty, clean, pricey)
    tr = trace((0, H, 2), (60, H, 2))
    default, spatial = run(tr, fed, "default"), run(tr, fed, "carbon-spatial")
    assert default.per_cluster["dirty"]["jobs"] == 2
    assert spatial.per_cluster["clean"]["jobs"] == 2 and spatial.per_cluster["pricey"]["jobs"] == 0
    assert spatial.metrics["carbon_kg"] == pytest.approx(default.metrics["carbon_kg"] / 10)
    assert spatial.metrics["cost_usd"] == pytest.approx(default.metrics["cost_usd"] * 1.1)


def test_temporal_shifting_waits_for_the_clean_hour_the_oracle_sees() -> None:
    # one member; its grid is dirty (400) except hours 3..5 after the job arrives (40)
    values = [400.0] * (48 + 3) + [40.0] * 3 + [400.0] * 100
    fed = Federation(tuple(_members(member("a", 1.0))), {"a": series(values)})
    tr = trace((0, H, 1))  # slack 1: deadline 2 h after submission + 1 h... too tight to wait 3 h
    assert run(tr, fed, "carbon-oracle").metrics["jobs_shifted"] == 0
    r = run(tr, fed, "carbon-oracle", slack=5.0)  # deadline = submit + 6 h: hour 3 fits
    assert r.metrics["jobs_shifted"] == 1 and r.metrics["deadline_misses"] == 0
    assert r.metrics["queue_delay_mean_s"] == 3 * H
    assert r.metrics["carbon_kg"] == pytest.approx(0.25 * 40 / 1000)
    agnostic = run(tr, fed, "default", slack=5.0)
    assert agnostic.metrics["carbon_kg"] == pytest.approx(0.25 * 400 / 1000)


def test_the_forecast_sees_yesterday_not_today() -> None:
    # yesterday was clean at hour 2; today it is not: the forecast policy waits for nothing
    day = [400.0] * 24
    yesterday = list(day)
    yesterday[2] = 10.0
    values = [400.0] * 24 + yesterday + day + day  # the series starts two days before T0
    fed = Federation(tuple(_members(member("a", 1.0))), {"a": series(values)})
    r = run(trace((0, H, 1)), fed, "carbon-temporal", slack=5.0)
    assert r.metrics["jobs_shifted"] >= 1                      # it believed hour 2 would be clean
    assert r.metrics["carbon_kg"] == pytest.approx(0.25 * 400 / 1000)  # and it was not
    assert r.metrics["deadline_misses"] == 0


def test_a_job_that_waits_for_capacity_past_its_deadline_is_a_miss_and_still_runs(tmp_path: Path) -> None:
    fed = federation(tmp_path, member("a", 1.0, gpus=4, extra="carbon_intensity: 100\n"))
    r = run(trace((0, 10 * H, 4), (60, H, 4)), fed, "default")  # the second waits 10 h for the first
    assert r.metrics["jobs_finished"] == 2 and r.metrics["deadline_misses"] == 1
    assert max(r.jct_s) == pytest.approx(10 * H - 60 + H) and 10 * H < r.metrics["jct_p99_s"] <= max(r.jct_s)


def test_jobs_wider_than_every_member_are_counted_not_replayed(tmp_path: Path) -> None:
    fed = federation(tmp_path, member("a", 1.0, gpus=4, extra="carbon_intensity: 100\n"))
    r = run(trace((0, H, 8), (0, H, 2)), fed, "cheapest")
    assert r.metrics["jobs_unplaceable"] == 1 and r.metrics["jobs_finished"] == 1


def test_actual_mean_weights_partial_hours() -> None:
    s = series([100.0, 300.0], start=T0)
    assert actual_mean(s, T0 + 0.5 * H, T0 + 1.5 * H) == pytest.approx(200.0)
    assert actual_mean(constant(7.0, "gCO2/kWh"), T0, T0 + 10 * H) == 7.0


def _members(*docs: str):
    from hyperion.api.spec import load_documents

    return load_documents("---\n".join(docs), "fed.yaml")


# ---- queueing members and bursting (burst_after) ------------------------------------------
LOOSE = 100.0  # deadline slack that no wait here costs (the deadline rule of burst_reason stays out)


def burst_fed(tmp_path: Path, after: str | None, cloud_gpus: int = 8) -> Federation:
    """An on-prem member ``a`` (4 GPUs, $1) that queues when ``after`` is set, and a cloud ``b`` ($3)."""
    extra = "carbon_intensity: 100\n" + (f"burst_after: {after}\n" if after is not None else "")
    return federation(tmp_path, member("a", 1.0, gpus=4, extra=extra),
                      member("b", 3.0, gpus=cloud_gpus, extra="carbon_intensity: 100\n"))


def test_with_a_long_burst_after_jobs_wait_on_prem_and_none_burst(tmp_path: Path) -> None:
    r = run(trace((0, 10 * H, 4), (60, H, 4)), burst_fed(tmp_path, "24h"), "cheapest", slack=LOOSE)
    m = r.metrics
    assert m["jobs_burst"] == 0 and m["jobs_finished"] == 2
    assert r.per_cluster["a"]["jobs"] == 2 and r.per_cluster["b"]["jobs"] == 0
    assert r.queue_delay_s == (0.0, 10 * H - 60)  # the second waited in a's queue for the first to end
    assert m["cost_usd"] == pytest.approx(4 * 1.0 * 11)


def test_a_job_whose_expected_wait_passes_burst_after_bursts_to_the_cloud(tmp_path: Path) -> None:
    tr = trace((0, 10 * H, 4), (60, H, 4), (120, H, 2))
    waited = run(tr, burst_fed(tmp_path, "24h"), "cheapest", slack=LOOSE)
    r = run(tr, burst_fed(tmp_path, "1h"), "cheapest", slack=LOOSE)
    m = r.metrics
    # both queued jobs expect ~10 h on a (the first running job's end): over 1 h, they start on b at once
    assert m["jobs_burst"] == 2 and r.per_cluster["b"]["jobs"] == 2 and r.per_cluster["a"]["jobs"] == 1
    assert r.queue_delay_s == (0.0, 0.0, 0.0)
    assert m["queue_delay_mean_s"] < waited.metrics["queue_delay_mean_s"]
    assert m["cost_usd"] == pytest.approx(4 * 1.0 * 10 + (4 + 2) * 3.0 * 1)
    assert m["cost_usd"] > waited.metrics["cost_usd"]


def test_a_short_expected_wait_stays_and_a_burst_needs_room_elsewhere(tmp_path: Path) -> None:
    # at 0: j2 and j0 fill a; j1 (4 GPUs) expects 2 h there (j0's end), over burst_after 1 h: it bursts
    # to b and fills it. j3 arrives, expects 2 h - 60 s on a, but b is full: it keeps its place; when
    # j2 ends (1.5 h) it expects 30 min, under 1 h: it stays and starts on a when j0 ends (2 h)
    fed = federation(tmp_path, member("a", 1.0, gpus=4, extra="carbon_intensity: 100\nburst_after: 1h\n"),
                     member("b", 3.0, gpus=4, extra="carbon_intensity: 100\n"))
    tr = trace((0, 2 * H, 2), (0, 3 * H, 4), (0, 1.5 * H, 2), (60, H, 4))
    r = run(tr, fed, "cheapest", slack=LOOSE)
    assert r.metrics["jobs_burst"] == 1
    assert r.per_cluster["b"]["jobs"] == 1 and r.per_cluster["b"]["gpu_hours"] == 4 * 3
    assert r.per_cluster["a"]["jobs"] == 3
    assert sorted(r.queue_delay_s) == [0.0, 0.0, 0.0, 2 * H - 60]


def test_burst_after_zero_is_the_old_overflow_and_no_burst_after_changes_nothing(tmp_path: Path) -> None:
    tr = trace((0, 10 * H, 4), (60, H, 4), (120, 2 * H, 2), (4 * H, H, 1))
    old = run(tr, burst_fed(tmp_path, None), "cheapest")
    zero = run(tr, burst_fed(tmp_path, "0s"), "cheapest")
    assert old.metrics["jobs_burst"] == 0 and zero.metrics["jobs_burst"] == 3
    assert old.per_cluster == zero.per_cluster and old.queue_delay_s == zero.queue_delay_s == (0.0,) * 4
    assert {k: v for k, v in zero.metrics.items() if k != "jobs_burst"} == {
        k: v for k, v in old.metrics.items() if k != "jobs_burst"}
    # without a queueing member a full member fails fit: the job goes to the next member at once
    assert old.per_cluster["b"]["jobs"] == 3 and old.metrics["cost_usd"] == pytest.approx(40 + 3 * (4 + 4 + 1))


def test_queued_jobs_start_on_prem_in_fifo_order_as_gpus_free(tmp_path: Path) -> None:
    # a alone (nothing to burst to): j1 starts when j0 ends; j2 (4 GPUs) is then the head and holds
    # j3 (2 GPUs) behind it although 2 GPUs are free (head-of-line, no backfill)
    fed = federation(tmp_path, member("a", 1.0, gpus=4, extra="carbon_intensity: 100\nburst_after: 1h\n"))
    tr = trace((0, 2 * H, 4), (60, H, 2), (120, H, 4), (180, H, 2))
    r = run(tr, fed, "cheapest")
    assert r.metrics["jobs_finished"] == 4 and r.metrics["jobs_burst"] == 0
    starts = [0.0, 2 * H, 3 * H, 4 * H]  # j0, j1, j2 (when j1 ends), j3 (when j2 ends)
    assert r.queue_delay_s == tuple(s - sub for s, sub in zip(starts, (0, 60, 120, 180), strict=True))
    greedy = run(tr, federation(tmp_path, member("a", 1.0, gpus=4, extra="carbon_intensity: 100\n")), "cheapest")
    assert sorted(greedy.queue_delay_s) != sorted(r.queue_delay_s)  # without a queue j3 starts beside j1


def test_a_wait_within_burst_after_that_would_cost_a_deadline_bursts(tmp_path: Path) -> None:
    # the 1-h job expects 10 h on a, within burst_after 24 h; with slack 1 its deadline is 2 h after
    # submission: waiting would miss it, starting on b now meets it
    tr = trace((0, 10 * H, 4), (60, H, 4))
    r = run(tr, burst_fed(tmp_path, "24h"), "cheapest", slack=1.0)
    assert r.metrics["jobs_burst"] == 1 and r.per_cluster["b"]["jobs"] == 1
    assert r.metrics["deadline_misses"] == 0 and r.queue_delay_s == (0.0, 0.0)
    loose = run(tr, burst_fed(tmp_path, "24h"), "cheapest", slack=LOOSE)
    assert loose.metrics["jobs_burst"] == 0
