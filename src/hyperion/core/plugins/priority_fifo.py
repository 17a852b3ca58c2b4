"""Queue order: higher priority class first, then higher integer priority (the framework then
orders by submission time, oldest first)."""

from __future__ import annotations

from hyperion.core.framework import plugin
from hyperion.model import JobView, Snapshot


@plugin("priority-fifo")
class PriorityFifo:
    def sort_key(self, job: JobView, snapshot: Snapshot) -> tuple:
        return (-int(job.priority), -job.priority_value)
