"""The `teleop` node on loopback DDS (keyboard on its stdin, leader arm on topics), the device
runner's retry logic, the parameter plumbing and `robot-rl teleop-check`."""

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.teleop.axes import DeviceUnavailable
from robot_rl.teleop.device import DeviceConfig, DeviceScale, TeleopError, TeleopSample, register_device
from robot_rl.teleop.devices import build_config, load_devices, parameter_defaults
from robot_rl.teleop.runner import DeviceRunner
from robot_rl.transport import msgs
from robot_rl.transport.loopback import loopback_env

REPO = Path(__file__).resolve().parents[2]


class Commands:
    """teleop/command samples received by a test node (its spin thread appends)."""

    def __init__(self, node):
        self.items, self.lock = [], threading.Lock()
        self.sub = node.create_subscription(msgs.String, "teleop/command", self._on)

    def _on(self, msg):
        with self.lock:
            self.items.append((time.monotonic(), TeleopSample.from_dict(json.loads(msg.data))))

    def wait(self, pred, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for _, s in reversed(self.items):
                    if pred(s):
                        return s
            time.sleep(0.01)
        raise AssertionError("no matching teleop/command")

    def count_after(self, t):
        with self.lock:
            return sum(1 for tt, _ in self.items if tt > t)


def start_node(domain, params, stdin=subprocess.DEVNULL):
    argv = [sys.executable, "-m", "robot_rl.nodes.teleop", "--ros-args"]
    for k, v in params.items():
        argv += ["-p", f"{k}:={v}"]
    env = loopback_env(domain)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stdout.read()


def test_keyboard_node_publishes_samples_then_goes_silent_when_its_input_closes(nodes, domain_id):
    test = nodes("test_teleop").start()
    rec = Commands(test)
    proc = start_node(domain_id, {"device": "keyboard", "rate_hz": 50.0, "linear_m_s": 0.05, "retry_s": 0.3},
                      stdin=subprocess.PIPE)
    try:
        first = rec.wait(lambda s: True)
        assert first.device == "keyboard" and first.mode == "ee_twist" and not first.clutch
        proc.stdin.write(" w")
        proc.stdin.flush()
        s = rec.wait(lambda s: s.clutch and s.values[0] > 0)
        assert s.values[0] == pytest.approx(0.05)  # the scale parameter reached the device
        seqs = [x.seq for _, x in rec.items]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        proc.stdin.close()  # the keyboard is gone: one line, no more samples, retries every 0.3 s
        time.sleep(0.5)
        t = time.monotonic()
        time.sleep(1.0)
        assert rec.count_after(t) == 0
        assert proc.poll() is None
    finally:
        out = stop(proc)
    assert out.count("teleop device keyboard unavailable") == 1, out
    assert "end of file" in out


def test_leader_arm_node_maps_joints_in_the_follower_order_from_joint_states(nodes, domain_id):
    test = nodes("test_teleop").start()
    rec = Commands(test)
    js_pub = test.create_publisher(msgs.JointState, "joint_states", qos="sensor_data")
    leader_pub = test.create_publisher(msgs.JointState, "leader/joint_states", qos="sensor_data")
    status_pub = test.create_publisher(msgs.String, "teleop/status")
    proc = start_node(domain_id, {"device": "leader_arm", "rate_hz": 50.0,
                                  "joint_map": '\'{"la": "b", "lb": "a"}\'', "offsets": "'{\"la\": 1.0}'"})
    try:
        deadline = time.monotonic() + 15
        got = None
        while got is None and time.monotonic() < deadline:
            js_pub.publish(msgs.joint_state_from_numpy(["a", "b"], np.zeros(2)))  # the follower: order a, b
            leader_pub.publish(msgs.joint_state_from_numpy(["la", "lb"], np.array([0.25, -0.5])))
            status_pub.publish(msgs.String(data=json.dumps({"source": "policy"})))
            with rec.lock:
                got = rec.items[-1][1] if rec.items else None
            time.sleep(0.02)
        assert got is not None, "no teleop/command from the leader arm node"
        assert got.mode == "joint_position" and got.clutch
        np.testing.assert_allclose(got.values, [-0.5, 1.25])  # a <- lb, b <- la + 1
    finally:
        out = stop(proc)
    assert "unavailable" not in out, out


def test_node_refuses_bad_parameters_with_one_line(domain_id):
    for params, needle in [({"device": "joystick9"}, "device"), ({"device": "gamepad", "deadzone": "high"},
                                                                  "deadzone")]:
        proc = start_node(domain_id, params)
        out = proc.communicate(timeout=20)[0]
        assert proc.returncode == 2, out
        errors = [line for line in out.splitlines() if "error" in line]
        assert len(errors) == 1 and needle in errors[0], out


class Flaky:
    """A test device: fails to open while `Flaky.ok` is False, fails to poll when `Flaky.broken`."""

    ok, broken, opened = False, False, 0
    mode, name = "ee_twist", "flaky"

    def __init__(self, cfg):
        if not Flaky.ok:
            raise DeviceUnavailable("flaky is not plugged in; plug it in")
        Flaky.opened += 1
        self.scale = cfg.scale

    def poll(self, now):
        if Flaky.broken:
            raise DeviceUnavailable("flaky was unplugged")
        return TeleopSample(stamp=now, mode="ee_twist", values=np.full(6, 0.01) if now < 100 else np.full(6, 9.0),
                            clutch=True)

    def show_state(self, state):
        pass

    def close(self):
        pass


register_device("flaky", DeviceConfig, Flaky)


def test_runner_retries_every_retry_s_logs_each_problem_once_and_drops_bad_samples(caplog):
    Flaky.ok, Flaky.broken, Flaky.opened = False, False, 0
    runner = DeviceRunner("flaky", DeviceConfig, logging.getLogger("t"), retry_s=1.0)
    with caplog.at_level(logging.INFO, logger="t"):
        assert runner.tick(0.0) is None and runner.error == "flaky is not plugged in; plug it in"
        Flaky.ok = True
        assert runner.tick(0.5) is None and Flaky.opened == 0  # not yet: retries once a second
        for t in (0.6, 0.7):
            runner.tick(t)
        s = runner.tick(1.0)
        assert s is not None and Flaky.opened == 1 and s.seq == 1 and s.device == "flaky"
        assert runner.tick(1.01).seq == 2
        Flaky.broken = True
        assert runner.tick(1.02) is None and not runner.alive
        Flaky.broken = False
        assert runner.tick(1.5) is None
        assert runner.tick(2.1).seq == 3  # reopened; numbering goes on
        Flaky.ok = False
        Flaky.broken = True
        for t in np.arange(2.2, 10.0, 0.25):  # down for 8 s: one line, not one per retry
            assert runner.tick(float(t)) is None
        Flaky.ok, Flaky.broken = True, False
        assert runner.tick(10.5) is not None
        assert runner.tick(150.0) is None  # 9 m/s exceeds the declared scale: dropped, device kept
        assert runner.alive
    lines = [r.getMessage() for r in caplog.records]
    assert sum("unavailable: flaky is not plugged in" in m for m in lines) == 2
    assert sum("unavailable: flaky was unplugged" in m for m in lines) == 2
    assert sum("exceeds the device's declared scale" in m for m in lines) == 1


def test_parameters_build_typed_configs_and_refuse_bad_ones():
    names = load_devices()
    assert {"keyboard", "gamepad", "spacemouse", "leader_arm"} <= set(names)
    assert parameter_defaults("gamepad")["deadzone"] == 0.1 and "linear_m_s" in parameter_defaults("gamepad")
    cfg = build_config("gamepad", {"deadzone": "0.2", "clutch_button": "4", "linear_m_s": 0.05})
    assert cfg.deadzone == 0.2 and cfg.clutch_button == 4 and cfg.scale == DeviceScale(linear_m_s=0.05)
    cfg = build_config("leader_arm", {"joint_map": ["l1:j1", "l2:j2"], "follower_joints": "[j1, j2]"})
    assert cfg.joint_map == {"l1": "j1", "l2": "j2"} and cfg.follower_joints == ["j1", "j2"]
    assert build_config("leader_arm", {"signs": '{"l1": -1}'}).signs == {"l1": -1}
    with pytest.raises(TeleopError, match="deadzone='high' is invalid"):
        build_config("gamepad", {"deadzone": "high"})
    with pytest.raises(TeleopError, match="has no parameter"):
        build_config("keyboard", {"speed": 2})
    with pytest.raises(TeleopError, match="scale must be positive"):
        build_config("keyboard", {"linear_m_s": -1.0})
    with pytest.raises(TeleopError, match="unknown"):
        build_config("theremin", {})


def test_teleop_check_prints_one_line_per_sample():
    from robot_rl.cli import main as cli_main
    from robot_rl.teleop.check import main as check_main

    r, w = os.pipe()
    try:
        os.write(w, b" d")
        out = io.StringIO()
        assert check_main(["--device", "keyboard", f"fd={r}", "--seconds", "0.3", "--rate-hz", "50"], out=out) == 0
        lines = out.getvalue().splitlines()
        assert len(lines) >= 5
        assert "ee_twist" in lines[0] and "clutch ON" in lines[0] and "-0.100" in lines[0]
        out = io.StringIO()
        check_main(["--device", "keyboard", f"fd={r}", "--seconds", "0.3", "--changes"], out=out)
        assert len(out.getvalue().splitlines()) <= 2  # the motion ends; nothing else changes
    finally:
        os.close(r)
        os.close(w)
    assert cli_main(["teleop-check", "--device", "theremin"]) == 2
    assert cli_main(["teleop-check", "--device", "gamepad", "deadzone=high"]) == 2
