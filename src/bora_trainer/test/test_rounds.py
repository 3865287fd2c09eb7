"""Round accounting of the online phase (bora_trainer/online/rounds.py and the trainer loop's round cap).

Each round uses exactly ``episodes_per_round`` episodes: the loop never ingests more into a round
(later episodes wait for the next round), the bridge's gate never lets more start, and what every round
used (episodes, control steps, steps under the operator) is reported. Expectations are hand-computed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.models.normalizer import Normalizer
from bora_trainer.config_io import load_config
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, ros_loop
from bora_trainer.online.loop import OnlineLoop
from bora_trainer.online.rounds import (
    RoundGate,
    StallWatch,
    episode_gate,
    intervened_steps,
    ran_round,
    round_table,
    takeovers,
    waiting_below,
)


def test_intervened_steps_counts_each_control_step_once():
    # two chunks of k = 4 starting at 0 and 4 (no overlap): flags 0110 and 1100 -> steps 1, 2, 4, 5
    rows = {
        "step": np.array([0, 4]),
        "is_intervention": np.array([[0, 1, 1, 0], [1, 1, 0, 0]], bool),
        "mask": np.ones((2, 4), bool),
    }
    assert intervened_steps(rows) == 4
    # overlapping chunks (replanning every 2 steps): {2, 3} and {2, 3, 4} -> 3 distinct steps
    rows = {
        "step": np.array([0, 2]),
        "is_intervention": np.array([[0, 0, 1, 1], [1, 1, 1, 0]], bool),
        "mask": np.ones((2, 4), bool),
    }
    assert intervened_steps(rows) == 3
    # masked-out steps (after the episode's end) do not count
    rows["mask"] = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    assert intervened_steps(rows) == 2


def test_takeovers_count_runs_of_intervened_steps():
    # flags 0110 | 1100 (chunks at 0 and 4): steps 1-2 and 4-5, step 3 known and not intervened -> 2 takeovers
    rows = {
        "step": np.array([0, 4]),
        "is_intervention": np.array([[0, 1, 1, 0], [1, 1, 0, 0]], bool),
        "mask": np.ones((2, 4), bool),
    }
    assert takeovers(rows) == 2
    # step 3 not covered (masked out: a missing command): steps 1-2 and 4-5 are one takeover
    rows["mask"] = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    assert takeovers(rows) == 1
    # overlapping chunks that agree: {2, 3} and {2, 3, 4} -> one run; an episode starting under the operator
    rows = {"step": np.array([0, 2]), "is_intervention": np.array([[0, 0, 1, 1], [1, 1, 1, 0]], bool),
            "mask": np.ones((2, 4), bool)}
    assert takeovers(rows) == 1
    rows["is_intervention"] = np.array([[1, 0, 0, 1], [0, 1, 0, 1]], bool)  # steps 0, 3, 5 -> three runs
    assert takeovers(rows) == 3
    assert takeovers({"step": np.array([0]), "is_intervention": np.zeros((1, 4), bool),
                      "mask": np.ones((1, 4), bool)}) == 0


def test_round_table_sums_per_round():
    ledger = {
        "a": {"round": 1, "num_steps": 10, "intervened_steps": 2, "outcome": "success"},
        "b": {"round": 1, "num_steps": 30, "intervened_steps": 6, "outcome": "timeout"},
        "c": {"round": 2, "num_steps": 20, "intervened_steps": 0, "outcome": "success"},
    }
    t = round_table(ledger)
    assert [r["round"] for r in t] == [1, 2]
    assert (t[0]["episodes"], t[0]["steps"], t[0]["intervened_steps"], t[0]["successes"]) == (2, 40, 8, 1)
    assert t[0]["intervened_share"] == pytest.approx(0.2)
    assert (t[1]["episodes"], t[1]["steps"], t[1]["intervened_share"]) == (1, 20, 0.0)
    assert t[0]["takeovers"] is None and t[0]["rescued"] is None  # a ledger written before takeovers were counted
    for e, n in zip(ledger.values(), (1, 3, 0)):
        e["takeovers"] = n
    t = round_table(ledger)
    assert [r["takeovers"] for r in t] == [4, 0]
    # round 1: a (success) and b (timeout) taken over -> 2 taken over, 1 rescued; round 2: c not taken over
    assert [(r["taken_over"], r["rescued"]) for r in t] == [(2, 1), (0, 0)]


def test_episode_gate_values_and_errors():
    assert episode_gate(0, 0, 10) == 10  # nothing seen yet: ids 1..10 may start
    assert episode_gate(7, 5, 10) == 12  # 5 more needed; ids 8.. may be running already
    assert episode_gate(12, 10, 10) == 12  # round full: the robot waits
    assert episode_gate(12, 3, 10, open_=False) == 12
    with pytest.raises(ValueError, match="per_round"):
        episode_gate(0, 0, 0)
    # round of 5: ids 1-3 ingested, 4 ended (not yet ingested), 5 skipped -> 4 and one replacement (6) still needed
    assert episode_gate(5, 3, 5, waiting=1) == 6
    assert episode_gate(5, 3, 5) == 7  # 4 taken as done: 6 and 7 would start, one too many
    assert episode_gate(5, 3, 5, waiting=3) == 5  # more waiting than needed: nothing new starts
    assert episode_gate(5, 3, 5, open_=False, waiting=1) == 5
    with pytest.raises(ValueError, match="waiting -1"):
        episode_gate(5, 3, 5, waiting=-1)


def test_waiting_below_counts_ended_episodes_of_the_session_not_taken_in():
    a, b = "sess-a", "sess-b"
    ended = {(a, 1), (a, 3), (a, 4), (a, 5), (a, 7), (b, 2)}
    taken = {(a, 1), (a, 3), (a, 5), (b, 1)}
    assert waiting_below(ended, taken, a, 5) == 1  # 4; 7 is above the last id taken in, 2 has no recorded outcome
    assert waiting_below(ended, taken, a, 7) == 2  # 4 and 7
    assert waiting_below(ended, taken, b, 1) == 0  # b's 2 is above its last id taken in
    assert waiting_below(ended, taken, None, 5) == 0  # recordings without sessions: as before
    assert waiting_below(ended, ended, a, 7) == 0


def _round_step(rnd: int, update_left: int | None, full: bool) -> tuple[int, int | None]:
    """One tick of the simulated trainer's round: a full round updates for 3 ticks (the gate closed), then the
    next round begins."""
    if full and update_left is None:
        return rnd, 3
    if update_left is not None:
        update_left -= 1
        if update_left == 0:
            return rnd + 1, None
    return rnd, update_left


def test_gate_simulation_rounds_hold_exactly_m_episodes():
    """A bridge that starts an episode (one tick long) whenever the gate allows; a trainer that learns of
    each finished episode 3 ticks later and never gets one of them (its START was not recorded); a round
    changes 3 ticks after it is full (its update). Every round must get exactly M ingested episodes and
    the robot must start no episode beyond the last round's, except one replacement for the lost one."""
    M, rounds, lost = 4, 3, 3
    started, pending, seen = 0, [], []  # bridge ids
    ingested = {r: 0 for r in range(1, rounds + 2)}
    rnd, update_left = 1, None
    for tick in range(300):
        gate = episode_gate(max(seen, default=0), ingested[rnd], M, open_=rnd <= rounds and update_left is None)
        if started + 1 <= gate:
            started += 1
            pending.append((tick + 3, started))
        for t, eid in [p for p in pending if p[0] <= tick]:
            pending.remove((t, eid))
            seen.append(eid)
            if eid != lost:
                assert ingested[rnd] < M, f"the gate let round {rnd} overflow"
                ingested[rnd] += 1
        rnd, update_left = _round_step(rnd, update_left, ingested[rnd] == M)
    assert rnd == rounds + 1 and not pending
    assert [ingested[r] for r in range(1, rounds + 2)] == [M] * rounds + [0]
    assert started == M * rounds + 1


