"""The scene registry and the CBF-QP stage of the safety filter, on the iiwa and the Panda: distances
and Jacobians against MuJoCo, the closed loop stopped at the margin of the table, the obstacles,
the joint limits and the other links, no intervention on safe commands, failing closed (infeasible
QP, solver error, NaN), an unsafe start and a bad scene."""

from __future__ import annotations

import functools

import mujoco
import numpy as np
import pytest

from robot_rl.kinematics import kinematic_model_xml
from robot_rl.robots import get_robot
from robot_rl.safety import SafetyConfig, SafetyFilter
from robot_rl.safety.cbf import CBFConfig, CBFError
from robot_rl.safety.rogue import RogueCommander, ViolationMonitor
from robot_rl.scenes import Scene, SceneError, Shape, check_scene, get_scene, scene_for_robot, scene_geometry

ROBOTS = ("iiwa14", "panda")
DT = 1e-3


@functools.lru_cache(maxsize=None)
def _xml(robot: str) -> str:
    return kinematic_model_xml(get_robot(robot))


@functools.lru_cache(maxsize=None)
def _rogue(robot: str, kind: str, seed: int) -> RogueCommander:
    r = get_robot(robot)
    return RogueCommander(_xml(robot), list(r.joint_names), get_scene("tabletop"), r.default_pose, strategy=kind,
                          seed=seed, samples=1500)


def _filter(robot: str, cbf: bool = True, solver=None, scene="tabletop", **kw) -> SafetyFilter:
    r = get_robot(robot)
    kw.setdefault("velocity_limit", 2.0)
    cfg = SafetyConfig.from_model(_xml(robot), list(r.joint_names), position_margin=0.02,
                                  cmd_timeout_s=10.0, brake_timeout_s=10.0, state_timeout_s=10.0,
                                  cbf=CBFConfig(scene=scene, check_pose=r.default_pose) if cbf else None, **kw)
    f = SafetyFilter(cfg)
    if solver is not None:
        f.cbf.solve_qp = solver
    return f


def _run(f: SafetyFilter, goal, q0, seconds: float, t0: float = 0.0, perfect: bool = True):
    """Closed loop with perfect tracking (the state is the last output): the goal commanded at
    50 Hz. Returns the outputs and statuses."""
    names = list(f.config.joint_names)
    q = np.array(q0, dtype=float)
    outs, sts = [], []
    for k in range(int(seconds / DT)):
        t = t0 + k * DT
        f.on_state(t, names, q)
        if k % 20 == 0:
            f.on_command(t, names, goal)
        out, st = f.tick(t)
        outs.append(None if out is None else out.copy())
        sts.append(dict(st))
        if out is not None and perfect:
            q = out
    return outs, sts


# -- scenes --------------------------------------------------------------------------------------
def test_scene_registry_and_geometry():
    scene = get_scene("tabletop")
    assert {s.role for s in scene.shapes} == {"table", "obstacle"}
    for robot in ROBOTS:
        assert scene_for_robot(get_robot(robot)) is scene
    from robot_rl.sim import make_task

    assert make_task("iiwa-reach").scene_name() == "tabletop"  # a task without its own: the robot's
    peg = make_task("panda-peg-insert")
    assert peg.scene_name() == "peg-table" and check_scene(get_scene("peg-table"), peg.robot) is None
    geo = scene_geometry(scene)
    assert [g["name"] for g in geo] == [s.name for s in scene.shapes]
    assert geo[1]["kind"] == "capsule" and len(geo[1]["to"]) == 3
    with pytest.raises(SceneError, match="unknown scene .nope.; registered scenes: peg-table, tabletop"):
        get_scene("nope")
    with pytest.raises(SceneError, match="capsule 'c' needs `to`"):
        Shape("c", "capsule", pos=(0, 0, 0), size=(0.1,))


@pytest.mark.parametrize("robot", ROBOTS)
def test_scene_overlapping_the_robot_is_refused_with_one_line(robot):
    bad = Scene("bad", (Shape("block", "box", pos=(0.0, 0.0, 0.05), size=(0.1, 0.1, 0.05)),))
    with pytest.raises(SceneError) as e:
        check_scene(bad, get_robot(robot))
    msg = str(e.value)
    assert "\n" not in msg and "'block' overlaps the robot" in msg and "move or shrink" in msg
    with pytest.raises(ValueError) as e:
        _filter(robot, scene=bad)
    assert "\n" not in str(e.value) and "'block'" in str(e.value) and "home pose" in str(e.value)


