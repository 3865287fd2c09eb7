"""Typed YAML configs: defaults, overrides, and errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bora_trainer.config_io import ConfigError, load_config, save_config


@dataclass
class Inner:
    lr: float = 1e-4
    names: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class Outer:
    steps: int = 10
    gate: bool = True
    inner: Inner = field(default_factory=Inner)
    path: str | None = None


def test_defaults_and_file_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 20\ninner:\n  lr: 3\n")
    cfg = load_config(Outer, f)
    assert cfg.steps == 20 and cfg.inner.lr == 3.0 and isinstance(cfg.inner.lr, float)
    assert cfg.gate is True and cfg.inner.names == ["a"] and cfg.path is None


def test_section_and_ros_parameters(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("node_a:\n  ros__parameters:\n    steps: 5\n")
    assert load_config(Outer, f, section="node_a").steps == 5


def test_unknown_field_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['stepz'\]"):
        load_config(Outer, {"stepz": 3})


def test_wrong_type_names_the_field():
    with pytest.raises(ConfigError, match=r"Outer.inner.lr: expected a number"):
        load_config(Outer, {"inner": {"lr": "fast"}})
    with pytest.raises(ConfigError, match=r"Outer.gate: expected true/false"):
        load_config(Outer, {"gate": 1})


def test_save_load_round_trip(tmp_path):
    cfg = Outer(steps=7, inner=Inner(lr=0.5, names=["x", "y"]), path="/p")
    save_config(cfg, tmp_path / "o.yaml")
    assert load_config(Outer, tmp_path / "o.yaml") == cfg


def test_trainer_config_file_section_shared_rewards_and_overrides(tmp_path):
    """load_trainer_config (the trainer node and `bora up` read it): the `trainer` section, the top-level
    `rewards` section, then the non-empty overrides; and `bora up` adds that state_dir to the policy's roots."""
    from bora_trainer.online.config import load_trainer_config
    from bora_trainer.up import policy_roots_with_trainer

    cfg_file = tmp_path / "trainer.yaml"
    cfg_file.write_text("trainer:\n  state_dir: runs/x\n  utd_ratio: 2.0\nrewards:\n  recovery_bonus: 0.5\n")
    cfg = load_trainer_config(str(cfg_file))
    assert (cfg.state_dir, cfg.utd_ratio, cfg.rewards.recovery_bonus) == ("runs/x", 2.0, 0.5)
    assert load_trainer_config(str(cfg_file), state_dir=str(tmp_path / "s")).state_dir == str(tmp_path / "s")
    assert load_trainer_config().state_dir == "runs/online"  # TrainerConfig's default
    params = tmp_path / "params.yaml"
    params.write_text(
        f"policy:\n  ros__parameters:\n    checkpoint_roots: ['{tmp_path / 'ckpt'}']\n"
        f"trainer:\n  ros__parameters:\n    config_file: '{cfg_file}'\n"
    )
    roots = policy_roots_with_trainer(params, "", "", "", ["state_dir:=" + str(tmp_path / "cli")])
    assert roots == [str(tmp_path / "ckpt"), str((tmp_path / "cli").resolve())]
    assert policy_roots_with_trainer(params, "", "", "", [])[-1] == str(Path("runs/x").resolve())  # relative: cwd
