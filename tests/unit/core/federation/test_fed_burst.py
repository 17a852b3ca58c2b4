"""``burst_reason``: when a job waiting in a queueing member's queue is due to burst."""

from __future__ import annotations

import pytest

from hyperion.core.federation.burst import burst_reason

NOW = 1_000_000.0


@pytest.mark.parametrize("wait, waited, deadline, runtime, due", [
    (600.0, 0.0, None, None, False),  # within burst_after
    (601.0, 0.0, None, None, True),  # longer
    (None, 599.0, None, None, False),  # unknown, not waited long enough
    (None, 600.0, None, None, True),  # unknown, waited burst_after
    (300.0, 0.0, NOW + 3600 + 200, 3600.0, True),  # short wait, but it would cost the deadline
    (300.0, 0.0, NOW + 3600 + 300, 3600.0, False),  # ends exactly at the deadline
    (300.0, 0.0, NOW + 3000, 3600.0, False),  # misses it even starting now: no burst for it
    (300.0, 0.0, NOW + 9000, None, False),  # no runtime estimate: the deadline cannot be checked
])
def test_burst_reason(wait, waited, deadline, runtime, due) -> None:
    why = burst_reason(wait, waited, 600.0, NOW, deadline, runtime)
    assert (why is not None) is due
    if due and deadline is not None:
        assert "would miss its deadline by" in why
