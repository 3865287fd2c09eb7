"""The evidence protocol (config/evidence.yaml -> bora demo jobs) and its report (bora report evidence)."""

import json

import pytest
import yaml

from bora_trainer import protocol
from bora_trainer.cli import main as bora_main
from bora_trainer.config_io import ConfigError
from bora_trainer.demo.config import REPO_ROOT, load_demo_config
from bora_trainer.demo.plan import Job, plan, write_stage_configs
from bora_trainer.evidence import build


@pytest.fixture
def evidence_cfg(monkeypatch):
    monkeypatch.setenv("BORA_NUM_THREADS", "1")  # threads: auto without the CPU probe
    return load_demo_config(REPO_ROOT / "config" / "evidence.yaml")


def _jobs(pl, stage):
    return {j.name: j.argv for j in pl.stages[stage]}


def _arg(argv, flag):
    return argv[argv.index(flag) + 1]


def test_evidence_config_plans_the_protocol(evidence_cfg, tmp_path):
    cfg = evidence_cfg
    assert len(cfg.tasks) == 5 and cfg.eval.trials >= 50 and cfg.eval.object_sets == ["standard", "unseen"]
    assert cfg.offline.algos == ["diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora", "aloe", "habc"]
    pl = plan(cfg, tmp_path)
    ev = _jobs(pl, "eval")
    main_evals = [a for n, a in ev.items() if n.startswith("eval-") and not any(f"-{t}-" in n for t in
                                                                                ("s1", "s2", "o2", "o3"))]
    # tasks x rows (6 offline + BORA-Full, ALOE (online), HABC (online) + the warm-up) x object sets
    assert len(main_evals) == 5 * 10 * 2
    # the shared warm-up as a reference row under its own name (it is trained as cp-bc, i.e. CP Base's algo)
    w = ev["eval-open_box-warmup-unseen"]
    assert _arg(w, "--run").endswith("runs/open_box/warmup") and _arg(w, "--method") == "Warm-up"
    assert _arg(w, "--out").endswith("/eval/open_box__warmup__unseen.json") and _arg(w, "--seed0") == "300000"
    assert "--method" not in ev["eval-open_box-cp-bc-unseen"]
    assert {_arg(a, "--seed0") for a in ev.values()} == {"300000"}  # paired: the same seeds for every row
    assert {_arg(a, "--trials") for a in main_evals} == {"50"}
    # the main table's BORA-Full is the paper's budget (round 2), the online run trains 4 rounds
    full = ev["eval-press_button-bora-residual-online-standard"]
    assert _arg(full, "--residual").endswith("bora-residual-online/trainer/rounds/round_02")
    # Fig. 11: values of BORA-Offline's and of BORA-Full's critic (round 2's, saved with that residual) on the
    # standard set only; no other row pays for them
    assert "--no-values" not in full and "--no-values" not in ev["eval-press_button-bora-standard"]
    assert "--no-values" in ev["eval-press_button-bora-residual-online-unseen"]
    assert "--no-values" in ev["eval-press_button-cp-bc-standard"]
    on = _jobs(pl, "online")
    assert _arg(on["online-press_button-bora-residual"], "--rounds") == "4"
    # online ALOE / HABC: the same base run and the paper's budget (2 x 10), evaluated into their own files
    for algo in ("aloe", "habc"):
        a = on[f"online-open_box-{algo}"]
        assert (_arg(a, "--algo"), _arg(a, "--rounds"), _arg(a, "--episodes-per-round")) == (algo, "2", "10")
        assert _arg(a, "--offline-run").endswith("open_box/bora")
        out = _arg(ev[f"eval-open_box-{algo}-online-unseen"], "--out")
        assert out.endswith(f"/eval/open_box__{algo}-online__unseen.json")
    # 3 online rows per task + BORA-Full for seeds 1, 2 on two tasks + BORA-Full's online runs 2, 3 per task
    assert len(on) == 5 * 3 + 2 * 2 + 5 * 2
    # learning curve: rounds 1..4 of every task into eval_curve/
    curve = [n for n in ev if n.startswith("curve-")]
    assert len(curve) == 5 * 4
    assert _arg(ev["curve-open_box-r3"], "--method") == "BORA-Full@r3"
    assert "/eval_curve/" in _arg(ev["curve-open_box-r3"], "--out")
    # training seeds 1, 2 on two tasks: warm-up, cp-bc, bora, online; evaluated into eval_seeds/
    warm = _jobs(pl, "warmup")
    assert {"warmup-press_button-s1", "warmup-press_button-s2", "warmup-pull_tissue-s1",
            "warmup-pull_tissue-s2"} <= set(warm)
    off = _jobs(pl, "offline")
    a = off["offline-pull_tissue-bora-s2"]
    assert _arg(a, "--config").endswith("offline_s2.yaml") and _arg(a, "--init-from").endswith("seed2/warmup")
    o2 = on["online-pull_tissue-bora-residual-s2"]
    # its own online episodes: after the online runs 2, 3 (seeds 1000, 2000), 1000 apart (bridge seeds 10_000 + seed
    # + i); --seed 2 shared 39 of 40 initial states with the main run's
    assert _arg(o2, "--seed") == "4000" and _arg(o2, "--offline-run").endswith("pull_tissue/seed2/bora")
    assert _arg(on["online-press_button-bora-residual-s1"], "--seed") == "3000"
    e = ev["eval-press_button-bora-residual-online-s1-standard"]
    assert "/eval_seeds/" in _arg(e, "--out") and _arg(e, "--residual").endswith("seed1/bora-residual-online/"
                                                                                 "trainer/rounds/round_02")
    evid = _jobs(pl, "report")["evidence"]
    assert _arg(evid, "--episodes-per-round") == "10" and _arg(evid, "--eval-seeds") == "300000..300049"


