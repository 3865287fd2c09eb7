"""``bora bag``: ``convert`` rosbag2 recordings into episodes and chunk transitions, ``info`` on bags.

Exit codes: 0 done, 1 warnings with ``--strict`` (or an internal error), 2 input error (a bag that
cannot be read, a missing topic, a required topic of another type), 3 output error (the output is a
file, its meta.json unreadable or for other cameras, not writable). Every error is one line naming
the path and what was expected; the traceback only with ``--debug``. See :mod:`bag_convert`.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from bora_policy.common.rewards import RewardConfig
from bora_trainer.data import bag_convert as C
from bora_trainer.data.bag_io import BagReadError, read_bag
from bora_trainer.data.bag_output import OutputError


def _reward_cfg(path: str | None) -> RewardConfig:
    if not path:
        return RewardConfig()
    from bora_trainer.config_io import load_config, read_yaml

    try:
        data = read_yaml(path)
        section = "rewards" if "rewards" in data else None
        return load_config(RewardConfig, data, section=section)
    except Exception as e:  # noqa: BLE001 - any problem with the file is an input error of one line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if str(path) not in msg:
            msg = f"{path}: {msg}"
        raise C.ConversionError(f"{msg} (expected a YAML file with reward constants)") from None


def _info(bags: list[str]) -> int:
    bad = 0
    for b in bags:
        d = read_bag(b)
        counts: dict[int, int] = defaultdict(int)
        for cid, _, _ in d.messages:
            counts[cid] += 1
        flags = [w for w, on in (("TRUNCATED", d.truncated), ("DAMAGED", bool(d.damage))) if on]
        print(f"{b}: {len(d.messages)} messages{' (' + ', '.join(flags) + ')' if flags else ''}")
        for cid, conn in sorted(d.connections.items(), key=lambda x: x[1].topic):
            print(f"  {conn.topic:48s} {conn.msgtype:36s} {counts[cid]}")
        for dmg in d.damage:
            print(f"  damage: {dmg.describe()}")
        for w in d.warnings:
            print(f"  warning: {w}")
        bad += bool(d.damage or d.truncated)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 warnings with --strict (or an internal error), 2 input error, 3 output error."""
    p = argparse.ArgumentParser(prog="bora bag", description="rosbag2 recordings of the BORA topics -> data.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = p.add_subparsers(dest="verb", required=True, metavar="<verb>")
    c = sub.add_parser(
        "convert",
        help="bags -> episodes (bora-episodes/1) + chunk transitions",
        description=C.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("bags", nargs="+", help="rosbag2 directories (MCAP or sqlite3) or single .mcap/.db3 files")
    c.add_argument("--out", required=True, help="output directory (created; existing episodes are kept)")
    c.add_argument(
        "--rewards", help="YAML with reward constants (a 'rewards' section, e.g. config/trainer.yaml)"
    )
    c.add_argument(
        "--transitions-only", action="store_true", help="no episode files (no /bora/observation needed)"
    )
    c.add_argument(
        "--fps", type=float, help="control rate (default: estimated from the ExecutedCommand stamps)"
    )
    c.add_argument(
        "--strict", action="store_true", help="exit 1 on any warning (truncation, duplicates, ...)"
    )
    c.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error")
    i = sub.add_parser("info", help="topics, types, message counts and damage of bags")
    i.add_argument("bags", nargs="+")
    i.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error")
    args = p.parse_args(argv)
    try:
        if args.verb == "info":
            return _info(args.bags)
        cfg = C.ConvertConfig(
            rewards=_reward_cfg(args.rewards), transitions_only=args.transitions_only, fps=args.fps
        )
        rep = C.convert(args.bags, args.out, cfg, progress=sys.stderr.isatty())
    except (C.MissingTopicsError, C.ConversionError, BagReadError) as e:
        if args.debug:
            raise
        print(f"bora bag {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except OutputError as e:
        if args.debug:
            raise
        print(f"bora bag {args.verb}: output error: {e}", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - one line, the traceback only with --debug
        if args.debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(
            f"bora bag {args.verb}: internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in rep.episodes:
        for w in e.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(
            f"episode {e.source_episode_id} of session {e.session_id[:12]} -> {e.episode_id}: {e.status}, "
            f"{e.num_steps} steps, {e.num_chunks} chunks, outcome {e.outcome}, {e.content_hash[:12]}"
        )
    print(f"{args.out}: {rep.summary()}")
    n_warn = len(rep.warnings) + sum(len(e.warnings) for e in rep.episodes)
    return 1 if args.strict and n_warn else 0


if __name__ == "__main__":
    sys.exit(main())
