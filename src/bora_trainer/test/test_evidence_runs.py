"""The evidence protocol's repeated online runs (``protocol.online_runs``): planned jobs and the report section."""

import json

import pytest
import yaml
from test_evidence import _write_eval

from bora_trainer.config_io import ConfigError
from bora_trainer.demo.config import REPO_ROOT, load_demo_config
from bora_trainer.demo.plan import all_jobs, plan
from bora_trainer.demo.run import link
from bora_trainer.evidence import build, markdown
from bora_trainer.evidence_runs import _pct
from bora_trainer.report import markdown_tables


def _arg(argv, flag):
    return argv[argv.index(flag) + 1]


@pytest.fixture
def cfg3(monkeypatch):
    monkeypatch.setenv("BORA_NUM_THREADS", "1")  # threads: auto without the CPU probe
    cfg = load_demo_config(REPO_ROOT / "config" / "evidence.yaml")
    cfg.protocol.online_runs = 3
    return cfg


def test_every_task_trains_its_online_stage_again_from_the_same_offline_run(cfg3, tmp_path):
    pl = plan(cfg3, tmp_path)
    on = {j.name: j.argv for j in pl.stages["online"]}
    main = on["online-open_box-bora-residual"]
    assert _arg(main, "--rounds") == "4"  # the main run trains on for the learning curve
    for r, seed in ((2, "1000"), (3, "2000")):  # the online config's seed (0) + 1000 * (r - 1)
        a = on[f"online-open_box-bora-residual-o{r}"]
        assert _arg(a, "--out") == str(tmp_path / "runs" / "open_box" / f"bora-residual-online-o{r}")
        assert _arg(a, "--offline-run") == _arg(main, "--offline-run")  # the same BORA-Offline run
        assert (_arg(a, "--rounds"), _arg(a, "--episodes-per-round"), _arg(a, "--seed")) == ("2", "10", seed)
        assert _arg(a, "--algo") == "bora-residual" and _arg(a, "--config") == _arg(main, "--config")
    assert sum(n.endswith(("-o2", "-o3")) for n in on) == 5 * 2
    # in process the episode seeds are seed + 1000 r + e per round r: runs 4 rounds x 1000 + 1000 apart
    from bora_trainer.protocol import online_run_seed

    cfg3.online.env = "sim"
    assert [online_run_seed(cfg3, i) for i in range(3)] == [0, 5000, 10000]
    ev = {j.name: j.argv for j in pl.stages["eval"]}
    for oset in ("standard", "unseen"):
        e = ev[f"eval-pull_tissue-bora-residual-online-o3-{oset}"]
        assert _arg(e, "--out") == str(tmp_path / "eval_online" / f"pull_tissue__bora-residual-online@o3__{oset}.json")
        assert _arg(e, "--residual").endswith("pull_tissue/bora-residual-online-o3/trainer/rounds/round_02")
        # the main table's evaluation seeds and trials (paired with BORA-Offline), outcomes only
        assert (_arg(e, "--seed0"), _arg(e, "--trials"), _arg(e, "--task")) == ("300000", "50", "pull_tissue")
        assert "--no-values" in e
    deps = link(all_jobs(pl), tmp_path)
    assert "online-pull_tissue-bora-residual-o3" in deps["eval-pull_tissue-bora-residual-online-o3-unseen"]
    assert "online-pull_tissue-bora-residual-o3" not in deps["eval-pull_tissue-bora-residual-online-unseen"]


def test_online_runs_is_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("BORA_NUM_THREADS", "1")
    base = yaml.safe_load((REPO_ROOT / "config" / "evidence.yaml").read_text())
    for change, msg in (({"protocol": {**base["protocol"], "online_runs": 0}}, "online_runs must be an integer"),
                        ({"protocol": {**base["protocol"], "online_runs": 2},
                          "online": {**base["online"], "enabled": False}}, "online_runs 2 needs the online stage"),
                        ({"protocol": {**base["protocol"], "online_runs": 2},
                          "online": {**base["online"], "episodes_per_round": 300}}, "would share initial states")):
        f = tmp_path / "c.yaml"
        f.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ConfigError, match=msg):
            load_demo_config(f)


def _summary(path, rounds):
    path.mkdir(parents=True, exist_ok=True)
    keys = ("episodes", "successes", "steps", "intervened_steps", "takeovers", "taken_over", "rescued")
    (path / "summary.json").write_text(json.dumps({"per_round": [dict(zip(keys, r), round=i + 1)
                                                                   for i, r in enumerate(rounds)]}))


