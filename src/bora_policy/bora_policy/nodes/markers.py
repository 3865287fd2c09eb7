"""RViz markers for the chunk critic on a fixed (or slowly adapting) value scale.

* Bars: one CUBE per chunk step, height and colour from the value's place in the scale
  ``[lo, hi]`` (values outside are clipped to the ends), so a chunk of uniformly low values looks
  low and the level over time is visible. (Before: each chunk normalised by its own min..max.)
* Legend: the scale's ends and midpoint as text next to a five-step colour ramp.
* History strip: v(z_t, 0) of the last chunks as a coloured line on the same scale, so a falling
  value is seen in RViz too.
* Text: "q=.. v=.. step i/k [mode]", or "no critic loaded".

The scale is ours (the paper shows value profiles, Fig. 11, not a live display): default
``[-0.5, 1.0]`` because the success reward is 1.0 (rewards.py) and the takeover (-0.3) and time
penalties push values below 0. :class:`ValueMarkerState` keeps the scale (fixed, or moved toward
each chunk's min/max by ``adapt`` per chunk) and the history; :func:`value_markers` is a pure
function of its arguments.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

NS = "bora_value"
DEFAULT_SCALE = (-0.5, 1.0)
ID_TEXT, ID_BASELINE, ID_TAKEOVER, ID_HELP = 1000, 1001, 1002, 1003
HELP_COLOR = ColorRGBA(r=1.0, g=0.0, b=1.0, a=1.0)  # magenta: distinct from the red..green value ramp
ID_LEGEND, ID_HISTORY, ID_HISTORY_TEXT = 1100, 1200, 1201
LEGEND_LEVELS = 5
MIN_SPAN = 1e-3


def scale_fraction(x: float, lo: float, hi: float) -> float:
    """Place of ``x`` in ``[lo, hi]`` as 0..1 (clipped); 0.5 for a degenerate scale."""
    if hi - lo < 1e-9:
        return 0.5
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def value_color(x: float, lo: float, hi: float) -> ColorRGBA:
    """Red (lo) -> yellow -> green (hi)."""
    f = scale_fraction(x, lo, hi)
    return ColorRGBA(r=float(min(1.0, 2 * (1 - f))), g=float(min(1.0, 2 * f)), b=0.1, a=0.9)


class ValueMarkerState:
    """The markers' scale and the v(z_t, 0) history, updated once per value estimate.

    ``adapt = 0``: the scale stays ``[lo, hi]``. ``adapt in (0, 1]``: after each chunk,
    ``lo += adapt (min - lo)`` and ``hi += adapt (max - hi)`` over the chunk's values (q, else v),
    keeping ``hi - lo >= 1e-3`` (an exponential moving average of the chunk extremes: slow for
    small ``adapt``).
    """

    def __init__(self, lo: float = DEFAULT_SCALE[0], hi: float = DEFAULT_SCALE[1], adapt: float = 0.0,
                 history: int = 60):
        if not hi > lo:
            raise ValueError(f"value marker scale: value_max ({hi}) must be greater than value_min ({lo})")
        if not 0.0 <= adapt <= 1.0:
            raise ValueError(f"value marker scale: adapt must be in [0, 1], got {adapt}")
        if history < 0:
            raise ValueError(f"value marker history length must be >= 0, got {history}")
        self.lo, self.hi, self.adapt = float(lo), float(hi), float(adapt)
        self.history: deque[float] = deque(maxlen=int(history))

    @property
    def scale(self) -> tuple[float, float]:
        return self.lo, self.hi

    def observe(self, q, v) -> None:
        """One new value estimate (the chunk's q and v arrays, either may be None)."""
        vals = q if q is not None and len(q) else v
        if self.adapt > 0.0 and vals is not None and len(vals):
            a = np.asarray(vals, np.float64)
            lo = self.lo + self.adapt * (float(a.min()) - self.lo)
            hi = self.hi + self.adapt * (float(a.max()) - self.hi)
            if hi - lo < MIN_SPAN:
                mid = 0.5 * (lo + hi)
                lo, hi = mid - MIN_SPAN / 2, mid + MIN_SPAN / 2
            self.lo, self.hi = lo, hi
        if v is not None and len(v) and self.history.maxlen:
            self.history.append(float(v[0]))


def _marker(mid: int, mtype: int, frame: str, stamp, xyz) -> Marker:
    m = Marker(ns=NS, id=mid, type=mtype, action=Marker.ADD)
    m.header.frame_id, m.header.stamp = frame, stamp
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(c) for c in xyz)
    m.pose.orientation.w = 1.0
    return m


