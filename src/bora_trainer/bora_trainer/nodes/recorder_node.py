"""``bora record`` / ``recorder_node``: record the BORA topics into an MCAP rosbag2 without ``ros2 bag``.

Raw rclpy subscriptions (``raw=True``: the CDR bytes as received) are written by rosbags into a
rosbag2 directory (``metadata.yaml`` + ``<name>.mcap``), the same layout as
``ros2 bag record -s mcap -o DIR $(bora record --print-topics)``. Topics and types come from the
preset ``config/record_topics.yaml``; every preset topic gets a connection in the bag at start,
so a topic that never published (e.g. no takeover) is still known to have been recorded.
The message definitions of ``bora_msgs`` are stored in the bag (parsed from the ``.msg`` files).

Crash safety: each message is written as its own MCAP record and flushed at once (fsync at
least every second); a SIGKILL keeps everything up to the last complete message, which
``bora bag convert`` reads without the missing footer and ``metadata.yaml``. SIGINT / SIGTERM
close the bag cleanly (summary, footer, ``metadata.yaml``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from bora_trainer.data import bag_schema as S
from bora_trainer.nodes.msg_types import import_msg_class


class BagRecorder:
    """Writes raw (serialized) messages of known topics into a crash-safe rosbag2 (no rclpy)."""

    def __init__(self, path: str | Path, specs: list[S.TopicSpec], storage: str = "mcap"):
        self.specs, self.storage = list(specs), storage
        self.ts = S.build_typestore()
        self._open(Path(path))
        self.count = 0
        self._last_t = 0
        self._lock = threading.Lock()
        self.closed = False

    def _open(self, path: Path) -> None:
        from bora_trainer.data.bag_io import open_writer

        self.path = path
        self.writer = open_writer(self.path, self.storage)
        self.conns = {}
        for sp in self.specs:
            try:
                self.conns[sp.topic] = self.writer.add_connection(sp.topic, sp.msgtype, typestore=self.ts)
            except Exception as e:  # noqa: BLE001 - a type the typestore lacks: say which
                raise S.BagSchemaError(
                    f"cannot record {sp.topic}: unknown message type {sp.msgtype} ({e})"
                ) from e

    def roll(self, path: str | Path) -> None:
        """Close this bag (its metadata written, so readers see it closed) and go on in a new one at ``path`` with
        the same topics. A message that arrives meanwhile waits for the lock and goes into the new bag: none is
        lost. The trainer node rolls its live recording at each round start (nodes/trainer_node.py)."""
        with self._lock:
            if self.closed:
                raise RuntimeError(f"BagRecorder.roll: {self.path} is closed")
            self.writer.close()
            try:
                self._open(Path(path))
            except Exception:
                self.closed = True  # no writer: nothing more can be recorded, and the caller must say so
                raise

    def write(self, topic: str, raw: bytes, t_ns: int | None = None) -> None:
        with self._lock:
            if self.closed:
                return
            t = time.time_ns() if t_ns is None else int(t_ns)
            t = max(t, self._last_t)  # non-decreasing log times (un-indexed MCAP readers need order)
            self._last_t = t
            self.writer.write(self.conns[topic], t, raw)
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.writer.close()


def make_subscriptions(node, recorder: BagRecorder, specs: list[S.TopicSpec], depth: int = 200) -> list[str]:
    """Raw subscriptions of every preset topic whose message class imports; returns the skipped ones."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(
        depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
    )
    skipped = []
    for sp in specs:
        try:
            cls = import_msg_class(sp.msgtype)
        except (ImportError, AttributeError):
            skipped.append(sp.topic)
            continue
        node.create_subscription(cls, sp.topic, lambda raw, t=sp.topic: recorder.write(t, raw), qos, raw=True)
    return skipped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora record", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", help="bag directory to create (default: recordings/bora_<date-time>)")
    p.add_argument("--preset", help="topic preset YAML (default: config/record_topics.yaml)")
    p.add_argument("--groups", help="comma-separated preset groups (default: the preset's default_groups)")
    p.add_argument("--cameras", help="comma-separated camera names for {cam} (default: the preset's)")
    p.add_argument("--storage", default="mcap", choices=["mcap"], help="storage plugin (mcap: crash-safe)")
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: until SIGINT)"
    )
    p.add_argument(
        "--print-topics",
        action="store_true",
        help="print the topic names (for `ros2 bag record -s mcap -o DIR $(bora record --print-topics)`)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)
    specs = S.load_preset(
        args.preset,
        args.groups.split(",") if args.groups else None,
        args.cameras.split(",") if args.cameras else None,
    )
    if args.print_topics:
        print(" ".join(sp.topic for sp in specs))
        return 0
    out = Path(args.output or f"recordings/bora_{time.strftime('%Y%m%d_%H%M%S')}")
    from bora_policy.common.node import declare_graph_params, ros_session, start_main

    # SIGINT / SIGTERM set session.stop: the bag is closed (summary, footer, metadata.yaml) before the node
    with ros_session("bora_recorder", ["bora_record", *ros_args]) as session:
        node = session.node
        graph = []
        if start_main(lambda: graph.append(declare_graph_params(node)) or 0):
            return 2
        if not args.cameras:  # {cam} over the graph's cameras (config/graph.yaml or the graph_file parameter)
            specs = S.load_preset(args.preset, args.groups.split(",") if args.groups else None, list(graph[0].cameras))
        rec = BagRecorder(out, specs, args.storage)
        try:
            skipped = make_subscriptions(node, rec, specs)
            for t in skipped:
                node.get_logger().warning(f"not recording {t}: its message package is not importable")
            print(f"recording {len(specs) - len(skipped)} topics into {out} (ready)", flush=True)
            session.spin(args.duration)
        finally:
            rec.close()
    print(f"recorded {rec.count} messages into {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
