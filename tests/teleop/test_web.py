"""The web teleop device's server (robot_rl/teleop/web.py) driven by a Python WebSocket client on
loopback: commands -> TeleopSample, bad input, flooding, one controller, disconnects, state push.
The page itself runs in a real browser in tests/teleop/test_web_browser.py."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from robot_rl.teleop.device import DeviceScale, TeleopError, check_sample, device_config, device_names, make_device
from robot_rl.teleop.web import WebConfig, WebTeleop, bind_warning

SCALE = DeviceScale(linear_m_s=0.2)


@pytest.fixture
def dev():
    d = make_device("web", device_config("web", port=0, scale=SCALE))
    yield d
    d.close()


def ws_url(d: WebTeleop) -> str:
    return f"ws://127.0.0.1:{d.port}/ws"


def recv_json(ws, kind: str | None = None, timeout: float = 3.0) -> dict:
    """The next message (of type `kind`, skipping others)."""
    deadline = time.monotonic() + timeout
    while True:
        m = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if kind is None or m["type"] == kind:
            return m


def wait_sample(d: WebTeleop, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = d.poll(time.monotonic())
        if s is not None:
            return s
        time.sleep(0.002)
    return None


def cmd(seq: int, clutch: bool, axes, **kw) -> str:
    return json.dumps({"type": "cmd", "seq": seq, "clutch": clutch, "axes": list(axes), **kw})


def test_registered_and_bound_to_loopback(dev):
    assert "web" in device_names()
    assert isinstance(dev.cfg, WebConfig) and dev.cfg.host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", dev.port), timeout=2):
        pass
    assert bind_warning("127.0.0.1") is None and bind_warning("localhost") is None and bind_warning("::1") is None
    assert "not loopback" in bind_warning("0.0.0.0") and "not loopback" in bind_warning("192.168.1.20")


def test_serves_the_page_and_refuses_other_paths(dev):
    for path, ctype, needle in [("/", "text/html", b"hold to drive"), ("/app.js", "text/javascript", b"window.teleop"),
                                ("/style.css", "text/css", b".knob")]:
        with urllib.request.urlopen(dev.url.rstrip("/") + path, timeout=3) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(ctype)
            assert needle in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(dev.url + "secret.txt", timeout=3)
    assert e.value.code == 404
    e.value.close()


def test_cross_origin_websocket_and_foreign_host_names_are_refused(dev):
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(dev), origin="http://evil.example", open_timeout=3)
    assert e.value.response.status_code == 403
    # a foreign name resolving to loopback (DNS rebinding) gets neither the page nor the socket
    req = urllib.request.Request(dev.url, headers={"Host": f"evil.example:{dev.port}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=3)
    assert e.value.code == 403
    e.value.close()
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://evil.example:{dev.port}/ws", sock=socket.create_connection(("127.0.0.1", dev.port)),
                origin=f"http://evil.example:{dev.port}", open_timeout=3)
    assert e.value.response.status_code == 403
    with connect(f"ws://localhost:{dev.port}/ws", origin=f"http://localhost:{dev.port}", open_timeout=3) as ws:
        assert recv_json(ws, "welcome")["type"] == "welcome"


def test_commands_become_scaled_ee_twist_samples(dev):
    with connect(ws_url(dev), open_timeout=3) as ws:
        w = recv_json(ws, "welcome")
        assert w["role"] == "control" and w["scale"]["linear_m_s"] == 0.2
        assert dev.poll(time.monotonic()) is None
        ws.send(cmd(1, True, [0.5, -0.25, 0.0]))
        s = wait_sample(dev)
        assert s.mode == "ee_twist" and s.clutch and s.device == "web" and s.seq == 1
        np.testing.assert_allclose(s.values, [0.1, -0.05, 0, 0, 0, 0])
        assert abs(s.stamp - time.monotonic()) < 2.0
        check_sample(s, SCALE, 7)
        assert dev.poll(time.monotonic()) is None  # nothing newer
        # the linear part is clamped to the declared scale (stick corner + full z)
        ws.send(cmd(2, True, [1.0, 0.0, 1.0]))
        s = wait_sample(dev)
        np.testing.assert_allclose(np.linalg.norm(s.values[:3]), 0.2)
        assert s.values[0] > 0 and s.values[2] > 0 and s.seq == 2
        # events of every command since the last poll arrive together with the newest sample
        ws.send(cmd(3, True, [0, 0, 0], events=["success"]))
        ws.send(cmd(4, False, [0, 0, 0], events=["failure"]))
        deadline = time.monotonic() + 3
        while dev.status()["accepted"] < 4 and time.monotonic() < deadline:
            time.sleep(0.002)
        s = dev.poll(time.monotonic())
        assert s.events == {"success", "failure"} and not s.clutch and s.seq == 4
        assert dev.poll(time.monotonic()) is None


GARBAGE = [
    ("not json", "not JSON"),
    ('{"type": "cmd", "seq": 1, "clutch": true, "axes": [NaN, 0, 0]}', "not JSON"),
    ('{"type": "cmd", "seq": 1, "clutch": true, "axes": [Infinity, 0, 0]}', "not JSON"),
    ("[1, 2, 3]", "JSON object"),
    ('{"type": "launch_missiles"}', '"type"'),
    (cmd(1, "yes", [0, 0, 0]), "clutch"),
    (cmd(1, True, [0, 0]), "axes"),
    (cmd(1, True, ["a", 0, 0]), "axes"),
    (cmd(1, True, [True, 0, 0]), "axes"),
    (cmd(1, True, [1e308, 0, 0]), "outside [-1, 1]"),
    (cmd(1, True, [-3, 0, 0]), "outside [-1, 1]"),
    (cmd(True, True, [0, 0, 0]), "seq"),
    (cmd(-1, True, [0, 0, 0]), "seq"),
    ('{"type": "cmd", "seq": 1, "clutch": true, "axes": [1e999, 0, 0]}', "outside [-1, 1]"),
    ('{"type": "cmd", "seq": 1, "clutch": true, "axes": [' + "9" * 400 + ', 0, 0]}', "outside [-1, 1]"),
    ("[" * 1000 + "]" * 1000, "not JSON"),
    (cmd(1, True, [0, 0, 0], events=["explode"]), "events"),
    (cmd(1, True, [0, 0, 0], t="now"), '"t"'),
    (cmd(1, True, [0, 0, 0], pad="x" * 3000), "bytes"),
    (b"\x00\x01binary", "binary"),
]


def test_garbage_gets_one_error_each_and_never_reaches_poll(dev):
    with connect(ws_url(dev), open_timeout=3) as ws:
        recv_json(ws, "welcome")
        for raw, needle in GARBAGE:
            ws.send(raw)
            m = recv_json(ws)
            assert m["type"] == "error" and needle in m["message"], (raw, m)
            with pytest.raises(TimeoutError):  # exactly one reply
                ws.recv(timeout=0.02)
        assert dev.poll(time.monotonic()) is None
        assert dev.status()["errors"] == len(GARBAGE) and dev.status()["accepted"] == 0
        ws.send(cmd(7, True, [0, 1, 0]))  # the connection still works
        s = wait_sample(dev)
        assert s.clutch and s.values[1] == pytest.approx(0.2)


def test_oversized_frame_closes_only_that_connection(dev):
    with connect(ws_url(dev), open_timeout=3, max_size=None) as ws:
        recv_json(ws, "welcome")
        ws.send("x" * (16 * dev.cfg.max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=3)
        assert e.value.rcvd.code == 1009
    with connect(ws_url(dev), open_timeout=3) as ws:  # the server lives on
        assert recv_json(ws, "welcome")["role"] == "control"
        ws.send(cmd(1, True, [0.1, 0, 0]))
        assert wait_sample(dev).clutch


def test_flooding_is_rate_limited_and_counted():
    clock = [100.0]  # frozen clock: the bucket never refills, so exactly `burst` messages pass
    d = WebTeleop(WebConfig(port=0, burst=10, max_rate_hz=100.0), clock=lambda: clock[0])
    try:
        with connect(ws_url(d), open_timeout=3) as ws:
            recv_json(ws, "welcome")
            for i in range(200):
                ws.send(cmd(i + 1, False, [0, 0, 0]))
            m = recv_json(ws, "error")
            assert "rate limit" in m["message"]
            deadline = time.monotonic() + 5
            while d.status()["accepted"] + d.status()["dropped_rate"] < 200 and time.monotonic() < deadline:
                time.sleep(0.005)
            st = d.status()
            assert st["accepted"] == 10 and st["dropped_rate"] == 190
            with pytest.raises(TimeoutError):  # one error reply per second of flooding, not one per message
                recv_json(ws, "error", timeout=0.1)
            clock[0] += 0.0625  # 62.5 ms later: 6.25 more tokens
            for i in range(10):
                ws.send(cmd(300 + i, True, [0, 0, 0]))
            deadline = time.monotonic() + 3
            while d.status()["accepted"] + d.status()["dropped_rate"] < 210 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert d.status()["accepted"] == 16
    finally:
        d.close()


def test_one_controller_others_view_and_take_over(dev, caplog):
    with connect(ws_url(dev), open_timeout=3) as a:
        assert recv_json(a, "welcome")["role"] == "control"
        with connect(ws_url(dev), open_timeout=3) as b:
            w = recv_json(b, "welcome")
            assert w["role"] == "view" and "view only" in w["message"]
            b.send(cmd(1, True, [1, 0, 0]))
            assert "view only" in recv_json(b, "error")["message"]
            b.send(json.dumps({"type": "ping", "t": 1.5}))  # viewers may still sync their clock
            assert recv_json(b, "pong")["t"] == 1.5
            assert dev.poll(time.monotonic()) is None
            a.send(cmd(1, True, [0, 0, -1]))
            s = wait_sample(dev)
            assert s.clutch and s.values[2] == pytest.approx(-0.2)
            assert dev.status()["clutch"]
            # the controlling page drops mid-intervention: the device goes silent and b takes over
            with caplog.at_level(logging.WARNING, logger="robot_rl.teleop.web"):
                a.close()
                m = recv_json(b, "role")
            assert m["role"] == "control"
            assert any("disconnected while holding the clutch" in r.message for r in caplog.records)
            st = dev.status()
            assert st["disconnects_mid_clutch"] == 1 and not st["clutch"] and st["clients"] == 1
            time.sleep(0.05)
            assert dev.poll(time.monotonic()) is None  # silent: no clutch sample is repeated
            b.send(cmd(1, False, [0, 0, 0]))
            s = wait_sample(dev)
            assert not s.clutch and s.seq == 2


def test_show_state_reaches_every_page(dev):
    with connect(ws_url(dev), open_timeout=3) as a, connect(ws_url(dev), open_timeout=3) as b:
        recv_json(a, "welcome"), recv_json(b, "welcome")
        dev.show_state({"source": "person", "joint_positions": np.array([0.1, np.nan]), "episode": np.int64(3),
                        "device_alive": np.bool_(True), "success_rate": 0.5})
        for ws in (a, b):
            st = recv_json(ws, "state")["state"]
            assert st == {"source": "person", "joint_positions": [0.1, None], "episode": 3,
                          "device_alive": True, "success_rate": 0.5}
    with connect(ws_url(dev), open_timeout=3) as c:  # a page opened later gets the newest state at once
        recv_json(c, "welcome")
        assert recv_json(c, "state")["state"]["source"] == "person"


def test_busy_port_is_one_clear_error(dev):
    with pytest.raises(TeleopError, match="port:=0"):
        WebTeleop(WebConfig(port=dev.port))
