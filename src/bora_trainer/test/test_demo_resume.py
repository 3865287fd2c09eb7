"""`bora demo` stopped and resumed: attempts set aside, previous outputs never deleted without --fresh, --resume
refusing another plan, the summary while a call runs (split from test_demo.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bora_trainer.demo import cli
from bora_trainer.demo import config as dc
from bora_trainer.demo import plan as dp
from bora_trainer.demo import run as dr
from bora_trainer.demo import summary as ds

ROOT = Path(__file__).resolve().parents[3]


def test_a_stopped_collect_group_is_set_aside_not_appended_twice(tmp_path):
    """A collect group stopped part-way (its .started marker, no .done, one of its 2 episodes written and a
    half-written temp file) and then resumed: the rerun moves the stopped attempt's episode to
    OUT/stopped/<job>/1/ and writes its 2 episodes once, after the first group's 2 (ids 0-3, seeds as planned)."""
    from bora_policy.common.episodes import episode_ids, read_info
    from bora_trainer.collect import collect
    from bora_trainer.demo.run import marker, run_jobs, started_marker

    out, data = tmp_path / "out", tmp_path / "out" / "data" / "press_button"
    (out / "stages").mkdir(parents=True)

    def job(name, seed):
        return dp.Job(f"collect-press_button-{name}", ["sim", "collect", "--task", "press_button", "--episodes", "2",
                                                      "--out", str(data), "--seed", str(seed), "--image-size", "32"])

    first, second = job("clean", 0), job("noisy", 10_000)
    assert run_jobs([first], out, 1, {}, progress=False)["failed"] == []
    assert episode_ids(data) == [0, 1]
    # the second group's stopped attempt: marker written at its launch, then one episode and a temp file
    started_marker(out, second.name).write_text(json.dumps({"argv": second.argv, "first_episode": 2}))
    collect("press_button", 1, data, seed=10_000, image_size=32, progress=False)
    (data / "episodes" / ".episode_000003.npz.x1.tmp").write_bytes(b"half")
    assert episode_ids(data) == [0, 1, 2]
    res = run_jobs([first, second], out, 1, {}, progress=False)
    assert res["failed"] == [] and res["skipped"] == 1 and marker(out, second.name).exists()
    assert episode_ids(data) == [0, 1, 2, 3]
    assert [read_info(data, i)["seed"] for i in range(4)] == [0, 1, 10_000, 10_001]
    moved = out / "stopped" / second.name / "1" / "episodes"
    assert sorted(p.name for p in moved.iterdir()) == [".episode_000003.npz.x1.tmp", "episode_000002.json",
                                                       "episode_000002.npz"]
    assert not any(p.name.endswith(".tmp") for p in (data / "episodes").iterdir())
    log = (out / "logs" / f"{second.name}.log").read_text()
    assert "stopped part-way" in log and str(out / "stopped" / second.name / "1") in log


def test_a_stopped_training_run_is_moved_aside_and_a_finished_one_is_kept(tmp_path):
    from bora_trainer.demo.run import marker, set_aside, started_marker

    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    run = out / "runs" / "press_button" / "bora"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("algo: bora\n")
    j = dp.Job("offline-press_button-bora", ["train", "offline", "--algo", "bora", "--out", str(run)])
    assert set_aside(out, j) is None  # never started: nothing to move
    started_marker(out, j.name).write_text(json.dumps({"argv": j.argv, "first_episode": None}))
    dest = set_aside(out, j)
    assert dest == out / "stopped" / j.name / "1" and not run.exists()
    assert (dest / "bora" / "config.yaml").read_text() == "algo: bora\n"
    run.mkdir(parents=True)
    marker(out, j.name).write_text("{}")  # finished: kept
    assert set_aside(out, j) is None and run.exists()
    started_marker(out, "bad").write_text("")  # unreadable marker of an appending job: refuse, do not guess
    bad = dp.Job("bad", ["sim", "collect", "--out", str(out / "data" / "x")])
    with pytest.raises(RuntimeError, match="does not say which episodes"):
        set_aside(out, bad)


