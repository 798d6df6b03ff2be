"""The MuJoCo Warp backend on Warp's CPU device: agreement with CPU MuJoCo, per-world physics
parameters, the env on it, and clear errors for what it cannot do.

`ROBOT_RL_TEST_WARP_DEVICE=cuda` runs the same tests on a GPU (CI has none; the default is `cpu`).

The first run compiles MuJoCo Warp's kernels for the CPU (about a minute; cached in ~/.cache/warp),
so backends are shared per module and worlds are few.
"""

from __future__ import annotations

import importlib
import os
import sys

import mujoco
import numpy as np
import pytest
import torch

pytest.importorskip("mujoco_warp")

from robot_rl.sim import make_env, make_task  # noqa: E402
from robot_rl.sim.backend import UnsupportedFeature, backend_class  # noqa: E402
from robot_rl.sim.model import add_state_sensors, build_model, build_spec  # noqa: E402
from robot_rl.sim.mujoco_backend import MujocoBackend  # noqa: E402
from robot_rl.sim.warp_backend import WarpBackend, check_structural_change  # noqa: E402

N = 4
DEV = os.environ.get("ROBOT_RL_TEST_WARP_DEVICE", "cpu")
# Warp simulates in float32, CPU MuJoCo in float64; over 50 control steps x 2 substeps from 4
# random states with random targets the largest differences measured were: qpos 1.3e-7 (iiwa) and
# 9.4e-7 (cartpole) rad/m, qvel 2.2e-6 (iiwa) and 2.1e-6 (cartpole) rad/s (velocities up to 5),
# `ee` position 3.0e-7 m, joint efforts 5.8e-5 Nm (efforts up to 60 Nm). Tolerances: about 5x that.
QPOS_ATOL = 5e-6
QVEL_ATOL = 1e-5
FRAME_ATOL = 2e-6
EFFORT_ATOL = 3e-4


def _pair(task_name: str, effort_sensors: bool = False):
    task = make_task(task_name)
    if effort_sensors:
        spec = build_spec(task)
        add_state_sensors(spec, [], task.robot.joint_names)
        model = spec.compile()
    else:
        model = build_model(task)
    return task, model, MujocoBackend(model, task.robot, N, nthread=1), WarpBackend(model, task.robot, N, device=DEV)


@pytest.fixture(scope="module")
def iiwa():
    return _pair("iiwa-reach", effort_sensors=True)


@pytest.fixture(scope="module")
def cartpole():
    return _pair("cartpole-swingup")


def _random_state(model, rng):
    q = np.tile(model.qpos0, (N, 1)) + rng.uniform(-0.5, 0.5, (N, model.nq))
    v = rng.uniform(-0.3, 0.3, (N, model.nv))
    return q, v


def _targets(model, q, rng):
    """Position targets near the current configuration (motors: normalized forces)."""
    if model.actuator_biastype[0] == mujoco.mjtBias.mjBIAS_NONE:
        return rng.uniform(-1.0, 1.0, (N, model.nu))
    cols = [int(model.jnt_qposadr[model.actuator_trnid[a, 0]]) for a in range(model.nu)]
    return q[:, cols] + rng.uniform(-0.3, 0.3, (N, model.nu))


