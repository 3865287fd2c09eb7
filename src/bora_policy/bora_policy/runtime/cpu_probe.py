"""Settings that fit the processor: torch threads and matmul precision from a probe of the machine.

Two facts decide how fast a CPU runs our networks (issue 17, measured on two 2-vCPU machines):

* **bf16** is only faster where the CPU has native bf16 matmul instructions (AVX512-BF16 or AMX-BF16, the
  ``/proc/cpuinfo`` flags ``avx512_bf16`` / ``amx_bf16``). Without them oneDNN emulates bf16 and a matmul
  ran at 0.6 GFLOP/s against 27 GFLOP/s in fp32 (AVX2-only EPYC). :func:`decide_precision` therefore
  picks bf16 on a CPU only with native bf16; on CUDA it picks bf16 when the device supports it.
* **threads**: on a machine whose second vCPU is a hyper-thread of the first or is shared with other work,
  2 OpenMP threads can be slower than 1 (a bare matmul: 20 vs 27 GFLOP/s fp32 on that EPYC, yet a whole
  update ran 451 ms on 2 threads against 882 ms on 1 there). :func:`calibrate_threads` therefore times the
  critic's step layer (``SiLU(LayerNorm(x W + b))`` on ``[4096, 256]``, forward + backward: matmul and the
  element-wise passes) at each thread count for about ``seconds`` in all; :func:`decide_threads` keeps the
  fewest threads unless more threads are at least ``min_gain`` (ours: 15%) faster. The calibration sees
  the machine as it is at start: other work on the cores makes more threads lose.

:func:`probe` returns everything as a dict (recorded in every benchmark's machine description,
``bench/machine_info.py``). ``BORA_NUM_THREADS`` set by the caller (``bora demo`` sets it per job) always
wins over the calibration. No rclpy here (library code).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CALIB_SHAPE = (1024, 256, 256)  # (m, k, n) of the calibration matmul
_CACHE: dict[tuple, dict] = {}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` (or in the given text); empty if unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(val.split())
    return set()


def cpu_model(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "model name":
            return val.strip()
    return ""


def has_native_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU executes bf16 matmuls natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def decide_precision(device_type: str, flags: set[str] | None = None, cuda_bf16: bool | None = None) -> str:
    """``"bf16"`` or ``"fp32"`` for ``OnlineConfig.precision = "auto"`` (and the like).

    cuda: bf16 when the device supports it (``cuda_bf16``; queried from torch when None); cpu: bf16 only
    with native bf16 (:data:`NATIVE_BF16_FLAGS` in ``flags``, read from ``/proc/cpuinfo`` when None);
    any other device: fp32.
    """
    if device_type == "cuda":
        if cuda_bf16 is None:
            import torch

            cuda_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return "bf16" if cuda_bf16 else "fp32"
    if device_type == "cpu":
        return "bf16" if has_native_bf16(flags) else "fp32"
    return "fp32"


def auto_precision(device_type: str) -> str:
    """``precision: auto`` on this machine: ``BORA_PRECISION`` (``fp32``/``bf16``) when set, else
    :func:`decide_precision` (the test suite pins fp32 there: hand-computed values are fp32 on any CPU)."""
    env = os.environ.get("BORA_PRECISION", "").strip().lower()
    if env:
        if env not in ("fp32", "bf16"):
            raise ValueError(f"BORA_PRECISION must be 'fp32' or 'bf16', got {env!r}")
        return env
    return decide_precision(device_type)


def decide_threads(gflops_by_threads: dict[int, float], min_gain: float = 1.15) -> int:
    """The fewest threads whose matmul rate is not beaten by ``min_gain`` x by a larger thread count.

    Walks the thread counts upwards and moves to a larger count only if it is at least ``min_gain``
    times faster than the current choice (more threads cost cores that parallel jobs could use).
    """
    if not gflops_by_threads:
        raise ValueError("decide_threads: no calibration figures (expected {threads: GFLOP/s})")
    if any(int(t) < 1 or not (r >= 0) for t, r in gflops_by_threads.items()):
        raise ValueError(f"decide_threads: thread counts must be >= 1 and rates >= 0, got {gflops_by_threads}")
    best = min(gflops_by_threads)
    for t in sorted(gflops_by_threads):
        if gflops_by_threads[t] >= min_gain * gflops_by_threads[best]:
            best = t
    return int(best)


def matmul_gflops(threads: int, seconds: float, shape=CALIB_SHAPE, dtype=None) -> float:
    """Best-of-repeats GFLOP/s of ``[m,k] @ [k,n]`` with ``threads`` torch threads for about ``seconds``."""
    import torch

    m, k, n = shape
    dtype = dtype or torch.float32
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(m, k, generator=g).to(dtype)
        b = torch.randn(k, n, generator=g).to(dtype)
        torch.mm(a, b)  # first call: oneDNN kernel selection
        best, t_end = float("inf"), time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() >= t_end:
                break
    finally:
        torch.set_num_threads(old)
    return 2.0 * m * k * n / best / 1e9


def block_gflops(threads: int, seconds: float, rows: int = 4096, width: int = 256) -> float:
    """Best-of-repeats rate of the critic's step layer ``SiLU(LayerNorm(x @ W + b))`` on ``[rows, width]``,
    forward + backward, with ``threads`` torch threads, in matmul GFLOP/s (6 x rows x width^2 FLOPs per
    pass). Unlike a bare matmul it includes the element-wise passes that take a quarter of an update."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        lin, ln = torch.nn.Linear(width, width), torch.nn.LayerNorm(width)
        x = torch.randn(rows, width, generator=g, requires_grad=True)

        def once():
            torch.nn.functional.silu(ln(lin(x))).sum().backward()

        once()
        best, t_end = float("inf"), time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            once()
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() >= t_end:
                break
    finally:
        torch.set_num_threads(old)
    return 6.0 * rows * width * width / best / 1e9


