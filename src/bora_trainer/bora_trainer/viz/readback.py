"""What an ``.rrd`` holds, read back with the Rerun SDK (tests, the browser check, ``make demo``).

:func:`rrd_rows` returns, per entity path, the rows ``(timeline values, component values)`` of the
first recording in the file; the browser test applies it to the recording the web viewer itself
saved, so it checks the data the page shows and not only its pixels.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rerun.chunk import RrdReader

CONTROL_COLUMNS = ("rerun.controls.RowId", "log_time")


def rrd_rows(path: str | Path) -> dict[str, list[dict]]:
    """entity path (no leading '/') -> rows, each a dict of column name -> value, in step order."""
    out: dict[str, list[dict]] = defaultdict(list)
    reader = RrdReader(str(path))
    if not reader.recordings():  # e.g. a viewer that has not received the recording yet
        return {}
    for chunk in reader.stream():
        ent = chunk.entity_path.lstrip("/")
        if ent.startswith("__"):
            continue
        cols = chunk.to_record_batch().to_pydict()
        for i in range(chunk.num_rows):
            out[ent].append({k: v[i] for k, v in cols.items() if k not in CONTROL_COLUMNS})
    for rows in out.values():
        rows.sort(key=lambda r: (r.get("step") is not None, r.get("step") or 0))
    return dict(out)


def scalar_series(rows: list[dict], timeline: str = "step") -> dict[int, float]:
    """``{timeline value: scalar}`` of a Scalars entity's non-static rows."""
    return {int(r[timeline]): float(r["Scalars:scalars"][0]) for r in rows
            if r.get(timeline) is not None and r.get("Scalars:scalars")}


def texts(rows: list[dict]) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["TextLog:text"][0]) for r in rows if r.get("TextLog:text")]
