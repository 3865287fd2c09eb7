"""Runtime benchmark: control-loop jitter, observation-to-command latency and missed ticks of the simulated
graph (`bora up --sim`, CPU, tiny demo VLA), and transport of three 640x480 RGB-D streams at 30 Hz between
processes. Writes bench/results/runtime.json and runtime.md (with the machine description).

    python bench/bench_runtime.py [--graph-seconds 20] [--transport-seconds 10]
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
OUT = ROOT / "bench" / "results"


def machine() -> dict:
    """bench/machine_info.py's description plus the ROS middleware."""
    from machine_info import machine as base  # bench/ is on sys.path when run as a script

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {**base(), "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
            "commit": git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)" if dirty else "")}


def publisher(seconds: float, hz: float) -> int:
    """Child process: three cameras, colour rgb8 + depth 32FC1 at 640x480, one stamp per frame set."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera_publisher")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [
        (
            node.create_publisher(Image, f"/bench/{c}/color", qos),
            node.create_publisher(Image, f"/bench/{c}/depth", qos),
        )
        for c in ("left", "front", "right")
    ]
    rng = np.random.default_rng(0)
    color = rng.integers(0, 255, 480 * 640 * 3, dtype=np.uint8).tobytes()
    depth = rng.uniform(0.2, 2.0, 480 * 640).astype(np.float32).tobytes()
    while not all(p.get_subscription_count() > 0 for pair in pubs for p in pair):
        rclpy.spin_once(node, timeout_sec=0.1)
    print("ready", flush=True)
    t_end = time.monotonic() + seconds
    period = 1.0 / hz
    nxt = time.monotonic()
    while time.monotonic() < t_end:
        stamp = node.get_clock().now().to_msg()
        for pc, pd in pubs:
            c = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=color)
            d = Image(height=480, width=640, encoding="32FC1", step=640 * 4, data=depth)
            c.header.stamp = d.header.stamp = stamp
            pc.publish(c)
            pd.publish(d)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def transport(seconds: float, hz: float = 30.0) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera_subscriber")
    lat: dict[str, list[float]] = {}
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)

    def cb(msg, key):
        now = node.get_clock().now().nanoseconds * 1e-9
        lat.setdefault(key, []).append(now - (msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec))

    for c in ("left", "front", "right"):
        for kind in ("color", "depth"):
            node.create_subscription(Image, f"/bench/{c}/{kind}", lambda m, k=f"{c}/{kind}": cb(m, k), qos)
    child = subprocess.Popen(
        [sys.executable, __file__, "--publisher", str(seconds), str(hz)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"),
    )
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t_end = time.monotonic() + seconds + 30
    while child.poll() is None and time.monotonic() < t_end:
        ex.spin_once(timeout_sec=0.05)
    for _ in range(20):
        ex.spin_once(timeout_sec=0.01)
    child.wait(timeout=10)
    node.destroy_node()
    rclpy.try_shutdown()
    all_lat = np.concatenate([np.asarray(v) for v in lat.values()]) * 1e3 if lat else np.zeros(1)
    expected = int(seconds * hz)
    return {
        "streams": 6,
        "resolution": "640x480",
        "rate_hz": hz,
        "seconds": seconds,
        "frame_bytes_set": 3 * (480 * 640 * 3 + 480 * 640 * 4),
        "received_per_stream_min": int(min((len(v) for v in lat.values()), default=0)),
        "expected_per_stream": expected,
        "latency_ms_median": float(np.median(all_lat)),
        "latency_ms_p99": float(np.percentile(all_lat, 99)),
        "latency_ms_max": float(all_lat.max()),
        "throughput_MB_s": 3 * (480 * 640 * 7) * hz / 1e6,
    }


def graph(seconds: float, with_viz: bool = False, control_hz: float = 10.0, params: tuple[str, ...] = (),
          settle: float = 0.0) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import ActionChunk, ExecutedCommand, JointCommand

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bora" / "demo_vla"
    cmd = [
        sys.executable,
        "-m",
        "bora_trainer.cli",
        "up",
        "--sim",
        "--duration",
        str(seconds + 120),
        "--demo-vla-dir",
        str(cache),
        "--param",
        "sim_bridge:operator_enabled:=false",
        "--control-hz",
        f"{control_hz:g}",
    ]
    for p in params:  # e.g. teleop:phase_lock:=false
        cmd += ["--param", p]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / "bora_bench_runtime_graph.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    rclpy.init()
    node = rclpy.create_node("bench_graph_probe")
    cmds, diags, chunks, execs, starts = [], [], [], [], []
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(
        JointCommand, "/bora/policy_command", lambda m: cmds.append((time.monotonic(), m)), rel
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(m), rel)
    node.create_subscription(
        ActionChunk, "/bora/action_chunk",
        lambda m: (chunks.append((_sec(m.header.stamp), m.episode_id, time.time())),
                   starts.append((_sec(m.header.stamp), m.episode_id, m.step))), rel,
    )
    node.create_subscription(
        ExecutedCommand, "/bora/executed_command",
        lambda m: execs.append((_sec(m.command.header.stamp), m.command.episode_id)), rel,
    )
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t_end = time.monotonic() + 180
    while not cmds and time.monotonic() < t_end:
        ex.spin_once(timeout_sec=0.1)
    # the phase locks converge over the first seconds after the first command: measured from that command
    # ("from_start") and, for the figures, after ``settle`` seconds
    t_first_ros, t_settled = time.time(), time.monotonic() + settle
    while time.monotonic() < t_settled:
        ex.spin_once(timeout_sec=0.05)
    viz = viz_info = None
    if with_viz:  # `bora viz --live` attached to the running graph (best-effort subscriptions)
        viz, viz_info = _start_viz(env, seconds)
    load_start = os.getloadavg()[0]
    t0, t0_ros = time.monotonic(), time.time()
    while time.monotonic() < t0 + seconds:
        ex.spin_once(timeout_sec=0.05)
    load_end = os.getloadavg()[0]
    if viz is not None:
        viz_info.update(_stop_viz(viz))
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    log.close()
    node.destroy_node()
    rclpy.try_shutdown()
    win = [m for t, m in cmds if t >= t0]
    st = np.asarray([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in win])
    # intervals within an episode; at an episode START the policy deliberately sends nothing until the
    # new episode's first chunk (reported separately as the start pauses)
    eps = np.asarray([m.episode_id for m in win])
    same = eps[1:] == eps[:-1]
    iv_all = np.diff(st) if len(st) > 1 else np.zeros(0)
    iv = iv_all[same] if same.any() else np.zeros(1)
    pauses = iv_all[~same]
    period = 1.0 / control_hz
    pol = [s for d in diags for s in d.status if s.hardware_id == "policy"]
    kv = {v.key: v.value for v in pol[-1].values} if pol else {}
    import runtime_latency

    sim_yaml = str(ROOT / "config" / "sim.yaml")

    def boundaries(t_from: float) -> dict:
        return runtime_latency.analyse(
            [c for c in chunks if c[0] >= t_from],
            [(_sec(m.header.stamp), m.episode_id, m.chunk_index, np.asarray(m.position)) for _, m in cmds
             if _sec(m.header.stamp) >= t_from],
            [e for e in execs if e[0] >= t_from], chunk_hz=10.0, control_hz=control_hz, blend_steps=2,
            vmax=runtime_latency.arbiter_limits(sim_yaml),
        )

    boundary = boundaries(t0_ros)
    import yaml

    pol_params = ((yaml.safe_load(Path(sim_yaml).read_text()) or {}).get("policy") or {}).get("ros__parameters") or {}
    replan = int(pol_params.get("replan_steps", 8))
    for p in params:  # a --param policy:replan_steps:=N of this run
        if p.startswith("policy:replan_steps:="):
            replan = int(p.split(":=", 1)[1])
    return {
        "with_viz": viz_info,
        "load_avg_1m_start": load_start,
        "load_avg_1m_end": load_end,
        "boundaries": boundary,
        "settle_s": settle,
        # chunk starts (the step each chunk was planned from) of the measured window, per episode
        "start_spacing": runtime_latency.start_spacing([(ep, st) for t, ep, st in starts if t >= t0_ros], replan),
        "boundaries_from_start": boundaries(t_first_ros) if settle > 0 else None,
        "control_hz": control_hz,
        "seconds": seconds,
        "commands": len(win),
        "rate_hz": float((len(st) - 1) / (st[-1] - st[0])) if len(st) > 1 else 0.0,
        "jitter_std_ms": float(iv.std() * 1e3),
        "jitter_p99_abs_ms": float(np.percentile(np.abs(iv - period), 99) * 1e3),
        "max_interval_ms": float(iv.max() * 1e3),
        # empty control slots within episodes: slots elapsed between an episode's first and last command
        # minus commands sent (the policy's step counter, so a message the probe dropped is not missed)
        "missed_ticks_probe": _missed_slots(win, st, period),
        "episode_starts": int(len(pauses)),
        "start_pause_ms_median": float(np.median(pauses) * 1e3) if len(pauses) else 0.0,
        "policy_diagnostics": {
            k: kv[k]
            for k in kv
            if k.endswith("_ms")
            or k.endswith("ms_mean")
            or "missed" in k
            or "late" in k
            or "ms_p99" in k
            or "ms_max" in k
            or k == "ticks"
            or k.startswith("plan_")
        },
    }


def _sec(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def _start_viz(env: dict, seconds: float):
    import tempfile

    rrd = Path(tempfile.mkdtemp(prefix="bora-bench-viz-")) / "live.rrd"
    viz = subprocess.Popen([sys.executable, "-m", "bora_trainer.cli", "viz", "--live", "--save", str(rrd),
                            "--duration", str(seconds + 60)], stderr=subprocess.PIPE, text=True, env=env)
    line = viz.stderr.readline()  # "bora viz: live, N topics (best-effort) ..."
    if "live" not in line:
        raise RuntimeError(f"bora viz --live did not start: {line}{viz.stderr.read()}")
    time.sleep(3.0)  # discovery
    return viz, {"rrd": str(rrd), "started": line.strip()}


def _stop_viz(viz) -> dict:
    viz.send_signal(signal.SIGINT)
    err = viz.communicate(timeout=60)[1]
    logged = [ln for ln in err.splitlines() if "logged" in ln]
    return {"exit": viz.returncode, "logged": logged[-1] if logged else err.strip()[-300:]}


def _viz_section(a: dict, b: dict, m: dict) -> list[str]:
    rows = []
    for name, g in (("without viewer", a), ("with `bora viz --live`", b)):
        pd = g["policy_diagnostics"]
        rows.append(f"| {name} | {g.get('load_avg_1m_start', float('nan')):.1f} |"
                    f" {g['rate_hz']:.2f} Hz | {g['jitter_std_ms']:.1f} ms | {g['jitter_p99_abs_ms']:.1f} ms"
                    f" | {g['max_interval_ms']:.0f} ms | {g['missed_ticks_probe']} of {g['commands']} | "
                    f"{pd.get('missed_ticks', 'n/a')} / {pd.get('late_ticks', 'n/a')} |")
    return [
        VIZ_HEADER,
        "",
        f"`python bench/bench_runtime.py --with-viz --graph-seconds {a['seconds']:g}`: the same graph measured twice,"
        " the second time with `bora viz --live --save` subscribed to every topic it shows (cameras included)"
        f" with best-effort QoS. 1-min load average at start {m.get('load_avg_1m', float('nan')):.1f} on "
        f"{m['logical_cpus']} shared cores: other work ran on the machine during both runs (load column: the"
        " 1-min load average at each run's start), and the viewer process competes for the same two cores.",
        "",
        "| run | load (1 min) | measured rate | jitter std | p99 abs deviation | max interval |"
        " empty slots (probe) | policy missed / late ticks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Viewer: {b['with_viz'].get('logged', '')}",
        "",
    ]


VIZ_HEADER = "## Graph with and without `bora viz --live` attached"


def _missed_slots(msgs, stamps: np.ndarray, period: float) -> int:
    """Control slots without a command, within episodes: per episode, slots elapsed between its first
    and last command minus the commands sent in between (a START pause is not a missed slot)."""
    missed = 0
    eps = np.asarray([m.episode_id for m in msgs])
    for ep in np.unique(eps):
        s = stamps[eps == ep]
        if len(s) > 1:
            missed += max(0, int(round((s[-1] - s[0]) / period)) - (len(s) - 1))
    return missed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--publisher":
        return publisher(float(argv[1]), float(argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph-seconds", type=float, default=20.0)
    ap.add_argument("--settle-seconds", type=float, default=5.0,
                    help="measure the graph from this long after its first command (the phase locks converge "
                         "first; the figures from the first command are kept as boundaries_from_start)")
    ap.add_argument("--transport-seconds", type=float, default=10.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0],
                    help="control rates of the graph runs (the chunks-planned-ahead section; default 10 30)")
    ap.add_argument("--graph-only", type=Path, default=None, metavar="JSON",
                    help="only the graph runs at --rates, written to JSON (e.g. the code before planning ahead, run "
                         "from its tree; bench/results/runtime_before.json adds its rows to the table)")
    ap.add_argument("--with-viz", action="store_true",
                    help="only the graph, measured without and then with `bora viz --live` attached; the "
                         "result replaces that section of runtime.md (runtime_viz.json)")
    ap.add_argument("--md-only", action="store_true", help="only rewrite runtime.md from runtime.json")
    ap.add_argument("--param", action="append", default=[], metavar="NODE:NAME:=VALUE",
                    help="passed to `bora up --param` in the graph runs (e.g. teleop:phase_lock:=false)")
    args = ap.parse_args(argv)
    if args.md_only:
        write_md(json.loads((OUT / "runtime.json").read_text()))
        return 0
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    OUT.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(), "params": args.param}
    if args.with_viz:
        print("simulated graph without, then with bora viz --live ...", flush=True)
        res["graph"] = graph(args.graph_seconds, settle=args.settle_seconds)
        res["graph_with_viz"] = graph(args.graph_seconds, with_viz=True, settle=args.settle_seconds)
        print(json.dumps(res, indent=1), flush=True)
        (OUT / "runtime_viz.json").write_text(json.dumps(res, indent=1))
        md_path = OUT / "runtime.md"
        old = md_path.read_text() if md_path.exists() else "# Runtime benchmark\n"
        keep = old.split(VIZ_HEADER)[0].rstrip("\n") + "\n\n"
        md_path.write_text(keep + "\n".join(_viz_section(res["graph"], res["graph_with_viz"], res["machine"])))
        print(f"wrote {OUT / 'runtime_viz.json'} and the viewer section of {md_path}")
        return 0
    if args.graph_only is not None:
        res["graphs"] = {f"{hz:g}": graph(args.graph_seconds, control_hz=hz, params=tuple(args.param),
                                          settle=args.settle_seconds)
                         for hz in args.rates}
        args.graph_only.write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1), f"\nwrote {args.graph_only}", flush=True)
        return 0
    print("transport of 3 RGB-D streams (640x480, 30 Hz) ...", flush=True)
    res["transport"] = transport(args.transport_seconds)
    print(json.dumps(res["transport"], indent=1), flush=True)
    res["graphs"] = {}
    for hz in args.rates:
        print(f"simulated graph (bora up --sim) at {hz:g} Hz ...", flush=True)
        res["graphs"][f"{hz:g}"] = graph(args.graph_seconds, control_hz=hz, params=tuple(args.param),
                                          settle=args.settle_seconds)
        print(json.dumps(res["graphs"][f"{hz:g}"], indent=1), flush=True)
    res["graph"] = res["graphs"].get("10", next(iter(res["graphs"].values())))
    (OUT / "runtime.json").write_text(json.dumps(res, indent=1))
    write_md(res)
    print(f"wrote {OUT / 'runtime.json'} and {OUT / 'runtime.md'}")
    return 0


def write_md(res: dict) -> None:
    """runtime.md from a runtime.json result (and the node-alone / before / viewer files next to it)."""
    import runtime_report
    g, t, m = res["graph"], res["transport"], res["machine"]
    md = [
        "# Runtime benchmark",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m['cpu']}, {m['logical_cpus']} cores "
        f"(shared; 1-min load average at start {m.get('load_avg_1m', float('nan')):.1f}), "
        f"Python {m['python']}, torch {m['torch']} (CPU), {m['rmw']}, DDS on loopback.",
        "",
        "## Simulated graph (`bora up --sim`: bridge + sync + policy [+ teleop], tiny"
        " demo VLA, 96 px cameras)",
        "",
        "| control rate | measured rate | jitter std | p99 abs deviation | max interval"
        " | empty slots (probe) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {g['control_hz']:g} Hz | {g['rate_hz']:.2f} Hz | {g['jitter_std_ms']:.1f} ms | "
        f"{g['jitter_p99_abs_ms']:.1f} ms | "
        f"{g['max_interval_ms']:.0f} ms | {g['missed_ticks_probe']} of {g['commands']} |",
        "",
        "Intervals and empty slots are within episodes: at each of the "
        f"{g['episode_starts']} episode starts the policy sends nothing until the new episode's first "
        f"chunk (median pause {g['start_pause_ms_median']:.0f} ms).",
        "",
        "Policy node's own diagnostics: " + ", ".join(f"{k}={v}" for k, v in g["policy_diagnostics"].items()),
        "",
        "obs_to_command: from an observation's stamp to the first command of the chunk computed from it. The node's "
        "own obs_to_command_ms_* above count every chunk, each episode's first included (it waits for the new "
        "episode's observation); the table below, from the probe's recording, leaves those out.",
        "",
        *runtime_report.planned_section(res["graphs"], m, OUT / "runtime_before.json"),
        *runtime_report.grid_section(OUT / "runtime_grid.json"),
        *runtime_report.node_section(OUT / "runtime_node.json"),
        "## Transport: three 640x480 RGB-D streams at 30 Hz between two processes (rgb8 + 32FC1)",
        "",
        "| streams | throughput | received / expected per stream | latency median | p99 | max |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {t['streams']} | {t['throughput_MB_s']:.0f} MB/s | "
        f"{t['received_per_stream_min']} / {t['expected_per_stream']} | "
        f"{t['latency_ms_median']:.1f} ms | {t['latency_ms_p99']:.1f} ms | {t['latency_ms_max']:.1f} ms |",
        "",
    ]
    if (OUT / "runtime_viz.json").exists():  # keep the last with/without-viewer measurement
        v = json.loads((OUT / "runtime_viz.json").read_text())
        md += _viz_section(v["graph"], v["graph_with_viz"], v["machine"])
    (OUT / "runtime.md").write_text("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
