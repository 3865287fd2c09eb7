"""``bora train online --env ros``: the online phase through the ROS 2 graph on the simulated robot
(the graph run; its episode source is :mod:`bora_trainer.online.env_ros`).

The same protocol as ``--env sim`` (Algorithm 1, multi-round), but every piece is the deployed one:

    bora up --sim --with trainer   (sim_bridge + sync + policy + teleop + trainer_node, real DDS)

* ``sim_bridge`` runs the task with the scripted operator (glove stream + takeover trigger), resets
  episodes itself (``auto_reset``); ``sync`` assembles observations; ``policy`` runs the frozen
  offline VLA (+ the residual it hot-reloads); ``teleop`` blends the operator's takeovers
  (A_exec = (1 - beta) A_final + beta A_human) and is the only writer to the simulated drivers;
* ``trainer_node`` (``live:=true``) records the BORA topics into a crash-safe MCAP rosbag2 in
  ``OUT/recordings``, converts and ingests each finished episode, runs the RLPD updates against
  D_offline (``OUT/offline_buffer``: z_t and A_VLA of the offline dataset, computed once here with
  the frozen VLA) and announces checkpoints on ``/bora/checkpoint``, which the policy hot-reloads;
  the trainer node runs the one online loop (:class:`bora_trainer.online.loop.OnlineLoop`) on the
  recordings (:class:`bora_trainer.online.env_ros.RosEpisodes`): rounds end, freeze and fold as with
  ``--env sim``.

This process only prepares the files, starts ``bora up``, prints progress from the trainer's
``status.json`` and stops the graph once round ``rounds`` is archived (``OUT/trainer/rounds/round_RR``).
``OUT`` is then an online run directory that ``bora eval --run OUT`` evaluates (its ``latest``
checkpoint is the final round's stack: frozen residuals + the last residual + the online critic).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bora_trainer.online.config import OnlineRunConfig, trainer_config_for
from bora_trainer.online.vla import FrozenVLA, offline_buffer_for, write_online_run_files

GATE_TOPIC = "/bora/episode_gate"


class OnlineRosError(RuntimeError):
    """The graph stopped or stalled before the requested rounds were done."""


def _params_file(cfg: OnlineRunConfig, offline_run: Path, image_size: int, k: int, base: Path, out: Path) -> Path:
    """config/sim.yaml with the task, the offline VLA and critic, and the chunk execution of ``cfg``."""
    from bora_sim.tasks import TASKS

    params = yaml.safe_load(base.read_text()) or {}

    def section(node: str) -> dict:
        return params.setdefault(node, {}).setdefault("ros__parameters", {})

    op = dict(cfg.operator)  # the online config's operator, as env sim uses it (nothing dropped)
    section("sim_bridge").update(
        operator_mode=str(op.pop("mode", "privileged")),
        operator_reaction_s=float(op.pop("reaction_s", 0.3)),
        operator_overrides=json.dumps(op, sort_keys=True),
    )
    section("sim_bridge").update(
        task=cfg.task,
        object_set=cfg.object_set,
        seed=int(cfg.seed) + 10_000,  # episodes unlike the offline demonstrations and the evaluation seeds
        image_size=int(image_size),
        auto_reset=True,
        operator_enabled=True,
        episode_gate_topic=GATE_TOPIC,  # the robot waits at round boundaries (bora_trainer/online/rounds.py)
    )
    section("sync")["instruction"] = TASKS[cfg.task].instruction
    critic = offline_run / "critic"
    section("policy").update(
        vla_path=str(offline_run),
        critic_path=str(critic) if critic.is_dir() else "",
        chunk_hz=float(cfg.control_hz),
        replan_steps=int(cfg.exec_horizon or k),
        deterministic=bool(cfg.deterministic_base),
    )
    monitor = cfg.monitor_config()
    if monitor is not None:  # requested mode: the policy node asks with this run's calibrated monitor
        from dataclasses import asdict

        from bora_policy.runtime.help_calibration import FORMAT

        cal = out / "help_calibration.json"
        cal.write_text(json.dumps({"format": FORMAT, "tasks": {cfg.task: {"monitor": asdict(monitor)}}}, indent=1))
        section("policy").update(help_calibration=str(cal), help_task=cfg.task)
    path = out / "graph_params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _graph_file(cfg: OnlineRunConfig, k: int, out: Path) -> Path:
    """config/graph.yaml with this run's control rate and chunk length; residual_scale 0 (no residual before
    the trainer's first checkpoint, which carries its alpha). Every node of the graph reads it."""
    from bora_policy.common.graph_params import load_graph_params, write_graph_file

    over = {"control_hz": float(cfg.control_hz), "chunk_size": int(k), "residual_scale": 0.0}
    return write_graph_file(load_graph_params(profile="sim", overrides=over), out / "graph.yaml")


