"""``bora demo``: config loading, stage planning, resume markers, claim checks; and (slow) the whole
pipeline end to end with ``--quick``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bora_trainer.algorithms import registry
from bora_trainer.config_io import ConfigError
from bora_trainer.demo import cli
from bora_trainer.demo import config as dc
from bora_trainer.demo import plan as dp
from bora_trainer.demo import run as dr
from bora_trainer.demo import summary as ds

ROOT = Path(__file__).resolve().parents[3]


def test_demo_and_full_protocol_configs_load():
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    assert cfg.tasks == ["press_button"]
    assert cfg.image_size == 64
    assert cfg.offline.algos == ["diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora", "aloe", "habc"]
    assert cfg.online.rounds == 2 and cfg.online.episodes_per_round == 10
    assert dc.episodes_for(cfg, "press_button") == 56  # fixed count (Table 4: 60)
    assert cfg.offline.warmup.updates > 0 and cfg.offline.warmup.algo == "cp-bc"
    full = dc.load_demo_config(ROOT / "config" / "full_protocol.yaml")
    assert sorted(full.tasks) == sorted(dc.TASKS)
    assert full.eval.trials >= 50
    assert set(full.offline.algos) == set(registry.offline_names())
    # Table 4 sizes at scale 1
    assert [dc.episodes_for(full, t) for t in dc.TASKS] == [60, 100, 100, 60, 60]
    # the five-task online comparison: the demo's recipe (same data, warm-up, BORA row, online rounds)
    cmp = dc.load_demo_config(ROOT / "config" / "online_comparison.yaml")
    assert sorted(cmp.tasks) == sorted(dc.TASKS) and cmp.offline.algos == ["bora"]
    assert (cmp.collect, cmp.offline.overrides, cmp.offline.updates) == (
        cfg.collect,
        cfg.offline.overrides,
        cfg.offline.updates,
    )
    # (threads: auto in demo.yaml is the CPU probe's choice on this machine; online_comparison.yaml fixes 2)
    assert dataclasses.replace(cmp.offline.warmup, threads=0) == dataclasses.replace(cfg.offline.warmup, threads=0)
    assert cmp.online.enabled and cmp.online.rounds == 2 and cmp.online.rows == ["bora-residual"]
    assert (cmp.online.max_updates, cmp.online.episodes_per_round) == (cfg.online.max_updates, 10)


def test_quick_and_task_overrides():
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml", quick=True, tasks=["pull_tissue"])
    assert cfg.tasks == ["pull_tissue"]
    assert cfg.collect.episodes == 4 and dc.episodes_for(cfg, "pull_tissue") == 4
    assert cfg.offline.updates == dc.QUICK_OVERRIDES["offline"]["updates"]
    assert cfg.eval.trials == 1
    # quick keeps the demo's quality groups and offline overrides it does not name (deep merge)
    assert [g.name for g in cfg.collect.quality] == ["clean", "noisy", "hesitant", "suboptimal"]
    assert cfg.offline.overrides["k"] == 8 and cfg.offline.overrides["batch_size"] == 4


@pytest.mark.parametrize(
    "data, match",
    [
        ({"tasks": ["fold_laundry"]}, "tasks"),
        ({"offline": {"algos": ["cp-bc"]}}, "from_algo"),
        ({"offline": {"algos": ["ppo"]}}, "algos"),
        ({"eval": {"trials": 0}}, "trials"),
        ({"collect": {"quality": [{"name": "x", "fraction": 0.0}]}}, "quality"),
        ({"image_size": "big"}, "image_size"),
        ({"onlne": {}}, "onlne"),
        ({"offline": {"warmup": {"algo": "sft"}}}, "warmup.algo"),
        ({"offline": {"warmup": {"updates": -1}}}, "warmup.updates"),
        ({"offline": {"warmup": {"episodes": "best"}}}, "warmup.episodes"),
    ],
)
def test_bad_config_names_the_field(tmp_path, data, match):
    p = tmp_path / "d.yaml"
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=match):
        dc.load_demo_config(p)


def test_split_groups_largest_remainder():
    g = [dc.QualityGroup(name=n, fraction=f) for n, f in (("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.1))]
    assert [(x.name, n) for x, n in dc.split_groups(30, g)] == [("a", 12), ("b", 9), ("c", 6), ("d", 3)]
    # 4 episodes: raw 1.6 1.2 0.8 0.4 -> floors 1 1 0 0, the two largest remainders (0.8, 0.6) get one more
    assert [(x.name, n) for x, n in dc.split_groups(4, g)] == [("a", 2), ("b", 1), ("c", 1)]
    assert sum(n for _, n in dc.split_groups(7, g)) == 7


def test_plan_jobs_and_wiring(tmp_path):
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    pl = dp.plan(cfg, tmp_path)
    st = pl.stages
    # 4 quality groups, 1 shared warm-up, 6 offline rows, 2 online rows (BORA-Full and the registry's other
    # online demo row, bc-residual), (6 + 2) x 2 evaluations, the report
    assert [len(st[s]) for s in dc.STAGES] == [4, 1, 6, 2, 16, 1]
    assert [j.name for j in st["online"]] == ["online-press_button-bora-residual", "online-press_button-bc-residual"]
    # every row fine-tunes the shared warm-up run
    warm = str(tmp_path / "runs" / "press_button" / "warmup")
    w = st["warmup"][0].argv
    assert w[w.index("--out") + 1] == warm and w[w.index("--algo") + 1] == cfg.offline.warmup.algo
    assert w[w.index("--updates") + 1] == str(cfg.offline.warmup.updates)
    assert w[w.index("--episodes") + 1] == cfg.offline.warmup.episodes == "clean"  # the rows see all episodes
    assert not any("--episodes" in j.argv for j in st["offline"])
    assert w[w.index("--config") + 1] == str(tmp_path / "configs" / "warmup.yaml")
    assert all(j.argv[j.argv.index("--init-from") + 1] == warm for j in st["offline"])
    assert not any("warmup" in j.argv[j.argv.index("--run") + 1] for j in st["eval"])  # not a table row
    # quality groups fill one dataset at the same time in consecutive id ranges (40/8/4/4), disjoint seeds
    seeds = [int(j.argv[j.argv.index("--seed") + 1]) for j in st["collect"]]
    assert len(set(seeds)) == 4
    counts = [int(j.argv[j.argv.index("--episodes") + 1]) for j in st["collect"]]
    firsts = [int(j.argv[j.argv.index("--first-episode") + 1]) for j in st["collect"]]
    assert counts == [40, 8, 4, 4] and firsts == [0, 40, 48, 52]
    assert "--mixed" in st["collect"][1].argv and "--mixed" not in st["collect"][0].argv
    online = st["online"][0].argv
    assert online[:2] == ["train", "online"] and online[online.index("--env") + 1] == cfg.online.env == "ros"
    assert online[online.index("--timeout") + 1] == f"{cfg.online.timeout_s:g}"
    assert online[online.index("--offline-run") + 1] == str(tmp_path / "runs" / "press_button" / "bora")
    outs = [j.argv[j.argv.index("--out") + 1] for j in st["eval"]]
    assert len(set(outs)) == len(outs)
    assert all(o.startswith(str(tmp_path / "eval")) for o in outs)
    # the critic value is recorded only for the configured runs on the first object set
    with_values = [j.name for j in st["eval"] if "--no-values" not in j.argv]
    assert with_values == ["eval-press_button-bora-standard"]
    assert st["report"][0].argv[:2] == ["report", str(tmp_path / "eval")]


def test_extra_online_rows_share_the_offline_run(tmp_path):
    """An extra online row is the main row's command with its own --algo and run directory, evaluated too."""
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    cfg.online.extra_algos = ["habc", "bora-residual"]  # the main row is not repeated
    assert cfg.online.rows == ["bora-residual", "habc"]
    st = dp.plan(cfg, tmp_path).stages
    main, extra = (j.argv for j in st["online"])
    assert extra == [a.replace("bora-residual", "habc") for a in main]
    assert extra[extra.index("--out") + 1] == str(tmp_path / "runs" / "press_button" / "habc-online")
    names = {j.name for j in st["eval"]}
    assert {"eval-press_button-habc-online-standard", "eval-press_button-habc-online-unseen"} <= names
    cfg.online.extra_algos = ["cp-bc"]  # offline only: refused with the field's name
    with pytest.raises(ConfigError, match="unknown online algorithm 'cp-bc'"):
        cfg.validate()


