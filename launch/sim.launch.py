"""Simulated BORA graph: the sim bridge instead of the drivers, then sync, policy, teleop (+ trainer, RViz).

`ros2 launch bora_policy sim.launch.py [vla_path:=DIR] [trainer:=true] [rviz:=true]`. The node list
comes from bora_policy.graph (the table `bora up --sim` reads too); parameters from config/sim.yaml.
"""

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bora_policy.graph import NODES, RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES
from launch import LaunchDescription


def supervision(spec) -> dict:
    """The same policy as `bora up` (bora_trainer/supervisor.py): a crashed respawn node (policy, sync,
    trainer) is restarted while the arbiter holds the robot; the exit of a critical node (the arbiter,
    the simulated robot) shuts the whole launch down."""
    if spec.respawn:
        return {"respawn": True, "respawn_delay": RESPAWN_DELAY_S, "respawn_max_retries": RESPAWN_MAX_RETRIES}
    if spec.critical:
        return {"on_exit": Shutdown(reason=f"safety-critical node {spec.name} exited")}
    return {}


def generate_launch_description():
    params = LaunchConfiguration("params_file")
    actions = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("bora_policy"), "config", "sim.yaml"]),
            description="parameter file (one section per node)",
        ),
        DeclareLaunchArgument("vla_path", default_value="", description="VLA directory (save_vla format)"),
        DeclareLaunchArgument(
            "residual_path", default_value="", description="residual actor checkpoint to start with"
        ),
        DeclareLaunchArgument(
            "critic_path",
            default_value="",
            description="chunk critic for /bora/value ('': the critic of vla_path's run if it has one; 'none': none)",
        ),
        DeclareLaunchArgument("trainer", default_value="false", description="also start the online trainer"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/bora.rviz"),
        # DDS on loopback unless the user set otherwise (multi-PC deployments export SUBNET).
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
    ]
    for spec in NODES:
        if not spec.sim:
            continue
        overrides = [params]
        if spec.name == "policy":
            overrides.append(
                {
                    "vla_path": LaunchConfiguration("vla_path"),
                    "residual_path": LaunchConfiguration("residual_path"),
                    "critic_path": LaunchConfiguration("critic_path"),
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
                **supervision(spec),
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
