"""Our nodes as launch actions, shared by launch/sim.launch.py and launch/deploy.launch.py.

Each node of ``bora_policy.graph.NODES`` in the profile (``sim`` or ``deploy``) gets the launch's
``params_file`` and the ONE resolved graph file (config/graph.yaml, or the ``graph_file`` launch argument,
with the profile's section and the ``control_hz`` launch argument applied: ``graph.resolved_graph_file``),
and the same supervision as ``bora up`` (bora_trainer/supervisor.py). launch / launch_ros are imported
inside the functions: only the launch files call them.
"""

from __future__ import annotations

from collections.abc import Callable

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


def node_parameters(
    profile: str,
    params_file: str,
    graph_file: str,
    args: dict[str, str],
    trainer: bool,
    default_trainer_config: str = "",
    trainer_wiring: Callable | None = None,
) -> dict[str, list]:
    """The parameter sources of each node of the profile, in launch_ros order (a later one wins): the params file,
    the resolved graph file, then for the policy its non-empty path launch arguments (``policy_path_overrides``).

    With ``trainer`` (the ``trainer:=true`` launch argument): the trainer's ``config_file`` (the ``trainer_config``
    launch argument, else the params file's ``trainer.config_file``, else ``default_trainer_config``) and its
    absolute ``state_dir``, and the policy's ``checkpoint_roots`` with that state_dir in them, both from
    ``trainer_wiring`` = ``bora_trainer.online.config.trainer_wiring``, the function ``bora up --with trainer``
    uses: so the policy accepts the checkpoints the trainer announces. Found in review: the trainer got no
    config_file and wrote to ./runs/online, outside the policy's default roots, so every announced checkpoint was
    refused. The launch files hand the function in (imported only with trainer:=true): bora_policy's own code
    never imports bora_trainer, which depends on it (README "Architecture", bora_trainer/test/test_architecture.py).
    """
    out = {s.name: [params_file, {"graph_file": graph_file}] for s in NODES if getattr(s, profile)}
    paths = policy_path_overrides(args)
    if "policy" in out and paths:
        out["policy"].append(paths)
    if trainer and "trainer" in out:
        if trainer_wiring is None:
            raise ValueError("trainer:=true: the launch file gave no trainer_wiring (bora_trainer.online.config)")
        wired, roots = trainer_wiring(
            params_file,
            *(paths.get(k, "") for k in PATH_ARGS),
            trainer={"config_file": str(args.get("trainer_config") or "")},
            default_config=default_trainer_config,
        )
        out["trainer"].append(wired)
        if "policy" in out:
            out["policy"].append({"checkpoint_roots": roots})
    return out


def our_nodes(context, profile: str, trainer_wiring: Callable | None = None) -> list:
    """The ``OpaqueFunction`` body: one ``Node`` action per node of the profile, built when the launch starts
    (``trainer_wiring``: see :func:`node_parameters`)."""
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    graph_file, _ = resolved_graph_file(
        LaunchConfiguration("graph_file").perform(context),
        profile,
        float(LaunchConfiguration("control_hz").perform(context) or 0.0),
    )
    parameters = node_parameters(
        profile,
        LaunchConfiguration("params_file").perform(context),
        graph_file,
        {k: LaunchConfiguration(k).perform(context) for k in (*PATH_ARGS, "trainer_config")},
        trainer=IfCondition(LaunchConfiguration("trainer")).evaluate(context),
        default_trainer_config=os.path.join(get_package_share_directory("bora_policy"), "config", "trainer.yaml"),
        trainer_wiring=trainer_wiring,
    )
    actions = []
    for spec in NODES:
        if not getattr(spec, profile):
            continue
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                parameters=parameters[spec.name],
                output="screen",
                emulate_tty=True,
                condition=IfCondition(LaunchConfiguration(spec.name)) if spec.optional else None,
                **supervision(spec),
            )
        )
    return actions