@pytest.mark.parametrize("which", ["iiwa", "cartpole"])
def test_warp_agrees_with_cpu_mujoco(which, request):
    task, model, cpu, warp = request.getfixturevalue(which)
    rng = np.random.default_rng(0)
    q, v = _random_state(model, rng)
    ids = torch.arange(N)
    for sim in (cpu, warp):
        sim.set_joint_state(ids, torch.as_tensor(q), torch.as_tensor(v))
    sites = list(cpu._frames)
    err = {"qpos": 0.0, "qvel": 0.0, "frame": 0.0, "effort": 0.0}
    for k in range(50):
        ctrl = torch.as_tensor(_targets(model, q, rng))
        cpu.step(ctrl, 2)
        warp.step(ctrl.float().to(warp.device), 2)  # any float dtype
        err["qpos"] = max(err["qpos"], (cpu.qpos - warp.qpos.double().cpu()).abs().max().item())
        err["qvel"] = max(err["qvel"], (cpu.qvel - warp.qvel.double().cpu()).abs().max().item())
        for s in sites:
            err["frame"] = max(err["frame"], (cpu.frame_pos(s) - warp.frame_pos(s).double().cpu()).abs().max().item())
        if which == "iiwa":
            err["effort"] = max(err["effort"], (cpu.joint_effort - warp.joint_effort.double().cpu()).abs().max().item())
        if k == 25:  # a mid-rollout reset of one world: its snapshot is refreshed, the others keep theirs
            q1 = torch.as_tensor(q[2:3] * 0.5)
            for sim in (cpu, warp):
                sim.set_joint_state(torch.tensor([2]), q1, torch.zeros(1, model.nv))
    assert err["qpos"] < QPOS_ATOL, err
    assert err["qvel"] < QVEL_ATOL, err
    assert err["frame"] < FRAME_ATOL, err
    assert err["effort"] < EFFORT_ATOL, err


def test_state_tensors_are_zero_copy_views_of_warp_arrays(iiwa):
    import warp as wp

    _, model, _, warp = iiwa
    assert warp.qpos.data_ptr() == wp.to_torch(warp._snap_qpos).data_ptr()
    assert warp.frame_pos("ee").data_ptr() == wp.to_torch(warp._snap_sensor).data_ptr() + 4 * int(
        model.sensor_adr[model.sensor("frame/ee").id])
    before = warp.qpos
    warp.step(torch.zeros(N, model.nu, device=warp.device), 1)
    assert warp.qpos is before  # updated in place


def test_efforts_without_effort_sensors_come_from_actuator_forces(iiwa):
    task, model_s, cpu, _ = iiwa
    model = build_model(task)  # no `effort/<joint>` sensors
    assert not any(model.sensor(i).name.startswith("effort/") for i in range(model.nsensor))
    warp = WarpBackend(model, task.robot, N, device=DEV)
    rng = np.random.default_rng(1)
    q, v = _random_state(model, rng)
    for sim in (cpu, warp):
        sim.set_joint_state(torch.arange(N), torch.as_tensor(q), torch.as_tensor(v))
    ctrl = torch.as_tensor(_targets(model, q, rng))
    for sim in (cpu, warp):
        sim.step(ctrl, 2)
    np.testing.assert_allclose(warp.joint_effort.double().cpu().numpy(), cpu.joint_effort.numpy(), atol=EFFORT_ATOL)
    for _ in range(3):
        for sim in (cpu, warp):
            sim.step(ctrl, 2)
    np.testing.assert_allclose(warp.joint_effort.double().cpu().numpy(), cpu.joint_effort.numpy(), atol=EFFORT_ATOL)


