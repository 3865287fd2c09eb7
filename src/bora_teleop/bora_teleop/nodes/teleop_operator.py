"""The teleop node's operator side (thin rclpy code, mixed into ``TeleopNode``): takeover requests from
a person and from the sim's scripted operator (:mod:`bora_teleop.sources`), recovered flags, the
e-stop, episode events, the services and the keys, and the policy's help requests (:mod:`bora_teleop.help_wait`)."""

from __future__ import annotations

import sys

from bora_msgs.msg import EpisodeEvent, InterventionEvent
from bora_teleop.events import (
    EP_ABORT,
    EP_FAILURE,
    EP_START,
    EP_SUCCESS,
    EPISODE_KINDS,
    INTERVENTION_KINDS,
    KEY_HELP,
    KEYMAP,
)
from bora_teleop.health import WARN
from bora_teleop.help_wait import BELL, PendingHelp
from bora_teleop.inputs import MAX_NAME_LEN, MAX_NOTE_LEN, episode_note
from bora_teleop.sources import OPERATOR, PERSON


class OperatorMixin:
    # ------------------------------------------------------------------ takeover sources
    def _request_takeover(self, source: str, on: bool, how: str) -> None:
        before = self.arb.sources.owner()
        changed = self.arb.request_takeover(source, bool(on), self._now())
        if source == PERSON:
            over = " (overrides the scripted operator)" if before == OPERATOR else ""
            self.get_logger().info(f"takeover {'requested' if on else 'released'} by a person ({how}){over}")
        elif changed:
            self.get_logger().info(f"takeover {'requested' if on else 'released'} by the scripted operator")

    def _on_takeover(self, msg) -> None:
        # a person's trigger: edge semantics (a change requests / releases), on its own topic
        if msg.data != self._last_takeover_msg:
            self._last_takeover_msg = bool(msg.data)
            self._request_takeover(PERSON, bool(msg.data), "topic")

    def _on_operator_takeover(self, msg) -> None:
        # the scripted operator publishes its trigger as a level every tick
        self._request_takeover(OPERATOR, bool(msg.data), "topic")

    def _on_recovered(self, msg) -> None:
        # every true message reports a recovery; the blender keeps at most one per takeover
        if msg.data:
            ok, why = self.arb.blender.mark_recovered()
            if not ok:
                self._rl("recovered", "warning", f"recovered flag ignored: {why}")

    def _on_operator_recovered(self, msg) -> None:
        if not msg.data:
            return
        if self.arb.owner() != OPERATOR:
            self._rl("op_recovered", "info", "scripted operator's recovered flag ignored: not its takeover")
            return
        ok, why = self.arb.blender.mark_recovered()
        if not ok:
            self._rl("op_recovered", "warning", f"scripted operator's recovered flag ignored: {why}")

    def _on_estop(self, msg) -> None:
        was = self.arb.safety.estop_latched
        self.arb.safety.set_estop(bool(msg.data))
        if msg.data and not was:
            self.get_logger().error("E-STOP latched: holding position until /bora/teleop/reset_estop")

    # ------------------------------------------------------------------ episodes
    def _on_current_episode(self, msg) -> None:
        """The latched copy of the current episode's START (this node may have connected after it):
        applied like a START not seen yet; a duplicate or an older episode is ignored."""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if msg.kind == EpisodeEvent.START and self.latch.is_new(msg.session_id, msg.episode_id, stamp):
            self._on_episode(msg)

    def _on_episode(self, msg) -> None:
        # a takeover never spans two episodes: it ends with its episode's outcome, or at the next START
        if len(msg.session_id) > MAX_NAME_LEN or len(msg.note) > MAX_NOTE_LEN:
            self._fault(
                "episode_event_too_long",
                f"EpisodeEvent: session_id or note too long ({len(msg.session_id)}, "
                f"{len(msg.note)} characters; at most {MAX_NAME_LEN}, {MAX_NOTE_LEN})",
            )
            return
        if msg.kind == EpisodeEvent.START:
            self.latch.applied(msg.session_id, msg.episode_id, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            self._episode_session = msg.session_id or self._episode_session
            if self.arb.started_episode != msg.episode_id:
                self._end_takeover(self.arb.episode.episode_id, self.arb.episode.step, "next episode started")
                self._start_episode(
                    int(msg.episode_id), "episode event", msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                )
        elif msg.kind in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.ABORT):
            self.arb.end_episode(int(msg.episode_id))
            self._end_takeover(
                int(msg.episode_id),
                int(msg.step),
                f"episode {EPISODE_KINDS[msg.kind]}",
                success=msg.kind == EpisodeEvent.SUCCESS,
            )
        else:
            self._fault("episode_event_malformed", f"EpisodeEvent.kind={msg.kind}: expected one of {EPISODE_KINDS}")

    def _start_episode(self, episode_id: int, how: str, stamp: float | None = None) -> None:
        if self.arb.start_episode(episode_id, stamp):
            self.get_logger().info(
                f"episode {episode_id} START ({how}): holding the measured state until the policy's first command of it"
            )

    def _end_takeover(self, episode_id: int, step: int, why: str, success: bool = False) -> None:
        self.help.end_episode()  # a help request does not outlive its episode
        for kind, reward in self.arb.end_takeover(success):
            self._publish_intervention(kind, reward, episode_id, step, why)

    def _publish_intervention(self, kind: str, reward: float, episode_id: int, step: int, reason: str) -> None:
        ev = InterventionEvent(
            episode_id=int(episode_id),
            session_id=self._episode_session,
            step=int(step),
            kind=INTERVENTION_KINDS[kind],
            reward=float(reward),
            reason=reason,
        )
        ev.header.stamp = self.get_clock().now().to_msg()
        self.pub_int.publish(ev)
        self.get_logger().info(f"intervention {kind} at step {step} (reward {reward:+.3f}) [{reason}]")

    def _publish_episode(self, kind: int, note: str) -> int:
        if kind in EPISODE_KINDS:  # the open takeover belongs to the episode being ended / left
            if kind != EP_START:
                self.arb.end_episode(self.arb.episode.episode_id)
            self._end_takeover(
                self.arb.episode.episode_id,
                self.arb.episode.step,
                f"episode {EPISODE_KINDS[kind]}",
                success=kind == EP_SUCCESS,
            )
        ep, step = self.arb.episode.mark(kind)
        if kind == EP_START:
            self._episode_session = self.session_id  # an episode this node numbers
            self._start_episode(ep, "operator")
        m = EpisodeEvent(
            episode_id=ep,
            session_id=self._episode_session,
            kind=kind,
            step=step,
            task=self.P["task"],
            object_set=self.P["object_set"],
            note=note,
        )
        m.header.stamp = self.get_clock().now().to_msg()
        # also latched (bora_policy/common/episode_events.py): a START for nodes that connect later, an outcome
        # for a restarted live trainer
        self.events.publish(m)
        if kind == EP_START:
            self.latch.applied(m.session_id, ep, m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)
        self.get_logger().info(f"episode {ep}: {EPISODE_KINDS[kind]} at step {step} {note}")
        return ep

    # ------------------------------------------------------------------ services / keys
    def _srv_mark_episode(self, req, res):
        try:
            if req.kind not in EPISODE_KINDS:
                raise ValueError(f"MarkEpisode.kind={req.kind}: expected one of {EPISODE_KINDS}")
            note = episode_note(req.note)
        except ValueError as e:
            res.success, res.episode_id = False, self.arb.episode.episode_id
            self._fault("service_bad_request", str(e), WARN)
            return res
        res.episode_id, res.success = self._publish_episode(req.kind, note), True
        return res

    def _srv_set_takeover(self, req, res):
        self._request_takeover(PERSON, bool(req.data), "service")
        res.success, res.message = True, f"takeover {'requested' if req.data else 'released'}"
        return res

    def _srv_reset_estop(self, req, res):
        res.success, res.message = self.arb.safety.reset_estop()
        self.get_logger().warning(f"reset_estop: {res.message}")
        return res

    def _srv_mark_recovered(self, req, res):
        res.success, res.message = self.arb.blender.mark_recovered()
        return res

    def _handle_key(self, ch: str) -> None:
        action = KEYMAP.get(ch)
        if action == "toggle_takeover":
            self._request_takeover(PERSON, not self.arb.sources.person, "key")
        elif action == "recovered":
            self.get_logger().info(f"recovered (key): {self.arb.blender.mark_recovered()[1]}")
        elif action in ("success", "failure", "abort", "new_episode"):
            kind = {"success": EP_SUCCESS, "failure": EP_FAILURE, "abort": EP_ABORT, "new_episode": EP_START}[action]
            self._publish_episode(kind, "key")
        elif action == "estop":
            self.arb.safety.latch_estop()  # momentary: an e-stop input asserted on the topic stays asserted
            self.get_logger().error("E-STOP latched (key): holding position until /bora/teleop/reset_estop")
        elif action == "help":
            self.get_logger().info(KEY_HELP)

    # ------------------------------------------------------------------ help requests (issue 19)
    def _on_help_request(self, msg) -> None:
        if len(msg.reason) > MAX_NAME_LEN:
            self._fault(
                "help_request_malformed", f"HelpRequest.reason: {len(msg.reason)} characters, at most {MAX_NAME_LEN}"
            )
            return
        r = PendingHelp(int(msg.episode_id), int(msg.step), str(msg.reason), float(msg.value), float(msg.threshold),
                        int(msg.predicted_steps_to_failure), self._now())
        line = self.help.request(r, self.arb.started_episode)
        if not line:
            self._rl("help_other_episode", "info", f"help request of episode {r.episode_id} ignored: not the current")
            return
        self.get_logger().warning(line + (" (holding the robot until then)" if self.help.hold_policy else ""))
        if self.keys is not None:  # the operator's terminal: a bell and the line
            sys.stdout.write(BELL + line + "\n")
            sys.stdout.flush()

    def _help_tick(self, now: float) -> None:
        what = self.help.update(now, self.arb.sources.requested())
        if what == "timeout":
            self.get_logger().warning(f"help request unanswered after {self.help.timeout_s:g} s")
        self.arb.help_hold = self.help.holds()

    def _help_values(self) -> dict:
        h = self.help
        return {
            "help_requested": h.pending is not None,
            "help_requests": h.requests,
            "help_answered": h.answered,
            "help_timed_out": h.timed_out,
            "help_hold_policy": h.hold_policy,
        }
