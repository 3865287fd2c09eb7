"""Takeover requests from two sources, arbitrated explicitly (pure Python).

* ``person``: the operator at the robot. Requests come as changes of ``/bora/takeover`` (Bool), the
  ``/bora/teleop/set_takeover`` service and the ``t`` key. Human inputs: ``/glove/joint_states``, the
  UDP glove, ``/teleop/arm_target``.
* ``operator``: the simulation's scripted operator (``bora_sim``), which publishes its trigger as a
  level every tick on its own topic (``/bora/operator/takeover``) with its own glove and arm target
  (``/bora/operator/glove``, ``/bora/operator/arm_target``) and recovered flag.

Rules (ours): the takeover is requested while the person requests it, or while the scripted operator
does and the person has not overridden it. A person's request wins: while it holds, the scripted
operator's trigger and inputs are ignored. A person's request or release during a scripted takeover
overrides that scripted takeover, which resumes only at the scripted operator's next rising edge
(so its every-tick ``False`` cannot release a person's takeover, and its every-tick ``True`` cannot
re-take control the person released). The ``owner`` decides whose glove and arm target form A_human.
"""

from __future__ import annotations

PERSON, OPERATOR = "person", "operator"


class TakeoverSources:
    def __init__(self):
        self.person = False
        self.operator = False
        self.operator_overridden = False

    def requested(self) -> bool:
        return self.person or (self.operator and not self.operator_overridden)

    def owner(self) -> str | None:
        if self.person:
            return PERSON
        return OPERATOR if self.requested() else None

    def request(self, source: str, on: bool) -> bool:
        """A request (on) or release (off) from ``source``; returns the effective request."""
        on = bool(on)
        if source == PERSON:
            if self.operator:
                self.operator_overridden = True  # the person took over from, or released, the scripted one
            self.person = on
        elif source == OPERATOR:
            if on and not self.operator:
                self.operator_overridden = False  # a new scripted takeover (rising edge)
            self.operator = on
            if not on:
                self.operator_overridden = False
        else:
            raise ValueError(f"takeover source: expected {PERSON!r} or {OPERATOR!r}, got {source!r}")
        return self.requested()

    def end_now(self) -> None:
        """The episode ended: no one holds the takeover; a scripted trigger still high needs a new edge."""
        self.person = False
        if self.operator:
            self.operator_overridden = True
