"""The policy node alone under periodic observations: observation stamp -> first command computed from it.

``bora up --sim --without sim_bridge --without sync --without teleop`` runs the policy node (tiny demo VLA);
this probe publishes bora_msgs/Observation at the control rate with exact stamps (one real observation of
the simulated robot, rendered once, re-stamped), so the figure is the policy runtime's own (inference,
scheduling, phase) without the bridge's rendering time in the stamps. The episode is adopted from the
observations (episode 1). Per chunk as in runtime_latency.py (first command matched by its chunk index).

    python bench/runtime_node.py [--rates 10 30] [--seconds 20] [--out JSON] [--label L --append]

Writes bench/results/runtime_node.json (machine, commit, load); bench_runtime.py puts it in runtime.md.
``--append --label L`` adds the run as one more labelled repetition (e.g. runs alternated with the same
script run from a checkout of the code before planning ahead, so both see the same load).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _observation_msg(hz: float):
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from bora_msgs.msg import Observation
    from bora_policy.common.image_conv import numpy_to_image
    from bora_sim.env import make_env

    env = make_env("pick_plush_toy", "standard", image_size=96, control_hz=hz)
    obs, _ = env.reset(seed=0)
    names = list(env.camera_names)
    env.close()
    m = Observation(camera_names=names, instruction="pick up the plush toy", episode_id=1)
    m.color = [numpy_to_image(c, "rgb8", msg_cls=Image) for c in obs["color"]]
    m.depth = [numpy_to_image(d.astype(np.float32), "32FC1", msg_cls=Image) for d in obs["depth"]]
    m.camera_info = [CameraInfo(height=96, width=96) for _ in names]
    m.arm = JointState(name=[f"fr3_joint{i}" for i in range(1, 8)], position=obs["arm_qpos"].astype(float).tolist())
    m.hand = JointState(name=[f"hand_{i}" for i in range(len(obs["hand_qpos"]))],
                        position=obs["hand_qpos"].astype(float).tolist())
    m.header.frame_id = "base"
    return m


def node_run(hz: float, seconds: float) -> dict:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import ActionChunk, JointCommand

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import runtime_latency

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "bora_trainer.cli", "up", "--sim", "--duration", str(seconds + 120),
           "--control-hz", f"{hz:g}", "--without", "sim_bridge", "--without", "sync", "--without", "teleop"]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / "bora_bench_runtime_node.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    msg = _observation_msg(hz)
    rclpy.init()
    node = rclpy.create_node("bench_policy_probe")
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(
        type(msg), "/bora/observation", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    )
    chunks, cmds = [], []
    sec = (lambda s: s.sec + 1e-9 * s.nanosec)  # noqa: E731
    node.create_subscription(ActionChunk, "/bora/action_chunk",
                             lambda m: chunks.append((sec(m.header.stamp), m.episode_id, time.time())), rel)
    node.create_subscription(JointCommand, "/bora/policy_command", lambda m: cmds.append(
        (sec(m.header.stamp), m.episode_id, m.chunk_index, np.asarray(m.position))), rel)
    period, t_next, t_end, t0 = 1.0 / hz, time.monotonic(), time.monotonic() + 240, None
    load_start = os.getloadavg()[0]
    while time.monotonic() < t_end:
        now = time.monotonic()
        if now >= t_next:
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.step = int(round((time.time() - (t0 or time.time())) * hz))
            pub.publish(msg)
            t_next += period
        rclpy.spin_once(node, timeout_sec=max(0.0, min(0.005, t_next - time.monotonic())))
        if t0 is None and cmds:
            t0, t_end = time.time(), time.monotonic() + seconds
            load_start = os.getloadavg()[0]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    log.close()
    node.destroy_node()
    rclpy.try_shutdown()
    res = runtime_latency.analyse([c for c in chunks if c[0] >= (t0 or 0)], [c for c in cmds if c[0] >= (t0 or 0)],
                                  [], chunk_hz=10.0, control_hz=hz, blend_steps=2, vmax=([1e9], 1e9))
    return {"control_hz": hz, "seconds": seconds, "load_avg_1m_start": load_start,
            "load_avg_1m_end": os.getloadavg()[0], "commands": len(cmds), "chunks": len(chunks),
            "obs_to_command_ms": res["obs_to_command_ms"], "obs_to_ready_ms": res["obs_to_ready_ms"],
            "ready_to_command_ms": res["ready_to_command_ms"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "runtime_node.json")
    ap.add_argument("--label", default="planned ahead", help="the code measured (a row label)")
    ap.add_argument("--append", action="store_true", help="add a repetition to --out instead of replacing it")
    args = ap.parse_args(argv)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_runtime import machine

    res = {"label": args.label, "machine": machine(),
           "runs": {f"{hz:g}": node_run(hz, args.seconds) for hz in args.rates}}
    print(json.dumps(res, indent=1))
    if args.append and args.out.exists():
        old = json.loads(args.out.read_text())
        reps = old.get("repetitions") or [old]
        res = {"repetitions": [*reps, res]}
    args.out.write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
