"""The whole simulated graph at 20 Hz (`bora up --sim --control-hz 20`): every node's step fields agree.

Issue 15: `--control-hz` used to reach only the bridge and the policy; the sync node (which stamps
Observation.step) and the teleop stayed at 10 Hz, so the control-step time base silently split. Now
`bora up` writes one resolved graph file that every node reads. Real nodes over loopback DDS; a probe in
this process records the bridge's episode events, the sync's observations, the policy's commands and the
arbiter's executed commands. Independent expectation for every message of an episode that STARTed at t0
(the bridge's START stamp): step = round((stamp - t0) * 20) (a node on 10 Hz would give half of it),
the episode's time limit of 3 s ends it after 60 physics steps (one per 20 Hz tick: 60 observations, the
outcome at step ~60, not ~120 as with a 10 Hz robot), and the policy and the arbiter publish 20 commands
a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: F401  (installed by make setup; a missing rclpy is a failure, not a skip)

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parents[3]
HZ = 20.0
LIMIT_S = 3.0  # the bridge's episode time limit: 60 control steps at 20 Hz


def _t(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


class Recorder:
    """Records (receive time, message) of the graph's step-carrying topics, spun on a background thread."""

    def __init__(self):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from bora_msgs.msg import EpisodeEvent, ExecutedCommand, JointCommand, Observation

        rclpy.init()
        self.node = rclpy.create_node("graph_20hz_probe")
        self.rx: dict[str, list] = {k: [] for k in ("ep", "obs", "cmd", "exec")}
        rel = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for key, typ, topic in (
            ("ep", EpisodeEvent, "/bora/episode"),
            ("obs", Observation, "/bora/observation"),
            ("cmd", JointCommand, "/bora/policy_command"),
            ("exec", ExecutedCommand, "/bora/executed_command"),
        ):
            self.node.create_subscription(typ, topic, lambda m, k=key: self.rx[k].append((time.monotonic(), m)), rel)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self.stop = False
        self.th = threading.Thread(target=self._spin, daemon=True)
        self.th.start()

    def _spin(self):
        while not self.stop:
            self.ex.spin_once(timeout_sec=0.05)

    def outcomes(self) -> list:
        return [m for _, m in self.rx["ep"] if m.kind in (m.SUCCESS, m.FAILURE, m.ABORT)]

    def close(self):
        self.stop = True
        self.th.join(timeout=2)
        self.node.destroy_node()
        rclpy.try_shutdown()


def test_every_step_field_agrees_at_20_hz(tmp_path):
    from bora_trainer.up import demo_vla

    vla = demo_vla(tmp_path / "vla")
    cmd = [
        sys.executable, "-m", "bora_trainer.cli", "up", "--sim", "--vla", str(vla), "--control-hz", f"{HZ:g}",
        "--duration", "240", "--param", "sim_bridge:operator_enabled:=false",
        "--param", f"sim_bridge:time_limit_s:={LIMIT_S}", "--param", "sim_bridge:render:=false",
    ]
    log_path = tmp_path / "up.log"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    rec = Recorder()
    try:
        # the episodes run from the start (3 s each) while the policy loads its VLA: wait for its first command,
        # then for two episodes that start and end after it
        end = time.monotonic() + 240
        while not rec.rx["cmd"] and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.5)
        assert rec.rx["cmd"], "no policy command in 240 s; log:\n" + log_path.read_text()[-4000:]
        t_ready = rec.rx["cmd"][0][0]
        end = time.monotonic() + 60

        def after_ready() -> int:
            return sum(1 for t, m in rec.rx["ep"] if t > t_ready and m.kind in (m.SUCCESS, m.FAILURE, m.ABORT))

        while after_ready() < 3 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.5)
        log = log_path.read_text()
        assert after_ready() >= 3, f"{after_ready()} episode outcomes in 60 s after the policy's first command"
        assert "graph control_hz=20" in log, log[-3000:]
    finally:
        rec.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)

    starts = {m.episode_id: _t(m.header.stamp) for t, m in rec.rx["ep"] if m.kind == m.START and t > t_ready}
    done = {m.episode_id: m for m in rec.outcomes() if m.episode_id in starts}
    whole = sorted(done)  # episodes that started after the policy's first command and ended
    assert len(whole) >= 2, f"episodes started {sorted(starts)}, ended {sorted(done)}"

    def expected(ep: int, stamp) -> int:
        return int(round((_t(stamp) - starts[ep]) * HZ))

    for ep in whole:
        t0, t1 = starts[ep], _t(done[ep].header.stamp)
        # the bridge: the time limit ends the episode after 60 physics steps, one per 20 Hz tick
        out = done[ep]
        assert out.kind == out.ABORT and out.note == "timeout: time limit"  # a truncation (outcome "timeout")
        assert out.step == expected(ep, out.header.stamp)
        # (-1: the START is stamped after the reset, up to a tick after the tick's own time)
        assert LIMIT_S * HZ - 1 <= out.step <= LIMIT_S * HZ * 1.1, f"episode {ep}: outcome at step {out.step}"
        # the sync: every observation on the 20 Hz time base, one per physics step
        obs = [m for _, m in rec.rx["obs"] if m.episode_id == ep]
        bad = [(m.step, expected(ep, m.header.stamp)) for m in obs if m.step != expected(ep, m.header.stamp)]
        assert not bad, f"episode {ep}: observation steps (got, expected) {bad[:5]}"
        steps = sorted(m.step for m in obs)
        assert len(obs) >= 0.9 * LIMIT_S * HZ and steps[-1] <= out.step, f"episode {ep}: {len(obs)} obs, {steps[-3:]}"
        # the policy: each command's step is the control step of its stamp
        cmds = [m for _, m in rec.rx["cmd"] if m.episode_id == ep]
        off = np.array([m.step - expected(ep, m.header.stamp) for m in cmds])
        assert len(cmds) >= 0.5 * LIMIT_S * HZ and np.abs(off).max() <= 1, f"episode {ep}: policy step offsets {off}"
        # the arbiter: executed commands carry the same steps, at 20 a second
        ex = [m.command for _, m in rec.rx["exec"] if m.command.episode_id == ep]
        off = np.array([m.step - expected(ep, m.header.stamp) for m in ex])
        assert np.abs(off).max() <= 2, f"episode {ep}: executed step offsets {off}"
        rate = len(ex) / (t1 - t0)
        assert abs(rate - HZ) / HZ < 0.15, f"episode {ep}: arbiter at {rate:.1f} Hz, expected {HZ:g}"
        # across nodes: a command never carries a step ahead of the time base the observations define
        obs_steps = {m.step for m in obs}
        assert {m.step for m in cmds} <= set(range(0, out.step + 2)) and obs_steps <= set(range(1, out.step + 1))
