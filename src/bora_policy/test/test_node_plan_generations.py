"""A plan still running when the policy node leaves AUTONOMOUS is never adopted after the resume (found in review).

Before, SetMode HOLD and then AUTONOMOUS reset the scheduler, but the plan requested before HOLD came back from the
inference thread afterwards and was published and adopted at the next tick; its chunk is indexed from its
observation's stamp, so after a long HOLD the executor started deep into it (ChunkScheduler, plan generations).

The real policy node (the demo VLA, config/graph.yaml's 10 Hz, its own control-loop and inference threads) runs in
this process; a probe node reads /bora/action_chunk and /rosout over DDS. Observations (3 cameras, the VLA's 25
joints) are handed to the node's observation callback every 0.1 s. Timing is made deterministic by one thing: each
call of the real inference waits until the test lets it run (a semaphore), so the test knows a plan is in flight.
Timeline: plan P1 released -> chunk 1; plan P2 in flight -> HOLD at t_hold, 1 s of HOLD, AUTONOMOUS at t_resume ->
P2 released. Expectation: P2's chunk (from an observation before t_hold) is never published nor adopted (the log
says it was discarded); the next chunk is planned from an observation stamped after the resume, and it is the
first chunk adopted after it.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
from graph_probe import GraphProbe

# a real control loop on the wall clock: make test runs this module in its sequential phase (see the Makefile)
pytestmark = pytest.mark.timing

HAND = [f"hand_j{i}" for i in range(18)]
ARM = [f"fr3_joint{i}" for i in range(1, 8)]


def _observation(node, state):
    from sensor_msgs.msg import Image

    from bora_msgs.msg import Observation
    from bora_policy.common.image_conv import numpy_to_image

    m = Observation()
    m.header.stamp = node.get_clock().now().to_msg()
    m.camera_names = ["left", "front", "right"]
    m.color = [numpy_to_image(np.full((64, 64, 3), 40 * i, np.uint8), "rgb8", msg_cls=Image) for i in range(3)]
    m.arm.name, m.arm.position = ARM, [float(x) for x in state[:7]]
    m.hand.name, m.hand.position = HAND, [float(x) for x in state[7:]]
    m.instruction = "pick up the cube"
    return m


def _seconds(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def test_a_plan_in_flight_at_hold_is_discarded_and_the_resume_plans_afresh(tmp_path):
    from rcl_interfaces.msg import Log
    from rclpy.parameter import Parameter

    from bora_msgs.msg import ActionChunk
    from bora_msgs.srv import SetMode
    from bora_policy.nodes.policy_node import PolicyNode
    from bora_trainer.up import demo_vla

    vla = demo_vla(tmp_path / "vla")
    probe = GraphProbe("bora_generation_probe", (("chunk", ActionChunk, "/bora/action_chunk"), ("log", Log, "/rosout")))
    params = {"vla_path": str(vla), "device": "cpu", "control_thread_priority": 0, "stale_observation_s": 5.0}
    node = PolicyNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    entered, permits, stop = queue.Queue(), threading.Semaphore(0), threading.Event()
    real = node.runner.infer

    def gated_infer(*a, **kw):  # the real inference, run when the test lets it
        with node._lock:  # (submit and requested() run under it: the stamp of this plan's observation)
            entered.put(node.sched.planned_from)
        assert permits.acquire(timeout=30.0), "the test never released this plan"
        return real(*a, **kw)

    node.runner.infer = gated_infer
    state = np.zeros(25)
    state[:7] = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8]

    def feed():  # the node's observation callback, every 0.1 s (its subscription is not spun here)
        while not stop.is_set():
            node._on_observation(_observation(node, state))
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    def set_mode(mode):
        res = node._srv_set_mode(SetMode.Request(mode=mode), SetMode.Response())
        assert res.success, res.message

    def now():
        return node.get_clock().now().nanoseconds * 1e-9

    try:
        entered.get(timeout=30.0)  # P1 in flight
        permits.release()
        assert probe.wait_timed("chunk", timeout=10.0) is not None, "P1's chunk was not published"
        p2_from = entered.get(timeout=10.0)  # P2 in flight (planned from an observation before the HOLD)
        t_hold = now()
        assert p2_from is not None and p2_from < t_hold
        set_mode(SetMode.Request.HOLD)
        time.sleep(1.0)
        set_mode(SetMode.Request.AUTONOMOUS)
        t_resume = now()
        permits.release()  # P2 finishes after the resume
        p3_from = entered.get(timeout=10.0)  # the resume's own plan, requested once P2 was out of the way
        assert p3_from is not None and p3_from > t_resume - 0.2, (p3_from, t_resume)
        for _ in range(100):
            permits.release()  # every later plan runs at once
        got = probe.wait_timed("chunk", lambda m: _seconds(m.header.stamp) > t_hold, timeout=10.0)
        assert got is not None, "no chunk after the resume"
        time.sleep(0.5)
        late = [_seconds(m.header.stamp) for _, m in probe.rx["chunk"] if _seconds(m.header.stamp) == p2_from]
        assert late == [], "P2's chunk, planned before the HOLD, was published after it"
        assert node._chunk_obs_stamp > t_resume - 0.2  # the chunk executing: planned after the resume
        discarded = [m.msg for _, m in probe.rx["log"] if "discarded: requested before" in m.msg]
        assert len(discarded) == 1, discarded
    finally:
        stop.set()
        for _ in range(100):
            permits.release()
        feeder.join(timeout=2.0)
        node.destroy_node()
        probe.close()