def test_gate_simulation_an_episode_ingested_after_a_later_one_was_skipped():
    """As above, but the trainer learns of each episode's end (its outcome recorded) 1 tick after its start and
    ingests it only 5 ticks after (its last messages awaited); the lost one is skipped as soon as its end is known,
    so it is taken in while the episodes before it are still to come. Counted as done (the gate without
    ``waiting``), they let one episode too many start and round 1 overflowed; counted as waiting, every round gets
    exactly M and the robot starts one replacement only."""
    M, rounds, lost = 4, 3, 3
    started, events, ended, taken = 0, [], set(), set()  # events: (tick, "end" | "ingest", bridge id)
    ingested = {r: 0 for r in range(1, rounds + 2)}
    rnd, update_left = 1, None
    for tick in range(300):
        last = max(taken, default=0)
        waiting = sum(1 for i in ended if i <= last and i not in taken)
        gate = episode_gate(last, ingested[rnd], M, open_=rnd <= rounds and update_left is None, waiting=waiting)
        if started + 1 <= gate:
            started += 1
            events += [(tick + 1, "end", started), (tick + 5, "ingest", started)]
        for ev in sorted(e for e in events if e[0] <= tick):
            events.remove(ev)
            _, kind, eid = ev
            if kind == "end":
                ended.add(eid)
                if eid == lost:
                    taken.add(eid)  # skipped
            elif eid != lost:
                assert ingested[rnd] < M, f"the gate let round {rnd} overflow"
                ingested[rnd] += 1
                taken.add(eid)
        rnd, update_left = _round_step(rnd, update_left, ingested[rnd] == M)
    assert rnd == rounds + 1 and not events
    assert [ingested[r] for r in range(1, rounds + 2)] == [M] * rounds + [0]
    assert started == M * rounds + 1


