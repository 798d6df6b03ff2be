"""Load and run an exported policy artifact with onnxruntime and numpy only (no torch).

An artifact is a directory:

* `policy.onnx`: `obs [B, D] float32 -> actions [B, A] float32`, observation normalization inside;
* `spec.json`: what a deployed node needs to build `obs` from robot topics and turn `actions` into
  joint commands: observation terms in order (name, size, unit, scale, source), action names and
  scale, joint order, default pose, limits, PD gains, control period, delays, the robot's kinematic
  chain, the training config, and checksums of every file and of the spec itself.

`PolicyArtifact.load` verifies the checksums first: an edited or truncated artifact fails with an
`ArtifactError` that names the file, never with a wrong action.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FORMAT = "robot-rl-policy/1"


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


class PolicyArtifact:
    def __init__(self, path: Path, spec: dict, session):
        self.path = path
        self.spec = spec
        self._session = session
        self._input = session.get_inputs()[0].name
        self.obs_dim = int(spec["observation"]["dim"])
        self.action_dim = int(spec["action"]["dim"])
        self.joint_names: list[str] = list(spec["joints"]["names"])
        self.default_pose = np.asarray(spec["joints"]["default_pose"], dtype=np.float64)
        self.action_scale = float(spec["action"]["scale"])
        lim = np.asarray(spec["joints"]["position_limits"], dtype=np.float64)
        self.position_lo, self.position_hi = lim[:, 0], lim[:, 1]
        self.control_period_s = float(spec["control"]["period_s"])

    @classmethod
    def load(cls, path: str | Path) -> "PolicyArtifact":
        path = Path(path)
        spec_path = path / "spec.json"
        if not spec_path.is_file():
            raise ArtifactError(f"{path} is not a policy artifact (no spec.json); export one with `robot-rl export`")
        try:
            spec = json.loads(spec_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{spec_path} is corrupted ({e}); export the artifact again") from None
        if not isinstance(spec, dict) or spec.get("format") != FORMAT:
            raise ArtifactError(f"{spec_path} is not a {FORMAT} spec; export the artifact again")
        if spec.get("checksum") != spec_checksum(spec):
            raise ArtifactError(f"{spec_path} was modified after export (checksum mismatch); export the artifact again")
        for name, digest in spec["files"].items():
            f = path / name
            if not f.is_file():
                raise ArtifactError(f"{path} is missing {name}; export the artifact again")
            if sha256_file(f) != digest:
                raise ArtifactError(f"{f} was modified or truncated after export (checksum mismatch); export the artifact again")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path / "policy.onnx"), opts, providers=["CPUExecutionProvider"])
        return cls(path, spec, session)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Policy actions for `obs` [D] or [B, D] (same leading shape out)."""
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"observation has {x.shape[-1]} values, the policy expects {self.obs_dim}")
        out = self._session.run(None, {self._input: x[None] if single else x})[0]
        return out[0] if single else out

    @property
    def action_mode(self) -> str:
        return self.spec["action"]["mode"]

    def joint_targets(self, action: np.ndarray, previous_target: np.ndarray | None = None) -> np.ndarray:
        """Joint position targets in `joint_names` order for a position-mode action.

        `joint_position`: default_pose + scale * action. `joint_position_delta`: previous_target +
        scale * action, where previous_target starts as the measured position at start-up.
        """
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if self.action_mode == "joint_position":
            base = self.default_pose
        elif self.action_mode == "joint_position_delta":
            if previous_target is None:
                raise ValueError("a joint_position_delta policy needs the previous joint target")
            base = np.asarray(previous_target, dtype=np.float64)
        else:
            raise ValueError(f"action mode {self.action_mode!r} does not produce joint position targets")
        return np.clip(base + self.action_scale * a, self.position_lo, self.position_hi)
