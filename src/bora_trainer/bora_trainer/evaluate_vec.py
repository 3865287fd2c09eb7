"""Vectorised evaluation: N simulated robots step in lockstep, the policy plans their chunks as one batch.

:func:`rollout_vectorized` runs the episodes of ``seeds`` on ``len(envs)`` environments at once. Each
environment ("slot") has its own :class:`ChunkScheduler` and its own simulated clock (``step / control_hz``),
exactly as in :func:`bora_trainer.evaluate.rollout_episode`; at every lockstep iteration

1. the slots that must plan (every ``replan_steps`` control steps, or with no command) are inferred as ONE
   batch (:func:`infer_batch`: VLM + expert for B observations, the residual composition and the critic's
   ``v(z, 0)`` on the batch);
2. when values are recorded, the other slots' ``v(z_t, 0)`` is computed as one batch (:func:`values_batch`);
3. every slot executes its command and steps its environment (rendering its cameras only when the next
   iteration will plan from that observation or record its value); a finished slot starts the next seed.

The robots live in this process (``make_env``) or each in its own process (:class:`EnvProcess`, ``bora eval
--env-processes``): then their physics and rendering run in parallel on the cores while this process plans.

Same seeds, same episodes as the one-at-a-time evaluation (test): the environment of a seed is reset
with that seed, the chunk is the deterministic mean chunk (stochastic sampling draws the noise of the
whole batch at once, so ``--stochastic`` keeps the one-at-a-time loop), and batching only changes the
order of floating-point sums inside the matmuls (values agree to ~1e-6; the episodes' success and steps
are the same). Episodes are returned in the order of ``seeds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def _batch_obs(runner, colors: list[np.ndarray], states: list[np.ndarray], instructions: list[str]) -> dict:
    checked = [runner._check_inputs(c, s) for c, s in zip(colors, states)]
    return {
        "color": np.stack([c for c, _ in checked]),
        "instructions": [str(i) for i in instructions],
        "state": np.stack([s for _, s in checked]),
    }


@torch.no_grad()
def infer_batch(runner, colors, states, instructions) -> tuple[np.ndarray, np.ndarray | None]:
    """``PolicyRunner.infer`` for B observations at once (deterministic mean chunk): ``(final physical chunks
    [B, k, A], critic v(z, 0) [B] or None)``."""
    if not runner.cfg.deterministic:
        raise ValueError("infer_batch: only the deterministic (mean chunk) policy can be batched")
    obs = _batch_obs(runner, colors, states, instructions)
    z, a_vla, _ = runner.policy.act(obs, runner.cfg.num_inference_steps, deterministic=True)
    z, a_vla = z.float(), a_vla.float()
    prop = runner.processor.normalize_state_tensor(obs["state"]).float()
    current, _ = runner.residual_slot.snapshot()
    rp, alpha_ck = current if current is not None else (runner.base_policy, None)
    has_res = rp.current is not None
    alpha = runner.deployed_alpha(alpha_ck) if has_res else 0.0
    out = rp.compose(z, prop, a_vla, alpha)
    v0 = None
    if runner.critic is not None:
        v0 = _critic_v0(runner, z, obs["color"], prop)
    return out.final_physical.float().cpu().numpy(), v0


def _critic_v0(runner, z: torch.Tensor, color: np.ndarray, prop: torch.Tensor) -> np.ndarray:
    if getattr(runner.critic, "input_kind", "z") == "images":
        images = runner.processor.images(color)
        kw = {"proprio": prop} if getattr(runner.critic, "state_dim", 0) else {}
        return runner.critic.v(images, **kw).float()[:, 0].cpu().numpy()
    return runner.critic.v(z.float()).float()[:, 0].cpu().numpy()


@torch.no_grad()
def values_batch(runner, colors, states, instructions) -> np.ndarray:
    """``PolicyRunner.value(...)[0]`` for B observations at once: ``v(z_t, 0)`` ``[B]``."""
    obs = _batch_obs(runner, colors, states, instructions)
    z, prop = runner.policy.encode_with_state(obs)
    return _critic_v0(runner, z, obs["color"], prop.float())


def _env_worker(conn, kwargs: dict) -> None:
    """Child process of :class:`EnvProcess`: one simulated robot, driven over a pipe."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    from bora_sim.env import make_env

    env = make_env(**kwargs)
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "reset":
                conn.send(env.reset(seed=arg))
            elif cmd == "step":
                action, images = arg
                if not images:
                    env.unwrapped.skip_next_images()
                conn.send(env.step(action))
            else:
                break
    finally:
        env.close()
        conn.close()


