"""bench/roofline.py: FLOPs and matmul shapes of a real forward+backward against hand counts; the peak."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import roofline  # noqa: E402


def test_count_linear_forward_backward_by_hand():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 16)
    x = torch.randn(4, 8, requires_grad=True)

    def step(inp):
        lin(inp).sum().backward()

    flops, shapes = roofline.count_update(step, x)
    # forward addmm [4,8]@[8,16]; backward dX = dY[4,16]@W[16,8]; dW = dY^T[16,4]@X[4,8]: 2*m*k*n each
    assert flops == 3 * 2 * 4 * 8 * 16
    # layouts: the forward multiplies by W.t() (a transposed view), dW = dY^T @ X (dY^T a transposed view); the
    # sum's gradient dY is an expanded tensor (neither layout: replayed contiguous, "N")
    assert shapes == {
        (4, 8, 16, 1, "NT"): {"calls": 1, "gflop": 2 * 4 * 8 * 16 / 1e9},
        (4, 16, 8, 1, "NN"): {"calls": 1, "gflop": 2 * 4 * 16 * 8 / 1e9},
        (16, 4, 8, 1, "NN"): {"calls": 1, "gflop": 2 * 16 * 4 * 8 / 1e9},
    }
    # with a real upstream gradient the weight gradient's first operand is a transposed view
    _, shapes = roofline.count_update(lambda inp: lin(inp).backward(torch.ones(4, 16) * 2), x)
    assert (16, 4, 8, 1, "TN") in shapes
    assert lin.weight.grad is not None  # the function really ran


def test_bmm_shapes_recorded_with_batch():
    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 2)
    flops, shapes = roofline.count_update(torch.bmm, a, b)
    assert flops == 2 * 3 * 5 * 7 * 2 and shapes[(5, 7, 2, 3, "NN")]["calls"] == 1


def test_peak_at_shapes_real_rates_and_coverage():
    shapes = {(256, 128, 128, 1, "NT"): {"calls": 3, "gflop": 3 * 2 * 256 * 128 * 128 / 1e9},
              (2, 2, 2, 1, "NN"): {"calls": 1, "gflop": 16 / 1e9}}
    pk = roofline.peak_at_shapes(shapes, "fp32", seconds_per_shape=0.05, flop_share=0.9)
    assert pk["threads"] == torch.get_num_threads() and pk["device"] == "cpu"
    assert [(r["m"], r["k"], r["n"], r["layout"]) for r in pk["shapes"]] == [(256, 128, 128, "NT")]  # not the tiny one
    assert 0.0 < pk["gflops_at_shapes"] <= pk["gflops_best_shape"] + 1e-9
    assert pk["gflop_per_cpu_s_at_shapes"] > 0
    with pytest.raises(ValueError, match="precision"):
        roofline.peak_at_shapes(shapes, "fp16")
    with pytest.raises(ValueError, match="no matmul shapes"):
        roofline.peak_at_shapes({}, "fp32")


def _fake_clocks(monkeypatch, wall_per_call, cpu_lump_every=0, cpu_lump=0.0):
    """perf_counter / process_time / torch.mm replaced: call i takes wall_per_call(i) seconds; CPU time is booked
    either equal to the wall time (one thread) or as ``cpu_lump`` every ``cpu_lump_every``-th call."""
    clock = {"wall": 0.0, "cpu": 0.0, "calls": 0}

    def fake_mm(a, b):
        w = wall_per_call(clock["calls"])
        clock["wall"] += w
        clock["calls"] += 1
        if cpu_lump_every:
            clock["cpu"] += cpu_lump if clock["calls"] % cpu_lump_every == 0 else 0.0
        else:
            clock["cpu"] += w

    monkeypatch.setattr(roofline.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(roofline.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(roofline.torch, "mm", fake_mm)
    return clock


def test_peak_cpu_time_over_batches_not_the_best_call(monkeypatch):
    """The process clock sees a second thread's CPU time only at that thread's scheduler events, in lumps: with
    2 threads a short call's own reading was one thread's time. Fake clocks: each call takes 1 ms of wall time
    and (over calls) 2 ms of CPU, booked as 10 ms every 5th call; batches of BATCH_S = 20 ms = 20 calls."""
    clock = _fake_clocks(monkeypatch, lambda i: 1e-3, cpu_lump_every=5, cpu_lump=10e-3)
    wall, cpu = roofline._best_call(4, 4, 4, 1, torch.float32, seconds=0.05)
    assert clock["calls"] - 2 == 60  # two untimed calls (kernel selection, sizing), then 3 batches of 20
    assert wall == pytest.approx(1e-3) and cpu == pytest.approx(2e-3)


def test_peak_wall_and_cpu_time_are_the_same_statistic(monkeypatch):
    """One thread, calls alternating 1 ms and 3 ms: the best single call (1 ms) would put the peak a third above
    what back-to-back calls deliver; the batch mean is 2 ms, in wall and CPU time alike (the update's side is a
    mean over its updates too)."""
    _fake_clocks(monkeypatch, lambda i: 1e-3 if i % 2 else 3e-3)
    wall, cpu = roofline._best_call(4, 4, 4, 1, torch.float32, seconds=0.1)
    assert wall == pytest.approx(2e-3) and cpu == pytest.approx(2e-3)


def test_cuda_roofline_table_by_hand():
    """updates.md's CUDA table: achieved / peak and the GPU's busy share from a results row (no GPU needed)."""
    import bench_updates

    row = {
        "precision": "bf16", "compiled": False, "cuda_graph": True, "update_gflop": 11.0,
        "achieved_gflops_best": 1100.0,
        "peak_gflops_at_update_shapes": 44000.0, "achieved_over_peak": 0.025, "projected_15k_updates_s": 150.0,
        "kernels": {"device_ops_per_call": 612.0, "device_us_per_call": 2500.0, "gpu_busy_share": 0.25},
    }
    failed = {**row, "compiled": True, "cuda_graph": False, "kernels": {"error": "RuntimeError: no profiler"}}
    lines = bench_updates.cuda_roofline_lines([row, failed])
    assert "## Roofline (CUDA)" in lines
    assert "| bf16 | no | yes | 11.00 | 1100.0 | 44000.0 | 2.5% | 612 | 2.50 ms | 25% | 2.5 min |" in lines
    failed_line = "| bf16 | yes | no | 11.00 | 1100.0 | 44000.0 | 2.5% | - | - | RuntimeError: no profiler | 2.5 min |"
    assert failed_line in lines
    assert bench_updates.cuda_roofline_lines([]) == []
