"""Real-robot BORA graph: realsense2_camera x3 + camera extrinsics, franka_ros2 bring-up + the arm controller,
the hand driver (if configured), then sync, policy, teleop (the only writer to the drivers), optionally the
trainer and RViz.

`ros2 launch bora_policy deploy.launch.py [vla_path:=DIR] [robot_ip:=172.16.0.2] [use_fake_hardware:=true]
[trainer:=true] [rviz:=false]` (RViz starts by default; vla_path, residual_path, critic_path left out keep
deploy.yaml's policy values). trainer:=true starts the online trainer with config/trainer.yaml
(trainer_config:=FILE for another) and adds its state_dir to the policy's checkpoint_roots, so the policy
accepts the checkpoints it announces (launch_nodes.node_parameters, as `bora up --with trainer`).
DDS stays on this machine (LOCALHOST) unless ROS_AUTOMATIC_DISCOVERY_RANGE is exported (SUBNET for a
multi-PC deployment).
Everything comes from parameter files in config/ (installed to share/bora_policy/config):
  params_file             deploy.yaml: our nodes (bora_policy.graph.NODES, the table `bora up` reads too)
  cameras_file            cameras.yaml: realsense2_camera parameters per camera + extrinsics (static TF)
  franka_file             franka.yaml: franka.launch.py arguments + the arm controller choice
  franka_controllers_file franka_controllers.yaml: ros2_control controllers (completed from franka.yaml)
  hand_driver_file        hand_driver.yaml: the hand driver node (none by default)
The files are read and checked when the launch starts (bora_policy.graph: clear errors for an empty camera
serial, a malformed profile, a controller that does not match the teleop's arm_command_type/topic, ...).
drivers:=false starts only our nodes (e.g. against drivers started by hand). Topics: docs/interfaces.md.
"""

import os
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from bora_policy.graph import (
    DRIVERS,
    arm_controller,
    camera_drivers,
    franka_controllers,
    franka_launch_arguments,
    hand_driver,
    resolved_graph_file,
)
from bora_policy.launch_nodes import our_nodes
from launch import LaunchDescription

CONFIG_FILES = {
    "params_file": ("deploy.yaml", "parameters of our nodes (one section per node)"),
    "cameras_file": ("cameras.yaml", "realsense2_camera parameters and extrinsics per camera"),
    "franka_file": ("franka.yaml", "franka_ros2 bring-up arguments and the arm controller choice"),
    "franka_controllers_file": ("franka_controllers.yaml", "ros2_control controllers of the arm"),
    "hand_driver_file": ("hand_driver.yaml", "the hand driver node (none by default)"),
}


def _load(context, arg: str) -> tuple[dict, str]:
    path = LaunchConfiguration(arg).perform(context)
    with open(path) as f:
        return yaml.safe_load(f) or {}, path


def _drivers(context):
    """The driver actions, built from the config files when the launch starts (OpaqueFunction)."""
    actions = []
    cams, _ = _load(context, "cameras_file")
    cam_pkg, cam_exe = DRIVERS["camera"]
    tf_pkg, tf_exe = DRIVERS["static_tf"]
    _, graph = resolved_graph_file(LaunchConfiguration("graph_file").perform(context), "deploy")
    for cam in camera_drivers(cams, require_serial=True, cameras=graph.cameras):
        # a serial number is a string parameter even when it is all digits (launch_ros would infer an int)
        params = {**cam.parameters, "serial_no": ParameterValue(cam.parameters["serial_no"], value_type=str)}
        actions.append(
            Node(
                package=cam_pkg,
                executable=cam_exe,
                name=cam.name,
                namespace=cam.namespace,
                parameters=[params],
                output="screen",
                emulate_tty=True,
            )
        )
        actions.append(
            Node(package=tf_pkg, executable=tf_exe, name=f"{cam.name}_extrinsics", arguments=list(cam.tf_arguments))
        )
        if not cam.calibrated:
            actions.append(
                LogInfo(msg=f"WARNING: config/cameras.yaml {cam.name}.extrinsics is not calibrated (placeholder pose)")
            )

    franka, franka_path = _load(context, "franka_file")
    ctrl = arm_controller(franka)
    deploy, _ = _load(context, "params_file")
    teleop = (deploy.get("teleop") or {}).get("ros__parameters", {})
    if (teleop.get("arm_command_type"), teleop.get("arm_command_topic")) != (ctrl["arm_command_type"], ctrl["topic"]):
        raise RuntimeError(
            f"teleop arm_command_type/arm_command_topic = {teleop.get('arm_command_type')!r}/"
            f"{teleop.get('arm_command_topic')!r} do not match the arm controller of {franka_path} "
            f"({ctrl['arm_command_type']!r}/{ctrl['topic']!r})"
        )
    base, _ = _load(context, "franka_controllers_file")
    tmp = tempfile.NamedTemporaryFile("w", prefix="bora_franka_controllers_", suffix=".yaml", delete=False)
    with tmp:
        yaml.safe_dump(franka_controllers(franka, base), tmp, sort_keys=False)
    args = franka_launch_arguments(
        franka, robot_ip=LaunchConfiguration("robot_ip").perform(context), controllers_yaml=tmp.name,
        use_fake_hardware=LaunchConfiguration("use_fake_hardware").perform(context),
    )
    franka_pkg, franka_launch = DRIVERS["franka"]
    actions.append(
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                os.path.join(get_package_share_directory(franka_pkg), "launch", franka_launch)
            ),
            launch_arguments=args.items(),
        )
    )
    sp_pkg, sp_exe = DRIVERS["spawner"]
    actions.append(
        Node(package=sp_pkg, executable=sp_exe, namespace=args.get("namespace", ""), arguments=[ctrl["name"]])
    )

    hand_cfg, hand_path = _load(context, "hand_driver_file")
    hand = hand_driver(hand_cfg, where=hand_path)
    if hand is None:
        actions.append(LogInfo(msg=f"no hand driver configured in {hand_path}: start yours (see that file)"))
    else:
        actions.append(
            Node(
                package=hand["package"],
                executable=hand["executable"],
                name=hand["name"],
                parameters=[hand["parameters"]],
                remappings=hand["remappings"],
                output="screen",
            )
        )
    return actions


