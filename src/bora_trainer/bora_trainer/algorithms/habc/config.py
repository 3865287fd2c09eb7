"""HABC's hyper-parameters (``OfflineConfig.algo_options`` / ``OnlineConfig.objective_options``;
defaults documented in ``config/habc.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class HabcConfig:
    """HABC hyper-parameters. [P] = stated in the paper, [I] = inferred (provisional, ablate).

    chunk_len: window length in control steps; BORA's chunk size k = 32 (paper: 50).
    min_human_share: a window is an intervention window when at least this share of its steps is
        human-controlled [P: 10 of 50 = 0.2], scaled to ``chunk_len`` (ceil(0.2 * 32) = 7 of 32).
    n_warmup: actor updates with ``g_t = 1`` before the gate is used [P: 500].
    huber_delta: Huber threshold of the efficiency loss [P: 1.0].
    intervention_reweighting: IR, use ``g_t`` on intervention windows instead of 1 [P: off in Step 1].
    ir_start_step: IR only from this update on [P: "after an initial HABC phase"; length unstated].
    unlabelled_weight: actor weight of unlabelled pre-intervention policy windows [I: 0, Sec. 8.5].
    normalize_over: D_valid of Eq. 7: "positive" = non-demo valid samples with w~ > 0 [I: Sec. 8.4,
        failed-rollout zeros do not inflate the weights]; "all" = every non-demo valid sample.
    norm_eps: the eps of ``max(c, eps)`` in Eq. 7.
    step_stride: anchor spacing of the efficiency TD (control steps per ``-1`` chain link) [I: 1, the
        next control step, Sec. 8.3]; online rollouts anchor at the recorded chunk starts instead.
    t_max: clamp efficiency targets to ``[-t_max, 0]`` (V_e lies in [-T_max, 0]); 0 disables [I].
    target_tau: Polyak rate of a target copy for ``V_e(s')`` [I: 0 = none, stop-gradient only as in the
        paper; Sec. 8.7 suggests one if training is unstable].
    demo_sources: episode ``source`` values that count as SFT demonstrations (D_SFT).
    demos_in_critic: also train both heads on successful demos [I: off in the paper; useful offline
        when the data are demonstrations only].
    freeze_action_expert: offline only: "all runs keep action-expert training disabled" (App. F) read
        literally: the actor loss updates the VLM but not the action expert. The spec proposes the literal
        reading as default (Sec. 8.2), which presumes a pretrained expert; BORA's offline phase trains the
        consistency expert from scratch in the same run, where freezing it would stop all action learning,
        so our default is False (set True when starting from a pretrained expert). Online: no effect.
    hidden, num_layers: MLP backbone of the heads [I: architecture not given].
    use_proprio: append the normalised proprio to ``z_t`` as head input.
    detach_features: heads do not back-propagate into the VLM [I: Sec. 8.1].
    lr, weight_decay: head optimiser (AdamW) [I: not given; BORA Table 3 online values].
    batch_size: [P: 256].
    """

    chunk_len: int = 32
    min_human_share: float = 0.2
    n_warmup: int = 500
    huber_delta: float = 1.0
    intervention_reweighting: bool = False
    ir_start_step: int = 0
    unlabelled_weight: float = 0.0
    normalize_over: Literal["positive", "all"] = "positive"
    norm_eps: float = 1e-6
    step_stride: int = 1
    t_max: float = 0.0
    target_tau: float = 0.0
    demo_sources: list[str] = field(default_factory=lambda: ["expert"])
    demos_in_critic: bool = False
    freeze_action_expert: bool = False
    hidden: int = 256
    num_layers: int = 2
    use_proprio: bool = True
    detach_features: bool = True
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.chunk_len < 1:
            raise ValueError(f"HabcConfig.chunk_len must be >= 1, got {self.chunk_len}")
        if not 0.0 < self.min_human_share <= 1.0:
            raise ValueError(f"HabcConfig.min_human_share must be in (0, 1], got {self.min_human_share}")
        if self.n_warmup < 0 or self.ir_start_step < 0:
            raise ValueError("HabcConfig.n_warmup and ir_start_step must be >= 0")
        if self.huber_delta <= 0:
            raise ValueError(f"HabcConfig.huber_delta must be > 0, got {self.huber_delta}")
        if self.normalize_over not in ("positive", "all"):
            raise ValueError(
                f"HabcConfig.normalize_over must be 'positive' or 'all', got {self.normalize_over!r}"
            )
        if self.step_stride < 1:
            raise ValueError(f"HabcConfig.step_stride must be >= 1, got {self.step_stride}")
        if not 0.0 <= self.target_tau <= 1.0:
            raise ValueError(f"HabcConfig.target_tau must be in [0, 1], got {self.target_tau}")
        if self.unlabelled_weight < 0:
            raise ValueError(f"HabcConfig.unlabelled_weight must be >= 0, got {self.unlabelled_weight}")
