"""``bora eval``: a tiny exported run evaluated on a real simulated task, read by ``bora report``;
determinism over seeds, object-set YAML files, method names and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bora_trainer import evaluate, report

torch.set_num_threads(1)
TASK = "press_button"
COMMON = ["--trials", "2", "--max-steps", "10", "--replan-steps", "4", "--image-size", "48", "--threads", "1"]


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
    cfg = VLAConfig(
        action_dim=D,
        state_dim=D,
        chunk_size=8,
        expert_hidden_dim=32,
        expert_num_blocks=1,
        expert_cond_dim=16,
    )
    norm = Normalizer(home, np.full(D, 0.5), home, np.full(D, 0.05))
    policy = VLAPolicy(cfg, norm)
    critic = ChunkCritic(policy.z_dim, D, 8, hidden_dim=16, pos_dim=4)
    run = tmp_path_factory.mktemp("eval") / "run"
    write_run_files(run, config={"algo": "cp-bc", "k": 8}, normalizer=norm.to_dict())
    export_policy(run, policy, critic)
    return run, policy, critic


def _eval(run, out, *extra):
    return evaluate.main(
        ["--run", str(run), "--task", TASK, "--out", str(out), "--no-progress", *COMMON, *extra]
    )


def _online_run(path, offline_run, policy, weights: dict, stack: list, round_: int, step: int = 7):
    """An online run directory as ``bora train online`` writes it: config naming the offline run, one checkpoint
    with the residuals' (and critic's) ``weights`` and the residual stack's blend weights. Returns the
    checkpoint directory."""
    from bora_policy.models.residual import residual_checkpoint_extra
    from bora_trainer.checkpoint import save_checkpoint, write_run_files

    write_run_files(
        path,
        config={
            "online_run": {"task": TASK, "object_set": "standard", "online": {"algo": "bora-residual"}},
            "offline_run": str(offline_run),
        },
    )
    extra = {**residual_checkpoint_extra(stack, policy.normalizer.version), "round": round_}
    return save_checkpoint(path, step, weights, extra=extra)


def _first_z(policy):
    """z_0 of seed 0's first observation (standard objects, 48 px), computed here without the evaluator."""
    from bora_sim.env import make_env

    env = make_env(TASK, "standard", image_size=48)
    obs, _ = env.reset(seed=0)
    env.close()
    state = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])[None]
    with torch.no_grad():
        return policy.encode({"color": obs["color"][None], "instruction": obs["instruction"], "state": state})


