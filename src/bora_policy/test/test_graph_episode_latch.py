"""Nodes that connect after the episode START still stamp it (issue 20, item 3), over real DDS.

The sim bridge publishes episode 1's START in its constructor, before the rest of the graph has
connected; /bora/episode is volatile, so the sync, policy and teleop nodes never saw it and the first
episode's observations, commands and ExecutedCommands carried episode id 0. The bridge now also
publishes the current START on the latched /bora/episode/current.

Here the bridge is started ALONE (its node process with config/sim.yaml, a 300 s time limit so
episode 1 outlasts the test), and this test waits until its START is there: a probe that connects
afterwards reads it from the latched topic. Only then are sync + policy + teleop started (a second
`bora up --sim --without sim_bridge`, same ROS domain). Expectation (independent of the nodes' code):
every observation, policy command and ExecutedCommand of episode 1 carries the bridge's episode id and
session, never 0 or "".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy  # noqa: F401  (installed by make setup; a missing rclpy is a failure, not a skip)
from graph_probe import stop_process

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parents[3]


class Probe:
    def __init__(self):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from bora_msgs.msg import EpisodeEvent, ExecutedCommand, JointCommand, Observation

        rclpy.init()
        self.node = rclpy.create_node("bora_latch_probe")
        self.rx: dict[str, list] = {k: [] for k in ("current", "episode", "obs", "cmd", "exec")}
        rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        for key, typ, topic, qos in (
            ("current", EpisodeEvent, "/bora/episode/current", latched),
            ("episode", EpisodeEvent, "/bora/episode", rel),
            ("obs", Observation, "/bora/observation", rel),
            ("cmd", JointCommand, "/bora/policy_command", rel),
            ("exec", ExecutedCommand, "/bora/executed_command", rel),
        ):
            self.node.create_subscription(typ, topic, lambda m, k=key: self._rx(k, m), qos)
        self._lock = threading.Lock()
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self._stop = False
        self.th = threading.Thread(target=self._spin, daemon=True)
        self.th.start()

    def _rx(self, key, m):
        if key == "obs":  # keep the ids only (the images are large)
            m = (int(m.episode_id), str(m.session_id))
        with self._lock:
            self.rx[key].append(m)

    def _spin(self):
        while not self._stop:
            self.ex.spin_once(timeout_sec=0.05)

    def count(self, key) -> int:
        with self._lock:
            return len(self.rx[key])

    def wait(self, key, n: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count(key) >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._stop = True
        self.th.join(timeout=2)
        self.node.destroy_node()
        rclpy.try_shutdown()


def _up(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bora_trainer.cli", "up", "--sim", "--duration", "240", "--no-respawn"] + args
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


def test_nodes_started_after_the_bridge_stamp_its_first_episode(tmp_path):
    from bora_trainer.up import demo_vla

    vla = demo_vla(tmp_path / "vla")
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))  # both supervisors: one domain
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]  # and this probe
    t0 = time.monotonic()
    bridge = subprocess.Popen(  # the bridge alone, as `bora up` runs it (a bridge-only `bora up` would
        # also make it take the policy's commands directly: direct_command_topic)
        [sys.executable, "-m", "bora_sim.nodes.bridge_node", "--ros-args", "--params-file",
         str(ROOT / "config" / "sim.yaml"), "-r", "__node:=sim_bridge",
         "-p", "operator_enabled:=false", "-p", "time_limit_s:=300.0"],
        stdout=open(tmp_path / "bridge.log", "w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
    )  # fmt: skip
    rest = None
    probe = None
    try:
        log = tmp_path / "bridge.log"
        end = time.monotonic() + 90
        while "sim_bridge: task" not in (log.read_text() if log.exists() else "") and time.monotonic() < end:
            assert bridge.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        probe = Probe()  # connects after the START was published: reads it from the latched topic
        assert probe.wait("current", 1, 30), "no START on /bora/episode/current:\n" + log.read_text()[-3000:]
        start = probe.rx["current"][0]
        assert start.kind == start.START and start.episode_id == 1 and start.session_id, start
        assert probe.count("episode") == 0  # the volatile START was over before this probe connected

        rest = _up(
            ["--without", "sim_bridge", "--vla", str(vla), "--param", "policy:replan_steps:=5"],
            tmp_path / "rest.log", env,
        )  # fmt: skip
        # each wait returns as soon as its count is reached; 120 s each because the policy node's start-up (torch
        # import + VLA load) took over 30 s beside another test on 2 cores, long after teleop's first 30 execs
        ok = probe.wait("exec", 30, 120) and probe.wait("cmd", 30, 120) and probe.wait("obs", 30, 120)
        assert ok, "graph did not run:\n" + (tmp_path / "rest.log").read_text()[-4000:]
        time.sleep(1.0)
        with probe._lock:
            obs, cmds, execs = list(probe.rx["obs"]), list(probe.rx["cmd"]), list(probe.rx["exec"])
            episodes = list(probe.rx["episode"])
        assert not episodes, [(e.kind, e.episode_id) for e in episodes]  # still episode 1 (300 s limit)
        want = (1, start.session_id)
        seen = {
            "observations": set(obs),
            "commands": {(int(c.episode_id), c.session_id) for c in cmds},
            "executed": {(int(e.command.episode_id), e.command.session_id) for e in execs},
        }
        assert all(ids == {want} for ids in seen.values()), seen
        assert any(not e.held for e in execs), "no policy command was executed"
        print(
            f"latched START: {len(obs)} observations, {len(cmds)} commands, {len(execs)} executed commands "
            f"of episode 1; test {time.monotonic() - t0:.0f} s"
        )
    finally:
        if rest is not None:
            stop_process(rest)
        stop_process(bridge)
        if probe is not None:
            probe.close()
