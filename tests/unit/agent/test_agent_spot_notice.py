"""The agent's spot interruption notice: off by default; once the poller sees a notice, the node's
condition says so (unhealthy: no new work; ``spot_notice_at``: when EC2 acts), sent at once and
in every later Hello."""

from __future__ import annotations

import asyncio

from hyperion.agent.inventory import discover
from hyperion.agent.main import Agent, parse_args
from hyperion.agent.spot_notice import SpotNotice


class Poller:
    def __init__(self, *answers: SpotNotice | None) -> None:
        self.answers = list(answers)
        self.polls = 0

    async def poll(self) -> SpotNotice | None:
        self.polls += 1
        return self.answers.pop(0)


def test_a_notice_becomes_the_nodes_condition(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    base = ["--control-plane", "cp.example:7070", "--token-file", str(token), "--node-id", "i-1",
            "--data-dir", str(tmp_path / "data"), "--gpus", "0"]
    assert parse_args(base).spot_notice_url == ""  # off unless asked
    args = parse_args([*base, "--spot-notice-url", "http://127.0.0.1:1/latest/meta-data/spot/instance-action",
                       "--spot-notice-interval", "0.01"])
    agent = Agent(args, discover("i-1", gpus=0))
    assert agent._condition().healthy and agent._condition().spot_notice_at == 0
    agent.outbox.open()
    agent.outbox.ready = True
    poller = Poller(None, None, SpotNotice("terminate", 1_800_000_000.0))
    asyncio.run(agent._watch_spot_notice(poller))  # type: ignore[arg-type]
    assert poller.polls == 3
    [sent] = [m for m in agent.outbox._queue if m.WhichOneof("kind") == "condition"]
    assert not sent.condition.healthy and sent.condition.spot_notice_at == 1_800_000_000.0
    assert "spot interruption notice: EC2 will terminate" in sent.condition.reason
    assert agent._condition().spot_notice_at == 1_800_000_000.0  # what every later Hello carries
