"""Deploy an artifact on the robot twin through the launch file and measure it.

`robot-rl main` ends with this step: it starts `launch/deploy.launch.xml` (policy + safety + twin,
DDS backend, DDS traffic on loopback only), sends reach targets drawn like the training task's,
and reports success on the twin beside success in the training simulation, safety interventions,
policy inference p50/p99, the safety loop period p50/p99 and its misses, and the command latency
from the policy to the twin.

Command latency is measured by the safety node: from the stamp the policy node puts on a command
when it publishes it to the moment the safety node publishes the first driver command computed
from it (one DDS hop policy -> safety, the wait for the next 1 kHz tick, the filter); a command
the filter did not use (during a fault, a hold or a brake) gives no sample. The remaining hop,
safety -> twin, is one more DDS delivery on loopback (see `python -m robot_rl.transport.latency`).
`DeployConfig.namespace` runs the whole graph (and the check's own node) in a ROS namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DeployConfig:
    targets: int = 20
    """Reach targets sent to the twin, one after the other."""
    seconds_per_target: float = 2.0
    """Time the policy gets for each target (the training episode length)."""
    twin_seed: int = 0
    twin_dr: str = "eval"
    """The twin's dynamics: `eval` (the task's held-out DR range), `train`, or `nominal`."""
    twin_stress: str = ""
    """A published stress twin (`robot_rl.sim.twins.STRESS_TWINS`) instead of `twin_dr`; empty = none."""
    seed: int = 0
    safety_rt_priority: int = 50
    """SCHED_FIFO priority of the safety loop (0 = normal scheduling); without permission the
    safety node warns and runs at normal priority."""
    critic: str = ""
    """The safety node's `critic` param: empty = the launch file's default (`artifact`: the artifact's
    own checksummed critic when it has one), `off`, or another artifact directory with a critic
    trained for this artifact."""
    domain_id: int = 0
    """ROS_DOMAIN_ID for the deployment (0 = pick one from the process id)."""
    startup_timeout_s: float = 60.0
    namespace: str = ""
    """ROS namespace of the deployed graph (e.g. ``/arm1``; empty: the root namespace). Every topic
    of the graph is relative, so the launch file's ``namespace`` argument moves all of them."""


def deploy_on_twin(artifact: str | Path, cfg: DeployConfig, log_path: Path | None = None) -> dict:
    from robot_rl.launch_runner.ament import share_dir
    from robot_rl.sim import make_task
    from robot_rl.transport import create_node, msgs
    from robot_rl.transport.loopback import loopback_env

    artifact = Path(artifact).resolve()
    spec = json.loads((artifact / "spec.json").read_text())
    task = make_task(spec["task"])
    if "target_pos" not in spec["observation"].get("commands", {}) or not hasattr(task, "target_lo"):
        raise ValueError(f"the twin check sends reach targets; task {spec['task']!r} has no target_pos command")
    domain = cfg.domain_id or (100 + os.getpid() % 100)
    env = loopback_env(domain)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "ROBOT_RL_TRANSPORT")})
    launch_file = Path(share_dir()) / "launch" / "deploy.launch.xml"
    cmd = [sys.executable, "-m", "robot_rl.launch_runner", str(launch_file), f"artifact:={artifact}",
           f"twin_seed:={cfg.twin_seed}", f"twin_dr:={cfg.twin_dr}",
           f"safety_rt_priority:={cfg.safety_rt_priority}"] + ([f"critic:={cfg.critic}"] if cfg.critic else [])
    if cfg.namespace:
        cmd.append(f"namespace:={cfg.namespace}")
    if cfg.twin_stress:
        cmd.append(f"twin_stress:={cfg.twin_stress}")
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    lock = threading.Lock()
    latest: dict = {"ee": None, "safety": None, "policy": None}
    # in the graph's namespace, so the relative topic names below are the graph's
    node = create_node("deploy_check", cfg.namespace, backend="dds", domain_id=domain)

    def on_ee(m):
        with lock:
            latest["ee"] = np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])

    def on_json(key):
        def cb(m):
            with lock:
                latest[key] = json.loads(m.data)
        return cb

    node.create_subscription(msgs.PoseStamped, "twin/ee_pose", on_ee)
    node.create_subscription(msgs.String, "safety/diagnostics", on_json("safety"))
    node.create_subscription(msgs.String, "policy/diagnostics", on_json("policy"))
    target_pub = node.create_publisher(msgs.PoseStamped, spec["observation"]["commands"]["target_pos"]["topic"])
    node.start()
    rng = np.random.default_rng(cfg.seed)
    results = []
    try:
        deadline = time.monotonic() + cfg.startup_timeout_s
        while True:
            with lock:
                ready = latest["ee"] is not None and latest["safety"] is not None
            if ready:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the deployment exited early (code {proc.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the twin and safety node did not come up in {cfg.startup_timeout_s:.0f} s; "
                                   f"see {log_path}")
            time.sleep(0.05)
        target_pub.wait_for_subscribers(1, timeout=10.0)
        lo, hi = np.asarray(task.target_lo), np.asarray(task.target_hi)
        for _ in range(cfg.targets):
            target = lo + (hi - lo) * rng.random(3)
            msg = msgs.PoseStamped(header=msgs.Header(stamp=node.now(), frame_id="world"))
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, target)
            msg.pose.orientation.w = 1.0
            target_pub.publish(msg)
            time.sleep(cfg.seconds_per_target)
            with lock:
                ee = latest["ee"].copy()
            d = float(np.linalg.norm(ee - target))
            results.append({"target": target.tolist(), "distance_m": d, "success": d < task.success_radius})
        time.sleep(1.2)  # one more round of diagnostics
        with lock:
            safety, policy = latest["safety"], latest["policy"]
    finally:
        node.shutdown()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log_path:
            log.close()

    counters = safety.get("counters", {}) if safety else {}
    interventions = counters.get("interventions", {})
    loop = safety.get("loop", {}) if safety else {}
    return {
        "targets": len(results),
        "success_rate": float(np.mean([r["success"] for r in results])) if results else 0.0,
        "mean_distance_m": float(np.mean([r["distance_m"] for r in results])) if results else None,
        "per_target": results,
        "safety_interventions": int(sum(v for v in interventions.values() if isinstance(v, (int, float)))),
        "safety_interventions_by_reason": {k: v for k, v in interventions.items() if v},
        "commands_rejected": counters.get("commands_rejected", {}),
        "commands_clipped": counters.get("commands_clipped", {}),
        "policy_inference": (policy or {}).get("inference", {}),
        "safety_loop_period": loop.get("period", {}),
        "safety_loop_rate_hz": loop.get("rate_hz"),
        "safety_loop_missed": loop.get("missed"),
        "command_latency": loop.get("command_latency", {}),
        "domain_id": domain,
        "policy_kind": (policy or {}).get("kind"),
        "commands_accepted": counters.get("commands_accepted", 0),
        "namespace": node.namespace,
    }
