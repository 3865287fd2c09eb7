"""A control for an online run: the same residual stack, untrained.

Copies an online run (``bora train online --out``) and replaces every residual of its latest checkpoint (``residual_1
.. residual_R`` and ``residual``) by a fresh :class:`~bora_policy.models.residual.ResidualChunkActor` of the run's own
config (``init_scale`` as trained, so ``|A_res|`` is the init's), keeping the blend weights, the critic and the
normaliser. Evaluated on the same seeds as the run and its BORA-Offline start, it splits "BORA-Full - BORA-Offline"
into what any residual of that size does to the chunks and what the training added
(bench/results/random_residual_pick_and_place.md). Writes ``OUT/<name>_<j>`` for draws j = 0 .. N-1::

    python bench/random_residual.py --run runs/online --out runs/random --draws 2 --seed 2000
    bora eval --run runs/random/online_0 --task TASK --objects standard --trials 50 --seed0 300000 --out r0.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bora_policy.models.residual import ResidualChunkActor, ResidualConfig
from bora_trainer.checkpoint import TRAINER_STATE, latest_checkpoint, save_checkpoint

SKIP = ("recordings", "offline_buffer", "trainer", "checkpoints", "latest")  # data the evaluation does not read


def randomise(run: Path, out: Path, seed: int) -> Path:
    """``out``: a copy of ``run`` whose latest checkpoint's residuals are fresh inits (torch seed ``seed``)."""
    ck = latest_checkpoint(run)
    if ck is None:
        raise FileNotFoundError(f"--run {run}: no checkpoint (is it an online run directory?)")
    meta = json.loads((ck / "meta.json").read_text())
    extra = meta.get("extra", {})
    if extra.get("kind") != "residual":
        raise ValueError(f"--run {run}: checkpoint {ck.name} holds no residual (meta.json extra.kind)")
    if out.exists():
        raise FileExistsError(f"--out {out} exists; choose a new directory")
    shutil.copytree(run, out, ignore=shutil.ignore_patterns(*SKIP))
    cfg = ResidualConfig(**extra["residual_config"])
    torch.manual_seed(seed)
    modules, headers, trainer_state = {}, {}, None
    for f in sorted(meta["files"]):
        name, path = f.removesuffix(".safetensors"), ck / f
        if f == TRAINER_STATE:
            trainer_state = torch.load(path, weights_only=True)
        elif not name.startswith("residual"):
            modules[name] = load_file(path)  # the critic stays as trained
        else:
            modules[name] = ResidualChunkActor(**extra["dims"], cfg=cfg).state_dict()
            with safe_open(str(path), "pt") as h:  # the blend weight a single-file residual carries (alpha)
                headers[name] = {k: v for k, v in (h.metadata() or {}).items() if k != "step"}
    stack = [r["name"] for r in extra.get("residuals", [])]
    if stack and "residual" in modules:
        modules["residual"] = modules[stack[-1]]  # the current actor is the stack's last, as the trainer writes it
    save_checkpoint(out, int(meta["step"]), modules, trainer_state=trainer_state, extra=extra, keep_last=None,
                    metadata=headers)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="online run directory (bora train online --out)")
    ap.add_argument("--out", type=Path, required=True, help="directory for the copies")
    ap.add_argument("--draws", type=int, default=2, help="random inits (copies) to write")
    ap.add_argument("--seed", type=int, default=2000, help="torch seed of the first draw (then +1 per draw)")
    args = ap.parse_args(argv)
    if args.draws < 1:
        ap.error(f"--draws must be >= 1, got {args.draws}")
    args.out.mkdir(parents=True, exist_ok=True)
    for j in range(args.draws):
        print(randomise(args.run, args.out / f"{args.run.name}_{j}", args.seed + j))
    return 0


if __name__ == "__main__":
    sys.exit(main())
