"""The process supervisor of ``bora up``: start the nodes, restart the ones that may be restarted, and
stop the graph when a node the robot's safety depends on exits.

Why (issue 20): the supervisor used to stop every node when any node exited. After ``kill -9`` of the
policy the whole graph was down 0.72 s later, so the arbiter never held and the operator's takeover and
e-stop went with it. Now each node has a role (``bora_policy.graph.NodeSpec``):

* ``critical`` (the teleop arbiter, the only writer to the drivers, and the simulated robot): when one
  exits, the graph is stopped with a message naming it (nothing may keep commanding a robot whose
  safety layer is gone);
* ``respawn`` (sync, policy, trainer): a crash (non-zero exit code or a signal) is reported and the node
  is started again after a back-off delay, as ``launch_ros``' ``respawn`` / ``respawn_delay`` /
  ``respawn_max_retries`` do (the launch files set the same values). Meanwhile the arbiter holds the
  measured position (its watchdog) and takes the operator's takeover and e-stop as always. The delay
  doubles with each consecutive restart up to ``max_delay_s`` (ours: a node that crashes at start-up
  does not spin); a node that ran ``stable_s`` seconds starts a fresh count. After ``max_restarts``
  consecutive restarts the graph is stopped with the reason. A respawnable node that exits with code 0
  on its own has finished (e.g. a trainer with ``max_seconds``): reported, not restarted;
* any other node: its exit stops the graph (the previous behaviour, also with ``RestartPolicy(respawn=
  False)``, ``bora up --no-respawn``).

Stopping: SIGINT, then SIGTERM, then SIGKILL to each node's process group, each with a deadline; before
SIGKILL a node still running is asked for its Python stacks (SIGUSR1 -> ``faulthandler``), so the log shows
where it hung. A
process started in the background by a non-interactive shell (``nohup bora up ... &``, a CI script)
inherits SIGINT as IGNORED, and so would every node: the first, clean step (rclpy's shutdown on SIGINT,
bags closed) would be lost and every stop would end in SIGTERM. The supervisor therefore restores SIGINT
(:func:`restore_sigint`) before it starts a node.

A ``bora up`` started by another program for the length of a job (``bora train online --env ros``) runs in its own
session, so a kill of that program's process group does not reach it: :func:`die_with_parent_from_env` (env
``BORA_DIE_WITH_PARENT=<pid>``) has the kernel send it SIGTERM when that parent dies, even by SIGKILL
(``prctl(PR_SET_PDEATHSIG)``, Linux), and it then stops its nodes as on any SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from bora_policy.graph import STACK_DUMP_SIGNAL


def restore_sigint() -> bool:
    """If SIGINT is ignored in this process (inherited from a background shell), handle it again (Python's
    KeyboardInterrupt), so that the nodes started from here do not inherit it as ignored. Only from the
    main thread (signal handlers can be set nowhere else). Returns True when it changed the disposition."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True


STACK_DUMP_WAIT_S = 0.5
STOP_STEPS = (
    ("SIGINT", signal.SIGINT, 5.0),
    ("SIGTERM", signal.SIGTERM, 3.0),
    ("SIGKILL", signal.SIGKILL, 2.0),
)


@dataclass(frozen=True)
class RestartPolicy:
    """How crashed respawnable nodes are restarted (defaults: bora_policy.graph.RESPAWN_*)."""

    respawn: bool = True
    delay_s: float = 2.0
    max_delay_s: float = 30.0
    max_restarts: int = 5
    stable_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.delay_s >= 0 and self.max_delay_s >= self.delay_s and self.max_restarts >= 0):
            raise ValueError(
                f"RestartPolicy: need 0 <= delay_s <= max_delay_s and max_restarts >= 0, got {self}"
            )

    def delay(self, restart: int) -> float:
        """The wait before the ``restart``-th consecutive restart (1-based): delay_s * 2^(restart-1), capped."""
        return min(self.delay_s * 2.0 ** max(restart - 1, 0), self.max_delay_s)


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


