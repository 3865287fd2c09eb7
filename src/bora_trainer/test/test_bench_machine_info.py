"""bench/machine_info.py names the commit of the checkout it ran in (every benchmark's machine line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import machine_info  # noqa: E402


def _git(root: Path, *a: str) -> str:
    return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True, check=True).stdout.strip()


def test_commit_names_head_and_flags_uncommitted_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("BORA_BENCH_COMMIT", raising=False)
    assert machine_info.commit(tmp_path).startswith("unknown")  # not a git checkout
    monkeypatch.setenv("BORA_BENCH_COMMIT", "abc1234")  # a copy without .git: the caller names the commit
    assert machine_info.commit(tmp_path) == "abc1234"
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "--short", "HEAD")
    assert machine_info.commit(tmp_path) == head  # a checkout's own HEAD wins over the variable
    (tmp_path / "untracked.txt").write_text("results\n")  # new files (e.g. fresh results) do not count
    assert machine_info.commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert machine_info.commit(tmp_path) == f"{head} (+ uncommitted changes)"
