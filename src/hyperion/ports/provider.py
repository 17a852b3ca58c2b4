"""The NodeProvider port: where nodes come from (local processes, a cloud, Slurm, Ray...).

Narrow and idempotent, after Ray autoscaler v2's instance manager: ``launch`` and ``terminate``
take a request id and doing the same request twice does nothing more; errors are not raised into
the caller's loop but collected and polled with ``drain_errors``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Capability(enum.Flag):
    NONE = 0
    SPOT = enum.auto()
    MULTI_NODE = enum.auto()
    GPU_DISCOVERY = enum.auto()
    LOCAL = enum.auto()


@dataclass(frozen=True, slots=True)
class ProviderNode:
    id: str  # the provider's instance id; the agent's node id
    node_type: str
    state: str  # "launching" | "running" | "terminated"
    request_id: str = ""
    address: str = ""
    zone: str = ""  # where it runs (an availability zone), when the provider says


@dataclass(frozen=True, slots=True)
class ProviderError:
    request_id: str
    message: str


@runtime_checkable
class NodeProvider(Protocol):
    name: str
    capabilities: Capability

    def offers(self) -> list[dict]:
        """Node types this provider can launch, with their resources and $/hour."""
        ...

    async def list_nodes(self) -> list[ProviderNode]: ...

    async def launch(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]: ...

    async def terminate(self, ids: Sequence[str], request_id: str) -> None: ...

    def drain_errors(self) -> list[ProviderError]: ...
