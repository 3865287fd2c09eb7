"""Camera transport: three RGB-D cameras at 30 Hz between two processes, raw against compressed.

Modes (each ``--seconds`` long, a publisher child process and this process subscribing, rclpy over DDS on
loopback, RELIABLE depth 5 as ``bench_runtime.py``):

* ``raw-640x480``: the cameras' native frames as ``sensor_msgs/Image`` (rgb8 + 32FC1), as bench_runtime does;
* ``raw-policy``: frames resized at the edge to the policy's input (``--size``, the VLA's default 96 px)
  as ``Image`` (rgb8 + 16UC1 millimetres);
* ``compressed-policy``: the same frames as ``sensor_msgs/CompressedImage`` in image_transport's formats:
  colour ``rgb8; jpeg compressed bgr8`` (quality ``--quality``), depth ``16UC1; compressedDepth png``
  (``bora_policy.runtime.image_codec``), encoded in the publisher, decoded in the subscriber.

The policy-resolution frames are real renders of the simulated press_button scene (3 cameras, the arm
moving), so the compression ratio and PSNR are those of the images the policy sees. Each message carries
its frame number in ``header.frame_id``: drops = expected - received per stream (missing numbers).
Recorded MB per minute = message payload bytes x 30 Hz x 60 s (raw vs compressed), decoded colour PSNR
and depth exactness over every frame of the set. Writes ``bench/results/transport.json`` and ``transport.md``.

    .venv/bin/python bench/bench_transport.py [--seconds 10] [--size 96] [--quality 90]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
CAMS = ("left", "front", "right")


def render_frames(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frame sets of the simulated scene: colour [n, 3, size, size, 3] uint8, depth [n, 3, size, size] mm."""
    from bora_policy.common.state import state_of
    from bora_policy.runtime.image_codec import metres_to_mm
    from bora_sim.env import make_env

    env = make_env("press_button", "standard", image_size=size)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    colors, depths = [], []
    q = state_of(obs)
    for _ in range(n):
        colors.append(obs["color"].copy())
        depths.append(metres_to_mm(obs["depth"]))
        q = q + rng.normal(0, 0.03, q.shape).astype(np.float32)  # the arm wanders: the images change
        obs, *_ = env.step(q)
    env.close()
    return np.stack(colors), np.stack(depths)


