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

With ``--demos``, the same statistics of what the BC term asks of the residual instead: the demonstration's
chunk minus A_VLA on D_offline's rows (the run's offline dataset through its frozen offline VLA, as the
online stage builds D_offline; valid steps only). Needs the run's offline run and data directories (named in
``RUN/config.yaml``).

    .venv/bin/python bench/residual_shift.py RUN [RUN...] [--demos] [--top 5] [--json F]
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
    return stats((out.final_norm - vla).reshape(-1, vla.shape[-1]), policy.action_std, int(vla.shape[0]))


def stats(shift: torch.Tensor, action_std: torch.Tensor, rows: int) -> dict:
    """Mean, spread, both in physical units, and bias share of ``shift`` [n, A] (normalised units)."""
    shift, action_std = shift.double(), torch.as_tensor(action_std).double()
    mean, std = shift.mean(0), shift.std(0, unbiased=False)
    return {
        "rows": rows,
        "mean": mean.numpy(),
        "std": std.numpy(),
        "mean_phys": (mean * action_std).numpy(),
        "std_phys": (std * action_std).numpy(),
        "bias_share": float((mean**2).sum() / (shift**2).mean(0).sum().clamp_min(1e-12)),
    }


def demo_stats(action: np.ndarray, vla: np.ndarray, mask: np.ndarray, action_std) -> dict:
    """Statistics of what BC asks on D_offline's rows: ``action - vla`` ([rows, k, A], normalised) over the
    valid steps (``mask`` [rows, k])."""
    keep = mask.astype(bool)
    shift = torch.from_numpy((action - vla)[keep])
    return stats(shift, torch.as_tensor(np.asarray(action_std, float)), int(action.shape[0]))


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


def run_demo_stats(run: Path) -> dict:
    """:func:`demo_stats` of an online run's D_offline, rebuilt as the run built it."""
    sys.path.insert(0, str(ROOT / "src" / "bora_trainer"))
    import yaml

    from bora_trainer.config_io import from_dict
    from bora_trainer.data.replay import ReplaySpec
    from bora_trainer.online.config import OnlineRunConfig
    from bora_trainer.online.vla import FrozenVLA, offline_buffer_for

    meta = yaml.safe_load((run / "config.yaml").read_text())
    cfg = from_dict(OnlineRunConfig, meta["online_run"])
    vla = FrozenVLA(meta["offline_run"], torch.device("cpu"), cfg.deterministic_base)
    n = vla.normalizer
    spec = ReplaySpec(vla.z_dim, n.state_dim, n.action_dim, vla.k, n.version)
    arr = offline_buffer_for(cfg, vla, meta["offline_data"], spec, progress=False).arrays()
    return {"alpha": 1.0, **demo_stats(arr["action"], arr["vla"], arr["mask"], n.action_std + n.eps)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="online run directories (bora train online --out)")
    p.add_argument("--top", type=int, default=5, help="dimensions listed per run, largest |mean| first")
    p.add_argument("--arm", type=int, default=7, help="the first ARM dimensions are the arm's joints (rad)")
    p.add_argument("--demos", action="store_true", help="what BC asks instead: demonstration - A_VLA on D_offline")
    p.add_argument("--json", type=Path, help="write every run's statistics here")
    a = p.parse_args()
    torch.set_num_threads(1)
    res = {}
    print("| run | rows | alpha | bias share | arm joints' shift, rms over rows and steps (rad) | "
          "largest mean shifts: dim mean (std) [physical mean] |")
    print("|---|---|---|---|---|---|")
    for run in a.runs:
        s = run_demo_stats(run) if a.demos else run_stats(run)
        res[str(run)] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        top = np.argsort(-np.abs(s["mean"]))[: a.top]
        cells = ", ".join(f"{i} {s['mean'][i]:+.3f} ({s['std'][i]:.3f}) [{s['mean_phys'][i]:+.4f}]" for i in top)
        arm = np.sqrt(s["mean_phys"][: a.arm] ** 2 + s["std_phys"][: a.arm] ** 2)
        print(f"| {run.parent.name}/{run.name} | {s['rows']} | {s['alpha']:.2f} | {s['bias_share']:.2f} | "
              f"{' '.join(f'{x:.3f}' for x in arm)} | {cells} |")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
