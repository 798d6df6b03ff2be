"""Robot twin: held-out dynamics, real-time joint_states at >= 500 Hz, follows both command topics."""

import re
import time

import numpy as np
import pytest

from _nodes_helpers import Recorder

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
DEFAULT = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])


def test_twin_model_draws_held_out_dynamics_and_validates_commands():
    from robot_rl.hardware.twin import RobotTwin, TwinError
    from robot_rl.sim.tasks.iiwa_reach import EVAL_DR

    a, b = RobotTwin("iiwa-reach", seed=1, physics_rate_hz=1000), RobotTwin("iiwa-reach", seed=1, physics_rate_hz=1000)
    c = RobotTwin("iiwa-reach", seed=2, physics_rate_hz=1000)
    assert a.dr_params == b.dr_params != c.dr_params
    lo, hi = EVAL_DR.payload_kg
    assert lo <= a.dr_params["payload_kg"] <= hi and a.physics_dt == pytest.approx(1e-3)
    q0 = a.read(noisy=False)[0]  # what the (biased) encoders report
    np.testing.assert_allclose(q0, DEFAULT + a.encoder_bias, atol=1e-9)
    assert EVAL_DR.encoder_bias_rad[0] - 1e-9 <= np.abs(a.encoder_bias).max() <= EVAL_DR.encoder_bias_rad[1] + 1e-9
    a.step(300)  # no command yet: holds its pose (within the PD sag under an unknown payload)
    assert np.abs(a.read(noisy=False)[0] - DEFAULT).max() < 0.05
    for bad in ([np.nan] * 7, [0.0] * 6):
        with pytest.raises(TwinError):
            a.set_command(bad)
    with pytest.raises(TwinError, match="lacks joints"):
        a.set_command(DEFAULT, names=JOINTS[:6] + ["other"])
    target = DEFAULT + np.array([0.3, 0, 0, 0, 0, 0, 0])
    a.set_command(target[::-1], names=JOINTS[::-1])
    assert a.advance_to(a.sim_time + 0.02) == 20
    a.step(1500)
    assert abs(a.read(noisy=False)[0][0] - 0.3) < 0.02
    assert a.command_delay_s == pytest.approx(0.02)  # the held-out range's 1-step action delay


def test_twin_node_publishes_fast_and_follows_commands(graph):
    from robot_rl.transport import msgs

    twin = graph.start("twin", task="iiwa-reach", seed=4, latency_ms=2.0)
    js = Recorder(graph.node, msgs.JointState, "/joint_states", qos="sensor_data")
    cmd = graph.node.create_publisher(msgs.Float64MultiArray, "/forward_position_controller/commands")
    traj = graph.node.create_publisher(msgs.JointTrajectory, "/forward_position_controller/joint_trajectory")
    graph.node.start()
    js.wait_for(lambda m: True, 30, "the first joint state")
    time.sleep(0.3)
    t0 = time.monotonic()
    time.sleep(2.0)
    n = len(js.since(t0))
    rate = n / (time.monotonic() - t0)
    assert rate >= 500, f"joint_states at {rate:.0f} Hz (< 500 Hz)"
    m = js.last()
    assert list(m.name) == JOINTS and len(m.position) == len(m.velocity) == len(m.effort) == 7
    assert np.abs(np.asarray(m.position) - DEFAULT).max() < 0.05  # holds its pose, no command yet

    target = DEFAULT.copy()
    target[0] = 0.4
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and abs(js.last().position[0] - 0.4) > 0.03:
        cmd.publish(msgs.float64_multi_array(target))
        time.sleep(0.05)
    assert abs(js.last().position[0] - 0.4) <= 0.03, "twin did not follow /forward_position_controller/commands"

    # trajectory: first point, joints matched by name (given in reverse order here)
    target2 = DEFAULT.copy()
    target2[2] = -0.4
    point = msgs.JointTrajectoryPoint(positions=target2[::-1].copy())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and abs(js.last().position[2] + 0.4) > 0.03:
        traj.publish(msgs.JointTrajectory(joint_names=JOINTS[::-1], points=[point]))
        time.sleep(0.05)
    last = np.asarray(js.last().position)
    assert abs(last[2] + 0.4) <= 0.03 and abs(last[0]) < 0.05, f"twin did not follow joint_trajectory by name: {last}"
    assert twin.alive(), twin.log()


def test_twin_node_takes_measured_values_and_refuses_nonsense(graph):
    twin = graph.start("twin", task="iiwa-reach", seed=0, payload_kg="2.5", payload_pos="[0.0, 0.0, 0.1]",
                       kp_scale="0.9", encoder_bias="[0.001, -0.001, 0.0, 0.0, 0.0, 0.0, 0.002]",
                       command_latency_ms="30", latency_ms="5")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "dynamics" not in twin.log():
        time.sleep(0.1)
    text = twin.log()
    assert '"payload_kg":2.5' in text and '"payload_pos_z_m":0.1' in text and '"kp_scale":0.9' in text, text
    assert "latency 5.0 ms, command latency 30.0 ms, encoder bias [0.001,-0.001,0.0,0.0,0.0,0.0,0.002]" in text, text
    twin.stop()
    for params, match in [({"stress": "no-such-twin"}, "one of the published stress twins: heavy-tool"),
                          ({"payload_kg": "-1"}, "payload_kg must be non-negative"),
                          ({"kp_scale": "0"}, "kp_scale must be > 0"),
                          ({"latency_ms": "9000"}, r"obs_delay_s=9.0 s must lie in \[0, 6.0\)")]:
        bad = graph.start("twin", task="iiwa-reach", **params)
        assert bad.wait(30) != 0
        lines = [ln for ln in bad.log().splitlines() if ln.strip()]
        assert any(re.search(match, ln) for ln in lines), bad.log()
