"""Robot-side kinematics (robot_rl.kinematics): MuJoCo on the robot model an artifact carries."""

from __future__ import annotations

import json
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from robot_rl.kinematics import RobotKinematics, kinematic_model_xml
from robot_rl.robots import get_robot

IIWA = get_robot("iiwa14")
FOLDED = np.array([0.0, 2.0, 0.0, -2.0, 0.0, 2.0, 0.0])  # link 6/7 folded back onto links 2/3

# a small tree: a fixed base, a slide joint, an unlimited hinge with an off-origin anchor, a mesh
# geom, a material and a texture (which the kinematic model drops)
TOY = """
<mujoco model="toy">
  <asset>
    <mesh name="tetra" vertex="0 0 0  0.1 0 0  0 0.1 0  0 0 0.1"/>
    <texture name="grid" type="2d" builtin="checker" width="8" height="8"/>
    <material name="red" rgba="1 0 0 1" texture="grid"/>
  </asset>
  <worldbody>
    <geom name="floor" type="plane" size="1 1 0.1"/>
    <body name="base" pos="0 0 0.1">
      <geom name="base" type="capsule" size="0.05 0.1" material="red"/>
      <body name="a" pos="0 0 0.3" euler="0 0 0.3">
        <joint name="lift" type="slide" axis="0 0 1" range="-0.1 0.2"/>
        <geom name="shell" type="mesh" mesh="tetra" material="red"/>
        <geom name="a" type="capsule" size="0.04 0.1" euler="0 1.57 0"/>
        <body name="b" pos="0.2 0 0">
          <joint name="wrist" axis="0 1 0" pos="0.05 0 0"/>
          <geom name="b" type="capsule" size="0.03" fromto="0 0 0 0.2 0 0"/>
          <site name="tip" pos="0.2 0 0.01"/>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def _toy_robot():
    return SimpleNamespace(load_spec=lambda: mujoco.MjSpec.from_string(TOY))


@pytest.fixture(scope="module")
def kin() -> RobotKinematics:
    return RobotKinematics(kinematic_model_xml(IIWA), IIWA.joint_names)


def test_site_positions_equal_the_simulators_frames(kin):
    from robot_rl.sim import make_env

    env = make_env("iiwa-reach", 8, dr="off", seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    import torch

    for _ in range(5):  # random poses around the reset band
        env.step(torch.from_numpy(rng.uniform(-1, 1, (8, env.num_actions))).float())
    q = env.joint_pos.double().numpy()
    sim_ee = env.frame("ee").double().numpy()
    assert np.ptp(q, axis=0).max() > 0.1  # the envs are in different poses
    np.testing.assert_allclose(kin.site_pos(q, "ee"), sim_ee, atol=1e-5)  # float32 observations


def test_fk_is_batched_over_leading_axes(kin):
    rng = np.random.default_rng(1)
    q = rng.uniform(kin.lower, kin.upper, size=(2, 3, 7))
    out = kin.fk(q)["sites"]
    assert set(out) == set(kin.site_names) >= {"ee", "flange"}
    assert out["ee"].shape == (2, 3, 3)
    np.testing.assert_array_equal(out["ee"][1, 2], kin.site_pos(q[1, 2], "ee"))
    np.testing.assert_array_equal(kin.site_pos(q, "flange"), out["flange"])
    assert kin.site_pos(q[0, 0], "ee").shape == (3,)
    assert np.ptp(out["ee"].reshape(-1, 3), axis=0).min() > 0.01  # six different poses
    with pytest.raises(ValueError, match=r"q must have shape \[\.\.\., 7\]"):
        kin.fk(q[..., :6])


def test_site_jacobian_equals_finite_differences(kin):
    rng = np.random.default_rng(2)
    for _ in range(3):
        q = rng.uniform(kin.lower + 0.1, kin.upper - 0.1)
        jac = kin.site_jacobian(q, "ee")
        eps = 1e-6
        fd = np.stack([(kin.site_pos(q + eps * e, "ee") - kin.site_pos(q - eps * e, "ee")) / (2 * eps)
                       for e in np.eye(7)], axis=1)
        assert jac.shape == (3, 7)
        np.testing.assert_allclose(jac, fd, atol=1e-7)
    with pytest.raises(ValueError, match="one configuration"):
        kin.site_jacobian(np.zeros((2, 7)), "ee")


def test_joint_order_ranges_and_tree_match_mujoco():
    """Joints given in another order than the model's, a slide joint, an unlimited hinge with an
    off-origin anchor: positions equal MuJoCo's on the full model with qpos set by name."""
    full = mujoco.MjModel.from_xml_string(TOY)
    d = mujoco.MjData(full)
    k = RobotKinematics(kinematic_model_xml(_toy_robot()), ["wrist", "lift"])
    assert k.nq == 2 and k.site_names == ["tip"]
    np.testing.assert_array_equal(k.lower, [-np.inf, -0.1])
    np.testing.assert_array_equal(k.upper, [np.inf, 0.2])
    for wrist, lift in ((0.0, 0.0), (0.7, -0.05), (-2.5, 0.15)):
        d.qpos[full.joint("wrist").qposadr] = wrist
        d.qpos[full.joint("lift").qposadr] = lift
        mujoco.mj_forward(full, d)
        # (the written model rounds the body's euler angles to a quaternion with 1e-9 precision)
        np.testing.assert_allclose(k.site_pos([wrist, lift], "tip"), d.site("tip").xpos, atol=1e-8)
    assert k.site_pos([0.0, 0.1], "tip")[2] == pytest.approx(k.site_pos([0.0, 0.0], "tip")[2] + 0.1)


