"""The job phase table: ``check_transition`` allows exactly the edges in ``TRANSITIONS`` (plus
staying put), and terminal phases have no way out."""

from __future__ import annotations

import itertools

import pytest

from hyperion.model import Phase, TransitionError, check_transition
from hyperion.model.job import TERMINAL, TRANSITIONS

# The table as the lifecycle documents it, written out independently: a change to TRANSITIONS
# must be deliberate enough to change this too.
EXPECTED_EDGES = {
    (Phase.PENDING, Phase.SCHEDULED), (Phase.PENDING, Phase.CANCELLED), (Phase.PENDING, Phase.FAILED),
    (Phase.SCHEDULED, Phase.RUNNING), (Phase.SCHEDULED, Phase.PENDING), (Phase.SCHEDULED, Phase.PREEMPTED),
    (Phase.SCHEDULED, Phase.SUCCEEDED), (Phase.SCHEDULED, Phase.FAILED), (Phase.SCHEDULED, Phase.CANCELLED),
    (Phase.RUNNING, Phase.SUCCEEDED), (Phase.RUNNING, Phase.FAILED), (Phase.RUNNING, Phase.CANCELLED),
    (Phase.RUNNING, Phase.PREEMPTED), (Phase.RUNNING, Phase.PENDING),
    (Phase.PREEMPTED, Phase.PENDING), (Phase.PREEMPTED, Phase.CANCELLED), (Phase.PREEMPTED, Phase.FAILED),
}
PAIRS = list(itertools.product(Phase, Phase))


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_check_transition_allows_exactly_the_table(old: Phase, new: Phase):
    allowed = old is new or new in TRANSITIONS[old]
    if allowed:
        check_transition(old, new)
    else:
        with pytest.raises(TransitionError, match=f"job phase {old.value} -> {new.value} is not allowed"):
            check_transition(old, new)


def test_table_is_the_documented_one():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == EXPECTED_EDGES


def test_every_phase_has_a_row_and_no_self_loops():
    assert set(TRANSITIONS) == set(Phase)
    assert all(p not in TRANSITIONS[p] for p in Phase)


@pytest.mark.parametrize("phase", sorted(TERMINAL, key=lambda p: p.value), ids=lambda p: p.value)
def test_terminal_phases_have_no_exits(phase: Phase):
    assert phase.terminal
    assert TRANSITIONS[phase] == frozenset()
    for other in Phase:
        if other is not phase:
            with pytest.raises(TransitionError):
                check_transition(phase, other)


def test_terminal_is_exactly_succeeded_failed_cancelled():
    assert {p for p in Phase if p.terminal} == {Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED}


def test_every_phase_can_reach_a_terminal_phase():
    for start in Phase:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, f"{start.value} can never finish"


def test_transition_error_is_a_value_error():
    assert issubclass(TransitionError, ValueError)
