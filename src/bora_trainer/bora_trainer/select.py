"""``bora select``: an offline run's checkpoint chosen by rollouts on held-out selection seeds (issue 14; our addition).

    bora select --run runs/bora --task press_button --trials 20 --seed0 600000

Why: along ONE training run, the success of a checkpoint moves by 15-20 points pooled between checkpoints
500 updates apart while the BC loss is flat (bench/results/finetune_drift.md), more than the differences
between methods the evidence protocol measures. Taking every row's LAST checkpoint compares where each
row's trajectory happened to stop. Model selection on held-out rollouts, with the same budget for every
row, is the usual remedy (the paper is silent on which checkpoint it deploys):

1. every complete checkpoint of RUN (written ``ckpt_every`` updates apart; keep them all with
   ``keep_last: 0``) is exported to ``RUN/select/<step>/policy`` (+ ``critic/``) with the run's own
   ``RUN/policy`` config and normaliser; a run trained with ``policy_ema`` gives its weight average;
2. each is rolled out with ``bora eval`` on ``--trials`` selection seeds ``--seed0 ..``, held out like tuning
   seeds (never the evaluation seeds) and a range of their own (600000.. by default; ours): not the protocol's
   tuning seeds either, on which ``bora demo --tuning`` would otherwise score a row on the seeds it was selected
   on (the plan refuses overlapping ranges);
3. the candidate with the most successes wins; a tie goes to the LATER checkpoint (the configured training
   length keeps its place unless another checkpoint is strictly better on the selection seeds);
4. the winner becomes ``RUN/policy`` and ``RUN/critic``, and ``RUN/selection.json`` records every
   candidate's successes and the chosen step. :func:`deployed_checkpoint` is that checkpoint, which the
   online stage inherits its VLA and critic from (``online/vla.py``, ``online/loop.py``).

The critic of a run trained with ``critic_refit_updates`` (offline/critic_refit.py) is refitted after the last
update on the FINAL VLM's tokens and exported as ``RUN/critic``; checkpoints keep the critic as training left it.
Our choice, to lose no data and deploy no critic fitted to another VLM: before anything overwrites ``RUN/critic``,
the training's refitted critic is copied to ``RUN/select/<last checkpoint>/refit_critic`` (:func:`keep_refit_critic`);
when the last checkpoint wins it is deployed again as ``RUN/critic``; when an earlier one wins, ``RUN/critic`` is
that checkpoint's critic (not refitted: the refit fits the last checkpoint's VLM) and ``selection.json`` says so
(``critic``: "refit" or "checkpoint", ``refit_critic``: where the refitted one is kept). Until 2026-12-07 the
chosen checkpoint's critic always replaced ``RUN/critic``, so a selected run lost its refit (found in review).

The training's own export stays available as ``RUN/select/<last step>/policy``. Candidate results are kept
(``RUN/select/<step>.json``) and reused when the settings and the checkpoint (``checkpoint_id``: the sha256 of its
``meta.json``, which lists its files' sha256) match, so a stopped selection resumes. A ``selection.json`` that no
longer describes the run (:func:`selection_mismatch`: other checkpoints, a changed one, other settings) is an error
where it is read: :func:`deployed_checkpoint` and ``bora demo --resume`` (``demo.run.stale_selections``). Until
2026-12-07 a candidate result was reused for a retrained checkpoint of the same path, and a stale selection kept
deploying its step (found in review).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from bora_trainer.checkpoint import atomic_write_text, latest_checkpoint, list_checkpoints

SELECTION = "selection.json"
SELECT_DIR = "select"
REFIT_CRITIC = "refit_critic"  # RUN/select/<last checkpoint>/refit_critic: the training's refitted critic


class SelectError(Exception):
    """A bad argument or run directory; the message says what and what was expected."""


def choose(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate with the most ``successes``; ties go to the later ``step`` (module docstring, step 3)."""
    if not candidates:
        raise SelectError("no candidates to choose from")
    return max(candidates, key=lambda c: (int(c["successes"]), int(c["step"])))


