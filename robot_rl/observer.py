"""The robot side of the terms: the state, observation and joint commands of one deployed robot,
from an artifact's spec, with the same term functions the simulator used (`robot_rl.terms`).

```
obs_side = RobotObserver(artifact.spec, artifact.path)
state = obs_side.state(q, dq, effort, {"target_pos": target})   # q, dq: state joints, spec order
obs_side.reset(state)                    # anchor held joint targets at the measured pose
obs = obs_side.observe(state)            # [D] float32, exactly the env's noise-free observation
targets = obs_side.apply(action, state)  # {joint: position target} for the commanded joints
```

Frames (e.g. `ee`) come from `mj_kinematics` on the artifact's `robot.xml`
(`robot_rl.kinematics.RobotKinematics`), Jacobians from `mj_jacSite` when an action term needs
them. numpy, onnxruntime and MuJoCo only: this runs on the robot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from robot_rl.kinematics import RobotKinematics
from robot_rl.terms import ActionGroup, ActTerm, ObservationGroup, ObsTerm, RobotState, make_context


class SpecError(ValueError):
    """The spec asks for something this robot side cannot provide (the message says what)."""


class RobotObserver:
    def __init__(self, spec: dict, artifact_dir: str | Path):
        self.spec = spec
        robot = spec["robot"]
        obs = spec["observation"]
        self.commands = {k: int(c["dim"]) for k, c in obs.get("commands", {}).items()}
        self.state_joints = list(obs["state_joints"])
        self.ctx = ctx = make_context(robot, self.commands)
        try:
            self.obs_terms = [ObsTerm.from_dict(t) for t in obs["terms"]]
            self.group = ObservationGroup(self.obs_terms, ctx)
            self.actions = ActionGroup([ActTerm(t["name"], t["func"], dict(t.get("params", {})))
                                        for t in spec["action"]["terms"]], ctx)
        except ValueError as e:
            raise SpecError(f"the artifact's terms cannot be built here: {e}") from None
        if self.actions.dim != int(spec["action"]["dim"]):
            raise SpecError(f"the spec's action terms add up to {self.actions.dim} values but its dim is "
                            f"{spec['action']['dim']}")
        self.actions.allocate(1, np.zeros(1))
        self.frames = {f: robot["frames"].get(f, f) for f in self._used_frames()}
        self.jacobian_frames = [f for t in self.actions.specs if t.func == "ee_delta"
                                for f in (t.params["frame"], t.params.get("hold_frame")) if f]
        self.kin = None
        if self.frames or self.jacobian_frames:
            kin_joints = [j for j in self.state_joints]
            self.kin = RobotKinematics(Path(artifact_dir) / robot["model"], kin_joints)
            for f, site in self.frames.items():
                if site not in self.kin.site_names:
                    raise SpecError(f"frame {f!r} (site {site!r}) is not in the artifact's robot model")
        self.command_joints: list[str] = []
        for t in self.actions.terms:
            self.command_joints += [j for j in t.joints if j not in self.command_joints]
        self.last_action = np.zeros((1, self.actions.dim))
        self.dim = int(obs["dim"])

    def _used_frames(self) -> list[str]:
        names = [t.params["frame"] for t in self.obs_terms if "frame" in t.params]
        names += [t.params[k] for t in self.actions.specs for k in ("frame", "hold_frame") if t.params.get(k)]
        return list(dict.fromkeys(names))

    @property
    def needs(self) -> list[str]:
        """The commands the observation reads (e.g. a target), in spec order."""
        return list(self.commands)

    def state(self, q, dq, effort=None, commands: Mapping[str, np.ndarray] | None = None) -> RobotState:
        """The robot state from measured positions/velocities of the state joints (spec order)."""
        q = np.asarray(q, dtype=np.float64).reshape(1, -1)
        dq = np.asarray(dq, dtype=np.float64).reshape(1, -1)
        n_act = len(self.ctx.actuated)
        eff = np.full((1, n_act), np.nan) if effort is None else np.asarray(effort, dtype=np.float64).reshape(1, -1)
        frames, jac = {}, {}
        if self.kin is not None:
            for f, site in self.frames.items():
                frames[f] = self.kin.site_pos(q[0], site).reshape(1, 3)
            for f in self.jacobian_frames:
                full = self.kin.site_jacobian(q[0], self.frames.get(f, f))
                jac[f] = full[None, :, :n_act]
        cmds = {k: np.asarray(v, dtype=np.float64).reshape(1, -1) for k, v in (commands or {}).items()}
        return RobotState(joint_pos=q, joint_vel=dq, joint_effort=eff[:, :n_act], frames=frames, commands=cmds,
                          last_action=self.last_action, joint_target=self.actions.joint_target, jacobians=jac)

    def reset(self, state: RobotState) -> None:
        """Start over from the measured state: held targets re-anchored, last action zero."""
        self.actions.reset(state)
        self.last_action = np.zeros((1, self.actions.dim))
        state.last_action = self.last_action
        state.joint_target = self.actions.joint_target

    def observe(self, state: RobotState) -> np.ndarray:
        state.last_action = self.last_action
        state.joint_target = self.actions.joint_target
        return np.asarray(self.group(state)[0], dtype=np.float32)

    def apply(self, action, state: RobotState) -> dict[str, float]:
        """Joint position targets for `action` (clipped to [-1, 1]; NaN -> 0), by joint name."""
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(1, -1), nan=0.0), -1.0, 1.0)
        out: dict[str, float] = {}
        for term, value in zip(self.actions.terms, self.actions(a, state)):
            for j, v in zip(term.joints, np.asarray(value).reshape(-1)):
                out[j] = float(v)
        self.last_action = a
        return out