def test_round_gate_waits_for_the_policy_or_times_out():
    g = RoundGate(timeout_s=10.0)
    assert not g.is_open(1, "", None, now=0.0)  # no policy yet
    assert g.is_open(1, "", "", now=1.0)  # round 1: the policy is up (it runs the base)
    assert not g.is_open(2, "abc", "old", now=100.0)
    assert not g.is_open(2, "abc", "old", now=105.0)
    assert g.is_open(2, "abc", "abc", now=106.0)  # the policy reports round 2's residual
    assert g.is_open(2, "abc", "old", now=200.0)  # confirmed rounds stay open
    assert not g.is_open(3, "def", "abc", now=300.0)
    assert g.is_open(3, "def", "abc", now=310.0) and g.timed_out == [3]  # 10 s without confirmation
    assert RoundGate(wait_for_policy=False).is_open(5, "x", None, now=0.0)
    assert RoundGate(timeout_s=5.0).is_open(1, "", None, now=0.0) is False


def test_ran_round_tells_the_residual_an_episode_ran():
    rounds = {"aaaa": 1, "bbbb": 2}  # announced residuals (sha256 prefixes) and their rounds
    assert ran_round(None, rounds, 2) == (None, "") and ran_round([], rounds, 2) == (None, "")  # not recorded
    assert ran_round([""], rounds, 3) == (1, "")  # no residual loaded: the pure VLA base, round 1's
    assert ran_round(["", "aaaa"], rounds, 2) == (1, "")  # round 1's first checkpoint loaded mid-episode: one base
    assert ran_round(["aaaa"], rounds, 2) == (1, "") and ran_round(["bbbb"], rounds, 2) == (2, "")
    assert ran_round(["cccc"], rounds, 2) == (None, "")  # never announced in this run: the ingest round, as before
    r, why = ran_round(["aaaa", "bbbb"], rounds, 2)
    assert r is None and "rounds [1, 2]" in why  # two bases in one episode: never ingested
    r, why = ran_round(["bbbb"], rounds, 1)
    assert r == 2 and "waits for round 2" in why
    t = round_table({"a": {"round": 2, "ran_round": 1}, "b": {"round": 2, "ran_round": 2}, "c": {"round": 2}})
    assert [(r["round"], r["episodes"], r["earlier_residual"]) for r in t] == [(2, 3, 1)]


# ---------------------------------------------------------------------------------------------- trainer loop
NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _offline(tmp: Path) -> None:
    """D_offline (two scripted episodes), the normaliser and an empty recordings directory under ``tmp``."""
    write_scripted_bag(tmp / "offline_bag", [ScriptedEpisode(100, 16), ScriptedEpisode(101, 16)], LAY)
    convert([tmp / "offline_bag"], tmp / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp / "offline_conv", tmp / "offline_buffer", NORM)
    NORM.save(tmp / "normalizer.json")
    (tmp / "recordings").mkdir()


def _loop(tmp: Path, per_round: int, rounds: int) -> OnlineLoop:
    cfg = load_config(
        TrainerConfig,
        {
            "recordings": str(tmp / "recordings"),
            "state_dir": str(tmp / "state"),
            "offline_buffer": str(tmp / "offline_buffer"),
            "normalizer": str(tmp / "normalizer.json"),
            "utd_ratio": 0.125,  # 16 steps -> 2 updates per episode
            "checkpoint_every": 1000,
            "episodes_per_round": per_round,
            "rounds": rounds,
            "critic_hidden_dim": 16,
            "critic_pos_dim": 8,
            "device": "cpu",
            "online": {"batch_size": 8, "n_start": 4, "residual": {"hidden_dims": [16]}},
        },
    )
    return ros_loop(cfg)


