"""Built-in scheduling plugins, one file each; importing this package registers them."""

from hyperion.core.plugins import node_fit, priority_fifo  # noqa: F401