def test_report_over_online_runs_hand_computed(tmp_path):
    out = tmp_path / "demo"
    ev, eo = out / "eval", out / "eval_online"
    # press_button: BORA-Offline 5/10; BORA-Full 6/10 (main run), 8/10 (o2), 4/10 (o3): +0.1, +0.3, -0.1
    _write_eval(ev / "p_off.json", "BORA-Offline", "press_button", "standard", [1] * 5 + [0] * 5)
    _write_eval(ev / "p_full.json", "BORA-Full", "press_button", "standard", [1] * 6 + [0] * 4)
    _write_eval(eo / "press_button__bora-residual-online@o2__standard.json", "BORA-Full", "press_button",
                "standard", [1] * 8 + [0] * 2)
    _write_eval(eo / "press_button__bora-residual-online@o3__standard.json", "BORA-Full", "press_button",
                "standard", [1] * 4 + [0] * 6)
    # pull_tissue: BORA-Offline 5/10; BORA-Full 5/10 (main), 7/10 (o2): 0.0, +0.2
    _write_eval(ev / "t_off.json", "BORA-Offline", "pull_tissue", "standard", [1] * 5 + [0] * 5)
    _write_eval(ev / "t_full.json", "BORA-Full", "pull_tissue", "standard", [0] * 5 + [1] * 5)
    _write_eval(eo / "pull_tissue__bora-residual-online@o2__standard.json", "BORA-Full", "pull_tissue",
                "standard", [1] * 7 + [0] * 3)
    # what each run used: the main run trained 4 rounds, o2 two: both read over rounds 1-2
    _summary(out / "runs" / "press_button" / "bora-residual-online",
             [(10, 10, 300, 60, 3, 3, 3), (10, 9, 320, 90, 4, 4, 3), (10, 10, 1, 1, 1, 1, 1), (10, 10, 1, 1, 1, 1, 1)])
    _summary(out / "runs" / "press_button" / "bora-residual-online-o2", [(10, 8, 310, 31, 2, 2, 1),
                                                                         (10, 10, 290, 29, 1, 1, 1)])
    # another online row, trained once (HABC online; read after BORA-Full's runs): not one of BORA-Full's runs
    _summary(out / "runs" / "press_button" / "habc-online", [(10, 1, 300, 300, 10, 10, 1)] * 2)
    res = build(out, n_boot=2000)
    on = res["online_runs"]
    rates = {(c["task"], c["method"]): c["rates"] for c in on["cells"]}
    assert rates[("press_button", "BORA-Full")] == {1: 0.6, 2: 0.8, 3: 0.4}
    assert rates[("press_button", "BORA-Offline")] == {1: 0.5, 2: 0.5, 3: 0.5}  # one offline run for all
    assert rates[("pull_tissue", "BORA-Full")] == {1: 0.5, 2: 0.7}
    (c,) = [c for c in on["claims"] if c["claim"] == "BORA-Full - BORA-Offline"]
    assert c["per_task"]["press_button"]["diff"] == pytest.approx((0.1 + 0.3 - 0.1) / 3)
    assert c["per_task"]["press_button"]["seeds"] == 3 and c["per_task"]["pull_tissue"]["seeds"] == 2
    assert c["pooled"]["diff"] == pytest.approx(((0.1 + 0.3 - 0.1) / 3 + (0.0 + 0.2) / 2) / 2)
    lo, hi = c["pooled"]["ci95"]
    assert lo < c["pooled"]["diff"] < hi
    # Student's t over the runs: press_button +0.1, +0.3, -0.1 (mean 0.1, s 0.2, t_{2, .975} 4.302653);
    # pooled over the runs both tasks have (1, 2): 0.05, 0.25 (mean 0.15, s 0.141421, t_{1, .975} 12.7062)
    pb = c["per_task"]["press_button"]
    assert pb["per_run"] == pytest.approx([0.1, 0.3, -0.1]) and pb["eval_seeds"] == 10
    assert pb["t95"] == pytest.approx([0.1 - 4.302653 * 0.2 / 3 ** 0.5, 0.1 + 4.302653 * 0.2 / 3 ** 0.5], abs=1e-5)
    assert c["pooled"]["per_run"] == pytest.approx([0.05, 0.25])
    assert c["pooled"]["t95"] == pytest.approx([0.15 - 12.7062 * 0.141421 / 2 ** 0.5,
                                               0.15 + 12.7062 * 0.141421 / 2 ** 0.5], abs=1e-4)
    # BORA-Offline - CP Base has no repeated runs: no claim
    assert [c["claim"] for c in on["claims"]] == ["BORA-Full - BORA-Offline"]
    assert {b["row"] for b in res["online_run_budget"]} == {"bora-residual"}
    budget = {b["run"]: b for b in res["online_run_budget"]}
    assert (budget[1]["rounds"], budget[1]["steps"], budget[1]["intervened_steps"]) == (2, 620, 150)
    assert (budget[2]["successes"], budget[2]["taken_over"], budget[2]["rescued"]) == (18, 3, 2)
    (t,) = [t for t in res["targets"] if "online runs" in t["target"]]
    assert "over 3 online runs per task, 2 tasks" in t["target"] and not t["met"]
    # the operator over BORA-Full's runs (rounds 1-2; HABC's run is not one of them): rescued 6 of 7 + 2 of 3 =
    # 8 of 10 (80%: met); 150 + 60 of 620 + 600 steps = 17.2% (<= 25%: met)
    rescue, share = [t for t in res["targets"] if "operator" in t["target"]]
    assert (rescue["measured"], rescue["met"]) == ("press_button 8 of 10", True)
    assert (share["measured"], share["met"]) == ("210 of 1220 (17.2%)", True)
    from bora_trainer.evidence import operator_targets

    one_less = [{**b, "rescued": b["rescued"] - (b["run"] == 2)} for b in res["online_run_budget"]]
    assert [t["met"] for t in operator_targets(one_less)] == [False, True]  # 7 of 10
    none = [{**b, "rescued": 0, "taken_over": 0, "intervened_steps": 0} for b in res["online_run_budget"]]
    assert [t["met"] for t in operator_targets(none)] == [True, True]  # no takeover: nothing missed, 0% held
    ev_md = {**res, "machine": {"commit": "x", "cpu": "c", "cores": 2, "platform": "p"}, "eval_seeds": "0..9",
             "tuning_seeds": "10..", "first_seed": 0}
    md = markdown(ev_md, markdown_tables(res["_cells"]))
    assert "## BORA-Full over several online runs per task" in md
    assert "| press_button | standard | o1: 60%, o2: 80%, o3: 40% | 50% |" in md
    assert "| press_button | o1 | 2 | 20 | 19 | 150 of 620 (24.2%) | 7 | 6 of 7 |" in md
    assert "press_button +10.0 [" in md and "t [-39.7, +59.7] (3 runs, 10 evaluation seeds)" in md
    assert "pooled **+10.0 [" in md and "t [-112.1, +142.1]; press_button" in md  # t: runs 1, 2 only


