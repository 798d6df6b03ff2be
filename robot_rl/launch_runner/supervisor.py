"""Run resolved nodes as child processes and supervise them.

* Nodes start in launch-file order, each in its own session and process group
  (``start_new_session``), so a signal sent to the group reaches the node's own children too.
  On Linux each child also gets ``PR_SET_PDEATHSIG=SIGTERM`` so it does not outlive a runner that
  is killed with SIGKILL.
* Output is read line by line and printed with a ``[label]`` prefix: the node's stdout to our
  stdout, its stderr to our stderr. ``output="log"`` (the ros2 launch default) sends stdout only
  to the log file, ``screen`` only to the screen, ``both`` to both; stderr is always shown. Every
  line also goes to ``<log dir>/launch.log`` when a log directory is given.
* Shutdown (on SIGINT/SIGTERM to the runner, or when a node exits and that ends the launch) sends
  SIGINT to every process group still alive, SIGTERM after ``sigterm_timeout`` seconds and SIGKILL
  after another ``sigkill_timeout`` seconds (per node when set on the ``<node>``), exactly the
  ros2 launch escalation. A second SIGINT/SIGTERM to the runner skips to the next step.
* When a node exits on its own:

  - ``on_exit="shutdown"`` on that node: shut everything down (ros2 launch semantics);
    the runner's exit code is 0 when that node exited with 0;
  - otherwise with ``exit_on_any_death`` (the default, ``--exit-on-any-death``): shut everything
    down and exit non-zero, because a half-running control graph is unsafe;
  - otherwise (``--no-exit-on-any-death``, ros2 launch behaviour): keep the other nodes running;
    the runner exits when all nodes have exited, non-zero if any failed.

Exit code of :meth:`Supervisor.run`: 0 when stopped by SIGINT/SIGTERM (or an ``on_exit="shutdown"``
node exiting 0, or all nodes exiting 0) and no node had failed before, 1 otherwise.
"""

from __future__ import annotations

import errno
import os
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable

from .model import NodeSpec

__all__ = ["Supervisor", "DEFAULT_SIGTERM_TIMEOUT", "DEFAULT_SIGKILL_TIMEOUT"]

DEFAULT_SIGTERM_TIMEOUT = 5.0  # launch's 'sigterm_timeout' launch configuration default
DEFAULT_SIGKILL_TIMEOUT = 5.0  # launch's 'sigkill_timeout' launch configuration default
_POLL = 0.05
_KILL_GRACE = 5.0  # how long to wait for a SIGKILLed group's members to disappear


def _pdeathsig_preexec() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died between fork and prctl
            os._exit(1)

    return preexec


@dataclass
class _Proc:
    spec: NodeSpec
    popen: subprocess.Popen
    pgid: int
    started: float
    returncode: int | None = None
    stage: int = 0  # 0: running, 1: SIGINT sent, 2: SIGTERM sent, 3: SIGKILL sent
    deadline: float = 0.0
    buffers: dict[int, bytes] = field(default_factory=dict)

    def group_alive(self) -> bool:
        if self.returncode is None:
            return True
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _group_has_live_members(self.pgid)


def _group_has_live_members(pgid: int) -> bool:
    """True if some non-zombie process is in process group ``pgid`` (zombies cannot be signalled
    away; they wait for whoever reaps them)."""
    proc = "/proc"
    if not os.path.isdir(proc):
        return True
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 3 and rest[2] == str(pgid) and rest[0] not in ("Z", "X"):
            return True
    return False


