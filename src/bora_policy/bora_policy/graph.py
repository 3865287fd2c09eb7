"""The node graph, in one table read by the launch files and by ``bora up`` (so they never drift).

Each entry: the node name (= its section in config/sim.yaml and config/deploy.yaml), the package
and console-script executable, and where it runs: ``sim`` (the simulated graph), ``deploy``
(the real robot graph), ``optional`` (started only when asked, e.g. the trainer). The real
drivers (realsense2_camera x3, franka_ros2, the hand driver) are not ours and are listed in
``DRIVERS`` for the deploy launch file only; the functions below turn the real robot's parameter files
(config/cameras.yaml, franka.yaml, franka_controllers.yaml, hand_driver.yaml) into checked launch inputs
(pure Python, tested without a ROS install).
"""

from __future__ import annotations

import copy
import math
import re
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    module: str
    sim: bool = True
    deploy: bool = True
    optional: bool = False
    description: str = ""
    # supervision (bora up and the launch files): a critical node's exit stops the graph; a respawn node
    # is restarted after a crash with back-off (RESPAWN_*), while the arbiter holds the robot
    critical: bool = False
    respawn: bool = False


# launch_ros respawn_delay / respawn_max_retries of the respawn nodes, and `bora up`'s defaults (ours:
# 2 s lets DDS forget the dead participant's writers; 5 restarts in a row then the graph stops)
RESPAWN_DELAY_S = 2.0
RESPAWN_MAX_RETRIES = 5
# `bora up` sends it to a node that ignored SIGINT and SIGTERM, before SIGKILL; every BORA node hands it to
# faulthandler (bora_policy.common.node.dump_stacks_on_signal), so the log says where the node hung
STACK_DUMP_SIGNAL = signal.SIGUSR1


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "sim_bridge",
        "bora_sim",
        "sim_bridge",
        "bora_sim.nodes.bridge_node",
        sim=True,
        deploy=False,
        description="simulated robot: cameras, arm and hand states, scripted operator, episodes",
        critical=True,
    ),
    NodeSpec(
        "sync",
        "bora_policy",
        "sync_node",
        "bora_policy.nodes.sync_node",
        description="cameras + joint states -> /bora/observation",
        respawn=True,
    ),
    NodeSpec(
        "policy",
        "bora_policy",
        "policy_node",
        "bora_policy.nodes.policy_node",
        description="VLA + residual + critic -> /bora/policy_command",
        respawn=True,
    ),
    NodeSpec(
        "teleop",
        "bora_teleop",
        "teleop_node",
        "bora_teleop.nodes.teleop_node",
        description="command arbiter: takeover blending + safety, the only writer to the drivers",
        critical=True,
    ),
    NodeSpec(
        "trainer",
        "bora_trainer",
        "trainer_node",
        "bora_trainer.nodes.trainer_node",
        optional=True,
        description="online residual training from live topics; writes checkpoints for hot reload",
        respawn=True,
    ),
)

# Real-robot drivers started by launch/deploy.launch.py, all verified against their sources:
#   realsense2_camera_node (IntelRealSense/realsense-ros 4.x; node /<camera_namespace>/<camera_name>),
#   franka_bringup/launch/franka.launch.py (frankarobotics/franka_ros2 >= 1.0), controller_manager's
#   spawner, tf2_ros static_transform_publisher (--x --y --z --roll --pitch --yaw --frame-id
#   --child-frame-id). The hand driver is vendor specific: config/hand_driver.yaml names it (none by default).
DRIVERS = {
    "camera": ("realsense2_camera", "realsense2_camera_node"),
    "franka": ("franka_bringup", "franka.launch.py"),
    "spawner": ("controller_manager", "spawner"),
    "static_tf": ("tf2_ros", "static_transform_publisher"),
}
# config files of the real robot (config/): cameras + extrinsics, franka bring-up + controller, the hand driver
DEPLOY_FILES = ("cameras.yaml", "franka.yaml", "franka_controllers.yaml", "hand_driver.yaml")
# arm controller kinds of config/franka.yaml: (controller type or None = franka.yaml impedance_type,
# command interface, topic suffix, the teleop node's arm_command_type)
ARM_CONTROLLERS = {
    "trajectory": (
        "joint_trajectory_controller/JointTrajectoryController",
        "position",
        "joint_trajectory",
        "trajectory",
    ),
    "forward": ("forward_command_controller/ForwardCommandController", "position", "commands", "forward"),
    "joint_impedance": (None, "effort", "commands", "forward"),
}
_PROFILE = re.compile(r"^\d+[,x]\d+[,x]\d+$")


