"""Deployable run layout: ``RUN/policy/`` (``VLAPolicy.save``) and ``RUN/critic/`` (critic ``save``).

An offline run directory (docs/interfaces.md "Checkpoints") holds training checkpoints; at the end of
training the trainer calls :func:`export_policy` so the run also holds what the runtime loads::

    RUN/policy/   config.json, model.safetensors, normalizer.json   (VLAPolicy.save)
    RUN/critic/   critic_config.json, critic.safetensors            (ChunkCritic/DecoupledChunkCritic.save)

Every consumer (policy node, ``bora eval``, ``bora up``) accepts either the model directory itself or the
run directory: :func:`resolve_policy_dir` / :func:`resolve_critic_dir` find the model directory. An ONLINE
run (``bora train online``: ``config.yaml`` with ``offline_run``) resolves to its offline run's policy and
critic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from .critic import CRITIC_CONFIG, CRITIC_WEIGHTS
from .normalizer import Normalizer
from .vla import VLAConfig, VLAPolicy

POLICY_DIR = "policy"
CRITIC_DIR = "critic"
POLICY_FILES = ("config.json", "model.safetensors", "normalizer.json")
CRITIC_FILES = (CRITIC_CONFIG, CRITIC_WEIGHTS)


def is_policy_dir(path: str | Path) -> bool:
    p = Path(path)
    return all((p / f).is_file() for f in POLICY_FILES)


def is_critic_dir(path: str | Path) -> bool:
    p = Path(path)
    return all((p / f).is_file() for f in CRITIC_FILES)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put ``tmp`` at ``final`` (an existing ``final`` is moved aside first, then removed)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_policy(run_dir: str | Path, policy: VLAPolicy, critic: nn.Module | None = None) -> Path:
    """Write ``RUN/policy/`` (and ``RUN/critic/`` when a critic is given); returns ``RUN``.

    Each directory is written to a temporary sibling and renamed into place, so a reader never sees a
    half-written model. A stale ``RUN/critic/`` is removed when ``critic`` is None (the run's critic is
    then absent rather than out of date).
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run, prefix=".policy.", suffix=".tmp"))
    try:
        policy.save(tmp)
        _replace_dir(tmp, run / POLICY_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if critic is not None:
        tmp = Path(tempfile.mkdtemp(dir=run, prefix=".critic.", suffix=".tmp"))
        try:
            critic.save(tmp)
            _replace_dir(tmp, run / CRITIC_DIR)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    elif (run / CRITIC_DIR).exists():
        shutil.rmtree(run / CRITIC_DIR)
    return run


def policy_from_modules(
    cfg: VLAConfig,
    normalizer: Normalizer,
    vlm_state: dict[str, torch.Tensor],
    expert_state: dict[str, torch.Tensor],
    device: str | torch.device | None = None,
) -> VLAPolicy:
    """A ``VLAPolicy`` from separately trained VLM and expert state dicts (e.g. a trainer's modules).

    ``cfg`` must describe the same architecture (loading is strict; a mismatch raises and names the keys).
    """
    policy = VLAPolicy(cfg, normalizer, device=device, load_vlm_weights=False)
    for name, mod, sd in (("vlm", policy.vlm, vlm_state), ("expert", policy.expert, expert_state)):
        res = mod.load_state_dict(sd, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise ValueError(
                f"policy_from_modules: {name} state dict does not fit the VLAConfig "
                f"(missing {res.missing_keys[:5]}, unexpected {res.unexpected_keys[:5]})"
            )
    return policy


def _online_offline_run(run: Path) -> Path | None:
    """The offline run an online run was trained from (``config.yaml`` key ``offline_run``), if any."""
    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(cfg_file.read_text()) or {}
    except yaml.YAMLError:
        return None
    off = data.get("offline_run") if isinstance(data, dict) else None
    if not off:
        return None
    p = Path(off)
    if not p.is_absolute() and not p.exists() and (run / p).exists():
        p = run / p
    return p


def resolve_policy_dir(path: str | Path) -> Path:
    """The ``VLAPolicy`` directory of ``path``: itself, ``path/policy``, or an online run's offline policy."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"policy path {p} does not exist")
    if is_policy_dir(p):
        return p
    if is_policy_dir(p / POLICY_DIR):
        return p / POLICY_DIR
    off = _online_offline_run(p)
    if off is not None:
        return resolve_policy_dir(off)
    hint = ""
    if (p / "checkpoints").is_dir():
        hint = (
            f"; {p} is a run directory with checkpoints but no exported {POLICY_DIR}/ "
            "(the trainer writes it at the end of training with export_policy)"
        )
    raise FileNotFoundError(
        f"policy path {p}: neither a VLAPolicy directory ({', '.join(POLICY_FILES)}) nor a run directory "
        f"with {POLICY_DIR}/{hint}"
    )


def find_critic_dir(path: str | Path) -> Path | None:
    """Like :func:`resolve_critic_dir` but None when there is no critic."""
    p = Path(path)
    if is_critic_dir(p):
        return p
    if is_critic_dir(p / CRITIC_DIR):
        return p / CRITIC_DIR
    if is_policy_dir(p) and is_critic_dir(p.parent / CRITIC_DIR):  # RUN/policy given: its sibling
        return p.parent / CRITIC_DIR
    off = _online_offline_run(p)
    if off is not None and off.exists():
        return find_critic_dir(off)
    return None


def resolve_critic_dir(path: str | Path) -> Path:
    """The critic directory of ``path``: itself, ``path/critic``, or an online run's offline critic."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"critic path {p} does not exist")
    d = find_critic_dir(p)
    if d is None:
        raise FileNotFoundError(
            f"critic path {p}: neither a critic directory ({', '.join(CRITIC_FILES)}) nor a run directory "
            f"with {CRITIC_DIR}/"
        )
    return d


def choose_critic(vla_path: str | Path, critic_path: str = "") -> tuple[str, str]:
    """The critic the policy node loads and why (issue 18: values appear from the launch command alone).

    ``critic_path`` "none": no critic; another non-empty value: that path; "": the critic of ``vla_path``'s
    run (:func:`find_critic_dir`: ``RUN/critic`` beside ``RUN/policy``, or an online run's offline critic)
    when it has one, else none. Returns ``(path or "", reason)``.
    """
    critic_path = str(critic_path or "").strip()
    if critic_path.lower() == "none":
        return "", "critic_path: none"
    if critic_path:
        return critic_path, "critic_path"
    try:
        found = find_critic_dir(vla_path) if vla_path and Path(vla_path).exists() else None
    except (OSError, ValueError) as e:
        return "", f"looking for the run's critic failed: {e}"
    if found is None:
        return "", f"critic_path is empty and the run of {vla_path} has no {CRITIC_DIR}/"
    return str(found), f"the critic of the VLA's run, {found}"
