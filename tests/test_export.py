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


def _train(root, name, **ppo):
    cfg = TrainConfig(env=EnvConfig(task="iiwa-reach", num_envs=32, nthread=1),
                      ppo=PPOConfig(num_steps_per_env=8, **ppo), max_iterations=2, log_root=str(root),
                      run_name=name, progress=False, eval_interval=0)
    r = train(cfg)
    return r.checkpoint, export(r.checkpoint, root / f"artifact-{name}")


@pytest.fixture(scope="module")
def iiwa_artifact(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("export"), "mlp")


@pytest.fixture(scope="module")
def recurrent_artifact(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("export_rnn"), "gru", policy="recurrent", rnn_hidden=16)


def test_spec_describes_the_policy_and_the_plant(iiwa_artifact):
    _, art_dir = iiwa_artifact
    spec = json.loads((art_dir / "spec.json").read_text())
    env = make_env("iiwa-reach", 1, dr="off")
    assert spec["policy"]["kind"] == "mlp" and spec["policy"]["onnx"] == "policy.onnx"
    assert spec["observation"]["dim"] == env.num_obs["policy"]
    assert [t["name"] for t in spec["observation"]["terms"]] == [t["name"] for t in env.observation_spec()]
    assert sum(t["dim"] for t in spec["observation"]["terms"]) == spec["observation"]["dim"]
    assert spec["observation"]["commands"]["target_pos"]["topic"] == "target_pose"
    robot = spec["robot"]
    assert robot["name"] == "iiwa14" and robot["joint_names"] == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    # the plant as it really is: a literal reading of the spec must reproduce the simulated robot
    act = robot["actuator"]
    assert act["kind"] == "position" and act["gravity_compensation"] is True
    assert act["kp"] == [400.0] * 7 and act["kd"] == [40.0] * 7
    assert act["armature"] == [0.1] * 7 and act["damping"] == [0.5] * 7 and act["motor_strength"] == 1.0
    assert (art_dir / robot["model"]).is_file() and robot["frames"]["ee"] == "ee"
    (term,) = spec["action"]["terms"]
    assert term["func"] == "joint_position_delta" and term["params"]["scale"] == 0.05 and spec["action"]["dim"] == 7
    assert spec["control"]["period_s"] == pytest.approx(0.02)
    assert spec["delays"]["action_delay_steps"] == [0, 1]
    assert spec["training"]["config"]["env"]["task"] == "iiwa-reach"
    assert set(spec["files"]) == {"policy.onnx", "robot.xml", "parity.json"}
    assert json.loads((art_dir / "parity.json").read_text())["max_abs_error"] <= 1e-5


@pytest.mark.parametrize("which", ["iiwa_artifact", "recurrent_artifact"])
def test_artifact_matches_training_policy_along_trajectories(which, request):
    """Each env gets its own runtime (the recurrent one carries memory), reset at episode starts."""
    from robot_rl.policies import DeterministicActor

    ck, art_dir = request.getfixturevalue(which)
    ac, _, _ = load_policy(ck)
    n = 4
    arts = [PolicyArtifact.load(art_dir) for _ in range(n)]
    actor = DeterministicActor(ac, n)
    env = make_env("iiwa-reach", n, dr="eval", seed=11)
    obs = env.reset()["policy"]
    for _ in range(40):
        expected = actor(obs)
        got = np.stack([a.act(obs[i].numpy()).actions[0] for i, a in enumerate(arts)])
        assert np.max(np.abs(got - expected.numpy())) <= 1e-5
        obs, _, term, trunc, _ = env.step(expected)
        obs = obs["policy"]
        done = term | trunc
        actor.reset(done)
        for i in done.nonzero().flatten().tolist():
            arts[i].reset()
    chunk = arts[0].act(obs[0].numpy())
    assert chunk.actions.shape == (1, 7) and chunk.offsets_s.tolist() == [0.0]


