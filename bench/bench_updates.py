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
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import roofline  # noqa: E402  (bench/ is on sys.path when run as a script)
import torch
from machine_info import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
POINTERS = (
    "The same update on a CUDA device (H200), eager and as one captured CUDA graph: `updates_cuda.md` "
    "(`--devices cuda --results-name updates_cuda`). "
    "Speed-up candidates for the critic's step heads, each checked against the current code on the same inputs: "
    "`update_candidates.md` (`bench_update_candidates.py`). The same update next to LeRobot's HIL-SERL learner (SAC), "
    "per update and per transition: `peer.md` (`bench_peer.py`)."
)
SHAPES: list[dict] = []  # the matmul shapes of the last timed update (for the other precision's peak)


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


def bench_device(
    device: str,
    args,
    z_dim: int,
    threads: int = 0,
    precision: str = "auto",
    peaks=None,
    compiled: bool = False,
    cuda_graph: bool = True,
) -> dict:
    from bora_policy.models.critic import ChunkCritic
    from bora_trainer.algorithms.bora.config import OnlineConfig
    from bora_trainer.algorithms.online_learner import OnlineLearner
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
    cfg = OnlineConfig(batch_size=args.batch, precision=precision, cuda_graph=cuda_graph)
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
    # the update's FLOPs and matmul shapes (one extra update, counted; the FLOPs do not depend on the data)
    # (a graphed learner replays its graph without dispatching ops: count its graph-safe form, run eagerly)
    count_fn = learner.update
    if learner.graphing:
        count_fn = lambda b: learner.objective.update({k: v.to(device) for k, v in b.items()})  # noqa: E731
    flops, shapes = roofline.count_update(count_fn, sampler.sample())
    SHAPES.append(shapes)
    if compiled:
        compile_modules(learner)
        for _ in range(args.warmup):  # the compiled graphs' first calls (one per input shape) compile
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
    prec_name = "bf16" if learner.use_bf16 else "fp32"
    roof = {}
    cuda = device.startswith("cuda")
    if peaks is not None:
        # the peak at the update's own matmul shapes, measured in this run with the same threads and dtype
        key = ("cuda", 0, prec_name) if cuda else ("cpu", torch.get_num_threads(), prec_name)
        # (the other precision's quick peak, over half the FLOPs, is measured again over 95%: until 2026-12-07
        # the bf16 ratio was read against the largest shape alone)
        if key not in peaks or peaks[key]["flop_share_measured"] < 0.9:
            peaks[key] = roofline.peak_at_shapes(shapes, prec_name, args.peak_seconds, device=key[0])
        pk = peaks[key]
        roof = {
            "update_gflop": flops / 1e9,
            "matmul_gflop_share": sum(v["gflop"] for v in shapes.values()) / (flops / 1e9),
            "achieved_gflops_median": flops / per / 1e9,
            "achieved_gflops_best": flops / min(reps) / 1e9,
            "peak_gflops_at_update_shapes": pk["gflops_at_shapes"],
            "peak_gflops_best_shape": pk["gflops_best_shape"],
            "achieved_over_peak": flops / min(reps) / 1e9 / pk["gflops_at_shapes"],
            "achieved_over_peak_median": flops / per / 1e9 / pk["gflops_at_shapes"],
        }
        if not cuda:  # CPU-time roofline (robust to other work on the machine): FLOPs per CPU-second
            roof["achieved_gflop_per_cpu_s"] = flops / min(cpu) / 1e9
            roof["peak_gflop_per_cpu_s_at_update_shapes"] = pk["gflop_per_cpu_s_at_shapes"]
            roof["achieved_over_peak_cpu_time"] = flops / min(cpu) / 1e9 / pk["gflop_per_cpu_s_at_shapes"]
    if cuda:
        try:  # kernels per update and the GPU's busy time (launch-bound or arithmetic-bound)
            kp = roofline.kernel_profile(lambda: learner.update(sampler.sample()), calls=5)
            roof["kernels"] = {**kp, "gpu_busy_share": kp["device_us_per_call"] / 1e3 / (1000 * per)}
        except Exception as e:  # noqa: BLE001  (the profiler is a diagnostic: its failure is recorded, not fatal)
            roof["kernels"] = {"error": f"{type(e).__name__}: {e}"}
    return {
        "device": device,
        "threads": torch.get_num_threads() if device == "cpu" else threads,
        "precision": prec_name,
        "precision_requested": precision,
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
        "compiled": compiled,
        "cuda_graph": learner.graphing,
        **roof,
    }


