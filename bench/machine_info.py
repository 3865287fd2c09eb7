"""The machine description every benchmark writes next to its figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine(calibrate: bool = True) -> dict:
    """CPU, torch, load, GPU and the CPU probe (``bora_policy.runtime.cpu_probe.probe``: native bf16 from the
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
