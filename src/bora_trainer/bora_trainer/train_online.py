"""``bora train online``: the online phase (Sec. 3.2, Algorithm 1) on the simulated robot.

    bora train online --env sim --task pick_plush_toy --rounds 2 --episodes-per-round 10 \
        --offline-run runs/offline --offline-data data/pick_plush_toy --out runs/online [--algo bora-residual]

Per round r (Algorithm 1, multi-round):
1. the frozen offline VLA (VLM + action expert, never updated) gives z_t and A_VLA at each replanning
   step; the residuals of rounds < r are frozen and folded into the base (lines 8-12); a fresh residual
   actor pi_res is trained on top; the critic is inherited (round 1: the offline critic; later rounds:
   the previous round's online critic, with the offline critic kept as the regulariser's anchor);
2. each episode runs A_final = A_base + alpha_t A_res (line 15) with the scripted operator (bora_sim's
   ScriptedOperator driving the scripted expert) as the human: while it has control the executed action
   is ``(1 - beta) A_final + beta A_human`` (line 17); rewards are recomputed from the recorded events
   (:func:`bora_policy.common.rewards.compute_rewards`); the episode is written to ``OUT/rollouts`` and its chunk
   transitions appended (atomically) to ``OUT/replay/online``;
3. once the online buffer holds ``n_start`` transitions, ``updates_per_env_step`` updates per executed
   control step (Algorithm 1 runs one per step) of :class:`OnlineLearner` on 1:1 offline/online batches,
   up to ``max_updates`` per round;
4. the round's residual is checkpointed (``OUT/checkpoints``; all residuals + their lambdas + critic),
   and frozen with lambda = its final alpha for the next round.

The offline transitions (z_t and A_VLA of the offline dataset at every ``offline_stride`` steps) are
computed once with the frozen VLA; only the base chunk is recomputed when a round folds a residual.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bora_policy.common.rewards import RewardConfig, compute_dones, compute_rewards
from bora_policy.models.residual import (
    FrozenResidual,
    ResidualPolicy,
    residual_checkpoint_extra,
)
from bora_trainer.algorithms.online import OnlineConfig, OnlineLearner, check_normalizer_versions
from bora_trainer.config_io import load_config, to_dict
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplaySpec, chunk_transitions


@dataclass
class OnlineRunConfig:
    """``bora train online`` (sim). Learner hyper-parameters are in ``online`` (Table 3 Phase 2).

    exec_horizon: control steps executed from each chunk before replanning (0 = the whole chunk, k);
        must divide k so the next observation of a chunk transition is a replanning step.
    offline_stride: chunk starts in the offline dataset (0 = exec_horizon).
    updates_per_env_step: learner updates per executed control step once n_start is reached.
    deterministic_base: the VLA's mean chunk (True) or a sample.
    operator: overrides of bora_sim.operator.OperatorConfig.
    eval_episodes: autonomous episodes (no operator) after each round, for the success rate.
    action_clip: executed actions are clipped to +-action_clip in normalised units before entering the
        replay (0 = off): dimensions that were constant in the offline data have a tiny std, and the
        operator's commands there would otherwise dominate the BC loss.
    """

    task: str = "pick_plush_toy"
    object_set: str = "standard"
    rounds: int = 2
    episodes_per_round: int = 10
    control_hz: float = 10.0
    exec_horizon: int = 0
    offline_stride: int = 0
    max_offline_episodes: int = 0
    updates_per_env_step: float = 1.0
    deterministic_base: bool = True
    eval_episodes: int = 0
    action_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    operator: dict[str, Any] = field(default_factory=dict)
    reward: RewardConfig = field(default_factory=RewardConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)


# ---------------------------------------------------------------------------------------------- frozen base
class FrozenVLA:
    """The offline run's VLM + action expert, frozen: observation -> (z_t, A_VLA normalised, s_norm)."""

    def __init__(self, run_dir: str | Path, device: torch.device, deterministic: bool = True):
        from bora_policy.models.normalizer import Normalizer
        from bora_trainer.algorithms.offline import OfflineConfig
        from bora_trainer.checkpoint import load_checkpoint
        from bora_trainer.train_offline import build_learner

        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"--offline-run {run_dir}: no config.yaml (not an offline run directory)")
        self.cfg = load_config(OfflineConfig, run_dir / "config.yaml")
        self.normalizer = Normalizer.load(run_dir / "normalizer.json")
        ck = load_checkpoint(run_dir)
        stored = ck["meta"].get("extra", {}).get("normalizer_version")
        check_normalizer_versions(run=self.normalizer.version, offline_checkpoint=stored)
        self.learner = build_learner(self.cfg, self.normalizer.state_dim, self.normalizer.action_dim, device)
        for name, mod in self.learner.modules_to_save().items():
            if name in ck["modules"]:
                mod.load_state_dict(ck["modules"][name])
        if self.learner.critic is None:
            raise ValueError(
                f"offline run {run_dir} (algo {self.cfg.algo!r}) has no critic to inherit: "
                "train it with --algo bora"
            )
        self.learner.eval().requires_grad_(False)
        self.device, self.deterministic = device, deterministic
        self.k = self.cfg.k
        self.step = ck["step"]

    @property
    def critic(self) -> torch.nn.Module:
        return self.learner.critic

    @property
    def z_dim(self) -> int:
        return int(self.learner.vlm.z_dim)

    @torch.no_grad()
    def act(self, color: np.ndarray, instructions: list[str], state: np.ndarray):
        """color [B, n_cam, H, W, 3] uint8, state [B, S] physical -> (z, A_VLA [B,k,A] normalised, s_norm)."""
        images = (
            torch.from_numpy(np.ascontiguousarray(color)).to(self.device).permute(0, 1, 4, 2, 3).float()
            / 255.0
        )
        state_n = self.normalizer.normalize_state(
            torch.from_numpy(np.asarray(state, np.float32)).to(self.device)
        )
        z = self.learner.encode(images, list(instructions), state_n)
        prop = self.learner.expert_proprio(state_n)
        steps = self.cfg.model.expert_sample_steps or None
        if self.deterministic:
            chunk = self.learner.expert.mean_chunk(z, prop, steps)
        else:
            chunk = self.learner.expert.sample(z, prop, steps)
        return z.float(), chunk.float(), state_n.float()


