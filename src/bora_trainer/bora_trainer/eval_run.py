"""What ``bora eval`` reads from a run directory: its policy, critic and residuals (``bora_trainer.evaluate``).

Runs: an offline run (``RUN/config.yaml`` with ``algo``; ``RUN/policy/``, ``RUN/critic/``), an online run
(``RUN/config.yaml`` with ``online_run`` and ``offline_run``; the latest multi-round residual checkpoint,
``RUN/latest``, is current and its critic gives the values), or a bare ``VLAPolicy`` directory (give ``--method``).
Method names follow the paper's tables: the labels of ``bora_trainer.algorithms.registry`` (an online run of a
method that also has an offline row is its own row, e.g. "ALOE (online)").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bora_trainer.algorithms import registry


class EvalError(Exception):
    """A bad argument or run directory; the message says what and what was expected."""


@dataclass
class RunInfo:
    """What ``bora eval`` needs from a run directory."""

    path: Path
    policy_dir: Path
    critic_dir: Path | None = None
    residual: str = ""  # current residual (an online run's latest multi-round checkpoint)
    online_critic: Path | None = None  # the online checkpoint's critic.safetensors
    algo: str | None = None
    phase: str = "offline"  # "offline" | "online" | "policy" (a bare VLAPolicy directory)
    task: str | None = None
    object_set: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str | None:
        if self.algo is None:
            return None
        # the method's row in the paper's tables (algorithms/registry.py); an online run of a method that
        # also has an offline row (ALOE, HABC) gets its own row, e.g. "ALOE (online)"
        return registry.label(self.algo, "online" if self.phase == "online" else "offline")


def describe_run(run: str | Path) -> RunInfo:
    """Read ``RUN/config.yaml`` and find the policy, critic and (online) residual of ``run``."""
    import yaml

    from bora_policy.models.export import find_critic_dir, is_policy_dir, resolve_policy_dir
    from bora_trainer.online.checkpoints import online_critic_of

    p = Path(run)
    if not p.exists():
        raise EvalError(f"--run {p}: not found")
    if not p.is_dir():
        raise EvalError(f"--run {p}: not a directory (expected a run directory or a VLAPolicy directory)")
    cfg: dict[str, Any] = {}
    if (p / "config.yaml").is_file():
        try:
            cfg = yaml.safe_load((p / "config.yaml").read_text()) or {}
        except yaml.YAMLError as e:
            raise EvalError(f"--run {p}: config.yaml is not valid YAML ({e})") from e
        if not isinstance(cfg, dict):
            raise EvalError(f"--run {p}: config.yaml must be a mapping")
    try:
        policy_dir = resolve_policy_dir(p)
    except FileNotFoundError as e:
        raise EvalError(f"--run: {e}") from e
    info = RunInfo(p, policy_dir, critic_dir=find_critic_dir(p), config=cfg)
    if "online_run" in cfg:
        online = cfg.get("online_run") or {}
        info.phase = "online"
        info.algo = str(((online.get("online") or {}).get("algo")) or "bora-residual")
        info.task = online.get("task")
        info.object_set = online.get("object_set")
        if (p / "latest").is_file():
            info.residual, info.online_critic = str(p), online_critic_of(p)
    elif is_policy_dir(p) and not cfg:
        info.phase = "policy"
    else:
        info.algo = cfg.get("algo")
        info.task = cfg.get("task")
    return info


def residual_stack(info: RunInfo, explicit: list[str] | None) -> list[str]:
    """The residual checkpoints ``bora eval`` loads, in round order: ``--residual`` as given, else an online run's
    latest checkpoint, else none (an offline run or a bare policy).

    An online run with neither is an error: its row (e.g. BORA-Full) would be the offline base policy without any
    residual under the online method's name. Until 2026-12-07 it was evaluated so, silently (found in review)."""
    if explicit:
        return list(explicit)
    if info.residual:
        return [info.residual]
    if info.phase == "online":
        raise EvalError(f"--run {info.path}: an online run without {info.path / 'latest'} (no residual checkpoint; "
                        "expected one written by `bora train online`, or name the residual with --residual PATH)")
    return []


def load_online_critic(runner, offline_critic_dir: Path | None, weights: Path) -> None:
    """The online round's critic: the offline critic's architecture with the online checkpoint's weights."""
    from safetensors.torch import load_file

    from bora_policy.models.critic import load_critic
    from bora_policy.runtime.checkpoint_loader import sha256_file

    if offline_critic_dir is None:
        raise EvalError(
            f"{weights}: online critic weights, but the offline run has no critic/ to build it from"
        )
    critic = load_critic(offline_critic_dir)
    try:
        critic.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as e:
        raise EvalError(f"{weights}: does not fit the offline critic {offline_critic_dir} ({e})") from e
    runner._check_critic(critic)
    runner.critic = critic.to(runner.device).eval().requires_grad_(False)
    runner.critic_version = sha256_file(weights)[:16]