def _text(mid: int, frame: str, stamp, xyz, text: str, size: float, color: ColorRGBA) -> Marker:
    m = _marker(mid, Marker.TEXT_VIEW_FACING, frame, stamp, xyz)
    m.scale.z, m.text, m.color = size, text, color
    return m


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
    scale: tuple[float, float] = DEFAULT_SCALE,
    history=(),
    help_request=None,
) -> MarkerArray:
    """Bars (height ``0.01 + height_scale * f``, f = place of q_i, or v_i without q, in ``scale``),
    a highlighted current step, a baseline at ``lo``, the legend, the v(z_t, 0) ``history`` strip
    and the text line; ``takeover`` = (is_intervention, beta, held) adds the takeover line; ``help_request``
    (a ``HelpDecision`` still shown) adds a magenta "HELP REQUESTED" line (issue 19)."""
    lo, hi = float(scale[0]), float(scale[1])
    arr = MarkerArray()
    vals = np.asarray(q if q is not None else (v if v is not None else []), dtype=np.float64)
    k = len(vals)
    ox, oy, oz = origin
    pitch = bar_width * 1.2
    white = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    for i, x in enumerate(vals):
        h = 0.01 + height_scale * scale_fraction(x, lo, hi)
        m = _marker(i, Marker.CUBE, frame, stamp, (ox, oy + i * pitch, oz + h / 2))
        m.scale.x, m.scale.y, m.scale.z = bar_width, bar_width, h
        m.color = value_color(x, lo, hi)
        if i == index:
            m.color.a, m.scale.x = 1.0, bar_width * 2.0
        arr.markers.append(m)
    i = int(np.clip(index, 0, max(k - 1, 0)))
    parts = []
    if q is not None and len(q):
        parts.append(f"q={float(q[i]):+.3f}")
    if v is not None and len(v):
        parts.append(f"v={float(v[i]):+.3f}")
    text = (" ".join(parts) or "no critic loaded") + f"  step {i + 1}/{max(k, 1)}  [{mode}]"
    arr.markers.append(_text(ID_TEXT, frame, stamp, (ox, oy, oz + height_scale + 0.08), text, 0.05, white))
    line = _marker(ID_BASELINE, Marker.LINE_STRIP, frame, stamp, (0.0, 0.0, 0.0))
    line.scale.x = 0.003
    line.color = ColorRGBA(r=0.8, g=0.8, b=0.8, a=0.6)
    line.points = [Point(x=ox, y=oy, z=oz), Point(x=ox, y=oy + max(k, 1) * pitch, z=oz)]
    arr.markers.append(line)
    # legend: a colour ramp left of the bars with the scale's values
    ly = oy - 3 * pitch
    for j in range(LEGEND_LEVELS):
        f = j / (LEGEND_LEVELS - 1)
        x = lo + f * (hi - lo)
        m = _marker(ID_LEGEND + j, Marker.CUBE, frame, stamp, (ox, ly, oz + 0.01 + height_scale * f))
        m.scale.x, m.scale.y, m.scale.z = bar_width / 2, bar_width / 2, bar_width / 2
        m.color = value_color(x, lo, hi)
        arr.markers.append(m)
        if j in (0, LEGEND_LEVELS // 2, LEGEND_LEVELS - 1):
            xyz = (ox, ly - 2 * pitch, oz + 0.01 + height_scale * f)
            arr.markers.append(_text(ID_LEGEND + 10 + j, frame, stamp, xyz, f"{x:+.2f}", 0.025, white))
    # history strip: v(z_t, 0) of the last chunks, right of the bars, on the same scale
    hist = [float(x) for x in history]
    if hist:
        hy = oy + (max(k, 1) + 2) * pitch
        strip = _marker(ID_HISTORY, Marker.LINE_STRIP, frame, stamp, (0.0, 0.0, 0.0))
        strip.scale.x = 0.004
        strip.color = white
        step = bar_width / 2
        for n, x in enumerate(hist):
            strip.points.append(Point(x=float(ox), y=float(hy + n * step),
                                      z=float(oz + 0.01 + height_scale * scale_fraction(x, lo, hi))))
            strip.colors.append(value_color(x, lo, hi))
        if len(hist) == 1:  # a LINE_STRIP needs two points
            strip.points.append(Point(x=strip.points[0].x, y=strip.points[0].y + step, z=strip.points[0].z))
            strip.colors.append(strip.colors[0])
        arr.markers.append(strip)
        arr.markers.append(_text(ID_HISTORY_TEXT, frame, stamp, (ox, hy, oz - 0.03),
                                 f"v(z_t,0) last {len(hist)}: {hist[-1]:+.3f}", 0.025, white))
    if takeover is not None:  # (is_intervention, beta, held) from the arbiter's /bora/executed_command
        active, beta, held = takeover
        text = (f"HUMAN TAKEOVER beta={beta:.2f}" if active else "policy in control") + (
            "  [SAFETY HOLD]" if held else ""
        )
        color = ColorRGBA(r=1.0, g=0.3, b=0.2, a=1.0) if active or held else ColorRGBA(r=0.3, g=1.0, b=0.3, a=1.0)
        arr.markers.append(_text(ID_TAKEOVER, frame, stamp, (ox, oy, oz + height_scale + 0.15), text, 0.06, color))
    if help_request is not None:
        d = help_request
        eta = f", failure in ~{d.predicted_steps_to_failure} steps" if d.predicted_steps_to_failure >= 0 else ""
        text = f"HELP REQUESTED step {d.step}: {d.reason} {d.value:+.3f} < {d.threshold:+.3f}{eta}"
        arr.markers.append(_text(ID_HELP, frame, stamp, (ox, oy, oz + height_scale + 0.22), text, 0.06, HELP_COLOR))
    else:  # the request shown before is taken down
        gone = _marker(ID_HELP, Marker.TEXT_VIEW_FACING, frame, stamp, (ox, oy, oz))
        gone.action = Marker.DELETE
        arr.markers.append(gone)
    return arr