def test_plan_without_warmup_trains_rows_from_scratch(tmp_path):
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    cfg.offline.warmup.updates = 0
    st = dp.plan(cfg, tmp_path).stages
    assert st["warmup"] == [] and not any("--init-from" in j.argv for j in st["offline"])


def test_checkpoint_selection_plan_configs_and_seed_checks(tmp_path):
    """offline.select (bora select): the rows keep every candidate checkpoint (the warm-up does not), a select
    job per row runs after its training on the tuning seeds; seeds overlapping the evaluation's are refused."""
    from bora_trainer.config_io import read_yaml

    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    assert cfg.offline.select.every == 0 and not any(j.name.startswith("select-") for j in dp.plan(cfg, tmp_path)
                                                     .stages["offline"])
    cfg.offline.select = dc.SelectSpec(every=100, trials=20, seed0=200_000, num_envs=4)
    cfg.validate()
    st = dp.plan(cfg, tmp_path).stages
    sel = [j for j in st["offline"] if j.name.startswith("select-")]
    assert [j.name for j in sel] == [f"select-press_button-{a}" for a in cfg.offline.algos]
    for j, algo in zip(sel, cfg.offline.algos):
        assert j.needs == [f"offline-press_button-{algo}"]
        a = j.argv
        assert a[:3] == ["select", "--run", str(tmp_path / "runs" / "press_button" / algo)]
        assert (a[a.index("--seed0") + 1], a[a.index("--trials") + 1], a[a.index("--num-envs") + 1]) == \
            ("200000", "20", "4")
        assert "--max-steps" not in a  # demo.yaml: the task's own limit
    cfg.eval.max_steps = 40  # a step cap on evaluation caps the selection's rollouts too
    assert all(j.argv[j.argv.index("--max-steps") + 1] == "40"
               for j in dp.plan(cfg, tmp_path).stages["offline"] if j.name.startswith("select-"))
    cfg.eval.max_steps = 0
    dp.write_stage_configs(cfg, tmp_path)
    rows, warm = read_yaml(tmp_path / "configs" / "offline.yaml"), read_yaml(tmp_path / "configs" / "warmup.yaml")
    assert (rows["ckpt_every"], rows["keep_last"]) == (100, 0)
    assert (warm["ckpt_every"], warm["keep_last"]) != (100, 0)
    for bad, msg in ((dict(seed0=cfg.eval.seed0 + 5), "overlap the evaluation seeds"),
                     (dict(every=300), "must divide offline.updates"), (dict(trials=0), "trials and num_envs")):
        cfg.offline.select = dc.SelectSpec(**{"every": 100, **bad})
        with pytest.raises(ConfigError, match=msg):
            cfg.validate()