def calibrate_threads(seconds: float = 2.0, max_threads: int | None = None) -> dict[int, float]:
    """The critic step layer's rate (:func:`block_gflops`) at 1..max_threads threads (``seconds`` in all)."""
    n = max(1, min(max_threads or (os.cpu_count() or 1), os.cpu_count() or 1))
    counts = sorted({1, n} | ({2} if n >= 2 else set()) | ({n // 2} if n >= 4 else set()))
    return {t: block_gflops(t, seconds / len(counts)) for t in counts}


def probe(calibrate: bool = True, seconds: float = 2.0, max_threads: int | None = None) -> dict:
    """Machine description + decisions: ``{"cpu", "logical_cpus", "native_bf16", "bf16_flags", "precision_cpu",
    "gflops_fp32_by_threads", "threads", "threads_source"}`` (cached per process and arguments)."""
    key = (calibrate, seconds, max_threads)
    if key not in _CACHE:
        _CACHE[key] = _probe(calibrate, seconds, max_threads)
    out = dict(_CACHE[key])
    env = os.environ.get("BORA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:  # the caller's choice (bora demo sets it per job) wins
        out["threads"], out["threads_source"] = int(env), "BORA_NUM_THREADS"
    return out


def _probe(calibrate: bool, seconds: float, max_threads: int | None) -> dict:
    flags = cpu_flags()
    out = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "native_bf16": has_native_bf16(flags),
        "bf16_flags": sorted(f for f in NATIVE_BF16_FLAGS if f in flags),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "precision_cpu": decide_precision("cpu", flags),
    }
    if calibrate:
        rates = calibrate_threads(seconds, max_threads)
        out["gflops_fp32_by_threads"] = {str(t): round(r, 2) for t, r in rates.items()}
        out["threads"], out["threads_source"] = decide_threads(rates), f"calibration ({seconds:g} s, critic step layer)"
    else:
        out["threads"], out["threads_source"] = 1, "default (not calibrated)"
    return out


def resolve_threads(value: int | str, seconds: float = 2.0, max_threads: int | None = None) -> int:
    """A config's ``threads`` field: a positive int as is, ``"auto"`` from :func:`probe`'s calibration."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return int(probe(True, seconds, max_threads)["threads"])
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {value!r}")
    return n
