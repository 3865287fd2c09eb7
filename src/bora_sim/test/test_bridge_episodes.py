"""bora_sim.bridge_episodes: the sim bridge's episode bookkeeping (ids, seeds, auto_reset, the trainer's gate), in
pure Python; the node around it is tested over DDS in test_bridge.py and test_bridge_auto_reset.py."""

from __future__ import annotations

import uuid

from bora_sim.bridge_episodes import IDLE, RESET_NOTE, START, STEP, WAIT, BridgeEpisodes


def test_ids_and_seeds_count_from_one_and_auto_reset_starts_the_next():
    ep = BridgeEpisodes(seed=100, auto_reset=True, gated=False)
    assert ep.episode_id == 0 and not ep.running
    assert ep.start() == 1 and ep.env_seed() == 100 and ep.running  # episode e runs seed + e - 1
    assert [ep.tick().action for _ in range(3)] == [STEP, STEP, STEP]
    ep.end()
    assert not ep.running and ep.tick().action == START
    assert ep.start() == 2 and ep.env_seed() == 101 and ep.env_seed(5) == 104
    assert ep.tick().action == STEP


def test_without_auto_reset_nothing_moves_until_a_reset_is_requested():
    ep = BridgeEpisodes(seed=0, auto_reset=False, gated=False)
    ep.start()
    ep.end()
    assert [ep.tick().action for _ in range(4)] == [IDLE] * 4
    ep.request_reset()
    assert ep.tick().action == START and ep.start() == 2 and ep.tick().action == STEP


def test_the_gate_holds_episode_one_and_each_next_episode_until_it_allows_its_id():
    ep = BridgeEpisodes(seed=0, auto_reset=True, gated=True)
    first, second = ep.tick(), ep.tick()
    assert first.action == second.action == WAIT  # even episode 1 waits for the gate's first value
    assert first.log == "episode 1 waits for the trainer (gate 0)" and second.log == ""  # logged once
    ep.set_gate(1)
    t = ep.tick()
    assert t.action == START and t.log == "gate 1; episode 1 starts"
    assert ep.start() == 1 and ep.tick() == ep.tick() and ep.tick().action == STEP
    ep.end()
    t = ep.tick()
    assert t.action == WAIT and t.log == "episode 2 waits for the trainer (gate 1)"
    ep.set_gate(3)
    assert ep.tick().action == START and ep.start() == 2
    ep.end()
    t = ep.tick()  # gate 3 already lets episode 3 start: no wait, nothing logged
    assert t.action == START and t.log == ""


def test_each_run_is_a_new_recording_session():
    a, b = BridgeEpisodes(0, True, False), BridgeEpisodes(0, True, False)
    assert a.session_id != b.session_id and str(uuid.UUID(a.session_id)) == a.session_id
    assert BridgeEpisodes(0, True, False, session_id="s1").session_id == "s1"


def test_direct_commands_of_another_episode_or_session_are_refused_and_counted():
    ep = BridgeEpisodes(seed=0, auto_reset=True, gated=False, session_id="run-a")
    ep.start()
    ep.end()
    ep.start()  # episode 2 runs
    assert ep.refuse_command(2, "run-a") == "" and ep.refuse_command(2, "") == ""  # '' session: unknown, passes
    assert ep.dropped_commands == 0
    # the previous episode's command, still in flight at the START, must not move the reset robot
    assert ep.refuse_command(1, "run-a") == "direct command of episode 1 dropped: the current episode is 2"
    assert ep.refuse_command(3, "") == "direct command of episode 3 dropped: the current episode is 2"
    assert ep.refuse_command(2, "run-b") == "direct command of session run-b dropped: this run's session is run-a"
    assert ep.dropped_commands == 3
    ep.end()  # after the outcome the current episode's commands still pass (nothing steps until the reset)
    assert ep.refuse_command(2, "run-a") == "" and ep.dropped_commands == 3


def test_a_reset_ends_a_running_episode_once_and_only_a_running_one():
    from bora_policy.common.rewards import TIMEOUT_NOTE_PREFIX

    ep = BridgeEpisodes(seed=0, auto_reset=True, gated=False)
    ep.start()
    assert ep.request_reset() is True  # episode 1 ran: the caller sends its ABORT now
    assert not ep.running and ep.request_reset() is False  # a second request ends nothing more
    assert ep.tick().action == START and ep.start() == 2
    ep.end()  # an outcome was sent already: a reset ends nothing
    assert ep.request_reset() is False and ep.tick().action == START
    # with a gate: before episode 1 nothing runs; a reset of a running episode ends it at once, its START waits
    gated = BridgeEpisodes(seed=0, auto_reset=True, gated=True)
    assert gated.request_reset() is False and gated.tick().action == WAIT
    gated.set_gate(1)
    assert gated.tick().action == START and gated.start() == 1
    assert gated.request_reset() is True and gated.tick().action == WAIT and gated.episode_id == 1
    # the ABORT's note is not a timeout's: its outcome is "abort" (bora_trainer.data.bag_records.outcome_of)
    assert RESET_NOTE.startswith("reset") and not RESET_NOTE.lower().startswith(TIMEOUT_NOTE_PREFIX)
