"""The node agent, ``hyperiond``: runs tasks on one machine for the control plane.

It dials the control plane (``AgentControl.Connect``, proto/hyperion/v1/agent.proto), reports
its inventory and tasks, runs the tasks it is told to start, ships their logs and the node's
telemetry, and keeps durable task records so a restart never starts a task twice.

Modules: ``main`` (command line, wiring), ``session`` (the stream, reconnects), ``tasks``
(spawn, reap, stop), ``records`` (durable task journal), ``logship`` (log chunks),
``telemetry`` (psutil/NVML readings), ``inventory`` (GPU/CPU/memory discovery), ``standby``
(warm workers and the freezer: the fast path for urgent tasks).
"""

import os as _os

# Tasks are spawned with fork() (their PR_SET_PDEATHSIG is set between fork and exec); gRPC's
# fork handlers are of no use to them and log a line for every spawn. Read when grpc is imported.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