def test_twin_refuses_a_bad_scene_and_collides_with_the_table():
    from robot_rl.hardware.twin import RobotTwin, TwinError
    from robot_rl.scenes import register_scene

    register_scene(Scene("test-bad", (Shape("ball", "sphere", pos=(0.0, 0.0, 0.1), size=(0.1,)),)))
    with pytest.raises(TwinError, match="'ball' overlaps the robot 'iiwa14'"):
        RobotTwin("iiwa-reach", dr="off", scene="test-bad")
    twin = RobotTwin("iiwa-reach", dr="off", position_noise=0.0, velocity_noise=0.0)
    assert twin.scene_geoms == ["scene/table", "scene/post", "scene/ball"]
    r = get_robot("iiwa14")
    from robot_rl.kinematics import RobotKinematics

    pool = _rogue("iiwa14", "table", 3).pools["table"]  # configurations with a link in the table
    ee = RobotKinematics(_xml("iiwa14"), r.joint_names).site_pos(pool, "ee")
    inside = (np.abs(ee[:, 1]) < 0.5) & (ee[:, 0] > 0.4)
    goal = pool[inside][np.argmin(ee[inside, 2])]  # the ee deepest in the table
    twin.set_command(goal)
    hits = []
    for _ in range(150):
        twin.step(10)
        hits += twin.scene_contacts()
    assert any(shape == "table" for shape, _, _ in hits)
    q = twin.data.qpos[twin._qadr[:7]]
    assert np.abs(q - goal).max() > 0.05  # the table stops the arm short of the goal


# -- geometry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("robot", ROBOTS)
def test_distances_and_gradients_match_mujoco(robot):
    """Barrier values are MuJoCo's exact geom distances minus the margin; gradients agree with
    n . (J_b - J_a) from mj_jac at the closest points and with finite differences."""
    f = _filter(robot)
    cbf, col = f.cbf, f.cbf.col
    r = get_robot(robot)
    rng = np.random.default_rng(0)
    fromto = np.zeros(6)
    jac = np.zeros((3, col.model.nv))
    dofs = col.model.jnt_dofadr[col.joint_ids]
    for q in [np.array(r.default_pose), np.array(r.default_pose) + rng.uniform(-0.4, 0.4, 7)]:
        h, names = cbf.barriers(q, names=True)
        assert any("'table'" in n for n in names) and any("self-clearance" in n for n in names)
        h, nrm, p, g, _, mask, _ = cbf._rows(q)
        G = cbf.gradients(q)
        mujoco.mj_comPos(col.model, col.data)
        keep = np.isfinite(h)
        h, nrm, g = h[keep], nrm[keep], g[keep]
        for k, (a, b) in enumerate(g):
            if a < 0:  # workspace rows
                continue
            exact = mujoco.mj_geomDistance(col.model, col.data, int(a), int(b), 10.0, fromto)
            assert np.isclose(h[k] + cbf._pair_margin[a, b], exact, atol=1e-9)
            ja = np.zeros(7)
            jb = np.zeros(7)
            for pt, body, out in ((fromto[:3], col.model.geom_bodyid[a], ja), (fromto[3:], col.model.geom_bodyid[b], jb)):
                mujoco.mj_jac(col.model, col.data, jac, None, pt, int(body))
                out[:] = nrm[k] @ jac[:, dofs]
            assert np.allclose(G[k], jb - ja, atol=1e-9)
        Gf = np.zeros_like(G)
        for j in range(7):
            e = np.zeros(7)
            e[j] = 1e-6
            Gf[:, j] = (cbf.barriers(q + e) - cbf.barriers(q - e)) / 2e-6
        assert np.abs(G - Gf).max() < 1e-6