def test_loop_caps_each_round_and_carries_extra_episodes_over(tmp_path):
    _offline(tmp_path)
    loop = _loop(tmp_path, per_round=2, rounds=2)
    assert loop.episode_gate() == 2  # ids 1, 2 may start
    # the robot ran 5 episodes before the trainer looked (no gate): takeovers of 4 and 3 steps in two
    eps = [
        ScriptedEpisode(1, 16, "success", takeovers=[(4, 8, 1)]),
        ScriptedEpisode(2, 16, "failure"),
        ScriptedEpisode(3, 16, "success", takeovers=[(10, 13, 1)]),
        ScriptedEpisode(4, 16, "failure"),
        ScriptedEpisode(5, 16, "success"),
    ]
    write_scripted_bag(tmp_path / "recordings" / "bag_1", eps, LAY)
    assert loop.collect() == 2 and loop.round == 1 and loop.in_round == 2  # episodes 3-5 wait
    assert loop.episode_gate() == 2  # round full: nothing more may start
    assert loop.train() == 4 and loop.round == 2  # 32 steps x 0.125 = 4 updates, the round ends
    assert loop.episode_gate() == 2 + 2  # round 2 needs 2 (not yet seen: ids 3, 4 already ran)
    assert loop.collect() == 2 and loop.in_round == 2  # episodes 3 and 4 go into round 2, 5 waits
    assert loop.episode_gate() == 4
    assert not loop.finished and loop.train() == 4 and loop.round == 2 and loop.finished  # no round 3
    assert loop.episode_gate() == 4  # the configured 2 rounds are done: closed (5 ran without a gate)
    assert loop.collect() == 0 and loop.wanted == 0 and loop.train() == 0  # episode 5 is never ingested
    t = {r["round"]: r for r in loop.status()["rounds"]}
    assert (t[1]["episodes"], t[1]["steps"], t[1]["intervened_steps"], t[1]["successes"]) == (2, 32, 4, 1)
    assert (t[2]["episodes"], t[2]["steps"], t[2]["intervened_steps"], t[2]["successes"]) == (2, 32, 3, 1)
    assert sorted(e["source_episode_id"] for e in loop.ledger.values()) == [1, 2, 3, 4]


def test_stall_watch_warns_every_warn_s_of_one_wait_and_restarts_on_progress():
    now = [0.0]
    w = StallWatch(30.0, clock=lambda: now[0])

    def at(t, progressed=False, waiting=True):
        now[0] = t
        return w.check(progressed, waiting)

    assert at(0.0) is None  # the wait starts here
    assert at(29.0) is None and at(30.0) == 30.0 and at(59.0) is None and at(60.0) == 60.0
    assert at(61.0, progressed=True) is None  # an episode came in: the wait is over
    assert at(62.0) is None and at(91.0) is None and at(92.0) == 30.0  # a new wait from 62
    assert at(100.0, waiting=False) is None  # the round is full: nothing to wait for
    assert at(101.0) is None and at(131.0) == 30.0
    off = StallWatch(0.0, clock=lambda: now[0])
    assert [off.check(False, True) for _ in range(3)] == [None] * 3
    with pytest.raises(ValueError, match="warn_s"):
        StallWatch(-1.0)


