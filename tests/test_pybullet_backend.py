"""PyBullet backend (`robot_rl.sim.pybullet_backend`): what the contract suite does not check.

The same robot, from its URDF, with MuJoCo's actuator model: joint and frame mapping against
MuJoCo's kinematics, held and moving position targets tracked as MuJoCo tracks them, gravity
compensation of the nominal model (a payload sags the arm the same), the internal step, the
robot without a URDF (cartpole: a URDF written from the model), and the unsupported-feature errors.

Measured agreement with the MuJoCo backend (iiwa, 11 internal steps of 0.91 ms per 10 ms):
a random walk of joint targets over 3 s stays within 0.008 rad (mean 0.0012 rad) of MuJoCo's
trajectory; MuJoCo at a 10x finer step differs from MuJoCo by 0.004 rad. The residual comes
mostly from the armature approximation (the rotor inertia added to the link).
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from robot_rl.sim import make_env, make_task
from robot_rl.sim.backend import UnsupportedFeature, make_backend
from robot_rl.sim.dr_effects import without_payload_offset
from robot_rl.sim.model import build_model
from robot_rl.sim.pybullet.urdf import urdf_from_model
from robot_rl.sim.pybullet_backend import PybulletBackend

pytest.importorskip("pybullet")


@pytest.fixture(scope="module")
def iiwa():
    t = make_task("iiwa-reach")
    return t, build_model(t)


def _start(sim, model, robot, n, q=None):
    qidx = sim.joint_qpos_index(robot.joint_names)
    q0 = np.tile(model.qpos0, (n, 1))
    q0[:, qidx] = robot.default_pose if q is None else q
    sim.set_joint_state(torch.arange(n), torch.as_tensor(q0), torch.zeros(n, model.nv, dtype=torch.float64))
    return qidx


def _rollout(sim, ctrl_seq, nsub=2):
    out = []
    for ctrl in ctrl_seq:
        sim.step(torch.as_tensor(ctrl), nsub)
        out.append(sim.qpos.double().numpy().copy())
    return np.array(out)


def test_joints_and_frames_follow_mujoco_kinematics(iiwa):
    t, model = iiwa
    robot = t.robot
    n = 5
    sim = PybulletBackend(model, robot, n)
    rng = np.random.default_rng(1)
    lim = robot.position_limits(model)
    q = rng.uniform(lim[:, 0] * 0.9, lim[:, 1] * 0.9, (n, len(robot.joint_names)))
    qidx = _start(sim, model, robot, n, q)
    assert tuple(sim.qpos.shape) == (n, model.nq) and sim.qpos.dtype == torch.float64
    np.testing.assert_allclose(sim.qpos.numpy()[:, qidx], q, atol=1e-12)
    d = mujoco.MjData(model)
    for i in range(n):
        d.qpos[:] = sim.qpos.numpy()[i]
        mujoco.mj_kinematics(model, d)
        for site in sim._frames:  # every site with a frame sensor (ee, and the target on the world body)
            np.testing.assert_allclose(sim.frame_pos(site).numpy()[i], d.site_xpos[model.site(site).id], atol=1e-6)
    # the frame tensor is a view that changes in place
    ee = sim.frame_pos("ee")
    before = ee.clone()
    sim.step(torch.as_tensor(np.tile(q[0] * 0.5, (n, 1))), 2)
    assert not torch.allclose(ee, before)
    sim.close()


def test_a_moving_target_is_tracked_as_in_mujoco(iiwa):
    """Joint targets on a random walk (as a reach policy moves them), 2 s: within 0.015 rad of
    MuJoCo (measured 0.008 rad), observed with MuJoCo's timing (one physics step old)."""
    t, model = iiwa
    robot = t.robot
    n = 2
    rng = np.random.default_rng(0)
    q0 = np.asarray(robot.default_pose) + rng.uniform(-0.3, 0.3, (n, 7))
    ctrl = np.zeros((100, n, model.nu))
    target = q0.copy()
    for k in range(100):
        target = target + 0.05 * rng.uniform(-1, 1, target.shape) * (k < 70)
        ctrl[k] = target
    trajectories = []
    for name in ("mujoco", "pybullet"):
        sim = make_backend(name, model, robot, n, nthread=1)
        _start(sim, model, robot, n, q0)
        trajectories.append(_rollout(sim, ctrl))
    mj, pyb = trajectories
    err = np.abs(mj - pyb).max()
    assert err < 0.015, err
    assert np.abs(mj - pyb).mean() < 0.003
    # a held target is reached in both (the last 30 control steps hold it)
    np.testing.assert_allclose(pyb[-1], mj[-1], atol=2e-3)


