"""``bora up``: start the BORA node graph under a small supervisor (where ``ros2 launch`` is absent).

The node list comes from ``bora_policy.graph`` (the table the launch files read too). Each node is
started as its installed console script (``install/<pkg>/lib/<pkg>/<exe>``; ``python -m <module>``
when not installed) with ``--ros-args --params-file <params> -r __node:=<name>``. Output lines are
prefixed with the node name. A crashed policy, sync or trainer is restarted with back-off (``--respawn-delay``,
``--max-restarts``; ``--no-respawn``: any exit stops the graph) while the teleop arbiter holds the robot
and still takes the operator's takeover and e-stop; when the arbiter or the robot (the sim bridge) exits,
the graph is stopped (bora_trainer/supervisor.py). Then, on Ctrl-C / SIGTERM, or at ``--duration``,
every node is stopped: SIGINT, then SIGTERM, then SIGKILL, each with a deadline. The graph-wide parameters
(control_hz, chunk_size, cameras, residual_scale) come from ``--graph`` (default config/graph.yaml, its ``sim`` or
``deploy`` profile) and ``--control-hz``, resolved into one file that every node reads (parameter ``graph_file``).
DDS stays on loopback
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) and a ``ROS_DOMAIN_ID`` is picked unless set.

    bora up --sim                     # simulated robot + sync + policy + teleop
    bora up --sim --vla RUN/vla --residual RUN/residual.safetensors --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from bora_trainer.supervisor import (  # noqa: F401  (STOP_STEPS re-exported)
    STOP_STEPS,
    RestartPolicy,
    Supervisor,
    die_with_parent_from_env,
)


def repo_root() -> Path | None:
    for base in Path(__file__).resolve().parents:
        if (base / "config").is_dir() and (base / "src").is_dir():
            return base
    return None


def find_config(name: str) -> Path | None:
    """``config/<name>`` of the repository, else of an installed share/bora_policy/config (None if neither)."""
    root = repo_root()
    if root is not None and (root / "config" / name).is_file():
        return root / "config" / name
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        cand = Path(prefix) / "share" / "bora_policy" / "config" / name
        if prefix and cand.is_file():
            return cand
    return None


def default_params(mode: str) -> Path:
    name = "sim.yaml" if mode == "sim" else "deploy.yaml"
    found = find_config(name)
    if found is None:
        raise FileNotFoundError(f"bora up: cannot find config/{name} (pass --params)")
    return found


def find_executable(package: str, executable: str) -> Path | None:
    """``<prefix>/lib/<package>/<executable>`` on AMENT_PREFIX_PATH or in the workspace install/."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    root = repo_root()
    if root is not None:
        prefixes.append(str(root / "install" / package))
    for prefix in prefixes:
        cand = Path(prefix) / "lib" / package / executable
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def node_command(spec, params: Path, extra: list[str]) -> list[str]:
    exe = find_executable(spec.package, spec.executable)
    base = [str(exe)] if exe is not None else [sys.executable, "-m", spec.module]
    return base + ["--ros-args", "--params-file", str(params), "-r", f"__node:={spec.name}"] + extra


def node_available(spec) -> bool:
    if find_executable(spec.package, spec.executable) is not None:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:
        return False


def ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_parser() -> argparse.ArgumentParser:
    from bora_policy.graph import RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES

    p = argparse.ArgumentParser(
        prog="bora up", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--sim", action="store_true", help="the simulated robot (the bridge instead of the drivers)"
    )
    g.add_argument(
        "--deploy",
        action="store_true",
        help="the real-robot graph without its drivers (start those with their own launch files)",
    )
    p.add_argument(
        "--params", type=Path, default=None, help="parameter file (default config/sim.yaml or deploy.yaml)"
    )
    p.add_argument(
        "--vla",
        default="",
        help="VLAPolicy directory or run directory with policy/; default: the params file's, else a "
        "tiny random-init demo VLA (sim only)",
    )
    p.add_argument("--residual", default="", help="residual actor checkpoint (safetensors) to start with")
    p.add_argument("--critic", default="", help="chunk critic checkpoint")
    p.add_argument(
        "--graph",
        type=Path,
        default=None,
        help="graph-wide parameter file (control_hz, chunk_size, cameras, residual_scale; default config/graph.yaml)",
    )
    p.add_argument(
        "--control-hz",
        type=float,
        default=0.0,
        help="override the graph's control_hz for this run (every node: policy, arbiter, sync, simulated robot)",
    )
    p.add_argument(
        "--with",
        dest="with_nodes",
        action="append",
        default=[],
        metavar="NODE",
        help="also start an optional node (e.g. trainer)",
    )
    p.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="NODE",
        help="leave a node out (e.g. teleop: the bridge then takes /bora/policy_command directly)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NODE:NAME:=VALUE",
        help="extra parameter for one node, e.g. policy:replan_steps:=4",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop everything after this many seconds (0: run until Ctrl-C)",
    )
    p.add_argument(
        "--no-respawn",
        action="store_true",
        help="stop the whole graph when any node exits (default: restart a crashed policy, sync or trainer)",
    )
    p.add_argument(
        "--respawn-delay",
        type=float,
        default=RESPAWN_DELAY_S,
        help="seconds before the first restart of a crashed node; doubles per consecutive restart "
        "(as launch_ros respawn_delay)",
    )
    p.add_argument(
        "--respawn-max-delay", type=float, default=30.0, help="cap of the doubling restart delay (s)"
    )
    p.add_argument(
        "--max-restarts",
        type=int,
        default=RESPAWN_MAX_RETRIES,
        help="consecutive restarts of one node before the graph is stopped (as launch_ros "
        "respawn_max_retries; a node that ran 60 s starts a fresh count)",
    )
    p.add_argument(
        "--demo-vla-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bora" / "demo_vla",
        help="where the tiny demo VLA is written",
    )
    return p


