"""One small node written against robot_rl.transport, run on either backend by the interop tests.

Subscribes JointState on ~/ping... (remapped to /interop/ping by --ros-args), answers each with a
Float64MultiArray of 2 * position on /interop/pong, counts timer ticks, and reports (JSON on stdout)
when told to stop on stdin. Also compares our topic resolution with rclpy's when rclpy is here.

usage: python _backend_peer.py <backend> [--ros-args ...]
"""

import json
import sys
import time

from robot_rl.transport import create_node, msgs
from robot_rl.transport.base import BARE_DDS_APP


def main() -> None:
    backend = sys.argv[1]
    node = create_node("backend_peer", "/peer_ns", backend=backend, args=sys.argv[2:])
    gain = node.declare_parameter("gain", 1.0)
    pong = node.create_publisher(msgs.Float64MultiArray, "/interop/pong")
    received = []

    def on_ping(msg: msgs.JointState) -> None:
        received.append(msg)
        q, _, _ = msg.to_numpy()
        pong.publish(msgs.float64_multi_array(gain * q))

    sub = node.create_subscription(msgs.JointState, "ping", on_ping)
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    node.start()
    print("ready", flush=True)
    sys.stdin.readline()  # "stop" or EOF
    deadline = time.monotonic() + 5.0
    while len(ticks) < 3 and time.monotonic() < deadline:  # let the 100 Hz timer show it runs
        time.sleep(0.01)
    # the graph API, same on both backends: this node's own subscription and the pinger's publisher
    subs = [(e.node_name, e.node_namespace, e.topic_type) for e in node.get_subscriptions_info_by_topic(sub.topic)]
    # The graph is eventually consistent: an endpoint is named once its participant's
    # ros_discovery_info entry has reached this process, which on a loaded host can trail the
    # endpoint's own discovery (and the pings) by a moment. Poll as ROS 2 graph tools do.
    deadline = time.monotonic() + 10.0
    while True:
        pubs = [(e.node_name, e.node_namespace) for e in node.get_publishers_info_by_topic(sub.topic)]
        if (pubs and all(name != BARE_DDS_APP for name, _ in pubs)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    node.shutdown()
    report = {
        "backend": node.backend, "gain": gain, "ping_topic": sub.topic, "ticks": len(ticks),
        "pings": len(received),
        "first_ping": None if not received else {
            "name": list(received[0].name), "position": received[0].position.tolist(),
            "frame_id": received[0].header.frame_id},
        "exception": repr(node.exception) if node.exception else None,
        "ping_subscriptions": subs, "ping_publishers": pubs,
    }
    if backend == "rclpy":
        report["resolution"] = compare_with_rclpy()
    print(json.dumps(report), flush=True)


def compare_with_rclpy() -> list:
    """(topic, ours, rclpy's) for a few names on a node with remaps, both resolvers."""
    import rclpy
    from rclpy.node import Node

    from robot_rl.transport.names import resolve_topic_name

    remaps = ["chatter:=/remapped", "~/private:=other", "/abs/x:=rel/y", "resolve_cmp:foo:=bar"]
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    cli = ["--ros-args"] + [a for r in remaps for a in ("-r", r)]
    rnode = Node("resolve_cmp", namespace="/a/b", context=ctx, cli_args=cli, use_global_arguments=False)
    out = []
    for topic in ["chatter", "/chatter", "~/private", "~", "/abs/x", "foo", "x/y", "{node}/z", "/a/b/chatter"]:
        out.append([topic, resolve_topic_name(topic, "resolve_cmp", "/a/b", remaps), rnode.resolve_topic_name(topic)])
    rnode.destroy_node()
    rclpy.shutdown(context=ctx)
    return out


if __name__ == "__main__":
    main()
