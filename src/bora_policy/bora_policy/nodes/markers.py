"""RViz markers for the chunk critic: per-step values as a coloured bar timeline, current value as text."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

NS = "bora_value"


def value_color(x: float, lo: float, hi: float) -> ColorRGBA:
    """Red (low) -> yellow -> green (high)."""
    f = 0.5 if hi - lo < 1e-9 else float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return ColorRGBA(r=float(min(1.0, 2 * (1 - f))), g=float(min(1.0, 2 * f)), b=0.1, a=0.9)


def value_markers(
    q,
    v,
    index: int,
    frame: str,
    stamp,
    mode: str = "autonomous",
    origin=(0.0, -0.6, 0.8),
    bar_width: float = 0.02,
    height_scale: float = 0.2,
    takeover: tuple[bool, float, bool] | None = None,
) -> MarkerArray:
    """One CUBE per chunk step (height = q_i, or v_i without q; colour by value), a highlighted
    current step, and a TEXT marker "q=.. v=.. step i/k mode"."""
    arr = MarkerArray()
    vals = np.asarray(q if q is not None else (v if v is not None else []), dtype=np.float64)
    k = len(vals)
    ox, oy, oz = origin
    if k:
        lo, hi = float(vals.min()), float(vals.max())
        span = max(hi - lo, 1e-6)
        for i, x in enumerate(vals):
            m = Marker(ns=NS, id=i, type=Marker.CUBE, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = frame, stamp
            h = 0.01 + height_scale * (x - lo) / span
            m.pose.position.x, m.pose.position.y, m.pose.position.z = ox, oy + i * bar_width * 1.2, oz + h / 2
            m.pose.orientation.w = 1.0
            m.scale.x, m.scale.y, m.scale.z = bar_width, bar_width, h
            m.color = value_color(x, lo, hi)
            if i == index:
                m.color.a, m.scale.x = 1.0, bar_width * 2.0
            arr.markers.append(m)
    t = Marker(ns=NS, id=1000, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    t.header.frame_id, t.header.stamp = frame, stamp
    t.pose.position.x, t.pose.position.y, t.pose.position.z = ox, oy, oz + height_scale + 0.08
    t.pose.orientation.w = 1.0
    t.scale.z = 0.05
    t.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    i = int(np.clip(index, 0, max(k - 1, 0)))
    parts = []
    if q is not None and len(q):
        parts.append(f"q={float(q[i]):+.3f}")
    if v is not None and len(v):
        parts.append(f"v={float(v[i]):+.3f}")
    t.text = (" ".join(parts) or "no critic loaded") + f"  step {i + 1}/{max(k, 1)}  [{mode}]"
    arr.markers.append(t)
    line = Marker(ns=NS, id=1001, type=Marker.LINE_STRIP, action=Marker.ADD)
    line.header.frame_id, line.header.stamp = frame, stamp
    line.pose.orientation.w = 1.0
    line.scale.x = 0.003
    line.color = ColorRGBA(r=0.8, g=0.8, b=0.8, a=0.6)
    line.points = [Point(x=ox, y=oy, z=oz), Point(x=ox, y=oy + max(k, 1) * bar_width * 1.2, z=oz)]
    arr.markers.append(line)
    if takeover is not None:  # (is_intervention, beta, held) from the arbiter's /bora/executed_command
        active, beta, held = takeover
        m = Marker(ns=NS, id=1002, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = frame, stamp
        m.pose.position.x, m.pose.position.y, m.pose.position.z = ox, oy, oz + height_scale + 0.15
        m.pose.orientation.w = 1.0
        m.scale.z = 0.06
        m.text = (f"HUMAN TAKEOVER beta={beta:.2f}" if active else "policy in control") + (
            "  [SAFETY HOLD]" if held else ""
        )
        m.color = (
            ColorRGBA(r=1.0, g=0.3, b=0.2, a=1.0) if active or held else ColorRGBA(r=0.3, g=1.0, b=0.3, a=1.0)
        )
        arr.markers.append(m)
    return arr