def test_stage_configs_warmup_overrides(tmp_path):
    """OUT/configs/warmup.yaml = the rows' offline config with the warm-up's own overrides on top."""
    from bora_trainer.config_io import read_yaml

    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    cfg.offline.warmup.overrides = {"expert_lr": 0.5, "model": {"use_proprio": False}}
    dp.write_stage_configs(cfg, tmp_path)
    rows, warm = read_yaml(tmp_path / "configs" / "offline.yaml"), read_yaml(tmp_path / "configs" / "warmup.yaml")
    assert rows["batch_size"] == cfg.offline.overrides["batch_size"] == warm["batch_size"]
    assert warm["expert_lr"] == 0.5 and rows["expert_lr"] == cfg.offline.overrides["expert_lr"]
    assert warm["model"]["use_proprio"] is False and rows["model"]["use_proprio"] is True
    assert warm["model"]["vlm"] == rows["model"]["vlm"]  # deep merge: the rest of `model` is kept


def test_plan_cli_prints_commands(capsys):
    assert cli.main(["--quick", "--plan", "--out", "/nonexistent/demo"]) == 0
    out = capsys.readouterr().out
    assert "bora train offline --algo bora " in out and "bora report " in out
    assert "bora train online " in out and " --algo bc-residual " in out  # the registry's baseline row