def _trainer_file(cfg: OnlineRunConfig, offline_run: Path, out: Path) -> Path:
    path = out / "trainer.yaml"
    path.write_text(yaml.safe_dump({"trainer": trainer_config_for(cfg, offline_run, out)}, sort_keys=False))
    return path


def _read_status(state: Path) -> dict[str, Any]:
    try:
        return json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_ready(log_path: Path, proc, timeout_s: float = 180.0) -> None:
    """Wait until the trainer records and the policy has loaded its VLA. No episode starts before: the
    bridge waits for the trainer's episode gate, which opens round 1 once the policy reports
    (bora_trainer/online/rounds.py), so every recorded episode has policy commands from its first step."""
    ready = ("recording live topics", "policy: loaded VLA")
    end = time.monotonic() + timeout_s
    while not all(r in log_path.read_text(errors="replace") for r in ready):
        if proc.poll() is not None:
            return  # reported by the caller
        if time.monotonic() > end:
            raise OnlineRosError(f"online (ROS graph): nodes not ready after {timeout_s:.0f} s (log: {log_path})")
        time.sleep(0.5)


def _finish_run_dir(cfg: OnlineRunConfig, offline_run: Path, offline_data: Path, out: Path) -> Path:
    """Make OUT an online run directory: config.yaml, normalizer.json, latest -> the final round's stack."""
    from bora_policy.models.normalizer import Normalizer

    final = out / "trainer" / "rounds" / f"round_{cfg.rounds:02d}"
    name = (final / "latest").read_text().strip()
    dst = out / "checkpoints" / f"round_{cfg.rounds:02d}_{name}"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(final / "checkpoints" / name, dst)
    write_online_run_files(
        out, cfg, offline_run, offline_data, Normalizer.load(offline_run / "normalizer.json"), through_ros=True
    )
    (out / "latest").write_text(dst.name + "\n")
    return dst


