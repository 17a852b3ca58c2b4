"""The spot study (``sim.spot``) on hand-made spot series: zone availability with wrap-around,
and one job's cost, lost work, interruptions and finish under each policy, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperion.sim.spot import Market, Zone, load_market, read_spot_prices, run_job, run_study
from hyperion.sim.traces.base import Trace, TraceJob
from hyperion.sim.traces.skypilot_spot import SpotSeries

H = 3600.0


def series(pattern: str, gap: float = 600.0, name: str = "z") -> SpotSeries:
    """'.' = capacity, 'x' = none, one character per tick."""
    return SpotSeries(name, gap, tuple(c == "x" for c in pattern))


def market(*zones: Zone, **kw) -> Market:
    kw.setdefault("boot_s", 60.0)
    kw.setdefault("checkpoint_s", 1800.0)
    kw.setdefault("restart_s", 0.0)
    return Market(tuple(zones), on_demand_usd_per_h=3.0, **kw)


def test_zone_availability_repeats_its_series() -> None:
    z = Zone("a", series("..xx.."), 1.0)  # 6 ticks of 10 min: down from 20 to 40 min
    assert z.available(0) and not z.available(20 * 60) and z.available(40 * 60)
    assert z.next_down(0) == 20 * 60 and z.next_up(25 * 60) == 40 * 60
    assert z.next_down(45 * 60) == 60 * 60 + 20 * 60  # in the next repetition
    assert z.interruptions_per_h == pytest.approx(1 / (40 / 60))


def test_on_demand_bills_boot_and_run() -> None:
    o = run_job(market(Zone("a", series("......"), 1.0)), "on-demand", 2, 0.0, H, deadline=10 * H)
    assert o.usd == pytest.approx(2 * 3.0 * (60 + H) / H) and o.finish == 60 + H and o.interruptions == 0


def test_spot_loses_progress_since_the_last_checkpoint_and_resumes() -> None:
    # capacity for 100 min, then 20 min none, then capacity: a 2 h job with 30 min checkpoints
    z = Zone("a", series("." * 10 + "xx" + "." * 36), 1.0)
    o = run_job(market(z), "spot", 1, 0.0, 2 * H, deadline=100 * H)
    # boot 1 min, 99 min of progress, 90 saved: 9 min lost; waits 20 min; boots again, 30 min left
    assert o.interruptions == 1
    assert o.lost_gpu_s == pytest.approx(9 * 60)
    assert o.finish == pytest.approx(120 * 60 + 60 + 30 * 60)
    assert o.usd == pytest.approx(1.0 * (100 * 60 + 60 + 30 * 60) / H)


def test_the_mix_goes_on_demand_when_an_interruption_could_not_be_absorbed() -> None:
    z = Zone("a", series("." * 48), 1.0)
    tight = run_job(market(z), "mix", 1, 0.0, 2 * H, deadline=2 * H + 300)
    assert tight.on_demand_gpu_s > 0 and tight.spot_gpu_s == 0 and tight.finish <= 2 * H + 300
    relaxed = run_job(market(z), "mix", 1, 0.0, 2 * H, deadline=6 * H)
    assert relaxed.spot_gpu_s > 0 and relaxed.on_demand_gpu_s == 0


def test_without_capacity_spot_waits_and_the_mix_waits_only_while_its_slack_allows() -> None:
    z = Zone("a", series("x" * 12 + "." * 36), 1.0)  # no capacity for the first 2 h
    waited = run_job(market(z), "spot", 1, 0.0, H, deadline=2 * H)
    assert waited.finish == pytest.approx(2 * H + 60 + H)  # late: spot-only waits whatever the deadline
    mix = run_job(market(z), "mix", 1, 0.0, H, deadline=2 * H)
    assert mix.finish <= 2 * H and mix.on_demand_gpu_s > 0
    patient = run_job(market(z), "mix", 1, 0.0, H, deadline=10 * H)
    assert patient.spot_gpu_s > 0 and patient.on_demand_gpu_s == 0 and patient.finish > 2 * H


def test_a_study_counts_misses_and_compares_policies() -> None:
    z = Zone("a", series(("." * 5 + "x") * 8), 1.0)  # an outage every hour
    trace = Trace("t", (TraceJob("a", 0.0, 3 * H, 2), TraceJob("b", 600.0, 600.0, 1)), start=0.0)
    results = {p: run_study(trace, market(z), p, slack=0.5).metrics for p in ("on-demand", "spot", "mix")}
    assert results["on-demand"]["deadline_misses"] == 0
    assert results["mix"]["deadline_misses"] == 0
    assert results["mix"]["cost_usd"] <= results["on-demand"]["cost_usd"]
    assert results["spot"]["interruptions"] >= 1 and results["spot"]["gpu_hours_lost"] > 0
    with pytest.raises(ValueError, match="unknown spot policy"):
        run_study(trace, market(z), "cheapest")


def test_prices_by_zone_and_the_market_from_files(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("region,availability_zone,instance_type,product_description,spot_price_usd_per_hour,timestamp_utc\n"
                      "us-east-1,us-east-1a,p3.2xlarge,Linux/UNIX,0.9,2020-01-01T00:00:00Z\n"
                      "us-east-1,us-east-1a,p3.2xlarge,Linux/UNIX,1.1,2020-01-02T00:00:00Z\n"
                      "us-east-1,us-east-1a,p3.8xlarge,Linux/UNIX,3.6,2020-01-02T00:00:00Z\n")
    assert read_spot_prices(prices, "p3.2xlarge") == {"us-east-1a": pytest.approx(1.0)}
    (tmp_path / "us-east-1c_v100_1.json").write_text('{"metadata": {"gap_seconds": 60}, "data": [0, 0, 1, 0]}')
    m = load_market([tmp_path / "us-east-1c_v100_1.json"], read_spot_prices(prices, "p3.2xlarge"), 3.06)
    [zone] = m.zones
    assert zone.name == "us-east-1c" and zone.spot_usd_per_h == pytest.approx(1.0)  # its region's median
    bad = tmp_path / "bad.csv"
    bad.write_text("region,availability_zone,instance_type,product_description,spot_price_usd_per_hour,timestamp_utc\n"
                   "us-east-1,us-east-1a,p3.2xlarge,Linux/UNIX,free,2020-01-01T00:00:00Z\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: spot_price_usd_per_hour: 'free' is not a positive price"):
        read_spot_prices(bad, "p3.2xlarge")