class Supervisor:
    def __init__(
        self,
        nodes: list[NodeSpec],
        *,
        exit_on_any_death: bool = True,
        sigterm_timeout: float = DEFAULT_SIGTERM_TIMEOUT,
        sigkill_timeout: float = DEFAULT_SIGKILL_TIMEOUT,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        log_dir: str | None = None,
        install_signal_handlers: bool = True,
    ):
        self.nodes = list(nodes)
        self.exit_on_any_death = exit_on_any_death
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.log_dir = log_dir
        self.install_signal_handlers = install_signal_handlers
        self.procs: list[_Proc] = []
        self._log: IO[str] | None = None
        self._shutdown_reason: str | None = None
        self._signals: list[int] = []
        self._failed = False

    # --- public --------------------------------------------------------------------------
    def request_shutdown(self, signum: int = signal.SIGINT) -> None:
        """Ask :meth:`run` to stop all nodes (thread- and signal-safe)."""
        self._signals.append(signum)

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs]

    def run(self) -> int:
        old_handlers = {}
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                old_handlers[s] = signal.signal(s, lambda signum, _frame: self._signals.append(signum))
        try:
            self._open_log()
            return self._run()
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self._log is not None:
                self._log.close()

    # --- internals -----------------------------------------------------------------------
    def _open_log(self) -> None:
        if not self.log_dir:
            return
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            self._log = open(os.path.join(self.log_dir, "launch.log"), "a", encoding="utf-8", buffering=1)
        except OSError as e:
            self._info(f"cannot write logs to {self.log_dir}: {e}; node stdout goes to the screen", "WARNING")
            self.log_dir = None
            return
        self._info(f"All log files can be found below {self.log_dir}")

    def _emit(self, stream: IO[str], line: str, *, screen: bool = True) -> None:
        if screen:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass
        if self._log is not None:
            try:
                self._log.write(f"{time.time():.7f} {line}\n")
            except (OSError, ValueError):
                pass

    def _info(self, msg: str, level: str = "INFO") -> None:
        self._emit(self.err, f"[{level}] [launch]: {msg}")

    def _node_msg(self, p: _Proc, msg: str, level: str = "INFO") -> None:
        self._emit(self.err, f"[{level}] [{p.spec.label}]: {msg}")

    def _start(self, spec: NodeSpec, preexec) -> _Proc | None:
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=spec.env,
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=preexec,
                close_fds=True,
            )
        except OSError as e:
            self._emit(self.err, f"[ERROR] [{spec.label}]: failed to start {spec.argv[0]!r}: {e}")
            return None
        p = _Proc(spec=spec, popen=popen, pgid=popen.pid, started=time.monotonic())
        self._node_msg(p, f"process started with pid [{popen.pid}]")
        return p

    def _run(self) -> int:
        sel = selectors.DefaultSelector()
        preexec = _pdeathsig_preexec()
        for spec in self.nodes:
            if self._signals:
                break
            p = self._start(spec, preexec)
            if p is None:
                self._failed = True
                self._begin_shutdown("a node failed to start")
                break
            self.procs.append(p)
            for f in (p.popen.stdout, p.popen.stderr):
                assert f is not None
                os.set_blocking(f.fileno(), False)
                sel.register(f, selectors.EVENT_READ, (p, f is p.popen.stderr))
            self._reap()  # a node that already died ends the start-up when that ends the launch
            if self._shutdown_reason is not None:
                break
        if not self.procs:
            return 1 if self._failed else 0

        while True:
            self._pump(sel, _POLL)
            self._reap()
            signals = []
            while self._signals:
                signals.append(self._signals.pop(0))
            for sig in signals:
                if self._shutdown_reason is None:
                    self._begin_shutdown(f"{signal.Signals(sig).name} received")
                else:
                    self._info(f"{signal.Signals(sig).name} received during shutdown, escalating to the next signal")
                    for p in self.procs:
                        if p.stage in (1, 2):
                            p.deadline = 0.0
            if self._shutdown_reason is not None:
                self._escalate()
                if not any(self._waiting_for(p) for p in self.procs):
                    break
            elif all(p.returncode is not None for p in self.procs):
                # --no-exit-on-any-death: everything has exited; clean up stragglers of each group
                self._begin_shutdown("all nodes have exited")
        self._pump(sel, 0)  # last output that is already buffered
        for key in list(sel.get_map().values()):
            p, is_err = key.data
            self._flush_partial(p, key.fileobj, is_err)
            sel.unregister(key.fileobj)
            key.fileobj.close()
        sel.close()
        return 1 if self._failed else 0

    def _pump(self, sel: selectors.BaseSelector, timeout: float) -> None:
        if not sel.get_map():
            if timeout:
                time.sleep(timeout)
            return
        try:
            events = sel.select(timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return
        for key, _ in events:
            p, is_err = key.data
            f = key.fileobj
            try:
                data = os.read(f.fileno(), 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                self._flush_partial(p, f, is_err)
                sel.unregister(f)
                f.close()
                continue
            buf = p.buffers.get(f.fileno(), b"") + data
            *lines, rest = buf.split(b"\n")
            p.buffers[f.fileno()] = rest
            for raw in lines:
                self._emit_node_line(p, raw, is_err)

    def _flush_partial(self, p: _Proc, f, is_err: bool) -> None:
        try:
            rest = p.buffers.pop(f.fileno(), b"")
        except ValueError:  # closed file
            return
        if rest:
            self._emit_node_line(p, rest, is_err)

    def _emit_node_line(self, p: _Proc, raw: bytes, is_err: bool) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        line = f"[{p.spec.label}] {text}"
        if is_err:
            self._emit(self.err, line)
        else:
            screen = p.spec.output in ("screen", "both") or self._log is None
            self._emit(self.out, line, screen=screen)

    def _reap(self) -> None:
        for p in self.procs:
            if p.returncode is not None:
                continue
            rc = p.popen.poll()
            if rc is None:
                continue
            p.returncode = rc
            self._on_exit(p, rc)

    def _describe_rc(self, rc: int) -> str:
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exit code {rc}"

    def _on_exit(self, p: _Proc, rc: int) -> None:
        cmd = shlex.join(p.spec.argv)
        if self._shutdown_reason is not None:
            level = "INFO" if rc == 0 or p.stage > 0 else "ERROR"
            self._node_msg(p, f"process has finished cleanly [pid {p.popen.pid}]" if rc == 0 else
                           f"process has died [pid {p.popen.pid}, {self._describe_rc(rc)}, cmd '{cmd}']", level)
            return
        if rc == 0:
            self._node_msg(p, f"process has finished cleanly [pid {p.popen.pid}]")
        else:
            self._node_msg(p, f"process has died [pid {p.popen.pid}, {self._describe_rc(rc)}, cmd '{cmd}']",
                           "ERROR")
        if p.spec.on_exit_shutdown:
            if rc != 0:
                self._failed = True
            self._begin_shutdown(f"node '{p.spec.label}' exited and has on_exit=\"shutdown\"")
        elif self.exit_on_any_death:
            self._failed = True
            self._begin_shutdown(
                f"node '{p.spec.label}' exited ({self._describe_rc(rc)}); stopping all nodes because "
                "--exit-on-any-death is on (pass --no-exit-on-any-death to keep the others running)")
        elif rc != 0:
            self._failed = True

    def _begin_shutdown(self, reason: str) -> None:
        if self._shutdown_reason is not None:
            return
        self._shutdown_reason = reason
        self._info(f"shutting down: {reason}")
        now = time.monotonic()
        for p in self.procs:
            if p.group_alive():
                self._signal(p, signal.SIGINT)
                p.stage = 1
                p.deadline = now + self._timeout(p, 1)

    def _timeout(self, p: _Proc, stage: int) -> float:
        if stage == 1:
            t = p.spec.sigterm_timeout
            return self.sigterm_timeout if t is None else t
        t = p.spec.sigkill_timeout
        return self.sigkill_timeout if t is None else t

    def _signal(self, p: _Proc, sig: int) -> None:
        try:
            os.killpg(p.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _waiting_for(self, p: _Proc) -> bool:
        if not p.group_alive():
            return False
        if p.stage == 3 and time.monotonic() > p.deadline:
            if p.returncode is None:
                return True  # our own child must be reaped; SIGKILL cannot be ignored
            self._node_msg(p, f"process group {p.pgid} survived SIGKILL; giving up on it", "ERROR")
            p.stage = 4
            return False
        return p.stage != 4

    def _escalate(self) -> None:
        now = time.monotonic()
        for p in self.procs:
            if p.stage == 0 or p.stage >= 3 or now < p.deadline:
                continue
            if not p.group_alive():
                continue
            if p.stage == 1:
                self._node_msg(p, "still running after SIGINT, sending SIGTERM", "WARNING")
                self._signal(p, signal.SIGTERM)
                p.stage = 2
                p.deadline = now + self._timeout(p, 2)
            elif p.stage == 2:
                self._node_msg(p, "still running after SIGTERM, sending SIGKILL", "ERROR")
                self._signal(p, signal.SIGKILL)
                p.stage = 3
                p.deadline = now + _KILL_GRACE
