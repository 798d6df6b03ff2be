"""The safety critic inside a policy artifact: written, checksummed, verified and run like the policy.

``robot-rl train-critic --artifact DIR`` writes ``critic.onnx`` into the artifact and a
``safety_critic`` section into ``spec.json``; the file's sha256 joins ``spec["files"]`` and the
spec checksum is recomputed (:mod:`robot_rl.artifact`). The new directory is built in a temporary
copy beside the artifact, verified (:func:`robot_rl.artifact.load_spec` and a critic load), and
only then swapped in (renames), so a reader sees the old artifact or the new one, never a mix.

``spec["safety_critic"]``::

    file, format (CRITIC_FEATURES), features (names), robot, joint_names, policy_sha256 (the
    policy file's digest: the critic belongs to this policy), scene, activation_m, lookahead_s,
    velocity (rad/s per joint), home, threshold, hysteresis, dwell_s, calibration {...},
    training {...}

:func:`load_critic` checks that section against the artifact that is deployed: a critic from
another robot (robot name or joints differ) or another artifact (policy digest differs), or one
whose files fail their checksums, raises :class:`CriticError` with one line; the safety node then
refuses to start, so the robot holds. :class:`ArtifactCritic` maps ``(q, qd, q_cmd, v)`` to a risk in
[0, 1]; a non-finite risk is returned as 1 (fail closed) and counted in ``non_finite``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from robot_rl.artifact import ArtifactError, load_spec, sha256_file, spec_checksum

from .critic_features import CRITIC_FEATURES, Clearance, CriticFeatures, critic_feature_names

__all__ = ["CriticError", "ArtifactCritic", "load_critic", "write_critic", "remove_critic", "policy_digest",
           "CRITIC_FILE"]

CRITIC_FILE = "critic.onnx"


class CriticError(ValueError):
    pass


def policy_digest(spec: dict) -> str:
    """sha256 of the artifact's policy file: what a critic is bound to."""
    name = spec["policy"].get("onnx", "policy.onnx")
    try:
        return spec["files"][name]
    except KeyError:
        raise CriticError(f"the artifact lists no checksum for its policy file {name}; export it again") from None


def write_critic(artifact: str | Path, onnx_bytes: bytes | None, section: dict | None) -> dict:
    """Put ``critic.onnx`` and ``spec["safety_critic"] = section`` into the artifact atomically
    (module docstring); ``None, None`` removes them. Returns the new, verified spec."""
    art = Path(artifact).resolve()
    spec = load_spec(art)
    tmp = Path(tempfile.mkdtemp(prefix=f".{art.name}.critic-", dir=art.parent))
    old = art.parent / f".{art.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp)
        shutil.copytree(art, tmp)
        if onnx_bytes is None:
            (tmp / CRITIC_FILE).unlink(missing_ok=True)
            spec.pop("safety_critic", None)
            spec["files"].pop(CRITIC_FILE, None)
        else:
            (tmp / CRITIC_FILE).write_bytes(onnx_bytes)
            spec["safety_critic"] = dict(section, file=CRITIC_FILE)
            spec["files"][CRITIC_FILE] = sha256_file(tmp / CRITIC_FILE)
        spec["checksum"] = spec_checksum(spec)
        (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
        new_spec = load_spec(tmp)  # every checksum, before the directory appears
        if onnx_bytes is not None:
            load_critic(tmp, new_spec)
        os.replace(art, old)
        os.replace(tmp, art)
        shutil.rmtree(old, ignore_errors=True)
        return new_spec
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not art.exists():
            os.replace(old, art)
        raise


def remove_critic(artifact: str | Path) -> dict:
    """Take the critic out of the artifact (atomically, checksums recomputed and verified)."""
    return write_critic(artifact, None, None)


def _section(spec: dict, where: Path) -> dict:
    sec = spec.get("safety_critic")
    if not isinstance(sec, dict):
        raise CriticError(f"{where} has no safety critic; train one with `robot-rl train-critic --artifact {where}`")
    return sec


def load_critic(source: str | Path, deployed_spec: dict, threads: int = 1) -> "ArtifactCritic":
    """The critic of artifact directory ``source`` (checksums verified) for the artifact whose
    spec is ``deployed_spec``; :class:`CriticError` if it belongs to another robot or artifact."""
    src = Path(source)
    if src.suffix == ".onnx" or src.is_file():
        raise CriticError(f"{src}: a critic is loaded from an artifact directory (checksummed), not a bare "
                          ".onnx file; train it with `robot-rl train-critic --artifact DIR` and pass DIR")
    try:
        spec = load_spec(src)
    except ArtifactError as e:
        raise CriticError(f"safety critic: {e}") from None
    sec = _section(spec, src)
    robot = deployed_spec["robot"]
    if sec.get("format") != CRITIC_FEATURES:
        raise CriticError(f"{src}: critic format {sec.get('format')!r}, this robot-rl reads {CRITIC_FEATURES}; "
                          f"train it again with `robot-rl train-critic --artifact {src}`")
    if sec.get("robot") != robot.get("name") or list(sec.get("joint_names", [])) != list(robot["joint_names"]):
        raise CriticError(f"{src}: the critic was trained for robot {sec.get('robot')!r} joints "
                          f"{sec.get('joint_names')}, the deployed artifact is {robot.get('name')!r} joints "
                          f"{robot['joint_names']}; train a critic for this artifact")
    if sec.get("policy_sha256") != policy_digest(deployed_spec):
        raise CriticError(f"{src}: the critic was trained for another policy (policy checksum differs); "
                          "train one for the deployed artifact with `robot-rl train-critic --artifact DIR`")
    if sec.get("features") != critic_feature_names(robot["joint_names"]):
        raise CriticError(f"{src}: the critic's feature list differs from this version's; train it again")
    return ArtifactCritic(src / sec["file"], src / spec["robot"]["model"], sec, threads=threads)


class ArtifactCritic:
    """ONNX risk model plus its features (numpy, onnxruntime, MuJoCo; no torch)."""

    def __init__(self, onnx_path: Path, robot_xml_path: Path, section: dict, threads: int = 1):
        import onnxruntime as ort

        from robot_rl.scenes import get_scene

        self.section = section
        self.threshold = float(section["threshold"])
        self.hysteresis = float(section["hysteresis"])
        self.dwell_s = float(section["dwell_s"])
        joints = list(section["joint_names"])
        xml = Path(robot_xml_path).read_text()
        scene = get_scene(section["scene"]) if section.get("scene") else None
        clearance = Clearance(xml, joints, scene, section["home"], float(section["activation_m"]))
        self.features = CriticFeatures(clearance, section["lower"], section["upper"], section["velocity"],
                                       float(section["lookahead_s"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.non_finite = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Risk [...] for features [..., F]; NaN/Inf -> 1 (fail closed)."""
        x = np.asarray(x, dtype=np.float32)
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(x.reshape(-1, x.shape[-1]))})[0]
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        bad = ~np.isfinite(y)
        if bad.any():
            self.non_finite += int(bad.sum())
        return np.where(bad, 1.0, np.clip(y, 0.0, 1.0)).reshape(x.shape[:-1])

    def __call__(self, q, qd, q_cmd, v) -> float:
        """Risk of sending command ``q_cmd`` moving at ``v`` at measured state ``(q, qd)``."""
        f = self.features(q, qd, q_cmd, v)
        if not np.isfinite(f).all():
            self.non_finite += 1
            return 1.0
        return float(self.predict(f))
