"""Load and run an exported policy artifact with onnxruntime, numpy and MuJoCo only (no torch).

An artifact is a directory:

* the policy kind's ONNX file(s) (`policy.onnx`), run by the kind's runtime
  (`robot_rl.runtimes`), which the loader picks by `spec["policy"]["kind"]`;
* `robot.xml`: the robot's model for kinematics on the robot (`robot_rl.kinematics`);
* `spec.json`: everything a deployed node needs, in these sections:
  - `policy`: kind, files, inputs/outputs (and the kind's own fields, e.g. memory shape);
  - `robot`: name, joints, default pose, position/velocity/effort limits, the actuator model as it
    really is (`actuator`: PD gains, gravity compensation, armature, damping, friction, motor
    strength; what the robot's controller must provide), frames, gripper, `model` (robot.xml);
  - `observation`: `dim`, `state_joints`, the terms in order (`func` + `params` rebuild the exact
    function the simulator used, `robot_rl.terms`), and the `commands` the task reads (name, dim,
    topic, message field);
  - `action`: `dim`, the action terms in order (func, params, joints, mode), `clip`;
  - `control` (period, physics step, decimation), `delays`, `training` (config, checkpoint);
  - `files`: sha256 of every file; `checksum`: sha256 of the spec itself.

`PolicyArtifact.load` verifies the checksums first: an edited or truncated artifact fails with an
`ArtifactError` that names the file, never with a wrong action.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FORMAT = "robot-rl-policy/2"


class ArtifactError(ValueError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spec_checksum(spec: dict) -> str:
    """sha256 of the canonical JSON of `spec` without its `checksum` field."""
    body = {k: v for k, v in spec.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_spec(path: str | Path) -> dict:
    """`spec.json` of an artifact, verified (format, spec checksum, every file's checksum)."""
    path = Path(path)
    spec_path = path / "spec.json"
    if not spec_path.is_file():
        raise ArtifactError(f"{path} is not a policy artifact (no spec.json); export one with `robot-rl export`")
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{spec_path} is corrupted ({e}); export the artifact again") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        got = spec.get("format") if isinstance(spec, dict) else None
        raise ArtifactError(f"{spec_path} is not a {FORMAT} spec (format {got!r}); export the artifact again "
                            "with this version of robot-rl")
    if spec.get("checksum") != spec_checksum(spec):
        raise ArtifactError(f"{spec_path} was modified after export (checksum mismatch); export the artifact again")
    for name, digest in spec["files"].items():
        f = path / name
        if not f.is_file():
            raise ArtifactError(f"{path} is missing {name}; export the artifact again")
        if sha256_file(f) != digest:
            raise ArtifactError(f"{f} was modified or truncated after export (checksum mismatch); export the artifact again")
    return spec


class PolicyArtifact:
    """A verified artifact and the runtime of its policy kind."""

    def __init__(self, path: Path, spec: dict):
        from robot_rl.policy_kinds import get_kind, runtime_class

        self.path = path
        self.spec = spec
        kind = spec["policy"]["kind"]
        try:
            get_kind(kind)
        except ValueError as e:
            raise ArtifactError(f"{path}: {e}; this robot-rl cannot run it (update robot-rl)") from None
        self.kind = kind
        self.runtime = runtime_class(kind)(path, spec)
        self.obs_dim = int(spec["observation"]["dim"])
        self.action_dim = int(spec["action"]["dim"])
        self.robot: dict = spec["robot"]
        self.joint_names: list[str] = list(self.robot["joint_names"])
        self.control_period_s = float(spec["control"]["period_s"])

    @classmethod
    def load(cls, path: str | Path) -> "PolicyArtifact":
        path = Path(path)
        return cls(path, load_spec(path))

    def reset(self) -> None:
        self.runtime.reset()

    def act(self, obs: np.ndarray):
        """`ActionChunk` for one observation [D] (the runtime's state is carried)."""
        return self.runtime.act(obs)

    def observe(self, obs: np.ndarray) -> None:
        """An observation at a step that asks for no action (history-conditioned kinds keep it)."""
        self.runtime.observe(obs)

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """First action [B, A] for a batch of independent observations [B, D] (no state)."""
        return self.runtime.act_batch(obs)

    @property
    def action_modes(self) -> set[str]:
        return {t["mode"] for t in self.spec["action"]["terms"]}

    @property
    def command_joints(self) -> list[str]:
        """Joints the action terms command, in order (arm joints, then gripper fingers)."""
        out: list[str] = []
        for t in self.spec["action"]["terms"]:
            out += [j for j in t["joints"] if j not in out]
        return out


def command_limits(spec: dict) -> dict:
    """Per commanded joint (`PolicyArtifact.command_joints` order): position limits, the largest
    command rate the policy can ask for, and effort limits (a finger's: the gripper's force).

    Rates: a `joint_position_delta` term moves its target by at most `scale` per control period;
    other joints use the robot's rated velocity; gripper fingers their full stroke in 0.5 s."""
    robot = spec["robot"]
    period = float(spec["control"]["period_s"])
    arm = {j: i for i, j in enumerate(robot["joint_names"])}
    grip = robot.get("gripper") or {}
    names: list[str] = []
    lower, upper, velocity, effort = [], [], [], []
    for term in spec["action"]["terms"]:
        for j in term["joints"]:
            if j in names:
                continue
            names.append(j)
            if j in arm:
                i = arm[j]
                lo, hi = robot["position_limits"][i]
                rate = float(robot["velocity_limits"][i])
                if term["func"] == "joint_position_delta":
                    rate = min(rate, float(term["params"].get("scale", 0.05)) / period)
                lower.append(lo)
                upper.append(hi)
                velocity.append(rate)
                effort.append(float(robot["effort_limits"][i]))
            elif j in grip.get("joint_names", []):
                a, b = float(grip["closed_position"]), float(grip["open_position"])
                lower.append(min(a, b))
                upper.append(max(a, b))
                velocity.append(abs(b - a) / 0.5)
                effort.append(float(grip["max_force"]))
            else:
                raise ArtifactError(f"the action commands joint {j!r}, which the robot description does not declare")
    return {"names": names, "lower": lower, "upper": upper, "velocity": velocity, "effort": effort}
