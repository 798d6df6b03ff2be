"""Deploy an artifact on the robot twin through the launch file and measure it.

`robot-rl main` ends with this step: it starts `launch/deploy.launch.xml` (policy + safety + twin,
DDS backend, DDS traffic on loopback only) and measures the deployed policy on the twin:

* a task with a reach target (a `target_pos` command, e.g. iiwa-reach, panda-reach): the check
  sends `targets` reach targets drawn like the training task's on the command's topic and
  measures the distance from `twin/ee_pose` after `seconds_per_target` (report: `targets`,
  `per_target`, `mean_distance_m`);
* any other task (e.g. panda-peg-insert): the check runs `episodes` twin episodes through the
  twin's sim-only episode interface (`robot_rl.nodes.twin`: a request on `twin/episode`, JSON
  `{"seed": k, "id": n}`, seeds `seed`, `seed + 1`, ...; the status on `twin/episode_status`). The
  twin sets the scene to the task's own reset for that seed and publishes the task's commands (the
  perception input, e.g. `hole_pose`); an episode lasts the task's episode length (or
  `seconds_per_episode`) or until the task terminates it; success is the task's own `success` on
  the twin's true state (report: `episodes`, `per_episode` with seed, success, time, distance and
  the safety interventions during that episode).

Both report the success rate, safety interventions (in episode mode, those during episodes; the
ones the resets cause, `state_stale` and `cmd_stale` while the twin's joint states pause, apart in
`reset_interventions_by_reason`), policy inference p50/p99, the safety loop period p50/p99 and its
misses, and the command latency from the policy to the twin.

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


def _see(log_path) -> str:
    return f"see {log_path}" if log_path else "rerun with --log FILE to keep the graph's output"


@dataclass
class DeployConfig:
    targets: int = 20
    """Reach targets sent to the twin, one after the other (tasks with a `target_pos` command)."""
    seconds_per_target: float = 2.0
    """Time the policy gets for each target (the training episode length)."""
    episodes: int = 10
    """Twin episodes (tasks without a reach target): the task's reset for seeds seed, seed+1, ..."""
    seconds_per_episode: float = 0.0
    """Time limit of a twin episode (0: the task's episode length); it ends earlier when the task
    terminates it (e.g. on success)."""
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
    """Launch the deploy graph on the twin for `artifact`, run reach targets or twin episodes (module
    docstring), stop the graph; returns the report (JSON-able)."""
    from robot_rl.launch_runner.ament import share_dir
    from robot_rl.sim import make_task
    from robot_rl.transport import create_node, msgs
    from robot_rl.transport.loopback import loopback_env

    artifact = Path(artifact).resolve()
    spec = json.loads((artifact / "spec.json").read_text())
    task = make_task(spec["task"])
    reach = "target_pos" in spec["observation"].get("commands", {})
    if reach and not hasattr(task, "target_lo"):
        raise ValueError(f"task {spec['task']!r} reads a target_pos command but declares no target range "
                         "(target_lo / target_hi) to draw reach targets from")
    if not reach and cfg.episodes < 1:
        raise ValueError(f"DeployConfig.episodes={cfg.episodes}: run at least one twin episode")
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
    latest: dict = {"ee": None, "safety": None, "policy": None, "status": None}
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
    if reach:
        pub = node.create_publisher(msgs.PoseStamped, spec["observation"]["commands"]["target_pos"]["topic"])
    else:
        node.create_subscription(msgs.String, "twin/episode_status", on_json("status"))
        pub = node.create_publisher(msgs.String, "twin/episode")
    node.start()

    def get(key):
        with lock:
            return latest[key]

    try:
        deadline = time.monotonic() + cfg.startup_timeout_s
        while not (get("ee") is not None and get("safety") is not None and (reach or get("status") is not None)):
            if proc.poll() is not None:
                raise RuntimeError(f"the deployment exited early (code {proc.returncode}); {_see(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the twin and safety node did not come up in {cfg.startup_timeout_s:.0f} s; "
                                   f"{_see(log_path)}")
            time.sleep(0.05)
        pub.wait_for_subscribers(1, timeout=10.0)
        if reach:
            report = _run_targets(node, msgs, pub, task, cfg, get)
        else:
            report = _run_episodes(pub, msgs, task, cfg, get, proc, log_path)
        time.sleep(1.2)  # one more round of diagnostics
        safety, policy = get("safety"), get("policy")
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
    if reach:
        during = interventions
    else:
        during = _sum_counts([r["safety_interventions_by_reason"] for r in report["per_episode"]])
        report["reset_interventions_by_reason"] = {k: v - during.get(k, 0) for k, v in interventions.items()
                                                   if v - during.get(k, 0)}
    return {
        **report,
        "safety_interventions": int(sum(v for v in during.values() if isinstance(v, (int, float)))),
        "safety_interventions_by_reason": {k: v for k, v in during.items() if v},
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


def _run_targets(node, msgs, target_pub, task, cfg: DeployConfig, get) -> dict:
    """Reach targets drawn from the task's target range, one every `seconds_per_target`."""
    rng = np.random.default_rng(cfg.seed)
    results = []
    lo, hi = np.asarray(task.target_lo), np.asarray(task.target_hi)
    for _ in range(cfg.targets):
        target = lo + (hi - lo) * rng.random(3)
        msg = msgs.PoseStamped(header=msgs.Header(stamp=node.now(), frame_id="world"))
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, target)
        msg.pose.orientation.w = 1.0
        target_pub.publish(msg)
        time.sleep(cfg.seconds_per_target)
        d = float(np.linalg.norm(get("ee") - target))
        results.append({"target": target.tolist(), "distance_m": d, "success": d < task.success_radius})
    return {
        "mode": "targets",
        "targets": len(results),
        "success_rate": float(np.mean([r["success"] for r in results])) if results else 0.0,
        "mean_distance_m": float(np.mean([r["distance_m"] for r in results])) if results else None,
        "per_target": results,
    }


