"""Library parts of the policy's fault handling (issue 20): the episode gate, the health window and the
checkpoint-root check. Expectations are written out by hand from the rules in each module's docstring;
the same parts are exercised in the live graph by test_graph_faults.py.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bora_policy.runtime.checkpoint_loader import (
    CheckpointRejected,
    check_checkpoint_path,
    default_checkpoint_roots,
    verify_checkpoint,
)
from bora_policy.runtime.episode_gate import EpisodeGate
from bora_policy.runtime.health import ERROR, OK, WARN, HealthWindow

# ---------------------------------------------------------------------------------------- episode gate


def test_policy_started_mid_episode_adopts_the_observed_episode_and_its_time_base():
    g = EpisodeGate(control_hz=10.0)
    assert not g.known and g.may_command() and g.accepts(0, 999.0)  # nothing known: episode 0, as the observations
    g.observe(3, 57, 1000.0)  # an observation of episode 3 at step 57 (its START was before we started)
    assert not g.may_command()  # a newer episode waits for the tick
    assert g.take_pending() == (3, pytest.approx(1000.0 - 5.7), "observation")
    assert g.episode_id == 3 and g.t_start == pytest.approx(994.3) and g.may_command()
    assert g.accepts(3, 1000.0) and not g.accepts(2, 1000.0) and not g.accepts(4, 1000.0)
    g.observe(2, 10, 1001.0)  # an older episode's frame in flight: ignored
    g.observe(3, 58, 1000.1)
    assert g.take_pending() is None and g.episode_id == 3


def test_outcome_stops_commands_until_the_next_episode():
    g = EpisodeGate(10.0)
    g.start(4, 50.0)
    assert not g.may_command()  # the START is not applied yet: no command of the old episode this tick
    assert g.take_pending() == (4, 50.0, "start") and g.may_command()
    g.outcome(3)  # an older episode's outcome changes nothing
    assert g.may_command()
    g.outcome(4)
    assert not g.may_command() and not g.accepts(4, 51.0) and g.ended
    g.observe(4, 12, 51.2)  # its observations keep arriving: still ended
    assert g.take_pending() is None and not g.may_command()
    g.start(5, 53.0)
    assert g.take_pending() == (5, 53.0, "start") and g.may_command() and g.accepts(5, 53.1)


def test_an_episode_whose_start_and_outcome_were_both_missed_is_not_commanded_and_the_next_is():
    g = EpisodeGate(10.0)
    g.start(1, 0.0)
    g.take_pending()
    g.outcome(2)  # the outcome of an episode we never saw (START 2 lost): 2 is over
    assert g.may_command()  # episode 1 itself was not ended by it ...
    g.observe(2, 5, 20.0)  # ... and episode 2's observations are not adopted (2 has ended)
    assert g.take_pending() is None
    g.observe(3, 1, 30.0)  # episode 3 (START lost too) is adopted
    assert g.take_pending() == (3, pytest.approx(29.9), "observation") and g.may_command()


def test_unknown_episode_outcome_ends_the_unnamed_episode():
    g = EpisodeGate(10.0)  # nobody saw START 1: observations and commands carry 0
    g.outcome(1)
    assert not g.may_command() and not g.accepts(0, 1.0)
    g.start(2, 5.0)
    g.take_pending()
    assert g.may_command() and g.episode_id == 2


def test_outcome_of_a_pending_start_drops_it():
    g = EpisodeGate(10.0)
    g.start(7, 1.0)
    g.outcome(7)
    assert g.take_pending() is None and g.last_ended == 7


# ---------------------------------------------------------------------------------------- health window


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_health_is_warn_while_a_stall_is_recent_then_ok():
    c = Clock()
    h = HealthWindow(5.0, clock=c)
    assert h.status() == (OK, "")
    c.t = 10.0
    h.report("stall", "39 control slot(s) skipped: woke 3900 ms late", WARN, count=39)
    lvl, text = h.status()
    assert lvl == WARN and "1 stall" in text and "3900 ms late" in text and "last 5 s" in text
    c.t = 14.9
    assert h.status()[0] == WARN
    c.t = 15.0001  # 5 s after the stall: OK again, the total stays
    assert h.status() == (OK, "") and h.totals == {"stall": 39}
    assert h.last.text.startswith("39 control slot(s)")


def test_health_level_is_the_worst_recent_and_text_the_newest():
    c = Clock()
    h = HealthWindow(2.0, clock=c)
    h.report("inference_error", "inference failed: RuntimeError: boom", ERROR)
    c.t = 1.0
    h.report("checkpoint_rejected", "checkpoint rejected: /dev/zero is a character device", WARN)
    lvl, text = h.status()
    assert lvl == ERROR and "1 inference_error, 1 checkpoint_rejected" in text and "/dev/zero" in text
    c.t = 2.5  # the error left the window, the warning did not
    assert h.status()[0] == WARN
    with pytest.raises(ValueError, match="level"):
        h.report("x", "y", OK)


# ---------------------------------------------------------------------------------------- checkpoint roots


@pytest.fixture
def tree(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "normalizer.json").write_text("{}")
    (run / "policy").mkdir()
    good = run / "checkpoints" / "residual.safetensors"
    good.write_bytes(b"x" * 16)
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"y" * 16)
    return {"run": run, "good": good, "outside": outside, "tmp": tmp_path}


def _reason(path, roots) -> str:
    with pytest.raises(CheckpointRejected) as e:
        check_checkpoint_path(path, roots)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_default_roots_are_the_run_directory_and_the_configured_files_directories(tree):
    run = tree["run"]
    assert default_checkpoint_roots(str(run / "policy")) == [run.resolve()]  # policy/ lies inside a run
    lone = tree["tmp"] / "vla"
    lone.mkdir()
    assert default_checkpoint_roots(str(lone)) == [lone.resolve()]  # a bare VLA directory: itself
    other = tree["tmp"] / "critics" / "critic.safetensors"
    other.parent.mkdir()
    roots = default_checkpoint_roots(str(run / "policy"), str(tree["good"]), str(other))
    assert roots == [run.resolve(), other.parent.resolve()]  # run/checkpoints lies inside run: merged


def test_allowed_file_and_directory_pass(tree):
    roots = [tree["run"]]
    assert check_checkpoint_path(str(tree["good"]), roots) == tree["good"].resolve()
    assert check_checkpoint_path(str(tree["run"] / "checkpoints"), roots) == (tree["run"] / "checkpoints").resolve()


def test_each_refusal_has_its_reason(tree, tmp_path):
    roots = [tree["run"]]
    assert "empty" in _reason("", roots)
    assert "empty" in _reason("   ", roots)
    assert "character device" in _reason("/dev/zero", [Path("/dev")])  # not "does not exist"
    assert "outside the checkpoint roots" in _reason("/dev/zero", roots)
    assert "outside the checkpoint roots" in _reason("/etc/passwd", roots)
    assert "outside the checkpoint roots" in _reason(str(tree["outside"]), roots)
    assert "does not exist" in _reason(str(tree["run"] / "nope.safetensors"), roots)
    # a symlink inside the roots that leads out of them
    link = tree["run"] / "checkpoints" / "escape.safetensors"
    link.symlink_to(tree["outside"])
    msg = _reason(str(link), roots)
    assert "symlink" in msg and str(tree["outside"]) in msg
    link.unlink()
    # ../ out of a root
    assert "outside" in _reason(str(tree["run"] / ".." / "elsewhere.safetensors"), roots)
    # a directory checkpoint whose meta.json leads out of the roots
    d = tree["run"] / "ck"
    d.mkdir()
    (d / "meta.json").symlink_to("/etc/passwd")
    assert "meta.json is a symlink to /etc/passwd" in _reason(str(d), roots)
    # a named pipe and a socket inside the roots
    fifo = tree["run"] / "pipe.safetensors"
    os.mkfifo(fifo)
    assert "named pipe" in _reason(str(fifo), roots)
    sock_path = tree["run"] / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        assert "socket" in _reason(str(sock_path), roots)
    finally:
        s.close()
    assert "no checkpoint roots" in _reason(str(tree["good"]), [])


def test_verify_names_a_special_file():
    with pytest.raises(CheckpointRejected, match="character device"):
        verify_checkpoint("/dev/zero")
    with pytest.raises(CheckpointRejected, match="does not exist"):
        verify_checkpoint("/nonexistent/residual.safetensors")


def test_tick_stats_returns_a_late_interval():
    from bora_policy.runtime.tick_stats import TickStats

    s = TickStats(0.1)
    assert s.tick(10.0) is None and s.tick(10.1) is None and s.tick(10.249) is None  # 149 ms: served late
    assert s.tick(10.40) == pytest.approx(0.151) and s.late == 1 and s.ticks == 4


def test_observation_without_episode_is_one_of_the_current_episode_from_its_start_on():
    g = EpisodeGate(10.0)
    assert g.accepts(0, 0.5) and g.belongs(5, 0.5)  # nothing known yet: anything
    g.start(5, 1.0)
    g.take_pending()
    assert g.accepts(0, 1.0) and g.accepts(0, 1.3) and g.accepts(5, 1.3)  # a restarted sync: 0, from the START on
    assert not g.accepts(4, 1.3) and not g.accepts(6, 1.3)
    # the newest observation when START 5 came: id 0, taken 0.1 s before it (the robot before its reset)
    assert not g.belongs(0, 0.9) and not g.accepts(0, 0.9)
    g.observe(0, 3, 2.0)  # an observation without an episode never starts one
    assert g.take_pending() is None and g.episode_id == 5
    g.outcome(5)
    assert not g.accepts(0, 2.0)


def test_observation_without_episode_counts_from_the_time_base_of_an_adopted_episode():
    g = EpisodeGate(10.0)
    g.observe(3, 57, 1000.0)  # adopted: t_start = 1000.0 - 5.7 = 994.3
    g.take_pending()
    assert g.belongs(0, 994.35) and g.accepts(0, 999.0)
    assert not g.belongs(0, 994.2) and not g.accepts(0, 990.0)
