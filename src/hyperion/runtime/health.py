"""Node health: a node whose agent has been silent for ``node_timeout`` seconds is not ready;
its tasks are ended (and their jobs retried or failed per their spec) by ``AgentHub.node_lost``."""

from __future__ import annotations

import asyncio

from hyperion.api.agents import AgentHub
from hyperion.model import NodeState


class HealthMonitor:
    def __init__(self, hub: AgentHub, node_timeout: float = 10.0, interval: float = 0.5) -> None:
        self.hub = hub
        self.node_timeout = node_timeout
        self.interval = interval

    def check(self, now: float) -> list[str]:
        lost = []
        for node in list(self.hub.state.nodes.values()):
            if node.state is not NodeState.READY:
                continue
            seen = self.hub.last_seen.setdefault(node.id, now)  # after a restart: a grace period
            if now - seen > self.node_timeout:
                self.hub.node_lost(node.id)
                lost.append(node.id)
        return lost

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            self.check(loop.time())