def _yaml_param(params: Path, node: str, key: str):
    import yaml

    data = yaml.safe_load(params.read_text()) or {}
    return ((data.get(node) or {}).get("ros__parameters") or {}).get(key)


def _cli_param(extra: list[str], key: str):
    """The value of the last ``-p KEY:=VALUE`` in a node's extra arguments (None if absent)."""
    vals = [a.split(":=", 1)[1] for a in extra if a.startswith(f"{key}:=")]
    return vals[-1] if vals else None


def join_command(env: dict) -> str:
    """The shell line that puts another terminal on this run's DDS graph (its domain is drawn per run)."""
    return (
        f"export ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={env['ROS_AUTOMATIC_DISCOVERY_RANGE']}"
    )


def demo_vla(path: Path, graph=None) -> Path:
    """A tiny random-init VLA around the simulated robot's home pose (bora_sim.scene.ARM_HOME + open hand), with
    the graph's chunk_size and cameras (``graph``: GraphParams, default config/graph.yaml)."""
    import numpy as np

    from bora_policy.common.graph_params import load_graph_params
    from bora_policy.runtime.policy_runner import make_demo_vla
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME

    graph = graph or load_graph_params()
    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    return make_demo_vla(path, home, chunk_size=graph.chunk_size, n_cameras=len(graph.cameras))


