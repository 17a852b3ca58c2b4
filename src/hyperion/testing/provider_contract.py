"""The NodeProvider contract suite: what every provider adapter must do, as pytest tests.

To test an adapter, subclass ``ProviderContract`` in a test module and provide a ``provider``
fixture that yields a ready provider and releases whatever it launched afterwards::

    pytest.register_assert_rewrite("hyperion.testing.provider_contract")  # readable failures
    from hyperion.testing.provider_contract import ProviderContract

    class TestLocalProvider(ProviderContract):
        @pytest.fixture
        def provider(self, tmp_path):
            provider = LocalProvider(tmp_path, "127.0.0.1:9", tmp_path / "token")
            yield provider
            terminate_everything(provider)

The suite also terminates what each test launched, so a failing assertion does not leak nodes.
Async calls run under ``asyncio.run`` with a timeout, so no pytest plugin is needed.

Glossary: a node is *up* when ``list_nodes`` shows it "launching" or "running"; *gone* when it
shows it "terminated" or no longer lists it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

from hyperion.ports.provider import NodeProvider, ProviderError, ProviderNode

WAIT = 30.0  # seconds any single call may take before the test fails instead of hanging
UP = frozenset({"launching", "running"})


def run(coro: Awaitable, timeout: float = WAIT) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def nodes_by_id(provider: NodeProvider) -> dict[str, ProviderNode]:
    return {n.id: n for n in run(provider.list_nodes())}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.1)


def terminate_everything(provider: NodeProvider) -> None:
    """Terminates every node the provider lists; for fixtures' clean-up."""
    ids = [n.id for n in run(provider.list_nodes()) if n.state != "terminated"]
    if ids:
        run(provider.terminate(ids, f"cleanup-{uuid.uuid4().hex[:8]}"))


class ProviderContract:
    """Subclass and override the ``provider`` fixture; every ``test_*`` then runs against it."""

    launch_count = 2  # nodes launched by the tests that launch

    @pytest.fixture
    def provider(self) -> NodeProvider:
        raise NotImplementedError("subclass ProviderContract and override the `provider` fixture")

    @pytest.fixture
    def launch(self, provider):
        """``launch(count, request_id)`` with the first offered node type; cleans up after."""
        launched: list[str] = []

        def do(count: int = self.launch_count, request_id: str | None = None) -> list[ProviderNode]:
            node_type = provider.offers()[0]["node_type"]
            nodes = run(provider.launch(node_type, count, request_id or uuid.uuid4().hex))
            launched.extend(n.id for n in nodes)
            return nodes

        yield do
        if launched:
            run(provider.terminate(launched, f"contract-cleanup-{uuid.uuid4().hex[:8]}"))

    # -- shape --------------------------------------------------------------------------------

    def test_is_a_node_provider_with_a_name_and_capabilities(self, provider):
        assert isinstance(provider, NodeProvider)
        assert isinstance(provider.name, str) and provider.name
        assert provider.capabilities is not None

    def test_offers_are_non_empty_and_name_a_node_type(self, provider):
        offers = provider.offers()
        assert offers, "a provider must offer at least one node type"
        for offer in offers:
            assert isinstance(offer.get("node_type"), str) and offer["node_type"]
            assert offer.get("price_per_hour", 0.0) >= 0.0

    def test_drain_errors_returns_a_list_and_empties_it(self, provider):
        errors = provider.drain_errors()
        assert isinstance(errors, list)
        assert all(isinstance(e, ProviderError) for e in errors)
        assert provider.drain_errors() == []

    # -- launch -------------------------------------------------------------------------------

    def test_launch_returns_count_distinct_nodes(self, provider, launch):
        nodes = launch(self.launch_count, "req-count")
        assert len(nodes) == self.launch_count
        assert len({n.id for n in nodes}) == self.launch_count
        assert all(n.state in UP for n in nodes)

    def test_launching_the_same_request_twice_launches_nothing_new(self, provider, launch):
        first = launch(self.launch_count, "req-twice")
        listed = set(nodes_by_id(provider))
        again = launch(self.launch_count, "req-twice")
        assert sorted(n.id for n in again) == sorted(n.id for n in first)
        assert set(nodes_by_id(provider)) == listed, "the repeated request launched nodes"

    def test_list_nodes_shows_launched_nodes_up(self, provider, launch):
        ids = {n.id for n in launch()}
        wait_until(lambda: all(nodes_by_id(provider).get(i, None) is not None
                               and nodes_by_id(provider)[i].state in UP for i in ids),
                   "every launched node is listed up")

    def test_a_new_request_launches_new_nodes(self, provider, launch):
        first = {n.id for n in launch(1, "req-a")}
        second = {n.id for n in launch(1, "req-b")}
        assert first.isdisjoint(second)

    # -- terminate ----------------------------------------------------------------------------

    def test_terminate_makes_nodes_gone_and_is_idempotent(self, provider, launch):
        nodes = launch()
        ids = [n.id for n in nodes]
        run(provider.terminate(ids, "req-terminate"))
        self._assert_gone(provider, ids)
        run(provider.terminate(ids, "req-terminate"))  # same request again
        run(provider.terminate(ids, "req-terminate-2"))  # already gone
        self._assert_gone(provider, ids)

    def test_terminating_some_nodes_leaves_the_others_up(self, provider, launch):
        keep, drop = launch(2)
        run(provider.terminate([drop.id], "req-partial"))
        self._assert_gone(provider, [drop.id])
        assert nodes_by_id(provider)[keep.id].state in UP

    @staticmethod
    def _assert_gone(provider: NodeProvider, ids: Sequence[str]) -> None:
        wait_until(lambda: all(nodes_by_id(provider).get(i) is None
                               or nodes_by_id(provider)[i].state == "terminated" for i in ids),
                   f"{list(ids)} are terminated")
