"""Chunk inference latency: consistency expert (1/2/3 steps) vs diffusion expert (10/100 steps).

Both experts sit on the same VLM backbone.

For each expert setting, times (a) the action expert alone on a precomputed cognition token z_t and
(b) the full ``VLAPolicy.act`` path (VLM encode of 3 camera views + instruction + proprio, then the
expert), batch 1 (one replanning step on the robot), k = 32, action_dim 27 (7 arm + 20 hand).

* CPU: the tiny named config (``paligemma-tiny``, 3 x 96 px views).
* CUDA (when available): the PaliGemma-2-3B-shaped random init (``paligemma2-3b-shape``) with bf16
  weights (images resized to 224 px). Skipped cleanly on machines without CUDA (said in the output).

Writes ``bench/results/inference.json`` and ``inference.md`` (medians, ratios diffusion/consistency,
machine description).

    .venv/bin/python bench/bench_inference.py [--reps 30] [--threads 1] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = [("consistency", 1), ("consistency", 2), ("consistency", 3), ("diffusion", 10), ("diffusion", 100)]




def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn, dev, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    _sync(dev)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(ts), "p90_ms": float(np.percentile(ts, 90)), "reps": reps}


def bench_device(dev_name: str, vlm: str, args) -> dict:
    from bora_policy.models.action_expert import build_expert
    from bora_policy.models.vla import VLAConfig, VLAPolicy

    dev = torch.device(dev_name)
    torch.manual_seed(0)
    big = vlm != "paligemma-tiny"
    cfg = VLAConfig(
        vlm=vlm, expert="consistency", num_inference_steps=1, vlm_dtype="bfloat16" if big else "float32"
    )
    t0 = time.perf_counter()
    policy = VLAPolicy(cfg, device=dev).eval()
    build_s = time.perf_counter() - t0
    experts = {
        "consistency": policy.expert,
        "diffusion": build_expert(
            "diffusion",
            action_dim=cfg.action_dim,
            z_dim=policy.z_dim,
            state_dim=cfg.state_dim,
            chunk_size=cfg.chunk_size,
            hidden_dim=cfg.expert_hidden_dim,
            num_blocks=cfg.expert_num_blocks,
            cond_dim=cfg.expert_cond_dim,
        )
        .to(dev)
        .eval(),
    }
    rng = np.random.default_rng(0)
    B = args.batch
    obs = {
        "color": torch.from_numpy(
            rng.integers(0, 256, (B, cfg.n_cameras, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        ).to(dev),
        "instruction": "pick up the plush toy and place it in the box",
        "state": torch.from_numpy(rng.normal(size=(B, cfg.state_dim)).astype(np.float32)).to(dev),
    }
    reps = args.reps if not big else max(5, args.reps // 3)
    with torch.no_grad():
        z, state_n = policy.encode_with_state(obs)
        encode = _time(lambda: policy.encode_with_state(obs), dev, reps, args.warmup)
        rows = []
        for kind, steps in SETTINGS:
            ex = experts[kind]
            r_reps = reps if steps <= 10 else max(5, reps // 3)
            expert_t = _time(
                lambda ex=ex, steps=steps: ex.sample(z, state_n, steps), dev, r_reps, args.warmup
            )

            def full(ex=ex, steps=steps):
                zz, sn = policy.encode_with_state(obs)
                return policy.normalizer.denormalize_action(ex.sample(zz, sn, steps))

            full_t = _time(full, dev, r_reps, args.warmup)
            rows.append(
                {
                    "expert": kind,
                    "steps": steps,
                    "expert_only_ms": expert_t["median_ms"],
                    "expert_only_p90_ms": expert_t["p90_ms"],
                    "with_vlm_ms": full_t["median_ms"],
                    "with_vlm_p90_ms": full_t["p90_ms"],
                    "reps": r_reps,
                }
            )
            print(
                f"  {dev_name} {kind:11s} {steps:3d} steps: expert {expert_t['median_ms']:8.2f} ms, "
                f"with VLM {full_t['median_ms']:8.2f} ms",
                file=sys.stderr,
            )
    base = {r["steps"]: r for r in rows if r["expert"] == "consistency"}
    ratios = {}
    for r in rows:
        if r["expert"] == "diffusion":
            for n, c in base.items():
                ratios[f"diffusion{r['steps']}_over_consistency{n}"] = {
                    "expert_only": r["expert_only_ms"] / c["expert_only_ms"],
                    "with_vlm": r["with_vlm_ms"] / c["with_vlm_ms"],
                }
    n_vlm = sum(p.numel() for p in policy.vlm.parameters())
    n_exp = {k: sum(p.numel() for p in e.parameters()) for k, e in experts.items()}
    out = {
        "device": dev_name,
        "vlm": vlm,
        "vlm_params": n_vlm,
        "expert_params": n_exp,
        "batch": B,
        "vlm_dtype": cfg.vlm_dtype,
        "build_s": build_s,
        "encode_ms": encode["median_ms"],
        "rows": rows,
        "ratios": ratios,
    }
    if dev.type == "cuda":
        out["max_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 2**30
        torch.cuda.empty_cache()
    return out


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference.json").write_text(json.dumps(results, indent=2))
    m = results["machine"]
    lines = [
        "# Chunk inference latency (k = 32, action_dim 27, batch 1)",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs, torch threads {m['torch_threads']}), "
        f"{m['platform']}, Python {m['python']}, torch {m['torch']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else ", no GPU")
        + (f", load avg {m['load_avg_1m']:.2f}" if "load_avg_1m" in m else ""),
        "",
    ]
    for run in results["runs"]:
        lines += [
            f"## {run['device']}: `{run['vlm']}` ({run['vlm_params'] / 1e6:.2f} M VLM params, "
            f"{run['vlm_dtype']}; "
            f"expert {run['expert_params']['consistency'] / 1e6:.2f} M params)",
            "",
            f"VLM encode alone: {run['encode_ms']:.2f} ms (median)",
            "",
            "| expert | steps | expert only (ms) | incl. VLM encode (ms) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for r in run["rows"]:
            lines.append(
                f"| {r['expert']} | {r['steps']} | {r['expert_only_ms']:.2f} | {r['with_vlm_ms']:.2f} |"
            )
        lines += ["", "| ratio | expert only | incl. VLM |", "| --- | ---: | ---: |"]
        for k, v in run["ratios"].items():
            lines.append(f"| {k} | {v['expert_only']:.1f}x | {v['with_vlm']:.2f}x |")
        lines.append("")
    for s in results["skipped"]:
        lines.append(f"Skipped {s['device']} (`{s['vlm']}`): {s['reason']}.")
    (RESULTS / "inference.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=30, help="timed repetitions per setting (fewer for 100 steps)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    p.add_argument("--cpu-vlm", default="paligemma-tiny")
    p.add_argument("--cuda-vlm", default="paligemma2-3b-shape")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"machine": machine(), "runs": [], "skipped": []}
    for dev in args.devices:
        vlm = args.cpu_vlm if dev == "cpu" else args.cuda_vlm
        if dev == "cuda" and not torch.cuda.is_available():
            results["skipped"].append({"device": dev, "vlm": vlm, "reason": "no CUDA device on this machine"})
            print(f"cuda: skipped ({vlm}): no CUDA device on this machine", file=sys.stderr)
            continue
        results["runs"].append(bench_device(dev, vlm, args))
    write(results)
    print((RESULTS / "inference.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
