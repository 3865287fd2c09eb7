"""Help requests and critic values of a recorded episode, for its episode JSON (issue 19; no rclpy).

* ``help_requests``: every ``bora_msgs/HelpRequest`` of the episode on ``/bora/help_request`` (step, reason,
  value, threshold, predicted_steps_to_failure), in step order; requests at or after the episode's end are
  left out and counted in a warning.
* ``critic_q`` / ``critic_v``: per control step t < T, the value the policy's critic gave the step when it
  was executed: from the latest ``/bora/value`` estimate at step s <= t, entry t - s of its per-step q / v
  (None where no estimate covers t). ``bora help calibrate`` reads these, so a threshold can be calibrated
  from a real robot's recorded sessions.
Both topics are optional in a recording: without them the fields are empty lists / None.
"""

from __future__ import annotations

from typing import Any

T_HELP = "/bora/help_request"
T_VALUE = "/bora/value"
TYPES = {T_HELP: "bora_msgs/msg/HelpRequest", T_VALUE: "bora_msgs/msg/ValueEstimate"}


def help_fields(per_topic: dict[str, list], T: int, warnings: list[str], label: str) -> dict[str, Any]:
    """The episode JSON's ``help_requests``, ``critic_q`` and ``critic_v`` (module docstring)."""
    reqs, late = [], 0
    for m in sorted(per_topic.get(T_HELP, []), key=lambda x: x.key):
        r = m.msg
        if int(r.step) >= T:
            late += 1
            continue
        reqs.append({
            "step": int(r.step),
            "reason": str(r.reason),
            "value": float(r.value),
            "threshold": float(r.threshold),
            "predicted_steps_to_failure": int(r.predicted_steps_to_failure),
        })
    if late:
        warnings.append(f"episode {label}: {late} help request(s) at or after the end step {T} left out")
    values = sorted(per_topic.get(T_VALUE, []), key=lambda x: x.key)
    if not values:
        return {"help_requests": reqs, "critic_q": None, "critic_v": None}
    q: list[float | None] = [None] * T
    v: list[float | None] = [None] * T
    for m in values:  # later estimates overwrite the tail of earlier ones
        s = int(m.msg.step)
        for i in range(max(0, -s), min(len(m.msg.q), T - s)):
            q[s + i] = float(m.msg.q[i])
            if i < len(m.msg.v):
                v[s + i] = float(m.msg.v[i])
    return {"help_requests": reqs, "critic_q": q, "critic_v": v}
