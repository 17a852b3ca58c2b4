"""Shortest job first: inside a queue, the job with the shortest runtime estimate goes first
(jobs without an estimate last). With exact runtimes (the simulator's oracle) it is the classic
bound on average completion time for non-preemptive scheduling."""

from __future__ import annotations

from hyperion.core.framework import plugin
from hyperion.model import JobView, Snapshot

INF = float("inf")


@plugin("shortest-first")
class ShortestFirst:
    def sort_key(self, job: JobView, snapshot: Snapshot) -> tuple:
        return (INF if job.runtime_estimate_s is None else job.runtime_estimate_s,)
