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
    """load_trainer_config (the trainer node reads it): the `trainer` section, the top-level `rewards` section,
    then the non-empty overrides; and trainer_wiring (`bora up --with trainer`, the launch files' trainer:=true)
    adds that state_dir to the policy's roots and hands the same absolute state_dir to the trainer."""
    from bora_trainer.online.config import load_trainer_config, trainer_wiring

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
    wired, roots = trainer_wiring(params, trainer={"state_dir": str(tmp_path / "cli")})
    cli = str((tmp_path / "cli").resolve())
    assert roots == [str(tmp_path / "ckpt"), cli]
    assert wired == {"config_file": str(cfg_file.resolve()), "state_dir": cli}
    wired, roots = trainer_wiring(params)  # the params file's trainer.config_file, its relative state_dir: cwd
    assert roots[-1] == wired["state_dir"] == str(Path("runs/x").resolve())
    # no config anywhere but the default one
    other = tmp_path / "other.yaml"
    other.write_text("trainer:\n  state_dir: runs/y\n")
    (tmp_path / "bare.yaml").write_text("policy:\n  ros__parameters:\n    vla_path: ''\n")
    wired, roots = trainer_wiring(tmp_path / "bare.yaml", default_config=other)
    assert wired == {"config_file": str(other.resolve()), "state_dir": str(Path("runs/y").resolve())}
    assert roots == [wired["state_dir"]]  # no vla / residual / critic: the trainer's directory only
    with pytest.raises(ConfigError, match="missing.yaml not found"):
        trainer_wiring(tmp_path / "bare.yaml", trainer={"config_file": str(tmp_path / "missing.yaml")})