def test_run_jobs_skips_done_jobs_and_reports_failures(tmp_path):
    """Real `bora` subprocesses: a job with a done marker is not rerun; a failing one names its log."""
    (tmp_path / "stages").mkdir()
    bad = ["eval", "--run", str(tmp_path / "missing_run"), "--task", "press_button", "--out", str(tmp_path / "x.json")]
    done = dp.Job("already-done", bad, stage="eval")
    dr.marker(tmp_path, "already-done").write_text("{}")
    res = dr.run_jobs([done], tmp_path, 2, {"eval": 1}, progress=False)
    assert res["skipped"] == 1 and res["failed"] == [] and res["job_seconds"] == {}
    res = dr.run_jobs([dp.Job("fails", bad, stage="eval")], tmp_path, 2, {"eval": 1}, progress=False)
    assert [f["job"] for f in res["failed"]] == ["fails"] and res["failed"][0]["rc"] == 2
    log = Path(res["failed"][0]["log"]).read_text()
    assert "missing_run" in log and "not found" in log
    assert not dr.marker(tmp_path, "fails").exists()
    # a job whose dependency no job provides is reported, not waited on forever
    res = dr.run_jobs([dp.Job("orphan", bad, needs=["never"], stage="eval")], tmp_path, 2, {}, progress=False)
    assert res["failed"][0]["error"] == "unsatisfiable dependencies: ['never']"
    # ... unless it is outside this run (`bora demo --stages`): then it is taken as done
    res = dr.run_jobs([dp.Job("orphan", bad, needs=["never"], stage="eval")], tmp_path, 2, {}, assume_done={"never"},
                      progress=False)
    assert [f["job"] for f in res["failed"]] == ["orphan"] and res["failed"][0]["rc"] == 2


def test_link_orders_the_demo_by_the_paths_jobs_read_and_write(tmp_path):
    """Each job waits for exactly the jobs whose output it reads (hand-written for config/demo.yaml), so an
    offline row's evaluation and the online rows need not wait for the other offline rows."""
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    pl = dp.plan(cfg, tmp_path)
    deps = dr.link(dp.all_jobs(pl), tmp_path)
    t = "press_button"
    collect = [f"collect-{t}-{g}" for g in ("clean", "noisy", "hesitant", "suboptimal")]
    for c in collect:
        assert deps[c] == []  # the groups write one dataset in disjoint id ranges
    assert sorted(deps[f"warmup-{t}"]) == sorted(collect)
    for algo in cfg.offline.algos:  # the dataset and the warm-up run
        assert sorted(deps[f"offline-{t}-{algo}"]) == sorted(collect + [f"warmup-{t}"])
        for oset in ("standard", "unseen"):
            assert deps[f"eval-{t}-{algo}-{oset}"] == [f"offline-{t}-{algo}"]
            assert dr.direct_needs(deps, f"eval-{t}-{algo}-{oset}") == [f"offline-{t}-{algo}"]
    for algo in ("bora-residual", "bc-residual"):  # --offline-run bora, --offline-data the dataset
        assert sorted(deps[f"online-{t}-{algo}"]) == sorted(collect + [f"offline-{t}-bora"])
        assert dr.direct_needs(deps, f"online-{t}-{algo}") == [f"offline-{t}-bora"]
        assert deps[f"eval-{t}-{algo}-online-standard"] == [f"online-{t}-{algo}"]
    # the report reads OUT/eval and OUT/runs: every evaluation and every training
    assert set(deps["report"]) == {j.name for s in ("warmup", "offline", "online", "eval") for j in pl.stages[s]}
    ranks = dr.dependents(deps)
    assert ranks[f"offline-{t}-bora"] == 2 + 2 + 4 + 1  # its evals, the online rows, their evals, the report
    assert ranks[f"offline-{t}-cp-bc"] == 2 + 1 and ranks["report"] == 0
    # a later job never overwrites what an earlier one reads or writes, unless both are collect groups
    a = dp.Job("a", ["eval", "--run", str(tmp_path / "runs" / "x"), "--out", str(tmp_path / "eval" / "a.json")])
    b = dp.Job("b", ["train", "offline", "--out", str(tmp_path / "runs" / "x")])
    c = dp.Job("c", ["report", str(tmp_path / "eval"), "--out", str(tmp_path / "report")])
    d = dp.Job("d", ["sim", "collect", "--out", str(tmp_path / "data"), "--first-episode", "0"])
    e = dp.Job("e", ["sim", "collect", "--out", str(tmp_path / "data")])  # appends: after every other writer
    assert dr.link([a, b, c, d, e], tmp_path) == {"a": [], "b": ["a"], "c": ["a"], "d": [], "e": ["d"]}


