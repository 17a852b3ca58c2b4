"""Frozen value types shared by every layer: resources, jobs, nodes, teams, snapshots and plans.

Nothing here performs I/O, reads a clock or draws random numbers.
"""

from hyperion.model.job import (
    Framework,
    Job,
    JobSpec,
    Phase,
    Placement,
    Priority,
    TransitionError,
    check_transition,
)
from hyperion.model.node import Gpu, GpuMetrics, Node, NodeMetrics, NodeState
from hyperion.model.plan import Assign, Evict, Hold, Plan, Verdict, VerdictCode
from hyperion.model.queue import QueueSpec
from hyperion.model.resources import Resources
from hyperion.model.snapshot import JobView, NodeView, RunningView, Snapshot
from hyperion.model.team import Team

__all__ = [
    "Assign", "Evict", "Framework", "Hold", "Gpu", "GpuMetrics", "Job", "JobSpec", "JobView", "Node", "NodeMetrics",
    "NodeState", "NodeView", "Phase", "Placement", "Plan", "Priority", "QueueSpec", "Resources", "RunningView", "Snapshot", "Team",
    "TransitionError", "Verdict", "VerdictCode", "check_transition",
]
