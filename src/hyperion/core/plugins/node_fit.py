"""Filter: the node is schedulable and has the requested GPU type.

The framework's node index already offers only such nodes, so on a consistent snapshot this
never rejects; it stays as a guard (two comparisons per candidate) against a driver that passes a
stale ``node_index``, which would otherwise place work on a cordoned or wrong-type node. Room for
one replica is checked by the framework itself, since placing a replica always takes its resources.
"""

from __future__ import annotations

from hyperion.core.framework import plugin
from hyperion.model import JobView, NodeView, Snapshot


@plugin("node-fit")
class NodeFit:
    def filter(self, job: JobView, node: NodeView, snapshot: Snapshot) -> str | None:
        if not node.schedulable:
            return "node not ready or cordoned"
        if job.gpu_type and node.gpu_type != job.gpu_type:
            return f"gpu type {node.gpu_type or 'none'} is not {job.gpu_type}"
        return None
