"""Built-in scheduling plugins, one file each; importing this package registers them."""

from hyperion.core.plugins import (  # noqa: F401
    attained_service,
    backfill,
    budget,
    fair_share,
    federation,
    node_fit,
    preemption,
    priority_fifo,
    quota,
    shortest_first,
)
