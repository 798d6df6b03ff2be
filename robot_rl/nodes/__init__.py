"""Deployment nodes: run an exported policy on a robot behind the safety layer.

Each module is a ROS 2 node runnable as ``python -m robot_rl.nodes.<name> --ros-args -p k:=v``
(and through ``launch/deploy.launch.xml``):

* :mod:`robot_rl.nodes.policy`: artifact -> ``policy/joint_command`` at the control period.
* :mod:`robot_rl.nodes.safety`: ``policy/joint_command`` -> safety filter at 1 kHz -> driver
  (``<controller>/commands`` or ``<controller>/joint_trajectory``), ``safety/diagnostics``.
* :mod:`robot_rl.nodes.twin`: the simulated robot (held-out dynamics) speaking ros2_control topics.
* :mod:`robot_rl.nodes.arbiter`: ``policy/joint_command`` + ``teleop/command`` -> the person over
  the policy (clutch, bumpless handover) -> ``arbiter/joint_command``, which the safety node then
  reads (``command_topic``); ``teleop/intervention``, ``teleop/status``, ``teleop/events``.

Data path: twin/robot ``joint_states`` -> policy -> ``policy/joint_command`` -> safety ->
``forward_position_controller/commands`` -> twin/robot. Every topic name is relative, so a graph
runs in a namespace (``-r __ns:=/arm1``, or ``<push-ros-namespace>`` / ``namespace:=`` in the launch
file) next to another one.
"""
