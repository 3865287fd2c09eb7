"""Real-robot BORA graph: realsense2_camera x3, franka_ros2 bring-up, the hand driver, then sync, policy,
teleop (the only writer to the drivers), optionally the trainer and RViz.

`ros2 launch bora_policy deploy.launch.py vla_path:=DIR robot_ip:=172.16.0.2 [trainer:=true] [rviz:=true]`.
Our nodes come from bora_policy.graph (the table `bora up` reads too); parameters from config/deploy.yaml.
Camera serial numbers are launch arguments; topics follow docs/interfaces.md (/cameras/<cam>/...).
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bora_policy.graph import CAMERAS, DRIVERS, NODES
from launch import LaunchDescription


def generate_launch_description():
    params = LaunchConfiguration("params_file")
    actions = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("bora_policy"), "config", "deploy.yaml"]),
            description="parameter file (one section per node)",
        ),
        DeclareLaunchArgument("vla_path", description="VLA directory (save_vla format)"),
        DeclareLaunchArgument(
            "residual_path", default_value="", description="residual actor checkpoint to start with"
        ),
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.2", description="Franka controller IP"),
        DeclareLaunchArgument("trainer", default_value="false", description="also start the online trainer"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz with config/bora.rviz"),
        DeclareLaunchArgument(
            "drivers", default_value="true", description="start the camera, arm and hand drivers"
        ),
    ]
    cam_pkg, cam_exe = DRIVERS["camera"]
    for cam in CAMERAS:
        actions.append(
            DeclareLaunchArgument(
                f"{cam}_serial", default_value="", description=f"serial of the {cam} camera"
            )
        )
        actions.append(
            Node(
                package=cam_pkg,
                executable=cam_exe,
                name="camera",
                namespace=f"cameras/{cam}",
                output="screen",
                parameters=[
                    {
                        "serial_no": LaunchConfiguration(f"{cam}_serial"),
                        "camera_name": cam,
                        "align_depth.enable": True,
                        "enable_sync": True,
                        "rgb_camera.color_profile": "640,480,30",
                        "depth_module.depth_profile": "640,480,30",
                    }
                ],
                condition=IfCondition(LaunchConfiguration("drivers")),
            )
        )
    franka_pkg, franka_launch = DRIVERS["franka"]
    actions.append(
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([FindPackageShare(franka_pkg), "launch", franka_launch])
            ),
            launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "load_gripper": "false"}.items(),
            condition=IfCondition(LaunchConfiguration("drivers")),
        )
    )
    hand_pkg, hand_exe = DRIVERS["hand"]
    actions.append(
        Node(
            package=hand_pkg,
            executable=hand_exe,
            name="hand_driver",
            parameters=[params],
            output="screen",
            condition=IfCondition(LaunchConfiguration("drivers")),
        )
    )
    for spec in NODES:
        if not spec.deploy:
            continue
        overrides = [params]
        if spec.name == "policy":
            overrides.append(
                {
                    "vla_path": LaunchConfiguration("vla_path"),
                    "residual_path": LaunchConfiguration("residual_path"),
                }
            )
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                parameters=overrides,
                output="screen",
                emulate_tty=True,
                condition=IfCondition(LaunchConfiguration(spec.name)) if spec.optional else None,
            )
        )
    actions.append(
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz",
            output="screen",
            arguments=["-d", PathJoinSubstitution([FindPackageShare("bora_policy"), "rviz", "bora.rviz"])],
            condition=IfCondition(LaunchConfiguration("rviz")),
        )
    )
    return LaunchDescription(actions)
