"""What the launch files give our nodes as parameters (bora_policy/launch_nodes.py), checked in pure Python.

A launch argument that is also a parameter of the params file (config/deploy.yaml, config/sim.yaml) defaults to
'' and then keeps the file's value: found in review, the policy's vla_path / residual_path / critic_path launch
arguments always overrode config/deploy.yaml's policy section, with '' when not given.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from bora_policy.launch_nodes import PATH_ARGS, policy_path_overrides

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


def test_launch_nodes_passes_the_policy_paths_through_the_filter():
    """No LaunchConfiguration of a path argument reaches the policy's parameters except through the filter."""
    text = (ROOT / "src" / "bora_policy" / "bora_policy" / "launch_nodes.py").read_text()
    tree = ast.parse(text)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "our_nodes")
    calls = {getattr(n.func, "id", "") for n in ast.walk(fn) if isinstance(n, ast.Call)}
    assert "policy_path_overrides" in calls
    for arg in PATH_ARGS:
        assert f'LaunchConfiguration("{arg}")' not in text, arg
