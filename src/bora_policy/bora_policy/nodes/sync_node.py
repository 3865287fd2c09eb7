"""Observation sync node: three RGB-D cameras + arm and hand joint states -> bora_msgs/Observation.

Inputs per camera ``<prefix>/<cam>/color/image_raw``, ``<prefix>/<cam>/aligned_depth_to_color/image_raw``,
``<prefix>/<cam>/color/camera_info``, plus ``arm_joint_states`` and ``hand_joint_states``; they are
grouped by an approximate-time policy (``slop`` seconds, ``queue_size`` per input):
``message_filters.ApproximateTimeSynchronizer`` where it imports (real ROS installs), otherwise the
same algorithm in ``bora_policy.runtime.approx_sync``. The Observation's stamp is the newest camera
frame's stamp. ``episode_id`` follows /bora/episode START events; ``step`` is the control step of the
stamp on the episode's time base (``episode_step``: round((stamp - START stamp) * control_hz)), so it
counts control steps whatever the camera rate; before any START it counts observations.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from bora_policy.runtime.approx_sync import make_synchronizer
from bora_policy.runtime.observation import episode_step, stamp_seconds


class SyncNode(Node):
    def __init__(self, **kw):
        super().__init__("sync", **kw)
        p = self.declare_parameter
        self.camera_names = list(p("camera_names", ["left", "front", "right"]).value)
        prefix = p("camera_topic_prefix", "/cameras").value.rstrip("/")
        arm_topic = p("arm_joint_states", "/franka/joint_states").value
        hand_topic = p("hand_joint_states", "/hand/joint_states").value
        self.slop = float(p("slop", 0.05).value)
        self.queue_size = int(p("queue_size", 10).value)
        self.use_depth = bool(p("use_depth", True).value)
        self.instruction = str(p("instruction", "").value)
        self.frame_id = str(p("frame_id", "base").value)
        self.control_hz = float(p("control_hz", 10.0).value)
        out_topic = p("observation_topic", "/bora/observation").value
        episode_topic = p("episode_topic", "/bora/episode").value
        prefer_mf = bool(p("prefer_message_filters", True).value)
        reliable = bool(p("reliable_inputs", True).value)
        if not self.control_hz > 0:
            raise ValueError(f"sync: parameter control_hz must be > 0 (the policy's rate), got {self.control_hz}")
        if not self.camera_names:
            raise ValueError("sync: parameter camera_names must name at least one camera")

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
        self.episode_id, self.step, self.published = 0, 0, 0
        self.session_id = ""  # the recording session of the episode (from its START event)
        self.t_start: float | None = None
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

    def _on_set(self, *msgs) -> None:
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
        if self.t_start is not None:
            self.step = episode_step(stamp_seconds(newest), self.t_start, self.control_hz)
        obs.episode_id, obs.step, obs.session_id = self.episode_id, self.step, self.session_id
        self.pub.publish(obs)
        self.step += 1
        self.published += 1


def main(args=None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = SyncNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a callback interrupted by the shutdown itself (SIGINT while a message was being taken): not an error
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
