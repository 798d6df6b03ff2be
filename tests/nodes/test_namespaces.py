"""Two deployed graphs side by side in one ROS domain, each in its own namespace: a target sent to
one arm moves that arm only."""

import signal
import subprocess
import sys
import time

import numpy as np

from _nodes_helpers import REPO, Recorder, diag, node_env

LAUNCH = REPO / "launch" / "deploy.launch.xml"
ARMS = ("arm1", "arm2")
# lighter than the defaults (1 kHz everywhere) so two graphs fit on a 2-core CI machine; the
# training simulation runs its physics at 100 Hz, the twin at 500 Hz is still finer
LIGHT = ["twin_physics_rate_hz:=500.0", "twin_publish_rate_hz:=250.0", "safety_rate_hz:=250.0"]


def _p(msg):
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])


def _launch(graph, artifact, *args):
    return subprocess.Popen([sys.executable, "-m", "robot_rl.launch_runner", str(LAUNCH), f"artifact:={artifact}",
                             *LIGHT, *args, "--log-dir", str(graph.tmp)],
                            env=node_env(graph.domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=str(REPO))


def _stop(proc) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def _settle(rec, timeout: float = 4.0) -> None:
    """Wait until the end effector moved less than 2 mm in the last 0.5 s (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = [_p(m) for m in rec.since(time.monotonic() - 0.5)]
        if len(recent) > 5 and np.linalg.norm(recent[-1] - recent[0]) < 0.002:
            return
        time.sleep(0.1)


def test_two_namespaced_graphs_side_by_side(graph, reach_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    ee = {a: Recorder(node, msgs.PoseStamped, f"/{a}/twin/ee_pose") for a in ARMS}
    dg = {a: Recorder(node, msgs.String, f"/{a}/safety/diagnostics") for a in ARMS}
    target_pub = {a: node.create_publisher(msgs.PoseStamped, f"/{a}/target_pose") for a in ARMS}
    node.start()
    # /arm1 through the launch file's namespace argument, /arm2 through robot-rl launch's __ns:=
    procs = {"arm1": _launch(graph, reach_artifact, "namespace:=arm1", "twin_seed:=3"),
             "arm2": _launch(graph, reach_artifact, "__ns:=/arm2", "twin_seed:=4")}
    logs = {}
    try:
        for a in ARMS:
            ee[a].wait_for(lambda m: True, 60, f"the /{a} twin")
            dg[a].wait_for(lambda m: True, 60, f"the /{a} safety node")
        # each graph is wired to itself only: one driver publisher per controller topic, its own
        for a in ARMS:
            pubs = node.get_publishers_info_by_topic(f"/{a}/forward_position_controller/commands")
            assert [(p.node_name, p.node_namespace) for p in pubs] == [("safety", f"/{a}")], pubs
        time.sleep(1.0)  # let the held arms settle (the twins' held-out payloads sag a little)

        # two different targets (the arms start in the same pose): following the other arm's target
        # would move an arm by about 0.3 m
        for mover, still, offset in (("arm1", "arm2", [-0.10, 0.15, 0.10]), ("arm2", "arm1", [-0.10, -0.15, 0.10])):
            _settle(ee[still])  # the previous mover converges on its own target a little longer
            p0 = {a: _p(ee[a].last()) for a in ARMS}
            t0 = time.monotonic()
            target = p0[mover] + np.array(offset)
            d0 = np.linalg.norm(target - p0[mover])
            msg = msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(x=target[0], y=target[1], z=target[2])))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and np.linalg.norm(target - _p(ee[mover].last())) > 0.02:
                target_pub[mover].publish(msg)
                time.sleep(0.1)
            d1 = np.linalg.norm(target - _p(ee[mover].last()))
            # the mover went to its own target (the other arm's is about 0.3 m away); how close it
            # gets is the quick fixture policy's precision on that twin (3.03 cm once in CI)
            assert d1 < 0.05 and d1 < 0.25 * d0, f"/{mover} end effector {d1:.3f} m from its target ({d0:.3f} m at first)"
            drift = max(np.linalg.norm(_p(m) - p0[still]) for m in ee[still].since(t0))
            assert drift < 0.015, f"/{still} moved {drift:.3f} m while only /{mover} had a target"
            assert diag(dg[mover].last())["mode"] == "ok"
            if still == "arm2":  # no target ever reached /arm2: its policy never commanded
                assert diag(dg[still].last())["counters"]["commands_accepted"] == 0
    finally:
        for a in ARMS:
            logs[a] = _stop(procs[a])
    for a in ARMS:
        assert procs[a].returncode == 0, logs[a][-3000:]
