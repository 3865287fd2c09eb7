"""The teleop (and the vocabulary it shares) installs and imports without torch, the trainer or the sim.

In a fresh interpreter a meta-path finder refuses ``torch``, ``bora_trainer`` and ``bora_sim`` (as if
they were not installed); every module of ``bora_teleop`` (nodes included), of ``bora_policy.common``
and of ``bora_msgs`` (msg, srv) must still import. The teleop runs on the robot next to the safety
arbiter: nothing of the training stack may come with it (issue 15).
"""

from __future__ import annotations

import json
import subprocess
import sys

BLOCKED = ("torch", "bora_trainer", "bora_sim")

PROBE = r"""
import importlib, importlib.abc, json, pkgutil, sys

BLOCKED = %r


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked (torch-free import test)")
        return None


sys.meta_path.insert(0, Refuse())
for b in BLOCKED:  # the finder must really refuse (else this test could not fail)
    try:
        importlib.import_module(b)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{b} was not blocked")
done = []
for root in ("bora_teleop", "bora_policy.common"):
    pkg = importlib.import_module(root)
    done.append(root)
    for info in pkgutil.walk_packages(pkg.__path__, root + "."):
        importlib.import_module(info.name)
        done.append(info.name)
for m in ("bora_msgs.msg", "bora_msgs.srv"):
    importlib.import_module(m)
    done.append(m)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"imported": done, "leaked": leaked}))
"""


def test_teleop_common_and_msgs_import_with_torch_trainer_and_sim_absent():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (BLOCKED,)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["leaked"] == []
    mods = set(out["imported"])
    for m in ("bora_teleop.arbiter", "bora_teleop.retarget", "bora_teleop.events", "bora_teleop.nodes.teleop_node",
              "bora_policy.common.episodes", "bora_policy.common.rewards", "bora_msgs.msg"):
        assert m in mods, m
    assert len([m for m in mods if m.startswith("bora_teleop.")]) >= 15


def test_the_probe_fails_when_a_module_needs_torch(tmp_path):
    """The same probe on a package that imports torch fails with the blocked import named."""
    pkg = tmp_path / "needs_torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("import torch\n")
    code = (PROBE % (BLOCKED,)).replace('("bora_teleop", "bora_policy.common")', '("needs_torch",)')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path, env=None)
    assert proc.returncode != 0
    assert "torch is blocked" in proc.stderr
