"""``bora demo``: the whole BORA pipeline on the simulated robot (what ``make demo`` runs).

    bora demo                                   # config/demo.yaml -> demo_out/ (report: demo_out/report/)
    bora demo --quick --out /tmp/demo           # tiny smoke configuration (~4 min on 2 CPU cores)
    bora demo --config config/full_protocol.yaml --out runs/full   # all five tasks, >= 50 trials
    bora demo --resume                          # continue a stopped demo: finished jobs are kept

Stages (each runs the REAL commands as subprocesses of the ``bora`` command, logs in ``OUT/logs/``):

1. ``collect``: ``bora sim collect`` of scripted-expert demonstrations per task, mixed quality (groups of
   episodes with the expert's noise / hesitation / suboptimal knobs), sizes = Table 4 x ``collect.scale``;
2. ``warmup`` (when ``offline.warmup.updates`` > 0): ONE shared imitation warm-up per task (``bora train
   offline --algo cp-bc``, optionally on the clean demonstrations only), the common pretrained VLA every
   offline row starts from (as in the paper, where every row fine-tunes the same pretrained VLA): the rows
   run with ``--init-from`` that run (the VLM, and the consistency expert for the consistency rows; the
   diffusion row gets the VLM only);
3. ``offline``: ``bora train offline`` of every offline row (diffusion-bc, cp-bc, cp-decoupled-critic, bora,
   optionally aloe, habc), ``offline.parallel`` trainings at a time, ``offline.updates`` updates each;
4. ``online``: ``bora train online --env ros`` (Algorithm 1: frozen BORA-Offline VLA + residual actor, RLPD,
   the scripted operator as the human, ``rounds`` x ``episodes_per_round``) through the ROS 2 graph
   (``bora up --sim --with trainer``: the trainer node records rosbag2, learns and hot-reloads the policy);
   ``online.env: sim`` runs the same learner in-process instead (faster, several tasks at a time);
5. ``eval``: ``bora eval`` of every run on every object set (standard, unseen);
6. ``report``: ``bora report`` into ``OUT/report/`` (report.md, success_bars.png, value_profile.png).

Every finished job writes a marker ``OUT/stages/<job>.done`` (and every finished stage
``OUT/stages/<stage>.done``), so ``--resume`` skips what is already done. ``OUT/summary.json`` and
``OUT/summary.md`` hold the stage times, the success table and the paper's ordering claims as measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bora_trainer import protocol
from bora_trainer.config_io import ConfigError, from_dict, read_yaml, to_dict

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = "config/demo.yaml"
STAGES = ("collect", "warmup", "offline", "online", "eval", "report")
OFFLINE_ALGOS = ("diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora", "aloe", "habc")
TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
# Paper Table 4: offline trajectories per task (online: 10 per task and round).
TABLE4_OFFLINE = {"pick_plush_toy": 60, "pick_and_place": 100, "open_box": 100, "pull_tissue": 60, "press_button": 60}
OWNED_DIRS = ("data", "runs", "eval", "report", "stages", "logs", "configs")


# ---------------------------------------------------------------------------------------------- config
@dataclass
class QualityGroup:
    """A share of the offline episodes collected with the given expert knobs (bora_sim ExpertKnobs).

    ``mixed``: the knobs are drawn per episode uniformly in [0, given] (``bora sim collect --mixed``)."""

    name: str = "clean"
    fraction: float = 1.0
    noise: float = 0.0
    hesitation: float = 0.0
    suboptimal: float = 0.0
    mixed: bool = False


@dataclass
class CollectSpec:
    """Stage 1. ``episodes`` > 0 fixes the count per task, else ``round(scale * Table 4)`` (at least 2)."""

    scale: float = 0.5
    episodes: int = 0
    seed: int = 0
    quality: list[QualityGroup] = field(default_factory=lambda: [QualityGroup()])


@dataclass
class WarmupSpec:
    """Stage 2: ONE ``algo`` run of ``updates`` updates per task (``threads`` torch threads: it runs alone,
    so it may use every core) that every offline row then fine-tunes (``OfflineConfig.init_from``), on the
    task's ``episodes`` ("all", or only the "clean" expert demonstrations: the shared pretrained VLA has
    seen good behaviour only; the rows then see the whole mixed-quality dataset). Its config is
    ``OUT/configs/warmup.yaml`` = the rows' offline config with ``overrides`` on top.
    Not to be confused with ``OfflineConfig.warmup_updates`` (a learning-rate ramp inside one run)."""

    updates: int = 0
    algo: str = "cp-bc"
    threads: int = 2
    episodes: str = "all"  # "clean": the warm-up imitates only the clean expert demonstrations
    overrides: dict[str, Any] = field(default_factory=dict)  # OfflineConfig fields for the warm-up only


@dataclass
class OfflineSpec:
    """Stages 2-3. ``config``: an OfflineConfig YAML; ``overrides``: OfflineConfig fields set on top;
    ``warmup``: the shared warm-up every row fine-tunes (``warmup.updates`` = 0: rows train from scratch)."""

    config: str = "config/offline_demo.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)
    algos: list[str] = field(default_factory=lambda: ["diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora"])
    updates: int = 300
    parallel: int = 2
    threads: int = 1  # torch threads per training process
    warmup: WarmupSpec = field(default_factory=WarmupSpec)


@dataclass
class OnlineSpec:
    """Stage 3: ``bora train online --env ENV``. ``env``: ``ros`` runs the rounds through the ROS 2 graph
    (``bora up --sim --with trainer``: bridge + scripted operator, sync, policy, teleop, trainer node
    recording bags; one task at a time), ``sim`` in-process. ``config``: an OnlineRunConfig YAML."""

    enabled: bool = True
    env: str = "ros"
    timeout_s: float = 1800.0  # env ros: give up on a graph that does not finish its rounds
    config: str = "config/online_tiny.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)
    from_algo: str = "bora"
    algo: str = "bora-residual"
    rounds: int = 2
    episodes_per_round: int = 10
    max_updates: int = 0  # 0: the config's
    parallel: int = 1  # tasks trained at a time (env sim only; one graph with env ros)
    threads: int = 1


@dataclass
class EvalSpec:
    """Stage 4. ``bora eval`` of every run on every object set, ``trials`` seeds each."""

    trials: int = 10
    object_sets: list[str] = field(default_factory=lambda: ["standard", "unseen"])
    replan_steps: int = 8
    max_steps: int = 0  # 0: the task's limit
    seed0: int = 100_000  # evaluation seeds are disjoint from the collection seeds
    # runs (offline algo names or "<online algo>-online") whose evaluation on the FIRST object set records
    # the critic value at every control step (Fig. 11 value profile); one critic pass per step is costly
    values: list[str] = field(default_factory=lambda: ["bora"])
    parallel: int = 2
    threads: int = 1


@dataclass
class DemoConfig:
    tasks: list[str] = field(default_factory=lambda: ["press_button"])
    image_size: int = 64
    control_hz: float = 10.0
    collect: CollectSpec = field(default_factory=CollectSpec)
    offline: OfflineSpec = field(default_factory=OfflineSpec)
    online: OnlineSpec = field(default_factory=OnlineSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    protocol: protocol.ProtocolSpec = field(default_factory=protocol.ProtocolSpec)  # evidence protocol (issue 14)
    title: str = "BORA on the simulated robot (bora demo)"

    def validate(self) -> None:
        for t in self.tasks:
            if t not in TASKS:
                raise ConfigError(f"DemoConfig.tasks: unknown task {t!r}; choose from {list(TASKS)}")
        if not self.tasks:
            raise ConfigError("DemoConfig.tasks: at least one task is required")
        for a in self.offline.algos:
            if a not in OFFLINE_ALGOS:
                raise ConfigError(
                    f"DemoConfig.offline.algos: unknown algorithm {a!r}; choose from {list(OFFLINE_ALGOS)}"
                )
        if self.online.enabled and self.online.from_algo not in self.offline.algos:
            raise ConfigError(
                f"DemoConfig.online.from_algo: {self.online.from_algo!r} is not trained offline "
                f"(offline.algos = {self.offline.algos})"
            )
        w = self.offline.warmup
        if w.algo not in OFFLINE_ALGOS:
            raise ConfigError(f"DemoConfig.offline.warmup.algo: unknown algorithm {w.algo!r}; "
                              f"choose from {list(OFFLINE_ALGOS)}")
        if w.episodes not in ("all", "clean"):
            raise ConfigError(f"DemoConfig.offline.warmup.episodes must be 'all' or 'clean', got {w.episodes!r}")
        if w.updates < 0 or w.threads < 1:
            raise ConfigError("DemoConfig.offline.warmup.updates must be >= 0 and warmup.threads >= 1")
        fr = [q.fraction for q in self.collect.quality]
        if not self.collect.quality or any(f < 0 for f in fr) or sum(fr) <= 0:
            raise ConfigError("DemoConfig.collect.quality: needs groups with non-negative fractions summing > 0")
        for name in ("updates", "parallel", "threads"):
            if getattr(self.offline, name) < 1:
                raise ConfigError(f"DemoConfig.offline.{name} must be >= 1")
        if self.online.env not in ("sim", "ros"):
            raise ConfigError(f"DemoConfig.online.env must be 'sim' or 'ros', got {self.online.env!r}")
        if self.online.env == "ros" and self.online.parallel != 1:
            raise ConfigError("DemoConfig.online.parallel must be 1 with env 'ros' (one simulated robot graph)")
        if self.online.rounds < 1 or self.online.episodes_per_round < 1:
            raise ConfigError("DemoConfig.online.rounds and episodes_per_round must be >= 1")
        if self.eval.trials < 1 or not self.eval.object_sets:
            raise ConfigError("DemoConfig.eval.trials must be >= 1 and eval.object_sets non-empty")
        if self.image_size < 16:
            raise ConfigError(f"DemoConfig.image_size must be >= 16, got {self.image_size}")
        errs = protocol.validate(self, TASKS)
        if errs:
            raise ConfigError(errs[0])


# --quick: a smoke run of every stage and every default offline row (~4 minutes on 2 busy CPU cores; the
# time is mostly process start-up: 20 `bora` commands, each importing torch and building MuJoCo).
QUICK_OVERRIDES: dict[str, Any] = {
    "image_size": 48,
    "collect": {"episodes": 4, "scale": 0.0},
    "offline": {"updates": 12, "warmup": {"updates": 8},
                "overrides": {"k": 8, "batch_size": 4, "log_every": 4, "ckpt_every": 12, "warmup_updates": 0}},
    "online": {"rounds": 1, "episodes_per_round": 1, "max_updates": 4,
               "overrides": {"eval_episodes": 0, "online": {"n_start": 1, "batch_size": 8}}},
    "eval": {"trials": 1, "max_steps": 40},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_path(p: str | Path) -> Path:
    """A config path as given, else relative to the repository root (so `bora demo` works from anywhere)."""
    p = Path(p)
    if p.is_absolute() or p.exists():
        return p
    if (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    raise ConfigError(f"file {p} not found (also looked in {REPO_ROOT})")


def load_demo_config(path: str | Path | None, quick: bool = False, tasks: list[str] | None = None) -> DemoConfig:
    data = read_yaml(resolve_path(path)) if path is not None else {}
    if quick:
        data = _merge(data, QUICK_OVERRIDES)
    if tasks:
        data["tasks"] = list(tasks)
    resolve_auto_threads(data)
    cfg = from_dict(DemoConfig, data)
    cfg.validate()
    return cfg


def resolve_auto_threads(data: dict) -> dict:
    """``threads: auto`` of a stage -> the CPU probe's calibrated thread count (``cpu_probe.probe``: a ~2 s
    matmul of 1 vs 2 threads), divided by the stage's ``parallel`` jobs (at least 1). In place; returns data."""
    spots = [(data.get("offline"), "warmup"), (data, "offline"), (data, "online"), (data, "eval")]
    for parent, key in spots:
        sec = (parent or {}).get(key) if isinstance(parent, dict) else None
        if not isinstance(sec, dict) or str(sec.get("threads", "")).strip().lower() != "auto":
            continue
        from bora_policy.runtime.cpu_probe import probe

        par = 1 if key == "warmup" else max(1, int(sec.get("parallel", 2 if key in ("offline", "eval") else 1)))
        sec["threads"] = max(1, int(probe(calibrate=True, seconds=2.0)["threads"]) // par)
    return data


def episodes_for(cfg: DemoConfig, task: str) -> int:
    if cfg.collect.episodes > 0:
        return cfg.collect.episodes
    return max(2, round(cfg.collect.scale * TABLE4_OFFLINE[task]))


def split_groups(n: int, groups: list[QualityGroup]) -> list[tuple[QualityGroup, int]]:
    """Largest-remainder split of ``n`` episodes over the groups' fractions (sums to ``n`` exactly)."""
    total = sum(g.fraction for g in groups)
    raw = [n * g.fraction / total for g in groups]
    counts = [int(r) for r in raw]
    order = sorted(range(len(groups)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return [(g, c) for g, c in zip(groups, counts) if c > 0]


# ---------------------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One ``bora`` command of a stage. ``after`` runs in this process once it succeeded."""

    name: str
    argv: list[str]
    threads: int = 1
    after: Any = None
    needs: list[str] = field(default_factory=list)  # job names that must be done first


@dataclass
class Plan:
    stages: dict[str, list[Job]]


def plan(cfg: DemoConfig, out: Path) -> Plan:
    """The jobs of every stage (pure: writes nothing)."""
    stages: dict[str, list[Job]] = {s: [] for s in STAGES}
    for task in cfg.tasks:
        data = out / "data" / task
        seed = cfg.collect.seed
        for g, n in split_groups(episodes_for(cfg, task), cfg.collect.quality):
            argv = ["sim", "collect", "--task", task, "--episodes", str(n), "--out", str(data),
                    "--seed", str(seed), "--image-size", str(cfg.image_size), "--control-hz", str(cfg.control_hz),
                    "--noise", str(g.noise), "--hesitation", str(g.hesitation), "--suboptimal", str(g.suboptimal)]
            if g.mixed:
                argv.append("--mixed")
            # groups append to one dataset: they run one after the other
            prev = [stages["collect"][-1].name] if stages["collect"] and stages["collect"][-1].name.startswith(
                f"collect-{task}-") else []
            stages["collect"].append(Job(f"collect-{task}-{g.name}", argv, needs=prev))
            seed += 10_000
        warm = out / "runs" / task / "warmup"
        if cfg.offline.warmup.updates > 0:
            argv = ["train", "offline", "--algo", cfg.offline.warmup.algo, "--data", str(data), "--config",
                    str(out / "configs" / "warmup.yaml"), "--out", str(warm), "--updates",
                    str(cfg.offline.warmup.updates), "--episodes", cfg.offline.warmup.episodes, "--no-progress"]
            stages["warmup"].append(Job(f"warmup-{task}", argv, cfg.offline.warmup.threads))
        for algo in cfg.offline.algos:
            run = out / "runs" / task / algo
            argv = ["train", "offline", "--algo", algo, "--data", str(data), "--config",
                    str(out / "configs" / "offline.yaml"), "--out", str(run), "--updates", str(cfg.offline.updates),
                    "--no-progress"]
            if cfg.offline.warmup.updates > 0:
                argv += ["--init-from", str(warm)]
            stages["offline"].append(Job(f"offline-{task}-{algo}", argv, cfg.offline.threads,
                                         after=("export", run, data)))
        runs = [(algo, out / "runs" / task / algo) for algo in cfg.offline.algos]
        if cfg.online.enabled:
            on = cfg.online
            run = out / "runs" / task / f"{on.algo}-online"
            argv = ["train", "online", "--env", on.env, "--task", task, "--offline-run",
                    str(out / "runs" / task / on.from_algo), "--offline-data", str(data), "--out", str(run),
                    "--config", str(out / "configs" / "online.yaml"), "--algo", on.algo,
                    "--rounds", str(on.rounds), "--episodes-per-round", str(on.episodes_per_round),
                    "--no-progress"]
            if on.max_updates > 0:
                argv += ["--max-updates", str(on.max_updates)]
            if on.env == "ros":
                argv += ["--timeout", f"{on.timeout_s:g}"]
            stages["online"].append(Job(f"online-{task}-{on.algo}", argv, on.threads))
            runs.append((f"{on.algo}-online", run))
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
                stages["eval"].append(Job(f"eval-{task}-{name}-{oset}", argv, cfg.eval.threads))
    stages["report"].append(Job("report", ["report", str(out / "eval"), "--out", str(out / "report"),
                                           "--title", cfg.title, "--runs", str(out / "runs")]))
    protocol.extend_plan(cfg, out, stages, Job)  # training seeds, learning curve, evidence report
    return Plan(stages)


def stage_parallel(cfg: DemoConfig, stage: str) -> int:
    return {"warmup": cfg.offline.parallel, "offline": cfg.offline.parallel, "online": cfg.online.parallel,
            "eval": cfg.eval.parallel}.get(stage, 1)


def write_stage_configs(cfg: DemoConfig, out: Path) -> None:
    """OUT/configs/offline.yaml and online.yaml: the base configs with the demo's overrides merged in."""
    (out / "configs").mkdir(parents=True, exist_ok=True)
    off = _merge(read_yaml(resolve_path(cfg.offline.config)), cfg.offline.overrides)
    (out / "configs" / "offline.yaml").write_text(yaml.safe_dump(off, sort_keys=False))
    warm = _merge(off, cfg.offline.warmup.overrides)
    (out / "configs" / "warmup.yaml").write_text(yaml.safe_dump(warm, sort_keys=False))
    on = _merge(read_yaml(resolve_path(cfg.online.config)), cfg.online.overrides)
    on["control_hz"] = cfg.control_hz
    (out / "configs" / "online.yaml").write_text(yaml.safe_dump(on, sort_keys=False))
    (out / "configs" / "demo.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    protocol.write_configs(cfg, out)


# ---------------------------------------------------------------------------------------------- export
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


# ---------------------------------------------------------------------------------------------- running
def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    src = [str(REPO_ROOT / "src" / p) for p in ("bora_policy", "bora_teleop", "bora_trainer", "bora_sim")]
    env["PYTHONPATH"] = os.pathsep.join(src + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BORA_NUM_THREADS"):
        env[k] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.done"


def run_stage(stage: str, jobs: list[Job], out: Path, parallel: int, index: int, progress: bool = True) -> dict:
    """Run ``jobs`` (at most ``parallel`` at a time, honouring ``needs``); skip those with a done marker."""
    todo = [j for j in jobs if not _marker(out, j.name).exists()]
    skipped = len(jobs) - len(todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=skipped, desc=f"[{index}/{len(STAGES)}] {stage}", unit="job",
                   dynamic_ncols=True, file=sys.stderr)
    running: dict[str, tuple[subprocess.Popen, Job, float, Any]] = {}
    failed: list[dict] = []
    times: dict[str, float] = {}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    done_names = {j.name for j in jobs if _marker(out, j.name).exists()}
    last_label = None
    while todo or running:
        for j in list(todo):
            if len(running) >= parallel or failed:
                break
            if any(n not in done_names for n in j.needs):
                continue
            log = out / "logs" / f"{j.name}.log"
            fh = log.open("w")
            fh.write("$ bora " + " ".join(j.argv) + "\n")
            fh.flush()
            proc = subprocess.Popen([sys.executable, "-m", "bora_trainer.cli", *j.argv], stdout=fh,
                                    stderr=subprocess.STDOUT, env=_env(j.threads), cwd=str(REPO_ROOT))
            running[j.name] = (proc, j, time.time(), fh)
            todo.remove(j)
        label = ", ".join(sorted(running))
        if bar is not None:  # the running jobs' latest progress line (updates/s, losses, ETA)
            from bora_trainer.progress import last_progress

            info = [(n, last_progress(out / "logs" / f"{n}.log")) for n in sorted(running)]
            label = ", ".join(f"{n} [{p.split(': ', 1)[-1]}]" if p else n for n, p in info)
        if bar is not None and label != last_label:
            bar.set_postfix_str(label)
            last_label = label
        time.sleep(0.5)
        for name, (proc, j, t0, fh) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            fh.close()
            del running[name]
            log = out / "logs" / f"{name}.log"
            if rc == 0 and j.after is not None and j.after[0] == "export":
                try:
                    if ensure_exported(j.after[1], j.after[2]):
                        with log.open("a") as f:
                            f.write("bora demo: exported policy/ + critic/ from the latest checkpoint\n")
                except Exception as e:  # noqa: BLE001 - reported as the job's failure
                    with log.open("a") as f:
                        f.write(f"bora demo: export failed: {type(e).__name__}: {e}\n")
                    rc = 1
            times[name] = time.time() - t0
            if rc != 0:
                failed.append({"job": name, "rc": rc, "log": str(log)})
                continue
            _marker(out, name).write_text(json.dumps({"seconds": times[name], "argv": j.argv}))
            done_names.add(name)
            if bar is not None:
                bar.update(1)
        if failed and not running:
            break
        if todo and not running and not failed and all(any(n not in done_names for n in j.needs) for j in todo):
            failed.append({"job": todo[0].name, "rc": -1, "log": "", "error": "unsatisfiable dependencies"})
            break
    if bar is not None:
        bar.set_postfix_str("")
        bar.close()
    return {"jobs": len(jobs), "skipped": skipped, "job_seconds": times, "failed": failed}


# ---------------------------------------------------------------------------------------------- summary
def success_table(eval_dir: Path) -> dict[str, dict[str, dict[str, int]]]:
    """method -> object_set -> {"successes", "trials"} summed over tasks."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for f in sorted(eval_dir.glob("*.json")):
        try:
            r = json.loads(f.read_text())
            if not isinstance(r, dict) or not all(k in r for k in ("method", "object_set", "trials", "successes")):
                continue  # not a `bora eval` result
        except ValueError:
            continue
        cell = out.setdefault(r["method"], {}).setdefault(r["object_set"], {"successes": 0, "trials": 0})
        cell["successes"] += int(r["successes"])
        cell["trials"] += int(r["trials"])
    return out


CLAIMS = (("BORA-Offline", "CP Base"), ("CP Base", "CP + Decoupled Critic"), ("BORA-Full", "BORA-Offline"))


def check_claims(table: dict) -> list[dict]:
    """The paper's orderings (strictly greater success rate), per object set, as measured."""
    res = []
    sets = sorted({s for m in table.values() for s in m})
    for a, b in CLAIMS:
        for s in sets:
            ca, cb = table.get(a, {}).get(s), table.get(b, {}).get(s)
            if not ca or not cb or not ca["trials"] or not cb["trials"]:
                continue
            ra, rb = ca["successes"] / ca["trials"], cb["successes"] / cb["trials"]
            res.append({"claim": f"{a} > {b}", "object_set": s, "a": ra, "b": rb, "held": ra > rb})
    return res


def viewer_lines(out: Path) -> list[str]:
    """Where to look after the run: the online episodes' viewer files (written by `bora report --runs`)
    and the TensorBoard log directory."""
    lines = [f"online episode in the viewer: {p}  (open: rerun {p})"
             for p in sorted((out / "report" / "viz").glob("*-last-episode.rrd"))]
    if any(p.is_dir() for p in (out / "runs").glob("**/tb")):
        lines.append(f"training curves: tensorboard --logdir {out / 'runs'}")
    return lines


def write_summary(out: Path, cfg: DemoConfig, stage_info: dict, total_s: float, ok: bool) -> dict:
    table = success_table(out / "eval")
    claims = check_claims(table)
    summary = {"ok": ok, "tasks": cfg.tasks, "total_seconds": round(total_s, 1), "stages": stage_info,
               "success": table, "claims": claims, "report": str(out / "report" / "report.md")}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# bora demo summary ({'complete' if ok else 'INCOMPLETE'})", "",
             f"tasks: {', '.join(cfg.tasks)}; total wall time {total_s / 60:.1f} min", "",
             "| stage | status | wall time (s) | jobs |", "| --- | --- | --- | --- |"]
    for s in STAGES:
        i = stage_info.get(s, {})
        lines.append(f"| {s} | {i.get('status', 'not run')} | {i.get('seconds', 0):.0f} | "
                     f"{i.get('jobs', 0)} ({i.get('skipped', 0)} reused) |")
    sets = sorted({s for m in table.values() for s in m})
    if table:
        from bora_trainer.report import METHOD_ORDER

        methods = [m for m in METHOD_ORDER if m in table] + sorted(set(table) - set(METHOD_ORDER))
        lines += ["", "| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
        for m in methods:
            cells = []
            for s in sets:
                c = table[m].get(s)
                cells.append(f"{c['successes']}/{c['trials']} ({100 * c['successes'] / c['trials']:.0f}%)"
                             if c and c["trials"] else "n/a")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if claims:
        lines += ["", "Paper orderings as measured here (strictly greater success rate):"]
        for c in claims:
            lines.append(f"- {c['claim']} ({c['object_set']}): {100 * c['a']:.0f}% vs {100 * c['b']:.0f}% -> "
                         f"{'HELD' if c['held'] else 'NOT HELD'}")
    lines += ["", f"report: {out / 'report' / 'report.md'}"] + viewer_lines(out)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    summary["text"] = "\n".join(lines)
    return summary


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bora demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help=f"demo YAML (DemoConfig fields; default {DEFAULT_CONFIG}, or built-in defaults without it)")
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--tasks", nargs="+", default=None, choices=TASKS, help="override the config's tasks")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (~4 min on 2 CPU cores)")
    p.add_argument("--resume", action="store_true", help="keep finished jobs (done markers) and continue")
    p.add_argument("--skip-collect", action="store_true",
                   help="reuse OUT/data/<task> as collected (implies --resume for the other stages' done jobs)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="run only these stages")
    p.add_argument("--plan", action="store_true", help="print the jobs of every stage and exit")
    p.add_argument("--tuning", action="store_true",
                   help="evidence protocol: evaluate on the config's tuning seeds (protocol.tuning_seed0), never "
                        "on its evaluation seeds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # DDS stays on this machine with a per-run domain, before anything can start a ROS process
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    config = args.config
    if config is None and (REPO_ROOT / DEFAULT_CONFIG).exists():
        config = str(REPO_ROOT / DEFAULT_CONFIG)
    try:
        cfg = load_demo_config(config, quick=args.quick, tasks=args.tasks)
    except ConfigError as e:
        print(f"bora demo: {e}", file=sys.stderr)
        return 2
    if args.tuning:
        if not cfg.protocol.enabled:
            print("bora demo: --tuning needs a config with protocol.enabled: true", file=sys.stderr)
            return 2
        cfg.protocol.tuning = True
    out = Path(args.out).resolve()
    pl = plan(cfg, out)
    if args.plan:
        for s in STAGES:
            print(f"{s} (parallel {stage_parallel(cfg, s)}):")
            for j in pl.stages[s]:
                print("  bora " + " ".join(j.argv))
        return 0
    resume = args.resume or args.skip_collect
    if args.skip_collect:
        missing = [t for t in cfg.tasks if not (out / "data" / t / "meta.json").exists()]
        if missing:
            print(f"bora demo: --skip-collect: no dataset at {out / 'data'}/{{{','.join(missing)}}}", file=sys.stderr)
            return 2
        (out / "stages").mkdir(parents=True, exist_ok=True)
        for j in pl.stages["collect"]:
            _marker(out, j.name).write_text(json.dumps({"seconds": 0.0, "reused": True}))
    if not resume:
        for d in OWNED_DIRS:
            shutil.rmtree(out / d, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_stage_configs(cfg, out)
    print(f"bora demo: tasks {', '.join(cfg.tasks)}, offline rows {', '.join(cfg.offline.algos)}, "
          f"online {'on' if cfg.online.enabled else 'off'} -> {out}  (logs: {out / 'logs'})", file=sys.stderr)
    t_all = time.time()
    info: dict[str, dict] = {}
    prev = out / "summary.json"
    if resume and prev.exists():
        try:
            info = json.loads(prev.read_text()).get("stages", {})
        except ValueError:
            info = {}
    ok = True
    for i, stage in enumerate(STAGES, 1):
        if stage not in args.stages:
            continue
        jobs = pl.stages[stage]
        if stage == "report":  # always rebuilt from whatever evaluations exist
            for j in jobs:
                _marker(out, j.name).unlink(missing_ok=True)
        t0 = time.time()
        res = run_stage(stage, jobs, out, stage_parallel(cfg, stage), i, progress=not args.no_progress)
        seconds = time.time() - t0
        if res["skipped"] == len(jobs) and stage in info:
            seconds = info[stage].get("seconds", seconds)  # all reused: keep the measured time
        res.update(seconds=round(seconds, 1), status="failed" if res["failed"] else "done")
        info[stage] = res
        if res["failed"]:
            ok = False
            for f in res["failed"]:
                print(f"bora demo: stage {stage}: job {f['job']} failed (exit {f['rc']}); log {f['log']}",
                      file=sys.stderr)
                if f.get("log"):
                    print(_tail(Path(f["log"])), file=sys.stderr)
            break
        _marker(out, stage).write_text(json.dumps({"seconds": res["seconds"]}))
    summary = write_summary(out, cfg, info, time.time() - t_all, ok)
    print(summary["text"])
    if ok:
        print(f"\nbora demo: done in {summary['total_seconds'] / 60:.1f} min; report {summary['report']}")
    else:
        print("\nbora demo: stopped; fix the failure and rerun with --resume", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