def _norm_actions(normalizer, actions: np.ndarray, clip: float) -> np.ndarray:
    a = normalizer.normalize_action(actions)
    return np.clip(a, -clip, clip) if clip > 0 else a


def offline_buffer(
    vla: FrozenVLA,
    data: str | Path,
    spec: ReplaySpec,
    stride: int,
    reward: RewardConfig,
    max_episodes: int = 0,
    batch: int = 32,
    progress: bool = True,
    action_clip: float = 0.0,
    path: str | Path | None = None,
) -> ChunkReplayBuffer:
    """Chunk transitions of the offline dataset with z_t and A_VLA from the frozen VLA (computed once);
    persisted as a ChunkReplayBuffer directory when ``path`` is given (the trainer node's D_offline)."""
    from bora_policy.common.episodes import episode_ids, read_episode

    ids = episode_ids(data)
    if not ids:
        raise FileNotFoundError(f"--offline-data {data}: no episodes")
    if max_episodes:
        ids = ids[:max_episodes]
    buf = ChunkReplayBuffer(spec, path)
    n = vla.normalizer
    it = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc="offline z/A_VLA", unit="ep")
    for eid in it:
        arrays, info = read_episode(data, eid)
        T = len(arrays["action"])
        starts = np.arange(0, T, stride)
        zs, vl, pr = [], [], []
        for s in range(0, len(starts), batch):
            st = starts[s : s + batch]
            z, a, p = vla.act(
                arrays["color"][st], [info.get("instruction", "")] * len(st), arrays["state"][st]
            )
            zs.append(z.cpu().numpy()), vl.append(a.cpu().numpy()), pr.append(p.cpu().numpy())
        outcome = info.get("outcome") or ("success" if info.get("success") else None)
        rew = compute_rewards(T, outcome, info.get("interventions"), reward)
        done = compute_dones(T, outcome)
        final = None
        if not done.any():  # truncated: the last observation stands in for o_T, as in the offline phase
            z, a, p = vla.act(arrays["color"][T - 1 :], [info.get("instruction", "")], arrays["state"][T - 1 :])
            final = {"z": z[0].cpu().numpy(), "proprio": p[0].cpu().numpy(), "vla": a[0].cpu().numpy()}
        buf.add(
            chunk_transitions(
                _norm_actions(n, arrays["action"], action_clip),
                rew,
                done,
                starts,
                np.concatenate(zs),
                np.concatenate(pr),
                np.concatenate(vl),
                spec.chunk_size,
                is_intervention=arrays.get("is_intervention"),
                beta=arrays.get("beta"),
                episode=eid,
                final=final,
                valid=arrays.get("valid"),  # gaps of converted recordings are masked out
            )
        )
    if path is not None:
        buf.flush()
    return buf