def test_checkpoint_selection_for_every_training_seed(evidence_cfg, tmp_path):
    """offline.select with the protocol's extra training seeds: every seed's row gets its own select job on the
    same tuning seeds, after its own training and before the online run and the evaluations that read it."""
    from bora_trainer.demo.config import SelectSpec
    from bora_trainer.demo.run import link

    cfg = evidence_cfg
    cfg.offline.select = SelectSpec(every=100, trials=20, seed0=600_000, num_envs=4)
    cfg.validate()
    pl = plan(cfg, tmp_path)
    sel = {j.name: j for j in pl.stages["offline"] if j.name.startswith("select-")}
    assert len(sel) == 5 * 6 + 2 * 2 * 2  # every row of every task + cp-bc and bora for seeds 1, 2 on two tasks
    j, main = sel["select-pull_tissue-bora-s2"], sel["select-pull_tissue-bora"]
    assert _arg(j.argv, "--run") == str(tmp_path / "runs" / "pull_tissue" / "seed2" / "bora")
    assert j.needs == ["offline-pull_tissue-bora-s2"]
    assert {k: _arg(j.argv, k) for k in ("--seed0", "--trials", "--num-envs", "--task")} == \
        {k: _arg(main.argv, k) for k in ("--seed0", "--trials", "--num-envs", "--task")} == \
        {"--seed0": "600000", "--trials": "20", "--num-envs": "4", "--task": "pull_tissue"}
    from bora_trainer.demo.plan import all_jobs

    deps = link(all_jobs(pl), tmp_path)
    assert "select-pull_tissue-bora-s2" in deps["online-pull_tissue-bora-residual-s2"]
    assert "select-pull_tissue-cp-bc-s2" in deps["eval-pull_tissue-cp-bc-s2-standard"]
    assert "select-pull_tissue-bora-s2" not in deps["online-pull_tissue-bora-residual-s1"]
    write_stage_configs(cfg, tmp_path)
    s2 = yaml.safe_load((tmp_path / "configs" / "offline_s2.yaml").read_text())
    assert (s2["seed"], s2["ckpt_every"], s2["keep_last"]) == (2, 100, 0)  # every candidate kept