def _trainer_wiring(*args, **kwargs):
    """bora_trainer.online.config.trainer_wiring (the trainer's config and state_dir, the policy's checkpoint roots),
    imported only with trainer:=true: bora_policy's own modules never import bora_trainer."""
    from bora_trainer.online.config import trainer_wiring

    return trainer_wiring(*args, **kwargs)


def generate_launch_description():
    share = FindPackageShare("bora_policy")
    actions = [
        DeclareLaunchArgument(arg, default_value=PathJoinSubstitution([share, "config", name]), description=desc)
        for arg, (name, desc) in CONFIG_FILES.items()
    ]
    actions += [
        # the policy's paths: '' keeps params_file's policy section (launch_nodes.policy_path_overrides)
        DeclareLaunchArgument(
            "vla_path", default_value="", description="VLA directory (save_vla format; '': params_file's vla_path)"
        ),
        DeclareLaunchArgument(
            "residual_path",
            default_value="",
            description="residual actor checkpoint to start with ('': params_file's residual_path)",
        ),
        DeclareLaunchArgument(
            "critic_path",
            default_value="",
            description="chunk critic for /bora/value ('': params_file's critic_path, whose '' is the critic of "
            "vla_path's run if it has one; 'none': none)",
        ),
        DeclareLaunchArgument(
            "robot_ip", default_value="", description="Franka FCI address (default: franka_file bringup.arguments)"
        ),
        DeclareLaunchArgument(
            "use_fake_hardware",
            default_value="",
            description="'true': ros2_control mock hardware, no robot (the dry run); '': franka_file's value",
        ),
        # DDS on this machine unless the user exported a range (a multi-PC deployment: SUBNET)
        SetEnvironmentVariable(
            "ROS_AUTOMATIC_DISCOVERY_RANGE", os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "LOCALHOST"
        ),
        DeclareLaunchArgument(
            "graph_file", default_value="", description="graph-wide parameters ('': config/graph.yaml, deploy profile)"
        ),
        DeclareLaunchArgument(
            "control_hz", default_value="0", description="override the graph's control_hz (0: the graph file's)"
        ),
        DeclareLaunchArgument("trainer", default_value="false", description="also start the online trainer"),
        DeclareLaunchArgument(
            "trainer_config",
            default_value="",
            description="the trainer's config ('': params_file's trainer.config_file, else config/trainer.yaml); "
            "its state_dir is added to the policy's checkpoint_roots",
        ),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz with config/bora.rviz"),
        DeclareLaunchArgument("drivers", default_value="true", description="start the camera, arm and hand drivers"),
        OpaqueFunction(function=_drivers, condition=IfCondition(LaunchConfiguration("drivers"))),
    ]
    actions.append(
        OpaqueFunction(function=our_nodes, kwargs={"profile": "deploy", "trainer_wiring": _trainer_wiring})
    )
    actions.append(
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz",
            output="screen",
            arguments=["-d", PathJoinSubstitution([share, "rviz", "bora.rviz"])],
            condition=IfCondition(LaunchConfiguration("rviz")),
        )
    )
    return LaunchDescription(actions)
