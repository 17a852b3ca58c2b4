"""Built-in federation plugins, one file each; importing this package registers them.

Hard constraints (``filter``): fit, placement, residency, max-price, deadline, budget.
Scores (``penalty``, lower is better): cost, carbon, egress, latency.
"""

from hyperion.core.federation.plugins import (  # noqa: F401
    budget,
    carbon,
    cost,
    deadline,
    egress,
    fit,
    latency,
    max_price,
    placement,
    residency,
)
