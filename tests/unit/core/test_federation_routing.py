"""The scheduling side of the live federation (core/plugins/federation.py): a routed job runs only on
its member's nodes, waits for the hour the federation chose, and says so; unrouted jobs are untouched."""

from __future__ import annotations

from dataclasses import replace

from hyperion.core import PROFILES, schedule
from hyperion.model import VerdictCode
from hyperion.testing.builders import a_job, a_node, a_snapshot

LABEL = "hyperion.io/cluster"
HOUR = 3600.0
NOW = 1_654_668_000.0  # 2022-06-08 06:00 UTC


def member_node(node_id: str, member: str | None):
    n = a_node(node_id).gpus(2).gpu_type("A100")
    return n.labels(**{LABEL: member}) if member else n


def routed(member: str | None = None, start_after: float | None = None, waits_for: str = ""):
    return replace(a_job("j").gpus(1).gpu_type("A100").view(), cluster=member, start_after=start_after,
                   waits_for=waits_for)


def plan_for(nodes, job, now: float = NOW):
    return schedule(a_snapshot(nodes, [job], now=now), PROFILES["default"]())


def test_a_routed_job_runs_only_on_a_node_labelled_with_its_member() -> None:
    nodes = [member_node("a", None), member_node("b", "cloud"), member_node("c", "onprem")]
    plan = plan_for(nodes, routed("onprem"))
    [assign] = plan.assignments
    assert {p.node_id for p in assign.placements} == {"c"}


def test_no_node_of_its_member_free_keeps_it_pending_with_each_nodes_reason() -> None:
    nodes = [member_node("a", None), member_node("b", "cloud"), member_node("c", "onprem").busy_gpus(0, 1)]
    plan = plan_for(nodes, routed("onprem"))
    assert not plan.assignments
    reasons = " | ".join(plan.verdicts["j"].reasons)
    assert "node is in member cloud; the job is routed to onprem" in reasons
    assert "no hyperion.io/cluster label" in reasons


def test_a_member_without_nodes_holds_the_job_with_the_node_pool_reason() -> None:
    plan = plan_for([member_node("a", None)], routed("cloud"))
    verdict = plan.verdicts["j"]
    assert verdict.code is VerdictCode.UNRESOLVABLE and verdict.plugin == "federation"
    [why] = verdict.reasons
    assert why.startswith("federation: routed to member cloud, which has no node yet: capacity comes from its node pool (issue 8)")


def test_a_delayed_job_waits_until_its_hour_and_wakes_the_driver_then() -> None:
    at = NOW + 6 * HOUR
    job = routed("onprem", at, "a cleaner hour (expected 120 g CO2 vs 310 g now)")
    plan = plan_for([member_node("c", "onprem")], job)
    assert not plan.assignments
    assert plan.verdicts["j"].reasons == (
        "federation: waits until 2022-06-08 12:00 UTC for a cleaner hour (expected 120 g CO2 vs 310 g now)",)
    assert plan.wake_at == at
    # at its hour it starts
    later = plan_for([member_node("c", "onprem")], job, now=at)
    assert [a.job_id for a in later.assignments] == ["j"]


def test_an_unrouted_job_is_untouched_by_member_labels() -> None:
    plan = plan_for([member_node("b", "cloud")], routed(None))
    assert [a.job_id for a in plan.assignments] == ["j"]
    assert plan.wake_at is None


def test_explain_estimates_the_federations_start_and_knows_a_member_without_nodes() -> None:
    from hyperion.core import explain

    at = NOW + 6 * HOUR
    nodes = [member_node("a", None), member_node("c", "onprem")]
    waiting = routed("onprem", at, "a cleaner hour")
    snap = a_snapshot(nodes, [waiting], now=NOW)
    e = explain(snap, PROFILES["default"](), schedule(snap, PROFILES["default"]()), "j")
    assert e.estimated_start == at and "federation" in e.estimate_basis
    # routed to a member with no node at all: no estimate, and why (not "2 GPUs free now")
    away = routed("cloud")
    snap = a_snapshot(nodes, [away], now=NOW)
    e = explain(snap, PROFILES["default"](), schedule(snap, PROFILES["default"]()), "j")
    assert e.estimated_start is None and "member cloud, which has no node yet" in e.estimate_basis