def offline_buffer_for(
    cfg: OnlineRunConfig,
    vla: FrozenVLA,
    offline_data: str | Path,
    spec: ReplaySpec,
    progress: bool = True,
    path: str | Path | None = None,
) -> ChunkReplayBuffer:
    """D_offline of an online run: :func:`offline_buffer` with the run config's stride, rewards and clip."""
    return offline_buffer(
        vla,
        offline_data,
        spec,
        cfg.offline_stride or cfg.exec_horizon or vla.k,
        cfg.reward,
        cfg.max_offline_episodes,
        progress=progress,
        action_clip=cfg.action_clip,
        path=path,
    )


def write_online_run_files(out, cfg: OnlineRunConfig, offline_run, offline_data, normalizer, **extra) -> None:
    """``OUT/config.yaml`` (``online_run`` = the run config, the offline run and data, ``extra``) and
    ``OUT/normalizer.json`` of an online run (what ``bora eval`` reads)."""
    from bora_trainer.checkpoint import write_run_files

    write_run_files(
        out,
        config={
            "online_run": to_dict(cfg),
            "offline_run": str(offline_run),
            "offline_data": str(offline_data),
            **extra,
        },
        normalizer=normalizer.to_dict(),
    )


def rebase_fn(policy: ResidualPolicy, device: torch.device):
    """numpy (proprio, vla, z) -> base chunk of ``policy`` (Algorithm 1 lines 8-12), for buffer rebasing."""

    def fn(p, v, z):
        with torch.no_grad():
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
            return policy.base_chunk(t(z), t(p), t(v)).cpu().numpy()

    return fn


# ---------------------------------------------------------------------------------------------- rollouts
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
) -> dict:
    """One episode of A_final with (optionally) the scripted operator; returns arrays, info, chunk rows."""
    from bora_sim.operator import OperatorConfig, ScriptedOperator

    reward = reward or RewardConfig()
    obs, info = env.reset(seed=seed)
    op = (
        ScriptedOperator(env, cfg=OperatorConfig(**(operator_cfg or {})), seed=seed + 104729)
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
    rec: dict[str, list] = {k: [] for k in keys}
    starts, zs, vls, bases, props = [], [], [], [], []
    term = trunc = False
    t = 0
    final = base_phys = None
    dev = vla.device
    while not (term or trunc):
        state = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]).astype(np.float32)
        start = t % horizon == 0
        if start:
            z, a_vla, s_n = vla.act(obs["color"][None], [obs["instruction"]], state[None])
            with torch.no_grad():
                out = policy.compose(z.to(dev), s_n.to(dev), a_vla.to(dev), alpha)
            final = out.final_physical[0].cpu().numpy()
            base_phys = policy.to_physical(out.base_norm)[0].cpu().numpy()
            starts.append(t), zs.append(z[0].cpu().numpy()), vls.append(a_vla[0].cpu().numpy())
            bases.append(out.base_norm[0].cpu().numpy()), props.append(s_n[0].cpu().numpy())
        i = t % horizon
        a_pol = final[i]
        beta, in_control = 0.0, False
        a = a_pol
        if op is not None:
            dec = op.observe(info)
            in_control, beta = dec.takeover, (dec.beta if dec.takeover else 0.0)
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
        state = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]).astype(np.float32)
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
    ep: dict, normalizer, k: int, episode: int, action_clip: float = 0.0
) -> dict[str, np.ndarray]:
    a, c = ep["arrays"], ep["chunks"]
    return chunk_transitions(
        _norm_actions(normalizer, a["action"], action_clip),
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
    )


