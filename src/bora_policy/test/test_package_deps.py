"""Every package.xml declares, as <exec_depend> (or <depend>), what the package's code and launch files use at run time.

Pure Python (ast + xml.etree), no ROS install needed. For each ament_python package: the top-level imports of its
modules (src/<pkg>/<pkg>/**.py) and, for bora_policy, of the launch files it installs (launch/*.launch.py), and
the packages those launch files start (Node(package=...), FindPackageShare / get_package_share_directory, the
driver table bora_policy.graph.DRIVERS, the graph table NODES, the controllers config/franka.yaml can select and
config/franka_controllers.yaml loads). An import is a ROS package, a Python module with an apt rosdep key
(PYTHON_KEYS), a module installed from requirements.lock only (PIP_ONLY: it has no apt key; checked to be pinned
there) or the standard library; an import that is none of them fails the test, so a new dependency gets
classified and declared. Found in review: bora_policy lacked launch, ament_index_python, message_filters and the
drivers its deploy launch starts, had rcl_interfaces as a test_depend only; bora_teleop lacked ament_index_python;
none declared its apt Python modules beyond numpy / yaml / torch / scipy. bora_trainer/test/test_architecture.py
checks the first-party <exec_depend>s against the package rules.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from bora_policy import graph

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "package.xml").is_file() and (p / "setup.py").is_file())

# ROS packages imported as Python modules besides rclpy, bora_* and *_msgs / *_srvs / *_interfaces
ROS_PYTHON = {"rclpy", "launch", "launch_ros", "ament_index_python", "message_filters", "tf2_ros", "xacro"}
# Python modules -> their rosdep keys (apt packages; rosdistro rosdep/python.yaml)
PYTHON_KEYS = {
    "numpy": "python3-numpy",
    "yaml": "python3-yaml",
    "torch": "python3-torch",
    "scipy": "python3-scipy",
    "cv2": "python3-opencv",
    "PIL": "python3-pil",
    "pandas": "python3-pandas",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
}
# Python modules without an apt rosdep key (rosdistro has at most a -pip key, which would install them unpinned):
# installed from requirements.lock (make setup) and docker/requirements-docker.txt. module -> PyPI distribution.
PIP_ONLY = {
    "mujoco": "mujoco",
    "gymnasium": "gymnasium",
    "gymnasium_robotics": "gymnasium-robotics",
    "mink": "mink",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "rosbags": "rosbags",
    "rerun": "rerun-sdk",
    "rerun_cli": "rerun-sdk",
    "pyarrow": "pyarrow",
    "lz4": "lz4",
    "zstandard": "zstandard",
}
# franka_ros2 (>= 1.0) is built from source (README, docker/): rosdep cannot resolve its packages on the
# distributions it is not released for (jazzy, kilted), so they stay undeclared; what its franka.launch.py starts
# and imports (franka_bringup/launch/franka.launch.py at commit 0e31d3c: robot_state_publisher, ros2_control_node
# and spawner of controller_manager, joint_state_publisher, `import xacro`) is declared by bora_policy instead.
FRANKA_ROS2 = {"franka_bringup", "franka_robot_state_broadcaster"}
FRANKA_LAUNCH_USES = {"robot_state_publisher", "controller_manager", "joint_state_publisher", "xacro"}
# (package, dependency) used but not declared, and why
UNDECLARED = {
    **{("bora_policy", dep): "franka_ros2, built from source (FRANKA_ROS2)" for dep in FRANKA_ROS2},
    **{
        ("bora_policy", dep): f"a cycle: {dep} exec_depends on bora_policy (its node is started by the launch files)"
        for dep in ("bora_sim", "bora_teleop", "bora_trainer")
    },
}


def declared(pkg: str) -> set[str]:
    root = ET.parse(SRC / pkg / "package.xml").getroot()
    return {e.text.strip() for tag in ("exec_depend", "depend") for e in root.iter(tag) if e.text}


def _sources(pkg: str) -> list[Path]:
    files = sorted((SRC / pkg / pkg).rglob("*.py"))
    if (SRC / pkg / "launch").is_dir():  # bora_policy installs the repository's launch/ (a symlink)
        files += sorted((SRC / pkg / "launch").glob("*.launch.py"))
    return files


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            out.add(n.module.split(".")[0])
    return out


def _started_by_launch(path: Path) -> set[str]:
    """Package names given as constants to Node(package=...), FindPackageShare(...), get_package_share_directory."""
    out: set[str] = set()
    for n in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(n, ast.Call):
            continue
        name = getattr(n.func, "id", getattr(n.func, "attr", ""))
        if name == "Node":
            out |= {k.value.value for k in n.keywords if k.arg == "package" and isinstance(k.value, ast.Constant)}
        elif name in ("FindPackageShare", "get_package_share_directory") and n.args:
            if isinstance(n.args[0], ast.Constant):
                out.add(n.args[0].value)
    return out


def classify(module: str) -> str | None:
    """The package.xml name an imported top-level module needs; None for the standard library and PIP_ONLY.
    KeyError for a module nobody classified."""
    if module in sys.stdlib_module_names or module == "__future__" or module in PIP_ONLY:
        return None
    if module in PYTHON_KEYS:
        return PYTHON_KEYS[module]
    if module in ROS_PYTHON or module.startswith("bora_") or module.endswith(("_msgs", "_srvs", "_interfaces")):
        return module
    raise KeyError(module)


def uses(pkg: str) -> tuple[dict[str, str], list[str]]:
    """What ``pkg`` uses at run time (dependency -> one place that uses it) and the unclassified imports."""
    out: dict[str, str] = {}
    unknown: list[str] = []
    for path in _sources(pkg):
        rel = path.relative_to(ROOT).as_posix()
        for mod in sorted(_imports(path)):
            try:
                dep = classify(mod)
            except KeyError:
                unknown.append(f"{rel}: import {mod}")
                continue
            if dep is not None:
                out.setdefault(dep, rel)
        if path.name.endswith(".launch.py"):
            for dep in sorted(_started_by_launch(path)):
                out.setdefault(dep, f"{rel} (starts / reads its share)")
    if pkg == "bora_policy":  # what the launch files start through the graph tables and the robot's config
        for dep, _ in graph.DRIVERS.values():
            out.setdefault(dep, "bora_policy.graph.DRIVERS (deploy.launch.py)")
        for spec in graph.NODES:
            out.setdefault(spec.package, "bora_policy.graph.NODES (launch_nodes.our_nodes)")
        for ctype, *_ in graph.ARM_CONTROLLERS.values():
            if ctype is not None:
                out.setdefault(ctype.split("/")[0], "bora_policy.graph.ARM_CONTROLLERS (config/franka.yaml)")
        cm = yaml.safe_load((ROOT / "config" / "franka_controllers.yaml").read_text())["/**"]["controller_manager"]
        for entry in cm["ros__parameters"].values():
            if isinstance(entry, dict) and "type" in entry:
                out.setdefault(entry["type"].split("/")[0], "config/franka_controllers.yaml")
        if "franka_bringup" in out:
            for dep in sorted(FRANKA_LAUNCH_USES):
                out.setdefault(dep, "franka_bringup/launch/franka.launch.py (included by deploy.launch.py)")
    return out, unknown


def test_the_scan_sees_the_packages_and_their_uses():
    assert PACKAGES == ["bora_policy", "bora_sim", "bora_teleop", "bora_trainer"]
    policy, _ = uses("bora_policy")
    needed = {"rclpy", "launch", "launch_ros", "message_filters", "rviz2", "realsense2_camera", "tf2_ros",
              "joint_trajectory_controller", "joint_state_broadcaster", "franka_bringup", "python3-opencv"}
    assert needed <= set(policy), sorted(needed - set(policy))
    assert {"python3-pandas", "python3-pil", "bora_sim"} <= set(uses("bora_trainer")[0])
    assert "ament_index_python" in uses("bora_teleop")[0] and "mujoco" not in uses("bora_sim")[0]
    assert classify("json") is None and classify("rerun") is None and classify("sensor_msgs") == "sensor_msgs"


def test_every_import_is_classified():
    unknown = [line for pkg in PACKAGES for line in uses(pkg)[1]]
    assert not unknown, (
        "imports neither ROS, standard library, PYTHON_KEYS nor PIP_ONLY (classify them in this test and declare "
        "them in package.xml):\n" + "\n".join(unknown)
    )


def test_every_package_xml_declares_what_its_package_uses():
    problems = []
    for pkg in PACKAGES:
        have = declared(pkg)
        for dep, where in sorted(uses(pkg)[0].items()):
            if dep != pkg and dep not in have and (pkg, dep) not in UNDECLARED:
                problems.append(f"src/{pkg}/package.xml: no <exec_depend>{dep}</exec_depend> (used by {where})")
    assert not problems, "\n".join(problems)


def test_the_exceptions_are_used_and_not_declared():
    for (pkg, dep), why in UNDECLARED.items():
        assert dep in uses(pkg)[0], f"UNDECLARED ({pkg}, {dep}) is no longer used: remove it ({why})"
        assert dep not in declared(pkg), f"src/{pkg}/package.xml declares {dep}: {why}"


def test_pip_only_modules_are_pinned_in_the_lock():
    lock = {
        m.group(1).lower()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if (m := re.match(r"^([A-Za-z0-9_.-]+)==", line))
    }
    missing = sorted({dist for dist in PIP_ONLY.values() if dist.lower() not in lock})
    assert not missing, f"PIP_ONLY modules not pinned in requirements.lock: {missing}"


def test_pip_only_modules_are_pinned_in_the_docker_requirements():
    """The image installs what rosdep cannot (docker/requirements-docker.txt, pins checked against the lock by
    test_docker_files.py): every pip-only module the code imports is there, or the image fails at that import."""
    docker = {
        m.group(1).lower()
        for line in (ROOT / "docker" / "requirements-docker.txt").read_text().splitlines()
        if (m := re.match(r"^([A-Za-z0-9_.-]+)==", line))
    }
    missing = sorted({dist for dist in PIP_ONLY.values() if dist.lower() not in docker})
    assert not missing, f"pip-only modules not in docker/requirements-docker.txt: {missing}"
