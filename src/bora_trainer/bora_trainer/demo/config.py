"""``bora demo``'s configuration (``config/demo.yaml``: :class:`DemoConfig`) and its pure helpers.

The rows default to the methods that ``algorithms/registry.py`` marks ``demo``: ``offline.algos`` = the
offline ones, ``online.algo`` (BORA-Full, the row the evidence protocol extends) + ``online.extra_algos``
= the online ones; a config file may list other registered methods.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bora_policy.common.graph_params import graph_default
from bora_trainer import protocol
from bora_trainer.algorithms import registry
from bora_trainer.config_io import ConfigError, from_dict, read_yaml
from bora_trainer.offline.data import EPISODE_FILTERS

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_CONFIG = "config/demo.yaml"
STAGES = ("collect", "warmup", "offline", "online", "eval", "report")
TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
# Paper Table 4: offline trajectories per task (online: 10 per task and round).
TABLE4_OFFLINE = {"pick_plush_toy": 60, "pick_and_place": 100, "open_box": 100, "pull_tissue": 60, "press_button": 60}
OWNED_DIRS = ("data", "runs", "eval", "report", "stages", "logs", "configs", "stopped", "eval_seeds", "eval_online",
              "eval_curve", "rollouts")
"""What `bora demo` writes under OUT (`--fresh` deletes them; a plain rerun refuses them). The protocol's
evaluation folders were missing until 2026-12-07 (found in review): after --fresh the evidence report could read a
previous run's eval_seeds/eval_online/eval_curve results beside the new run's."""


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
    parallel: int = 2  # groups collected at a time (each in its own episode-id range of the task's dataset)


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
class RolloutSpec:
    """Stage 2b (ours; off with ``episodes`` 0): ``episodes`` autonomous rollouts of the shared warm-up per
    task, on the standard objects, seeds ``seed0 ..`` (disjoint from the evaluation and tuning seeds),
    recorded by ``bora eval --record`` into ``OUT/data/<task>_rollouts``; every offline row then trains with
    ``--rollouts`` that directory (``OfflineConfig.rollout_data``: critic and PPO on every step, BC on the
    successful rollouts only). The critic needs failures in its data to tell them from successes."""

    episodes: int = 0
    seed0: int = 400_000


@dataclass
class SelectSpec:
    """Stage 3b (ours; off with ``every`` 0): every offline row keeps a checkpoint each ``every`` updates and
    ``bora select`` deploys the one with the most successes in ``trials`` rollouts on the selection seeds
    ``seed0 ..`` (object set ``objects``; ties: the later checkpoint), the same budget for every row. Why:
    one run's success moves 15-20 points between checkpoints (bench/results/finetune_drift.md).

    The selection seeds are a range of their own (ours: 600000..), apart from the evaluation seeds and from
    the protocol's tuning seeds (``protocol.tuning_seed0``, 200000..), on which ``bora demo --tuning`` evaluates:
    there a row would be scored on the seeds its checkpoint was chosen on (``validate`` refuses the overlap).
    Until 2026-12-07 the default was the tuning seeds' 200000 (found in review)."""

    every: int = 0
    trials: int = 30
    seed0: int = 600_000
    objects: str = "standard"
    num_envs: int = 4


@dataclass
class OfflineSpec:
    """Stages 2-3. ``config``: an OfflineConfig YAML; ``overrides``: OfflineConfig fields set on top;
    ``warmup``: the shared warm-up every row fine-tunes (``warmup.updates`` = 0: rows train from scratch)."""

    config: str = "config/offline_demo.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)
    algos: list[str] = field(default_factory=lambda: registry.offline_names(demo_only=True))
    updates: int = 300
    parallel: int = 2
    threads: int = 1  # torch threads per training process
    warmup: WarmupSpec = field(default_factory=WarmupSpec)
    rollouts: RolloutSpec = field(default_factory=RolloutSpec)
    select: SelectSpec = field(default_factory=SelectSpec)


