"""The fault bench's rig (bench/bench_faults.py): the simulated graph it starts and stops, the outside rclpy
probe that observes it, and the checks every case shares (unsafe commands, episode starts, glove packets).
Split from bench_faults.py (which keeps the cases and the report) so each file reads in one sitting.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    from machine_info import machine as base

    return {**base(), "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Probe:
    """An outside rclpy node that records what the graph writes, with arrival times."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool

        from bora_msgs.msg import EpisodeEvent, ExecutedCommand, InterventionEvent, JointCommand

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node("bench_faults_probe")
        rel = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        be = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.executed: list = []
        self.commands: list = []
        self.arm_states: list = []
        self.episodes: list = []
        self.interventions: list = []
        self.diags: list = []
        n = self.node
        n.create_subscription(
            ExecutedCommand, "/bora/executed_command", lambda m: self.executed.append((time.monotonic(), m)), rel
        )
        n.create_subscription(
            JointCommand, "/bora/policy_command", lambda m: self.commands.append((time.monotonic(), m)), be
        )
        n.create_subscription(
            JointState, "/franka/joint_states", lambda m: self.arm_states.append((time.monotonic(), m)), be
        )
        ev = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        n.create_subscription(
            EpisodeEvent, "/bora/episode", lambda m: self.episodes.append((time.monotonic(), m)), ev
        )
        n.create_subscription(
            InterventionEvent, "/bora/intervention", lambda m: self.interventions.append((time.monotonic(), m)), ev
        )
        n.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: self.diags.append((time.monotonic(), m)), rel
        )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.pub_estop = n.create_publisher(Bool, "/bora/estop", latched)
        self.pub_takeover = n.create_publisher(Bool, "/bora/takeover", rel)
        self.pub_glove = n.create_publisher(JointState, "/glove/joint_states", rel)
        self.pub_arm_target = n.create_publisher(JointState, "/teleop/arm_target", rel)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(n)

    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
            if until is not None and until():
                return True
        return until is None

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        cli = self.node.create_client(srv_type, name)
        try:
            if not cli.wait_for_service(timeout_sec=timeout):
                return None
            fut = cli.call_async(request)
            end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < end:
                self.ex.spin_once(timeout_sec=0.05)
            return fut.result() if fut.done() else None
        finally:
            self.node.destroy_client(cli)

    def status(self, hardware_id: str, since: float = 0.0):
        """The newest DiagnosticStatus of ``hardware_id`` received after ``since``: (level, message, values)."""
        for t, arr in reversed(self.diags):
            if t < since:
                break
            for s in arr.status:
                if s.hardware_id == hardware_id or s.name.endswith(hardware_id):
                    lvl = s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")
                    return lvl, s.message, {v.key: v.value for v in s.values}
        return None

    def close(self):
        self.node.destroy_node()
        self.rclpy.try_shutdown()


class Graph:
    """``bora up --sim`` as a child process, with the pids of its nodes."""

    def __init__(self, extra: list[str], log: Path):
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bora" / "demo_vla"
        self.cmd = [
            sys.executable,
            "-m",
            "bora_trainer.cli",
            "up",
            "--sim",
            "--duration",
            "900",
            "--demo-vla-dir",
            str(cache),
            *extra,
        ]
        self.log = open(log, "w")
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        self.proc = subprocess.Popen(
            self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True
        )

    def node_pid(self, module: str) -> int | None:
        """The pid of the node process whose command line names ``module`` (a descendant of bora up)."""
        out = subprocess.run(["pgrep", "-f", module], capture_output=True, text=True).stdout.split()
        own = set(descendants(self.proc.pid))
        for p in out:
            if int(p) in own:
                return int(p)
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    kids: dict[int, list[int]] = {}
    for line in out.splitlines():
        a, b = line.split()
        kids.setdefault(int(b), []).append(int(a))
    res, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            res.append(c)
            todo.append(c)
    return res


# ---------------------------------------------------------------------------------------------- safety


def arm_limits() -> dict:
    from bora_policy.common.graph_params import load_graph_params

    P = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())["teleop"]["ros__parameters"]
    return {
        "lower": np.asarray(P["arm_lower"]),
        "upper": np.asarray(P["arm_upper"]),
        "vmax": np.asarray(P["arm_max_velocity"]),
        "hz": load_graph_params().control_hz,  # the arbiter runs at the graph's rate (config/graph.yaml)
    }


def unsafe_commands(executed: list, arm_states: list, lim: dict) -> tuple[int, list[str]]:
    """Executed (driver) commands that are non-finite, outside the arm limits, or a velocity violation: a
    step larger than the rate limit allows in one control period (1e-6 rad of float slack) away from BOTH
    the previous executed command and the arm's measured position when it was sent. (A hold at the
    measured position after a simulated reset teleported the arm is a jump from the previous command but
    no motion: the robot is already there.)"""
    st_t = np.asarray([t for t, _ in arm_states]) if arm_states else np.zeros(0)
    bad, why = 0, []
    prev = None
    step_max = lim["vmax"] / lim["hz"] + 1e-6
    for t, m in executed:
        q = np.asarray(m.command.position[:7], dtype=float)
        reason = ""
        if not np.all(np.isfinite(np.asarray(m.command.position, dtype=float))):
            reason = "non-finite"
        elif np.any(q < lim["lower"] - 1e-6) or np.any(q > lim["upper"] + 1e-6):
            reason = "outside joint limits"
        elif prev is not None and np.any(np.abs(q - prev) > step_max):
            i = int(np.searchsorted(st_t, t)) - 1
            meas = np.asarray(arm_states[i][1].position[:7], dtype=float) if i >= 0 else None
            if meas is None or np.any(np.abs(q - meas) > step_max):
                reason = (f"rate {np.max(np.abs(q - prev) * lim['hz']):.3f} rad/s from the previous command"
                          + ("" if meas is None else f", {np.max(np.abs(q - meas)):.3f} rad from the measured"))
        if reason:
            bad += 1
            why.append(f"episode {m.command.episode_id} step {m.command.step} held={m.held} "
                       f"intervention={m.is_intervention}: {reason}")
        prev = q
    return bad, why[:5]


