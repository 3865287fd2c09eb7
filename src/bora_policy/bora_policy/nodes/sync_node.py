"""Observation sync node: three RGB-D cameras + arm and hand joint states -> bora_msgs/Observation.

Inputs per camera ``<prefix>/<cam>/color/image_raw``, ``<prefix>/<cam>/aligned_depth_to_color/image_raw``,
``<prefix>/<cam>/color/camera_info``, plus ``arm_joint_states`` and ``hand_joint_states``; they are
grouped by an approximate-time policy (``slop`` seconds, ``queue_size`` per input):
``message_filters.ApproximateTimeSynchronizer`` where it imports (real ROS installs), otherwise the
same algorithm in ``bora_policy.runtime.approx_sync``. The Observation's stamp is the newest camera
frame's stamp. ``episode_id`` follows /bora/episode START events (and the latched copy of the current one on
``episode_current_topic``, for a sync node that connects after it); ``step`` is the control step of the
stamp on the episode's time base (``episode_step``: round((stamp - START stamp) * control_hz)), so it
counts control steps whatever the camera rate; before any START it counts observations. A set is labelled by
its newest stamp, not by when it completes (``runtime/episode_labels.py``): one captured before the latest
START keeps the previous episode's id, session and step, and one older than every known START is not
published (counted, logged once per episode). Until a START
is known, the first ``episode_wait_s`` seconds of complete sets are held back (not published; counted,
logged), so the latched START has time to arrive and no observation of the episode carries id 0; after
that, observations without an episode are published with id 0 (a graph where nobody has started one).
"""

from __future__ import annotations

import sys
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from bora_policy.common.episode_latch import StartLatch
from bora_policy.common.graph_params import ParamSpec
from bora_policy.common.node import declare_graph_params, declare_params, run_node
from bora_policy.runtime.approx_sync import make_synchronizer
from bora_policy.runtime.episode_labels import EpisodeLabeler
from bora_policy.runtime.observation import stamp_seconds

SPECS = (
    ParamSpec("camera_topic_prefix", "/cameras", "camera topics are <prefix>/<cam>/color/image_raw etc."),
    ParamSpec("arm_joint_states", "/franka/joint_states", "arm joint state topic (sensor_msgs/JointState)"),
    ParamSpec("hand_joint_states", "/hand/joint_states", "hand joint state topic (sensor_msgs/JointState)"),
    ParamSpec("slop", 0.05, "approximate-time synchroniser slop (s)", range=(0.0, 1.0)),
    ParamSpec("queue_size", 10, "approximate-time synchroniser queue per input", range=(1, 1000)),
    ParamSpec("use_depth", True, "include the aligned depth images"),
    ParamSpec("instruction", "", "language instruction written into every Observation"),
    ParamSpec("frame_id", "base", "frame_id of the Observation header"),
    ParamSpec("observation_topic", "/bora/observation", "output topic (bora_msgs/Observation)"),
    ParamSpec("episode_topic", "/bora/episode", "episode events (bora_msgs/EpisodeEvent)"),
    ParamSpec("episode_current_topic", "/bora/episode/current", "the current episode's START, latched ('': off)"),
    ParamSpec(
        "episode_wait_s",
        2.0,
        "observations without an episode are held back this long after the first complete set (s)",
        range=(0.0, 60.0),
    ),
    ParamSpec("prefer_message_filters", True, "use message_filters' ApproximateTimeSynchronizer where it imports"),
    ParamSpec("reliable_inputs", True, "RELIABLE input subscriptions (false: sensor-data QoS)"),
)


