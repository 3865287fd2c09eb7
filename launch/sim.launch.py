"""Simulated BORA graph: the sim bridge instead of the drivers, then sync, policy, teleop (+ trainer, RViz).

`ros2 launch bora_policy sim.launch.py [vla_path:=DIR] [trainer:=true [trainer_config:=FILE]] [rviz:=true]`.
The node list comes from bora_policy.graph (the table `bora up --sim` reads too); parameters from config/sim.yaml
(the trainer's from config/trainer.yaml; its state_dir joins the policy's checkpoint_roots: launch_nodes.py).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bora_policy.launch_nodes import our_nodes
from launch import LaunchDescription


def _trainer_wiring(*args, **kwargs):
    """bora_trainer.online.config.trainer_wiring (the trainer's config and state_dir, the policy's checkpoint roots),
    imported only with trainer:=true: bora_policy's own modules never import bora_trainer."""
    from bora_trainer.online.config import trainer_wiring

    return trainer_wiring(*args, **kwargs)


def generate_launch_description():
    actions = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("bora_policy"), "config", "sim.yaml"]),
            description="parameter file (one section per node)",
        ),
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
            "graph_file", default_value="", description="graph-wide parameters ('': config/graph.yaml)"
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
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/bora.rviz"),
        # DDS on loopback, always: the simulated graph never needs another machine
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
    ]
    actions.append(
        OpaqueFunction(function=our_nodes, kwargs={"profile": "sim", "trainer_wiring": _trainer_wiring})
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
