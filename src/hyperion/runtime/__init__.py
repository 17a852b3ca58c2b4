"""The live control plane: snapshotter, scheduler loop, actuator, node health, and the process
that assembles them with the store and the API servers (``python -m hyperion.runtime``)."""