def deployed_checkpoint(run: str | Path) -> Path | None:
    """The checkpoint ``RUN/policy`` was exported from: ``RUN/selection.json``'s chosen step when the run was
    selected, else ``RUN/latest`` (None when the run has no checkpoint)."""
    run = Path(run)
    sel = run / SELECTION
    if sel.is_file():
        why = selection_mismatch(run)
        if why:
            raise SelectError(why)
        step = int(json.loads(sel.read_text())["chosen_step"])
        path = run / "checkpoints" / f"step_{step:07d}"
        if not (path / "meta.json").is_file():
            raise SelectError(f"{sel} chose step {step}, but {path} is not a complete checkpoint")
        return path
    return latest_checkpoint(run)


def checkpoint_id(ckpt: Path) -> str:
    """The sha256 of a checkpoint's ``meta.json`` (which holds the sha256 of every file of it): its content."""
    return hashlib.sha256((Path(ckpt) / "meta.json").read_bytes()).hexdigest()


def selection_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of ``bora select`` that decide its rollouts (recorded in ``selection.json``)."""
    return {"task": args.task, "objects": args.objects, "trials": args.trials, "seed0": args.seed0,
            "replan_steps": args.replan_steps, "control_hz": args.control_hz, "max_steps": args.max_steps,
            "image_size": args.image_size}


def selection_mismatch(run: str | Path, settings: dict[str, Any] | None = None) -> str | None:
    """Why ``RUN/selection.json`` no longer describes ``run`` (None when it does, or when there is none): the run's
    complete checkpoints are not the candidates it chose among (trained on since), or one of them changed
    (``checkpoint_id``; not recorded before 2026-12-07), or, with ``settings`` (:func:`selection_settings`), one of
    them differs from what it was selected with. One line, naming the file."""
    run = Path(run)
    sel = run / SELECTION
    if not sel.is_file():
        return None
    data = json.loads(sel.read_text())
    for k, v in (settings or {}).items():
        if data.get(k) != v:
            return f"{sel}: selected with {k} {data.get(k)!r}, expected {v!r}; run `bora select` again"
    cands = data.get("candidates")
    if cands is None:  # a hand-written choice: nothing to compare
        return None
    now = {int(json.loads((ck / "meta.json").read_text())["step"]): ck for ck in list_checkpoints(run)}
    steps = [int(c["step"]) for c in cands]
    if steps != sorted(now):
        return (f"{sel}: chose among the checkpoints of steps {steps}, the run now has {sorted(now)}; "
                "run `bora select` again")
    changed = [c["step"] for c in cands if c.get("checkpoint_id") not in (None, checkpoint_id(now[int(c["step"])]))]
    if changed:
        return f"{sel}: the checkpoint of step {changed[0]} changed since the selection; run `bora select` again"
    return None


def deployed_modules(modules: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's modules as deployed: a ``policy_ema`` run's weight average (``vlm_ema``, ``expert_ema``)
    in place of the raw actor weights (what ``RUN/policy`` exports)."""
    return {**modules, **{n[: -len("_ema")]: st for n, st in modules.items() if n.endswith("_ema")}}


def load_deployed(path: str | Path) -> dict[str, Any]:
    """``checkpoint.load_checkpoint`` of what ``RUN/policy`` came from: for a run directory its
    :func:`deployed_checkpoint`, else ``path`` itself (a checkpoint directory); modules as
    :func:`deployed_modules`. What ``init_from``, the online stage's frozen VLA and its critic read."""
    from bora_trainer.checkpoint import load_checkpoint

    p = Path(path)
    ck = load_checkpoint((deployed_checkpoint(p) if (p / "checkpoints").is_dir() else None) or p)
    ck["modules"] = deployed_modules(ck["modules"])
    return ck


