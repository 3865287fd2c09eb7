"""Critic-triggered help requests measured (issue 19): precision / recall against eventual failures, lead
time, and operator attention in requested vs privileged mode, per task. Writes
``bench/results/help_requests.{json,md}``.

Per task, with a trained run (policy + critic; ``--run TASK=DIR``), on the simulated robot with the policy
node's chunk execution (``ChunkExecutor``, a plan every ``--replan-steps``) and the critic's q of the executing
chunk step as the monitor's signal (``runtime/help_monitor.py``, signal ``q``):

1. passive episodes (nobody acts; seeds ``seed0 ..``): per step the signal, and the step at which the
   privileged scripted operator's detector would have fired (``ScriptedOperator.observe`` fed every step,
   its commands never applied). The first half calibrates the threshold for ``--false-rate``
   (``help_calibration.calibrate``), the second half is the test set: an episode is *flagged* when the
   monitor asks at least once; precision = failed / flagged, recall = flagged / failed; lead time = from the
   first request to the privileged detector's firing (negative when the request came after it) and to the
   failure (the episode's end). AUROC of the episode score (lowest persistent signal) separating failure
   from success says whether the critic is informative at all.
2. assisted episodes on the test seeds, in both operator modes: ``privileged`` (the scripted operator acts on
   its own detector; a person watching every autonomous second: attention 1) and ``requested`` (the monitor
   with the calibrated threshold asks, the operator in requested mode takes over ``reaction_s`` later;
   attention = steps from the first request to the end of the takeover / episode steps). Success, takeover
   share and attention per mode. No training here: BORA-Full after online rounds in both modes is not run.

    .venv/bin/python bench/bench_help.py --run press_button=/tmp/gate_scope/run_off --episodes 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


def auroc(neg, pos) -> float | None:
    """P(score of a failure < score of a success) + ties/2: 1 = the critic ranks every failure lower."""
    if not len(neg) or not len(pos):
        return None
    wins = sum((f < s) + 0.5 * (f == s) for f in pos for s in neg)
    return float(wins / (len(neg) * len(pos)))


def rollout(env, runner, seed: int, exec_cfg, replan: int, mode: str, monitor_cfg=None, reaction_s: float = 0.3):
    """One episode; mode passive / privileged / requested (module docstring)."""
    import torch

    from bora_policy.runtime.chunk_executor import ChunkExecutor
    from bora_policy.runtime.help_monitor import HelpMonitor
    from bora_sim.operator import OperatorConfig, ScriptedOperator

    torch.manual_seed(seed)
    obs, info = env.reset(seed=seed)
    op_mode = "requested" if mode == "requested" else "privileged"
    op = ScriptedOperator(env, OperatorConfig(mode=op_mode, reaction_s=reaction_s), seed=seed)
    mon = HelpMonitor(monitor_cfg) if monitor_cfg is not None else None
    ex = ChunkExecutor(exec_cfg)
    dt = 1.0 / exec_cfg.control_hz

    state_of = runner.processor.state_of  # [arm q, hand q] (bora_policy.runtime.processor)

    ex.hold(state_of(obs), 0.0)
    since, res, step = replan, None, 0
    signal, requests, detector, in_control, watched = [], [], None, [], []
    term = trunc = False
    while not (term or trunc):
        t = step * dt
        if since >= replan or not ex.has_command:
            res = runner.infer(obs["color"], state_of(obs), obs["instruction"])
            ex.set_chunk(res.final, t, t)
            since = 0
        cmd = ex.step(t)
        idx = max(cmd.chunk_index, 0)
        signal.append(float(res.q[min(idx, len(res.q) - 1)]) if res.q is not None else None)
        dec = op.observe(info)
        if mode == "passive":
            if dec.takeover and detector is None:
                detector = step
            a = cmd.position
        else:
            if mon is not None and not dec.takeover:
                d = mon.update(step, res.q, res.v, idx, res.advantage)
                if d is not None:
                    requests.append(step)
                    op.request_help(step, d.reason)
            a = cmd.position
            if dec.takeover:
                a = (1 - dec.beta) * cmd.position + dec.beta * op.human_action()
        in_control.append(bool(dec.takeover))
        watched.append(bool(dec.takeover) or op.help_request is not None)
        obs, _, term, trunc, info = env.step(np.asarray(a, np.float32))
        since += 1
        step += 1
    op.close_open_segment(bool(info["success"]))
    return {
        "seed": seed, "success": bool(info["success"]), "steps": step, "signal": signal, "requests": requests,
        "detector_step": detector, "takeover_steps": int(sum(in_control)), "watched_steps": int(sum(watched)),
        "interventions": op.interventions(),
    }


def task_figures(label, run, args) -> dict:
    import torch

    from bora_policy.runtime.chunk_executor import ChunkExecutorConfig
    from bora_policy.runtime.help_calibration import CalibrationEpisode, calibrate, episode_score
    from bora_policy.runtime.help_monitor import HelpMonitor, HelpMonitorConfig
    from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig
    from bora_sim.env import make_env
    from bora_trainer.eval_run import describe_run, residual_stack

    task = label.split(":")[0]  # TASK or TASK:NAME (several runs of one task)
    torch.set_num_threads(args.threads)
    info = describe_run(run)
    runner = PolicyRunner.from_paths(str(info.policy_dir), critic_path=str(info.critic_dir),
                                     residual_path=(residual_stack(info, None) or [""])[-1],
                                     cfg=PolicyRunnerConfig(device="cpu"))
    env = make_env(task, object_set="standard", image_size=runner.policy.cfg.image_size, control_hz=args.control_hz)
    exec_cfg = ChunkExecutorConfig(control_hz=args.control_hz, chunk_hz=args.control_hz, blend_steps=2)
    hz = args.control_hz
    t0 = time.time()
    seeds = [args.seed0 + i for i in range(args.episodes)]
    passive = [rollout(env, runner, s, exec_cfg, args.replan_steps, "passive") for s in seeds]
    t_passive = time.time() - t0
    half = len(passive) // 2
    cal, test = passive[:half], passive[half:]
    base = HelpMonitorConfig(persist_steps=args.persist_steps, grace_steps=args.grace_steps,
                             hysteresis=args.hysteresis, min_interval_s=args.min_interval_s, control_hz=hz)
    ce = [CalibrationEpisode(task, e["success"], np.asarray(e["signal"], np.float64)) for e in cal]
    try:
        if args.threshold is not None:  # given by hand (a smoke run of the assisted part)
            cal_res = {"monitor": {**base.to_dict(), "threshold": args.threshold}, "given": True}
        else:
            cal_res = calibrate(ce, args.false_rate, base)[task]
        mcfg = HelpMonitorConfig.from_dict(cal_res["monitor"])
    except ValueError as e:  # no successful calibration episode: no threshold can be chosen
        cal_res, mcfg = {"error": str(e)}, None
    scores = {e["seed"]: episode_score(e["signal"], base.persist_steps, base.grace_steps) for e in passive}
    sep = auroc([scores[e["seed"]] for e in passive if e["success"]],
                [scores[e["seed"]] for e in passive if not e["success"]])
    # the same over each episode's first L steps (L = the shortest successful episode): successes end early,
    # so a score over the whole episode also compares short with long episodes
    lens = [e["steps"] for e in passive if e["success"]]
    pre = {e["seed"]: episode_score(e["signal"][: min(lens)], base.persist_steps, base.grace_steps)
           for e in passive} if lens else {}
    sep_pre = auroc([pre[e["seed"]] for e in passive if e["success"]],
                    [pre[e["seed"]] for e in passive if not e["success"]]) if pre else None
    out = {"task": label, "run": str(run), "auroc_first_steps": sep_pre, "first_steps": min(lens) if lens else None,
           "passive_all": [{"seed": e["seed"], "success": e["success"], "steps": e["steps"],
                            "detector_step": e["detector_step"],
                            "signal": [None if x is None else round(x, 5) for x in e["signal"]]} for e in passive],
           "episodes": len(passive), "calibration_seeds": [e["seed"] for e in cal],
           "test_seeds": [e["seed"] for e in test], "calibration": cal_res, "auroc_all": sep,
           "passive_success": sum(e["success"] for e in passive), "passive_s": round(t_passive, 1)}
    if mcfg is None:
        out["note"] = "no threshold: " + cal_res["error"]
        return out
    mon = HelpMonitor(mcfg)
    flagged, leads_fail, leads_det = [], [], []
    for e in test:
        reqs = [d.step for d in mon.run(e["signal"])]
        e["requests"] = reqs
        flagged.append(bool(reqs))
        if reqs and not e["success"]:
            leads_fail.append((e["steps"] - reqs[0]) / hz)
            if e["detector_step"] is not None:
                leads_det.append((e["detector_step"] - reqs[0]) / hz)
    fail = [not e["success"] for e in test]
    n_flag, n_fail = sum(flagged), sum(fail)
    tp = sum(f and x for f, x in zip(flagged, fail))
    out.update(
        test_failures=n_fail, test_flagged=n_flag, true_positives=tp,
        precision=tp / n_flag if n_flag else None, recall=tp / n_fail if n_fail else None,
        false_request_rate_test=(n_flag - tp) / (len(test) - n_fail) if len(test) > n_fail else None,
        median_lead_to_failure_s=float(np.median(leads_fail)) if leads_fail else None,
        median_lead_to_detector_s=float(np.median(leads_det)) if leads_det else None,
        detector_fired_in_failures=sum(e["detector_step"] is not None for e in test if not e["success"]),
        passive_test=[{k: e[k] for k in ("seed", "success", "steps", "requests", "detector_step")} for e in test],
    )
    t1 = time.time()
    modes = {}
    for mode in ("privileged", "requested"):
        eps = [rollout(env, runner, e["seed"], exec_cfg, args.replan_steps, mode, mcfg if mode == "requested" else None,
                       args.reaction_s) for e in test]
        steps = sum(e["steps"] for e in eps)
        watched = steps if mode == "privileged" else sum(e["watched_steps"] for e in eps)
        modes[mode] = {
            "success": sum(e["success"] for e in eps), "episodes": len(eps),
            "takeover_share": sum(e["takeover_steps"] for e in eps) / steps,
            "attention": watched / steps,
            "requests": sum(len(e["requests"]) for e in eps),
            "takeovers": sum(len(e["interventions"]) for e in eps),
            "per_episode": [{k: e[k] for k in ("seed", "success", "steps", "requests", "takeover_steps")} for e in eps],
        }
    out["assisted"] = modes
    out["assisted_s"] = round(time.time() - t1, 1)
    out["attention_ratio"] = modes["requested"]["attention"] / modes["privileged"]["attention"]
    return out


def fmt(x, p=2):
    return "-" if x is None else (f"{x:.{p}f}" if isinstance(x, float) else str(x))


def write_md(res: dict, path: Path) -> None:
    lines = [
        "# Help requests from the chunk critic (issue 19)", "",
        "Commands: " + "; ".join(f"`{c}`" for c in res["commands"]) + f" (the last on commit `{res['commit']}`, "
        f"{res['wall_s']:.0f} s wall on {res['cpus']} shared CPU(s), 1-minute load average at its end "
        f"{res['load_end']:.1f}).", "",
        f"Monitor: signal q of the executing chunk step, persist {res['args']['persist_steps']} step(s), grace "
        f"{res['args']['grace_steps']} steps, hysteresis {res['args']['hysteresis']}, min interval "
        f"{res['args']['min_interval_s']} s; threshold calibrated on the first half of the passive episodes for a "
        f"false-request rate <= {res['args']['false_rate']}; figures on the second half. Requested-mode reaction "
        f"{res['args']['reaction_s']} s.", "",
        "| task | passive success | AUROC (failure < success): whole / first L steps | threshold | "
        "test fail / flagged / TP | precision | "
        "recall | false-request rate (test) | median lead to failure s | median lead to privileged detector s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in res["tasks"]:
        thr = (t.get("calibration") or {}).get("monitor", {}).get("threshold")
        lines.append(
            f"| {t['task']} | {t['passive_success']}/{t['episodes']} | {fmt(t['auroc_all'])} / "
            f"{fmt(t.get('auroc_first_steps'))} (L={t.get('first_steps')}) | {fmt(thr, 4)} | "
            f"{t.get('test_failures', '-')} / {t.get('test_flagged', '-')} / {t.get('true_positives', '-')} | "
            f"{fmt(t.get('precision'))} | {fmt(t.get('recall'))} | {fmt(t.get('false_request_rate_test'))} | "
            f"{fmt(t.get('median_lead_to_failure_s'), 1)} | {fmt(t.get('median_lead_to_detector_s'), 1)} |")
    lines += ["", "| task | mode | success | takeover share of steps | attention (watched or in control) | requests |"
              " takeovers |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in res["tasks"]:
        for mode, m in (t.get("assisted") or {}).items():
            lines.append(f"| {t['task']} | {mode} | {m['success']}/{m['episodes']} | {m['takeover_share']:.2f} | "
                         f"{m['attention']:.2f} | {m['requests']} | {m['takeovers']} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="TASK=RUN_DIR (a run with policy/ and critic/)")
    ap.add_argument("--episodes", type=int, default=20, help="passive episodes per task (half calibrate)")
    ap.add_argument("--seed0", type=int, default=100000)
    ap.add_argument("--false-rate", type=float, default=0.2)
    ap.add_argument("--threshold", type=float, default=None, help="skip the calibration: this threshold")
    ap.add_argument("--persist-steps", type=int, default=2)
    ap.add_argument("--grace-steps", type=int, default=5)
    ap.add_argument("--hysteresis", type=float, default=0.05)
    ap.add_argument("--min-interval-s", type=float, default=3.0)
    ap.add_argument("--reaction-s", type=float, default=0.3)
    ap.add_argument("--replan-steps", type=int, default=8)
    ap.add_argument("--control-hz", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", action="append", default=[], help="a line for the notes section")
    ap.add_argument("--out", default=str(RESULTS / "help_requests"))
    ap.add_argument("--merge", action="store_true", help="keep the other tasks of an existing result file")
    a = ap.parse_args(argv)
    import os
    import subprocess

    t0 = time.time()
    tasks = []
    for spec in a.run:
        task, _, run = spec.partition("=")
        if not run:
            sys.exit(f"--run {spec!r}: expected TASK=RUN_DIR")
        tasks.append(task_figures(task, Path(run), a))
        print(json.dumps({k: v for k, v in tasks[-1].items() if k not in ("passive_test", "assisted")}, default=str))
    out = Path(a.out)
    old = json.loads(out.with_suffix(".json").read_text()) if a.merge and out.with_suffix(".json").is_file() else {}
    mine = {t["task"] for t in tasks}
    tasks = [t for t in old.get("tasks", []) if t["task"] not in mine] + tasks
    runs = [c for c in old.get("commands", [old["command"]] if "command" in old else [])]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {"command": "python bench/bench_help.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "commit": commit, "wall_s": time.time() - t0, "cpus": os.cpu_count(), "load_end": os.getloadavg()[0],
           "machine": machine(calibrate=False), "args": vars(a), "tasks": tasks, "notes": old.get("notes", []) + a.note}
    res["commands"] = runs + [res["command"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    write_md(res, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