def test_run_jobs_runs_a_job_once_its_inputs_are_done_within_the_core_budget(tmp_path):
    """Real `bora sim collect` subprocesses, timed by the runner: two 1-core jobs overlap on 2 cores, a
    2-core job runs alone, a job that reads another's dataset starts after it ends; on 1 core nothing
    overlaps. The two groups that filled one dataset at once wrote the ids and seeds they were given."""
    from bora_policy.common.episodes import episode_ids, read_info

    def collect(name, data, first=None, seed=0, cpus=0):
        argv = ["sim", "collect", "--task", "press_button", "--episodes", "1", "--out", str(tmp_path / data),
                "--seed", str(seed), "--image-size", "16"]
        return dp.Job(name, argv + (["--first-episode", str(first)] if first is not None else []), stage="collect",
                      cpus=cpus)

    a, b = collect("a", "d1", 0, 0), collect("b", "d1", 1, 10_000)
    wide = collect("wide", "d2", cpus=2)
    after = collect("after", "d1")  # appends to d1: waits for both groups
    jobs = [a, b, wide, after]
    assert dr.link(jobs, tmp_path) == {"a": [], "b": [], "wide": [], "after": ["a", "b"]}
    res = dr.run_jobs(jobs, tmp_path, 2, {"collect": 4}, progress=False)
    assert res["failed"] == []
    sp = res["spans"]

    def overlap(x, y):
        return sp[x][0] < sp[y][1] and sp[y][0] < sp[x][1]

    assert overlap("a", "b")
    assert not any(overlap("wide", o) for o in ("a", "b", "after"))
    assert sp["after"][0] >= max(sp["a"][1], sp["b"][1])
    assert episode_ids(tmp_path / "d1") == [0, 1, 2]
    assert [read_info(tmp_path / "d1", i)["seed"] for i in (0, 1)] == [0, 10_000]
    # one core: one job at a time, in order of how many jobs wait on each
    out1 = tmp_path / "one"
    res = dr.run_jobs([collect("x", "one/d", 0), collect("y", "one/d", 1, 5)], out1, 1, {"collect": 4}, progress=False)
    assert res["failed"] == [] and res["spans"]["x"][1] <= res["spans"]["y"][0]


def _result(d: Path, method: str, oset: str, s: int, n: int, task: str = "press_button") -> None:
    d.mkdir(parents=True, exist_ok=True)
    r = {"method": method, "task": task, "object_set": oset, "trials": n, "successes": s, "episodes": []}
    (d / f"{task}__{method}__{oset}.json").write_text(json.dumps(r))


