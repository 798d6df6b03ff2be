"""Teleop node: a person's device -> ``teleop/command`` for the arbiter.

    python -m robot_rl.nodes.teleop --ros-args -p device:=gamepad -p deadzone:=0.15
    robot-rl node teleop --ros-args -p device:=keyboard          # in the terminal you type in

Publishes
    ``teleop/command`` (std_msgs/String, JSON of `TeleopSample.to_dict()`: stamp = monotonic
    seconds when the device produced the input, mode, values, clutch, events, gripper, device,
    seq numbered by this node) at ``rate_hz`` whenever the device has a sample.
Subscribes
    ``joint_states`` (sensor_msgs/JointState) and ``teleop/status`` (std_msgs/String JSON from the
    arbiter), handed to the device's ``show_state`` as
    ``{"joint_names", "position", "velocity", "status"}`` (a leader arm learns the follower's joint
    order from it; the keyboard draws a status line).

When the device is missing, unplugged or fails, the node logs one line, publishes nothing (the
arbiter sees a silent device and holds the robot) and retries opening it every ``retry_s``
(`robot_rl.teleop.runner.DeviceRunner`). Samples that fail `check_sample` are dropped (one log
line per distinct reason).

Parameters (defaults): ``device`` (required: keyboard, gamepad, spacemouse, leader_arm, ...),
``rate_hz`` (100), ``retry_s`` (1.0), the device's own config fields (e.g. ``deadzone``,
``key_hold_s``, ``joint_map``; `robot_rl.teleop.devices.parameter_defaults`) and its scale
``linear_m_s`` (0.1), ``angular_rad_s`` (0.5), ``joint_rad_s`` (0.5).
"""

from __future__ import annotations

import json
import sys
import time

from robot_rl.nodes._common import NodeStartError, fail, node_main, param, run_node


def main(argv=None) -> int:
    return node_main("teleop", _run, argv)


def _run(node) -> int:
    from robot_rl.teleop.device import TeleopError
    from robot_rl.teleop.devices import build_config, config_class, load_devices, parameter_defaults
    from robot_rl.teleop.runner import DeviceRunner
    from robot_rl.transport import msgs

    names = load_devices()
    device = param(node, "device", "", str, check=lambda v: v in names, expect=f"one of {', '.join(names)}")
    rate_hz = param(node, "rate_hz", 100.0, float, check=lambda v: 1 <= v <= 1000, expect="1..1000 Hz")
    retry_s = param(node, "retry_s", 1.0, float, check=lambda v: 0.05 <= v <= 60, expect="0.05..60 s")
    defaults = parameter_defaults(device)
    given = {k: node.declare_parameter(k, d) for k, d in defaults.items()}
    given = {k: v for k, v in given.items() if v != defaults[k]}
    runtime = {"node": node} if "node" in config_class(device).__dataclass_fields__ else {}  # a leader arm
    try:
        build_config(device, given, **runtime)  # bad parameters stop the node here, with one line
    except TeleopError as e:
        raise NodeStartError(str(e)) from None

    runner = DeviceRunner(device, lambda: build_config(device, given, **runtime), node.logger, retry_s=retry_s)
    pub = node.create_publisher(msgs.String, "teleop/command")
    state: dict = {"status": None}

    def on_joint_states(msg):
        state.update(joint_names=list(msg.name), position=[float(x) for x in msg.position],
                     velocity=[float(x) for x in msg.velocity])
        runner.show_state(state)

    def on_status(msg):
        try:
            state["status"] = json.loads(msg.data)
        except ValueError:
            return
        runner.show_state(state)

    node.create_subscription(msgs.JointState, "joint_states", on_joint_states, qos="sensor_data")
    node.create_subscription(msgs.String, "teleop/status", on_status)

    def tick():
        sample = runner.tick(time.monotonic())
        if sample is not None:
            pub.publish(msgs.String(data=json.dumps(sample.to_dict(), separators=(",", ":"))))

    node.logger.info("teleop: device %s at %.0f Hz -> teleop/command", device, rate_hz)
    node.create_timer(1.0 / rate_hz, tick)
    return run_node(node, on_stop=runner.close)


if __name__ == "__main__":
    sys.exit(main())