def test_internal_step_divides_the_physics_step(iiwa):
    t, model = iiwa
    sim = PybulletBackend(model, t.robot, 1)
    assert sim.substeps == 11  # h * lambda <= 0.4 for kd 40 on armature 0.1 (lambda = 401 1/s)
    assert sim.internal_dt * sim.substeps == pytest.approx(model.opt.timestep, rel=1e-12)
    # a variant with a much stiffer damping law refines the step for every env
    bias = sim.nominal("actuator_biasprm")[None].copy()
    bias[0, :, 2] *= 3.0
    sim.set_physics("actuator_biasprm", np.array([0]), bias)
    assert sim.substeps > 11
    assert sim.internal_dt * sim.substeps == pytest.approx(model.opt.timestep, rel=1e-12)


def test_payload_sags_the_arm_as_in_mujoco(iiwa):
    """Gravity compensation of the nominal model: a 2 kg payload the controller does not know
    about sags the arm by the same angles in both simulators (MuJoCo's gravcomp semantics)."""
    t, model = iiwa
    robot = t.robot
    n = 2
    b7 = model.body(robot.payload_body).id
    mass = np.repeat(model.body_mass[None], n, 0)
    mass[1, b7] += 2.0
    gravcomp = model.body_gravcomp * model.body_mass / np.where(mass > 0, mass, 1.0)
    sags = []
    for name in ("mujoco", "pybullet"):
        sim = make_backend(name, model, robot, n, nthread=1)
        sim.set_physics("body_mass", np.arange(n), mass)
        sim.set_physics("body_gravcomp", np.arange(n), gravcomp)
        qidx = _start(sim, model, robot, n)
        q = _rollout(sim, [np.tile(robot.default_pose, (n, 1))] * 100)[-1][:, qidx]
        sags.append(q - np.asarray(robot.default_pose))
    mj, pyb = sags
    assert np.abs(mj[0]).max() < 1e-4 and np.abs(pyb[0]).max() < 1e-4  # nominal: no sag
    assert np.abs(mj[1]).max() > 0.02  # the payload sags the arm...
    np.testing.assert_allclose(pyb[1], mj[1], atol=5e-4)  # ... by the same angles


def test_dry_friction_holds_within_its_dead_band(iiwa):
    t, model = iiwa
    robot = t.robot
    sim = PybulletBackend(model, robot, 2)
    fl = np.repeat(model.dof_frictionloss[None], 2, 0)
    fl[1] = 5.0
    sim.set_physics("dof_frictionloss", np.arange(2), fl)
    qidx = _start(sim, model, robot, 2)
    sim.add_joint_velocity(torch.arange(2), torch.full((2, model.nv), 1.0, dtype=torch.float64))
    q = _rollout(sim, [np.tile(robot.default_pose, (2, 1))] * 100)[-1][:, qidx]
    err = np.abs(q - robot.default_pose)
    assert err[0].max() < 1e-3  # frictionless: back on target
    assert 1e-3 < err[1].max() <= 5.0 / 400.0 + 1e-3  # stuck within frictionloss / kp of it


def test_physics_fields_map_to_the_links(iiwa):
    import pybullet as pb

    t, model = iiwa
    sim = PybulletBackend(model, t.robot, 2)
    b = model.body("lbr_iiwa_link_4").id
    link = sim._map.body_link[b]
    mass = np.repeat(model.body_mass[None], 2, 0)
    mass[1, b] = 5.0
    sim.set_physics("body_mass", np.arange(2), mass)
    info = [pb.getDynamicsInfo(sim._world.bodies[i], link, physicsClientId=sim._world.client) for i in range(2)]
    assert info[0][0] == pytest.approx(2.7) and info[1][0] == pytest.approx(5.0)
    # inertia: MuJoCo's principal axes (sorted) mapped to the URDF's, plus the armature about the
    # joint axis (link z): (0.03, 0.01, 0.029) + (0, 0, 0.1), unchanged by the mass change
    np.testing.assert_allclose(info[1][2], (0.03, 0.01, 0.029 + 0.1), rtol=1e-9)
    inertia = np.repeat(model.body_inertia[None], 2, 0)
    inertia[1, b] *= 2.0
    arm = np.repeat(model.dof_armature[None], 2, 0)
    arm[1] = 0.2
    sim.set_physics("body_inertia", np.arange(2), inertia)
    sim.set_physics("dof_armature", np.arange(2), arm)
    diag = pb.getDynamicsInfo(sim._world.bodies[1], link, physicsClientId=sim._world.client)[2]
    np.testing.assert_allclose(diag, (0.06, 0.02, 0.058 + 0.2), rtol=1e-9)
    diag = pb.getDynamicsInfo(sim._world.bodies[0], link, physicsClientId=sim._world.client)[2]
    assert diag[2] == pytest.approx(0.129)


