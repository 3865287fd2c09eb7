"""HABC intervention-aware credit assignment (HABC paper Sec. 1 "Intervention-aware labelling").

Every control step ``t`` of an episode anchors one *window* ``[t, t + k)`` (truncated at the episode
end). Each window is one of

* ``KIND_DEMO`` - the episode is a demonstration (source in ``demo_sources``): actor weight 1, no
  outcome label (D_SFT).
* ``KIND_INTERVENTION`` - at least ``ceil(min_human_share * L)`` of its ``L`` steps were
  human-controlled (paper: 10 of 50 steps, i.e. share 0.2; scaled to our chunk length ``k``:
  ``ceil(0.2 * 32) = 7`` of 32). Never gets an outcome label (D_int); when the episode succeeded
  it is a target of the efficiency head (D_int^succ).
* ``KIND_POLICY`` - every other window (anchored in a policy segment, or with too few human steps).

Outcome labels ``y`` (the viability head's BCE target) go to policy windows only:

* fully autonomous episode: every policy window gets ``y``;
* episode with a takeover: only the *post-intervention suffix* (anchors after the last human step)
  gets ``y``; earlier policy windows stay unlabelled (``LABEL_NONE``);
* a takeover that lasts until the end (the human finished the task) leaves no suffix: only the
  intervention windows are used (paper Sec. 8.6);
* an episode with an unknown outcome (``success is None``: abort) gets no labels at all.

D_succ (efficiency head targets) = labelled successful policy windows + intervention windows of
successful episodes.

The efficiency head's undiscounted TD transitions are built on *anchors*: every step (paper
proposal Sec. 8.3, ``stride=1``), every ``stride``-th step, or the chunk starts of an online rollout
(where the cognition token is only recorded at replanning steps). ``n_steps`` is the number of
control steps to the next anchor; the last anchor of a successful episode is terminal with
``n_steps = T - 1 - t`` steps to the success frame (``V_e`` of the success frame is 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KIND_DEMO = 0
KIND_POLICY = 1
KIND_INTERVENTION = 2
LABEL_NONE = -1


def min_human_steps(window_len: int, min_human_share: float) -> int:
    """Smallest number of human-controlled steps that makes a window of ``window_len`` steps an
    intervention window: ``ceil(share * L)`` (at least 1). Paper: 10 of 50 (share 0.2)."""
    if not 0.0 < min_human_share <= 1.0:
        raise ValueError(f"min_human_share must be in (0, 1], got {min_human_share}")
    # the small slack keeps 0.2 * 50 = 10.000000000000002 at 10
    return max(1, math.ceil(min_human_share * window_len - 1e-9))


@dataclass
class EpisodeLabels:
    """Per-anchor labels of one episode (arrays of length T).

    kind: ``KIND_DEMO`` / ``KIND_POLICY`` / ``KIND_INTERVENTION``.
    label: 1 success, 0 failure, ``LABEL_NONE`` unlabelled (viability BCE target, policy windows only).
    in_succ: the window belongs to D_succ (efficiency head target set).
    n_human: number of human-controlled steps in the window.
    suffix_start: first anchor of the post-intervention suffix (0 without takeover; ``T`` when the
        takeover lasted until the end, i.e. there is no suffix); None for demos / unknown outcome.
    success: the episode outcome (None = unknown).
    """

    kind: np.ndarray
    label: np.ndarray
    in_succ: np.ndarray
    n_human: np.ndarray
    suffix_start: int | None
    success: bool | None


def label_episode(
    is_intervention: Sequence[bool] | np.ndarray,
    success: bool | None,
    chunk_len: int,
    min_human_share: float = 0.2,
    is_demo: bool = False,
    demos_in_critic: bool = False,
) -> EpisodeLabels:
    """Intervention-aware labels of one episode (HABC Sec. 1; see the module docstring).

    ``is_intervention`` [T]: per-step human control flag (``beta > 0``). ``success``: episode outcome.
    ``demos_in_critic`` [I] (off in the paper): demo windows of a successful demo are labelled 1 and put
    in D_succ, for offline runs whose data are demonstrations only.
    """
    is_int = np.asarray(is_intervention, dtype=bool)
    if is_int.ndim != 1:
        raise ValueError(f"is_intervention: expected a [T] array, got shape {is_int.shape}")
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    if success is not None and not isinstance(success, (bool, np.bool_)):
        raise ValueError(f"success: expected True/False/None, got {success!r}")
    T = len(is_int)
    # human steps in [t, t+k): difference of a cumulative sum
    csum = np.concatenate([[0], np.cumsum(is_int.astype(np.int64))])
    ends = np.minimum(np.arange(T) + chunk_len, T)
    n_human = csum[ends] - csum[:T]
    win_len = ends - np.arange(T)
    label = np.full(T, LABEL_NONE, dtype=np.int8)
    if is_demo:
        kind = np.full(T, KIND_DEMO, dtype=np.int8)
        in_succ = np.zeros(T, dtype=bool)
        if demos_in_critic and success is not None:
            label[:] = int(bool(success))
            in_succ[:] = bool(success)
        return EpisodeLabels(kind, label, in_succ, n_human, None, success)

    need = np.array([min_human_steps(int(L), min_human_share) for L in win_len], dtype=np.int64)
    is_int_win = n_human >= need
    kind = np.where(is_int_win, KIND_INTERVENTION, KIND_POLICY).astype(np.int8)
    human_steps = np.flatnonzero(is_int)
    suffix_start = int(human_steps[-1]) + 1 if len(human_steps) else 0
    in_succ = np.zeros(T, dtype=bool)
    if success is None:
        return EpisodeLabels(kind, label, in_succ, n_human, None, None)
    anchors = np.arange(T)
    labelled = (kind == KIND_POLICY) & (anchors >= suffix_start)
    label[labelled] = int(bool(success))
    if success:
        in_succ = labelled | (kind == KIND_INTERVENTION)
    return EpisodeLabels(kind, label, in_succ, n_human, suffix_start, bool(success))


@dataclass
class EfficiencyTransitions:
    """Undiscounted TD transitions between consecutive anchors of one episode (arrays over anchors).

    next_pos: position (in the anchor list) of the next anchor, -1 where there is none.
    n_steps: control steps to the next anchor, or to the success frame for a terminal transition.
    terminal: the episode succeeds before the next anchor: ``y_e = -n_steps`` (no bootstrap).
    has_target: a TD target exists (next anchor or terminal success); False on the last anchor of an
        episode that did not succeed.
    """

    next_pos: np.ndarray
    n_steps: np.ndarray
    terminal: np.ndarray
    has_target: np.ndarray


def efficiency_transitions(
    anchors: Sequence[int] | np.ndarray, num_steps: int, success: bool | None
) -> EfficiencyTransitions:
    """Transitions ``t -> t'`` between consecutive ``anchors`` (increasing step indices < ``num_steps``).

    HABC Eq. 2 with stride: ``y_e(s_t) = -n + V_e(s_t')`` where ``n = t' - t``; for the last anchor of
    a successful episode ``y_e(s_t) = -(T - 1 - t)`` (the success frame ``T-1`` has ``V_e = 0``), which is
    ``y_e = 0`` when the anchor is the success frame itself (paper: ``d_t = 1``).
    """
    a = np.asarray(anchors, dtype=np.int64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError("anchors: expected a non-empty 1-D list of step indices")
    if np.any(np.diff(a) <= 0) or a[0] < 0 or a[-1] >= num_steps:
        raise ValueError(f"anchors must be strictly increasing indices in [0, {num_steps}), got {a.tolist()}")
    n = len(a)
    next_pos = np.arange(1, n + 1, dtype=np.int64)
    next_pos[-1] = -1
    n_steps = np.zeros(n, dtype=np.int64)
    n_steps[:-1] = np.diff(a)
    terminal = np.zeros(n, dtype=bool)
    has_target = np.ones(n, dtype=bool)
    if success:
        terminal[-1] = True
        n_steps[-1] = num_steps - 1 - a[-1]
    else:
        has_target[-1] = False
    return EfficiencyTransitions(next_pos, n_steps, terminal, has_target)


def anchors_for(num_steps: int, stride: int = 1, chunk_start: np.ndarray | None = None) -> np.ndarray:
    """Anchor steps: the recorded chunk starts when given (online rollouts), else every ``stride``-th step."""
    if chunk_start is not None:
        cs = np.flatnonzero(np.asarray(chunk_start, dtype=bool))
        if len(cs) == 0:
            raise ValueError("chunk_start has no True entry: cannot anchor windows")
        return cs
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return np.arange(0, num_steps, stride, dtype=np.int64)


@dataclass
class HabcIndex:
    """Flat index of HABC samples over a set of episodes (one row per anchor).

    episode: position of the episode in the input list; step: anchor step; next_step: step of the next
    anchor (-1 where none); the other columns as in :class:`EpisodeLabels` / :class:`EfficiencyTransitions`.
    """

    episode: np.ndarray
    step: np.ndarray
    next_step: np.ndarray
    kind: np.ndarray
    label: np.ndarray
    in_succ: np.ndarray
    n_steps: np.ndarray
    terminal: np.ndarray
    has_target: np.ndarray

    def __len__(self) -> int:
        return len(self.step)


def episode_success(info: dict) -> bool | None:
    """Outcome of an episode JSON: ``success`` if set, else from ``outcome`` (timeout = failure;
    abort / missing = unknown)."""
    s = info.get("success")
    if s is not None:
        return bool(s)
    outcome = info.get("outcome")
    if outcome == "success":
        return True
    if outcome in ("failure", "timeout"):
        return False
    return None


def build_habc_index(
    episodes: Sequence[tuple[dict, dict]],
    chunk_len: int,
    min_human_share: float = 0.2,
    stride: int = 1,
    demo_sources: Sequence[str] = ("expert",),
    demos_in_critic: bool = False,
    use_chunk_start: bool = True,
) -> HabcIndex:
    """Label every anchor of ``episodes`` (``(arrays, info)`` pairs of :mod:`bora_policy.common.episodes`).

    Anchors are the recorded ``chunk_start`` steps when present (and ``use_chunk_start``), else every
    ``stride``-th step. Windows are labelled per step (:func:`label_episode`) and read at the anchors."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in HabcIndex.__dataclass_fields__}
    for e, (arrays, info) in enumerate(episodes):
        if "is_intervention" not in arrays:
            raise ValueError(f"episode {info.get('episode_id', e)}: missing array 'is_intervention'")
        is_int = np.asarray(arrays["is_intervention"], dtype=bool)
        T = len(is_int)
        if T == 0:
            continue
        success = episode_success(info)
        lab = label_episode(
            is_int,
            success,
            chunk_len,
            min_human_share,
            is_demo=info.get("source") in demo_sources,
            demos_in_critic=demos_in_critic,
        )
        cs = arrays.get("chunk_start") if use_chunk_start else None
        anchors = anchors_for(T, stride, cs if cs is not None and np.any(cs) else None)
        tr = efficiency_transitions(anchors, T, success)
        cols["episode"].append(np.full(len(anchors), e, dtype=np.int64))
        cols["step"].append(anchors)
        cols["next_step"].append(np.where(tr.next_pos >= 0, anchors[np.maximum(tr.next_pos, 0)], -1))
        cols["kind"].append(lab.kind[anchors])
        cols["label"].append(lab.label[anchors])
        cols["in_succ"].append(lab.in_succ[anchors])
        cols["n_steps"].append(tr.n_steps)
        cols["terminal"].append(tr.terminal)
        cols["has_target"].append(tr.has_target)
    dtypes = {
        "episode": np.int64,
        "step": np.int64,
        "next_step": np.int64,
        "kind": np.int8,
        "label": np.int8,
        "in_succ": bool,
        "n_steps": np.int64,
        "terminal": bool,
        "has_target": bool,
    }
    return HabcIndex(
        **{
            k: (np.concatenate(v) if v else np.zeros(0, dtype=dtypes[k])).astype(dtypes[k])
            for k, v in cols.items()
        }
    )


def window_transitions(
    t: np.ndarray, num_steps: np.ndarray, chunk_len: int, success: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Efficiency transitions of chunk windows ``t -> t + k`` (next observation after the chunk, as in the
    offline chunk dataset and the online replay rows). Returns ``(n_steps, terminal, has_target)``:
    a successful episode whose success frame ``T-1`` lies before ``t + k`` is terminal with
    ``n = T - 1 - t``; otherwise ``n = k`` and a target exists iff ``t + k <= T - 1``."""
    t = np.asarray(t, dtype=np.int64)
    T = np.asarray(num_steps, dtype=np.int64)
    succ = np.asarray(success, dtype=bool)
    terminal = succ & (t + chunk_len > T - 1)
    n_steps = np.where(terminal, T - 1 - t, chunk_len)
    has_target = terminal | (t + chunk_len <= T - 1)
    return n_steps, terminal, has_target
