"""panda-peg-insert: the hole's geometry and clearance, success at depth (not on the surface), the
contact DR terms change what they claim, the held-axis IK keeps the peg upright, and the scripted
expert inserts the peg."""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest
import torch

from robot_rl.sim import make_env
from robot_rl.sim.randomization import NOMINAL
from robot_rl.sim.task import ActTerm
from robot_rl.sim.tasks import panda_peg_insert as P
from robot_rl.sim.tasks.panda_peg_insert_expert import PegInsertExpert


@pytest.fixture(scope="module")
def env():
    return make_env("panda-peg-insert", 1, dr="off", seed=0, nthread=1)


def _place(env, depth: float, lateral=(0.0, 0.0)):
    """Put the arm with `ee` straight above the nominal hole, hand down, and the block under it so
    that the peg tip is `depth` below the hole's top and `lateral` (m) off its axis."""
    task = env.task
    x, y = 0.55, 0.0
    q = task._ik(env, np.array([x, y, P.BLOCK_HEIGHT + P.PEG_TIP - depth]), np.asarray(env.robot.default_pose))
    qpos, qvel = env.default_qpos(1)
    qpos[0, env._actuated_qpos] = torch.as_tensor(q, dtype=torch.float32)
    env.sim.set_joint_state(torch.tensor([0]), qpos, qvel)
    env._refresh_state()
    tip = env.frame("peg_tip")[0]
    qpos[0, task._hole_q] = torch.as_tensor([tip[0] - P.BLOCK_XY[0] - lateral[0], tip[1] - P.BLOCK_XY[1] - lateral[1]])
    env.sim.set_joint_state(torch.tensor([0]), qpos, qvel)
    env._refresh_state()
    m, d = env.sim.render_data(0)
    mujoco.mj_forward(m, d)
    peg = m.geom("peg").id
    dist = [d.contact[i].dist for i in range(d.ncon) if peg in (d.contact[i].geom1, d.contact[i].geom2)]
    return min(dist, default=np.inf)


def test_the_hole_leaves_the_stated_clearance_around_the_peg(env):
    m = env.model
    peg = m.geom("peg")
    assert peg.type[0] == mujoco.mjtGeom.mjGEOM_CYLINDER and peg.size[0] == pytest.approx(P.PEG_RADIUS)
    inner = [np.linalg.norm(m.geom(f"wall{k}").pos[:2]) - m.geom(f"wall{k}").size[0] for k in range(P.WALLS)]
    np.testing.assert_allclose(inner, P.HOLE_RADIUS, atol=1e-9)  # every wall is tangent to the hole
    assert P.HOLE_RADIUS - P.PEG_RADIUS == pytest.approx(P.CLEARANCE) and 2 * P.CLEARANCE <= 0.002
    # physically: centred 20 mm deep, the peg touches nothing; 0.6 mm off it still fits; 1.5 x the
    # clearance off, it cuts into the wall by about half a clearance
    assert _place(env, 0.02) > 0.0
    assert _place(env, 0.02, (0.0006, 0.0)) > 0.0
    assert _place(env, 0.02, (0.0, 1.5 * P.CLEARANCE)) < -0.3 * P.CLEARANCE
    assert _place(env, 0.02, (1.5 * P.CLEARANCE, 0.0)) < -0.3 * P.CLEARANCE


def test_success_needs_the_peg_at_depth_inside_the_hole(env):
    task = env.task
    _place(env, 0.02)
    assert bool(task.success(env)[0]) and bool(task.terminated(env)[0])
    lat, depth = task.errors(env)
    assert depth.item() == pytest.approx(0.02, abs=1e-4) and lat.item() < 1e-4
    _place(env, 0.005)  # in the hole, not deep enough
    assert not bool(task.success(env)[0])
    gap = _place(env, 0.0, (0.006, 0.0))  # resting on the block's top, 6 mm off the hole
    assert abs(gap) < 1e-3 and not bool(task.success(env)[0])
    assert task.reward(env)[0] < 1.0  # far from the success bonus


def test_shaping_sums_to_the_potential_change_so_hovering_never_beats_inserting(env):
    """Residual PPO found that hovering just short of the success depth paid more, over the rest of
    the episode, than the success bonus (which ends it). With shaping by the potential's change,
    staying put earns nothing, a round trip nets nothing, and the success step pays the bonus."""
    task = env.task
    env.actions.zero_()
    env.last_actions.zero_()
    task._phi_prev.fill_(float("nan"))  # a fresh episode: its first step has no shaping
    rewards, phis = [], []
    for depth in (0.0, 0.005, 0.010, 0.0145, 0.0145, 0.0145, 0.005, 0.0145):  # down, hover, up, down
        _place(env, depth)
        assert not bool(task.success(env)[0])
        phis.append(float(task.potential(env)[0]))
        rewards.append(float(task.reward(env)[0]))
    assert phis[:4] == sorted(phis[:4]) and phis[0] < phis[1] < phis[3]  # deeper is further along
    assert rewards[0] == 0.0 and rewards[1] > 0.0 and rewards[3] > 0.0  # progress pays ...
    assert rewards[4] == pytest.approx(0.0, abs=1e-6) and rewards[5] == pytest.approx(0.0, abs=1e-6)  # ... hovering not
    assert rewards[6] < 0.0 and rewards[6] + rewards[7] == pytest.approx(0.0, abs=1e-5)  # a round trip nets 0
    assert sum(rewards) == pytest.approx(phis[-1] - phis[0], abs=1e-5)
    _place(env, 0.02)
    r = float(task.reward(env)[0])
    assert bool(task.success(env)[0]) and P.SUCCESS_BONUS <= r <= P.SUCCESS_BONUS + 3.0


