"""The sim bridge's scripted operator (:mod:`bora_sim.operator`), free of ROS: it is told the episodes, the
policy's help requests and each control step's info, and says what the bridge publishes (``OperatorOutput``;
``bora_sim/nodes/bridge_node.py`` publishes it): the takeover trigger every tick, the glove angles and arm
target while in control, a recovered flag when it hands back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bora_sim.operator import GLOVE_JOINT_NAMES, OperatorConfig, ScriptedOperator

OPERATOR_SEED_OFFSET = 104729
"""An episode's operator is seeded with its env seed + this, as the in-process loops seed theirs
(bora_trainer/online/env_sim.py, bora_trainer/collect.py): through the graph it draws what it draws in process."""


@dataclass
class OperatorOutput:
    """What the bridge publishes for one control step."""

    takeover: bool
    """The takeover trigger (a level, published every tick)."""
    recovered: bool | None = None
    """The recovered flag of a handback (None: no handback this step)."""
    arm: np.ndarray | None = None
    """Arm joint targets [7] while in control (None: not in control)."""
    glove: np.ndarray | None = None
    """Glove angles (``GLOVE_JOINT_NAMES``) while in control (None: not in control)."""
    log: str = ""
    """A line for the log ('' none): why and when a takeover starts (the operator share's diagnosis)."""


class BridgeOperator:
    """The scripted operator of the bridge (``cfg`` from its parameters: ``operator_from_params``), seeded for the
    episode with env seed ``env_seed``."""

    glove_names = tuple(GLOVE_JOINT_NAMES)

    def __init__(self, env, cfg: OperatorConfig, env_seed: int) -> None:
        self.env, self._cfg = env, cfg
        self.start_episode(env_seed)

    def start_episode(self, env_seed: int) -> None:
        """A new episode with env seed ``env_seed`` started (the env was just reset): a fresh operator seeded with
        ``env_seed + OPERATOR_SEED_OFFSET``, so its glove noise and plans depend on the episode alone, not on what
        ran before in the session (before: one generator per session, found in review); no takeover, budget or
        help request carries over."""
        self.op = ScriptedOperator(self.env, self._cfg, seed=int(env_seed) + OPERATOR_SEED_OFFSET)
        self.cfg = self.op.cfg  # its task_overrides applied

    def help_request(self, step: int, reason: str, asked_at: int) -> str:
        """A help request of the policy (``requested`` mode, issue 19; the caller checks the mode and the episode)
        that reached the bridge at the env's ``step`` (the reaction delay counts from it), sent at the policy's
        step ``asked_at``; returns a line for the log."""
        taken = self.op.request_help(int(step), str(reason))
        return f"help request at step {asked_at} ({reason}): " + (
            f"the scripted operator takes over in {self.cfg.reaction_s:g} s"
            if taken
            else "ignored (in control, over budget or one pending)"
        )

    def tick(self, info: dict[str, Any], episode_id: int, final: bool = False, success: bool = False) -> OperatorOutput:
        """The operator observes the step's ``info``: a takeover may start or end; in control it commands.

        Not on the episode's final step (``final``: the step that brought its outcome, ``success`` or not):
        nothing follows it, so no takeover may start there and no command is sent; the in-process loops consult
        the operator before each step, never after the last (bora_trainer/online/env_sim.py). Before, the bridge
        consulted it there too (found in review). A takeover still open ends with the episode (:meth:`end_episode`):
        on success it is reported as its handback on success is (recovered flag True, trigger released), on a
        timeout the trigger stays up to the end (the teleop ends the takeover at the outcome)."""
        op = self.op
        if final:
            in_control = op.active is not None
            self.end_episode(success)
            return OperatorOutput(False, recovered=True) if in_control and success else OperatorOutput(in_control)
        n_before = len(op.segments)
        decision = op.observe(info)
        log = ""
        if len(op.segments) > n_before:
            seg = op.segments[-1]
            log = (
                f"the scripted operator takes over episode {episode_id} at step {seg.start} "
                f"({seg.reason}; progress {seg.progress0:.2f})"
            )
        recovered = None
        if decision.reason == "handback":
            recovered = bool(op.segments and op.segments[-1].recovered)
        arm = glove = None
        if decision.takeover:
            arm, glove = op.command()
        return OperatorOutput(bool(decision.takeover), recovered, arm, glove, log)

    def end_episode(self, success: bool) -> None:
        """The episode has its outcome: a takeover still open ends with it (recovered = ``success``)."""
        self.op.close_open_segment(bool(success))


__all__ = ["OPERATOR_SEED_OFFSET", "BridgeOperator", "OperatorOutput"]