def test_a_stopped_collect_group_with_an_id_range_moves_only_its_own_episodes(tmp_path):
    """Groups fill one dataset at the same time: a stopped group's rerun sets aside the ids of its
    --first-episode range only, never a neighbour's (here the later group's 6-7 stay)."""
    from bora_trainer.demo.run import set_aside, started_marker

    out, data = tmp_path / "out", tmp_path / "out" / "data" / "t"
    (out / "stages").mkdir(parents=True)
    (data / "episodes").mkdir(parents=True)
    for i in range(8):
        for ext in (".npz", ".json"):
            (data / "episodes" / f"episode_{i:06d}{ext}").write_bytes(b"x")
    j = dp.Job("collect-t-noisy", ["sim", "collect", "--task", "press_button", "--episodes", "4", "--out", str(data),
                                   "--first-episode", "2"], stage="collect")
    dr._mark_started(out, j)
    assert json.loads(started_marker(out, j.name).read_text())["first_episode"] == 2  # from argv, not the dataset
    dest = set_aside(out, j)
    assert sorted(p.name for p in (dest / "episodes").iterdir()) == [
        f"episode_{i:06d}{e}" for i in range(2, 6) for e in (".json", ".npz")]
    assert sorted(p.name for p in (data / "episodes").iterdir()) == [
        f"episode_{i:06d}{e}" for i in (0, 1, 6, 7) for e in (".json", ".npz")]


def test_stage_info_spans_overlapping_stages(tmp_path):
    """A stage's time runs from its first job's start to its last job's end (t0 = 100 here)."""
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    pl = dp.plan(cfg, tmp_path)
    (tmp_path / "stages").mkdir()
    spans = {"offline-press_button-bora": [110.0, 150.0], "offline-press_button-cp-bc": [105.0, 130.0],
             "online-press_button-bora-residual": [150.0, 170.0]}
    for n in spans:
        dr.marker(tmp_path, n).write_text("{}")
    res = {"spans": spans, "job_seconds": {n: b - a for n, (a, b) in spans.items()}, "failed": [
        {"job": "online-press_button-bc-residual", "rc": 1, "log": "x"}]}
    info = ds.stage_info(pl, ["offline", "online", "eval"], res, tmp_path, 100.0, {})
    assert info["offline"]["start"] == 5.0 and info["offline"]["seconds"] == 45.0
    assert info["offline"]["status"] == "incomplete" and info["offline"]["skipped"] == 0
    assert info["online"] == {"jobs": 2, "skipped": 0, "job_seconds": {"online-press_button-bora-residual": 20.0},
                              "failed": res["failed"], "status": "failed", "start": 50.0, "seconds": 20.0}
    assert info["eval"]["status"] == "incomplete" and info["eval"]["seconds"] == 0.0
    assert not dr.marker(tmp_path, "offline").exists()


