"""``bora train offline``: the offline phase (BORA and the Table 1 baselines) on an episode dataset.

    bora train offline --algo bora --data DATASET --config config/offline_demo.yaml --out runs/demo
    torchrun --nproc_per_node 8 -m bora_trainer.offline.cli --algo bora --data D --config \
        config/offline_8xh100.yaml --out RUN

Data parallel under torchrun (``torch.distributed``: nccl on CUDA, gloo on CPU): each process reads
``batch_size`` samples per update through a ``DistributedSampler`` (so the global batch is
``world_size * batch_size``), gradients are averaged by DDP (or FSDP2 with ``fsdp: true``), and only rank
0 writes checkpoints, TensorBoard logs and the progress bar. Pooled batch statistics (advantage
normalisation, the gate) are all-reduced so every rank takes the same decision.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.offline.data import EPISODE_FILTERS
from bora_trainer.offline.distributed import setup_distributed, teardown_distributed
from bora_trainer.offline.trainer import OfflineTrainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora train offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--algo",
        choices=registry.offline_names(),
        default=None,
        help="offline algorithm (default: the config's `algo`, else bora)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="episode dataset directory (docs/interfaces.md; with --resume: default the run's data_dir)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML file with OfflineConfig fields (default: Table 3; with --resume: RUN/config.yaml)",
    )
    p.add_argument(
        "--out", required=True, help="run directory (checkpoints, tb, config.yaml, normalizer.json)"
    )
    p.add_argument(
        "--updates",
        type=int,
        default=None,
        help="total number of updates (overrides total_updates; PPO start scales with it "
        "unless ppo_start_step is set)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start from the weights of another run (OfflineConfig.init_from: the VLM, and the expert / "
        "critic where they are of the same kind), e.g. a shared cp-bc warm-up; ignored with --resume",
    )
    p.add_argument(
        "--episodes",
        choices=tuple(EPISODE_FILTERS),
        default=None,
        help="train on all episodes, only the clean expert demonstrations, or every successful episode "
        "(OfflineConfig.episodes)",
    )
    p.add_argument(
        "--rollouts",
        nargs="+",
        default=None,
        metavar="DIR",
        help="recorded autonomous rollouts (`bora eval --record DIR`) read with --data: critic and PPO on "
        "every step, BC on the successful ones only (OfflineConfig.rollout_data)",
    )
    p.add_argument(
        "--gate-scope",
        choices=("batch", "ppo_chunk", "off"),
        default=None,
        help="what a closed advantage gate (Eq. 5) withholds: the whole actor step (batch, the paper's "
        "literal gate), the PPO term of each low-advantage chunk with BC always applied (ppo_chunk), "
        "or nothing (off); OfflineConfig.gate_scope",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN/latest (weights, optimisers, step)"
    )
    p.add_argument("--fsdp", action="store_true", help="FSDP2 sharding instead of DDP (multi-process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; $BORA_NUM_THREADS caps it). Give 1 per job when jobs share "
        "the cores: a row beside another job with the default threads ran ~10x slower on 2 cores",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 0:
        raise SystemExit(f"bora train offline: --threads must be >= 0 (0 = torch's default), got {args.threads}")
    overrides = {}
    if args.algo:
        overrides["algo"] = args.algo
    if args.updates is not None:
        overrides["total_updates"] = args.updates
    if args.fsdp:
        overrides["fsdp"] = True
    if args.episodes:
        overrides["episodes"] = args.episodes
    if args.gate_scope:
        overrides["gate_scope"] = args.gate_scope
    if args.rollouts:
        for d in args.rollouts:
            if not (Path(d) / "meta.json").is_file():
                raise SystemExit(f"bora train offline: --rollouts {d}: not an episode directory (no meta.json)")
        overrides["rollout_data"] = [str(Path(d).resolve()) for d in args.rollouts]
    if args.init_from:
        overrides["init_from"] = str(Path(args.init_from).resolve())
    source = args.config
    if source is None and args.resume and (Path(args.out) / "config.yaml").exists():
        source = Path(args.out) / "config.yaml"  # resume with the run's own resolved config
    try:
        cfg = load_config(OfflineConfig, source, overrides=overrides)
    except (ValueError, OSError) as e:  # a bad field or value: one line naming it
        raise SystemExit(f"bora train offline: {e}") from None
    data = args.data or cfg.data_dir
    if not data:
        raise SystemExit("bora train offline: --data is required (the config names no data_dir)")
    # --threads (default: torch's), capped by $BORA_NUM_THREADS, which always wins (README, "Benchmarks")
    threads = min(args.threads or torch.get_num_threads(), int(os.environ.get("BORA_NUM_THREADS", "64")))
    torch.set_num_threads(max(1, threads))
    di = setup_distributed(cfg.device)
    ok = False
    try:
        try:
            trainer = OfflineTrainer(
                cfg, data, args.out, resume=args.resume, dist_info=di, progress=not args.no_progress
            )
        except (FileExistsError, ValueError) as e:  # a used run directory; a config the data or algorithm refuses
            raise SystemExit(f"bora train offline: {e}") from None
        last = trainer.train()
        if di.is_main:
            summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()) if k.startswith("loss/"))
            print(f"offline {cfg.algo}: {trainer.step} updates -> {args.out} ({summary})", file=sys.stderr)
        ok = True
    finally:
        teardown_distributed(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
