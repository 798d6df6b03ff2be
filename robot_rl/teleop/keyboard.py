"""Terminal keyboard teleop (`keyboard`): keys read from a tty (or any file descriptor: a pipe, a
pty) without blocking and without a display server.

| keys | command (end-effector twist in the robot base frame, at the declared `DeviceScale`) |
|---|---|
| w / s | +x / -x |
| a / d | +y / -y |
| q / e | +z / -z |
| i / k | +wx / -wx (roll) |
| j / l | +wy / -wy (pitch) |
| u / o | +wz / -wz (yaw) |
| space | clutch **toggle** (a terminal reports no key releases, so it cannot be held) |
| Enter or y | `success` |
| n | `failure` |
| r | `reset` |
| g | gripper toggle (closed 1 / open 0; None until first pressed) |

A terminal only sends characters: a held key arrives once, then repeats (after the terminal's
repeat delay, typically 0.25-0.66 s, then ~30 times a second). A key's motion therefore lasts
`first_hold_s` after its first press and `key_hold_s` after each repeat: hold a key to move, release
it and the motion stops `key_hold_s` later; a single tap moves for `first_hold_s`. Opposite keys
cancel. Upper case counts as lower case; escape sequences (arrows, function keys), control and
non-ASCII bytes are ignored and counted in `ignored`. Ctrl-C still interrupts (cbreak mode, not raw).

`poll` returns a sample on every call while the input is open (the state of the keys and the
clutch now); when the input closes (end of file, the terminal gone) it raises `DeviceUnavailable`.
"""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.teleop.axes import DeviceUnavailable, scale_twist
from robot_rl.teleop.device import DeviceConfig, TeleopError, TeleopSample, register_device

MOTION = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "q": (2, 1), "e": (2, -1),
          "i": (3, 1), "k": (3, -1), "j": (4, 1), "l": (4, -1), "u": (5, 1), "o": (5, -1)}
EVENT_KEYS = {"\n": "success", "\r": "success", "y": "success", "n": "failure", "r": "reset"}


@dataclass
class KeyboardConfig(DeviceConfig):
    input: str = ""
    """Terminal or FIFO to read ("" = this process's stdin), e.g. /dev/pts/3 (run `tty` in it)."""
    fd: int = -1
    """An already open file descriptor to read instead (tests, embedding); not closed by the device."""
    key_hold_s: float = 0.1
    """A key's motion lasts this long after its last repeat (above the terminal's repeat interval)."""
    first_hold_s: float = 0.5
    """... and this long after its first press (covers the terminal's repeat delay)."""
    status_line: bool = True
    """Draw a one-line robot/arbiter status on stderr when the input is a terminal."""


class Keyboard:
    mode = "ee_twist"

    def __init__(self, cfg: KeyboardConfig):
        if cfg.key_hold_s <= 0 or cfg.first_hold_s < cfg.key_hold_s:
            raise TeleopError(f"keyboard key_hold_s={cfg.key_hold_s} must be > 0 and first_hold_s={cfg.first_hold_s} "
                              ">= key_hold_s")
        self.cfg, self.scale, self.name = cfg, cfg.scale, "keyboard"
        self._own = False
        if cfg.fd >= 0:
            self.fd = cfg.fd
        elif cfg.input:
            try:
                self.fd = os.open(cfg.input, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            except OSError as e:
                raise DeviceUnavailable(f"keyboard input {cfg.input} cannot be opened ({e.strerror}); give a "
                                        "terminal you can read (run `tty` in it) or leave input empty for stdin") from None
            self._own = True
        else:
            try:
                self.fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                raise DeviceUnavailable("keyboard: this process has no stdin; run it in a terminal or set "
                                        "the input parameter to a terminal (/dev/pts/N)") from None
        self._saved = None
        self.is_tty = os.isatty(self.fd)
        if self.is_tty:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # keys arrive one by one, not echoed; Ctrl-C still works
        self._until = np.zeros(len(MOTION))  # per motion key: time its motion ends
        self._keys = list(MOTION)
        self.clutch = False
        self.gripper: float | None = None
        self.ignored = 0
        self._pending: set[str] = set()
        self._seq = 0
        self._esc = 0  # 0: normal, 1: after ESC, 2: inside a CSI sequence
        self._last_status = 0.0

    def _read(self) -> bytes:
        out = b""
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0)
                if not ready:
                    return out
                chunk = os.read(self.fd, 4096)
            except OSError as e:
                raise DeviceUnavailable(f"keyboard input closed ({e.strerror or e}); restart the node in a "
                                        "terminal") from None
            if not chunk:
                if out:
                    return out  # process what came before the end of file first
                raise DeviceUnavailable("keyboard input reached end of file (stdin is not an open terminal?); run "
                                        "the teleop node in a terminal or set the input parameter to a terminal (/dev/pts/N)")
            out += chunk

    def _key(self, ch: str, now: float) -> None:
        if ch in MOTION:
            i = self._keys.index(ch)
            self._until[i] = max(self._until[i], now + (self.cfg.key_hold_s if self._until[i] > now
                                                        else self.cfg.first_hold_s))
        elif ch == " ":
            self.clutch = not self.clutch
        elif ch in EVENT_KEYS:
            self._pending.add(EVENT_KEYS[ch])
        elif ch == "g":
            self.gripper = 0.0 if self.gripper == 1.0 else 1.0
        else:
            self.ignored += 1

    def feed(self, data: bytes, now: float) -> None:
        """Interpret raw input bytes received at `now` (what `poll` does with what it reads)."""
        for b in data:
            if self._esc == 1:  # ESC [ ... starts a CSI sequence; ESC O x an SS3 key; other: alt+key
                self._esc = 2 if b in (0x5B, 0x4F) else 0
                self.ignored += 1
                continue
            if self._esc == 2:
                self._esc = 0 if 0x40 <= b <= 0x7E else 2
                self.ignored += 1
                continue
            if b == 0x1B:
                self._esc = 1
                self.ignored += 1
            elif b in (0x0A, 0x0D) or 0x20 <= b < 0x7F:
                self._key(chr(b).lower(), now)
            else:
                self.ignored += 1

    def poll(self, now: float | None = None) -> TeleopSample:
        now = time.monotonic() if now is None else now
        self.feed(self._read(), now)
        raw = np.zeros(6)
        for i, k in enumerate(self._keys):
            if self._until[i] > now:
                axis, sign = MOTION[k]
                raw[axis] += sign
        events, self._pending = frozenset(self._pending), set()
        self._seq += 1
        return TeleopSample(stamp=now, mode=self.mode, values=scale_twist(raw, self.scale), clutch=self.clutch,
                            events=events, gripper=self.gripper, device=self.name, seq=self._seq)

    def show_state(self, state: dict[str, Any]) -> None:
        """A status line (source, intervention count, episode) on stderr, at most 5 times a second."""
        if not (self.cfg.status_line and self.is_tty) or time.monotonic() - self._last_status < 0.2:
            return
        self._last_status = time.monotonic()
        st = state.get("status") or {}
        sys.stderr.write(f"\r[keyboard] clutch {'ON ' if self.clutch else 'off'} source {st.get('source', '?'):6s} "
                         f"episode {st.get('episode', '-')} interventions {st.get('interventions', '-')}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None
        if self._own:
            os.close(self.fd)
            self._own = False


register_device("keyboard", KeyboardConfig, Keyboard)
