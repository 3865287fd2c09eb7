"""Demonstration collection: roll out the scripted expert (or a weak scripted policy watched by the
scripted operator) and write episodes in the dataset format of docs/interfaces.md.

Modes:
- ``expert``: the task expert with quality knobs (sampled per episode when ``mixed``); source "expert".
- ``operator``: a deliberately weak scripted policy (the expert with heavy noise, hesitation and
  suboptimal plans) runs; the ``ScriptedOperator`` takes over when it detects a failure-prone state,
  through the glove retargeting path. Steps under its control are ``is_intervention`` with ``beta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.rewards import SIM_REWARD, RewardConfig, step_task_reward
from bora_sim.env import BoraSimEnv
from bora_sim.experts import ExpertKnobs, ScriptedExpert
from bora_sim.operator import OperatorConfig, ScriptedOperator

WEAK_POLICY_KNOBS = ExpertKnobs(noise=2.0, hesitation=2.0, suboptimal=1.0)


@dataclass
class EpisodeResult:
    arrays: dict[str, np.ndarray]
    info: dict[str, Any]


def run_episode(
    env: BoraSimEnv,
    seed: int,
    mode: str = "expert",
    knobs: ExpertKnobs | None = None,
    operator_cfg: OperatorConfig | None = None,
    reward: RewardConfig | None = None,
    policy_knobs: ExpertKnobs | None = None,
) -> EpisodeResult:
    """One episode; ``arrays`` hold per-step observation, executed action and labels.

    ``mode="operator"``: the policy is the expert with ``policy_knobs`` (default ``WEAK_POLICY_KNOBS``)
    and the operator's expert uses ``knobs``."""
    knobs = knobs or ExpertKnobs()
    operator_cfg = operator_cfg or OperatorConfig()
    reward = reward or SIM_REWARD
    if mode not in ("expert", "operator"):
        raise ValueError(f"mode must be 'expert' or 'operator', got {mode!r}")
    obs, info = env.reset(seed=seed)
    if mode == "expert":
        actor = ScriptedExpert(env, knobs=knobs, seed=seed + 7919)
        operator = None
    else:
        actor = ScriptedExpert(env, knobs=policy_knobs or WEAK_POLICY_KNOBS, seed=seed + 7919)
        operator = ScriptedOperator(env, cfg=operator_cfg, knobs=knobs, seed=seed + 104729)
    rec: dict[str, list] = {
        k: []
        for k in (
            "color",
            "depth",
            "state",
            "action",
            "policy_action",
            "is_intervention",
            "beta",
            "reward",
            "done",
        )
    }
    decision_beta, in_control = 0.0, False
    term = trunc = False
    while not (term or trunc):
        policy_a = actor.act()
        if operator is not None:
            dec = operator.observe(info)
            in_control, decision_beta = dec.takeover, dec.beta
            if in_control:
                human_a = operator.human_action()
                a = (1.0 - decision_beta) * policy_a + decision_beta * human_a
            else:
                a = policy_a
            if not in_control and operator.segments and operator.segments[-1].end == info["step"]:
                actor.reset()  # the policy resumes from wherever the operator left the robot
                policy_a = a = actor.act()
        else:
            a = policy_a
        rec["color"].append(obs["color"])
        rec["depth"].append(obs["depth"])
        rec["state"].append(np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]))
        obs, r, term, trunc, info = env.step(a)
        rec["action"].append(env.last_action)  # executed (after clipping)
        rec["policy_action"].append(policy_a)
        rec["is_intervention"].append(bool(in_control))
        rec["beta"].append(float(decision_beta if in_control else 0.0))
        rec["reward"].append(step_task_reward(reward, term))
        rec["done"].append(bool(term))
    success = bool(info["success"])
    interventions = []
    if operator is not None:
        operator.close_open_segment(success)
        interventions = operator.interventions()
    arrays = {k: np.asarray(v) for k, v in rec.items()}
    if mode == "expert":
        del arrays["policy_action"]
    ep_info = {
        "task": env.task_name,
        "instruction": env.task.instruction,
        "object_set": env.object_set.name,
        "object": env.obj.name,
        "seed": int(seed),
        "success": success,
        "outcome": "success" if success else "timeout",
        "interventions": interventions,
        "source": "expert" if mode == "expert" else "operator",
        "quality": knobs.as_dict(),
        "variation": env.variation,
        "control_hz": env.control_hz,
    }
    return EpisodeResult(arrays, ep_info)


def collect(
    task: str,
    episodes: int,
    out: str | Path,
    object_set: str = "standard",
    seed: int = 0,
    image_size: int = 96,
    control_hz: float = 10.0,
    mode: str = "expert",
    knobs: ExpertKnobs | None = None,
    mixed: bool = False,
    operator_cfg: OperatorConfig | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Collect ``episodes`` episodes into dataset directory ``out``; returns their info dicts."""
    knobs = knobs or ExpertKnobs()
    operator_cfg = operator_cfg or OperatorConfig()
    from bora_policy.common.episodes import DatasetMeta, next_episode_id, write_episode

    if episodes <= 0:
        raise ValueError(f"episodes must be > 0, got {episodes}")
    env = BoraSimEnv(task, object_set=object_set, image_size=image_size, control_hz=control_hz, render=True)
    meta = DatasetMeta(
        fps=env.control_hz,
        camera_names=list(env.camera_names),
        image_size=list(env.image_size),
        arm_joint_names=list(env.arm_joint_names),
        hand_joint_names=list(env.hand_joint_names),
        tasks=[task],
    )
    rng = np.random.default_rng(seed)
    first = next_episode_id(out)
    infos = []
    it = range(episodes)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"collect {task}", unit="ep")
    for i in it:
        k = knobs
        if mixed:  # mixed quality: knobs drawn per episode up to the given maxima
            k = ExpertKnobs(
                noise=float(rng.uniform(0, knobs.noise)),
                hesitation=float(rng.uniform(0, knobs.hesitation)),
                suboptimal=float(rng.uniform(0, knobs.suboptimal)),
            )
        res = run_episode(env, seed + i, mode=mode, knobs=k, operator_cfg=operator_cfg)
        res.info["camera_info"] = env.camera_info()
        write_episode(out, first + i, res.arrays, res.info, meta)
        infos.append(res.info)
    env.close()
    return infos