@dataclass
class _Node:
    name: str
    cmd: list[str]
    env: dict[str, str]
    critical: bool
    respawn: bool
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0  # consecutive
    total_restarts: int = 0
    next_start: float | None = None
    finished: bool = False
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Start processes, prefix their output, restart or stop them (see the module docstring)."""

    def __init__(self, out=None, policy: RestartPolicy | None = None, clock=time.monotonic):
        self.out = out or sys.stdout
        self.policy = policy or RestartPolicy(respawn=False)
        self.nodes: dict[str, _Node] = {}
        self.events: list[tuple[float, str, str]] = []  # (monotonic time, node, "started"/"exited"/...)
        self._clock = clock
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        restore_sigint()  # the nodes must not inherit SIGINT as ignored (module docstring)

    @property
    def procs(self) -> dict[str, subprocess.Popen]:
        """The current process of every node that has one."""
        return {n: m.proc for n, m in self.nodes.items() if m.proc is not None}

    def _print(self, line: str) -> None:
        with self._lock:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], critical: bool = False, respawn: bool = False
    ) -> subprocess.Popen:
        self.nodes[name] = _Node(name, list(cmd), dict(env), bool(critical), bool(respawn))
        return self._spawn(self.nodes[name])

    def _spawn(self, m: _Node) -> subprocess.Popen:
        proc = subprocess.Popen(
            m.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=m.env,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        m.proc, m.started, m.next_start = proc, self._clock(), None
        m.pids.append(proc.pid)
        self.events.append((m.started, m.name, "started"))
        width = max(len(n) for n in self.nodes)
        name = m.name

        def pump() -> None:
            for line in proc.stdout:
                self._print(f"[{name:<{width}}] {line.rstrip()}")

        th = threading.Thread(target=pump, name=f"out-{name}", daemon=True)
        th.start()
        self._threads.append(th)
        return proc

    def first_exited(self) -> tuple[str, int] | None:
        for name, p in self.procs.items():
            rc = p.poll()
            if rc is not None:
                return name, rc
        return None

    def poll(self) -> str | None:
        """One supervision step: restart what is due, handle exits. Returns why the graph must stop, or None."""
        now = self._clock()
        for m in self.nodes.values():
            if m.proc is None:
                if m.next_start is not None and now >= m.next_start:
                    proc = self._spawn(m)
                    self._print(
                        f"[bora up] restarted {m.name} (pid {proc.pid}; restart {m.restarts} of at most "
                        f"{self.policy.max_restarts} in a row)"
                    )
                continue
            rc = m.proc.poll()
            if rc is None:
                if m.restarts and now - m.started >= self.policy.stable_s:
                    m.restarts = 0  # ran long enough: a later crash starts a fresh back-off
                continue
            ran = now - m.started
            how = describe_exit(rc)
            self.events.append((now, m.name, f"exited {rc}"))
            m.proc = None
            if m.critical:
                return f"safety-critical node {m.name} exited ({how}) after {ran:.1f} s; stopping the graph"
            if not (self.policy.respawn and m.respawn):
                return f"node {m.name} exited ({how})"
            if rc == 0:
                m.finished = True
                self._print(f"[bora up] {m.name} finished on its own ({how}) after {ran:.1f} s; not restarted")
                continue
            if m.restarts >= self.policy.max_restarts:
                return (
                    f"node {m.name} exited ({how}) after {m.restarts} restart(s) in a row "
                    f"(--max-restarts {self.policy.max_restarts}); stopping the graph"
                )
            m.restarts += 1
            m.total_restarts += 1
            delay = self.policy.delay(m.restarts)
            m.next_start = now + delay
            self._print(
                f"[bora up] {m.name} crashed ({how}) after {ran:.1f} s; restarting it in {delay:.1f} s "
                f"(restart {m.restarts} of at most {self.policy.max_restarts}); the other nodes keep running"
            )
        return None

    def _dump_stacks(self, alive) -> None:
        """Before SIGKILL: ask each node still running for its Python stacks (``STACK_DUMP_SIGNAL``, which every
        BORA node hands to ``faulthandler``), so its log says where it hung."""
        for _, p in alive:
            try:
                os.kill(p.pid, STACK_DUMP_SIGNAL)
            except ProcessLookupError:
                pass
        self._print(f"[bora up] {', '.join(n for n, _ in alive)}: Python stacks requested (in the node's output)")
        time.sleep(STACK_DUMP_WAIT_S)

    def stop_all(self) -> dict[str, int]:
        for m in self.nodes.values():
            m.next_start = None  # nothing is restarted while stopping
        for sig_name, sig, deadline in STOP_STEPS:
            alive = [(n, p) for n, p in self.procs.items() if p.poll() is None]
            if not alive:
                break
            self._print(f"[bora up] {sig_name} -> {', '.join(n for n, _ in alive)}")
            if sig == signal.SIGKILL:
                self._dump_stacks(alive)
            for _, p in alive:
                try:
                    os.killpg(p.pid, sig)  # the node's own process group (start_new_session)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + deadline
            while time.monotonic() < end and any(p.poll() is None for _, p in alive):
                time.sleep(0.05)
        for th in self._threads:
            th.join(timeout=1.0)
        codes = {}
        for n, m in self.nodes.items():
            if m.proc is not None:
                codes[n] = m.proc.returncode
            else:
                last = [e for e in self.events if e[1] == n and e[2].startswith("exited")]
                codes[n] = int(last[-1][2].split()[1]) if last else 0
        return codes


PARENT_ENV = "BORA_DIE_WITH_PARENT"
"""Environment variable: the PID of the process whose death must stop this one (:func:`die_with_parent_from_env`)."""
_PR_SET_PDEATHSIG = 1


def die_with_parent_from_env() -> bool:
    """If ``$BORA_DIE_WITH_PARENT`` names a PID, ask the kernel for SIGTERM when the parent dies (Linux; elsewhere
    nothing), and SIGTERM ourselves if that parent is already gone. The variable is removed from the environment
    so the nodes started by this process do not inherit it. True when it was set."""
    pid = os.environ.pop(PARENT_ENV, "")
    if not pid:
        return False
    if not pid.isdigit():
        raise ValueError(f"{PARENT_ENV} must be a process id, got {pid!r}")
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_SET_PDEATHSIG) failed for {PARENT_ENV}={pid}")
    if os.getppid() != int(pid):  # the parent died before the prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
    return True
