"""Risk features (MuJoCo kinematics of the robot model) and the ONNX safety critic (onnxruntime,
no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robot_rl.kinematics import RobotKinematics
from robot_rl.safety import (
    RISK_FEATURE_GROUPS,
    RISK_METADATA_KEY,
    RiskLimits,
    SafetyConfig,
    SafetyCritic,
    SafetyFilter,
    risk_feature_names,
    risk_features,
)

Q0 = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])


@pytest.fixture(scope="module")
def setup(iiwa_model_xml, iiwa_joints):
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    cfg = SafetyConfig.from_model(
        iiwa_model_xml, velocity_limit=1.5, workspace_lower=[-0.8, -0.8, 0.1], workspace_upper=[0.8, 0.8, 1.3]
    )
    return kin, cfg, RiskLimits.from_config(cfg)


def _logistic_model(path, weights, bias, names=None, out_shape=("N", 1), output_nan=False):
    F = len(weights)
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", F])
    y = helper.make_tensor_value_info("risk", TensorProto.FLOAT, list(out_shape))
    W = numpy_helper.from_array(np.asarray(weights, dtype=np.float32).reshape(F, 1), "W")
    b = numpy_helper.from_array(np.asarray([bias], dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["s"] if (out_shape != ("N", 1) or output_nan) else ["risk"]),
    ]
    inits = [W, b]
    if output_nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "nan"))
        nodes.append(helper.make_node("Mul", ["s", "nan"], ["risk"]))
    elif out_shape != ("N", 1):
        inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["s", "shape"], ["risk"]))
    graph = helper.make_graph(nodes, "risk", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {RISK_METADATA_KEY: json.dumps(names)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_feature_layout_names_and_values(setup):
    kin, cfg, limits = setup
    names = risk_feature_names(kin.joint_names)
    assert len(names) == 3 * 7 + 7 == 28
    assert [g for g, _ in RISK_FEATURE_GROUPS] == [
        "joint_limit_margin",
        "self_collision",
        "workspace_margin",
        "joint_speed",
        "command_offset",
    ]
    assert names[0] == "joint_limit_margin/lbr_iiwa_joint_1" and names[7] == "self_collision"
    assert names[8:14] == [f"workspace_margin/{a}" for a in ("lo_x", "lo_y", "lo_z", "hi_x", "hi_y", "hi_z")]
    assert names[14] == "joint_speed/lbr_iiwa_joint_1" and names[21] == "command_offset/lbr_iiwa_joint_1"

    q = Q0.copy()
    q[1] = 2.0944 * 0.9  # joint 2 near its upper limit
    qd = np.array([0.0, 0.75, 0, 0, 0, 0, -1.5])
    q_cmd = q + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.015])
    x = risk_features(kin, q, qd, q_cmd, limits)
    assert x.shape == (28,) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0)  # joint 1 at mid-range
    np.testing.assert_allclose(x[1], 0.1, rtol=1e-5)  # 10 % of the half-range left
    d = kin.self_collision_distance(q)
    assert 0.0 < d < 0.1  # links a few cm apart: the feature is not saturated
    assert x[7] == pytest.approx(d / 0.1, rel=1e-5)
    ee = kin.fk(q)["sites"]["ee"]
    np.testing.assert_allclose(x[8:11], (ee - [-0.8, -0.8, 0.1]) / [0.8, 0.8, 0.6], rtol=1e-5)
    np.testing.assert_allclose(x[11:14], ([0.8, 0.8, 1.3] - ee) / [0.8, 0.8, 0.6], rtol=1e-5)
    np.testing.assert_allclose(x[14:21], qd / 1.5, rtol=1e-6)
    np.testing.assert_allclose(x[21:28], [0, 0, 0, 0, 0, 0, 0.1], atol=1e-6)  # 0.015 / (1.5 * 0.1)


def test_features_are_batched_and_match_single_evaluation(setup):
    kin, _, limits = setup
    rng = np.random.default_rng(0)
    q = rng.uniform(kin.lower, kin.upper, size=(4, 5, 7))
    qd = rng.normal(size=(4, 5, 7))
    q_cmd = q + rng.normal(scale=0.05, size=q.shape)
    x = risk_features(kin, q, qd, q_cmd, limits)
    assert x.shape == (4, 5, 28)
    np.testing.assert_allclose(x[2, 3], risk_features(kin, q[2, 3], qd[2, 3], q_cmd[2, 3], limits), rtol=1e-6)
    no_box = RiskLimits(lower=kin.lower, upper=kin.upper, velocity=1.5)
    assert (risk_features(kin, q, qd, q_cmd, no_box)[..., 8:14] == 1.0).all()
    with pytest.raises(ValueError, match="shape"):
        risk_features(kin, q[..., :6], qd, q_cmd, limits)


def test_critic_runs_onnx_model_and_fails_closed_on_nan(setup, tmp_path):
    kin, _, limits = setup
    names = risk_feature_names(kin.joint_names)
    w = np.zeros(28)
    w[1] = -8.0  # risk rises as joint 2 approaches a limit
    critic = SafetyCritic(_logistic_model(tmp_path / "risk.onnx", w, 3.0, names=names), kin=kin, limits=limits)
    assert critic.num_features == 28 and critic.feature_names == names
    safe = critic(Q0, np.zeros(7), Q0)
    q = Q0.copy()
    q[1] = 2.09
    risky = critic(q, np.zeros(7), q)
    assert safe < 0.1 < 0.9 < risky
    feats = risk_features(kin, np.stack([Q0, q]), np.zeros((2, 7)), np.stack([Q0, q]), limits)
    z = 3.0 - 8.0 * feats[:, 1].astype(np.float64)
    np.testing.assert_allclose(critic.predict(feats), 1 / (1 + np.exp(-z)), rtol=1e-5)
    nan_critic = SafetyCritic(_logistic_model(tmp_path / "nan.onnx", w, 0.0, output_nan=True))
    assert nan_critic.predict(feats).tolist() == [1.0, 1.0]
    flat = SafetyCritic(_logistic_model(tmp_path / "flat.onnx", w, 0.0, out_shape=("N",)))
    assert flat.predict(feats).shape == (2,)
    with pytest.raises(ValueError, match="expected 28 features"):
        critic.predict(np.zeros((1, 27)))
    with pytest.raises(ValueError, match="kin=..., limits"):
        flat(Q0, np.zeros(7), Q0)


def test_critic_refuses_models_for_other_features(setup, tmp_path):
    kin, _, limits = setup
    with pytest.raises(ValueError, match="expects 20 features"):
        SafetyCritic(_logistic_model(tmp_path / "w.onnx", np.zeros(20), 0.0), kin=kin, limits=limits)
    wrong = risk_feature_names([f"j{i}" for i in range(7)])
    with pytest.raises(ValueError, match="different features"):
        SafetyCritic(_logistic_model(tmp_path / "n.onnx", np.zeros(28), 0.0, names=wrong), kin=kin, limits=limits)


def test_critic_risk_drives_the_filter_backup(setup, tmp_path):
    kin, cfg, limits = setup
    w = np.zeros(28)
    w[1] = -8.0
    critic = SafetyCritic(_logistic_model(tmp_path / "risk.onnx", w, 3.0), kin=kin, limits=limits)
    f = SafetyFilter(cfg)
    names = list(cfg.joint_names)
    q = Q0.copy()
    q[1] = 2.05
    f.on_state(0.0, names, q, np.zeros(7))
    f.on_command(0.0, names, q)
    f.set_risk(0.0, critic(q, np.zeros(7), q))
    out, st = f.tick(0.0)
    assert st["mode"] == "backup" and st["risk"] > 0.9
    np.testing.assert_allclose(out, q)


def test_safety_layer_imports_and_runs_without_torch(iiwa_model_xml, tmp_path):
    """A robot runs with onnxruntime, numpy and MuJoCo: the safety layer (filter with a workspace
    box, critic features from the robot model) never imports torch."""
    xml = tmp_path / "robot.xml"
    xml.write_text(iiwa_model_xml)
    model = _logistic_model(tmp_path / "risk.onnx", np.zeros(28), 0.0)
    code = f"""
import sys, numpy as np
from pathlib import Path
from robot_rl.kinematics import RobotKinematics
from robot_rl.safety import SafetyConfig, SafetyFilter, SafetyCritic, RiskLimits
cfg = SafetyConfig.from_model(Path({str(xml)!r}), velocity_limit=1.0, workspace_lower=[-1, -1, 0], workspace_upper=[1, 1, 2])
f = SafetyFilter(cfg)
names = list(cfg.joint_names)
f.on_state(0.0, names, np.zeros(7)); assert f.on_command(0.0, names, np.full(7, 0.1)); f.tick(0.0)
kin = RobotKinematics(Path({str(xml)!r}), names)
c = SafetyCritic({str(model)!r}, kin=kin, limits=RiskLimits.from_config(cfg))
assert abs(c(np.zeros(7), np.zeros(7), np.zeros(7)) - 0.5) < 1e-6
assert "torch" not in sys.modules, "the safety layer imported torch"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
