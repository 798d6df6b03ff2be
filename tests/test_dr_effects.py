"""Every DR term every task declares changes what it claims to: driven to the ends of its range
(everything else nominal), it changes the robot's trajectory or the policy's observations
measurably. And a term that cannot have an effect on a task's model is refused with one line."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robot_rl.sim import make_env, make_task
from robot_rl.sim.dr_effects import randomized
from robot_rl.sim.randomization import NOMINAL, DomainRandomization
from robot_rl.sim.task import Task

TASKS = ["iiwa-reach", "panda-reach", "cartpole-swingup", "panda-peg-insert"]
DURATION_S = 2.4  # longer than the longest push interval
N = 4
MEASURABLE = 1e-3  # rad (joint trajectories) or observation units
OBSERVATION_TERMS = {"obs_noise_scale", "obs_bias_scale", "obs_delay_steps", "encoder_bias_rad"}
"""Terms that act on what the policy sees. The others must move the joint trajectories themselves.
(Encoder bias: with relative joint-position actions the controller's offset and the measurement's
cancel in the motion, so in the env it shows in the joint-position observations; on the twin and
a robot it also moves the end effector that forward kinematics of the measured joints reports.)"""
PUSH_TERMS = ("push_interval_s", "push_joint_velocity")


def _expert(env):
    """The task's scripted expert, if it has one: a contact task's friction only acts once its
    peg touches the block, which random actions rarely make happen."""
    if type(env.task).expert is Task.expert:  # the base class's: no scripted expert (it raises)
        return None
    expert = env.task.expert(env, 0)
    expert.reset(env, torch.arange(env.num_envs))
    return expert


def _rollout(task, dr: DomainRandomization):
    env = make_env(task, N, dr=dr, seed=0, nthread=1)
    o = env.reset()
    gen = torch.Generator().manual_seed(1)
    expert = _expert(env)
    qs, obs = [], []
    for _ in range(round(DURATION_S / env.control_dt)):
        a = torch.rand(N, env.num_actions, generator=gen) * 2 - 1 if expert is None else expert.act(env, o)
        o, _, _, _, info = env.step(a)
        if expert is not None and len(info["episode"]["env_ids"]):
            expert.reset(env, info["episode"]["env_ids"])
        qs.append(env.sim.qpos.double().clone())
        obs.append(o["policy"].clone())
    return torch.stack(qs), torch.stack(obs)


def _ends(task, preset: DomainRandomization, name: str) -> list[DomainRandomization]:
    """The nominal model with `name` at each end of `preset`'s range (the other terms a term needs
    to act, such as a payload mass for its position, at their range's upper end)."""
    extra = {}
    if name.startswith("payload_pos"):
        extra["payload_kg"] = (preset.payload_kg[1],) * 2
    if name in PUSH_TERMS:
        extra = {k: getattr(preset, k) for k in PUSH_TERMS}
        return [dataclasses.replace(NOMINAL, **extra)]
    v = getattr(preset, name)
    if isinstance(v, tuple):
        return [dataclasses.replace(NOMINAL, **extra, **{name: (end, end)}) for end in v]
    return [dataclasses.replace(NOMINAL, **extra, **{name: v})]


def _cases():
    for task in TASKS:
        t = make_task(task)
        for mode in ("train", "eval"):
            for name in randomized(t.dr.get(mode)):
                if name == "push_joint_velocity":  # tested together with push_interval_s
                    continue
                yield pytest.param(task, mode, name, id=f"{task}-{mode}-{name}")


@pytest.mark.parametrize("task,mode,name", list(_cases()))
def test_each_dr_term_changes_the_dynamics_or_observations(task, mode, name):
    t = make_task(task)
    ends = _ends(t, t.dr.get(mode), name)
    if len(ends) == 1 or ends[0] == ends[1]:  # one value: compare it with the nominal model
        ends = [ends[0], dataclasses.replace(ends[0], **{name: getattr(NOMINAL, name)})]
        if name in PUSH_TERMS:
            ends[1] = NOMINAL
    (q_a, o_a), (q_b, o_b) = _rollout(task, ends[0]), _rollout(task, ends[1])
    dq = (q_a - q_b).abs().max().item()
    do = (o_a - o_b).abs().max().item()
    effect = do if name in OBSERVATION_TERMS else dq
    if name not in OBSERVATION_TERMS and any(o.func == "joint_effort" for o in t.observations()):
        # a dynamics term also shows in the joint efforts a contact task observes: a payload moved
        # along a hand held vertical changes the torques the servo needs, hardly the held trajectory
        effect = max(dq, do)
    assert effect > MEASURABLE, f"{name} over {ends[0]} .. {ends[1]}: joint trajectories differ by {dq:.2e}, " \
                                f"observations by {do:.2e}"


def test_a_term_without_effect_is_refused():
    iiwa = make_task("iiwa-reach")  # no contacts, no joint friction loss
    with pytest.raises(ValueError, match=r"friction_scale = \(0.5, 1.5\) has no effect: the model has no contacts"):
        make_env(iiwa, 1, dr=dataclasses.replace(NOMINAL, friction_scale=(0.5, 1.5)))
    with pytest.raises(ValueError, match="payload_pos_z_m .* no payload mass"):
        make_env(iiwa, 1, dr=dataclasses.replace(NOMINAL, payload_pos_z_m=(0.0, 0.1)))
    cart = make_task("cartpole-swingup")  # a force-controlled cart
    with pytest.raises(ValueError, match="kp_scale .* not position controlled"):
        make_env(cart, 1, dr=dataclasses.replace(NOMINAL, kp_scale=(0.8, 1.2)))
    with pytest.raises(ValueError, match="gravcomp_error .* no gravity compensation"):
        make_env(cart, 1, dr=dataclasses.replace(NOMINAL, gravcomp_error=(-0.1, 0.1)))


@pytest.mark.parametrize("field,value,match", [
    ("mass_scale", (0.0, 1.0), "mass_scale must be > 0"),
    ("kp_scale", (-1.0, 1.0), "kp_scale must be > 0"),
    ("payload_kg", (-1.0, 0.0), "payload_kg must be non-negative"),
    ("gravcomp_error", (-2.0, 0.0), r"gravcomp_error must lie in \[-1, 1\]"),
    ("encoder_bias_rad", (0.01, 0.0), "min > max"),
])
def test_ranges_outside_physical_sense_are_refused(field, value, match):
    with pytest.raises(ValueError, match=match):
        make_env("iiwa-reach", 1, dr=dataclasses.replace(NOMINAL, **{field: value}))
