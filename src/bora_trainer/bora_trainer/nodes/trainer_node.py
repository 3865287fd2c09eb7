"""``trainer_node``: the online trainer as a ROS 2 node (thin wrapper of the one online loop,
:mod:`bora_trainer.online.loop`, fed by the recordings: :mod:`bora_trainer.online.env_ros`).

Watches the recordings directory, ingests new episodes into the on-disk online buffer, runs the
residual RLPD updates and announces every checkpoint on ``/bora/checkpoint``
(bora_msgs/CheckpointInfo: path, sha256, round, update_step, kind; the path is ``residual.safetensors``
in round 1 and the multi-round checkpoint directory from round 2 on, with the sha256 of its last
``residual_R.safetensors``), which the policy node hot-reloads after checking the sha256. Rounds
(Algorithm 1: freeze, fold, fresh residual) are managed by :class:`bora_trainer.online.loop.OnlineLoop`.
With ``live:=true`` it also subscribes to the BORA topics itself and records them (crash-safe MCAP) into
``<recordings>/live_<date-time>``, the directory it watches, so live data and bags take one path; from round 2
on, each round into its own ``live_<date-time>_rNN`` (the earlier bags are closed and read no more). The
recording starts before the online loop is built (loading the buffers takes a while), so a restarted trainer
records the episodes the robot runs during its start-up and ingests them with the earlier recordings. An episode
that ended while no process recorded (the crash, the respawn delay) is known from the latched outcomes of the
bridge or the teleop (``episode_ended_topic``) and skipped, so the round gate does not wait for it
(bora_trainer/online/episode_ends.py).

Parameters (ROS ``-p name:=value`` or the same-named CLI options): ``config_file`` (YAML with a
``trainer`` section = :class:`bora_trainer.online.config.TrainerConfig`, e.g. config/trainer.yaml),
``recordings``, ``state_dir``, ``live``, ``checkpoint_topic`` (/bora/checkpoint), ``max_seconds``
(0 = run until stopped; for tests and batch jobs), ``exit_when_idle`` (stop once the update
budget is reached and nothing new arrived for one poll), ``episode_gate_topic`` (empty = none;
std_msgs/UInt32, transient local: the highest episode id the simulated robot may start, so each round
holds exactly ``episodes_per_round`` episodes and the robot waits at a round boundary until the next
round's first checkpoint is in use by the policy, read from ``policy_diagnostics_topic``, or
``gate_timeout_s`` passed: bora_trainer/online/rounds.py), ``episode_ended_topic`` (/bora/episode/ended, live
only; empty: off).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainer_node", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", dest="config_file", default="", help="YAML with a 'trainer' section")
    p.add_argument("--recordings", default="", help="directory of rosbag2 recordings to watch")
    p.add_argument("--state-dir", dest="state_dir", default="", help="buffer, ledger and checkpoints")
    p.add_argument("--live", action="store_true", help="also subscribe to the BORA topics and record them")
    p.add_argument("--checkpoint-topic", default="/bora/checkpoint")
    p.add_argument("--max-seconds", type=float, default=0.0)
    p.add_argument("--exit-when-idle", action="store_true")
    p.add_argument("--episode-gate-topic", default="", help="publish the round gate here (empty: none)")
    p.add_argument("--policy-diagnostics-topic", default="/diagnostics")
    p.add_argument("--gate-timeout-s", type=float, default=60.0)
    p.add_argument("--episode-ended-topic", default="/bora/episode/ended")
    return p


def param_specs(args) -> list:
    """The node's parameters (defaults: the same-named CLI options), for ``declare_params``."""
    from bora_policy.common.graph_params import ParamSpec

    return [
        ParamSpec("config_file", args.config_file, "YAML with a 'trainer' section (TrainerConfig)"),
        ParamSpec("recordings", args.recordings, "directory of rosbag2 recordings to watch"),
        ParamSpec("state_dir", args.state_dir, "buffer, ledger and checkpoints"),
        ParamSpec("live", bool(args.live), "also subscribe to the BORA topics and record them"),
        ParamSpec("checkpoint_topic", args.checkpoint_topic, "topic: announced checkpoints (latched)"),
        ParamSpec("max_seconds", float(args.max_seconds), "stop after this long (s); 0: until stopped",
                  range=(0.0, 1e9)),
        ParamSpec("exit_when_idle", bool(args.exit_when_idle), "stop once the update budget is reached and idle"),
        ParamSpec("episode_gate_topic", args.episode_gate_topic, "topic: the round gate (UInt32, latched); '': none"),
        ParamSpec("policy_diagnostics_topic", args.policy_diagnostics_topic, "topic: the policy's /diagnostics"),
        ParamSpec("gate_timeout_s", float(args.gate_timeout_s), "open a round after this long without the policy (s)",
                  range=(0.0, 86400.0)),
        ParamSpec("episode_ended_topic", args.episode_ended_topic,
                  "topic: the bridge's latched outcomes (live: episodes that ended while nothing recorded; '': off)"),
    ]


