"""Launch files, parameter files and the RViz config, checked against what the workspace installs.

Every node of the graph table (bora_policy/graph.py, read by both launch files and `bora up`) must be
a console script of its package, installed by `colcon build`, with a `main`; every parameter in
config/sim.yaml and config/deploy.yaml must be one its node declares; every topic named in them and
in config/bora.rviz must be part of the documented graph. Where launch_ros can be imported (a real
ROS 2 install), the launch descriptions are also generated.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from bora_policy.graph import NODES, nodes_for

ROOT = Path(__file__).resolve().parents[3]
NODE_SOURCES = {n.name: ROOT / "src" / n.package / Path(*n.module.split(".")).with_suffix(".py") for n in NODES}
# node sections that are not our nodes: the hand driver's (deploy) is passed through by the launch file
FOREIGN_SECTIONS = {"hand_driver"}


def _declared_parameters(node_name: str) -> set[str]:
    src = NODE_SOURCES[node_name].read_text()
    names = set(re.findall(r'\bp\(\s*"(\w+)"', src)) | set(re.findall(r'declare_parameter\(\s*"(\w+)"', src))
    # names built from a table, e.g. p(f"{k}_topic", d) over (("arm_state", "/franka/joint_states"), ...)
    for table in re.findall(r'p\(f"\{k\}(\w*)"', src):
        names |= {k + table for k in re.findall(r'\(\s*"(\w+)",\s*"', src)}
    if node_name == "teleop":
        from bora_teleop.params import PARAMS

        names |= set(PARAMS)
    if node_name == "trainer":
        names |= set(re.findall(r'\(\s*"(\w+)",\s*args\.\w+\s*\)', src))
    return names


def _documented_topics() -> set[str]:
    text = (ROOT / "docs" / "interfaces.md").read_text()
    topics = set(re.findall(r"`(/[\w/<>]+)`", text))
    rec = yaml.safe_load((ROOT / "config" / "record_topics.yaml").read_text())
    for group in rec["groups"].values():
        for entry in group:
            for cam in rec["cameras"]:
                topics.add(entry["topic"].replace("{cam}", cam))
    # /cameras/<cam>/... in the docs: expand for the configured cameras
    for t in list(topics):
        if "<cam>" in t:
            for cam in rec["cameras"]:
                topics.add(t.replace("<cam>", cam))
    return topics


@pytest.mark.parametrize("spec", NODES, ids=lambda s: s.name)
def test_every_node_is_an_installed_console_script_with_main(spec):
    setup_py = (ROOT / "src" / spec.package / "setup.py").read_text()
    assert f'"{spec.executable} = {spec.module}:main"' in setup_py, (
        f"{spec.package}/setup.py does not declare {spec.executable} = {spec.module}:main"
    )
    assert importlib.util.find_spec(spec.module) is not None, f"module {spec.module} not found"
    assert re.search(r"^def main\(", NODE_SOURCES[spec.name].read_text(), re.M), f"{spec.module} has no main()"
    exe = ROOT / "install" / spec.package / "lib" / spec.package / spec.executable
    assert exe.exists(), f"{exe} is not installed: run `make build`"


@pytest.mark.parametrize("graph", ["sim", "deploy"])
def test_parameter_files_match_the_nodes(graph):
    params = yaml.safe_load((ROOT / "config" / f"{graph}.yaml").read_text())
    nodes = {n.name for n in nodes_for(graph)}
    missing = nodes - set(params) - {"trainer"}
    assert not missing, f"config/{graph}.yaml has no section for {sorted(missing)}"
    documented = _documented_topics()
    for section, body in params.items():
        if section in FOREIGN_SECTIONS:
            continue
        assert section in NODE_SOURCES, f"config/{graph}.yaml: section {section!r} is not a node of the graph"
        values = body["ros__parameters"]
        unknown = set(values) - _declared_parameters(section)
        assert not unknown, f"config/{graph}.yaml: {section} does not declare {sorted(unknown)}"
        for key, value in values.items():
            if isinstance(value, str) and value.startswith("/") and key.endswith(("topic", "_states", "prefix")):
                if key.endswith("prefix"):
                    assert any(t.startswith(value + "/") for t in documented), f"{section}.{key}={value}"
                else:
                    assert value in documented, f"config/{graph}.yaml: {section}.{key}={value} is undocumented"


def test_hardware_facing_defaults_are_safe():
    deploy = yaml.safe_load((ROOT / "config" / "deploy.yaml").read_text())
    policy = deploy["policy"]["ros__parameters"]
    teleop = deploy["teleop"]["ros__parameters"]
    assert policy["residual_scale"] == 0.0, "first run on hardware: residual scale 0 (README safety checklist)"
    assert teleop["watchdog_timeout_s"] <= 0.2 and max(teleop["arm_max_velocity"]) <= 0.5
    assert teleop["hand_max_velocity"] <= 1.0 and teleop["workspace_check"] is True
    assert teleop["udp_host"] == "127.0.0.1"


def test_rviz_config_shows_documented_topics():
    text = (ROOT / "config" / "bora.rviz").read_text()
    topics = set(re.findall(r"Value: (/[\w/]+)", text))
    assert topics, "config/bora.rviz names no topics"
    unknown = topics - _documented_topics()
    assert not unknown, f"config/bora.rviz shows topics nobody publishes: {sorted(unknown)}"
    for needed in ("/bora/value_markers", "/cameras/front/color/image_raw"):
        assert needed in topics, f"config/bora.rviz lacks {needed}"


@pytest.mark.parametrize("name", ["sim.launch.py", "deploy.launch.py"])
def test_launch_files_use_the_graph_table_and_installed_files(name):
    path = ROOT / "launch" / name
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "bora_policy.graph"
                for a in n.names}
    assert "NODES" in imported, f"{name} must build its nodes from bora_policy.graph.NODES"
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for f in strings & {"sim.yaml", "deploy.yaml", "bora.rviz"}:
        assert list((ROOT / "config").glob(f)), f"{name} references config/{f}, which does not exist"
    setup_py = (ROOT / "src" / "bora_policy" / "setup.py").read_text()
    assert "glob('launch/*.launch.py')" in setup_py and "glob('config/*.rviz')" in setup_py
    if importlib.util.find_spec("launch_ros") is not None:  # real ROS 2 install: generate it
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.generate_launch_description().entities
