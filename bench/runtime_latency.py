"""Chunk-boundary analysis of a recorded graph run (bench_runtime.py): observation -> command latency and the
step at each chunk boundary against the arbiter's velocity limit. Pure functions over recorded messages.

* Which command comes from which chunk: a policy command at time ``t`` with ``chunk_index i`` executes row
  ``i = round((t - s) * chunk_hz)`` of the chunk planned from the observation stamped ``s``
  (ChunkExecutor), so ``s`` lies within ``0.5 / chunk_hz`` of ``t - i / chunk_hz``; chunks are planned
  ``replan_steps`` ticks apart, so the match is unique. A chunk's FIRST command is the earliest one matched
  to it; the first chunk of each episode is left out (the hold of the start state carries index 0 too).
* obs -> command: that command's stamp minus ``s``. obs -> executed: the first ExecutedCommand (the
  arbiter's write to the drivers) stamped at or after that command, minus ``s``. Split of obs -> command:
  obs -> ready (the probe's receipt of the ActionChunk, published as the chunk is ready: transport of the
  observation + inference) and ready -> command (the wait for the control tick that adopts it).
* boundary steps: ``|q(t_k) - q(t_{k-1})|`` per joint at each first command and the ``blend_steps`` ticks
  after it, divided by the arbiter's per-tick limit ``v_j / control_hz``: a ratio <= 1 is within the limit.
"""

from __future__ import annotations

import numpy as np


def arbiter_limits(sim_yaml: str | None = None) -> tuple[list[float], float]:
    """The arbiter's arm (7) and hand speed limits in rad/s: bora_teleop.params defaults, overridden by
    the teleop section of the simulated graph's config when it sets them."""
    from bora_teleop.params import PARAMS

    arm, hand = list(PARAMS["arm_max_velocity"]), float(PARAMS["hand_max_velocity"])
    if sim_yaml:
        import yaml

        with open(sim_yaml) as f:
            p = ((yaml.safe_load(f) or {}).get("teleop") or {}).get("ros__parameters") or {}
        arm = [float(v) for v in p.get("arm_max_velocity", arm)]
        hand = float(p.get("hand_max_velocity", hand))
    return arm, hand


def per_joint_limit(arm: list[float], hand: float, n: int) -> np.ndarray:
    return np.asarray([arm[j] if j < len(arm) else hand for j in range(n)], dtype=np.float64)


def analyse(
    chunks: list[tuple[float, int, float]],
    cmds: list[tuple[float, int, int, np.ndarray]],
    execs: list[tuple[float, int]],
    chunk_hz: float,
    control_hz: float,
    blend_steps: int,
    vmax: tuple[list[float], float],
) -> dict:
    """chunks: (observation stamp, episode, receipt time); cmds: (stamp, episode, chunk_index, position); execs: (stamp,
    episode). Returns latencies (ms) and boundary step ratios (module docstring)."""
    half = 0.5 / chunk_hz + 1e-3
    by_ep: dict[int, list[float]] = {}
    recv = {(ep, s): r for s, ep, r in chunks}
    for s, ep, _ in sorted(chunks):
        by_ep.setdefault(ep, []).append(s)
    first: dict[tuple[int, float], int] = {}  # (episode, chunk stamp) -> index into cmds of its first command
    cmds = sorted(cmds, key=lambda c: c[0])
    for k, (t, ep, idx, _) in enumerate(cmds):
        stamps = by_ep.get(ep, [])
        if len(stamps) < 2:
            continue
        s_est = t - idx / chunk_hz
        j = int(np.argmin([abs(s - s_est) for s in stamps]))
        if abs(stamps[j] - s_est) <= half and j > 0:  # j == 0: the episode's first chunk (left out)
            first.setdefault((ep, stamps[j]), k)
    ex = sorted(execs)
    ex_t = np.asarray([e[0] for e in ex])
    lat_cmd, lat_exec, ratios, ratios_all, to_ready, ready_wait = [], [], [], [], [], []
    per_chunk: list[dict] = []  # one record per matched chunk, for diagnosing the tail
    n = len(cmds[0][3]) if cmds else 0
    lim = per_joint_limit(vmax[0], vmax[1], n) / control_hz
    for (ep, s), k in sorted(first.items()):
        t = cmds[k][0]
        lat_cmd.append(t - s)
        to_ready.append(recv[(ep, s)] - s)
        ready_wait.append(t - recv[(ep, s)])
        i = int(np.searchsorted(ex_t, t)) if len(ex_t) else 0
        while i < len(ex) and ex[i][1] != ep:
            i += 1
        if i < len(ex):
            lat_exec.append(ex[i][0] - s)
        per_chunk.append({"episode": ep, "obs_stamp": s, "obs_to_ready_ms": (recv[(ep, s)] - s) * 1e3,
                          "obs_to_command_ms": (t - s) * 1e3,
                          "obs_to_executed_ms": (ex[i][0] - s) * 1e3 if i < len(ex) else None})
        for kk in range(k, min(k + blend_steps + 1, len(cmds))):
            if kk > 0 and cmds[kk - 1][1] == cmds[kk][1] == ep:
                step = np.abs(np.asarray(cmds[kk][3]) - np.asarray(cmds[kk - 1][3]))
                ratios.append(float(np.max(step / lim)))
    for kk in range(1, len(cmds)):
        if cmds[kk - 1][1] == cmds[kk][1]:
            step = np.abs(np.asarray(cmds[kk][3]) - np.asarray(cmds[kk - 1][3]))
            ratios_all.append(float(np.max(step / lim)))

    def stats(x: list[float], scale: float = 1e3) -> dict:
        if not x:
            return {"n": 0}
        a = np.asarray(x) * scale
        return {"n": len(x), "mean": float(a.mean()), "p50": float(np.median(a)), "p99": float(np.percentile(a, 99)),
                "max": float(a.max())}

    period_ms = 1e3 / control_hz
    return {
        "obs_to_executed_over_period": int(sum(x * 1e3 > period_ms for x in lat_exec)),
        "obs_to_command_ms": stats(lat_cmd),
        "obs_to_executed_ms": stats(lat_exec),
        "obs_to_ready_ms": stats(to_ready),
        "ready_to_command_ms": stats(ready_wait),
        "boundary_step_over_limit": stats(ratios, 1.0),
        "any_step_over_limit": stats(ratios_all, 1.0),
        "limit_rad_per_tick": lim.tolist(),
        "chunks": per_chunk,
    }


def start_spacing(starts: list[tuple[int, int]], replan_steps: int) -> dict:
    """How far apart successive chunks of an episode start, in control steps: ``starts`` are (episode,
    ActionChunk.step) in arrival order (a chunk's step is that of the observation it was planned from). Returns
    the number of spacings, how many equal ``replan_steps`` (the grid; every other one leaves a gap or an
    overlap in the recorded replay rows) and a histogram {spacing: count}."""
    by_ep: dict[int, list[int]] = {}
    for ep, step in starts:
        by_ep.setdefault(int(ep), []).append(int(step))
    gaps = [b - a for steps in by_ep.values() for a, b in zip(steps, steps[1:])]
    hist: dict[int, int] = {}
    for g in gaps:
        hist[g] = hist.get(g, 0) + 1
    exact = sum(g == replan_steps for g in gaps)
    return {"n": len(gaps), "exact": exact, "exact_fraction": exact / len(gaps) if gaps else float("nan"),
            "replan_steps": int(replan_steps), "hist": dict(sorted(hist.items()))}
