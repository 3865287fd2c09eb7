"""ProgressLog: steady-interval lines with hand-computed rates, loss means and ETAs; the demo's reader."""

from __future__ import annotations

import io

from bora_trainer.progress import ProgressLog, fmt_duration, last_progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_at_steady_interval_with_rate_losses_and_eta():
    clk, out = Clock(), io.StringIO()
    p = ProgressLog("offline cp-bc", total=100, interval_s=10.0, stream=out, clock=clk)
    printed = []
    for step in range(1, 101):
        clk.t += 0.5  # 2 updates/s
        line = p.update(step, {"loss/actor": float(step), "loss/critic": 1.0, "gate/open": 0.3})
        if line:
            printed.append((step, line))
    # every 10 s = every 20 updates, and the last one
    assert [s for s, _ in printed] == [20, 40, 60, 80, 100]
    step, first = printed[0]
    # updates 1..20: loss/actor mean 10.5; elapsed 10 s; ETA 80 remaining / 20 done * 10 s = 40 s
    assert first == (
        "[progress] offline cp-bc: 20/100 updates (20.0%) | 2.00 updates/s | loss/actor=10.5 loss/critic=1 "
        "| elapsed 10s | ETA 40s"
    )
    assert "loss/actor=30.5" in printed[1][1] and "gate" not in printed[1][1]  # means since the last line
    assert printed[-1][1].endswith("elapsed 50s | ETA 0s")
    assert out.getvalue().count("[progress]") == 5
    clk.t += 1.0
    assert p.update(100) is None  # the end is printed once


def test_episode_unit_with_updates_and_resumed_start():
    clk, out = Clock(), io.StringIO()
    p = ProgressLog("online", total=20, unit="episodes", start=5, interval_s=0.0, stream=out, clock=clk)
    clk.t += 30.0
    line = p.update(8, {"critic/loss": 2.0}, updates=90, extra="round 1")
    # 90 updates in 30 s; 3 episodes in 30 s -> 12 remaining take 120 s
    assert line == ("[progress] online: 8/20 episodes (40.0%) | 3.00 updates/s | 90 updates | critic/loss=2 "
                    "| round 1 | elapsed 30s | ETA 2m00s")


def test_disabled_prints_nothing_and_durations():
    out = io.StringIO()
    p = ProgressLog("x", total=3, interval_s=0.0, stream=out, enabled=False)
    assert p.update(3) is None and out.getvalue() == ""
    assert fmt_duration(52) == "52s" and fmt_duration(597) == "9m57s" and fmt_duration(3720) == "1h02m"
    assert fmt_duration(float("inf")) == "?"


def test_last_progress_reads_the_newest_line(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("$ bora train\n[progress] a: 1/2 updates\nnoise\n[progress] a: 2/2 updates | ETA 0s\nend\n")
    assert last_progress(log) == "a: 2/2 updates | ETA 0s"
    (tmp_path / "none.log").write_text("nothing\n")
    assert last_progress(tmp_path / "none.log") is None
    assert last_progress(tmp_path / "missing.log") is None


def test_offline_training_logs_progress_without_a_bar(tmp_path, monkeypatch, capsys):
    """A real (tiny) offline run with --no-progress: every update is a line at interval 0, the last at 100%."""
    from pathlib import Path

    import torch

    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.config_io import load_config
    from bora_trainer.data.chunks import write_synthetic_dataset
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.set_num_threads(1)
    monkeypatch.setenv("BORA_PROGRESS_INTERVAL_S", "0")
    ds = write_synthetic_dataset(tmp_path / "ds", n_episodes=2, T=10, image_size=(16, 16))
    repo = Path(__file__).resolve().parents[3]
    cfg = load_config(OfflineConfig, repo / "config/offline_demo.yaml",
                      overrides=dict(algo="cp-bc", total_updates=4, batch_size=4, ckpt_every=10_000, log_every=2))
    OfflineTrainer(cfg, ds, tmp_path / "run", progress=False).train()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[progress]")]
    assert [ln.split(": ", 1)[1].split(" (")[0] for ln in lines] == ["1/4 updates", "2/4 updates", "3/4 updates",
                                                                      "4/4 updates"]
    assert "loss/actor=" in lines[-1] and "updates/s" in lines[-1] and lines[-1].endswith("ETA 0s")


def test_demo_threads_auto_resolved_by_the_cpu_probe(monkeypatch, tmp_path):
    """`threads: auto` in a demo config becomes the probe's thread count (here fixed by BORA_NUM_THREADS),
    divided by the stage's parallel jobs; config/demo.yaml uses it for the warm-up (its online trainer is
    pinned to 1 thread: bench/results/demo_graph.md)."""
    from bora_trainer.demo.config import load_demo_config, resolve_auto_threads

    monkeypatch.setenv("BORA_NUM_THREADS", "4")
    data = {"offline": {"parallel": 2, "threads": "auto", "warmup": {"threads": "auto"}},
            "online": {"threads": "auto"}, "eval": {"parallel": 3, "threads": 1}}
    resolve_auto_threads(data)
    assert data["offline"]["threads"] == 2 and data["offline"]["warmup"]["threads"] == 4
    assert data["online"]["threads"] == 4 and data["eval"]["threads"] == 1
    cfg = load_demo_config("config/demo.yaml")
    assert cfg.offline.warmup.threads == 4 and cfg.online.threads == 1


def test_relay_prints_only_new_lines(tmp_path):
    from bora_trainer.progress import relay

    log, out = tmp_path / "graph.log", io.StringIO()
    log.write_text("starting\n")
    assert relay(log, "", out) == "" and out.getvalue() == ""
    log.write_text("starting\n[progress] online trainer round 1: 5/40 updates | ETA 1m10s\n")
    last = relay(log, "", out)
    assert last == "online trainer round 1: 5/40 updates | ETA 1m10s"
    assert relay(log, last, out) == last  # unchanged: not printed again
    assert out.getvalue() == "[progress] online trainer round 1: 5/40 updates | ETA 1m10s\n"


def test_log_to_stderr_shows_the_loops_info_lines_once_and_follows_stderr(capsys):
    import logging

    import pytest

    from bora_trainer.progress import log_to_stderr

    lib = logging.getLogger("bora_trainer")
    level = lib.level
    try:
        log_to_stderr("bora train online", "info")
        log_to_stderr("bora train online", "info")  # a second call replaces the first handler
        logging.getLogger("bora_trainer.online").info("round %d done", 1)
        logging.getLogger("bora_trainer.online").debug("not shown at info")
        logging.getLogger("torch").info("a library's line stays quiet")
        err = capsys.readouterr().err
        assert err == "bora train online: INFO round 1 done\n"
        log_to_stderr("bora train online", "warning")
        logging.getLogger("bora_trainer.online").info("quiet at warning")
        logging.getLogger("bora_trainer.online").warning("waits")
        assert capsys.readouterr().err == "bora train online: WARNING waits\n"
        with pytest.raises(ValueError, match="log level"):
            log_to_stderr("x", "verbose")
    finally:
        for h in list(lib.handlers):
            if type(h).__name__ == "_StderrHandler":
                lib.removeHandler(h)
        lib.setLevel(level)
