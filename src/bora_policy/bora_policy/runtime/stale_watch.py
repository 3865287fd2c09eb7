"""Whether the policy's newest observation is fresh enough to act on, and the health report when it is not.

The policy node plans nothing and sends no autonomous command while its newest observation is older than
``stale_observation_s`` (``too_old``): a command computed from an old state is worse than the arbiter's
hold. That stop was silent (found in review): /diagnostics stayed OK and nothing was logged while no
command went out, e.g. with the sync node or a camera down. ``StaleWatch.update``, called once per
control tick, reports it once per onset and once at the recovery:

* onset: the newest observation has been too old on every tick for ``confirm_s`` (default 0.5 s, ours:
  right after a stall of the policy itself, already reported as a stall, its queued observations are
  taken within a tick or two, which is not a stream that stopped) -> ``HealthWindow.begin``: one WARN
  fault of kind ``stale_observation`` naming the age, and WARN on /diagnostics while it lasts;
* recovery: a fresh observation -> ``HealthWindow.end``; the returned line says how long it lasted.

Before the first observation nothing is reported: the graph is starting, and no observation is not a stale
one. Library code: no rclpy; times are the caller's clock (the node's ROS time, the observation stamps').
"""

from __future__ import annotations

from bora_policy.runtime.health import WARN, HealthWindow


class StaleWatch:
    KIND = "stale_observation"

    def __init__(self, stale_s: float, health: HealthWindow, confirm_s: float = 0.5):
        if not stale_s > 0 or not confirm_s >= 0:
            raise ValueError(f"StaleWatch: expected stale_s > 0 and confirm_s >= 0, got {stale_s!r}, {confirm_s!r}")
        self.stale_s, self.confirm_s = float(stale_s), float(confirm_s)
        self.health = health
        self.stale = False  # an onset was reported, no recovery since
        self._since: float | None = None  # the first tick of the current run of stale ticks

    def too_old(self, t: float, stamp: float | None) -> bool:
        """No observation yet (``stamp`` None), or the newest is older than ``stale_s`` at time ``t``."""
        return stamp is None or t - float(stamp) > self.stale_s

    def update(self, t: float, stamp: float | None) -> str | None:
        """The tick at ``t`` with the newest observation stamped ``stamp``: the log line of an onset or a
        recovery (reported to the health window), else None."""
        if stamp is None:
            return None
        if not self.too_old(t, stamp):
            since, self._since = self._since, None
            if not self.stale:
                return None
            self.stale = False
            self.health.end(self.KIND)
            return f"observations fresh again after {t - since:.1f} s without one; planning and commands resume"
        if self._since is None:
            self._since = t
        if self.stale or t - self._since < self.confirm_s:
            return None
        self.stale = True
        text = (
            f"no fresh observation: the newest is {t - stamp:.1f} s old (stale_observation_s {self.stale_s:g}); "
            "no plan and no autonomous command until one arrives"
        )
        self.health.begin(self.KIND, text, WARN)
        return text
