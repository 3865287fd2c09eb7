"""env sim: the online loop's episodes come from the simulated robot in this process.

    bora train online --env sim --task pick_plush_toy --rounds 2 --episodes-per-round 10 \
        --offline-run runs/offline --offline-data data/pick_plush_toy --out runs/online [--algo bora-residual]

:class:`SimEpisodes` is the :class:`bora_trainer.online.loop.EpisodeSource` of ``--env sim``: each poll
rolls out ONE episode (blocking) with the loop's current policy, Algorithm 1 per round r:

1. the frozen offline VLA (VLM + action expert, never updated) gives z_t and A_VLA at each replanning
   step; the residuals of rounds < r are frozen and folded into the base (lines 8-12), the round's
   residual pi_res is trained on top (by the loop);
2. the episode runs A_final = A_base + alpha_t A_res (line 15) with the scripted operator (bora_sim's
   ScriptedOperator driving the scripted expert) as the human: while it has control the executed action
   is ``(1 - beta) A_final + beta A_human`` (line 17); rewards are recomputed from the recorded events
   (:func:`bora_policy.common.rewards.compute_rewards`); a time-limit truncation keeps the state after the
   last step for the bootstrap (``final``); the episode is written to ``OUT/rollouts`` and its chunk
   transitions (``vla`` = the pure A_VLA: ``base_round`` 1) go to the loop, which ingests them once,
   updates, checkpoints, freezes and folds exactly as for the ROS graph (:mod:`bora_trainer.online.loop`).

Seeds: round r's e-th episode uses ``seed + 1000 r + e`` (a resumed run continues the sequence);
evaluation episodes (``eval_episodes``, autonomous) after each round ``seed + 10^6 + i``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bora_policy.common.rewards import RewardConfig, compute_dones, compute_rewards
from bora_policy.models.residual import ResidualPolicy
from bora_policy.runtime.processor import ActionProcessor
from bora_trainer.config_io import load_config
from bora_trainer.data.replay import ReplaySpec, chunk_transitions
from bora_trainer.online.config import OnlineRunConfig, TrainerConfig, trainer_config_for
from bora_trainer.online.loop import OnlineLoop
from bora_trainer.online.source import Episode
from bora_trainer.online.vla import FrozenVLA, offline_buffer_for, write_online_run_files


def rollout(
    env,
    vla: FrozenVLA,
    policy: ResidualPolicy,
    alpha: float,
    horizon: int,
    seed: int,
    operator_cfg=None,
    use_operator: bool = True,
    reward: RewardConfig | None = None,
    monitor_cfg=None,
    critic=None,
    explore_std: float = 0.0,
) -> dict:
    """One episode of A_final with (optionally) the scripted operator; returns arrays, info, chunk rows.

    ``monitor_cfg`` (with the operator in ``requested`` mode, issue 19): a ``HelpMonitor`` reads ``critic``'s
    q(z, A_final) and v(z) of each planned chunk, every control step, as the policy node does; its requests go
    to the operator, which takes over only on them. ``info`` then holds ``help_requests`` (steps) and
    ``watched_steps`` (steps from a request until the operator hands back or the episode ends).

    ``explore_std`` (``OnlineRunConfig.explore_std``): each planned chunk executes ``A_final + alpha * eps``,
    eps ~ N(0, explore_std^2) in normalised units, drawn from a generator seeded by ``seed`` (the recorded
    ``policy_action`` is the noisy chunk's, ``base_action`` stays the base; the replay gets the executed actions,
    as always)."""
    from bora_policy.runtime.help_monitor import HelpMonitor
    from bora_sim.operator import ScriptedOperator, operator_config

    reward = reward or RewardConfig()
    obs, info = env.reset(seed=seed)
    op = (
        ScriptedOperator(env, cfg=operator_config(operator_cfg), seed=seed + 104729)
        if use_operator
        else None
    )
    keys = (
        "color",
        "depth",
        "state",
        "action",
        "policy_action",
        "base_action",
        "is_intervention",
        "beta",
        "z",
        "chunk_start",
    )
    mon = HelpMonitor(monitor_cfg) if (monitor_cfg is not None and op is not None) else None
    if mon is not None and critic is None:
        raise ValueError("rollout: a help monitor needs the critic whose values it reads")
    q = v = None
    requests: list[int] = []
    watched = 0
    rec: dict[str, list] = {k: [] for k in keys}
    starts, zs, vls, bases, props = [], [], [], [], []
    term = trunc = False
    t = 0
    final = base_phys = None
    dev = vla.device
    explore = np.random.default_rng(seed + 7919) if explore_std > 0 else None
    while not (term or trunc):
        state = vla.processor.state_of(obs)  # [arm q, hand q] float32 (runtime/processor.py)
        start = t % horizon == 0
        if start:
            z, a_vla, s_n = vla.act(obs["color"][None], [obs["instruction"]], state[None])
            with torch.no_grad():
                out = policy.compose(z.to(dev), s_n.to(dev), a_vla.to(dev), alpha)
            final = out.final_physical[0].cpu().numpy()
            if explore is not None:
                eps = explore.normal(0.0, explore_std, size=final.shape) * alpha
                final = final + eps * policy.action_std.cpu().numpy()  # normalised noise in physical units
            base_phys = policy.to_physical(out.base_norm)[0].cpu().numpy()
            if mon is not None:
                with torch.no_grad():
                    q = critic.q(z.to(dev), out.final_norm)[0].float().cpu().numpy()
                    v = critic.v(z.to(dev))[0].float().cpu().numpy()
            starts.append(t), zs.append(z[0].cpu().numpy()), vls.append(a_vla[0].cpu().numpy())
            bases.append(out.base_norm[0].cpu().numpy()), props.append(s_n[0].cpu().numpy())
        i = t % horizon
        a_pol = final[i]
        beta, in_control = 0.0, False
        a = a_pol
        if op is not None:
            dec = op.observe(info)
            in_control, beta = dec.takeover, (dec.beta if dec.takeover else 0.0)
            if mon is not None and not in_control:
                d = mon.update(t, q, v, i, q - v)
                if d is not None:
                    requests.append(t)
                    op.request_help(t, d.reason)
            watched += int(in_control or op.help_request is not None)
            if in_control:
                a = (1.0 - beta) * a_pol + beta * op.human_action()  # Algorithm 1 line 17
        rec["color"].append(obs["color"]), rec["depth"].append(obs["depth"]), rec["state"].append(state)
        obs, _, term, trunc, info = env.step(a.astype(np.float32))
        rec["action"].append(np.asarray(env.last_action, np.float32))  # executed (after clipping)
        rec["policy_action"].append(a_pol), rec["base_action"].append(base_phys[i])
        rec["is_intervention"].append(in_control), rec["beta"].append(beta)
        rec["z"].append(zs[-1] if start else np.zeros_like(zs[-1])), rec["chunk_start"].append(start)
        t += 1
    success = bool(info["success"])
    interventions = []
    if op is not None:
        op.close_open_segment(success)
        interventions = op.interventions()
    outcome = "success" if success else "timeout"
    final_obs = None
    if not term:  # truncated by the time limit: the state after the last step, for the bootstrap
        state = vla.processor.state_of(obs)
        z, a_vla, s_n = vla.act(obs["color"][None], [obs["instruction"]], state[None])
        with torch.no_grad():
            out = policy.compose(z.to(dev), s_n.to(dev), a_vla.to(dev), alpha)
        final_obs = {
            "z": z[0].cpu().numpy(),
            "proprio": s_n[0].cpu().numpy(),
            "vla": a_vla[0].cpu().numpy(),
            "base": out.base_norm[0].cpu().numpy(),
        }
    arrays = {k: np.asarray(v) for k, v in rec.items()}
    arrays["reward"] = compute_rewards(t, outcome, interventions, reward)
    arrays["done"] = compute_dones(t, outcome)
    ep_info = {
        "task": env.task_name,
        "instruction": env.task.instruction,
        "object_set": env.object_set.name,
        "seed": int(seed),
        "success": success,
        "outcome": outcome,
        "interventions": interventions,
        "source": "policy",
        "alpha": float(alpha),
        "round": policy.round,
    }
    if mon is not None:
        ep_info.update(help_requests=requests, watched_steps=watched)
    chunks = {
        "starts": np.asarray(starts),
        "z": np.stack(zs),
        "vla": np.stack(vls),
        "base": np.stack(bases),
        "proprio": np.stack(props),
        "final": final_obs,
    }
    return {"arrays": arrays, "info": ep_info, "chunks": chunks}


def rollout_rows(
    ep: dict, normalizer, k: int, episode: int, action_clip: float = 0.0, gamma: float | None = None
) -> dict[str, np.ndarray]:
    """Replay rows of one rollout; ``gamma``: with the Monte-Carlo returns of the full episode (data/replay.py)."""
    a, c = ep["arrays"], ep["chunks"]
    return chunk_transitions(
        ActionProcessor(normalizer).normalize(a["action"], action_clip),
        a["reward"],
        a["done"],
        c["starts"],
        c["z"],
        c["proprio"],
        c["vla"],
        k,
        base=c["base"],
        is_intervention=a["is_intervention"],
        beta=a["beta"],
        episode=episode,
        final=c.get("final"),
        gamma=gamma,
    )


class SimEpisodes:
    """The :class:`~bora_trainer.online.loop.EpisodeSource` of env sim: while the round wants episodes,
    each poll runs ONE (blocking) with ``produce(loop)``, which rolls it out with the loop's current
    policy (:class:`RobotRollouts`: the simulated robot), so the next one already uses the updates the
    loop ran after it. The ROS graph instead runs episodes on its own and the loop takes what is recorded
    (:class:`bora_trainer.online.env_ros.RosEpisodes`)."""

    def __init__(self, produce: Callable[[OnlineLoop], Episode]):
        self.produce = produce

    def poll(self, loop: OnlineLoop, wanted: int) -> list[Episode]:
        return [self.produce(loop)] if wanted > 0 else []


class RobotRollouts:
    """Episodes of the simulated robot ``env`` with the scripted operator (module docstring); each is
    written to ``rollouts`` (episode format) and handed to the loop as chunk transitions."""

    def __init__(self, cfg: OnlineRunConfig, env, vla: FrozenVLA, rollouts: Path, meta, progress: bool = True):
        self.cfg, self.env, self.vla, self.rollouts, self.meta = cfg, env, vla, Path(rollouts), meta
        self.horizon = cfg.exec_horizon or vla.k
        self.progress = progress
        self.monitor = cfg.monitor_config()  # None unless operator.mode is 'requested'

    def __call__(self, loop: OnlineLoop) -> Episode:
        from bora_policy.common.episodes import write_episode

        r, e, eid = loop.round, loop.in_round, loop.num_episodes
        seed = self.cfg.seed + 1000 * r + e
        loop.learner.actor.eval()
        ep = rollout(
            self.env, self.vla, loop.policy(), loop.learner.alpha(), self.horizon, seed=seed,
            operator_cfg=self.cfg.operator, reward=self.cfg.reward,
            monitor_cfg=self.monitor, critic=loop.learner.critic, explore_std=self.cfg.explore_std,
        )
        loop.learner.actor.train()
        write_episode(self.rollouts, eid, ep["arrays"], ep["info"], self.meta)
        a, info = ep["arrays"], ep["info"]
        rows = rollout_rows(ep, self.vla.normalizer, self.vla.k, eid, self.cfg.action_clip, self.cfg.online.gamma)
        digest = hashlib.sha256(np.ascontiguousarray(a["action"]).tobytes() + f"{seed}|{r}".encode()).hexdigest()
        ret = float(a["reward"].sum())
        if self.progress:
            print(
                f"round {r} episode {e + 1}/{self.cfg.episodes_per_round}: success={info['success']} "
                f"return={ret:.3f} interventions={len(info['interventions'])} alpha={loop.learner.alpha():.3f}",
                file=sys.stderr,
            )
        return Episode(
            rows,
            {"content_hash": digest, "num_steps": len(a["action"]), "outcome": info["outcome"],
             "source_episode_id": eid + 1},
            base_round=1,  # rows hold the pure A_VLA (rebase rule: all frozen residuals are folded)
            extra={"success": bool(info["success"]), "return": ret, "seed": seed,
                   "interventions": len(info["interventions"]),
                   **({"help_requests": len(info["help_requests"]), "watched_steps": info["watched_steps"]}
                      if "help_requests" in info else {})},
        )

    def end_round(self, loop: OnlineLoop) -> dict[str, Any]:
        """Round figures of env sim: success and takeovers with the operator, autonomous evaluation."""
        eps = [e for e in loop.ledger.values() if int(e["round"]) == loop.round]
        out = {
            "success_rate_with_operator": float(np.mean([bool(e["success"]) for e in eps])) if eps else 0.0,
            "interventions_per_episode": float(np.mean([e["interventions"] for e in eps])) if eps else 0.0,
        }
        if eps and "help_requests" in eps[0]:  # requested mode: requests and the operator's attention
            out["help_requests_per_episode"] = float(np.mean([e["help_requests"] for e in eps]))
            out["attention"] = float(sum(e["watched_steps"] for e in eps) / max(1, sum(e["num_steps"] for e in eps)))
        if self.cfg.eval_episodes:
            loop.learner.actor.eval()
            pol, lam = loop.policy(), loop.learner.alpha()
            ev = [
                rollout(self.env, self.vla, pol, lam, self.horizon, seed=self.cfg.seed + 10**6 + i,
                        use_operator=False, reward=self.cfg.reward)["info"]["success"]
                for i in range(self.cfg.eval_episodes)
            ]
            loop.learner.actor.train()
            out["eval_success_rate"] = float(np.mean(ev))
        return out


def train_sim(
    cfg: OnlineRunConfig,
    offline_run: str | Path,
    offline_data: str | Path,
    out: str | Path,
    progress: bool = True,
) -> dict:
    """``bora train online --env sim``: the one loop on episodes of the in-process simulated robot.
    ``OUT`` holds the loop's state (ledger, status, rounds/), ``replay/online``, ``rollouts`` and the
    checkpoints (``OUT/latest`` = the final round's stack); returns (and writes) ``summary.json``."""
    from bora_policy.common.episodes import DatasetMeta
    from bora_sim.env import make_env
    from bora_trainer.algorithms.online_learner import OnlineLearner
    from bora_trainer.checkpoint import RunLogger

    out = Path(out)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    torch.manual_seed(cfg.seed)
    vla = FrozenVLA(offline_run, device, cfg.deterministic_base)
    norm, k = vla.normalizer, vla.k
    H = cfg.exec_horizon or k
    if k % H:
        raise ValueError(f"exec_horizon={H} must divide the chunk size k={k}")
    spec = ReplaySpec(vla.z_dim, norm.state_dim, norm.action_dim, k, norm.version)
    write_online_run_files(out, cfg, offline_run, offline_data, norm)
    t0 = time.time()
    off_buf = offline_buffer_for(cfg, vla, offline_data, spec, progress=progress)
    image_size = DatasetMeta.from_dict(json.loads((Path(offline_data) / "meta.json").read_text())).image_size
    env = make_env(cfg.task, object_set=cfg.object_set, control_hz=cfg.control_hz, image_size=tuple(image_size))
    meta = DatasetMeta(
        fps=env.control_hz,
        camera_names=list(env.camera_names),
        image_size=list(env.image_size),
        arm_joint_names=list(env.arm_joint_names),
        hand_joint_names=list(env.hand_joint_names),
        tasks=[cfg.task],
        reward=dataclasses.asdict(cfg.reward),  # the online episodes' rewards (compute_rewards below)
    )

    def learner_factory(spec: ReplaySpec, round_: int) -> OnlineLearner:
        learner = OnlineLearner(
            vla.critic, spec.state_dim, spec.action_dim, k, spec.z_dim,
            dataclasses.replace(cfg.online, seed=cfg.seed + round_),
            normalizer_version=norm.version, critic_normalizer_version=norm.version,
            device=device, offline_critic=vla.critic,
        )
        learner.check_buffer(spec)
        return learner

    tcfg = load_config(TrainerConfig, {**trainer_config_for(cfg, offline_run, out), "state_dir": str(out)})
    robot = RobotRollouts(cfg, env, vla, out / "rollouts", meta, progress)
    logger = RunLogger(out)
    loop = OnlineLoop(
        tcfg, SimEpisodes(robot), learner_factory=learner_factory, offline=off_buf, run_dir=out,
        buffer_dir=out / "replay" / "online", extra_meta={"task": cfg.task, "algo": cfg.online.algo},
        on_round_end=robot.end_round, logger=logger,
    )
    setup_s = time.time() - t0
    loop.run()
    env.close()
    logger.close()
    summary = {
        "rounds": loop.summary(),
        "offline_transitions": len(off_buf),
        "offline_setup_s": setup_s,
        "total_updates": loop.update_step,
        "seconds": time.time() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
