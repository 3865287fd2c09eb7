"""What the launch files give our nodes as parameters (bora_policy/launch_nodes.py), checked in pure Python.

A launch argument that is also a parameter of the params file (config/deploy.yaml, config/sim.yaml) defaults to
'' and then keeps the file's value: found in review, the policy's vla_path / residual_path / critic_path launch
arguments always overrode config/deploy.yaml's policy section, with '' when not given. trainer:=true gives the
trainer its config and puts its state_dir into the policy's checkpoint_roots (found in review: the trainer had no
config_file and its checkpoints were outside the roots, so the policy refused every one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from bora_policy.launch_nodes import PATH_ARGS, node_parameters, policy_path_overrides

ROOT = Path(__file__).resolve().parents[3]


def _declared_defaults(name: str) -> dict[str, object]:
    """``DeclareLaunchArgument(name, default_value=...)`` of a launch file: name -> the default's constant (or
    the AST node when it is not a constant, the class ``object`` when there is no default)."""
    tree = ast.parse((ROOT / "launch" / name).read_text())
    out: dict[str, object] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument" and n.args:
            if not isinstance(n.args[0], ast.Constant):
                continue
            default = next((k.value for k in n.keywords if k.arg == "default_value"), None)
            out[n.args[0].value] = object if default is None else getattr(default, "value", default)
    return out


@pytest.mark.parametrize("name", ["sim.launch.py", "deploy.launch.py"])
def test_policy_path_arguments_default_to_empty(name):
    defaults = _declared_defaults(name)
    for arg in PATH_ARGS:
        assert defaults.get(arg) == "", f"{name}: launch argument {arg} must default to '' (the params file's value)"


def test_only_given_paths_override_the_params_file(tmp_path):
    params = tmp_path / "deploy.yaml"
    params.write_text(
        "policy:\n  ros__parameters:\n    vla_path: /data/run/vla\n    residual_path: /data/run/r.safetensors\n"
        "    critic_path: none\n"
    )
    policy = yaml.safe_load(params.read_text())["policy"]["ros__parameters"]
    # launch_ros applies the parameter sources in order: the params file, then our overrides
    assert policy_path_overrides({k: "" for k in PATH_ARGS}) == {}
    assert {**policy, **policy_path_overrides({k: "" for k in PATH_ARGS})} == policy
    given = policy_path_overrides({"vla_path": "/other/vla", "residual_path": "  ", "critic_path": ""})
    assert given == {"vla_path": "/other/vla"}
    assert {**policy, **given} == {
        "vla_path": "/other/vla",
        "residual_path": "/data/run/r.safetensors",
        "critic_path": "none",
    }
    assert policy_path_overrides({"critic_path": "none"}) == {"critic_path": "none"}  # 'none' is a value


DEPLOY = str(ROOT / "config" / "deploy.yaml")
NO_ARGS = {**{k: "" for k in PATH_ARGS}, "trainer_config": ""}


def test_node_parameters_give_the_policy_only_its_given_paths():
    out = node_parameters("deploy", DEPLOY, "/tmp/g.yaml", NO_ARGS, trainer=False)
    assert set(out) == {"sync", "policy", "teleop", "trainer"}  # the deploy profile: no simulated robot
    for name in out:  # the trainer, off, gets nothing else (bora_trainer is not even imported)
        assert out[name] == [DEPLOY, {"graph_file": "/tmp/g.yaml"}], name
    out = node_parameters("deploy", DEPLOY, "/tmp/g.yaml", {**NO_ARGS, "vla_path": "/r/vla"}, trainer=False)
    assert out["policy"] == [DEPLOY, {"graph_file": "/tmp/g.yaml"}, {"vla_path": "/r/vla"}]
    assert "sim_bridge" in node_parameters("sim", str(ROOT / "config" / "sim.yaml"), "g", NO_ARGS, trainer=False)


def test_trainer_checkpoints_lie_in_the_policys_checkpoint_roots(tmp_path, monkeypatch):
    """trainer:=true: the trainer gets config/trainer.yaml and an absolute state_dir, and a checkpoint it writes
    there (bora_trainer.checkpoint's layout: state_dir/run/checkpoints/step_N/) passes the policy's gate
    (check_checkpoint_path, what the policy node runs on every /bora/checkpoint path); with the policy's default
    roots alone, the defect found in review, it is refused."""
    from bora_policy.runtime.checkpoint_loader import (
        CheckpointRejected,
        check_checkpoint_path,
        default_checkpoint_roots,
    )
    from bora_trainer.online.config import trainer_wiring  # what the launch files hand in (_trainer_wiring)

    monkeypatch.chdir(tmp_path)  # the launch's working directory, which every node inherits
    run = tmp_path / "offline_run"
    (run / "vla").mkdir(parents=True)
    (run / "normalizer.json").write_text("{}")  # vla inside a run directory: the run is the default root
    trainer_yaml = ROOT / "config" / "trainer.yaml"
    args = {**NO_ARGS, "vla_path": str(run / "vla")}
    with pytest.raises(ValueError, match="trainer:=true: the launch file gave no trainer_wiring"):
        node_parameters("deploy", DEPLOY, "g.yaml", args, trainer=True)
    out = node_parameters("deploy", DEPLOY, "g.yaml", args, True, str(trainer_yaml), trainer_wiring)
    wired = out["trainer"][-1]
    state = (tmp_path / yaml.safe_load(trainer_yaml.read_text())["trainer"]["state_dir"]).resolve()
    assert wired == {"config_file": str(trainer_yaml.resolve()), "state_dir": str(state)}
    roots = out["policy"][-1]["checkpoint_roots"]
    assert roots == [str(run.resolve()), str(state)]
    assert out["policy"][-2] == {"vla_path": str(run / "vla")}  # the roots come last: nothing overrides them

    step = state / "run" / "checkpoints" / "step_0000500"
    step.mkdir(parents=True)
    (step / "residual.safetensors").write_bytes(b"\0" * 16)
    (step / "meta.json").write_text("{}")
    assert check_checkpoint_path(step / "residual.safetensors", roots) == (step / "residual.safetensors").resolve()
    assert check_checkpoint_path(step, roots) == step.resolve()  # round 2 on: the directory is announced
    with pytest.raises(CheckpointRejected, match="outside the checkpoint roots"):
        check_checkpoint_path(step / "residual.safetensors", default_checkpoint_roots(str(run / "vla")))

    # another config: the launch argument trainer_config, and its state_dir is the one in the roots
    other = tmp_path / "mine.yaml"
    other.write_text(f"trainer:\n  state_dir: {tmp_path / 'elsewhere'}\n")
    out = node_parameters(
        "deploy", DEPLOY, "g.yaml", {**args, "trainer_config": str(other)}, True, str(trainer_yaml), trainer_wiring
    )
    elsewhere = str((tmp_path / "elsewhere").resolve())
    assert out["trainer"][-1] == {"config_file": str(other.resolve()), "state_dir": elsewhere}
    assert out["policy"][-1]["checkpoint_roots"][-1] == elsewhere


@pytest.mark.parametrize("name", ["sim.launch.py", "deploy.launch.py"])
def test_launch_files_declare_the_trainer_config(name):
    defaults = _declared_defaults(name)
    assert defaults.get("trainer") == "false" and defaults.get("trainer_config") == "", name
    text = (ROOT / "src" / "bora_policy" / "bora_policy" / "launch_nodes.py").read_text()
    fn = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "our_nodes")
    calls = {getattr(n.func, "id", "") for n in ast.walk(fn) if isinstance(n, ast.Call)}
    assert "node_parameters" in calls, "our_nodes must take every node's parameters from node_parameters"
    # the launch file hands our_nodes the trainer's wiring (bora_policy's modules may not import bora_trainer)
    launch = ast.parse((ROOT / "launch" / name).read_text())
    opaque = [c for c in ast.walk(launch) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "OpaqueFunction"]
    handed = {
        (key.value, getattr(value, "id", None))
        for c in opaque
        for k in c.keywords
        if k.arg == "kwargs" and isinstance(k.value, ast.Dict)
        for key, value in zip(k.value.keys, k.value.values)
        if isinstance(key, ast.Constant)
    }
    assert ("trainer_wiring", "_trainer_wiring") in handed, f"{name}: our_nodes gets no trainer_wiring"
    fn = next(n for n in launch.body if isinstance(n, ast.FunctionDef) and n.name == "_trainer_wiring")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "bora_trainer.online.config" for n in ast.walk(fn))
    for arg in PATH_ARGS:  # no path argument reaches a node except through policy_path_overrides
        assert f'LaunchConfiguration("{arg}")' not in text, arg
