import pytest

from hyperion.testing.cluster import LocalCluster


@pytest.fixture
def make_cluster(tmp_path):
    """Starts a ``LocalCluster`` with the given options, waits for its nodes, stops it after the test."""
    started: list[LocalCluster] = []

    def make(**options) -> LocalCluster:
        c = LocalCluster(tmp_path / "hyperion", **options)
        started.append(c)
        c.start()
        c.wait_nodes()
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def cluster(make_cluster):
    return make_cluster(agents=2, gpus_per_agent=4, node_timeout=3.0)
