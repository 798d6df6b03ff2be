"""The simulated model of a task: the robot's MJCF, the task's scene, and the sensors every backend
reads the robot state from.

`build_model(task)` loads the robot declared by the task (`robot_rl.robots`), lets the task add its
scene (`task.scene(spec)`: a target marker, a table, objects), and adds

* a `framepos` sensor `frame/<site>` for every frame the task reads: the sites in `task.frames`
  (robot frame names or task sites) and the frames its observation and action terms name;
* a `jointactuatorfrc` sensor `effort/<joint>` for every actuated joint of the robot, when a term
  observes joint efforts (these sensors cost about 12% of the physics time of an arm, so they are
  only added when used).

All backends build from this model, so names, indices and nominal values agree between them.
"""

from __future__ import annotations

import mujoco

from robot_rl.sim.backend import UnsupportedFeature


def add_state_sensors(spec: mujoco.MjSpec, sites, joints) -> None:
    """Add `frame/<site>` and `effort/<joint>` sensors to `spec` (skipping ones that exist)."""
    have = {s.name for s in spec.sensors}
    for site in sites:
        if f"frame/{site}" in have:
            continue
        s = spec.add_sensor()
        s.name = f"frame/{site}"
        s.type = mujoco.mjtSensor.mjSENS_FRAMEPOS
        s.objtype = mujoco.mjtObj.mjOBJ_SITE
        s.objname = site
    for joint in joints:
        if f"effort/{joint}" in have:
            continue
        s = spec.add_sensor()
        s.name = f"effort/{joint}"
        s.type = mujoco.mjtSensor.mjSENS_JOINTACTFRC
        s.objtype = mujoco.mjtObj.mjOBJ_JOINT
        s.objname = joint


def used_frames(task) -> list[str]:
    """Frame names the task reads: `task.frames` and every `frame` (and `hold_frame`) parameter of its terms."""
    names = list(task.frames)
    for term in [*task.observations(), *task.critic_observations(), *task.actions()]:
        names += [term.params[k] for k in ("frame", "hold_frame") if term.params.get(k)]
    return list(dict.fromkeys(names))


def uses_effort(task) -> bool:
    return any(t.func == "joint_effort" for t in [*task.observations(), *task.critic_observations()])


def build_spec(task) -> mujoco.MjSpec:
    robot = task.robot
    spec = robot.load_spec()
    task.scene(spec)
    sites = [robot.frames.get(f, f) for f in used_frames(task)]
    add_state_sensors(spec, sites, robot.joint_names if uses_effort(task) else ())
    return spec


def build_model(task) -> mujoco.MjModel:
    return build_spec(task).compile()


def frame_sensors(model: mujoco.MjModel) -> dict[str, slice]:
    """Site name -> its `frame/<site>` framepos sensor's slice of `sensordata`."""
    out = {}
    for i in range(model.nsensor):
        name = model.sensor(i).name
        if name.startswith("frame/"):
            adr = int(model.sensor_adr[i])
            out[name[len("frame/"):]] = slice(adr, adr + 3)
    return out


def effort_sensors(model: mujoco.MjModel, joints) -> slice | list[int]:
    """Columns of `sensordata` holding the `effort/<joint>` sensors of `joints` (a slice when
    consecutive, so that indexing gives a view)."""
    adr = []
    for j in joints:
        try:
            adr.append(int(model.sensor_adr[model.sensor(f"effort/{j}").id]))
        except KeyError:
            raise UnsupportedFeature(f"joint {j!r} has no `effort/{j}` sensor; build the model with "
                                     "robot_rl.sim.model.build_model") from None
    if adr == list(range(adr[0], adr[0] + len(adr))):
        return slice(adr[0], adr[0] + len(adr))
    return adr
