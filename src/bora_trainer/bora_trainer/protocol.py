"""The evidence protocol (issue 14) as extra jobs of ``bora demo``: training seeds, the online learning
curve, tuning seeds and the evidence report. ``DemoConfig.protocol`` (``config/evidence.yaml``) turns it on.

What it adds to the demo's plan (``extend_plan``; the demo's own jobs are unchanged):

* **Training seeds** (``seeds``, on ``seed_tasks``): for every extra seed ``s`` (the first seed is the
  demo's own run) a warm-up, the ``seed_algos`` offline rows and the online run, each with
  ``OfflineConfig.seed`` / the online ``--seed`` = ``s`` (``OUT/configs/offline_s<s>.yaml``,
  ``warmup_s<s>.yaml``), in ``OUT/runs/<task>/seed<s>/``, evaluated on the SAME evaluation seeds into
  ``OUT/eval_seeds/`` (not ``OUT/eval``: the main table stays one training run per cell). With
  ``offline.select`` each seed's row deploys its own best checkpoint on the same selection seeds.
* **Learning curve** (``curve_rounds``): the online run trains that many rounds; the BORA-Full row of the
  main table is evaluated after round ``online.rounds`` (the paper's budget, e.g. 2 x 10 episodes), and
  every round ``1 .. curve_rounds`` on ``curve_trials`` evaluation seeds of the first object set into
  ``OUT/eval_curve/`` (method ``BORA-Full@rR``).
* **Online runs** (``online_runs``): BORA-Full's online stage trained that many times from the SAME
  BORA-Offline run of every task (run 1 = the main table's; run ``r`` >= 2 with the online ``--seed`` of the
  config + ``ONLINE_RUN_SEED_STEP * (r - 1)``: its own residual init and its own online episodes), each
  ``online.rounds`` rounds, in ``OUT/runs/<task>/<row>-online-o<r>/``, evaluated on every object set on the SAME
  evaluation seeds into ``OUT/eval_online/`` (``<task>__<row>-online@o<r>__<set>.json``). One online run per
  task is one draw of the online stage (through the graph no two runs are alike): the report gives BORA-Full -
  BORA-Offline over the runs with a two-level bootstrap (online runs, then seeds).
* **Tuning seeds**: evaluation episodes use ``eval.seed0 ..`` (fixed in the config); ``bora demo --tuning``
  evaluates on ``tuning_seed0 ..`` instead (into ``OUT`` of its own): tuning never sees the evaluation
  seeds. Both ranges are written into the report. ``offline.select`` chooses checkpoints on seeds of its own
  (``validate`` refuses an overlap with either range).
* **Evidence report**: ``bora report evidence`` (``bora_trainer.evidence``) after ``bora report``.

Every job has a done marker, so ``bora demo --resume`` continues a stopped protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SEED_ALGOS = ("cp-bc", "bora")
ONLINE_RUN_SEED_STEP = 1000
"""Online ``--seed`` step between online runs (ours): an online run draws episode seeds ``seed + 10_000 + i``
(``online/run_ros.py``); ``validate`` keeps twice its episodes below the step, so the runs never share an
initial state. In process (``online.env: sim``, seeds ``seed + 1000 r + e`` per round r) the step is
``1000 x (rounds + 1)`` (:func:`online_run_seed`)."""


def online_run_seed(cfg, index: int) -> int:
    """``--seed`` of the online run ``index`` (0: the main run; 1, 2, ...: online runs 2, 3, ...; then the training
    seeds' BORA-Full, after the online runs) so that no two runs share an online episode's initial state. Until
    2026-12-07 a training seed s's online run took ``--seed s`` (found in review): through the graph it drew seeds
    10_000 + s + i, 39 of its 40 shared with the main run's; in process run r's round k was run 1's round k + 1."""
    step = ONLINE_RUN_SEED_STEP if cfg.online.env != "sim" else 1000 * (online_rounds(cfg) + 1)
    return online_seed(cfg) + step * index


@dataclass
class ProtocolSpec:
    """``DemoConfig.protocol`` (module docstring). ``enabled`` False: the plain demo."""

    enabled: bool = False
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds; the first = the main table's
    seed_tasks: list[str] = field(default_factory=list)  # tasks trained with every seed
    seed_algos: list[str] = field(default_factory=lambda: list(SEED_ALGOS))  # + the online row
    seed_trials: int = 50  # evaluation episodes per extra-seed run and object set
    seed_object_sets: list[str] = field(default_factory=lambda: ["standard"])
    curve_rounds: int = 0  # 0: no learning curve; else the online run trains max(online.rounds, this)
    curve_trials: int = 20
    online_runs: int = 1  # BORA-Full's online stage per task from the same BORA-Offline (1 = the main run only)
    tuning_seed0: int = 200_000  # tuning evaluations (bora demo --tuning) start here
    tuning: bool = False  # set by `bora demo --tuning`


def validate(cfg, tasks: tuple[str, ...]) -> list[str]:
    """Error messages (empty when valid) for ``cfg.protocol`` of a DemoConfig ``cfg``."""
    p: ProtocolSpec = cfg.protocol
    if not p.enabled:
        return []
    errs = []
    if not p.seeds or len(set(p.seeds)) != len(p.seeds) or any(s < 0 for s in p.seeds):
        errs.append(f"DemoConfig.protocol.seeds must be distinct non-negative integers, got {p.seeds}")
    for t in p.seed_tasks:
        if t not in cfg.tasks:
            errs.append(f"DemoConfig.protocol.seed_tasks: {t!r} is not one of the tasks {cfg.tasks}")
    for a in p.seed_algos:
        if a not in cfg.offline.algos:
            errs.append(f"DemoConfig.protocol.seed_algos: {a!r} is not an offline row {cfg.offline.algos}")
    if cfg.online.enabled and cfg.online.from_algo not in p.seed_algos and p.seed_tasks and len(p.seeds) > 1:
        errs.append(f"DemoConfig.protocol.seed_algos must include online.from_algo {cfg.online.from_algo!r}")
    if isinstance(p.online_runs, bool) or not isinstance(p.online_runs, int) or p.online_runs < 1:
        errs.append(f"DemoConfig.protocol.online_runs must be an integer >= 1, got {p.online_runs!r}")
    elif p.online_runs > 1 and not cfg.online.enabled:
        errs.append(f"DemoConfig.protocol.online_runs {p.online_runs} needs the online stage (online.enabled)")
    elif p.online_runs > 1 and 2 * online_rounds(cfg) * cfg.online.episodes_per_round > ONLINE_RUN_SEED_STEP:
        # (the main run's rounds, the learning curve's included; 2x: skipped episodes are replaced at the round gate
        # and draw the next seeds)
        errs.append(f"DemoConfig.protocol.online_runs: {online_rounds(cfg)} rounds x {cfg.online.episodes_per_round} "
                    f"episodes (x2 for replaced ones) exceed the online seed step {ONLINE_RUN_SEED_STEP} between "
                    "runs: the runs would share initial states")
    if p.seed_trials < 1 or p.curve_trials < 1 or p.curve_rounds < 0:
        errs.append("DemoConfig.protocol.seed_trials and curve_trials must be >= 1, curve_rounds >= 0")
    for s in p.seed_object_sets:
        if s not in cfg.eval.object_sets:
            errs.append(f"DemoConfig.protocol.seed_object_sets: {s!r} is not in eval.object_sets")
    lo, hi = cfg.eval.seed0, cfg.eval.seed0 + max(cfg.eval.trials, p.seed_trials, p.curve_trials)
    if lo <= p.tuning_seed0 < hi or p.tuning_seed0 <= lo < p.tuning_seed0 + cfg.eval.trials:
        errs.append(f"DemoConfig.protocol.tuning_seed0 {p.tuning_seed0}: the tuning seeds overlap the "
                    f"evaluation seeds {lo}..{hi - 1}")
    sel, t_hi = cfg.offline.select, p.tuning_seed0 + max(cfg.eval.trials, p.seed_trials, p.curve_trials)
    if sel.every > 0 and sel.seed0 < t_hi and p.tuning_seed0 < sel.seed0 + sel.trials:
        errs.append(f"DemoConfig.offline.select.seed0 {sel.seed0}: the selection's seeds {sel.seed0}.."
                    f"{sel.seed0 + sel.trials - 1} overlap the tuning seeds {p.tuning_seed0}..{t_hi - 1} (`bora demo "
                    "--tuning` would score each row on the seeds its checkpoint was chosen on); expected a range of "
                    "their own (default 600000)")
    r = cfg.offline.rollouts
    if r.episodes > 0 and (r.seed0 <= p.tuning_seed0 < r.seed0 + r.episodes
                           or p.tuning_seed0 <= r.seed0 < p.tuning_seed0 + cfg.eval.trials):
        errs.append(f"DemoConfig.offline.rollouts.seed0 {r.seed0}: the recorded rollouts (training data) overlap "
                    f"the tuning seeds {p.tuning_seed0}..")
    if r.episodes > 0 and r.seed0 < hi and lo < r.seed0 + r.episodes:
        errs.append(f"DemoConfig.offline.rollouts.seed0 {r.seed0}: the recorded rollouts (training data) overlap "
                    f"the evaluation seeds {lo}..{hi - 1}")
    return errs


def online_rounds(cfg) -> int:
    """Rounds the online run trains: the budget, or the learning curve's last round when longer."""
    p = cfg.protocol
    return max(cfg.online.rounds, p.curve_rounds) if p.enabled else cfg.online.rounds


def round_archive(cfg, run: Path, r: int) -> Path:
    """Round ``r``'s archived stack (frozen residuals + that round's residual + critic) of an online run."""
    base = run / "trainer" if cfg.online.env == "ros" else run
    return base / "rounds" / f"round_{r:02d}"


def write_configs(cfg, out: Path) -> None:
    """``OUT/configs/{offline,warmup}_s<seed>.yaml``: the demo's stage configs with ``seed`` set (the
    demo's own ``offline.yaml`` / ``warmup.yaml`` get the first seed)."""
    p = cfg.protocol
    if not p.enabled:
        return
    for name in ("offline", "warmup"):
        base = yaml.safe_load((out / "configs" / f"{name}.yaml").read_text()) or {}
        for i, s in enumerate(p.seeds):
            base["seed"] = int(s)
            dst = out / "configs" / (f"{name}.yaml" if i == 0 else f"{name}_s{s}.yaml")
            dst.write_text(yaml.safe_dump(base, sort_keys=False))


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag value`` replaced (or appended)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv else ""


def _eval_argv(base: list[str], run: Path, oset: str, trials: int, out_json: Path, method: str | None,
               residual: Path | None, values: bool) -> list[str]:
    argv = _with(_with(_with(_with(base, "--run", str(run)), "--objects", oset), "--trials", str(trials)),
                 "--out", str(out_json))
    if method:
        argv = _with(argv, "--method", method)
    if residual is not None:
        argv = _with(argv, "--residual", str(residual))
    if not values and "--no-values" not in argv:
        argv.append("--no-values")
    return argv


def online_seed(cfg) -> int:
    """The online config's ``seed`` (``online.config`` with ``online.overrides``): the main online run's."""
    from bora_trainer.config_io import read_yaml
    from bora_trainer.demo.config import merge, resolve_path

    return int(merge(read_yaml(resolve_path(cfg.online.config)), cfg.online.overrides).get("seed", 0) or 0)


def _add_online_runs(cfg, out: Path, task: str, stages: dict[str, list], job_cls: Any, template: list[str]) -> None:
    """Online runs 2 .. ``online_runs`` of the main online row of ``task`` and their evaluations (docstring)."""
    on, p = cfg.online, cfg.protocol
    src = next((j for j in stages["online"] if j.name == f"online-{task}-{on.algo}"), None)
    if src is None or p.online_runs < 2:
        return
    for r in range(2, p.online_runs + 1):
        run = out / "runs" / task / f"{on.algo}-online-o{r}"
        argv = _with(_with(_with(src.argv, "--out", str(run)), "--rounds", str(on.rounds)),
                     "--seed", str(online_run_seed(cfg, r - 1)))
        stages["online"].append(job_cls(f"online-{task}-{on.algo}-o{r}", argv, on.threads))
        for oset in cfg.eval.object_sets:
            dst = out / "eval_online" / f"{task}__{on.algo}-online@o{r}__{oset}.json"
            argv = _with(_eval_argv(template, run, oset, cfg.eval.trials, dst, None, round_archive(cfg, run, on.rounds),
                                    False), "--task", task)
            stages["eval"].append(job_cls(f"eval-{task}-{on.algo}-online-o{r}-{oset}", argv, cfg.eval.threads))


def extend_plan(cfg, out: Path, stages: dict[str, list], job_cls: Any) -> None:
    """Add the protocol's jobs to ``stages`` (in place; module docstring). ``job_cls`` = demo.Job."""
    p: ProtocolSpec = cfg.protocol
    if not p.enabled:
        return
    seed0 = p.tuning_seed0 if p.tuning else cfg.eval.seed0
    for j in stages["eval"]:
        j.argv = _with(j.argv, "--seed0", str(seed0))
    on = cfg.online
    rounds = online_rounds(cfg)
    for j in stages["online"]:  # only the main online row (BORA-Full) trains on for the learning curve
        if j.name.endswith(f"-{on.algo}"):
            j.argv = _with(j.argv, "--rounds", str(rounds))
    if cfg.online.enabled and rounds != on.rounds:
        # the main table's BORA-Full = the paper's budget (round on.rounds), not the curve's last round
        for j in stages["eval"]:
            run = Path(_arg(j.argv, "--run"))
            if run.name == f"{on.algo}-online":
                j.argv = _with(j.argv, "--residual", str(round_archive(cfg, run, on.rounds)))
    template = next((j.argv for j in stages["eval"]), None)
    if template is None:
        return
    for task in cfg.tasks:
        run = out / "runs" / task / f"{on.algo}-online"
        if cfg.online.enabled and p.curve_rounds > 0:
            oset = cfg.eval.object_sets[0]
            for r in range(1, p.curve_rounds + 1):
                dst = out / "eval_curve" / f"{task}__{on.algo}-online@r{r}__{oset}.json"
                argv = _with(_eval_argv(template, run, oset, p.curve_trials, dst, f"BORA-Full@r{r}",
                                        round_archive(cfg, run, r), False), "--task", task)
                stages["eval"].append(job_cls(f"curve-{task}-r{r}", argv, cfg.eval.threads))
        if cfg.online.enabled:
            _add_online_runs(cfg, out, task, stages, job_cls, template)
        if task not in p.seed_tasks:
            continue
        data = out / "data" / task
        for n_seed, s in enumerate(p.seeds[1:], 1):
            sdir = out / "runs" / task / f"seed{s}"
            warm = sdir / "warmup"
            if cfg.offline.warmup.updates > 0:
                argv = ["train", "offline", "--algo", cfg.offline.warmup.algo, "--data", str(data), "--config",
                        str(out / "configs" / f"warmup_s{s}.yaml"), "--out", str(warm), "--updates",
                        str(cfg.offline.warmup.updates), "--episodes", cfg.offline.warmup.episodes, "--no-progress"]
                stages["warmup"].append(job_cls(f"warmup-{task}-s{s}", argv, cfg.offline.warmup.threads))
            rollouts = out / "data" / f"{task}_rollouts_s{s}"  # this seed's warm-up's own rollouts
            main_roll = next((j for j in stages["warmup"] if j.name == f"rollouts-{task}"), None)
            if main_roll is not None:
                argv = _with(_with(_with(main_roll.argv, "--run", str(warm)), "--record", str(rollouts)),
                             "--out", str(out / "rollouts" / f"{task}_s{s}.json"))
                stages["warmup"].append(job_cls(f"rollouts-{task}-s{s}", argv, 1, needs=[f"warmup-{task}-s{s}"]))
            runs = []
            for algo in p.seed_algos:
                run_s = sdir / algo
                argv = ["train", "offline", "--algo", algo, "--data", str(data), "--config",
                        str(out / "configs" / f"offline_s{s}.yaml"), "--out", str(run_s), "--updates",
                        str(cfg.offline.updates), "--no-progress"]
                if cfg.offline.warmup.updates > 0:
                    argv += ["--init-from", str(warm)]
                if main_roll is not None:
                    argv += ["--rollouts", str(rollouts)]
                stages["offline"].append(job_cls(f"offline-{task}-{algo}-s{s}", argv, cfg.offline.threads,
                                                 after=("export", run_s, data)))
                # offline.select: this seed's row deploys its best checkpoint on the same selection seeds as the
                # main row (the offline_s<s>.yaml above keeps every candidate: it is offline.yaml with the seed)
                main_sel = next((j for j in stages["offline"] if j.name == f"select-{task}-{algo}"), None)
                if main_sel is not None:
                    stages["offline"].append(job_cls(f"select-{task}-{algo}-s{s}", _with(main_sel.argv, "--run",
                                                     str(run_s)), main_sel.threads,
                                                     needs=[f"offline-{task}-{algo}-s{s}"]))
                runs.append((algo, run_s, None))
            if cfg.online.enabled:
                run_s = sdir / f"{on.algo}-online"
                src = next(j for j in stages["online"] if j.name == f"online-{task}-{on.algo}")
                argv = _with(_with(_with(src.argv, "--offline-run", str(sdir / on.from_algo)), "--out", str(run_s)),
                             "--seed", str(online_run_seed(cfg, max(p.online_runs, 1) - 1 + n_seed)))
                stages["online"].append(job_cls(f"online-{task}-{on.algo}-s{s}", argv, on.threads))
                runs.append((f"{on.algo}-online", run_s, round_archive(cfg, run_s, on.rounds)))
            # (each job waits for the runs it reads: demo/run.py's link)
            for name, run_s, residual in runs:
                for oset in p.seed_object_sets:
                    dst = out / "eval_seeds" / f"{task}__{name}@s{s}__{oset}.json"
                    argv = _with(_eval_argv(template, run_s, oset, p.seed_trials, dst, None, residual, False),
                                 "--task", task)
                    stages["eval"].append(job_cls(f"eval-{task}-{name}-s{s}-{oset}", argv, cfg.eval.threads))
    stages["report"].append(job_cls("evidence", [
        "report", "evidence", str(out), "--out", str(out / "report"),
        "--eval-seeds", f"{cfg.eval.seed0}..{cfg.eval.seed0 + cfg.eval.trials - 1}",
        "--tuning-seeds", f"{p.tuning_seed0}..",
        "--first-seed", str(p.seeds[0]), "--episodes-per-round", str(cfg.online.episodes_per_round)],
        needs=["report"]))
