"""Every NodeProvider adapter against the contract suite (hyperion.testing.provider_contract).

The local provider's agents point at a port nobody listens on: they keep retrying to connect,
which is all the contract needs (launch, list, terminate). One extra test checks what only the
local provider promises: a restarted control plane adopts the agents already running.
"""

from __future__ import annotations

import socket
import sys

import pytest

pytest.register_assert_rewrite("hyperion.testing.provider_contract")

from hyperion.providers.local import LocalProvider  # noqa: E402
from hyperion.testing.provider_contract import (  # noqa: E402
    ProviderContract,
    nodes_by_id,
    run,
    terminate_everything,
)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_provider(tmp_path) -> LocalProvider:
    token = tmp_path / "token"
    if not token.exists():
        token.write_text("contract-token")
    return LocalProvider(tmp_path / "cp", f"127.0.0.1:{unused_port()}", token, gpus_per_node=2,
                         python=sys.executable, extra_args=("--metrics-interval", "60"))


class TestLocalProvider(ProviderContract):
    @pytest.fixture
    def provider(self, tmp_path):
        provider = local_provider(tmp_path)
        yield provider
        terminate_everything(provider)


def test_a_restarted_control_plane_adopts_running_agents(tmp_path):
    first = local_provider(tmp_path)
    try:
        launched = run(first.launch("local", 2, "req-1"))
        second = local_provider(tmp_path)  # as if the control plane was kill -9'ed and restarted
        assert run(second.launch("local", 2, "req-1")) == launched
        assert {i: n.state for i, n in nodes_by_id(second).items()} == {
            n.id: "running" for n in launched}
        (third,) = run(second.launch("local", 1, "req-2"))
        assert third.id == "local-3"
        run(second.terminate([n.id for n in launched], "stop-1"))
        assert {n.id: n.state for n in run(first.list_nodes())} == {
            "local-1": "terminated", "local-2": "terminated", "local-3": "running"}
        assert first.drain_errors() == [] and second.drain_errors() == []
    finally:
        terminate_everything(first)


def test_unknown_node_type_and_unknown_ids_become_errors(tmp_path):
    provider = local_provider(tmp_path)
    assert run(provider.launch("gpu-xl", 1, "req-x")) == []
    run(provider.terminate(["local-99"], "req-y"))
    errors = provider.drain_errors()
    assert [e.request_id for e in errors] == ["req-x", "req-y"]
    assert "gpu-xl" in errors[0].message and "local-99" in errors[1].message
    assert provider.drain_errors() == []