def test_the_observed_hole_is_off_by_the_hole_pose_error_and_the_grasp_by_its_offset():
    errs, grasp = {}, {}
    for mode in ("off", "train", "eval"):
        e = make_env("panda-peg-insert", 64, dr=mode, seed=1, nthread=1)
        e.reset()
        d = e.commands["hole_pos"] - e.frame("hole_top")
        errs[mode] = d[:, :2].norm(dim=1)
        assert d[:, 2].abs().max() <= P.CONTACT_DR[mode].hole_error_z_m + 1e-6
        assert torch.allclose(e.task.hole_true, e.frame("hole_top"), atol=1e-5)
        grasp[mode] = e.task.grasp.abs().amax(0)
        ee_to_tip = e.frame("peg_tip") - e.frame("ee")
        grasp[mode + "_spread"] = ee_to_tip[:, :2].std(0).max()
    assert errs["off"].max() < 1e-6 and grasp["off"].max() == 0 and grasp["off_spread"] < 1e-3
    for mode in ("train", "eval"):
        c = P.CONTACT_DR[mode]
        assert errs[mode].max() <= c.hole_error_m + 1e-6 and errs[mode].mean() > 0.4 * c.hole_error_m
        assert grasp[mode][0] > 0.8 * c.grasp_offset_m and grasp[mode][2] > 0.8 * c.grasp_tilt_rad
        assert grasp[mode + "_spread"] > 0.4 * c.grasp_offset_m  # the true tip moves in the hand
    assert errs["eval"].max() > P.CONTACT_DR["train"].hole_error_m  # held out: larger than training


def _expert_rollout(dr, steps=60, n=8, seed=0):
    e = make_env("panda-peg-insert", n, dr=dr, seed=seed, nthread=1)
    obs = e.reset()
    ex = e.task.expert(e, seed)
    ex.reset(e, torch.arange(n))
    tips = []
    for _ in range(steps):
        obs, *_ , info = e.step(ex.act(e, obs))
        if len(info["episode"]["env_ids"]):
            ex.reset(e, info["episode"]["env_ids"])
        tips.append(e.frame("peg_tip").clone())
    return torch.stack(tips)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_contact_friction_changes_the_insertion(mode):
    """`friction_scale` at its range's ends (everything else nominal) changes the peg's path
    through the contacts of the same expert episodes."""
    lo, hi = P.PandaPegInsert().dr.get(mode).friction_scale
    a = _expert_rollout(dataclasses.replace(NOMINAL, friction_scale=(lo, lo)))
    b = _expert_rollout(dataclasses.replace(NOMINAL, friction_scale=(hi, hi)))
    assert (a - b).abs().max() > 1e-4  # m


class _PositionOnlyIK(P.PandaPegInsert):
    def __init__(self):
        super().__init__(frames=("hole_top", "peg_tip", "flange"))

    def actions(self):
        return [ActTerm("ee", "ee_delta", {"scale": 0.01, "frame": "ee", "anchor": "held", "max_lead": 0.02})]


def test_holding_the_hand_axis_keeps_the_peg_upright_where_position_only_ik_tilts_it():
    tilt = {}
    for task in (P.PandaPegInsert(frames=("hole_top", "peg_tip", "flange")), _PositionOnlyIK()):
        e = make_env(task, 2, dr="off", seed=0, nthread=1)
        e.reset()
        start = e.frame("ee").clone()
        for _ in range(15):
            e.step(torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))
        r = e.frame("flange") - e.frame("ee")
        tilt[type(task).__name__] = torch.rad2deg(torch.atan2(r[:, :2].norm(dim=1), r[:, 2]))
        moved = (e.frame("ee") - start)[:, :2]
        assert moved[0, 0] > 0.02 and moved[1, 1] > 0.02  # both moved the commanded way
    assert tilt["PandaPegInsert"].max() < 0.5
    assert tilt["_PositionOnlyIK"][0] > 3.0  # degrees over 3 cm: the 1 mm clearance does not forgive it


def _first_episode_success(observed: bool, n: int = 16) -> torch.Tensor:
    e = make_env("panda-peg-insert", n, dr="train", seed=0, nthread=1)
    obs = e.reset()
    ex = PegInsertExpert(e, 0, observed=observed) if observed else e.task.expert(e, 0)
    ex.reset(e, torch.arange(n))
    first = torch.full((n,), -1.0)
    for _ in range(e.max_episode_length):
        a = ex.act(e, obs)
        assert a.shape == (n, 3) and a.abs().max() <= 1.0
        obs, _, _, _, info = e.step(a)
        ep = info["episode"]
        if len(ep["env_ids"]):
            ids = ep["env_ids"]
            new = first[ids] < 0
            first[ids[new]] = ep["success"][new].float()
            ex.reset(e, ids)
    assert (first >= 0).all() and e.nan_resets == 0  # every first episode ended, no divergence
    return first


def test_the_scripted_expert_inserts_the_peg_and_needs_the_true_hole_to_do_it():
    """The expert (true hole and peg tip, with noise) succeeds in most episodes; the same strategy
    on what the policy observes (the hole estimate off by up to 1 mm, the nominal grasp) does
    worse: the 1 mm clearance does not forgive the hidden errors (the benchmark's 600 steps x 128
    envs: 99.5% against 74.4%)."""
    expert = _first_episode_success(observed=False)
    assert expert.mean() >= 0.7, f"expert succeeded in {expert.mean():.0%} of {len(expert)} episodes"
    blind = _first_episode_success(observed=True)
    assert blind.mean() <= expert.mean() - 0.1, f"observed-state expert {blind.mean():.0%}, expert {expert.mean():.0%}"