def export_checkpoint(run: Path, ckpt: Path, dest: Path, critic_dir: Path | None = None) -> Path:
    """Export checkpoint ``ckpt`` of offline run ``run`` to ``dest/policy`` (+ ``dest/critic`` when the run
    exported a chunk critic: the checkpoint's, or the critic in ``critic_dir`` when given), with the config and
    normaliser of ``run/policy``."""
    from bora_policy.models.critic import load_critic
    from bora_policy.models.export import export_policy, is_policy_dir, policy_from_modules
    from bora_policy.models.vla import VLAPolicy

    if not is_policy_dir(run / "policy"):
        raise SelectError(f"--run {run}: no exported policy/ (train it with `bora train offline` first)")
    base = VLAPolicy.load(run / "policy", device="cpu")
    mods = load_deployed(ckpt)["modules"]
    if "vlm" not in mods or "expert" not in mods:
        raise SelectError(f"{ckpt}: no 'vlm' / 'expert' modules (has {sorted(mods)})")
    policy = policy_from_modules(base.cfg, base.normalizer, mods["vlm"], mods["expert"], device="cpu")
    critic = None
    if critic_dir is not None:
        critic = load_critic(critic_dir, device="cpu")
    elif (run / "critic").is_dir() and "critic" in mods:
        critic = load_critic(run / "critic", device="cpu")
        critic.load_state_dict(mods["critic"])
    return export_policy(dest, policy, critic)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def refit_updates(run: Path) -> int:
    """``critic_refit_updates`` of ``RUN/config.yaml`` (0 where absent or unreadable: no refit)."""
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return 0
    return int(cfg.get("critic_refit_updates") or 0) if isinstance(cfg, dict) else 0


