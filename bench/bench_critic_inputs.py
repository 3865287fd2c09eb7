"""What the chunk critic's value reads: the camera images or the robot's own state (issue 14, Fig. 11).

BORA's critic sees the cognition token z_t, and our VLM feeds the normalised proprio state into z_t as a
token (``ModelConfig.use_proprio``). A critic trained on demonstrations (almost all successful) can then
predict "time to the end of the demonstration" from the arm and hand pose alone, a shortcut that says nothing
about the object. This bench measures it on recorded rollouts (``bora eval --record``, successes and
failures): at each fixed control step t, for the N episodes that last past t, the matrix

    M[i, j] = v(z(images_i(t), instruction, state_j(t)), 0)

(episode i's camera images with episode j's state). Its row means vary with the IMAGES only (state averaged
out), its column means with the STATE only, its diagonal is the critic as deployed. Reported per step: the
variance of each (and the interaction's share), and the outcome AUROC (P(failure scores lower than success))
of the diagonal, of the image-driven score (row means) and of the state-driven score (column means).

    .venv/bin/python bench/bench_critic_inputs.py --run RUN --episodes ROLLOUTS [--steps 5 10 ...] \
        [--max-episodes 40] [--out bench/results/critic_inputs]

RUN: an offline run with ``policy/`` and ``critic/`` (the critic on z_t: bora, aloe); ROLLOUTS: an episode
directory written by ``bora eval --run RUN --record ROLLOUTS`` (or any policy's rollouts on the same task).
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

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)


def auroc(score: np.ndarray, success: np.ndarray) -> float | None:
    """P(score of a failure < score of a success), ties 1/2; None without both outcomes."""
    from bora_trainer.stats import auroc as _auroc

    if success.all() or not success.any():
        return None
    return float(_auroc(score, success))


def value_matrix(runner, colors: np.ndarray, states: np.ndarray, instruction: str) -> np.ndarray:
    """``M[i, j] = v(z(colors[i], states[j]), 0)`` for N episodes (one batch per image row)."""
    import torch

    n = len(colors)
    out = np.zeros((n, n), np.float64)
    with torch.no_grad():
        for i in range(n):
            obs = {"color": np.repeat(colors[i][None], n, 0), "instruction": instruction, "state": states}
            z, _ = runner.policy.encode_with_state(obs)
            out[i] = runner.critic.v(z.float())[:, 0].double().cpu().numpy()
    return out


def decompose(m: np.ndarray, success: np.ndarray) -> dict:
    """Two-way decomposition of ``m`` (rows: images, columns: state) and the AUROC of each score."""
    rows, cols, diag = m.mean(1), m.mean(0), np.diag(m)
    resid = m - rows[:, None] - cols[None, :] + m.mean()
    total = m.var()
    return {
        "n": int(len(m)),
        "successes": int(success.sum()),
        "var_diag": float(diag.var()),
        "var_images": float(rows.var()),
        "var_state": float(cols.var()),
        "share_images": float(rows.var() / total) if total > 0 else 0.0,
        "share_state": float(cols.var() / total) if total > 0 else 0.0,
        "share_interaction": float(resid.var() / total) if total > 0 else 0.0,
        "auroc_critic": auroc(diag, success),
        "auroc_images": auroc(rows, success),
        "auroc_state": auroc(cols, success),
    }


def load_runner(p: argparse.ArgumentParser, run: Path, threads: int):
    """The run's deployed policy with its critic on z_t (``p.error`` when it has none, or one that reads images)."""
    import torch

    from bora_policy.models.export import find_critic_dir
    from bora_policy.runtime.policy_runner import PolicyRunner

    torch.set_num_threads(threads)
    critic_dir = find_critic_dir(run)
    if critic_dir is None:
        p.error(f"--run {run}: no critic/ directory (a run of an algorithm with a critic on z_t)")
    runner = PolicyRunner.from_paths(str(run / "policy"), critic_path=str(critic_dir))
    if getattr(runner.critic, "input_kind", "z") != "z":
        p.error(f"--run {run}: its critic reads images, not z_t; this bench is for critics on z_t")
    return runner


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="offline run with policy/ and critic/")
    p.add_argument("--episodes", required=True, type=Path, help="recorded rollouts (bora eval --record)")
    p.add_argument("--steps", type=int, nargs="*", default=None,
                   help="control steps (default: 5, 10, ... up to the shortest episode)")
    p.add_argument("--max-episodes", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    a = p.parse_args(argv)

    from bora_policy.common.episodes import episode_ids, read_episode

    runner = load_runner(p, a.run, a.threads)
    ids = episode_ids(a.episodes)[: a.max_episodes]
    if len(ids) < 4:
        p.error(f"--episodes {a.episodes}: {len(ids)} episodes, need at least 4")
    eps = [read_episode(a.episodes, i) for i in ids]
    success = np.array([bool(info.get("success")) for _, info in eps])
    lengths = [len(arr["state"]) for arr, _ in eps]
    instruction = str(eps[0][1].get("instruction") or "")
    if not instruction:
        from bora_sim.tasks import TASKS

        instruction = TASKS[eps[0][1]["task"]].instruction
    steps = a.steps or list(range(5, min(lengths), 5))
    t0 = time.time()
    per_step = []
    for t in steps:
        keep = [k for k, n in enumerate(lengths) if n > t]
        colors = np.stack([eps[k][0]["color"][t] for k in keep])
        states = np.stack([eps[k][0]["state"][t] for k in keep]).astype(np.float32)
        row = {"step": t, **decompose(value_matrix(runner, colors, states, instruction), success[keep])}
        per_step.append(row)
        print(json.dumps(row), flush=True)
    result = {"run": str(a.run), "episodes": str(a.episodes), "n_episodes": len(ids),
              "successes": int(success.sum()), "per_step": per_step, "wall_s": round(time.time() - t0, 1),
              "machine": machine(calibrate=False)}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_name(a.out.name + ".json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
