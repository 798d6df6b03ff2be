"""One contract test suite for every simulator backend (`robot_rl.sim.backend`), on every robot.

Each test runs on MuJoCo (CPU), MuJoCo Warp (on Warp's CPU device, few worlds) and PyBullet.
Backend-specific agreement checks (Warp vs CPU MuJoCo on the same model, state and actions)
live in the backends' own test files.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.kinematics import RobotKinematics, kinematic_model_xml
from robot_rl.sim import make_env, make_task
from robot_rl.sim.backend import UnsupportedFeature, make_backend
from robot_rl.sim.dr_effects import without_payload_offset
from robot_rl.sim.model import build_model

BACKENDS = ["mujoco", "warp", "pybullet"]
ARM_TASKS = ["iiwa-reach", "panda-reach"]
N = 3


def _backend(name: str, task: str, n: int = N):
    t = make_task(task)
    model = build_model(t)
    return make_backend(name, model, t.robot, n, device="cpu", nthread=1, num_variants=0), t, model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", ARM_TASKS + ["cartpole-swingup"])
def test_state_tensors_have_the_declared_shapes(backend, task):
    sim, t, model = _backend(backend, task)
    assert sim.num_envs == N
    assert tuple(sim.qpos.shape) == (N, model.nq) and tuple(sim.qvel.shape) == (N, model.nv)
    assert isinstance(sim.qpos, torch.Tensor) and sim.qpos.device == torch.device("cpu")
    for frame, site in t.robot.frames.items():
        if site in [model.sensor(i).name.removeprefix("frame/") for i in range(model.nsensor)]:
            assert tuple(sim.frame_pos(site).shape) == (N, 3)
    assert sim.num_variants == N or not sim.exact_variants


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", ARM_TASKS)
def test_reset_sets_the_joint_state_and_frames_follow_kinematics(backend, task):
    sim, t, model = _backend(backend, task)
    robot = t.robot
    rng = np.random.default_rng(0)
    qidx = sim.joint_qpos_index(robot.joint_names)
    q = np.tile(model.qpos0, (N, 1))
    q[:, qidx] = np.asarray(robot.default_pose) + rng.uniform(-0.4, 0.4, (N, len(qidx)))
    ids = torch.arange(N)
    sim.set_joint_state(ids, torch.as_tensor(q), torch.zeros(N, model.nv))
    np.testing.assert_allclose(sim.qpos.double().numpy()[:, qidx], q[:, qidx], atol=1e-6)
    kin = RobotKinematics(kinematic_model_xml(robot), robot.joint_names)
    ee = sim.frame_pos(robot.frames["ee"]).double().numpy()
    np.testing.assert_allclose(ee, kin.site_pos(q[:, qidx], robot.frames["ee"]), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", ARM_TASKS)
def test_position_actuators_track_a_held_target(backend, task):
    sim, t, model = _backend(backend, task)
    robot = t.robot
    qidx = sim.joint_qpos_index(robot.joint_names)
    act = sim.joint_actuator_index(robot.joint_names)
    q0 = np.tile(model.qpos0, (N, 1))
    q0[:, qidx] = robot.default_pose
    sim.set_joint_state(torch.arange(N), torch.as_tensor(q0), torch.zeros(N, model.nv))
    target = np.asarray(robot.default_pose) + 0.2
    ctrl = torch.zeros(N, model.nu, dtype=torch.float64)
    ctrl[:, act] = torch.as_tensor(target)
    if robot.gripper is not None:
        ctrl[:, model.actuator(robot.gripper.actuator).id] = robot.gripper.open_position
    for _ in range(100):
        sim.step(ctrl, 2)
    err = np.abs(sim.qpos.double().numpy()[:, qidx] - target)
    assert err.max() < 0.05, err
    assert torch.isfinite(sim.qvel).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_physics_parameters_change_the_dynamics_per_variant(backend):
    sim, t, model = _backend(backend, "iiwa-reach")
    robot = t.robot
    qidx = sim.joint_qpos_index(robot.joint_names)
    act = sim.joint_actuator_index(robot.joint_names)
    gain = np.repeat(sim.nominal("actuator_gainprm")[None], 1, 0)
    bias = np.repeat(sim.nominal("actuator_biasprm")[None], 1, 0)
    gain[:, :, 0] *= 0.3
    bias[:, :, 1] *= 0.3
    sim.set_physics("actuator_gainprm", np.array([1]), gain)  # env 1 only: a weak controller
    sim.set_physics("actuator_biasprm", np.array([1]), bias)
    q0 = np.tile(model.qpos0, (N, 1))
    q0[:, qidx] = robot.default_pose
    sim.set_joint_state(torch.arange(N), torch.as_tensor(q0), torch.zeros(N, model.nv))
    ctrl = torch.zeros(N, model.nu, dtype=torch.float64)
    ctrl[:, act] = torch.as_tensor(np.asarray(robot.default_pose) + 0.3)
    for _ in range(5):
        sim.step(ctrl, 2)
    q = sim.qpos.double().numpy()[:, qidx]
    np.testing.assert_allclose(q[0], q[2], atol=1e-9)  # untouched variants agree
    assert np.abs(q[1] - q[0]).max() > 1e-3  # the weak one lags


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_push_changes_velocities_of_the_pushed_envs_only(backend):
    sim, t, model = _backend(backend, "iiwa-reach")
    before = sim.qvel.clone()
    kick = torch.full((1, model.nv), 0.5, dtype=torch.float64)
    sim.add_joint_velocity(torch.tensor([2]), kick)
    after = sim.qvel
    assert torch.allclose(after[:2].double(), before[:2].double())
    assert torch.allclose(after[2].double(), before[2].double() + 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", ARM_TASKS + ["cartpole-swingup"])
def test_the_same_task_file_runs_on_every_backend(backend, task):
    dr = make_task(task).dr.train
    if backend == "pybullet":  # it cannot move a centre of mass: the payload sits at the link origin
        dr = without_payload_offset(dr)
    env = make_env(task, N, dr=dr, seed=0, backend=backend, nthread=1)
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        obs, rew, term, trunc, info = env.step(torch.rand(N, env.num_actions, generator=gen) * 2 - 1)
    assert obs["policy"].shape == (N, env.num_obs["policy"])
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(obs["critic"]).all()
    assert torch.isfinite(rew).all()
    assert env.nan_resets == 0


def test_a_payload_offset_on_a_backend_that_cannot_move_a_centre_of_mass_is_refused():
    with pytest.raises(UnsupportedFeature, match="payload_pos.*cannot move a link's centre of mass"):
        make_env("iiwa-reach", 1, dr="train", backend="pybullet", nthread=1)