def compile_modules(learner) -> None:
    """``--compile``: each critic step head (online and target) and the residual actor through ``torch.compile``
    (inductor fuses LayerNorm + SiLU + bias into fewer kernels). Parameters stay the same objects, so the
    optimisers and the Polyak update are unchanged. A benchmark candidate, not the learner's code path."""
    for mod in list(learner.critic.modules()):
        for name, child in list(mod.named_children()):
            if type(child).__name__ == "_StepHead":
                setattr(mod, name, torch.compile(child))
            elif isinstance(child, torch.nn.ModuleList):
                for i, c in enumerate(child):
                    if type(c).__name__ == "_StepHead":
                        child[i] = torch.compile(c)
    learner.actor.forward = torch.compile(learner.actor.forward)


def write(results: dict, out_dir: Path = RESULTS, name: str = "updates") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2))
    m, c = results["machine"], results["config"]
    pr = m.get("cpu_probe", {})
    lines = [
        "# Online residual RLPD update throughput and roofline",
        "",
        f"`bench/bench_updates.py`: `OnlineLearner.update` (bora-residual) with batch {c['batch']} "
        f"(1:1 offline/online), "
        f"k = {c['chunk']}, action_dim = {c['action_dim']}, z_dim = {c['z_dim']} ({c['vlm']}), "
        f"ChunkCritic hidden_dim {c['critic_hidden']}, {c.get('critic_layers', 2)} step-MLP layers "
        f"(twin Q + V, with targets). Median of {c.get('repeats', 1)} repeats of {c.get('updates', '?')} updates.",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads), {m['platform']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else ", no GPU")
        + f"; 1-min load average at start {m.get('load_avg_1m', 'n/a')}"
        + (f", at end {results['load_avg_1m_end']:.2f}" if "load_avg_1m_end" in results else "")
        + ".",
        f"CPU probe: native bf16 {'yes' if pr.get('native_bf16') else 'no'} "
        f"({', '.join(pr.get('bf16_flags', [])) or 'no avx512_bf16/amx_bf16 flag'}), "
        "fp32 critic-step-layer GFLOP/s by threads "
        f"{pr.get('gflops_fp32_by_threads', 'n/a')} -> threads {pr.get('threads', '?')}, "
        f"precision {pr.get('precision_cpu', '?')}.",
    ]
    if results.get("shared_machine"):
        lines += ["", f"**Shared machine**: {results['shared_machine']}"]
    lines += [
        "",
        "| device | threads | precision | updates/s | ms/update | of which sampling | CPU ms/update | 15k updates "
        "| < 5 min |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results["runs"]:
        dev = (
            r["device"]
            + (" (compiled)" if r.get("compiled") else "")
            + (" (CUDA graph)" if r.get("cuda_graph") else "")
        )
        lines.append(
            f"| {dev} | {r.get('threads', '-')}{' (auto)' if r.get('threads_requested') == 'auto' else ''} | "
            f"{r.get('precision', '-')} | {r['updates_per_s']:.2f} | {r['ms_per_update']:.1f} | "
            f"{r['sampling_ms_per_update']:.1f} | {r.get('cpu_ms_per_update', float('nan')):.1f} | "
            f"{r['projected_15k_updates_s'] / 60:.1f} min | "
            f"{'yes' if r['meets_5min_target'] else 'no'} |"
        )
    for d in results.get("skipped", []):
        lines.append(f"| {d['device']} | - | - | - | - | - | - | - | {d['reason']} |")
    roof = [r for r in results["runs"] if "achieved_over_peak" in r and r["device"] == "cpu"]
    if roof:
        lines += [
            "",
            "## Roofline (CPU)",
            "",
            f"FLOPs per update: {roof[0]['update_gflop']:.2f} GFLOP (`torch.utils.flop_counter.FlopCounterMode`, "
            f"forward + backward; {100 * roof[0]['matmul_gflop_share']:.0f}% of them in mm/addmm). Peak = the "
            "machine's matmul rate at the update's own matmul shapes (every mm/addmm the update dispatches, "
            "replayed with the same threads and dtype in this run, best call per shape): FLOPs of those "
            "matmuls / sum of their best times. achieved = update FLOPs / wall time per update (best repeat; "
            "median in brackets). CPU-time roofline: the same ratio with process CPU seconds instead of wall "
            "seconds on both sides (GFLOP per CPU-second; not moved by other work waiting for the cores: the "
            "figure to read on a shared machine). 15k updates = median wall time x 15,000.",
            "",
            "| threads | precision | achieved GFLOP/s (wall) | peak GFLOP/s at the update's shapes | best single "
            "shape | achieved / peak (wall) | achieved / peak (CPU time) | 15k updates |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in roof:
            lines.append(
                f"| {r['threads']}{' (auto)' if r.get('threads_requested') == 'auto' else ''} | {r['precision']}"
                f"{' (compiled)' if r.get('compiled') else ''} | {r['achieved_gflops_best']:.2f} "
                f"({r['achieved_gflops_median']:.2f}) | {r['peak_gflops_at_update_shapes']:.2f} | "
                f"{r['peak_gflops_best_shape']:.2f} | {100 * r['achieved_over_peak']:.0f}% "
                f"({100 * r['achieved_over_peak_median']:.0f}%) | "
                f"{100 * r['achieved_over_peak_cpu_time']:.0f}% ({r['achieved_gflop_per_cpu_s']:.1f} / "
                f"{r['peak_gflop_per_cpu_s_at_update_shapes']:.1f}) | {r['projected_15k_updates_s'] / 60:.1f} min |"
            )
    lines += cuda_roofline_lines([r for r in results["runs"] if "achieved_over_peak" in r and r["device"] != "cpu"])
    if results.get("peaks"):
        lines += [
            "",
            "Peak matmul rate at the update's shapes, fp32 and bf16, per thread count (same run):",
            "",
            "| device | threads | precision | GFLOP/s at the update's shapes | best single shape "
            "| FLOP share measured |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for pk in results["peaks"]:
            lines.append(
                f"| {pk.get('device', 'cpu')} | {pk['threads'] or '-'} | {pk['precision']} | "
                f"{pk['gflops_at_shapes']:.2f} | "
                f"{pk['gflops_best_shape']:.2f} | {100 * pk['flop_share_measured']:.0f}% |"
            )
    r0 = results["runs"][0]
    lines += [
        "",
        "ms/update and the 15k projection are wall clock; CPU ms/update is the process CPU time (all threads): "
        "with one thread it is the cost of an update without waiting for a core shared with other work.",
        "",
        f"Residual actor: {r0['residual_params']:,} parameters; critic (trainable): {r0['critic_trainable_params']:,}.",
    ]
    if results.get("note"):
        lines += ["", results["note"]]
    lines += ["", POINTERS]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")


def cuda_roofline_lines(runs: list[dict]) -> list[str]:
    """The CUDA roofline table: achieved / peak at the update's shapes, and what the GPU did per update."""
    if not runs:
        return []
    out = [
        "",
        "## Roofline (CUDA)",
        "",
        "FLOPs per update: counted as on the CPU, per row (a CUDA-graph update evaluates the frozen offline "
        "critic of the regulariser on all rows with the online rows weighted 0, as a boolean index would wait for "
        "the GPU: more FLOPs, the same loss). Peak = the GPU's matmul rate at "
        "the update's own matmul shapes (each shape timed as the mean of 50 back-to-back calls between two CUDA "
        "events, best group): what a perfect implementation of exactly these matmuls would reach. Kernels and "
        "GPU busy: `torch.profiler` over 5 updates, the summed device time of every kernel and copy over the "
        "update's wall time; the rest of the wall time the GPU waits for the host to launch work.",
        "",
        "| precision | compiled | CUDA graph | GFLOP per update | achieved GFLOP/s "
        "| peak GFLOP/s at the update's shapes | achieved / peak "
        "| kernels + copies per update | GPU busy per update | GPU busy share | 15k updates |",
        "| --- | :---: | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        k = r.get("kernels", {})
        kern = (
            f"{k['device_ops_per_call']:.0f} | {k['device_us_per_call'] / 1e3:.2f} ms | "
            f"{100 * k['gpu_busy_share']:.0f}%"
            if "device_ops_per_call" in k
            else f"- | - | {k.get('error', 'not profiled')}"
        )
        out.append(
            f"| {r['precision']} | {'yes' if r.get('compiled') else 'no'} | {'yes' if r.get('cuda_graph') else 'no'} | "
            f"{r['update_gflop']:.2f} | {r['achieved_gflops_best']:.1f} | "
            f"{r['peak_gflops_at_update_shapes']:.1f} | {100 * r['achieved_over_peak']:.1f}% | {kern} | "
            f"{r['projected_15k_updates_s'] / 60:.1f} min |"
        )
    return out


def _threads(v: str) -> int | str:
    if v == "auto":
        return v
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads: expected integers >= 0 or 'auto', got {v!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--threads: expected integers >= 0 or 'auto', got {v!r}")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=20, help="timed updates per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration (median reported)")
    p.add_argument("--warmup", type=int, default=5, help="untimed updates first (> GRAPH_WARMUP: the capture)")
    p.add_argument(
        "--cuda-graph",
        nargs="+",
        default=["on", "off"],
        choices=["on", "off"],
        help="OnlineConfig.cuda_graph values to time on CUDA (ignored on a CPU)",
    )
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--action-dim", type=int, default=27)
    p.add_argument("--vlm", default="paligemma-tiny", help="named VLM config whose z_dim is used")
    p.add_argument("--z-dim", type=int, default=0, help="cognition-token width (0: the --vlm config's z_dim)")
    p.add_argument("--critic-hidden", type=int, default=256, help="ChunkCritic hidden_dim (its default: 256)")
    p.add_argument("--critic-layers", type=int, default=2, help="ChunkCritic num_layers (its default: 2)")
    p.add_argument(
        "--threads",
        type=_threads,
        nargs="+",
        default=[1, 2],
        help="torch CPU thread counts to time (0 = torch default, auto = cpu_probe's calibration)",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=["auto"],
        choices=["auto", "fp32", "bf16"],
        help="OnlineConfig.precision values to time (auto: bf16 on CUDA and on CPUs with native bf16, else fp32)",
    )
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    p.add_argument("--peak-seconds", type=float, default=0.25, help="timing budget per matmul shape of the peak")
    p.add_argument("--no-roofline", action="store_true", help="skip the FLOP count and the peak")
    p.add_argument("--shared", default="", help="say in updates.md that the machine was shared (free text)")
    p.add_argument("--note", default="", help="free text appended to updates.md (e.g. a before/after comparison)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd step heads and actor")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="where NAME.json and NAME.md go")
    p.add_argument("--results-name", default="updates", help="file stem of the results (default: updates)")
    args = p.parse_args(argv)
    if args.updates < 1 or args.repeats < 1:
        p.error("--updates and --repeats must be >= 1")
    if args.z_dim < 0:
        p.error(f"--z-dim: expected an integer >= 0, got {args.z_dim}")
    z_dim = args.z_dim or tiny_z_dim(args.vlm)
    results = {
        "machine": machine(),
        "config": {
            "batch": args.batch,
            "chunk": args.chunk,
            "action_dim": args.action_dim,
            "z_dim": z_dim,
            "critic_hidden": args.critic_hidden,
            "critic_layers": args.critic_layers,
            "vlm": args.vlm if not args.z_dim else f"z_dim {args.z_dim} given",
            "updates": args.updates,
            "repeats": args.repeats,
        },
        "runs": [],
        "skipped": [],
        "peaks": [],
        "note": args.note,
        "shared_machine": args.shared,
    }
    from bora_policy.runtime.cpu_probe import resolve_threads

    peaks: dict | None = None if args.no_roofline else {}
    for dev in args.devices:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            results["skipped"].append({"device": dev, "reason": "no CUDA device on this machine"})
            continue
        for th in args.threads if dev == "cpu" else [0]:
            th_req = th
            th = resolve_threads(th) if th == "auto" else th
            for prec in args.precision:
                graphs = [g == "on" for g in args.cuda_graph] if dev.startswith("cuda") else [False]
                for compiled, graph in [(c, g) for g in graphs for c in ((False, True) if args.compile else (False,))]:
                    r = bench_device(dev, args, z_dim, th, prec, peaks, compiled, graph)
                    r["threads_requested"] = th_req
                    results["runs"].append(r)
                    print(
                        f"{dev}{' compiled' if compiled else ''}{' graph' if r['cuda_graph'] else ''} "
                        f"threads={r['threads']} {r['precision']}: "
                        f"{r['updates_per_s']:.2f} updates/s ({r['ms_per_update']:.1f} ms), 15k updates in "
                        f"{r['projected_15k_updates_s'] / 60:.1f} min"
                        + (f", achieved/peak {100 * r['achieved_over_peak']:.1f}%" if "achieved_over_peak" in r else "")
                        + (f", {r['kernels']}" if "kernels" in r else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                if peaks is not None:
                    # the other precision's peak at the same shapes (fp32 and bf16 are both reported)
                    other = "fp32" if r["precision"] == "bf16" else "bf16"
                    cuda = dev.startswith("cuda")
                    key = ("cuda", 0, other) if cuda else ("cpu", r["threads"], other)
                    if key not in peaks and SHAPES:
                        if not cuda:
                            torch.set_num_threads(r["threads"])
                        peaks[key] = roofline.peak_at_shapes(
                            SHAPES[-1], other, args.peak_seconds, flop_share=0.5, device=key[0]
                        )
    if peaks:
        results["peaks"] = [peaks[k] for k in sorted(peaks)]
    try:
        results["load_avg_1m_end"] = os.getloadavg()[0]
    except OSError:
        pass
    write(results, args.results_dir, args.results_name)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
