"""Candidate speed-ups of the critic's step heads, timed against the code as it is (issue 17 roofline).

The online update (``bench_updates.py``) spends most of its time in ``ChunkCritic``'s step heads on
B*k = 4,096 tokens. Each candidate below is a different implementation of the SAME function with the
SAME parameters; the script checks that on the same inputs (max |difference| of the outputs, reported)
and times it against the current ``_StepHead.forward`` with interleaved repeats, in process CPU time
(the figure a shared machine does not move much), 1 thread by default:

* ``vmap_twin``: the twin Q heads as one batched call (``torch.func.stack_module_state`` + ``vmap`` of
  ``functional_call``) instead of two calls; forward only and forward + backward (weight gradients).
* ``mm_inplace``: the first layer's action term as a plain ``mm`` into a fresh buffer and the chunk (z) and
  position terms added in place, instead of materialising ``z term + position term`` and ``addmm``-ing the
  action term into it (which copies it).
* ``silu_inplace``: no-grad passes (targets, base chunk, frozen offline critic) with ``silu_`` in place.

A candidate is worth adopting only if it is faster here by more than the repeat-to-repeat spread.
Writes ``bench/results/update_candidates.json`` and ``.md``.

    .venv/bin/python bench/bench_update_candidates.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


def current(h, z, a):
    return h(z, a)


def mm_inplace(h, z, a):
    first, H, A = h.mlp[0], h.hidden, h.action_dim
    w, (B, n) = first.weight, (z.shape[0], h.pos.shape[0])
    zc = torch.addmm(first.bias, h.z_proj(z.float()), w[:, :H].t())
    pc = h.pos @ w[:, H + A :].t()
    x = torch.mm(a.float().reshape(B * n, A), w[:, H : H + A].t())
    x.view(B, n, -1).add_(zc.unsqueeze(1)).add_(pc.unsqueeze(0))
    for m in h.mlp[1:]:
        x = m(x)
    return x.view(B, n)


def silu_inplace(h, z, a):
    first, H, A = h.mlp[0], h.hidden, h.action_dim
    w, (B, n) = first.weight, (z.shape[0], h.pos.shape[0])
    zc = torch.addmm(first.bias, h.z_proj(z.float()), w[:, :H].t())
    pre = zc.unsqueeze(1) + (h.pos @ w[:, H + A :].t()).unsqueeze(0)
    x = torch.addmm(pre.view(B * n, -1), a.float().reshape(B * n, A), w[:, H : H + A].t())
    for m in h.mlp[1:]:
        x = F.silu(x, inplace=True) if isinstance(m, torch.nn.SiLU) else m(x)
    return x.view(B, n)


def cpu_ms(fn, reps: int, grad: bool) -> float:
    c0 = time.process_time()
    for _ in range(reps):
        y = fn()
        if grad:
            y.sum().backward()
    return 1000 * (time.process_time() - c0) / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=10, help="calls per timed repeat")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--action-dim", type=int, default=27)
    p.add_argument("--z-dim", type=int, default=96)
    p.add_argument("--hidden", type=int, default=256)
    args = p.parse_args(argv)
    from torch.func import functional_call, stack_module_state

    from bora_policy.models.critic import ChunkCritic

    info = machine()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = ChunkCritic(args.z_dim, args.action_dim, args.chunk, args.hidden)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(args.batch, args.z_dim, generator=g)
    a = torch.randn(args.batch, args.chunk, args.action_dim, generator=g)
    heads = list(c.q_heads)
    params, bufs = stack_module_state(heads)
    meta = copy.deepcopy(heads[0]).to("meta")
    vf = torch.vmap(lambda p_, b_, z_, a_: functional_call(meta, (p_, b_), (z_, a_)), in_dims=(0, 0, None, None))
    h0 = heads[0]
    cases = {  # name: (reference, candidate, with backward)
        "vmap_twin (forward)": (lambda: torch.stack([h(z, a) for h in heads]), lambda: vf(params, bufs, z, a), False),
        "vmap_twin (forward + backward)": (
            lambda: torch.stack([h(z, a) for h in heads]), lambda: vf(params, bufs, z, a), True),
        "mm_inplace (forward)": (lambda: current(h0, z, a), lambda: mm_inplace(h0, z, a), False),
        "mm_inplace (forward + backward)": (lambda: current(h0, z, a), lambda: mm_inplace(h0, z, a), True),
        "silu_inplace (no-grad forward)": (lambda: current(h0, z, a), lambda: silu_inplace(h0, z, a), False),
    }
    rows = []
    for name, (ref, cand, grad) in cases.items():
        with torch.no_grad():
            diff = float((ref() - cand()).abs().max())
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            cpu_ms(ref, 2, grad), cpu_ms(cand, 2, grad)  # warm-up
            r_ms, c_ms = [], []
            for _ in range(args.repeats):  # interleaved
                r_ms.append(cpu_ms(ref, args.calls, grad))
                c_ms.append(cpu_ms(cand, args.calls, grad))
        rows.append({
            "case": name, "max_abs_diff": diff, "current_cpu_ms": statistics.median(r_ms),
            "candidate_cpu_ms": statistics.median(c_ms), "current_all": r_ms, "candidate_all": c_ms,
        })
        print(f"{name}: current {rows[-1]['current_cpu_ms']:.1f} ms, candidate {rows[-1]['candidate_cpu_ms']:.1f} ms, "
              f"max diff {diff:.2e}", file=sys.stderr)
    res = {"machine": info, "config": vars(args), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "update_candidates.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# Critic step-head speed-up candidates (issue 17 roofline)",
        "",
        f"`bench/bench_update_candidates.py`: {args.batch} chunks x k = {args.chunk} = {args.batch * args.chunk:,} "
        f"tokens, action_dim {args.action_dim}, z_dim {args.z_dim}, hidden {args.hidden}; {args.threads} thread(s); "
        f"median process CPU ms per call over {args.repeats} interleaved repeats of {args.calls} calls. Machine: "
        f"{info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, 1-min load average "
        f"{info.get('load_avg_1m', 'n/a')} (shared: read the ratio, not the absolute ms).",
        "",
        "| candidate | max abs diff vs current | current CPU ms | candidate CPU ms | candidate / current |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['max_abs_diff']:.1e} | {r['current_cpu_ms']:.1f} | "
                     f"{r['candidate_cpu_ms']:.1f} | {r['candidate_cpu_ms'] / r['current_cpu_ms']:.2f} |")
    (RESULTS / "update_candidates.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