def test_success_table_and_claims(tmp_path):
    ev = tmp_path / "eval"
    _result(ev, "CP Base", "standard", 5, 10)
    _result(ev, "CP Base", "standard", 1, 10, task="open_box")  # summed over tasks: 6/20
    _result(ev, "BORA-Offline", "standard", 7, 20)
    _result(ev, "CP + Decoupled Critic", "standard", 6, 20)
    _result(ev, "BORA-Full", "standard", 7, 20)
    _result(ev, "ALOE", "standard", 2, 10)  # an offline and an online ALOE row: two lines, never pooled
    _result(ev, "ALOE (online)", "standard", 9, 10)
    (ev / "notes.json").write_text("[1, 2]")  # not an eval result: ignored
    table = ds.success_table(ev)
    assert table["CP Base"]["standard"] == {"successes": 6, "trials": 20}
    claims = {c["claim"]: c for c in ds.check_claims(table)}
    assert claims["BORA-Offline > CP Base"]["held"] is True  # 35% > 30%
    assert claims["CP Base > CP + Decoupled Critic"]["held"] is False  # 30% = 30%: not strictly greater
    assert claims["BORA-Full > BORA-Offline"]["held"] is False  # 35% = 35%
    cfg = dc.load_demo_config(ROOT / "config" / "demo.yaml")
    s = ds.write_summary(tmp_path, cfg, {"eval": {"status": "done", "seconds": 3.0, "jobs": 5}}, 10.0, True)
    md = (tmp_path / "summary.md").read_text()
    assert "| CP Base | 6/20 (30%) |" in md and "NOT HELD" in md
    assert "| ALOE | 2/10 (20%) |\n| ALOE (online) | 9/10 (90%) |" in md  # the registry's order
    assert s["claims"] and json.loads((tmp_path / "summary.json").read_text())["ok"] is True
    # the machine a rerun must match: the CPU's bf16 support decides the online updates' precision
    m = json.loads((tmp_path / "summary.json").read_text())["machine"]
    from bora_policy.runtime.cpu_probe import cpu_flags, has_native_bf16

    assert m["native_bf16"] == has_native_bf16(cpu_flags())
    assert m["online_precision_auto"] == ("bf16" if m["native_bf16"] else "fp32")
    assert f"(online updates with precision auto: {m['online_precision_auto']})" in md


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 4-5 min on a shared 2-core CPU, above the suite's 300 s default
def test_quick_demo_end_to_end(tmp_path):
    """`bora demo --quick` runs every stage with the real commands and reports every method it trained."""
    out = tmp_path / "demo"
    assert cli.main(["--quick", "--out", str(out), "--no-progress"]) == 0
    report = (out / "report" / "report.md").read_text()
    header = [ln for ln in report.splitlines() if ln.startswith("| Task |")]
    assert header, report
    for method in ("VITRA (Diffusion)", "CP Base", "CP + Decoupled Critic", "BORA-Offline", "BORA-Full"):
        assert all(method in h for h in header), (method, header)
    assert (out / "report" / "success_bars.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and all(summary["stages"][s]["status"] == "done" for s in dc.STAGES)
    for algo in ("diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora"):
        assert (out / "runs" / "press_button" / algo / "policy" / "model.safetensors").is_file()
    # a rerun with --resume reuses every job except the report
    assert cli.main(["--quick", "--out", str(out), "--resume", "--no-progress"]) == 0
    again = json.loads((out / "summary.json").read_text())
    for stage in ("collect", "offline", "online", "eval"):  # every job of the first run, none run again
        assert again["stages"][stage]["skipped"] == summary["stages"][stage]["jobs"] > 0, stage
    assert again["stages"]["warmup"]["skipped"] == len(summary["stages"]["warmup"].get("job_seconds", {}))
    # the demo's export fallback (a run without policy/) rebuilds exactly what the trainer exported
    import shutil

    from safetensors.torch import load_file

    run = out / "runs" / "press_button" / "bora"
    copy = tmp_path / "bora_copy"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "policy")
    shutil.rmtree(copy / "critic")
    assert dp.ensure_exported(copy, out / "data" / "press_button") is True
    assert dp.ensure_exported(copy, out / "data" / "press_button") is False  # already there
    for sub, name in (("policy", "model.safetensors"), ("critic", "critic.safetensors")):
        a, b = load_file(str(run / sub / name)), load_file(str(copy / sub / name))
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_auto_threads_of_the_warmup_are_shared_by_the_warmups_that_run_at_once(monkeypatch):
    """threads: auto = the probe's threads (here pinned to 2 by BORA_NUM_THREADS) divided by the warm-ups that run
    together: one task -> one warm-up with 2 threads; five tasks, or one task with 3 training seeds, run
    offline.parallel = 2 at a time -> 1 thread each (2 x 2 threads on 2 cores ran 3-5x slower)."""
    from bora_trainer.config_io import read_yaml
    from bora_trainer.demo.config import resolve_auto_threads, warmup_jobs

    monkeypatch.setenv("BORA_NUM_THREADS", "2")

    def warm(data):
        data = {**data, "offline": {"parallel": 2, "warmup": {"threads": "auto"}}}
        return resolve_auto_threads(data)["offline"]["warmup"]["threads"]

    five = ["pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button"]
    assert warmup_jobs({}) == 1 and warm({}) == 2  # the default: press_button only
    assert warmup_jobs({"tasks": five}) == 5 and warm({"tasks": five}) == 1
    seeds = {"enabled": True, "seeds": [0, 1, 2], "seed_tasks": ["press_button"]}
    assert warmup_jobs({"tasks": ["press_button"], "protocol": seeds}) == 3
    assert warm({"tasks": ["press_button"], "protocol": seeds}) == 1
    assert warmup_jobs({"tasks": ["press_button"], "protocol": {**seeds, "enabled": False}}) == 1
    ev = read_yaml(dc.REPO_ROOT / "config" / "evidence.yaml")  # 5 tasks + 2 extra seeds on 2 tasks
    assert warmup_jobs(ev) == 9
    ev_cfg = dc.load_demo_config(dc.REPO_ROOT / "config" / "evidence.yaml")
    assert len(dp.plan(ev_cfg, Path("/tmp/unused")).stages["warmup"]) == 9  # the plan holds as many
    assert ev_cfg.offline.warmup.threads == 1