def keep_refit_critic(run: Path, last: Path) -> Path | None:
    """Copy the training's refitted ``RUN/critic`` to ``RUN/select/<last.name>/refit_critic`` before a selection
    overwrites it (module docstring), while ``RUN/critic`` is still the training's export: no ``selection.json``,
    or one that deployed other weights (the run was exported again since). Returns the kept directory; None for
    a run without a refit, or one selected before this copy existed (its refit was overwritten then)."""
    from bora_policy.models.critic import CRITIC_WEIGHTS

    if refit_updates(run) <= 0:
        return None
    kept = run / SELECT_DIR / last.name / REFIT_CRITIC
    cur = _sha256(run / "critic" / CRITIC_WEIGHTS)
    sel = run / SELECTION
    prev = json.loads(sel.read_text()) if sel.is_file() else {}
    exported_by_training = not sel.is_file() or ("critic_sha256" in prev and prev["critic_sha256"] != cur)
    if cur is not None and exported_by_training and cur != _sha256(kept / CRITIC_WEIGHTS):
        tmp = kept.with_name(f".{REFIT_CRITIC}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run / "critic", tmp)
        if kept.exists():  # an earlier refit of the same checkpoint, superseded by the training's newer export
            shutil.rmtree(kept)
        os.replace(tmp, kept)
    return kept if (kept / CRITIC_WEIGHTS).is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bora select", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="offline run directory (RUN/checkpoints, RUN/policy)")
    p.add_argument("--task", required=True, help="bora_sim task the candidates are rolled out on")
    p.add_argument("--trials", type=int, default=30, help="tuning episodes per candidate (default 30)")
    p.add_argument("--seed0", type=int, default=600_000,
                   help="first selection seed (default 600000: a range of its own, neither the evaluation seeds "
                   "nor the tuning seeds 200000.. of `bora demo --tuning`)")
    p.add_argument("--objects", default="standard", help="object set of the tuning rollouts (default standard)")
    p.add_argument("--replan-steps", type=int, default=8, help="control steps between replans (default 8)")
    p.add_argument("--control-hz", type=float, default=10.0, help="control rate (default 10)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on control steps (default: the task's limit)")
    p.add_argument("--image-size", type=int, default=None, help="camera image side (default: the policy's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--num-envs", type=int, default=1, help="simulated robots in lockstep (bora eval --num-envs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def select(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate every checkpoint of ``args.run`` on the selection seeds and deploy the best (module docstring)."""
    from bora_policy.models.critic import CRITIC_WEIGHTS
    from bora_trainer.evaluate import build_parser as eval_parser
    from bora_trainer.evaluate import evaluate

    run = Path(args.run)
    if args.trials < 1:
        raise SelectError(f"--trials must be >= 1, got {args.trials}")
    ckpts = list_checkpoints(run)
    if not ckpts:
        raise SelectError(f"--run {run}: no complete checkpoints under {run / 'checkpoints'}")
    kept = keep_refit_critic(run, ckpts[-1])  # before RUN/critic is overwritten (module docstring)
    settings = selection_settings(args)
    cands = []
    for ck in ckpts:
        step = int(json.loads((ck / "meta.json").read_text())["step"])
        dest = run / SELECT_DIR / ck.name
        res_path = run / SELECT_DIR / f"{ck.name}.json"
        res = json.loads(res_path.read_text()) if res_path.is_file() else None
        ck_id = checkpoint_id(ck)
        if (res is None or res.get("select_settings") != settings or res.get("checkpoint") != str(ck)
                or res.get("checkpoint_id") != ck_id):
            export_checkpoint(run, ck, dest)
            argv = ["--run", str(dest / "policy"), "--task", args.task, "--objects", args.objects,
                    "--trials", str(args.trials), "--seed0", str(args.seed0), "--replan-steps",
                    str(args.replan_steps), "--control-hz", str(args.control_hz), "--threads", str(args.threads),
                    "--num-envs", str(args.num_envs), "--no-values", "--method", f"{run.name}@{step}",
                    "--out", str(res_path)]
            for flag, val in (("--max-steps", args.max_steps), ("--image-size", args.image_size)):
                argv += [flag, str(val)] if val is not None else []
            if args.no_progress:
                argv.append("--no-progress")
            res = evaluate(eval_parser().parse_args(argv))
            res.update(select_settings=settings, checkpoint=str(ck), checkpoint_id=ck_id)
            atomic_write_text(res_path, json.dumps(res, indent=1))
        cands.append({"step": step, "checkpoint": ck.name, "checkpoint_id": ck_id,
                      "successes": int(res["successes"]), "trials": int(res["trials"])})
        print(f"bora select: {run.name} step {step}: {res['successes']}/{res['trials']} on the selection seeds "
              f"{args.seed0}..", flush=True)
    best = choose(cands)
    chosen = run / "checkpoints" / best["checkpoint"]
    refit = run / SELECT_DIR / best["checkpoint"] / REFIT_CRITIC  # the winner's refitted critic, if it has one
    refit = refit if refit_updates(run) > 0 and (refit / CRITIC_WEIGHTS).is_file() else None
    export_checkpoint(run, chosen, run, critic_dir=refit)  # RUN/policy + RUN/critic from the winner
    critic_sha = _sha256(run / "critic" / CRITIC_WEIGHTS)
    out = {"chosen_step": best["step"], "last_step": cands[-1]["step"], "candidates": cands, **settings,
           "critic": None if critic_sha is None else "refit" if refit is not None else "checkpoint",
           "critic_sha256": critic_sha}
    if kept is not None and refit is None:
        out["refit_critic"] = str(kept.relative_to(run))
        print(f"bora select: {run}/critic is step {best['step']}'s critic as its checkpoint holds it, not refitted "
              f"(the refit fits step {cands[-1]['step']}'s VLM; kept in {kept})", flush=True)
    atomic_write_text(run / SELECTION, json.dumps(out, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    from bora_trainer.evaluate import EvalError

    args = build_parser().parse_args(argv)
    try:
        out = select(args)
    except (SelectError, EvalError, FileNotFoundError, ValueError) as e:
        print(f"bora select: {e}", file=sys.stderr)
        return 2
    print(f"bora select: {args.run}: step {out['chosen_step']} of {[c['step'] for c in out['candidates']]} "
          f"({max(c['successes'] for c in out['candidates'])}/{args.trials} on the selection seeds) -> "
          f"{args.run}/policy", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
