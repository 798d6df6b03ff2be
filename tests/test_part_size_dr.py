"""The part size tolerance DR term (`part_size_delta_m`, `Task.toleranced_geoms`).

* Tasks that name no toleranced geoms are unchanged: their sampled DR values, observation and
  critic sizes and simulation for seed 0 equal the values recorded on `main` before the term
  existed (iiwa-reach, cartpole-swingup).
* panda-peg-insert has the term: one more DR column (in `info["dr"]` and the critic group), sampled
  per physics variant within the mode's range, written as the peg's radius with the broad phase's
  bounds as MuJoCo's compiler computes them; a 0.3 mm larger peg touches a wall that the nominal
  peg clears by 0.15 mm (and would not, were the bounds left stale).
* Bad declarations are refused in one line; pybullet refuses to resize a collision shape.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest
import torch

from robot_rl.sim import make_env
from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.randomization import NOMINAL, PARAM_NAMES
from robot_rl.sim.tasks import make_task
from robot_rl.sim.tasks import panda_peg_insert as P

# recorded on main (2af280a) before the term existed: make_env(task, 4, dr=mode, seed=0, nthread=1),
# reset, 30 steps of uniform actions from torch.Generator().manual_seed(1); env 0
BEFORE = {
    ("iiwa-reach", "train"): {
        "num_obs": {"policy": 37, "critic": 53},
        "dr0": [1.016918420791626, 0.8149186968803406, 0.13871687650680542, 0.0, 0.0, 0.07931606471538544, 1.0,
                1.0, 1.127912163734436, 1.1491199731826782, 1.0595324039459229, 1.0135092735290527,
                0.03352431580424309, 0.0, 0.0, 0.000614845659583807],
        "qpos0": [-0.2872098769762489, 0.23782085462678182, 0.028221285214193186, -1.2430825585657428,
                  0.03968062181450169, 0.7326529422503992, -0.17911302703243517],
    },
    ("cartpole-swingup", "eval"): {
        "num_obs": {"policy": 6, "critic": 22},
        "dr0": [1.216102957725525, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.7764534950256348, 1.0, 1.0, 1.0,
                0.8686708807945251, 0.0, 1.0, 0.0, 0.0],
        "qpos0": [-0.08681734389331738, 3.12554195673095],
    },
}


@pytest.mark.parametrize("task,mode", list(BEFORE))
def test_tasks_without_toleranced_geoms_are_unchanged(task, mode):
    want = BEFORE[(task, mode)]
    env = make_env(task, 4, dr=mode, seed=0, nthread=1)
    env.reset()
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        _, _, _, _, info = env.step(torch.rand(4, env.num_actions, generator=gen) * 2 - 1)
    assert env.param_names == PARAM_NAMES and tuple(info["dr"]) == PARAM_NAMES
    assert env.num_obs == want["num_obs"]
    assert torch.equal(env.dr_values[0], torch.tensor(want["dr0"], dtype=env.dr_values.dtype))
    np.testing.assert_allclose(env.sim.qpos[0].double().numpy(), want["qpos0"], rtol=0, atol=1e-9)


def _peg(env) -> int:
    return env.model.geom("peg").id


def test_peg_insert_samples_the_peg_radius_per_variant():
    env = make_env("panda-peg-insert", 8, dr="eval", seed=3, nthread=1, physics_variants=4)
    obs = env.reset()
    _, _, _, _, info = env.step(torch.zeros(8, env.num_actions))
    assert env.param_names == (*PARAM_NAMES, "part_size_delta_m") and tuple(info["dr"]) == env.param_names
    base = make_env("panda-peg-insert", 1, dr="off", seed=0, nthread=1)  # same critic terms
    assert env.num_obs["critic"] == base.num_obs["critic"] and obs["critic"].shape[1] == env.num_obs["critic"]
    delta = info["dr"]["part_size_delta_m"]
    lo, hi = P.EVAL_DR.part_size_delta_m
    assert bool(((delta >= lo) & (delta <= hi)).all()) and float(delta.std()) > 0
    assert torch.equal(env._observe(env._empty, advance=False)["critic"][:, -1], delta)
    g = _peg(env)
    for i in range(8):  # the env's variant carries its sampled radius, bounds as MuJoCo compiles them
        m = env.sim.models[i]
        r, h = float(m.geom_size[g, 0]), float(m.geom_size[g, 1])
        assert r == pytest.approx(P.PEG_RADIUS + float(delta[i]), abs=1e-9)
        ref = mujoco.MjModel.from_xml_string(f'<mujoco><worldbody><geom type="cylinder" size="{r:.17g} {h:.17g}"/>'
                                             '</worldbody></mujoco>')
        np.testing.assert_allclose(m.geom_rbound[g], ref.geom_rbound[0], atol=1e-12)
        np.testing.assert_allclose(m.geom_aabb[g], ref.geom_aabb[0], atol=1e-12)
    others = [k for k in range(env.model.ngeom) if k != g]  # nothing else changes
    assert np.array_equal(env.sim.models[0].geom_size[others], env.model.geom_size[others])


def _contacts(delta: float, stale_bounds: bool = False) -> list[str]:
    """Walls the peg touches with its axis 0.85 mm off the hole's towards wall0 (+x), 10 mm deep:
    the nominal peg clears wall0 by 0.15 mm."""
    env = make_env("panda-peg-insert", 1, dr=dataclasses.replace(NOMINAL, part_size_delta_m=(delta, delta)),
                   seed=0, nthread=1)
    env.reset()
    m, g = env.sim.variants[0], _peg(env)
    if stale_bounds:
        m.geom_rbound[g], m.geom_aabb[g] = env.model.geom_rbound[g], env.model.geom_aabb[g]
    d = mujoco.MjData(m)
    ee = np.array([*P.BLOCK_XY, P.BLOCK_HEIGHT - 0.010 + P.PEG_TIP])
    d.qpos[[int(m.joint(j).qposadr[0]) for j in env.robot.joint_names]] = env.task._ik(
        env, ee, np.asarray(env.robot.default_pose))
    mujoco.mj_forward(m, d)
    off = d.site("peg_tip").xpos[:2] - d.site("hole_top").xpos[:2]
    d.qpos[m.joint("hole_x").qposadr[0]] = off[0] - 0.00085
    d.qpos[m.joint("hole_y").qposadr[0]] = off[1]
    mujoco.mj_forward(m, d)
    return [m.geom(int(c.geom2 if c.geom1 == g else c.geom1)).name for c in d.contact[:d.ncon]]


def test_a_larger_peg_contacts_earlier():
    assert "wall0" not in _contacts(0.0)
    assert "wall0" in _contacts(0.0003)
    assert "wall0" not in _contacts(0.0003, stale_bounds=True)  # why the bounds are written too


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="part_size_delta_m .* has no effect: the task names no toleranced geoms"):
        make_env("iiwa-reach", 1, dr=dataclasses.replace(NOMINAL, part_size_delta_m=(-1e-4, 1e-4)))
    with pytest.raises(ValueError, match=r"dr \(set_dr\).part_size_delta_m .* no toleranced geoms"):
        make_env("iiwa-reach", 1).set_dr(dataclasses.replace(NOMINAL, part_size_delta_m=(0.0, 1e-4)))
    with pytest.raises(ValueError, match="toleranced geom 'nope' is not a geom of the model"):
        make_env(dataclasses.replace(make_task("panda-peg-insert"), toleranced_geoms=("nope",)), 1)
    with pytest.raises(ValueError, match="toleranced geom 'wall0' is a mjGEOM_BOX"):
        make_env(dataclasses.replace(make_task("panda-peg-insert"), toleranced_geoms=("wall0",)), 1)


def test_pybullet_refuses_to_resize_a_collision_shape():
    pytest.importorskip("pybullet")
    env = make_env("iiwa-reach", 2, dr="off", backend="pybullet", seed=0)
    size = env.sim.nominal("geom_size")
    env.sim.set_physics("geom_size", np.array([0]), size[None])  # nominal: accepted
    bigger = size.copy()
    bigger[0, 0] += 1e-3
    with pytest.raises(UnsupportedFeature, match="cannot resize a collision shape"):
        env.sim.set_physics("geom_size", np.array([1]), bigger[None])
