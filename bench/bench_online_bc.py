"""What BORA-Full's online actor should imitate (issue 14): BC weight on intervention steps, residual scale.

The core evidence run (config/evidence_core.yaml, bench/results/evidence_core.md) found BORA-Full below
BORA-Offline on the tasks where the scripted operator controlled most online steps, and plain BC on the
residual reproduced the loss. This bench retrains the online stage of a finished evidence run with one
change at a time and evaluates each on the TUNING seeds (``--seed0``, default 200000: never the fixed
evaluation seeds 300000..), paired with the same run's BORA-Offline policy on the same seeds:

* ``default``: the config as it is (at the first run of this bench ``intervention_bc_weight`` 1: BC on
  demonstrations and interventions; config/online_tiny.yaml has set 0 since, from that run's result);
  the evidence run's own BORA-Full run is reused when ``--reuse-default`` (same command and config);
* ``w0`` / ``w025``: ``online.intervention_bc_weight`` 0 / 0.25 (interventions teach through the critic only
  / at a quarter of a demonstration row's BC weight);
* ``a02``: residual scale ``alpha_end`` 0.2 instead of 0.75 (interventions imitated as by default);
* ``nobc``: no BC term at all (``bc_lambda`` 0: hinge, anchor and L2 only);
* ``w0a02``: both ``w0`` and ``a02``;
* ``keep``: the scripted operator keeps control until success (``operator.recovery_s`` 0, OperatorConfig's
  default) instead of handing back after 3 s;
* ``stall``: one takeover at most, only when the policy stalls (``operator``: budget 1, grace 2 s,
  patience 3 s, no deadline takeover: ``deadline_margin_s`` -1), keeping control until success: less of
  the online time under the operator (the paper: about 20%). (With the deadline rule on, the takeover came
  at the same step whatever grace and patience were: the deadline fired first.)

* ``lq1``: Eq. (8)'s ``-Q(z, a_hat)`` term at weight 1 (``online.lambda_q``, TD3's / ResFiT's actor objective);
* ``d05``: the hinge's margin ``improve_delta`` 0.05 instead of 0;
* ``noreg``: no pull of the online critic to the offline critic (``online.critic_reg: none``);
* ``cql1`` / ``cql1lq1``: a conservative online critic (``online.critic_conservative`` 1, after CQL), alone /
  with ``lq1``'s ``-Q`` actor term;
* ``ex01`` / ``ex03``: exploration noise in the online episodes (``explore_std`` 0.1 / 0.3 normalised units,
  scaled by alpha; TD3's and ResFiT's Gaussian action noise), the critic then sees other chunks' outcomes;
* ``nohinge``: no critic term in the actor's loss (``online.improve_lambda`` 0): what the critic adds;
* ``a0``: alpha 0 (start and end): the composite is the frozen base; the online path must reproduce
  BORA-Offline's evaluation episode for episode (a check of the path, not a method);
* ``lr0``: the residual never learns (``online.actor_lr`` 0): it keeps its random initialisation, a small
  perturbation of the base's chunks. Its spread over seeds is the null distribution: how far BORA-Full's
  count can move from BORA-Offline's on the same 50 deterministic episodes by chance alone;
* ``qf``: BC through Nair et al. 2018's Q-filter (``online.bc_filter: q``): a step is imitated only where the
  online critic values the data's chunk at least as high as the composite;
* ``u2k`` / ``u4k``: 2,000 / 4,000 learner updates per round instead of 400 (update-to-data ratio 2 / 4
  instead of 0.5; Table 3: 15k per round), the same 2 x 10 episodes.

Each variant: ``bora train online --env sim`` (2 rounds x 10 episodes, 400 updates per round unless the
variant sets more, the evidence config's online settings), then ``bora eval`` of the round-2 stack and of
the round-1 checkpoint.
Writes ``bench/results/<--report>.{json,md}`` (default ``online_bc``): per task and variant, successes and
the paired difference to BORA-Offline with Newcombe's 95% interval and McNemar's exact p (a ``--seed0`` range that
overlaps the fixed evaluation seeds is refused; a fresh range, e.g. 500000 with ``--reuse-default``, measures
the run's own rows on initial states neither tuned on nor reported as the evaluation); per round, the
episodes' success with the operator, takeovers per episode, the share of control steps under the operator,
mean BC loss, mean |residual|, Q(composite) - Q(base). Existing outputs in
``--work`` are reused, so an interrupted run resumes.

    .venv/bin/python bench/bench_online_bc.py --evidence runs/evidence_core [--tasks ...] [--variants ...]
        [--trials 50] [--seed0 200000] [--objects standard] [--jobs 2] [--work /tmp/online_bc] [--reuse-default]
        [--report online_bc]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "bora_trainer"))
from bora_trainer.demo.config import load_demo_config  # noqa: E402
from bora_trainer.stats import hierarchical_bootstrap_diff, mcnemar_exact_p, newcombe_paired_diff  # noqa: E402

_EVIDENCE = load_demo_config(str(ROOT / "config" / "evidence_core.yaml"))  # its tuning and evaluation seeds
TUNING_SEED0, EVAL_SEED0, EVAL_TRIALS = _EVIDENCE.protocol.tuning_seed0, _EVIDENCE.eval.seed0, _EVIDENCE.eval.trials
TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
VARIANTS: dict[str, dict] = {
    "default": {},
    "w0": {"online": {"intervention_bc_weight": 0.0}},
    "w025": {"online": {"intervention_bc_weight": 0.25}},
    "a02": {"online": {"residual": {"alpha_end": 0.2}}},
    "nobc": {"online": {"bc_lambda_start": 0.0, "bc_lambda_end": 0.0}},
    "w0a02": {"online": {"intervention_bc_weight": 0.0, "residual": {"alpha_end": 0.2}}},
    "keep": {"operator": {"recovery_s": 0.0}},
    # takes over only when the policy stalls (3 s without progress; no deadline takeover), once, keeps control
    "stall": {"operator": {"budget": 1, "grace_s": 2.0, "patience_s": 3.0, "deadline_margin_s": -1.0,
                           "recovery_s": 0.0}},
    # more learner updates on the same 2 x 10 episodes (Table 3: 15k per round; the evidence config: 400 at
    # 0.5 per control step): 5x and 10x, the update-to-data ratio raised to reach them
    "u2k": {"updates_per_env_step": 2.0, "online": {"max_updates": 2000}},
    "u4k": {"updates_per_env_step": 4.0, "online": {"max_updates": 4000}},
    # what the actor asks of the critic: Eq. (8)'s -Q term (TD3's / ResFiT's actor objective; ours: off by
    # default), a margin in the hinge (Eq. 6's delta: the composite must beat the base by 0.05, so the hinge
    # keeps a gradient once it merely ties), and the online critic without the pull to the offline critic
    "lq1": {"online": {"lambda_q": 1.0}},
    "d05": {"online": {"improve_delta": 0.05}},
    "noreg": {"online": {"critic_reg": "none"}},
    # a conservative online critic (online.critic_conservative, after CQL): Q pushed down at the residual's
    # own composite chunk relative to the data's, alone and under lq1's direct -Q actor term
    "cql1": {"online": {"critic_conservative": 1.0}},
    "cql1lq1": {"online": {"critic_conservative": 1.0, "lambda_q": 1.0}},
    # exploration noise in the online episodes (OnlineRunConfig.explore_std, TD3 / ResFiT): the critic then sees
    # the outcomes of chunks other than the composite's
    "ex01": {"explore_std": 0.1},
    "ex03": {"explore_std": 0.3},
    # no critic term in the actor's loss (the hinge's weight 0; lambda_q is 0 already): BC on the
    # demonstrations, the anchor and the L2 only. What the default keeps over it is what the critic adds
    "nohinge": {"online": {"improve_lambda": 0.0}},
    # controls: the composite with alpha 0 is the frozen base alone (the online path must then reproduce
    # BORA-Offline's evaluation episode for episode), and a residual that never learns (actor_lr 0: it keeps
    # its small random initialisation, a perturbation of the base's chunks of the learned residual's order)
    # BC only where the critic prefers the data's chunk to the composite (Nair et al. 2018's Q-filter, per step)
    "qf": {"online": {"bc_filter": "q"}},
    # BC on the state-dependent part of the demonstrations' corrections only (online.bc_center): the batch's
    # mean correction to the base is taken out of the target; alone and without the hinge
    "bcc": {"online": {"bc_center": True}},
    "bccnh": {"online": {"bc_center": True, "improve_lambda": 0.0}},
    # BC on the operator's corrections only, on the states the policy led to (HG-DAgger's labels): the
    # demonstrations' rows out of L_BC (online.demo_bc_weight 0), the intervention rows in (weight 1)
    "hgd": {"online": {"demo_bc_weight": 0.0, "intervention_bc_weight": 1.0}},
    # a stronger anchor (online.anchor_lambda, 0.03 configured): ||A_hat - A_base||^2 on every row, the
    # online rows included, so it holds the composite to the base on the states the policy goes to as well
    "anc03": {"online": {"anchor_lambda": 0.3}},
    "anc1": {"online": {"anchor_lambda": 1.0}},
    # a smaller residual (online_tiny's [128, 128] -> [32, 32]): a smoother fit of the demonstrations'
    # corrections, so less of a state-specific offset where the policy's states leave the demonstrator's
    "rs32": {"online": {"residual": {"hidden_dims": [32, 32]}}},
    # input noise on the residual in the actor step (online.actor_input_noise: sigma x each input's batch std)
    "in05": {"online": {"actor_input_noise": 0.5}},
    "a0": {"online": {"residual": {"alpha_start": 0.0, "alpha_end": 0.0}}},
    "lr0": {"online": {"actor_lr": 0.0}},
}
TITLES = {"online_bc": "BORA-Full's online BC: what the actor imitates (issue 14)",
          "online_operator": "BORA-Full's online stage: how the scripted operator takes over (issue 14)",
          "online_updates": "BORA-Full's online stage: how many learner updates per round (issue 14)",
          "online_critic": "BORA-Full's online stage: what the actor asks of the critic (issue 14)",
          "online_critic_5tasks": "BORA-Full's online stage with a conservative critic, five tasks (issue 14)",
          "online_explore": "BORA-Full's online stage with exploration noise, five tasks (issue 14)",
          "online_seeds": "BORA-Full's online stage over three online training seeds, five tasks (issue 14)",
          "online_nohinge": "BORA-Full's online stage without the critic's term in the actor, three seeds (issue 14)",
          "online_pick_and_place": "BORA-Full's online stage on pick_and_place, where it loses: controls (issue 14)",
          "online_qfilter": "BORA-Full's online BC through a Q-filter, three seeds (issue 14)",
          "online_bc_center": "BORA-Full's online BC on the corrections' state-dependent part, three seeds (issue 14)",
          "online_hgd": "BORA-Full's online BC on the operator's corrections only, three seeds (issue 14)",
          "online_anchor": "BORA-Full's online stage with a stronger anchor to the base chunk (issue 14)",
          "online_nohinge_evc": "BORA-Full's online stage without the hinge, the rebuilt evidence run, three seeds "
                                "(issue 14)",
          "online_residual_size": "BORA-Full's online stage with a smaller residual, three seeds (issue 14)",
          "online_input_noise": "BORA-Full's online stage with input noise on the residual, three seeds (issue 14)",
          "online_nohinge_fresh": "BORA-Full's online stage without the hinge on FRESH seeds (neither tuned on nor "
                                  "the evaluation's), three online seeds (issue 14)",
          "online_nohinge_fresh_unseen": "BORA-Full's online stage without the hinge on FRESH seeds, the UNSEEN "
                                         "objects, three online seeds (issue 14)",
          "online_nohinge_demo_standard": "BORA-Full's online stage with and without the hinge on the demo's "
                                          "press_button build, FRESH seeds, standard objects, five online seeds "
                                          "(issue 14)",
          "online_nohinge_demo_unseen": "BORA-Full's online stage with and without the hinge on the demo's "
                                        "press_button build, FRESH seeds, UNSEEN objects, five online seeds "
                                        "(issue 14)",
          "evidence_core_tuning": "The evidence run's BORA-Offline and BORA-Full on the TUNING seeds (issue 14)",
          "evidence_core_fresh": "The evidence run's BORA-Offline and BORA-Full on fresh seeds (issue 14)",
          "online_null": "BORA-Full's online stage against a residual that never learns, three seeds (issue 14)"}


def merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def variant_config(name: str) -> dict:
    """A variant's config overrides. ``NAME@sN``: variant NAME with online training seed N (the online run's
    episode seeds and the learner's initialisation and sampling: ``seed`` and ``online.seed``); ``NAME`` = seed 0."""
    base, _, seed = name.partition("@s")
    if base not in VARIANTS or (seed and not seed.isdigit()):
        raise KeyError(name)
    return merge(VARIANTS[base], {"seed": int(seed), "online": {"seed": int(seed)}}) if seed else VARIANTS[base]


