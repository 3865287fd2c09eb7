"""BORA's run configurations: Table 3 of the paper (Phase 1 offline, Phase 2 online).

:class:`OfflineConfig` is the config of every ``bora train offline`` run, whatever its ``--algo``: the run
mechanics (updates, batch, data, model, devices) plus BORA's offline hyper-parameters; another method's
own hyper-parameters go in ``algo_options`` (its config class in ``algorithms/registry.py``).
:class:`OnlineConfig` is the same for the online phase (``objective_options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bora_policy.models.residual import ResidualConfig
from bora_trainer.algorithms import losses as L
from bora_trainer.data.chunks import ChunkDatasetConfig
from bora_trainer.offline.data import EPISODE_FILTERS


@dataclass
class ModelConfig:
    """Which networks to build (bora_policy.models). ``vlm`` is a named tiny/shape config or a local path."""

    vlm: str = "paligemma-tiny"
    vlm_load_weights: bool = True
    gradient_checkpointing: bool = False
    bf16: bool = True  # autocast on CUDA
    use_proprio: bool = True  # feed the normalised state to the VLM (proprio token) and the expert
    expert: dict[str, Any] = field(default_factory=dict)  # extra kwargs of the action expert config
    critic: dict[str, Any] = field(
        default_factory=dict
    )  # extra kwargs of the chunk / decoupled critic config
    # denoising steps at inference (and in export); 0 = the expert's own default: consistency 1 (1-3 allowed),
    # diffusion 10. Until 2026-12-07 the default was 1 for every expert, so the diffusion-bc row ("VITRA
    # (Diffusion)") was exported and evaluated with ONE DDIM step (found in review); consistency rows are unchanged.
    expert_sample_steps: int = 0


@dataclass
class OfflineConfig:
    """Offline BORA training. Defaults are Table 3 (Phase 1) unless marked "not in Table 3"."""

    algo: str = "bora"
    # --- Table 3, Phase 1
    total_updates: int = 70_000
    batch_size: int = 8  # per GPU / process
    k: int = 32  # action chunk size
    weight_decay: float = 1e-4  # AdamW
    vlm_lr: float = 1e-5  # actor VLM learning rate
    expert_lr: float = 5e-5  # actor consistency (action expert) learning rate
    ppo_start_step: int | None = None  # None: round(total_updates * ppo_start_fraction) = 40k of 70k
    ppo_start_fraction: float = 40_000 / 70_000
    lambda_bc: float = 1.0
    lambda_ppo: float = 0.01  # PPO guidance coefficient
    adv_clip: float = 2.0  # advantage normalisation clip
    gate_enabled: bool = True  # OPE gate (false = gate_scope "off")
    gate_margin: float = 0.0  # delta_OPE
    # what a closed gate (Eq. 5, Appendix B.1 "optionally") withholds (losses.gated_ppo_bc_loss): "batch" =
    # the paper's literal gate (the whole actor step, BC included), "ppo_chunk" = ours: the PPO term of
    # each chunk with A_bar_t <= margin (BC always applied), "off" = no gate. Default ppo_chunk: measured in
    # bench/results/gate_scope.md (press_button, demo recipe): the scopes' success intervals overlap, the
    # literal gate skipped the whole actor step (BC included) on most PPO-stage updates; ppo_chunk keeps BC
    gate_scope: Literal["batch", "ppo_chunk", "off"] = "ppo_chunk"
    # ours (the paper trains the VLM "through the actor loss" and does not say whether PPO's part reaches it):
    # false = the PPO term's log-likelihood sees the cognition token detached, so PPO moves the action expert
    # only and the VLM learns from BC alone (bench/results/offline_ppo_ablation_open_box.md)
    ppo_vlm_grad: bool = True
    # the advantages in the surrogate: "signed" = Eq. 2 as written (normalised action-level GAE); ours:
    # "positive" = clamped at 0 from below (CRR's binary filter, Wang et al. 2020: the PPO term raises the
    # likelihood of better-than-average demonstrated actions, never pushes away from one); "one" = 1 on every
    # valid step, a diagnostic without the critic (the term is then a Gaussian log-likelihood, i.e. an MSE
    # regression, of the deterministic chunk towards the demonstrations)
    ppo_advantage: Literal["signed", "positive", "one"] = "signed"
    # the log-likelihood in Eq. 2's ratio: "gaussian" = the per-step Gaussian head around the deterministic chunk
    # (models/action_expert.py); ours, after FPO (flow policy optimisation, McAllister et al. 2025):
    # "consistency" = minus the expert's own per-step generative loss (iCT + denoising), the same noise for the
    # current and the reference expert, so the PPO term reweights the objective BC trains instead of pulling
    # the deterministic chunk by a Gaussian. Measured over three training seeds (bench/results/
    # offline_ppo_ablation_*.md): +2.7 against CP Base on open_box; on pick_and_place two of three seeds
    # collapsed, and so did the same runs at lambda_ppo 0 (the proxy then drew its noise seed from the global
    # random stream, which made them other training runs; it has its own generator since). Neither form is
    # measurably better at this scale; the default stays the paper's Gaussian (Sec. 3.1)
    ppo_likelihood: Literal["gaussian", "consistency"] = "gaussian"
    # --- not in Table 3 (paper text / Table 3 Phase 2 / common practice)
    gamma: float = 0.99  # Table 3 Phase 2 discount, reused offline
    gae_lambda: float = 0.95  # GAE lambda (standard PPO value)
    expectile_tau: float = 0.7  # IQL expectile, tau in (0.5, 1) (Appendix A); IQL's default 0.7
    ppo_eps: float = 0.2  # PPO clip (Schulman et al.)
    ppo_dual_clip: float = 0.0  # ours: > 1 bounds the surrogate at c * A for A < 0 (0 = off, Eq. 2 exactly)
    critic_lr: float = 1e-4  # Table 3 Phase 2 critic learning rate, reused offline
    target_tau: float = 0.005  # Polyak rate of the target value net (Table 3 Phase 2 tau_target)
    # which value net Eq. 1's bootstrap reads: "online" = v_psi itself, detached (Eq. 1 as written, and IQL's Q
    # target, Kostrikov et al. 2021); "target" = its Polyak copy at target_tau (ours before; Table 3 gives
    # tau_target for the online phase only). With a copy at tau 0.005 the value moves back about one control
    # step per 1/tau = 200 updates, so in a 500-update offline run V stays near its initialisation
    critic_bootstrap: Literal["online", "target"] = "target"
    # ours (not in the paper, whose Eq. 1 is a pure TD target): the critic's target is
    # (1 - w) * Eq. 1 + w * G, with G the step's Monte-Carlo return-to-go to the episode's recorded end
    # (``ChunkDataset`` ``returns``; a time limit is summed to, not bootstrapped past: the time-limited task's
    # return, which carries the outcome). 0 = Eq. 1 exactly. Why: time limits are truncations, so Eq. 1's V
    # estimates the continuing task's value (a failing rollout bootstraps from states that could still succeed),
    # not the outcome within the limit that Fig. 11 asks about. Measured (bench/results/critic_refit.md): with
    # failed rollouts as critic data and the refit below, weight 1 ranks held-out rollouts by outcome at 0.66-0.95
    # from step 45 on, TD at 0.17-0.67; without the refit neither does. Mixing MC returns into value targets is the
    # classic remedy (Sutton & Barto's lambda-returns; Cal-QL's MC lower bound, Nakamoto et al. 2023)
    critic_mc_weight: float = 0.0
    # ours: after the last update, the critic alone takes this many steps of the same objective on the final
    # VLM's tokens of every chunk sample, encoded once (offline/critic_refit.py); 0 = off. Why: trained one small
    # batch per actor update on a moving VLM, the value head does not fit its own data at our scale (it ranks
    # held-out rollouts at chance; a linear probe on the same z_t at 0.8-0.95). bench/results/critic_refit.md
    critic_refit_updates: int = 0
    critic_refit_batch: int = 256
    gate_source: Literal["raw", "normalized"] = "raw"  # Appendix B.1 allows either
    ppo_ref_refresh: int = 100  # updates between snapshots of pi_theta_old (see module docstring)
    max_grad_norm: float = 1.0  # per optimiser; 0 disables
    warmup_updates: int = 0  # linear LR warm-up
    # ours (the paper gives no schedule): "cosine" anneals every learning rate from its value after the warm-up
    # to lr_min_ratio x that value at total_updates (half a cosine); "constant" keeps it. At the demo's high
    # constant rates one run's success moves 15-20 points between checkpoints (bench/results/finetune_drift.md)
    lr_decay: Literal["constant", "cosine"] = "constant"
    lr_min_ratio: float = 0.0
    # random-shift image augmentation (DrQ, Kostrikov et al. 2020): each training image (every camera of
    # o_t and o_{t+k}) is padded by this many pixels (edge replicate) and cropped back at a random offset;
    # 0 disables. Helps a from-scratch VLM generalise from tens of demonstrations.
    augment_shift: int = 0
    # --- not in Table 3: start from a pretrained run (the paper: every row fine-tunes one pretrained VLA)
    # A run directory (or checkpoint directory) whose latest checkpoint initialises this run's modules:
    # every module of the same name with identical parameter names and shapes is loaded (the VLM always;
    # the action expert when it is the same kind; a critic when the source has one of the same kind);
    # the others keep their fresh initialisation. The source run's normaliser is reused. Optimisers and
    # the step counter start fresh. Ignored when resuming (the run's own checkpoint wins).
    init_from: str | None = None
    # which episodes of the dataset to train on (offline/data.py EPISODE_FILTERS): "all"; "clean" = successful
    # scripted-expert demonstrations with every quality knob at 0 (episode info ``source``/``success``/
    # ``quality``), e.g. for a shared warm-up that the rows then fine-tune on all (mixed-quality) episodes;
    # "successful" = every episode that succeeded (filtered BC on the outcome: what a critic of the sparse
    # success reward could at best remove). Measured as oracle filters for CP Base on open_box
    # (bench/results/offline_filter_open_box.md)
    episodes: Literal["all", "clean", "successful"] = "all"
    # --- not in the paper (ours): recorded autonomous rollouts as extra critic data. Episode directories
    # written by ``bora eval --record DIR`` (the policy's own episodes, successes AND failures) read together
    # with ``--data``: the critic (Eq. 1, 3, 4) and the PPO term see every step of them; BC sees the
    # successful ones only (``ChunkDataset`` ``bc_mask``). Without failures in its data a critic cannot learn
    # what precedes one (bench/results/ppo_diagnosis.md: 55/56 successful demonstrations -> it learns the
    # phase of the motion); value learning from the policy's own rollouts is RECAP's recipe (pi*0.6,
    # Physical Intelligence 2025). Same cameras, image size and robot as ``--data``.
    rollout_data: list[str] = field(default_factory=list)
    # --- not in the paper (ours; Diffusion Policy's and Consistency Policy's practice): an exponential moving
    # average of the actor's weights (VLM + action expert), updated after every update with this decay
    # (``torch.optim.swa_utils.AveragedModel``); 0 disables. When on, the exported policy (``RUN/policy``) is
    # the average, checkpoints hold it (``vlm_ema`` / ``expert_ema``), and a run started ``init_from`` this
    # run starts from it. Under DDP every rank averages its own replica (test_ddp.py); not with ``fsdp``.
    # Off by default: measured at the evidence recipe (bench/results/finetune_drift.md, 3 tasks x 30 tuning
    # seeds) the average (0.995) LOST against the raw weights: warm-up 34/90 vs 51/90, CP Base 28/90 vs
    # 34/90, BORA-Offline 26/90 vs 29/90 (then with the VLM averaged too). With a critic (bora,
    # cp-decoupled-critic, aloe, habc) only the action expert is averaged: the critic learns on the raw VLM's
    # z_t, which an averaged VLM would not reproduce.
    policy_ema: float = 0.0
    # --- run mechanics
    seed: int = 0
    num_workers: int = 0
    shuffle: bool = True
    log_every: int = 10
    ckpt_every: int = 1000
    keep_last: int = 3
    device: str = "auto"  # auto: cuda if available else cpu
    fsdp: bool = False  # shard the learner with FSDP2 (fully_shard) instead of DDP
    find_unused_parameters: bool = True  # DDP: Stage-1 leaves the PPO head unused
    model: ModelConfig = field(default_factory=ModelConfig)
    data: ChunkDatasetConfig = field(default_factory=ChunkDatasetConfig)
    # extra hyper-parameters of a plugin objective (``AloeConfig`` / ``HabcConfig`` fields for aloe / habc)
    algo_options: dict[str, Any] = field(default_factory=dict)
    # --- recorded in RUN/config.yaml for the later stages (``bora eval --run``, ``bora train online``)
    task: str | None = None  # bora_sim task; None: the dataset's ``tasks`` entry when it names exactly one
    data_dir: str | None = None  # the training dataset (absolute; set by the trainer from ``--data``)

    def __post_init__(self) -> None:
        if self.k != self.data.k:
            if self.data.k == ChunkDatasetConfig.k:
                self.data.k = self.k
            else:
                raise ValueError(f"OfflineConfig: k={self.k} but data.k={self.data.k}; set one of them")
        if self.data.gamma != self.gamma:
            if self.data.gamma == ChunkDatasetConfig.gamma:
                self.data.gamma = self.gamma
            else:
                raise ValueError(
                    f"OfflineConfig: gamma={self.gamma} but data.gamma={self.data.gamma}; set one of them"
                )
        if self.critic_refit_updates < 0 or self.critic_refit_batch < 1:
            raise ValueError(
                "OfflineConfig.critic_refit_updates must be >= 0 and critic_refit_batch >= 1, got "
                f"{self.critic_refit_updates} and {self.critic_refit_batch}"
            )
        if self.critic_refit_updates and self.fsdp:
            raise ValueError("OfflineConfig.critic_refit_updates: the critic refit is not supported with fsdp: true")
        if not 0.0 <= self.critic_mc_weight <= 1.0:
            raise ValueError(f"OfflineConfig.critic_mc_weight must be in [0, 1], got {self.critic_mc_weight}")
        if self.critic_bootstrap not in ("online", "target"):
            raise ValueError(
                f"OfflineConfig.critic_bootstrap must be 'online' or 'target', got {self.critic_bootstrap!r}"
            )
        if self.gate_scope not in L.GATE_SCOPES:
            raise ValueError(f"OfflineConfig.gate_scope must be one of {list(L.GATE_SCOPES)}, got {self.gate_scope!r}")
        if self.episodes not in EPISODE_FILTERS:
            raise ValueError(f"OfflineConfig.episodes must be one of {list(EPISODE_FILTERS)}, got {self.episodes!r}")
        if isinstance(self.rollout_data, str):
            raise ValueError(
                "OfflineConfig.rollout_data must be a list of episode directories, got the string "
                f"{self.rollout_data!r}"
            )
        if not 0.0 <= self.policy_ema < 1.0:
            raise ValueError(f"OfflineConfig.policy_ema must be in [0, 1) (0 = off), got {self.policy_ema}")
        if self.policy_ema > 0 and self.fsdp:
            raise ValueError("OfflineConfig.policy_ema: the weight average is not supported with fsdp: true")
        if self.lr_decay not in ("constant", "cosine"):
            raise ValueError(f"OfflineConfig.lr_decay must be 'constant' or 'cosine', got {self.lr_decay!r}")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError(f"OfflineConfig.lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if self.augment_shift < 0:
            raise ValueError(f"OfflineConfig.augment_shift must be >= 0, got {self.augment_shift}")
        for name in ("total_updates", "batch_size", "k", "ppo_ref_refresh"):
            if getattr(self, name) < 1:
                raise ValueError(f"OfflineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.expectile_tau < 1.0:
            raise ValueError(f"OfflineConfig.expectile_tau must be in (0, 1), got {self.expectile_tau}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("OfflineConfig.gamma and gae_lambda must be in [0, 1]")

    @property
    def ppo_start(self) -> int:
        return L.ppo_start_step(self.total_updates, self.ppo_start_step, self.ppo_start_fraction)


@dataclass
class OnlineConfig:
    """Phase 2 hyper-parameters (Table 3 unless marked "ours").

    n_start: online chunk transitions needed before updates start (N_start; ours).
    expectile: tau of Eq. (4), as offline (ours: 0.7).
    grad_clip: global-norm clip of each optimiser step (ours; 0 disables).
    lambda_q: weight of Eq. (8)'s ``-q(z, a_hat)`` term (ours; 0 = the brief's loss without it).
    critic_mc_weight: the online critic's target ``(1 - w) * Eq. 1 + w * G`` with ``G`` each step's Monte-Carlo
    return-to-go in its episode (ours, as ``OfflineConfig.critic_mc_weight``; 0 = Eq. 1, the paper). Offline and
    online rows alike (:meth:`~bora_trainer.data.replay.ChunkReplayBuffer.returns`). Read by ``bora-residual``
    only; the other objectives ignore it, as they ignore the hinge's settings, so one config serves every online
    row (``bora train online`` prints a note when it is set for another algo).
    An offline critic trained on MC targets and refitted ranks outcomes (bench/results/critic_refit.md); with 0
    the online phase retrains it on Eq. 1's target alone.
    critic_conservative: weight of a conservative critic term (ours, after CQL; 0 = off): every Q head's
    masked mean at the current composite chunk minus at the batch's chunk, so the critic does not
    over-estimate the residual's own proposals (bench/results/online_critic.md found it did).
    intervention_bc_weight: weight of an online row with human-controlled steps in ``L_BC``, relative to
    an offline demonstration row (1 = the paper: BC on demonstrations and interventions alike; 0 = BC on
    the demonstrations only, the interventions then teach through the critic alone). Ours; measured in
    bench/results/online_bc.md.
    demo_bc_weight: weight of an offline (demonstration) row in ``L_BC`` (ours; 1 = the paper). 0 with
    ``intervention_bc_weight`` > 0 imitates the operator's corrections only, on the states the policy led to
    (HG-DAgger's labels, Kelly et al. 2019): the demonstrations' rows lie on the demonstrator's states, where
    the residual's BC fit does not carry over to the policy's (bench/results/online_bc_center.md). Measured
    20 points worse than the default on five tasks (bench/results/online_hgd.md).
    bc_filter: which imitated steps ``L_BC`` keeps (ours). ``"none"``: all of them (the paper's plain BC);
    ``"q"``: the Q-filter of Nair et al. 2018 ("Overcoming Exploration in RL with Demonstrations", Sec. 4),
    per step of the chunk critic: a step is imitated only where the online critic values the data's chunk
    at least as high as the current composite, ``min_j Q_j(z, a)_t >= Q(z, A_hat)_t``, so BC stops pulling
    where the critic already prefers the residual's own chunk. Measured in bench/results/online_qfilter.md.
    bc_center: imitate only the state-dependent part of the data's corrections to the base (ours; off = the
    paper's plain BC). The BC target becomes ``a - c`` with ``c`` the batch's weighted mean of ``a - A_base``
    per action dimension over the imitated steps (no gradient): the residual is no longer pulled to the
    average correction the demonstrations ask of the base on the demonstrator's states, which the residual
    applied on the policy's states as a constant offset (bench/results/online_pick_and_place.md points 6-7).
    Measured 12 points worse than the default on five tasks (bench/results/online_bc_center.md).
    improve_lambda: weight of Eq. (6)'s hinge (Table 3: 0.35). On the simulated benchmark 0 measured better:
    +3.7 [+1.2, +6.2] points over two evidence builds on the tuning seeds (bench/results/nohinge_pooled.json)
    and +4.3 [+0.9, +7.7] on fresh seeds (bench/results/online_nohinge_fresh.md), because there the critic
    does not separate outcomes; the default stays the paper's.
    actor_input_noise: Gaussian noise on the residual's inputs in the actor step (ours; 0 = off): each of the
    normalised proprio state and z gets ``sigma * std * N(0, 1)`` added, ``std`` its per-dimension standard
    deviation over the batch (no gradient), so the residual is fit on a neighbourhood of each state rather
    than the state alone (input-noise regularisation; the base chunk, the critic and the targets see the
    clean inputs). Aimed at the residual's BC fit, made on the demonstrator's states, carrying over to the
    policy's (bench/results/online_pick_and_place.md point 7). Measured: 0.5 changed nothing (-0.1 [-3.3, +3.2]
    points against the default on five tasks, bench/results/online_input_noise.md).
    precision: ``"auto"`` (bf16 autocast on CUDA with bf16 support and on a CPU with native bf16, i.e.
    AVX512-BF16 or AMX: ``bora_policy.runtime.cpu_probe.decide_precision``; else fp32), ``"bf16"`` (bf16
    autocast on any device: about 1.8x faster updates on a CPU with AVX512-BF16, at bf16 matmul precision;
    emulated and ~40x slower per matmul on an AVX2-only CPU) or ``"fp32"``.
    hinge_precision: ``"auto"`` (the hinge's two Q evaluations at ``precision``, as before) or ``"fp32"`` (ours:
    those two in fp32 whatever ``precision`` is). In bf16 a Q near 0.35 is resolved to 0.002 and the measured
    Q(composite) - Q(base) is 0.001-0.006, about one bf16 step: the hinge then sees rounding (a random critic:
    the hinge's activity disagrees with fp32 on 14-34 % of steps for composite deviations of 0.05-0.01).
    cuda_graph: on a CUDA device, capture the whole update (critic step, targets, actor step) once as a CUDA
    graph and replay it (ours; ``torch.cuda.graphs``): the update is hundreds of small kernels, so launching
    them from Python, not the GPU, sets its speed (bench/results/updates_cuda.md). Objectives that declare
    ``graph_safe`` only (``bora-residual``); ignored on a CPU. Every batch must then have the same keys and
    shapes (MixedSampler's do).
    """

    algo: str = "bora-residual"
    batch_size: int = 128
    gamma: float = 0.99
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    weight_decay: float = 1e-4
    tau: float = 0.005
    max_updates: int = 15000
    n_start: int = 64
    expectile: float = 0.7
    bc_lambda_start: float = 2.0
    bc_lambda_end: float = 1.0
    bc_decay_steps: int = 10000
    critic_reg: Literal["anchor_offline", "none"] = "anchor_offline"
    critic_reg_lambda: float = 0.25
    improve_lambda: float = 0.35
    improve_delta: float = 0.0
    anchor_lambda: float = 0.03
    residual_l2: float = 2e-4
    lambda_q: float = 0.0
    critic_conservative: float = 0.0
    critic_mc_weight: float = 0.0
    intervention_bc_weight: float = 1.0
    demo_bc_weight: float = 1.0
    bc_filter: Literal["none", "q"] = "none"
    bc_center: bool = False
    actor_input_noise: float = 0.0
    grad_clip: float = 10.0
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    hinge_precision: Literal["auto", "fp32"] = "auto"
    cuda_graph: bool = True
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    objective_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(
                f"OnlineConfig.batch_size must be even (1:1 offline/online), got {self.batch_size}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"OnlineConfig.gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"OnlineConfig.tau must be in (0, 1], got {self.tau}")
        if not 0.0 <= self.intervention_bc_weight <= 1e3:
            raise ValueError(
                f"OnlineConfig.intervention_bc_weight must be in [0, 1000], got {self.intervention_bc_weight}"
            )
        if not 0.0 <= self.demo_bc_weight <= 1e3:
            raise ValueError(f"OnlineConfig.demo_bc_weight must be in [0, 1000], got {self.demo_bc_weight}")
        if self.bc_filter not in ("none", "q"):
            raise ValueError(f"OnlineConfig.bc_filter must be 'none' or 'q', got {self.bc_filter!r}")
        if not 0.0 <= self.actor_input_noise <= 10.0:
            raise ValueError(f"OnlineConfig.actor_input_noise must be in [0, 10], got {self.actor_input_noise}")
        if not isinstance(self.bc_center, bool):
            raise ValueError(f"OnlineConfig.bc_center must be true or false, got {self.bc_center!r}")
        if not 0.0 <= self.critic_conservative <= 1e3:
            raise ValueError(
                f"OnlineConfig.critic_conservative must be in [0, 1000], got {self.critic_conservative}"
            )
        if not 0.0 <= self.critic_mc_weight <= 1.0:
            raise ValueError(f"OnlineConfig.critic_mc_weight must be in [0, 1], got {self.critic_mc_weight}")
        if self.hinge_precision not in ("auto", "fp32"):
            raise ValueError(f"OnlineConfig.hinge_precision must be 'auto' or 'fp32', got {self.hinge_precision!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"OnlineConfig.precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if not isinstance(self.cuda_graph, bool):
            raise ValueError(f"OnlineConfig.cuda_graph must be true or false, got {self.cuda_graph!r}")
        if self.critic_reg not in ("anchor_offline", "none"):
            raise ValueError(
                f"OnlineConfig.critic_reg must be 'anchor_offline' or 'none', got {self.critic_reg!r}"
            )
