"""``bora eval --record DIR``: write every evaluated episode to an episode directory (docs/interfaces.md).

The policy's own rollouts, successes and failures, in the same format as ``bora sim collect`` writes
demonstrations: colour and depth of every camera, the state (``ObservationProcessor.state_of``), the
EXECUTED action (after the simulator's clipping), the simulator's reward (``SIM_REWARD``: time penalty +
terminal success, as in collected demonstrations) and ``done`` on the success step. The episode info says
``source: "policy"``, the run and policy version, ``success`` and ``outcome`` (``success`` or
``timeout``), and the critic's values when they were recorded.

Read with the demonstrations by ``bora train offline --rollouts DIR`` (``OfflineConfig.rollout_data``):
the critic learns from the failures, BC only from the successes (``ChunkDataset``'s ``bc_mask``). Record
on TUNING seeds (``config/evidence.yaml``: 200000..) so that no evaluation seed is ever trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.episodes import next_episode_id, read_meta, write_episode
from bora_policy.common.rewards import SIM_REWARD, step_task_reward


def episode_record(seed: int, info: dict[str, Any], steps: int, values: list[float], plans: int) -> dict[str, Any]:
    """One evaluated episode as ``bora eval`` reports it (one at a time and vectorised alike): seed, success,
    steps, the critic's values, the number of plans, and ``final``: the task's state when it ended
    (``bora_sim.env.task_state``: progress and the task's extras), to tell failures apart."""
    from bora_sim.env import task_state

    return {"seed": int(seed), "success": bool(info["success"]), "steps": int(steps), "values": values,
            "object": info.get("object"), "plans": int(plans), "final": task_state(info)}


class EpisodeRecorder:
    """Collects one episode's arrays step by step and writes it (:meth:`write`) into ``root``."""

    def __init__(self, root: str | Path, env, task: str, provenance: dict[str, Any] | None = None):
        from bora_trainer.collect import dataset_meta

        self.root = Path(root)
        self.env = env
        self.meta = dataset_meta(env, task)
        if (self.root / "meta.json").is_file():
            have = read_meta(self.root)
            for name in ("camera_names", "image_size", "arm_joint_names", "hand_joint_names"):
                if list(getattr(have, name)) != list(getattr(self.meta, name)):
                    raise ValueError(
                        f"--record {self.root}: its {name} is {list(getattr(have, name))}, this evaluation "
                        f"records {list(getattr(self.meta, name))}; record into another directory"
                    )
        self.provenance = dict(provenance or {})
        self._rec: dict[str, list] = {}
        # idempotent (``bora demo --resume`` re-runs a stopped job): an episode of the same policy, seed and
        # object set that the directory already holds is not written twice
        self._have = {self._key(info) for info in _infos(self.root)}

    def _key(self, info: dict[str, Any]) -> tuple:
        return (info.get("policy_version"), int(info.get("seed", -1)), info.get("object_set"))

    def begin(self) -> None:
        self._rec = {k: [] for k in ("color", "depth", "state", "action", "reward", "done")}

    def observe(self, obs: dict, state: np.ndarray) -> None:
        """The observation a command is computed from (before the step)."""
        self._rec["color"].append(obs["color"])
        self._rec["depth"].append(obs["depth"])
        self._rec["state"].append(np.asarray(state, np.float32))

    def stepped(self, terminated: bool) -> None:
        """After ``env.step``: the executed action and the simulator's reward of that step."""
        self._rec["action"].append(np.asarray(self.env.last_action, np.float32))
        self._rec["reward"].append(step_task_reward(SIM_REWARD, bool(terminated)))
        self._rec["done"].append(bool(terminated))

    def write(self, episode: dict[str, Any]) -> Path | None:
        """Write the episode (``episode``: ``rollout_episode``'s record); returns the ``.npz`` path, or None
        when the directory already holds it (same policy version, seed and object set)."""
        arrays = {k: np.asarray(v) for k, v in self._rec.items()}
        T = len(arrays["action"])
        arrays["is_intervention"] = np.zeros(T, bool)  # autonomous: nobody took over
        arrays["beta"] = np.zeros(T, np.float32)
        success = bool(episode["success"])
        info = {
            "task": self.meta.tasks[0],
            "instruction": self.env.task.instruction,
            "object_set": self.env.object_set.name,
            "object": episode.get("object"),
            "seed": int(episode["seed"]),
            "success": success,
            "outcome": "success" if success else "timeout",
            "interventions": [],
            "source": "policy",
            "variation": self.env.variation,
            "control_hz": self.env.control_hz,
            "camera_info": self.env.camera_info(),
            "values": list(episode.get("values") or []),
            **self.provenance,
        }
        if self._key(info) in self._have:
            return None
        self._have.add(self._key(info))
        return write_episode(self.root, next_episode_id(self.root), arrays, info, self.meta)


def _infos(root: Path) -> list[dict[str, Any]]:
    from bora_policy.common.episodes import episode_ids, read_info

    return [read_info(root, e) for e in episode_ids(root)]


def make_recorder(record: str | Path | None, num_envs: int, env, task: str, run: str | Path, runner):
    """``bora eval --record``'s recorder, or None without ``record``; a ValueError names a bad setting."""
    if record is None:
        return None
    if num_envs > 1:
        raise ValueError("--record writes episodes one robot at a time: use --num-envs 1")
    return EpisodeRecorder(record, env, task, {"run": str(run), "policy_version": runner.policy_version})