class RosLogHandler(logging.Handler):
    """A ``logging`` handler that writes each record to a ROS logger at its level (INFO, WARNING, ERROR)."""

    def __init__(self, ros_logger):
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        # one call site per severity: rclpy keys its logging context by the calling line and raises ValueError
        # when one line logs at two severities (it crashed the trainer at its first warning after an info)
        try:
            msg = f"[{record.name}] {record.getMessage()}"
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(msg)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(msg)
            else:
                self.ros_logger.info(msg)
        except Exception:  # noqa: BLE001 - a log line must never stop the trainer (logging's own convention)
            self.handleError(record)


def route_library_logs(ros_logger, name: str = "bora_trainer") -> None:
    """Send the library's ``logging`` records (the online loop's ingest, deferral and round messages, INFO and
    up) to the node's ROS logger, so they reach the console and the graph's log like the node's own; without
    it Python shows WARNING and up only, unformatted."""
    lib = logging.getLogger(name)
    lib.handlers = [h for h in lib.handlers if not isinstance(h, RosLogHandler)] + [RosLogHandler(ros_logger)]
    lib.setLevel(logging.INFO)
    lib.propagate = False


def _watch_ends(node, args, wait_s: float):
    """Live mode: the bridge's latched outcomes (transient local, the last ``ENDED_DEPTH``: also those published
    before this process began), for the episodes that ended while nothing recorded them
    (:class:`bora_trainer.online.episode_ends.EpisodeEnds`, given to the loop's source)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent
    from bora_trainer.online.episode_ends import ENDED_DEPTH, EpisodeEnds

    ends = EpisodeEnds(wait_s)
    qos = QoSProfile(depth=ENDED_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(EpisodeEvent, args.episode_ended_topic,
                             lambda m: ends.event(m.session_id, m.episode_id, m.kind), qos)
    return ends


def _round_gate(node, args, qos):
    """Publisher of the round gate (``loop.episode_gate``, closed until the policy confirms a new
    round's checkpoint): returns ``publish(loop)``, called after every loop step."""
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import UInt32

    from bora_trainer.online.rounds import RoundGate

    pub = node.create_publisher(UInt32, args.episode_gate_topic, qos)
    seen = {"policy_version": None, "gate": None}  # None: the policy has not reported yet
    gate = RoundGate(timeout_s=float(args.gate_timeout_s))

    def on_diag(msg) -> None:  # runs on the executor thread: one str assignment
        for st in msg.status:
            if st.name.startswith("bora/policy"):
                for kv in st.values:
                    if kv.key == "residual_version":
                        seen["policy_version"] = kv.value

    node.create_subscription(DiagnosticArray, args.policy_diagnostics_topic, on_diag, 10)

    def publish(loop) -> None:
        ck = loop.last_checkpoint
        expected = ck.sha256[:16] if ck is not None and ck.round == loop.round else ""
        n_timed_out = len(gate.timed_out)
        open_ = gate.is_open(loop.round, expected, seen["policy_version"], time.monotonic())
        if len(gate.timed_out) > n_timed_out:
            node.get_logger().warning(
                f"trainer: the policy did not report round {loop.round}'s residual {expected or '(any)'} "
                f"within {gate.timeout_s:g} s; opening the round anyway"
            )
        value = loop.episode_gate(open_)
        if value != seen["gate"]:
            seen["gate"] = value
            pub.publish(UInt32(data=int(value)))
            node.get_logger().info(
                f"trainer: episode gate {value} (round {loop.round}: {loop.in_round}/"
                f"{loop.cfg.episodes_per_round} episodes{'' if open_ else ', waiting for the policy'})"
            )

    return publish


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_policy.common.node import declare_graph_params, declare_params, ros_session, start_main

    # the shared start/shutdown (common/node.py): SIGINT / SIGTERM set session.stop; the node and the context
    # are destroyed last, after the spin thread, the executor and the recording (order below)
    lifecycle = contextlib.ExitStack()
    session = lifecycle.enter_context(ros_session("bora_trainer", ["trainer_node", *ros_args]))
    node = session.node

    def declare() -> int:  # the ROS parameters (their defaults: the CLI options), with descriptors
        declare_graph_params(node)
        for name, value in declare_params(node, param_specs(args)).items():
            setattr(args, name, value)
        return 0

    if start_main(declare):
        lifecycle.close()
        return 2
    from bora_trainer.online.config import load_trainer_config

    cfg = load_trainer_config(args.config_file, args.recordings, args.state_dir)
    log = node.get_logger()
    route_library_logs(log)

    from bora_msgs.msg import CheckpointInfo

    qos = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    pub = node.create_publisher(CheckpointInfo, args.checkpoint_topic, qos)

    def announce(a) -> None:
        msg = CheckpointInfo(
            path=a.path, sha256=a.sha256, round=int(a.round), update_step=int(a.update_step), kind=a.kind
        )
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        log.info(f"checkpoint {a.path} (round {a.round}, update {a.update_step}, sha256 {a.sha256[:12]})")

    # the recording and the subscriptions first, and the executor spinning, before the loop is built (it loads the
    # buffers and rebases them: seconds to minutes): a restarted trainer records what the robot runs meanwhile
    recorder = None
    if args.live:
        from bora_trainer.data import bag_schema as S
        from bora_trainer.nodes.recorder_node import BagRecorder, make_subscriptions

        specs = [s for s in S.load_preset(groups=["bora"]) if s.topic in S.TOPIC_TYPES]
        out = Path(cfg.recordings) / f"live_{time.strftime('%Y%m%d_%H%M%S')}"
        recorder = BagRecorder(out, specs)
        make_subscriptions(node, recorder, specs)
        log.info(f"trainer: recording live topics into {out}")

    # the floor: the outcome on /bora/episode must reach the recording before the latched copy may count (ours)
    ends = None
    if args.live and args.episode_ended_topic:
        ends = _watch_ends(node, args, max(cfg.late_message_wait_s, 1.0))
    publish_gate = _round_gate(node, args, qos) if args.episode_gate_topic else (lambda _loop: None)

    # one executor thread (recording callbacks): rclpy's MultiThreadedExecutor busy-loops holding the GIL
    # (ros2/rclpy#1452), which would slow the updates running on the main thread
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = session.stop

    def spin_until_stopped() -> None:
        # our own loop, not executor.spin(): Executor.shutdown() destroys the guard condition a spinning
        # thread is waiting on (rclpy does not wait for it), which can abort the process at Ctrl-C
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    spin = threading.Thread(target=spin_until_stopped, daemon=True)
    spin.start()

    loop = None
    try:
        from bora_trainer.online.env_ros import ros_loop

        loop = ros_loop(cfg, announce=announce)
        loop.source.episode_ends = ends
        log.info(
            f"trainer: {loop.num_episodes} episodes, buffer {len(loop.online)}, resumed at update "
            f"{loop.update_step}, round {loop.round}"
        )
        print(json.dumps({"event": "started", **loop.status()}), flush=True)
        if loop.last_checkpoint is not None:
            announce(loop.last_checkpoint)  # a policy node that missed it while we were down
        publish_gate(loop)
        t_end = time.monotonic() + float(args.max_seconds) if float(args.max_seconds) > 0 else None
        rolled = loop.round
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            info = loop.step(should_stop=stop.is_set, max_updates=200)
            if recorder is not None and loop.round > rolled:
                # a new round: every episode of the last one is ingested and the gate is closed until the policy
                # confirms the new residual, so no episode is running. Its bag is closed and is read no more; the
                # live bag holds this round only (before, every poll re-read the whole session's recording)
                rolled = loop.round
                recorder.roll(out.parent / f"{out.name}_r{loop.round:02d}")
                log.info(f"trainer: round {loop.round}: recording live topics into {recorder.path}")
            publish_gate(loop)
            if info["updates"] == 0:
                if (
                    args.exit_when_idle
                    and info["ingested"] == 0
                    and loop.update_step >= loop.update_budget()
                    and loop.num_episodes > 0
                ):
                    break
                stop.wait(cfg.poll_interval_s)
    finally:
        # order matters: no callback may run (and write to the recorder, or use the node) once they are
        # closed. Stop the spin thread (its callbacks run on it), then the executor, then
        # close the recording (every message received so far is in it), then the node and the context.
        stop.set()
        spin.join(timeout=5.0)
        executor.shutdown(timeout_sec=10.0)
        if recorder is not None:
            recorder.close()
        if loop is not None:
            print(json.dumps({"event": "stopped", **loop.status()}), flush=True)
        lifecycle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