def publisher(mode: str, frames: str, seconds: float, hz: float, quality: int) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from bora_policy.runtime.image_codec import encode_color, encode_depth

    data = np.load(frames)
    colors, depths = data["color"], data["depth"]
    rclpy.init()
    node = rclpy.create_node("bench_transport_publisher")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    cls = CompressedImage if mode == "compressed-policy" else Image
    pubs = [(node.create_publisher(cls, f"/bench_tx/{c}/color", qos),
             node.create_publisher(cls, f"/bench_tx/{c}/depth", qos)) for c in CAMS]
    rng = np.random.default_rng(0)
    big_c = rng.integers(0, 255, 480 * 640 * 3, dtype=np.uint8).tobytes()
    big_d = rng.uniform(0.2, 2.0, 480 * 640).astype(np.float32).tobytes()
    while not all(p.get_subscription_count() > 0 for pair in pubs for p in pair):
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.5)
    print("ready", flush=True)
    period, n = 1.0 / hz, int(round(seconds * hz))
    nxt = time.monotonic()
    for i in range(n):
        stamp = node.get_clock().now().to_msg()
        f = i % len(colors)
        for j, (pc, pd) in enumerate(pubs):
            if mode == "raw-640x480":
                c = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=big_c)
                d = Image(height=480, width=640, encoding="32FC1", step=640 * 4, data=big_d)
            elif mode == "raw-policy":
                h, w = colors.shape[2:4]
                c = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=colors[f, j].tobytes())
                d = Image(height=h, width=w, encoding="16UC1", step=w * 2, data=depths[f, j].tobytes())
            else:
                fc, bc = encode_color(colors[f, j], "jpeg", quality)
                fd, bd = encode_depth(depths[f, j])
                c, d = CompressedImage(format=fc, data=bc), CompressedImage(format=fd, data=bd)
            for m in (c, d):
                m.header.stamp = stamp
                m.header.frame_id = str(i)
            pc.publish(c)
            pd.publish(d)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    time.sleep(1.0)  # let the last messages arrive before the writers go away
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def run_mode(mode: str, frames: str, seconds: float, hz: float, quality: int) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from bora_policy.runtime.image_codec import decode_compressed

    rclpy.init()
    node = rclpy.create_node("bench_transport_subscriber")
    got: dict[str, set[int]] = {}
    lat: list[float] = []
    nbytes: list[int] = []
    decode_s: list[float] = []
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    cls = CompressedImage if mode == "compressed-policy" else Image

    def cb(msg, key):
        now = node.get_clock().now().nanoseconds * 1e-9
        if mode == "compressed-policy":
            t0 = time.perf_counter()
            decode_compressed(msg)  # the subscriber's real work: the policy needs pixels
            decode_s.append(time.perf_counter() - t0)
        lat.append(now - (msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec))
        got.setdefault(key, set()).add(int(msg.header.frame_id))
        nbytes.append(len(msg.data))

    subs = [node.create_subscription(cls, f"/bench_tx/{c}/{k}", lambda m, key=f"{c}/{k}": cb(m, key), qos)
            for c in CAMS for k in ("color", "depth")]
    child = subprocess.Popen(
        [sys.executable, __file__, "--publisher", mode, frames, str(seconds), str(hz), str(quality)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"),
    )
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t_end = time.monotonic() + seconds + 60
    while child.poll() is None and time.monotonic() < t_end:
        ex.spin_once(timeout_sec=0.05)
    for _ in range(20):
        ex.spin_once(timeout_sec=0.01)
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)
    del subs
    node.destroy_node()
    rclpy.try_shutdown()
    expected = int(round(seconds * hz))
    per_stream = {k: len(v) for k, v in got.items()}
    lat_ms = np.asarray(lat) * 1e3 if lat else np.full(1, np.nan)
    return {
        "mode": mode,
        "streams": 6,
        "expected_per_stream": expected,
        "received_per_stream": per_stream,
        "dropped_total": int(6 * expected - sum(per_stream.values())),
        "latency_ms_median": float(np.median(lat_ms)),
        "latency_ms_p99": float(np.percentile(lat_ms, 99)),
        "mean_message_bytes": float(np.mean(nbytes)) if nbytes else 0.0,
        "decode_ms_median": float(np.median(decode_s) * 1e3) if decode_s else None,
        "publisher_rc": child.returncode,
    }


