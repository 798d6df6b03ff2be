"""The artifact safety critic: trained on the artifact's own rollouts, calibrated on held-out
rollouts, stored in the artifact with checksums, refused when it belongs to another robot or
artifact, fail-closed on NaN, and loaded by the safety node by default."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from robot_rl.artifact import ArtifactError, PolicyArtifact
from robot_rl.safety.critic_artifact import CriticError, load_critic
from robot_rl.safety.train_artifact_critic import CriticConfig, calibrate, train_artifact_critic


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    """(trained PPO artifact, linear reaching artifact with a critic, the training report)."""
    from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
    from robot_rl.export import export
    from robot_rl.train import train
    from tests.nodes._nodes_helpers import linear_reach_artifact

    root = tmp_path_factory.mktemp("critic")
    r = train(TrainConfig(env=EnvConfig(task="iiwa-reach", num_envs=16, nthread=1),
                          ppo=PPOConfig(num_steps_per_env=8), max_iterations=1, log_root=str(root),
                          run_name="tiny", progress=False, eval_interval=0))
    ppo = export(r.checkpoint, root / "ppo")
    lin = linear_reach_artifact(ppo, root / "linear")
    report = train_artifact_critic(CriticConfig(artifact=str(lin), envs=16, steps=150, calib_envs=12,
                                                calib_steps=150, rounds=4), log=lambda *_: None)
    return ppo, lin, report


def test_critic_is_written_into_the_artifact_with_checksums(arts):
    _, lin, report = arts
    spec = PolicyArtifact.load(lin).spec  # every checksum verifies, the critic's included
    sec = spec["safety_critic"]
    assert "critic.onnx" in spec["files"] and sec["file"] == "critic.onnx"
    assert sec["threshold"] == report["threshold"] and 0 < sec["hysteresis"] < sec["threshold"]
    assert sec["calibration"]["false_alarm_rate"] <= sec["calibration"]["false_alarm_rate_target"]
    assert not [p for p in lin.parent.iterdir() if p.name.startswith(".")]  # no temporary copy left
    critic = load_critic(lin, spec)
    q0 = np.array(spec["robot"]["default_pose"])
    assert 0.0 <= critic(q0, np.zeros(7), q0, np.zeros(7)) < critic.threshold  # resting at home is safe


def test_contact_now_or_along_the_command_is_maximal_risk(arts):
    _, lin, _ = arts
    critic = load_critic(lin, PolicyArtifact.load(lin).spec)
    sec = critic.section
    rng = np.random.default_rng(1)
    qs = rng.uniform(sec["lower"], sec["upper"], (1500, 7))
    _, scene = critic.features.clearance(qs)
    inside, free = qs[scene < -0.01][:5], qs[scene > 0.09][:1]
    assert len(inside) == 5 and len(free) == 1
    z = np.zeros(7)
    assert all(critic(q, z, q, z) == 1.0 for q in inside)  # at rest inside the table or an obstacle
    # commanded from a free pose straight into a penetrating one: risky before the arm moves
    q = free[0]
    v = (inside[0] - q) / sec["lookahead_s"]
    assert critic(q, z, q, v) == 1.0


def test_threshold_meets_the_false_alarm_target_and_detects_rogue_violations(arts):
    _, lin, report = arts
    cal = report["calibration"]
    assert cal["nominal_ticks"] > 1000 and cal["false_alarm_rate"] <= 0.01
    assert cal["violation_onsets"] >= 3 and cal["detection_rate"] >= 0.5
    # the calibration itself, on synthetic held-out data: 1000 nominal ticks, one rogue onset
    rng = np.random.default_rng(0)
    nom = {"valid": np.ones((500, 2), bool), "c": np.zeros((501, 2), bool)}
    rog = {"valid": np.ones((100, 1), bool), "c": np.zeros((101, 1), bool)}
    rog["c"][60:, 0] = True
    r_rog = np.zeros((100, 1))
    r_rog[50, 0] = 1.0
    cfg = CriticConfig(artifact="x", false_alarm_rate=0.01, min_threshold=0.05)
    out = calibrate(rng.random((500, 2)), nom, r_rog, rog, cfg, control_dt=0.02)
    assert out["false_alarm_rate"] <= 0.01 and abs(out["threshold"] - 0.99) < 0.01
    assert out["violation_onsets"] == 1 and out["detection_rate"] == 1.0


def test_an_edited_critic_is_refused(arts, tmp_path):
    _, lin, _ = arts
    bad = tmp_path / "edited"
    shutil.copytree(lin, bad)
    data = bytearray((bad / "critic.onnx").read_bytes())
    data[-5] ^= 0xFF
    (bad / "critic.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="critic.onnx was modified"):
        PolicyArtifact.load(bad)
    with pytest.raises(CriticError, match="critic.onnx was modified"):
        load_critic(bad, PolicyArtifact.load(lin).spec)
    with pytest.raises(CriticError, match="not a bare .onnx"):
        load_critic(lin / "critic.onnx", PolicyArtifact.load(lin).spec)


def test_a_critic_of_another_artifact_or_robot_is_refused(arts, tmp_path):
    from tests.nodes._nodes_helpers import renamed_artifact

    ppo, lin, _ = arts
    with pytest.raises(CriticError, match="another policy"):
        load_critic(lin, PolicyArtifact.load(ppo).spec)
    other = renamed_artifact(lin, tmp_path / "other", [f"arm_{i}" for i in range(7)])
    with pytest.raises(CriticError, match="trained for robot"):
        load_critic(other, PolicyArtifact.load(other).spec)


def test_the_safety_node_loads_it_by_default_and_refuses_a_foreign_one(arts):
    from robot_rl.nodes._common import NodeStartError
    from robot_rl.nodes.safety import build_filter
    from robot_rl.safety.twin_check import _Params

    ppo, lin, report = arts
    spec = PolicyArtifact.load(lin).spec
    cfg, filt, critic = build_filter(_Params({}), spec, lin)
    assert critic is not None and cfg.risk_threshold == report["threshold"] and cfg.backup == "retreat_path"
    assert build_filter(_Params({"critic": "off"}), spec, lin)[2] is None
    assert build_filter(_Params({}), PolicyArtifact.load(ppo).spec, ppo)[2] is None  # none in the artifact
    with pytest.raises(NodeStartError, match="another policy") as e:
        build_filter(_Params({"critic": str(lin)}), PolicyArtifact.load(ppo).spec, ppo)
    assert "\n" not in str(e.value)


def test_nan_risk_is_maximal_and_hands_over_to_the_backup(arts):
    from robot_rl.nodes.safety import build_filter
    from robot_rl.safety.twin_check import _Params

    _, lin, _ = arts
    spec = PolicyArtifact.load(lin).spec
    _, filt, critic = build_filter(_Params({}), spec, lin)
    q0 = np.array(spec["robot"]["default_pose"])
    assert critic(q0 + np.nan, np.zeros(7), q0, np.zeros(7)) == 1.0 and critic.non_finite == 1

    class NaNSession:
        def run(self, *_a, **_k):
            return [np.array([[np.nan]], dtype=np.float32)]

    critic.session = NaNSession()
    assert critic(q0, np.zeros(7), q0, np.zeros(7)) == 1.0 and critic.non_finite == 2
    filt.on_state(0.0, None, q0)
    filt.set_risk(0.0, critic(q0, np.zeros(7), q0, np.zeros(7)))
    _, st = filt.tick(0.0)
    assert st["mode"] == "backup" and st["reason"] == "risk"


def test_train_critic_cli_refuses_bad_settings(capsys):
    from robot_rl.cli import main

    assert main(["train-critic"]) == 2
    assert "--artifact is required" in capsys.readouterr().err
    assert main(["train-critic", "--artifact", "/nonexistent", "--gamma", "1.5"]) == 2
    assert "gamma" in capsys.readouterr().err


def test_the_node_runs_the_critic_on_its_thread_and_fails_closed_when_it_is_stale(arts):
    import time

    from robot_rl.nodes.safety import build_filter
    from robot_rl.safety.critic_worker import CriticWorker, RiskFeed
    from robot_rl.safety.twin_check import _Params

    _, lin, _ = arts
    spec = PolicyArtifact.load(lin).spec
    cfg, filt, critic = build_filter(_Params({}), spec, lin)
    assert cfg.risk_timeout_s == pytest.approx(0.03)  # three periods of the 100 Hz critic
    assert build_filter(_Params({"critic_stale_s": 0.05}), spec, lin)[0].risk_timeout_s == 0.05
    assert build_filter(_Params({"critic": "off"}), spec, lin)[0].risk_timeout_s is None
    names = list(cfg.joint_names)
    q0 = np.array(spec["robot"]["default_pose"])
    worker = CriticWorker(critic).start()
    feed = RiskFeed(worker, filt, 10, [names.index(j) for j in critic.section["joint_names"]])
    try:
        filt.on_state(0.0, names, q0)
        filt.on_command(0.0, names, q0)
        assert feed.apply(0.0) is None
        _, st = filt.tick(0.0)
        feed.submit(0.0, 0, (q0, np.zeros(7)))  # the command this tick sent, to the critic thread
        deadline = time.monotonic() + 10.0
        res = None
        while res is None and time.monotonic() < deadline:
            time.sleep(0.001)
            res = feed.apply(0.001)
        assert res is not None and res.t == 0.0 and res.error is None
        assert res.risk == critic(q0, np.zeros(7), filt.output, filt.command_velocity)  # the thread's = direct
        assert res.risk < cfg.risk_threshold
        _, st = filt.tick(0.001)
        assert st["mode"] == "ok" and st["risk"] == res.risk
        _, st = filt.tick(0.031)  # no newer risk for more than critic_stale_s: maximal, backup
        assert st["mode"] == "backup" and st["reason"] == "risk_stale"
    finally:
        worker.stop()
