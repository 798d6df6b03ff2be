"""Numpy forward kinematics and capsule distances (robot_rl.kinematics) against MuJoCo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.kinematics import (
    Kinematics,
    chain_from_mjmodel,
    point_box_signed_distance,
    quat_to_mat,
    segment_box_signed_distance,
    segment_segment_distance,
)

IIWA = Path(__file__).resolve().parents[1] / "models" / "iiwa14" / "iiwa14.xml"


@pytest.fixture(scope="module")
def iiwa():
    model = mujoco.MjModel.from_xml_path(str(IIWA))
    return model, chain_from_mjmodel(model, ["ee"])


def _random_q(kin: Kinematics, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(kin.lower, kin.upper, size=(n, kin.nq))


def _mj_frames(model, q):
    data = mujoco.MjData(model)
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    return data


def test_chain_describes_iiwa(iiwa):
    model, chain = iiwa
    assert [b["name"] for b in chain["bodies"]] == [f"lbr_iiwa_link_{i}" for i in range(1, 8)]
    assert [b["parent"] for b in chain["bodies"]] == [-1, 0, 1, 2, 3, 4, 5]
    assert chain["joint_names"] == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    assert all(b["joint_type"] == "hinge" for b in chain["bodies"])
    assert chain["joint_ranges"]["lbr_iiwa_joint_2"] == pytest.approx([-2.0944, 2.0944])
    assert chain["sites"]["ee"]["body"] == 6
    assert chain["sites"]["ee"]["pos"] == pytest.approx([0, 0, 0.045])
    # 8 capsules: the base (on the world body) and one per link; the floor plane is skipped
    assert len(chain["geoms"]) == 8
    assert [g["body"] for g in chain["geoms"]] == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert all(g["type"] == "capsule" for g in chain["geoms"])


def test_fk_matches_mujoco_for_random_configurations(iiwa):
    model, chain = iiwa
    kin = Kinematics(chain)
    q = _random_q(kin, 200)
    out = kin.fk(q)
    assert out["sites"]["ee"].shape == (200, 3)
    assert out["body_pos"].shape == (200, 7, 3)
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "ee")
    for i in range(200):
        data = _mj_frames(model, q[i])
        np.testing.assert_allclose(out["sites"]["ee"][i], data.site_xpos[sid], rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["site_rot"]["ee"][i], data.site_xmat[sid].reshape(3, 3), rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["body_pos"][i], data.xpos[1:], rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["body_rot"][i], data.xmat[1:].reshape(-1, 3, 3), rtol=0, atol=1e-9)


def test_json_round_trip(iiwa):
    _, chain = iiwa
    text = json.dumps(chain)
    back = json.loads(text)
    assert back == chain
    q = _random_q(Kinematics(chain), 20, seed=1)
    a = Kinematics(chain).fk(q)
    b = Kinematics(back).fk(q)
    np.testing.assert_array_equal(a["sites"]["ee"], b["sites"]["ee"])
    np.testing.assert_array_equal(a["body_rot"], b["body_rot"])


def test_batch_shapes_and_joint_order(iiwa):
    _, chain = iiwa
    kin = Kinematics(chain)
    q = _random_q(kin, 24, seed=2).reshape(4, 6, 7)
    out = kin.fk(q)
    assert out["sites"]["ee"].shape == (4, 6, 3)
    assert out["body_rot"].shape == (4, 6, 7, 3, 3)
    single = kin.fk(q[1, 2])
    assert single["sites"]["ee"].shape == (3,)
    np.testing.assert_allclose(single["sites"]["ee"], out["sites"]["ee"][1, 2], atol=1e-15)
    # a different joint order at construction permutes the input
    rev = Kinematics(chain, joint_names=list(reversed(chain["joint_names"])))
    np.testing.assert_allclose(rev.fk(q[..., ::-1])["sites"]["ee"], out["sites"]["ee"], atol=1e-15)
    np.testing.assert_array_equal(rev.lower, kin.lower[::-1])
    with pytest.raises(ValueError, match="shape"):
        kin.fk(np.zeros(6))
    with pytest.raises(ValueError, match="exactly once"):
        Kinematics(chain, joint_names=chain["joint_names"][:6])
    with pytest.raises(KeyError, match="not in the chain"):
        kin.site_pos(q, "flange")


TREE_XML = """
<mujoco>
  <worldbody>
    <site name="world_site" pos="0.1 0.2 0.3" quat="0.9 0.1 0.2 0.3"/>
    <body name="base" pos="0.1 -0.2 0.3" quat="0.8 0.2 -0.3 0.1">
      <joint name="slide" type="slide" axis="0.3 0.4 1" ref="0.05" range="-0.5 0.5"/>
      <geom type="cylinder" size="0.05 0.1" pos="0 0 0.1"/>
      <body name="arm" pos="0 0.1 0.2" euler="0.3 0.2 0.1">
        <joint name="hinge_a" axis="1 1 0" pos="0.05 -0.02 0.03" ref="0.3" range="-2 2"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.04"/>
        <body name="fixed" pos="0.3 0 0" euler="0.5 0 0">
          <geom type="sphere" size="0.06"/>
          <geom type="box" size="0.02 0.02 0.02"/>
          <site name="tip" pos="0.05 0.01 0.02" euler="0 0.4 0"/>
        </body>
      </body>
      <body name="branch" pos="0 -0.1 0.2">
        <joint name="hinge_b" axis="0 1 0" pos="0 0 0.04" range="-1 1"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.2" size="0.03"/>
        <site name="b_tip" pos="0 0 0.25"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_tree_with_slide_anchor_ref_and_fixed_body_matches_mujoco():
    model = mujoco.MjModel.from_xml_string(TREE_XML)
    chain = chain_from_mjmodel(model, ["tip", "b_tip", "world_site"])
    kin = Kinematics(json.loads(json.dumps(chain)))
    assert kin.joint_names == ["slide", "hinge_a", "hinge_b"]
    assert [b["joint_type"] for b in chain["bodies"]] == ["slide", "hinge", None, "hinge"]
    assert sorted(g["type"] for g in chain["geoms"]) == ["capsule", "capsule", "cylinder", "sphere"]
    q = _random_q(kin, 50, seed=3)
    out = kin.fk(q)
    p0, p1, rad = kin.capsule_segments(q)
    for i in range(50):
        data = _mj_frames(model, q[i])
        np.testing.assert_allclose(out["body_pos"][i], data.xpos[1:], atol=1e-9)
        np.testing.assert_allclose(out["body_rot"][i], data.xmat[1:].reshape(-1, 3, 3), atol=1e-9)
        for name in ("tip", "b_tip", "world_site"):
            sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name)
            np.testing.assert_allclose(out["sites"][name][i], data.site_xpos[sid], atol=1e-9)
        # capsule axis midpoints and directions are MuJoCo's geom frames
        k = 0
        for g in range(model.ngeom):
            if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
                continue
            np.testing.assert_allclose(0.5 * (p0[i, k] + p1[i, k]), data.geom_xpos[g], atol=1e-9)
            half = 0.0 if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE else model.geom_size[g, 1]
            np.testing.assert_allclose(0.5 * (p1[i, k] - p0[i, k]), half * data.geom_xmat[g].reshape(3, 3)[:, 2], atol=1e-9)
            assert rad[k] == model.geom_size[g, 0]
            k += 1


