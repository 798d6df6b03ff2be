"""Web teleop command latency: from a pointer event in the page (headless Chromium) to the sample
being available to `poll()` on the server, on to a loopback subscriber of `teleop/command`, and
through the arbiter to the safety node's input (`arbiter/joint_command`).

    python benchmarks/web_teleop_latency.py              # 150 moves (~40 s), pinned to 2 CPUs
    python benchmarks/web_teleop_latency.py --quick      # smoke run (20 moves)

Setup: the `web` device (robot_rl/teleop/web.py) on 127.0.0.1; Debian's /usr/bin/chromium driven by
playwright opens the page, holds the clutch (Space) and the stick (mouse button), then moves the
stick between x = +0.5 and x = -0.5 `--n` times, one move every 60-100 ms (random phase, seed 0).
The page stamps each input event with `event.timeStamp` mapped to the server's monotonic clock
(offset from the best of 5 ping round trips; its uncertainty, half that round trip, is printed).

Stages, each measured from the browser event:
* **available to poll**: the server's receipt of the first command carrying the move (the page
  sends at `send_hz` = 50 Hz while the clutch is held, so this includes up to 20 ms of waiting for
  the next send tick); **wire** is the same from the page's send call of that command;
* **teleop/command**: a minimal teleop node loop polls the device at `--node-hz` (100 Hz, the
  contract's default) and publishes `TeleopSample.to_dict()` JSON as std_msgs/String on
  `teleop/command` with robot_rl.transport (Cyclone DDS, localhost discovery, a random domain);
  a subscriber node in the same process stamps its arrival;
* **safety node's input**: that subscriber hands each sample to the arbiter
  (`robot_rl.teleop.arbiter.Arbiter`, the Panda at home, a policy holding it), whose 100 Hz tick
  publishes `arbiter/joint_command` as the arbiter node does; a third node, standing for the
  safety node, stamps the arrival of the first person command computed after the move arrived.
  This hop depends on the phase between the teleop loop and the arbiter's tick (both 100 Hz): up
  to one tick (10 ms) more in an unlucky phase.

Reference, measured in the same run and browser: a plain WebSocket echo server (websockets, no
logic) and the page's round trip / 2 over it, i.e. the floor of browser -> Python WebSocket
delivery on this machine. The table prints p50/p99 and ours / reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time

import numpy as np

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ECHO_PAGE = b"<!doctype html><title>echo</title><p>echo reference</p>"
ECHO_JS = """async (n) => {
  const ws = new WebSocket("ws://" + location.host + "/echo");
  await new Promise((ok) => { ws.onopen = ok; });
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise((ok) => { ws.onmessage = ok; ws.send(JSON.stringify({i: i, t: t0})); });
    out.push(performance.now() - t0);
    await new Promise((ok) => setTimeout(ok, 5));
  }
  ws.close();
  return out;
}"""


class EchoServer:
    """A plain websockets echo server (and a blank page) on its own thread: the reference."""

    def __init__(self):
        self.port, ready = 0, threading.Event()

        async def echo(ws):
            async for m in ws:
                await ws.send(m)

        def page(connection, request):
            return None if request.path == "/echo" else connection.respond(200, ECHO_PAGE.decode())

        async def main():
            from websockets.asyncio.server import serve
            self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
            async with serve(echo, "127.0.0.1", 0, process_request=page) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await self.stop.wait()

        self.thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self.thread.start()
        ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


def pct(x) -> tuple[float, float]:
    a = np.asarray(x, dtype=np.float64) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=150, help="stick moves measured")
    ap.add_argument("--node-hz", type=float, default=100.0, help="the teleop node's poll/publish rate")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--threads", type=int, default=2, help="pin this process and chromium to the first N CPUs")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 moves")
    args = ap.parse_args()
    if args.quick:
        args.n = 20
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, cpus)  # chromium and its helpers inherit it
    if not os.path.exists(args.chromium):
        sys.exit(f"{args.chromium} is absent: apt-get install chromium (scripts/setup.sh does it as root)")
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROBOT_RL_TRANSPORT="dds",
                      ROS_DOMAIN_ID=str(100 + os.getpid() % 100))
    from playwright.sync_api import sync_playwright

    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.robots import get_robot
    from robot_rl.teleop.arbiter import Arbiter, ArbiterConfig
    from robot_rl.teleop.device import TeleopSample
    from robot_rl.teleop.web import WebConfig, WebTeleop
    from robot_rl.transport import create_node, msgs

    dev = WebTeleop(WebConfig(port=0))
    echo = EchoServer()
    # the minimal teleop node: poll at node_hz, publish teleop/command; a subscriber stamps arrivals
    pub_node = create_node("web_teleop_bench", backend="dds")
    pub = pub_node.create_publisher(msgs.String, "teleop/command")
    want = {"sign": 0.0}
    hit: dict[str, tuple] = {}
    got_poll, got_topic = threading.Event(), threading.Event()

    def moved(s: TeleopSample) -> bool:
        return s.clutch and s.values[0] * want["sign"] > 0.04

    def tick():
        s = dev.poll(time.monotonic())
        if s is not None:
            if not got_poll.is_set() and moved(s):
                hit["poll"] = (s, dict(dev.last_command))
                got_poll.set()
            pub.publish(msgs.String(data=json.dumps(s.to_dict())))

    # the arbiter (robot_rl.teleop.arbiter, as the arbiter node runs it: samples from teleop/command,
    # a 100 Hz tick publishing arbiter/joint_command) on the Panda at home with a policy holding it;
    # a second subscriber stands for the safety node's input
    robot = get_robot("panda")
    lim = robot.position_limits()
    arb = Arbiter(ArbiterConfig(robot.joint_names, lim[:, 0], lim[:, 1], 1.0,
                                robot_model=kinematic_model_xml(robot), scale=dev.scale))
    home = list(robot.default_pose)
    got_safety = threading.Event()
    mark: dict[str, float] = {}
    arb_pub = pub_node.create_publisher(msgs.JointState, "arbiter/joint_command")

    def arrived(m):
        t = time.monotonic()
        s = TeleopSample.from_dict(json.loads(m.data))
        arb.on_sample(t, s)
        if not got_topic.is_set() and moved(s):
            hit["topic"] = (t, s)
            got_topic.set()

    def arb_tick():
        t = time.monotonic()
        arb.on_state(t, robot.joint_names, home)
        arb.on_policy(t, robot.joint_names, home)
        cmd, status = arb.tick(t)
        if cmd is None:
            return
        seq = -1
        if got_topic.is_set() and "out" not in mark and status.get("source") == "person":
            mark["out"] = t  # the first person command computed after the moving sample arrived
            seq = 1
        arb_pub.publish(msgs.JointState(name=list(robot.joint_names), position=[float(v) for v in cmd],
                                             header=msgs.Header(frame_id=str(seq))))

    def at_safety(m):
        if m.header.frame_id == "1" and not got_safety.is_set():
            hit["safety"] = time.monotonic()
            got_safety.set()


    pub_node.create_timer(1.0 / args.node_hz, tick)
    sub_node = create_node("web_teleop_bench_sub", backend="dds")
    sub_node.create_subscription(msgs.String, "teleop/command", arrived)
    sub_node.create_timer(0.01, arb_tick)
    safety_node = create_node("web_teleop_bench_safety", backend="dds")
    safety_node.create_subscription(msgs.JointState, "arbiter/joint_command", at_safety)
    safety_node.start()
    sub_node.start()
    if not pub.wait_for_subscribers(1, timeout=10.0):
        sys.exit("the loopback subscriber of teleop/command did not match within 10 s")
    pub_node.start()

    rng = random.Random(0)
    rows = {k: [] for k in ("tick", "wire", "poll", "hop", "topic", "arb", "safety")}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=args.chromium, headless=True, args=ARGS)
        ref_page = ctx.new_page()
        ref_page.goto(f"http://127.0.0.1:{echo.port}/")
        ref_page.evaluate(ECHO_JS, 20)  # warm-up
        page = ctx.new_page()
        page.goto(dev.url)
        page.wait_for_function("window.teleop && window.teleop.role === 'control'")
        page.wait_for_timeout(2500)  # the connect ping burst and one periodic ping
        sync_rtt = page.evaluate("window.teleop.bestRtt")
        travel = page.evaluate("document.getElementById('stick').getBoundingClientRect().width / 2 - 28")
        b = page.locator("#stick").bounding_box()
        cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        page.mouse.move(cx, cy)
        page.keyboard.down("Space")
        page.mouse.down()
        for i in range(args.n):
            page.wait_for_timeout(60 + 40 * rng.random())
            got_poll.clear(), got_topic.clear(), got_safety.clear()
            mark.clear()
            want["sign"] = 1.0 if i % 2 == 0 else -1.0
            page.mouse.move(cx + want["sign"] * travel / 2, cy)
            te = page.evaluate("window.teleop.te")
            if not (got_poll.wait(2.0) and got_topic.wait(2.0) and got_safety.wait(2.0)):
                sys.exit(f"move {i}: no sample reached poll/teleop/command/the safety input within 2 s")
            (s, cmd), (t_topic, _) = hit["poll"], hit["topic"]
            rows["poll"].append(s.stamp - te)
            rows["topic"].append(t_topic - te)
            rows["hop"].append(t_topic - s.stamp)
            rows["arb"].append(hit["safety"] - t_topic)
            rows["safety"].append(hit["safety"] - te)
            if cmd.get("sample_seq") == s.seq:
                rows["tick"].append(cmd["t"] - te)
                rows["wire"].append(cmd["recv"] - cmd["t"])
        page.mouse.up()
        page.keyboard.up("Space")
        ref = [r / 2e3 for r in ref_page.evaluate(ECHO_JS, args.n)]
        ctx.close()
    sub_node.shutdown()  # its arbiter tick publishes through pub_node
    pub_node.shutdown()
    safety_node.shutdown()
    echo.close()
    dev.close()

    rp50, rp99 = pct(ref)
    print(f"\nweb teleop latency, {args.n} stick moves, headless Chromium on loopback, CPUs {cpus}, "
          f"node at {args.node_hz:g} Hz; "
          f"clock mapping +-{sync_rtt * 500:.2f} ms (half the best ping round trip)")
    print(f"{'stage':50s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 / ref':>10s} {'p99 / ref':>10s}")
    for name, key in [("browser event -> page send (50 Hz send tick)", "tick"),
                      ("page send -> server receipt (clock-mapped)", "wire"),
                      ("browser event -> available to poll()", "poll"),
                      ("poll -> teleop/command (100 Hz node + DDS)", "hop"),
                      ("browser event -> teleop/command received", "topic"),
                      ("teleop/command -> arbiter (100 Hz) -> safety input", "arb"),
                      ("browser event -> safety node's input", "safety")]:
        p50, p99 = pct(rows[key])
        print(f"{name:50s} {p50:8.2f} {p99:8.2f} {p50 / rp50:10.1f} {p99 / rp99:10.1f}")
    print(f"{'reference: plain WebSocket echo, RTT/2':50s} {rp50:8.2f} {rp99:8.2f} {1.0:10.1f} {1.0:10.1f}")


if __name__ == "__main__":
    main()
