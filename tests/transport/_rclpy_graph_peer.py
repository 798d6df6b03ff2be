"""rclpy graph probe for the introspection interop test (runs in the ROS environment).

Publishes JointState on /arm1/joint_states (so the other side can name this node too), then
answers each line on stdin: "report" prints one JSON line with what rclpy's graph API says about
the topics named on the command line (get_publishers_info_by_topic /
get_subscriptions_info_by_topic: node name, namespace, type, durability) and the node list;
"stop" ends it.

usage: python _rclpy_graph_peer.py <topic> [<topic> ...]
"""

import json
import sys
import threading

import rclpy
from rclpy.qos import DurabilityPolicy
from sensor_msgs.msg import JointState


def main() -> None:
    topics = sys.argv[1:]
    rclpy.init()
    node = rclpy.create_node("graph_probe")
    node.create_publisher(JointState, "/arm1/joint_states", 10)
    lines = []
    cond = threading.Condition()

    def read_stdin() -> None:
        for line in sys.stdin:
            with cond:
                lines.append(line.strip())
                cond.notify()
        with cond:
            lines.append("stop")
            cond.notify()

    threading.Thread(target=read_stdin, daemon=True).start()
    print("ready", flush=True)

    def info(endpoints):
        return [{"node": e.node_name, "ns": e.node_namespace, "type": e.topic_type,
                 "latched": e.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL} for e in endpoints]

    while True:
        rclpy.spin_once(node, timeout_sec=0.05)
        with cond:
            cmd = lines.pop(0) if lines else None
        if cmd == "stop":
            break
        if cmd == "report":
            print(json.dumps({
                "publishers": {t: info(node.get_publishers_info_by_topic(t)) for t in topics},
                "subscriptions": {t: info(node.get_subscriptions_info_by_topic(t)) for t in topics},
                "nodes": node.get_node_names_and_namespaces()}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