class SyncNode(Node):
    def __init__(self, **kw):
        super().__init__("sync", **kw)
        graph = declare_graph_params(self)
        P = declare_params(self, SPECS)
        self.camera_names = list(graph.cameras)
        prefix = P["camera_topic_prefix"].rstrip("/")
        arm_topic, hand_topic = P["arm_joint_states"], P["hand_joint_states"]
        self.slop = float(P["slop"])
        self.queue_size = int(P["queue_size"])
        self.use_depth = bool(P["use_depth"])
        self.instruction = str(P["instruction"])
        self.frame_id = str(P["frame_id"])
        self.control_hz = graph.control_hz
        out_topic = P["observation_topic"]
        episode_topic = P["episode_topic"]
        current_topic = str(P["episode_current_topic"])
        # observations without an episode are held back this long after the first complete set: the
        # latched START arrives a moment after the cameras' first frames (another DDS endpoint to match)
        self.episode_wait_s = float(P["episode_wait_s"])
        prefer_mf = bool(P["prefer_message_filters"])
        reliable = bool(P["reliable_inputs"])

        from sensor_msgs.msg import CameraInfo, Image, JointState

        from bora_msgs.msg import EpisodeEvent, Observation

        self._Observation = Observation
        qos_in = (
            QoSProfile(depth=self.queue_size, reliability=ReliabilityPolicy.RELIABLE)
            if reliable
            else qos_profile_sensor_data
        )
        inputs: list[tuple[type, str]] = []
        for cam in self.camera_names:
            inputs.append((Image, f"{prefix}/{cam}/color/image_raw"))
            if self.use_depth:
                inputs.append((Image, f"{prefix}/{cam}/aligned_depth_to_color/image_raw"))
            inputs.append((CameraInfo, f"{prefix}/{cam}/color/camera_info"))
        inputs += [(JointState, arm_topic), (JointState, hand_topic)]
        self.per_cam = 3 if self.use_depth else 2
        self.sync, self.sync_kind = make_synchronizer(len(inputs), self.queue_size, self.slop, prefer_mf)
        self.sync.register_callback(self._on_set)
        self._subs = [
            self.create_subscription(t, name, (lambda m, i=i: self.sync.add(m, i)), qos_in)
            for i, (t, name) in enumerate(inputs)
        ]
        self.pub = self.create_publisher(
            Observation, out_topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.create_subscription(EpisodeEvent, episode_topic, self._on_episode, 10)
        self.latch = StartLatch()  # the START applied last (common/episode_latch.py)
        if current_topic:  # the current episode's START, latched: this node may connect after it
            latched = QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
            )
            self.create_subscription(EpisodeEvent, current_topic, self._on_current, latched)
        self.episode_id, self.step, self.published = 0, 0, 0
        self.held_back = 0  # observations not published while waiting for the episode (episode_wait_s)
        self._first_set: float | None = None
        self.session_id = ""  # the recording session of the episode (from its START event)
        self.t_start: float | None = None
        self.labels = EpisodeLabeler(self.control_hz)  # which episode a set belongs to, by its stamp
        self.older_than_start = 0  # sets captured before every known START: not published
        self.get_logger().info(
            f"sync: {len(self.camera_names)} cameras {self.camera_names}, depth={self.use_depth}, "
            f"slop={self.slop} s, "
            f"queue_size={self.queue_size}, synchroniser={self.sync_kind} -> {out_topic}"
        )

    def _on_episode(self, ev) -> None:
        if ev.kind == ev.START:
            self.episode_id, self.step = int(ev.episode_id), 0
            self.session_id = str(ev.session_id)
            self.t_start = stamp_seconds(ev.header.stamp)
            self.latch.applied(self.session_id, self.episode_id, self.t_start)
            self.labels.start(self.episode_id, self.session_id, self.t_start)

    def _on_current(self, ev) -> None:
        """The latched copy of the current episode's START: applied only if it is a newer one."""
        if ev.kind == ev.START and self.latch.is_new(ev.session_id, ev.episode_id, stamp_seconds(ev.header.stamp)):
            self._on_episode(ev)

    def _on_set(self, *msgs) -> None:
        if self.t_start is None and self.episode_wait_s > 0:
            now = time.monotonic()
            self._first_set = now if self._first_set is None else self._first_set
            if now - self._first_set < self.episode_wait_s:
                if self.held_back == 0:
                    self.get_logger().info(
                        f"sync: no episode START yet; observations held back for up to {self.episode_wait_s:g} s"
                    )
                self.held_back += 1
                return
            if self.held_back and self.published == 0:
                self.get_logger().warning(
                    f"sync: no episode START within {self.episode_wait_s:g} s ({self.held_back} observations "
                    "held back); publishing observations without an episode (episode_id 0)"
                )
        obs = self._Observation()
        n = self.per_cam
        cams = [msgs[i * n : (i + 1) * n] for i in range(len(self.camera_names))]
        newest = max(cams, key=lambda c: (c[0].header.stamp.sec, c[0].header.stamp.nanosec))[0].header.stamp
        obs.header.stamp = newest
        obs.header.frame_id = self.frame_id
        obs.camera_names = list(self.camera_names)
        for c in cams:
            obs.color.append(c[0])
            if self.use_depth:
                obs.depth.append(c[1])
            obs.camera_info.append(c[-1])
        obs.arm, obs.hand = msgs[-2], msgs[-1]
        obs.instruction = self.instruction
        if self.labels.known:
            label = self.labels.label(stamp_seconds(newest))
            if label is None:  # captured before every START known: belongs to no episode
                self.older_than_start += 1
                self.get_logger().info(
                    f"sync: {self.older_than_start} observation(s) captured before episode {self.episode_id}'s "
                    "START not published",
                    throttle_duration_sec=5.0,
                )
                return
            obs.episode_id, obs.step, obs.session_id = label.episode_id, label.step, label.session_id
            self.step = label.step
        else:
            obs.episode_id, obs.step, obs.session_id = self.episode_id, self.step, self.session_id
        self.pub.publish(obs)
        self.step += 1
        self.published += 1


def main(args=None) -> int:
    return run_node(SyncNode, args)


if __name__ == "__main__":
    sys.exit(main())
