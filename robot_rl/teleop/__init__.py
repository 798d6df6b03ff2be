"""Teleoperation: devices that produce end-effector or joint commands and a clutch (`device.py`),
the arbiter that gives the person priority over the policy, and the nodes around them."""
