"""The web teleop device: a page for a phone or laptop (virtual joystick, clutch, success/failure
buttons, live robot state) served with its WebSocket by one asyncio server on its own thread.

    dev = make_device("web", device_config("web", port=8765))   # http://127.0.0.1:8765/
    while running:
        sample = dev.poll(time.monotonic())      # TeleopSample (mode ee_twist) or None
        dev.show_state({"source": "policy", "joint_names": [...], "joint_positions": [...]})
    dev.close()

Contract:

* The server binds `host` (default 127.0.0.1, loopback). Any other host logs one warning line:
  whoever reaches that address can drive the robot. It serves `/` (index.html), `/app.js`,
  `/style.css` over plain HTTP and the WebSocket on `/ws` (same-origin only: an upgrade whose
  `Origin` names another site is refused with 403, so a web page elsewhere cannot drive the robot
  through the operator's browser).
* Page -> server, JSON text: `{"type": "cmd", "seq": int, "t": float, "te": float, "clutch": bool,
  "axes": [x, y, z], "events": ["success"|"failure"|"reset", ...]}` at `send_hz` while the clutch
  is held and `idle_hz` otherwise (`t`, `te`: the page's estimate of the server's monotonic clock
  at sending and at the latest input event, from `{"type": "ping", "t": float}` -> `{"type":
  "pong", "t": ..., "server": float}`). Axes are in [-1, 1]: stick right +x, stick up +y, slider
  up +z, in the robot base frame. The server scales them by `DeviceScale.linear_m_s` (the linear
  part clamped to that norm) into `values = [vx, vy, vz, 0, 0, 0]`, stamps them with its own
  monotonic clock at receipt and checks them with `check_sample`.
* Server -> page: `welcome` (role `control` or `view`, scale, rates), `role` (a viewer promoted
  when the controlling page leaves), `pong`, `state` (the newest `show_state` dict, at most
  `state_hz`), `error` (one line naming the problem and the fix).
* Bad input never reaches `poll`: a message that is binary, larger than `max_message_bytes`, not
  JSON (NaN/Infinity included), or with a wrong or missing field or an axis outside [-1, 1] gets one
  `error` reply and is dropped; frames beyond 16 x `max_message_bytes` close the connection (1009).
  Each connection is rate-limited before parsing (token bucket `max_rate_hz`, `burst`); dropped
  messages are counted and answered with at most one error a second.
* One page controls at a time; later pages are view-only (their commands get an error) and the
  oldest is promoted when the controlling page leaves. When the controlling page disconnects the
  device goes silent (poll returns None), so an arbiter that was following the person holds; the
  page itself releases the clutch (sends clutch false) on pointer up, blur and hidden visibility.
* `poll(now)` returns the newest accepted command since the last poll (None if none), carrying the
  union of the events of every command since the last poll, so no button press is lost.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .device import EVENTS, DeviceConfig, TeleopError, TeleopSample, check_sample, register_device

log = logging.getLogger(__name__)

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/style.css": ("style.css", "text/css; charset=utf-8")}
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


@dataclass
class WebConfig(DeviceConfig):
    host: str = "127.0.0.1"
    """Address to bind; anything but loopback logs a warning (use 0.0.0.0 to reach it from a phone)."""
    port: int = 8765
    """TCP port (0: any free port; read it back from `WebTeleop.port`)."""
    send_hz: float = 50.0
    """The page's command rate while the clutch is held."""
    idle_hz: float = 5.0
    """The page's heartbeat rate while the clutch is released."""
    max_rate_hz: float = 150.0
    """Messages per second accepted from one page (token bucket); beyond it they are dropped."""
    burst: int = 20
    max_message_bytes: int = 2048
    state_hz: float = 20.0
    """Most state pushes per second to the pages."""


