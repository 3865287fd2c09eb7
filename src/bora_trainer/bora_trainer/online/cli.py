"""``bora train online --env sim|ros``: the online phase (Sec. 3.2, Algorithm 1 multi-round).

    bora train online --env sim --task pick_plush_toy --rounds 2 --episodes-per-round 10 \
        --offline-run runs/offline --offline-data data/pick_plush_toy --out runs/online [--algo bora-residual]

One loop (:mod:`bora_trainer.online.loop`), two environments: ``--env sim`` rolls the episodes out in
this process (:mod:`bora_trainer.online.env_sim`), ``--env ros`` runs them through the ROS 2 graph
(``bora up --sim --with trainer``: :mod:`bora_trainer.online.run_ros`; the trainer node's episode source
is :mod:`bora_trainer.online.env_ros`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bora_trainer.config_io import load_config, read_yaml
from bora_trainer.online.config import OnlineRunConfig, resolve_reward


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora train online", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--env",
        default="sim",
        choices=["sim", "ros"],
        help="sim: episodes rolled out in this process (bora_sim env + scripted operator); ros: through the "
        "ROS 2 graph (bora up --sim --with trainer: bridge, sync, policy, teleop, trainer node on recorded "
        "bags; bora_trainer/online/run_ros.py)",
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="--env ros: give up after this many seconds"
    )
    p.add_argument("--task", default=None, help="bora_sim task (overrides the config)")
    p.add_argument("--rounds", type=int, default=None, help="adaptation rounds (Algorithm 1 multi-round)")
    p.add_argument(
        "--episodes-per-round", type=int, default=None, help="online episodes per round (paper: 10)"
    )
    p.add_argument(
        "--offline-run", required=True, help="offline run directory (VLA + critic + normalizer.json)"
    )
    p.add_argument("--offline-data", required=True, help="the offline episode dataset (D_offline of RLPD)")
    p.add_argument("--out", required=True, help="online run directory")
    p.add_argument("--algo", default=None, help="online objective: bora-residual (default), aloe, habc")
    p.add_argument(
        "--config", default=None, help="YAML with OnlineRunConfig fields (e.g. config/online_tiny.yaml)"
    )
    p.add_argument("--max-updates", type=int, default=None, help="updates per round (Table 3: 15000)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the online loop's log lines on stderr (info: ingested episodes, waits, round ends)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bora_trainer.progress import log_to_stderr

    log_to_stderr("bora train online", args.log_level)
    try:
        cfg = load_config(OnlineRunConfig, args.config)
        explicit = (read_yaml(args.config) or {}).get("reward") if args.config else None
        note = resolve_reward(cfg, args.offline_data, explicit)  # one reward definition offline and online
    except (ValueError, OSError) as e:  # a bad config field or value, a dataset without meta.json: one line
        print(f"bora train online: {e}", file=sys.stderr)
        return 2
    if note:
        print(f"bora train online: {note}", file=sys.stderr)
    for name in ("task", "rounds", "episodes_per_round", "seed", "device"):
        v = getattr(args, name)
        if v is not None:
            setattr(cfg, name, v)
    if args.algo is not None:
        cfg.online.algo = args.algo
    if cfg.online.critic_mc_weight > 0 and cfg.online.algo != "bora-residual":
        print(f"bora train online: online.critic_mc_weight {cfg.online.critic_mc_weight:g} is read by algo "
              f"bora-residual only; algo {cfg.online.algo} trains its critic on its own target", file=sys.stderr)
    if args.max_updates is not None:
        cfg.online.max_updates = args.max_updates
    if cfg.rounds < 1 or cfg.episodes_per_round < 1:
        print("bora train online: --rounds and --episodes-per-round must be >= 1", file=sys.stderr)
        return 2
    if not (Path(args.offline_run) / "config.yaml").is_file():  # checked again where it is loaded (online/vla.py)
        print(f"bora train online: --offline-run {args.offline_run}: no config.yaml (expected an offline run "
              "directory: bora train offline --out)", file=sys.stderr)
        return 2
    if args.env == "ros":
        from bora_trainer.online.run_ros import train_ros

        summary = train_ros(
            cfg, args.offline_run, args.offline_data, args.out, progress=not args.no_progress, timeout_s=args.timeout
        )
        print(json.dumps(summary, indent=2))
        return 0
    from bora_trainer.online.env_sim import train_sim

    summary = train_sim(cfg, args.offline_run, args.offline_data, args.out, progress=not args.no_progress)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k != "rounds"}
            | {"rounds": [{k: v for k, v in r.items() if k != "episodes"} for r in summary["rounds"]]},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