def _sum_counts(dicts: list[dict]) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _interventions(get) -> dict:
    return dict(((get("safety") or {}).get("counters") or {}).get("interventions") or {})


def _wait(pred, timeout_s: float, what: str, proc, log_path) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if proc.poll() is not None:
            raise RuntimeError(f"the deployment exited during {what} (code {proc.returncode}); {_see(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}; {_see(log_path)}")
        time.sleep(0.02)


def _run_episodes(req_pub, msgs, task, cfg: DeployConfig, get, proc, log_path) -> dict:
    """`cfg.episodes` twin episodes (seeds cfg.seed + k), each until the task terminates it or its
    time limit; the safety interventions of each counted from the moment the safety node is back in
    ``ok`` after the reset (re-anchored at the new pose) to the episode's end."""
    limit = cfg.seconds_per_episode or float(task.episode_length_s)
    results = []
    for k in range(cfg.episodes):
        eid, seed = k + 1, cfg.seed + k
        req = msgs.String(data=json.dumps({"seed": seed, "id": eid}))

        def running(eid=eid, req=req):
            st = get("status") or {}
            if st.get("episode") != eid:
                req_pub.publish(req)  # idempotent by id: a repeat of a request in flight is ignored
                time.sleep(0.1)
            return st.get("episode") == eid and st.get("phase") == "running"

        _wait(running, 10.0, f"twin episode {eid} to start", proc, log_path)
        t0 = time.monotonic()
        # the reset's silence faults the safety node; count from its return to `ok` (or 2 s)
        while (get("safety") or {}).get("mode") != "ok" and time.monotonic() - t0 < 2.0:
            time.sleep(0.01)
        before = _interventions(get)
        _wait(lambda: ((get("status") or {}).get("terminated") or (get("status") or {}).get("time_s", 0.0) >= limit),
              limit + 10.0, f"twin episode {eid} to end", proc, log_path)
        st, after = get("status"), _interventions(get)
        results.append({
            "episode": eid, "seed": seed, "success": bool(st.get("success")), "time_s": st.get("time_s"),
            "first_success_s": st.get("first_success_s"), "distance": st.get("distance"),
            "commands": st.get("commands"),
            "safety_interventions_by_reason": {r: after[r] - before.get(r, 0) for r in after
                                               if after[r] - before.get(r, 0)},
        })
    dists = [r["distance"] for r in results if r["distance"] is not None]
    return {
        "mode": "episodes",
        "episodes": len(results),
        "success_rate": float(np.mean([r["success"] for r in results])) if results else 0.0,
        "mean_distance": float(np.mean(dists)) if dists else None,
        "episode_limit_s": limit,
        "per_episode": results,
    }


def main(argv=None) -> int:
    """``python -m robot_rl.deploy_check ARTIFACT [--episodes N] ...``: deploy an artifact on the twin
    through the launch file and print the report's figures (the JSON report goes to ``--report``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m robot_rl.deploy_check", description=__doc__.split("\n")[0])
    p.add_argument("artifact")
    d = DeployConfig()
    p.add_argument("--episodes", type=int, default=d.episodes, help="twin episodes (tasks without reach targets)")
    p.add_argument("--seconds-per-episode", type=float, default=d.seconds_per_episode,
                   help="0: the task's episode length")
    p.add_argument("--targets", type=int, default=d.targets, help="reach targets (tasks with target_pos)")
    p.add_argument("--seconds-per-target", type=float, default=d.seconds_per_target)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--twin-seed", type=int, default=d.twin_seed)
    p.add_argument("--twin-dr", default=d.twin_dr, choices=("eval", "train", "nominal"))
    p.add_argument("--twin-stress", default=d.twin_stress)
    p.add_argument("--report", default="", help="write the JSON report here")
    p.add_argument("--log", default="", help="write the launched graph's output here")
    a = p.parse_args(argv)
    if not (Path(a.artifact) / "spec.json").is_file():
        print(f"error: {a.artifact} is not a policy artifact (no spec.json); export one with robot-rl export",
              file=sys.stderr)
        return 2
    cfg = DeployConfig(episodes=a.episodes, seconds_per_episode=a.seconds_per_episode, targets=a.targets,
                       seconds_per_target=a.seconds_per_target, seed=a.seed, twin_seed=a.twin_seed,
                       twin_dr=a.twin_dr, twin_stress=a.twin_stress)
    r = deploy_on_twin(a.artifact, cfg, log_path=Path(a.log) if a.log else None)
    if a.report:
        Path(a.report).write_text(json.dumps(r, indent=2))
    n = r["episodes"] if r["mode"] == "episodes" else r["targets"]
    print(f"success on the twin: {r['success_rate']:.1%} of {n} {r['mode']} ({r['policy_kind']} policy)")
    for e in r.get("per_episode", []):
        print(f"  episode {e['episode']} seed {e['seed']}: {'success' if e['success'] else 'failure'} "
              f"at {e['time_s']:.2f} s" + (f", distance {e['distance'] * 1e3:.1f} mm" if e["distance"] is not None
                                           else ""))
    pct = {k: r[k] for k in ("policy_inference", "safety_loop_period", "command_latency")}
    for k, v in pct.items():
        print(f"{k.replace('_', ' ')}: " + (f"p50 {v['p50_ms']:.3f} ms, p99 {v['p99_ms']:.3f} ms" if v.get("count")
                                            else "no samples"))
    print(f"safety interventions: {r['safety_interventions']} {r['safety_interventions_by_reason'] or ''}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
