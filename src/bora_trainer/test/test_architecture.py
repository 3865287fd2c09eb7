"""The package boundaries (issue 15), checked on the source: a forbidden import fails this test.

Every ``.py`` of every package module (``src/<pkg>/<pkg>/**``) is parsed (AST): ``import x``,
``from x import y`` (relative ones resolved), ``importlib.import_module("x")``, ``import_module("x")``
and ``__import__("x")`` with a literal name, and with an f-string name its constant pieces (so
``import_module(f"{pkg}.msg")`` counts as importing a message package). Imports inside functions
count. A name computed from a variable cannot be resolved statically; such calls stay allowed.

Rules (dependency direction: bora_msgs <- bora_policy.common <- {bora_sim, bora_teleop, bora_policy}
<- bora_trainer; see README "Architecture"):

* ``library-ros``: library code (everything outside ``*/nodes/`` and the two node helpers of ``common``:
  ``bora_policy/common/node.py``, the lifecycle, and ``bora_policy/common/episode_events.py``, the episode-event
  publishers the sim bridge and the teleop share) imports neither rclpy nor a message package (``bora_msgs``,
  ``*_msgs``, ``*_srvs``, ``*_interfaces``, a ``*.msg`` / ``*.srv`` module).
* ``library-nodes``: library code imports no ``<pkg>.nodes`` module (a CLI runs a node as its own
  process: ``bora_trainer.cli.exec_node``).
* ``sim``: ``bora_sim`` imports neither ``bora_trainer`` nor ``bora_teleop``, and of ``bora_policy``
  only ``bora_policy.common``.
* ``teleop``: ``bora_teleop`` imports neither ``bora_trainer``, ``bora_sim`` nor ``torch``, and of
  ``bora_policy`` only ``bora_policy.common`` (it runs on the robot next to the safety arbiter).
* ``policy``: ``bora_policy`` imports neither ``bora_trainer``, ``bora_sim`` nor ``bora_teleop``.
* ``common``: ``bora_policy.common`` (and ``bora_policy/__init__.py``) imports only the standard
  library, numpy, yaml and ``bora_policy.common`` itself (the two node helpers may add rclpy and messages).

Tests (``src/<pkg>/test``) are integration rigs that may span packages and are not checked.
The ``package.xml`` ``<exec_depend>`` lists must declare every first-party package a package
imports and none that its rule forbids.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
PACKAGES = ("bora_msgs", "bora_policy", "bora_sim", "bora_teleop", "bora_trainer")
# the library modules that may use rclpy: node helpers that nodes of several packages share, and bora_sim /
# bora_teleop may import nothing of bora_policy but common (the node lifecycle; the episode-event publishers)
NODE_HELPERS = ("bora_policy/common/node.py", "bora_policy/common/episode_events.py")
COMMON_ALLOWED = {"numpy", "yaml", "bora_policy"}  # + the standard library; bora_policy only as .common
FORBIDDEN_PACKAGES = {  # package -> first-party/third-party top-level names it must not import
    "bora_sim": {"bora_trainer", "bora_teleop"},
    "bora_teleop": {"bora_trainer", "bora_sim", "torch"},
    "bora_policy": {"bora_trainer", "bora_sim", "bora_teleop"},
}
POLICY_ONLY_COMMON = ("bora_sim", "bora_teleop")  # may import bora_policy.common and nothing else of it
FORBIDDEN_EXEC_DEPENDS = {
    "bora_sim": {"bora_trainer", "bora_teleop"},
    "bora_teleop": {"bora_trainer", "bora_sim"},
    "bora_policy": {"bora_trainer", "bora_sim"},
}


@dataclass(frozen=True)
class Import:
    module: str  # dotted name; "?" stands for a computed piece of an f-string
    line: int
    how: str  # "import", "from", "importlib"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.detail}"


def _literal_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f"{pkg}.msg" -> "?.msg"
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def imports_of(source: str, rel_path: str) -> list[Import]:
    """Every import of ``source`` (a module at ``rel_path`` = ``<pkg>/<pkg>/...py`` under src)."""
    tree = ast.parse(source, filename=rel_path)
    parts = Path(rel_path).with_suffix("").parts[1:]  # drop the src/<pkg> folder: the dotted module path
    here = list(parts[:-1])  # the package this module (or package __init__) belongs to
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(a.name, node.lineno, "import") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.append(Import(mod, node.lineno, "from"))
            out += [Import(f"{mod}.{a.name}", node.lineno, "from") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            name = _literal_name(node.args[0])
            if name is not None:
                out.append(Import(name, node.lineno, "importlib"))
    return out


def _top(mod: str) -> str:
    return mod.split(".")[0]


def _is_ros(mod: str) -> bool:
    top = _top(mod)
    if top in ("rclpy", "rosidl_runtime_py", "bora_msgs") or top.startswith("rosidl_"):
        return True
    if top.endswith(("_msgs", "_srvs", "_interfaces")):
        return True
    return any(p in ("msg", "srv") for p in mod.split(".")[1:])


def is_library(rel_path: str) -> bool:
    """Package code outside ``*/nodes/`` and the node helpers of ``common``."""
    p = Path(rel_path)
    return "nodes" not in p.parts[2:-1] and rel_path.split("/", 1)[1] not in NODE_HELPERS


def check_source(source: str, rel_path: str) -> list[Violation]:
    """Violations of one package module; ``rel_path`` is relative to src (``bora_sim/bora_sim/env.py``)."""
    pkg = Path(rel_path).parts[0]
    sub = rel_path.split("/", 1)[1]
    library = is_library(rel_path)
    in_common = sub.startswith("bora_policy/common/") or sub == "bora_policy/__init__.py"
    out: list[Violation] = []
    seen: set[tuple[int, str]] = set()

    def flag(imp: Import, rule: str, detail: str) -> None:
        if (imp.line, rule) not in seen:
            seen.add((imp.line, rule))
            out.append(Violation(rel_path, imp.line, rule, detail))

    for imp in imports_of(source, rel_path):
        mod, top = imp.module, _top(imp.module)
        if library and _is_ros(mod):
            flag(imp, "library-ros", f"library code imports {mod!r} ({imp.how}); only */nodes/ and "
                                     f"{', '.join(NODE_HELPERS)} may use rclpy or message packages")
        if library and top in PACKAGES and mod.split(".")[1:2] == ["nodes"]:
            flag(imp, "library-nodes", f"library code imports the node module {mod!r} ({imp.how}); "
                                       "run a node as its own process instead")
        if top in FORBIDDEN_PACKAGES.get(pkg, ()):
            flag(imp, pkg.removeprefix("bora_"), f"{pkg} must not import {top} ({mod!r}, {imp.how})")
        if pkg in POLICY_ONLY_COMMON and top == "bora_policy" and mod.split(".")[1:2] not in (["common"], []):
            flag(imp, pkg.removeprefix("bora_"), f"{pkg} may import only bora_policy.common, not {mod!r}")
        if in_common and sub not in NODE_HELPERS:
            ok = top in sys.stdlib_module_names or top == "__future__" or (
                top in COMMON_ALLOWED and (top != "bora_policy" or mod.split(".")[1:2] in (["common"], []))
            )
            if not ok:
                flag(imp, "common", f"bora_policy.common imports only stdlib, numpy, yaml and itself, not {mod!r}")
    return out


def package_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (SRC / pkg / pkg).rglob("*.py") if (SRC / pkg / pkg).is_dir())


def scan_tree() -> tuple[list[Violation], dict[str, set[str]]]:
    """All violations, and per package the first-party packages its modules import."""
    violations: list[Violation] = []
    uses: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for path in package_modules():
        rel = path.relative_to(SRC).as_posix()
        src = path.read_text()
        violations += check_source(src, rel)
        uses[rel.split("/")[0]] |= {_top(i.module) for i in imports_of(src, rel) if _top(i.module) in PACKAGES}
    return violations, uses


def exec_depends(pkg: str) -> set[str]:
    root = ET.parse(SRC / pkg / "package.xml").getroot()
    return {e.text.strip() for e in root.iter("exec_depend") if e.text}


# --------------------------------------------------------------------------------------- the tree
def test_no_forbidden_import_in_the_tree():
    violations, _ = scan_tree()
    assert not violations, f"{len(violations)} forbidden import(s):\n" + "\n".join(map(str, violations))


def test_the_scan_sees_every_package():
    mods = package_modules()
    for pkg in ("bora_policy", "bora_sim", "bora_teleop", "bora_trainer"):
        assert sum(p.relative_to(SRC).parts[0] == pkg for p in mods) >= 5, pkg
    assert any(p.name == "retarget.py" for p in mods) and any(p.name == "rewards.py" for p in mods)


def test_package_xml_exec_depends_follow_the_rules():
    _, uses = scan_tree()
    problems = []
    for pkg in ("bora_policy", "bora_sim", "bora_teleop", "bora_trainer"):
        deps = exec_depends(pkg)
        for bad in sorted(deps & FORBIDDEN_EXEC_DEPENDS.get(pkg, set())):
            problems.append(f"src/{pkg}/package.xml: <exec_depend>{bad}</exec_depend> breaks the {pkg} rule")
        for need in sorted(uses[pkg] - {pkg} - deps):
            problems.append(f"src/{pkg}/package.xml: imports {need} but has no <exec_depend>{need}</exec_depend>")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------ the checker itself fails
def _rules(source: str, rel: str) -> list[str]:
    return [v.rule for v in check_source(source, rel)]


LIB = "bora_trainer/bora_trainer/data/x.py"


@pytest.mark.parametrize(
    "source",
    [
        "import rclpy\n",
        "from rclpy.node import Node\n",
        "from bora_msgs.msg import Observation\n",
        "import importlib\nm = importlib.import_module('bora_msgs.msg')\n",
        "from importlib import import_module\nimport_module('rclpy')\n",
        "m = __import__('rclpy')\n",
        "import importlib\n\ndef f(pkg):\n    return importlib.import_module(f'{pkg}.msg')\n",
        "def f():\n    from sensor_msgs.msg import Image\n",
    ],
)
def test_library_ros_import_is_flagged(source):
    assert "library-ros" in _rules(source, LIB)
    assert _rules(source, "bora_trainer/bora_trainer/nodes/x.py") == []  # nodes may
    assert "library-ros" not in _rules(source, "bora_policy/bora_policy/common/node.py")  # the lifecycle helper may
    assert _rules(source, "bora_policy/bora_policy/common/episode_events.py") == []  # and the episode publishers
    assert "library-ros" in _rules(source, "bora_policy/bora_policy/common/episode_latch.py")  # no other


def test_library_node_import_is_flagged_with_file_line_and_rule():
    src = "import os\n\ndef main():\n    from bora_trainer.nodes.recorder_node import main\n"
    (v,) = check_source(src, "bora_trainer/bora_trainer/cli.py")
    assert (v.line, v.rule) == (4, "library-nodes")
    assert str(v).startswith("bora_trainer/bora_trainer/cli.py:4: [library-nodes]")
    imp = "import importlib\nimportlib.import_module('bora_trainer.nodes.recorder_node')\n"
    assert _rules(imp, "bora_trainer/bora_trainer/cli.py") == ["library-nodes"]
    assert _rules(imp, "bora_trainer/bora_trainer/nodes/other.py") == []


@pytest.mark.parametrize(
    ("rel", "source", "rule"),
    [
        ("bora_teleop/bora_teleop/events.py", "from bora_trainer.rewards import RewardConfig\n", "teleop"),
        ("bora_teleop/bora_teleop/events.py", "import importlib\nimportlib.import_module('bora_trainer.x')\n",
         "teleop"),
        ("bora_teleop/bora_teleop/retarget.py", "def f():\n    from bora_sim.hand import SHADOW\n", "teleop"),
        ("bora_teleop/bora_teleop/nodes/teleop_node.py", "import torch\n", "teleop"),
        ("bora_teleop/bora_teleop/x.py", "from bora_policy.runtime.control_loop import ControlLoop\n", "teleop"),
        ("bora_sim/bora_sim/collect.py", "from bora_trainer.data import chunks\n", "sim"),
        ("bora_sim/bora_sim/env.py", "from bora_policy.models.vla import VLA\n", "sim"),
        ("bora_sim/bora_sim/env.py", "m = __import__('bora_policy.runtime.processor')\n", "sim"),
        ("bora_policy/bora_policy/runtime/x.py", "from bora_trainer.checkpoint import save\n", "policy"),
        ("bora_policy/bora_policy/models/x.py", "import importlib\nimportlib.import_module('bora_sim.env')\n",
         "policy"),
        ("bora_policy/bora_policy/common/episodes.py", "import torch\n", "common"),
        ("bora_policy/bora_policy/common/x.py", "from bora_policy.runtime import processor\n", "common"),
        ("bora_policy/bora_policy/common/x.py", "from ..models import vla\n", "common"),  # relative, resolved
    ],
)
def test_package_rules_flag_forbidden_imports(rel, source, rule):
    rules = _rules(source, rel)
    assert rule in rules, (rel, source, rules)


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("bora_sim/bora_sim/env.py", "from bora_policy.common.rewards import SIM_REWARD\n"),
        ("bora_teleop/bora_teleop/events.py", "from bora_policy.common import rewards\nimport numpy, yaml\n"),
        ("bora_policy/bora_policy/common/episodes.py", "import json, os\nimport numpy as np\nfrom .rewards import x\n"),
        ("bora_trainer/bora_trainer/train.py", "import torch\nfrom bora_sim.env import make_env\n"),
        ("bora_policy/bora_policy/graph.py", "NODES = ['bora_sim.nodes.bridge_node']  # a module to run, no import\n"),
    ],
)
def test_allowed_imports_pass(rel, source):
    assert check_source(source, rel) == []


def test_relative_imports_resolve_to_the_package():
    imps = imports_of("from .rewards import RewardConfig\nfrom ..runtime import x\n",
                      "bora_policy/bora_policy/common/episodes.py")
    assert {i.module for i in imps} >= {"bora_policy.common.rewards", "bora_policy.runtime"}