def train_ros(
    cfg: OnlineRunConfig,
    offline_run: str | Path,
    offline_data: str | Path,
    out: str | Path,
    progress: bool = True,
    timeout_s: float = 1800.0,
    sim_params: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``cfg.rounds`` rounds of ``cfg.episodes_per_round`` episodes through ``bora up --sim --with
    trainer``; returns a summary (episodes, updates, rounds, wall time, the final checkpoint)."""
    import torch

    from bora_policy.common.episodes import DatasetMeta
    from bora_trainer.data.replay import ReplaySpec
    from bora_trainer.supervisor import PARENT_ENV
    from bora_trainer.up import default_params, ros_env

    offline_run, offline_data, out = Path(offline_run).resolve(), Path(offline_data).resolve(), Path(out).resolve()
    if (out / "trainer").exists() or (out / "offline_buffer").exists():
        raise FileExistsError(f"--out {out}: holds a previous online run (trainer/, offline_buffer/); use a new one")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    say = print if progress else (lambda *a, **k: None)

    # D_offline for the trainer node: the frozen VLA's z_t and A_VLA of the offline dataset
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    vla = FrozenVLA(offline_run, device, cfg.deterministic_base)
    k = vla.k
    spec = ReplaySpec(vla.z_dim, vla.normalizer.state_dim, vla.normalizer.action_dim, k, vla.normalizer.version)
    off = offline_buffer_for(cfg, vla, offline_data, spec, progress=progress, path=out / "offline_buffer")
    del vla
    image_size = DatasetMeta.from_dict(json.loads((offline_data / "meta.json").read_text())).image_size[0]
    params = _params_file(cfg, offline_run, image_size, k, Path(sim_params or default_params("sim")), out)
    trainer_cfg = _trainer_file(cfg, offline_run, out)
    (out / "recordings").mkdir(exist_ok=True)
    say(f"online (ROS graph): D_offline {len(off)} chunk transitions; starting bora up --sim --with trainer")

    cmd = [
        sys.executable,
        "-m",
        "bora_trainer.up",
        "--sim",
        "--params",
        str(params),
        "--graph",
        str(_graph_file(cfg, k, out)),
        "--with",
        "trainer",
        "--param",
        f"trainer:config_file:={trainer_cfg}",
        "--param",
        "trainer:live:=true",
        "--param",
        f"trainer:episode_gate_topic:={GATE_TOPIC}",
    ]
    # the graph runs in its own session (its nodes are signalled as a group): it must still end with this process,
    # even one killed by SIGKILL (supervisor.die_with_parent_from_env)
    env = {**os.environ, **ros_env(), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
    log_path = out / "graph.log"
    state = out / "trainer"
    final = state / "rounds" / f"round_{cfg.rounds:02d}"
    last_line, last_prog, rc = "", "", None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_ready(log_path, proc)
            t_end = time.monotonic() + timeout_s
            while True:
                rc = proc.poll()
                if rc is not None:
                    break
                if (final / "latest").is_file():
                    break
                if time.monotonic() > t_end:
                    raise OnlineRosError(f"online (ROS graph): not done after {timeout_s:.0f} s (log: {log_path})")
                st = _read_status(state)
                line = (
                    f"online (ROS graph): round {st.get('round', 1)}/{cfg.rounds}, episodes ingested "
                    f"{st.get('episodes', 0)}/{cfg.rounds * cfg.episodes_per_round}, updates {st.get('update_step', 0)}"
                )
                if line != last_line:
                    say(f"[{time.time() - t0:6.0f} s] {line}", flush=True)
                    last_line = line
                from bora_trainer.progress import relay

                # the trainer node's updates/s, losses, ETA (also with --no-progress: bora demo shows it)
                last_prog = relay(log_path, last_prog)
                time.sleep(2.0)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    if not (final / "latest").is_file():
        tail = log_path.read_text()[-3000:]
        raise OnlineRosError(
            f"online (ROS graph): bora up exited (code {rc}) before round {cfg.rounds} finished; log tail:\n{tail}"
        )
    ck = _finish_run_dir(cfg, offline_run, offline_data, out)
    st = _read_status(state)
    from bora_trainer.online.rounds import round_table

    try:
        per_round = round_table(json.loads((state / "ingested.json").read_text()))
    except (OSError, ValueError):
        per_round = []
    for r in per_round:
        say(
            f"online (ROS graph): round {r['round']}: {r['episodes']} episodes, {r['steps']} control steps, "
            f"{r['intervened_steps']} under the operator ({100 * r['intervened_share']:.1f}%"
            + (f", {r['takeovers']} takeovers), " if r.get("takeovers") is not None else "), ")
            + f"{r['successes']} successes"
        )
    summary = {
        "through_ros": True,
        "rounds": cfg.rounds,
        "per_round": per_round,
        "episodes": st.get("episodes"),
        "updates": st.get("update_step"),
        "offline_transitions": len(off),
        "checkpoint": str(ck),
        "wall_s": round(time.time() - t0, 1),
        "log": str(log_path),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    say(f"online (ROS graph): done in {summary['wall_s']:.0f} s; final stack {ck}")
    return summary
