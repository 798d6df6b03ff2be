"""Export: the artifact reproduces the training policy to 1e-5 with onnxruntime + numpy alone, and
a modified or truncated artifact is refused."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import tests.toy_task  # noqa: F401
from robot_rl.artifact import ArtifactError, PolicyArtifact
from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
from robot_rl.evaluate import load_policy
from robot_rl.export import export
from robot_rl.sim import make_env
from robot_rl.train import train


@pytest.fixture(scope="module")
def iiwa_artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg = TrainConfig(env=EnvConfig(task="iiwa-reach", num_envs=32, nthread=1),
                      ppo=PPOConfig(num_steps_per_env=8), max_iterations=2, log_root=str(root),
                      run_name="iiwa", progress=False, eval_interval=0)
    r = train(cfg)
    return r.checkpoint, export(r.checkpoint, root / "artifact")


def test_spec_describes_the_policy(iiwa_artifact):
    _, art_dir = iiwa_artifact
    spec = json.loads((art_dir / "spec.json").read_text())
    env = make_env("iiwa-reach", 1, dr="off")
    assert spec["observation"]["dim"] == env.num_obs["policy"]
    assert [t["name"] for t in spec["observation"]["terms"]] == [t["name"] for t in env.observation_spec()]
    assert sum(t["dim"] for t in spec["observation"]["terms"]) == spec["observation"]["dim"]
    assert spec["joints"]["names"] == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    assert spec["action"]["mode"] == "joint_position_delta" and spec["action"]["dim"] == 7
    assert spec["control"]["period_s"] == pytest.approx(0.02)
    assert len(spec["pd_gains"]["kp"]) == 7 and spec["pd_gains"]["kp"][0] > 0
    assert spec["delays"]["action_delay_steps"] == [0, 1]
    assert spec["training"]["config"]["env"]["task"] == "iiwa-reach"
    assert json.loads((art_dir / "parity.json").read_text())["max_abs_error"] <= 1e-5


def test_artifact_matches_training_policy(iiwa_artifact):
    ck, art_dir = iiwa_artifact
    ac, _, _ = load_policy(ck)
    art = PolicyArtifact.load(art_dir)
    env = make_env("iiwa-reach", 64, dr="eval", seed=11)
    obs = env.reset()["policy"]
    for _ in range(5):
        with torch.no_grad():
            expected = ac.action_mean(obs)
        got = art.act(obs.numpy())
        assert np.max(np.abs(got - expected.numpy())) <= 1e-5
        obs = env.step(expected)[0]["policy"]
    single = art.act(obs[0].numpy())
    assert single.shape == (7,)


def test_artifact_runs_without_torch(iiwa_artifact):
    _, art_dir = iiwa_artifact
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from robot_rl.artifact import PolicyArtifact\n"
        f"a = PolicyArtifact.load({str(art_dir)!r})\n"
        "act = a.act(np.zeros(a.obs_dim, np.float32))\n"
        "print(a.joint_targets(act, a.default_pose).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(7,)"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_edited_or_truncated_artifact_is_refused(iiwa_artifact, tmp_path):
    _, art_dir = iiwa_artifact
    edited = _copy(art_dir, tmp_path / "edited")
    spec = json.loads((edited / "spec.json").read_text())
    spec["action"]["scale"] = 0.5
    (edited / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="spec.json was modified"):
        PolicyArtifact.load(edited)
    truncated = _copy(art_dir, tmp_path / "truncated")
    data = (truncated / "policy.onnx").read_bytes()
    (truncated / "policy.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="policy.onnx was modified or truncated"):
        PolicyArtifact.load(truncated)
    flipped = _copy(art_dir, tmp_path / "flipped")
    data = bytearray((flipped / "policy.onnx").read_bytes())
    data[-100] ^= 0xFF
    (flipped / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        PolicyArtifact.load(flipped)
    garbage = _copy(art_dir, tmp_path / "garbage")
    (garbage / "spec.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupted"):
        PolicyArtifact.load(garbage)
    with pytest.raises(ArtifactError, match="no spec.json"):
        PolicyArtifact.load(tmp_path)


def test_export_toy_and_delta_targets(tmp_path):
    cfg = TrainConfig(env=EnvConfig(task="toy-reach", num_envs=8, nthread=1), ppo=PPOConfig(num_steps_per_env=4),
                      max_iterations=1, log_root=str(tmp_path), run_name="t", progress=False, eval_interval=0)
    r = train(cfg)
    art = PolicyArtifact.load(export(r.checkpoint, tmp_path / "art"))
    assert art.action_mode == "joint_position"
    assert np.allclose(art.joint_targets(np.array([1.0])), [0.5])
    assert np.allclose(art.joint_targets(np.array([5.0])), [0.5]), "actions are clipped to [-1, 1]"
