"""The Franka Panda: its declaration (`models/panda/robot.py`) and its MJCF (`panda.xml`, built by
`models/panda/build_from_urdf.py`) agree, the gripper works, and `panda-reach` runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest
import torch

from robot_rl.models.panda.robot import GRIPPER_KD, GRIPPER_KP, PANDA
from robot_rl.robots import get_robot
from robot_rl.sim import make_env, make_task


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return PANDA.load_model()


def _settle(model, q_arm, grip_ctrl, steps=100) -> mujoco.MjData:
    """Hold the arm at `q_arm` and the gripper at `grip_ctrl` for `steps` physics steps."""
    d = mujoco.MjData(model)
    d.qpos[[model.joint(j).qposadr[0] for j in PANDA.joint_names]] = q_arm
    d.ctrl[[model.actuator(f"panda_act{i}").id for i in range(1, 8)]] = q_arm
    d.ctrl[model.actuator(PANDA.gripper.actuator).id] = grip_ctrl
    for _ in range(steps):
        mujoco.mj_step(model, d)
    return d


def _fingers(model, d) -> np.ndarray:
    return np.array([d.qpos[model.joint(j).qposadr[0]] for j in PANDA.gripper.joint_names])


def test_registry_and_built_model_match(model):
    assert get_robot("panda") is PANDA
    assert model.nmesh == 0  # capsules only: nothing to ship
    assert model.opt.timestep == 0.01 and model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert make_task("panda-reach").decimation * model.opt.timestep == pytest.approx(0.02)  # 50 Hz policy


def test_model_file_is_what_the_build_script_writes():
    from robot_rl.models.panda.build_from_urdf import build

    spec = build()
    spec.compile()
    assert spec.to_xml() == PANDA.model_path.read_text()


def test_arm_joints_and_actuators_match_the_declaration(model):
    a = PANDA.actuator
    urdf = ET.parse(PANDA.urdf_path()).getroot()
    limits = {j.get("name"): j.find("limit") for j in urdf.iter("joint") if j.find("limit") is not None}
    for i, name in enumerate(PANDA.joint_names):
        j = model.joint(name)
        dof = j.dofadr[0]
        act = model.actuator(name.replace("joint", "act"))
        assert act.trnid[0] == j.id and act.trntype == mujoco.mjtTrn.mjTRN_JOINT
        assert act.gainprm[0] == pytest.approx(a.kp[i])
        assert act.biasprm[1] == pytest.approx(-a.kp[i]) and act.biasprm[2] == pytest.approx(-a.kd[i])
        assert model.dof_armature[dof] == pytest.approx(a.armature[i])
        assert model.dof_damping[dof] == pytest.approx(a.damping[i])
        assert model.dof_frictionloss[dof] == pytest.approx(a.frictionloss[i])
        lim = limits[name]
        assert model.jnt_actfrclimited[j.id]
        np.testing.assert_allclose(model.jnt_actfrcrange[j.id], [-PANDA.effort_limits[i], PANDA.effort_limits[i]])
        assert PANDA.effort_limits[i] == float(lim.get("effort"))
        assert PANDA.velocity_limits[i] == float(lim.get("velocity"))
        np.testing.assert_allclose(j.range, [float(lim.get("lower")), float(lim.get("upper"))])
        np.testing.assert_allclose(act.ctrlrange, j.range)
    lo, hi = PANDA.position_limits(model).T
    assert np.all(lo < PANDA.default_pose) and np.all(np.array(PANDA.default_pose) < hi)
    moving = [b for b in range(1, model.nbody) if model.body_weldid[b] != 0]
    np.testing.assert_allclose(model.body_gravcomp[moving], 1.0)  # arm, hand and fingers
    assert model.body(PANDA.payload_body).name == "panda_hand"


def test_only_the_finger_pads_collide(model):
    pads = {f"panda_{s}finger_pad" for s in ("left", "right")}
    for g in range(model.ngeom):
        on = model.geom_contype[g] or model.geom_conaffinity[g]
        assert bool(on) == (model.geom(g).name in pads), model.geom(g).name
    assert not model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT


def test_gripper_actuator_drives_both_fingers_symmetrically(model):
    g = PANDA.gripper
    act = model.actuator(g.actuator)
    assert act.trntype == mujoco.mjtTrn.mjTRN_TENDON
    ten = act.trnid[0]
    wraps = range(model.tendon_adr[ten], model.tendon_adr[ten] + model.tendon_num[ten])
    assert sorted(model.joint(model.wrap_objid[w]).name for w in wraps) == sorted(g.joint_names)
    np.testing.assert_allclose(model.wrap_prm[list(wraps)], 0.5)  # tendon = mean finger opening
    assert act.gainprm[0] == GRIPPER_KP and act.biasprm[1] == -GRIPPER_KP and act.biasprm[2] == -GRIPPER_KD
    np.testing.assert_allclose(act.ctrlrange, [g.closed_position, g.open_position])
    np.testing.assert_allclose(act.forcerange, [-2 * g.max_force, 2 * g.max_force])
    eq = model.equality("panda_finger_coupling")
    assert eq.type == mujoco.mjtEq.mjEQ_JOINT
    assert {model.joint(int(eq.obj1id[0])).name, model.joint(int(eq.obj2id[0])).name} == set(g.joint_names)
    d = _settle(model, PANDA.default_pose, 0.02)
    np.testing.assert_allclose(_fingers(model, d), [0.02, 0.02], atol=1e-3)


def test_gripper_opens_and_closes(model):
    g = PANDA.gripper
    d = _settle(model, PANDA.default_pose, g.open_position)
    np.testing.assert_allclose(_fingers(model, d), [g.open_position] * 2, atol=1e-3)
    d.ctrl[model.actuator(g.actuator).id] = g.closed_position
    for _ in range(100):
        mujoco.mj_step(model, d)
    np.testing.assert_allclose(_fingers(model, d), [g.closed_position] * 2, atol=1e-3)
    assert np.isfinite(d.qvel).all()


@pytest.mark.parametrize("opening", [0.0, 0.02, 0.04])
def test_ee_lies_between_the_finger_pads(model, opening):
    q = np.array(PANDA.default_pose) + np.random.default_rng(0).uniform(-0.3, 0.3, 7)
    d = _settle(model, q, opening, steps=150)
    left, right = (d.geom(f"panda_{s}finger_pad").xpos for s in ("left", "right"))
    ee, flange, tool = (d.site(PANDA.frames[f]).xpos for f in ("ee", "flange", "tool"))
    axis = right - left
    width = np.linalg.norm(axis)
    assert width == pytest.approx(2 * (opening + 0.004), abs=2e-3)  # pad centres 4 mm inside the faces
    if opening > 0:
        s = np.dot(ee - left, axis) / width**2
        assert s == pytest.approx(0.5, abs=0.02)  # midway between the pads
    mid = 0.5 * (left + right)
    assert np.linalg.norm(ee - mid) < 0.005  # at the pads' centre (1.6 mm further out along the hand)
    assert np.linalg.norm(ee - flange) == pytest.approx(0.105, abs=1e-6)
    assert np.linalg.norm(tool - flange) > np.linalg.norm(ee - flange)  # tool: the fingertips' end


def test_panda_reach_steps_with_finite_observations():
    env = make_env("panda-reach", 4, dr="train", seed=0, nthread=1)
    assert env.num_actions == 7
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        obs, rew, term, trunc, info = env.step(torch.rand(4, env.num_actions, generator=gen) * 2 - 1)
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(obs["critic"]).all()
    assert torch.isfinite(rew).all() and env.nan_resets == 0
    lo, hi = torch.tensor(env.task.target_lo), torch.tensor(env.task.target_hi)
    assert ((env.commands["target_pos"] >= lo) & (env.commands["target_pos"] <= hi)).all()
