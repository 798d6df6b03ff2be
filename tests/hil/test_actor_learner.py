"""The HIL-SERL actor-learner link (robot_rl.hil.actor / learner / link): loopback, a real learner
subprocess killed with SIGKILL and restarted, garbage on the socket."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import zmq

import tests.toy_task  # noqa: F401  registers toy-reach
from robot_rl.hil.actor import HilActor, PolicySpec
from robot_rl.hil.learner import LearnerConfig
from robot_rl.hil.link import MAGIC, ActorLink, LearnerLink, decode, encode
from robot_rl.hil.operator import SimulatedOperator
from robot_rl.hil.sac import SACConfig
from robot_rl.sim import make_env

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ToyExpert:
    """Drives the toy slider to its target."""

    def reset(self, env, ids):
        pass

    def act(self, env, obs):
        return (env.task.target / 0.5).clamp(-1, 1)


def _env(n=4):
    return make_env("toy-reach", n, dr="train", seed=0, nthread=1, autoreset=False)


def _learner(tmp: Path, address: str) -> subprocess.Popen:
    cfg = LearnerConfig(obs_dim=2, act_dim=1, out=str(tmp / "learner"), address=address,
                        sac=SACConfig(hidden=32, batch_size=32, utd=1), warmup=16, updates_per_transition=1.0,
                        publish_every=2, checkpoint_s=0.3, heartbeat_s=0.1)
    path = tmp / "learner.json"
    path.write_text(json.dumps(cfg.to_dict()))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "robot_rl.hil.learner", str(path)], env=env,
                            stdout=open(tmp / "learner.log", "a"), stderr=subprocess.STDOUT)


def _actor_and_learner(tmp: Path):
    """A learner subprocess on a free loopback port and an actor (4 toy envs, supervised) linked to it."""
    torch.set_num_threads(1)
    address = f"tcp://127.0.0.1:{_port()}"
    proc = _learner(tmp, address)
    env = _env()
    link = ActorLink(address, timeout_s=0.8, resend_s=0.5, log=lambda s: None)
    actor = HilActor(env, PolicySpec(2, 1, hidden=32), link, operator=SimulatedOperator(env, 0, expert=ToyExpert()))
    return address, proc, link, actor


def _step_until(actor, cond, timeout):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out (the timeouts are generous: a loaded machine starts a python + torch process slowly)"
        actor.step()
        actor.flush()
        time.sleep(0.002)


def test_learner_killed_then_restarted(tmp_path):
    address, proc, link, actor = _actor_and_learner(tmp_path)
    try:
        assert actor.net is None  # no weights yet: the actor holds (zero action) and still steps
        x, b = actor._input(actor.obs)
        assert torch.equal(actor.policy_action(x, b), torch.zeros(4, 1))
        _step_until(actor, lambda: actor.version >= 2, 180)
        ckpt = tmp_path / "learner" / "learner.safetensors"
        _step_until(actor, ckpt.is_file, 60)
        time.sleep(0.4)  # a checkpoint with weights that were published
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        v_dead, boot_dead, steps = actor.version, link.weights_boot, actor.steps
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:  # the control loop keeps its pace with the learner gone
            t = time.monotonic()
            actor.step()
            actor.flush()
            assert time.monotonic() - t < 5.0  # never blocks on the dead learner (a blocking call would hang)
        assert not link.learner_alive
        assert actor.steps - steps > 20
        assert actor.net is not None and actor.version == v_dead  # acting with its last weights
        assert link.buffered > 0  # transitions kept for the learner's return
        proc = _learner(tmp_path, address)
        _step_until(actor, lambda: link.weights_boot not in (None, boot_dead), 180)  # the new learner's weights
        _step_until(actor, lambda: link.buffered < 4 * 4 * 2, 60)  # the backlog was delivered
        assert "resumed from" in (tmp_path / "learner.log").read_text()
        assert link.dropped == 0
    finally:
        proc.kill()
        proc.wait()
        link.close()


def test_the_actor_can_wait_for_the_learner_and_stops_waiting_when_it_dies(tmp_path):
    """`SerlOptions.sync`: after a round the actor waits until the learner has made its updates
    per transition sent (1.0 here); a dead learner ends the wait within the link's timeout."""
    _, proc, link, actor = _actor_and_learner(tmp_path)
    try:
        _step_until(actor, lambda: link.learner_alive and link.sent_total >= 200, 180)
        target = link.sent_total - 2  # the learner allows updates_per_transition x received + 1
        assert link.wait_for_updates(target, 120.0)
        assert link.learner_updates >= target
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        assert not link.wait_for_updates(10 ** 9, 60.0)
        assert time.monotonic() - t0 < 5.0  # gone after the link's 0.8 s timeout, not the 60 s one
    finally:
        proc.kill()
        proc.wait()
        link.close()


