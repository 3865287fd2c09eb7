"""Viewer files and log directories for ``bora report`` and ``bora demo`` (no rclpy).

* :func:`online_rollout_rrds`: the last episode of every online run's ``rollouts/`` episode dataset
  (``bora train online`` writes it) as an ``.rrd``: cameras, beta/takeovers, values, outcome;
* :func:`eval_values_rrd`: the per-step critic values of every evaluated episode (the report's
  Fig. 11-style profile, any episode): ``eval/<method>/<task>/<object set>/v`` on ``episode_step``
  with one ``eval_episode`` index per episode;
* :func:`tensorboard_dirs`: the runs' TensorBoard directories (``<run>/tb``).
"""

from __future__ import annotations

from pathlib import Path

import rerun as rr

from bora_trainer.viz.blueprint import default_blueprint


def online_rollout_rrds(runs_dir: str | Path, out_dir: str | Path) -> list[tuple[Path, Path, int]]:
    """``(.rrd, rollouts dir, episode id)`` per online run."""
    from bora_policy.common.episodes import episode_ids
    from bora_trainer.viz.log import VizLogger
    from bora_trainer.viz.sources import log_dataset

    out: list[tuple[Path, Path, int]] = []
    for roll in sorted(Path(runs_dir).glob("**/rollouts")):
        if not (roll / "meta.json").exists() or not episode_ids(roll):
            continue
        run = roll.parent
        name = "-".join(run.relative_to(runs_dir).parts) or run.name
        path = Path(out_dir) / f"{name}-last-episode.rrd"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = rr.RecordingStream("bora_viz", recording_id=f"bora-{name}")
        rec.save(str(path))
        last = episode_ids(roll)[-1]
        summary = log_dataset(VizLogger(rec), roll, episodes=[last])
        rec.send_blueprint(default_blueprint(summary.cameras))
        rec.flush()
        rec.disconnect()
        out.append((path, roll, last))
    return out


def eval_values_rrd(cells: dict, path: str | Path) -> Path | None:
    """``cells`` as ``bora_trainer.report.load_results`` returns; None when no episode has values."""
    eps = [(k, ep) for k, c in sorted(cells.items()) for ep in c.episodes if ep.get("values")]
    if not eps:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream("bora_viz", recording_id="bora-eval-values")
    rec.save(str(path))
    for n, ((object_set, task, method), ep) in enumerate(eps):
        ent = f"eval/{method}/{task}/{object_set}".replace(" ", "_")
        rec.set_time("eval_episode", sequence=n)
        rec.log(f"{ent}/outcome", rr.TextLog(
            f"{method} {task} {object_set} seed {ep.get('seed')}: {'success' if ep.get('success') else 'failure'}"))
        for t, x in enumerate(ep["values"]):
            rec.set_time("episode_step", sequence=t)
            rec.log(f"{ent}/v", rr.Scalars(float(x)))
    rec.flush()
    rec.disconnect()
    return path


def tensorboard_dirs(runs_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(runs_dir).glob("**/tb") if p.is_dir())
