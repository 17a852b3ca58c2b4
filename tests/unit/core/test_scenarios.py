"""Scenarios of the default profile, one semantic each, as small tables built with the builders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hyperion.core import PROFILES, explain, schedule
from hyperion.model import Hold, Priority, Resources, VerdictCode
from hyperion.testing.builders import a_job, a_node, a_queue, a_snapshot

BATCH, LC, ULL = Priority.BATCH, Priority.LATENCY_CRITICAL, Priority.ULTRA_LOW_LATENCY
DEFAULT = PROFILES["default"]()
TWO_TEAMS = [a_queue("a").cohort("lab").gpus(A100=2), a_queue("b").cohort("lab").gpus(A100=2)]


def plan_of(nodes, pending=(), running=(), queues=(), profile=DEFAULT, now=1000.0, **kw):
    return schedule(a_snapshot(nodes=nodes, pending=pending, running=running, queues=queues, now=now, **kw), profile)


def nominations(plan) -> tuple[Hold, ...]:
    """The plan's holds without the quota they charge (checked in test_a_carried_nomination_keeps_its_quota)
    and what their victims free (test_a_preemptor_offered_again_keeps_what_its_victims_freed)."""
    return tuple(replace(h, quota=(), victims=()) for h in plan.holds)


def placed(plan) -> set[str]:
    return {a.job_id for a in plan.assignments}


def evicted(plan) -> set[str]:
    return {e.job_id for e in plan.evictions}


def test_equal_weights_split_four_gpus_two_and_two():
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(4)] + \
              [a_job(f"b{i}").gpus(1).queue("b").submitted(10 + i) for i in range(4)]
    plan = plan_of([a_node("n1").gpus(4)], pending, queues=TWO_TEAMS)
    assert sorted(placed(plan)) == ["a0", "a1", "b0", "b1"]


def test_equal_weights_without_quotas_alternate_by_dominant_share():
    queues = [a_queue("a"), a_queue("b")]
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(4)] + \
              [a_job(f"b{i}").gpus(1).queue("b").submitted(10 + i) for i in range(4)]
    plan = plan_of([a_node("n1").gpus(4)], pending, queues=queues)
    assert sorted(placed(plan)) == ["a0", "a1", "b0", "b1"]


def test_idle_quota_is_lent_and_reclaimed_within_one_cycle():
    running = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0) for i in range(4)]
    plan = plan_of([a_node("n1").gpus(4)], [a_job("b0").gpus(1).queue("b"), a_job("b1").gpus(1).queue("b")],
                   running, TWO_TEAMS)
    assert len(evicted(plan)) == 2 and evicted(plan) <= {"a0", "a1", "a2", "a3"}
    assert plan.verdicts["b0"].code is VerdictCode.UNSCHEDULABLE


def test_reclaim_stops_at_the_borrowers_nominal_quota():
    running = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0) for i in range(3)]
    pending = [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(3)]
    plan = plan_of([a_node("n1").gpus(4)], pending, running, TWO_TEAMS)
    # b gets the idle GPU, then one reclaimed from a (borrowing 1); its third job would borrow: no reclaim
    assert placed(plan) == {"b0"}
    assert len(evicted(plan)) == 1


@pytest.mark.parametrize("victim, preemptor, expected", [
    (BATCH, LC, True), (BATCH, ULL, True), (LC, ULL, True),
    (LC, LC, False), (ULL, LC, False), (LC, BATCH, False), (BATCH, BATCH, False),
])
def test_class_preemption_within_a_queue_only_downwards(victim, preemptor, expected):
    running = [a_job("v").gpus(8).priority(victim).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1").gpus(8)], [a_job("p").gpus(8).priority(preemptor)], running)
    assert (evicted(plan) == {"v"}) is expected


@pytest.mark.parametrize("option, preemptor, crosses", [
    ("ultra-low-latency", ULL, True), ("ultra-low-latency", LC, False),
    ("latency-critical", LC, True), ("never", ULL, False),
])
def test_class_preemption_across_queues_within_nominal_quota(option, preemptor, crosses):
    profile = PROFILES["default"](cross_queue_class_preemption=option)
    queues = [a_queue("a").cohort("lab").gpus(A100=8), a_queue("b").cohort("lab").gpus(A100=8)]
    running = [a_job("v").gpus(8).queue("a").running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1").gpus(8)], [a_job("p").gpus(8).queue("b").priority(preemptor)], running, queues, profile)
    assert (evicted(plan) == {"v"}) is crosses


def test_cheapest_victims_lose_the_least_work_since_their_checkpoint():
    running = [a_job("old-no-ckpt").gpus(4).running_on("n1", started=0.0),
               a_job("old-fresh-ckpt").gpus(4).running_on("n1", started=0.0, checkpoint=990.0),
               a_job("young").gpus(4).running_on("n2", started=500.0),
               a_job("young2").gpus(4).running_on("n2", started=600.0)]
    plan = plan_of([a_node("n1"), a_node("n2")], [a_job("p").gpus(4).priority(LC)], running)
    assert evicted(plan) == {"old-fresh-ckpt"}


def test_whole_gangs_are_evicted_and_unneeded_victims_filled_back():
    running = [a_job("gang").gpus(4).gang(2).running_on("n1", "n2", started=900.0),
               a_job("solo").gpus(4).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1"), a_node("n2")], [a_job("p").gpus(8).priority(LC)], running)
    # evicting the gang frees 4 on n1 and 4 on n2: not 8 on one node; solo must go too, or
    # gang alone if... n1 needs both gone; n2 needs the gang gone (then 8 free on n2). Cheapest: gang alone.
    assert evicted(plan) == {"gang"}


def test_no_preemption_for_a_job_that_would_still_not_fit():
    running = [a_job("v").gpus(8).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1")], [a_job("p").gpus(8).replicas(2).priority(ULL)], running)
    assert evicted(plan) == set()
    assert plan.verdicts["p"].code is VerdictCode.UNSCHEDULABLE


def test_quota_beyond_what_the_queue_could_ever_hold_is_unresolvable():
    plan = plan_of([a_node("n1")], [a_job("p").gpus(4).queue("a")], queues=[a_queue("a").gpus(A100=2)])
    v = plan.verdicts["p"]
    assert v.code is VerdictCode.UNRESOLVABLE and any("never hold" in r for r in v.reasons)


def test_borrowing_limit_holds():
    queues = [a_queue("a").cohort("lab").gpus(A100=2).borrowing_limit(A100=1), a_queue("b").cohort("lab").gpus(A100=6)]
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(6)]
    plan = plan_of([a_node("n1")], pending, queues=queues)
    assert len(placed(plan)) == 3


def test_easy_backfill_short_jobs_fill_holes_long_ones_wait():
    running = [a_job("r").gpus(4).runtime(100).running_on("n1", started=950.0)]  # ends at 1050
    pending = [a_job("head").gpus(8).submitted(1), a_job("short").gpus(4).runtime(40).submitted(2),
               a_job("long").gpus(4).runtime(500).submitted(3), a_job("unknown").gpus(4).submitted(4)]
    plan = plan_of([a_node("n1")], pending, running)
    assert placed(plan) == {"short"}
    assert plan.holds and plan.holds[0].job_id == "head" and plan.holds[0].until == 1050.0


def test_gang_admission_checks_real_nodes_not_just_totals():
    # 8 free GPUs in total, but 2 per node: a gang of 2 x 4 GPUs cannot be placed
    nodes = [a_node(f"n{i}").gpus(4).busy_gpus(0, 1) for i in range(4)]
    plan = plan_of(nodes, [a_job("g").gpus(4).gang(2)], queues=[a_queue("default").gpus(A100=16)])
    assert placed(plan) == set() and plan.verdicts["g"].code is VerdictCode.UNSCHEDULABLE


def test_decayed_history_makes_yesterdays_heavy_user_yield():
    queues = [a_queue("a"), a_queue("b")]
    history = {"a": {"gpus/A100": 4 * 86400.0}}  # a used 4 GPUs for a long while
    pending = [a_job("a0").gpus(1).queue("a").submitted(0), a_job("b0").gpus(1).queue("b").submitted(5)]
    plan = plan_of([a_node("n1").gpus(1)], pending, queues=queues, history=history)
    assert placed(plan) == {"b0"}


# ---- quotas: lending --------------------------------------------------------------------------------
@pytest.mark.parametrize("lending_limit, b_placed", [(None, 6), (1, 3), (0, 2)])
def test_lending_limit_keeps_part_of_a_queues_quota_from_being_lent(lending_limit, b_placed):
    # a (nominal 4) is idle; b (nominal 2) has 8 jobs: it borrows what a may lend
    a = a_queue("a").cohort("lab").gpus(A100=4)
    if lending_limit is not None:
        a = a.lending_limit(A100=lending_limit)
    pending = [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(8)]
    plan = plan_of([a_node("n1")], pending, queues=[a, a_queue("b").cohort("lab").gpus(A100=2)])
    assert placed(plan) == {f"b{i}" for i in range(b_placed)}
    if b_placed < 8:
        assert plan.verdicts[f"b{b_placed}"].reasons[-1].startswith("quota: cohort lab has no idle A100 GPUs to lend to queue b")


@pytest.mark.parametrize("lend_while_pending, b_placed", [(True, 6), (False, 2)])
def test_lend_while_pending_false_stops_lending_while_the_lender_has_pending_jobs(lend_while_pending, b_placed):
    # a's only pending job can never run (no H100 node), yet it keeps a's quota from being lent
    queues = [a_queue("a").cohort("lab").gpus(A100=4, H100=1), a_queue("b").cohort("lab").gpus(A100=2)]
    pending = [a_job("a0").gpus(1).gpu_type("H100").queue("a")] + \
              [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(8)]
    profile = PROFILES["default"](lend_while_pending=lend_while_pending)
    plan = plan_of([a_node("n1")], pending, queues=queues, profile=profile)
    assert placed(plan) == {f"b{i}" for i in range(b_placed)}
    assert plan.verdicts["a0"].code is VerdictCode.UNRESOLVABLE


def test_lending_resumes_when_the_lender_has_no_pending_jobs_even_with_lend_while_pending_false():
    queues = [a_queue("a").cohort("lab").gpus(A100=4), a_queue("b").cohort("lab").gpus(A100=2)]
    pending = [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(8)]
    plan = plan_of([a_node("n1")], pending, queues=queues, profile=PROFILES["default"](lend_while_pending=False))
    assert len(placed(plan)) == 6


# ---- fair share ---------------------------------------------------------------------------------------
def test_weights_two_to_one_split_six_gpus_four_and_two_under_backlog():
    queues = [a_queue("a").weight(2), a_queue("b").weight(1)]
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(6)] + \
              [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(6)]
    plan = plan_of([a_node("n1").gpus(6)], pending, queues=queues)
    assert placed(plan) == {"a0", "a1", "a2", "a3", "b0", "b1"}


def test_weights_two_to_one_with_the_heavier_queue_listed_second():
    queues = [a_queue("a").weight(1), a_queue("b").weight(2)]
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(6)] + \
              [a_job(f"b{i}").gpus(1).queue("b").submitted(i) for i in range(6)]
    plan = plan_of([a_node("n1").gpus(6)], pending, queues=queues)
    assert placed(plan) == {"a0", "a1", "b0", "b1", "b2", "b3"}


def test_inside_a_queue_the_user_with_less_history_goes_first():
    history = {"default/heavy": {"gpus/A100": 10 * 86400.0}, "default/light": {"gpus/A100": 86400.0}}
    pending = [a_job("h").gpus(1).user("heavy").submitted(0), a_job("l").gpus(1).user("light").submitted(50)]
    plan = plan_of([a_node("n1").gpus(1)], pending, history=history)
    assert placed(plan) == {"l"}
    assert plan.order == ("l", "h")


def test_a_user_with_no_history_goes_before_one_with_some():
    history = {"default/old": {"gpus/A100": 1.0}}
    pending = [a_job("o").gpus(1).user("old").submitted(0), a_job("n").gpus(1).user("new").submitted(50)]
    assert plan_of([a_node("n1").gpus(1)], pending, history=history).order == ("n", "o")


@pytest.mark.parametrize("jobs, first", [
    ([a_job("x").gpus(1).submitted(0), a_job("y").gpus(1).priority(BATCH, 5).submitted(10)], "y"),
    ([a_job("x").gpus(1).priority(BATCH, 1).submitted(10), a_job("y").gpus(1).priority(BATCH, 1).submitted(5)], "y"),
    ([a_job("x").gpus(1).priority(LC, 0).submitted(10), a_job("y").gpus(1).priority(BATCH, 9).submitted(0)], "x"),
])
def test_integer_priority_orders_jobs_within_a_class_and_queue(jobs, first):
    plan = plan_of([a_node("n1").gpus(1)], jobs)
    assert plan.order[0] == first and placed(plan) == {first}


@pytest.mark.parametrize("basis, first", [("usage", "a1"), ("borrowed", "b1")])
def test_share_basis_usage_or_borrowed_decides_which_borrower_goes_first(basis, first):
    # both heads would borrow. a holds 3 (nominal 1: borrows 2); b holds 4 (nominal 4: borrows 0).
    # usage: a (3) is behind b (4); borrowed: b (0) is behind a (2). One GPU is free.
    queues = [a_queue("a").cohort("lab").gpus(A100=1), a_queue("b").cohort("lab").gpus(A100=4),
              a_queue("c").cohort("lab").gpus(A100=3)]
    running = [a_job("ra").gpus(3).queue("a").running_on("n1", started=0.0),
               a_job("rb").gpus(4).queue("b").running_on("n1", started=0.0)]
    pending = [a_job("a1").gpus(1).queue("a"), a_job("b1").gpus(1).queue("b")]
    plan = plan_of([a_node("n1")], pending, running, queues, PROFILES["default"](share_basis=basis))
    assert plan.order[0] == first and placed(plan) == {first}
    assert plan.evictions == ()


@pytest.mark.parametrize("order, first", [("current", "b1"), ("after-admission", "a1")])
def test_share_order_current_or_after_admission_decides_between_a_small_and_a_large_head(order, first):
    # a holds 2 and asks 1 more; b holds 1 and asks 4 more: b is behind now, a after admission
    queues = [a_queue("a"), a_queue("b")]
    running = [a_job("ra").gpus(2).queue("a").running_on("n1", started=0.0),
               a_job("rb").gpus(1).queue("b").running_on("n1", started=0.0)]
    pending = [a_job("a1").gpus(1).queue("a"), a_job("b1").gpus(4).queue("b")]
    plan = plan_of([a_node("n1")], pending, running, queues, PROFILES["default"](share_order=order))
    assert plan.order[0] == first


# ---- preemption -------------------------------------------------------------------------------------
@pytest.mark.parametrize("victim_order, victim", [("borrowers-first", "borrowed"), ("cheapest-first", "own")])
def test_victim_order_borrowers_first_or_cheapest_first(victim_order, victim):
    # "own": p's own queue, just started (little work lost); "borrowed": of b, which borrows, 1000 s of work
    queues = [a_queue("a").cohort("lab").gpus(A100=8), a_queue("b").cohort("lab").gpus(A100=0)]
    running = [a_job("own").gpus(4).queue("a").running_on("n1", started=999.0),
               a_job("borrowed").gpus(4).queue("b").running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1")], [a_job("p").gpus(4).queue("a").priority(LC)], running, queues,
                   PROFILES["default"](victim_order=victim_order))
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [(victim, "p")]


@pytest.mark.parametrize("rule, victim_class, evicts", [
    ("lower-or-equal", BATCH, True), ("lower", BATCH, False), ("any", BATCH, True),
    ("lower-or-equal", LC, False), ("any", LC, True),
])
def test_reclaim_priority_decides_which_classes_of_a_borrower_reclaim_may_evict(rule, victim_class, evicts):
    running = [a_job(f"b{i}").gpus(1).queue("b").priority(victim_class).running_on("n1", started=0.0) for i in range(8)]
    plan = plan_of([a_node("n1")], [a_job("a0").gpus(1).queue("a")], running,
                   [a_queue("a").cohort("lab").gpus(A100=4), a_queue("b").cohort("lab").gpus(A100=4)],
                   PROFILES["default"](reclaim_priority=rule))
    assert len(plan.evictions) == (1 if evicts else 0)
    if evicts:
        assert "reclaims its queue's nominal quota" in plan.evictions[0].reason


def test_reclaim_never_pushes_a_borrower_below_its_nominal_quota():
    # b (nominal 4) holds 6 of 8 GPUs; a (nominal 8) wants 8: 2 free, then 2 reclaimed; b keeps 4
    queues = [a_queue("a").cohort("lab").gpus(A100=8), a_queue("b").cohort("lab").gpus(A100=4)]
    running = [a_job(f"b{i}").gpus(1).queue("b").running_on("n1", started=float(i)) for i in range(6)]
    pending = [a_job(f"a{i}").gpus(1).queue("a").submitted(i) for i in range(8)]
    plan = plan_of([a_node("n1")], pending, running, queues)
    assert placed(plan) == {"a0", "a1"}
    assert len(plan.evictions) == 2 and {e.preemptor for e in plan.evictions} == {"a2", "a3"}
    assert evicted(plan) == {"b4", "b5"}  # the youngest: the least work lost
    assert all("preemption" not in r for j in ("a4", "a5", "a6", "a7") for r in plan.verdicts[j].reasons)


@pytest.mark.parametrize("need, new_victims, waiting", [(4, set(), "stopping"), (8, {"other"}, "other, stopping")])
def test_jobs_already_being_preempted_are_used_first(need, new_victims, waiting):
    running = [a_job("stopping").gpus(4).running_on("n1", started=0.0, preempting=True),
               a_job("other").gpus(4).running_on("n1", started=900.0)]
    plan = plan_of([a_node("n1")], [a_job("p").gpus(need).priority(LC)], running)
    assert evicted(plan) == new_victims
    assert placed(plan) == set()
    assert plan.verdicts["p"].reasons[-1].endswith(f"waiting for {len(new_victims) + 1} job(s) to stop: {waiting}")


def test_a_job_being_preempted_for_one_preemptor_is_not_counted_twice():
    # one job stopping frees 4 GPUs: enough for p1, not also for p2, which must find its own victim
    running = [a_job("stopping").gpus(4).running_on("n1", started=0.0, preempting=True),
               a_job("other").gpus(4).running_on("n1", started=900.0)]
    pending = [a_job("p1").gpus(4).priority(LC).submitted(0), a_job("p2").gpus(4).priority(LC).submitted(1)]
    plan = plan_of([a_node("n1")], pending, running)
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [("other", "p2")]
    assert plan.verdicts["p1"].reasons[-1].endswith("waiting for 1 job(s) to stop: stopping")


# ---- backfill and holds -----------------------------------------------------------------------------
BACKFILL_NODES = [a_node("n1"), a_node("n2")]
# n1: 4 GPUs free, 4 more at t=1050; n2: 6 free, 2 held by a job with no estimate. "head" (8) is reserved n1's 4.
BACKFILL_RUNNING = [a_job("r1").gpus(4).runtime(100).running_on("n1", started=950.0),
                    a_job("r2").gpus(2).running_on("n2", started=0.0)]


@pytest.mark.parametrize("runtime, node", [(None, "n2"), (500.0, "n2"), (30.0, "n1")])
def test_a_job_that_would_delay_the_reservation_uses_unheld_resources_only(runtime, node):
    pending = [a_job("head").gpus(8).submitted(0), a_job("x").gpus(2).runtime(runtime).submitted(1)]
    plan = plan_of(BACKFILL_NODES, pending, BACKFILL_RUNNING)
    assert plan.holds == (Hold("head", 1050.0, (("n1", Resources(4)),)),)  # 8 needed, 4 freed by r1 at 1050
    assert [(a.job_id, [p.node_id for p in a.placements]) for a in plan.assignments] == [("x", [node])]


def test_without_a_reservation_the_same_job_takes_the_fullest_node():
    plan = plan_of(BACKFILL_NODES, [a_job("x").gpus(2).submitted(1)], BACKFILL_RUNNING)
    assert [p.node_id for a in plan.assignments for p in a.placements] == ["n1"]


def test_a_job_with_no_estimate_cannot_use_held_resources_when_nothing_else_is_free():
    pending = [a_job("head").gpus(8).submitted(0), a_job("x").gpus(4).submitted(1)]
    plan = plan_of([a_node("n1")], pending, [a_job("r1").gpus(4).runtime(100).running_on("n1", started=950.0)])
    assert placed(plan) == set()
    assert any("held for another job" in r for r in plan.verdicts["x"].reasons)


@pytest.mark.parametrize("until, runtime, fits", [
    (None, None, False), (None, 10.0, False), (1100.0, 50.0, True), (1100.0, 100.0, True), (1100.0, 101.0, False),
    (1100.0, None, False),
])
def test_a_carried_hold_for_a_job_not_pending_is_honoured(until, runtime, fits):
    hold = Hold("gone", until, (("n1", Resources(8)),))
    plan = plan_of([a_node("n1")], [a_job("x").gpus(1).runtime(runtime)], holds=[hold], now=1000.0)
    assert (placed(plan) == {"x"}) is fits
    assert plan.holds == (hold,)


def test_a_carried_hold_covers_only_the_held_amount():
    hold = Hold("gone", None, (("n1", Resources(6)),))
    plan = plan_of([a_node("n1")], [a_job("x").gpus(2), a_job("y").gpus(1).submitted(1)], holds=[hold])
    assert placed(plan) == {"x"}


def test_explain_gives_the_position_in_the_queue_and_the_reserved_start():
    # b already holds 4 GPUs, so a goes first: head (reserved n1 from t=1050), then a2, then b1
    queues = [a_queue("a"), a_queue("b")]
    pending = [a_job("head").gpus(8).queue("a").submitted(0), a_job("b1").gpus(8).queue("b").submitted(1),
               a_job("a2").gpus(8).queue("a").submitted(2)]
    snap = a_snapshot(nodes=[a_node("n1")], pending=pending, queues=queues, now=1000.0,
                      running=[a_job("r1").gpus(4).runtime(100).queue("b").running_on("n1", started=950.0)])
    plan = schedule(snap, DEFAULT)
    assert plan.order == ("head", "a2", "b1")
    assert plan.holds == (Hold("head", 1050.0, (("n1", Resources(4)),)),)
    e = explain(snap, DEFAULT, plan, "head")
    assert (e.queue, e.queue_position, e.queue_pending, e.position, e.pending) == ("a", 1, 2, 1, 3)
    assert e.estimated_start == 1050.0 and "reserved" in e.estimate_basis
    e = explain(snap, DEFAULT, plan, "a2")
    assert (e.queue, e.queue_position, e.queue_pending, e.position, e.pending) == ("a", 2, 2, 2, 3)
    assert [j.id for j in e.ahead] == ["head"]
    assert e.estimated_start != 1050.0 and "reserved" not in e.estimate_basis
    e = explain(snap, DEFAULT, plan, "b1")
    assert (e.queue, e.queue_position, e.queue_pending, e.position) == ("b", 1, 1, 3)


def test_explain_of_a_reservation_in_the_past_starts_now():
    hold = Hold("me", 900.0, (("n1", Resources(8)),))
    snap = a_snapshot(nodes=[a_node("n1")], pending=[a_job("me").gpus(8)], now=1000.0)
    e = explain(snap, DEFAULT, replace(schedule(snap, DEFAULT), holds=(hold,)), "me")
    assert e.estimated_start == 1000.0 and "reserved" in e.estimate_basis


# ---- gangs -----------------------------------------------------------------------------------------
def test_a_gang_with_min_available_is_placed_when_only_that_many_fit():
    job = replace(a_job("g").gpus(4).replicas(4), min_available_=2)
    plan = plan_of([a_node("n1")], [job])
    [a] = plan.assignments
    assert a.job_id == "g" and sorted(p.rank for p in a.placements) == [0, 1]
    assert sorted(g for p in a.placements for g in p.gpu_indices) == list(range(8))


def test_a_gang_below_min_available_is_not_placed():
    job = replace(a_job("g").gpus(4).replicas(4), min_available_=3)
    plan = plan_of([a_node("n1")], [job])
    assert placed(plan) == set() and "gang of 3: only 2 replica(s) fit now" in plan.verdicts["g"].reasons


def test_an_untyped_gang_stays_on_one_gpu_type():
    nodes = [a_node("a1").gpus(4), a_node("h1").gpus(4).gpu_type("H100")]
    plan = plan_of(nodes, [a_job("g").gpus(4).gang(2)])
    assert placed(plan) == set()
    assert "gang of 2: only 1 replica(s) fit now" in plan.verdicts["g"].reasons
    plan = plan_of(nodes + [a_node("h2").gpus(4).gpu_type("H100")], [a_job("g").gpus(4).gang(2)])
    assert [sorted(p.node_id for p in a.placements) for a in plan.assignments] == [["h1", "h2"]]


# ---- quota verdicts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("queues, reason", [
    ([a_queue("q").gpus(A100=2)],
     "quota: queue q holds 2 A100 GPUs; 1 more would exceed nominal 2 (no cohort to borrow from)"),
    ([a_queue("q").cohort("lab").gpus(A100=2).borrowing_limit(A100=0), a_queue("r").cohort("lab").gpus(A100=4)],
     "quota: queue q holds 2 A100 GPUs; 1 more would exceed nominal 2"),
    ([a_queue("q").cohort("lab").gpus(A100=2).borrowing_limit(A100=1), a_queue("r").cohort("lab").gpus(A100=4)],
     "quota: queue q holds 3 A100 GPUs; 1 more would exceed nominal 2 + borrowing limit 1"),
    ([a_queue("q").cohort("lab").gpus(A100=2), a_queue("r").cohort("lab").gpus(A100=1)],
     "quota: cohort lab has no idle A100 GPUs to lend to queue q (3 of 3 lent)"),
])
def test_quota_verdicts_name_the_queue_and_the_resource(queues, reason):
    pending = [a_job(f"p{i}").gpus(1).queue("q").submitted(i) for i in range(4)]
    plan = plan_of([a_node("n1")], pending, queues=queues)
    blocked = [v for v in plan.verdicts.values()]
    assert blocked and all(v.plugin == "quota" and v.code is VerdictCode.UNSCHEDULABLE for v in blocked)
    assert reason in blocked[0].reasons


def test_quota_for_a_gpu_type_the_queue_does_not_list_is_zero():
    plan = plan_of([a_node("n1").gpu_type("H100")], [a_job("p").gpus(1).queue("q")], queues=[a_queue("q").gpus(A100=4)])
    v = plan.verdicts["p"]
    assert v.code is VerdictCode.UNRESOLVABLE
    assert "quota: queue q can never hold 1 of H100 GPUs (at most 0); raise its quota or ask for less" in v.reasons


# ---- running jobs the cycle must not trip over -----------------------------------------------------
def test_a_running_job_on_a_cordoned_node_is_released_for_a_reservation_without_crashing():
    # the reservation lets running jobs end one by one, r (on the cordoned node) included
    nodes = [a_node("n1").unschedulable(), a_node("n2")]
    running = [a_job("r").gpus(4).runtime(100).running_on("n1", started=0.0),
               a_job("s").gpus(4).runtime(300).running_on("n2", started=0.0)]
    plan = plan_of(nodes, [a_job("p").gpus(8)], running, now=10.0)
    assert placed(plan) == set()
    assert plan.holds == (Hold("p", 300.0, (("n2", Resources(4)),)),)  # what r frees on n1 is of no use


def test_a_victim_on_a_cordoned_node_is_not_chosen_for_the_room_it_frees():
    nodes = [a_node("n1").unschedulable(), a_node("n2")]
    running = [a_job("r").gpus(4).running_on("n1", started=0.0), a_job("s").gpus(4).running_on("n2", started=0.0)]
    plan = plan_of(nodes, [a_job("p").gpus(8).priority(ULL)], running)
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [("s", "p")]


def test_a_gang_with_two_ranks_on_one_node_is_evicted_whole_and_counted_once():
    running = [a_job("g").gpus(2).replicas(2).running_on("n1", "n1", started=990.0),
               a_job("s").gpus(4).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1")], [a_job("p").gpus(8).priority(LC)], running)
    assert evicted(plan) == {"g", "s"}  # g frees 4 GPUs (two ranks of 2), not 8


def test_a_gang_with_two_ranks_on_one_node_is_enough_alone_when_it_frees_enough():
    running = [a_job("g").gpus(2).replicas(2).running_on("n1", "n1", started=990.0),
               a_job("s").gpus(4).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1")], [a_job("p").gpus(4).priority(LC)], running)
    assert evicted(plan) == {"g"}


# ---- preemptors keep the room they count on (nominations) -----------------------------------------
def test_the_room_a_preemptor_counts_on_is_not_given_to_a_later_job():
    # p needs 8: v's 4 and the 4 free ones; q (after p) must not take those 4, or v is evicted in vain
    p, q = a_job("p").gpus(8).priority(LC).submitted(0), a_job("q").gpus(4).priority(LC).submitted(5)
    plan = plan_of([a_node("n1")], [p, q], [a_job("v").gpus(4).running_on("n1", started=0.0)])
    assert evicted(plan) == {"v"}
    assert placed(plan) == set()
    assert nominations(plan) == (Hold("p", None, (("n1", Resources(4)),), "nomination"),)
    assert any("held for" in r for r in plan.verdicts["q"].reasons)


def test_a_nomination_is_not_lent_to_short_jobs_as_a_reservation_would_be():
    p, q = a_job("p").gpus(8).priority(LC).submitted(0), a_job("q").gpus(4).runtime(1.0).priority(LC).submitted(5)
    plan = plan_of([a_node("n1")], [p, q], [a_job("v").gpus(4).running_on("n1", started=0.0)])
    assert evicted(plan) == {"v"} and placed(plan) == set()


def test_two_preemptors_do_not_count_on_the_same_free_gpus():
    # 4 free GPUs: p1 counts on them besides v1; p2 may not count on them too (v2 would go in vain)
    pending = [a_job("p1").gpus(6).priority(LC).submitted(0), a_job("p2").gpus(6).priority(LC).submitted(5)]
    running = [a_job("v1").gpus(2).running_on("n1", started=0.0), a_job("v2").gpus(2).running_on("n1", started=0.0)]
    plan = plan_of([a_node("n1")], pending, running)
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [("v1", "p1")]
    assert nominations(plan) == (Hold("p1", None, (("n1", Resources(4)),), "nomination"),)
    assert plan.verdicts["p2"].code is VerdictCode.UNSCHEDULABLE


def test_a_second_preemptor_finds_its_own_room_beside_a_nomination():
    # p1 takes v1 and n1's 4 free GPUs; on n1 p2 could only add x1 (2): it goes to n2, evicting v2
    # (x2, younger, is given back: v2 and n2's 2 free GPUs suffice)
    nodes = [a_node("n1"), a_node("n2")]
    pending = [a_job("p1").gpus(6).priority(LC).submitted(0), a_job("p2").gpus(6).priority(LC).submitted(5)]
    running = [a_job("v1").gpus(2).running_on("n1", started=0.0), a_job("x1").gpus(2).running_on("n1", started=0.0),
               a_job("v2").gpus(4).running_on("n2", started=0.0), a_job("x2").gpus(2).running_on("n2", started=10.0)]
    plan = plan_of(nodes, pending, running)
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [("v1", "p1"), ("v2", "p2")]
    assert nominations(plan) == (Hold("p1", None, (("n1", Resources(4)),), "nomination"),
                                 Hold("p2", None, (("n2", Resources(2)),), "nomination"))


# ---- a reclaiming gang reserves quota for its gang (min_available), not for every replica -----------
def test_a_gang_reclaiming_with_min_available_does_not_make_its_queue_a_borrower():
    queues = [a_queue("q0").cohort("lab").gpus(A100=1), a_queue("q1").cohort("lab").gpus(A100=4)]
    running = [a_job("r5").gpus(3).queue("q1").running_on("n1", started=0.0),   # q1 within nominal (3 of 4)
               a_job("r1").gpus(2).queue("q0").running_on("n1", started=0.0)]   # q0 borrows 1; the pool (5) is full
    pending = [replace(a_job("p2").gpus(1).replicas(2).queue("q1"), min_available_=1),
               a_job("p3").gpus(1).queue("q0").submitted(5)]
    plan = plan_of([a_node("n1")], pending, running, queues)
    assert "r5" not in evicted(plan), plan.evictions


def test_a_single_replica_reclaim_leaves_its_queue_within_nominal():
    # the same without the gang: r1 goes for p2; q0, back within nominal, places p3 at once
    queues = [a_queue("q0").cohort("lab").gpus(A100=1), a_queue("q1").cohort("lab").gpus(A100=4)]
    running = [a_job("r5").gpus(3).queue("q1").running_on("n1", started=0.0),
               a_job("r1").gpus(2).queue("q0").running_on("n1", started=0.0)]
    pending = [a_job("p2").gpus(1).queue("q1"), a_job("p3").gpus(1).queue("q0").submitted(5)]
    plan = plan_of([a_node("n1")], pending, running, queues)
    assert [(e.job_id, e.preemptor) for e in plan.evictions] == [("r1", "p2")]
    assert placed(plan) == {"p3"}


def test_a_carried_nomination_keeps_its_quota():
    # cycle 1: a borrows b's 2 GPUs (the cohort pool of 4 is full); p of queue b reclaims them
    nodes = [a_node("n1").gpus(4), a_node("n2").gpus(1)]
    running = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0) for i in range(4)]
    first = plan_of(nodes, [a_job("p").gpus(2).queue("b")], running, TWO_TEAMS)
    assert len(first.evictions) == 2
    (hold,) = first.holds
    assert hold.quota == (("b", "A100", Resources(2, 1000, 2**30)),)
    # cycle 2 offers only a new arrival of queue b, with the hold carried: b's nominal quota is
    # promised to p, so q may not take n2's free GPU (it would make b borrow from a full pool)
    victims = {e.job_id for e in first.evictions}
    stopping = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0, preempting=f"a{i}" in victims)
                for i in range(4)]
    second = plan_of(nodes, [a_job("q").gpus(1).queue("b").submitted(9)], stopping, TWO_TEAMS, holds=first.holds)
    assert second.assignments == () and second.evictions == ()
    assert any(r.startswith("quota:") for r in second.verdicts["q"].reasons)
    # without the carried hold, q would have taken it
    assert [a.job_id for a in plan_of(nodes, [a_job("q").gpus(1).queue("b")], stopping, TWO_TEAMS).assignments] == ["q"]


def test_a_preemptor_offered_again_keeps_what_its_victims_freed():
    # cycle 1: p (queue b) reclaims b's nominal quota from a's borrowers; cycle 2 is a full one,
    # after the victims stopped: a's older job a9 comes first in the order (no fair share), yet
    # the room and the quota are p's (before, a9 took them back and p evicted again, for ever)
    nodes = [a_node("n1").gpus(4)]
    running = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0) for i in range(4)]
    fifo = PROFILES["fifo"]()
    first = plan_of(nodes, [a_job("p").gpus(2).queue("b").submitted(5)], running, TWO_TEAMS, profile=PROFILES["las"]())
    victims = {e.job_id for e in first.evictions}
    assert len(victims) == 2
    still = [a_job(f"a{i}").gpus(1).queue("a").running_on("n1", started=0.0) for i in range(4) if f"a{i}" not in victims]
    pending = [a_job("a9").gpus(2).queue("a").submitted(1), a_job("p").gpus(2).queue("b").submitted(5)]
    second = plan_of(nodes, pending, still, TWO_TEAMS, holds=first.holds, profile=fifo)
    assert placed(second) == {"p"} and second.evictions == ()
    without = plan_of(nodes, pending, still, TWO_TEAMS, profile=fifo)
    assert placed(without) == {"a9"}  # what happened before: the borrower took it back


# ---- the fast path (handover) -------------------------------------------------------------------
FULL = [a_job(f"b{i}").gpus(1).running_on("n1", started=0.0, checkpoint=100.0 * i) for i in range(4)]


@pytest.mark.parametrize(("option", "priority", "fast"), [
    ("ultra-low-latency", ULL, True), ("ultra-low-latency", LC, False),
    ("latency-critical", LC, True), ("latency-critical", ULL, True),
    ("never", ULL, False),
])
def test_handover_places_the_urgent_job_on_its_victims_at_once(option, priority, fast):
    profile = PROFILES["default"](handover_class=option)
    snap = a_snapshot(nodes=[a_node("n1").gpus(4)], pending=[a_job("u").gpus(2).priority(priority)], running=FULL,
                      now=1000.0)
    plan = schedule(snap, profile)
    assert len(plan.evictions) == 2 and all(e.handover is fast and e.preemptor == "u" for e in plan.evictions)
    if fast:
        (a,) = plan.assignments
        victims = {i for v in snap.running if v.id in evicted(plan) for _, gpus in v.placements for i in gpus}
        assert a.job_id == "u" and set(a.placements[0].gpu_indices) == victims and "u" not in plan.verdicts
    else:
        assert not plan.assignments and "preemption: waiting" in plan.verdicts["u"].reasons[-1]


def test_handover_takes_the_victims_that_lose_the_least_work():
    # b3 checkpointed last (t=300), b0 never after its start: the two freshest checkpoints go
    plan = plan_of([a_node("n1").gpus(4)], [a_job("u").gpus(2).priority(ULL)], FULL)
    assert evicted(plan) == {"b2", "b3"}


def test_handover_also_takes_jobs_already_stopping_and_nothing_is_placed_twice():
    running = [a_job("s").gpus(2).running_on("n1", started=0.0, preempting=True), *FULL[2:]]
    pending = [a_job("u").gpus(2).priority(ULL), a_job("v").gpus(2).priority(ULL).submitted(5.0)]
    plan = plan_of([a_node("n1").gpus(4)], pending, running)
    handed = {e.job_id: e.preemptor for e in plan.evictions if e.handover}
    assert placed(plan) == {"u", "v"} and set(handed) == {"s", "b2", "b3"}
    gpus = [g for a in plan.assignments for p in a.placements for g in p.gpu_indices]
    assert sorted(gpus) == [0, 1, 2, 3]
