"""The first screen of ``bora viz`` (a Rerun blueprint shipped with the package; our layout choice).

Top: one colour and one depth view per camera (default: the graph's cameras, config/graph.yaml).
Middle: the critic's values over the timeline (q, v, advantage per step, v(z_t, 0) per chunk) next
to the executing chunk's q profile (bar chart). Bottom: residual magnitude and alpha, beta and the
takeover flag with the episode outcomes, and the event log (takeovers, episodes, checkpoint loads).
"""

from __future__ import annotations

import rerun.blueprint as rrb

from bora_policy.common.graph_params import graph_default


def default_blueprint(cameras: list[str] | tuple[str, ...] | None = None) -> rrb.Blueprint:
    cams = list(cameras or ()) or list(graph_default("cameras"))
    color = [rrb.Spatial2DView(origin=f"cameras/{c}/color", name=f"{c} colour") for c in cams]
    depth = [rrb.Spatial2DView(origin=f"cameras/{c}/depth", name=f"{c} depth") for c in cams]
    values = rrb.TimeSeriesView(
        origin="value", name="critic: q, v, advantage, v(z_t,0)",
        contents=["value/q", "value/v", "value/advantage", "value/v0"],
    )
    chunk = rrb.BarChartView(origin="value/chunk_q", name="executing chunk: q per step")
    residual = rrb.TimeSeriesView(origin="residual", name="residual |r_i| and alpha")
    takeover = rrb.TimeSeriesView(
        name="beta, takeover, outcome", contents=["takeover/**", "episode/outcome"],
    )
    events = rrb.TextLogView(origin="events", name="takeovers, episodes, checkpoints")
    return rrb.Blueprint(
        rrb.Vertical(
            rrb.Grid(*color, *depth, grid_columns=len(cams)),
            rrb.Horizontal(values, chunk, column_shares=[3, 1]),
            rrb.Horizontal(residual, takeover, events),
            row_shares=[4, 3, 2],
        ),
        rrb.TimePanel(state="collapsed", timeline="step", play_state="paused"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.BlueprintPanel(state="collapsed"),
        collapse_panels=False,
    )
