"""Training the learned safety critic in simulation (robot_rl.safety.train_critic): a small run."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("torch")

from robot_rl.safety import (
    RISK_METADATA_KEY,
    SafetyCritic,
    risk_feature_names,
    risk_features,
)
from robot_rl.safety.train_critic import (
    TRAINING_METADATA_KEY,
    CriticTrainConfig,
    collect,
    example_states,
    main,
    roc_auc,
    train_critic,
    violations,
)

# 40k samples: with 20k the risk at a joint limit depended on the seed (0.31 to 1.0 over seeds 0-2;
# 0.67 to 0.99 with 40k). The critic's training distribution is reworked in the safety-critic issue.
SMALL = {"samples": 40_000, "envs": 64, "threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("critic") / "risk.onnx"
    logs: list[str] = []
    report = train_critic(out, CriticTrainConfig(**SMALL), log=logs.append)
    # a held-out set from other seeds/envs than the training run, labelled the same way
    held = collect(CriticTrainConfig(samples=6_000, envs=32, threads=1, seed=123), log=lambda *a: None)
    return out, report, held, logs


def test_critic_separates_violating_from_safe_states(trained):
    out, report, held, _ = trained
    critic = SafetyCritic(out, kin=held["kin"], limits=held["limits"])
    y = held["labels"] > 0.5
    assert 0.05 < y.mean() < 0.8, "the commander must produce both safe and violating situations"
    risk = critic.predict(held["features"])
    assert risk.shape == y.shape and np.all((risk >= 0) & (risk <= 1))
    auc = roc_auc(risk, y)
    assert auc > 0.8, f"held-out AUC {auc:.3f}"
    assert risk[y].mean() > risk[~y].mean() + 0.3
    assert report.test_auc > 0.8 and 0.0 < report.positive_fraction < 1.0


def test_exported_model_loads_with_feature_names_and_matches_torch(trained):
    out, report, held, _ = trained
    kin = held["kin"]
    m = onnx.load(str(out))
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta[RISK_METADATA_KEY]) == risk_feature_names(kin.joint_names)
    training = json.loads(meta[TRAINING_METADATA_KEY])
    assert training["horizon"] == 15 and training["joint_names"] == list(kin.joint_names)
    assert [i.name for i in m.graph.input] == ["features"] and [o.name for o in m.graph.output] == ["risk"]
    critic = SafetyCritic(out, kin=kin, limits=held["limits"])
    assert critic.num_features == 3 * kin.nq + 7 and critic.feature_names == risk_feature_names(kin.joint_names)
    assert report.parity_max_abs_diff <= 1e-5
    # a robot with other joint names is refused
    from robot_rl.kinematics import RobotKinematics

    xml = held["robot_model"]
    others = []
    for k, j in enumerate(kin.joint_names):
        assert f'"{j}"' in xml
        xml = xml.replace(f'"{j}"', f'"other_{k}"')
        others.append(f"other_{k}")
    with pytest.raises(ValueError, match="different features"):
        SafetyCritic(out, kin=RobotKinematics(xml, others), limits=held["limits"])


def test_limit_state_is_risky_and_rest_is_safe(trained):
    out, _, held, _ = trained
    kin, limits = held["kin"], held["limits"]
    critic = SafetyCritic(out, kin=kin, limits=limits)
    ex = example_states(kin, held["env"].robot.default_pose)
    rest = critic(*ex["default pose at rest"])
    at_limit = critic(*ex["joint 1 0.03 rad from its upper limit, 0.3 rad/s outward"])
    assert rest < 0.2, rest
    assert at_limit > 0.5, at_limit
    # joint 4 (index 3) pushed to its lower limit at speed, as the node would see it
    q = np.asarray(held["env"].robot.default_pose, dtype=np.float64)
    q[3] = kin.lower[3] + 0.02
    qd = np.zeros_like(q)
    qd[3] = -0.5
    cmd = q.copy()
    cmd[3] = kin.lower[3]
    assert critic(q, qd, cmd) > 0.5


def test_violation_labels(trained):
    _, _, held, _ = trained
    kin, limits = held["kin"], held["limits"]
    cfg = CriticTrainConfig(**SMALL)
    q0 = np.asarray(held["env"].robot.default_pose, dtype=np.float64)
    q_lim = q0.copy()
    q_lim[0] = kin.upper[0] - 0.01
    v = violations(kin, np.stack([q0, q_lim]), limits, cfg)
    assert list(v["joint_limit"]) == [False, True]
    assert list(v["self_collision"]) == [False, False]
    rng = np.random.default_rng(0)
    q = rng.uniform(kin.lower + 0.1, kin.upper - 0.1, size=(2000, 7))
    v = violations(kin, q, limits, cfg)
    d = kin.self_collision_distance(q)
    np.testing.assert_array_equal(v["self_collision"], d < 0.02)
    assert v["self_collision"].any() and not v["joint_limit"].any()
    # features of the samples are exactly the deployed risk_features
    f = risk_features(kin, q0, np.zeros(7), q0, limits)
    assert f.shape == (3 * 7 + 7,)


def test_roc_auc():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.pt")])
    assert "must be a .onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.onnx"), "--samples", "10"])
    assert "at least 100" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
