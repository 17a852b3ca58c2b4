import pytest

from hyperion.testing.cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path / "hyperion", agents=2, gpus_per_agent=4, node_timeout=3.0)
    c.start()
    c.wait_nodes()
    yield c
    c.stop()
