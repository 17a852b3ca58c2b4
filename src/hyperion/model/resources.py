"""Resource quantities: GPUs, CPUs (millicores) and memory (bytes).

Integers throughout, so sums and comparisons are exact (no float drift in fit checks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resources:
    gpus: int = 0
    cpus_milli: int = 0
    memory: int = 0  # bytes

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.gpus + other.gpus, self.cpus_milli + other.cpus_milli, self.memory + other.memory)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.gpus - other.gpus, self.cpus_milli - other.cpus_milli, self.memory - other.memory)

    def scaled(self, n: int) -> Resources:
        return Resources(self.gpus * n, self.cpus_milli * n, self.memory * n)

    def fits_in(self, capacity: Resources) -> bool:
        return self.gpus <= capacity.gpus and self.cpus_milli <= capacity.cpus_milli and self.memory <= capacity.memory

    def shortfall(self, capacity: Resources) -> list[str]:
        """Names of the resources this request needs more of than ``capacity`` has."""
        out = []
        if self.gpus > capacity.gpus:
            out.append("gpus")
        if self.cpus_milli > capacity.cpus_milli:
            out.append("cpus")
        if self.memory > capacity.memory:
            out.append("memory")
        return out


ZERO = Resources()