def test_a_new_round_reads_again_only_the_bags_whose_episodes_it_takes(tmp_path, monkeypatch):
    """At a round's start the source reads again the bags of the episodes the full round left over (so they go into
    the new round), not the closed bags whose episodes are all in: with one bag per round (the trainer node's live
    recording) every bag was converted again at every round start."""
    from bora_trainer.online import env_ros

    read = []
    real = env_ros.convert
    monkeypatch.setattr(env_ros, "convert", lambda b, *a, **k: read.append(Path(b[0]).name) or real(b, *a, **k))
    _offline(tmp_path)
    loop = _loop(tmp_path, per_round=2, rounds=3)
    write_scripted_bag(tmp_path / "recordings" / "r1", [ScriptedEpisode(1, 16), ScriptedEpisode(2, 16)], LAY)
    write_scripted_bag(tmp_path / "recordings" / "r2", [ScriptedEpisode(i, 16) for i in (3, 4, 5)], LAY)
    assert loop.collect() == 2 and read == ["r1", "r2"]  # episodes 3-5 wait: round 1 is full
    assert loop.train() == 4 and loop.round == 2
    read.clear()
    assert loop.collect() == 2 and read == ["r2"]  # 3 and 4 go into round 2; r1 (all in) is not read again
    assert loop.collect() == 0 and read == ["r2"]  # unchanged bags: nothing read
    assert loop.train() == 4 and loop.round == 3
    read.clear()
    assert loop.collect() == 1 and read == ["r2"] and loop.in_round == 1  # 5 goes into round 3
    assert sorted(e["source_episode_id"] for e in loop.ledger.values()) == [1, 2, 3, 4, 5]


def test_episodes_are_labelled_by_the_residual_they_ran(tmp_path):
    """The round gate opened on its timeout: round 2's first episodes ran with whatever the policy had. Each is
    labelled by the ``residual_version`` of its ActionChunks: one that ran round 1's residual fills round 2 with
    ``ran_round`` and ``base_round`` 1, so round 1's frozen residual is folded onto its recorded chunks (before, it
    was taken as a round-2 row and kept round 1's base); one whose policy loaded round 2's checkpoint mid-episode
    holds two bases and is not ingested (the gate lets another replace it). The scripted chunks (z, proprio, base)
    depend on the step only, so every episode's rows rebased to round 2 are equal."""
    _offline(tmp_path)
    loop = _loop(tmp_path, per_round=2, rounds=3)
    rec = tmp_path / "recordings"
    write_scripted_bag(rec / "r1", [ScriptedEpisode(i, 16, residual_version="") for i in (1, 2)], LAY)  # the base
    assert loop.collect() == 2 and loop.train() == 4 and loop.round == 2
    v1 = hashlib.sha256(Path(loop.round_log["1"]["checkpoint"]).read_bytes()).hexdigest()[:16]  # round 1's final
    v2 = hashlib.sha256((Path(loop.last_checkpoint.path) / "residual_2.safetensors").read_bytes()).hexdigest()[:16]
    eps = [
        ScriptedEpisode(3, 16, residual_version=v1),  # the policy had not loaded round 2's checkpoint
        ScriptedEpisode(4, 16, residual_version=v1, residual_from=(8, v2)),  # it loaded it at step 8
        ScriptedEpisode(5, 16, residual_version=v2),
    ]
    write_scripted_bag(rec / "r2", eps, LAY)
    assert loop.collect() == 2 and loop.in_round == 2
    by_id = {e["source_episode_id"]: e for e in loop.ledger.values()}
    assert sorted(by_id) == [1, 2, 3, 5]
    assert [(by_id[i]["round"], by_id[i]["ran_round"], by_id[i]["base_round"]) for i in (1, 2, 3, 5)] == [
        (1, 1, 1), (1, 1, 1), (2, 1, 1), (2, 2, 2)
    ]
    assert by_id[3]["residual_versions"] == [v1] and by_id[5]["residual_versions"] == [v2]
    assert loop.skipped_ids[eps[1].session_id] == 4 and loop.episode_gate() == 5  # round full after 5
    assert [(r["round"], r["earlier_residual"]) for r in loop.status()["rounds"]] == [(1, 0), (2, 1)]

    def bases(lp):
        a = lp.online.arrays()
        return {e: (a["base"][a["episode"] == e], a["vla"][a["episode"] == e]) for e in range(4)}

    b = bases(loop)  # buffer episodes 0-3 = bridge ids 1, 2, 3, 5
    assert np.abs(b[0][0] - b[0][1]).max() > 1e-6  # round 1's rows: round 1's residual folded in (round start)
    np.testing.assert_allclose(b[2][0], b[0][0], rtol=0, atol=1e-6)  # id 3: the same fold, at its ingest
    np.testing.assert_array_equal(b[3][0], b[3][1])  # id 5 ran round 2's residual: its recorded base is round 2's
    resumed = bases(_loop(tmp_path, per_round=2, rounds=3))  # the ledger's base_round drives the rebase on resume
    for e in range(4):
        np.testing.assert_allclose(resumed[e][0], b[e][0], rtol=0, atol=1e-6)