@dataclass(frozen=True)
class CameraDriver:
    """One realsense2_camera node and its static TF (from config/cameras.yaml)."""

    name: str
    namespace: str
    parameters: dict
    tf_arguments: tuple[str, ...]
    calibrated: bool


def _floats(value, n: int, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{where}: expected {n} numbers, got {value!r}")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {n} numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{where}: expected finite numbers, got {value!r}")
    return out


def static_tf_arguments(xyz, rpy, parent: str, child: str) -> tuple[str, ...]:
    """Arguments of tf2_ros static_transform_publisher for parent -> child (m, rad, fixed-axis roll-pitch-yaw)."""
    x, y, z = _floats(xyz, 3, "extrinsics.xyz")
    r, p, w = _floats(rpy, 3, "extrinsics.rpy")
    if not parent or not child:
        raise ValueError(f"extrinsics: parent and child frames must be non-empty, got {parent!r} -> {child!r}")
    return (
        "--x",
        repr(x),
        "--y",
        repr(y),
        "--z",
        repr(z),
        "--roll",
        repr(r),
        "--pitch",
        repr(p),
        "--yaw",
        repr(w),
        "--frame-id",
        parent,
        "--child-frame-id",
        child,
    )


def camera_drivers(
    cfg: dict, require_serial: bool = True, where: str = "config/cameras.yaml", cameras: tuple[str, ...] | None = None
) -> list[CameraDriver]:
    """The camera nodes of config/cameras.yaml (one section per camera of the graph: ``cameras``, default the
    ``cameras`` of config/graph.yaml), checked."""
    if cameras is None:
        from bora_policy.common.graph_params import load_graph_params

        cameras = load_graph_params().cameras
    if not isinstance(cfg, dict) or set(cfg) != set(cameras):
        got = sorted(cfg) if isinstance(cfg, dict) else cfg
        raise ValueError(f"{where}: expected one section per camera {list(cameras)} (config/graph.yaml), got {got}")
    out = []
    for cam in cameras:
        sec = dict(cfg[cam])
        w = f"{where}: {cam}"
        ext = sec.pop("extrinsics", None)
        if ext is None:
            raise ValueError(f"{w}.extrinsics: missing (parent_frame, xyz, rpy, calibrated)")
        if sec.get("camera_name") != cam:
            raise ValueError(f"{w}.camera_name must be {cam!r} (the section name), got {sec.get('camera_name')!r}")
        ns = sec.get("camera_namespace")
        if not isinstance(ns, str) or not ns:
            raise ValueError(f"{w}.camera_namespace: expected a non-empty string, got {ns!r}")
        serial = sec.get("serial_no", "")
        if not isinstance(serial, str):
            raise ValueError(
                f"{w}.serial_no must be a quoted string (an unquoted number loses leading zeros), got {serial!r}"
            )
        if require_serial and not serial.strip():
            raise ValueError(
                f"{w}.serial_no is empty: set the D435 serial number (`rs-enumerate-devices -s`), or launch "
                "with drivers:=false"
            )
        for key in ("rgb_camera.color_profile", "depth_module.depth_profile"):
            prof = sec.get(key)
            if not isinstance(prof, str) or not _PROFILE.match(prof):
                raise ValueError(f"{w}.{key}: expected 'width,height,fps' (e.g. '640,480,30'), got {prof!r}")
        if sec.get("align_depth.enable") is not True:
            raise ValueError(f"{w}.align_depth.enable must be true (the sync node reads aligned_depth_to_color)")
        if not isinstance(ext, dict):
            raise ValueError(f"{w}.extrinsics: expected a mapping")
        try:
            args = static_tf_arguments(ext.get("xyz"), ext.get("rpy"), ext.get("parent_frame", ""), f"{cam}_link")
        except ValueError as e:
            raise ValueError(f"{w}.{e}") from None
        out.append(CameraDriver(cam, ns, sec, args, bool(ext.get("calibrated", False))))
    return out