# ---------------------------------------------------------------------------------------------- main loop
def train(
    cfg: OnlineRunConfig,
    offline_run: str | Path,
    offline_data: str | Path,
    out: str | Path,
    progress: bool = True,
) -> dict:
    from bora_policy.common.episodes import DatasetMeta, write_episode
    from bora_sim.env import make_env
    from bora_trainer.checkpoint import RunLogger, save_checkpoint

    out = Path(out)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    )
    torch.manual_seed(cfg.seed)
    vla = FrozenVLA(offline_run, device, cfg.deterministic_base)
    norm, k = vla.normalizer, vla.k
    H = cfg.exec_horizon or k
    if k % H:
        raise ValueError(f"exec_horizon={H} must divide the chunk size k={k}")
    S, A, Z = norm.state_dim, norm.action_dim, vla.z_dim
    spec = ReplaySpec(Z, S, A, k, norm.version)
    write_online_run_files(out, cfg, offline_run, offline_data, norm)
    t0 = time.time()
    off_buf = offline_buffer_for(cfg, vla, offline_data, spec, progress=progress)
    on_buf = ChunkReplayBuffer(spec, out / "replay" / "online")
    env = make_env(
        cfg.task,
        object_set=cfg.object_set,
        control_hz=cfg.control_hz,
        image_size=tuple(
            DatasetMeta.from_dict(json.loads((Path(offline_data) / "meta.json").read_text())).image_size
        ),
    )
    meta = DatasetMeta(
        fps=env.control_hz,
        camera_names=list(env.camera_names),
        image_size=list(env.image_size),
        arm_joint_names=list(env.arm_joint_names),
        hand_joint_names=list(env.hand_joint_names),
        tasks=[cfg.task],
    )
    logger = RunLogger(out)
    from bora_trainer.progress import ProgressLog

    # updates/s, losses and ETA (by episodes) in the log at a steady interval
    prog = ProgressLog(f"online {cfg.online.algo}", cfg.rounds * cfg.episodes_per_round, unit="episodes")
    frozen: list[FrozenResidual] = []
    critic, total_updates, episode_id = vla.critic, 0, 0
    # (episode id, success, per-step is_intervention) of every online episode: each round's fresh
    # learner is told all of them (HABC labels rows by their episode's outcome and last takeover)
    observed: list[tuple[int, bool, np.ndarray]] = []
    summary: dict[str, Any] = {
        "rounds": [],
        "offline_transitions": len(off_buf),
        "offline_setup_s": time.time() - t0,
    }
    for r in range(1, cfg.rounds + 1):
        learner = OnlineLearner(
            critic,
            S,
            A,
            k,
            Z,
            dataclasses.replace(cfg.online, seed=cfg.seed + r),
            normalizer_version=norm.version,
            critic_normalizer_version=norm.version,
            device=device,
            offline_critic=vla.critic,
        )
        learner.check_buffer(spec)
        for obs_ep in observed:
            learner.objective.observe_episode(*obs_ep)
        policy = ResidualPolicy.from_normalizer(norm, frozen, learner.actor).to(device)
        fn = rebase_fn(policy, device)
        off_buf.rebase(fn)
        on_buf.rebase(fn)
        sampler = MixedSampler(off_buf, on_buf, cfg.online.batch_size, seed=cfg.seed + r)
        stats = {"round": r, "episodes": [], "updates": 0}
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        tr = time.time()
        for e in range(cfg.episodes_per_round):
            learner.actor.eval()
            ep = rollout(
                env,
                vla,
                policy,
                learner.alpha(),
                H,
                seed=cfg.seed + 1000 * r + e,
                operator_cfg=cfg.operator,
                reward=cfg.reward,
            )
            learner.actor.train()
            write_episode(out / "rollouts", episode_id, ep["arrays"], ep["info"], meta)
            on_buf.add(rollout_rows(ep, norm, k, episode_id, cfg.action_clip))
            on_buf.flush()  # a crash loses nothing already collected
            observed.append((episode_id, bool(ep["info"]["success"]), ep["arrays"]["is_intervention"]))
            learner.objective.observe_episode(*observed[-1])
            episode_id += 1
            T = len(ep["arrays"]["action"])
            n_upd = 0
            if len(on_buf) >= cfg.online.n_start:
                n_upd = min(int(round(cfg.updates_per_env_step * T)), cfg.online.max_updates - learner.step)
            info = {}
            for _ in range(max(n_upd, 0)):
                info = learner.update(sampler.sample())
                for key, v in info.items():  # the round's mean of every update metric (summary.json)
                    sums[key] = sums.get(key, 0.0) + float(v)
                    counts[key] = counts.get(key, 0) + 1
                total_updates += 1
                if total_updates % 10 == 0:
                    logger.scalars(total_updates, info)
                prog.update(episode_id - 1, info, updates=total_updates, extra=f"round {r}")
            prog.update(episode_id, updates=total_updates, extra=f"round {r}")
            ret = float(ep["arrays"]["reward"].sum())
            stats["episodes"].append(
                {
                    "success": ep["info"]["success"],
                    "return": ret,
                    "steps": T,
                    "intervened_steps": int(np.asarray(ep["arrays"]["is_intervention"], bool).sum()),
                    "interventions": len(ep["info"]["interventions"]),
                    "updates": n_upd,
                }
            )
            logger.scalars(
                episode_id,
                {
                    "episode/success": float(ep["info"]["success"]),
                    "episode/return": ret,
                    "episode/interventions": len(ep["info"]["interventions"]),
                },
            )
            if progress:
                print(
                    f"round {r} episode {e + 1}/{cfg.episodes_per_round}: success={ep['info']['success']} "
                    f"return={ret:.3f} interventions={len(ep['info']['interventions'])} updates={n_upd} "
                    f"alpha={learner.alpha():.3f} "
                    + (
                        f"bc={info.get('actor/bc', 0):.4f} hinge={info.get('actor/hinge', 0):.4f}"
                        if info
                        else ""
                    ),
                    file=sys.stderr,
                )
        stats["updates"] = learner.step
        stats["update_means"] = {key: sums[key] / counts[key] for key in sorted(sums)}
        stats["seconds"] = time.time() - tr
        stats["success_rate_with_operator"] = float(np.mean([x["success"] for x in stats["episodes"]]))
        stats["interventions_per_episode"] = float(np.mean([x["interventions"] for x in stats["episodes"]]))
        # what the round really used (the ROS-graph loop reports the same from its ledger: rounds.py)
        stats["num_episodes"] = len(stats["episodes"])
        stats["steps"] = int(sum(x["steps"] for x in stats["episodes"]))
        stats["intervened_steps"] = int(sum(x["intervened_steps"] for x in stats["episodes"]))
        stats["intervened_share"] = stats["intervened_steps"] / max(1, stats["steps"])
        lam = learner.alpha()
        if cfg.eval_episodes:
            learner.actor.eval()
            ev = [
                rollout(
                    env, vla, policy, lam, H, seed=cfg.seed + 10**6 + i, use_operator=False, reward=cfg.reward
                )["info"]["success"]
                for i in range(cfg.eval_episodes)
            ]
            stats["eval_success_rate"] = float(np.mean(ev))
        mods = {f"residual_{i + 1}": f.actor.state_dict() for i, f in enumerate(frozen)}
        mods[f"residual_{r}"] = learner.actor.state_dict()
        mods.update({"critic": learner.critic.state_dict()})
        extra = residual_checkpoint_extra(frozen + [FrozenResidual(learner.actor, lam)], norm.version)
        extra.update({"task": cfg.task, "round": r, "algo": cfg.online.algo})
        path = save_checkpoint(out, total_updates, mods, learner.trainer_state(), extra=extra, keep_last=None)
        stats["checkpoint"] = str(path)
        summary["rounds"].append(stats)
        # freeze this round's residual with the alpha it ended at (lambda_old of the next round)
        frozen = frozen + [FrozenResidual(learner.actor, lam)]
        critic = learner.critic
    env.close()
    logger.close()
    summary["total_updates"] = total_updates
    summary["seconds"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora train online", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--env",
        default="sim",
        choices=["sim", "ros"],
        help="sim: episodes rolled out in this process (bora_sim env + scripted operator); ros: through the "
        "ROS 2 graph (bora up --sim --with trainer: bridge, sync, policy, teleop, trainer node on recorded "
        "bags; bora_trainer/online_ros.py)",
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="--env ros: give up after this many seconds"
    )
    p.add_argument("--task", default=None, help="bora_sim task (overrides the config)")
    p.add_argument("--rounds", type=int, default=None, help="adaptation rounds (Algorithm 1 multi-round)")
    p.add_argument(
        "--episodes-per-round", type=int, default=None, help="online episodes per round (paper: 10)"
    )
    p.add_argument(
        "--offline-run", required=True, help="offline run directory (VLA + critic + normalizer.json)"
    )
    p.add_argument("--offline-data", required=True, help="the offline episode dataset (D_offline of RLPD)")
    p.add_argument("--out", required=True, help="online run directory")
    p.add_argument("--algo", default=None, help="online objective: bora-residual (default), aloe, habc")
    p.add_argument(
        "--config", default=None, help="YAML with OnlineRunConfig fields (e.g. config/online_tiny.yaml)"
    )
    p.add_argument("--max-updates", type=int, default=None, help="updates per round (Table 3: 15000)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(OnlineRunConfig, args.config)
    for name in ("task", "rounds", "episodes_per_round", "seed", "device"):
        v = getattr(args, name)
        if v is not None:
            setattr(cfg, name, v)
    if args.algo is not None:
        cfg.online.algo = args.algo
    if args.max_updates is not None:
        cfg.online.max_updates = args.max_updates
    if cfg.rounds < 1 or cfg.episodes_per_round < 1:
        print("bora train online: --rounds and --episodes-per-round must be >= 1", file=sys.stderr)
        return 2
    if args.env == "ros":
        from bora_trainer.online_ros import train_through_ros

        summary = train_through_ros(
            cfg, args.offline_run, args.offline_data, args.out, progress=not args.no_progress, timeout_s=args.timeout
        )
        print(json.dumps(summary, indent=2))
        return 0
    summary = train(cfg, args.offline_run, args.offline_data, args.out, progress=not args.no_progress)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k != "rounds"}
            | {"rounds": [{k: v for k, v in r.items() if k != "episodes"} for r in summary["rounds"]]},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