# -- closed loop ---------------------------------------------------------------------------------
@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("kind", ["table", "obstacle", "self", "joint_limit"])
def test_rogue_goal_is_stopped_at_the_margin(robot, kind):
    """A goal in the table / an obstacle / another link / past joint limits, driven at the rate
    limit with perfect tracking: without the CBF the arm gets there, with it the arm stops at the
    margin (the CBF intervenes and its tightest barrier ends near zero) and nothing is violated."""
    r = get_robot(robot)
    home = np.array(r.default_pose)
    names = list(r.joint_names)
    scene = get_scene("tabletop")
    if kind == "joint_limit":
        goal = RogueCommander(_xml(robot), names, scene, home, strategy=kind, seed=7).next_goal()
    else:
        goal = _rogue(robot, kind, 7).pools[kind][0]
    mon = ViolationMonitor(_xml(robot), names, scene, home)
    for cbf in (False, True):
        f = _filter(robot, cbf=cbf)
        outs, sts = _run(f, goal, home, 2.0)
        seen = set().union(*(mon(o) for o in outs[::5]))
        if not cbf:
            assert kind in seen or kind == "joint_limit"  # the reference gets there (limits clip joints)
            continue
        assert not seen, f"violations with the CBF: {seen}"
        assert {st["mode"] for st in sts} == {"ok"}
        assert "cbf" in {lim for st in sts for lim in st["active_limits"]}
        if kind != "joint_limit":  # stopped at the margin, not short of it
            assert f.cbf.last["min_h"] < 0.02


@pytest.mark.parametrize("robot", ROBOTS)
def test_safe_commands_pass_unchanged(robot):
    r = get_robot(robot)
    home = np.array(r.default_pose)
    rng = np.random.default_rng(1)
    with_cbf, without = _filter(robot), _filter(robot, cbf=False)
    for i in range(3):
        goal = home + rng.uniform(-0.15, 0.15, 7)
        a, sa = _run(with_cbf, goal, home, 0.5, t0=i)
        b, _ = _run(without, goal, home, 0.5, t0=i)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not any("cbf" in st["active_limits"] for st in sa)
    assert with_cbf.counters["cbf_active_ticks"] == 0


# -- failing closed ------------------------------------------------------------------------------
def _drive_into_table(f, robot, seconds: float):
    r = get_robot(robot)
    home = np.array(r.default_pose)
    return _run(f, _rogue(robot, "table", 3).pools["table"][0], home, seconds)


@pytest.mark.parametrize("robot", ROBOTS)
def test_infeasible_qp_brakes_then_holds(robot):
    def infeasible(H, f, A, bu, bl, sense):
        return np.full(len(f), 9.9), 0.0, -1, {}

    f = _filter(robot, solver=infeasible)
    outs, sts = _drive_into_table(f, robot, 2.0)
    k = next(i for i, st in enumerate(sts) if st["reason"] == "cbf_infeasible")
    assert sts[k]["mode"] == "brake" and "no safe velocity" in f.status["last_error"]
    step, before = outs[k] - outs[k - 1], outs[k - 1] - outs[k - 2]
    assert (np.abs(step) <= np.abs(before) + 1e-12).all() and (step * before >= 0).all()  # a braking step
    assert all(st["mode"] == "brake" for st in sts[k:k + 100])  # for monitor_hold_s
    assert np.abs(outs[k + 100] - outs[k + 99]).max() < 1e-4  # (nearly) at rest by then
    assert all(np.abs(o).max() < 9 for o in outs)  # never the solver's answer, never the nominal
    # after the brake (monitor_hold_s), the filter resumes on a new command, and brakes again
    assert {st["reason"] for st in sts[k:]} <= {"cbf_infeasible", "awaiting_command", None}


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("failure", ["raises", "nan"])
def test_solver_error_and_nan_brake_latched(robot, failure):
    def bad(H, f, A, bu, bl, sense):
        if failure == "raises":
            raise RuntimeError("solver crashed")
        return np.full(len(f), np.nan), 0.0, 1, {}

    f = _filter(robot, solver=bad)
    outs, sts = _drive_into_table(f, robot, 2.0)
    k = next(i for i, st in enumerate(sts) if st["reason"] == "cbf_error")
    assert all(st["mode"] == "brake" and st["reason"] == "cbf_error" for st in sts[k:])  # latched
    assert all(np.isfinite(o).all() for o in outs)
    f.reset_fault()
    _, st = f.tick(100.0)
    assert st["reason"] != "cbf_error"


