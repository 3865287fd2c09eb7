"""Roofline helpers for the benchmarks: a function's FLOPs and matmul shapes, and the peak at those shapes.

* :func:`count_update` runs ``fn(*args)`` once under ``torch.utils.flop_counter.FlopCounterMode`` (all
  FLOPs torch counts: mm/addmm/bmm/conv forward and backward) and, in the same pass, records every
  ``mm``/``addmm``/``bmm`` it dispatches as ``(m, k, n, batch, layout)`` with its call count; ``layout`` says which
  operand is a transposed view (``"NN"``, ``"NT"``, ``"TN"``, ``"TT"``: a Linear's forward multiplies by ``W.t()``,
  its weight gradient by a transposed input), and the peak replays the same layout.
* :func:`peak_at_shapes` replays those matmul shapes with the current torch threads in ``fp32`` or
  ``bf16`` and returns the machine's rate AT THOSE SHAPES: ``gflops_at_shapes`` = the shapes' FLOPs over
  the sum of their best times per call (what a perfect implementation of exactly these matmuls would reach),
  and ``gflops_best_shape`` (the fastest single shape). Timing in batches of back-to-back calls (at least
  ``BATCH_S`` each), best batch kept, the same statistic as the update's side (the best repeat's mean over its
  updates); until 2026-12-07 the wall peak was the best single call and the CPU-time peak the mean over all
  calls, which set the CPU-time ratio about 8 points above the wall ratio on an idle 1-thread run. On a machine
  shared with other work the fastest batch is the one least disturbed. Each shape gets ``seconds_per_shape`` (at
  least one batch); shapes are taken largest-FLOP first until ``flop_share`` of the matmul FLOPs are covered (the
  tiny ones do not move the figure and an emulated-bf16 CPU would spend minutes on them).

achieved / peak = (update FLOPs / wall time per update) / ``gflops_at_shapes``: the fraction of what the
processor's matmul units deliver at the update's own shapes; the remainder is time in non-matmul work
(LayerNorm, SiLU, optimiser, Python) and in matmuls slower than their best.

On a machine shared with other work a call longer than a scheduler slice is rarely undisturbed, so the
wall-clock figures carry the load. Each call is also timed in process CPU time (``time.process_time``:
all threads of this process, not the time spent waiting for a core): ``gflop_per_cpu_s_at_shapes`` and the
update's FLOPs per CPU-second give a CPU-time roofline that the load does not move (with one thread it is
the roofline of one core; with more it also charges the threads' spin-waiting). The peak's CPU time per call is
read over the undisturbed batches together (wall time within 10% of the best batch's): the process clock sees
another thread's time only at that thread's scheduler events, so one short reading can miss it.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


BATCH_S = 0.02
"""Seconds of back-to-back calls per timed batch of the peak (on CUDA: 50 calls between two events)."""


def _layout(x: torch.Tensor) -> str:
    """``"T"`` for a transposed view of a contiguous matrix (``W.t()``), else ``"N"`` (replayed contiguous)."""
    return "T" if not x.is_contiguous() and x.transpose(-1, -2).is_contiguous() else "N"


class _MatmulShapes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: dict[tuple[int, int, int, int, str], int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default):
            a, b = (args[0], args[1]) if func in (aten.mm.default, aten.bmm.default) else (args[1], args[2])
            lay = _layout(a) + _layout(b)
            if a.ndim == 3:
                self.calls[(a.shape[1], a.shape[2], b.shape[2], a.shape[0], lay)] += 1
            else:
                self.calls[(a.shape[0], a.shape[1], b.shape[1], 1, lay)] += 1
        return func(*args, **kwargs)


def count_update(fn, *args) -> tuple[int, dict[tuple[int, int, int, int, str], dict]]:
    """``(total FLOPs of fn(*args), {(m, k, n, batch, layout): {"calls", "gflop"}})`` from one real call."""
    fc = FlopCounterMode(display=False)
    rec = _MatmulShapes()
    with fc, rec:
        fn(*args)
    shapes = {s: {"calls": c, "gflop": 2.0 * s[0] * s[1] * s[2] * s[3] * c / 1e9} for s, c in rec.calls.items()}
    return int(fc.get_total_flops()), shapes


def _operand(rows: int, cols: int, batch: int, transposed: bool, g: torch.Generator) -> torch.Tensor:
    """A ``[batch,] rows x cols`` operand, as a transposed view of a contiguous ``cols x rows`` one when asked."""
    lead = (batch,) if batch > 1 else ()
    if transposed:
        return torch.randn(*lead, cols, rows, generator=g).transpose(-1, -2)
    return torch.randn(*lead, rows, cols, generator=g)


def _best_call(
    m: int, k: int, n: int, batch: int, dtype, seconds: float, device: str = "cpu", layout: str = "NN"
) -> tuple[float, float]:
    """``(best wall seconds per call, process-CPU seconds per call)`` of ``[m,k] @ [k,n]`` (x batch) in ``layout``.

    CPU: batches of back-to-back calls of at least ``BATCH_S``; the wall time is the best batch's mean per call,
    the CPU time the undisturbed batches' (wall within 10% of the best) CPU seconds over their calls (module
    docstring). On CUDA a batch is 50 calls between two CUDA events (the device's throughput at that shape, launch
    latency hidden behind the queue), best batch kept; process CPU time means nothing there and is ``nan``."""
    g = torch.Generator().manual_seed(0)
    a = _operand(m, k, batch, layout[0] == "T", g).to(device=device, dtype=dtype)
    b = _operand(k, n, batch, layout[1] == "T", g).to(device=device, dtype=dtype)  # .to keeps a view's strides
    op = torch.bmm if batch > 1 else torch.mm
    op(a, b)  # kernel selection
    t0 = time.perf_counter()
    op(a, b)  # a warm call sizes the batches
    first = max(time.perf_counter() - t0, 1e-7)
    best, t_end = float("inf"), time.perf_counter() + seconds
    if device.startswith("cuda"):
        group = 50
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        while True:
            start.record()
            for _ in range(group):
                op(a, b)
            stop.record()
            stop.synchronize()
            best = min(best, start.elapsed_time(stop) / 1e3 / group)
            if time.perf_counter() >= t_end:
                return best, float("nan")
    per_batch = max(1, int(BATCH_S / first))
    batches: list[tuple[float, float]] = []  # (wall, cpu) seconds per call of each batch
    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(per_batch):
            op(a, b)
        batches.append(((time.perf_counter() - w0) / per_batch, (time.process_time() - c0) / per_batch))
        if time.perf_counter() >= t_end:
            break
    best = min(w for w, _ in batches)
    calm = [c for w, c in batches if w <= 1.1 * best]
    return best, max(sum(calm) / len(calm), 1e-9)


def peak_at_shapes(
    shapes: dict, precision: str, seconds_per_shape: float = 0.25, flop_share: float = 0.95, device: str = "cpu"
) -> dict:
    """The matmul rate at ``shapes`` (from :func:`count_update`) with the current torch threads, or on a
    CUDA ``device`` (then ``gflop_per_cpu_s_at_shapes`` is ``None``)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"peak_at_shapes: precision must be 'fp32' or 'bf16', got {precision!r}")
    if not shapes:
        raise ValueError("peak_at_shapes: no matmul shapes (the function ran no mm/addmm/bmm)")
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    total = sum(v["gflop"] for v in shapes.values())
    order = sorted(shapes.items(), key=lambda kv: -kv[1]["gflop"])
    covered, t_sum, c_sum, gf_sum, best_rate, rows = 0.0, 0.0, 0.0, 0.0, 0.0, []
    for key, v in order:
        if covered >= flop_share * total:
            break
        m, k, n, batch = key[:4]
        layout = key[4] if len(key) > 4 else "NN"
        t, tc = _best_call(m, k, n, batch, dtype, seconds_per_shape, device, layout)
        per_call = 2.0 * m * k * n * batch / 1e9
        rate = per_call / t
        best_rate = max(best_rate, rate)
        t_sum += t * v["calls"]
        c_sum += tc * v["calls"]
        gf_sum += v["gflop"]
        covered += v["gflop"]
        rows.append({"m": m, "k": k, "n": n, "batch": batch, "layout": layout, "calls": v["calls"],
                     "gflops": round(rate, 3)})
    cuda = device.startswith("cuda")
    return {
        "device": "cuda" if cuda else "cpu",
        "precision": precision,
        "threads": 0 if cuda else torch.get_num_threads(),
        "gflops_at_shapes": gf_sum / t_sum,
        "gflop_per_cpu_s_at_shapes": None if cuda else gf_sum / c_sum,
        "gflops_best_shape": best_rate,
        "flop_share_measured": covered / total,
        "shapes": rows,
    }


def kernel_profile(fn, calls: int = 5) -> dict:
    """What the GPU did during ``calls`` calls of ``fn()`` (``torch.profiler``, CUDA activity): kernels
    and device copies per call and their summed device microseconds per call. Their sum over the call's
    wall time is the share of the update the GPU is busy; the rest is the host launching work (an update
    of many small kernels is launch-bound, not arithmetic-bound)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    dev = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    if dev:
        busy_us = sum(e.time_range.elapsed_us() for e in dev)
    else:  # device events only in the averages (older profilers): their summed self device time
        busy_us = sum(getattr(a, "self_device_time_total", 0.0) for a in prof.key_averages())
    return {"calls": calls, "device_ops_per_call": len(dev) / calls, "device_us_per_call": busy_us / calls}