def test_selection_seeds_are_a_range_of_their_own(evidence_cfg, tmp_path):
    """offline.select chooses checkpoints on seeds of its own by default; seeds overlapping the tuning seeds (where
    `bora demo --tuning` evaluates: a row would be scored on the seeds it was selected on) are refused by name."""
    from bora_trainer.demo.config import SelectSpec

    cfg = evidence_cfg
    cfg.offline.select = SelectSpec(every=100)
    cfg.validate()
    cfg.protocol.tuning = True
    pl = plan(cfg, tmp_path)
    sel = {_arg(j.argv, "--seed0") for j in pl.stages["offline"] if j.name.startswith("select-")}
    assert sel == {"600000"} and {_arg(a, "--seed0") for a in _jobs(pl, "eval").values()} == {"200000"}
    # tuning seeds 200000..200049 (tuning_seed0 200000; eval.trials and seed_trials 50, curve_trials 20)
    for seed0 in (200_049, 199_971):  # 200049..200078 and 199971..200000: one seed in common each
        cfg.offline.select = SelectSpec(every=100, trials=30, seed0=seed0)
        with pytest.raises(ConfigError, match=rf"DemoConfig.offline.select.seed0 {seed0}: the selection's seeds "
                                              rf"{seed0}..{seed0 + 29} overlap the tuning seeds 200000..200049"):
            cfg.validate()
    for seed0 in (200_050, 199_970):  # just past either end
        cfg.offline.select = SelectSpec(every=100, trials=30, seed0=seed0)
        cfg.validate()


def test_tuning_uses_the_tuning_seeds(evidence_cfg, tmp_path):
    evidence_cfg.protocol.tuning = True
    ev = _jobs(plan(evidence_cfg, tmp_path), "eval")
    assert {_arg(a, "--seed0") for a in ev.values()} == {"200000"}


def test_seed_configs_written(evidence_cfg, tmp_path):
    write_stage_configs(evidence_cfg, tmp_path)
    for s in (0, 1, 2):
        name = "offline.yaml" if s == 0 else f"offline_s{s}.yaml"
        assert yaml.safe_load((tmp_path / "configs" / name).read_text())["seed"] == s
    w0 = yaml.safe_load((tmp_path / "configs" / "warmup.yaml").read_text())
    w1 = yaml.safe_load((tmp_path / "configs" / "warmup_s1.yaml").read_text())
    assert (w0["seed"], w1["seed"]) == (0, 1) and {**w1, "seed": 0} == w0


def test_warmup_row_needs_a_warmup(evidence_cfg):
    evidence_cfg.offline.warmup.updates = 0
    evidence_cfg.offline.rollouts.episodes = 0
    with pytest.raises(ConfigError, match=r"DemoConfig.eval.warmup_row: there is no warm-up run"):
        evidence_cfg.validate()
    evidence_cfg.eval.warmup_row = False
    evidence_cfg.validate()


def test_protocol_validation(monkeypatch, tmp_path):
    monkeypatch.setenv("BORA_NUM_THREADS", "1")
    base = yaml.safe_load((REPO_ROOT / "config" / "evidence.yaml").read_text())
    for change, msg in (({"tuning_seed0": 300010}, "overlap the evaluation seeds"),
                        ({"seed_tasks": ["nope"]}, "seed_tasks"),
                        ({"seeds": [0, 0]}, "distinct")):
        data = {**base, "protocol": {**base["protocol"], **change}}
        f = tmp_path / "c.yaml"
        f.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError, match=msg):
            load_demo_config(f)
    assert protocol.validate(load_demo_config(REPO_ROOT / "config" / "demo.yaml"), ()) == []  # disabled