def bora(argv: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", BORA_NUM_THREADS="1")
    with open(log, "w") as f:
        rc = subprocess.call([str(ROOT / ".venv/bin/bora"), *argv], stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc:
        raise RuntimeError(f"bora {' '.join(argv)} failed ({rc}); log {log}")


def evaluate(run: Path, task: str, out: Path, a: argparse.Namespace, residual: Path | None = None) -> None:
    if out.exists():
        return
    extra = ["--residual", str(residual)] if residual else []
    bora(["eval", "--run", str(run), *extra, "--task", task, "--objects", a.objects, "--trials", str(a.trials),
          "--seed0", str(a.seed0), "--threads", "1", "--no-values", "--no-progress", "--out", str(out)],
         out.with_suffix(".log"))


def train_online(ev: Path, task: str, cfg: dict, cfg_path: Path, run: Path, log: Path,
                 max_updates: int = 400) -> None:
    """The evidence run's online stage (2 rounds x 10 episodes, ``max_updates`` per round) with config ``cfg``."""
    cfg_path.write_text(yaml.safe_dump(cfg))
    bora(["train", "online", "--env", "sim", "--task", task, "--offline-run", str(ev / "runs" / task / "bora"),
          "--offline-data", str(ev / "data" / task), "--out", str(run), "--config", str(cfg_path),
          "--algo", "bora-residual", "--rounds", "2", "--episodes-per-round", "10", "--no-progress",
          "--max-updates", str(max_updates)], log)


def chain(task: str, variant: str, a: argparse.Namespace) -> str:
    """Train one variant (unless done) and evaluate its round-2 stack and round-1 checkpoint."""
    ev = Path(a.evidence)
    run = a.work / "runs" / f"{task}-{variant}"
    if variant == "default" and a.reuse_default:
        run = ev / "runs" / task / "bora-residual-online"
    elif not (run / "rounds" / "round_02").is_dir():
        cfg = merge(yaml.safe_load((ev / "configs" / "online.yaml").read_text()), variant_config(variant))
        max_updates = int(variant_config(variant).get("online", {}).get("max_updates", 400))
        train_online(ev, task, cfg, a.work / f"{variant}.yaml", run, a.work / f"{task}-{variant}.train.log",
                     max_updates)
    evaluate(run, task, a.work / f"{task}_full_{variant}.json", a)
    if not a.no_round1:
        evaluate(run, task, a.work / f"{task}_r1_{variant}.json", a, run / "rounds" / "round_01")
    rl = json.loads((run / "round_log.json").read_text())
    (a.work / f"{task}_rounds_{variant}.json").write_text(json.dumps(rl))
    summary = json.loads((run / "summary.json").read_text())  # per round: control steps under the operator
    (a.work / f"{task}_budget_{variant}.json").write_text(json.dumps(summary.get("rounds", [])))
    print(f"{task} {variant} done {time.strftime('%H:%M:%S')}", flush=True)
    return variant


def evidence_title(ev: Path) -> str:
    """What the evidence run is: the title of the config it ran (``bora demo`` copies it to configs/demo.yaml:
    config/evidence_core.yaml's or config/demo.yaml's), with its tasks."""
    path = ev / "configs" / "demo.yaml"
    if not path.is_file():
        return f"no {path}"
    cfg = yaml.safe_load(path.read_text()) or {}
    return f"'{cfg.get('title', 'untitled')}': {', '.join(cfg.get('tasks', []))}"


def write_keeping_findings(path: Path, text: str) -> None:
    """Write a generated report, keeping the hand-written ``## Findings`` section of the previous one."""
    old = path.read_text() if path.exists() else ""
    i = old.find("\n## Findings")
    path.write_text(text + (old[i:] if i >= 0 else ""))


def successes(path: Path) -> list[bool]:
    eps = sorted(json.loads(path.read_text())["episodes"], key=lambda e: e["seed"])
    return [bool(e["success"]) for e in eps]


def check_seeds(a: argparse.Namespace) -> None:
    """Every evaluation in ``--work`` that the report reads holds the seeds ``--seed0 .. + --trials`` on the
    ``--objects`` set: outputs are reused, so a rerun with other seeds or objects into the same ``--work`` must
    not mix two sets silently."""
    want = list(range(a.seed0, a.seed0 + a.trials))
    for path in sorted(a.work.glob("*_offline.json")) + sorted(a.work.glob("*_full_*.json")) + sorted(
            a.work.glob("*_r1_*.json")):
        ev = json.loads(path.read_text())
        got = sorted(int(e["seed"]) for e in ev["episodes"])
        objects = ev.get("object_set", "standard")
        if objects != a.objects:
            raise SystemExit(f"bench_online_bc.py: {path} was evaluated on the {objects!r} objects, "
                             f"expected --objects {a.objects}: use another --work")
        if got != want:
            span = f"{got[0]}..{got[-1]}" if got else "none"
            raise SystemExit(f"bench_online_bc.py: {path} holds seeds {span} ({len(got)}), expected --seed0 "
                             f"{a.seed0} --trials {a.trials}: use another --work")


def table(a: argparse.Namespace) -> dict:
    out: dict = {"tasks": {}}
    for t in a.tasks:
        off = successes(a.work / f"{t}_offline.json")
        row: dict = {"offline": {"successes": sum(off), "trials": len(off)}, "variants": {}}
        for v in a.variants:
            if not (a.work / f"{t}_full_{v}.json").exists():
                continue  # not run on this task (--report-only over partial results)
            vr: dict = {}
            for stage in ("r1", "full"):
                if not (a.work / f"{t}_{stage}_{v}.json").exists():
                    continue  # round 1 not evaluated (--no-round1)
                x = successes(a.work / f"{t}_{stage}_{v}.json")
                d, lo, hi = newcombe_paired_diff(x, off)
                vr[stage] = {"successes": sum(x), "trials": len(x), "diff": d, "lo": lo, "hi": hi,
                             "p": mcnemar_exact_p(x, off)}
            rl = json.loads((a.work / f"{t}_rounds_{v}.json").read_text())
            bf = a.work / f"{t}_budget_{v}.json"
            budget = {str(b["round"]): b for b in json.loads(bf.read_text())} if bf.exists() else {}
            share = {r: budget.get(r, {}).get("intervened_share") for r in rl}  # the run's own summary figure
            vr["rounds"] = {r: {"success_with_operator": x["success_rate_with_operator"],
                                "operator_share": share[r],
                                "takeovers_per_episode": x["interventions_per_episode"],
                                "bc": x["update_means"].get("actor/bc"),
                                "res_abs": x["update_means"].get("actor/res_abs"),
                                "q_gain": x["update_means"].get("actor/q_gain"),
                                "bc_kept": x["update_means"].get("actor/bc_kept")} for r, x in rl.items()}
            row["variants"][v] = vr
        out["tasks"][t] = row
    return out


def pooled(a: argparse.Namespace, res: dict, variant: str) -> str:
    """Round-2 successes over all tasks and the paired difference to BORA-Offline over all pairs
    (Newcombe 95%); "-" unless the variant ran on every task."""
    if any(variant not in r["variants"] for r in res["tasks"].values()):
        return "-"
    x, o = [], []
    for t in res["tasks"]:
        x += successes(a.work / f"{t}_full_{variant}.json")
        o += successes(a.work / f"{t}_offline.json")
    d, lo, hi = newcombe_paired_diff(x, o)
    return f"{sum(x)}/{len(x)} {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] p={mcnemar_exact_p(x, o):.3f}"


def markdown(res: dict, a: argparse.Namespace) -> str:
    pct = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    lines = [
        f"# {TITLES.get(a.report, a.report)}",
        "",
        f"Machine: {res['machine'].get('cpu', '?')}, {res['machine'].get('logical_cpus', '?')} logical CPUs; commit "
        f"{res['commit']}; {res['date']}. Evidence run: `{a.evidence}` ({evidence_title(Path(a.evidence))}, "
        "one training seed). "
        + ("`default` is the evidence run's own BORA-Full stack (`--reuse-default`, not retrained); any other "
           "variant " if a.reuse_default else "Each variant ")
        + "retrains the online stage (2 rounds x 10 episodes, 400 "
        "updates per round unless the variant sets more, scripted operator) and is evaluated on the "
        f"{'TUNING seeds' if TUNING_SEED0 <= a.seed0 < EVAL_SEED0 else 'fresh seeds (neither tuning nor evaluation)'}"
        f" {a.seed0}.."
        f"{a.seed0 + a.trials - 1} ({a.trials} {a.objects}-set trials), paired with the run's BORA-Offline on the "
        "same seeds. Difference: variant - BORA-Offline, Newcombe 95% interval, McNemar exact p.",
        "",
        "Variants: " + "; ".join(f"`{v}` {json.dumps(variant_config(v)) if variant_config(v) else 'as configured'}"
                                 for v in a.variants) + ".",
        "",
        "| task | BORA-Offline | " + " | ".join(f"{v} round 2 (round 1)" for v in a.variants) + " |",
        "|---|---|" + "---|" * len(a.variants),
    ]
    for t, r in res["tasks"].items():
        cells = []
        for v in a.variants:
            if v not in r["variants"]:
                cells.append("not run")
                continue
            f, r1 = r["variants"][v]["full"], r["variants"][v].get("r1", {"successes": "-"})
            cells.append(f"{f['successes']}/{f['trials']} ({r1['successes']}) {pct(f['diff'])} "
                         f"[{pct(f['lo'])}, {pct(f['hi'])}] p={f['p']:.3f}")
        lines.append(f"| {t} | {r['offline']['successes']}/{r['offline']['trials']} | " + " | ".join(cells) + " |")
    cells = [pooled(a, res, v) for v in a.variants]
    s0 = sum(r["offline"]["successes"] for r in res["tasks"].values())
    lines.append(f"| pooled | {s0}/{sum(r['offline']['trials'] for r in res['tasks'].values())} | "
                 + " | ".join(cells) + " |")
    lines += ["", "Per round (online episodes with the operator; update means):", "",
              "| task | variant | round | success with operator | takeovers/episode | steps under the operator "
              "| BC loss | mean abs residual | Q(composite) - Q(base) | BC steps kept (Q-filter) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t, r in res["tasks"].items():
        for v in r["variants"]:
            for rnd, x in r["variants"][v]["rounds"].items():
                f = lambda y: "-" if y is None else f"{y:.3f}"  # noqa: E731
                sh = "-" if x.get("operator_share") is None else f"{100 * x['operator_share']:.0f}%"
                lines.append(f"| {t} | {v} | {rnd} | {x['success_with_operator']:.2f} | "
                             f"{x['takeovers_per_episode']:.1f} | {sh} | {f(x['bc'])} | {f(x['res_abs'])} | "
                             f"{f(x['q_gain'])} | {f(x.get('bc_kept'))} |")
    seeds = res.get("training_seeds") or training_seeds(a, res)
    if seeds:
        lines += ["", "Online training seeds (the same offline run and BORA-Offline; only the online stage "
                  "retrained): pooled difference to BORA-Offline per seed, and the mean with a 95% interval that "
                  "covers seeds and trials (`hierarchical_bootstrap_diff`: seeds and trials resampled "
                  "independently within each task, crossed):", "",
                  "| variant | seeds | pooled difference per seed | mean [95%] |",
                  "|---|---|---|---|"]
        for base, x in seeds.items():
            lines.append(f"| {base} | {', '.join(map(str, x['seeds']))} | "
                         + ", ".join(pct(d) for d in x["per_seed"])
                         + f" | {pct(x['mean'])} [{pct(x['lo'])}, {pct(x['hi'])}] |")
    ctrl = res.get("control")
    if ctrl and ctrl["groups"]:
        lines += ["", f"Against the control `{ctrl['variant']}` at the same online seeds (pooled over tasks; paired "
                  "on the evaluation seeds; mean over seeds with the same interval as above):", "",
                  f"| variant | seeds | pooled difference to {ctrl['variant']} per seed | mean [95%] |",
                  "|---|---|---|---|"]
        for base, x in ctrl["groups"].items():
            lines.append(f"| {base} | {', '.join(map(str, x['seeds']))} | "
                         + ", ".join(pct(d) for d in x["per_seed"])
                         + f" | {pct(x['mean'])} [{pct(x['lo'])}, {pct(x['hi'])}] |")
    return "\n".join(lines) + "\n"


def training_seeds(a: argparse.Namespace, res: dict) -> dict:
    """Variants run with two or more online training seeds (``NAME``, ``NAME@sN``) on every task: per seed the
    pooled paired difference to BORA-Offline, and over seeds the mean with ``hierarchical_bootstrap_diff``."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for v in a.variants:
        base, _, seed = v.partition("@s")
        if all(v in r["variants"] for r in res["tasks"].values()):
            groups.setdefault(base, []).append((int(seed or 0), v))
    out = {}
    for base, members in groups.items():
        if len(members) < 2:
            continue
        members.sort()
        strata = {t: [(successes(a.work / f"{t}_full_{v}.json"), successes(a.work / f"{t}_offline.json"))
                      for _, v in members] for t in res["tasks"]}
        per_seed = [hierarchical_bootstrap_diff({t: [strata[t][i]] for t in strata}, n_boot=1)[0]
                    for i in range(len(members))]
        mean, lo, hi = hierarchical_bootstrap_diff(strata)
        out[base] = {"seeds": [s for s, _ in members], "per_seed": per_seed, "mean": mean, "lo": lo, "hi": hi}
    return out


def against_control(a: argparse.Namespace, res: dict, control: str) -> dict:
    """Each seed group (``NAME``, ``NAME@sN``) against the ``control`` group at the same online seeds: the same
    offline run, online seed, episodes' initial states and evaluation seeds, only the variant's change differs.
    Per seed the pooled paired difference, over seeds the mean with ``hierarchical_bootstrap_diff``. With
    ``--control lr0`` (a residual that never learns) this is what the residual's learning adds beyond a
    random perturbation of the base's chunks of the same origin."""
    def members(base: str) -> dict[int, str]:
        return {int(v.partition("@s")[2] or 0): v for v in a.variants if v.partition("@s")[0] == base
                and all(v in r["variants"] for r in res["tasks"].values())}

    ctrl = members(control)
    out = {}
    for base in dict.fromkeys(v.partition("@s")[0] for v in a.variants):
        mine = members(base)
        seeds = sorted(set(mine) & set(ctrl))
        if base == control or not seeds:
            continue
        strata = {t: [(successes(a.work / f"{t}_full_{mine[s]}.json"), successes(a.work / f"{t}_full_{ctrl[s]}.json"))
                      for s in seeds] for t in res["tasks"]}
        per_seed = [hierarchical_bootstrap_diff({t: [strata[t][i]] for t in strata}, n_boot=1)[0]
                    for i in range(len(seeds))]
        mean, lo, hi = hierarchical_bootstrap_diff(strata)
        out[base] = {"seeds": seeds, "per_seed": per_seed, "mean": mean, "lo": lo, "hi": hi}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--evidence", required=True, help="a finished `bora demo --config config/evidence_core.yaml` dir")
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seed0", type=int, default=200000, help="tuning seeds (not the evaluation seeds 300000..)")
    p.add_argument("--objects", choices=["standard", "unseen"], default="standard", help="the object set evaluated")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/online_bc"))
    p.add_argument("--reuse-default", action="store_true", help="`default` = the evidence run's own BORA-Full run")
    p.add_argument("--no-round1", action="store_true", help="do not evaluate the round-1 checkpoints")
    p.add_argument("--report-only", action="store_true", help="only write the report from --work")
    p.add_argument("--control", default="",
                   help="a variant (e.g. lr0) that every other variant is also compared with, seed by seed")
    p.add_argument("--report", default="online_bc", help="name of the results files (bench/results/NAME.{json,md})")
    a = p.parse_args()
    if a.seed0 < EVAL_SEED0 + EVAL_TRIALS and EVAL_SEED0 < a.seed0 + a.trials:
        p.error(f"--seed0 {a.seed0} --trials {a.trials}: overlaps the fixed evaluation seeds {EVAL_SEED0}.."
                f"{EVAL_SEED0 + EVAL_TRIALS - 1}, which no tuning run may use")
    if a.control and a.control not in {v.partition("@s")[0] for v in a.variants}:
        p.error(f"--control: {a.control!r} is not among --variants")
    for v in a.variants:
        try:
            variant_config(v)
        except KeyError:
            p.error(f"--variants: unknown variant {v!r}; expected one of {', '.join(VARIANTS)}, each optionally "
                    "with @sN (online training seed N)")
    for t in a.tasks:
        if not (Path(a.evidence) / "runs" / t / "bora").is_dir():
            p.error(f"--evidence: {a.evidence}/runs/{t}/bora is missing (run the evidence config first)")
    a.work.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        with ThreadPoolExecutor(a.jobs) as pool:
            offs = [pool.submit(evaluate, Path(a.evidence) / "runs" / t / "bora", t, a.work / f"{t}_offline.json", a)
                    for t in a.tasks]
            jobs = [pool.submit(chain, t, v, a) for t in a.tasks for v in a.variants]
            for f in offs + jobs:
                f.result()
    check_seeds(a)
    res = table(a)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    res.update(machine=machine(calibrate=False), commit=commit, date=time.strftime("%Y-%m-%d"),
               seed0=a.seed0, trials=a.trials, variants={v: variant_config(v) for v in a.variants})
    res["training_seeds"] = training_seeds(a, res)
    if a.control:
        res["control"] = {"variant": a.control, "groups": against_control(a, res, a.control)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.report}.json").write_text(json.dumps(res, indent=1))
    write_keeping_findings(RESULTS / f"{a.report}.md", markdown(res, a))
    print(f"wrote {RESULTS / a.report}.md")


if __name__ == "__main__":
    main()