class EnvProcess:
    """A simulated robot in its own process (``make_env(**kwargs)`` there): physics and rendering of N robots
    run on N cores while this process batches their inference. ``step_async`` / ``step_wait`` let all robots
    step at once; ``reset`` / ``step`` / ``close`` behave as the environment's."""

    def __init__(self, **kwargs):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited torch/EGL state
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_env_worker, args=(child, kwargs), daemon=True)
        self.proc.start()
        child.close()

    def reset(self, seed: int | None = None):
        self.conn.send(("reset", seed))
        return self.conn.recv()

    def step_async(self, action, images: bool = True) -> None:
        """Start a step; ``images=False``: its observation skips the renders (``BoraSimEnv.skip_next_images``)."""
        self.conn.send(("step", (np.asarray(action), bool(images))))

    def step_wait(self):
        return self.conn.recv()

    def step(self, action, images: bool = True):
        self.step_async(action, images)
        return self.step_wait()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


@dataclass
class _Slot:
    env: Any
    seed: int = -1
    index: int = -1
    obs: dict | None = None
    info: dict = field(default_factory=dict)
    sched: Any = None  # ChunkScheduler (runtime/chunk_scheduler.py), as rollout_episode
    step: int = 0
    values: list[float] = field(default_factory=list)
    active: bool = False
    pending: Any = None


def rollout_vectorized(
    envs: list,
    runner,
    seeds: list[int],
    replan_steps: int,
    exec_cfg,
    max_steps: int | None = None,
    record_values: bool = True,
    on_episode=None,
) -> list[dict[str, Any]]:
    """The episodes of ``seeds`` on ``envs`` in lockstep (module docstring); records as ``rollout_episode``.
    ``on_episode(record)`` is called as each episode finishes (progress bars)."""
    from bora_policy.runtime.chunk_scheduler import ChunkScheduler
    from bora_trainer.eval_record import episode_record

    if not envs:
        raise ValueError("rollout_vectorized: needs at least one environment")
    dt = 1.0 / exec_cfg.control_hz
    want_values = record_values and runner.critic is not None
    queue = list(enumerate(seeds))
    results: dict[int, dict[str, Any]] = {}
    slots = [_Slot(env) for env in envs]

    def start(slot: _Slot) -> None:
        slot.active = False
        if not queue:
            return
        slot.index, slot.seed = queue.pop(0)
        torch.manual_seed(slot.seed)  # as rollout_episode (nothing random is drawn by the mean chunk)
        slot.obs, slot.info = slot.env.reset(seed=slot.seed)
        slot.sched = ChunkScheduler(exec_cfg, replan_steps)
        slot.sched.begin_episode(runner.processor.state_of(slot.obs), 0.0)
        slot.step, slot.values, slot.active = 0, [], True

    for s in slots:
        start(s)
    while any(s.active for s in slots):
        live = [s for s in slots if s.active]
        plan = [s for s in live if s.sched.plan_due()]
        planned_v: dict[int, float] = {}
        if plan:
            finals, v0 = infer_batch(
                runner,
                [s.obs["color"] for s in plan],
                [runner.processor.state_of(s.obs) for s in plan],
                [s.obs["instruction"] for s in plan],
            )
            for j, s in enumerate(plan):
                t = s.step * dt
                s.sched.adopt(finals[j], t, t)
                if v0 is not None:
                    planned_v[id(s)] = float(v0[j])
        if want_values:
            rest = [s for s in live if id(s) not in planned_v]
            if rest:
                vs = values_batch(
                    runner,
                    [s.obs["color"] for s in rest],
                    [runner.processor.state_of(s.obs) for s in rest],
                    [s.obs["instruction"] for s in rest],
                )
                planned_v.update({id(s): float(v) for s, v in zip(rest, vs)})
            for s in live:
                s.values.append(planned_v[id(s)])
        cmds = {id(s): s.sched.step(s.step * dt).position.astype(np.float32) for s in live}
        # the next observation's images are rendered only where they are used: a plan or a recorded value
        images = {id(s): want_values or s.sched.plan_due() for s in live}
        for s in live:  # robots in their own processes start stepping first, in parallel with the others
            if hasattr(s.env, "step_async"):
                s.env.step_async(cmds[id(s)], images[id(s)])
        for s in live:
            if not hasattr(s.env, "step_async"):
                if not images[id(s)]:
                    s.env.unwrapped.skip_next_images()
                s.pending = s.env.step(cmds[id(s)])
        for s in live:
            res = s.env.step_wait() if hasattr(s.env, "step_async") else s.pending
            s.obs, _, terminated, truncated, s.info = res
            s.step += 1
            if terminated or truncated or (max_steps and s.step >= max_steps):
                rec = episode_record(s.seed, s.info, s.step, s.values if want_values else [], s.sched.plans)
                results[s.index] = rec
                if on_episode is not None:
                    on_episode(rec)
                start(s)
    return [results[i] for i in range(len(seeds))]
