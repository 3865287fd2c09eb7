"""``bora demo``'s plan: the ``bora`` commands (:class:`Job`) of every stage, the stage configs they read,
and the policy export an offline job needs before its evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bora_trainer import protocol
from bora_trainer.config_io import read_yaml, to_dict
from bora_trainer.demo.config import STAGES, DemoConfig, episodes_for, merge, resolve_path, split_groups
from bora_trainer.evidence import WARMUP_METHOD


@dataclass
class Job:
    """One ``bora`` command of a stage. ``after`` runs in this process once it succeeded."""

    name: str
    argv: list[str]
    threads: int = 1
    after: Any = None
    needs: list[str] = field(default_factory=list)  # jobs that must be done first, besides those `run.link`
    # finds from the paths the command lines read and write
    stage: str = ""  # set by plan()
    cpus: int = 0  # cores the job keeps busy, for the runner's budget (0: its threads)

    @property
    def cores(self) -> int:
        return self.cpus or self.threads


@dataclass
class Plan:
    stages: dict[str, list[Job]]


def plan(cfg: DemoConfig, out: Path) -> Plan:
    """The jobs of every stage (pure: writes nothing)."""
    stages: dict[str, list[Job]] = {s: [] for s in STAGES}
    for task in cfg.tasks:
        data = out / "data" / task
        seed, first = cfg.collect.seed, 0
        for g, n in split_groups(episodes_for(cfg, task), cfg.collect.quality):
            # the groups fill one dataset at the same time, each in its own id range (the ids, seeds and
            # files are those of collecting them one after the other)
            argv = ["sim", "collect", "--task", task, "--episodes", str(n), "--out", str(data),
                    "--first-episode", str(first), "--seed", str(seed), "--image-size", str(cfg.image_size),
                    "--control-hz", str(cfg.control_hz), "--noise", str(g.noise), "--hesitation", str(g.hesitation),
                    "--suboptimal", str(g.suboptimal)]
            if g.mixed:
                argv.append("--mixed")
            stages["collect"].append(Job(f"collect-{task}-{g.name}", argv))
            seed += 10_000
            first += n
        warm = out / "runs" / task / "warmup"
        if cfg.offline.warmup.updates > 0:
            argv = ["train", "offline", "--algo", cfg.offline.warmup.algo, "--data", str(data), "--config",
                    str(out / "configs" / "warmup.yaml"), "--out", str(warm), "--updates",
                    str(cfg.offline.warmup.updates), "--episodes", cfg.offline.warmup.episodes, "--no-progress"]
            stages["warmup"].append(Job(f"warmup-{task}", argv, cfg.offline.warmup.threads))
        rollouts = out / "data" / f"{task}_rollouts"
        r = cfg.offline.rollouts
        if r.episodes > 0:  # the warm-up's own episodes, successes and failures: critic data for every row
            argv = ["eval", "--run", str(warm), "--task", task, "--objects", "standard", "--trials", str(r.episodes),
                    "--seed0", str(r.seed0), "--replan-steps", str(cfg.eval.replan_steps), "--threads", "1",
                    "--no-values", "--method", "warm-up", "--record", str(rollouts),
                    "--out", str(out / "rollouts" / f"{task}.json"), "--no-progress"]
            stages["warmup"].append(Job(f"rollouts-{task}", argv, 1, needs=[f"warmup-{task}"]))
        for algo in cfg.offline.algos:
            run = out / "runs" / task / algo
            argv = ["train", "offline", "--algo", algo, "--data", str(data), "--config",
                    str(out / "configs" / "offline.yaml"), "--out", str(run), "--updates", str(cfg.offline.updates),
                    "--no-progress"]
            if cfg.offline.warmup.updates > 0:
                argv += ["--init-from", str(warm)]
            if r.episodes > 0:
                argv += ["--rollouts", str(rollouts)]
            stages["offline"].append(Job(f"offline-{task}-{algo}", argv, cfg.offline.threads,
                                         after=("export", run, data)))
        sel = cfg.offline.select
        for algo in cfg.offline.algos if sel.every > 0 else []:  # stage 3b: deploy the tuning seeds' best
            argv = ["select", "--run", str(out / "runs" / task / algo), "--task", task, "--trials", str(sel.trials),
                    "--seed0", str(sel.seed0), "--objects", sel.objects, "--replan-steps",
                    str(cfg.eval.replan_steps), "--control-hz", f"{cfg.control_hz:g}", "--threads",
                    str(cfg.offline.threads), "--num-envs", str(sel.num_envs), "--no-progress"]
            if cfg.eval.max_steps > 0:  # chosen under the step cap it is evaluated with
                argv += ["--max-steps", str(cfg.eval.max_steps)]
            stages["offline"].append(Job(f"select-{task}-{algo}", argv, cfg.offline.threads,
                                         needs=[f"offline-{task}-{algo}"]))
        runs = [(algo, out / "runs" / task / algo) for algo in cfg.offline.algos]
        if cfg.eval.warmup_row and cfg.offline.warmup.updates > 0:
            runs.append(("warmup", warm))
        on = cfg.online
        for algo in on.rows if on.enabled else []:  # every online row starts from the same offline run
            run = out / "runs" / task / f"{algo}-online"
            argv = ["train", "online", "--env", on.env, "--task", task, "--offline-run",
                    str(out / "runs" / task / on.from_algo), "--offline-data", str(data), "--out", str(run),
                    "--config", str(out / "configs" / "online.yaml"), "--algo", algo,
                    "--rounds", str(on.rounds), "--episodes-per-round", str(on.episodes_per_round),
                    "--no-progress"]
            if on.max_updates > 0:
                argv += ["--max-updates", str(on.max_updates)]
            if on.env == "ros":
                argv += ["--timeout", f"{on.timeout_s:g}"]
            stages["online"].append(Job(f"online-{task}-{algo}", argv, on.threads))
            runs.append((f"{algo}-online", run))
        for name, run in runs:
            for oset in cfg.eval.object_sets:
                argv = ["eval", "--run", str(run), "--task", task, "--objects", oset,
                        "--trials", str(cfg.eval.trials), "--seed0", str(cfg.eval.seed0),
                        "--replan-steps", str(cfg.eval.replan_steps), "--threads", str(cfg.eval.threads),
                        "--out", str(out / "eval" / f"{task}__{name}__{oset}.json"), "--no-progress"]
                if cfg.eval.max_steps > 0:
                    argv += ["--max-steps", str(cfg.eval.max_steps)]
                if name not in cfg.eval.values or oset != cfg.eval.object_sets[0]:
                    argv.append("--no-values")
                if name == "warmup":  # trained as cp-bc: named apart from the CP Base row
                    argv += ["--method", WARMUP_METHOD]
                stages["eval"].append(Job(f"eval-{task}-{name}-{oset}", argv, cfg.eval.threads))
    stages["report"].append(Job("report", ["report", str(out / "eval"), "--out", str(out / "report"),
                                           "--title", cfg.title, "--runs", str(out / "runs")]))
    protocol.extend_plan(cfg, out, stages, Job)  # training seeds, learning curve, evidence report
    for s, jobs in stages.items():
        for j in jobs:
            j.stage = s
    return Plan(stages)


def stage_parallel(cfg: DemoConfig, stage: str) -> int:
    return {"collect": cfg.collect.parallel, "warmup": cfg.offline.parallel, "offline": cfg.offline.parallel,
            "online": cfg.online.parallel, "eval": cfg.eval.parallel}.get(stage, 1)


def all_jobs(pl: Plan) -> list[Job]:
    """Every job in plan order (stage by stage): the order `run.link` reads "earlier" in."""
    return [j for s in STAGES for j in pl.stages[s]]


def write_stage_configs(cfg: DemoConfig, out: Path) -> None:
    """OUT/configs/offline.yaml and online.yaml: the base configs with the demo's overrides merged in."""
    (out / "configs").mkdir(parents=True, exist_ok=True)
    off = merge(read_yaml(resolve_path(cfg.offline.config)), cfg.offline.overrides)
    warm = merge(off, cfg.offline.warmup.overrides)
    if cfg.offline.select.every > 0:  # the rows keep every candidate checkpoint for `bora select`
        off = merge(off, {"ckpt_every": cfg.offline.select.every, "keep_last": 0})
    (out / "configs" / "offline.yaml").write_text(yaml.safe_dump(off, sort_keys=False))
    (out / "configs" / "warmup.yaml").write_text(yaml.safe_dump(warm, sort_keys=False))
    on = merge(read_yaml(resolve_path(cfg.online.config)), cfg.online.overrides)
    on["control_hz"] = cfg.control_hz
    (out / "configs" / "online.yaml").write_text(yaml.safe_dump(on, sort_keys=False))
    (out / "configs" / "demo.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    protocol.write_configs(cfg, out)


def ensure_exported(run: Path, data: Path) -> bool:
    """Make sure the offline run has ``RUN/policy`` (+ ``RUN/critic``) for ``bora eval``.

    ``bora train offline`` exports them at the end of training; a run without them (trained by an older
    trainer, or stopped between its last checkpoint and the export) is exported here from its latest
    checkpoint with the trainer's own ``policy_config`` and critic rule. Returns True when it had to export."""
    from bora_policy.models.export import is_policy_dir

    if is_policy_dir(run / "policy"):
        return False
    import torch

    from bora_policy.common.episodes import DatasetMeta
    from bora_policy.models.critic import ChunkCritic, DecoupledChunkCritic
    from bora_policy.models.export import export_policy, policy_from_modules
    from bora_policy.models.normalizer import Normalizer
    from bora_trainer.algorithms import registry
    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.checkpoint import load_checkpoint
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.build import build_learner, policy_config

    ocfg = load_config(OfflineConfig, run / "config.yaml")
    norm = Normalizer.load(run / "normalizer.json")
    meta = DatasetMeta.from_dict(json.loads((data / "meta.json").read_text()))
    n_cam = len(meta.camera_names)
    learner = build_learner(ocfg, norm.state_dim, norm.action_dim, torch.device("cpu"), n_cameras=n_cam)
    ck = load_checkpoint(run)
    for name, mod in learner.modules_to_save().items():
        if name in ck["modules"]:
            mod.load_state_dict(ck["modules"][name])
    vcfg = policy_config(ocfg, registry.offline_learner(ocfg.algo), norm.state_dim, norm.action_dim, n_cam,
                         meta.image_size[0])
    policy = policy_from_modules(vcfg, norm, learner.vlm.state_dict(), learner.expert.state_dict())
    critic = learner.critic if isinstance(learner.critic, (ChunkCritic, DecoupledChunkCritic)) else None
    export_policy(run, policy, critic)
    return True