def arm_controller(franka: dict, where: str = "config/franka.yaml") -> dict:
    """The arm controller of config/franka.yaml: name, type, interface, topic, the teleop arm_command_type."""
    c = franka.get("controller") if isinstance(franka, dict) else None
    if not isinstance(c, dict):
        raise ValueError(f"{where}: missing section 'controller' (name, kind, joints)")
    kind = c.get("kind")
    if kind not in ARM_CONTROLLERS:
        raise ValueError(f"{where}: controller.kind must be one of {list(ARM_CONTROLLERS)}, got {kind!r}")
    ctype, interface, suffix, command_type = ARM_CONTROLLERS[kind]
    if ctype is None:
        ctype = c.get("impedance_type") or ""
        if "/" not in ctype:
            raise ValueError(
                f"{where}: controller.kind joint_impedance needs controller.impedance_type, the plugin type of "
                "your joint impedance controller (franka_ros2 ships none that takes targets from a topic)"
            )
    name = c.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_]\w*$", name):
        raise ValueError(f"{where}: controller.name must be a ROS name, got {name!r}")
    joints = c.get("joints")
    if not isinstance(joints, list) or len(joints) != 7 or len(set(joints)) != 7:
        raise ValueError(f"{where}: controller.joints must list the 7 arm joints, got {joints!r}")
    robot_type = franka.get("bringup", {}).get("arguments", {}).get("robot_type", "")
    want = [f"{robot_type}_joint{i}" for i in range(1, 8)]
    if joints != want:
        raise ValueError(f"{where}: controller.joints {joints} do not match robot_type {robot_type!r}: expected {want}")
    ns = str(franka.get("bringup", {}).get("arguments", {}).get("namespace") or "").strip("/")
    return {
        "name": name,
        "type": ctype,
        "interface": interface,
        "topic": f"{'/' + ns if ns else ''}/{name}/{suffix}",
        "arm_command_type": command_type,
        "joints": list(joints),
    }


def franka_controllers(franka: dict, base: dict) -> dict:
    """config/franka_controllers.yaml completed with the arm controller of config/franka.yaml."""
    ctrl = arm_controller(franka)
    out = copy.deepcopy(base)
    root = out.setdefault("/**", {})
    cm = root.setdefault("controller_manager", {}).setdefault("ros__parameters", {})
    cm[ctrl["name"]] = {"type": ctrl["type"]}
    params = root.setdefault(ctrl["name"], {}).setdefault("ros__parameters", {})
    params["joints"] = ctrl["joints"]
    if ctrl["type"].startswith("joint_trajectory_controller/"):
        params["command_interfaces"] = [ctrl["interface"]]
        params["state_interfaces"] = ["position", "velocity"]
    elif ctrl["type"].startswith("forward_command_controller/"):
        params["interface_name"] = ctrl["interface"]
    return out