def test_runs_read_on_the_evaluation_seeds_all_of_them_have(tmp_path):
    """The crossed bootstrap needs every run on the same seeds: a run missing one is read on the shared ones."""
    out = tmp_path / "demo"
    ev, eo = out / "eval", out / "eval_online"
    _write_eval(ev / "p_off.json", "BORA-Offline", "press_button", "standard", [1] * 5 + [0] * 5)
    _write_eval(ev / "p_full.json", "BORA-Full", "press_button", "standard", [1] * 6 + [0] * 4)
    _write_eval(eo / "press_button__bora-residual-online@o2__standard.json", "BORA-Full", "press_button",
                "standard", [1] * 8 + [0] * 1)  # seeds 0..8: seed 9 missing
    (c,) = build(out, n_boot=500)["online_runs"]["claims"]
    pb = c["per_task"]["press_button"]
    # on seeds 0..8: main run 6/9 - 5/9, o2 8/9 - 5/9
    assert pb["eval_seeds"] == 9 and pb["per_run"] == pytest.approx([1 / 9, 3 / 9])
    assert _pct(-1e-17) == "+0.0" and _pct(0.123) == "+12.3"


def test_no_online_runs_no_section(tmp_path):
    out = tmp_path / "demo"
    _write_eval(out / "eval" / "a.json", "BORA-Offline", "press_button", "standard", [1, 0])
    _write_eval(out / "eval" / "b.json", "BORA-Full", "press_button", "standard", [1, 1])
    res = build(out, n_boot=200)
    assert res["online_runs"] == {"cells": [], "claims": []} and res["online_run_budget"] == []
    assert not any("online runs" in t["target"] or "operator" in t["target"] for t in res["targets"])
