"""Whether the policy's newest observation is fresh enough to act on, and the health report when it is not.

The policy node plans nothing and sends no command (AUTONOMOUS or HOLD) while its newest observation is older than
``stale_observation_s`` (``too_old``): a command computed from an old state is worse than the arbiter's
hold. That stop was silent (found in review): /diagnostics stayed OK and nothing was logged while no
command went out, e.g. with the sync node or a camera down. ``StaleWatch.update``, called once per
control tick, reports it at its onset, again every ``report_s`` while it lasts, and once at the recovery:

* onset: the newest observation has been too old on every tick for ``confirm_s`` (default 0.5 s, ours:
  right after a stall of the policy itself, already reported as a stall, its queued observations are
  taken within a tick or two, which is not a stream that stopped) -> ``HealthWindow.begin``: one WARN
  fault of kind ``stale_observation``, and WARN on /diagnostics while it lasts; the returned warning names
  the topic, how long no observation has been fresh (from the first stale tick) and the newest one's age;
* while it lasts: the same warning, with the longer times, ``report_s``, ``2 report_s``, ... after the onset
  (as for no observation at all, below; before, it was logged once at the onset, found in review: a log read
  minutes later did not show that the node was still stopped);
* recovery: a fresh observation -> ``HealthWindow.end``; the returned line says how long it lasted.

No observation at all (a misnamed or unremapped topic, the sync node not running) was silent too (found in
review): no observation is not a stale one, and the first seconds are the graph starting. Once ``report_s``
(default 5 s, ours: longer than the sync node's start after the policy's in ``bora up``) have passed since the
first tick without any observation, ``update`` reports it as the lasting condition ``no_observation`` (WARN on
/diagnostics while it lasts) and returns the warning naming the topic again every ``report_s`` (a throttled
warning, as a ROS 2 user expects from a node that waits for its input); the first observation ends it with one
line. A stale stream is then watched as above (its confirmation counts from the next tick).

Library code: no rclpy; times are the caller's clock (the node's ROS time, the observation stamps').
"""

from __future__ import annotations

from bora_policy.runtime.health import WARN, HealthWindow


class StaleWatch:
    KIND = "stale_observation"
    KIND_NONE = "no_observation"

    def __init__(
        self,
        stale_s: float,
        health: HealthWindow,
        confirm_s: float = 0.5,
        topic: str = "the observation topic",
        report_s: float = 5.0,
    ):
        if not stale_s > 0 or not confirm_s >= 0 or not report_s > 0:
            raise ValueError(
                "StaleWatch: expected stale_s > 0, confirm_s >= 0 and report_s > 0, got "
                f"{stale_s!r}, {confirm_s!r}, {report_s!r}"
            )
        self.stale_s, self.confirm_s, self.report_s = float(stale_s), float(confirm_s), float(report_s)
        self.health = health
        self.topic = str(topic)  # the node's resolved observation topic (remaps and namespace applied)
        self.stale = False  # an onset was reported, no recovery since
        self.waiting = False  # no observation yet, reported (no_observation), none since
        self._since: float | None = None  # the first tick of the current run of stale ticks
        self._onset = 0.0  # the tick of the reported onset (while ``stale``)
        self._stale_reports = 0  # stale warnings repeated since that onset
        self._t0: float | None = None  # the first tick (the start of the wait for a first observation)
        self._reports = 0  # no-observation warnings returned so far

    def too_old(self, t: float, stamp: float | None) -> bool:
        """No observation yet (``stamp`` None), or the newest is older than ``stale_s`` at time ``t``."""
        return stamp is None or t - float(stamp) > self.stale_s

    def update(self, t: float, stamp: float | None) -> str | None:
        """The tick at ``t`` with the newest observation stamped ``stamp`` (None: none yet): the log line of an
        onset (reported to the health window), of a stale stream still stale ``report_s`` later, of a recovery, or
        of the wait for a first observation, else None. ``stale`` or ``waiting`` is True after a warning."""
        if self._t0 is None:
            self._t0 = float(t)
        if stamp is None:
            return self._no_observation(t)
        if self.waiting:
            self.waiting = False
            self.health.end(self.KIND_NONE)
            return f"first observation on {self.topic} after {t - self._t0:.1f} s without one"
        if not self.too_old(t, stamp):
            since, self._since = self._since, None
            if not self.stale:
                return None
            self.stale = False
            self.health.end(self.KIND)
            return f"observations fresh again after {t - since:.1f} s without one; planning and commands resume"
        if self._since is None:
            self._since = t
        if self.stale:  # repeated every report_s after the onset (one line per period, also after a stall)
            if t - self._onset < self.report_s * (self._stale_reports + 1):
                return None
            self._stale_reports = max(self._stale_reports + 1, int((t - self._onset) // self.report_s))
            return self._stale_text(t, stamp)
        if t - self._since < self.confirm_s:
            return None
        self.stale, self._onset, self._stale_reports = True, float(t), 0
        text = self._stale_text(t, stamp)
        self.health.begin(self.KIND, text, WARN)
        return text

    def _stale_text(self, t: float, stamp: float) -> str:
        return (
            f"no fresh observation on {self.topic} for {t - self._since:.1f} s (the newest is {t - stamp:.1f} s "
            f"old, stale_observation_s {self.stale_s:g}); no plan and no command until one arrives"
        )

    def _no_observation(self, t: float) -> str | None:
        """No observation yet at the tick at ``t``: the warning at ``report_s``, ``2 report_s``, ... after the
        first tick (its first one also begins the condition ``no_observation``), else None."""
        waited = t - self._t0
        if waited < self.report_s * (self._reports + 1):
            return None
        self._reports = int(waited // self.report_s)  # one line per period, also after a stall of the caller
        text = (
            f"no observation on {self.topic} for {waited:.1f} s (is the sync node running? topic remapped?); "
            "no plan and no command until one arrives"
        )
        if not self.waiting:
            self.waiting = True
            self.health.begin(self.KIND_NONE, text, WARN)
        return text