def resolve_graph(args, mode: str, run_dir: Path):
    """The graph parameters of this run (``--graph`` or config/graph.yaml, its ``mode`` profile, ``--control-hz``),
    written to ``run_dir/graph.yaml``: the one file every node reads (parameter ``graph_file``)."""
    from bora_policy.common.graph_params import load_graph_params, write_graph_file

    over = {"control_hz": float(args.control_hz)} if args.control_hz > 0 else None
    graph = load_graph_params(args.graph, profile=mode, overrides=over)
    return graph, write_graph_file(graph, run_dir / "graph.yaml")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    die_with_parent_from_env()  # started for a job (bora train online --env ros): stop when that job dies
    run_dir = Path(tempfile.mkdtemp(prefix="bora_up_"))  # the resolved graph file of this run
    try:
        return _run(args, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _run(args, run_dir: Path) -> int:
    from bora_policy.graph import nodes_for

    mode = "deploy" if args.deploy else "sim"
    params = (args.params or default_params(mode)).resolve()
    if not params.is_file():
        print(f"bora up: parameter file {params} does not exist", file=sys.stderr)
        return 2
    from bora_policy.common.graph_params import GraphParamsError

    try:
        graph, graph_file = resolve_graph(args, mode, run_dir)
    except GraphParamsError as e:
        print(f"bora up: --graph / --control-hz: {e}", file=sys.stderr)
        return 2
    specs = [s for s in nodes_for(mode, tuple(args.with_nodes)) if s.name not in args.without]
    missing = [s.name for s in specs if not node_available(s)]
    if missing:
        print(
            f"bora up: node(s) not available in this build, left out: {', '.join(missing)}", file=sys.stderr
        )
        specs = [s for s in specs if s.name not in missing]
    names = {s.name for s in specs}
    # every node reads the same graph file (a node given another control_hz etc. refuses to start)
    extra: dict[str, list[str]] = {s.name: ["-p", f"graph_file:={graph_file}"] for s in specs}
    for item in args.param:
        node, sep, rest = item.partition(":")
        if not sep or ":=" not in rest or node not in extra:
            print(
                f"bora up: --param {item!r} must be NODE:NAME:=VALUE with NODE in {sorted(extra)}",
                file=sys.stderr,
            )
            return 2
        extra[node] += ["-p", rest]
    if "policy" in names:
        vla = args.vla or _yaml_param(params, "policy", "vla_path") or ""
        if not vla:
            if mode != "sim":
                print(
                    "bora up: the deploy graph needs --vla (or policy.vla_path in the params file)",
                    file=sys.stderr,
                )
                return 2
            vla = str(demo_vla(args.demo_vla_dir, graph))
            print(
                f"bora up: no VLA given, using the tiny random-init demo VLA at {vla} "
                "(it does not solve tasks)"
            )
        extra["policy"] += ["-p", f"vla_path:={vla}"]
        if args.residual:
            extra["policy"] += ["-p", f"residual_path:={args.residual}"]
        if args.critic:
            extra["policy"] += ["-p", f"critic_path:={args.critic}"]
        if "trainer" in names:
            # the trainer's config and state_dir and the policy's roots, worked out once (as the launch files do)
            from bora_trainer.config_io import ConfigError
            from bora_trainer.online.config import TRAINER_PATH_PARAMS, trainer_wiring

            given = {k: _cli_param(extra["trainer"], k) or "" for k in TRAINER_PATH_PARAMS}
            try:
                wired, roots = trainer_wiring(
                    params, vla, args.residual, args.critic, given, find_config("trainer.yaml") or ""
                )
            except ConfigError as e:
                print(f"bora up: the trainer's config: {e}", file=sys.stderr)
                return 2
            extra["trainer"] += [a for k, v in wired.items() if v for a in ("-p", f"{k}:={v}")]
            # first, so that a user's --param policy:checkpoint_roots:=... (later on the line) wins
            extra["policy"][:0] = ["-p", f"checkpoint_roots:={json.dumps(roots)}"]
    if mode == "sim" and "sim_bridge" in names and "teleop" not in names:
        # No arbiter: the bridge takes the policy's commands directly (sim only).
        extra["sim_bridge"] += ["-p", "direct_command_topic:=/bora/policy_command"]

    try:
        restart = RestartPolicy(
            respawn=not args.no_respawn,
            delay_s=args.respawn_delay,
            max_delay_s=max(args.respawn_max_delay, args.respawn_delay),
            max_restarts=args.max_restarts,
        )
    except ValueError as e:
        print(f"bora up: --respawn-delay / --max-restarts: {e}", file=sys.stderr)
        return 2
    env = ros_env()
    sup = Supervisor(policy=restart)
    stop = threading.Event()
    reason = {"why": ""}

    def on_signal(signum, _frame) -> None:
        reason["why"] = signal.Signals(signum).name
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rc = 0
    try:
        print(
            f"bora up: {mode} graph, params {params}, ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, "
            f"ROS_AUTOMATIC_DISCOVERY_RANGE={env['ROS_AUTOMATIC_DISCOVERY_RANGE']}",
            flush=True,
        )
        # the domain is per run (loopback rule): other terminals (ros2 bag record, rviz2, ros2 topic) must join it
        print(f"bora up: other terminals join this graph with: {join_command(env)}", flush=True)
        print(
            f"bora up: graph control_hz={graph.control_hz:g} chunk_size={graph.chunk_size} "
            f"cameras={list(graph.cameras)} residual_scale={graph.residual_scale:g} ({graph.source}) -> {graph_file}",
            flush=True,
        )
        for s in specs:
            sup.start(s.name, node_command(s, params, extra[s.name]), env, critical=s.critical, respawn=s.respawn)
        print(
            f"bora up: started {', '.join(f'{n} (pid {p.pid})' for n, p in sup.procs.items())}; "
            + (
                f"restarting {', '.join(s.name for s in specs if s.respawn)} when they crash "
                f"(delay {restart.delay_s:g} s doubling to {restart.max_delay_s:g} s, at most "
                f"{restart.max_restarts} in a row)"
                if restart.respawn
                else "--no-respawn: any exit stops the graph"
            ),
            flush=True,
        )
        t_end = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop.is_set():
            why = sup.poll()
            if why is not None:
                print(f"bora up: {why}", file=sys.stderr, flush=True)
                reason["why"] = why
                rc = 1
                break
            if t_end is not None and time.monotonic() >= t_end:
                reason["why"] = f"duration {args.duration:g} s reached"
                break
            stop.wait(0.2)
    finally:
        print(f"bora up: stopping ({reason['why'] or 'exit'})", flush=True)
        codes = sup.stop_all()
        for s, h in old.items():
            signal.signal(s, h)
    print(f"bora up: stopped; exit codes {codes}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
