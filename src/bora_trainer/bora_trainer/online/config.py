"""Configurations of the online phase: the run (``bora train online``) and the loop (the trainer).

:class:`OnlineRunConfig` is what ``bora train online --env sim|ros`` reads (config/online*.yaml);
:class:`TrainerConfig` is the one loop's (:class:`bora_trainer.online.loop.OnlineLoop`) and the trainer
node's (config/trainer.yaml, section ``trainer``). :func:`trainer_config_for` derives the second from the
first, so both environments run the loop with the same round budget, update ratio and learner settings.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bora_policy.common.graph_params import graph_default
from bora_policy.common.rewards import RewardConfig
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.config_io import to_dict

log = logging.getLogger("bora_trainer.online")  # the online loop's logger: its warnings read as the loop's


@dataclass
class OnlineRunConfig:
    """``bora train online``. Learner hyper-parameters are in ``online`` (Table 3 Phase 2).

    exec_horizon: control steps executed from each chunk before replanning (0 = the whole chunk, k);
        must divide k so the next observation of a chunk transition is a replanning step.
    offline_stride: chunk starts in the offline dataset (0 = exec_horizon).
    offline_episodes: which episodes of the offline dataset form D_offline (RLPD's offline half: the BC rows and
        the critic's offline rows; offline/data.py ``EPISODE_FILTERS``): "all"; "clean" = the successful
        scripted-expert demonstrations with every quality knob at 0 (a recording without quality knobs counts
        as clean when it succeeded); "successful" = every successful episode. Ours: with "all" the BC term of
        pick_and_place's mixed-quality build is 15 times larger, nearly all of it the noisy demonstrations'
        hand jitter, yet "clean" changed neither the residual nor success (bench/results/
        online_clean_pick_and_place.md), so the default stays "all".
    max_offline_episodes: at most this many of those episodes (0 = all).
    updates_per_env_step: learner updates per executed control step once n_start is reached (the
        loop's ``utd_ratio``).
    deterministic_base: the VLA's mean chunk (True) or a sample.
    operator: overrides of bora_sim.operator.OperatorConfig (``mode: requested``: the operator takes over
        only when the help monitor asks, issue 19).
    help_monitor: bora_policy.runtime.help_monitor.HelpMonitorConfig fields for ``operator.mode:
        requested`` (a calibrated ``threshold`` is required there: ``bench/bench_help.py`` writes it per
        task); the monitor reads the current round's critic on each executed chunk (env sim).
    eval_episodes: autonomous episodes (no operator) after each round, for the success rate (env sim).
    action_clip: executed actions are clipped to +-action_clip in normalised units before entering the
        replay (0 = off): dimensions that were constant in the offline data have a tiny std, and the
        operator's commands there would otherwise dominate the BC loss.
    explore_std: exploration noise of the online episodes (ours, after TD3's and ResFiT's Gaussian action
        noise; 0 = off, the paper's deterministic composite): each planned chunk executes
        ``A_final + alpha_t * eps``, eps ~ N(0, explore_std^2) per step and dimension in normalised units, so
        the critic sees outcomes of actions other than the composite's. Env sim only (the policy node adds
        none); measured in bench/results/online_explore.md.
    """

    task: str = "pick_plush_toy"
    object_set: str = "standard"
    rounds: int = 2
    episodes_per_round: int = 10
    control_hz: float = field(default_factory=lambda: graph_default("control_hz"))  # config/graph.yaml
    exec_horizon: int = 0
    offline_stride: int = 0
    offline_episodes: Literal["all", "clean", "successful"] = "all"
    max_offline_episodes: int = 0
    updates_per_env_step: float = 1.0
    deterministic_base: bool = True
    eval_episodes: int = 0
    action_clip: float = 5.0
    explore_std: float = 0.0
    seed: int = 0
    device: str = "auto"
    operator: dict[str, Any] = field(default_factory=dict)
    help_monitor: dict[str, Any] = field(default_factory=dict)
    reward: RewardConfig = field(default_factory=RewardConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.explore_std <= 10.0:
            raise ValueError(
                f"OnlineRunConfig.explore_std must be in [0, 10] (normalised units), got {self.explore_std}"
            )
        self.monitor_config()  # a bad help_monitor fails at load time, not after the first round

    def operator_mode(self) -> str:
        """The operator's mode on this run's task (``OperatorConfig.for_task``: a per-task ``mode`` in
        ``operator.task_overrides`` wins), so a per-task 'requested' gets its help monitor. Building the operator's
        config also checks ``operator`` at load time (a bad field is a one-line ValueError)."""
        from bora_sim.operator import operator_config

        return operator_config(self.operator).for_task(self.task).mode

    def monitor_config(self):
        """The help monitor of ``operator.mode: requested`` (a ``HelpMonitorConfig`` at ``control_hz``), else
        None; a ValueError names a missing threshold or a bad field."""
        from bora_policy.runtime.help_monitor import HelpMonitorConfig

        if self.operator_mode() != "requested":
            if self.help_monitor:
                raise ValueError(
                    f"OnlineRunConfig.help_monitor is set but the operator's mode on {self.task} is not 'requested'"
                )
            return None
        try:
            cfg = HelpMonitorConfig.from_dict({**self.help_monitor, "control_hz": self.control_hz})
        except ValueError as e:
            raise ValueError(f"OnlineRunConfig.help_monitor: {e}") from None
        if cfg.threshold is None:
            raise ValueError(
                "OnlineRunConfig.help_monitor.threshold: operator.mode 'requested' needs a calibrated threshold "
                "(bench/bench_help.py writes one per task)"
            )
        return cfg


@dataclass
class TrainerConfig:
    """The online loop's settings (online phase defaults: Table 3 in ``online``; the rest ours).

    recordings: directory watched for rosbag2 recordings (env ros). state_dir: where the buffer, ledger,
    converted episodes and checkpoints (``state_dir/run``) live. offline_buffer: D_offline, a
    ChunkReplayBuffer directory (1:1 RLPD batches). offline_run: offline run directory whose latest
    checkpoint holds the ``critic`` (critic inheritance); empty = a fresh critic (demos, tests).
    normalizer: normalizer.json of the deployed policy (empty: ``offline_run/normalizer.json``).
    utd_ratio: updates per ingested control step (Algorithm 1: 1). checkpoint_every: updates between
    checkpoints. episodes_per_round: M of Algorithm 1 (Table 4: 10); a round ends once M episodes of it
    are ingested and its updates (``utd_ratio`` x its control steps, at most ``online.max_updates``
    per round) are done. poll_interval_s: watch period. rounds: the run's number of rounds (0 = no
    limit): once they are done the loop is ``finished`` and the round gate (rounds.py) lets no further
    episode start. keep_checkpoints: checkpoints kept in the run directory (0 = all).
    late_message_wait_s: how long an episode of a bag still being recorded that has its outcome but not its last
    steps' commands waits for them (ours; gaps before a recorded command are final and do not wait): the recorder
    writes each topic's messages as they arrive, so the outcome can reach the file before the last steps'
    messages (seen in CI: ingested with 7 of 16 steps, the complete version then refused). Past it, the episode
    is ingested as recorded, its gaps flagged, as a closed bag's would be. 0 = no wait.
    stall_warn_s: a round that still takes episodes and has ingested none for this long is said in the log, every
    stall_warn_s, with the unfinished episodes the recordings hold (``rounds.StallWatch``, ours; 0 = off): an
    episode whose outcome event was never recorded would otherwise hold the round, and the robot at its gate,
    without a word.
    action_clip: the online rows' executed actions are clipped to +-action_clip in normalised units (0 = off;
    ``OnlineRunConfig.action_clip``, which ``trainer_config_for`` passes on: before, the recordings' rows were not
    clipped while the simulated loop's and D_offline's were).
    """

    recordings: str = "recordings"
    state_dir: str = "runs/online"
    offline_buffer: str = ""
    offline_run: str = ""
    normalizer: str = ""
    utd_ratio: float = 1.0
    checkpoint_every: int = 500
    episodes_per_round: int = 10
    rounds: int = 0
    keep_checkpoints: int = 3
    poll_interval_s: float = 2.0
    late_message_wait_s: float = 5.0
    stall_warn_s: float = 120.0
    action_clip: float = 5.0
    critic_hidden_dim: int = 256
    critic_pos_dim: int = 32
    device: str = ""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def __post_init__(self) -> None:
        if self.utd_ratio <= 0:
            raise ValueError(f"TrainerConfig.utd_ratio must be > 0, got {self.utd_ratio}")
        if self.checkpoint_every < 1:
            raise ValueError(f"TrainerConfig.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.rounds < 0:
            raise ValueError(f"TrainerConfig.rounds must be >= 0 (0 = no limit), got {self.rounds}")
        if self.episodes_per_round < 1:
            raise ValueError(f"TrainerConfig.episodes_per_round must be >= 1, got {self.episodes_per_round}")
        if not 0.0 <= self.late_message_wait_s <= 600.0:
            raise ValueError(
                f"TrainerConfig.late_message_wait_s must be in [0, 600] seconds, got {self.late_message_wait_s}"
            )
        if self.stall_warn_s < 0:
            raise ValueError(f"TrainerConfig.stall_warn_s must be >= 0 seconds (0 = off), got {self.stall_warn_s}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"TrainerConfig.keep_checkpoints must be >= 0 (0 = all), got {self.keep_checkpoints}")


def resolve_reward(cfg: OnlineRunConfig, offline_data: str | Path, explicit: dict[str, Any] | None) -> str:
    """One reward definition for the offline critic and the online phase that inherits it.

    The offline critic learned the rewards stored in ``offline_data`` (its ``meta.json`` ``reward``: for the
    simulator's datasets ``SIM_REWARD``, time penalty 0.01). ``cfg.reward`` becomes that definition with the fields
    the online config sets explicitly (``explicit``: its ``reward`` section, None = none) on top; the returned line
    (printed by the CLI; "" = nothing to say) names the fields that then differ from the data's, or says that the
    data do not record theirs (``cfg.reward`` is then left as loaded). Before this, online runs used
    ``RewardConfig()`` (time penalty 0.002) against a critic trained with 0.01 and anchored to it
    (``critic_reg_lambda``): two value scales in one loss."""
    from bora_policy.common.episodes import read_meta

    recorded = read_meta(offline_data).reward
    if recorded is None:
        return (
            f"reward: {offline_data}/meta.json does not record the reward definition of its episodes (written "
            f"before it was recorded); online rewards use {'the config' if explicit else 'the defaults'} "
            f"(time_penalty {cfg.reward.time_penalty:g}). Datasets from `bora collect` hold time_penalty 0.01: set "
            "`reward: {time_penalty: 0.01}` so the online critic keeps the offline critic's scale"
        )
    try:
        data = dataclasses.asdict(RewardConfig(**recorded))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{offline_data}/meta.json reward: expected RewardConfig fields ({e})") from None
    cfg.reward = RewardConfig(**{**data, **dict(explicit or {})})
    diff = [f"{k} {v:g} (data {data[k]:g})" for k, v in dataclasses.asdict(cfg.reward).items() if v != data[k]]
    if not diff:
        return ""
    return (
        f"reward: the config sets {', '.join(diff)}, unlike the definition {offline_data} was recorded with, in "
        "which the inherited critic learned its values"
    )


def check_offline_reward(recorded: dict | None, cfg: TrainerConfig) -> dict:
    """The reward definition of the loop's rows, ``cfg.rewards``, checked against the one D_offline's rows were
    computed with: the critic must learn one scale from both halves of every RLPD batch. A different recorded
    definition is an error; a buffer that records none (older versions) gets a warning."""
    want = dataclasses.asdict(cfg.rewards)
    where = cfg.offline_buffer or "D_offline"
    if recorded is None:
        log.warning(
            "%s does not record the reward definition of its rows: they are taken to use TrainerConfig.rewards "
            "(%s); rebuild it (bora train online) to have it checked",
            where,
            ", ".join(f"{k} {v:g}" for k, v in want.items()),
        )
    elif recorded != want:
        diff = ", ".join(f"{k} {v:g} (D_offline {recorded.get(k)})" for k, v in want.items() if recorded.get(k) != v)
        raise ValueError(
            f"TrainerConfig.rewards: {diff or recorded}: expected the definition {where} was built with, so that "
            "offline and online rows share one reward scale (set the rewards section to it, or rebuild D_offline)"
        )
    return want


def trainer_config_for(cfg: OnlineRunConfig, offline_run: str | Path, out: str | Path) -> dict[str, Any]:
    """The loop settings of a ``bora train online`` run (a ``trainer`` section): the same for both
    environments; ``out`` is the loop's state directory's parent (env ros: ``OUT/trainer``)."""
    out, offline_run = Path(out), Path(offline_run)
    return {
        "recordings": str(out / "recordings"),
        "state_dir": str(out / "trainer"),
        "offline_buffer": str(out / "offline_buffer"),
        "offline_run": str(offline_run),
        "normalizer": str(offline_run / "normalizer.json"),
        "utd_ratio": float(cfg.updates_per_env_step),
        "checkpoint_every": max(1, int(cfg.online.max_updates) // 4),
        "episodes_per_round": int(cfg.episodes_per_round),
        "rounds": int(cfg.rounds),
        "poll_interval_s": 1.0,
        "device": "" if cfg.device == "auto" else cfg.device,
        "action_clip": float(cfg.action_clip),
        "rewards": to_dict(cfg.reward),
        "online": to_dict(cfg.online),
    }


@dataclass
class Announcement:
    """What a checkpoint announcement (bora_msgs/CheckpointInfo) carries."""

    path: str
    sha256: str
    round: int
    update_step: int
    kind: str = "residual"


def load_trainer_config(config_file: str = "", recordings: str = "", state_dir: str = "") -> TrainerConfig:
    """The trainer's :class:`TrainerConfig`: ``config_file`` (its ``trainer`` section, or the whole file;
    a top-level ``rewards`` section, shared with ``bora bag convert``, applies too), then the non-empty
    ``recordings`` / ``state_dir`` overrides. Read by the trainer node and by ``bora up`` (library code:
    ``bora up`` must not import the node)."""
    from bora_trainer.config_io import load_config, read_yaml

    over = {k: v for k, v in (("recordings", recordings), ("state_dir", state_dir)) if v}
    if not config_file:
        return load_config(TrainerConfig, None, overrides=over)
    data = read_yaml(config_file)
    if "trainer" in data:
        section = dict(data["trainer"] or {})
        if "rewards" in data and "rewards" not in section:
            section["rewards"] = data["rewards"]
        data = section
    return load_config(TrainerConfig, data, overrides=over)


TRAINER_PATH_PARAMS = ("config_file", "recordings", "state_dir")


def trainer_wiring(
    params_file: str | Path,
    vla: str = "",
    residual: str = "",
    critic: str = "",
    trainer: dict[str, str] | None = None,
    default_config: str | Path = "",
) -> tuple[dict[str, str], list[str]]:
    """The trainer's ``config_file`` and ``state_dir`` and the policy's ``checkpoint_roots`` of a graph that runs
    the trainer, worked out once from the same inputs by ``bora up --with trainer`` and by the launch files'
    ``trainer:=true`` (bora_policy/launch_nodes.py), so the directory the trainer writes its checkpoints to
    (``state_dir/run``, ``state_dir/rounds``) is always one the policy accepts /bora/checkpoint paths from.

    ``trainer``: the config_file / recordings / state_dir given for this run (a launch argument, ``--param
    trainer:...``); an empty one falls back to the params file's ``trainer`` section, and config_file then to
    ``default_config`` (config/trainer.yaml). state_dir is that config's, made absolute against the working
    directory (the launch's, which every node inherits), and is passed to the trainer as such. The roots: the params
    file's ``policy.checkpoint_roots``, else ``default_checkpoint_roots`` of ``vla`` / ``residual`` / ``critic``
    (each, when empty, the params file's policy value), then state_dir. Returns
    ``({"config_file": ..., "state_dir": ...}, roots)``; a missing config file raises ConfigError naming it."""
    from bora_policy.runtime.checkpoint_loader import default_checkpoint_roots
    from bora_trainer.config_io import read_yaml

    data = read_yaml(params_file)

    def section(node: str) -> dict:
        return dict(((data.get(node) or {}).get("ros__parameters")) or {})

    given = {k: str(v) for k, v in (trainer or {}).items() if v and str(v).strip()}
    mine = {k: given.get(k) or str(section("trainer").get(k) or "") for k in TRAINER_PATH_PARAMS}
    mine["config_file"] = mine["config_file"] or str(default_config or "")
    if mine["config_file"]:
        mine["config_file"] = str(Path(mine["config_file"]).expanduser().resolve())
    state = str(Path(load_trainer_config(**mine).state_dir).expanduser().resolve())
    policy = section("policy")
    roots = [str(r) for r in (policy.get("checkpoint_roots") or []) if str(r).strip()]
    if not roots:
        vla = vla or str(policy.get("vla_path") or "")
        residual = residual or str(policy.get("residual_path") or "")
        critic = critic or str(policy.get("critic_path") or "")
        critic = "" if critic == "none" else critic  # 'none': no critic, so no critic directory
        roots = [str(r) for r in default_checkpoint_roots(vla, residual, critic)]
    return {"config_file": mine["config_file"], "state_dir": state}, [*roots, state]
