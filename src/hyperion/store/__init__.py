"""StateStore adapters: ``MemoryStore`` (tests, simulator) and ``SqliteStore`` (the embedded
default), and ``open_store`` to pick one from a URL in configuration.

URLs: ``memory://``; ``sqlite:///abs/path.db`` (three slashes, absolute path); or a plain file path,
which means SQLite.
"""

from __future__ import annotations

from hyperion.store.memory import (
    CompactedError,
    MemoryStore,
    StoreError,
    StoreLockedError,
)
from hyperion.store.sqlite import SqliteStore

__all__ = ["CompactedError", "MemoryStore", "SqliteStore", "StoreError", "StoreLockedError", "open_store"]

_USAGE = "use memory://, sqlite:///absolute/path.db, or a file path"


def open_store(url: str) -> MemoryStore | SqliteStore:
    """Open the store that ``url`` names; raises StoreError for a URL it does not understand."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"store URL must be a non-empty string, got {url!r}; {_USAGE}")
    if url == "memory://":
        return MemoryStore()
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path.startswith("/"):
            raise StoreError(f"store URL {url!r} needs an absolute path after sqlite:// (three slashes): {_USAGE}")
        return SqliteStore(path)
    if "://" in url:
        raise StoreError(f"unknown store URL {url!r}; {_USAGE}")
    return SqliteStore(url)