def test_rlif_penalty_marks_the_step_before_each_takeover():
    env = _env()
    chunks, starts = [], []

    class Recorded(SimulatedOperator):
        def step(self, *a):
            o = super().step(*a)
            starts.append(o.takeover_start.clone())
            return o

    op = Recorded(env, 0, expert=ToyExpert(), drift_threshold=0.2, reaction_delay_s=0.0, takeover_s=0.05)
    actor = HilActor(env, PolicySpec(2, 1), None, operator=op, sink=chunks.append, send_every=1)
    actor.policy_action = lambda x, b: torch.ones(len(x), 1)  # a policy that drifts away from the expert
    for _ in range(60):
        actor.step()
    pen = torch.stack([c["penalty"] for c in chunks])  # [T - 1, n]: transition t
    done = torch.stack([c["done"] for c in chunks])
    st = torch.stack(starts)[1:len(pen) + 1]  # takeover starts at t + 1
    assert bool(done.any()) and bool(st.any()) and bool(pen.any())
    # penalised exactly when the next step of the same episode started a takeover
    assert torch.equal(pen, st & ~done)
    interv = torch.stack([c["intervening"] for c in chunks])
    acts = torch.stack([c["act"] for c in chunks])[..., 0]
    assert bool(interv.any()) and bool((acts[~interv] == 1).all())  # the policy's own steps kept its action


def test_garbage_on_the_sockets_gives_one_line_each(tmp_path):
    lines: list[str] = []
    port = _port()
    learner = LearnerLink(f"tcp://127.0.0.1:{port}", log=lines.append)
    ctx = zmq.Context.instance()
    rogue = ctx.socket(zmq.DEALER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.connect(f"tcp://127.0.0.1:{port}")
    rogue.send_multipart([b"hello"])
    rogue.send_multipart([b"GET / HTTP/1.1", b"hb", b"{}", b""])
    rogue.send_multipart([MAGIC, b"tr", b"{}", b"\x00garbage safetensors"])
    rogue.send_multipart([MAGIC, b"hb", b"[1, 2]", b""])
    with socket.create_connection(("127.0.0.1", port)) as raw:  # not even ZMTP
        raw.sendall(random.Random(0).randbytes(512))
    rogue.send_multipart(encode("hb", {"sid": "x", "version": 3}))
    got = []
    t0 = time.monotonic()
    while not got and time.monotonic() - t0 < 5:
        got = learner.poll(100)
    assert [(k, h["version"]) for _, k, h, _ in got] == [("hb", 3)]
    assert learner.malformed >= 4  # the raw bytes may be framed as ZMTP 1.0 messages too
    assert len(lines) == 1 and "\n" not in lines[0], lines  # one line for the burst
    assert lines[0].startswith("learner: ignored a malformed message") and "expected 4 frames, got 1" in lines[0]
    learner.complain.at = -1e9  # the next burst gets its line, counting the ones not shown
    rogue.send_multipart([MAGIC, b"zz", b"{}", b""])
    rogue.send_multipart(encode("hb", {"sid": "x", "version": 4}))
    t0 = time.monotonic()
    while not learner.poll(100) and time.monotonic() - t0 < 5:
        pass
    assert len(lines) == 2 and "more malformed messages not shown" in lines[1]
    # the actor side: a "learner" that answers garbage
    lines.clear()
    peer = got[0][0]
    actor_link = ActorLink(f"tcp://127.0.0.1:{port}", log=lines.append)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and not (msgs := learner.poll(50)):
        actor_link.poll()
    learner.sock.send_multipart([msgs[0][0], MAGIC, b"w", b'{"version": 9}', b"junk"])
    t0 = time.monotonic()
    while not lines and time.monotonic() - t0 < 5:
        actor_link.poll()
        time.sleep(0.01)
    assert len(lines) == 1 and lines[0].startswith("actor: ignored a malformed message") and actor_link.weights is None
    assert peer
    with pytest.raises(ValueError, match="expected 4 frames"):
        decode([b"x"])
    rogue.close(0)
    actor_link.close()
    learner.close()


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    from robot_rl.cli import main

    assert main(["rlif", "--run.base", str(tmp_path / "missing"), "--run.out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robot-rl rlif: error:") and "missing" in err[0]
    assert main(["hil-serl", "--run.operator", "reaction_delay_s", "soon", "--run.base", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a number" in err[0]
