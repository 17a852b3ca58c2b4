"""Protocols for the outside world. Adapters live in store/, providers/, api/ and agent/."""

from hyperion.ports.clock import Clock, SystemClock
from hyperion.ports.provider import Capability, NodeProvider, ProviderError, ProviderNode
from hyperion.ports.store import KV, Compare, Delete, Put, StateStore, TxnResult, WatchEvent

__all__ = [
    "KV", "Capability", "Clock", "Compare", "Delete", "NodeProvider", "ProviderError", "ProviderNode",
    "Put", "StateStore", "SystemClock", "TxnResult", "WatchEvent",
]
