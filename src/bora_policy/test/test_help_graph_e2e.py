"""The whole help-request chain under `bora up --sim` (issue 19), over real DDS between processes: the policy
node's monitor asks (its critic's q is below a threshold set by hand for this test), the sim bridge's scripted
operator in `requested` mode takes over, the teleop records the takeover as an InterventionEvent.

The critic is an untrained ``ChunkCritic`` of the demo VLA's sizes: its values are arbitrary but finite, so a
threshold of 1e6 puts every step below it; the monitor then asks exactly once per ``min_interval_s`` after
its grace and persistence (help_monitor.py), and the first request of an episode comes at step
max(grace_steps, s0 + persist_steps - 1), s0 the episode's first monitored tick (its first chunk's, a few
ticks in, by timing): the persistence counts from s0, also during the grace (as test_help_monitor.py's
``grace_steps=4`` case asks at step 4). Here: step 5 or later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parents[3]


def test_policy_request_leads_to_scripted_takeover(tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import HelpRequest, InterventionEvent
    from bora_policy.models.critic import ChunkCritic
    from bora_trainer.up import demo_vla

    vla = demo_vla(tmp_path / "vla")
    import json

    cfg = json.loads((vla / "config.json").read_text())
    critic_dir = tmp_path / "critic"
    ChunkCritic(96, cfg["action_dim"], cfg["chunk_size"], hidden_dim=32, pos_dim=8).save(critic_dir)
    cmd = [sys.executable, "-m", "bora_trainer.cli", "up", "--sim", "--vla", str(vla), "--critic", str(critic_dir),
           "--duration", "200", "--no-respawn",
           "--param", "policy:help_threshold:=1000000.0", "--param", "policy:help_grace_steps:=5",
           "--param", "policy:help_persist_steps:=2", "--param", "policy:help_min_interval_s:=3.0",
           "--param", "sim_bridge:operator_mode:=requested", "--param", "sim_bridge:render:=false"]
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    log = tmp_path / "up.log"
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    rclpy.init()
    node = rclpy.create_node("help_e2e_probe")
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    reqs, ivs, lock = [], [], threading.Lock()
    node.create_subscription(HelpRequest, "/bora/help_request", lambda m: reqs.append((time.monotonic(), m)), rel)
    node.create_subscription(InterventionEvent, "/bora/intervention", lambda m: ivs.append((time.monotonic(), m)),
                             rel)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                          daemon=True)
    th.start()
    try:
        def first_pair():
            """The first (request, takeover START) of one episode and session the probe received. The probe may
            miss the first episode's request: the policy asks on its first ticks (the episode is already past the
            grace while it loads), before DDS has matched the probe (CI: the takeover arrived, the request not);
            a later episode asks again."""
            with lock:
                got_reqs, got_ivs = list(reqs), list(ivs)
            for t_req, r in got_reqs:
                for t_iv, iv in got_ivs:
                    if iv.kind == 0 and (iv.episode_id, iv.session_id) == (r.episode_id, r.session_id):
                        return (t_req, r), (t_iv, iv)
            return None

        end = time.monotonic() + 180.0
        while time.monotonic() < end and first_pair() is None:
            time.sleep(0.1)
        pair = first_pair()
        assert pair is not None, f"no help request and takeover of one episode; requests {len(reqs)}, " \
            f"interventions {len(ivs)}; log:\n{log.read_text()[-4000:]}"
        (t_req, r), (t_iv, iv) = pair
        assert r.reason == "low_value" and r.threshold == 1e6 and r.value < 1e6 and r.step >= 5  # grace_steps 5
        assert r.episode_id >= 1 and r.session_id
        assert t_iv > t_req  # the takeover follows the request (0.3 s reaction + a tick or two)
        assert "the scripted operator takes over in 0.3 s" in log.read_text()
    finally:
        stop.set()
        th.join(timeout=2)
        node.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
