"""Node health: a node whose agent has been silent for ``node_timeout`` seconds is not ready;
its tasks are ended (and their jobs retried or failed per their spec) by ``AgentHub.node_lost``.

After a control-plane restart every node starts not ready (nobody has heard from it yet); its
agent has ``node_timeout`` seconds to reconnect before the tasks it held are ended."""

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
        state = self.hub.state
        for node in list(state.nodes.values()):
            if node.id in self.hub.sessions and node.state is not NodeState.READY:
                continue
            if node.state is not NodeState.READY and not state.node_tasks.get(node.id):
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
