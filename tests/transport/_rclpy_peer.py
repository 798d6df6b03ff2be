"""Plain rclpy peer for the interop tests (runs in the ROS environment, not the project's).

Publishes sensor_msgs/JointState on /interop/joint_states at 50 Hz, records the
std_msgs/Float64MultiArray it receives on /interop/commands, and watches the ROS graph for the
node named on the command line. Prints JSON event lines ("seen" when that node appears in the
graph, "command" on the first command); stops when told on stdin ("stop") or after the timeout,
then prints a final "report" line with what it saw.

usage: python _rclpy_peer.py <node_name_to_look_for> <its_namespace> <timeout_s>
"""

import json
import sys
import threading
import time

import rclpy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray


def main() -> None:
    target = (sys.argv[1], sys.argv[2])
    timeout = float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("rclpy_peer")
    pub = node.create_publisher(JointState, "/interop/joint_states", 10)
    commands = []

    def on_command(msg: Float64MultiArray) -> None:
        if not commands:
            print(json.dumps({"event": "command"}), flush=True)
        commands.append(list(msg.data))

    node.create_subscription(Float64MultiArray, "/interop/commands", on_command, 10)

    def tick() -> None:
        msg = JointState()
        msg.header.stamp.sec = 1234
        msg.header.stamp.nanosec = 5678
        msg.header.frame_id = "base_link"
        msg.name = ["shoulder", "elbow", "wrist"]
        msg.position = [0.1, -0.2, 0.3]
        msg.velocity = [1.0, 2.0, 3.0]
        pub.publish(msg)

    node.create_timer(0.02, tick)
    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("ready", flush=True)
    seen_at = None
    names = []
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline and not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.02)
        names = node.get_node_names_and_namespaces()
        if seen_at is None and target in names:
            seen_at = time.monotonic() - t0
            print(json.dumps({"event": "seen"}), flush=True)
    print(json.dumps({"event": "report", "commands": commands[:5], "n_commands": len(commands), "names": names,
                      "seen_after_s": seen_at, "subscribers": pub.get_subscription_count()}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