def test_unsupported_models_raise_clear_errors():
    ball = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body><joint type="ball"/><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="ball"):
        chain_from_mjmodel(ball, [])
    two = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body><joint axis="1 0 0"/><joint axis="0 1 0"/><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="at most one"):
        chain_from_mjmodel(two, [])
    mocap = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body mocap="true"><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="mocap"):
        chain_from_mjmodel(mocap, [])
    one = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body><joint/><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="available sites"):
        chain_from_mjmodel(one, ["nope"])


def _brute_segment_distance(p0, p1, q0, q1, n=801):
    s = np.linspace(0, 1, n)
    a = p0 + s[:, None] * (p1 - p0)
    b = q0 + s[:, None] * (q1 - q0)
    return np.linalg.norm(a[:, None] - b[None], axis=-1).min()


def test_segment_segment_distance_against_brute_force():
    rng = np.random.default_rng(4)
    cases = [rng.normal(size=(4, 3)) for _ in range(60)]
    base = rng.normal(size=3)
    d = rng.normal(size=3)
    cases += [
        np.array([base, base + d, base + [0, 0, 0.3], base + d + [0, 0, 0.3]]),  # parallel
        np.array([base, base + d, base + 2 * d, base + 3 * d]),  # collinear, disjoint
        np.array([base, base, base + d, base + 2 * d]),  # first a point
        np.array([base, base + d, base + [1, 1, 1], base + [1, 1, 1]]),  # second a point
        np.array([base, base, base + d, base + d]),  # both points
    ]
    arr = np.array(cases)
    got = segment_segment_distance(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    for k, c in enumerate(cases):
        want = _brute_segment_distance(*c)
        # brute force on a grid over-estimates by at most the grid spacing
        assert got[k] <= want + 1e-12
        assert got[k] >= want - 4e-3 * (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[3] - c[2]))


