"""Idle GPU reclaim, the pure part: policies, low samples, the window."""

from __future__ import annotations

from hyperion.core.idle import IdlePolicy, due, follow, is_low, policy_for

P = IdlePolicy(5.0, 60.0)


def test_the_jobs_policy_wins_over_its_teams() -> None:
    assert policy_for(10.0, 30.0, 5.0, 600.0) == IdlePolicy(10.0, 30.0)
    assert policy_for(None, None, 5.0, 600.0) == IdlePolicy(5.0, 600.0)
    assert policy_for(None, None, None, None) is None


def test_low_means_every_held_gpu_reads_below_the_threshold() -> None:
    assert is_low([0, 1], {0: 1.0, 1: 4.9, 2: 99.0}, P)
    assert not is_low([0, 1], {0: 1.0, 1: 5.0}, P)
    assert not is_low([0, 1], {0: 1.0}, P)  # no reading for GPU 1: not idle
    assert not is_low([], {0: 0.0}, P)


def test_the_window_starts_at_the_first_low_sample_and_any_busy_sample_resets_it() -> None:
    since = None
    for t, low in ((0, True), (30, True), (50, False), (55, True), (100, True)):
        since = follow(since, low, t)
    assert since == 55
    assert not due(since, P, 114) and due(since, P, 115)
    assert not due(None, P, 1e9)