def test_plain_demo_plan_is_unchanged(monkeypatch, tmp_path):
    monkeypatch.setenv("BORA_NUM_THREADS", "1")
    pl = plan(load_demo_config(REPO_ROOT / "config" / "demo.yaml"), tmp_path)
    assert [j.name for j in pl.stages["report"]] == ["report"]
    assert not any(n.startswith("curve-") for n in _jobs(pl, "eval"))
    assert isinstance(pl.stages["eval"][0], Job)


def _write_eval(path, method, task, oset, outcomes, seed0=100, values=None, settings=None):
    eps = []
    for i, ok in enumerate(outcomes):
        ep = {"seed": seed0 + i, "success": bool(ok), "steps": 12}
        if values is not None:
            ep["values"] = values(i, ok)
        eps.append(ep)
    path.parent.mkdir(parents=True, exist_ok=True)
    res = {"method": method, "task": task, "object_set": oset, "trials": len(outcomes),
           "successes": int(sum(outcomes)), "episodes": eps}
    path.write_text(json.dumps(res if settings is None else {**res, "settings": settings}))


def test_evidence_report_hand_computed(tmp_path):
    out = tmp_path / "demo"
    ev = out / "eval"
    # task a: BORA-Offline 8/10, CP Base 4/10 (paired: offline wins seeds 0-3, both succeed on 4-7)
    _write_eval(ev / "a_off.json", "BORA-Offline", "press_button", "standard", [1] * 8 + [0] * 2,
                values=lambda i, ok: [float(ok)] * 12)
    _write_eval(ev / "a_cp.json", "CP Base", "press_button", "standard", [0] * 4 + [1] * 4 + [0] * 2)
    # task b: both 5/10 on the same seeds -> difference 0
    _write_eval(ev / "b_off.json", "BORA-Offline", "pull_tissue", "standard", [1] * 5 + [0] * 5,
                values=lambda i, ok: [0.5] * 12)
    _write_eval(ev / "b_cp.json", "CP Base", "pull_tissue", "standard", [1] * 5 + [0] * 5)
    # training seeds 1, 2 of press_button (the main run is seed 0)
    for s, (x, y) in {1: ([1] * 6 + [0] * 4, [1] * 6 + [0] * 4), 2: ([1] * 10, [0] * 10)}.items():
        _write_eval(out / "eval_seeds" / f"press_button__bora@s{s}__standard.json", "BORA-Offline", "press_button",
                    "standard", x)
        _write_eval(out / "eval_seeds" / f"press_button__cp-bc@s{s}__standard.json", "CP Base", "press_button",
                    "standard", y)
    _write_eval(out / "eval_curve" / "press_button__bora-residual-online@r1__standard.json", "BORA-Full@r1",
                "press_button", "standard", [1] * 4 + [0])  # the curve's 5 seeds: 100..104
    # the warm-up reference row on task a: 7/10, CP Base 4/10 -> CP Base - Warm-up = -0.3 on the same seeds
    _write_eval(ev / "a_warm.json", "Warm-up", "press_button", "standard", [1] * 7 + [0] * 3)
    # BORA-Full's online critic on task a: V ranks the 6 failures above the 4 successes at every step
    _write_eval(ev / "a_full.json", "BORA-Full", "press_button", "standard", [1] * 4 + [0] * 6,
                values=lambda i, ok: [1.0 - ok] * 12)
    res = build(out, n_boot=2000)
    (w,) = [x for x in res["paired"] if x["claim"] == "CP Base - Warm-up"]
    assert [(r["task"], r["a"], r["b"]) for r in w["tasks"]] == [("press_button", 4, 7)]
    assert w["tasks"][0]["diff"] == pytest.approx(-0.3) and w["pooled"]["tasks"] == 1
    # discordant pairs: seeds 0-3 warm-up only, 4-6 both, 7 CP only -> b = 1, c = 4: p = 2 * 6/32
    assert w["tasks"][0]["mcnemar_p"] == pytest.approx(12 / 32)
    (d,) = [x for x in res["paired"] if x["claim"] == "BORA-Offline - CP Base"]
    per = {r["task"]: r for r in d["tasks"]}
    assert per["press_button"]["diff"] == pytest.approx(0.4) and per["pull_tissue"]["diff"] == 0.0
    assert per["press_button"]["mcnemar_p"] == pytest.approx(2 / 16)  # b = 4, c = 0: 2 * (1/2)^4
    assert d["pooled"]["diff"] == pytest.approx(0.2) and d["pooled"]["n"] == 20
    # seeds: offline - cp per seed = 0.4 (seed 0), 0.0 (seed 1), 1.0 (seed 2)
    cells = {(c["method"], c["task"]): c for c in res["seeds"]["cells"]}
    assert cells[("BORA-Offline", "press_button")]["rates"] == {0: 0.8, 1: 0.6, 2: 1.0}
    assert cells[("BORA-Offline", "press_button")]["spread"] == pytest.approx(0.4)
    (sc,) = res["seeds"]["claims"]
    assert sc["pooled"]["diff"] == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert sc["pooled"]["ci95"][0] <= 0.0 + 1e-9 and sc["pooled"]["ci95"][1] >= 0.99
    curve = {(r["task"], r["round"]): r for r in res["curve"]}
    assert curve[("press_button", 1)]["successes"] == 4 and curve[("press_button", 1)]["episodes"] == 10
    # round 0 = BORA-Offline on the rounds' seeds 100..104 (it succeeds on 100..107): 5/5, not its cell's 8/10
    assert (curve[("press_button", 0)]["successes"], curve[("press_button", 0)]["trials"]) == (5, 5)
    assert curve[("press_button", 0)]["seeds"] == "rounds"
    # round 1 - BORA-Offline paired on seeds 100..104: (1,1,1,1,0) - (1,1,1,1,1) = -0.2; resampled 5 pairs hold the
    # failure 3+ times with p 5.8% and 4+ times with p 0.7%, none with p 33%: 95% interval [-0.6, 0]
    (cd,) = res["curve_diff"]
    assert (cd["round"], cd["n"], cd["tasks"], cd["per_task"]) == (1, 5, 1, {"press_button": pytest.approx(-0.2)})
    assert cd["diff"] == pytest.approx(-0.2) and cd["bootstrap95"] == pytest.approx([-0.6, 0.0])
    (crit,) = [a for a in res["critic"] if a["group"] == ["BORA-Offline", "press_button"]]
    assert [r["auroc"] for r in crit["auroc"]] == [1.0, 1.0]  # V = 1 on successes, 0 on failures
    (full,) = [a for a in res["critic"] if a["group"][0] == "BORA-Full"]
    assert [r["auroc"] for r in full["auroc"]] == [0.0, 0.0] and not full["target_met"]
    crit_targets = [t for t in res["targets"] if t["target"].startswith("critic AUROC")]
    assert [(t["measured"], t["met"]) for t in crit_targets] == [
        ("1 of 2 tasks (BORA-Offline critic)", False), ("0 of 1 tasks (BORA-Full's online critic)", False)]
    # every paired difference is >= 0 and task a has 4 of 10: P(a resample has none) = 0.6^10 < 2.5%,
    # so the pooled lower bound is >= 0.1 / 2 > 0
    tg = {t["target"]: t for t in res["targets"]}
    assert d["pooled"]["bootstrap95"][0] >= 0.05
    assert tg["pooled BORA-Offline - CP Base lower bound > 0 (standard)"]["met"]


