"""Round-trip latency of a JointState ping-pong between two processes on loopback.

    python -m robot_rl.transport.latency [--n 2000] [--joints 12] [--backend dds] [--domain 42]

Starts an echo node in a child process (``--echo``), then publishes JointState on ``/ping`` and
times how long each message takes to come back on ``/pong``, one message in flight at a time.
Prints p50/p90/p99/max in microseconds. Discovery is limited to localhost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np


def _echo(args: argparse.Namespace) -> None:
    from robot_rl.transport import create_node, msgs

    node = create_node("latency_echo", backend=args.backend, domain_id=args.domain)
    pub = node.create_publisher(msgs.JointState, "/pong")
    node.create_subscription(msgs.JointState, "/ping", pub.publish)
    print("ready", flush=True)
    try:
        node.spin()
    except KeyboardInterrupt:
        pass
    finally:
        node.shutdown()


def measure(n: int = 2000, joints: int = 12, backend: str = "dds", domain: int = 42,
            warmup: int = 100) -> np.ndarray:
    """Round-trip times in seconds of ``n`` pings (after ``warmup`` unmeasured ones)."""
    from robot_rl.transport import create_node, msgs

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    child = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.transport.latency", "--echo", "--backend", backend,
         "--domain", str(domain)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("echo process failed to start")
        node = create_node("latency_ping", backend=backend, domain_id=domain)
        got = threading.Event()
        node.create_subscription(msgs.JointState, "/pong", lambda m: got.set())
        pub = node.create_publisher(msgs.JointState, "/ping")
        node.start()
        if not pub.wait_for_subscribers(1, timeout=10.0):
            raise RuntimeError("echo node not discovered within 10 s")
        msg = msgs.joint_state_from_numpy([f"joint_{i}" for i in range(joints)], np.zeros(joints),
                                          np.zeros(joints), np.zeros(joints))
        # the echo's publisher must be matched with our subscription too
        deadline = time.monotonic() + 10.0
        while True:
            got.clear()
            pub.publish(msg)
            if got.wait(0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no echo within 10 s")
        rtts = []
        for i in range(warmup + n):
            got.clear()
            msg.header.stamp = node.now()
            t0 = time.perf_counter()
            pub.publish(msg)
            if not got.wait(1.0):
                raise RuntimeError(f"ping {i} lost")
            if i >= warmup:
                rtts.append(time.perf_counter() - t0)
        node.shutdown()
        return np.array(rtts)
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--joints", type=int, default=12)
    p.add_argument("--backend", default="dds", choices=["dds", "rclpy"])
    p.add_argument("--domain", type=int, default=42)
    p.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.echo:
        _echo(args)
        return
    rtt = measure(args.n, args.joints, args.backend, args.domain) * 1e6
    p50, p90, p99 = np.percentile(rtt, [50, 90, 99])
    print(f"JointState({args.joints} joints) round trip over loopback, backend={args.backend}, n={len(rtt)}: "
          f"p50 {p50:.0f} us, p90 {p90:.0f} us, p99 {p99:.0f} us, max {rtt.max():.0f} us")


if __name__ == "__main__":
    main()
