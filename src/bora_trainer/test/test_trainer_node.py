"""The online trainer: ingestion ledger, updates and checkpoints, and crash/kill recovery.

* library loop (no ROS): episodes from bags reach the buffer exactly once, also across the crash
  window between a shard write and the ledger update; checkpoints carry update_step and round;
* real ``trainer_node`` process, SIGKILL mid-update, restart: it resumes at the last checkpoint's
  update count with the same buffer, ingests only the new episodes and finishes the budget.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bora_policy.models.normalizer import Normalizer
from bora_trainer.checkpoint import latest_checkpoint, load_checkpoint, sha256_file
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, ros_loop

NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)
T_EP = 16  # steps per episode -> 4 chunk transitions (k = 4)


def episodes(first, n):
    return [
        ScriptedEpisode(
            first + i, T_EP, "success" if i % 2 == 0 else "failure", [(3, 6, 5)] if i % 3 == 0 else []
        )
        for i in range(n)
    ]


def setup_dirs(tmp: Path, n_offline=3):
    write_scripted_bag(tmp / "offline_bag", episodes(100, n_offline), LAY)
    convert([tmp / "offline_bag"], tmp / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp / "offline_conv", tmp / "offline_buffer", NORM)
    NORM.save(tmp / "normalizer.json")
    (tmp / "recordings").mkdir()


def trainer_cfg(tmp: Path, **kw) -> dict:
    cfg = {
        "recordings": str(tmp / "recordings"),
        "state_dir": str(tmp / "state"),
        "offline_buffer": str(tmp / "offline_buffer"),
        "normalizer": str(tmp / "normalizer.json"),
        "utd_ratio": 1.5,
        "checkpoint_every": 20,
        "episodes_per_round": 4,
        "poll_interval_s": 0.2,
        "critic_hidden_dim": 32,
        "critic_pos_dim": 8,
        "device": "cpu",
        "online": {"batch_size": 16, "n_start": 8, "residual": {"hidden_dims": [32, 32]}},
    }
    cfg.update(kw)
    return cfg


def make_loop(tmp, announced=None, **kw):
    from bora_trainer.config_io import load_config

    cfg = load_config(TrainerConfig, trainer_cfg(tmp, **kw))
    return ros_loop(cfg, announce=(announced.append if announced is not None else None))


@pytest.fixture(autouse=True)
def _threads():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_loop_ingests_once_trains_and_checkpoints(tmp_path):
    setup_dirs(tmp_path)
    write_scripted_bag(tmp_path / "recordings" / "bag_a", episodes(1, 3), LAY)
    announced = []
    loop = make_loop(tmp_path, announced, utd_ratio=0.5, checkpoint_every=10, episodes_per_round=3)
    assert loop.collect() == 3 and len(loop.online) == 3 * 4 and loop.collect() == 0
    # rows: executed actions normalised with the run's normaliser (identity) = the scripted values
    a = loop.online.arrays()
    assert a["action"][0, 1, 2] == pytest.approx(1 + 0.01 * 1 + 0.1 * 2, abs=1e-5)
    assert loop.update_budget() == int(0.5 * 3 * T_EP) == 24
    assert loop.train() == 24 and loop.update_step == 24
    steps = [a.update_step for a in announced]
    assert steps[:3] == [10, 20, 24]
    # round 1 had 3 episodes (= episodes_per_round): it is closed and round 2 begins at update 24
    assert loop.round == 2 and announced[-1].round == 2
    ck = latest_checkpoint(tmp_path / "state" / "run")
    data = load_checkpoint(ck)
    assert data["step"] == 24 and data["meta"]["extra"]["round"] == 2
    # from round 2 on the announcement is the multi-round checkpoint directory; sha256 = its newest residual
    assert announced[-1].sha256 == sha256_file(Path(announced[-1].path) / "residual_2.safetensors")
    # a second loop on the same state resumes: same buffer, same update count, nothing re-ingested
    loop2 = make_loop(tmp_path, utd_ratio=0.5, checkpoint_every=10, episodes_per_round=3)
    assert (loop2.update_step, len(loop2.online), loop2.round) == (24, 12, 2)
    assert loop2.collect() == 0


def test_crash_between_shard_and_ledger_ingests_exactly_once(tmp_path):
    setup_dirs(tmp_path)
    write_scripted_bag(tmp_path / "recordings" / "bag_a", episodes(1, 2), LAY)
    loop = make_loop(tmp_path)
    assert loop.collect() == 2
    # simulate a crash inside ingest(): the next episode's shard is written, the ledger not updated
    write_scripted_bag(tmp_path / "recordings" / "bag_b", episodes(10, 1), LAY)
    orig = loop.ledger_path.read_text()
    assert loop.collect() == 1
    loop.ledger_path.write_text(orig)  # the ledger as it was before the crash
    shards = sorted((tmp_path / "state" / "online_buffer").glob("shard_*.npz"))
    assert len(shards) == 3
    loop2 = make_loop(tmp_path)
    assert (
        len(loop2.online) == 2 * 4 and len(list((tmp_path / "state" / "online_buffer").glob("shard_*"))) == 2
    )
    assert loop2.collect() == 1 and len(loop2.online) == 3 * 4
    eps = loop2.online.arrays()["episode"]
    assert sorted(set(eps.tolist())) == [0, 1, 2] and np.bincount(eps).tolist() == [4, 4, 4]


def test_episode_without_outcome_is_not_ingested_even_when_its_bag_is_closed(tmp_path):
    # ingest.py's rule: an episode is ingested once, when complete; an unfinished one waits for the
    # recording's continuation (a restarted recorder), so a partial version never precedes the whole one
    setup_dirs(tmp_path)
    bag = tmp_path / "recordings" / "live"
    write_scripted_bag(bag, [ScriptedEpisode(1, T_EP, "success"), ScriptedEpisode(2, T_EP, None)], LAY)
    (bag / "metadata.yaml").rename(tmp_path / "metadata.yaml")  # as if still recording
    loop = make_loop(tmp_path)
    assert loop.collect() == 1  # the finished episode only
    (tmp_path / "metadata.yaml").rename(bag / "metadata.yaml")  # recorder closed the bag
    assert loop.collect() == 0 and loop.num_episodes == 1 and len(loop.online) == 4
    assert [v["outcome"] for v in loop.ledger.values()] == ["success"]
    from bora_trainer.data.bag_convert import read_transitions

    infos = [read_transitions(tmp_path / "state" / "converted", i)[1] for i in (0, 1)]
    assert sorted(str(i["outcome"]) for i in infos) == ["None", "success"]  # converted (kept), not ingested


def _start_node(tmp, cfg_file, extra=(), stderr=subprocess.DEVNULL):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from bora_trainer.nodes.trainer_node import main; sys.exit(main())",
        "--config",
        str(cfg_file),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("{"), line + (proc.stdout.read() if proc.poll() is not None else "")
    return proc, json.loads(line)


def _status(tmp):
    try:
        return json.loads((tmp / "state" / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def test_kill_trainer_node_mid_update_and_resume(tmp_path):
    import rclpy  # noqa: F401  (installed by make setup: missing is a failure)
    setup_dirs(tmp_path)
    write_scripted_bag(tmp_path / "recordings" / "bag_a", episodes(1, 4), LAY)
    cfg_file = tmp_path / "trainer.yaml"
    # utd 6: 384 updates for the first 4 episodes, a wide window for the kill between checkpoint 40 and the
    # budget (at utd 1.5 it was 96 updates, a few hundred ms; the test failed once locally, cause not captured)
    utd = 6
    cfg_file.write_text(yaml.safe_dump({"trainer": trainer_cfg(tmp_path, utd_ratio=utd)}))
    budget_a = int(utd * 4 * T_EP)
    proc, started = _start_node(tmp_path, cfg_file)
    assert started["resumed_at"] == 0 and started["episodes"] == 0
    try:
        deadline = time.monotonic() + 40
        while True:  # kill once a checkpoint exists and updates are still running
            st = _status(tmp_path)
            ck = (st.get("last_checkpoint") or {}).get("update_step", 0)
            if ck >= 40 and st.get("update_step", 0) < budget_a:
                break
            assert time.monotonic() < deadline and proc.poll() is None, f"no progress: {st}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    run = tmp_path / "state" / "run"
    ck_step = load_checkpoint(latest_checkpoint(run))["step"]
    assert 40 <= ck_step < budget_a and ck_step % 20 == 0
    # new recordings arrive while the trainer is down
    write_scripted_bag(tmp_path / "recordings" / "bag_b", episodes(20, 2), LAY)
    proc, started = _start_node(tmp_path, cfg_file, ["--exit-when-idle", "--max-seconds", "45"], subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    # the online loop's own log records reach the node's ROS logger (they did not: a hang went unexplained)
    assert err.count("[bora_trainer.online] ingested episode") == 2, err[-2000:]
    assert started["resumed_at"] == ck_step and started["update_step"] == ck_step
    assert started["buffer_size"] == 4 * 4 and started["episodes"] == 4
    stopped = json.loads([ln for ln in out.splitlines() if '"stopped"' in ln][-1])
    assert stopped["episodes"] == 6 and stopped["buffer_size"] == 6 * 4
    assert stopped["update_step"] == int(utd * 6 * T_EP)
    ledger = json.loads((tmp_path / "state" / "ingested.json").read_text())
    hashes = [v["content_hash"] for v in ledger.values()]
    assert len(hashes) == len(set(hashes)) == 6
    assert load_checkpoint(latest_checkpoint(run))["step"] == stopped["update_step"]


def test_library_log_records_of_every_level_reach_the_ros_logger(capfd):
    """The loop's records at INFO, WARNING and ERROR, in any order, go to a real rclpy logger at their level. rclpy
    keys a logging context by the calling line and raises ValueError when one line logs at two severities: a
    handler with one call site crashed the trainer node at its first warning after an info."""
    import logging

    from rclpy.logging import get_logger

    from bora_trainer.nodes.trainer_node import route_library_logs

    name = "bora_trainer.test_route"
    route_library_logs(get_logger("route_probe"), name)
    lib = logging.getLogger(name)
    for level, text in ((logging.INFO, "one"), (logging.WARNING, "two"), (logging.ERROR, "three"),
                        (logging.INFO, "four"), (logging.DEBUG, "hidden")):
        lib.log(level, text)
    err = capfd.readouterr().err
    for sev, text in (("INFO", "one"), ("WARN", "two"), ("ERROR", "three"), ("INFO", "four")):
        assert re.search(rf"\[{sev}\] \[[0-9.]+\] \[route_probe\]: \[{name}\] {text}$", err, re.M), err
    assert "hidden" not in err
    route_library_logs(get_logger("route_probe"), name)  # again: still one handler, each line once
    lib.warning("five")
    assert capfd.readouterr().err.count("five") == 1


def test_sigint_while_recording_live_exits_cleanly_with_every_message(tmp_path):
    # Ctrl-C (SIGINT, as `bora up` stops its nodes) while the node records live topics: exit code 0, the
    # recording closed (metadata.yaml written) with every episode event received before the signal.
    # Twice, each a fresh process (a trainer node in the full graph once exited with SIGABRT at Ctrl-C).
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.rosbag2 import Reader

    from bora_msgs.msg import EpisodeEvent

    setup_dirs(tmp_path)
    cfg_file = tmp_path / "trainer.yaml"
    cfg_file.write_text(yaml.safe_dump({"trainer": trainer_cfg(tmp_path)}))
    rclpy.init()
    node = rclpy.create_node("trainer_sigint_probe")
    pub = node.create_publisher(
        EpisodeEvent, "/bora/episode", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    )
    try:
        for attempt in range(2):
            before = set((tmp_path / "recordings").glob("live_*"))
            proc, _ = _start_node(tmp_path, cfg_file, ["--live"])
            deadline = time.monotonic() + 20
            while pub.get_subscription_count() == 0:  # the recorder's reader is matched
                assert time.monotonic() < deadline and proc.poll() is None, "the trainer never subscribed"
                time.sleep(0.05)
            time.sleep(0.5)
            for i in range(20):
                ev = EpisodeEvent(episode_id=attempt * 100 + i, kind=EpisodeEvent.START, task="press_button")
                pub.publish(ev)
                time.sleep(0.02)
            time.sleep(1.0)  # delivered (reliable, loopback)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, f"attempt {attempt}: exit code {proc.returncode}"
            assert '"stopped"' in out
            (bag,) = set((tmp_path / "recordings").glob("live_*")) - before
            assert (bag / "metadata.yaml").exists(), "the live recording was not closed"
            with Reader(bag) as r:
                ids = [c.topic for c in r.connections]
                n = sum(1 for conn, _, _ in r.messages() if conn.topic == "/bora/episode")
            assert "/bora/episode" in ids and n == 20, f"attempt {attempt}: {n} of 20 episode events recorded"
            time.sleep(1.1)  # live_<time> directories are named to the second
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
