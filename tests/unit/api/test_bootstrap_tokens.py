"""Short-lived bootstrap tokens (``api.bootstrap``): minted per launch and kept only as digests,
consumed at the first Hello, then admitting only that node's reconnects; expired, used or unknown
tokens are refused with the reason; the records survive a restart; and the agent channel accepts
them beside the agent token (spot notices from an agent reach the autoscaler's hook)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api._generated.hyperion.v1 import agent_pb2 as apb
from hyperion.api.agents import AgentHub
from hyperion.api.bootstrap import PREFIX, TOKEN_PREFIX, BootstrapRefused, BootstrapTokens
from hyperion.api.logs import LogStore
from hyperion.api.service import ControlService
from hyperion.providers.aws import render_user_data
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_node
from hyperion.testing.clock import ManualClock


@pytest.fixture
def state() -> ClusterState:
    return ClusterState(MemoryStore())


def test_a_token_is_stored_only_as_its_digest_with_an_expiry(state: ClusterState) -> None:
    tokens = BootstrapTokens(state, ttl_s=900)
    token = tokens.mint(1000.0, "pool gpu")
    assert token.startswith(TOKEN_PREFIX) and token != tokens.mint(1000.0)
    render_user_data("cp:1", token, node_labels={})  # a token the aws provider accepts
    [(name, record)] = [r for r in state.records(PREFIX) if r[1]["digest"] == auth.digest(token)]
    assert name == PREFIX + auth.digest(token)
    assert (record["expires_at"], record["purpose"], record["node_id"]) == (1900.0, "pool gpu", "")
    assert token not in json.dumps(state.records(PREFIX))


def test_the_first_hello_consumes_it_and_only_that_node_may_reconnect(state: ClusterState) -> None:
    tokens = BootstrapTokens(state)
    token = tokens.mint(0.0)
    used = tokens.redeem(token, "i-1", 10.0)
    assert (used.node_id, used.used_at) == ("i-1", 10.0)
    assert tokens.redeem(token, "i-1", 5000.0).node_id == "i-1"  # its own reconnect, even after the expiry
    with pytest.raises(BootstrapRefused, match=r"already used \(by node i-1\)"):
        tokens.redeem(token, "i-2", 11.0)


@pytest.mark.parametrize(("now", "ok"), [(899.0, True), (900.0, True), (900.5, False), (10_000.0, False)])
def test_an_unused_token_expires(state: ClusterState, now: float, ok: bool) -> None:
    tokens = BootstrapTokens(state, ttl_s=900)
    token = tokens.mint(0.0)
    if ok:
        assert tokens.redeem(token, "i-1", now).node_id == "i-1"
    else:
        with pytest.raises(BootstrapRefused, match="expired"):
            tokens.redeem(token, "i-1", now)
        assert tokens.records[auth.digest(token)].node_id == ""  # not consumed


def test_unknown_tokens_are_refused_like_any_bad_token(state: ClusterState) -> None:
    tokens = BootstrapTokens(state)
    assert not tokens.known("hb1.never-minted")
    with pytest.raises(BootstrapRefused, match="invalid agent token"):
        tokens.redeem("hb1.never-minted", "i-1", 0.0)


def test_records_survive_a_restart_and_go_with_their_node(state: ClusterState) -> None:
    tokens = BootstrapTokens(state)
    token, other = tokens.mint(0.0), tokens.mint(0.0)
    tokens.redeem(token, "i-1", 1.0)
    again = BootstrapTokens(state)  # a restarted control plane
    assert again.redeem(token, "i-1", 2.0).node_id == "i-1" and again.known(other)
    with pytest.raises(BootstrapRefused, match="already used"):
        again.redeem(token, "i-9", 2.0)
    assert again.revoke_node("i-1") == 1 and not again.known(token)
    assert not BootstrapTokens(state).known(token)


def test_expired_unused_records_are_pruned_an_hour_after_expiry(state: ClusterState) -> None:
    tokens = BootstrapTokens(state, ttl_s=10)
    old = tokens.mint(0.0)
    tokens.mint(10.0 + 3600.0)  # not yet
    assert tokens.known(old)
    tokens.mint(10.0 + 3601.0)
    assert not tokens.known(old) and len(state.records(PREFIX)) == 2


# ---- the agent channel ---------------------------------------------------------------------------------
class Aborted(Exception):
    pass


class Context:
    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.aborted: tuple | None = None

    def invocation_metadata(self):
        return self.metadata

    async def abort(self, code, details):
        self.aborted = (code, details)
        raise Aborted(details)


async def hello_stream(node_id: str):
    yield apb.AgentMessage(hello=apb.Hello(node_id=node_id, hostname=node_id, cpus_milli=1000, memory_mb=1024))


@pytest.fixture
def hub(tmp_path: Path) -> AgentHub:
    clock = ManualClock()
    service = ControlService(ClusterState(MemoryStore()), clock, LogStore(tmp_path / "logs"), "admin-token")
    return AgentHub(service, "the-agent-token")


async def connect(hub: AgentHub, token: str, node_id: str) -> Context:
    """Connect until the Welcome (or the refusal)."""
    ctx = Context(token)
    stream = hub.Connect(hello_stream(node_id), ctx)
    try:
        first = await anext(stream)
        assert first.WhichOneof("kind") == "welcome"
    except Aborted:
        pass
    finally:
        await stream.aclose()
    return ctx


def test_hello_with_a_bootstrap_token_joins_once(hub: AgentHub) -> None:
    async def body() -> None:
        token = hub.bootstrap.mint(hub.service.clock.now(), "pool gpu")
        assert (await connect(hub, token, "i-1")).aborted is None
        assert "i-1" in hub.state.nodes
        assert (await connect(hub, token, "i-1")).aborted is None  # its reconnect
        refused = await connect(hub, token, "i-2")
        assert refused.aborted is not None and "already used" in refused.aborted[1] and "i-2" not in hub.state.nodes
        assert (await connect(hub, "the-agent-token", "static-1")).aborted is None  # the agent token as ever
        bad = await connect(hub, "hb1.not-minted-here", "i-3")
        assert bad.aborted is not None and bad.aborted[1] == "invalid agent token"

    asyncio.run(body())


async def welcome(hub: AgentHub, token: str, node_id: str) -> apb.Welcome:
    stream = hub.Connect(hello_stream(node_id), Context(token))
    try:
        first = await anext(stream)
    finally:
        await stream.aclose()
    return first.welcome


def test_a_bootstrap_join_is_exchanged_for_a_node_credential_that_spends_the_token(hub: AgentHub) -> None:
    async def body() -> None:
        token = hub.bootstrap.mint(hub.service.clock.now(), "pool gpu")
        credential = (await welcome(hub, token, "i-1")).node_credential
        assert credential.startswith("hn1.") and credential != token
        stored = json.dumps([data for _, data in hub.state.records("node-credentials/")])
        assert credential not in stored and "i-1" in stored  # only its digest, bound to the node
        # until the credential is used, the token still admits its node (it may not have saved it)
        again = (await welcome(hub, token, "i-1")).node_credential
        assert again.startswith("hn1.") and again != credential and not hub.bootstrap.is_credential(credential)
        assert (await welcome(hub, "the-agent-token", "static-1")).node_credential == ""  # the agent token: none
        # the node presents its credential: admitted, with no new one; its bootstrap token is spent
        assert (await welcome(hub, again, "i-1")).node_credential == ""
        spent = await connect(hub, token, "i-1")
        assert spent.aborted is not None and spent.aborted[1] == "invalid agent token"
        # a credential admits only its node
        other = await connect(hub, again, "i-2")
        assert other.aborted is not None and "belongs to node i-1" in other.aborted[1] and again not in other.aborted[1]
        # it survives a restart of the control plane, and goes with its node
        assert BootstrapTokens(hub.state).is_credential(again)
        assert hub.bootstrap.revoke_node("i-1") == 1
        gone = await connect(hub, again, "i-1")
        assert gone.aborted is not None and gone.aborted[1] == "invalid agent token"
        assert list(hub.state.records("node-credentials/")) == []

    asyncio.run(body())


def test_an_expired_bootstrap_token_is_refused_with_the_reason(hub: AgentHub) -> None:
    async def body() -> None:
        token = hub.bootstrap.mint(hub.service.clock.now())
        hub.service.clock.advance(hub.bootstrap.ttl_s + 1)
        refused = await connect(hub, token, "i-1")
        assert refused.aborted is not None and "expired" in refused.aborted[1] and token not in refused.aborted[1]
        assert "i-1" not in hub.state.nodes

    asyncio.run(body())


def test_an_agents_spot_notice_goes_to_the_autoscaler_or_drains_the_node(hub: AgentHub) -> None:
    hub.state.put_node(a_node("i-1").gpus(1).build())
    told: list[tuple[str, float]] = []
    hub.on_spot_notice = lambda node_id, at: told.append((node_id, at)) or True
    hub._condition("i-1", apb.NodeCondition(healthy=False, reason="spot interruption notice", spot_notice_at=123.0))
    assert told == [("i-1", 123.0)] and hub.state.nodes["i-1"].condition == "spot interruption notice"
    drained: list[str] = []
    hub.drain = lambda node_id, reason: drained.append(node_id)  # type: ignore[method-assign]
    hub.on_spot_notice = lambda node_id, at: False  # no pool owns it
    hub.state.node_tasks["i-1"] = {("j", 0): None}  # type: ignore[dict-item]
    hub._condition("i-1", apb.NodeCondition(healthy=False, reason="spot interruption notice", spot_notice_at=124.0))
    assert drained == ["i-1"]
