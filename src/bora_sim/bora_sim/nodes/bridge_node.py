"""Simulation bridge: the simulated robot behind the topics of realsense2_camera, franka_ros2 and the hand.

A timer at ``control_hz`` (real time) applies the latest commands, advances the MuJoCo env one control step
(``bora_sim.env.make_env``) and publishes, all with one stamp:

* per camera ``<prefix>/<cam>/color/image_raw`` (rgb8), ``<prefix>/<cam>/aligned_depth_to_color/image_raw``
  (32FC1 metres, or 16UC1 mm like the RealSense driver: ``depth_encoding``), ``<prefix>/<cam>/color/camera_info``;
* ``/franka/joint_states`` (7 arm joints, named ``arm_joint_names``) and ``/hand/joint_states``.

It consumes what the arbiter writes to the drivers: ``/arm_controller/commands`` (std_msgs/Float64MultiArray,
``arm_command_type: forward``, or trajectory_msgs/JointTrajectory, ``trajectory``) and ``/hand/command``
(sensor_msgs/JointState). ``direct_command_topic`` (empty by default) additionally accepts bora_msgs/JointCommand
straight from the policy, for graphs run without the arbiter; one of another episode or session is dropped, counted
and logged. Episodes: EpisodeEvent START on reset, SUCCESS when
the task's success predicate holds, ABORT noted ``timeout: time limit`` at the time limit (a truncation, outcome
``timeout`` as in the sim datasets, not a terminal failure); ``auto_reset`` starts the next one, else physics and
the topics stop until ``/bora/sim/reset`` (std_srvs/Trigger; before 2026-12-07: an outcome every tick), which
ends a running episode at once with ABORT noted ``reset: ...`` (outcome ``abort``; before: none). When
``bora_sim.operator`` is present and ``operator_enabled``, the scripted operator watches each step's info (but the
final step's: nothing follows it, so no takeover starts there; bora_sim/bridge_operator.py): its trigger
(/bora/operator/takeover) is published every tick, its glove angles (/bora/operator/glove) and arm target
(/bora/operator/arm_target) while it is in control, and a recovered flag (/bora/operator/recovered) when it hands
back. These are its own topics, not a person's (/bora/takeover, /glove/joint_states, /teleop/arm_target): the teleop
arbitrates the two sources and a person's request wins (bora_teleop/sources.py). ``/bora/sim/set_operator``
(std_srvs/SetBool) switches the scripted operator off (releasing its takeover) or on again.
``operator_mode: requested`` (issue 19): it takes over only on the policy's help requests (/bora/help_request),
``operator_reaction_s`` after one, never from privileged state (bora_sim/operator.py). Each START is also published
on ``episode_current_topic`` (/bora/episode/current, transient local, depth 1; empty: off), so a node that connects
after it (episode 1 starts in this constructor, before the graph has matched) or restarts mid-episode still learns
the episode (bora_policy/common/episode_latch.py); each outcome on ``episode_ended_topic`` (/bora/episode/ended,
the last 100), so a restarted live trainer learns what ended while it was down (bora_policy/common/episode_events.py).
``episode_gate_topic`` (empty by default; std_msgs/UInt32,
transient local): the highest episode id that may start. The online trainer publishes it so the robot waits at a
round boundary until the round's update is done and the new residual is in use (bora_trainer/online/rounds.py); with
a gate topic even episode 1 waits for the first value. Under a closed gate the START after a reset waits too
(the reset episode's ABORT is sent at once).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from bora_policy.common.episode_events import EpisodeEvents
from bora_policy.common.graph_params import ParamSpec
from bora_policy.common.image_conv import numpy_to_image
from bora_policy.common.node import StartupError, declare_graph_params, declare_params, run_node
from bora_policy.common.rewards import TIMEOUT_NOTE
from bora_policy.common.state import ARM_KEY, HAND_KEY
from bora_sim.bridge_episodes import IDLE, RESET_NOTE, START, WAIT, BridgeEpisodes
from bora_sim.scene import ARM_MESHES

FR3_ARM_JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]


TOPICS = (
    ("arm_state", "/franka/joint_states", "arm joint states out (sensor_msgs/JointState)"),
    ("hand_state", "/hand/joint_states", "hand joint states out (sensor_msgs/JointState)"),
    ("arm_command", "/arm_controller/commands", "arm command in (what the arbiter writes to the driver)"),
    ("hand_command", "/hand/command", "hand command in (sensor_msgs/JointState)"),
    ("direct_command", "", "bora_msgs/JointCommand straight from the policy, for graphs without the arbiter ('': off)"),
    ("episode", "/bora/episode", "episode events out (bora_msgs/EpisodeEvent)"),
    ("episode_current", "/bora/episode/current", "each START again, latched: nodes that connect later learn it"),
    ("episode_ended", "/bora/episode/ended", "each outcome again, latched (the last 100): for a restarted trainer"),
    ("glove", "/bora/operator/glove", "the scripted operator's glove angles (the teleop's operator_glove_topic)"),
    ("arm_target", "/bora/operator/arm_target", "the scripted operator's arm target"),
    ("takeover", "/bora/operator/takeover", "the scripted operator's takeover trigger (a level, every tick)"),
    ("recovered", "/bora/operator/recovered", "the scripted operator's recovered flag"),
    ("help_request", "/bora/help_request", "the policy's help requests in (operator_mode requested acts on them)"),
)
SPECS = (
    ParamSpec("task", "pick_plush_toy", "task of the simulated scene (bora_sim.tasks)"),
    ParamSpec("object_set", "standard", "object set of the task"),
    ParamSpec("seed", 0, "seed of the first episode (then seed + episode - 1; the scripted operator's: the "
              "episode's + 104729, as in process)", range=(0, 2**31 - 1)),
    ParamSpec("image_size", 96, "rendered image height = width (px)", range=(16, 1024)),
    ParamSpec("hand", "shadow", "simulated hand model"),
    ParamSpec("render", True, "render the cameras (false: black images, faster)"),
    ParamSpec("arm_mesh", "detailed", "what the arm's visual geoms draw (bora_sim.scene): detailed, or the low-poly "
              "collision meshes (~4x cheaper renders; only for policies trained on them)",
              choices=ARM_MESHES),
    ParamSpec("time_limit_s", 0.0, "episode time limit (s); 0: the task's own", range=(0.0, 3600.0)),
    ParamSpec("auto_reset", True, "start the next episode after an outcome"),
    ParamSpec("depth_encoding", "32FC1", "depth image encoding (16UC1: millimetres, as realsense2_camera)",
              choices=("32FC1", "16UC1")),
    ParamSpec("arm_command_type", "forward", "arm command message (must match the teleop's)",
              choices=("forward", "trajectory")),
    ParamSpec("arm_joint_names", list(FR3_ARM_JOINTS), "the 7 arm joint names published and accepted"),
    ParamSpec("hand_joint_names", [""], "hand joint names ([\"\"]: the simulated hand's own)"),
    ParamSpec("camera_topic_prefix", "/cameras", "camera topics are <prefix>/<cam>/..."),
    ParamSpec("camera_frame_prefix", "", "prefix of the cameras' optical frame ids"),
    *(ParamSpec(f"{k}_topic", d, desc) for k, d, desc in TOPICS),
    ParamSpec("reset_service", "/bora/sim/reset", "std_srvs/Trigger: reset the episode now"),
    ParamSpec("set_operator_service", "/bora/sim/set_operator", "std_srvs/SetBool: scripted operator off / on"),
    ParamSpec("operator_enabled", True, "run the scripted operator (bora_sim.operator)"),
    ParamSpec("operator_mode", "privileged", "scripted operator: takeovers from privileged sim state, or only on "
              "help requests (requested; issue 19)", choices=("privileged", "requested")),
    ParamSpec("operator_reaction_s", 0.3, "requested mode: delay from a help request to the takeover (s)",
              range=(0.0, 10.0)),
    ParamSpec("operator_overrides", "", "JSON object of further bora_sim.operator.OperatorConfig fields, e.g. "
              "'{\"patience_s\": 1.5, \"budget\": 2}' ('': its defaults)"),
    ParamSpec("episode_gate_topic", "", "std_msgs/UInt32 (latched): highest episode id that may start ('': none)"),
)


class BridgeNode(Node):
    def __init__(self, **kw):
        super().__init__("sim_bridge", **kw)
        graph = declare_graph_params(self)
        P = declare_params(self, SPECS)
        self.task, self.object_set, self.seed = str(P["task"]), str(P["object_set"]), int(P["seed"])
        self.control_hz = graph.control_hz
        image_size, hand, self.render = int(P["image_size"]), str(P["hand"]), bool(P["render"])
        time_limit = float(P["time_limit_s"])
        self.auto_reset = bool(P["auto_reset"])
        self.depth_encoding = str(P["depth_encoding"])
        self.arm_command_type = str(P["arm_command_type"])
        arm_names = list(P["arm_joint_names"])
        hand_names = [n for n in P["hand_joint_names"] if n]
        prefix = str(P["camera_topic_prefix"]).rstrip("/")
        frame_prefix = str(P["camera_frame_prefix"])
        t = {k: str(P[f"{k}_topic"]) for k, _, _ in TOPICS}
        reset_service = str(P["reset_service"])
        set_operator_service = str(P["set_operator_service"])
        self.operator_enabled = bool(P["operator_enabled"])
        self.operator_mode, self.operator_reaction_s = str(P["operator_mode"]), float(P["operator_reaction_s"])
        self.operator_overrides = str(P["operator_overrides"])
        try:  # a bad operator setting stops the node at start-up, not at the first takeover
            from bora_sim.operator import operator_from_params

            operator_from_params(self.operator_overrides, self.operator_mode, self.operator_reaction_s)
        except ValueError as e:
            raise StartupError(f"sim_bridge: {e}") from None
        gate_topic = str(P["episode_gate_topic"])

        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Bool, Float64MultiArray
        from std_srvs.srv import SetBool, Trigger
        from trajectory_msgs.msg import JointTrajectory

        from bora_msgs.msg import EpisodeEvent, JointCommand
        from bora_sim.env import make_env

        self._JointState, self._CameraInfo, self._Image, self._EpisodeEvent = (
            JointState,
            CameraInfo,
            Image,
            EpisodeEvent,
        )
        self._Bool = Bool
        t0 = time.perf_counter()
        kw_env = {"time_limit_s": time_limit} if time_limit > 0 else {}
        self.env = make_env(
            self.task,
            self.object_set,
            seed=None,
            image_size=image_size,
            control_hz=self.control_hz,
            render=self.render,
            hand=hand,
            arm_mesh=str(P["arm_mesh"]),
            **kw_env,
        )
        if tuple(self.env.camera_names) != graph.cameras:
            raise StartupError(
                f"sim_bridge: parameter cameras = {list(graph.cameras)} ({graph.source}): the simulated robot "
                f"has the cameras {list(self.env.camera_names)}"
            )
        self.sim_arm_names = list(self.env.arm_joint_names)
        self.sim_hand_names = list(self.env.hand_joint_names)
        if len(arm_names) != 7:
            raise ValueError(f"sim_bridge: arm_joint_names must name 7 joints, got {len(arm_names)}")
        if hand_names and len(hand_names) != len(self.sim_hand_names):
            raise ValueError(
                f"sim_bridge: hand_joint_names must name {len(self.sim_hand_names)} joints, "
                f"got {len(hand_names)}"
            )
        self.arm_names = arm_names
        self.hand_names = hand_names or self.sim_hand_names
        self._hand_index = {n: i for i, n in enumerate(self.hand_names)}
        self.cam_frames = [f"{frame_prefix}{c}_color_optical_frame" for c in self.env.camera_names]

        rel = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.cam_pubs = []
        for cam in self.env.camera_names:
            base = f"{prefix}/{cam}"
            self.cam_pubs.append(
                (
                    self.create_publisher(Image, f"{base}/color/image_raw", rel),
                    self.create_publisher(Image, f"{base}/aligned_depth_to_color/image_raw", rel),
                    self.create_publisher(CameraInfo, f"{base}/color/camera_info", rel),
                )
            )
        self.pub_arm = self.create_publisher(JointState, t["arm_state"], rel)
        self.pub_hand = self.create_publisher(JointState, t["hand_state"], rel)
        self.events = EpisodeEvents(self, EpisodeEvent, t["episode"], t["episode_current"], t["episode_ended"])
        from rclpy.qos import DurabilityPolicy

        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.pub_glove = self.create_publisher(JointState, t["glove"], rel)
        self.pub_arm_target = self.create_publisher(JointState, t["arm_target"], rel)
        self.pub_takeover = self.create_publisher(Bool, t["takeover"], rel)
        self.pub_recovered = self.create_publisher(Bool, t["recovered"], rel)
        # best effort matches any publisher; depth 1: the driver acts on the NEWEST command, as a real driver's
        # realtime buffer does. With depth 5 this node took one queued command per tick once a backlog had formed
        # (a burst, a slow tick), so every command was applied 3-4 ticks (300-340 ms) after the arbiter sent it,
        # for the rest of the run, and the previous episode's last commands reached the freshly reset arm.
        cmd_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        if self.arm_command_type == "forward":
            self.create_subscription(Float64MultiArray, t["arm_command"], self._on_arm_forward, cmd_qos)
        else:
            self.create_subscription(JointTrajectory, t["arm_command"], self._on_arm_trajectory, cmd_qos)
        self.create_subscription(JointState, t["hand_command"], self._on_hand_command, cmd_qos)
        if t["direct_command"]:
            self.create_subscription(JointCommand, t["direct_command"], self._on_direct, cmd_qos)
        self.create_service(Trigger, reset_service, self._srv_reset)
        # episode ids, the trainer's gate, resets (bora_sim/bridge_episodes.py); a new recording session per run
        self.malformed_commands = 0  # driver commands of the wrong shape or joints, refused (_drop)
        self.episodes = BridgeEpisodes(self.seed, self.auto_reset, gated=bool(gate_topic))
        if gate_topic:
            from std_msgs.msg import UInt32

            self.create_subscription(UInt32, gate_topic, self._on_gate, latched)
        self.create_service(SetBool, set_operator_service, self._srv_set_operator)
        from bora_msgs.msg import HelpRequest

        self.create_subscription(HelpRequest, t["help_request"], self._on_help_request, rel)

        self.operator = self._make_operator() if self.operator_enabled else None
        self.commands_received = 0
        self.ticks = 0
        if self.episodes.gate is None:
            self._reset_episode()
        else:  # episode 1 waits for the trainer's first gate value too (the trainer is recording then)
            self.obs, _ = self.env.reset(seed=self.seed)
            self.target = self.env.last_action.astype(np.float64).copy()
        self.timer = self.create_timer(1.0 / self.control_hz, self._on_tick)
        self.get_logger().info(
            f"sim_bridge: task {self.task} ({self.object_set}), {len(self.env.camera_names)} cameras at "
            f"{image_size} px, {self.control_hz:g} Hz, action_dim {self.env.action_dim}, operator "
            f"{'on' if self.operator is not None else 'off'}; ready in {time.perf_counter() - t0:.1f} s"
        )

    # ------------------------------------------------------------------ operator (bora_sim.operator)
    def _make_operator(self):
        try:
            from bora_sim.bridge_operator import BridgeOperator
            from bora_sim.operator import operator_from_params
        except ImportError:
            self.get_logger().info("sim_bridge: bora_sim.operator not available; no glove/takeover stream")
            return None
        cfg = operator_from_params(self.operator_overrides, self.operator_mode, self.operator_reaction_s)
        return BridgeOperator(self.env, cfg, env_seed=self.episodes.env_seed())  # seeded per episode

    def _srv_set_operator(self, req, res):
        """Switch the scripted operator on (from a fresh state) or off (releasing its takeover) at run time."""
        if req.data and self.operator is None:
            self.operator = self._make_operator()
        elif not req.data and self.operator is not None:
            self.operator = None
            self.pub_takeover.publish(self._Bool(data=False))
        on = self.operator is not None
        res.success = on == bool(req.data)
        res.message = f"scripted operator {'on' if on else 'off'}"
        self.get_logger().info(f"sim_bridge: {res.message} (service)")
        return res

    def _on_help_request(self, msg) -> None:
        """A help request of the policy (issue 19): the scripted operator in ``requested`` mode takes over on
        it after its reaction delay; one of another episode or session is ignored."""
        op, ep = self.operator, self.episodes
        if op is None or op.cfg.mode != "requested":
            return
        if int(msg.episode_id) != ep.episode_id or (msg.session_id and msg.session_id != ep.session_id):
            self.get_logger().info(f"sim_bridge: help request of episode {msg.episode_id} ignored (not the current)")
            return
        self.get_logger().info(f"sim_bridge: {op.help_request(int(self.env.steps), str(msg.reason), msg.step)}")

    def _operator_step(self, info, stamp, final: bool, success: bool) -> None:
        """Publish the operator's takeover trigger every tick, its glove + arm target while in control and its
        recovered flag at a handback (bora_sim/bridge_operator.py decides; not consulted on the final step)."""
        if self.operator is None:
            return
        out = self.operator.tick(info, self.episodes.episode_id, final=bool(final), success=bool(success))
        if out.log:
            self.get_logger().info(f"sim_bridge: {out.log}")
        if out.recovered is not None:
            self.pub_recovered.publish(self._Bool(data=out.recovered))
        if out.arm is not None:
            g = self._JointState(name=list(self.operator.glove_names), position=[float(x) for x in out.glove])
            a = self._JointState(name=list(self.arm_names), position=[float(x) for x in out.arm])
            g.header.stamp = a.header.stamp = stamp
            self.pub_glove.publish(g)
            self.pub_arm_target.publish(a)
        self.pub_takeover.publish(self._Bool(data=out.takeover))

    # ------------------------------------------------------------------ commands
    def _drop(self, why: str) -> None:
        """A malformed driver command is refused: counted (``malformed_commands``) and logged, never silently."""
        self.malformed_commands += 1
        self.get_logger().warning(
            f"sim_bridge: {why} ({self.malformed_commands} malformed commands so far)", throttle_duration_sec=5.0
        )

    def _on_arm_forward(self, msg) -> None:
        if len(msg.data) != 7:
            return self._drop(f"arm command with {len(msg.data)} values ignored (expected 7)")
        self._set_arm(np.asarray(msg.data, dtype=np.float64))

    def _on_arm_trajectory(self, msg) -> None:
        if not msg.points:
            return self._drop("arm trajectory without points ignored (expected one point of 7 positions)")
        q = np.asarray(msg.points[0].positions, dtype=np.float64)
        if msg.joint_names and list(msg.joint_names) != self.arm_names:
            order = {n: i for i, n in enumerate(msg.joint_names)}
            if not all(n in order for n in self.arm_names):
                return self._drop("arm trajectory ignored: its joint names do not include every arm_joint_names")
            q = q[[order[n] for n in self.arm_names]]
        if q.shape != (7,):
            return self._drop(f"arm trajectory point with {q.size} positions ignored (expected 7)")
        self._set_arm(q)

    def _on_hand_command(self, msg) -> None:
        pos = np.asarray(msg.position, dtype=np.float64)
        target = self.target.copy()
        if msg.name:
            unknown = [n for n in msg.name if n not in self._hand_index]
            if unknown or len(msg.name) != pos.shape[0]:
                return self._drop(f"hand command ignored: {len(msg.name)} names for {pos.shape[0]} positions, "
                                  f"unknown joints {unknown[:3]} (expected names from hand_joint_names)")
            for n, v in zip(msg.name, pos):
                target[7 + self._hand_index[n]] = v
        elif pos.shape[0] == len(self.hand_names):
            target[7:] = pos
        else:
            return self._drop(f"hand command with {pos.shape[0]} unnamed positions ignored "
                              f"(expected {len(self.hand_names)})")
        self._set(target)

    def _on_direct(self, msg) -> None:
        why = self.episodes.refuse_command(int(msg.episode_id), str(msg.session_id))
        if why:  # a command of another episode or session (bora_sim/bridge_episodes.py)
            n = self.episodes.dropped_commands
            self.get_logger().warning(f"sim_bridge: {why} ({n} dropped so far)", throttle_duration_sec=5.0)
            return
        pos = np.asarray(msg.position, dtype=np.float64)
        if pos.shape[0] != self.env.action_dim:
            return self._drop(f"direct command with {pos.shape[0]} positions ignored (expected {self.env.action_dim})")
        self._set(pos)

    def _set_arm(self, q: np.ndarray) -> None:
        target = self.target.copy()
        target[:7] = q
        self._set(target)

    def _set(self, target: np.ndarray) -> None:
        if np.all(np.isfinite(target)):
            self.target = target
            self.commands_received += 1

    # ------------------------------------------------------------------ episodes
    def _event(self, kind: int, note: str = "") -> None:
        ev = self._EpisodeEvent()
        now = self.get_clock().now()
        ev.header.stamp = now.to_msg()
        t = now.nanoseconds * 1e-9
        if kind == self._EpisodeEvent.START:
            self._t_start, step = t, 0
        else:
            # the episode's time base shared by every node (bora_policy.runtime.observation.episode_step):
            # the control step of this instant, not the physics step count (which falls behind wall
            # time when this node's timer drops a tick under load)
            step = max(0, int(round((t - getattr(self, "_t_start", t)) * self.control_hz)))
        ev.episode_id, ev.kind, ev.step = self.episodes.episode_id, kind, step
        ev.session_id = self.episodes.session_id
        ev.task, ev.object_set, ev.note = self.task, self.object_set, note
        self.events.publish(ev)  # also latched: START on episode_current, an outcome on episode_ended

    def _reset_episode(self) -> None:
        seed = self.episodes.env_seed(self.episodes.start())
        obs, info = self.env.reset(seed=seed)
        self.obs = obs
        self.target = self.env.last_action.astype(np.float64).copy()
        if self.operator is not None:
            self.operator.start_episode(seed)
        self._event(self._EpisodeEvent.START, f"seed {seed}")

    def _srv_reset(self, req, res):
        """End the running episode now with an outcome (ABORT, RESET_NOTE) and start the next at the next tick
        (or when the trainer's gate lets it)."""
        ep = self.episodes
        aborted = ""
        if ep.request_reset():  # recorders and the trainer see the episode end
            if self.operator is not None:
                self.operator.end_episode(False)
            self._event(self._EpisodeEvent.ABORT, RESET_NOTE)
            aborted = f"episode {ep.episode_id} aborted; "
        gated = ep.gate is not None and ep.episode_id + 1 > ep.gate
        when = "when the trainer's gate lets it" if gated else "at the next tick"
        res.success, res.message = True, f"{aborted}episode {ep.episode_id + 1} starts {when}"
        self.get_logger().info(f"sim_bridge: reset service: {res.message}")
        return res

    # ------------------------------------------------------------------ control tick
    def _on_gate(self, msg) -> None:
        self.episodes.set_gate(int(msg.data))

    def _on_tick(self) -> None:
        tick = self.episodes.tick()
        if tick.log:
            self.get_logger().info(f"sim_bridge: {tick.log}")
        if tick.action in (WAIT, IDLE):
            return
        if tick.action == START:
            # START is control step 0 (the reset state, not published); physics advances from the next
            # tick, so the observation after s physics steps is stamped at control step s
            self._reset_episode()
            return
        obs, _, terminated, truncated, info = self.env.step(self.target)
        self.obs = obs
        self.ticks += 1
        stamp = self.get_clock().now().to_msg()
        self._publish_observation(obs, stamp)
        self._operator_step(info, stamp, final=terminated or truncated, success=terminated)
        if terminated:
            self._event(self._EpisodeEvent.SUCCESS, "success predicate")
        elif truncated:
            self._event(self._EpisodeEvent.ABORT, TIMEOUT_NOTE)
        if terminated or truncated:
            self.episodes.end()

    def destroy_node(self):
        self.env.close()
        return super().destroy_node()

    def _publish_observation(self, obs, stamp) -> None:
        intr = self.env.camera_info()
        for i, cam in enumerate(self.env.camera_names):
            pc, pd, pi = self.cam_pubs[i]
            color = numpy_to_image(obs["color"][i], "rgb8", msg_cls=self._Image)
            depth_m = obs["depth"][i]
            if self.depth_encoding == "16UC1":
                depth = numpy_to_image(
                    np.clip(np.nan_to_num(depth_m) * 1000.0 + 0.5, 0, 65535).astype(np.uint16),
                    "16UC1",
                    msg_cls=self._Image,
                )
            else:
                depth = numpy_to_image(depth_m.astype(np.float32), "32FC1", msg_cls=self._Image)
            for m in (color, depth):
                m.header.stamp, m.header.frame_id = stamp, self.cam_frames[i]
            k = intr[cam]
            info = self._CameraInfo(
                height=int(k["height"]), width=int(k["width"]), distortion_model="plumb_bob"
            )
            info.header.stamp, info.header.frame_id = stamp, self.cam_frames[i]
            info.k = [k["fx"], 0.0, k["cx"], 0.0, k["fy"], k["cy"], 0.0, 0.0, 1.0]
            info.p = [k["fx"], 0.0, k["cx"], 0.0, 0.0, k["fy"], k["cy"], 0.0, 0.0, 0.0, 1.0, 0.0]
            info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            info.d = [0.0] * 5
            pc.publish(color)
            pd.publish(depth)
            pi.publish(info)
        d = self.env.data
        arm = self._JointState(
            name=list(self.arm_names),
            position=obs[ARM_KEY].astype(float).tolist(),
            velocity=d.qvel[self.env.arm_dadr].astype(float).tolist(),
        )
        hand = self._JointState(name=list(self.hand_names), position=obs[HAND_KEY].astype(float).tolist())
        arm.header.stamp = hand.header.stamp = stamp
        arm.header.frame_id = hand.header.frame_id = "base"
        self.pub_arm.publish(arm)
        self.pub_hand.publish(hand)


def main(args=None) -> int:
    return run_node(BridgeNode, args)


if __name__ == "__main__":
    sys.exit(main())
