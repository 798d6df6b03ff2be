"""Training modules of the policy kinds (torch). The registry is `robot_rl.policy_kinds`."""

from robot_rl.policies.base import ActorCritic, DeterministicActor, EmpiricalNormalization, build_actor_critic

__all__ = ["ActorCritic", "DeterministicActor", "EmpiricalNormalization", "build_actor_critic"]
