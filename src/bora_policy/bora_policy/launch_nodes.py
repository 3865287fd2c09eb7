"""Our nodes as launch actions, shared by launch/sim.launch.py and launch/deploy.launch.py.

Each node of ``bora_policy.graph.NODES`` in the profile (``sim`` or ``deploy``) gets the launch's
``params_file`` and the ONE resolved graph file (config/graph.yaml, or the ``graph_file`` launch argument,
with the profile's section and the ``control_hz`` launch argument applied: ``graph.resolved_graph_file``),
and the same supervision as ``bora up`` (bora_trainer/supervisor.py). launch / launch_ros are imported
inside the functions: only the launch files call them.
"""

from __future__ import annotations

from bora_policy.graph import NODES, RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES, resolved_graph_file

# the policy's path parameters that are also launch arguments (default '': the params file's value)
PATH_ARGS = ("vla_path", "residual_path", "critic_path")


def policy_path_overrides(values: dict[str, str]) -> dict[str, str]:
    """The policy's path launch arguments that override the params file: only the non-empty ones, so an argument
    left at its default ('') keeps the params file's value (config/deploy.yaml ``policy.vla_path`` ...) instead of
    replacing it with ''. Found in review: every default used to override the file's paths."""
    return {k: str(values[k]) for k in PATH_ARGS if str(values.get(k) or "").strip()}


def supervision(spec) -> dict:
    """A crashed respawn node (policy, sync, trainer) is restarted while the arbiter holds the robot; the exit
    of a critical node (the arbiter, the simulated robot) shuts the whole launch down."""
    from launch.actions import Shutdown

    if spec.respawn:
        return {"respawn": True, "respawn_delay": RESPAWN_DELAY_S, "respawn_max_retries": RESPAWN_MAX_RETRIES}
    if spec.critical:
        return {"on_exit": Shutdown(reason=f"safety-critical node {spec.name} exited")}
    return {}


def our_nodes(context, profile: str) -> list:
    """The ``OpaqueFunction`` body: one ``Node`` action per node of the profile, built when the launch starts."""
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    graph_file, _ = resolved_graph_file(
        LaunchConfiguration("graph_file").perform(context),
        profile,
        float(LaunchConfiguration("control_hz").perform(context) or 0.0),
    )
    params = LaunchConfiguration("params_file")
    actions = []
    for spec in NODES:
        if not getattr(spec, profile):
            continue
        overrides = [params, {"graph_file": graph_file}]
        if spec.name == "policy":
            overrides.append(policy_path_overrides({k: LaunchConfiguration(k).perform(context) for k in PATH_ARGS}))
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
