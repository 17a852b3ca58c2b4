"""Every StateStore adapter against the contract suite in ``hyperion.testing.store_contract``."""

import pytest

pytest.register_assert_rewrite("hyperion.testing.store_contract")

from hyperion.store import MemoryStore, SqliteStore
from hyperion.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        store = MemoryStore()
        yield store
        store.close()


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        store = SqliteStore(tmp_path / "state" / "hyperion.db")
        yield store
        store.close()