# ------------------------------------------------------------------------------------------------ cases


def case_result(name, expected, observed, passed, reaction_s=None, unsafe=0, **extra) -> dict:
    return {
        "case": name,
        "expected": expected,
        "observed": observed,
        "passed": bool(passed),
        "reaction_s": reaction_s,
        "unsafe": int(unsafe),
        **extra,
    }


def episode_starts(probe: Probe) -> dict:
    """Command-vs-measured error in the first second of each episode against the steady-state median,
    and executed commands carrying an episode id other than the current one."""
    starts = [(t, m.episode_id) for t, m in probe.episodes if m.kind == 0]
    states = [(t, np.asarray(m.position[:7], dtype=float)) for t, m in probe.arm_states]
    if not starts or not states:
        return {"episodes": 0}
    st_t = np.asarray([t for t, _ in states])

    def measured(t):
        i = int(np.searchsorted(st_t, t))
        return states[min(i, len(states) - 1)][1]

    first, steady, wrong_id = [], [], 0
    for t, m in probe.executed:
        cur = [e for ts, e in starts if ts <= t]
        if not cur:
            continue
        if m.command.episode_id != cur[-1]:
            # within 50 ms of a START the event and the command may cross in flight
            if t - max(ts for ts, _ in starts if ts <= t) > 0.05:
                wrong_id += 1
        t0 = max(ts for ts, _ in starts if ts <= t)
        err = float(np.max(np.abs(np.asarray(m.command.position[:7]) - measured(t))))
        (first if t - t0 <= 1.0 else steady).append(err)
    med = float(np.median(steady)) if steady else float("nan")
    return {
        "episodes": len(starts),
        "first_second_max_err_rad": float(max(first)) if first else float("nan"),
        "first_second_median_err_rad": float(np.median(first)) if first else float("nan"),
        "steady_median_err_rad": med,
        "wrong_episode_id": wrong_id,
    }


def fuzz_packets(n: int, seed: int = 0) -> list[bytes]:
    """Random and mutated glove packets: structured JSON with hostile values, and binary noise."""
    rng = random.Random(seed)
    good = {"seq": 1, "stamp": 0.0, "names": [f"j{i}" for i in range(21)], "angles": [0.1] * 21}
    hostile = [1e400, -1e400, float("nan"), "x", None, [], {}, 5, 10**400, "9" * 400, True, -1, 2**64]
    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600))))
        elif k == 1:
            d = dict(good)
            d[rng.choice(list(d) + ["extra"])] = rng.choice(hostile)
            s = json.dumps(d, allow_nan=True).replace("Infinity", "1e400")
            out.append(s.encode())
        elif k == 2:
            s = bytearray(json.dumps(good).encode())
            for _ in range(rng.randint(1, 8)):
                s[rng.randrange(len(s))] = rng.getrandbits(8)
            out.append(bytes(s))
        else:
            out.append(('{"seq": ' + "9" * rng.randint(20, 500) + ', "stamp": 1e400, "names": 5}').encode())
    return out


def wait_first(items: list, since: float, pred, probe: Probe, timeout: float):
    """Spin until an item received after ``since`` satisfies ``pred``; its arrival time or None."""

    def hit():
        return next((t for t, m in items if t >= since and pred(m)), None)

    probe.spin(timeout, until=lambda: hit() is not None)
    return hit()


def human_joints() -> list[str]:
    return list(yaml.safe_load((ROOT / "config" / "retarget_shadow.yaml").read_text())["human_joints"])


def person_takeover(probe: Probe, seconds: float) -> None:
    """A person takes over: /bora/takeover True with a fresh glove and arm target (the measured arm pose) at
    20 Hz, then releases."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    names = human_joints()
    arm_names = [f"fr3_joint{i}" for i in range(1, 8)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if probe.arm_states:
            q = list(probe.arm_states[-1][1].position[:7])
            probe.pub_arm_target.publish(JointState(name=arm_names, position=[float(x) for x in q]))
        probe.pub_glove.publish(JointState(name=names, position=[0.1] * len(names)))
        probe.pub_takeover.publish(Bool(data=True))
        probe.spin(0.05)
    probe.pub_takeover.publish(Bool(data=False))
    probe.spin(0.1)


def udp_counts(probe: Probe, since: float) -> dict:
    st = probe.status("teleop", since=since)
    if st is None:
        return {}
    return {k: v for k, v in st[2].items() if k.startswith("udp_")} | {"level": st[0], "message": st[1]}
