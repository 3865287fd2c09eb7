"""teleop node: the command arbiter, the ONLY writer to the robot drivers (thin rclpy wrapper).

A control loop at the graph's ``control_hz`` (config/graph.yaml;
``bora_policy.common.control_loop.ControlLoop``: its own thread on absolute deadlines, ``SCHED_FIFO``
at ``control_thread_priority`` where permitted; input callbacks and
the tick share one lock) runs :class:`bora_teleop.arbiter.Arbiter` on the latest inputs and
publishes the arm command (``arm_command_type``: ``forward`` = std_msgs/Float64MultiArray for a
ros2_control forward position controller, ``trajectory`` = trajectory_msgs/JointTrajectory with one
point at time_from_start = 1 / control_hz), the hand command (sensor_msgs/JointState), ExecutedCommand,
InterventionEvent (r_int at START, r_rec at RECOVERED) and EpisodeEvent (each START again latched on
``episode_current_topic``, each outcome on ``episode_ended_topic``: bora_policy/common/episode_events.py).

Inputs: /bora/policy_command (JointCommand), /glove/joint_states (human angles, JointState) and
optionally UDP (``udp_port`` > 0; packet format in bora_teleop/glove.py; ``udp_key_file``: HMAC-SHA256
signed packets, required off loopback; ``udp_allowed_sources``: source IPs), /teleop/arm_target,
/franka/joint_states, /hand/joint_states, /bora/takeover (Bool, a person's trigger; a *change* of
value requests or releases), /bora/recovered (Bool; true = the correction completed, task recovered;
once per takeover), /bora/estop (Bool, latched: only the reset service clears it, and only while the
input is false). The sim's scripted operator has its own topics (``operator_*_topic``:
/bora/operator/takeover as a level, /bora/operator/glove, /bora/operator/arm_target,
/bora/operator/recovered); a person's request wins over it (bora_teleop/sources.py).
Every input is validated at the edge (bora_teleop/inputs.py, bora_teleop/glove.py): a bad message or
datagram is dropped, counted, logged (rate-limited, bora_teleop/health.py) and reported on
/diagnostics, whose level is the worst fault of the last ``diagnostics_window_s`` seconds.
Services: /bora/mark_episode (MarkEpisode), /bora/teleop/set_takeover (SetBool),
/bora/teleop/reset_estop (Trigger), /bora/teleop/mark_recovered (Trigger).
Keys (stdin a TTY only): see bora_teleop/events.py. Every name and limit is a parameter; the
defaults are the safe ones (slow velocity limits, 0.2 s watchdog, loopback UDP).
Hand driver: ``hand_driver_file`` (bora_teleop/hand_adapter.py) sets the hand command's message type
(sensor_msgs/JointState or std_msgs/Float64MultiArray) and the driver's joint names and order; hand
joint states are mapped back through it. Joint limits: ``robot_description_file`` (URDF) or
``robot_description_topic`` (latched std_msgs/String, waited for ``robot_description_timeout_s`` at
start; the node refuses to start without it) tighten the YAML limits (bora_teleop/urdf_limits.py).

Run: ``teleop_node --ros-args --params-file config/sim.yaml`` (node name ``teleop``).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from bora_msgs.msg import EpisodeEvent, ExecutedCommand, HelpRequest, InterventionEvent, JointCommand
from bora_msgs.srv import MarkEpisode
from bora_policy.common.control_loop import ArrivalPhaseLock, ControlLoop
from bora_policy.common.episode_events import EpisodeEvents
from bora_policy.common.episode_latch import StartLatch
from bora_policy.common.node import declare_graph_params, declare_params, run_node
from bora_teleop.events import KEY_HELP
from bora_teleop.glove import GloveSample, UdpGloveReceiver
from bora_teleop.glove_auth import is_loopback, load_key
from bora_teleop.health import ERROR, OK, WARN, FaultLog, RateLimitedLog
from bora_teleop.help_wait import HelpWait
from bora_teleop.inputs import MAX_JOINTS, MAX_NAME_LEN, joint_values
from bora_teleop.nodes.teleop_operator import OperatorMixin
from bora_teleop.param_docs import specs
from bora_teleop.params import PARAMS, build_arbiter, build_hand_adapter
from bora_teleop.sources import OPERATOR, PERSON

DIAG_LEVEL = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
HOLD_LEVEL = {"estop": ERROR, "nan": ERROR, "bad_command": ERROR}  # others: WARN
TRANSIENT_HOLDS = ("no_command", "no_state", "episode_start")  # a fault only after TRANSIENT_HOLD_S
TRANSIENT_HOLD_S = 1.0
UDP_FAULT_LEVEL = {"wrong_source": ERROR, "bad_signature": ERROR, "replayed": ERROR, "internal_error": ERROR}


class TeleopNode(OperatorMixin, Node):
    def __init__(self):
        super().__init__("teleop")
        graph = declare_graph_params(self)  # the arbiter runs at the graph's control_hz (config/graph.yaml)
        P = {**declare_params(self, specs(PARAMS)), "control_hz": graph.control_hz}
        self.P = P
        self.rate = graph.control_hz
        self.arb = build_arbiter(P, self._robot_description(P))
        rmap = self.arb.retarget
        self.hand_adapter = build_hand_adapter(P, rmap)
        self._last_takeover_msg: bool | None = None
        self._last_reason = ""
        self._hold_since = 0.0
        self.faults = FaultLog(self._now, float(P["diagnostics_window_s"]))
        self._rl = RateLimitedLog(self._log, self._now, 1.0)
        # recording session (bora_msgs EpisodeEvent.session_id): this run's UUID for the episodes it
        # numbers itself; an episode started by another node (sim bridge) keeps that node's session
        self.session_id = str(uuid.uuid4())
        self._episode_session = self.session_id
        # the executor's callbacks and the control-loop thread share the arbiter: one lock around both
        self._lock = threading.RLock()
        L = self._locked

        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        events_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        stream = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        # publishers: the driver writes
        if P["arm_command_type"] == "forward":
            self.pub_arm = self.create_publisher(Float64MultiArray, P["arm_command_topic"], rel)
        else:
            self.pub_arm = self.create_publisher(JointTrajectory, P["arm_command_topic"], rel)
        hand_type = JointState if self.hand_adapter.message_type.endswith("JointState") else Float64MultiArray
        self.pub_hand = self.create_publisher(hand_type, P["hand_command_topic"], rel)
        self.pub_exec = self.create_publisher(ExecutedCommand, P["executed_topic"], rel)
        self.pub_int = self.create_publisher(InterventionEvent, P["intervention_topic"], events_qos)
        # the episode events it publishes, again latched: START on cur (read too), outcomes on episode_ended_topic
        cur = P["episode_current_topic"]
        self.events = EpisodeEvents(self, EpisodeEvent, P["episode_topic"], cur, P["episode_ended_topic"])
        self.latch = StartLatch()  # the START applied last (bora_policy/common/episode_latch.py)
        self.pub_diag = self.create_publisher(DiagnosticArray, P["diagnostics_topic"], rel)
        # subscriptions (BEST_EFFORT readers match RELIABLE and BEST_EFFORT writers)
        self.create_subscription(JointCommand, P["policy_command_topic"], L(self._on_policy), stream)
        self.create_subscription(JointState, P["arm_joint_states_topic"], L(self._on_arm_state), stream)
        self.create_subscription(JointState, P["hand_joint_states_topic"], L(self._on_hand_state), stream)
        self.create_subscription(JointState, P["glove_topic"], L(self._on_glove), stream)
        self.create_subscription(JointState, P["arm_target_topic"], L(self._on_arm_target), stream)
        self.create_subscription(Bool, P["takeover_topic"], L(self._on_takeover), rel)
        self.create_subscription(Bool, P["recovered_topic"], L(self._on_recovered), rel)
        # the sim's scripted operator: its own topics (a person's request wins, bora_teleop/sources.py)
        self.create_subscription(JointState, P["operator_glove_topic"], L(self._on_operator_glove), stream)
        self.create_subscription(JointState, P["operator_arm_target_topic"], L(self._on_operator_arm_target), stream)
        self.create_subscription(Bool, P["operator_takeover_topic"], L(self._on_operator_takeover), rel)
        self.create_subscription(Bool, P["operator_recovered_topic"], L(self._on_operator_recovered), rel)
        # e-stop: a latched (transient-local) reader gets the last value of a latched publisher, and a
        # volatile best-effort reader matches every other publisher; duplicates are harmless.
        self.create_subscription(Bool, P["estop_topic"], L(self._on_estop), latched)
        self.create_subscription(Bool, P["estop_topic"], L(self._on_estop), stream)
        self.create_subscription(EpisodeEvent, P["episode_topic"], L(self._on_episode), events_qos)
        self.help = HelpWait(bool(P["help_hold_policy"]), float(P["help_wait_timeout_s"]))
        self.create_subscription(HelpRequest, P["help_request_topic"], L(self._on_help_request), rel)
        if cur:
            self.create_subscription(EpisodeEvent, cur, L(self._on_current_episode), latched)
        self.create_service(MarkEpisode, P["mark_episode_service"], L(self._srv_mark_episode))
        self.create_service(SetBool, P["set_takeover_service"], L(self._srv_set_takeover))
        self.create_service(Trigger, P["reset_estop_service"], L(self._srv_reset_estop))
        self.create_service(Trigger, P["mark_recovered_service"], L(self._srv_mark_recovered))

        self.udp = None
        if int(P["udp_port"]) > 0:
            key = load_key(P["udp_key_file"]) if P["udp_key_file"] else None
            self.udp = UdpGloveReceiver(
                rmap.n_human,
                rmap.human_joints,
                P["udp_host"],
                int(P["udp_port"]),
                P["human_timeout_s"],
                clock=self._now,
                key=key,
                allowed_sources=P["udp_allowed_sources"],
                on_fault=self._on_udp_fault,
                dds_domain_id=self.context.get_domain_id(),  # the domain rclpy joined
            ).start()
            self.arb.glove_sources.append(self.udp.latest)
            auth = "HMAC-SHA256 signed packets" if key is not None else "unauthenticated (loopback only)"
            srcs = ", ".join(sorted(self.udp.allowed_sources)) or "any source"
            self.get_logger().info(f"UDP glove receiver on {self.udp.address[0]}:{self.udp.port}: {auth}, from {srcs}")
            if not self.udp.allowed_sources and not is_loopback(P["udp_host"]):
                self.get_logger().warning("udp_allowed_sources is empty: signed packets from any host are accepted")
        self.keys = None
        if P["keyboard"]:
            from bora_teleop.keyboard import KeyReader

            if KeyReader.available():
                self.keys = KeyReader().start()
                self.get_logger().info(KEY_HELP)
            else:  # e.g. under `ros2 launch` (found in review: the keys, the e-stop key included, were silently off)
                self.get_logger().info("keyboard: stdin is not a terminal, the operator keys (t, s, f, e, ...) are "
                                       "OFF; use the /bora/estop topic and the teleop services, or run this node "
                                       "in a terminal (ros2 run bora_teleop teleop_node)")
        self.create_timer(1.0, L(self._diagnostics))
        # tick just after the policy's commands arrive (delay-only: common/control_loop.py, issue 17)
        # (a step of up to 15 % of a period: converges within a few ticks; intervals stay in [1, 1.15] periods)
        self.phase_lock = ArrivalPhaseLock(1.0 / self.rate, max_shift=0.15) if P["phase_lock"] else None
        self.control_loop = ControlLoop(
            1.0 / self.rate,
            L(self._tick),
            name="bora-arbiter",
            on_stall=L(self._on_control_stall),
            priority=int(P["control_thread_priority"]),
        ).start()
        if self.control_loop.realtime_error:
            self.get_logger().warning(
                f"teleop arbiter: {self.control_loop.realtime_error} (control_thread_priority:=0 silences this)"
            )
        self.get_logger().info(
            f"teleop arbiter: {self.rate:g} Hz, arm command '{P['arm_command_type']}' on "
            f"{P['arm_command_topic']}, {len(self.arb.hand_joint_names)} hand joints, "
            f"watchdog {P['watchdog_timeout_s']} s, ramp {P['ramp_time_s']} s, control loop " + self._scheduling()
        )

    # ------------------------------------------------------------------ helpers
    def _locked(self, fn):
        def run(*args):
            with self._lock:
                return fn(*args)

        return run

    def _scheduling(self) -> str:
        loop = self.control_loop
        return f"SCHED_FIFO priority {loop.priority}" if loop.realtime else "normal scheduling"

    def _on_control_stall(self, stall) -> None:
        self._fault("stall", stall.describe(), WARN)

    def _fault(self, kind: str, text: str, level: int = WARN) -> None:
        """A counted fault: recorded for /diagnostics (its level for diagnostics_window_s) and logged,
        rate-limited per kind (suppressed lines are counted and reported, never silent)."""
        self.faults.record(kind, text, level)
        self._rl(kind, "error" if level >= ERROR else "warning", text)

    def _on_udp_fault(self, kind: str, text: str) -> None:  # from the receiver thread
        self._fault(f"udp_{kind}", f"udp glove: {text}", UDP_FAULT_LEVEL.get(kind, WARN))

    def _robot_description(self, P: dict) -> str | None:
        """The URDF text of ``robot_description_topic`` (latched), waited for at start; None if unset."""
        topic = P["robot_description_topic"]
        if not topic:
            return None
        got: list[str] = []
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        sub = self.create_subscription(String, topic, lambda m: got.append(m.data), latched)
        timeout = float(P["robot_description_timeout_s"])
        deadline = self.get_clock().now().nanoseconds * 1e-9 + timeout
        while not got and self.get_clock().now().nanoseconds * 1e-9 < deadline:
            rclpy.spin_once(self, timeout_sec=0.05)
        self.destroy_subscription(sub)
        if not got:
            raise ValueError(
                f"parameter robot_description_topic={topic!r}: no robot description received in {timeout:g} s "
                "(is robot_state_publisher running?); refusing to start without the joint limits"
            )
        self.get_logger().info(f"joint limits tightened to the robot description on {topic}")
        return got[-1]

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _log(self, level: str, text: str) -> None:
        # rclpy forbids changing the severity of one call site, hence one call per level
        if level == "error":
            self.get_logger().error(text)
        elif level == "warning":
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ inputs
    def _on_policy(self, msg: JointCommand) -> None:
        now = self._now()
        try:  # NaN / inf pass here: the safety layer holds on them (reason "nan") and logs an error
            pos, err = joint_values("policy command", msg.joint_names, msg.position, self.arb.joint_names, False), ""
        except ValueError as e:
            pos, err = None, str(e)
        dropped = self.arb.set_policy(pos, now, msg.episode_id, msg.step, msg.chunk_index, error=err)
        if self.phase_lock is not None and not dropped and not err:
            self.phase_lock.on_arrival(time.monotonic())  # the control loop's clock
        if not dropped and msg.session_id and msg.episode_id == self.arb.episode.episode_id:
            if len(msg.session_id) <= MAX_NAME_LEN:  # a recording session UUID (bora_msgs session_id)
                self._episode_session = msg.session_id
        if dropped:
            self._fault("policy_other_episode", dropped, WARN)
        elif err:
            self._fault("policy_malformed", err, ERROR)

    def _values(self, kind: str, what: str, msg: JointState, names: list[str]):
        """The message's positions in ``names`` order, or None (a counted, logged fault)."""
        try:
            return joint_values(what, msg.name, msg.position, names)
        except ValueError as e:
            nonfinite = "non-finite" in str(e)
            context = ""
            if kind.endswith("glove"):
                context = " (during a takeover)" if self.arb.blender.requested else " (outside a takeover)"
            self._fault(f"{kind}_{'nonfinite' if nonfinite else 'malformed'}", f"{e}{context}", WARN)
            return None

    def _on_arm_state(self, msg: JointState) -> None:
        q = self._values("arm_state", "arm joint states", msg, self.arb.arm_joint_names)
        if q is not None:
            self.arb.set_measured(arm=q, stamp=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    def _on_hand_state(self, msg: JointState) -> None:
        if self.hand_adapter.is_identity:
            q = self._values("hand_state", "hand joint states", msg, self.arb.hand_joint_names)
        else:
            try:
                if len(msg.name) > MAX_JOINTS or len(msg.position) > MAX_JOINTS:
                    raise ValueError(f"more than {MAX_JOINTS} joints")
                q = self.hand_adapter.state_to_internal(list(msg.name), msg.position)
                if not np.all(np.isfinite(q)):
                    raise ValueError("field position: non-finite values")
            except ValueError as e:
                self._fault("hand_state_malformed", f"hand joint states: {e}", WARN)
                return
        if q is not None:
            self.arb.set_measured(hand=q, stamp=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    def _glove(self, msg: JointState, source: str) -> None:
        kind, what = ("glove", "glove joint states") if source == PERSON else ("operator_glove", "operator glove")
        angles = self._values(kind, what, msg, self.arb.retarget.human_joints)
        if angles is not None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self.arb.set_glove(GloveSample(angles, 0, stamp, self._now(), "topic"), source)

    def _on_glove(self, msg: JointState) -> None:
        self._glove(msg, PERSON)

    def _on_operator_glove(self, msg: JointState) -> None:
        self._glove(msg, OPERATOR)

    def _on_arm_target(self, msg: JointState) -> None:
        q = self._values("arm_target", "arm target", msg, self.arb.arm_joint_names)
        if q is not None:
            self.arb.set_arm_target(q, self._now(), PERSON)

    def _on_operator_arm_target(self, msg: JointState) -> None:
        q = self._values("operator_arm_target", "operator arm target", msg, self.arb.arm_joint_names)
        if q is not None:
            self.arb.set_arm_target(q, self._now(), OPERATOR)

    # ------------------------------------------------------------------ control tick
    def _tick(self) -> None:
        if not self.context.ok():
            self.control_loop.stop()  # shutting down (SIGINT): the publishers are gone, stop quietly
            return
        t_tick = time.monotonic()
        try:
            self._control_step()
        except Exception as e:  # noqa: BLE001 - never let the arbiter die; nothing is sent this tick
            self._fault("tick_exception", f"control tick failed, nothing sent: {e!r}", ERROR)
        if self.phase_lock is not None:
            self.control_loop.shift(self.phase_lock.correction(t_tick))

    def _control_step(self) -> None:
        if self.keys is not None:
            for ch in self.keys.drain():
                self._handle_key(ch)
        stamp = self.get_clock().now()
        self._help_tick(stamp.nanoseconds * 1e-9)
        r = self.arb.tick(stamp.nanoseconds * 1e-9)
        for kind, reward in r.events:
            self._publish_intervention(kind, reward, r.episode_id, r.step, "operator")
        if r.held and r.hold_reason != self._last_reason:
            level = (
                "error"
                if r.hold_reason in ("nan", "bad_command", "estop")
                else ("info" if r.hold_reason == "episode_over" else "warning")
            )
            self._log(level, f"HOLD ({r.hold_reason}) {r.error}".strip())
        elif r.held and r.hold_reason in ("nan", "bad_command"):
            self._rl("hold_" + r.hold_reason, "error", f"HOLD ({r.hold_reason}) {r.error}".strip())
        elif not r.held and self._last_reason:
            self.get_logger().info(f"hold ({self._last_reason}) cleared")
        if r.held:
            if r.hold_reason != self._last_reason:
                self._hold_since = stamp.nanoseconds * 1e-9
            lasting = stamp.nanoseconds * 1e-9 - self._hold_since >= TRANSIENT_HOLD_S
            if (r.hold_reason not in TRANSIENT_HOLDS or lasting) and r.hold_reason not in ("help_wait", "episode_over"):
                text = f"HOLD ({r.hold_reason}) {r.error}".strip()
                self.faults.record(f"hold_{r.hold_reason}", text, HOLD_LEVEL.get(r.hold_reason, WARN))
        self._last_reason = r.hold_reason if r.held else ""
        if r.command is None:
            return
        arm, hand = r.command[:7], r.command[7:]
        if self.P["arm_command_type"] == "forward":
            self.pub_arm.publish(Float64MultiArray(data=arm.tolist()))
        else:
            traj = JointTrajectory(joint_names=self.arb.arm_joint_names)
            ns = int(round(1e9 / self.rate))
            traj.points = [
                JointTrajectoryPoint(
                    positions=arm.tolist(), time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9)
                )
            ]
            self.pub_arm.publish(traj)
        names, values = self.hand_adapter.command(hand)
        if self.hand_adapter.message_type.endswith("JointState"):
            hm = JointState(name=names, position=values.tolist())
            hm.header.stamp = stamp.to_msg()
            self.pub_hand.publish(hm)
        else:
            self.pub_hand.publish(Float64MultiArray(data=values.tolist()))
        if r.episode_id == 0 and self._exec_held_back(stamp.nanoseconds * 1e-9):
            return  # the driver got its command; the record waits for the episode (episode_wait_s)
        cmd = JointCommand(
            episode_id=r.episode_id,
            session_id=self._episode_session,
            step=r.step,
            chunk_index=r.chunk_index,
            joint_names=self.arb.joint_names,
            position=r.command.tolist(),
        )
        cmd.header.stamp = stamp.to_msg()
        self.pub_exec.publish(
            ExecutedCommand(
                command=cmd,
                is_intervention=r.is_intervention,
                beta=float(r.beta),
                held=r.held,
                hold_reason=r.hold_reason,
            )
        )

    def _exec_held_back(self, now: float) -> bool:
        """No episode known yet: the ExecutedCommand record is not published for ``episode_wait_s`` after
        the first command (counted, logged once), so that none of an episode carries id 0; after that,
        records without an episode are published with id 0 (a graph where nobody started one)."""
        wait = float(self.P["episode_wait_s"])
        if self.arb.started_episode is not None or wait <= 0:
            return False
        self._exec_first_t = getattr(self, "_exec_first_t", now)
        if now - self._exec_first_t >= wait:
            return False
        if not getattr(self, "exec_held_back", 0):
            self.get_logger().info(f"no episode START yet: executed-command records held back up to {wait:g} s")
        self.exec_held_back = getattr(self, "exec_held_back", 0) + 1
        return True

    def _diagnostics(self) -> None:
        self._rl.flush()  # faults suppressed by the rate limit are reported now, as counts
        s = self.arb.safety
        level, text, _ = self.faults.status()
        hold = "estop" if s.estop_latched else self._last_reason
        parts = [f"holding: {hold}"] if hold else []
        if hold:
            level = max(level, HOLD_LEVEL.get(hold, WARN))
        if self.udp is not None and not self.udp.alive:
            level, parts = ERROR, parts + ["UDP glove receiver thread is not running"]
        if text != "ok":
            parts.append(text)
        if self.help.pending is not None:  # the policy asked for help: the operator is wanted
            level, parts = max(level, WARN), parts + ["help requested by the policy"]
        st = DiagnosticStatus(name="bora_teleop: arbiter", hardware_id="teleop")
        st.level, st.message = DIAG_LEVEL[level], "; ".join(parts) or "ok"
        vals = {
            "estop_latched": s.estop_latched,
            "beta": round(self.arb.blender.beta, 4),
            "takeover_requested": self.arb.blender.requested,
            "takeover_owner": self.arb.owner() or "",
            **self._help_values(),
            "episode_id": self.arb.episode.episode_id,
            "dropped_commands": self.arb.dropped_commands,
            # the tick's phase after the policy's commands (target: 10 % of a period; "" = not locked)
            "phase_lock_error_ms": "" if self.phase_lock is None or self.phase_lock.error_s is None
            else round(self.phase_lock.error_s * 1e3, 1),
            **s.counts,
            **{f"fault_{k}": v for k, v in sorted(self.faults.counts.items())},
            "diagnostics_window_s": self.faults.window_s,
            "last_error": self.faults.last_error,
        }
        if self.udp is not None:
            vals.update({f"udp_{k}": v for k, v in self.udp.stats.items()})
            vals.update({"udp_alive": self.udp.alive, "udp_last_error": self.udp.last_error})
            vals["udp_address"] = f"{self.udp.address[0]}:{self.udp.port}"
        st.values = [KeyValue(key=k, value=str(v)) for k, v in vals.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def destroy_node(self):
        loop = getattr(self, "control_loop", None)
        if loop is not None:
            loop.stop()
        keys, udp = getattr(self, "keys", None), getattr(self, "udp", None)
        if keys is not None:
            keys.stop()
        if udp is not None:
            udp.close()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    # bad parameters (out of range, a missing file, no robot description): one line, exit 2, no traceback
    return run_node(TeleopNode, argv)


if __name__ == "__main__":
    sys.exit(main())
