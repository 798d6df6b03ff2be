"""Fixtures for the transport tests: loopback-only DDS on a test-unique ROS domain."""


import pytest

from _transport_helpers import next_domain_id


@pytest.fixture(autouse=True)
def loopback_dds(monkeypatch):
    """Every transport test: localhost-only discovery, no user Cyclone/ROS config leaking in."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    for var in ("CYCLONEDDS_URI", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "ROBOT_RL_TRANSPORT",
                "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def domain_id(monkeypatch) -> int:
    """A ROS_DOMAIN_ID unique to this test (also exported for subprocesses)."""
    d = next_domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(d))
    return d


@pytest.fixture
def nodes(domain_id):
    """Factory for DDS nodes that are shut down after the test."""
    from robot_rl.transport import create_node

    made = []

    def make(name, namespace="", **kw):
        kw.setdefault("backend", "dds")
        kw.setdefault("domain_id", domain_id)
        node = create_node(name, namespace, **kw)
        made.append(node)
        return node

    yield make
    for node in reversed(made):
        node.shutdown()
