"""The operator's terminal status line: episode, success rate, intervention rate, learner lag, source.

    line = StatusLine()                      # stdout; a tty gets one line rewritten with \\r
    line.update({"episode": 12, "successes": 9, "failures": 3, "interventions": 5,
                 "intervention_rate": 0.18, "learner_lag_s": 0.8, "source": "person"})
    line.close()                             # ends the rewritten line with a newline

:func:`format_status` turns a dict into the text; every key is optional and a missing one is left
out, so the arbiter node (its ``teleop/status``) and the learning loops (their own counters) share
it. Keys: ``episode`` (int), ``successes`` / ``failures`` (ints: the success rate over labeled
episodes) or ``success_rate`` (0..1), ``interventions`` (count), ``intervention_rate`` (0..1,
the share of time the person commanded), ``learner_lag_s`` (seconds or None),
``source`` (policy | person | hold), ``reason`` (shown with hold), ``device`` and
``device_alive``, ``blending`` (bool), and ``extra`` (a string appended as is).

On a terminal (``tty``, default ``stream.isatty()``) each update rewrites the line in place
(``\\r`` + the text, padded over the previous one), at most once per ``min_interval_s`` (0.1 s);
otherwise (a log file, a pipe) it writes plain lines, only when the text changed and at most
once per ``min_interval_s`` (default 1 s there). ``clock`` is injectable for tests.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

__all__ = ["format_status", "StatusLine"]


def _pct(x: float) -> str:
    return f"{100.0 * x:.0f}%"


def format_status(d: dict[str, Any]) -> str:
    """One line of text for the operator from a status dict (keys in the module docstring)."""
    parts: list[str] = []
    if d.get("episode") is not None:
        parts.append(f"episode {int(d['episode'])}")
    succ, fail = d.get("successes"), d.get("failures")
    if succ is not None and fail is not None:
        n = int(succ) + int(fail)
        parts.append(f"success {_pct(int(succ) / n)} ({int(succ)}/{n})" if n else "success -")
    elif d.get("success_rate") is not None:
        parts.append(f"success {_pct(float(d['success_rate']))}")
    iv = []
    if d.get("interventions") is not None:
        iv.append(str(int(d["interventions"])))
    if d.get("intervention_rate") is not None:
        iv.append(f"{_pct(float(d['intervention_rate']))} of time")
    if iv:
        parts.append("interventions " + ", ".join(iv))
    if "learner_lag_s" in d:
        lag = d["learner_lag_s"]
        parts.append("learner lag " + ("-" if lag is None else f"{float(lag):.2f} s"))
    if d.get("device") or "device_alive" in d:
        alive = d.get("device_alive")
        parts.append(f"device {d.get('device') or '?'}" + ("" if alive is None else " ok" if alive else " SILENT"))
    src = d.get("source")
    if src:
        text = {"person": "PERSON", "hold": "HOLD", "policy": "policy"}.get(str(src), str(src))
        if src == "hold" and d.get("reason"):
            text += f" ({d['reason']})"
        elif src == "policy" and d.get("blending"):
            text += " (blending back)"
        parts.append(text)
    if d.get("extra"):
        parts.append(str(d["extra"]))
    return " | ".join(parts)


class StatusLine:
    """Writes :func:`format_status` lines to ``stream`` (see the module docstring)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, min_interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = sys.stdout if stream is None else stream
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.min_interval_s = (0.1 if tty else 1.0) if min_interval_s is None else float(min_interval_s)
        self.clock = clock
        self._last_t: float | None = None
        self._last_text = ""
        self._width = 0

    def update(self, status: dict[str, Any], force: bool = False) -> bool:
        """Show ``status``; returns True if something was written."""
        text = format_status(status)
        now = self.clock()
        if not force:
            if self._last_t is not None and now - self._last_t < self.min_interval_s:
                return False
            if not self.tty and text == self._last_text:
                return False
        self._last_t, self._last_text = now, text
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        return True

    def close(self) -> None:
        """End a rewritten line (a tty) so the next output starts on its own line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