def quality_figures(colors: np.ndarray, depths: np.ndarray, quality: int) -> dict:
    from bora_policy.runtime.image_codec import decode_color, decode_depth, encode_color, encode_depth, psnr

    ps, exact, craw, cc, draw, dc = [], True, 0, 0, 0, 0
    for f in range(len(colors)):
        for j in range(colors.shape[1]):
            fc, bc = encode_color(colors[f, j], "jpeg", quality)
            fd, bd = encode_depth(depths[f, j])
            ps.append(psnr(decode_color(fc, bc), colors[f, j]))
            exact &= bool(np.array_equal(decode_depth(fd, bd), depths[f, j]))
            craw, cc, draw, dc = craw + colors[f, j].nbytes, cc + len(bc), draw + depths[f, j].nbytes, dc + len(bd)
    return {"psnr_db_min": float(np.min(ps)), "psnr_db_mean": float(np.mean(ps)), "depth_exact": exact,
            "color_ratio": craw / cc, "depth_ratio": draw / dc, "ratio": (craw + draw) / (cc + dc),
            "raw_bytes_per_set": (craw + draw) / len(colors), "compressed_bytes_per_set": (cc + dc) / len(colors)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--publisher":
        return publisher(argv[1], argv[2], float(argv[3]), float(argv[4]), int(argv[5]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hz", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=96, help="the policy's image side (VLAConfig.image_size: 96)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the colour images")
    ap.add_argument("--frames", type=int, default=30, help="rendered frame sets (cycled)")
    ap.add_argument("--modes", nargs="+", default=["raw-640x480", "raw-policy", "compressed-policy"])
    ap.add_argument("--shared", default="", help="say in transport.md that the machine was shared (free text)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine_info import machine

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    res: dict = {"machine": machine(), "config": vars(args), "runs": []}
    colors, depths = render_frames(args.frames, args.size)
    res["quality"] = quality_figures(colors, depths, args.quality)
    with tempfile.TemporaryDirectory() as tmp:
        frames = str(Path(tmp) / "frames.npz")
        np.savez(frames, color=colors, depth=depths)
        for mode in args.modes:
            r = run_mode(mode, frames, args.seconds, args.hz, args.quality)
            per_set = (3 * 480 * 640 * 7 if mode == "raw-640x480" else 6 * r["mean_message_bytes"])
            r["MB_per_min"] = per_set * args.hz * 60 / 1e6
            res["runs"].append(r)
            print(json.dumps(r), flush=True)
    write(res)
    return 0


def write(res: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "transport.json").write_text(json.dumps(res, indent=1, default=str))
    m, c, q = res["machine"], res["config"], res["quality"]
    by = {r["mode"]: r for r in res["runs"]}
    lines = [
        "# Camera transport: raw against compressed",
        "",
        f"`bench/bench_transport.py`: three RGB-D cameras at {c['hz']:g} Hz between two processes (rclpy, DDS on "
        f"loopback, RELIABLE depth 5), {c['seconds']:g} s per mode. Policy resolution = {c['size']} px "
        "(VLAConfig.image_size), frames rendered from the simulated press_button scene; compressed = image_transport "
        f"`compressed` JPEG (quality {c['quality']}) + `compressedDepth` 16-bit PNG (opencv-python), decoded by the "
        "subscriber.",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; 1-min load average at start "
        f"{m.get('load_avg_1m', 'n/a')}.",
    ]
    if c.get("shared"):
        lines += ["", f"**Shared machine**: {c['shared']}"]
    lines += [
        "",
        "| mode | message bytes (mean) | MB/min recorded | received / expected (min stream) | dropped frames "
        "| latency median | p99 | decode median |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = ["Latency: from the frame set's stamp, taken before its 6 images are encoded (compressed mode) and "
             "published, to the subscriber's receipt, before decoding; in compressed mode it includes the "
             "publisher's sequential encodes and any queueing behind decodes in the subscriber's executor. A "
             "publisher that falls behind 30 Hz is not counted as dropping frames (dropped = expected - unique "
             "frame ids received)."]
    for r in res["runs"]:
        rec = r["received_per_stream"]
        lines.append(
            f"| {r['mode']} | {r['mean_message_bytes']:,.0f} | {r['MB_per_min']:.1f} | "
            f"{min(rec.values()) if rec else 0} / {r['expected_per_stream']} | {r['dropped_total']} | "
            f"{r['latency_ms_median']:.1f} ms | {r['latency_ms_p99']:.1f} ms | "
            + (f"{r['decode_ms_median']:.2f} ms |" if r.get("decode_ms_median") is not None else "- |")
        )
    lines += [
        "",
        *notes,
        "",
        f"Over the {c['frames']} rendered frame sets x 3 cameras: compressed / raw payload at the policy's resolution "
        f"{q['ratio']:.1f}x smaller (colour {q['color_ratio']:.1f}x, depth {q['depth_ratio']:.1f}x); decoded colour "
        f"PSNR min {q['psnr_db_min']:.1f} dB, mean {q['psnr_db_mean']:.1f} dB; depth exact: "
        f"{'yes' if q['depth_exact'] else 'NO'}.",
    ]
    if "raw-policy" in by and "compressed-policy" in by:
        rp, cp = by["raw-policy"], by["compressed-policy"]
        lines += ["", f"Recorded MB per minute of a session at the policy's resolution: raw {rp['MB_per_min']:.1f}, "
                  f"compressed {cp['MB_per_min']:.1f} ({rp['MB_per_min'] / max(cp['MB_per_min'], 1e-9):.1f}x)."]
    if "raw-640x480" in by and "compressed-policy" in by:
        r0, cp = by["raw-640x480"], by["compressed-policy"]
        lines += [f"Against the cameras' native 640x480 raw streams: {r0['MB_per_min']:.0f} MB/min -> "
                  f"{cp['MB_per_min']:.1f} MB/min ({r0['MB_per_min'] / max(cp['MB_per_min'], 1e-9):.0f}x)."]
    (OUT / "transport.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
