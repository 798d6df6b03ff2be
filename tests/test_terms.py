"""Observation and action terms are defined once: for every term of every task, the env (batched
torch, simulator state) and the deploy side (`RobotObserver`: numpy, one robot, MuJoCo kinematics
on the artifact's robot model) compute the same values from the same robot state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.export import deploy_spec
from robot_rl.kinematics import kinematic_model_xml
from robot_rl.observer import RobotObserver
from robot_rl.sim import make_env, task_names
from robot_rl.sim.model import uses_effort
from robot_rl.terms import ActTerm, ActionGroup, make_context

N = 3


def _observer(env, tmp_path) -> RobotObserver:
    (tmp_path / "robot.xml").write_text(kinematic_model_xml(env.robot))
    return RobotObserver(deploy_spec(env), tmp_path)


def _robot_state(env, obs_side, i: int):
    q = env.state.joint_pos[i].double().numpy()
    dq = env.state.joint_vel[i].double().numpy()
    cmds = {k: v[i].double().numpy() for k, v in env.commands.items()}
    # what the robot's torque sensors report (a task without an effort term builds no effort sensors)
    effort = env.state.joint_effort[i].double().numpy() if uses_effort(env.task) else None
    return obs_side.state(q, dq, effort, cmds)


def _sync_action_state(env, obs_side, i: int) -> None:
    """Give the robot side the env's held joint targets and last action (the policy's history)."""
    for t_env, t_obs in zip(env.action_terms.terms, obs_side.actions.terms):
        if t_env.target is not None and t_obs.target is not None:
            t_obs.target[:] = t_env.target[i].double().numpy()
    obs_side.last_action = env.actions[i : i + 1].double().numpy()


@pytest.mark.parametrize("task", [t for t in task_names() if t != "toy-reach"])
def test_every_observation_term_is_the_same_in_the_env_and_on_the_robot(task, tmp_path):
    env = make_env(task, N, dr="off", seed=3, nthread=1)
    env.reset()
    obs_side = _observer(env, tmp_path)
    dims = env.policy_group.dims
    gen = torch.Generator().manual_seed(0)
    for step in range(12):
        obs, *_ = env.step(torch.rand(N, env.num_actions, generator=gen) * 2 - 1)
        expected = obs["policy"].numpy()  # DR off: no noise, bias or delay
        for i in range(N):
            state = _robot_state(env, obs_side, i)
            _sync_action_state(env, obs_side, i)
            got = obs_side.observe(state)
            start = 0
            for term, d in zip(env.policy_group.terms, dims):
                np.testing.assert_allclose(got[start:start + d], expected[i, start:start + d], atol=2e-5,
                                           err_msg=f"{task}: term {term.name} ({term.func}) at step {step}, env {i}")
                start += d


@pytest.mark.parametrize("task", [t for t in task_names() if t != "toy-reach"])
def test_every_action_term_gives_the_same_commands_in_the_env_and_on_the_robot(task, tmp_path):
    env = make_env(task, N, dr="off", seed=4, nthread=1)
    env.reset()
    obs_side = _observer(env, tmp_path)
    gen = torch.Generator().manual_seed(1)
    for _ in range(8):
        a = torch.rand(N, env.num_actions, generator=gen) * 2 - 1
        states = []
        for i in range(N):
            states.append(_robot_state(env, obs_side, i))
        before = [[None if t.target is None else t.target[i].clone() for t in env.action_terms.terms] for i in range(N)]
        env.step(a)
        for i in range(N):
            for t_obs, held in zip(obs_side.actions.terms, before[i]):
                if held is not None and t_obs.target is not None:
                    t_obs.target[:] = held.double().numpy()
            cmd = obs_side.apply(a[i].numpy(), states[i])
            for t_env in env.action_terms.terms:
                if t_env.mode != "position":
                    continue
                want = t_env.target[i].double().numpy()
                got = np.array([cmd[j] for j in t_env.joints])
                np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{task}: action term {t_env.func}")


def test_end_effector_delta_and_gripper_terms_agree_between_torch_and_numpy(tmp_path):
    """The two action terms no built-in task uses, on the Panda: the same state, the same action,
    torch (env) and numpy (robot side) give the same joint targets; the IK moves the frame by the
    commanded displacement."""
    env = make_env("panda-reach", N, dr="off", seed=5, nthread=1)
    env.reset()
    spec = deploy_spec(env)
    terms = [ActTerm("ee", "ee_delta", {"scale": 0.01, "frame": "ee"}), ActTerm("grip", "gripper", {})]
    torch_group = ActionGroup(terms, env.ctx)
    torch_group.allocate(N, env.actions)
    spec["action"]["terms"] = [{"name": t.name, "func": t.func, "params": t.params} for t in terms]
    spec["action"]["dim"] = 4
    (tmp_path / "robot.xml").write_text(kinematic_model_xml(env.robot))
    obs_side = RobotObserver(spec, tmp_path)
    a = torch.tensor([[0.5, -0.3, 0.8, -1.0], [0.0, 0.0, 0.0, 1.0], [-1.0, 1.0, 0.2, 0.0]])
    out = torch_group(a, env.state)
    for i in range(N):
        cmd = obs_side.apply(a[i].numpy(), _robot_state(env, obs_side, i))
        arm = np.array([cmd[j] for j in env.robot.joint_names])
        np.testing.assert_allclose(arm, out[0][i].double().numpy(), atol=1e-4)
        fingers = np.array([cmd[j] for j in env.robot.gripper.joint_names])
        np.testing.assert_allclose(fingers, out[1][i].double().numpy(), atol=1e-6)
    # the differential IK moves the ee by (about) the commanded displacement
    kin = obs_side.kin
    q = env.state.joint_pos[0].double().numpy()
    dq = out[0][0].double().numpy() - q[: len(env.robot.joint_names)]
    site = env.robot.frames["ee"]
    moved = kin.site_pos(np.concatenate([q[:7] + dq, q[7:]]), site) - kin.site_pos(q, site)
    np.testing.assert_allclose(moved, 0.01 * a[0, :3].numpy(), atol=1.5e-3)
    np.testing.assert_allclose(out[1][1].numpy(), env.robot.gripper.open_position)
    np.testing.assert_allclose(out[1][0].numpy(), env.robot.gripper.closed_position)


def test_unknown_terms_are_clear_errors():
    env = make_env("iiwa-reach", 1, dr="off", nthread=1)
    ctx = make_context(env.robot.describe(env.model), {"target_pos": 3})
    from robot_rl.terms import ObsTerm

    with pytest.raises(ValueError, match="unknown function 'ee_quat'"):
        ObsTerm("q", "ee_quat").build(ctx)
    with pytest.raises(ValueError, match="frame 'tcp' is not declared"):
        ObsTerm("p", "frame_pos", {"frame": "tcp"}).build(ctx)
    with pytest.raises(ValueError, match="command 'goal' is not declared"):
        ObsTerm("g", "command", {"name": "goal"}).build(ctx)
    with pytest.raises(ValueError, match="has no gripper"):
        ActTerm("g", "gripper").build(ctx)


def test_ee_delta_options_are_checked():
    env = make_env("panda-reach", 1, dr="off", nthread=1)
    ctx = make_context(env.robot.describe(env.model), {})
    with pytest.raises(ValueError, match="hold_frame must be another frame"):
        ActTerm("ee", "ee_delta", {"frame": "ee", "hold_frame": "ee"}).build(ctx)
    with pytest.raises(ValueError, match="hold_axis must be a non-zero 3-vector"):
        ActTerm("ee", "ee_delta", {"hold_frame": "flange", "hold_axis": [0, 0, 0]}).build(ctx)
    with pytest.raises(ValueError, match="anchor must be 'measured' or 'held'"):
        ActTerm("ee", "ee_delta", {"anchor": "target"}).build(ctx)
    with pytest.raises(ValueError, match="frame 'wrist' is not declared"):
        ActTerm("ee", "ee_delta", {"hold_frame": "wrist"}).build(ctx)
    # the recorded params are exactly what rebuilds the term (spec.json round trip)
    t = ActTerm("ee", "ee_delta", {"hold_frame": "flange", "anchor": "held", "max_lead": 0.02}).build(ctx)
    again = ActTerm("ee", "ee_delta", t.describe()["params"]).build(ctx)
    assert again.describe() == t.describe() and again.held and again.hold_frame == "flange"