def test_unknown_joints_and_sites_give_a_clear_error():
    xml = kinematic_model_xml(IIWA)
    with pytest.raises(ValueError,
                       match=r"joints \['elbow'\] are not in the robot model \(it has \['lbr_iiwa_joint_1'"):
        RobotKinematics(xml, ["lbr_iiwa_joint_1", "elbow"])
    with pytest.raises(KeyError):
        RobotKinematics(xml, IIWA.joint_names).site_pos(np.zeros(7), "tool0")


def test_kinematic_model_xml_has_no_meshes_and_compiles():
    xml = kinematic_model_xml(_toy_robot())
    for tag in ("<mesh", 'type="mesh"', "<material", "<texture", 'material="'):
        assert tag not in xml, tag
    m = mujoco.MjModel.from_xml_string(xml)  # self-contained: no files, no assets
    assert m.nmesh == m.nmat == m.ntex == 0
    full = mujoco.MjModel.from_xml_string(TOY)
    assert (m.nbody, m.njnt, m.nsite, m.ngeom) == (full.nbody, full.njnt, full.nsite, full.ngeom - 1)
    assert sorted(m.geom(i).name for i in range(m.ngeom)) == ["a", "b", "base", "floor"]
    # the iiwa's, as exported in artifacts
    iiwa = kinematic_model_xml(IIWA)
    assert "<mesh" not in iiwa and "file=" not in iiwa
    m = mujoco.MjModel.from_xml_string(iiwa)
    assert [m.joint(i).name for i in range(m.njnt)] == list(IIWA.joint_names)
    np.testing.assert_array_equal(RobotKinematics(iiwa, IIWA.joint_names).lower, IIWA.position_limits()[:, 0])


def test_from_artifact_reads_the_model_named_in_the_spec(tmp_path):
    (tmp_path / "robot.xml").write_text(kinematic_model_xml(IIWA))
    (tmp_path / "spec.json").write_text(json.dumps({"robot": {"model": "robot.xml"}}))
    k = RobotKinematics.from_artifact(tmp_path, IIWA.joint_names)
    direct = RobotKinematics(kinematic_model_xml(IIWA), IIWA.joint_names)
    np.testing.assert_array_equal(k.site_pos(np.zeros(7), "ee"), direct.site_pos(np.zeros(7), "ee"))


def test_self_collision_pairs_are_found():
    k = RobotKinematics(kinematic_model_xml(IIWA), IIWA.joint_names)
    assert len(k.self_collision_pairs) == 21  # 8 capsules (base + 7 links), non-adjacent pairs
    toy = RobotKinematics(kinematic_model_xml(_toy_robot()), ["lift", "wrist"])
    m = toy.model
    assert [(m.geom(a).name, m.geom(b).name) for a, b in toy.self_collision_pairs] == [("base", "b")]
    # a pair the model excludes from contact is not one
    spec = mujoco.MjSpec.from_string(TOY)
    ex = spec.add_exclude()
    ex.bodyname1, ex.bodyname2 = "base", "b"
    excluded = RobotKinematics(kinematic_model_xml(SimpleNamespace(load_spec=lambda: spec)), ["lift", "wrist"])
    assert len(excluded.self_collision_pairs) == 0
    assert excluded.self_collision_distance([0.0, 0.0]) == np.inf


def test_self_collision_distance_positive_at_home_negative_when_folded():
    k = RobotKinematics(kinematic_model_xml(IIWA), IIWA.joint_names)
    m = k.model
    names = {(m.body(m.geom_bodyid[a]).name, m.body(m.geom_bodyid[b]).name) for a, b in k.self_collision_pairs}
    assert ("world", "lbr_iiwa_link_2") in names and ("lbr_iiwa_link_1", "lbr_iiwa_link_2") not in names
    d = k.self_collision_distance(np.stack([np.array(IIWA.default_pose), FOLDED]))
    assert d.shape == (2,)
    assert 0.02 < d[0] < 0.2  # at home the nearest non-adjacent links are a few cm apart
    assert d[1] < -0.02  # folded: the capsules overlap
    assert k.self_collision_distance(FOLDED) == d[1]


def test_self_collision_distance_against_sampled_capsule_surfaces():
    """The distance equals a brute-force one: points sampled on each capsule's axis segment,
    smallest axis distance minus the radii, over the non-adjacent pairs."""
    k = RobotKinematics(kinematic_model_xml(IIWA), IIWA.joint_names)
    m, d = k.model, mujoco.MjData(k.model)
    rng = np.random.default_rng(4)
    t = np.linspace(-1.0, 1.0, 401)
    qs = np.concatenate([rng.uniform(k.lower, k.upper, size=(6, 7)), FOLDED[None]])
    for q in qs:
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        best = np.inf
        for a, b in k.self_collision_pairs:
            pa = d.geom_xpos[a] + t[:, None] * m.geom_size[a, 1] * d.geom_xmat[a].reshape(3, 3)[:, 2]
            pb = d.geom_xpos[b] + t[:, None] * m.geom_size[b, 1] * d.geom_xmat[b].reshape(3, 3)[:, 2]
            axis = np.linalg.norm(pa[:, None] - pb[None], axis=-1).min()
            best = min(best, axis - m.geom_size[a, 0] - m.geom_size[b, 0])
        # segments sampled every 0.5 % of their length (<= 1.2 mm): within a millimetre, never below
        assert k.self_collision_distance(q) == pytest.approx(best, abs=1.5e-3)
        assert k.self_collision_distance(q) <= best + 1e-9
