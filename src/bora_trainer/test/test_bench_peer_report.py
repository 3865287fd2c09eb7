"""bench/bench_peer.py's report: which time the ratios use (CPU time on a CPU, synchronised wall time on CUDA)
and where it is written. Hand-made results with round numbers, so every ratio is known in advance; the timed
runs against LeRobot are in test_bench_peer.py (``make interop``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

import bench_peer  # noqa: E402


def row(name, transitions, cpu_ms, wall_ms):
    return {"name": name, "transitions_per_update": transitions, "updates_timed": 1,
            "cpu_ms_per_update": cpu_ms, "wall_ms_per_update": wall_ms,
            "cpu_us_per_transition": 1000 * cpu_ms / transitions,
            "wall_us_per_transition": 1000 * wall_ms / transitions}


def result(device):
    return {
        "machine": {"cpu": "test CPU", "logical_cpus": 2, "torch": "t", "gpu": "test GPU"},
        "commit": "abc1234", "date": "2026-12-04 00:00 UTC", "load_start": 0.0, "load_end": 0.0,
        "config": {"batch": 4, "chunk": 2, "action_dim": 3, "hidden": 16, "layers": 2, "threads": 1, "repeats": 1,
                   "updates": 1, "device": device, "z_dim": 4, "state_dim": 7},
        "peer": {"torch": "t", "lerobot": "0.4.4", "params": {"actor": 1, "critic_ensemble": 2}},
        "ours_params": {"actor": 3, "critic_trainable": 4}, "compiled": False, "note": "",
        # ours: 8 transitions; theirs at batch 4 and at 8 transitions; CPU and wall times differ on purpose
        "rows": [row("ours: x", 8, 40.0, 2.0), row("LeRobot SAC (eager), batch 4 (matched batch)", 4, 10.0, 20.0),
                 row("LeRobot SAC (eager), batch 8 (matched transitions)", 8, 80.0, 25.0)],
    }


def ratios(md: str, key: str) -> tuple[float, float]:
    line = next(s for s in md.splitlines() if key in s)
    cells = [c.strip() for c in line.strip("|").split("|")]
    return float(cells[-2]), float(cells[-1])


def test_cpu_report_uses_cpu_time(tmp_path):
    bench_peer.write(result("cpu"), tmp_path)
    md = (tmp_path / "peer.md").read_text()
    assert not (tmp_path / "peer_cuda.md").exists()
    assert ratios(md, "matched batch") == (4.0, 2.0)  # 40/10 per update; (40/8)/(10/4) per transition
    assert ratios(md, "matched transitions") == (0.5, 0.5)  # 40/80
    assert "(cpu)" in md and "1 thread(s)" in md


def test_cuda_report_uses_wall_time(tmp_path):
    bench_peer.write(result("cuda"), tmp_path)
    md = (tmp_path / "peer_cuda.md").read_text()
    assert not (tmp_path / "peer.md").exists() and (tmp_path / "peer_cuda.json").exists()
    assert ratios(md, "matched batch") == (0.1, 0.05)  # 2/20 per update; (2/8)/(20/4) per transition
    assert ratios(md, "matched transitions") == (0.08, 0.08)  # 2/25
    assert "(wall)" in md and "test GPU" in md and "synchronize" in md
