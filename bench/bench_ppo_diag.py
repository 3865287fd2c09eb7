"""Why does BORA's offline PPO stage not help? Diagnostics of a trained ``bora`` offline run (issue 14).

Loads the run's latest checkpoint (a copy: the run directory is not touched) and, on ``--batches`` fixed
batches of its dataset, measures with the run's own config:

* the actor gradient of each term: ``|| grad lambda_bc L_BC ||`` and ``|| grad lambda_ppo L_PPO ||`` (Eq. 2
  with ratio 1, i.e. ``ppo_ref_refresh`` 1: the advantage-weighted log-likelihood gradient), for the
  action expert and the VLM separately, and the cosine between the two;
* the Gaussian head's sigma (``exp(log_std)`` per action dim: the PPO log-likelihood gradient on the mean
  scales with 1 / sigma^2 and is summed over the action dims);
* whether the critic's advantages rank the demonstrations: the chunk-mean advantage ``A_bar_t`` (Eq. 5,
  raw and normalised) per episode quality group (clean / noisy / hesitant / suboptimal, from the episodes'
  ``quality`` knobs), and the AUROC of ``A_bar_t`` for clean vs non-clean chunks (``stats.auroc``);
* the share of the clipped (max-norm) actor step that comes from the PPO term;
* whether the critic learned the return at all: ``V(z_t, 0)`` against the Monte-Carlo discounted return-to-go
  ``G_t`` of the demonstration it sits in (Pearson correlation and mean ``V - G``), and the AUROC of ``A_bar_t``
  for clean chunks against the chunks of the groups a return CAN tell apart (hesitant and suboptimal: slower or
  failed). Noisy demonstrations succeed as fast as clean ones (the same return), so no return-based critic can
  rank them; ``auroc_clean_vs_rest`` counts them, ``auroc_clean_vs_slower`` does not.

    .venv/bin/python bench/bench_ppo_diag.py --run RUN --data DATA [--batches 8] [--out diag.json]
    # every checkpoint of RUN (the critic's learning curve): OUT.json + OUT.md
    .venv/bin/python bench/bench_ppo_diag.py --run RUN --data DATA --all-checkpoints --out OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.eval_critic import mc_returns
from bora_trainer.offline.trainer import OfflineTrainer
from bora_trainer.stats import auroc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine  # noqa: E402


def quality_group(info: dict) -> str:
    q = info.get("quality") or {}
    if float(q.get("suboptimal", 0) or 0) > 0:
        return "suboptimal"
    if float(q.get("hesitation", 0) or 0) > 0:
        return "hesitant"
    if float(q.get("noise", 0) or 0) > 0:
        return "noisy"
    return "clean"


@contextmanager
def loaded_run(run: Path, data: Path, checkpoint: str | None = None):
    """``(trainer, loader)``: the run's latest checkpoint (or ``checkpoint``, a directory name under
    ``RUN/checkpoints``) in an OfflineTrainer on the CPU, loaded from a temporary copy (the run directory is not
    touched), and a loader over its dataset in a fixed order (seed 123)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("tb", "policy", "critic"))
        if checkpoint is not None:
            if not (copy / "checkpoints" / checkpoint).is_dir():
                raise SystemExit(f"--run: no checkpoint {checkpoint!r} under {run}/checkpoints")
            (copy / "latest").write_text(checkpoint)
        cfg = load_config(OfflineConfig, copy / "config.yaml")
        cfg.device = "cpu"
        tr = OfflineTrainer(cfg, data, copy, resume=True, progress=False)
        loader = torch.utils.data.DataLoader(tr.dataset, batch_size=cfg.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(123), drop_last=True)
        yield tr, loader


def _norm(grads) -> float:
    gs = [g for g in grads if g is not None]
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in gs))) if gs else 0.0


def _flat(grads, params) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params)])


def episode_labels(data: Path) -> tuple[dict[int, str], dict[int, np.ndarray]]:
    """``(quality group, rewards)`` of every episode of the dataset, by episode id."""
    groups, rewards = {}, {}
    for f in sorted((data / "episodes").glob("episode_*.json")):
        e = int(f.stem.split("_")[1])
        groups[e] = quality_group(json.loads(f.read_text()))
        with np.load(f.with_suffix(".npz")) as arrays:
            rewards[e] = arrays["reward"]
    return groups, rewards


