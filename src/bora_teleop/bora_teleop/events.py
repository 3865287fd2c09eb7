"""Episode bookkeeping, intervention rewards and the operator's keyboard map (pure Python).

Keys (read by the teleop node only when its stdin is a terminal):

| key | action |
| --- | --- |
| ``t`` | toggle the takeover (same as ``/bora/takeover`` / ``/bora/teleop/set_takeover``) |
| ``r`` | the correction completed, task recovered (RECOVERED, r_rec) |
| ``s`` | episode SUCCESS |
| ``f`` | episode FAILURE |
| ``a`` | episode ABORT |
| ``n`` | new episode (START, episode id + 1) |
| ``e`` | e-stop (latched; only ``/bora/teleop/reset_estop`` clears it) |
| ``h`` | print this help |

Intervention rewards come from ``bora_policy.common.rewards.RewardConfig`` (r_int =
``intervention_penalty``, r_rec = ``recovery_bonus``) so the arbiter and the trainer agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from bora_policy.common.rewards import RewardConfig

# EpisodeEvent / MarkEpisode kinds (bora_msgs constants)
EP_START, EP_SUCCESS, EP_FAILURE, EP_ABORT = 0, 1, 2, 3
EPISODE_KINDS = {EP_START: "START", EP_SUCCESS: "SUCCESS", EP_FAILURE: "FAILURE", EP_ABORT: "ABORT"}
# InterventionEvent kinds (bora_msgs constants)
INTERVENTION_KINDS = {"START": 0, "END": 1, "RECOVERED": 2}

KEYMAP = {
    "t": "toggle_takeover",
    "r": "recovered",
    "s": "success",
    "f": "failure",
    "a": "abort",
    "n": "new_episode",
    "e": "estop",
    "h": "help",
}
KEY_HELP = (
    "keys: t=toggle takeover  r=recovered  s=success  f=failure  a=abort  n=new episode  "
    "e=E-STOP (reset: /bora/teleop/reset_estop)  h=help"
)


R_INT_DEFAULT = RewardConfig().intervention_penalty
R_REC_DEFAULT = RewardConfig().recovery_bonus


@dataclass
class InterventionRewards:
    """r_int (<= 0, at START) and r_rec (>= 0, at RECOVERED); END carries 0 (Algorithm 1 lines 17, 22)."""

    r_int: float = R_INT_DEFAULT
    r_rec: float = R_REC_DEFAULT

    def __post_init__(self) -> None:
        if self.r_int > 0:
            raise ValueError(f"r_int (intervention_penalty) must be <= 0, got {self.r_int}")
        if self.r_rec < 0:
            raise ValueError(f"r_rec (recovery_bonus) must be >= 0, got {self.r_rec}")

    def reward(self, kind: str) -> float:
        return {"START": self.r_int, "RECOVERED": self.r_rec, "END": 0.0}[kind]


class EpisodeTracker:
    """Current episode id and control step.

    The policy's commands carry (episode_id, step) and are followed when fresh; START events
    from elsewhere (the sim bridge) and the ``n`` key / MarkEpisode(START) set the id. Between
    policy commands the step advances by one per control tick.
    """

    def __init__(self, episode_id: int = 0):
        self.episode_id = int(episode_id)
        self.step = 0
        self.ended = False

    def observe_command(self, episode_id: int, step: int) -> None:
        if episode_id != self.episode_id:
            self.episode_id, self.ended = int(episode_id), False
        self.step = int(step)

    def observe_start(self, episode_id: int) -> None:
        if episode_id != self.episode_id:
            self.episode_id, self.step, self.ended = int(episode_id), 0, False

    def tick(self) -> None:
        self.step += 1

    def mark(self, kind: int) -> tuple[int, int]:
        """Apply a MarkEpisode kind; returns (episode_id, step) of the event."""
        if kind not in EPISODE_KINDS:
            raise ValueError(
                f"MarkEpisode.kind must be one of {sorted(EPISODE_KINDS)} "
                f"({', '.join(EPISODE_KINDS.values())}), got {kind}"
            )
        if kind == EP_START:
            self.episode_id += 1
            self.step, self.ended = 0, False
        else:
            self.ended = True
        return self.episode_id, self.step
