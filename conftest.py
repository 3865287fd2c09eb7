"""Test-suite set-up shared by every package.

Before any node can start: DDS discovery on loopback only and a ROS_DOMAIN_ID of this run's own
(so parallel runs never cross-talk); headless MuJoCo rendering; the built workspace's interface
packages importable even when install/setup.bash was not sourced.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))


def worker_domain_id(base: int, worker: str | None) -> int:
    """The ROS_DOMAIN_ID of one pytest-xdist worker (``gw0``, ``gw1``, ...) of a run whose domain is ``base``.

    Workers of one run must not share a domain (two workers' graphs on the same topics would cross-talk), and
    every ID stays in 100..199, the range env.sh and .ci/run draw from (Fast DDS allows 0..232; 0 is the
    default domain of other ROS users on the machine). Worker 0 keeps ``base``; worker i moves by 37 * i (mod
    100), so the first two workers are 37 apart and a run never collides with itself for up to 100 workers.
    """
    if not worker:
        return base
    index = int(worker.removeprefix("gw"))
    return 100 + (base - 100 + 37 * index) % 100


os.environ["ROS_DOMAIN_ID"] = str(
    worker_domain_id(int(os.environ["ROS_DOMAIN_ID"]), os.environ.get("PYTEST_XDIST_WORKER"))
)
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# precision "auto" picks bf16 on CPUs with native bf16 (cpu_probe); the tests' hand-computed values are fp32
os.environ.setdefault("BORA_PRECISION", "fp32")

ROOT = Path(__file__).resolve().parent
_msgs = ROOT / "install" / "bora_msgs"
if _msgs.is_dir():
    site = next(_msgs.glob("lib/python3*/site-packages"), None)
    if site is not None and str(site) not in sys.path:
        sys.path.insert(0, str(site))
    lib = str(_msgs / "lib")
    if lib not in os.environ.get("LD_LIBRARY_PATH", ""):
        # Child processes (node executables started by tests) inherit this.
        os.environ["LD_LIBRARY_PATH"] = lib + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(_msgs), sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    )

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed python, numpy and torch before every test (CleanRL-style single seeding block)."""
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:  # pragma: no cover
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
