"""Second process of the round-trip test: subscribes to /rt/in/<Type> for every bora_msgs type
and republishes each message unchanged on /rt/out/<Type>. Exits after --seconds."""

import argparse
import importlib
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

TYPES = ["Observation", "ActionChunk", "JointCommand", "ExecutedCommand", "ValueEstimate",
         "InterventionEvent", "EpisodeEvent", "CheckpointInfo", "HelpRequest"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("bora_echo_peer")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    mod = importlib.import_module("bora_msgs.msg")
    pubs = {}
    for t in TYPES:
        cls = getattr(mod, t)
        pubs[t] = node.create_publisher(cls, f"/rt/out/{t}", qos)
        node.create_subscription(cls, f"/rt/in/{t}", lambda m, t=t: pubs[t].publish(m), qos)
    srv = importlib.import_module("bora_msgs.srv")

    def load_checkpoint(req, res):
        res.success = req.path.endswith(".safetensors")
        res.message = f"{req.path}|{req.sha256}"
        return res

    def set_mode(req, res):
        res.success = req.mode <= 2
        res.message = f"mode={req.mode}"
        return res

    def mark_episode(req, res):
        res.success = True
        res.episode_id = 1000 * req.kind + len(req.note)
        return res

    node.create_service(srv.LoadCheckpoint, "/rt/load_checkpoint", load_checkpoint)
    node.create_service(srv.SetMode, "/rt/set_mode", set_mode)
    node.create_service(srv.MarkEpisode, "/rt/mark_episode", mark_episode)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    print("echo peer ready", flush=True)
    end = time.monotonic() + args.seconds
    try:
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
