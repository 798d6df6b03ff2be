"""Safety layer: the last stage between a policy and a robot driver (numpy, onnxruntime, and MuJoCo
for the robot's kinematics; no torch).

* :class:`SafetyConfig` / :class:`SafetyFilter`: joint position/velocity/effort limits, command
  rate limit, workspace box, watchdogs on stale commands and state, NaN/Inf and malformed
  command rejection, a latched e-stop, and a risk-triggered backup behaviour; fails closed.
* :class:`CBFConfig` / :class:`CBF` (``robot_rl.safety.cbf``): the CBF-QP stage of the filter
  (scene, self-collision, workspace and joint-limit barriers, DAQP), set by ``SafetyConfig.cbf``;
  :class:`RogueCommander` / :class:`ViolationMonitor` (``robot_rl.safety.rogue``): an adversarial
  commander and constraint-violation labels for measurements and the critic's training.
* the learned safety critic lives in the policy artifact (``robot_rl.safety.critic_artifact``:
  `load_critic`; trained by ``robot-rl train-critic``, ``robot_rl.safety.train_artifact_critic``;
  features in ``robot_rl.safety.critic_features``, shared by training and deployment); recovery
  behaviours in ``robot_rl.safety.recovery``.

Transport-free: a ROS 2 node wraps it (feeds messages in, sends ``tick``'s output out).
"""

from .cbf import CBF, CBFConfig, CBFError
from .config import BACKUP_BEHAVIOURS, ESTOP_ACTIONS, FAULT_ACTIONS, SafetyConfig
from .filter import (
    COMMAND_CLIP_REASONS,
    COMMAND_REJECT_REASONS,
    INTERVENTION_REASONS,
    MODES,
    STATE_REJECT_REASONS,
    STATUS_KEYS,
    SafetyFilter,
)
from .rogue import RogueCommander, ViolationMonitor

__all__ = [
    "BACKUP_BEHAVIOURS",
    "CBF",
    "CBFConfig",
    "CBFError",
    "COMMAND_CLIP_REASONS",
    "COMMAND_REJECT_REASONS",
    "ESTOP_ACTIONS",
    "FAULT_ACTIONS",
    "INTERVENTION_REASONS",
    "MODES",
    "RogueCommander",
    "STATE_REJECT_REASONS",
    "STATUS_KEYS",
    "SafetyConfig",
    "SafetyFilter",
    "ViolationMonitor",
]
