"""A conversion's commit into an existing output directory is crash-safe (data/bag_output.py, ``OutputDir``).

Replacing a converted episode moves its files one by one; a crash between them left a new ``.npz`` beside the old
``.json`` (a mixed episode: the trainer read the new rows with the old outcome and step count). The crash is
simulated by an ``os.replace`` that fails at the chosen move of the commit (the injected fault stands for the
crash; the commit and its completion are the real code). Expectations: the two scripted versions of one episode
(6 steps without an outcome, then 10 steps ending in success; k = 4, so 2 and 3 chunk transitions).
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from bora_trainer.data import bag_output
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions
from bora_trainer.data.bag_output import JOURNAL, OutputDir, OutputError
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag

LAY = BagLayout()
SA = "11111111-1111-4111-8111-111111111111"
CFG = ConvertConfig(transitions_only=True)


def _two_versions(tmp_path):
    """The incomplete version converted into ``tmp/out``; the complete one's bag ``tmp/done``."""
    write_scripted_bag(tmp_path / "live", [ScriptedEpisode(1, 6, None, session_id=SA)], LAY)
    write_scripted_bag(tmp_path / "done", [ScriptedEpisode(1, 10, "success", session_id=SA)], LAY)
    out = tmp_path / "out"
    (r1,) = convert([tmp_path / "live"], out, CFG).episodes
    assert (r1.status, r1.episode_id, r1.outcome) == ("written", 0, None)
    return out, r1.content_hash


def _rows(out) -> int:
    with np.load(out / "transitions" / "episode_000000.npz") as z:
        return len(z["z"])


@pytest.mark.parametrize("crash_at", ["episode_000000.npz", "episode_000000.json"])
def test_a_replacement_interrupted_between_its_files_is_never_mixed_and_is_completed(tmp_path, monkeypatch, crash_at):
    out, old_hash = _two_versions(tmp_path)
    assert _rows(out) == 2
    target = out / "transitions" / crash_at
    real = os.replace

    def crash(src, dst, *a, **kw):  # the commit's move of ``target`` out of its staging directory fails
        if os.fspath(dst) == os.fspath(target) and ".staging-" in os.fspath(src):
            raise OSError(errno.EIO, "simulated crash", os.fspath(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(bag_output.os, "replace", crash)
    with pytest.raises(OutputError, match="simulated crash"):
        convert([tmp_path / "done"], out, CFG)
    monkeypatch.undo()
    # the interrupted state: the old version's JSON side file is gone (the episode is absent, not mixed), the
    # journal and the staged files are there to complete the commit
    assert not (out / "transitions" / "episode_000000.json").exists()
    assert _rows(out) == (2 if crash_at.endswith(".npz") else 3)  # the npz moved before the crash at the json
    assert (out / JOURNAL).is_file()
    stage = out / json.loads((out / JOURNAL).read_text())["stage"]
    assert stage.is_dir() and (stage / "transitions" / "episode_000000.json").is_file()
    with pytest.raises(FileNotFoundError):
        read_transitions(out, 0)
    # the next conversion into OUT completes the commit before it reads anything: the complete version, whole
    (r,) = convert([tmp_path / "done"], out, CFG).episodes
    assert (r.status, r.episode_id) == ("skipped", 0)  # already there, from the completed commit
    arrays, info = read_transitions(out, 0)
    assert (info["outcome"], info["num_steps"], info["content_hash"]) == ("success", 10, r.content_hash)
    assert len(arrays["z"]) == _rows(out) == 3
    assert not (out / JOURNAL).exists() and not stage.exists()
    assert not list(out.glob(".staging-*"))
    ledger = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    assert [(e["replaced_hash"], e["by_hash"]) for e in ledger] == [(old_hash, r.content_hash)]  # once
    kept = out / "replaced" / old_hash[:12] / "transitions"
    assert json.loads((kept / "episode_000000.json").read_text())["outcome"] is None  # the old version is kept
    with np.load(kept / "episode_000000.npz") as z:
        assert len(z["z"]) == 2


def test_an_uninterrupted_replacement_leaves_no_journal(tmp_path):
    out, old_hash = _two_versions(tmp_path)
    (r,) = convert([tmp_path / "done"], out, CFG).episodes
    assert r.status == "replaced" and not (out / JOURNAL).exists() and not list(out.glob(".staging-*"))
    assert read_transitions(out, 0)[1]["content_hash"] == r.content_hash and _rows(out) == 3
    assert len((out / "ledger.jsonl").read_text().splitlines()) == 1


def test_a_journal_whose_staged_files_are_gone_is_a_one_line_error(tmp_path):
    out, _ = _two_versions(tmp_path)
    (out / JOURNAL).write_text(json.dumps({"stage": ".staging-gone", "files": ["transitions/x.npz"], "ledger": []}))
    want = r"commit\.json: an interrupted commit whose staging directory .* is missing"
    with pytest.raises(OutputError, match=want) as e:
        OutputDir(out)
    assert "\n" not in str(e.value)