def test_previous_outputs_never_deleted_without_fresh(tmp_path, capsys):
    """An OUT holding a previous run is refused (exit 2, one line, nothing deleted) unless --resume or --fresh;
    --fresh is refused where the selected stages would read the data it deletes, and beside --resume."""
    out = tmp_path / "demo"
    (out / "data" / "press_button").mkdir(parents=True)
    (out / "data" / "press_button" / "meta.json").write_text("{}")
    (out / "runs" / "press_button" / "bora").mkdir(parents=True)
    (out / "runs" / "press_button" / "bora" / "config.yaml").write_text("algo: bora\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for argv in (["--quick"], ["--quick", "--stages", "online", "eval", "report"],
                 ["--quick", "--fresh", "--stages", "online", "eval", "report"], ["--quick", "--fresh", "--resume"]):
        assert cli.main([*argv, "--out", str(out), "--no-progress"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bora demo: "), err
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before, argv  # nothing touched
    msg = cli.previous_outputs_error(out, resume=False, fresh=False, stages=list(dc.STAGES))
    assert "data/, runs/" in msg and "--resume" in msg and "--fresh" in msg
    assert cli.previous_outputs_error(out, resume=False, fresh=True, stages=list(dc.STAGES)) is None
    assert cli.previous_outputs_error(out, resume=True, fresh=False, stages=["eval"]) is None
    assert cli.previous_outputs_error(tmp_path / "empty", resume=False, fresh=False, stages=list(dc.STAGES)) is None
    # the protocol's evaluation folders are a previous run's outputs too (the evidence report reads every file)
    only = tmp_path / "protocol"
    (only / "eval_online").mkdir(parents=True)
    (only / "eval_online" / "t__bora-residual-online@o2__standard.json").write_text("{}")
    assert "eval_online/" in cli.previous_outputs_error(only, resume=False, fresh=False, stages=list(dc.STAGES))


def test_resume_refuses_jobs_done_with_another_plan(tmp_path):
    """A done marker keeps the command line and the digests of the stage configs it read; --resume refuses when
    either differs from this call's plan (e.g. a stop with --tuning, a resume without it; an edited config)."""
    from bora_trainer.demo.run import changed_since_done, config_digests, marker

    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    (out / "configs").mkdir()
    cfg = out / "configs" / "offline.yaml"
    cfg.write_text("k: 8\n")
    argv = ["eval", "--run", str(out / "runs" / "r"), "--seed0", "300000", "--config", str(cfg)]
    j = dp.Job("eval-a", argv, stage="eval")
    marker(out, j.name).write_text(json.dumps({"argv": argv, "configs": config_digests(out, j)}))
    assert config_digests(out, j) == {"offline.yaml": hashlib.sha256(b"k: 8\n").hexdigest()}
    assert changed_since_done([j], out) == []
    tuning = dp.Job("eval-a", [*argv[:4], "200000", *argv[5:]], stage="eval")
    (line,) = changed_since_done([tuning], out)
    assert line.startswith("eval-a: ran as `bora eval") and "('300000' -> '200000')" in line
    cfg.write_text("k: 16\n")
    assert changed_since_done([j], out) == ["eval-a: its stage config changed since it ran (offline.yaml)"]
    # markers without them (--skip-collect's "reused", older runs) are not compared; a job never done neither
    marker(out, j.name).write_text(json.dumps({"seconds": 0.0, "reused": True}))
    assert changed_since_done([j, dp.Job("never", argv)], out) == []


def test_a_running_call_marks_the_previous_summary(tmp_path):
    """A call stopped part-way must not leave the previous call's "complete" summary behind: at its start the
    summary says it is running (stage times kept for --resume); an unreadable one becomes a bare running mark."""
    from bora_trainer.demo.summary import mark_running

    (tmp_path / "summary.json").write_text(json.dumps({"ok": True, "stages": {"collect": {"seconds": 40.0}}}))
    (tmp_path / "summary.md").write_text("# bora demo summary (complete)\n")
    mark_running(tmp_path)
    js = json.loads((tmp_path / "summary.json").read_text())
    assert js == {"ok": False, "status": "running", "stages": {"collect": {"seconds": 40.0}}}
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("RUNNING: a later `bora demo` call has not finished") and md.endswith("(complete)\n")
    mark_running(tmp_path)  # twice: one mark
    assert (tmp_path / "summary.md").read_text() == md
    (tmp_path / "summary.json").write_text("{trunc")
    mark_running(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == {"ok": False, "status": "running"}
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_refuses_a_stale_checkpoint_selection(tmp_path):
    """RUN/selection.json (bora select) is what an offline row's later jobs read through RUN/policy: --resume refuses
    a finished select job whose selection no longer matches its command line or the run's checkpoints, a selection
    where the plan now selects none, and a select job not run yet whose readers have finished."""
    from bora_trainer import select
    from bora_trainer.demo.run import link, marker, stale_selections

    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    run = out / "runs" / "press_button" / "bora"
    for step in (100, 200):
        (run / "checkpoints" / f"step_{step:07d}").mkdir(parents=True)
        (run / "checkpoints" / f"step_{step:07d}" / "meta.json").write_text(json.dumps({"step": step, "files": {}}))

    def ck_id(step):
        return hashlib.sha256((run / "checkpoints" / f"step_{step:07d}" / "meta.json").read_bytes()).hexdigest()

    settings = {"task": "press_button", "objects": "standard", "trials": 30, "seed0": 500000, "replan_steps": 8,
                "control_hz": 10.0, "max_steps": None, "image_size": None}
    chosen = {"chosen_step": 100, "last_step": 200, **settings,
              "candidates": [{"step": s, "checkpoint": f"step_{s:07d}", "checkpoint_id": ck_id(s), "successes": 3,
                              "trials": 30} for s in (100, 200)]}
    (run / select.SELECTION).write_text(json.dumps(chosen))
    offline = dp.Job("offline-press_button-bora", ["train", "offline", "--out", str(run)], after=("export", run, None))
    sel = dp.Job("select-press_button-bora", ["select", "--run", str(run), "--task", "press_button", "--trials", "30",
                                              "--seed0", "500000", "--objects", "standard", "--replan-steps", "8",
                                              "--control-hz", "10", "--threads", "1", "--num-envs", "4",
                                              "--no-progress"], needs=[offline.name])
    ev = dp.Job("eval-press_button-bora-standard", ["eval", "--run", str(run), "--out", str(out / "eval" / "b.json")])
    jobs = [offline, sel, ev]
    deps = link(jobs, out)
    assert sel.name in deps[ev.name] and sel.name not in deps[offline.name]
    for j in jobs:
        marker(out, j.name).write_text("{}")
    assert stale_selections(jobs, out, deps) == []  # the selection this plan made, on these checkpoints
    assert select.deployed_checkpoint(run) == run / "checkpoints" / "step_0000100"
    # rerun by hand with other settings
    (run / select.SELECTION).write_text(json.dumps({**chosen, "trials": 20}))
    (line,) = stale_selections(jobs, out, deps)
    assert line == (f"{sel.name}: {run / select.SELECTION}: selected with trials 20, expected 30; "
                    "run `bora select` again")
    # the run trained on after the selection: another checkpoint, and RUN/policy is no longer the chosen one
    (run / select.SELECTION).write_text(json.dumps(chosen))
    (run / "checkpoints" / "step_0000300").mkdir()
    (run / "checkpoints" / "step_0000300" / "meta.json").write_text(json.dumps({"step": 300, "files": {}}))
    (line,) = stale_selections(jobs, out, deps)
    assert "chose among the checkpoints of steps [100, 200], the run now has [100, 200, 300]" in line
    with pytest.raises(select.SelectError, match=r"steps \[100, 200\], the run now has \[100, 200, 300\]"):
        select.deployed_checkpoint(run)  # what the online stage and init_from read: an error, not the old step
    # a candidate rewritten in place (same step, other weights)
    (run / "checkpoints" / "step_0000300" / "meta.json").unlink()
    (run / "checkpoints" / "step_0000300").rmdir()
    (run / "checkpoints" / "step_0000200" / "meta.json").write_text(json.dumps({"step": 200, "files": {"x": "1"}}))
    (line,) = stale_selections(jobs, out, deps)
    assert "the checkpoint of step 200 changed since the selection" in line
    # this plan selects no checkpoint (offline.select.every 0), but the run has a selection
    (line,) = stale_selections([offline, ev], out, link([offline, ev], out))
    assert line.startswith(f"{offline.name}: {run / select.SELECTION} deploys a checkpoint chosen by an earlier")
    # selection turned on after the row's evaluation finished: the selection would change what it read
    (run / select.SELECTION).unlink()
    marker(out, sel.name).unlink()
    assert stale_selections(jobs, out, deps) == [f"{sel.name}: not run yet, but {ev.name} finished reading {run} "
                                                 "without this selection"]
    marker(out, ev.name).unlink()  # nothing read it yet: the selection simply runs
    assert stale_selections(jobs, out, deps) == []
