"""Supervision: output prefixes, death of a node, SIGINT/SIGTERM escalation, process groups."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from launch_helpers import pid_alive, read_state, runner_env, start_runner, wait_for

FAST = ["--sigterm-timeout", "0.5", "--sigkill-timeout", "0.5"]


def launch_file(tmp_path: Path, nodes: str) -> Path:
    f = tmp_path / "sup.launch.xml"
    f.write_text(f"<launch>\n{nodes}\n</launch>\n")
    return f


def node(name: str, state_dir: Path, extra: str = "", attrs: str = 'output="screen"') -> str:
    return (f'<node pkg="robot_rl" exec="{name}" name="{name}" {attrs} '
            f'args="--state-dir {state_dir} {extra}"/>')


def all_pids(state_dir: Path, names: list[str]) -> list[int]:
    pids = []
    for n in names:
        st = read_state(state_dir, n)
        pids.append(st["pid"])
        if st["grandchild"]:
            pids.append(st["grandchild"])
    return pids


def wait_started(state_dir: Path, names: list[str], proc, timeout: float = 20.0) -> None:
    ok = wait_for(lambda: all((state_dir / f"{n}.json").exists() for n in names) or proc.poll() is not None,
                  timeout)
    assert ok and proc.poll() is None, proc.communicate(timeout=5)


def finish(proc, timeout: float = 20.0):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_dying_node_stops_the_others(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, "\n".join([
        node("talker", state_dir, "--grandchild"),
        node("listener", state_dir, "--ignore INT"),
        node("crasher", state_dir, "--exit-after 1.0 --rc 3"),
    ]))
    proc = start_runner([str(f), *FAST], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    names = ["talker", "listener", "crasher"]
    wait_started(state_dir, names, proc)
    pids = all_pids(state_dir, names)
    reaper.extend(pids)
    t0 = time.monotonic()
    rc, out, err = finish(proc)
    assert rc == 1, err
    assert time.monotonic() - t0 < 10
    assert not [p for p in pids if pid_alive(p)], "a node or grandchild survived"
    # output is prefixed with the node label, stdout to stdout and stderr to stderr
    assert "[talker] talker says hello on stdout" in out.splitlines()
    assert "[crasher] crasher says hello on stderr" in err.splitlines()
    assert "[talker] talker got SIGINT" in out.splitlines()
    assert "process has died" in err and "exit code 3" in err
    assert "stopping all nodes because --exit-on-any-death is on" in err
    assert "[listener]: still running after SIGINT, sending SIGTERM" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_all_children_with_escalation(tmp_path, fake_bin, state_dir, reaper, sig):
    f = launch_file(tmp_path, "\n".join([
        node("talker", state_dir),
        node("stubborn", state_dir, "--ignore INT"),
        node("listener", state_dir, "--ignore INT --ignore TERM --grandchild"),
    ]))
    proc = start_runner([str(f), *FAST], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    names = ["talker", "stubborn", "listener"]
    wait_started(state_dir, names, proc)
    pids = all_pids(state_dir, names)
    reaper.extend(pids)
    t0 = time.monotonic()
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    elapsed = time.monotonic() - t0
    assert rc == 0, err
    assert elapsed < 4.0, f"shutdown took {elapsed:.1f}s"
    assert not [p for p in pids if pid_alive(p)], "a node or grandchild survived"
    assert f"{sig.name} received" in err
    assert "[stubborn]: still running after SIGINT, sending SIGTERM" in err
    assert "[listener]: still running after SIGTERM, sending SIGKILL" in err
    assert "[talker] talker got SIGINT" in out


def test_on_exit_shutdown_ends_the_launch_cleanly(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, "\n".join([
        node("talker", state_dir),
        node("policy", state_dir, "--exit-after 0.5", attrs='output="screen" on_exit="shutdown"'),
    ]))
    proc = start_runner([str(f), *FAST], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    rc, out, err = finish(proc)
    reaper.extend(all_pids(state_dir, ["talker", "policy"]))
    assert rc == 0, err
    assert not pid_alive(read_state(state_dir, "talker")["pid"])
    assert "on_exit=\"shutdown\"" in err


def test_no_exit_on_any_death_keeps_others_running(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, "\n".join([
        node("talker", state_dir),
        node("crasher", state_dir, "--exit-after 0.3 --rc 2"),
    ]))
    proc = start_runner([str(f), "--no-exit-on-any-death", *FAST], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    wait_started(state_dir, ["talker", "crasher"], proc)
    talker = read_state(state_dir, "talker")["pid"]
    crasher = read_state(state_dir, "crasher")["pid"]
    reaper.extend([talker, crasher])
    assert wait_for(lambda: not pid_alive(crasher), 10)
    time.sleep(0.5)
    assert proc.poll() is None and pid_alive(talker), "the other node must keep running"
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 1, err  # a node failed during the run
    assert not pid_alive(talker)


def test_all_nodes_finishing_cleanly_exit_0(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, "\n".join([
        node("talker", state_dir, "--exit-after 0.2"),
        node("listener", state_dir, "--exit-after 0.4"),
    ]))
    proc = start_runner([str(f), "--no-exit-on-any-death", *FAST], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "process has finished cleanly" in err


def test_output_log_goes_to_the_log_file(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, node("talker", state_dir, "--exit-after 0.3", attrs="")  # default: log
                    + "\n" + node("listener", state_dir, "--exit-after 0.3", attrs='output="both"'))
    env = runner_env(fake_bin, tmp_path)
    proc = start_runner([str(f), "--no-exit-on-any-death", *FAST], env)
    reaper.append(proc.pid)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "[talker] talker says hello on stdout" not in out  # output="log": stdout only to the log
    assert "[talker] talker says hello on stderr" in err  # stderr is always on screen
    assert "[listener] listener says hello on stdout" in out
    logs = list((tmp_path / "log").glob("*/launch.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "[talker] talker says hello on stdout" in text
    assert "[listener] listener says hello on stdout" in text


def test_nodes_get_launch_environment(tmp_path, fake_bin, state_dir, reaper):
    f = launch_file(tmp_path, '<set_env name="LAUNCH_TEST_PROBE" value="from-launch"/>\n'
                    + node("talker", state_dir, "--exit-after 0.1", attrs='output="screen" on_exit="shutdown"'))
    proc = start_runner([str(f)], runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    rc, _, err = finish(proc)
    assert rc == 0, err
    st = read_state(state_dir, "talker")
    assert st["env_probe"] == "from-launch"
    assert st["argv"] == ["--state-dir", str(state_dir), "--exit-after", "0.1",
                          "--ros-args", "-r", "__node:=talker"]
    assert st["pgid"] == st["pid"], "each node runs in its own process group"


def test_supervisor_api_in_process(tmp_path, fake_bin, state_dir, reaper):
    """The Python API: build a plan, run it, stop it from another thread."""
    import io
    import threading

    from robot_rl.launch_runner import Supervisor, build_plan

    f = launch_file(tmp_path, node("talker", state_dir) + "\n" + node("stubborn", state_dir, "--ignore INT"))
    plan = build_plan(str(f), env={**runner_env(fake_bin, tmp_path)})
    out, err = io.StringIO(), io.StringIO()
    sup = Supervisor(plan.nodes, sigterm_timeout=0.3, sigkill_timeout=0.3, stdout=out, stderr=err)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("rc", sup.run()))
    t.start()
    try:
        assert wait_for(lambda: all((state_dir / f"{n}.json").exists() for n in ("talker", "stubborn")), 20)
        reaper.extend(all_pids(state_dir, ["talker", "stubborn"]))
        sup.request_shutdown()
        t.join(10)
        assert not t.is_alive()
    finally:
        if t.is_alive():
            sup.request_shutdown()
            t.join(10)
    assert result["rc"] == 0
    assert not [p for p in sup.pids if pid_alive(p)]
    assert "[talker] talker says hello on stdout" in out.getvalue()


def test_repeated_sigint_escalates_immediately(tmp_path, fake_bin, state_dir, reaper):
    """With long timeouts, a second and third SIGINT skip to SIGTERM and SIGKILL."""
    f = launch_file(tmp_path, node("stubborn", state_dir, "--ignore INT --ignore TERM"))
    proc = start_runner([str(f), "--sigterm-timeout", "60", "--sigkill-timeout", "60"],
                        runner_env(fake_bin, tmp_path))
    reaper.append(proc.pid)
    wait_started(state_dir, ["stubborn"], proc)
    pid = read_state(state_dir, "stubborn")["pid"]
    reaper.append(pid)
    t0 = time.monotonic()
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert time.monotonic() - t0 < 5
    assert not pid_alive(pid)
    assert "sending SIGTERM" in err and "sending SIGKILL" in err
