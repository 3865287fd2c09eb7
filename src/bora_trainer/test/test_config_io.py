"""Typed YAML configs: defaults, overrides, and errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field

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