@pytest.mark.parametrize("robot", ROBOTS)
def test_cbf_rejects_nan_and_reports_real_infeasibility(robot):
    f = _filter(robot)
    r = get_robot(robot)
    q = np.array(r.default_pose)
    with pytest.raises(CBFError, match="non-finite"):
        f.cbf.filter(q, np.full(7, np.nan))
    # joints outside their range by more than the rate limit can recover in one gain period
    far = f.config.cmd_upper + 1.0
    with pytest.raises(CBFError) as e:
        f.cbf.filter(far, np.zeros(7))
    assert e.value.reason == "cbf_infeasible"


@pytest.mark.parametrize("robot", ROBOTS)
def test_unsafe_start_holds_with_one_line(robot):
    r = get_robot(robot)
    inside = _rogue(robot, "table", 3).pools["table"][1]  # a configuration with a link in the table
    f = _filter(robot)
    outs, sts = _run(f, np.array(r.default_pose), inside, 0.3)
    assert {st["reason"] for st in sts} == {"cbf_unsafe_start"} and {st["mode"] for st in sts} == {"hold"}
    assert all(np.allclose(o, inside) for o in outs)  # it holds where it is
    msg = f.status["last_error"]
    assert "\n" not in msg and "starts inside a safety margin" in msg and "reset_fault" in msg


def test_safety_node_cbf_params():
    """The node's ``scene`` / ``cbf`` params: on by default with the artifact robot's scene."""
    from robot_rl.nodes._common import NodeStartError
    from robot_rl.nodes.safety import _cbf_config

    class Node:
        def __init__(self, **params):
            self.params = params

        def declare_parameter(self, name, default):
            return self.params.get(name, default)

    spec = {"robot": get_robot("iiwa14").describe()}
    home = list(get_robot("iiwa14").default_pose)
    cfg = _cbf_config(Node(), spec, home)
    assert cfg.scene is get_scene("tabletop") and cfg.margin == 0.05 and list(cfg.check_pose) == home
    assert _cbf_config(Node(cbf=False), spec, home) is None
    assert _cbf_config(Node(scene="none"), spec, home) is None
    assert _cbf_config(Node(), {"robot": {**spec["robot"], "scene": ""}}, home) is None  # an older artifact
    with pytest.raises(NodeStartError, match="invalid CBF configuration: unknown scene 'nope'"):
        _cbf_config(Node(scene="nope"), spec, home)


# -- the per-tick fast paths ---------------------------------------------------------------------
def _reference_qp(cbf, q, v_nom, q_meas):
    """The CBF-QP with every barrier within 2 m (no pruning, no shortcut), solved by DAQP: (x or
    None if infeasible, whether v_nom is feasible)."""
    import daqp

    h, _, _, g, _, _, _ = cbf._rows(q_meas)
    h = h[np.isfinite(h)]
    G = cbf.gradients(q_meas)
    gain = cbf.config.gain
    lo_rows = -gain * (h + G @ (q - q_meas))
    blo = np.maximum(-cbf.rate, gain * (cbf.lower - q))
    bhi = np.minimum(cbf.rate, gain * (cbf.upper - q))
    feasible = bool((v_nom >= blo - 1e-9).all() and (v_nom <= bhi + 1e-9).all()
                    and (G @ v_nom >= lo_rows - 1e-9).all())
    n = len(q)
    x, _, flag, _ = daqp.solve(np.eye(n), -v_nom, G, np.concatenate([bhi, np.full(len(h), 1e30)]),
                               np.concatenate([blo, lo_rows]), np.zeros(n + len(h), dtype=np.int32))
    return (np.asarray(x) if flag >= 1 else None), feasible


@pytest.mark.parametrize("robot,options", [("iiwa14", {}), ("panda", {}),
                                            ("iiwa14", {"workspace": False, "self_collision": False})])