def test_set_physics_changes_one_world_only(iiwa):
    task, model, _, _ = iiwa
    warp = WarpBackend(model, task.robot, N, device=DEV)
    qidx = warp.joint_qpos_index(task.robot.joint_names)
    mass = warp.nominal("body_mass")[None].copy()
    mass[0, -1] += 3.0  # a payload on the last link of world 2
    warp.set_physics("body_mass", np.array([2]), mass)
    gain, bias = warp.nominal("actuator_gainprm")[None].copy(), warp.nominal("actuator_biasprm")[None].copy()
    gain[:, :, 0] *= 0.5
    bias[:, :, 1] *= 0.5
    warp.set_physics("actuator_gainprm", np.array([2]), gain)
    warp.set_physics("actuator_biasprm", np.array([2]), bias)
    # batched model fields: world 2 has the new values, the others the nominal ones
    m = warp.m
    assert m.body_mass.shape == (N, model.nbody)
    masses = m.body_mass.numpy()
    np.testing.assert_allclose(masses[2], mass[0], rtol=1e-6)
    np.testing.assert_allclose(masses[[0, 1, 3]], np.tile(model.body_mass, (3, 1)), rtol=1e-6)
    q0 = np.tile(model.qpos0, (N, 1))
    q0[:, qidx] = task.robot.default_pose
    warp.set_joint_state(torch.arange(N), torch.as_tensor(q0), torch.zeros(N, model.nv))
    ctrl = torch.zeros(N, model.nu)
    ctrl[:, warp.joint_actuator_index(task.robot.joint_names)] = torch.as_tensor(task.robot.default_pose) + 0.3
    for _ in range(5):
        warp.step(ctrl, 2)
    q = warp.qpos.double().cpu().numpy()[:, qidx]
    np.testing.assert_array_equal(q[0], q[1])
    np.testing.assert_array_equal(q[0], q[3])
    assert np.abs(q[2] - q[0]).max() > 1e-3
    # set_const ran per world: the subtree masses follow the new masses
    sub = m.body_subtreemass.numpy()
    assert sub.shape == (N, model.nbody)
    np.testing.assert_allclose(sub[2, 0] - sub[0, 0], 3.0, rtol=1e-5)
    np.testing.assert_allclose(sub[0], model.body_subtreemass, rtol=1e-5)
    # rendering data of world 2 carries its state and parameters
    rm, rd = warp.render_data(2)
    np.testing.assert_allclose(rd.qpos, warp._qpos_d[2].double().cpu().numpy())
    np.testing.assert_allclose(rm.body_mass, mass[0], rtol=1e-6)
    assert model.body_mass[-1] == pytest.approx(rm.body_mass[-1] - 3.0, rel=1e-6)  # the task's model is untouched


def test_derived_constants_all_recomputes_inertia_constants_per_world(iiwa):
    task, model, _, _ = iiwa
    warp = WarpBackend(model, task.robot, 2, device=DEV, derived_constants="all")
    mass = warp.nominal("body_mass")[None] * 2.0
    warp.set_physics("body_mass", np.array([1]), mass)
    warp.set_physics("body_inertia", np.array([1]), warp.nominal("body_inertia")[None] * 2.0)
    warp.set_physics("dof_armature", np.array([1]), warp.nominal("dof_armature")[None] * 2.0)
    warp.step(torch.zeros(2, model.nu, device=warp.device), 1)  # (recomputed before stepping)
    inv = warp.m.dof_invweight0.numpy()
    np.testing.assert_allclose(inv[0], model.dof_invweight0, rtol=1e-4)  # as mj_setConst
    np.testing.assert_allclose(inv[1], model.dof_invweight0 / 2.0, rtol=1e-4)  # twice the joint-space inertia


def test_env_runs_on_warp_cpu_device():
    env = make_env("iiwa-reach", N, backend="warp", device=DEV, seed=0)
    assert isinstance(env.sim, WarpBackend) and env.sim.device.type == DEV
    obs = env.reset()
    env.randomize_episode_start()  # so that some envs time out and reset inside `step`
    gen = torch.Generator().manual_seed(0)
    resets = 0
    for _ in range(30):
        obs, rew, term, trunc, info = env.step((torch.rand(N, env.num_actions, generator=gen) * 2 - 1).to(env.device))
        resets += len(info["episode"]["env_ids"])
        for t in (obs["policy"], obs["critic"], rew):
            assert torch.isfinite(t).all()
            assert t.device == env.device
    assert env.sim.qpos.device == env.device and env.sim.frame_pos("ee").device == env.device
    assert env.nan_resets == 0


