"""The StateStore port: keyed values with a monotonically increasing revision, guarded
(compare-and-swap) transactions, and watch. Modelled on etcd's KV API so an etcd adapter is a
thin mapping.

Glossary:
- *revision*: a store-wide counter bumped by every successful transaction that writes.
- *mod_revision*: the revision at which a key was last written; 0 for a key that does not exist.
- *guarded commit*: ``txn(compares, ops)`` applies ``ops`` only if every compare holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class Compare:
    """Holds when ``key``'s mod_revision equals ``mod_revision`` (0: the key must not exist)."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the store revision after the transaction (unchanged if it failed)
    failed_keys: tuple[str, ...] = ()  # the compares that did not hold


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # "put" | "delete"
    key: str
    value: bytes | None
    mod_revision: int


@runtime_checkable
class StateStore(Protocol):
    def get(self, key: str) -> KV | None: ...

    def range(self, prefix: str) -> list[KV]:
        """Every key starting with ``prefix``, in key order."""
        ...

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult: ...

    def revision(self) -> int: ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes to keys under ``prefix`` with mod_revision >= ``start_revision``, in order."""
        ...

    def compact(self, keep_last: int) -> int:
        """Forget change history older than the last ``keep_last`` revisions; returns the
        compacted revision. Watches that start before it raise ``CompactedError``."""
        ...

    def close(self) -> None: ...
