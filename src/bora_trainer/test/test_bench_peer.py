"""bench/bench_peer.py: our update next to LeRobot's SAC learner update, on a tiny configuration.

Needs the LeRobot environment of ``make interop`` (``.interop-venv``): marked ``interop``, so ``make test``
deselects it and ``make interop`` runs it (where it fails, not skips, if that environment is missing). Checks the
matched sizes by hand-counted parameter numbers of LeRobot's networks, the transitions per update of each
row, and that the ratios in peer.md are the ones the JSON's CPU times give.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INTEROP = ROOT / ".interop-venv" / "bin" / "python"

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _interop_env():
    assert INTEROP.exists(), f"{INTEROP} missing: run `make interop` (it builds the LeRobot environment)"



def test_peer_bench_tiny(tmp_path):
    B, k, A, H = 4, 2, 3, 16
    cmd = [sys.executable, str(ROOT / "bench" / "bench_peer.py"), "--out", str(tmp_path), "--repeats", "2",
           "--updates", "1", "--peer-updates", "2", "1", "--batch", str(B), "--chunk", str(k),
           "--action-dim", str(A), "--hidden", str(H), "--no-compile"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "peer.json").read_text())
    D = res["config"]["state_dim"]
    assert D == res["config"]["z_dim"] + A  # their observation = our z_t + proprio
    # LeRobot's networks by hand: shared state encoder Linear(D,H)+LayerNorm(H); each critic head
    # Linear(H+A,H)+LN, Linear(H,H)+LN, Linear(H,1); actor MLP Linear(H,H)+LN twice, mean and std Linear(H,A)
    enc = D * H + H + 2 * H
    head = (H + A) * H + 3 * H + H * H + 3 * H + H + 1
    assert res["peer"]["params"]["critic_ensemble"] == enc + 2 * head
    assert res["peer"]["params"]["actor"] == enc + 2 * (H * H + 3 * H) + 2 * (H * A + A)
    ours, small, big = res["rows"]
    assert [x["transitions_per_update"] for x in res["rows"]] == [B * k, B, B * k]
    assert [x["updates_timed"] for x in res["rows"]] == [2, 4, 2]  # repeats x updates per repeat
    for x in res["rows"]:
        assert x["cpu_ms_per_update"] > 0
        assert x["cpu_us_per_transition"] == pytest.approx(1000 * x["cpu_ms_per_update"] / x["transitions_per_update"])
    md = (tmp_path / "peer.md").read_text()
    for row, theirs in (("matched batch", small), ("matched transitions", big)):
        line = next(s for s in md.splitlines() if row in s)
        per_update, per_step = (float(v) for v in re.findall(r"\| ([0-9.]+) \| ([0-9.]+) \|$", line)[0])
        assert per_update == pytest.approx(ours["cpu_ms_per_update"] / theirs["cpu_ms_per_update"], abs=0.006)
        assert per_step == pytest.approx(ours["cpu_us_per_transition"] / theirs["cpu_us_per_transition"], abs=0.006)
    assert res["commit"] and "lerobot" in res["peer"]


def test_sac_imports_without_the_policies_index(tmp_path):
    """Where ``lerobot.policies``' __init__ fails (GR00T with another transformers, as on a GPU machine's image),
    the worker imports the SAC modules without it and one LeRobot update still runs."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import importlib.abc, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "class Broken(importlib.abc.MetaPathFinder):  # an unrelated policy that fails at import\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'lerobot.policies.groot':\n"
        "            raise TypeError('non-default argument follows default argument')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "import torch, peer_lerobot as p\n"
        "print(p.import_policies_package())\n"
        "policy, opts = p.build(7, 3, 16, 2)\n"
        "p.update(policy, opts, p.make_batch(4, 7, 3, torch.Generator().manual_seed(0)), 40.0)\n"
        "print('updated', type(policy).__name__)\n"
    )
    r = subprocess.run([str(INTEROP), str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "its __init__ skipped (TypeError: non-default argument" in r.stdout
    assert "updated SACPolicy" in r.stdout