@dataclass
class OnlineSpec:
    """Stage 3: ``bora train online --env ENV``. ``env``: ``ros`` runs the rounds through the ROS 2 graph
    (``bora up --sim --with trainer``: bridge + scripted operator, sync, policy, teleop, trainer node
    recording bags; one task at a time), ``sim`` in-process. ``config``: an OnlineRunConfig YAML. Every row of
    :attr:`rows` (``algo``, then ``extra_algos``) is trained from the ``from_algo`` offline run and evaluated."""

    enabled: bool = True
    env: str = "ros"
    timeout_s: float = 1800.0  # env ros: give up on a graph that does not finish its rounds
    config: str = "config/online_tiny.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)
    from_algo: str = "bora"
    algo: str = "bora-residual"  # the main online row (BORA-Full); the evidence protocol repeats it per seed
    # further online rows, trained the same way from the same offline run (default: the registry's other
    # online demo rows, e.g. bc-residual)
    extra_algos: list[str] = field(
        default_factory=lambda: [n for n in registry.online_names(demo_only=True) if n != "bora-residual"]
    )
    rounds: int = 2
    episodes_per_round: int = 10
    max_updates: int = 0  # 0: the config's
    parallel: int = 1  # tasks trained at a time (env sim only; one graph with env ros)
    threads: int = 1

    @property
    def rows(self) -> list[str]:
        """The online algorithms trained, in order: ``algo`` first, then ``extra_algos``."""
        return [self.algo] + [a for a in self.extra_algos if a != self.algo]


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
    # also evaluate the shared warm-up run (method "Warm-up"): the policy every offline row starts from, so
    # "CP Base - Warm-up" measures what the offline fine-tuning itself did (our addition, not a paper row)
    warmup_row: bool = False
    parallel: int = 2
    threads: int = 1