def test_segment_box_distance_against_brute_force():
    rng = np.random.default_rng(5)
    half = np.array([0.2, 0.1, 0.3])
    p0 = rng.normal(scale=0.4, size=(40, 3))
    p1 = rng.normal(scale=0.4, size=(40, 3))
    got = segment_box_signed_distance(p0, p1, half)
    s = np.linspace(0, 1, 4001)
    pts = p0[:, None] + s[None, :, None] * (p1 - p0)[:, None]
    want = point_box_signed_distance(pts, half).min(axis=1)
    assert np.all(got <= want + 1e-12)
    assert np.all(got >= want - 1e-3)
    assert (got < 0).any() and (got > 0).any()  # both penetrating and separated cases covered


def test_self_collision_distance_against_brute_force(iiwa):
    _, chain = iiwa
    kin = Kinematics(chain)
    # adjacent links (and the base with link 1) are never paired
    body_pairs = {tuple(sorted((int(kin.geom_body[a]), int(kin.geom_body[b])))) for a, b in kin.self_collision_pairs}
    for child in range(7):
        assert tuple(sorted((child - 1, child))) not in body_pairs
    assert (-1, 1) in body_pairs and (4, 6) in body_pairs
    q = _random_q(kin, 30, seed=6)
    q[0] = 0.0
    q[1] = [-2.92, -1.91, -0.03, 2.05, -2.19, 1.57, 0.46]  # wrist folded back onto the base
    dmin, per = kin.self_collision_distance(q, return_pairs=True)
    p0, p1, rad = kin.capsule_segments(q)
    for i in range(len(q)):
        want = min(
            _brute_segment_distance(p0[i, a], p1[i, a], p0[i, b], p1[i, b], n=301) - rad[a] - rad[b]
            for a, b in kin.self_collision_pairs
        )
        assert dmin[i] == pytest.approx(want, abs=2e-3)
    assert dmin[0] > 0.04  # straight up: clear
    assert dmin[1] < -0.03  # penetrating
    assert tuple(kin.geom_body[kin.self_collision_pairs[per[1].argmin()]]) == (-1, 4)
    excl = Kinematics(chain, self_collision_exclude=[("lbr_iiwa_link_5", "lbr_iiwa_link_7")])
    assert len(excl.self_collision_pairs) == len(kin.self_collision_pairs) - 1


def test_min_distance_to_obstacles(iiwa):
    _, chain = iiwa
    kin = Kinematics(chain)
    q = _random_q(kin, 10, seed=7)
    p0, p1, rad = kin.capsule_segments(q)
    p0, p1, rad = p0[:, 1:], p1[:, 1:], rad[1:]  # without the base geom (on the world body)
    sphere = {"type": "sphere", "pos": [0.4, 0.1, 0.6], "radius": 0.05}
    capsule = {"type": "capsule", "from": [0.3, -0.4, 0.2], "to": [0.3, 0.4, 0.2], "radius": 0.03}
    quat = [0.9, 0.1, 0.3, 0.2]
    box = {"type": "box", "pos": [0.5, 0.0, 0.3], "half_size": [0.1, 0.3, 0.05], "quat": quat}
    R = quat_to_mat(quat)
    s = np.linspace(0, 1, 2001)
    for ob in (sphere, capsule, box):
        got = kin.min_distance(q, [ob])
        for i in range(len(q)):
            pts = p0[i][:, None] + s[None, :, None] * (p1[i] - p0[i])[:, None]  # [g, s, 3]
            if ob["type"] == "sphere":
                d = np.linalg.norm(pts - ob["pos"], axis=-1) - ob["radius"]
            elif ob["type"] == "capsule":
                a, b = np.array(ob["from"]), np.array(ob["to"])
                u = np.clip(((pts - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
                d = np.linalg.norm(pts - (a + u[..., None] * (b - a)), axis=-1) - ob["radius"]
            else:
                d = point_box_signed_distance((pts - ob["pos"]) @ R, np.array(ob["half_size"]))
            want = (d.min(axis=1) - rad).min()
            assert got[i] == pytest.approx(want, abs=1e-3)
    both = kin.min_distance(q, [sphere, box])
    np.testing.assert_allclose(both, np.minimum(kin.min_distance(q, [sphere]), kin.min_distance(q, [box])))
    assert kin.min_distance(q, []).tolist() == [np.inf] * 10
    with pytest.raises(ValueError, match="not supported"):
        kin.min_distance(q, [{"type": "mesh"}])


def test_runtime_fk_needs_no_mujoco_or_torch(iiwa, tmp_path):
    _, chain = iiwa
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain))
    code = (
        "import json, sys, numpy as np\n"
        "from robot_rl.kinematics import Kinematics\n"
        f"kin = Kinematics(json.load(open({str(path)!r})))\n"
        "kin.fk(np.zeros((3, 7))); kin.self_collision_distance(np.zeros(7))\n"
        "assert 'mujoco' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