def test_unsupported_parameters_and_devices_are_named(iiwa):
    t, model = iiwa
    sim = PybulletBackend(model, t.robot, 2)
    ipos = np.repeat(model.body_ipos[None], 2, 0)
    sim.set_physics("body_ipos", np.arange(2), ipos)  # nominal: fine
    ipos[1, model.body("lbr_iiwa_link_3").id, 2] += 0.01
    with pytest.raises(UnsupportedFeature, match="body_ipos of \\['lbr_iiwa_link_3'\\]"):
        sim.set_physics("body_ipos", np.arange(2), ipos)
    with pytest.raises(ValueError, match="unknown physics field"):
        sim.set_physics("body_color", np.arange(2), ipos)
    with pytest.raises(UnsupportedFeature, match="CPU only"):
        PybulletBackend(model, t.robot, 1, device="cuda")


def _with_scene(task, edit):
    spec = task.robot.load_spec()
    task.scene(spec)
    edit(spec)
    from robot_rl.sim.model import add_state_sensors

    add_state_sensors(spec, ["ee"], ())
    return spec.compile()


def _free_box(spec, gravcomp: float):
    body = spec.worldbody.add_body()
    body.name = "box"
    body.pos = [0.6, 0.0, 0.1]
    body.gravcomp = gravcomp
    body.add_freejoint().name = "box_free"
    g = body.add_geom()
    g.type = mujoco.mjtGeom.mjGEOM_BOX
    g.size = [0.05, 0.05, 0.05]
    g.contype = g.conaffinity = 0


def test_a_free_object_of_the_scene_is_unsupported_unless_visual_only(iiwa):
    t, model = iiwa
    m = _with_scene(t, lambda s: _free_box(s, gravcomp=0.0))  # it falls in MuJoCo
    with pytest.raises(UnsupportedFeature, match="box_free"):
        PybulletBackend(m, t.robot, 1)
    m = _with_scene(t, lambda s: _free_box(s, gravcomp=1.0))  # a floating marker: held where it is put
    sim = PybulletBackend(m, t.robot, 2)
    assert tuple(sim.qpos.shape) == (2, m.nq) and m.nq == 7 + 7
    adr = m.jnt_qposadr[m.joint("box_free").id]
    before = sim.qpos.numpy()[:, adr : adr + 3].copy()
    sim.step(torch.zeros(2, m.nu, dtype=torch.float64) + torch.as_tensor(t.robot.default_pose), 2)
    np.testing.assert_array_equal(sim.qpos.numpy()[:, adr : adr + 3], before)


def test_constraints_and_stateful_actuators_are_unsupported(iiwa):
    t, _ = iiwa

    def equality(spec):  # a nonlinear joint coupling (linear ones are supported: a gripper's)
        e = spec.add_equality()
        e.name = "cubic"
        e.type = mujoco.mjtEq.mjEQ_JOINT
        e.objtype = mujoco.mjtObj.mjOBJ_JOINT
        e.name1, e.name2 = "lbr_iiwa_joint_1", "lbr_iiwa_joint_3"
        e.data[:5] = [0.0, 1.0, 0.0, 0.5, 0.0]

    with pytest.raises(UnsupportedFeature, match="equality constraint 'cubic'"):
        PybulletBackend(_with_scene(t, equality), t.robot, 1)

    def filtered(spec):
        spec.actuator("lbr_iiwa_act_2").dyntype = mujoco.mjtDyn.mjDYN_FILTER

    with pytest.raises(UnsupportedFeature, match="lbr_iiwa_act_2"):
        PybulletBackend(_with_scene(t, filtered), t.robot, 1)

    def moved(spec):  # the model's kinematics no longer match the URDF's
        spec.body("lbr_iiwa_link_4").pos = [0.0, 0.0, 0.25]

    with pytest.raises(UnsupportedFeature, match="lbr_iiwa_link_4"):
        PybulletBackend(_with_scene(t, moved), t.robot, 1)