@dataclass
class DemoConfig:
    tasks: list[str] = field(default_factory=lambda: ["press_button"])
    image_size: int = 64
    control_hz: float = field(default_factory=lambda: graph_default("control_hz"))  # config/graph.yaml
    collect: CollectSpec = field(default_factory=CollectSpec)
    offline: OfflineSpec = field(default_factory=OfflineSpec)
    online: OnlineSpec = field(default_factory=OnlineSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    protocol: protocol.ProtocolSpec = field(default_factory=protocol.ProtocolSpec)  # evidence protocol (issue 14)
    title: str = "BORA on the simulated robot (bora demo)"
    # cores the jobs may keep busy together (0: every logical CPU): the runner starts a job when its inputs
    # are done and its cores fit (demo/run.py), whatever its stage
    cpus: int = 0

    def validate(self) -> None:
        for t in self.tasks:
            if t not in TASKS:
                raise ConfigError(f"DemoConfig.tasks: unknown task {t!r}; choose from {list(TASKS)}")
        if not self.tasks:
            raise ConfigError("DemoConfig.tasks: at least one task is required")
        offline = registry.offline_names()
        for a in self.offline.algos:
            if a not in offline:
                raise ConfigError(f"DemoConfig.offline.algos: unknown algorithm {a!r}; choose from {offline}")
        for a in self.online.rows:
            if a not in registry.online_names():
                raise ConfigError(f"DemoConfig.online: unknown online algorithm {a!r}; "
                                  f"choose from {registry.online_names()}")
        if self.online.enabled and self.online.from_algo not in self.offline.algos:
            raise ConfigError(
                f"DemoConfig.online.from_algo: {self.online.from_algo!r} is not trained offline "
                f"(offline.algos = {self.offline.algos})"
            )
        w = self.offline.warmup
        if w.algo not in offline:
            raise ConfigError(f"DemoConfig.offline.warmup.algo: unknown algorithm {w.algo!r}; choose from {offline}")
        if w.episodes not in EPISODE_FILTERS:
            raise ConfigError(
                f"DemoConfig.offline.warmup.episodes must be one of {list(EPISODE_FILTERS)}, got {w.episodes!r}"
            )
        if w.updates < 0 or w.threads < 1:
            raise ConfigError("DemoConfig.offline.warmup.updates must be >= 0 and warmup.threads >= 1")
        r = self.offline.rollouts
        if r.episodes < 0:
            raise ConfigError(f"DemoConfig.offline.rollouts.episodes must be >= 0, got {r.episodes}")
        if r.episodes > 0 and w.updates == 0:
            raise ConfigError("DemoConfig.offline.rollouts: the rollouts are the warm-up's; set warmup.updates > 0")
        if r.episodes > 0 and r.seed0 < self.eval.seed0 + self.eval.trials and self.eval.seed0 < r.seed0 + r.episodes:
            raise ConfigError(f"DemoConfig.offline.rollouts.seed0 {r.seed0}: the rollout seeds overlap the "
                              f"evaluation seeds {self.eval.seed0}..{self.eval.seed0 + self.eval.trials - 1}")
        sel = self.offline.select
        if sel.every < 0 or (sel.every > 0 and (sel.trials < 1 or sel.num_envs < 1)):
            raise ConfigError("DemoConfig.offline.select: every must be >= 0 (0: off), trials and num_envs >= 1")
        if sel.every > 0 and self.offline.updates % sel.every:
            raise ConfigError(f"DemoConfig.offline.select.every {sel.every}: must divide offline.updates "
                              f"{self.offline.updates} (the last checkpoint is a candidate too)")
        hi = self.eval.seed0 + max(self.eval.trials, self.protocol.seed_trials, self.protocol.curve_trials)
        if sel.every > 0 and sel.seed0 < hi and self.eval.seed0 < sel.seed0 + sel.trials:
            raise ConfigError(f"DemoConfig.offline.select.seed0 {sel.seed0}: the selection's seeds overlap the "
                              f"evaluation seeds {self.eval.seed0}..{hi - 1}; select on tuning seeds")
        if sel.every > 0 and r.episodes > 0 and sel.seed0 < r.seed0 + r.episodes and r.seed0 < sel.seed0 + sel.trials:
            raise ConfigError(f"DemoConfig.offline.select.seed0 {sel.seed0}: the selection's seeds overlap the "
                              f"recorded rollouts' seeds {r.seed0}..{r.seed0 + r.episodes - 1} (training data)")
        if self.eval.warmup_row and w.updates == 0:
            raise ConfigError("DemoConfig.eval.warmup_row: there is no warm-up run to evaluate; set "
                              "offline.warmup.updates > 0")
        fr = [q.fraction for q in self.collect.quality]
        if not self.collect.quality or any(f < 0 for f in fr) or sum(fr) <= 0:
            raise ConfigError("DemoConfig.collect.quality: needs groups with non-negative fractions summing > 0")
        for name in ("updates", "parallel", "threads"):
            if getattr(self.offline, name) < 1:
                raise ConfigError(f"DemoConfig.offline.{name} must be >= 1")
        if self.cpus < 0:
            raise ConfigError(f"DemoConfig.cpus must be >= 0 (0: every logical CPU), got {self.cpus}")
        for name, v in (("collect.parallel", self.collect.parallel), ("online.parallel", self.online.parallel),
                        ("eval.parallel", self.eval.parallel)):
            if v < 1:
                raise ConfigError(f"DemoConfig.{name} must be >= 1, got {v}")
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


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
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
        data = merge(data, QUICK_OVERRIDES)
    if tasks:
        data["tasks"] = list(tasks)
    resolve_auto_threads(data)
    cfg = from_dict(DemoConfig, data)
    cfg.validate()
    return cfg


def warmup_jobs(data: dict) -> int:
    """How many warm-up trainings the plan holds (``plan.plan``): one per task, plus one per extra training
    seed on each of the protocol's ``seed_tasks``."""
    tasks = list(data.get("tasks") or DemoConfig().tasks)
    n = len(tasks)
    prot = data.get("protocol") or {}
    if isinstance(prot, dict) and prot.get("enabled"):
        seeds = list(prot.get("seeds") or [0])
        n += max(0, len(seeds) - 1) * len([t for t in (prot.get("seed_tasks") or []) if t in tasks])
    return n


def resolve_auto_threads(data: dict) -> dict:
    """``threads: auto`` of a stage -> the CPU probe's calibrated thread count (``cpu_probe.probe``: a ~2 s
    matmul of 1 vs 2 threads), divided by the jobs the stage runs at once (at least 1 thread): its
    ``parallel``; for the warm-up, which runs ``offline.parallel`` at a time, the smaller of that and its
    number of jobs (one task: one warm-up with all the probe's threads; five tasks: two at a time, each
    with its share: two warm-ups of 2 threads each on 2 cores ran 3-5x slower, measured). In place; returns data."""
    spots = [(data.get("offline"), "warmup"), (data, "offline"), (data, "online"), (data, "eval")]
    for parent, key in spots:
        sec = (parent or {}).get(key) if isinstance(parent, dict) else None
        if not isinstance(sec, dict) or str(sec.get("threads", "")).strip().lower() != "auto":
            continue
        from bora_policy.runtime.cpu_probe import probe

        if key == "warmup":
            par = max(1, min(int((data.get("offline") or {}).get("parallel", 2)), warmup_jobs(data)))
        else:
            par = max(1, int(sec.get("parallel", 2 if key in ("offline", "eval") else 1)))
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