def bind_warning(host: str) -> str | None:
    """The warning line for binding `host`, or None for loopback."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (f"web teleop: serving on {host}, not loopback: anyone who can reach this address can open "
            f"the page and drive the robot; use it only on a network you trust (default host 127.0.0.1)")


def _finite_json(x: Any) -> Any:
    """`x` as plain JSON (numpy arrays and scalars converted, NaN/inf -> None)."""
    if isinstance(x, dict):
        return {str(k): _finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_finite_json(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class _Client:
    def __init__(self, ws: ServerConnection, cid: int, burst: int, now: float):
        self.ws, self.id = ws, cid
        self.tokens, self.last = float(burst), now
        self.dropped, self.last_drop_reply = 0, -math.inf
        self.clutch = False


class WebTeleop:
    """The `web` device (see the module docstring). Starts serving in the constructor."""

    name = "web"
    mode = "ee_twist"

    def __init__(self, cfg: WebConfig, clock: Callable[[], float] = time.monotonic):
        if cfg.send_hz <= 0 or cfg.idle_hz <= 0 or cfg.max_rate_hz <= 0 or cfg.burst < 1:
            raise TeleopError("web teleop: send_hz, idle_hz, max_rate_hz must be > 0 and burst >= 1")
        self.cfg, self.scale, self._clock = cfg, cfg.scale, clock
        web = resources.files("robot_rl.teleop") / "web"
        self._files = {name: (web / name).read_bytes() for name, _ in _STATIC.values()}
        self._lock = threading.Lock()
        self._clients: list[_Client] = []
        self._controller: _Client | None = None
        self._next_id = 0
        self._newest: TeleopSample | None = None
        self._polled_seq = 0
        self._seq = 0
        self._events: set[str] = set()
        self._state: str | None = None
        self._state_version = 0
        self.last_command: dict[str, float] = {}
        """The newest accepted command: the page's seq, its send time t and input-event time te (server
        clock estimates), the server's receipt time recv and the sample's seq (for benchmarks)."""
        self.stats = {"accepted": 0, "errors": 0, "dropped_rate": 0, "disconnects_mid_clutch": 0}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        warning = bind_warning(cfg.host)
        self._loopback = warning is None
        if warning:
            log.warning(warning)
        self._thread = threading.Thread(target=self._run, name="web-teleop", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise TeleopError(f"web teleop cannot serve on {cfg.host}:{cfg.port} ({self._error}); "
                              f"pick another port (port:=0 picks a free one)") from self._error
        if not self._ready.is_set():
            raise TeleopError("web teleop server did not start within 10 s")
        log.info("web teleop: open %s (bound to %s:%d)", self.url, cfg.host, self.port)

    # ---- the device contract ----------------------------------------------------------------
    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.cfg.host in ("0.0.0.0", "::", "") else self.cfg.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def poll(self, now: float) -> TeleopSample | None:
        """The newest accepted command since the last poll, with the events of every command since."""
        with self._lock:
            s = self._newest
            if s is None or s.seq == self._polled_seq:
                return None
            self._polled_seq = s.seq
            events, self._events = frozenset(self._events), set()
        return replace(s, events=events)

    def show_state(self, state: dict[str, Any]) -> None:
        """Push `state` (any JSON-able dict; numpy values converted, NaN -> null) to every page.
        The page shows source, intervening, device_alive, interventions, episode, success_rate,
        last_event, joint_names/joint_positions and any other scalar field."""
        text = json.dumps({"type": "state", "state": _finite_json(dict(state))}, allow_nan=False)
        with self._lock:
            self._state, self._state_version = text, self._state_version + 1

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Connections, the controlling page, the age of the newest command and the counters."""
        now = self._clock() if now is None else now
        with self._lock:
            age = None if self._newest is None else now - self._newest.stamp
            return {"clients": len(self._clients), "controller": self._controller is not None,
                    "clutch": self._controller is not None and self._controller.clutch,
                    "age_s": age, **self.stats}

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5.0)

    # ---- the server thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to the constructor or logged
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
            else:
                log.error("web teleop server stopped: %s", e)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handler, self.cfg.host, self.cfg.port, process_request=self._http,
                         max_size=16 * self.cfg.max_message_bytes, max_queue=8,
                         ping_interval=5.0, ping_timeout=5.0, close_timeout=1.0, server_header=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            pump = asyncio.create_task(self._pump_state())
            await self._stop.wait()
            pump.cancel()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        hosts = request.headers.get_all("Host")
        host = hosts[0] if len(hosts) == 1 else ", ".join(hosts)
        if len(hosts) != 1 or (self._loopback and urlsplit(f"//{host}").hostname not in _LOOPBACK_NAMES):
            # a name that resolves to 127.0.0.1 from a web page elsewhere (DNS rebinding)
            return self._response(http.HTTPStatus.FORBIDDEN, f"Host {host!r} refused: open the page at "
                                  f"{self.url}\n".encode(), "text/plain")
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != host:
                return self._response(http.HTTPStatus.FORBIDDEN, f"cross-origin WebSocket from {origin} refused; "
                                      f"open the page from http://{host}/\n".encode(), "text/plain")
            return None
        if path not in _STATIC:
            return self._response(http.HTTPStatus.NOT_FOUND, b"not found; the teleop page is at /\n", "text/plain")
        name, ctype = _STATIC[path]
        return self._response(http.HTTPStatus.OK, self._files[name], ctype)

    @staticmethod
    def _response(status: http.HTTPStatus, body: bytes, ctype: str) -> Response:
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                           ("Content-Security-Policy", _CSP), ("Connection", "close")])
        return Response(status.value, status.phrase, headers, body)

    async def _pump_state(self) -> None:
        sent = 0
        while True:
            await asyncio.sleep(1.0 / self.cfg.state_hz)
            with self._lock:
                text, version, conns = self._state, self._state_version, [c.ws for c in self._clients]
            if version != sent and text is not None:
                broadcast(conns, text)  # never waits on a slow page; skips it instead
                sent = version

    async def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            client = _Client(ws, self._next_id, self.cfg.burst, self._clock())
            self._next_id += 1
            self._clients.append(client)
            control = self._controller is None
            if control:
                self._controller = client
            state = self._state
        welcome = {"type": "welcome", "role": "control" if control else "view", "scale": asdict(self.scale),
                   "send_hz": self.cfg.send_hz, "idle_hz": self.cfg.idle_hz, "max_rate_hz": self.cfg.max_rate_hz}
        if not control:
            welcome["message"] = "view only: another page controls the robot; you take over when it leaves"
        try:
            await ws.send(json.dumps(welcome))
            if state is not None:
                await ws.send(state)
            async for raw in ws:
                reply = self._on_message(client, raw)
                if reply is not None:
                    await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            await self._leave(client)

    async def _leave(self, client: _Client) -> None:
        promoted = None
        with self._lock:
            self._clients.remove(client)
            if self._controller is client:
                if client.clutch:
                    self.stats["disconnects_mid_clutch"] += 1
                    log.warning("web teleop: the controlling page disconnected while holding the clutch; "
                                "the device goes silent (an arbiter following the person holds the robot)")
                self._controller = promoted = self._clients[0] if self._clients else None
        if promoted is not None:
            try:
                await promoted.ws.send(json.dumps({"type": "role", "role": "control",
                                                   "message": "you control the robot now"}))
            except ConnectionClosed:
                pass

    def _on_message(self, client: _Client, raw: str | bytes) -> dict[str, Any] | None:
        """Accept one message or say why not (the reply); runs on the server thread."""
        now = self._clock()
        client.tokens = min(float(self.cfg.burst), client.tokens + (now - client.last) * self.cfg.max_rate_hz)
        client.last = now
        if client.tokens < 1.0:
            client.dropped += 1
            with self._lock:
                self.stats["dropped_rate"] += 1
            if now - client.last_drop_reply >= 1.0:
                client.last_drop_reply = now
                return {"type": "error", "message": f"rate limit: more than {self.cfg.max_rate_hz:g} messages/s; "
                        f"{client.dropped} dropped so far; send commands at {self.cfg.send_hz:g} Hz"}
            return None
        client.tokens -= 1.0
        try:
            return self._accept(client, raw, now)
        except Exception as e:  # noqa: BLE001 - a bad message never costs the page its connection
            if not isinstance(e, TeleopError):
                log.exception("web teleop: unexpected error on a message (dropped)")
            with self._lock:
                self.stats["errors"] += 1
            return {"type": "error", "message": str(e) if isinstance(e, TeleopError) else
                    f"message ignored: it caused {type(e).__name__}; send the documented cmd/ping JSON"}

    def _accept(self, client: _Client, raw: str | bytes, now: float) -> dict[str, Any] | None:
        if isinstance(raw, bytes):
            raise TeleopError("binary message ignored; send JSON text")
        if len(raw) > self.cfg.max_message_bytes:
            raise TeleopError(f"message of {len(raw)} bytes ignored: the limit is {self.cfg.max_message_bytes}")
        try:
            msg = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise TeleopError(f"message is not JSON ({type(e).__name__}: {e}); send a JSON object like "
                              '{"type": "cmd", "seq": 1, "clutch": true, "axes": [0, 0, 0]}') from None
        if not isinstance(msg, dict) or msg.get("type") not in ("cmd", "ping"):
            raise TeleopError('message ignored: it must be a JSON object with "type" "cmd" or "ping"')
        if msg["type"] == "ping":
            return {"type": "pong", "t": _number(msg, "t", 0.0), "server": self._clock()}
        with self._lock:
            if self._controller is not client:
                raise TeleopError("view only: another page controls the robot; this command was ignored")
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise TeleopError('command ignored: "seq" must be a non-negative integer')
        clutch = msg.get("clutch")
        if not isinstance(clutch, bool):
            raise TeleopError('command ignored: "clutch" must be true or false')
        axes = msg.get("axes")
        if (not isinstance(axes, list) or len(axes) != 3
                or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in axes)):
            raise TeleopError('command ignored: "axes" must be a list of 3 numbers in [-1, 1]')
        if not all(-1.0 - 1e-6 <= a <= 1.0 + 1e-6 for a in axes):  # compares huge ints exactly, NaN fails
            raise TeleopError(f"command ignored: axes {str(axes)[:80]} outside [-1, 1]")
        a = np.asarray(axes, dtype=np.float64)
        if not np.all(np.abs(a) <= 1.0 + 1e-6):
            raise TeleopError(f"command ignored: axes {axes} outside [-1, 1]")
        events = msg.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) and e in EVENTS for e in events):
            raise TeleopError(f'command ignored: "events" must be a list of {sorted(EVENTS)}')
        t, te = _number(msg, "t", math.nan), _number(msg, "te", math.nan)
        norm = float(np.linalg.norm(a))
        lin = np.clip(a, -1.0, 1.0) / max(1.0, norm) * self.scale.linear_m_s
        with self._lock:
            sample = check_sample(TeleopSample(stamp=now, mode=self.mode, values=np.concatenate([lin, np.zeros(3)]),
                                               clutch=clutch, device=self.name, seq=self._seq + 1), self.scale, 0)
            self._seq += 1
            self._newest = sample
            self._events.update(events)
            client.clutch = clutch
            self.stats["accepted"] += 1
            self.last_command = {"seq": seq, "t": t, "te": te, "recv": now, "sample_seq": sample.seq}
        return None


def _number(msg: dict, key: str, default: float) -> float:
    """`msg[key]` as a finite float (`default` when absent); anything else is refused."""
    if key not in msg:
        return default
    v = msg[key]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise TeleopError(f'message ignored: "{key}" must be a finite number')
    return float(v)


register_device("web", WebConfig, WebTeleop)
