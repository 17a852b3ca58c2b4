"""The trace-driven simulator: replays real job traces through the same ``core.schedule`` and
plugins the live control plane runs, on virtual time, and reports what happened.

Modules: ``traces/`` (one reader per trace format), ``cluster`` (cluster and workload model from
YAML), ``engine`` (the discrete-event loop), ``world`` (the simulated cluster: builds snapshots,
applies plans), ``metrics`` (what is measured, see docs/simulator.md), ``energy`` and ``carbon``
(GPU power and grid intensity), ``policies`` (the profiles compared), ``report`` (table, plots,
HTML), ``experiment`` (runs policies over a trace).
"""
