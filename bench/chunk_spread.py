"""How an offline run's action expert covers the demonstrated chunks: the deterministic chunk against the
sampled ones (issue 14: do BORA-Offline's weak open_box runs differ from the good ones on the demonstrations?).

The Gaussian PPO likelihood (``ActionExpert.log_prob``) is centred on ``mean_chunk``, the expert's output at
zero sampling noise; the policy acts on ``sample`` (noise drawn at ``sample_sigmas[0]``). With advantage 1 the
term is an MSE regression of ``mean_chunk`` towards every demonstrated chunk, whose minimiser is their
conditional mean. This script measures, on fixed batches of the run's dataset, for the arm and the hand
dimensions separately (normalised action units, RMS over steps and dims):

* ``mean_err``: ``mean_chunk`` - the demonstrated chunk;
* ``sample_err``: a sampled chunk - the demonstrated chunk (mean over ``--draws`` noise draws);
* ``spread``: the sampled chunks around their own mean (how much the noise changes the action);
* ``det_gap``: ``mean_chunk`` - the mean of the sampled chunks.

    .venv/bin/python bench/chunk_spread.py --data DATA RUN[=LABEL] [...] [--batches 8] [--draws 8] [--out OUT]

``--out OUT`` writes OUT.json and OUT.md (with the machine and the commit).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ppo_diag import loaded_run  # noqa: E402
from machine_info import machine  # noqa: E402

ARM = slice(0, 7)  # bora_sim's action layout: 7 arm joints, then the hand's joints


def _rms(x: torch.Tensor, mask: torch.Tensor) -> float:
    """RMS of ``x`` [B, k, d] over the valid steps ``mask`` [B, k] and the dims."""
    m = mask.to(x.dtype).unsqueeze(-1).expand_as(x)
    return float(((x.pow(2) * m).sum() / m.sum().clamp_min(1)).sqrt())


def chunk_stats(mean: torch.Tensor, samples: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> dict:
    """The module docstring's four figures for the arm and the hand: ``mean`` [B, k, A] the deterministic
    chunk, ``samples`` [D, B, k, A] sampled chunks, ``actions`` [B, k, A] the demonstrated ones, ``mask`` [B, k]."""
    centre = samples.mean(0)
    out, d = {}, len(samples)
    for part, sl in (("arm", ARM), ("hand", slice(ARM.stop, None))):
        out[f"{part}/mean_err"] = _rms((mean - actions)[..., sl], mask)
        out[f"{part}/sample_err"] = sum(_rms((s - actions)[..., sl], mask) for s in samples) / d
        out[f"{part}/spread"] = sum(_rms((s - centre)[..., sl], mask) for s in samples) / d
        out[f"{part}/det_gap"] = _rms((mean - centre)[..., sl], mask)
    return out


def spread_of_run(run: Path, data: Path, batches: int, draws: int) -> dict:
    with loaded_run(run, data) as (tr, loader):
        lr = tr.learner
        lr.eval()
        sums: dict[str, list[float]] = {}
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= batches:
                    break
                b = tr.prepare(batch)
                z = lr.encode(b["images"], b["instruction"], b["state_n"])
                prop = lr.expert_proprio(b["state_n"])
                a, mask = b["actions_n"].float(), b["mask"]
                mean = lr.expert.mean_chunk(z, prop).float()
                samples = torch.stack([lr.expert.sample(z, prop, generator=g).float() for _ in range(draws)])
                for key, v in chunk_stats(mean, samples, a, mask).items():
                    sums.setdefault(key, []).append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def markdown(res: dict, data: Path, batches: int, draws: int, info: dict) -> str:
    keys = [f"{p}/{k}" for p in ("arm", "hand") for k in ("mean_err", "sample_err", "spread", "det_gap")]
    lines = ["# The action expert's chunks on the demonstrations (bench/chunk_spread.py)", "",
             f"Measured at {info.get('commit')} on {info.get('cpu')} ({info.get('logical_cpus')} logical CPUs); data "
             f"`{data}`, {batches} fixed batches, {draws} noise draws; RMS in normalised action units over the "
             "valid steps (module docstring).", "",
             "| run | " + " | ".join(keys) + " |", "| --- | " + " | ".join("---" for _ in keys) + " |"]
    for label, r in res.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN[=LABEL]")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None, help="OUT.json and OUT.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    res = {}
    for spec in args.runs:
        run, _, label = spec.partition("=")
        if not (Path(run) / "config.yaml").is_file():
            raise SystemExit(f"chunk_spread: {run}: not an offline run directory (no config.yaml)")
        r = res[label or run] = spread_of_run(Path(run), args.data, args.batches, args.draws)
        print(f"{label or run}: " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    if args.out:
        info = machine(calibrate=False)
        doc = {"machine": info, "data": str(args.data), "batches": args.batches, "draws": args.draws, "runs": res}
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
        args.out.with_suffix(".md").write_text(markdown(res, args.data, args.batches, args.draws, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
