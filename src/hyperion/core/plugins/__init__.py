"""Built-in scheduling plugins, one file each; importing this package registers them."""

from hyperion.core.plugins import backfill, fair_share, node_fit, preemption, priority_fifo, quota  # noqa: F401