def diagnose(run: Path, data: Path, batches: int, checkpoint: str | None = None, labels=None) -> dict:
    """Every figure of the module docstring for one checkpoint of ``run`` (default: its latest); ``labels`` is
    ``episode_labels(data)`` when the caller already has it."""
    groups, rewards = labels or episode_labels(data)
    with loaded_run(run, data, checkpoint) as (tr, loader):
        cfg, lr = tr.cfg, tr.learner
        lr.train()
        expert_p = [p for p in lr.expert.parameters() if p.requires_grad]
        vlm_p = [p for p in lr.vlm.parameters() if p.requires_grad]
        params = expert_p + vlm_p
        ne = len(expert_p)
        rows = []
        chunk_adv, chunk_adv_n, chunk_group, v0, g_mc = [], [], [], [], []
        rtg = {e: mc_returns(r, cfg.gamma) for e, r in rewards.items()}
        torch.manual_seed(0)
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            b = tr.prepare(batch)
            z = lr.encode(b["images"], b["instruction"], b["state_n"])
            _, q, v, _ = lr.critic_losses(b, z)
            mask = b["mask"]
            adv = L.action_level_gae(q, v, b["dones"], cfg.gamma, cfg.gae_lambda, mask)
            adv_n = L.normalize_advantages(adv, mask, cfg.adv_clip)
            prop = lr.expert_proprio(b["state_n"])
            bc = lr.expert.bc_loss(z, prop, b["actions_n"], mask)
            logp = lr.expert.log_prob(z, prop, b["actions_n"])
            ppo = L.clipped_ppo_loss(logp, logp.detach(), adv_n, mask, cfg.ppo_eps)
            g_bc = torch.autograd.grad(cfg.lambda_bc * bc, params, retain_graph=True, allow_unused=True)
            g_ppo = torch.autograd.grad(cfg.lambda_ppo * ppo, params, allow_unused=True)
            fb, fp = _flat(g_bc, params), _flat(g_ppo, params)
            tot = fb + fp
            rows.append({
                "bc_expert": _norm(g_bc[:ne]), "bc_vlm": _norm(g_bc[ne:]),
                "ppo_expert": _norm(g_ppo[:ne]), "ppo_vlm": _norm(g_ppo[ne:]),
                "cos": float(torch.dot(fb, fp) / (fb.norm() * fp.norm() + 1e-12)),
                # share of the summed step along the PPO gradient (projection), before max-norm clipping
                "ppo_share": float(torch.dot(tot, fp) / (tot.norm() ** 2 + 1e-12)),
            })
            a_bar = L.chunk_mean_advantage(adv, mask)
            a_bar_n = L.chunk_mean_advantage(adv_n, mask)
            chunk_adv += a_bar.tolist()
            chunk_adv_n += a_bar_n.tolist()
            chunk_group += [groups.get(int(e), "?") for e in batch["episode_id"]]
            v0 += v[:, 0].float().tolist()
            g_mc += [float(rtg[int(e)][int(t)]) for e, t in zip(batch["episode_id"], batch["t"])]
        sigma = lr.expert.log_std.detach().clamp(lr.expert.cfg.log_std_min, lr.expert.cfg.log_std_max).exp()
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    by_group = {}
    for g in sorted(set(chunk_group)):
        sel = [i for i, x in enumerate(chunk_group) if x == g]
        by_group[g] = {"n": len(sel), "adv_raw": float(np.mean([chunk_adv[i] for i in sel])),
                       "adv_norm": float(np.mean([chunk_adv_n[i] for i in sel]))}
    labels = [g == "clean" for g in chunk_group]
    slower = [i for i, g in enumerate(chunk_group) if g in ("clean", "hesitant", "suboptimal")]
    slower_labels = [chunk_group[i] == "clean" for i in slower]
    v0a, ga = np.asarray(v0), np.asarray(g_mc)
    res = {
        "run": str(run), "checkpoint": checkpoint or "latest", "batches": len(rows), "batch_size": cfg.batch_size,
        "lambda_bc": cfg.lambda_bc, "lambda_ppo": cfg.lambda_ppo, "grad": mean,
        "ppo_to_bc_expert": mean["ppo_expert"] / max(mean["bc_expert"], 1e-12),
        "ppo_to_bc_vlm": mean["ppo_vlm"] / max(mean["bc_vlm"], 1e-12),
        "sigma": {"min": float(sigma.min()), "mean": float(sigma.mean()), "max": float(sigma.max()),
                  "action_dims": int(sigma.numel())},
        "adv_by_quality": by_group,
        "auroc_clean_vs_rest": auroc(chunk_adv, labels) if 0 < sum(labels) < len(labels) else None,
        "auroc_clean_vs_slower": (auroc([chunk_adv[i] for i in slower], slower_labels)
                                  if 0 < sum(slower_labels) < len(slower_labels) else None),
        "v_vs_mc_return": {"corr": float(np.corrcoef(v0a, ga)[0, 1]), "bias": float(np.mean(v0a - ga)),
                           "g_mean": float(ga.mean()), "g_std": float(ga.std())},
    }
    return res


def _row(r: dict) -> str:
    v = r["v_vs_mc_return"]

    def f(x):
        return "n/a" if x is None else f"{x:.2f}"

    return (f"| {r['checkpoint']} | {f(r['auroc_clean_vs_rest'])} | {f(r['auroc_clean_vs_slower'])} | "
            f"{v['corr']:.2f} | {v['bias']:+.3f} | {r['ppo_to_bc_expert']:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--all-checkpoints", action="store_true",
                    help="diagnose every checkpoint of the run (a learning curve of the critic), not only the latest")
    ap.add_argument("--out", type=Path, default=None, help="OUT.json (and OUT.md with --all-checkpoints)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.all_checkpoints:
        res = diagnose(args.run, args.data, args.batches)
        text = json.dumps(res, indent=1)
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0
    names = sorted(p.name for p in (args.run / "checkpoints").glob("step_*") if p.is_dir())
    if not names:
        raise SystemExit(f"--run: no checkpoints under {args.run}/checkpoints")
    results = []
    lines = ["| checkpoint | AUROC A_bar clean vs rest | clean vs hesitant + suboptimal | corr(V, G_MC) | "
             "mean V - G_MC | PPO / BC grad (expert) |", "| --- | --- | --- | --- | --- | --- |"]
    labels = episode_labels(args.data)
    for name in names:
        results.append(diagnose(args.run, args.data, args.batches, name, labels))
        lines.append(_row(results[-1]))
        print(lines[-1], flush=True)
    if args.out:
        m = machine()
        args.out.with_suffix(".json").write_text(json.dumps({"machine": m, "runs": results}, indent=1))
        head = [f"Run `{args.run}` on `{args.data}`, every checkpoint, {args.batches} fixed batches each "
                f"(`bench/bench_ppo_diag.py --all-checkpoints`); commit {m['commit']}, {m['cpu']}, "
                f"{m['logical_cpus']} logical CPUs.", ""]
        args.out.with_suffix(".md").write_text("\n".join(head + lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
