"""Is the outcome in z_t at all? A linear probe next to the critic (issue 14, Fig. 11).

The chunk critic's value ranks rollouts by their outcome no better than chance on most tasks (window-mean AUROC
0.4-0.6), also when its online data hold many autonomous failures (online_no_operator_pick_and_place.md). Two
explanations predict different things: if the cognition token z_t carries the outcome, a simple classifier fitted
on it should rank held-out rollouts well and the critic's learning is what falls short; if z_t does not carry it,
no critic on z_t can, and the representation is the limit. This bench fits, at each fixed control step t, an
L2-regularised logistic regression (standardised inputs, its weight chosen by 5-fold cross-validation on the
training rollouts) from z_t, from the robot state alone and from both, to the episode's outcome, on one set of
recorded rollouts, and reports its AUROC on another set next to the critic's own v(z_t, 0) on that set::

    .venv/bin/python bench/critic_probe.py --run RUN --train ROLLOUTS_A --test ROLLOUTS_B \
        [--steps 5 10 ...] [--out bench/results/critic_probe_TASK]

RUN: an offline run with ``policy/`` and ``critic/`` (a critic on z_t: bora, aloe); ROLLOUTS_*: episode directories
written by ``bora eval --run RUN --record DIR`` on two disjoint seed ranges. The probe is the ceiling of a linear
read-out, not of a critic (which must also learn it from rewards): a probe near 0.5 says the information is not
linearly there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in ("bora_policy", "bora_trainer", "bora_sim"):
    sys.path.insert(0, str(ROOT / "src" / _p))

from bench_critic_inputs import load_runner  # noqa: E402  (bench/ is on sys.path when run as a script)
from machine_info import machine  # noqa: E402

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def auroc(score: np.ndarray, success: np.ndarray) -> float | None:
    """P(score of a failure < score of a success), ties 1/2; None without both outcomes."""
    from bora_trainer.stats import auroc as _auroc

    if success.all() or not success.any():
        return None
    return float(_auroc(score, success))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float):
    """Logistic regression with an L2 penalty on the weights (not the bias), fitted by L-BFGS in float64 on
    standardised inputs; returns ``predict(x) -> logits``."""
    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd).double()
    yt = torch.from_numpy(y.astype(np.float64))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w * w).sum() / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach().numpy(), float(b.detach())
    return lambda q: ((q - mu) / sd) @ w_ + b_


def choose_l2(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """The L2 weight of ``L2_GRID`` with the best mean out-of-fold AUROC (stratified folds)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % folds
    best, best_score = L2_GRID[-1], -1.0
    for l2 in L2_GRID:
        scores = []
        for f in range(folds):
            tr, te = fold != f, fold == f
            if y[tr].all() or not y[tr].any():
                continue
            s = auroc(fit_logistic(x[tr], y[tr], l2)(x[te]), y[te].astype(bool))
            if s is not None:
                scores.append(s)
        if scores and np.mean(scores) > best_score:
            best, best_score = l2, float(np.mean(scores))
    return best


def features(runner, eps, t: int, instruction: str) -> dict[str, np.ndarray]:
    """z_t, the normalised state and the critic's v(z_t, 0) of every episode in ``eps`` (all last past t)."""
    import torch

    colors = np.stack([arr["color"][t] for arr, _ in eps])
    states = np.stack([arr["state"][t] for arr, _ in eps]).astype(np.float32)
    with torch.no_grad():
        z, _ = runner.policy.encode_with_state({"color": colors, "instruction": instruction, "state": states})
        v = runner.critic.v(z.float())[:, 0].double().cpu().numpy()
    z = z.float().cpu().numpy().astype(np.float64)
    return {"z": z, "state": states.astype(np.float64), "z+state": np.concatenate([z, states], 1), "v": v}


def table(result: dict) -> str:
    """Markdown: per step, the outcome counts and the AUROC of the critic and of each probe on the test set."""
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| step | train successes / failures | test successes / failures | critic v(z_t, 0) | probe on z_t | "
             "probe on the state | probe on both |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["per_step"]:
        lines.append(f"| {r['step']} | {r['train'][0]} / {r['train'][1]} | {r['test'][0]} / {r['test'][1]} | "
                     f"{f(r['auroc_critic_test'])} | {f(r.get('auroc_probe_z'))} | {f(r.get('auroc_probe_state'))} | "
                     f"{f(r.get('auroc_probe_z+state'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="offline run with policy/ and critic/")
    p.add_argument("--train", required=True, type=Path, help="recorded rollouts the probe is fitted on")
    p.add_argument("--test", required=True, type=Path, help="recorded rollouts it is scored on (other seeds)")
    p.add_argument("--steps", type=int, nargs="*", default=None,
                   help="control steps (default: 5, 10, ... up to the shorter set's shortest episode)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md (the table)")
    a = p.parse_args(argv)

    from bora_policy.common.episodes import episode_ids, read_episode

    runner = load_runner(p, a.run, a.threads)
    sets = {}
    for name, d in (("train", a.train), ("test", a.test)):
        ids = episode_ids(d)
        if len(ids) < 10:
            p.error(f"--{name} {d}: {len(ids)} episodes, need at least 10")
        sets[name] = [read_episode(d, i) for i in ids]
    instruction = str(sets["train"][0][1].get("instruction") or "")
    if not instruction:
        from bora_sim.tasks import TASKS

        instruction = TASKS[sets["train"][0][1]["task"]].instruction
    shortest = min(len(arr["state"]) for eps in sets.values() for arr, _ in eps)
    steps = a.steps or list(range(5, shortest, 5))
    t0 = time.time()
    per_step = []
    for t in steps:
        f, y = {}, {}
        for name, eps in sets.items():
            keep = [e for e in eps if len(e[0]["state"]) > t]
            f[name] = features(runner, keep, t, instruction)
            y[name] = np.array([bool(info.get("success")) for _, info in keep])
        row = {"step": t, "train": [int(y["train"].sum()), int((~y["train"]).sum())],
               "test": [int(y["test"].sum()), int((~y["test"]).sum())],
               "auroc_critic_test": auroc(f["test"]["v"], y["test"])}
        for kind in ("z", "state", "z+state"):
            if y["train"].all() or not y["train"].any():
                row[f"auroc_probe_{kind}"] = None
                continue
            l2 = choose_l2(f["train"][kind], y["train"].astype(int))
            pred = fit_logistic(f["train"][kind], y["train"].astype(int), l2)
            row[f"auroc_probe_{kind}"] = auroc(pred(f["test"][kind]), y["test"])
            row[f"l2_{kind}"] = l2
        per_step.append(row)
        print(json.dumps(row), flush=True)
    result = {"run": str(a.run), "train": str(a.train), "test": str(a.test), "per_step": per_step,
              "wall_s": round(time.time() - t0, 1), "machine": machine(calibrate=False)}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_name(a.out.name + ".json").write_text(json.dumps(result, indent=1))
        a.out.with_name(a.out.name + ".md").write_text(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
