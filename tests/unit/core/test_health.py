"""Node health from GPU readings: cordon when too hot, resume only after enough cool readings,
and sticky ECC/XID error conditions counted from each GPU's first reading.

Each case plays a list of readings against a fresh ``NodeHealth()`` and checks every verdict."""

from __future__ import annotations

import pytest

from hyperion.core.health import HealthPolicy, NodeHealth, assess, changed
from hyperion.model import GpuMetrics

POLICY = HealthPolicy()  # limit 90 C, resume at or below 80 C for 3 readings


def gpu(index: int = 0, temp: float = 50.0, ecc: int = 0, xid: int = 0, last: int = 0) -> GpuMetrics:
    return GpuMetrics(index=index, temperature_c=temp, ecc_errors=ecc, xid_errors=xid, last_xid=last)


def play(readings: list[tuple[GpuMetrics, ...]], policy: HealthPolicy = POLICY) -> list[NodeHealth]:
    health, out = NodeHealth(), []
    for gpus in readings:
        health = assess(health, gpus, policy)
        out.append(health)
    return out


# ---- temperature: cordon at or over the limit ------------------------------------------------
@pytest.mark.parametrize("temps, healthy, reason", [
    ((89.9,), True, ""),
    ((90.0,), False, "GPU 0 at 90.0 C (limit 90.0 C)"),
    ((93.0,), False, "GPU 0 at 93.0 C (limit 90.0 C)"),
    ((70.0, 95.5, 91.0, 60.0), False, "GPU 1 at 95.5 C (limit 90.0 C)"),  # names the hottest
    ((92.0, 92.0), False, "GPU 0 at 92.0 C (limit 90.0 C)"),             # a tie: the lowest index
    ((), True, ""),                                                       # no GPUs: nothing to judge
])
def test_a_gpu_at_or_over_the_limit_makes_the_node_unhealthy(temps, healthy, reason):
    [health] = play([tuple(gpu(i, t) for i, t in enumerate(temps))])
    assert (health.healthy, health.reason, health.drain, health.cool) == (healthy, reason, False, 0)


@pytest.mark.parametrize("drain_on_temperature", [False, True])
def test_too_hot_drains_only_when_the_policy_says_so(drain_on_temperature):
    [health] = play([(gpu(0, 99.0),)], HealthPolicy(drain_on_temperature=drain_on_temperature))
    assert not health.healthy and health.drain is drain_on_temperature


# ---- temperature: hysteresis -----------------------------------------------------------------
# each step is the temperatures of GPUs 0 and 1; expected: healthy after each step
@pytest.mark.parametrize("steps, expected", [
    ([(95, 50), (80, 50), (80, 50), (80, 50)], [False, False, False, True]),
    ([(95, 50), (70, 70), (70, 70), (70, 70), (70, 70)], [False, False, False, True, True]),
    # a warm reading (above resume, below the limit) resets the count
    ([(95, 50), (70, 50), (70, 50), (85, 50), (70, 50), (70, 50), (70, 50)],
     [False, False, False, False, False, False, True]),
    # hot again while cooling: starts over
    ([(95, 50), (70, 50), (70, 50), (91, 50), (70, 50), (70, 50), (70, 50)],
     [False, False, False, False, False, False, True]),
    # every GPU must be cool: GPU 1 warm keeps the node cordoned
    ([(50, 95), (50, 85), (50, 85), (50, 85), (50, 80), (50, 80), (50, 80)],
     [False, False, False, False, False, False, True]),
    # under the limit all along, however warm: never cordoned
    ([(89, 89), (85, 50), (89.9, 50)], [True, True, True]),
])
def test_resuming_needs_consecutive_cool_readings(steps, expected):
    verdicts = play([(gpu(0, a), gpu(1, b)) for a, b in steps])
    assert [h.healthy for h in verdicts] == expected
    assert all(h.cool == 0 and not h.reason for h in verdicts if h.healthy)


@pytest.mark.parametrize("cool_readings, steps_to_resume", [(1, 1), (2, 2), (5, 5)])
def test_the_cool_count_is_the_policys(cool_readings, steps_to_resume):
    verdicts = play([(gpu(0, 95),)] + [(gpu(0, 60),)] * 6, HealthPolicy(cool_readings=cool_readings))
    assert [h.cool for h in verdicts[1:steps_to_resume]] == list(range(1, steps_to_resume))
    assert [h.healthy for h in verdicts[1:]] == [i >= steps_to_resume for i in range(1, 7)]


def test_the_reason_names_the_reading_that_crossed_the_limit_while_the_node_stays_hot():
    first, hotter, cooling = play([(gpu(0, 91), gpu(1, 60)), (gpu(0, 97), gpu(1, 98)), (gpu(0, 70), gpu(1, 70))])
    assert first.reason == hotter.reason == cooling.reason == "GPU 0 at 91.0 C (limit 90.0 C)"
    assert hotter is first  # nothing the caller could see changed, so the same object comes back
    assert cooling.cool == 1 and not changed(first, cooling)


def test_a_reading_without_gpus_counts_as_cool():
    verdicts = play([(gpu(0, 95),), (), (), ()])
    assert [h.healthy for h in verdicts] == [False, False, False, True]


