"""teleop node: the command arbiter, the ONLY writer to the robot drivers (thin rclpy wrapper).

A control loop at ``rate_hz`` (``bora_policy.runtime.control_loop.ControlLoop``: its own thread on
absolute deadlines, ``SCHED_FIFO`` at ``control_thread_priority`` where permitted; input callbacks and
the tick share one lock) runs :class:`bora_teleop.arbiter.Arbiter` on the latest inputs and
publishes the arm command (``arm_command_type``: ``forward`` = std_msgs/Float64MultiArray for a
ros2_control forward position controller, ``trajectory`` = trajectory_msgs/JointTrajectory with one
point at time_from_start = 1 / rate_hz), the hand command (sensor_msgs/JointState), ExecutedCommand,
InterventionEvent (r_int at START, r_rec at RECOVERED) and EpisodeEvent.

Inputs: /bora/policy_command (JointCommand), /glove/joint_states (human angles, JointState) and
optionally UDP (``udp_port`` > 0; packet format in bora_teleop/glove.py), /teleop/arm_target,
/franka/joint_states, /hand/joint_states, /bora/takeover (Bool; a *change* of value requests or
releases), /bora/recovered (Bool; true = the correction completed, task recovered; once per takeover),
/bora/estop (Bool, latched: only the reset service clears it, and only while the input is false).
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

import math
import sys
import threading
import uuid

import numpy as np
import rclpy
import rclpy.exceptions
import rclpy.executors
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from bora_msgs.msg import EpisodeEvent, ExecutedCommand, InterventionEvent, JointCommand
from bora_msgs.srv import MarkEpisode
from bora_policy.runtime.control_loop import ControlLoop
from bora_teleop.events import (
    EP_ABORT,
    EP_FAILURE,
    EP_START,
    EP_SUCCESS,
    EPISODE_KINDS,
    INTERVENTION_KINDS,
    KEY_HELP,
    KEYMAP,
)
from bora_teleop.glove import UdpGloveReceiver, reorder, sample_from_joint_state
from bora_teleop.params import PARAMS, build_arbiter, build_hand_adapter


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop")
        for k, v in PARAMS.items():
            self.declare_parameter(k, v)
        P = {k: self.get_parameter(k).value for k in PARAMS}
        self.P = P
        self.rate = float(P["rate_hz"])
        self.arb = build_arbiter(P, self._robot_description(P))
        rmap = self.arb.retarget
        self.hand_adapter = build_hand_adapter(P, rmap)
        self._last_takeover_msg: bool | None = None
        self._last_reason = ""
        self._warned: dict[str, float] = {}
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
        self.pub_ep = self.create_publisher(EpisodeEvent, P["episode_topic"], events_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, P["diagnostics_topic"], rel)
        # subscriptions (BEST_EFFORT readers match RELIABLE and BEST_EFFORT writers)
        self.create_subscription(JointCommand, P["policy_command_topic"], L(self._on_policy), stream)
        self.create_subscription(JointState, P["arm_joint_states_topic"], L(self._on_arm_state), stream)
        self.create_subscription(JointState, P["hand_joint_states_topic"], L(self._on_hand_state), stream)
        self.create_subscription(JointState, P["glove_topic"], L(self._on_glove), stream)
        self.create_subscription(JointState, P["arm_target_topic"], L(self._on_arm_target), stream)
        self.create_subscription(Bool, P["takeover_topic"], L(self._on_takeover), rel)
        self.create_subscription(Bool, P["recovered_topic"], L(self._on_recovered), rel)
        # e-stop: a latched (transient-local) reader gets the last value of a latched publisher, and a
        # volatile best-effort reader matches every other publisher; duplicates are harmless.
        self.create_subscription(Bool, P["estop_topic"], L(self._on_estop), latched)
        self.create_subscription(Bool, P["estop_topic"], L(self._on_estop), stream)
        self.create_subscription(EpisodeEvent, P["episode_topic"], L(self._on_episode), events_qos)
        self.create_service(MarkEpisode, P["mark_episode_service"], L(self._srv_mark_episode))
        self.create_service(SetBool, P["set_takeover_service"], L(self._srv_set_takeover))
        self.create_service(Trigger, P["reset_estop_service"], L(self._srv_reset_estop))
        self.create_service(Trigger, P["mark_recovered_service"], L(self._srv_mark_recovered))

        self.udp = None
        if int(P["udp_port"]) > 0:
            self.udp = UdpGloveReceiver(
                rmap.n_human,
                rmap.human_joints,
                P["udp_host"],
                int(P["udp_port"]),
                P["human_timeout_s"],
                clock=self._now,
            ).start()
            self.arb.glove_sources.append(self.udp.latest)
            self.get_logger().info(f"UDP glove receiver on {self.udp.address[0]}:{self.udp.port}")
        self.keys = None
        if P["keyboard"]:
            from bora_teleop.keyboard import KeyReader

            if KeyReader.available():
                self.keys = KeyReader().start()
                self.get_logger().info(KEY_HELP)
        self.create_timer(1.0, L(self._diagnostics))
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
        self._throttled("warning", "stall", stall.describe(), 2.0)

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

    def _throttled(self, level: str, key: str, text: str, period: float = 1.0) -> None:
        now = self._now()
        if now - self._warned.get(key, -math.inf) >= period:
            self._warned[key] = now
            self._log(level, text)

    # ------------------------------------------------------------------ inputs
    def _on_policy(self, msg: JointCommand) -> None:
        now = self._now()
        try:
            pos = (
                reorder(list(msg.joint_names), msg.position, self.arb.joint_names)
                if msg.joint_names
                else np.asarray(msg.position, dtype=np.float64)
            )
            self.arb.set_policy(pos, now, msg.episode_id, msg.step, msg.chunk_index)
            if msg.session_id and msg.episode_id == self.arb.episode.episode_id:
                self._episode_session = msg.session_id
        except ValueError as e:
            self.arb.set_policy(None, now, msg.episode_id, msg.step, msg.chunk_index, error=f"policy command: {e}")

    def _joint_state(self, msg: JointState, names: list[str], what: str):
        try:
            return reorder(list(msg.name), msg.position, names) if msg.name else np.asarray(msg.position, np.float64)
        except ValueError as e:
            self._throttled("error", what, f"{what}: {e}", 5.0)
            return None

    def _on_arm_state(self, msg: JointState) -> None:
        q = self._joint_state(msg, self.arb.arm_joint_names, "arm joint states")
        if q is not None and q.size == 7:
            self.arb.set_measured(arm=q)

    def _on_hand_state(self, msg: JointState) -> None:
        if not self.hand_adapter.is_identity:
            try:
                q = self.hand_adapter.state_to_internal(list(msg.name), msg.position)
            except ValueError as e:
                self._throttled("error", "hand joint states", f"hand joint states: {e}", 5.0)
                return
            self.arb.set_measured(hand=q)
            return
        q = self._joint_state(msg, self.arb.hand_joint_names, "hand joint states")
        if q is not None and q.size == len(self.arb.hand_joint_names):
            self.arb.set_measured(hand=q)

    def _on_glove(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        try:
            self.arb.set_glove(
                sample_from_joint_state(
                    list(msg.name), msg.position, self.arb.retarget.human_joints, self._now(), stamp
                )
            )
        except ValueError as e:
            self._throttled("error", "glove", f"glove joint states: {e}", 5.0)

    def _on_arm_target(self, msg: JointState) -> None:
        q = self._joint_state(msg, self.arb.arm_joint_names, "arm target")
        if q is not None and q.size == 7:
            self.arb.set_arm_target(q, self._now())

    def _on_takeover(self, msg: Bool) -> None:
        if msg.data != self._last_takeover_msg:  # edge semantics: a change requests / releases
            self._last_takeover_msg = bool(msg.data)
            self.arb.blender.request(bool(msg.data), self._now())

    def _on_recovered(self, msg: Bool) -> None:
        # every true message reports a recovery; the blender keeps at most one per takeover
        if msg.data:
            ok, why = self.arb.blender.mark_recovered()
            if not ok:
                self._throttled("warning", "recovered", f"recovered flag ignored: {why}", 5.0)

    def _on_estop(self, msg: Bool) -> None:
        was = self.arb.safety.estop_latched
        self.arb.safety.set_estop(bool(msg.data))
        if msg.data and not was:
            self.get_logger().error("E-STOP latched: holding position until /bora/teleop/reset_estop")

    def _on_episode(self, msg: EpisodeEvent) -> None:
        # a takeover never spans two episodes: it ends with its episode's outcome, or at the next START
        if msg.kind == EpisodeEvent.START:
            if msg.episode_id != self.arb.episode.episode_id:
                self._end_takeover(self.arb.episode.episode_id, self.arb.episode.step, "next episode started")
            self.arb.episode.observe_start(msg.episode_id)
            self._episode_session = msg.session_id or self._episode_session
        elif msg.kind in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.ABORT):
            self._end_takeover(
                int(msg.episode_id),
                int(msg.step),
                f"episode {EPISODE_KINDS[msg.kind]}",
                success=msg.kind == EpisodeEvent.SUCCESS,
            )

    def _end_takeover(self, episode_id: int, step: int, why: str, success: bool = False) -> None:
        for kind, reward in self.arb.end_takeover(success):
            self._publish_intervention(kind, reward, episode_id, step, why)

    def _publish_intervention(self, kind: str, reward: float, episode_id: int, step: int, reason: str) -> None:
        ev = InterventionEvent(
            episode_id=int(episode_id),
            session_id=self._episode_session,
            step=int(step),
            kind=INTERVENTION_KINDS[kind],
            reward=float(reward),
            reason=reason,
        )
        ev.header.stamp = self.get_clock().now().to_msg()
        self.pub_int.publish(ev)
        self.get_logger().info(f"intervention {kind} at step {step} (reward {reward:+.3f}) [{reason}]")

    # ------------------------------------------------------------------ services / keys
    def _publish_episode(self, kind: int, note: str) -> int:
        if kind in EPISODE_KINDS:  # the open takeover belongs to the episode being ended / left
            self._end_takeover(
                self.arb.episode.episode_id,
                self.arb.episode.step,
                f"episode {EPISODE_KINDS[kind]}",
                success=kind == EP_SUCCESS,
            )
        ep, step = self.arb.episode.mark(kind)
        if kind == EP_START:
            self._episode_session = self.session_id  # an episode this node numbers
        m = EpisodeEvent(
            episode_id=ep,
            session_id=self._episode_session,
            kind=kind,
            step=step,
            task=self.P["task"],
            object_set=self.P["object_set"],
            note=note,
        )
        m.header.stamp = self.get_clock().now().to_msg()
        self.pub_ep.publish(m)
        self.get_logger().info(f"episode {ep}: {EPISODE_KINDS[kind]} at step {step} {note}")
        return ep

    def _srv_mark_episode(self, req, res):
        if req.kind not in EPISODE_KINDS:
            res.success, res.episode_id = False, self.arb.episode.episode_id
            self.get_logger().error(f"MarkEpisode.kind={req.kind}: expected one of {EPISODE_KINDS}")
            return res
        res.episode_id, res.success = self._publish_episode(req.kind, req.note), True
        return res

    def _srv_set_takeover(self, req, res):
        self.arb.blender.request(bool(req.data), self._now())
        res.success, res.message = True, f"takeover {'requested' if req.data else 'released'}"
        return res

    def _srv_reset_estop(self, req, res):
        res.success, res.message = self.arb.safety.reset_estop()
        self.get_logger().warning(f"reset_estop: {res.message}")
        return res

    def _srv_mark_recovered(self, req, res):
        res.success, res.message = self.arb.blender.mark_recovered()
        return res

    def _handle_key(self, ch: str) -> None:
        action = KEYMAP.get(ch)
        if action == "toggle_takeover":
            on = self.arb.blender.toggle(self._now())
            self.get_logger().info(f"takeover {'ON' if on else 'OFF'} (key)")
        elif action == "recovered":
            self.get_logger().info(f"recovered (key): {self.arb.blender.mark_recovered()[1]}")
        elif action in ("success", "failure", "abort", "new_episode"):
            kind = {"success": EP_SUCCESS, "failure": EP_FAILURE, "abort": EP_ABORT, "new_episode": EP_START}[action]
            self._publish_episode(kind, "key")
        elif action == "estop":
            self.arb.safety.set_estop(True)
            self.arb.safety.set_estop(False)  # the key latches; the input itself is momentary
            self.get_logger().error("E-STOP latched (key): holding position until /bora/teleop/reset_estop")
        elif action == "help":
            self.get_logger().info(KEY_HELP)

    # ------------------------------------------------------------------ control tick
    def _tick(self) -> None:
        if not self.context.ok():
            self.control_loop.stop()  # shutting down (SIGINT): the publishers are gone, stop quietly
            return
        try:
            self._control_step()
        except Exception as e:  # noqa: BLE001 - never let the arbiter die; nothing is sent this tick
            self._throttled("error", "tick_exception", f"control tick failed, nothing sent: {e!r}")

    def _control_step(self) -> None:
        if self.keys is not None:
            for ch in self.keys.drain():
                self._handle_key(ch)
        stamp = self.get_clock().now()
        r = self.arb.tick(stamp.nanoseconds * 1e-9)
        for kind, reward in r.events:
            self._publish_intervention(kind, reward, r.episode_id, r.step, "operator")
        if r.held and r.hold_reason != self._last_reason:
            level = "error" if r.hold_reason in ("nan", "bad_command", "estop") else "warning"
            self._log(level, f"HOLD ({r.hold_reason}) {r.error}".strip())
        elif r.held and r.hold_reason in ("nan", "bad_command"):
            self._throttled("error", "hold_" + r.hold_reason, f"HOLD ({r.hold_reason}) {r.error}".strip())
        elif not r.held and self._last_reason:
            self.get_logger().info(f"hold ({self._last_reason}) cleared")
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

    def _diagnostics(self) -> None:
        s = self.arb.safety
        st = DiagnosticStatus(name="bora_teleop: arbiter", hardware_id="teleop")
        if s.estop_latched or self._last_reason in ("nan", "bad_command"):
            st.level, st.message = DiagnosticStatus.ERROR, f"holding: {self._last_reason}"
        elif self._last_reason:
            st.level, st.message = DiagnosticStatus.WARN, f"holding: {self._last_reason}"
        else:
            st.level, st.message = DiagnosticStatus.OK, "ok"
        vals = {
            "estop_latched": s.estop_latched,
            "beta": round(self.arb.blender.beta, 4),
            "takeover_requested": self.arb.blender.requested,
            **s.counts,
        }
        if self.udp is not None:
            vals.update({f"udp_{k}": v for k, v in self.udp.stats.items()})
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
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        node = TeleopNode()
        rclpy.spin(node)
    except (ValueError, FileNotFoundError, rclpy.exceptions.InvalidParameterTypeException) as e:
        # bad parameters: a clear message, no traceback
        print(f"teleop: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