def test_fast_paths_give_the_full_qps_command(robot, options):
    """Over random commands, measured states (lag) and nominals, the filter (explicit pairs with
    per-tick margins, the reach-bound proof, the exact nominal check, then the QP) returns what the
    QP over every barrier within 2 m returns: the nominal itself (the same object) when it is
    feasible, else the same solution; the proof path builds no rows."""
    from robot_rl.safety.cbf import CBF

    r = get_robot(robot)
    f = _filter(robot)
    cbf = CBF(CBFConfig(scene="tabletop", check_pose=r.default_pose, **options), _xml(robot), list(r.joint_names),
              f.config.cmd_lower, f.config.cmd_upper, f.config.rate)
    home = np.array(r.default_pose)
    rng = np.random.default_rng(3)
    proved = built = solved = 0
    for i in range(300):
        q = np.clip(home + rng.normal(0.0, 0.5, 7), cbf.lower, cbf.upper)
        q_meas = q + rng.normal(0.0, 0.03 if i % 3 else 0.0, 7)
        v_nom = rng.uniform(-1.0, 1.0, 7) * cbf.rate * (0.05 if i % 2 else 1.0)
        if i % 4 == 0:  # at the rate limit straight into the nearest barrier
            h = cbf.barriers(q_meas)
            v_nom = -cbf.rate * np.sign(cbf.gradients(q_meas)[int(np.argmin(h))])
        x_ref, feasible = _reference_qp(cbf, q, v_nom, q_meas)
        try:
            x = cbf.filter(q, v_nom, q_meas)
        except CBFError as e:
            assert x_ref is None, f"the filter failed ({e}) where the full QP has a solution"
            continue
        if feasible:
            assert x is v_nom and not cbf.last["intervened"]
            proved += cbf.last["rows"] == 0
            built += cbf.last["rows"] > 0
        else:
            assert cbf.last["intervened"] and np.abs(x - x_ref).max() < 1e-7
            solved += 1
    assert proved > 20 and built > 20 and solved > 20  # every path was taken


@pytest.mark.parametrize("robot", ROBOTS)
def test_pair_reach_bounds_the_gradients_and_keeps_every_row_that_can_bind(robot):
    """The bound behind the row pruning and the proof: every gradient entry of a barrier is at
    most the pair's lever of that joint (0 for joints that move both geoms), and every barrier
    that can bind for some |v| <= rate (h + G . lag - |G| . rate / gain < 0) is detected with the
    tick's margins."""
    f = _filter(robot)
    cbf = f.cbf
    rng = np.random.default_rng(4)
    home = np.array(get_robot(robot).default_pose)
    can_bind = 0
    for i in range(60):
        q_meas = np.clip(home + rng.normal(0.0, 0.6, 7), cbf.lower, cbf.upper)
        lag = rng.normal(0.0, 0.05, 7) * (i % 2)
        h, _, _, g, _, _, _ = cbf._rows(q_meas)
        keep = np.isfinite(h)
        h, g = h[keep], g[keep]
        G = cbf.gradients(q_meas)
        assert (np.abs(G) <= cbf._pair_lever[g @ cbf._key] + 1e-12).all()
        binds = h + G @ lag - np.abs(G) @ (cbf.rate / cbf.config.gain) < 0
        hs, _, _, gs, _, _, _ = cbf._rows(q_meas, np.abs(lag) + cbf._rate_gain)
        detected = {tuple(sorted(map(int, x))) for x, v in zip(gs, hs) if np.isfinite(v)}
        assert {tuple(sorted(map(int, x))) for x in g[binds]} <= detected
        can_bind += int(binds.sum())
    assert can_bind > 20


@pytest.mark.parametrize("robot", ROBOTS)
def test_explicit_pairs_match_mujocos_own_detection(robot):
    """The explicit pairs (per-pair margins) report the same barriers as MuJoCo's dynamic
    detection (the larger margin of each pair's geoms) with every margin at 2 m."""
    from robot_rl.safety.collision import SceneCollisionModel

    r = get_robot(robot)
    scene = get_scene("tabletop")
    cbf = _filter(robot).cbf
    dyn = SceneCollisionModel(_xml(robot), list(r.joint_names), scene, 2.0,
                              workspace=("ee", scene.workspace_lower, scene.workspace_upper))
    dyn.exclude_within(np.array(r.default_pose), cbf.config.self_margin)
    rng = np.random.default_rng(5)
    for _ in range(10):
        q = np.array(r.default_pose) + rng.normal(0.0, 0.5, 7)
        dyn.set(q)
        dist, _, _, g = dyn.contacts()
        h, _, _, g2, _, _, _ = cbf._rows(q)
        ours = sorted((tuple(sorted(map(int, x))), round(float(d), 12)) for x, d in zip(g2, cbf.col.data.contact.dist))
        theirs = sorted((tuple(sorted(map(int, x))), round(float(d), 12)) for x, d in zip(g, dist))
        assert ours == theirs
