"""Fixtures for the deployment-node tests: loopback DDS on a unique domain, one trained artifact
per session, node subprocesses that are always stopped."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nodes_helpers import NodeProcess, linear_reach_artifact, next_domain_id  # noqa: E402


@pytest.fixture(autouse=True)
def loopback_dds(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROBOT_RL_TRANSPORT", "dds")
    for var in ("CYCLONEDDS_URI", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory) -> Path:
    """A 2-iteration PPO policy for iiwa-reach, exported (onnxruntime-only artifact)."""
    from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
    from robot_rl.export import export
    from robot_rl.train import train

    root = tmp_path_factory.mktemp("nodes_export")
    cfg = TrainConfig(env=EnvConfig(task="iiwa-reach", num_envs=32, nthread=1),
                      ppo=PPOConfig(num_steps_per_env=8), max_iterations=2, log_root=str(root),
                      run_name="iiwa", progress=False, eval_interval=0)
    return export(train(cfg).checkpoint, root / "artifact")


@pytest.fixture(scope="session")
def reach_artifact(trained_artifact, tmp_path_factory) -> Path:
    """The trained artifact with a hand-made resolved-rate reaching controller as policy.onnx."""
    return linear_reach_artifact(trained_artifact, tmp_path_factory.mktemp("nodes_reach") / "artifact")


class Graph:
    """Node subprocesses plus an in-process DDS node for the test, all on one ROS domain."""

    def __init__(self, tmp_path: Path):
        from robot_rl.transport import create_node

        self.domain = next_domain_id()
        os.environ["ROS_DOMAIN_ID"] = str(self.domain)
        self.tmp = tmp_path
        self.procs: list[NodeProcess] = []
        self.node = create_node(f"test_{os.getpid()}", backend="dds", domain_id=self.domain)

    def start(self, name: str, script: Path | None = None, **params) -> NodeProcess:
        p = NodeProcess(name, params, self.domain, self.tmp, script=script)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.node.shutdown()


@pytest.fixture
def graph(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "0"))  # restored afterwards
    g = Graph(tmp_path)
    yield g
    g.close()