def test_unsupported_features_raise_clear_errors(iiwa):
    task, model, _, warp = iiwa
    # a solver mujoco_warp does not implement: named, with the way out
    spec = build_spec(task)
    spec.option.solver = mujoco.mjtSolver.mjSOL_PGS
    with pytest.raises(UnsupportedFeature, match=r"mjSOL_PGS.*--env\.backend mujoco"):
        WarpBackend(spec.compile(), task.robot, 2)
    # a parameter change mujoco_warp cannot follow (a code path fixed when the model is loaded)
    xml = """<mujoco><option integrator="discrete"/><worldbody><body><joint name="j"/><geom size=".1"/></body>
             </worldbody><actuator><general joint="j" biastype="affine" biasprm="0 0 0"/></actuator></mujoco>"""
    m = mujoco.MjModel.from_xml_string(xml)
    bias = np.asarray(m.actuator_biasprm)[None].copy()
    check_structural_change(m, "actuator_biasprm", bias)  # nominal values: fine
    bias[0, 0, 2] = -1.0
    with pytest.raises(UnsupportedFeature, match="actuator_biasprm"):
        check_structural_change(m, "actuator_biasprm", bias)
    with pytest.raises(ValueError, match="unknown physics field"):
        warp.set_physics("body_pos", np.array([0]), np.zeros((1, model.nbody, 3)))
    with pytest.raises(UnsupportedFeature, match="cpu or cuda"):
        WarpBackend(model, task.robot, 2, device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):  # the env rejects the device before any backend
            make_env("iiwa-reach", 2, backend="warp", device="cuda")
    with pytest.raises(UnsupportedFeature, match="frame sensor"):
        warp.frame_pos("no-such-site")


def test_missing_package_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco_warp", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "robot_rl.sim.warp_backend")
    with pytest.raises(ImportError):
        importlib.import_module("robot_rl.sim.warp_backend")
    with pytest.raises(ImportError, match=r"robot-rl\[warp\]"):
        backend_class("warp")


def test_part_size_is_set_per_world_with_its_broad_phase_bounds():
    """panda-peg-insert with the peg 0.3 mm larger in world 1 only, its axis 0.85 mm off the hole's
    (the nominal peg clears the wall by 0.15 mm, the larger one presses into it): each world follows
    CPU MuJoCo with the same peg, and the larger peg's contact moves the world measurably."""
    from robot_rl.sim.physics_params import GEOM_FIELDS, part_size_fields
    from robot_rl.sim.tasks import panda_peg_insert as P

    task = make_task("panda-peg-insert")
    model = build_model(task)
    cpu = MujocoBackend(model, task.robot, 2, nthread=1, num_variants=2)
    warp = WarpBackend(model, task.robot, 2, device=DEV)
    g = model.geom("peg").id
    nominal = {f: np.array(getattr(model, f)) for f in GEOM_FIELDS}
    fields = part_size_fields(nominal, model.geom_type, [g], np.array([0.0, 0.0003]))
    for sim in (cpu, warp):
        for f in GEOM_FIELDS:
            sim.set_physics(f, np.array([0, 1]), fields[f])
    cpu.use_variants(torch.arange(2), torch.arange(2))
    d = mujoco.MjData(model)  # the peg 10 mm deep in the hole, 0.85 mm off its axis towards wall0
    joints = task.robot.joint_names
    env = make_env(task, 1, dr="off", seed=0, nthread=1)
    d.qpos[[int(model.joint(j).qposadr[0]) for j in joints]] = task._ik(
        env, np.array([*P.BLOCK_XY, P.BLOCK_HEIGHT - 0.010 + P.PEG_TIP]), np.asarray(task.robot.default_pose))
    mujoco.mj_forward(model, d)
    off = d.site("peg_tip").xpos[:2] - d.site("hole_top").xpos[:2]
    d.qpos[model.joint("hole_x").qposadr[0]] = off[0] - 0.00085
    d.qpos[model.joint("hole_y").qposadr[0]] = off[1]
    q = torch.as_tensor(np.tile(d.qpos, (2, 1)))
    for sim in (cpu, warp):
        sim.set_joint_state(torch.arange(2), q, torch.zeros(2, model.nv))
    arm = [a for a in range(model.nu) if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT]
    ctrl = torch.zeros(2, model.nu, dtype=torch.float64)  # hold the arm's pose, the gripper closed
    ctrl[:, arm] = q[:, [int(model.jnt_qposadr[model.actuator_trnid[a, 0]]) for a in arm]]
    for _ in range(5):
        cpu.step(ctrl, task.decimation)
        warp.step(ctrl.float().to(warp.device), task.decimation)
    qc, qw = cpu.qpos, warp.qpos.double().cpu()
    assert (qc[1] - qc[0]).abs().max().item() > 1e-4  # the larger peg's contact moves the world
    assert (qw - qc).abs().max().item() < 2e-5, (qw - qc).abs().max(1)