def test_eval_json_report_and_determinism(tiny_run, tmp_path, capsys):
    run, policy, critic = tiny_run
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _eval(run, a, "--objects", "standard") == 0
    line = capsys.readouterr().out
    assert "bora eval: CP Base on press_button/standard" in line and str(a) in line
    assert _eval(run, b, "--objects", "standard") == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["method"] == "CP Base" and ra["task"] == TASK and ra["object_set"] == "standard"
    assert ra["trials"] == 2 and ra["successes"] == sum(e["success"] for e in ra["episodes"])
    assert [e["seed"] for e in ra["episodes"]] == [0, 1]
    for e in ra["episodes"]:
        assert e["steps"] == 10 or e["success"]  # capped by --max-steps unless the task succeeded
        assert len(e["values"]) == e["steps"] and all(np.isfinite(e["values"]))
        assert e["plans"] == -(-e["steps"] // 4)  # a replan every 4 control steps
    # same seeds -> the same episodes (success, steps, values)
    assert ra["episodes"] == rb["episodes"]
    # values[0] is v(z_0, 0) of the first observation, computed here without the evaluator
    z = _first_z(policy)
    with torch.no_grad():
        v0 = float(critic.v(z)[0, 0])
    assert ra["episodes"][0]["values"][0] == pytest.approx(v0, abs=1e-5)
    # bora report turns it into a table
    assert report.main([str(a), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "CP Base" in md and "Press the button" in md and f"{ra['successes']}/2" in md
    assert (tmp_path / "report" / "value_profile.png").is_file()


def test_object_set_yaml_file_and_bad_yaml(tiny_run, tmp_path, capsys):
    from bora_sim.objects import shipped_set_path

    run = tiny_run[0]
    data = yaml.safe_load(shipped_set_path(TASK, "standard").read_text())
    data["name"] = "my_buttons"
    data["objects"] = data["objects"][:1]
    f = tmp_path / "my_buttons.yaml"
    f.write_text(yaml.safe_dump(data))
    out = tmp_path / "y.json"
    assert _eval(run, out, "--objects", str(f), "--trials", "1", "--max-steps", "3", "--no-values") == 0
    res = json.loads(out.read_text())
    assert res["object_set"] == "my_buttons" and res["trials"] == 1
    assert res["episodes"][0]["object"] == data["objects"][0]["name"] and res["episodes"][0]["values"] == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nobjects: []\n")
    assert _eval(run, tmp_path / "z.json", "--objects", str(bad)) == 2
    err = capsys.readouterr().err
    assert "--objects" in err and "non-empty list" in err and not (tmp_path / "z.json").exists()


def test_errors_and_method_names(tiny_run, tmp_path, capsys):
    run = tiny_run[0]
    assert (
        evaluate.main(["--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json"), "--task", TASK])
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert evaluate.main(["--run", str(run), "--out", str(tmp_path / "o.json")]) == 2  # no task anywhere
    assert "--task is required" in capsys.readouterr().err
    assert evaluate.main(["--run", str(run), "--out", str(tmp_path / "o.json"), "--task", "fly"]) == 2
    assert "unknown task" in capsys.readouterr().err
    # a bare policy directory has no algorithm: --method is required
    assert (
        evaluate.main(["--run", str(run / "policy"), "--out", str(tmp_path / "o.json"), "--task", TASK]) == 2
    )
    assert "--method is required" in capsys.readouterr().err
    # run directory without an exported policy
    (tmp_path / "r2" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r2" / "config.yaml").write_text("algo: bora\n")
    assert (
        evaluate.main(["--run", str(tmp_path / "r2"), "--out", str(tmp_path / "o.json"), "--task", TASK]) == 2
    )
    assert "no exported policy/" in capsys.readouterr().err
    # a replan after more ticks than a chunk of 8 rows lasts at equal rates (it would hold the last row)
    args = ["--run", str(run), "--out", str(tmp_path / "o.json"), "--task", TASK, *COMMON, "--replan-steps", "9"]
    assert evaluate.main(args) == 2
    assert "replan_steps = 9 is out of range: expected in [1, 8]" in capsys.readouterr().err
    # method names from the run's algorithm (offline) and the online objective
    for algo, name in [
        ("diffusion-bc", "VITRA (Diffusion)"),
        ("cp-bc", "CP Base"),
        ("cp-decoupled-critic", "CP + Decoupled Critic"),
        ("bora", "BORA-Offline"),
        ("aloe", "ALOE"),
        ("habc", "HABC"),
    ]:
        d = tmp_path / f"off_{algo}"
        d.mkdir()
        (d / "config.yaml").write_text(f"algo: {algo}\n")
        (d / "policy").symlink_to(run / "policy")
        assert evaluate.describe_run(d).method == name
    on = tmp_path / "online"
    on.mkdir()
    (on / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "online_run": {"task": TASK, "object_set": "unseen", "online": {"algo": "bora-residual"}},
                "offline_run": str(run),
            }
        )
    )
    info = evaluate.describe_run(on)
    assert (info.method, info.task, info.object_set, info.phase) == ("BORA-Full", TASK, "unseen", "online")
    assert info.policy_dir == Path(run) / "policy" and info.critic_dir == Path(run) / "critic"
    # an online run of a method that also has an offline row is its own row ("ALOE" above)
    online_cfg = yaml.safe_load((on / "config.yaml").read_text())
    online_cfg["online_run"]["online"]["algo"] = "aloe"
    (on / "config.yaml").write_text(yaml.safe_dump(online_cfg))
    assert evaluate.describe_run(on).method == "ALOE (online)"


def test_online_run_uses_latest_residual_stack_and_its_critic(tiny_run, tmp_path):
    """An online run (as `bora train online` writes it): BORA-Full, residual_1 folded, residual_2 current
    with its lambda, values from the checkpoint's critic."""
    from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig
    from bora_policy.runtime.checkpoint_loader import sha256_file

    run, policy, critic = tiny_run
    D, k, Z = policy.cfg.action_dim, policy.cfg.chunk_size, policy.z_dim
    torch.manual_seed(5)
    acts = [
        ResidualChunkActor(D, D, k, Z, ResidualConfig(hidden_dims=[16], init_scale=0.3)) for _ in range(2)
    ]
    stack = [FrozenResidual(acts[0], 0.4), FrozenResidual(acts[1], 0.5)]
    online_critic = type(critic)(**critic.init_kwargs)
    on = tmp_path / "online"
    weights = {"residual_1": acts[0].state_dict(), "residual_2": acts[1].state_dict(),
               "critic": online_critic.state_dict()}
    ck = _online_run(on, run, policy, weights, stack, round_=2)
    out = tmp_path / "on.json"
    assert (
        evaluate.main(
            [
                "--run",
                str(on),
                "--out",
                str(out),
                "--no-progress",
                *COMMON[:2],
                "--max-steps",
                "3",
                "--image-size",
                "48",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["method"] == "BORA-Full" and res["task"] == TASK and res["phase"] == "online"
    assert res["residual_version"] == sha256_file(ck / "residual_2.safetensors")[:16]
    assert res["critic_version"] == sha256_file(ck / "critic.safetensors")[:16]
    assert res["folded_residuals"] == 1
    z = _first_z(policy)
    with torch.no_grad():
        v_online, v_offline = float(online_critic.v(z)[0, 0]), float(critic.v(z)[0, 0])
    assert res["episodes"][0]["values"][0] == pytest.approx(v_online, abs=1e-5)
    assert abs(v_online - v_offline) > 1e-4


def test_online_run_without_a_residual_is_refused_unless_one_is_named(tiny_run, tmp_path, capsys):
    """An online run directory without ``latest`` (no residual checkpoint) was evaluated as BORA-Full without any
    residual, i.e. the offline policy under the online row's name; now a one-line error naming the directory and
    what was expected, unless ``--residual`` names the residual."""
    from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig
    from bora_policy.runtime.checkpoint_loader import sha256_file
    from bora_trainer.checkpoint import write_run_files
    from bora_trainer.eval_run import EvalError, RunInfo, residual_stack

    run, policy, _ = tiny_run
    on = tmp_path / "online"
    write_run_files(on, config={"online_run": {"task": TASK, "object_set": "standard",
                                               "online": {"algo": "bora-residual"}}, "offline_run": str(run)})
    out = tmp_path / "o.json"
    argv = ["--run", str(on), "--out", str(out), "--no-progress", "--no-values", *COMMON[:2], "--max-steps", "2",
            "--image-size", "48", "--threads", "1"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bora eval: --run {on}: an online run without {on / 'latest'}") and "--residual" in err
    assert "\n" not in err and not out.exists()
    # the rule itself: --residual as given, else the run's latest, else none for an offline run or a policy
    assert residual_stack(RunInfo(on, run, phase="online"), ["a", "b"]) == ["a", "b"]
    assert residual_stack(RunInfo(on, run, phase="online", residual=str(on)), None) == [str(on)]
    assert residual_stack(RunInfo(run, run, phase="offline"), None) == []
    assert residual_stack(RunInfo(run, run, phase="policy"), None) == []
    with pytest.raises(EvalError, match="latest"):
        residual_stack(RunInfo(on, run, phase="online"), None)
    # a residual named with --residual: evaluated with it
    D, k, Z = policy.cfg.action_dim, policy.cfg.chunk_size, policy.z_dim
    torch.manual_seed(7)
    act = ResidualChunkActor(D, D, k, Z, ResidualConfig(hidden_dims=[16], init_scale=0.3))
    ck = _online_run(tmp_path / "elsewhere", run, policy, {"residual_1": act.state_dict()},
                     [FrozenResidual(act, 0.5)], round_=1)
    assert evaluate.main([*argv, "--residual", str(tmp_path / "elsewhere")]) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "BORA-Full" and res["residual_version"] == sha256_file(ck / "residual_1.safetensors")[:16]


def test_residual_of_an_earlier_round_is_valued_by_that_rounds_critic(tiny_run, tmp_path):
    """``--residual trainer/rounds/round_01`` of a run that trained on: the values come from round 1's critic
    (saved with that residual), not from the run's latest one (the evidence protocol evaluates round 2 of a run
    that goes on to round 4)."""
    from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig
    from bora_policy.runtime.checkpoint_loader import sha256_file

    run, policy, critic = tiny_run
    D, k, Z = policy.cfg.action_dim, policy.cfg.chunk_size, policy.z_dim
    torch.manual_seed(6)
    acts = [ResidualChunkActor(D, D, k, Z, ResidualConfig(hidden_dims=[16], init_scale=0.3)) for _ in range(2)]
    critics = [type(critic)(**critic.init_kwargs) for _ in range(2)]
    on = tmp_path / "online"
    _online_run(on, run, policy, {"residual_1": acts[0].state_dict(), "residual_2": acts[1].state_dict(),
                                  "critic": critics[1].state_dict()},
                [FrozenResidual(acts[0], 0.4), FrozenResidual(acts[1], 0.5)], round_=2)
    r1 = _online_run(on / "trainer" / "rounds" / "round_01", run, policy,
                     {"residual_1": acts[0].state_dict(), "critic": critics[0].state_dict()},
                     [FrozenResidual(acts[0], 0.4)], round_=1)
    out = tmp_path / "r1.json"
    argv = ["--run", str(on), "--out", str(out), "--no-progress", *COMMON[:2], "--max-steps", "2",
            "--image-size", "48", "--threads", "1", "--residual", str(on / "trainer" / "rounds" / "round_01")]
    assert evaluate.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["residual_version"] == sha256_file(r1 / "residual_1.safetensors")[:16]
    assert res["critic_version"] == sha256_file(r1 / "critic.safetensors")[:16]
    z = _first_z(policy)
    with torch.no_grad():
        v = [float(c.v(z)[0, 0]) for c in critics]
    assert res["episodes"][0]["values"][0] == pytest.approx(v[0], abs=1e-5)
    assert abs(v[0] - v[1]) > 1e-4
    # the lookup itself: a checkpoint directory, a run / round archive through its `latest`, none without one
    from bora_trainer.online.checkpoints import online_critic_of

    assert online_critic_of(r1) == online_critic_of(r1.parent.parent) == r1 / "critic.safetensors"
    assert online_critic_of(tmp_path) is None


def test_record_writes_the_rollouts_as_an_episode_dataset(tiny_run, tmp_path, capsys):
    """``--record DIR``: every evaluated episode in the dataset format, read back by ``ChunkDataset``."""
    from bora_policy.common.episodes import episode_ids, read_episode
    from bora_sim.env import make_env
    from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig

    run, policy, critic = tiny_run
    rec = tmp_path / "rollouts"
    assert _eval(run, tmp_path / "a.json", "--record", str(rec)) == 0
    res = json.loads((tmp_path / "a.json").read_text())
    assert episode_ids(rec) == [0, 1]
    env = make_env(TASK, "standard", image_size=48)
    obs0, _ = env.reset(seed=0)
    env.close()
    for eid, ep in enumerate(res["episodes"]):
        arrays, info = read_episode(rec, eid)
        T = ep["steps"]
        assert info["source"] == "policy" and info["seed"] == ep["seed"] and info["success"] == ep["success"]
        assert info["values"] == pytest.approx(ep["values"])
        assert arrays["color"].shape == (T, 3, 48, 48, 3) and arrays["action"].shape[0] == T
        # the simulator's reward: 0.01 time penalty per step, +1 on the success step (SIM_REWARD)
        want = np.full(T, -0.01) + np.where(np.arange(T) == T - 1, float(ep["success"]), 0.0)
        assert arrays["reward"] == pytest.approx(want)
        assert arrays["done"].tolist() == [False] * (T - 1) + [ep["success"]]
    first, _ = read_episode(rec, 0)
    assert np.array_equal(first["color"][0], obs0["color"])  # the first observation of seed 0
    assert first["state"][0] == pytest.approx(np.concatenate([obs0["arm_qpos"], obs0["hand_qpos"]]), abs=1e-6)
    ds = ChunkDataset(rec, ChunkDatasetConfig(k=8))
    for i in range(len(ds)):
        s = ds[i]
        ok = res["episodes"][int(s["episode_id"])]["success"]
        assert torch.equal(s["bc_mask"], s["mask"] if ok else torch.zeros(8))
    # appending: new ids; another image size is refused naming the field; --num-envs > 1 is refused
    assert _eval(run, tmp_path / "b.json", "--record", str(rec), "--seed0", "5") == 0
    assert episode_ids(rec) == [0, 1, 2, 3]
    # a re-run of the same seeds (a resumed demo job) writes nothing twice
    assert _eval(run, tmp_path / "b2.json", "--record", str(rec), "--seed0", "1") == 0
    assert episode_ids(rec) == [0, 1, 2, 3, 4]  # seed 1 is there already; seed 2 is new
    assert [read_episode(rec, e, load_images=False)[1]["seed"] for e in range(5)] == [0, 1, 5, 6, 2]
    capsys.readouterr()
    assert _eval(run, tmp_path / "c.json", "--record", str(rec), "--image-size", "32") == 2
    assert "image_size" in capsys.readouterr().err
    assert _eval(run, tmp_path / "d.json", "--record", str(tmp_path / "r2"), "--num-envs", "2") == 2
    assert "--num-envs 1" in capsys.readouterr().err


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_online_stack_at_alpha_zero_is_the_base_action_for_action(tiny_run, tmp_path, alpha):
    """An online run whose residual is deployed with alpha 0 executes the offline policy's actions exactly
    (the control ``a0`` of bench/bench_online_bc.py relies on it); with alpha 0.5 the same residual moves them.
    Recorded actions of the same seeds, the offline run's against the online run's."""
    from bora_policy.common.episodes import read_episode
    from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig

    run, policy, critic = tiny_run
    D, k, Z = policy.cfg.action_dim, policy.cfg.chunk_size, policy.z_dim
    torch.manual_seed(11)
    act = ResidualChunkActor(D, D, k, Z, ResidualConfig(hidden_dims=[16], init_scale=0.3))
    on = tmp_path / "online"
    _online_run(on, run, policy, {"residual_1": act.state_dict(), "critic": critic.state_dict()},
                [FrozenResidual(act, alpha)], round_=1, step=3)
    assert _eval(run, tmp_path / "base.json", "--record", str(tmp_path / "base")) == 0
    assert _eval(on, tmp_path / "full.json", "--record", str(tmp_path / "full")) == 0
    for eid in (0, 1):
        base, _ = read_episode(tmp_path / "base", eid, load_images=False)
        full, _ = read_episode(tmp_path / "full", eid, load_images=False)
        assert base["action"].shape == full["action"].shape == (10, D)
        gap = float(np.abs(base["action"] - full["action"]).max())
        assert gap == 0.0 if alpha == 0.0 else gap > 1e-3


def test_episode_records_the_task_state_at_its_end(tiny_run, tmp_path):
    """``final``: press_button's progress and extras when the episode ended, as a fresh simulator reports them
    after replaying the episode's recorded actions from the same seed."""
    from bora_policy.common.episodes import read_episode
    from bora_sim.env import make_env

    run, _, _ = tiny_run
    assert _eval(run, tmp_path / "a.json", "--record", str(tmp_path / "rec")) == 0
    res = json.loads((tmp_path / "a.json").read_text())
    env = make_env(TASK, "standard", image_size=48)
    try:
        for eid, ep in enumerate(res["episodes"]):
            assert set(ep["final"]) == {"task_progress", "depression", "finger_on_cap", "hand_contacts",
                                        "housing_contacts"}
            arrays, _ = read_episode(tmp_path / "rec", eid, load_images=False)
            env.reset(seed=ep["seed"])
            for a in arrays["action"]:
                _, _, _, _, info = env.step(a)
            assert ep["final"]["task_progress"] == pytest.approx(info["task_progress"], abs=1e-4)
            assert ep["final"]["depression"] == pytest.approx(info["depression"], abs=1e-4)
            assert ep["final"]["finger_on_cap"] is bool(info["finger_on_cap"])
            assert ep["final"]["hand_contacts"] == info["hand_contacts"]
    finally:
        env.close()


@pytest.mark.parametrize("num_envs", ["1", "2"])
def test_alpha_overrides_the_stored_alpha(tiny_run, tmp_path, capsys, num_envs):
    """``--alpha``: the current residual's alpha whatever the checkpoint stores (one at a time and vectorised).
    A run stored at 0.5 evaluated at ``--alpha 0`` executes the offline policy's actions exactly; a run stored at 0
    evaluated at ``--alpha 0.5`` executes the run stored at 0.5's actions exactly."""
    from bora_policy.common.episodes import read_episode
    from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig

    run, policy, critic = tiny_run
    D, k, Z = policy.cfg.action_dim, policy.cfg.chunk_size, policy.z_dim
    torch.manual_seed(11)
    act = ResidualChunkActor(D, D, k, Z, ResidualConfig(hidden_dims=[16], init_scale=0.3))
    runs = {}
    for a in (0.0, 0.5):
        runs[a] = tmp_path / f"online_{a}"
        _online_run(runs[a], run, policy, {"residual_1": act.state_dict(), "critic": critic.state_dict()},
                    [FrozenResidual(act, a)], round_=1, step=3)
    vec = ["--num-envs", num_envs]
    cases = {"base": (run, []), "full": (runs[0.5], []), "off": (runs[0.5], ["--alpha", "0"]),
             "on": (runs[0.0], ["--alpha", "0.5"])}
    for name, (r, extra) in cases.items():
        rec = [] if num_envs != "1" else ["--record", str(tmp_path / name)]
        assert _eval(r, tmp_path / f"{name}.json", *vec, *rec, *extra) == 0
    res = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in cases}
    assert res["off"]["settings"]["alpha_override"] == 0.0 and res["full"]["settings"]["alpha_override"] is None
    if num_envs == "1":
        for eid in (0, 1):
            act_of = {n: read_episode(tmp_path / n, eid, load_images=False)[0]["action"] for n in cases}
            assert np.array_equal(act_of["off"], act_of["base"])
            assert np.array_equal(act_of["on"], act_of["full"])
            assert float(np.abs(act_of["full"] - act_of["base"]).max()) > 1e-3
    else:  # vectorised: the same per-plan critic values (they see the states the actions led to)
        vals = {n: [e["values"] for e in res[n]["episodes"]] for n in cases}
        assert vals["off"] == vals["base"] and vals["on"] == vals["full"]
        assert vals["full"] != vals["base"]
    capsys.readouterr()
    assert _eval(runs[0.5], tmp_path / "bad.json", "--alpha", "-1") == 2
    assert "--alpha must be a finite number >= 0" in capsys.readouterr().err
    assert _eval(run, tmp_path / "bad2.json", "--alpha", "0.3") == 2
    assert "has no residual to scale" in capsys.readouterr().err
