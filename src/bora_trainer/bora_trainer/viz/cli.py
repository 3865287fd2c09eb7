"""``bora viz``: a recording, an episode dataset or the live graph in the Rerun viewer.

    bora viz --bag recordings/run_001 --save run_001.rrd          # a file for `rerun run_001.rrd`
    bora viz --dataset data/online/episodes --episode 3 --serve --port 9090
    bora viz --live --serve --port 9090                              # the running graph (a ROS node)

``--serve`` hosts the web viewer of the rerun-sdk wheel on 127.0.0.1 only (open the printed URL;
over SSH: ``ssh -L 9090:127.0.0.1:9090 -L <grpc>:127.0.0.1:<grpc>``). Bad input (a missing or
corrupt recording or dataset, a port in use, a topic whose type has no view) is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bora_trainer.viz.log import VizInputError

APP_ID = "bora_viz"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bora viz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", metavar="DIR", help="a rosbag2 recording (MCAP or sqlite3 directory, or one file)")
    src.add_argument("--dataset", metavar="DIR", help="a BORA episode dataset (meta.json + episodes/)")
    src.add_argument("--live", action="store_true", help="subscribe to the running graph (best-effort QoS)")
    p.add_argument("--episode", type=int, nargs="+", metavar="N", help="--dataset: only these episode ids")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="--bag: only these topics")
    p.add_argument("--raw-cameras", action="store_true",
                   help="--bag: also the raw /cameras/* topics when /bora/observation is recorded")
    p.add_argument("--image-every", type=int, default=1, metavar="N", help="log every N-th camera frame")
    p.add_argument("--save", metavar="FILE.rrd", help="write the recording to this .rrd file")
    p.add_argument("--serve", action="store_true", help="host the web viewer on 127.0.0.1:--port")
    p.add_argument("--port", type=int, default=9090, help="web viewer port (default 9090)")
    p.add_argument("--grpc-port", type=int, default=0, help="data port of the viewer (default: a free one)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="--serve/--live: stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def record(args, rrd: Path) -> str:
    """Log the chosen offline source into ``rrd``; returns a one-line summary."""
    import rerun as rr

    from bora_trainer.viz.blueprint import default_blueprint
    from bora_trainer.viz.log import VizLogger
    from bora_trainer.viz.sources import log_bag, log_dataset

    rec = rr.RecordingStream(APP_ID, recording_id=f"bora-viz-{Path(args.bag or args.dataset).name}")
    rrd.parent.mkdir(parents=True, exist_ok=True)
    rec.save(str(rrd))
    viz = VizLogger(rec, image_every=args.image_every)
    if args.bag:
        summary = log_bag(viz, args.bag, topics=args.topics, raw_cameras=args.raw_cameras)
    else:
        summary = log_dataset(viz, args.dataset, episodes=args.episode)
    rec.send_blueprint(default_blueprint(summary.cameras))
    rec.flush()
    rec.disconnect()
    for w in summary.warnings:
        print(f"bora viz: warning: {w}", file=sys.stderr)
    hidden = f"; not shown: {', '.join(sorted(summary.not_shown))}" if summary.not_shown else ""
    return (f"{sum(summary.shown.values())} messages/steps from {len(summary.shown)} stream(s), "
            f"cameras {summary.cameras}{hidden}")


def _wait(proc, duration: float) -> None:
    t_end = time.monotonic() + duration if duration > 0 else float("inf")
    try:
        while proc.poll() is None and time.monotonic() < t_end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def run(args) -> int:
    from bora_trainer.viz import serve as S

    if not args.save and not args.serve:
        raise VizInputError("nothing to do: give --save FILE.rrd and/or --serve")
    if args.save and not str(args.save).endswith(".rrd"):
        raise VizInputError(f"--save {args.save}: expected a file name ending in .rrd")
    if args.image_every < 1:
        raise VizInputError(f"--image-every {args.image_every}: expected an integer >= 1")
    if args.serve:  # fail on a taken port before any work
        S.check_port(args.port)
        if args.grpc_port:
            S.check_port(args.grpc_port, "--grpc-port")
    if args.live:  # the live viewer is a ROS node: its own process (bora_trainer.cli.exec_node)
        from bora_trainer.cli import exec_node

        exec_node("bora_trainer.nodes.viz_node", args.argv)
    tmp = None
    if args.save:
        rrd = Path(args.save)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bora-viz-")
        rrd = Path(tmp.name) / "view.rrd"
    try:
        print(f"bora viz: {record(args, rrd)}", file=sys.stderr)
        if args.save:
            print(f"bora viz: wrote {rrd} (open with: .venv/bin/rerun {rrd})", file=sys.stderr)
        if args.serve:
            proc, url = S.start_server(args.port, args.grpc_port or None, rrd=rrd)
            print(f"bora viz: serving {url}  (127.0.0.1 only; Ctrl-C stops)", file=sys.stderr, flush=True)
            try:
                _wait(proc, args.duration)
            finally:
                S.stop_server(proc)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, run_fn=None) -> int:
    """``bora viz``; ``run_fn`` replaces :func:`run` (the live node's ``run_live``, same arguments)."""
    import signal

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    signal.signal(signal.SIGTERM, _sigterm)  # `kill` stops the viewer server as Ctrl-C does
    try:
        return (run_fn or run)(args)
    except VizInputError as e:
        if args.debug:
            raise
        print(f"bora viz: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
