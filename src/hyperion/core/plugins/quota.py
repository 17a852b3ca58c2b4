"""Admission by quota: a replica may go to nodes of a GPU type only while its queue stays within
its nominal quota plus what it may borrow from its cohort (``core.ledger``)."""

from __future__ import annotations

from hyperion.core.framework import plugin
from hyperion.model import JobView, Resources


@plugin("quota")
class Quota:
    def admit(self, job: JobView, replica: Resources, gpu_type: str, cycle) -> str | None:
        return cycle.ledger.admit(job.queue, replica, gpu_type)
