"""Observation and action terms, defined once: functions of a backend-neutral `RobotState`, used
batched in the env (torch) and on one state in the deploy node (numpy)."""

from robot_rl.terms.actions import ACTIONS, ActionGroup, ActionTerm, ActTerm, register_action
from robot_rl.terms.observations import OBSERVATIONS, ObservationGroup, ObsTerm, register_observation
from robot_rl.terms.state import RobotState, TermContext, make_context

__all__ = ["ACTIONS", "OBSERVATIONS", "ActTerm", "ActionGroup", "ActionTerm", "ObsTerm", "ObservationGroup",
           "RobotState", "TermContext", "make_context", "register_action", "register_observation"]