# ---- errors: baseline and stickiness ---------------------------------------------------------
@pytest.mark.parametrize("readings, healthy", [
    # counts a GPU already had when first seen are not news
    ([(gpu(0, ecc=5, xid=2, last=13),), (gpu(0, ecc=5, xid=2, last=13),)], [True, True]),
    ([(gpu(0, ecc=5),), (gpu(0, ecc=6),)], [True, False]),
    ([(gpu(0),), (gpu(0, xid=1, last=79),)], [True, False]),
    # a GPU that appears later gets its own baseline when first seen ...
    ([(gpu(0),), (gpu(0), gpu(1, ecc=3)), (gpu(0), gpu(1, ecc=3))], [True, True, True]),
    # ... and its errors count from there
    ([(gpu(0),), (gpu(0), gpu(1, ecc=3)), (gpu(0), gpu(1, ecc=4))], [True, True, False]),
    # a counter that went down (driver reloaded) lowers the baseline: errors after it still count
    ([(gpu(0, ecc=5),), (gpu(0, ecc=0),), (gpu(0, ecc=1),)], [True, True, False]),
    # a GPU missing from one reading keeps its baseline
    ([(gpu(0, ecc=2), gpu(1)), (gpu(1),), (gpu(0, ecc=2), gpu(1))], [True, True, True]),
])
def test_errors_count_from_each_gpus_first_reading(readings, healthy):
    assert [h.healthy for h in play(readings)] == healthy


def test_the_error_reason_names_the_gpu_the_counts_the_xid_and_the_fix():
    _, health = play([(gpu(0), gpu(3, ecc=1)), (gpu(0), gpu(3, ecc=4, xid=2, last=79))])
    assert health.reason == health.errors == (
        "GPU 3: 3 new uncorrected ECC errors (4 in all), 2 critical XID events (last XID 79); "
        "reset the GPU (nvidia-smi -r) and restart hyperiond to clear this")


def test_errors_on_several_gpus_are_all_named():
    _, health = play([(gpu(0), gpu(1)), (gpu(0, xid=1, last=48), gpu(1, ecc=1))])
    assert health.reason.startswith("GPU 0: 1 critical XID event (last XID 48); GPU 1: 1 new uncorrected ECC error")
    assert health.reason.endswith("reset the GPUs (nvidia-smi -r) and restart hyperiond to clear this")


def test_errors_are_sticky_until_a_new_health_starts_over():
    verdicts = play([(gpu(0),), (gpu(0, xid=1, last=79),), (gpu(0, xid=1, last=79),), (gpu(0, ecc=0),)]
                    + [(gpu(0, temp=30),)] * 5)
    assert [h.healthy for h in verdicts] == [True] + [False] * 8
    assert len({h.reason for h in verdicts[1:]}) == 1 and verdicts[-1] is verdicts[1]
    fresh = assess(NodeHealth(), (gpu(0, xid=1, last=79),), POLICY)  # the agent restarted after a GPU reset
    assert fresh.healthy


@pytest.mark.parametrize("drain_on_errors", [True, False])
def test_errors_drain_as_the_policy_says(drain_on_errors):
    _, health = play([(gpu(0),), (gpu(0, ecc=1),)], HealthPolicy(drain_on_errors=drain_on_errors))
    assert not health.healthy and health.drain is drain_on_errors


# ---- both conditions ---------------------------------------------------------------------------
@pytest.mark.parametrize("on_errors, on_temperature, drain", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_errors_come_first_and_either_condition_may_drain(on_errors, on_temperature, drain):
    policy = HealthPolicy(drain_on_errors=on_errors, drain_on_temperature=on_temperature)
    _, health = play([(gpu(0),), (gpu(0, temp=95, ecc=1),)], policy)
    assert health.reason == health.errors + "; GPU 0 at 95.0 C (limit 90.0 C)"
    assert health.drain is drain


def test_cooling_down_leaves_only_the_errors():
    verdicts = play([(gpu(0),), (gpu(0, temp=95, ecc=1),)] + [(gpu(0, temp=60, ecc=1),)] * 3,
                    HealthPolicy(drain_on_errors=False, drain_on_temperature=True))
    assert verdicts[-1].reason == verdicts[-1].errors and not verdicts[-1].healthy
    assert [h.drain for h in verdicts] == [False, True, True, True, False]


# ---- identity and change ---------------------------------------------------------------------
def test_nothing_changed_returns_the_same_object():
    start = NodeHealth()
    assert assess(start, (), POLICY) is start
    first = assess(start, (gpu(0, temp=60), gpu(1, temp=70)), POLICY)
    assert first is not start and first.baseline == ((0, 0, 0), (1, 0, 0))
    assert assess(first, (gpu(0, temp=65), gpu(1, temp=75)), POLICY) is first


@pytest.mark.parametrize("a, b, differ", [
    (NodeHealth(), NodeHealth(baseline=((0, 1, 0),)), False),
    (NodeHealth(False, "hot", cool=1), NodeHealth(False, "hot", cool=2), False),
    (NodeHealth(), NodeHealth(False, "hot"), True),
    (NodeHealth(False, "hot"), NodeHealth(False, "hot", drain=True), True),
    (NodeHealth(False, "hot"), NodeHealth(False, "hotter"), True),
])
def test_changed_compares_what_the_control_plane_sees(a, b, differ):
    assert changed(a, b) is differ


# ---- policy validation -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"resume_gpu_temperature_c": 90.0}, r"resume_gpu_temperature_c \(90.0\) must be below max_gpu_temperature_c \(90.0\)"),
    ({"max_gpu_temperature_c": 75.0}, r"resume_gpu_temperature_c \(80.0\) must be below max_gpu_temperature_c \(75.0\)"),
    ({"cool_readings": 0}, r"cool_readings must be at least 1 .* got 0"),
    ({"cool_readings": -2}, r"cool_readings must be at least 1 .* got -2"),
])
def test_a_policy_that_could_not_work_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HealthPolicy(**kwargs)
