"""Vectorised evaluation: N robots in lockstep with one batched inference give the one-at-a-time episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bora_trainer import evaluate

torch.set_num_threads(1)
TASK = "press_button"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.export import export_policy
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.vla import VLAConfig, VLAPolicy
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME
    from bora_trainer.checkpoint import write_run_files

    torch.manual_seed(0)
    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    D = home.shape[0]
    cfg = VLAConfig(action_dim=D, state_dim=D, chunk_size=8, expert_hidden_dim=32, expert_num_blocks=1,
                    expert_cond_dim=16)
    norm = Normalizer(home, np.full(D, 0.5), home, np.full(D, 0.05))
    policy = VLAPolicy(cfg, norm)
    critic = ChunkCritic(policy.z_dim, D, 8, hidden_dim=16, pos_dim=4)
    run = tmp_path_factory.mktemp("evalvec") / "run"
    write_run_files(run, config={"algo": "cp-bc", "k": 8}, normalizer=norm.to_dict())
    export_policy(run, policy, critic)
    return run


def _eval(run, out, *extra):
    args = ["--run", str(run), "--task", TASK, "--out", str(out), "--no-progress", "--trials", "5",
            "--max-steps", "14", "--replan-steps", "4", "--image-size", "48", "--threads", "1", "--seed0", "7"]
    assert evaluate.main([*args, *extra]) == 0
    return json.loads(out.read_text())


def test_vectorised_equals_one_at_a_time_for_the_same_seeds(tiny_run, tmp_path):
    one = _eval(tiny_run, tmp_path / "one.json")
    vec = _eval(tiny_run, tmp_path / "vec.json", "--num-envs", "3")  # 5 seeds on 3 robots: slots are reused
    assert one["settings"]["num_envs"] == 1 and vec["settings"]["num_envs"] == 3
    assert [e["seed"] for e in vec["episodes"]] == [7, 8, 9, 10, 11]
    assert vec["successes"] == one["successes"]
    for a, b in zip(one["episodes"], vec["episodes"]):
        assert (a["seed"], a["success"], a["steps"], a["plans"], a["object"]) == (
            b["seed"], b["success"], b["steps"], b["plans"], b["object"])
        assert a["plans"] == -(-a["steps"] // 4)
        assert len(b["values"]) == b["steps"]
        np.testing.assert_allclose(b["values"], a["values"], rtol=1e-5, atol=1e-5)
    # the robots in their own processes (EnvProcess): the same episodes again
    proc = _eval(tiny_run, tmp_path / "proc.json", "--num-envs", "2", "--env-processes")
    assert proc["settings"]["env_processes"] is True
    for a, b in zip(one["episodes"], proc["episodes"]):
        assert (a["seed"], a["success"], a["steps"], a["plans"]) == (b["seed"], b["success"], b["steps"], b["plans"])
        np.testing.assert_allclose(b["values"], a["values"], rtol=1e-5, atol=1e-5)


def test_batched_inference_matches_single_inference(tiny_run):
    """infer_batch on 3 different observations = PolicyRunner.infer on each (chunks and v(z, 0))."""
    from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig
    from bora_sim.env import make_env
    from bora_trainer.evaluate_vec import infer_batch, values_batch

    runner = PolicyRunner.from_paths(str(tiny_run / "policy"), critic_path=str(tiny_run / "critic"),
                                     cfg=PolicyRunnerConfig(deterministic=True))
    env = make_env(TASK, "standard", image_size=48)
    obs = [env.reset(seed=s)[0] for s in (0, 1, 2)]
    env.close()
    states = [np.concatenate([o["arm_qpos"], o["hand_qpos"]]) for o in obs]
    finals, v0 = infer_batch(runner, [o["color"] for o in obs], states, [o["instruction"] for o in obs])
    vb = values_batch(runner, [o["color"] for o in obs], states, [o["instruction"] for o in obs])
    for j, o in enumerate(obs):
        r = runner.infer(o["color"], states[j], o["instruction"])
        np.testing.assert_allclose(finals[j], r.final, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(v0[j], r.v[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(vb[j], runner.value(o["color"], states[j], o["instruction"])[0], atol=1e-5)
    assert not np.allclose(finals[0], finals[1])  # different observations, different chunks


def test_num_envs_must_be_positive(tiny_run, tmp_path, capsys):
    rc = evaluate.main(["--run", str(tiny_run), "--task", TASK, "--out", str(tmp_path / "x.json"), "--no-progress",
                        "--num-envs", "0"])
    assert rc == 2 and "--num-envs must be >= 1, got 0" in capsys.readouterr().err


def test_only_the_observations_a_chunk_is_planned_from_are_rendered(tiny_run, tmp_path, monkeypatch):
    """Without per-step values, an episode renders its reset observation and every observation a plan is made
    from (after steps 4, 8, 12 with --replan-steps 4): 1 + steps // 4 renders. The episodes are those of the
    evaluation that records values (and therefore renders every observation: steps + 1), one robot or three."""
    from bora_sim.render import RGBDRenderer

    calls = {"n": 0}
    real = RGBDRenderer.render

    def counting(self, *a, **kw):
        calls["n"] += 1
        return real(self, *a, **kw)

    monkeypatch.setattr(RGBDRenderer, "render", counting)
    runs = {}
    for name, extra in (("values", ()), ("one", ("--no-values",)), ("vec", ("--no-values", "--num-envs", "3"))):
        calls["n"] = 0
        runs[name] = (_eval(tiny_run, tmp_path / f"{name}.json", *extra), calls["n"])
    ref, n_ref = runs["values"]
    assert n_ref == sum(e["steps"] + 1 for e in ref["episodes"])
    for name in ("one", "vec"):
        res, n = runs[name]
        assert n == sum(1 + e["steps"] // 4 for e in res["episodes"]) < n_ref / 2
        for a, b in zip(ref["episodes"], res["episodes"]):
            assert (a["seed"], a["success"], a["steps"], a["plans"], a["object"]) == (
                b["seed"], b["success"], b["steps"], b["plans"], b["object"])
            assert b["values"] == []
    proc = _eval(tiny_run, tmp_path / "proc.json", "--no-values", "--num-envs", "2", "--env-processes")
    for a, b in zip(ref["episodes"], proc["episodes"]):  # robots in their own processes skip the same renders
        assert (a["seed"], a["success"], a["steps"], a["plans"]) == (b["seed"], b["success"], b["steps"], b["plans"])
