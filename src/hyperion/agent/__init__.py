"""The node agent, ``hyperiond``: runs tasks on one machine for the control plane.

It dials the control plane (``AgentControl.Connect``, proto/hyperion/v1/agent.proto), reports
its inventory and tasks, runs the tasks it is told to start, ships their logs and the node's
telemetry, and keeps durable task records so a restart never starts a task twice.

Modules: ``main`` (command line, wiring), ``session`` (the stream, reconnects), ``tasks``
(spawn, reap, stop), ``records`` (durable task journal), ``logship`` (log chunks),
``telemetry`` (psutil/NVML readings), ``inventory`` (GPU/CPU/memory discovery).
"""
