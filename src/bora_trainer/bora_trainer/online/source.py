"""What the online loop takes in: complete episodes, from an episode source (env sim or env ros)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from bora_trainer.online.loop import OnlineLoop


@dataclass
class Episode:
    """One complete episode as chunk transitions. ``rows``: replay fields with ``action`` normalised.
    ``info``: ``content_hash``, ``num_steps``, ``outcome``, ``source_episode_id``, ``session_id``,
    ``normalizer_versions`` (optional). ``base_round``: the round whose base the rows' ``vla`` chunk
    holds (None: the round it is ingested in; 1: the pure A_VLA). ``extra``: more ledger fields."""

    rows: dict[str, np.ndarray]
    info: dict[str, Any]
    base_round: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EpisodeSource(Protocol):
    """Where the loop's episodes come from (env sim or env ros)."""

    def poll(self, loop: OnlineLoop, wanted: int) -> list[Episode]:
        """Complete episodes ready now. ``wanted``: how many the current round still takes (0 when full
        or finished). env sim rolls one out with the loop's current policy (blocking); env ros returns
        the finished episodes of the recordings (never blocking; possibly none)."""
        ...