def test_history_actor_exports_as_a_recurrent_artifact(tmp_path):
    """The observation-history actor exports through the recurrent kind (parity checked by export)
    and its runtime carries the window."""
    from robot_rl.artifact import PolicyArtifact

    _, art_dir = _train(tmp_path, "history", policy="recurrent", rnn_type="history", history_length=4)
    art = PolicyArtifact.load(art_dir)
    assert art.spec["policy"]["rnn_type"] == "history" and art.spec["policy"]["memory_shape"] == [3, art.obs_dim]
    art.reset()
    obs = np.zeros(art.obs_dim, np.float32)
    first = art.act(obs).actions[0]
    for _ in range(3):
        art.act(obs + 1.0)
    assert np.abs(art.act(obs).actions[0] - first).max() > 1e-6  # the window remembers the +1 observations
    art.reset()
    np.testing.assert_allclose(art.act(obs).actions[0], first, atol=1e-6)


def test_recurrent_runtime_carries_and_resets_its_memory(recurrent_artifact):
    _, art_dir = recurrent_artifact
    art = PolicyArtifact.load(art_dir)
    spec = art.spec
    assert spec["policy"]["kind"] == "recurrent" and spec["policy"]["memory_shape"] == [1, 16]
    obs = np.random.default_rng(0).normal(size=(3, art.obs_dim)).astype(np.float32)
    first = [art.act(o).actions[0] for o in obs]
    art.reset()
    again = [art.act(o).actions[0] for o in obs]
    np.testing.assert_allclose(first, again, atol=1e-7)  # reset = fresh memory
    art.reset()
    art.act(obs[1])
    assert np.abs(art.act(obs[0]).actions[0] - first[0]).max() > 1e-6, "the memory must change the action"


def test_artifact_runs_without_torch(iiwa_artifact, recurrent_artifact):
    for _, art_dir in (iiwa_artifact, recurrent_artifact):
        code = (
            "import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from robot_rl.artifact import PolicyArtifact\n"
            "from robot_rl.observer import RobotObserver\n"
            f"a = PolicyArtifact.load({str(art_dir)!r})\n"
            "o = RobotObserver(a.spec, a.path)\n"
            "s = o.state(a.robot['default_pose'], np.zeros(7), None, {'target_pos': [0.5, 0.0, 0.5]})\n"
            "o.reset(s)\n"
            "act = a.act(o.observe(s)).actions[0]\n"
            "print(len(o.apply(act, s)))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "7"


def test_unknown_policy_kind_or_old_format_is_refused(iiwa_artifact, tmp_path):
    from robot_rl.artifact import sha256_file, spec_checksum

    _, art_dir = iiwa_artifact
    other = _copy(art_dir, tmp_path / "kind")
    spec = json.loads((other / "spec.json").read_text())
    spec["policy"]["kind"] = "diffusion-2030"
    spec["checksum"] = spec_checksum(spec)
    (other / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="unknown policy kind 'diffusion-2030'"):
        PolicyArtifact.load(other)
    old = _copy(art_dir, tmp_path / "old")
    spec = json.loads((old / "spec.json").read_text())
    spec["format"] = "robot-rl-policy/1"
    spec["checksum"] = spec_checksum(spec)
    (old / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="export the artifact again"):
        PolicyArtifact.load(old)
    assert sha256_file(old / "policy.onnx") == spec["files"]["policy.onnx"]


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_edited_or_truncated_artifact_is_refused(iiwa_artifact, tmp_path):
    _, art_dir = iiwa_artifact
    edited = _copy(art_dir, tmp_path / "edited")
    spec = json.loads((edited / "spec.json").read_text())
    spec["action"]["terms"][0]["params"]["scale"] = 0.5
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


def test_export_toy_absolute_targets_are_clipped(tmp_path):
    from robot_rl.observer import RobotObserver

    cfg = TrainConfig(env=EnvConfig(task="toy-reach", num_envs=8, nthread=1), ppo=PPOConfig(num_steps_per_env=4),
                      max_iterations=1, log_root=str(tmp_path), run_name="t", progress=False, eval_interval=0)
    r = train(cfg)
    art = PolicyArtifact.load(export(r.checkpoint, tmp_path / "art"))
    assert [t["func"] for t in art.spec["action"]["terms"]] == ["joint_position"]
    obs_side = RobotObserver(art.spec, art.path)
    state = obs_side.state([0.0], [0.0], None, {"target": [0.3]})
    assert obs_side.apply(np.array([1.0]), state) == {"x": 0.5}
    assert obs_side.apply(np.array([5.0]), state) == {"x": 0.5}, "actions are clipped to [-1, 1]"
