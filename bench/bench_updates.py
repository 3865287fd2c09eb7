"""Online residual RLPD update throughput (Table 3 Phase 2: up to 15k updates per round).

Times ``OnlineLearner.update`` (critic Eq. 1/3/4 + critic regulariser + Polyak targets, residual actor
BC + Eq. 6 hinge + anchor + L2) on batches drawn 1:1 by ``MixedSampler`` from two replay buffers, with
batch 128, k = 32, action_dim 27 (7 arm + 20 hand joints) and z_dim of the tiny VLA config. Reports
updates/s and the projected time of 15k updates on this CPU and on CUDA when available, and writes
``bench/results/updates.json`` and ``updates.md`` with the machine description.

Each configuration (device x torch threads x precision) is timed ``--repeats`` times over ``--updates``
updates; the median is reported (the CPU may be shared: every repeat is listed in the JSON).
``--precision bf16`` is ``OnlineConfig.precision = "bf16"`` (bf16 autocast, also on a CPU).

    .venv/bin/python bench/bench_updates.py [--updates 20] [--repeats 3] [--threads 1 2]
        [--precision fp32 bf16] [--devices cpu cuda]
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


def bench_device(device: str, args, z_dim: int, threads: int = 0, precision: str = "auto") -> dict:
    from bora_policy.models.critic import ChunkCritic
    from bora_trainer.algorithms.online import OnlineConfig, OnlineLearner
    from bora_trainer.data.replay import MixedSampler, ReplaySpec

    k, A, S = args.chunk, args.action_dim, args.action_dim
    spec = ReplaySpec(z_dim, S, A, k, "bench")
    off, on = make_buffers(spec, 4096, 1024)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    # default (offline) critic size
    critic = ChunkCritic(
        z_dim=z_dim, action_dim=A, chunk_size=k, hidden_dim=args.critic_hidden, num_layers=args.critic_layers
    )
    cfg = OnlineConfig(batch_size=args.batch, precision=precision)
    learner = OnlineLearner(critic, S, A, k, z_dim, cfg, normalizer_version="bench", device=device)
    sampler = MixedSampler(off, on, args.batch, seed=0, device="cpu")
    n_actor = sum(p.numel() for p in learner.actor.parameters())
    n_critic = sum(p.numel() for p in learner.critic.parameters() if p.requires_grad)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        learner.update(sampler.sample())
    sync()
    reps, samp, cpu = [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        t_sample = 0.0
        for _ in range(args.updates):
            ts = time.perf_counter()
            b = sampler.sample()
            t_sample += time.perf_counter() - ts
            learner.update(b)
        sync()
        reps.append((time.perf_counter() - t0) / args.updates)
        cpu.append((time.process_time() - c0) / args.updates)
        samp.append(t_sample / args.updates)
    per = statistics.median(reps)
    ups = 1.0 / per
    return {
        "device": device,
        "threads": torch.get_num_threads() if device == "cpu" else threads,
        "precision": "bf16" if learner.use_bf16 else "fp32",
        "updates": args.updates,
        "repeats": args.repeats,
        "ms_per_update_repeats": [1000 * r for r in reps],
        "seconds": per * args.updates,
        "updates_per_s": ups,
        "ms_per_update": 1000 * per,
        "sampling_ms_per_update": 1000 * statistics.median(samp),
        # process CPU time (all threads): with one thread, the update's cost without waiting for a shared core
        "cpu_ms_per_update": 1000 * statistics.median(cpu),
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
        f"ChunkCritic hidden_dim {c['critic_hidden']}, {c.get('critic_layers', 2)} step-MLP layers "
        f"(twin Q + V, with targets). Median of {c.get('repeats', 1)} repeats of {c.get('updates', '?')} updates.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads), {m['platform']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else ", no GPU")
        + f"; 1-min load average at start {m.get('load_avg_1m', 'n/a')}.",
        "",
        "| device | threads | precision | updates/s | ms/update | of which sampling | CPU ms/update | 15k updates "
        "| < 5 min |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['device']} | {r.get('threads', '-')} | {r.get('precision', '-')} | "
            f"{r['updates_per_s']:.2f} | {r['ms_per_update']:.1f} | "
            f"{r['sampling_ms_per_update']:.1f} | {r.get('cpu_ms_per_update', float('nan')):.1f} | "
            f"{r['projected_15k_updates_s'] / 60:.1f} min | "
            f"{'yes' if r['meets_5min_target'] else 'no'} |"
        )
    for d in results.get("skipped", []):
        lines.append(f"| {d['device']} | - | - | - | - | - | - | - | {d['reason']} |")
    r0 = results["runs"][0]
    lines += [
        "",
        "ms/update and the 15k projection are wall clock; CPU ms/update is the process CPU time (all threads): "
        "with one thread it is the cost of an update without waiting for a core shared with other work.",
        "",
        f"Residual actor: {r0['residual_params']:,} parameters; critic (trainable): "
        f"{r0['critic_trainable_params']:,}.",
    ]
    if results.get("note"):
        lines += ["", results["note"]]
    (RESULTS / "updates.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=20, help="timed updates per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--action-dim", type=int, default=27)
    p.add_argument("--vlm", default="paligemma-tiny", help="named VLM config whose z_dim is used")
    p.add_argument("--critic-hidden", type=int, default=256, help="ChunkCritic hidden_dim (its default: 256)")
    p.add_argument("--critic-layers", type=int, default=2, help="ChunkCritic num_layers (its default: 2)")
    p.add_argument(
        "--threads", type=int, nargs="+", default=[0], help="torch CPU thread counts to time (0 = torch default)"
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=["auto"],
        choices=["auto", "fp32", "bf16"],
        help="OnlineConfig.precision values to time (auto: bf16 on CUDA, fp32 on CPU)",
    )
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    p.add_argument("--note", default="", help="free text appended to updates.md (e.g. a before/after comparison)")
    args = p.parse_args(argv)
    if args.updates < 1 or args.repeats < 1:
        p.error("--updates and --repeats must be >= 1")
    z_dim = tiny_z_dim(args.vlm)
    results = {
        "machine": machine(),
        "config": {
            "batch": args.batch,
            "chunk": args.chunk,
            "action_dim": args.action_dim,
            "z_dim": z_dim,
            "critic_hidden": args.critic_hidden,
            "critic_layers": args.critic_layers,
            "vlm": args.vlm,
            "updates": args.updates,
            "repeats": args.repeats,
        },
        "runs": [],
        "skipped": [],
        "note": args.note,
    }
    for dev in args.devices:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            results["skipped"].append({"device": dev, "reason": "no CUDA device on this machine"})
            continue
        for th in args.threads if dev == "cpu" else [0]:
            for prec in args.precision:
                r = bench_device(dev, args, z_dim, th, prec)
                results["runs"].append(r)
                print(
                    f"{dev} threads={r['threads']} {r['precision']}: {r['updates_per_s']:.2f} updates/s "
                    f"({r['ms_per_update']:.1f} ms), 15k updates in {r['projected_15k_updates_s'] / 60:.1f} min",
                    file=sys.stderr,
                )
    write(results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
