"""Simulated BORA graph: the sim bridge instead of the drivers, then sync, policy, teleop (+ trainer, RViz).

`ros2 launch bora_policy sim.launch.py [vla_path:=DIR] [trainer:=true] [rviz:=true]`. The node list
comes from bora_policy.graph (the table `bora up --sim` reads too); parameters from config/sim.yaml.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bora_policy.graph import NODES, RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES, resolved_graph_file
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


def _our_nodes(context):
    """Our nodes (bora_policy.graph.NODES), each reading the one resolved graph file (config/graph.yaml with the
    sim profile and control_hz:=, bora_policy.graph.resolved_graph_file), built when the launch starts."""
    graph_file, _ = resolved_graph_file(
        LaunchConfiguration("graph_file").perform(context),
        "sim",
        float(LaunchConfiguration("control_hz").perform(context) or 0.0),
    )
    params = LaunchConfiguration("params_file")
    actions = []
    for spec in NODES:
        if not spec.sim:
            continue
        overrides = [params, {"graph_file": graph_file}]
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
    return actions


def generate_launch_description():
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
        DeclareLaunchArgument(
            "graph_file", default_value="", description="graph-wide parameters ('': config/graph.yaml)"
        ),
        DeclareLaunchArgument(
            "control_hz", default_value="0", description="override the graph's control_hz (0: the graph file's)"
        ),
        DeclareLaunchArgument("trainer", default_value="false", description="also start the online trainer"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/bora.rviz"),
        # DDS on loopback unless the user set otherwise (multi-PC deployments export SUBNET).
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
    ]
    actions.append(OpaqueFunction(function=_our_nodes))
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
