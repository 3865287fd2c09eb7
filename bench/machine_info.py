"""The machine description every benchmark writes next to its figures."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def commit(root: Path | None = None) -> str:
    """The short commit of the checkout at ``root`` (default: this repository), with ``(+ uncommitted changes)``
    when a tracked file differs from it."""
    root = root or Path(__file__).resolve().parent.parent

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if not head:  # a copy without .git (the device machine gets the working tree only): the caller says which
        return os.environ.get("BORA_BENCH_COMMIT", "") or "unknown (not a git checkout)"
    return head + (" (+ uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine(calibrate: bool = True) -> dict:
    """Commit, CPU, torch, load, GPU and the CPU probe (``bora_policy.runtime.cpu_probe.probe``: native bf16 from the
    CPU flags, a ~2 s fp32 matmul calibration of 1 vs 2 threads and the threads/precision it decides)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "commit": commit(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        info["load_avg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        from bora_policy.runtime.cpu_probe import probe

        info["cpu_probe"] = probe(calibrate=calibrate, seconds=2.0)
    except ImportError as e:  # bench run without the workspace on the path
        info["cpu_probe"] = {"error": f"bora_policy not importable: {e}"}
    return info