def test_a_collidable_floor_becomes_a_pybullet_plane(iiwa):
    """With contacts, the links touch the floor with the model's own geoms (the fitted capsules,
    not the URDF's meshes): folded down into it, the arm rests where MuJoCo's does."""
    t, _ = iiwa

    def floor_contacts(spec):
        spec.option.disableflags = 0
        for g in spec.geoms:  # the links collide with the floor only (not with each other)
            g.contype, g.conaffinity = (0, 1) if g.name == "floor" else (1, 0)

    m = _with_scene(t, floor_contacts)
    target = np.array([0.0, 1.9, 0.0, -0.3, 0.0, 0.0, 0.0])
    ee = []
    for name in ("mujoco", "pybullet"):
        sim = make_backend(name, m, t.robot, 1, nthread=1)
        _start(sim, m, t.robot, 1)
        _rollout(sim, [target[None]] * 100)
        ee.append(sim.frame_pos("ee").numpy()[0].copy())
    assert ee[1][2] > 0.0  # on the floor, not through it
    np.testing.assert_allclose(ee[1], ee[0], atol=0.01)

    def all_contacts(spec):
        spec.option.disableflags = 0
        for g in spec.geoms:
            g.contype = g.conaffinity = 1

    with pytest.raises(UnsupportedFeature, match="lbr_iiwa_link_.*can collide"):  # link against link
        PybulletBackend(_with_scene(t, all_contacts), t.robot, 1)


def test_a_robot_without_urdf_gets_one_from_the_model():
    """cartpole declares no URDF: the backend writes one from the compiled model; the motor and
    the passive pole move as in MuJoCo over a short horizon."""
    t = make_task("cartpole-swingup")
    model = build_model(t)
    assert "<joint name=\"slider\" type=\"prismatic\"" in urdf_from_model(model)
    n = 2
    rng = np.random.default_rng(0)
    q0 = np.stack([[0.0, np.pi - 0.1], [0.2, np.pi + 0.05]])
    ctrl = rng.uniform(-1, 1, (25, n, 1))
    trajectories = []
    for name in ("mujoco", "pybullet"):
        sim = make_backend(name, model, t.robot, n, nthread=1)
        sim.set_joint_state(torch.arange(n), torch.as_tensor(q0), torch.zeros(n, 2, dtype=torch.float64))
        trajectories.append(_rollout(sim, ctrl))
    mj, pyb = trajectories
    assert np.abs(mj - pyb).max() < 0.02, np.abs(mj - pyb).max()
    assert np.abs(mj[-1] - q0).max() > 0.1  # it did move


def test_env_runs_on_pybullet_with_eval_dr():
    # (pybullet cannot move a centre of mass: the payload sits at the link origin)
    env = make_env("iiwa-reach", 3, dr=without_payload_offset(make_task("iiwa-reach").dr.eval), seed=0,
                   backend="pybullet")
    assert env.sim.exact_variants and env.sim.num_variants == 3
    env.reset()
    for _ in range(10):
        obs, reward, *_ = env.step(torch.zeros(3, env.num_actions))
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
    frame = env.render(0, height=48, width=64)
    assert frame.shape == (48, 64, 3) and frame.std() > 0


def test_panda_fingers_move_together_on_their_tendon_actuator():
    """The Franka Hand: one position actuator on a tendon averaging both fingers, and a joint
    equality coupling them (a pybullet gear constraint here, MuJoCo's soft constraint there)."""
    t = make_task("panda-reach")
    model = build_model(t)
    robot = t.robot
    grip = model.actuator(robot.gripper.actuator).id
    fingers = [int(model.jnt_qposadr[model.joint(j).id]) for j in robot.gripper.joint_names]
    out = []
    for name in ("mujoco", "pybullet"):
        sim = make_backend(name, model, robot, 1, nthread=1)
        _start(sim, model, robot, 1)
        ctrl = np.zeros((1, model.nu))
        ctrl[0, sim.joint_actuator_index(robot.joint_names)] = robot.default_pose
        ctrl[0, grip] = 0.03
        q = _rollout(sim, [ctrl] * 40)[:, 0, fingers]
        out.append(q)
    mj, pyb = out
    assert np.abs(pyb[:, 0] - pyb[:, 1]).max() < 1e-4  # coupled
    np.testing.assert_allclose(pyb[-1], [0.03, 0.03], atol=1e-3)  # opened to the target
    np.testing.assert_allclose(pyb[-1], mj[-1], atol=1e-3)
