"""The viewer shows the policy's help requests (issue 19): a WARN text entry and the value at its step."""

from __future__ import annotations

from types import SimpleNamespace

import rerun as rr

from bora_trainer.viz.log import T_HELP, VIEWED_TYPES, VizLogger
from bora_trainer.viz.readback import rrd_rows, scalar_series, texts


def test_help_request_entries(tmp_path):
    rec = rr.RecordingStream("bora_viz_help_test")
    rec.save(str(tmp_path / "h.rrd"))
    viz = VizLogger(rec)
    msg = SimpleNamespace(session_id="s", episode_id=3, step=17, reason="low_value", value=0.125, threshold=0.25,
                          predicted_steps_to_failure=4)
    assert T_HELP in VIEWED_TYPES and viz.log_message(T_HELP, msg, 1_000)
    viz.log_message(T_HELP, SimpleNamespace(**{**vars(msg), "step": 30, "predicted_steps_to_failure": -1}), 2_000)
    rec.flush()
    rec.disconnect()
    rows = rrd_rows(tmp_path / "h.rrd")
    assert texts(rows["events/help"]) == [
        (17, "HELP REQUESTED (episode 3, step 17): low_value +0.125 < +0.250, failure predicted in 4 steps"),
        (30, "HELP REQUESTED (episode 3, step 30): low_value +0.125 < +0.250"),
    ]
    assert scalar_series(rows["help/request"]) == {17: 0.125, 30: 0.125}
