"""``core.federation.forecast``: same hour yesterday and the weekly profile."""

from __future__ import annotations

import pytest

from hyperion.core.federation.forecast import same_hour_yesterday, weekly_profile


def test_same_hour_yesterday_repeats_the_last_day() -> None:
    history = [float(h) for h in range(48)]  # value = hour index; the last is hour 47
    assert same_hour_yesterday(history, 3) == [24.0, 25.0, 26.0]
    assert same_hour_yesterday(history, 26)[24:] == [24.0, 25.0]


def test_short_or_empty_history() -> None:
    assert same_hour_yesterday([3.0, 5.0], 3) == [5.0, 5.0, 5.0]
    assert same_hour_yesterday([], 3) == []
    assert weekly_profile([], 3) == []
    day = [float(h) for h in range(30)]
    assert weekly_profile(day, 2) == same_hour_yesterday(day, 2)  # under a week: yesterday


def test_weekly_profile_averages_the_same_hour_of_the_last_weeks() -> None:
    week = 168
    # three weeks: values 0 in week 1, 10 in week 2, 20 in week 3, plus the hour of the week
    history = [10.0 * w + h for w in range(3) for h in range(week)]
    assert weekly_profile(history, 2, weeks=2) == [15.0 + 0, 15.0 + 1]  # mean of weeks 2 and 3
    assert weekly_profile(history, 2, weeks=4) == [10.0, 11.0]          # only three weeks exist
    assert weekly_profile(history, week + 1, weeks=1)[week] == 20.0     # a week on: repeats
    with pytest.raises(ValueError, match="weeks"):
        weekly_profile(history, 1, weeks=0)
