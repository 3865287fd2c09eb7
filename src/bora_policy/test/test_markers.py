"""RViz value markers: a fixed (or slowly adapting) scale, the legend and the v(z_t, 0) history strip.

Hand-computed heights and colours; the builder is a pure function of its arguments.
"""

from __future__ import annotations

import numpy as np
import pytest
from visualization_msgs.msg import Marker

from bora_policy.nodes.markers import (
    ID_HISTORY,
    ID_HISTORY_TEXT,
    ID_LEGEND,
    ID_TEXT,
    ValueMarkerState,
    value_markers,
)


def _bars(arr):
    return [m for m in arr.markers if m.type == Marker.CUBE and m.id < 1000]


def _by_id(arr, mid):
    (m,) = [m for m in arr.markers if m.id == mid]
    return m


def test_uniformly_low_chunk_looks_low_and_high_looks_high():
    # scale [-1, 1], height_scale 0.2: h = 0.01 + 0.2 (x + 1) / 2
    low = value_markers([-0.5] * 4, None, 0, "base", None, scale=(-1.0, 1.0))
    high = value_markers([0.5] * 4, None, 0, "base", None, scale=(-1.0, 1.0))
    assert [m.scale.z for m in _bars(low)] == pytest.approx([0.06] * 4)
    assert [m.scale.z for m in _bars(high)] == pytest.approx([0.16] * 4)
    # colour: f = 0.25 -> r = min(1, 1.5) = 1, g = 0.5; f = 0.75 -> r = 0.5, g = 1
    c_lo, c_hi = _bars(low)[1].color, _bars(high)[1].color
    assert (c_lo.r, c_lo.g) == pytest.approx((1.0, 0.5)) and (c_hi.r, c_hi.g) == pytest.approx((0.5, 1.0))


def test_values_outside_the_scale_are_clipped_and_index_highlighted():
    arr = value_markers([-3.0, 0.0, 3.0], [0.1, 0.2, 0.3], 2, "base", None, scale=(-1.0, 1.0))
    bars = _bars(arr)
    assert [m.scale.z for m in bars] == pytest.approx([0.01, 0.11, 0.21])
    assert bars[2].scale.x == pytest.approx(0.04) and bars[2].color.a == 1.0 and bars[0].scale.x == pytest.approx(0.02)
    assert _by_id(arr, ID_TEXT).text == "q=+3.000 v=+0.300  step 3/3  [autonomous]"
    # bars stand on the origin: centre z = oz + h / 2
    assert bars[1].pose.position.z == pytest.approx(0.8 + 0.11 / 2)


def test_legend_shows_the_scale():
    arr = value_markers([0.0], None, 0, "base", None, scale=(-0.5, 1.0))
    ramp = [m for m in arr.markers if ID_LEGEND <= m.id < ID_LEGEND + 5]
    assert len(ramp) == 5
    assert [m.pose.position.z for m in ramp] == pytest.approx([0.81 + 0.2 * f for f in (0, 0.25, 0.5, 0.75, 1.0)])
    labels = sorted(m.text for m in arr.markers if ID_LEGEND + 10 <= m.id < ID_LEGEND + 20)
    assert labels == sorted(["-0.50", "+0.25", "+1.00"])
    assert ramp[0].color.r == pytest.approx(1.0) and ramp[0].color.g == pytest.approx(0.0)
    assert ramp[-1].color.r == pytest.approx(0.0) and ramp[-1].color.g == pytest.approx(1.0)


def test_history_strip_on_the_same_scale():
    hist = [1.0, 0.5, 0.0, -1.0]
    arr = value_markers([0.0] * 4, None, 0, "base", None, scale=(-1.0, 1.0), history=hist)
    strip = _by_id(arr, ID_HISTORY)
    assert strip.type == Marker.LINE_STRIP and len(strip.points) == 4 and len(strip.colors) == 4
    assert [p.z for p in strip.points] == pytest.approx([0.81 + 0.2 * f for f in (1.0, 0.75, 0.5, 0.0)])
    assert np.all(np.diff([p.y for p in strip.points]) > 0)  # oldest left, newest right
    assert _by_id(arr, ID_HISTORY_TEXT).text == "v(z_t,0) last 4: -1.000"
    one = _by_id(value_markers(None, None, 0, "base", None, history=[0.2]), ID_HISTORY)
    assert len(one.points) == 2  # a line strip needs two points
    assert not [m for m in value_markers([0.0], None, 0, "base", None).markers if m.id == ID_HISTORY]


def test_no_critic_text_and_unique_ids():
    arr = value_markers(None, None, 0, "base", None, takeover=(True, 0.7, True), history=[0.1, 0.2])
    assert _by_id(arr, ID_TEXT).text.startswith("no critic loaded")
    assert _by_id(arr, 1002).text == "HUMAN TAKEOVER beta=0.70  [SAFETY HOLD]"
    ids = [m.id for m in arr.markers]
    assert len(ids) == len(set(ids))


def test_state_fixed_and_adapting_scale_and_history():
    fixed = ValueMarkerState(-1.0, 1.0, adapt=0.0, history=3)
    for t in range(5):
        fixed.observe(np.array([0.2, 0.4]), np.array([0.1 * t, 9.0]))
    assert fixed.scale == (-1.0, 1.0)
    assert list(fixed.history) == pytest.approx([0.2, 0.3, 0.4])  # v[0] of the last 3 chunks
    ad = ValueMarkerState(-1.0, 1.0, adapt=0.5)
    ad.observe(np.array([0.0, 0.5]), None)  # lo = -1 + 0.5 (0 + 1) = -0.5; hi = 1 + 0.5 (0.5 - 1) = 0.75
    assert ad.scale == pytest.approx((-0.5, 0.75))
    ad.observe(None, np.array([0.25, 0.25]))  # v when q is absent: lo = -0.125, hi = 0.5
    assert ad.scale == pytest.approx((-0.125, 0.5))
    flat = ValueMarkerState(0.0, 0.001, adapt=1.0)
    flat.observe(np.array([0.3, 0.3]), None)  # collapses onto 0.3: kept 1e-3 wide around it
    assert flat.scale == pytest.approx((0.2995, 0.3005))
    with pytest.raises(ValueError, match="value_max"):
        ValueMarkerState(1.0, 1.0)
    with pytest.raises(ValueError, match="adapt"):
        ValueMarkerState(adapt=2.0)


def test_help_request_shown_in_magenta_and_taken_down():
    from bora_policy.nodes.markers import ID_HELP
    from bora_policy.runtime.help_monitor import HelpDecision

    d = HelpDecision(step=42, reason="low_value", value=0.125, threshold=0.25, predicted_steps_to_failure=6)
    m = _by_id(value_markers([0.1] * 4, None, 0, "base", None, help_request=d), ID_HELP)
    assert m.action == Marker.ADD and m.type == Marker.TEXT_VIEW_FACING
    assert m.text == "HELP REQUESTED step 42: low_value +0.125 < +0.250, failure in ~6 steps"
    assert (m.color.r, m.color.g, m.color.b) == (1.0, 0.0, 1.0)
    d = HelpDecision(step=3, reason="low_value", value=0.1, threshold=0.2, predicted_steps_to_failure=-1)
    assert "failure in" not in _by_id(value_markers([0.1], None, 0, "base", None, help_request=d), ID_HELP).text
    assert _by_id(value_markers([0.1], None, 0, "base", None), ID_HELP).action == Marker.DELETE
