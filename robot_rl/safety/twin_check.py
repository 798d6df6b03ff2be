"""An in-process, simulated-time deployment loop: robot twin + safety filter (+ critic) + policy.

:func:`run_on_twin` runs what ``launch/deploy.launch.xml`` runs, without processes or DDS, in
simulated time (deterministic): :class:`robot_rl.hardware.twin.RobotTwin` (held-out dynamics, the
scene's table and obstacles), the safety filter and critic built exactly as the safety node builds
them (:func:`robot_rl.nodes.safety.build_filter`, from a dict of node parameters), a tick at
``rate_hz``, the critic at ``critic_rate_hz``, and the artifact's policy through
:class:`robot_rl.observer.RobotObserver` at its control rate, reaching targets drawn like
:mod:`robot_rl.deploy_check` draws them. ``commander`` (e.g. a rogue, ``commander(t) -> q``)
replaces the policy's commands.

Reported: success (ee within the task's success radius at the end of each target's time),
interventions per minute and the share of ticks in ``backup``, the share of ticks in backup while
no constraint violation followed within ``violation_window_s`` (false interventions), and
constraint violations of the twin's true joint positions (checked every 10 ticks: joint limits,
self-collision, table/obstacle penetration; counted as onsets and as violating checks).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["run_on_twin"]


class _Params:
    """The part of a node :func:`build_filter` uses: parameters from a dict and a logger."""

    def __init__(self, values: dict):
        self.values = dict(values)
        self.logger = logging.getLogger("robot_rl.twin_check")

    def declare_parameter(self, name, default):
        return self.values.get(name, default)


def run_on_twin(artifact: str | Path, *, params: dict | None = None, targets: int = 15,
                seconds_per_target: float = 2.0, twin_seed: int = 0, seed: int = 0, rate_hz: float = 1000.0,
                critic_rate_hz: float = 100.0, commander=None, violation_window_s: float = 0.5,
                trace: list | None = None) -> dict:
    """The loop of the module docstring; returns its report. ``trace``: a list that receives
    ``(t, mode, risk, violated kinds)`` every 10 ticks."""
    from robot_rl.artifact import PolicyArtifact
    from robot_rl.hardware.twin import RobotTwin
    from robot_rl.nodes.safety import build_filter
    from robot_rl.observer import RobotObserver
    from robot_rl.scenes import get_scene
    from robot_rl.sim import make_task

    from .critic_data import violations
    from .critic_features import Clearance

    art = PolicyArtifact.load(artifact)
    spec, robot = art.spec, art.spec["robot"]
    node = _Params({"rate_hz": rate_hz, **(params or {})})
    cfg, filt, critic = build_filter(node, spec, art.path)
    names = list(cfg.joint_names)
    task = make_task(spec["task"])
    twin = RobotTwin(spec["task"], seed=twin_seed, dr="eval", physics_rate_hz=rate_hz)
    observer = RobotObserver(spec, art.path)
    out_joints = list(observer.command_joints)
    state_joints = list(observer.state_joints)
    s_idx = [twin.joint_names.index(j) for j in state_joints]
    f_idx = [twin.joint_names.index(j) for j in names]
    cj = [names.index(j) for j in critic.section["joint_names"]] if critic is not None else []
    xml = (art.path / robot["model"]).read_text()
    arm = list(robot["joint_names"])
    a_idx = [twin.joint_names.index(j) for j in arm]
    scene = get_scene(robot["scene"]) if robot.get("scene") else None
    clear = Clearance(xml, arm, scene, robot["default_pose"], 0.05)
    lo = np.array([a for a, _ in robot["position_limits"]])
    hi = np.array([b for _, b in robot["position_limits"]])
    ee_site = robot["frames"].get("ee", "ee")
    rng = np.random.default_rng(seed)
    tlo, thi = np.asarray(task.target_lo), np.asarray(task.target_hi)

    dt = 1.0 / rate_hz
    policy_every = max(1, int(round(art.control_period_s * rate_hz)))
    critic_every = max(1, int(round(rate_hz / critic_rate_hz)))
    per_target = int(round(seconds_per_target * rate_hz))
    total = targets * per_target
    modes = np.empty(total, dtype=object)
    viol_check = np.zeros(total, dtype=bool)
    kinds = {"joint_limit": 0, "self_collision": 0, "scene_contact": 0}
    prev_kinds: set = set()
    results, anchored, queue = [], False, []
    target = tlo + (thi - tlo) * rng.random(3)
    for k in range(total):
        t = k * dt
        if k and k % per_target == 0:
            d = float(np.linalg.norm(twin.site_pos(ee_site) - target))
            results.append(d < task.success_radius)
            target = tlo + (thi - tlo) * rng.random(3)
        q, dq, tau = twin.read()
        filt.on_state(t, names, q[f_idx], dq[f_idx], tau[f_idx])
        if k % policy_every == 0:
            if commander is not None:
                filt.on_command(t, names, commander(t))
            else:
                state = observer.state(q[s_idx], dq[s_idx], None, {"target_pos": target})
                if not anchored:
                    observer.reset(state)
                    art.reset()
                    anchored = True
                while len(queue) > 1 and queue[1][0] <= t:
                    queue.pop(0)
                if not queue:
                    chunk = art.act(observer.observe(state))
                    queue.extend((t + float(o), a) for o, a in zip(chunk.offsets_s, chunk.actions))
                targets_ = observer.apply(queue.pop(0)[1], state)
                filt.on_command(t, out_joints, [targets_[j] for j in out_joints])
        if critic is not None and k % critic_every == 0:  # as the node: also in a fault, so the risk never goes stale
            filt.set_risk(t, critic(q[f_idx][cj], dq[f_idx][cj], filt.output[cj], filt.command_velocity[cj]))
        cmd, st = filt.tick(t)
        modes[k] = st["mode"]
        if cmd is not None:
            twin.set_command(cmd, names)
        twin.advance_to(t + dt)
        if k % 10 == 0:
            q_true = twin.read(noisy=False)[0][a_idx] - np.asarray(twin.encoder_bias)[a_idx]
            v = violations(q_true, clear(q_true), lo, hi, limit_margin=-1e-3)
            now = {name for name, x in v.items() if bool(x)}
            for name in now - prev_kinds:
                kinds[name] += 1
            prev_kinds = now
            viol_check[k] = bool(now)
            if trace is not None:
                trace.append((t, st["mode"], st["risk"], sorted(now)))
    results.append(float(np.linalg.norm(twin.site_pos(ee_site) - target)) < task.success_radius)
    backup = modes == "backup"
    W = int(round(violation_window_s * rate_hz))
    cs = np.concatenate([[0], np.cumsum(viol_check)])
    ahead = cs[np.minimum(np.arange(total) + W, total)] - cs[np.arange(total)]
    entries = int((backup[1:] & ~backup[:-1]).sum() + backup[0])
    c = filt.counters
    return {
        "targets": targets, "success_rate": float(np.mean(results)), "ticks": total,
        "backup_share": float(backup.mean()), "false_backup_share": float((backup & (ahead == 0)).mean()),
        "backup_entries_per_min": entries / (total * dt / 60.0),
        "interventions_per_min": sum(v for v in c["interventions"].values()) / (total * dt / 60.0),
        "mode_share": {m: float((modes == m).mean()) for m in set(modes.tolist())},
        "violation_onsets": kinds, "violation_checks": int(viol_check.sum()),
        "violation_checks_by_mode": {m: int((viol_check & (modes == m)).sum()) for m in set(modes.tolist())},
        "critic": critic is not None, "threshold": cfg.risk_threshold, "cbf": cfg.cbf is not None,
    }