def test_paired_cells_must_be_evaluated_alike(tmp_path, capsys):
    """Cells compared episode by episode on other seeds, with other trials or max_steps, or a cell with a duplicate
    result, are refused with one line naming both files and the field (they were read on whatever seeds they
    shared, or counted twice)."""
    import re

    out = tmp_path / "demo"
    ev = out / "eval"
    st = {"max_steps": None, "replan_steps": 8, "control_hz": 10.0, "num_envs": 1}
    off, cp = ev / "off.json", ev / "cp.json"
    _write_eval(off, "BORA-Offline", "press_button", "standard", [1, 0, 1, 1], settings=st)
    for outcomes, seed0, settings, msg in (
        ([0, 0, 1, 1], 104, st, f"paired cells differ in seeds: {off} (4 seeds 100..103) vs {cp} (4 seeds 104..107)"),
        ([0, 1, 1], 100, st, f"paired cells differ in trials: {off} (4) vs {cp} (3)"),
        ([0, 0, 1, 1], 100, {**st, "max_steps": 50}, f"paired cells differ in max_steps: {off} (None) vs {cp} (50)"),
    ):
        _write_eval(cp, "CP Base", "press_button", "standard", outcomes, seed0=seed0, settings=settings)
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            build(out, n_boot=200)
    assert bora_main(["report", "evidence", str(out), "--n-boot", "200"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bora report evidence: paired cells differ in max_steps: {off} (None) vs {cp} (50)"
    # evaluated alike (num_envs is not compared: the same episodes): read
    _write_eval(cp, "CP Base", "press_button", "standard", [0, 0, 1, 1], settings={**st, "num_envs": 4})
    (d,) = [x for x in build(out, n_boot=200)["paired"] if x["claim"] == "BORA-Offline - CP Base"]
    assert d["tasks"][0]["n"] == 4 and d["tasks"][0]["diff"] == pytest.approx(0.25)
    # the same result twice in one cell: its episodes would count twice
    cp2 = ev / "cp2.json"
    _write_eval(cp2, "CP Base", "press_button", "standard", [0, 0, 1, 1], settings=st)
    msg = f"duplicate results: evaluation seed 100 in both {cp} and {cp2}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        build(out, n_boot=200)
    cp2.unlink()
    # a training seed's pair: its rows evaluated with other max_steps (their seeds may differ: read on shared ones)
    es = out / "eval_seeds"
    s_off, s_cp = es / "press_button__bora@s1__standard.json", es / "press_button__cp-bc@s1__standard.json"
    _write_eval(s_off, "BORA-Offline", "press_button", "standard", [1, 1, 0, 0], settings=st)
    _write_eval(s_cp, "CP Base", "press_button", "standard", [1, 0, 0, 0], settings={**st, "max_steps": 50})
    with pytest.raises(ValueError, match=re.escape(f"paired cells differ in max_steps: {s_off} (None) vs {s_cp} (50)")):
        build(out, n_boot=200)
    _write_eval(s_cp, "CP Base", "press_button", "standard", [1, 0, 0, 0], settings=st)
    assert build(out, n_boot=200)["seeds"]["claims"]
    # two files for one run's cell (the file name's row differs, the method is the same)
    dup = es / "press_button__cp-bc-copy@s1__standard.json"
    _write_eval(dup, "CP Base", "press_button", "standard", [1, 0, 0, 0], settings=st)
    with pytest.raises(ValueError, match=re.escape(f"duplicate results: {dup} and {s_cp} are both CP Base s1 on "
                                                   "press_button/standard")):  # (file order: "-copy@" < "@")
        build(out, n_boot=200)


def test_evidence_cli(tmp_path, capsys):
    out = tmp_path / "demo"
    _write_eval(out / "eval" / "x.json", "BORA-Full", "press_button", "standard", [1, 1, 0])
    _write_eval(out / "eval" / "y.json", "BORA-Offline", "press_button", "standard", [1, 0, 0])
    _write_eval(out / "eval" / "z.json", "ALOE", "press_button", "standard", [0, 0, 1])
    _write_eval(out / "eval" / "w.json", "ALOE (online)", "press_button", "standard", [1, 1, 1])
    assert bora_main(["report", "evidence", str(out), "--eval-seeds", "100..102", "--n-boot", "500"]) == 0
    md = (out / "report" / "evidence.md").read_text()
    assert "Evaluation seeds 100..102" in md and "BORA-Full - BORA-Offline (standard)" in md
    # the offline and the online ALOE row are two cells (1/3 and 3/3), not one pooled 4/6
    assert "| Task | BORA-Offline | BORA-Full | ALOE | ALOE (online) |" in md and "4/6" not in md
    cells = json.loads((out / "report" / "evidence.json").read_text())["cells"]
    assert cells["standard|press_button|ALOE"] == {"successes": 1, "trials": 3}
    assert cells["standard|press_button|ALOE (online)"] == {"successes": 3, "trials": 3}
    assert bora_main(["report", "evidence", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_rollouts_stage_plans_recorded_rollouts_for_every_row(evidence_cfg, tmp_path):
    """offline.rollouts.episodes > 0: the warm-up's rollouts (every training seed's own) on their own seeds,
    and every offline row of that seed reads them; overlapping seeds are refused with the field's name."""
    cfg = evidence_cfg
    cfg.offline.rollouts.episodes = 20
    cfg.validate()
    pl = plan(cfg, tmp_path)
    warm = {j.name: j for j in pl.stages["warmup"]}
    job = warm["rollouts-press_button"]
    assert job.needs == ["warmup-press_button"]
    assert _arg(job.argv, "--run").endswith("runs/press_button/warmup")
    assert (_arg(job.argv, "--seed0"), _arg(job.argv, "--trials")) == ("400000", "20")
    assert _arg(job.argv, "--record").endswith("data/press_button_rollouts")
    s1 = warm["rollouts-press_button-s1"]
    assert s1.needs == ["warmup-press_button-s1"] and _arg(s1.argv, "--run").endswith("seed1/warmup")
    assert _arg(s1.argv, "--record").endswith("data/press_button_rollouts_s1")
    off = _jobs(pl, "offline")
    assert _arg(off["offline-press_button-bora"], "--rollouts").endswith("data/press_button_rollouts")
    assert _arg(off["offline-press_button-habc"], "--rollouts").endswith("data/press_button_rollouts")
    assert _arg(off["offline-press_button-bora-s1"], "--rollouts").endswith("data/press_button_rollouts_s1")
    cfg.offline.rollouts.seed0 = cfg.protocol.tuning_seed0
    with pytest.raises(ConfigError, match="rollouts.seed0 .* tuning seeds"):
        cfg.validate()
    cfg.offline.rollouts.seed0 = cfg.eval.seed0 + 3
    with pytest.raises(ConfigError, match="rollouts.seed0 .* evaluation seeds"):
        cfg.validate()
    cfg.offline.rollouts.seed0 = 400_000
    cfg.offline.warmup.updates = 0
    with pytest.raises(ConfigError, match="rollouts: the rollouts are the warm-up's"):
        cfg.validate()


def test_online_budget_reads_both_online_environments(tmp_path):
    """The evidence report's online budget: per round, from an in-process run's summary (episodes listed,
    update means) and from a run through the ROS graph (per_round counts), with the pooled operator share."""
    from bora_trainer.evidence import _budget_md, online_budget

    sim = tmp_path / "runs" / "press_button" / "bora-residual-online"
    sim.mkdir(parents=True)
    eps = [{"interventions": 1}, {"interventions": 0}, {"interventions": 2}]
    sim.joinpath("summary.json").write_text(json.dumps({"rounds": [
        {"round": 1, "episodes": eps, "num_episodes": 3, "successes": 2, "steps": 100, "intervened_steps": 30,
         "update_means": {"actor/res_abs": 0.05, "actor/q_gain": 0.002}}]}))
    ros = tmp_path / "runs" / "open_box" / "aloe-online"
    ros.mkdir(parents=True)
    ros.joinpath("summary.json").write_text(json.dumps({"through_ros": True, "per_round": [
        {"round": 1, "episodes": 10, "steps": 300, "intervened_steps": 10, "successes": 9},
        {"round": 2, "episodes": 10, "steps": 200, "intervened_steps": 0, "successes": 10, "takeovers": 0}]}))
    # the trainer node's round log holds the update means of a run through the graph (round 2 only here)
    (ros / "trainer").mkdir()
    (ros / "trainer" / "round_log.json").write_text(json.dumps(
        {"2": {"updates": 5, "update_means": {"actor/res_abs": 0.25, "actor/q_gain": -0.125}}}))
    rows = online_budget(tmp_path)
    assert [(r["task"], r["row"], r["round"]) for r in rows] == [
        ("open_box", "aloe-online", 1), ("open_box", "aloe-online", 2), ("press_button", "bora-residual-online", 1)]
    assert rows[2]["episodes"] == 3 and rows[2]["takeovers"] == 3 and rows[2]["res_abs"] == 0.05
    assert rows[0]["episodes"] == 10 and rows[0]["takeovers"] is None and rows[0]["q_gain"] is None
    md = "\n".join(_budget_md(rows))
    assert "| press_button | bora-residual-online | 1 | 3 | 2 | 100 | 30 (30.0%) | 3 | 0.050 | +0.0020 |" in md
    assert "| open_box | aloe-online | 1 | 10 | 9 | 300 | 10 (3.3%) | - | - | - |" in md
    assert "| open_box | aloe-online | 2 | 10 | 10 | 200 | 0 (0.0%) | 0 | 0.250 | -0.1250 |" in md
    assert "23 episodes, 40 of 600 control steps under the operator (6.7%" in md  # 30 + 10 + 0 of 100 + 300 + 200


def test_online_budget_counts_takeovers_of_an_old_ledger_from_the_ingested_episodes(tmp_path):
    """A run through the graph whose ledger predates the takeover count: counted from each ingested episode's
    chunk rows (trainer/online_buffer/<shard>), by hand below; a round with a missing shard stays unknown."""
    import numpy as np

    from bora_trainer.evidence import online_budget

    run = tmp_path / "runs" / "press_button" / "bora-residual-online"
    (run / "trainer" / "online_buffer").mkdir(parents=True)
    run.joinpath("summary.json").write_text(json.dumps({"through_ros": True, "per_round": [
        {"round": 1, "episodes": 2, "steps": 40, "intervened_steps": 9, "successes": 2},
        {"round": 2, "episodes": 1, "steps": 20, "intervened_steps": 0, "successes": 1}]}))
    # episode a: chunks of k=4 at steps 0, 4, 8; intervened steps 2, 3, 4 (one run across the chunk seam) and 9
    # (a second run) -> 2 takeovers. Episode b: step 5 intervened, step 6 not covered (mask 0), step 7
    # intervened: an uncovered step does not split -> 1 takeover
    a = {"step": np.array([0, 4, 8]), "mask": np.ones((3, 4), bool),
         "is_intervention": np.array([[0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 0, 0]], bool)}
    b = {"step": np.array([4]), "mask": np.array([[1, 1, 0, 1]], bool),
         "is_intervention": np.array([[0, 1, 0, 1]], bool)}
    for name, rows in (("shard_000000.npz", a), ("shard_000001.npz", b)):
        np.savez(run / "trainer" / "online_buffer" / name, **rows)
    (run / "trainer" / "ingested.json").write_text(json.dumps({
        "shard_000000.npz": {"round": 1, "intervened_steps": 4}, "shard_000001.npz": {"round": 1},
        "shard_000002.npz": {"round": 2}}))  # round 2's shard is gone: unknown
    rows = online_budget(tmp_path)
    assert [r["takeovers"] for r in rows] == [3, None]
    # an entry that has its count is used as recorded
    (run / "trainer" / "ingested.json").write_text(json.dumps({
        "shard_000000.npz": {"round": 1, "takeovers": 5}, "shard_000001.npz": {"round": 1},
        "shard_000002.npz": {"round": 2, "takeovers": 0}}))
    assert [r["takeovers"] for r in online_budget(tmp_path)] == [6, 0]
