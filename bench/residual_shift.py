"""How far an online run's residuals move the executed chunk from the frozen VLA's, per action dimension (issue 14).

For every row of the run's online replay buffer (``RUN/replay/online``: z, proprioception and the VLA's chunk
A_VLA of each chunk start the robot planned from), the deployed stack's composite is
``A_final = fold(frozen residuals, A_VLA) + alpha * A_res`` (Algorithm 1 lines 8-15, the run's last
checkpoint). The shift ``A_final - A_VLA`` per action dimension, over all rows and chunk steps, is reported as

* ``mean``: its mean, normalised units (a correction the residual applies whatever the state: a bias);
* ``std``: its standard deviation over rows and steps (what depends on the state);
* ``mean_phys`` / ``std_phys``: both in physical units (times ``action_std``: rad for the arm's joint targets);
* ``bias_share``: ``sum(mean^2) / sum(E[shift^2])`` over the dimensions, the share of the shift's energy that
  is a constant offset.

    .venv/bin/python bench/residual_shift.py RUN [RUN...] [--top 5] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def shift_stats(policy, alpha: float, proprio: torch.Tensor, vla: torch.Tensor, z: torch.Tensor) -> dict:
    """Statistics of ``A_final - A_VLA`` over rows and chunk steps (module docstring) for a
    ``ResidualPolicy`` with its current residual at ``alpha``; numpy arrays per action dimension."""
    with torch.no_grad():
        out = policy.compose(z, proprio, vla, alpha)
    shift = (out.final_norm - vla).double().reshape(-1, vla.shape[-1])  # [rows * k, A]
    mean, std = shift.mean(0), shift.std(0, unbiased=False)
    return {
        "rows": int(vla.shape[0]),
        "mean": mean.numpy(),
        "std": std.numpy(),
        "mean_phys": (mean * policy.action_std.double()).numpy(),
        "std_phys": (std * policy.action_std.double()).numpy(),
        "bias_share": float((mean**2).sum() / (shift**2).mean(0).sum().clamp_min(1e-12)),
    }


def load_rows(run: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(proprio, A_VLA, z) of every row in ``RUN/replay/online``'s shards."""
    shards = sorted((run / "replay" / "online").glob("shard_*.npz"))
    if not shards:
        raise FileNotFoundError(f"{run}: no replay/online/shard_*.npz (not an online run directory)")
    cols: dict[str, list] = {"proprio": [], "vla": [], "z": []}
    for f in shards:
        with np.load(f) as d:
            for k in cols:
                cols[k].append(d[k])
    return tuple(torch.from_numpy(np.concatenate(cols[k])).float() for k in ("proprio", "vla", "z"))


def run_stats(run: Path) -> dict:
    sys.path.insert(0, str(ROOT / "src" / "bora_policy"))
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.residual import load_residual_checkpoint

    policy, alpha = load_residual_checkpoint(run, Normalizer.load(run / "normalizer.json"))
    return {"alpha": alpha, **shift_stats(policy, alpha, *load_rows(run))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="online run directories (bora train online --out)")
    p.add_argument("--top", type=int, default=5, help="dimensions listed per run, largest |mean| first")
    p.add_argument("--arm", type=int, default=7, help="the first ARM dimensions are the arm's joints (rad)")
    p.add_argument("--json", type=Path, help="write every run's statistics here")
    a = p.parse_args()
    torch.set_num_threads(1)
    res = {}
    print("| run | rows | alpha | bias share | arm joints' shift, rms over rows and steps (rad) | "
          "largest mean shifts: dim mean (std) [physical mean] |")
    print("|---|---|---|---|---|---|")
    for run in a.runs:
        s = run_stats(run)
        res[str(run)] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        top = np.argsort(-np.abs(s["mean"]))[: a.top]
        cells = ", ".join(f"{i} {s['mean'][i]:+.3f} ({s['std'][i]:.3f}) [{s['mean_phys'][i]:+.4f}]" for i in top)
        arm = np.sqrt(s["mean_phys"][: a.arm] ** 2 + s["std_phys"][: a.arm] ** 2)
        print(f"| {run.name} | {s['rows']} | {s['alpha']:.2f} | {s['bias_share']:.2f} | "
              f"{' '.join(f'{x:.3f}' for x in arm)} | {cells} |")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
