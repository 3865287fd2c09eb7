"""Online residual RLPD update throughput (Table 3 Phase 2: up to 15k updates per round).

Times ``OnlineLearner.update`` (critic Eq. 1/3/4 + critic regulariser + Polyak targets, residual actor
BC + Eq. 6 hinge + anchor + L2) on batches drawn 1:1 by ``MixedSampler`` from two replay buffers, with
batch 128, k = 32, action_dim 27 (7 arm + 20 hand joints) and z_dim of the tiny VLA config. Reports
updates/s and the projected time of 15k updates on this CPU and on CUDA when available, and writes
``bench/results/updates.json`` and ``updates.md`` with the machine description.

    .venv/bin/python bench/bench_updates.py [--updates 200] [--threads N] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"




def tiny_z_dim(name: str) -> int:
    from bora_policy.models.vlm import build_vlm

    return int(build_vlm(name, state_dim=None, device="cpu").z_dim)


def make_buffers(spec, n_off: int, n_on: int, seed: int = 0):
    from bora_trainer.data.replay import ChunkReplayBuffer

    rng = np.random.default_rng(seed)
    k, A, S, Z = spec.chunk_size, spec.action_dim, spec.state_dim, spec.z_dim
    out = []
    for n, online in ((n_off, False), (n_on, True)):
        b = ChunkReplayBuffer(spec)
        vla = rng.normal(size=(n, k, A)).astype(np.float32)
        b.add(
            dict(
                z=rng.normal(size=(n, Z)),
                proprio=rng.normal(size=(n, S)),
                vla=vla,
                action=vla + 0.1 * rng.normal(size=vla.shape),
                reward=-0.002 * np.ones((n, k)),
                done=np.zeros((n, k), bool),
                mask=np.ones((n, k), bool),
                is_intervention=(rng.random((n, k)) < 0.3) & online,
                beta=np.zeros((n, k)),
                next_z=rng.normal(size=(n, Z)),
                next_proprio=rng.normal(size=(n, S)),
                next_vla=rng.normal(size=(n, k, A)),
                next_valid=np.ones(n, bool),
            )
        )
        out.append(b)
    return out


def bench_device(device: str, args, z_dim: int) -> dict:
    from bora_policy.models.critic import ChunkCritic
    from bora_trainer.algorithms.online import OnlineConfig, OnlineLearner
    from bora_trainer.data.replay import MixedSampler, ReplaySpec

    k, A, S = args.chunk, args.action_dim, args.action_dim
    spec = ReplaySpec(z_dim, S, A, k, "bench")
    off, on = make_buffers(spec, 4096, 1024)
    torch.manual_seed(0)
    # default (offline) critic size
    critic = ChunkCritic(z_dim=z_dim, action_dim=A, chunk_size=k, hidden_dim=args.critic_hidden)
    learner = OnlineLearner(
        critic, S, A, k, z_dim, OnlineConfig(batch_size=args.batch), normalizer_version="bench", device=device
    )
    sampler = MixedSampler(off, on, args.batch, seed=0, device="cpu")
    n_actor = sum(p.numel() for p in learner.actor.parameters())
    n_critic = sum(p.numel() for p in learner.critic.parameters() if p.requires_grad)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        learner.update(sampler.sample())
    sync()
    t0 = time.perf_counter()
    t_sample = 0.0
    for _ in range(args.updates):
        ts = time.perf_counter()
        b = sampler.sample()
        t_sample += time.perf_counter() - ts
        learner.update(b)
    sync()
    dt = time.perf_counter() - t0
    ups = args.updates / dt
    return {
        "device": device,
        "updates": args.updates,
        "seconds": dt,
        "updates_per_s": ups,
        "ms_per_update": 1000 * dt / args.updates,
        "sampling_ms_per_update": 1000 * t_sample / args.updates,
        "projected_15k_updates_s": 15000 / ups,
        "meets_5min_target": 15000 / ups < 300,
        "residual_params": n_actor,
        "critic_trainable_params": n_critic,
        "bf16_autocast": learner.use_bf16,
    }


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "updates.json").write_text(json.dumps(results, indent=2))
    m, c = results["machine"], results["config"]
    lines = [
        "# Online residual RLPD update throughput",
        "",
        f"`bench/bench_updates.py`: `OnlineLearner.update` (bora-residual) with batch {c['batch']} "
        f"(1:1 offline/online), "
        f"k = {c['chunk']}, action_dim = {c['action_dim']}, z_dim = {c['z_dim']} ({c['vlm']}), "
        f"ChunkCritic hidden_dim {c['critic_hidden']} (twin Q + V, with targets).",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads), {m['platform']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else ", no GPU")
        + f"; 1-min load average at start {m.get('load_avg_1m', 'n/a')}.",
        "",
        "| device | updates/s | ms/update | of which sampling | 15k updates | < 5 min |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['device']} | {r['updates_per_s']:.1f} | {r['ms_per_update']:.1f} | "
            f"{r['sampling_ms_per_update']:.1f} | {r['projected_15k_updates_s'] / 60:.1f} min | "
            f"{'yes' if r['meets_5min_target'] else 'no'} |"
        )
    for d in results.get("skipped", []):
        lines.append(f"| {d['device']} | - | - | - | - | {d['reason']} |")
    r0 = results["runs"][0]
    lines += [
        "",
        f"Residual actor: {r0['residual_params']:,} parameters; critic (trainable): "
        f"{r0['critic_trainable_params']:,}.",
    ]
    (RESULTS / "updates.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=200, help="timed updates per device")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--action-dim", type=int, default=27)
    p.add_argument("--vlm", default="paligemma-tiny", help="named VLM config whose z_dim is used")
    p.add_argument("--critic-hidden", type=int, default=256, help="ChunkCritic hidden_dim (its default: 256)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    z_dim = tiny_z_dim(args.vlm)
    results = {
        "machine": machine(),
        "config": {
            "batch": args.batch,
            "chunk": args.chunk,
            "action_dim": args.action_dim,
            "z_dim": z_dim, "critic_hidden": args.critic_hidden,
            "vlm": args.vlm,
        },
        "runs": [],
        "skipped": [],
    }
    for dev in args.devices:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            results["skipped"].append({"device": dev, "reason": "no CUDA device on this machine"})
            continue
        r = bench_device(dev, args, z_dim)
        results["runs"].append(r)
        print(
            f"{dev}: {r['updates_per_s']:.1f} updates/s ({r['ms_per_update']:.1f} ms), 15k updates in "
            f"{r['projected_15k_updates_s'] / 60:.1f} min",
            file=sys.stderr,
        )
    write(results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