def franka_launch_arguments(
    franka: dict, robot_ip: str = "", controllers_yaml: str = "", use_fake_hardware: str = ""
) -> dict[str, str]:
    """The franka.launch.py arguments of config/franka.yaml (strings), with the launch-time overrides
    (``use_fake_hardware``: "true" / "false", '' = the file's; deploy.launch.py's argument of that name: until
    2026-12-07 it was not declared, so ``use_fake_hardware:=true``, the dry run franka.yaml recommends, was ignored
    and the real robot started)."""
    b = franka.get("bringup") if isinstance(franka, dict) else None
    if not isinstance(b, dict) or not isinstance(b.get("arguments"), dict):
        raise ValueError("config/franka.yaml: missing section bringup.arguments")
    args = {
        k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in b["arguments"].items()
    }
    if robot_ip:
        args["robot_ip"] = robot_ip
    if controllers_yaml:
        args["controllers_yaml"] = controllers_yaml
    if use_fake_hardware:
        if use_fake_hardware.lower() not in ("true", "false"):
            raise ValueError(f"use_fake_hardware must be 'true' or 'false', got {use_fake_hardware!r}")
        args["use_fake_hardware"] = use_fake_hardware.lower()
    if args.get("robot_type") not in ("fr3", "fer", "fp3"):
        raise ValueError(
            f"config/franka.yaml: bringup.arguments.robot_type must be fr3, fer or fp3, got {args.get('robot_type')!r}"
        )
    if not args.get("robot_ip"):
        raise ValueError("config/franka.yaml: bringup.arguments.robot_ip is empty (or give robot_ip:=...)")
    return args


def franka_topics(franka: dict) -> dict[str, str]:
    """Topics the franka bring-up of config/franka.yaml provides (franka.launch.py + the arm controller)."""
    ns = str(franka.get("bringup", {}).get("arguments", {}).get("namespace") or "").strip("/")
    pre = "/" + ns if ns else ""
    return {
        "arm_command": arm_controller(franka)["topic"],
        "joint_states": f"{pre}/franka/joint_states",  # joint_state_broadcaster remapped to franka/joint_states
        "robot_description": f"{pre}/robot_description",  # robot_state_publisher, latched std_msgs/String
    }


def hand_driver(cfg: dict, where: str = "config/hand_driver.yaml") -> dict | None:
    """The hand driver node of config/hand_driver.yaml, or None when none is configured (the default)."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a mapping (package, executable, node_name, parameters, remappings)")
    pkg, exe = cfg.get("package") or "", cfg.get("executable") or ""
    if not pkg and not exe:
        return None
    if not pkg or not exe:
        raise ValueError(f"{where}: give both package and executable (or neither), got {pkg!r} / {exe!r}")
    params, remaps = cfg.get("parameters") or {}, cfg.get("remappings") or {}
    if not isinstance(params, dict) or not isinstance(remaps, dict):
        raise ValueError(f"{where}: parameters and remappings must be mappings")
    return {
        "package": pkg,
        "executable": exe,
        "name": cfg.get("node_name") or "hand_driver",
        "parameters": params,
        "remappings": [(str(k), str(v)) for k, v in remaps.items()],
    }


def resolved_graph_file(path: str, profile: str, control_hz: float = 0.0) -> tuple[str, object]:
    """The launch files' graph file: ``path`` ('' = config/graph.yaml) with its ``profile`` section and a
    ``control_hz`` override (> 0) applied, written to a temporary flat file that every node of the launch reads
    (parameter ``graph_file``); returns (its path, the GraphParams). ``bora up`` does the same."""
    import os
    import tempfile

    from bora_policy.common.graph_params import load_graph_params, write_graph_file

    over = {"control_hz": float(control_hz)} if control_hz > 0 else None
    params = load_graph_params(path or None, profile=profile, overrides=over)
    fd, tmp = tempfile.mkstemp(prefix=f"bora_graph_{profile}_", suffix=".yaml")
    os.close(fd)
    return str(write_graph_file(params, tmp)), params


def nodes_for(mode: str, with_optional: tuple[str, ...] = ()) -> list[NodeSpec]:
    """The nodes of the ``sim`` or ``deploy`` graph, plus the named optional ones."""
    if mode not in ("sim", "deploy"):
        raise ValueError(f"graph: mode must be 'sim' or 'deploy', got {mode!r}")
    out = []
    for n in NODES:
        if not getattr(n, mode):
            continue
        if n.optional and n.name not in with_optional:
            continue
        out.append(n)
    return out
