"""Helpers for the deployment-node tests: artifacts, node subprocesses, topic recorders."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from robot_rl.transport.loopback import loopback_env

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def next_domain_id() -> int:
    """A ROS domain id per test (spread by pid so parallel runs do not meet)."""
    return 1 + (os.getpid() * 41 + next(_counter) * 11 + 5) % 230


def linear_reach_artifact(trained: Path, out: Path, gain: float = 0.15) -> Path:
    """Copy of ``trained`` whose policy.onnx is a hand-made resolved-rate controller.

    action = gain / action_scale * J^+ (e - J (q_cmd - q)), with e = target - ee and J the
    end-effector Jacobian at the default pose, read from the observation terms ee_to_target and
    joint_target_offset. It is a small, deterministic policy that moves the arm toward a target
    near the default pose, so an end-to-end test can check the whole data path.
    """
    import onnx
    from onnx import TensorProto, helper

    from robot_rl.artifact import sha256_file, spec_checksum
    from robot_rl.kinematics import RobotKinematics

    spec = json.loads((trained / "spec.json").read_text())
    names = spec["robot"]["joint_names"]
    kin = RobotKinematics((trained / spec["robot"]["model"]).read_text(), names)
    q0 = np.asarray(spec["robot"]["default_pose"])
    site = spec["robot"]["frames"]["ee"]
    n = len(q0)
    J = kin.site_jacobian(q0, site)  # [3, n]
    Jp = np.linalg.pinv(J)  # [n, 3]
    (arm,) = [t for t in spec["action"]["terms"] if t["func"] == "joint_position_delta"]
    k = gain / float(arm["params"]["scale"])
    W = np.zeros((int(spec["observation"]["dim"]), n))
    i = 0
    for term in spec["observation"]["terms"]:
        d, s = term["dim"], term["scale"]
        if term["name"] == "ee_to_target":
            W[i:i + d] = (k * Jp / s).T
        elif term["name"] == "joint_target_offset":
            W[i:i + d] = (-k * (Jp @ J) / s).T
        i += d
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["actions"])], "linear_reach",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", W.shape[0]])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor("W", TensorProto.FLOAT, W.shape, W.astype(np.float32).ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(trained, out)
    (out / "parity.json").unlink()
    onnx.save(model, str(out / "policy.onnx"))
    spec["policy"] = {"kind": "mlp", "onnx": "policy.onnx", "inputs": ["obs"], "outputs": ["actions"]}
    spec["files"] = {f: sha256_file(out / f) for f in ("policy.onnx", spec["robot"]["model"])}
    spec["checksum"] = spec_checksum(spec)
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    return out


def fake_chunk_artifact(src: Path, out: Path, sleep_s: float, length: int, horizon: int) -> Path:
    """Copy of ``src`` run by the `fake-chunk` kind of ``_chunk_policy_node.py`` (a chunked policy
    whose inference takes ``sleep_s``), with absolute `joint_position` actions so that each
    published target tells which chunk and action index ran."""
    from robot_rl.artifact import spec_checksum

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    spec = json.loads((out / "spec.json").read_text())
    spec["policy"] = {"kind": "fake-chunk", "onnx": spec["policy"]["onnx"], "sleep_s": sleep_s, "length": length,
                      "execution_horizon": horizon}
    for term in spec["action"]["terms"]:
        if term["func"] == "joint_position_delta":
            term["func"], term["params"] = "joint_position", {**term["params"], "scale": 0.5}
    spec["checksum"] = spec_checksum(spec)
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    return out


def renamed_artifact(src: Path, out: Path, names: list[str]) -> Path:
    """Copy of ``src`` whose spec and robot model name other joints (as if trained for another robot)."""
    from robot_rl.artifact import sha256_file, spec_checksum

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    spec = json.loads((out / "spec.json").read_text())
    rename = dict(zip(spec["robot"]["joint_names"], names))
    spec["robot"]["joint_names"] = list(names)
    spec["observation"]["state_joints"] = [rename.get(j, j) for j in spec["observation"]["state_joints"]]
    for term in spec["action"]["terms"]:
        term["joints"] = [rename.get(j, j) for j in term["joints"]]
    xml = (out / spec["robot"]["model"]).read_text()
    for old, new in rename.items():
        xml = xml.replace(f'"{old}"', f'"{new}"')
    (out / spec["robot"]["model"]).write_text(xml)
    spec["files"][spec["robot"]["model"]] = sha256_file(out / spec["robot"]["model"])
    spec["checksum"] = spec_checksum(spec)
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    return out


def node_env(domain: int) -> dict:
    env = loopback_env(domain)
    env["MUJOCO_GL"] = "egl"
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class NodeProcess:
    """``python -m robot_rl.nodes.<name> --ros-args -p k:=v ...`` (or ``python <script> ...``) with
    its output in a log file."""

    def __init__(self, name: str, params: dict, domain: int, log_dir: Path, script: Path | None = None):
        head = [str(script)] if script is not None else ["-m", f"robot_rl.nodes.{name}"]
        argv = [sys.executable, *head, "--ros-args"]
        for k, v in params.items():
            argv += ["-p", f"{k}:={v}"]
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, env=node_env(domain), stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(REPO))

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies without any chance to clean up (a crash)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    # a node exits within a second of SIGINT on a quiet machine; a loaded 2-core host can take over 5 s
    def stop(self, timeout: float = 15.0) -> int | None:
        if self._log.closed:
            return self.proc.returncode
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Recorder:
    """Records (receive time, message) of one topic (callbacks run on the node's spin thread)."""

    def __init__(self, node, msg_type, topic: str, qos="default"):
        self.items: list[tuple[float, object]] = []
        self._lock = threading.Lock()
        self.sub = node.create_subscription(msg_type, topic, self._cb, qos=qos)

    def _cb(self, msg) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def since(self, t0: float) -> list:
        with self._lock:
            return [m for t, m in self.items if t >= t0]

    def times(self) -> np.ndarray:
        with self._lock:
            return np.array([t for t, _ in self.items])

    def last(self):
        with self._lock:
            return self.items[-1][1] if self.items else None

    def wait_for(self, pred, timeout: float, what: str = "a message", since: float | None = None):
        """The newest message satisfying ``pred`` (received at or after ``since``, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for t, m in reversed(self.items):
                    if since is not None and t < since:
                        break
                    if pred(m):
                        return m
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} on {self.sub.topic}")


class StatePublisher:
    """Publishes a constant JointState at ``rate_hz`` from a thread (a stand-in robot); ``paused``
    (an Event) suspends it, e.g. for a joint-state outage."""

    def __init__(self, node, names, q, rate_hz: float = 500.0, topic: str = "/joint_states"):
        from robot_rl.transport import msgs

        self.msgs, self.names, self.q = msgs, list(names), np.asarray(q, dtype=np.float64)
        self.pub = node.create_publisher(msgs.JointState, topic)
        self.period = 1.0 / rate_hz
        self.paused = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        nxt = time.perf_counter()
        zeros = np.zeros(len(self.names))
        while not self._stop.is_set():
            if not self.paused.is_set():
                self.pub.publish(self.msgs.joint_state_from_numpy(self.names, self.q, zeros, zeros))
            nxt += self.period
            time.sleep(max(0.0, nxt - time.perf_counter()))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)


def diag(msg) -> dict:
    return json.loads(msg.data)
