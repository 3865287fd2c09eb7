"""bench/project_schedule.py and the runner's pure choice (demo/run.py ``startable``), on hand-computed
schedules; and the projection of a hand-built demo output directory end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import project_schedule  # noqa: E402

from bora_trainer.demo import config as dc  # noqa: E402
from bora_trainer.demo import plan as dp  # noqa: E402
from bora_trainer.demo import run as dr  # noqa: E402


def _job(name, stage, cpus=1, needs=()):
    return dp.Job(name, ["eval"], stage=stage, cpus=cpus, needs=list(needs))


def test_startable_by_hand():
    a, b, w = _job("a", "offline"), _job("b", "offline"), _job("w", "warmup", cpus=2)
    e = _job("e", "eval", needs=["a"])
    deps = {j.name: j.needs for j in (a, b, w, e)}
    # 2 cores, at most 1 offline job at a time: a (first in order), not b; w does not fit beside a; e waits for a
    assert [j.name for j in dr.startable([a, b, w, e], [], set(), deps, 2, {"offline": 1, "warmup": 1, "eval": 2})] == [
        "a"]
    assert [j.name for j in dr.startable([b, e, w], [], {"a"}, deps, 2, {"offline": 2, "eval": 2})] == ["b", "e"]
    # w first in order: it takes both cores, and b, e wait behind it
    assert [j.name for j in dr.startable([w, b, e], [], {"a"}, deps, 2, {"offline": 2, "eval": 2})] == ["w"]
    assert [j.name for j in dr.startable([w], [], set(), deps, 1, {"warmup": 1})] == ["w"]  # wider than all: alone
    assert dr.startable([w], [a], set(), deps, 4, {"warmup": 1}) == [w]  # 1 + 2 <= 4 cores
    # the wider job waits for its cores and holds back the narrower one behind it (no starvation) ...
    assert dr.startable([w, b], [a], {"a"}, deps, 2, {"warmup": 1, "offline": 2}) == []
    # ... but a job that cannot start for another reason (its inputs, its stage's cap) holds back nothing
    assert dr.startable([e, b], [a], set(), deps, 2, {"offline": 2, "eval": 2}) == [b]


def test_simulate_graph_and_stage_barriers_by_hand():
    """a 10 s and b 20 s (offline, 1 core each), c 5 s (eval) reads a's output: on 2 cores the graph runs c
    at 10-15 and ends at 20; with stages as barriers c starts at 20 and the run ends at 25."""
    a, b, c = _job("a", "offline"), _job("b", "offline"), _job("c", "eval", needs=["a"])
    deps = {"a": [], "b": [], "c": ["a"]}
    secs = {"a": 10.0, "b": 20.0, "c": 5.0}
    caps = {"offline": 2, "eval": 2}
    g = project_schedule.simulate([a, b, c], deps, secs, 2, caps)
    assert g["wall_s"] == 20.0 and g["stages"] == {"offline": [0.0, 20.0], "eval": [10.0, 15.0]}
    s = project_schedule.simulate([a, b, c], deps, secs, 2, caps, barriers=True)
    assert s["wall_s"] == 25.0 and s["stages"]["eval"] == [20.0, 25.0]
    assert project_schedule.simulate([a, b, c], deps, secs, 1, caps)["wall_s"] == 35.0  # one core: the sum


def test_project_a_demo_output_directory(tmp_path, capsys):
    """config/demo.yaml's plan with every job's seconds in its done marker: the projection runs the real
    plan and link; a missing marker is a one-line refusal."""
    cfg = dc.load_demo_config(dc.REPO_ROOT / "config" / "demo.yaml")
    out = tmp_path / "demo_out"
    dp.write_stage_configs(cfg, out)
    jobs = dp.all_jobs(dp.plan(cfg, out))
    (out / "stages").mkdir()
    for j in jobs[:-1]:
        dr.marker(out, j.name).write_text(json.dumps({"seconds": 10.0}))
    assert project_schedule.main(["--out", str(out)]) == 2
    assert "1 job(s) of the plan have no done marker" in capsys.readouterr().err
    dr.marker(out, jobs[-1].name).write_text(json.dumps({"seconds": 10.0}))
    assert project_schedule.main(["--out", str(out), "--cpus", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["jobs"] == len(jobs) == 30 and res["job_seconds_sum"] == 300.0
    # stage by stage, 2 cores, 10 s a job: collect 4 jobs 2 at a time 20 s, warm-up 10, offline 6 jobs 30,
    # online 2 one at a time 20, eval 16 jobs 80, report 10: 170 s
    assert res["projected_stage_by_stage_s"] == 170.0
    # the graph: never faster than the critical path collect -> warm-up -> offline bora -> online x 2 (one at a
    # time) -> eval -> report (70 s), faster than the barriers (evaluations fill the cores beside the online rows)
    assert 70.0 <= res["projected_graph_s"] < 170.0
    # a config change before planning: one collect group at a time -> collect 40 s (4 jobs of 10 s) on 4 cores
    assert project_schedule.main(["--out", str(out), "--cpus", "4", "--set", "collect.parallel=1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["set"] == ["collect.parallel=1"] and one["graph_stages"]["collect"] == [0.0, 40.0]
    assert project_schedule.main(["--out", str(out), "--set", "collect.parallel"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_measured_wall_time_of_a_run_in_parts_by_hand(tmp_path, capsys):
    """Part 1: a 0-100 and b 50-150 (busy 150 s), c 160-200 (10 s idle between: same part, busy 190 s); part 2
    after a 1 h pause: d 3800-3900. A job started at 3850 and never done is listed; a stage's own done marker
    (seconds only) is not a job."""
    st = tmp_path / "stages"
    st.mkdir()
    for name, a, b in (("a", 0, 100), ("b", 50, 150), ("c", 160, 200), ("d", 3800, 3900)):
        (st / f"{name}.done").write_text(json.dumps({"seconds": b - a, "start": 1000.0 + a, "end": 1000.0 + b}))
        (st / f"{name}.started").write_text(json.dumps({"argv": [], "start": 1000.0 + a}))
    (st / "offline.done").write_text(json.dumps({"seconds": 150.0}))
    (st / "e.started").write_text(json.dumps({"argv": [], "start": 4850.0}))
    (st / "f.started").write_text(json.dumps({"argv": []}))  # written before markers recorded the start
    m = project_schedule.measured(tmp_path)
    assert m["busy_s"] == 150 + 40 + 100 and m["jobs_done"] == 4 and m["job_seconds_sum"] == 100 + 100 + 40 + 100
    assert m["parts"] == [[1000.0, 1200.0, 190.0], [4800.0, 4900.0, 100.0]]
    assert m["unfinished"] == {"e": 4850.0, "f": None}
    assert project_schedule.main(["--out", str(tmp_path), "--measured", "--part-gap", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["parts"] == [[1000.0, 1150.0, 150.0], [1160.0, 1200.0, 40.0],
                                                            [4800.0, 4900.0, 100.0]]
    assert project_schedule.main(["--out", str(tmp_path / "nothing"), "--measured"]) == 2
