"""Fixtures for the teleop device tests: loopback-only DDS on a test-unique ROS domain, headless SDL."""

import itertools
import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

_counter = itertools.count()


@pytest.fixture(autouse=True)
def loopback_dds(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROBOT_RL_TRANSPORT", "dds")
    for var in ("CYCLONEDDS_URI", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def domain_id(monkeypatch) -> int:
    """A ROS_DOMAIN_ID for this test (spread by pid so parallel runs do not meet)."""
    d = 1 + (os.getpid() * 37 + next(_counter) * 13 + 101) % 230
    monkeypatch.setenv("ROS_DOMAIN_ID", str(d))
    return d


@pytest.fixture
def nodes(domain_id):
    """Factory for DDS nodes on the test's domain, shut down after the test."""
    from robot_rl.transport import create_node

    made = []

    def make(name):
        node = create_node(name, backend="dds", domain_id=domain_id)
        made.append(node)
        return node

    yield make
    for node in reversed(made):
        node.shutdown()
