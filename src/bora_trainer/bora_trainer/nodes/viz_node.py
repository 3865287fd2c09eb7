"""``bora viz --live``: the running graph into the Rerun viewer (a thin rclpy node).

Subscribes to what config/bora.rviz shows (the raw camera topics) and to the BORA topics
(/bora/observation for the measured state, /bora/action_chunk, /bora/value,
/bora/executed_command, /bora/intervention, /bora/episode, /bora/checkpoint) with best-effort,
volatile QoS of depth 5: a slow viewer loses its own messages and never makes a publisher wait,
so the control graph runs as without it (bench/bench_runtime.py --with-viz measures that).
All logging is :class:`bora_trainer.viz.log.VizLogger`; this file only wires subscriptions.
"""

from __future__ import annotations

import sys
import threading
import time

from bora_trainer.data import bag_schema as S
from bora_trainer.nodes.msg_types import import_msg_class
from bora_trainer.viz.log import T_IMAGE, VIEWED_TYPES, VizInputError, VizLogger, camera_from_topic


def live_topics(cameras: list[str] | None = None) -> list[S.TopicSpec]:
    """The preset's topics that have a view: BORA topics + raw colour/depth images (not camera_info)."""
    specs = S.load_preset(cameras=cameras)
    return [sp for sp in specs if sp.msgtype in VIEWED_TYPES
            and (sp.msgtype != T_IMAGE or camera_from_topic(sp.topic) is not None)]


def make_subscriptions(node, viz: VizLogger, specs: list[S.TopicSpec], lock: threading.Lock) -> list[str]:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    skipped = []
    for sp in specs:
        try:
            cls = import_msg_class(sp.msgtype)
        except (ImportError, AttributeError):
            skipped.append(sp.topic)
            continue

        def cb(msg, sp=sp):
            with lock:
                try:
                    viz.log_message(sp.msgtype, msg, time.time_ns(), sp.topic)
                except VizInputError as e:
                    node.get_logger().warning(f"{sp.topic}: not shown ({e})", throttle_duration_sec=5.0)

        node.create_subscription(cls, sp.topic, cb, qos)
    return skipped


def run_live(args) -> int:
    """Called by ``bora viz --live`` (ports already checked)."""
    import rerun as rr

    from bora_trainer.viz import serve as SV
    from bora_trainer.viz.blueprint import default_blueprint
    from bora_trainer.viz.cli import APP_ID

    specs = live_topics()
    rec = rr.RecordingStream(APP_ID)
    sinks = []
    proc = None
    if args.save:
        sinks.append(rr.FileSink(str(args.save)))
    if args.serve:
        grpc_port = args.grpc_port or SV.free_port()
        proc, url = SV.start_server(args.port, grpc_port)
        sinks.append(rr.GrpcSink(SV.proxy_url(grpc_port)))
    cams = sorted({c[0] for sp in specs if (c := camera_from_topic(sp.topic))})
    rec.set_sinks(*sinks, default_blueprint=default_blueprint(cams))
    viz = VizLogger(rec, image_every=args.image_every, observation_images=False)
    from bora_policy.common.node import declare_graph_params, ros_session, start_main

    # Ctrl-C / SIGTERM end the loop (session.stop); then the recording stream is flushed and the server stopped
    try:
        with ros_session("bora_viz", ["bora_viz"]) as session:
            node = session.node
            if start_main(lambda: declare_graph_params(node) and 0):  # the graph's cameras, visible to ros2 param
                return 2
            lock = threading.Lock()
            skipped = make_subscriptions(node, viz, specs, lock)
            for t in skipped:
                node.get_logger().warning(f"not shown: {t} (its message package is not importable)")
            print(f"bora viz: live, {len(specs) - len(skipped)} topics (best-effort)"
                  + (f"; serving {url} (127.0.0.1 only)" if proc else "")
                  + (f"; saving {args.save}" if args.save else ""), file=sys.stderr, flush=True)
            session.spin(args.duration)
    finally:
        rec.flush()
        rec.disconnect()
        if proc is not None:
            SV.stop_server(proc)
    print(f"bora viz: logged {sum(viz.counts.values())} messages ({viz.counts})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``bora viz --live ...`` (exec'd by ``bora viz``: same arguments and errors, ports already checked)."""
    from bora_trainer.viz.cli import main as viz_main

    return viz_main(argv, run_fn=run_live)


if __name__ == "__main__":
    sys.exit(main())
