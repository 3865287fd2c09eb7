"""Demonstration collection (``bora sim collect``): roll out the scripted expert (or a weak scripted
policy watched by the scripted operator) on the simulated robot and write episodes in the dataset
format of docs/interfaces.md (``bora_policy.common.episodes``).

The state of each step is assembled from the robot's raw parts (arm q, hand q) by the policy runtime's
``ObservationProcessor`` (no normaliser: collection stores physical states), the same code that builds
it for the policy node, ``bora eval`` and the online trainers. It lives in the trainer, not in
``bora_sim``, because the sim never imports the policy runtime; ``bora sim`` gets its ``collect`` verb
from here (:func:`main`), its other verbs from ``bora_sim.cli``.

Modes:
- ``expert``: the task expert with quality knobs (sampled per episode when ``mixed``); source "expert".
- ``operator``: a deliberately weak scripted policy (the expert with heavy noise, hesitation and
  suboptimal plans) runs; the ``ScriptedOperator`` takes over when it detects a failure-prone state,
  through the glove retargeting path. Steps under its control are ``is_intervention`` with ``beta``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.rewards import SIM_REWARD, RewardConfig, step_task_reward
from bora_policy.runtime.processor import ObservationProcessor, ProcessorConfig
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
    proc = ObservationProcessor(cfg=ProcessorConfig(hand_dim=len(env.hand_joint_names)))
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
        rec["state"].append(proc.state_of(obs))
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


def dataset_meta(env: BoraSimEnv, task: str, reward: RewardConfig = SIM_REWARD):
    """The ``DatasetMeta`` of episodes recorded on ``env`` (collection, and ``bora eval --record``), whose
    ``reward`` arrays hold ``step_task_reward(reward, ...)``."""
    from bora_policy.common.episodes import DatasetMeta

    return DatasetMeta(
        fps=env.control_hz,
        camera_names=list(env.camera_names),
        image_size=list(env.image_size),
        arm_joint_names=list(env.arm_joint_names),
        hand_joint_names=list(env.hand_joint_names),
        tasks=[task],
        reward=dataclasses.asdict(reward),  # what the episodes' ``reward`` arrays hold (run_episode's default)
    )


def collect(
    task: str,
    episodes: int,
    out: str | Path,
    object_set: str = "standard",
    seed: int = 0,
    image_size: int = 96,
    control_hz: float | None = None,  # None: config/graph.yaml's
    mode: str = "expert",
    knobs: ExpertKnobs | None = None,
    mixed: bool = False,
    operator_cfg: OperatorConfig | None = None,
    progress: bool = True,
    first_episode: int | None = None,
) -> list[dict[str, Any]]:
    """Collect ``episodes`` episodes into dataset directory ``out``; returns their info dicts.

    ``first_episode``: the id of the first episode written (default: after the dataset's last one). Given,
    several collectors can fill one dataset at the same time in disjoint id ranges (``bora demo`` runs its
    quality groups so); ids that already hold an episode are refused before anything is written."""
    knobs = knobs or ExpertKnobs()
    operator_cfg = operator_cfg or OperatorConfig()
    from bora_policy.common.episodes import next_episode_id, write_episode

    if episodes <= 0:
        raise ValueError(f"episodes must be > 0, got {episodes}")
    if first_episode is not None:
        if first_episode < 0:
            raise ValueError(f"first_episode must be >= 0, got {first_episode}")
        taken = _taken_ids(out, first_episode, episodes)
        if taken:
            raise ValueError(
                f"first_episode={first_episode}: {out} already has episode(s) {taken[:5]} in the range "
                f"{first_episode}..{first_episode + episodes - 1}; choose another first id"
            )
    env = BoraSimEnv(task, object_set=object_set, image_size=image_size, control_hz=control_hz, render=True)
    meta = dataset_meta(env, task)
    rng = np.random.default_rng(seed)
    first = next_episode_id(out) if first_episode is None else first_episode
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


def _taken_ids(out: str | Path, first: int, n: int) -> list[int]:
    """Ids in ``first .. first + n - 1`` that have any file (complete or partly written) in ``out``."""
    ep = Path(out) / "episodes"
    if not ep.is_dir():
        return []
    taken = set()
    for f in ep.iterdir():
        stem = f.name.lstrip(".")
        if stem.startswith("episode_") and stem[8:14].isdigit() and first <= int(stem[8:14]) < first + n:
            taken.add(int(stem[8:14]))
    return sorted(taken)


# ---------------------------------------------------------------------------------------------- CLI
def add_collect_arguments(c: argparse.ArgumentParser) -> None:
    """The options of ``bora sim collect``."""
    from bora_sim.tasks import TASKS

    c.add_argument("--task", required=True, choices=sorted(TASKS))
    c.add_argument("--episodes", type=int, required=True, help="number of episodes to write")
    c.add_argument("--out", required=True, help="dataset directory (created; episodes are appended)")
    c.add_argument("--object-set", default="standard", help="'standard', 'unseen' or a YAML object-set file")
    c.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i uses seed+i)")
    c.add_argument(
        "--first-episode",
        type=int,
        default=None,
        help="id of the first episode written (default: after the dataset's last); lets several collectors "
        "fill one dataset at once in disjoint ranges (refused where an id is taken)",
    )
    c.add_argument("--image-size", type=int, default=96, help="square image size in pixels")
    c.add_argument(
        "--control-hz", type=float, default=None, help="control rate (10-30 Hz; default: config/graph.yaml's)"
    )
    c.add_argument(
        "--mode",
        choices=("expert", "operator"),
        default="expert",
        help="expert demonstrations, or a weak scripted policy with scripted-operator takeovers",
    )
    c.add_argument("--noise", type=float, default=0.0, help="expert noise knob (max if --mixed)")
    c.add_argument("--hesitation", type=float, default=0.0, help="expert hesitation knob (max if --mixed)")
    c.add_argument("--suboptimal", type=float, default=0.0, help="expert suboptimality knob (max if --mixed)")
    c.add_argument("--mixed", action="store_true", help="draw the knobs per episode uniformly in [0, given]")
    c.add_argument("--budget", type=int, default=3, help="operator interventions per episode (operator mode)")


def run_collect(args: argparse.Namespace) -> int:
    """``bora sim collect``: prints one JSON line (out, episodes, successes, interventions)."""
    if args.first_episode is not None:  # checked before the simulator starts (a one-line error)
        taken = _taken_ids(args.out, args.first_episode, args.episodes) if args.first_episode >= 0 else []
        if args.first_episode < 0 or taken:
            why = "must be >= 0" if args.first_episode < 0 else f"episode(s) {taken[:5]} already in {args.out}"
            print(f"bora sim collect: --first-episode {args.first_episode}: {why}", file=sys.stderr)
            return 2
    infos = collect(
        args.task,
        args.episodes,
        args.out,
        object_set=args.object_set,
        seed=args.seed,
        image_size=args.image_size,
        control_hz=args.control_hz,
        mode=args.mode,
        knobs=ExpertKnobs(args.noise, args.hesitation, args.suboptimal),
        mixed=args.mixed,
        operator_cfg=OperatorConfig(budget=args.budget),
        first_episode=args.first_episode,
    )
    n_ok = sum(bool(i["success"]) for i in infos)
    n_int = sum(len(i["interventions"]) for i in infos)
    print(json.dumps({"out": args.out, "episodes": len(infos), "successes": n_ok, "interventions": n_int}))
    return 0


COLLECT_VERB = (
    "write demonstration episodes (docs/interfaces.md format)",
    add_collect_arguments,
    run_collect,
)


def main(argv: list[str] | None = None) -> int:
    """``bora sim <verb>``: ``collect`` (here) and the simulated robot's own verbs (``bora_sim.cli``)."""
    from bora_sim.cli import main as sim_main

    return sim_main(argv, extra_verbs={"collect": COLLECT_VERB})
